"""`pyk8s up --isolated --servers 3 --agents 2`, run as a user would (the CLI, a private
HOME): every node in its own network namespace joined by a bridge, the first server with
--cluster-init on embedded etcd, the other two joining with the server token, the agents
with the node token; node IPAM gives every node a /24, the pod network (flannel's VXLAN
layout) routes them, and Services work across nodes. One cluster for the whole module.

Checked: `pyk8s status` lists every node with its namespace, address and data dir; every
node Ready with its own podCIDR and flannel's annotations and flannel.1; a Deployment
spread over the nodes; ping and wget between pods on different nodes; a ClusterIP Service
from a pod; a NodePort on every node's address; the server leading the controller manager
killed with SIGKILL: another server takes over the controllers and the scheduler within
the lease time, no acknowledged write is lost (writes keep going through the relay while it
dies), kubectl through the host-loopback relay keeps working, and the server started again
rejoins (its etcd member, its Node, the `kubernetes` endpoints); an agent killed with
SIGKILL goes NotReady and its pods come back on the other nodes; an agent cut off by
dropping its veth does the same, and once its link is back it stops the pods that were
replaced (no pod runs twice); `pyk8s down` and `pyk8s reset` leave no process or namespace.

Timings are shortened so the module stays within a few minutes: the node-lifecycle grace
period is 20 s (`--kube-controller-manager-arg node-monitor-grace-period=20s`, upstream
40 s), and the pods tolerate not-ready/unreachable for 2 s (default 300 s). The start-up
and failover times are printed.
"""

from __future__ import annotations

import json
import os
import re
import ssl
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path

import pytest

from pyk8s.client.kubeconfig import server_url_and_ssl_context
from pyk8s.cluster import multinode
from pyk8s.cluster.localcluster import free_port
from pyk8s.cluster.netns import connect_in_netns, netns_exists, nsenter_prefix
from pyk8s.kubelet.containerd import Containerd

from conftest import eventually

pytestmark = pytest.mark.skipif(os.geteuid() != 0 or not Path("/usr/bin/containerd").exists()
                                or not Path("/usr/bin/etcd").exists(),
                                reason="needs root, containerd and etcd (scripts/install-node-deps.sh)")

KUBECTL = str(Path(sys.executable).with_name("kubectl"))
TOLERATE = [{"key": key, "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 2}
            for key in ("node.kubernetes.io/not-ready", "node.kubernetes.io/unreachable")]
LEASE_DURATION = 15.0  # upstream's --leader-elect-lease-duration
RETRY_PERIOD = 2.0  # upstream's --leader-elect-retry-period


class Cluster:
    def __init__(self, data_dir: Path, env: dict, cache: Path, flags: list[str]):
        self.data_dir = data_dir
        self.env = env
        self.cache = cache
        self.flags = flags  # what every `pyk8s` command of this cluster takes (--data-dir)

    @property
    def state(self) -> multinode.ClusterState:
        return multinode.ClusterState.load(self.data_dir)

    def pyk8s(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "pyk8s", *args, *self.flags], capture_output=True, text=True,
                              env=self.env, timeout=timeout)

    def kubectl(self, *args: str, input: str | None = None, check: bool = True, timeout: float = 30):
        # Plain kubectl through the relay on this namespace's loopback (the context `up`
        # merged into $HOME/.kube/config), as a user would.
        result = subprocess.run([KUBECTL, "--cache-dir", str(self.cache), *args], capture_output=True, text=True,
                                input=input, timeout=timeout, env=self.env)
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
    home = base / "home"
    home.mkdir()
    env = {key: value for key, value in os.environ.items() if key != "KUBECONFIG"}
    env["HOME"] = str(home)
    netns = f"t{uuid.uuid4().hex[:5]}"
    flags = ["--data-dir", str(base / "data")]
    cluster = Cluster(base / "data", env, base / "kube-cache", flags)
    try:
        started = cluster.pyk8s("up", "--isolated", "--netns", netns, "--servers", "3", "--agents", "2", "--https-port",
                                str(free_port()), "--timeout", "300",
                                "--kube-controller-manager-arg", "node-monitor-grace-period=20s",
                                "--kube-controller-manager-arg", "node-monitor-period=2s", timeout=420)
        assert started.returncode == 0, f"{started.stderr}{started.stdout}\n{cluster.logs()}"
        print("\n" + next(line for line in started.stdout.splitlines() if "is ready" in line))
        yield cluster
    finally:
        stopping = time.monotonic()
        for command in (("down",), ("reset", "--yes")):
            result = cluster.pyk8s(*command, timeout=300)
            assert result.returncode == 0, f"pyk8s {' '.join(command)}: {result.stderr}{result.stdout}"
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


