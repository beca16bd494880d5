"""Service proxy benchmark: iptables sync time and the cost of a ClusterIP on connection setup.

    .venv/bin/python bench/services.py                  # 1 000 services x 10 endpoints
    .venv/bin/python bench/services.py --services 200 --endpoints 5 --connections 500

1. Sync: Services and EndpointSlices (as the API gives them) → pyk8s.proxy.rules → one
   `iptables-restore --noflush`, exactly what ServiceProxy.sync runs. Figures: a full sync
   (state + render + restore; goal ≤ 1 s), then one endpoint removed from one service (a
   partial sync; goal ≤ 100 ms). Baseline in the same run: iptables-restore of the same
   text alone (the kernel/tool floor), and the same full sync on the nft backend.
2. Connection setup: two "pods" (network namespaces on a bridge, as CNI makes them); the
   client opens and closes N TCP connections to the server pod's IP, then N to a ClusterIP
   whose rules (among all the services above) DNAT to it. Goal: ClusterIP/direct ≤ 1.1.

Everything runs in a private network namespace entered first (only loopback, then the
bench's own bridge and pod namespaces), deleted on every exit path.
"""

from __future__ import annotations

if __name__ == "__main__":
    from pyk8s.cluster.localcluster import isolate_network

    isolate_network()

import argparse
import os
import statistics
import subprocess
import sys
import textwrap
import time
import uuid

from pyk8s.proxy import iptables, rules

NODE = "bench-node"
CLUSTER_CIDR = "10.42.0.0/16"
SERVER_IP, CLIENT_IP, GATEWAY = "10.42.0.2", "10.42.0.3", "10.42.0.1"
SERVICE_IP = "10.43.255.250"


def service(index: int) -> dict:
    return {"metadata": {"namespace": "bench", "name": f"svc-{index}"},
            "spec": {"type": "ClusterIP", "clusterIP": f"10.43.{index // 250}.{index % 250 + 1}",
                     "ports": [{"name": "http", "port": 80, "protocol": "TCP", "targetPort": 8080}]}}


def endpoint_slice(index: int, endpoints: int, skip: int = -1) -> dict:
    first = index * endpoints
    return {"metadata": {"namespace": "bench", "name": f"svc-{index}-abcde",
                         "labels": {rules.SERVICE_NAME_LABEL: f"svc-{index}"}},
            "addressType": "IPv4", "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}],
            "endpoints": [{"addresses": [f"10.{44 + (first + j) // 62500}.{(first + j) // 250 % 250}.{(first + j) % 250 + 1}"],
                           "conditions": {"ready": True}, "nodeName": NODE}
                          for j in range(endpoints) if j != skip]}


def full_sync(objects: list[tuple[dict, dict]], extra: dict[str, rules.ServiceState]) -> tuple[float, rules.Rendered, dict]:
    started = time.perf_counter()
    states = {f"bench/{svc['metadata']['name']}": rules.build_state(svc, [sl]) for svc, sl in objects}
    states.update(extra)
    existing, jumps = iptables.parse_save(subprocess.run(iptables._save_argv(), capture_output=True, text=True).stdout)
    rendered = rules.render(states, node_name=NODE, cluster_cidr=CLUSTER_CIDR, maybe_stale=existing.get("nat", ()),
                            missing_jumps=[j for j in rules.JUMPS if j not in jumps])
    iptables.restore_sync(rendered.text)
    return time.perf_counter() - started, rendered, states


def bench_sync(count: int, endpoints: int) -> tuple[dict, rules.Rendered]:
    objects = [(service(i), endpoint_slice(i, endpoints)) for i in range(count)]
    target = {"metadata": {"namespace": "bench", "name": "target"},
              "spec": {"clusterIP": SERVICE_IP, "ports": [{"name": "tcp", "port": 80, "protocol": "TCP"}]}}
    target_slice = {"metadata": {"namespace": "bench", "name": "target-x", "labels": {rules.SERVICE_NAME_LABEL: "target"}},
                    "addressType": "IPv4", "ports": [{"name": "tcp", "port": 8080, "protocol": "TCP"}],
                    "endpoints": [{"addresses": [SERVER_IP], "conditions": {"ready": True}, "nodeName": NODE}]}
    extra = {"bench/target": rules.build_state(target, [target_slice])}
    figures = {}
    first, rendered, states = full_sync(objects, extra)
    figures["full sync, first (empty tables)"] = first
    again = []
    for _ in range(3):
        took, rendered, states = full_sync(objects, extra)
        again.append(took)
    figures["full sync, rules in place (median of 3)"] = statistics.median(again)
    started = time.perf_counter()
    iptables.restore_sync(rendered.text)
    figures["baseline: iptables-restore of that text alone"] = time.perf_counter() - started

    partial = []
    chains = rendered.chains
    for round_ in range(5):
        index = 7 + round_
        started = time.perf_counter()
        key = f"bench/svc-{index}"
        states[key] = rules.build_state(service(index), [endpoint_slice(index, endpoints, skip=3)])
        changed = rules.render(states, node_name=NODE, cluster_cidr=CLUSTER_CIDR, dirty={key},
                               maybe_stale=chains.get(key, set()))
        iptables.restore_sync(changed.text)
        partial.append(time.perf_counter() - started)
        chains = changed.chains
    figures["one endpoint removed: partial sync (median of 5)"] = statistics.median(partial)
    figures["  its restore text (lines)"] = changed.text.count("\n")
    figures["full restore text (lines)"] = rendered.text.count("\n")
    return figures, rendered


