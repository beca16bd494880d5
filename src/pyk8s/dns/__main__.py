"""`python -m pyk8s.dns`: the cluster DNS process as it runs in its pod (or anywhere).

API access is in-cluster, as any pod's (the `coredns` Deployment runs as ServiceAccount
kube-system/coredns): the `kubernetes` Service from KUBERNETES_SERVICE_HOST/PORT, the
projected token and CA under /var/run/secrets/kubernetes.io/serviceaccount. Outside a pod,
PYK8S_API_SERVER (URL), PYK8S_API_CA, PYK8S_API_CERT and PYK8S_API_KEY (PEM texts) give a
server and a client certificate instead. Upstream resolvers come from --resolv-conf
(default /etc/resolv.conf: the pod has dnsPolicy Default, so that is the node's).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import ssl
import tempfile

from pyk8s.client import Client
from pyk8s.dns.server import DNSServer, read_resolv_conf


def client_from_environment() -> Client:
    if "PYK8S_API_SERVER" not in os.environ:
        return Client.in_cluster(field_manager="coredns")
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_verify_locations(cadata=os.environ["PYK8S_API_CA"])
    with tempfile.TemporaryDirectory() as directory:  # load_cert_chain reads files only
        cert, key = os.path.join(directory, "tls.crt"), os.path.join(directory, "tls.key")
        for path, variable in ((cert, "PYK8S_API_CERT"), (key, "PYK8S_API_KEY")):
            with open(os.open(path, os.O_WRONLY | os.O_CREAT, 0o600), "w") as handle:
                handle.write(os.environ[variable])
        context.load_cert_chain(cert, key)
    return Client(os.environ["PYK8S_API_SERVER"], context, field_manager="coredns")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pyk8s.dns", description="pyk8s cluster DNS")
    parser.add_argument("--zone", default="cluster.local")
    parser.add_argument("--dns-ip", default="", help="the kube-dns Service IP (the zone's NS address)")
    parser.add_argument("--address", default="0.0.0.0")
    parser.add_argument("--port", type=int, default=53)
    parser.add_argument("--http-port", type=int, action="append", default=None,
                        help="serve /health, /ready and /metrics here (default 8080, 8181 and 9153)")
    parser.add_argument("--resolv-conf", default="/etc/resolv.conf", help="upstream resolvers ('' = none)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")

    async def run() -> None:
        client = client_from_environment()
        upstreams = read_resolv_conf(args.resolv_conf) if args.resolv_conf else []
        server = DNSServer(client, zone=args.zone, dns_ip=args.dns_ip, host=args.address, port=args.port,
                           upstreams=upstreams, http_ports=tuple(args.http_port or (8080, 8181, 9153)))
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stop.set)
        await server.start()
        try:
            await stop.wait()
        finally:
            await server.stop()
            await client.close()

    asyncio.run(run())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