def test_status_lists_every_node_with_its_namespace_address_and_data_dir(cluster):
    result = cluster.pyk8s("status")
    assert result.returncode == 0, result.stdout + result.stderr
    state = cluster.state
    assert [node.role for node in state.nodes] == ["server"] * 3 + ["agent"] * 2
    rows = {line.split()[0]: line.split() for line in result.stdout.splitlines()
            if line.split() and line.split()[0] in {node.name for node in state.nodes}}
    assert set(rows) == {node.name for node in state.nodes}
    for node in state.nodes:
        assert rows[node.name] == [node.name, node.role, node.netns, node.address, str(node.pid), "yes",
                                   node.data_dir]
    assert len({node.netns for node in state.nodes} | {state.network_netns}) == 6
    assert f"relay pid {state.relay_pid} on 127.0.0.1:{state.https_port}" in result.stdout
    assert re.search(r"ready nodes: 5/5 ", result.stdout), result.stdout


def test_etcd_members_are_named_after_their_servers_and_listed_from_the_host(cluster):
    """`pyk8s etcd-member list` run from the host's namespace (it runs itself again in the
    server's): one started, healthy member per server, named k3s's way, `<node name>-<8 hex>`."""
    server = cluster.state.servers[1]
    result = subprocess.run([sys.executable, "-m", "pyk8s", "etcd-member", "list", "--data-dir", server.data_dir],
                            capture_output=True, text=True, env=cluster.env, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    rows = [line.split() for line in result.stdout.splitlines()[1:] if line.strip()]
    prefixes = sorted(re.fullmatch(r"(.+)-[0-9a-f]{8}", row[0]).group(1) for row in rows)
    assert prefixes == sorted(node.name for node in cluster.state.servers), result.stdout
    assert all(row[2:4] == ["started", "healthy"] for row in rows), result.stdout
    assert [row[0] for row in rows if row[-1] == "yes"] == [r[0] for r in rows if r[0].startswith(server.name + "-")]


def test_every_node_is_ready_with_its_own_pod_cidr_and_flannels_vxlan_layout(cluster):
    nodes = cluster.nodes()
    assert sorted(nodes) == sorted(node.name for node in cluster.state.nodes)
    assert all(cluster.ready(node) == "True" for node in nodes.values())
    cidrs = {name: node["spec"]["podCIDR"] for name, node in nodes.items()}
    assert len(set(cidrs.values())) == 5 and all(c.startswith("10.42.") and c.endswith(".0/24") for c in cidrs.values())
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


class Writer(threading.Thread):
    """Creates ConfigMaps through the relay one after another, each on a new connection, and
    records the ones the API acknowledged (201) with their uid; a request that failed is not
    acknowledged (the client would retry it)."""

    def __init__(self, kubeconfig: Path, prefix: str):
        super().__init__(daemon=True)
        self.url, self.context = server_url_and_ssl_context(kubeconfig)
        self.prefix = prefix
        self.acknowledged: dict[str, str] = {}
        self.failed: list[str] = []
        self.stopping = threading.Event()

    def create(self, name: str) -> str | None:
        body = json.dumps({"apiVersion": "v1", "kind": "ConfigMap",
                           "metadata": {"name": name, "labels": {"written-by": self.prefix}}, "data": {"k": name}})
        request = urllib.request.Request(f"{self.url}/api/v1/namespaces/default/configmaps", data=body.encode(),
                                         method="POST", headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, context=self.context, timeout=30) as reply:
                uid = json.loads(reply.read())["metadata"]["uid"]
        except (OSError, urllib.error.URLError, ssl.SSLError, ValueError) as error:
            self.failed.append(f"{name}: {error}")
            return None
        self.acknowledged[name] = uid
        return uid

    def run(self) -> None:
        index = 0
        while not self.stopping.is_set():
            self.create(f"{self.prefix}-{index}")
            index += 1


def lease_holder(cluster, name: str) -> str:
    return (cluster.get_json("lease", "-n", "kube-system", name).get("spec") or {}).get("holderIdentity") or ""


def server_of_identity(cluster, identity: str) -> multinode.NodeInfo | None:
    # The identity is upstream's <hostname>_<uuid>: every node shares the hostname, so the
    # server is the one whose log names the uuid.
    return next((node for node in cluster.state.servers if identity in node.log_path.read_text(errors="replace")),
                None)


def etcd_health(cluster, server: multinode.NodeInfo) -> dict[str, bool]:
    tls = Path(server.data_dir) / "server" / "tls" / "etcd"
    result = subprocess.run([*nsenter_prefix(server.netns), "etcdctl", "--endpoints", f"https://{server.address}:2379",
                             "--cacert", str(tls / "server-ca.crt"), "--cert", str(tls / "client.crt"),
                             "--key", str(tls / "client.key"), "endpoint", "health", "--cluster", "-w", "json"],
                            capture_output=True, text=True, timeout=30, env=dict(os.environ, ETCDCTL_API="3"))
    return {entry["endpoint"]: entry["health"] for entry in json.loads(result.stdout or "[]")}


def replicaset(name: str) -> str:
    return json.dumps({"apiVersion": "apps/v1", "kind": "ReplicaSet", "metadata": {"name": name},
                       "spec": {"replicas": 2, "selector": {"matchLabels": {"app": name}},
                                "template": {"metadata": {"labels": {"app": name}},
                                             "spec": {"terminationGracePeriodSeconds": 1,
                                                      "containers": [{"name": "sh", "image": "pyk8s/busybox:1.35",
                                                                      "command": ["sleep", "3600"]}]}}}})


def test_leading_server_killed_another_takes_over_no_write_is_lost_and_it_rejoins(cluster):
    holder = eventually(lambda: lease_holder(cluster, "kube-controller-manager"), 30, what="a controller leader")
    scheduler_holder = eventually(lambda: lease_holder(cluster, "kube-scheduler"), 30, what="a scheduler leader")
    leader = server_of_identity(cluster, holder)
    assert leader is not None, holder
    survivors = [node for node in cluster.state.servers if node.name != leader.name]
    writer = Writer(cluster.state.kubeconfig, f"ack-{uuid.uuid4().hex[:4]}")
    assert all(writer.create(f"{writer.prefix}-before-{i}") for i in range(3))
    writer.start()
    eventually(lambda: len(writer.acknowledged) >= 6, 30, what="writes going on", interval=0.1)

    state = cluster.state
    assert multinode.stop_node(state.node(leader.name), kill=True)
    killed_at = time.monotonic()
    # kubectl through the relay (which skips the dead server). When the killed server's etcd
    # member led etcd, reads wait for etcd's election (2-4 s, longer on a loaded machine): a
    # read can fail for that long, so the time until kubectl answers is measured.
    read = eventually(lambda: cluster.kubectl("get", "configmap", f"{writer.prefix}-before-0", "-o", "name",
                                              check=False).strip(), 20, what="kubectl through the relay", interval=0.2)
    kubectl_back = time.monotonic() - killed_at
    assert read == f"configmap/{writer.prefix}-before-0"
    # Work only a live controller manager and scheduler do: a ReplicaSet's pods, bound.
    cluster.kubectl("create", "-f", "-", input=replicaset("after-kill"))
    new_holder = eventually(lambda: (h := lease_holder(cluster, "kube-controller-manager")) not in ("", holder) and h,
                            LEASE_DURATION + 3 * RETRY_PERIOD + 10, what="another controller-manager leader",
                            interval=0.2, context=cluster.logs)
    elected = time.monotonic() - killed_at
    eventually(lambda: (pods := cluster.pods("app=after-kill")) and len(pods) == 2
               and all(pod["spec"].get("nodeName") for pod in pods), 30, what="the ReplicaSet's pods created and bound",
               interval=0.2, context=cluster.logs)
    failover = time.monotonic() - killed_at
    new_scheduler = eventually(lambda: (h := lease_holder(cluster, "kube-scheduler")) not in ("", holder) and h, 30,
                               what="a scheduler leader among the survivors", interval=0.2)
    writer.stopping.set()
    writer.join(60)
    print(f"\nleading server {leader.name} killed: kubectl through the relay answered after {kubectl_back:.1f}s, "
          f"controller-manager lease taken by another server after "
          f"{elected:.1f}s, ReplicaSet pods created and bound after {failover:.1f}s (lease {LEASE_DURATION:g}s, "
          f"retry {RETRY_PERIOD:g}s); writes through the relay meanwhile: {len(writer.acknowledged)} acknowledged, "
          f"{len(writer.failed)} failed {writer.failed[:3]}")
    assert {server_of_identity(cluster, new_holder).name, server_of_identity(cluster, new_scheduler).name} <= \
        {node.name for node in survivors}
    assert scheduler_holder  # the scheduler had a leader before; now one on a survivor

    # No acknowledged write lost: every one is there, with the uid the API answered.
    listed = {item["metadata"]["name"]: item["metadata"]["uid"]
              for item in cluster.get_json("configmaps", "-l", f"written-by={writer.prefix}")["items"]}
    lost = {name: uid for name, uid in writer.acknowledged.items() if listed.get(name) != uid}
    assert not lost, f"acknowledged writes lost: {lost}"
    assert len(writer.acknowledged) > 6

    # Started again, the server rejoins: its etcd member, its API, its Node.
    restarted_at = time.monotonic()
    state = cluster.state
    multinode.start_node(state, state.node(leader.name))
    eventually(lambda: multinode.server_ready(state, state.node(leader.name)), 90, what=f"{leader.name} serving again",
               interval=0.5, context=lambda: multinode.log_tail(leader.log_path))
    rejoined = time.monotonic() - restarted_at
    eventually(lambda: len(health := etcd_health(cluster, survivors[0])) == 3 and all(health.values()), 30,
               what="three healthy etcd members", interval=0.5)
    eventually(lambda: cluster.ready(cluster.nodes()[leader.name]) == "True", 60, what=f"{leader.name} Ready",
               interval=0.5)
    eventually(lambda: sorted(a["ip"] for subset in cluster.get_json("endpoints", "kubernetes").get("subsets") or []
                              for a in subset.get("addresses") or []) == sorted(n.address for n in state.servers),
               40, what="every server in the kubernetes endpoints", interval=0.5)
    print(f"restarted server serving again after {rejoined:.1f}s")
    cluster.kubectl("delete", "replicaset", "after-kill", "--wait=false")
    cluster.kubectl("delete", "configmaps", "-l", f"written-by={writer.prefix}", "--wait=false")


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
                   what="3 web pods Ready on the other nodes", context=cluster.logs)
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


def test_down_then_reset_stop_every_node_and_remove_every_namespace(cluster):
    state = cluster.state
    running = [node for node in state.nodes if multinode.process_alive(node.pid)]
    assert {node.name for node in running} >= {node.name for node in state.servers}
    down = cluster.pyk8s("down", timeout=180)
    assert down.returncode == 0, down.stderr
    for node in running:
        assert f"{node.role} {node.name} (pid {node.pid})" in down.stdout
        assert not multinode.process_alive(node.pid)
    assert not multinode.process_alive(state.relay_pid)
    assert cluster.kubectl("get", "nodes", check=False, timeout=30) == ""  # nothing behind the relay's port
    reset = cluster.pyk8s("reset", "--yes", timeout=300)
    assert reset.returncode == 0, reset.stderr
    namespaces = [state.network_netns, *(node.netns for node in state.nodes)]
    assert not [name for name in namespaces if netns_exists(name)]
    leftovers = [entry.name for entry in Path("/proc").iterdir() if entry.name.isdigit()
                 and state.data_dir.encode() in _cmdline(entry)]
    assert not leftovers, leftovers


def _cmdline(entry: Path) -> bytes:
    try:
        return (entry / "cmdline").read_bytes()
    except OSError:
        return b""
