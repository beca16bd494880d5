"""Several nodes on one machine (`pyk8s up --servers M --agents N`, k3d's and kind's
multi-node): every server and agent runs in its own network namespace, the nodes joined by
a bridge, each with its own data dir.

    namespace <cluster>-net:   bridge br0 10.45.0.1/24 ── veth-s0 ── eth0 10.45.0.10  <cluster>-server-0
                                                       ├─ veth-s1 ── eth0 10.45.0.11  <cluster>-server-1
                                                       ├─ veth-a0 ── eth0 10.45.0.100 <cluster>-agent-0
                                                       └─ ...

All of it lives in namespaces this module creates: no interface, route or rule is added to
the namespace `up` runs in, and nothing has a route out (the bridge's address serves the
relay only). The nodes reach each other on the bridge; pods reach pods on other nodes
through the pod network (pyk8s.flannel, VXLAN or host-gw over that bridge).

Node i's data dir is `<data-dir>/nodes/<node name>/` (a server's embedded agent under its
`agent/`, as for one node). The first server starts with `--cluster-init` when there are
several (embedded etcd); the others join it with the server token, one at a time (each new
etcd member must be up before the next is added, or the cluster loses quorum); agents join
with the node token and are given every server's address (their client-side load balancer
fails over). kubectl reaches the cluster through the relay (cluster/relay.py) on this
namespace's 127.0.0.1:<https-port>, which connects from `<cluster>-net` to the first live
server. `<data-dir>/cluster.json` records it all (with the flags each node was started
with, so a node can be started again) for `status`, `down` and `reset`.
"""

from __future__ import annotations

import ipaddress
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from pyk8s.cluster.daemon import process_is_running
from pyk8s.cluster.netns import DEFAULT_SERVICE_CIDR, connect_in_netns, create_netns, delete_netns, netns_exists, nsenter_prefix

STATE_FILE = "cluster.json"
KUBECONFIG_FILE = "kubeconfig.yaml"
BRIDGE = "br0"
SERVER_HOST_OFFSET = 10
AGENT_HOST_OFFSET = 100


@dataclass
class NodeInfo:
    name: str
    role: str  # "server" | "agent"
    netns: str
    address: str
    data_dir: str
    veth: str  # its link's name in the cluster's network namespace
    pid: int | None = None

    @property
    def log_path(self) -> Path:
        return Path(self.data_dir) / f"{self.role}.log"

    @property
    def agent_dir(self) -> Path:
        return Path(self.data_dir) / "agent" if self.role == "server" else Path(self.data_dir)


@dataclass
class ClusterState:
    name: str
    data_dir: str
    network_netns: str
    subnet: str
    https_port: int
    nodes: list[NodeInfo] = field(default_factory=list)
    relay_pid: int | None = None
    flannel_backend: str = "vxlan"
    service_cidr: str = DEFAULT_SERVICE_CIDR  # routed inside each node's namespace (cluster/netns.py)
    started_at: float = 0.0
    server_args: list[str] = field(default_factory=list)
    agent_args: list[str] = field(default_factory=list)

    @property
    def servers(self) -> list[NodeInfo]:
        return [node for node in self.nodes if node.role == "server"]

    @property
    def agents(self) -> list[NodeInfo]:
        return [node for node in self.nodes if node.role == "agent"]

    @property
    def kubeconfig(self) -> Path:
        return Path(self.data_dir) / KUBECONFIG_FILE

    def node(self, name: str) -> NodeInfo:
        return next(node for node in self.nodes if node.name == name)

    def save(self) -> None:
        path = Path(self.data_dir) / STATE_FILE
        temporary = path.with_suffix(".tmp")
        temporary.write_text(json.dumps(asdict(self), indent=2) + "\n")
        temporary.replace(path)

    @classmethod
    def load(cls, data_dir: Path) -> "ClusterState | None":
        try:
            raw = json.loads((Path(data_dir) / STATE_FILE).read_text())
        except (FileNotFoundError, ValueError):
            return None
        raw["nodes"] = [NodeInfo(**node) for node in raw.get("nodes", [])]
        return cls(**raw)


