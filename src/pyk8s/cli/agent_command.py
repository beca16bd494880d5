"""`pyk8s agent`: run a node agent (kubelet on containerd) against an API server.

Hook into cli/main.py with `add_agent_parser(commands)` in build_parser() and dispatch
`args.command == "agent"` to `run_agent(args)`. `python -m pyk8s.kubelet ARGS` runs the
same command without the main CLI (tests use it).

The agent reaches the API with a kubeconfig (`--kubeconfig`) or joins with the server's node
token (`--server URL --token K10<CA hash>::<id>.<secret>`, see client/nodetoken.py), which
it exchanges for its own client certificate through a CertificateSigningRequest
(client/certbootstrap.py), kept in <data-dir>/kubelet/pki and reused on restart. Either
way the kubelet endpoint then accepts only clients with a certificate of that cluster CA
(the API server proxying logs, exec and port-forward).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import sys
from pathlib import Path

DEFAULT_AGENT_DATA_DIR = Path("/var/lib/pyk8s/agent")


def add_agent_arguments(parser: argparse.ArgumentParser) -> None:
    credentials = parser.add_mutually_exclusive_group(required=True)
    credentials.add_argument("--kubeconfig", type=Path, help="credentials for the API server")
    credentials.add_argument("--token", help="join with the server's <data-dir>/node-token "
                             "(K10<CA hash>::<id>.<secret>); needs --server")
    parser.add_argument("--server", default="", help="API server URL (default: the kubeconfig's; required with --token)")
    parser.add_argument("--data-dir", type=Path, default=DEFAULT_AGENT_DATA_DIR)
    parser.add_argument("--node-name", default="", help="default: the hostname")
    parser.add_argument("--node-ip", default="", help="default: address of the default-route interface")
    parser.add_argument("--pod-cidr", default="",
                        help="default: the podCIDR the control plane's node IPAM gives the Node")
    parser.add_argument("--cluster-cidr", default="10.42.0.0/16")
    parser.add_argument("--flannel-backend", default="vxlan", choices=["vxlan", "host-gw", "none"],
                        help="how pods reach other nodes' pods (k3s's flag): vxlan (flannel.1, UDP 8472) or "
                             "host-gw (routes via the nodes' addresses, which must share a link)")
    parser.add_argument("--cluster-dns", default="10.43.0.10", help="the nameserver of ClusterFirst pods (k3s's default)")
    parser.add_argument("--proxy-mode", default=os.environ.get("PYK8S_PROXY_MODE") or "nftables",
                        choices=["iptables", "nftables"],
                        help="how the service proxy writes its rules (upstream kube-proxy's flag): iptables "
                             "(iptables-restore) or nftables (nft, table ip kube-proxy); default $PYK8S_PROXY_MODE "
                             "or nftables")
    parser.add_argument("--resolv-conf", default="", metavar="FILE",
                        help="resolvers for dnsPolicy Default pods and cluster DNS upstreams (default /etc/resolv.conf)")
    parser.add_argument("--log-root", type=Path, default=None,
                        help="pod logs go to <log-root>/pods and <log-root>/containers "
                             "(default: /var/log with the default data dir, else <data-dir>/logs)")
    parser.add_argument("--kubelet-port", type=int, default=10250, help="0 = any free port")
    parser.add_argument("--registry-mirror", action="append", default=[], metavar="HOST=URL")
    parser.add_argument("--remove-pods-on-exit", action="store_true",
                        help="remove every pod when stopping (default: leave them running)")


def _default_log_root(data_dir: Path) -> Path | None:
    """/var/log for the default data dir, as on any node (None: the agent's <data-dir>/logs)."""
    return Path("/var/log") if data_dir.absolute() == DEFAULT_AGENT_DATA_DIR else None


def add_agent_parser(commands) -> argparse.ArgumentParser:
    parser = commands.add_parser("agent", help="run a node agent (kubelet on containerd)")
    add_agent_arguments(parser)
    return parser


def run_agent(args: argparse.Namespace) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    from pyk8s.client.nodetoken import NodeTokenError
    from pyk8s.kubelet.agent import Agent

    if args.kubeconfig is None and not ((args.token or "").strip() and args.server):
        problem = "--token requires --server" if (args.token or "").strip() else "--token is empty"
        print(f"pyk8s agent: error: {problem}", file=sys.stderr)
        return 2
    mirrors = dict(item.split("=", 1) for item in args.registry_mirror)

    async def main() -> None:
        # k3s's agent load balancer: every API connection goes through a local proxy that
        # fails over between the servers (--server may list several, comma-separated) and
        # follows the live ones (client/loadbalancer.py).
        balancer = None
        if args.server:
            from pyk8s.client.loadbalancer import LoadBalancer, parse_server_urls
            balancer = LoadBalancer(parse_server_urls(args.server))
            await balancer.start()
            args.server = balancer.url
        client, ca_pem = await api_client(args)
        if balancer is not None:
            balancer.watch_servers(client)
        client_ca = None
        if ca_pem is not None:
            client_ca = args.data_dir / "kubelet" / "client-ca.crt"
            write_public_file(client_ca, ca_pem)
        else:
            logging.getLogger("pyk8s.kubelet").warning(
                "the kubeconfig names no cluster CA: the kubelet endpoint accepts any client")
        agent = Agent(client, node_name=args.node_name, node_ip=args.node_ip, data_dir=args.data_dir,
                      pod_cidr=args.pod_cidr, cluster_cidr=args.cluster_cidr, cluster_dns=args.cluster_dns, resolv_conf=args.resolv_conf,
                      proxy_mode=args.proxy_mode,
                      log_root=args.log_root or _default_log_root(args.data_dir), kubelet_port=args.kubelet_port,
                      registry_mirrors=mirrors,
                      client_ca=client_ca, flannel_backend=args.flannel_backend)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stop.set)
        rotation = getattr(client, "certificate_rotation", None)
        rotating = asyncio.create_task(rotation.run(), name="certificate-rotation") if rotation else None
        try:
            await agent.start()
            await stop.wait()
        finally:
            if rotating is not None:
                rotating.cancel()
            await agent.stop(remove_pods=args.remove_pods_on_exit)
            await client.close()
            if balancer is not None:
                await balancer.stop()

    from pyk8s.client.certbootstrap import CertificateBootstrapError
    try:
        asyncio.run(main())
    except (NodeTokenError, CertificateBootstrapError) as error:
        print(f"pyk8s agent: error: {error}", file=sys.stderr)
        return 1
    return 0


