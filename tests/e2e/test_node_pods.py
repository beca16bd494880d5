"""The node agent runs real pods on containerd inside the test's network namespace.

One API server (no embedded agent) and one `python -m pyk8s.kubelet` agent per module;
pods are created with spec.nodeName set (no scheduler needed) through the real kubectl.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from pyk8s.cluster.localcluster import LocalServer

from conftest import eventually, kubelet_get

KUBECTL = str(Path(sys.executable).with_name("kubectl"))
NODE = "node-1"
pytestmark = pytest.mark.skipif(os.geteuid() != 0 or not Path("/usr/bin/containerd").exists(),
                                reason="needs root and containerd (scripts/install-node-deps.sh)")


class Cluster:
    def __init__(self, server: LocalServer, agent_dir: Path):
        self.server = server
        self.agent_dir = agent_dir
        self.agent: subprocess.Popen | None = None
        self.cache = agent_dir.parent / "kube-cache"

    def kubectl(self, *args: str, check: bool = True, input: str | None = None) -> str:
        result = subprocess.run([KUBECTL, "--kubeconfig", str(self.server.kubeconfig), "--cache-dir", str(self.cache),
                                 *args], capture_output=True, text=True, timeout=60, input=input)
        if check and result.returncode:
            raise AssertionError(f"kubectl {' '.join(args)}: {result.stderr}{result.stdout}")
        return result.stdout

    def get(self, kind: str, name: str, namespace: str = "default") -> dict | None:
        out = self.kubectl("get", kind, name, "-n", namespace, "-o", "json", "--ignore-not-found")
        return json.loads(out) if out.strip() else None

    def start_agent(self) -> None:
        log = open(self.agent_dir.parent / "agent.log", "ab")
        self.agent = subprocess.Popen(
            [sys.executable, "-m", "pyk8s.kubelet", "--kubeconfig", str(self.server.kubeconfig),
             "--data-dir", str(self.agent_dir), "--node-name", NODE, "--kubelet-port", "0"],
            stdout=log, stderr=subprocess.STDOUT)
        log.close()

    def stop_agent(self, *, remove_pods: bool = False) -> None:
        if self.agent is None:
            return
        if remove_pods:
            # Our own cleanup pass: the agent removes every sandbox on this signal path.
            self.agent.send_signal(signal.SIGTERM)
            self.agent.wait(60)
            subprocess.run([sys.executable, "-m", "pyk8s.kubelet.cleanup", str(self.agent_dir)], check=False, timeout=120)
        else:
            self.agent.send_signal(signal.SIGTERM)
            self.agent.wait(60)
        self.agent = None

    def wait_for(self, what, timeout: float = 60.0, interval: float = 0.2):
        """`eventually(what)`, with the agent's log tail in the failure."""
        return eventually(what, timeout, interval=interval, context=self.agent_log)

    def agent_log(self) -> str:
        path = self.agent_dir.parent / "agent.log"
        return "\n".join(path.read_text(errors="replace").splitlines()[-30:]) if path.exists() else ""

    def pod_phase(self, name: str) -> str | None:
        pod = self.get("pod", name)
        return (pod or {}).get("status", {}).get("phase")

    def create_pod(self, name: str, containers: list[dict], **spec) -> float:
        body = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "labels": {"app": name}},
                "spec": {"nodeName": NODE, "terminationGracePeriodSeconds": 2, "containers": containers, **spec}}
        started = time.monotonic()
        self.kubectl("create", "--validate=false", "-f", "-", input=json.dumps(body))
        return started


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    base = tmp_path_factory.mktemp("node")
    server = LocalServer(base / "server", extra_args=["--disable-agent", "--disable-controllers"])
    server.start()
    cluster = Cluster(server, base / "agent")
    cluster.start_agent()
    try:
        cluster.wait_for(lambda: _node_ready(cluster), timeout=60)
        yield cluster
    finally:
        cluster.stop_agent(remove_pods=True)
        server.stop()


def _node_ready(cluster: Cluster) -> bool:
    node = cluster.get("node", NODE, namespace="")
    conditions = {c["type"]: c["status"] for c in (node or {}).get("status", {}).get("conditions", [])}
    return conditions.get("Ready") == "True"


def busybox(name: str, command: str, **extra) -> dict:
    return {"name": name, "image": "pyk8s/busybox:1.35", "command": ["sh", "-c", command], **extra}


def container_status(cluster: Cluster, pod: str, name: str | None = None) -> dict:
    statuses = (cluster.get("pod", pod) or {}).get("status", {}).get("containerStatuses") or [{}]
    return next((s for s in statuses if name is None or s.get("name") == name), {})


def kubelet_logs(cluster: Cluster, pod: str, container: str, query: str = "") -> str:
    # The kubelet serves only clients with a certificate of the cluster CA (as the API server has).
    tls = cluster.server.data_dir / "server" / "tls"
    return kubelet_get(cluster.get("node", NODE, namespace=""), f"/containerLogs/default/{pod}/{container}{query}",
                       (tls / "admin.crt", tls / "admin.key"))