def plan_cluster(data_dir: Path, *, name: str = "pyk8s", servers: int = 1, agents: int = 0,
                 subnet: str = "10.45.0.0/24", https_port: int = 6443, flannel_backend: str = "vxlan",
                 service_cidr: str = DEFAULT_SERVICE_CIDR) -> ClusterState:
    """Names, namespaces and addresses of every node (pure: nothing is created)."""
    network = ipaddress.ip_network(subnet)
    if servers < 1:
        raise ValueError("a cluster needs at least one server")
    if AGENT_HOST_OFFSET + agents >= network.num_addresses - 1 or servers > AGENT_HOST_OFFSET - SERVER_HOST_OFFSET:
        raise ValueError(f"{servers} servers and {agents} agents do not fit in {subnet}")
    nodes = []
    for role, count, offset, short in (("server", servers, SERVER_HOST_OFFSET, "s"),
                                       ("agent", agents, AGENT_HOST_OFFSET, "a")):
        for index in range(count):
            node_name = f"{name}-{role}-{index}"
            nodes.append(NodeInfo(name=node_name, role=role, netns=node_name,
                                  address=str(network.network_address + offset + index),
                                  data_dir=str(Path(data_dir) / "nodes" / node_name), veth=f"veth-{short}{index}"))
    return ClusterState(name=name, data_dir=str(data_dir), network_netns=f"{name}-net", subnet=str(network),
                        https_port=https_port, nodes=nodes, flannel_backend=flannel_backend,
                        service_cidr=service_cidr)


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, text=True)


def _bridge_address(state: ClusterState) -> str:
    network = ipaddress.ip_network(state.subnet)
    return f"{network.network_address + 1}/{network.prefixlen}"


def create_network(state: ClusterState) -> None:
    """The cluster's network namespace with its bridge, and one namespace per node wired to
    it by a veth pair (eth0 inside the node). Idempotent."""
    create_netns(state.network_netns)
    net = state.network_netns
    if subprocess.run(["ip", "-n", net, "link", "show", BRIDGE], capture_output=True).returncode:
        _ip("-n", net, "link", "add", BRIDGE, "type", "bridge")
        _ip("-n", net, "addr", "add", _bridge_address(state), "dev", BRIDGE)
    _ip("-n", net, "link", "set", BRIDGE, "up")
    prefix = ipaddress.ip_network(state.subnet).prefixlen
    for node in state.nodes:
        connect_node(state, node, prefix)


def connect_node(state: ClusterState, node: NodeInfo, prefix: int | None = None) -> None:
    prefix = prefix or ipaddress.ip_network(state.subnet).prefixlen
    net = state.network_netns
    create_netns(node.netns, state.service_cidr)
    if subprocess.run(["ip", "-n", node.netns, "link", "show", "eth0"], capture_output=True).returncode:
        _ip("-n", net, "link", "add", node.veth, "type", "veth", "peer", "name", "eth0", "netns", node.netns)
        _ip("-n", node.netns, "addr", "add", f"{node.address}/{prefix}", "dev", "eth0")
    _ip("-n", net, "link", "set", node.veth, "master", BRIDGE, "up")
    _ip("-n", node.netns, "link", "set", "eth0", "up")


def set_link(state: ClusterState, node_name: str, up: bool) -> None:
    """Cut (or restore) a node's only link: a network partition between it and every other node."""
    _ip("-n", state.network_netns, "link", "set", state.node(node_name).veth, "up" if up else "down")


def delete_network(state: ClusterState) -> list[str]:
    """Delete every namespace of the cluster (their veths and bridge go with them)."""
    deleted = []
    for name in [node.netns for node in state.nodes] + [state.network_netns]:
        try:
            if delete_netns(name):
                deleted.append(name)
        except subprocess.CalledProcessError:
            pass
    return deleted


