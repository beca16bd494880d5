"""`pyk8s up --servers M --agents N` and what `down`, `status`, `reset` and `kubectl` do for
such a cluster (cluster/multinode.py runs it; cli/main.py hands over when asked for more
than one node, or when the data dir holds a multi-node cluster's cluster.json)."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from pyk8s.cluster import multinode
from pyk8s.cluster.server import ServerConfig


def add_multinode_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--servers", type=int, default=1, metavar="M",
                        help="number of servers (k3d's flag); with --agents, each node runs in its own network "
                             "namespace joined by a bridge (implies --isolated)")
    parser.add_argument("--agents", type=int, default=0, metavar="N", help="number of agents (k3d's flag)")
    parser.add_argument("--node-cidr", default="10.45.0.0/24",
                        help="the nodes' addresses on the cluster's private bridge (default 10.45.0.0/24)")


def wanted(args: argparse.Namespace) -> bool:
    return getattr(args, "servers", 1) > 1 or getattr(args, "agents", 0) > 0


def is_multinode(data_dir: Path) -> bool:
    return (Path(data_dir) / multinode.STATE_FILE).exists()


def _server_args(config: ServerConfig) -> list[str]:
    args = ["--cluster-cidr", config.cluster_cidr, "--service-cidr", config.service_cidr,
            "--proxy-mode", config.proxy_mode]
    for host, url in config.registry_mirrors.items():
        args += ["--registry-mirror", f"{host}={url}"]
    for item in config.controller_manager_args:
        args += ["--kube-controller-manager-arg", item]
    if config.secrets_encryption:
        args.append("--secrets-encryption")
    if config.resolv_conf:
        args += ["--resolv-conf", config.resolv_conf]
    return args


def _agent_args(config: ServerConfig) -> list[str]:
    args = ["--cluster-cidr", config.cluster_cidr, "--proxy-mode", config.proxy_mode]
    for host, url in config.registry_mirrors.items():
        args += ["--registry-mirror", f"{host}={url}"]
    if config.resolv_conf:
        args += ["--resolv-conf", config.resolv_conf]
    return args


def up(args: argparse.Namespace, config: ServerConfig) -> int:
    from pyk8s.cluster.kubeconfig import merge_into_user_config

    data_dir = config.data_dir
    existing = multinode.ClusterState.load(data_dir)
    if existing is not None and any(multinode.process_alive(node.pid) for node in existing.nodes):
        print(f"pyk8s is already running in {data_dir}:\n{multinode.describe(existing)}")
        return 0
    if args.servers > 1 and config.datastore:
        print("pyk8s up: error: several servers keep their state in embedded etcd (the first with --cluster-init); "
              "--datastore is for one server", file=sys.stderr)
        return 2
    name = args.netns or "pyk8s"
    try:
        state = multinode.plan_cluster(data_dir, name=name, servers=args.servers, agents=args.agents,
                                       subnet=args.node_cidr, https_port=config.https_port,
                                       flannel_backend=config.flannel_backend, service_cidr=config.service_cidr)
    except ValueError as error:
        print(f"pyk8s up: error: {error}", file=sys.stderr)
        return 2
    started = time.monotonic()
    print(f"starting {args.servers} server(s) and {args.agents} agent(s) in network namespaces {name}-*, "
          f"bridged in {state.network_netns} ({state.subnet})", flush=True)
    try:
        # Servers start one after another (each etcd member joins a healthy cluster).
        multinode.up(state, timeout=max(args.timeout, 120.0 + 60.0 * (args.servers - 1)),
                     server_args=_server_args(config),
                     agent_args=_agent_args(config), progress=lambda line: print(f"  started {line}", flush=True))
    except (multinode.NodeExited, TimeoutError, OSError) as failure:
        print(f"pyk8s up failed: {failure}\nstopping what started (pyk8s reset --data-dir {data_dir} removes it all)",
              file=sys.stderr)
        multinode.down(state)
        return 1
    merged = merge_into_user_config(state.kubeconfig)
    print(f"pyk8s is ready: {len(state.nodes)} nodes in {time.monotonic() - started:.1f}s\n{multinode.describe(state)}\n"
          f"Merged context 'pyk8s' into {merged} and made it current. Use:\n  kubectl get nodes")
    return 0


def down(data_dir: Path, timeout: float) -> int:
    state = multinode.ClusterState.load(data_dir)
    stopped = multinode.down(state, timeout=timeout)
    print("stopped " + ", ".join(stopped) if stopped else "pyk8s is not running")
    return 0


def status(data_dir: Path) -> int:
    state = multinode.ClusterState.load(data_dir)
    print(multinode.describe(state))
    running = [node for node in state.nodes if multinode.process_alive(node.pid)]
    if not running:
        return 1
    ready = multinode.ready_nodes(state)
    print(f"  ready nodes: {len(ready)}/{len(state.nodes)} ({', '.join(sorted(ready)) or '-'})")
    return 0 if len(ready) == len(state.nodes) else 1


def reset(data_dir: Path) -> None:
    """Everything but wiping the data dir (cli/main.py's reset does that next)."""
    state = multinode.ClusterState.load(data_dir)
    for line in multinode.down(state, remove_network=True):
        print(f"stopped {line}")


def kubectl_command(data_dir: Path, kubectl_args: list[str]) -> list[str]:
    from pyk8s.cli.main import kubectl_binary
    from pyk8s.cluster.netns import nsenter_prefix

    state = multinode.ClusterState.load(data_dir)
    server = next((node for node in state.servers if multinode.process_alive(node.pid)), state.servers[0])
    return [*nsenter_prefix(server.netns), kubectl_binary(), "--kubeconfig",
            str(Path(server.data_dir) / multinode.KUBECONFIG_FILE), *kubectl_args]
