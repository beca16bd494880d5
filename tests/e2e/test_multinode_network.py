"""A cluster of one server and two agents, each node in its own network namespace joined by
a bridge (what `pyk8s up --servers 1 --agents 2` runs, started here through
cluster/multinode.py with a unique name and port): node IPAM gives every node a /24, the
pod network (flannel's VXLAN layout) routes them, and Services work across nodes.

Checked: every node Ready with its own podCIDR and flannel's annotations and flannel.1;
a Deployment spread over the nodes; ping and wget between pods on different nodes; a
ClusterIP Service from every node's pods; a NodePort on every node's address; an agent
killed with SIGKILL goes NotReady and its pods come back on the other nodes; an agent cut
off by dropping its veth does the same, and once its link is back it stops the pods that
were replaced (no pod runs twice).

Timings are shortened so the module stays around two minutes: the node-lifecycle grace
period is 20 s (`--kube-controller-manager-arg node-monitor-grace-period=20s`, upstream
40 s), and the pods tolerate not-ready/unreachable for 2 s (default 300 s).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from pyk8s.cluster import multinode
from pyk8s.cluster.localcluster import free_port
from pyk8s.cluster.netns import connect_in_netns, nsenter_prefix
from pyk8s.kubelet.containerd import Containerd

from conftest import eventually

pytestmark = pytest.mark.skipif(os.geteuid() != 0 or not Path("/usr/bin/containerd").exists(),
                                reason="needs root and containerd (scripts/install-node-deps.sh)")

KUBECTL = str(Path(sys.executable).with_name("kubectl"))
TOLERATE = [{"key": key, "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 2}
            for key in ("node.kubernetes.io/not-ready", "node.kubernetes.io/unreachable")]


class Cluster:
    def __init__(self, state: multinode.ClusterState, cache: Path):
        self.state = state
        self.cache = cache

    def kubectl(self, *args: str, input: str | None = None, check: bool = True, timeout: float = 30):
        # Plain kubectl through the relay on this namespace's loopback, as a user would.
        result = subprocess.run([KUBECTL, "--kubeconfig", str(self.state.kubeconfig), "--cache-dir", str(self.cache),
                                 *args], capture_output=True, text=True, input=input, timeout=timeout)
        if check and result.returncode:
            raise AssertionError(f"kubectl {' '.join(args)}: {result.stderr}{result.stdout}")
        return result.stdout

    def get_json(self, *args: str) -> dict:
        return json.loads(self.kubectl("get", *args, "-o", "json"))

    def nodes(self) -> dict[str, dict]:
        return {node["metadata"]["name"]: node for node in self.get_json("nodes")["items"]}

    def ready(self, node: dict) -> str:
        return next((c["status"] for c in node["status"].get("conditions", []) if c["type"] == "Ready"), "")

    def pods(self, selector: str) -> list[dict]:
        return self.get_json("pods", "-l", selector)["items"]

    def exec(self, pod: str, *command: str, check: bool = True) -> str:
        return self.kubectl("exec", pod, "--", *command, check=check, timeout=20)

    def in_node(self, node_name: str, *command: str) -> str:
        node = self.state.node(node_name)
        return subprocess.run([*nsenter_prefix(node.netns), *command], capture_output=True, text=True, check=True,
                              timeout=20).stdout

    def logs(self) -> str:
        return "\n".join(f"== {node.name}\n{multinode.log_tail(node.log_path, 12)}" for node in self.state.nodes)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    base = tmp_path_factory.mktemp("multinode")
    state = multinode.plan_cluster(base / "data", name=f"t{uuid.uuid4().hex[:5]}", servers=1, agents=2,
                                   https_port=free_port())
    started = time.monotonic()
    try:
        multinode.up(state, timeout=150, server_args=[
            "--kube-controller-manager-arg", "node-monitor-grace-period=20s",
            "--kube-controller-manager-arg", "node-monitor-period=2s"])
        print(f"\n1 server + 2 agents Ready in {time.monotonic() - started:.1f}s")
        yield Cluster(state, base / "kube-cache")
    finally:
        stopping = time.monotonic()
        multinode.down(state, timeout=20, remove_network=True)
        print(f"\ncluster removed in {time.monotonic() - stopping:.1f}s")


def running(pod: dict) -> bool:
    return pod["status"].get("phase") == "Running" and not pod["metadata"].get("deletionTimestamp") and any(
        c["type"] == "Ready" and c["status"] == "True" for c in pod["status"].get("conditions", []))


def web_deployment(replicas: int = 3) -> str:
    return json.dumps({
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
        "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": "web"}},
                 "template": {"metadata": {"labels": {"app": "web"}},
                              "spec": {"terminationGracePeriodSeconds": 1, "tolerations": TOLERATE,
                                       "containers": [{"name": "web", "image": "pyk8s/whoami:1",
                                                       "ports": [{"containerPort": 80}],
                                                       "readinessProbe": {"tcpSocket": {"port": 80},
                                                                          "periodSeconds": 1}}]}}}})


def client_pod(name: str, node: str) -> str:
    return json.dumps({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "labels": {"app": "client"}},
                       "spec": {"nodeName": node, "terminationGracePeriodSeconds": 1,
                                "containers": [{"name": "sh", "image": "pyk8s/busybox:1.35",
                                                "command": ["sleep", "3600"]}]}})


def http_get_in_netns(netns: str, host: str, port: int) -> str:
    sock = connect_in_netns(netns, host, port, 5)
    try:
        sock.sendall(f"GET / HTTP/1.0\r\nHost: {host}\r\n\r\n".encode())
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
        return b"".join(chunks).decode(errors="replace")
    finally:
        sock.close()


def test_every_node_is_ready_with_its_own_pod_cidr_and_flannels_vxlan_layout(cluster):
    nodes = cluster.nodes()
    assert sorted(nodes) == sorted(node.name for node in cluster.state.nodes)
    assert all(cluster.ready(node) == "True" for node in nodes.values())
    cidrs = {name: node["spec"]["podCIDR"] for name, node in nodes.items()}
    assert len(set(cidrs.values())) == 3 and all(c.startswith("10.42.") and c.endswith(".0/24") for c in cidrs.values())
    assert all(node["spec"]["podCIDRs"] == [node["spec"]["podCIDR"]] for node in nodes.values())
    agent = cluster.state.agents[0]
    annotations = nodes[agent.name]["metadata"]["annotations"]
    assert annotations["flannel.alpha.coreos.com/backend-type"] == "vxlan"
    assert annotations["flannel.alpha.coreos.com/public-ip"] == agent.address
    vtep_mac = json.loads(annotations["flannel.alpha.coreos.com/backend-data"])["VtepMAC"]
    device = json.loads(cluster.in_node(agent.name, "ip", "-d", "-j", "link", "show", "flannel.1"))[0]
    assert device["address"] == vtep_mac
    assert device["linkinfo"]["info_data"]["id"] == 1 and device["linkinfo"]["info_data"]["port"] == 8472
    routes = {route["dst"]: route for route in json.loads(cluster.in_node(agent.name, "ip", "-j", "route", "show",
                                                                           "dev", "flannel.1"))}
    others = {name: cidr for name, cidr in cidrs.items() if name != agent.name}
    assert set(routes) == set(others.values())
    for name, cidr in others.items():
        assert routes[cidr]["gateway"] == cidr.split("/")[0] and "onlink" in routes[cidr]["flags"]
        peer_mac = json.loads(nodes[name]["metadata"]["annotations"]["flannel.alpha.coreos.com/backend-data"])["VtepMAC"]
        fdb = json.loads(cluster.in_node(agent.name, "bridge", "-j", "fdb", "show", "dev", "flannel.1"))
        assert {"mac": peer_mac, "dst": cluster.state.node(name).address} in [
            {"mac": entry["mac"], "dst": entry.get("dst")} for entry in fdb]


def test_pods_on_different_nodes_reach_each_other_services_and_node_ports(cluster):
    server = cluster.state.servers[0].name
    cluster.kubectl("apply", "-f", "-", input=web_deployment())
    cluster.kubectl("create", "-f", "-", input=client_pod("client", server))
    cluster.kubectl("expose", "deployment", "web", "--port", "80", "--type", "NodePort")
    pods = eventually(lambda: (lambda ps: ps if len([p for p in ps if running(p)]) == 3 else None)(
        cluster.pods("app=web")), 90, interval=0.5, what="3 web pods Ready", context=cluster.logs)
    assert len({pod["spec"]["nodeName"] for pod in pods}) >= 2, "spread over the nodes"
    eventually(lambda: running(cluster.get_json("pod", "client")), 60, interval=0.5, what="client pod Running")
    remote = [pod for pod in pods if pod["spec"]["nodeName"] != server]
    assert remote, "a web pod on an agent"
    for pod in remote:
        ip = pod["status"]["podIP"]
        assert ip.startswith(cluster.nodes()[pod["spec"]["nodeName"]]["spec"]["podCIDR"].rsplit(".", 2)[0])
        assert "1 packets received" in cluster.exec("client", "ping", "-c", "1", "-W", "3", ip)
        assert pod["metadata"]["name"] in cluster.exec("client", "wget", "-qO-", f"http://{ip}/")
    service = cluster.get_json("service", "web")
    cluster_ip, node_port = service["spec"]["clusterIP"], service["spec"]["ports"][0]["nodePort"]
    # Through the ClusterIP, from a pod: answered by pods on every node, sooner or later.
    names = {pod["metadata"]["name"] for pod in pods}
    seen: set[str] = set()

    def every_backend_answers_through_the_service():
        reply = cluster.exec("client", "wget", "-qO-", f"http://{cluster_ip}/", check=False)
        seen.update(name for name in names if name in reply)
        return seen == names
    eventually(every_backend_answers_through_the_service, 30, interval=0.05, what="all web pods behind the ClusterIP")
    # The NodePort on every node's address, from the cluster's network (the bridge).
    for node in cluster.state.nodes:
        reply = http_get_in_netns(cluster.state.network_netns, node.address, node_port)
        assert " 200 " in reply.splitlines()[0] and any(name in reply for name in names), (node.name, reply[:200])


def _replaced(cluster, gone_node: str):
    pods = cluster.pods("app=web")
    ready = [pod for pod in pods if running(pod) and pod["spec"]["nodeName"] != gone_node]
    return pods if len(ready) == 3 else None


def test_killed_agent_goes_not_ready_and_its_pods_come_back_on_other_nodes(cluster):
    victim = cluster.state.agents[1]
    before = {pod["metadata"]["name"] for pod in cluster.pods("app=web") if pod["spec"]["nodeName"] == victim.name}
    started = time.monotonic()
    assert multinode.stop_node(victim, kill=True)
    eventually(lambda: cluster.ready(cluster.nodes()[victim.name]) == "Unknown", 40, interval=0.5,
               what=f"{victim.name} NotReady (Unknown)")
    not_ready = time.monotonic() - started
    eventually(lambda: _replaced(cluster, victim.name), 60, interval=0.5, what="3 web pods Ready elsewhere")
    print(f"\nagent killed: NotReady after {not_ready:.1f}s, pods replaced after {time.monotonic() - started:.1f}s")
    assert not before & {pod["metadata"]["name"] for pod in cluster.pods("app=web") if running(pod)}


def test_partitioned_agent_loses_its_pods_and_stops_them_when_it_comes_back(cluster):
    victim = cluster.state.agents[0]
    cluster.kubectl("scale", "deployment", "web", "--replicas", "4")
    eventually(lambda: [p for p in cluster.pods("app=web") if p["spec"]["nodeName"] == victim.name and running(p)]
               and len([p for p in cluster.pods("app=web") if running(p)]) == 4, 60, interval=0.5,
               what=f"a web pod Ready on {victim.name}")
    cut_off = {pod["metadata"]["name"]: pod["metadata"]["uid"] for pod in cluster.pods("app=web")
               if pod["spec"]["nodeName"] == victim.name}
    cluster.kubectl("scale", "deployment", "web", "--replicas", "3")  # keep the count the test expects
    multinode.set_link(cluster.state, victim.name, up=False)
    try:
        eventually(lambda: cluster.ready(cluster.nodes()[victim.name]) == "Unknown", 40, interval=0.5,
                   what=f"{victim.name} unreachable")
        eventually(lambda: len([p for p in cluster.pods("app=web") if running(p) and p["spec"]["nodeName"]
                                not in (victim.name, cluster.state.agents[1].name)]) == 3, 60, interval=0.5,
                   what="3 web pods Ready on the server", context=cluster.logs)
    finally:
        multinode.set_link(cluster.state, victim.name, up=True)
    eventually(lambda: cluster.ready(cluster.nodes()[victim.name]) == "True", 40, interval=0.5,
               what=f"{victim.name} Ready again")
    # The kubelet finishes the deletions it missed: the old pods go, their containers stop.
    eventually(lambda: not set(cut_off) & {pod["metadata"]["name"] for pod in cluster.pods("app=web")}, 40,
               interval=0.5, what="the cut-off pods deleted")
    socket_path = Containerd(victim.agent_dir, cni_conf_dir=victim.agent_dir / "cni" / "net.d").socket
    tasks = cluster.in_node(victim.name, "ctr", "-a", str(socket_path), "-n", "k8s.io", "tasks", "ls")
    for uid in cut_off.values():
        assert uid not in cluster.in_node(victim.name, "ctr", "-a", str(socket_path), "-n", "k8s.io", "containers",
                                          "ls", f"labels.\"io.kubernetes.pod.uid\"=={uid}"), tasks
    assert len([pod for pod in cluster.pods("app=web") if running(pod)]) == 3