def _spawn(command: list[str], log_path: Path) -> int:
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "ab") as log:
        log.write(f"--- starting at {time.strftime('%Y-%m-%d %H:%M:%S')}: {' '.join(command)}\n".encode())
        log.flush()
        process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                   start_new_session=True, close_fds=True,
                                   env=dict(os.environ, PYTHONUNBUFFERED="1"))
    return process.pid


def server_command(state: ClusterState, node: NodeInfo, *, first: bool, extra_args: list[str] = ()) -> list[str]:
    command = [*nsenter_prefix(node.netns), sys.executable, "-m", "pyk8s", "server", "--data-dir", node.data_dir,
               "--bind-address", "0.0.0.0", "--https-port", str(state.https_port),
               "--advertise-address", node.address, "--node-name", node.name, "--node-ip", node.address,
               "--flannel-backend", state.flannel_backend, *extra_args]
    if len(state.servers) > 1:
        first_server = state.servers[0]
        if first:
            command.append("--cluster-init")
        else:
            token = (Path(first_server.data_dir) / "server-token").read_text().strip()
            command += ["--server", f"https://{first_server.address}:{state.https_port}", "--token", token]
    return command


def agent_command(state: ClusterState, node: NodeInfo, extra_args: list[str] = ()) -> list[str]:
    first_server = state.servers[0]
    token = (Path(first_server.data_dir) / "node-token").read_text().strip()
    servers = ",".join(f"https://{server.address}:{state.https_port}" for server in state.servers)
    return [*nsenter_prefix(node.netns), sys.executable, "-m", "pyk8s", "agent",
            "--server", servers, "--token", token,
            "--data-dir", node.data_dir, "--node-name", node.name, "--node-ip", node.address,
            "--flannel-backend", state.flannel_backend, *extra_args]


def start_node(state: ClusterState, node: NodeInfo, extra_args: list[str] | None = None) -> int:
    """Start (or start again) one node, with the flags `up` recorded unless given others."""
    Path(node.data_dir).mkdir(parents=True, exist_ok=True)
    if extra_args is None:
        extra_args = state.server_args if node.role == "server" else state.agent_args
    # A node killed with SIGKILL left its containerd running (its pods too); the node's
    # kubelet adopts the pods but starts its own containerd on the same state.
    _stop_leftover_containerd(node)
    if node.role == "server":
        command = server_command(state, node, first=node is state.servers[0], extra_args=extra_args)
    else:
        command = agent_command(state, node, extra_args)
    node.pid = _spawn(command, node.log_path)
    state.save()
    return node.pid


def process_alive(pid: int | None) -> bool:
    """daemon.process_is_running, after reaping `pid` if it is a child of ours that has exited."""
    if not pid:
        return False
    try:
        if os.waitpid(pid, os.WNOHANG)[0] == pid:
            return False
    except ChildProcessError:
        pass
    return process_is_running(pid)


def api_listening(state: ClusterState, node: NodeInfo, timeout: float = 2.0) -> bool:
    """Whether a server's API port accepts connections, from inside its namespace."""
    try:
        connect_in_netns(node.netns, "127.0.0.1", state.https_port, timeout).close()
    except OSError:
        return False
    return True


def server_ready(state: ClusterState, node: NodeInfo, timeout: float = 2.0) -> bool:
    """GET /readyz from inside the server's namespace with the admin certificate."""
    import http.client
    import ssl

    from pyk8s.cluster.kubeconfig import server_url_and_ssl_context

    kubeconfig = Path(node.data_dir) / KUBECONFIG_FILE
    if not kubeconfig.exists():
        return False
    try:
        _, context = server_url_and_ssl_context(kubeconfig)
        raw = connect_in_netns(node.netns, "127.0.0.1", state.https_port, timeout)
        connection = http.client.HTTPSConnection("127.0.0.1", state.https_port, timeout=timeout, context=context)
        connection.sock = context.wrap_socket(raw, server_hostname="127.0.0.1")
        try:
            connection.request("GET", "/readyz")
            return connection.getresponse().status == 200
        finally:
            connection.close()
    except (OSError, ssl.SSLError, http.client.HTTPException, KeyError, ValueError):
        return False


