"""The node as `pyk8s server` embeds it, through the life of the process: the kubelet
endpoint only answers the API server, containerd is supervised, pod cgroups go away with
their pods, and stopping the server (SIGTERM) leaves pods running for the next start.

One server (embedded agent, temp data dir) per module. Teardown deletes every pod, stops the
server and checks that no containerd or shim of this data dir is left (removing them
through CRI if the kubelet did not).
"""

from __future__ import annotations

import json
import os
import signal
import socket
import ssl
import subprocess
import sys
import urllib.error
from pathlib import Path

import pytest

from pyk8s.cluster.localcluster import LocalServer

from conftest import eventually, kubelet_get

KUBECTL = str(Path(sys.executable).with_name("kubectl"))
BUSYBOX = "pyk8s/busybox:1.35"
pytestmark = pytest.mark.skipif(os.geteuid() != 0 or not Path("/usr/bin/containerd").exists(),
                                reason="needs root and containerd (scripts/install-node-deps.sh)")


class Node:
    def __init__(self, server: LocalServer):
        self.server = server
        self.agent_dir = server.data_dir / "agent"
        self.cache = server.data_dir.parent / "kube-cache"
        self.name = socket.gethostname().lower()

    def kubectl(self, *args: str, check: bool = True, input: str | None = None) -> str:
        result = subprocess.run([KUBECTL, "--kubeconfig", str(self.server.kubeconfig), "--cache-dir", str(self.cache),
                                 *args], capture_output=True, text=True, timeout=60, input=input)
        if check and result.returncode:
            raise AssertionError(f"kubectl {' '.join(args)}: {result.stderr}{result.stdout}")
        return result.stdout

    def get(self, kind: str, name: str, namespace: str = "default") -> dict | None:
        out = self.kubectl("get", kind, name, "-n", namespace, "-o", "json", "--ignore-not-found")
        return json.loads(out) if out.strip() else None

    def wait_for(self, what, timeout: float = 60.0, interval: float = 0.1):
        """`eventually(what)`, with the server's log tail in the failure."""
        return eventually(what, timeout, interval=interval, context=self.server.log_tail)

    def ready(self) -> bool:
        node = self.get("node", self.name, namespace="")
        conditions = {c["type"]: c["status"] for c in (node or {}).get("status", {}).get("conditions", [])}
        return conditions.get("Ready") == "True"

    def run_pod(self, name: str, command: str = "sleep 3600", **spec) -> dict:
        body = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
                "spec": {"nodeName": self.name, "terminationGracePeriodSeconds": 1,
                         "containers": [{"name": "main", "image": BUSYBOX, "command": ["sh", "-c", command],
                                         **spec.pop("container", {})}], **spec}}
        self.kubectl("create", "-f", "-", input=json.dumps(body))
        return self.wait_for(lambda: self.running(name))

    def running(self, name: str) -> dict | None:
        pod = self.get("pod", name)
        statuses = (pod or {}).get("status", {}).get("containerStatuses") or [{}]
        return pod if statuses[0].get("state", {}).get("running") else None

    def socket_path(self) -> str:
        from pyk8s.kubelet.containerd import Containerd
        return Containerd(self.agent_dir, cni_conf_dir=self.agent_dir / "cni" / "net.d").socket

    def containerd_pids(self) -> list[int]:
        config = str(self.agent_dir / "containerd" / "config.toml")
        return _pids_with_argument(lambda argv: argv[:1] == ["containerd"] and config in argv)

    def shim_pids(self) -> list[int]:
        address = self.socket_path()
        return _pids_with_argument(lambda argv: bool(argv) and argv[0].endswith("containerd-shim-runc-v2")
                                   and address in argv)

    def task_pid(self, container_id: str) -> int:
        result = subprocess.run(["ctr", "--address", self.socket_path(), "-n", "k8s.io", "tasks", "ls"],
                                capture_output=True, text=True, check=True)
        for line in result.stdout.splitlines()[1:]:
            fields = line.split()
            if fields and fields[0] == container_id:
                return int(fields[1])
        raise AssertionError(f"no task {container_id}: {result.stdout}")


def _pids_with_argument(matches) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().decode(errors="replace").split("\0")
        except OSError:
            continue
        if matches([a for a in argv if a]):
            found.append(int(entry.name))
    return found


@pytest.fixture(scope="module")
def node(tmp_path_factory):
    base = tmp_path_factory.mktemp("embedded")
    server = LocalServer(base / "server")
    server.start(timeout=120)
    node = Node(server)
    try:
        node.wait_for(node.ready, timeout=60)
        yield node
    finally:
        if server.process is None:
            server.start(timeout=120)
        node.kubectl("delete", "pods", "--all", "--grace-period=0", "--wait=false", check=False)
        try:
            node.wait_for(lambda: not json.loads(node.kubectl("get", "pods", "-o", "json"))["items"], timeout=30)
        finally:
            server.stop(timeout=60)
            if node.shim_pids():
                subprocess.run([sys.executable, "-m", "pyk8s.kubelet.cleanup", str(node.agent_dir)], check=False, timeout=120)
        assert not node.containerd_pids(), "containerd outlived the server"
        assert not node.shim_pids(), "container shims outlived their pods"