async def api_client(args: argparse.Namespace):
    """(client, cluster CA PEM or None) from --kubeconfig, or from --token by discovery."""
    from pyk8s.client import Client
    from pyk8s.client.kubeconfig import cluster_ca_pem
    from pyk8s.client.nodetoken import discover_cluster_ca, parse_node_token

    if args.kubeconfig is None:
        from pyk8s.client.certbootstrap import CertificateRotation, client_ssl_context, ensure_node_certificate
        import socket

        token = parse_node_token(args.token)
        ca_pem = await discover_cluster_ca(args.server, token)
        # The token only buys the node its own certificate (system:node:<name>) through a
        # CertificateSigningRequest; every later request uses the certificate, renewed
        # before it expires (certbootstrap.CertificateRotation, started by run_agent).
        node_name = (args.node_name or socket.gethostname()).lower()
        cert_file = await ensure_node_certificate(args.server, ca_pem, node_name,
                                                  args.data_dir / "kubelet" / "pki", token.credential)
        client = Client(args.server, client_ssl_context(ca_pem, cert_file), field_manager="kubelet")
        client.certificate_rotation = CertificateRotation(client, ca_pem, node_name, cert_file)
        return client, ca_pem
    client = Client.from_kubeconfig(args.kubeconfig, field_manager="kubelet")
    if args.server:
        client.server = args.server.rstrip("/")
    return client, cluster_ca_pem(args.kubeconfig)


def write_public_file(path: Path, data: bytes) -> None:
    """Replace `path` whole (a reader never sees half a certificate)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}")
    temporary.write_bytes(data)
    os.chmod(temporary, 0o644)
    os.replace(temporary, path)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="pyk8s agent")
    add_agent_arguments(parser)
    return run_agent(parser.parse_args(argv))