def kubectl(state: ClusterState, *args: str, timeout: float = 30) -> subprocess.CompletedProcess:
    """kubectl run inside the first live server's namespace against its loopback API."""
    server = next((node for node in state.servers if process_alive(node.pid)), state.servers[0])
    kubectl_binary = Path(sys.executable).with_name("kubectl")
    return subprocess.run([*nsenter_prefix(server.netns), str(kubectl_binary if kubectl_binary.exists() else "kubectl"),
                           "--kubeconfig", str(Path(server.data_dir) / KUBECONFIG_FILE), *args],
                          capture_output=True, text=True, timeout=timeout)


def ready_nodes(state: ClusterState) -> set[str]:
    result = kubectl(state, "get", "nodes", "-o", "json")
    if result.returncode:
        return set()
    ready = set()
    for item in json.loads(result.stdout).get("items", []):
        conditions = {c["type"]: c["status"] for c in item.get("status", {}).get("conditions", [])}
        if conditions.get("Ready") == "True":
            ready.add(item["metadata"]["name"])
    return ready


class NodeExited(Exception):
    def __init__(self, node: NodeInfo):
        super().__init__(f"{node.role} {node.name} exited; end of {node.log_path}:\n{log_tail(node.log_path)}")
        self.node = node


def log_tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def _wait(state: ClusterState, check, deadline: float, nodes: list[NodeInfo]) -> bool:
    while True:
        for node in nodes:
            if not process_alive(node.pid):
                raise NodeExited(node)
        if check():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.2)


def up(state: ClusterState, *, timeout: float = 180.0, server_args: list[str] = (), agent_args: list[str] = (),
       relay: bool = True, progress=lambda message: None) -> None:
    """Create the network, start the servers (the first, then the others), then the agents,
    and wait until every node is Ready. Raises NodeExited or TimeoutError."""
    deadline = time.monotonic() + timeout
    Path(state.data_dir).mkdir(parents=True, exist_ok=True)
    state.started_at = time.time()
    state.server_args, state.agent_args = list(server_args), list(agent_args)
    state.save()
    create_network(state)
    first, *others = state.servers
    token_file = "server-token" if others else "node-token"
    for node in state.servers:
        start_node(state, node)
        progress(f"server {node.name} (pid {node.pid}, {node.address}, namespace {node.netns})")
        # The next server joins this one's etcd cluster: wait until its member serves (the
        # token is written once it does) and its API listens for the join. Its own node
        # comes up meanwhile (most of that is importing the node's images).
        if not _wait(state, lambda: (Path(node.data_dir) / token_file).exists() and api_listening(state, node),
                     deadline, state.servers[:state.servers.index(node) + 1]):
            raise TimeoutError(f"server {node.name} not serving within {timeout:g}s:\n{log_tail(node.log_path)}")
    for node in state.agents:
        start_node(state, node)
        progress(f"agent {node.name} (pid {node.pid}, {node.address})")
    if not _wait(state, lambda: server_ready(state, first), deadline, state.nodes):
        raise TimeoutError(f"server {first.name} not ready within {timeout:g}s:\n{log_tail(first.log_path)}")
    shutil.copyfile(Path(first.data_dir) / KUBECONFIG_FILE, state.kubeconfig)
    os.chmod(state.kubeconfig, 0o600)
    names = {node.name for node in state.nodes}
    if not _wait(state, lambda: names <= ready_nodes(state), deadline, state.nodes):
        raise TimeoutError(f"nodes not Ready within {timeout:g}s: {sorted(names - ready_nodes(state))}")
    if relay:
        from pyk8s.cluster.relay import start_relay

        state.relay_pid = start_relay(Path(state.data_dir), state.https_port, state.network_netns, state.https_port,
                                      target_hosts=[node.address for node in state.servers])
    state.save()


