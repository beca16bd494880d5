"""`pyk8s agent`: run a node agent (kubelet on containerd) against an API server.

Hook into cli/main.py with `add_agent_parser(commands)` in build_parser() and dispatch
`args.command == "agent"` to `run_agent(args)`. `python -m pyk8s.kubelet ARGS` runs the
same command without the main CLI (tests use it).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
from pathlib import Path


def add_agent_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--kubeconfig", type=Path, required=True, help="credentials for the API server")
    parser.add_argument("--server", default="", help="API server URL (default: the kubeconfig's)")
    parser.add_argument("--data-dir", type=Path, default=Path("/var/lib/pyk8s/agent"))
    parser.add_argument("--node-name", default="", help="default: the hostname")
    parser.add_argument("--node-ip", default="", help="default: address of the default-route interface")
    parser.add_argument("--pod-cidr", default="", help="default: the Node's podCIDR, else the first /24")
    parser.add_argument("--cluster-cidr", default="10.42.0.0/16")
    parser.add_argument("--cluster-dns", default="")
    parser.add_argument("--log-root", type=Path, default=None, help="default: <data-dir>/logs")
    parser.add_argument("--kubelet-port", type=int, default=10250, help="0 = any free port")
    parser.add_argument("--registry-mirror", action="append", default=[], metavar="HOST=URL")
    parser.add_argument("--remove-pods-on-exit", action="store_true",
                        help="remove every pod when stopping (default: leave them running)")


def add_agent_parser(commands) -> argparse.ArgumentParser:
    parser = commands.add_parser("agent", help="run a node agent (kubelet on containerd)")
    add_agent_arguments(parser)
    return parser


def run_agent(args: argparse.Namespace) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    from pyk8s.client import Client
    from pyk8s.kubelet.agent import Agent

    mirrors = dict(item.split("=", 1) for item in args.registry_mirror)

    async def main() -> None:
        client = Client.from_kubeconfig(args.kubeconfig, field_manager="kubelet")
        if args.server:
            client.server = args.server.rstrip("/")
        agent = Agent(client, node_name=args.node_name, node_ip=args.node_ip, data_dir=args.data_dir,
                      pod_cidr=args.pod_cidr, cluster_cidr=args.cluster_cidr, cluster_dns=args.cluster_dns,
                      log_root=args.log_root, kubelet_port=args.kubelet_port, registry_mirrors=mirrors)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stop.set)
        try:
            await agent.start()
            await stop.wait()
        finally:
            await agent.stop(remove_pods=args.remove_pods_on_exit)
            await client.close()

    asyncio.run(main())
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="pyk8s agent")
    add_agent_arguments(parser)
    return run_agent(parser.parse_args(argv))