def _cgroup_directories(uid: str) -> list[Path]:
    return [path for path in Path("/sys/fs/cgroup").glob(f"*/kubepods/**/pod{uid}") if path.is_dir()]


def test_kubelet_endpoint_answers_only_clients_with_a_cluster_certificate(node, tmp_path):
    node.run_pod("talker", "echo said something; sleep 3600")
    logs_path = "/containerLogs/default/talker/main"
    tls = node.server.data_dir / "server" / "tls"
    node_object = node.get("node", node.name, namespace="")
    assert kubelet_get(node_object, "/healthz", (tls / "admin.crt", tls / "admin.key")) == "ok"
    with pytest.raises((ssl.SSLError, urllib.error.URLError, ConnectionError)):
        kubelet_get(node_object, logs_path, None)
    from pyk8s.kubelet.logs import self_signed_context
    self_signed_context(tmp_path / "stranger", ["stranger"])  # a certificate no cluster CA signed
    with pytest.raises((ssl.SSLError, urllib.error.URLError, ConnectionError)):
        kubelet_get(node_object, logs_path, (tmp_path / "stranger" / "kubelet.crt", tmp_path / "stranger" / "kubelet.key"))
    # The API server's pods/log proxy presents a certificate of the cluster CA.
    assert node.wait_for(lambda: node.kubectl("logs", "talker")) == "said something\n"


def test_killed_containerd_is_restarted_and_pods_keep_running(node):
    before = node.run_pod("survivor")["status"]["containerStatuses"][0]
    [containerd] = node.containerd_pids()
    os.kill(containerd, signal.SIGKILL)
    node.wait_for(lambda: [pid for pid in node.containerd_pids() if pid != containerd], timeout=30)
    # New pods start on the restarted runtime...
    node.run_pod("after-containerd")
    # ...and the old one was never restarted.
    after = node.running("survivor")["status"]["containerStatuses"][0]
    assert after["containerID"] == before["containerID"] and after["restartCount"] == 0
    assert node.ready()


def test_pod_cgroups_are_removed_with_the_pod(node):
    pod = node.run_pod("limited", container={"resources": {"limits": {"memory": "64Mi"},
                                                           "requests": {"memory": "32Mi"}}})
    uid = pod["metadata"]["uid"]
    created = _cgroup_directories(uid)
    assert any(path.parent.name == "burstable" and path.parts[4] == "memory" for path in created), created
    node.kubectl("delete", "pod", "limited", "--grace-period=1")
    node.wait_for(lambda: node.get("pod", "limited") is None, timeout=30)
    assert _cgroup_directories(uid) == []


def test_server_stopped_with_sigterm_leaves_pods_running_and_a_restart_adopts_them(node):
    pod = node.run_pod("steady")
    before = pod["status"]["containerStatuses"][0]
    process = node.task_pid(before["containerID"].split("//", 1)[1])
    node.server.stop(timeout=60)  # SIGTERM
    assert not node.containerd_pids()
    os.kill(process, 0)  # still alive without containerd and the agent
    node.server.start(timeout=120)
    node.wait_for(node.ready, timeout=60)
    node.run_pod("after-server-restart")
    after = node.running("steady")["status"]["containerStatuses"][0]
    assert after["containerID"] == before["containerID"] and after["restartCount"] == 0
    assert node.task_pid(after["containerID"].split("//", 1)[1]) == process


def _pyk8s(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pyk8s", *args], capture_output=True, text=True, timeout=120)


def test_images_imported_with_the_cli_are_listed_run_and_removed(node, tmp_path):
    from pyk8s.kubelet.images import BUSYBOX_BINARY, LayerBuilder, write_oci_archive
    layer = LayerBuilder()
    layer.directory("bin")
    layer.file("bin/busybox", Path(BUSYBOX_BINARY).read_bytes(), 0o755)
    archive = tmp_path / "tiny.tar"
    write_oci_archive(archive, "docker.io/example/tiny:1.0", layer.finish(), {"Entrypoint": ["/bin/busybox"]})
    data_dir = str(node.server.data_dir)

    imported = _pyk8s("images", "import", "--data-dir", data_dir, str(archive))
    assert imported.returncode == 0, imported.stderr
    assert "imported docker.io/example/tiny:1.0" in imported.stdout
    listing = _pyk8s("images", "ls", "--data-dir", data_dir).stdout.splitlines()
    assert listing[0].split() == ["IMAGE", "TAG", "IMAGE", "ID", "SIZE"]
    assert any(line.split()[:2] == ["docker.io/example/tiny", "1.0"] for line in listing), listing
    assert any(line.split()[:2] == ["docker.io/pyk8s/busybox", "1.35"] for line in listing), listing

    node.run_pod("tiny", container={"image": "example/tiny:1.0", "imagePullPolicy": "Never",
                                    "command": ["/bin/busybox", "sleep", "3600"]})
    node.kubectl("delete", "pod", "tiny", "--grace-period=1")

    removed = _pyk8s("images", "rm", "--data-dir", data_dir, "docker.io/example/tiny:1.0")
    assert removed.returncode == 0, removed.stderr
    assert "docker.io/example/tiny" not in _pyk8s("images", "ls", "--data-dir", data_dir).stdout