def stop_node(node: NodeInfo, *, kill: bool = False, timeout: float = 30.0) -> bool:
    """SIGTERM (SIGKILL with `kill`) a node's process and wait for it; its pods keep running."""
    if not process_alive(node.pid):
        return False
    _signal(node.pid, signal.SIGKILL if kill else signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while process_alive(node.pid):
        if time.monotonic() >= deadline:
            _signal(node.pid, signal.SIGKILL)
            deadline += 10
        time.sleep(0.1)
    return True


def _signal(pid: int, signum: int) -> None:
    try:
        os.kill(pid, signum)
    except ProcessLookupError:
        pass


def _stop_leftover_containerd(node: NodeInfo) -> None:
    """An agent killed with SIGKILL leaves its containerd running (the shims and pods go on,
    as on a node whose kubelet died); the cleanup below starts its own, so end that one
    first. Only the containerd of this node's own config file matches."""
    config = str(node.agent_dir / "containerd" / "config.toml").encode()
    from pyk8s.kubelet.cleanup import process_command_lines

    leftovers = [pid for pid, argv in process_command_lines() if argv and argv[0].endswith(b"containerd")
                 and config in argv]
    for pid in leftovers:
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            continue
        deadline = time.monotonic() + 10
        while Path(f"/proc/{pid}").exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        if Path(f"/proc/{pid}").exists():
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


def remove_node_pods(node: NodeInfo) -> None:
    """End a node's pods, containers, containerd and mounts, from inside its namespace."""
    _stop_leftover_containerd(node)
    if (node.agent_dir / "containerd").exists() and netns_exists(node.netns):
        subprocess.run([*nsenter_prefix(node.netns), sys.executable, "-m", "pyk8s.kubelet.cleanup",
                        str(node.agent_dir)], check=False, capture_output=True, timeout=180)


def down(state: ClusterState, *, timeout: float = 30.0, remove_network: bool = False) -> list[str]:
    """Stop the relay, the agents, then the servers. With `remove_network` (reset) also end
    every pod and delete the namespaces. Returns what it stopped."""
    from pyk8s.cluster.relay import stop_relay

    stopped = []
    if state.relay_pid and stop_relay(state.relay_pid):
        stopped.append(f"relay (pid {state.relay_pid})")
    state.relay_pid = None
    for node in state.agents:
        if stop_node(node, timeout=timeout):
            stopped.append(f"{node.role} {node.name} (pid {node.pid})")
        node.pid = None
    # The servers together: stopped one by one, the last ones' etcd members would lose
    # quorum and their shutdown would wait on writes that can no longer commit.
    running = [node for node in state.servers if process_alive(node.pid)]
    for node in running:
        _signal(node.pid, signal.SIGTERM)
    for node in reversed(running):
        stop_node(node, timeout=timeout)
        stopped.append(f"{node.role} {node.name} (pid {node.pid})")
    for node in state.servers:
        node.pid = None
    if remove_network:
        for node in state.nodes:
            remove_node_pods(node)
        stopped += [f"network namespace {name}" for name in delete_network(state)]
    if Path(state.data_dir).exists():
        state.save()
    return stopped


def describe(state: ClusterState) -> str:
    lines = [f"pyk8s cluster {state.name!r}: {len(state.servers)} server(s), {len(state.agents)} agent(s), "
             f"network namespace {state.network_netns} (bridge {BRIDGE}, {state.subnet}), "
             f"pod network {state.flannel_backend}",
             f"  kubeconfig: {state.kubeconfig} (relay pid {state.relay_pid or '-'} on 127.0.0.1:{state.https_port})",
             f"  {'NODE':<22} {'ROLE':<7} {'NAMESPACE':<22} {'ADDRESS':<15} {'PID':<8} {'RUNNING':<8} DATA DIR"]
    for node in state.nodes:
        lines.append(f"  {node.name:<22} {node.role:<7} {node.netns:<22} {node.address:<15} {str(node.pid or '-'):<8} "
                     f"{'yes' if process_alive(node.pid) else 'no':<8} {node.data_dir}")
    return "\n".join(lines)