def bench_nft(rendered: rules.Rendered) -> float | None:
    """The same full ruleset on the nft backend (what `iptables` is on Debian 12)."""
    started = time.perf_counter()
    try:
        iptables.restore_sync(rendered.text, "nft")
    except (iptables.RestoreFailed, OSError):
        return None
    took = time.perf_counter() - started
    iptables.restore_sync(rules.cleanup_text(*iptables.parse_save(
        subprocess.run(iptables._save_argv("nft"), capture_output=True, text=True).stdout)), "nft")
    return took


SERVER = """
import socket
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("0.0.0.0", 8080)); s.listen(1024); print("ready", flush=True)
while True:
    c, _ = s.accept(); c.close()
"""

CLIENT = """
import socket, sys, time
def run(host, port, n):
    took = []
    for _ in range(n):
        t = time.perf_counter(); c = socket.create_connection((host, port)); took.append(time.perf_counter() - t); c.close()
    took.sort(); return sum(took) / n, took[n // 2]
n = int(sys.argv[1])
run(sys.argv[2], 8080, 200); run(sys.argv[3], 80, 200)  # warm up
for _ in range(3):
    for label, host, port in (("direct", sys.argv[2], 8080), ("clusterip", sys.argv[3], 80)):
        mean, median = run(host, port, n); print(label, mean, median, flush=True)
"""


def bench_connections(connections: int) -> dict:
    suffix = uuid.uuid4().hex[:6]
    bridge, pods = f"bbr{suffix}", {"server": (f"bsrv{suffix}", SERVER_IP), "client": (f"bcli{suffix}", CLIENT_IP)}
    run = lambda *argv: subprocess.run(argv, check=True, capture_output=True)  # noqa: E731
    server = None
    try:
        run("ip", "link", "add", bridge, "type", "bridge")
        run("ip", "addr", "add", f"{GATEWAY}/24", "dev", bridge)
        run("ip", "link", "set", bridge, "up")
        for role, (name, ip) in pods.items():
            run("ip", "netns", "add", name)
            run("ip", "link", "add", f"v{name}", "type", "veth", "peer", "name", "eth0", "netns", name)
            run("ip", "link", "set", f"v{name}", "master", bridge, "up")
            run("ip", "-n", name, "addr", "add", f"{ip}/24", "dev", "eth0")
            run("ip", "-n", name, "link", "set", "eth0", "up")
            run("ip", "-n", name, "link", "set", "lo", "up")
            run("ip", "-n", name, "route", "add", "default", "via", GATEWAY)
        server = subprocess.Popen(["nsenter", f"--net=/var/run/netns/{pods['server'][0]}", sys.executable, "-c", SERVER],
                                  stdout=subprocess.PIPE, text=True)
        server.stdout.readline()
        out = subprocess.run(["nsenter", f"--net=/var/run/netns/{pods['client'][0]}", sys.executable, "-c", CLIENT,
                              str(connections), SERVER_IP, SERVICE_IP], capture_output=True, text=True, check=True).stdout
        rows: dict[str, list[float]] = {"direct": [], "clusterip": []}
        for line in out.splitlines():
            label, mean, _median = line.split()
            rows[label].append(float(mean))
        direct, through = min(rows["direct"]), min(rows["clusterip"])
        return {"connect, straight to the pod IP (µs, best mean of 3)": direct * 1e6,
                "connect, through the ClusterIP (µs, best mean of 3)": through * 1e6,
                "ratio ClusterIP / direct": through / direct}
    finally:
        if server is not None:
            server.kill()
            server.wait()
        for name, _ in pods.values():
            subprocess.run(["ip", "netns", "delete", name], capture_output=True)
        subprocess.run(["ip", "link", "delete", bridge], capture_output=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--services", type=int, default=1000)
    parser.add_argument("--endpoints", type=int, default=10)
    parser.add_argument("--connections", type=int, default=2000)
    parser.add_argument("--skip-nft", action="store_true")
    args = parser.parse_args()
    from pyk8s.cluster.localcluster import in_isolated_network
    assert in_isolated_network() or os.environ.get("PYK8S_BENCH_NETNS"), "run as a script (it isolates itself)"
    iptables.set_sysctls()
    print(f"service proxy: {args.services} services x {args.endpoints} endpoints, backend {iptables.backend()}")
    try:
        figures, rendered = bench_sync(args.services, args.endpoints)
        for name, value in figures.items():
            print(f"  {name:52} {value:10.3f}" + (" s" if isinstance(value, float) else ""))
        full = figures["full sync, rules in place (median of 3)"]
        partial = figures["one endpoint removed: partial sync (median of 5)"]
        print(f"  goal full sync ≤ 1 s: {'met' if full <= 1 else 'MISSED'};"
              f" goal one change ≤ 100 ms: {'met' if partial <= 0.1 else 'MISSED'}")
        print(f"connection setup ({args.connections} connects each way, {args.services + 1} services in the table)")
        for name, value in bench_connections(args.connections).items():
            print(f"  {name:52} {value:10.3f}")
        if not args.skip_nft:
            nft = bench_nft(rendered)
            print(textwrap.dedent(f"""\
                context: the same full ruleset on the nft backend: {'failed' if nft is None else f'{nft:.2f} s'}"""))
    finally:
        iptables.remove_all_rules()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