def test_node_registers_ready_with_capacity_and_lease(cluster):
    node = cluster.get("node", NODE, namespace="")
    assert node["spec"]["podCIDR"] == "10.42.0.0/24"
    status = node["status"]
    assert status["capacity"]["pods"] == "110"
    assert status["nodeInfo"]["containerRuntimeVersion"].startswith("containerd://1.6")
    assert {c["type"] for c in status["conditions"]} == {"Ready", "MemoryPressure", "DiskPressure", "PIDPressure"}
    lease = cluster.get("lease", NODE, namespace="kube-node-lease")
    assert lease["spec"]["holderIdentity"] == NODE


def test_pod_runs_with_ip_from_node_cidr_and_its_output_in_logs(cluster):
    started = cluster.create_pod("hello", [busybox("main", "echo hello from $(hostname); sleep 3600")])
    cluster.wait_for(lambda: cluster.pod_phase("hello") == "Running", interval=0.05)
    latency = time.monotonic() - started
    print(f"pod start latency create->Running (kubectl apply + watch by polling): {latency * 1000:.0f} ms")
    pod = cluster.get("pod", "hello")
    assert pod["status"]["podIP"].startswith("10.42.0.")
    status = pod["status"]["containerStatuses"][0]
    assert status["containerID"].startswith("containerd://") and status["ready"] is True
    assert {c["type"]: c["status"] for c in pod["status"]["conditions"]}["Ready"] == "True"
    assert cluster.wait_for(lambda: kubelet_logs(cluster, "hello", "main")) == "hello from hello\n"


def test_pods_on_the_node_reach_each_other_by_ip(cluster):
    cluster.create_pod("ping-a", [busybox("main", "sleep 3600")])
    cluster.create_pod("ping-b", [busybox("main", "sleep 3600")])
    for name in ("ping-a", "ping-b"):
        cluster.wait_for(lambda name=name: cluster.pod_phase(name) == "Running")
    target = cluster.get("pod", "ping-b")["status"]["podIP"]
    cluster.create_pod("pinger", [busybox("main", f"ping -c 1 -W 2 {target} && echo reachable")],
                       restartPolicy="Never")
    cluster.wait_for(lambda: cluster.pod_phase("pinger") in ("Succeeded", "Failed"))
    print(kubelet_logs(cluster, "pinger", "main"))
    assert cluster.pod_phase("pinger") == "Succeeded"
    assert "reachable" in kubelet_logs(cluster, "pinger", "main")


def _task_pid(cluster: Cluster, container_id: str) -> int:
    from pyk8s.kubelet.containerd import Containerd
    runtime = Containerd(cluster.agent_dir, cni_conf_dir=cluster.agent_dir / "cni" / "net.d")
    output = runtime.ctr("tasks", "ls").stdout
    for line in output.splitlines()[1:]:
        fields = line.split()
        if fields and fields[0] == container_id:
            return int(fields[1])
    raise AssertionError(f"no task {container_id} in {output}")


def test_container_killed_behind_the_kubelets_back_is_replaced(cluster):
    cluster.create_pod("heal", [busybox("main", "sleep 3600")])
    cluster.wait_for(lambda: container_status(cluster, "heal").get("state", {}).get("running"))
    first = container_status(cluster, "heal")
    os.kill(_task_pid(cluster, first["containerID"].split("//")[1]), signal.SIGKILL)
    replaced = cluster.wait_for(lambda: (lambda s: s if s.get("restartCount") == 1 and s["state"].get("running") else None)(
        container_status(cluster, "heal")))
    assert replaced["containerID"] != first["containerID"]
    assert replaced["lastState"]["terminated"]["exitCode"] == 137


def test_failing_command_goes_into_crash_loop_back_off(cluster):
    cluster.create_pod("crash", [busybox("main", "echo failing; exit 3")])
    status = cluster.wait_for(lambda: (lambda s: s if s.get("state", {}).get("waiting", {}).get("reason") == "CrashLoopBackOff" else None)(
        container_status(cluster, "crash")), timeout=30)
    assert status["lastState"]["terminated"]["exitCode"] == 3
    assert status["lastState"]["terminated"]["reason"] == "Error"
    assert status["restartCount"] >= 1
    assert "back-off 10s restarting failed container=main" in status["state"]["waiting"]["message"]


def test_missing_image_goes_into_image_pull_back_off(cluster):
    cluster.create_pod("noimage", [{"name": "main", "image": "pyk8s/does-not-exist:1.0"}])
    reasons = set()

    def seen_back_off():
        reason = container_status(cluster, "noimage").get("state", {}).get("waiting", {}).get("reason")
        reasons.add(reason)
        return reason == "ImagePullBackOff"
    cluster.wait_for(seen_back_off, timeout=40)
    assert cluster.pod_phase("noimage") == "Pending"


def test_deleted_pod_is_stopped_gracefully_then_removed(cluster):
    cluster.create_pod("bye", [busybox("main", "trap 'echo got TERM; exit 0' TERM; while true; do sleep 0.1; done")])
    cluster.wait_for(lambda: cluster.pod_phase("bye") == "Running")
    started = time.monotonic()
    cluster.kubectl("delete", "pod", "bye", "--wait=false")
    cluster.wait_for(lambda: cluster.get("pod", "bye") is None, timeout=30)
    # The TERM trap ran: the container stopped well within the 2 s grace period + cleanup.
    assert time.monotonic() - started < 10


def test_agent_restart_adopts_running_containers(cluster):
    cluster.create_pod("steady", [busybox("main", "sleep 3600")])
    cluster.wait_for(lambda: container_status(cluster, "steady").get("state", {}).get("running"))
    before = container_status(cluster, "steady")
    cluster.stop_agent()
    cluster.start_agent()
    cluster.wait_for(lambda: _node_ready(cluster))
    # A pod created after the restart runs: the new agent is syncing.
    cluster.create_pod("after-restart", [busybox("main", "sleep 3600")])
    cluster.wait_for(lambda: cluster.pod_phase("after-restart") == "Running")
    after = container_status(cluster, "steady")
    assert after["containerID"] == before["containerID"] and after["restartCount"] == 0


def test_readiness_probe_drives_ready(cluster):
    cluster.create_pod("probed", [busybox("main", "sleep 2; touch /tmp/ready; sleep 3600", readinessProbe={
        "exec": {"command": ["cat", "/tmp/ready"]}, "periodSeconds": 1})])
    cluster.wait_for(lambda: cluster.pod_phase("probed") == "Running")
    assert container_status(cluster, "probed")["ready"] is False
    cluster.wait_for(lambda: container_status(cluster, "probed")["ready"] is True, timeout=20)
    conditions = {c["type"]: c["status"] for c in cluster.get("pod", "probed")["status"]["conditions"]}
    assert conditions["Ready"] == "True" and conditions["ContainersReady"] == "True"


def _tag_image(cluster: Cluster, source: str, target: str) -> None:
    from pyk8s.kubelet.containerd import Containerd
    runtime = Containerd(cluster.agent_dir, cni_conf_dir=cluster.agent_dir / "cni" / "net.d")
    runtime.ctr("images", "tag", "--force", source, target)


def test_changed_container_image_restarts_the_container_with_the_new_image(cluster):
    _tag_image(cluster, "docker.io/pyk8s/busybox:1.35", "docker.io/pyk8s/busybox:retagged")
    cluster.create_pod("reimage", [busybox("main", "sleep 3600")])
    cluster.wait_for(lambda: container_status(cluster, "reimage").get("state", {}).get("running"))
    before = container_status(cluster, "reimage")
    cluster.kubectl("set", "image", "pod/reimage", "main=pyk8s/busybox:retagged")

    def restarted():
        status = container_status(cluster, "reimage")
        return status if status.get("restartCount") == 1 and status["state"].get("running") else None
    after = cluster.wait_for(restarted, timeout=30)
    assert after["containerID"] != before["containerID"]
    assert after["image"] == "pyk8s/busybox:retagged"
    assert after["lastState"]["terminated"]["containerID"] == before["containerID"]


def test_container_over_its_memory_limit_is_oom_killed(cluster):
    cluster.create_pod("hog", [busybox("main", "exec dd if=/dev/zero of=/dev/null bs=64M count=1",
                                       resources={"limits": {"memory": "16Mi"}})], restartPolicy="Never")
    cluster.wait_for(lambda: cluster.pod_phase("hog") == "Failed", timeout=30)
    terminated = container_status(cluster, "hog")["state"]["terminated"]
    assert terminated["reason"] == "OOMKilled"
    assert terminated["exitCode"] == 137


def _seconds(rfc3339: str) -> float:
    import datetime
    return datetime.datetime.fromisoformat(rfc3339.replace("Z", "+00:00")).timestamp()


def test_crash_back_off_survives_an_agent_restart(cluster):
    cluster.create_pod("crash-restart", [busybox("main", "exit 1")])

    def backing_off(restarts: int):
        status = container_status(cluster, "crash-restart")
        waiting = status.get("state", {}).get("waiting", {})
        return status if waiting.get("reason") == "CrashLoopBackOff" and status["restartCount"] == restarts else None
    first = cluster.wait_for(lambda: backing_off(1), timeout=30)
    cluster.stop_agent()
    cluster.start_agent()
    cluster.wait_for(lambda: _node_ready(cluster))
    second = cluster.wait_for(lambda: backing_off(2), timeout=40)
    # The new agent waited out the 10 s back-off the old one started, then doubled it:
    # a forgotten back-off would have restarted at once and said "back-off 10s".
    gap = _seconds(second["lastState"]["terminated"]["startedAt"]) - _seconds(first["lastState"]["terminated"]["finishedAt"])
    assert gap >= 9, gap
    assert "back-off 20s restarting failed container=main" in second["state"]["waiting"]["message"]
