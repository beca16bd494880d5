"""Service proxy benchmark, both modes (`--proxy-mode iptables` and `nftables`) side by side,
each beside its baseline measured in the same run.

    .venv/bin/python bench/services.py                  # 1 000 services x 10 endpoints
    .venv/bin/python bench/services.py --services 200 --endpoints 5 --connections 500 --ready-samples 8

1. Sync, per mode: Services and EndpointSlices (as the API gives them) → the mode's backend
   object of ServiceProxy (proxier.BACKENDS: render + iptables-restore / nft -f), exactly
   what ServiceProxy.sync runs. Figures: the full sync at start (goal ≤ 1 s), the periodic
   full sync, the one after an agent restart (rules in place), then one endpoint removed from
   one service (a partial sync: what follows one EndpointSlice event; goal ≤ 100 ms).
   Baselines: iptables-restore / nft -f of the same texts alone (the kernel/tool floor).
2. Connection setup, per mode: two "pods" (network namespaces on a bridge, as CNI makes
   them); the client opens and closes N TCP connections to the server pod's IP, then N to a
   ClusterIP whose rules (among all the services above) DNAT to it. Goal: ClusterIP/direct ≤ 1.1.
3. Pod Ready → reachable through its Service, per mode: a real cluster (`pyk8s server
   --proxy-mode MODE` with its node) in this namespace; per sample a Service, then its pod;
   from the pod watch's Ready, the time until a connect through the ClusterIP succeeds
   (goal p99 ≤ 1 s), beside the time until a connect to the pod IP succeeds (baseline).

Everything runs in a private network namespace entered first (only loopback, then the
bench's own bridge, pod namespaces and cluster), deleted on every exit path.
"""

from __future__ import annotations

if __name__ == "__main__":
    from pyk8s.cluster.localcluster import isolate_network

    isolate_network()

import argparse
import asyncio
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

from pyk8s.cluster.localcluster import LocalServer
from pyk8s.proxy import iptables, nftables, rules
from pyk8s.proxy.proxier import BACKENDS

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


def run(coroutine):
    return asyncio.run(coroutine)


def bench_sync(mode: str, count: int, endpoints: int) -> dict:
    """What ServiceProxy.sync runs in `mode` (its backend object), on `count` services."""
    objects = [(service(i), endpoint_slice(i, endpoints)) for i in range(count)]
    target = {"metadata": {"namespace": "bench", "name": "target"},
              "spec": {"clusterIP": SERVICE_IP, "ports": [{"name": "tcp", "port": 80, "protocol": "TCP"}]}}
    target_slice = {"metadata": {"namespace": "bench", "name": "target-x", "labels": {rules.SERVICE_NAME_LABEL: "target"}},
                    "addressType": "IPv4", "ports": [{"name": "tcp", "port": 8080, "protocol": "TCP"}],
                    "endpoints": [{"addresses": [SERVER_IP], "conditions": {"ready": True}, "nodeName": NODE}]}

    def all_states() -> dict:
        states = {f"bench/{svc['metadata']['name']}": rules.build_state(svc, [sl]) for svc, sl in objects}
        states["bench/target"] = rules.build_state(target, [target_slice])
        return states

    backend = BACKENDS[mode](node_name=NODE, cluster_cidr=CLUSTER_CIDR)
    figures = {}
    started = time.perf_counter()
    states = all_states()
    run(backend.sync(states, None))
    figures["full sync at start (empty table)"] = time.perf_counter() - started
    again = []
    for _ in range(3):
        started = time.perf_counter()
        states = all_states()
        run(backend.sync(states, None))
        again.append(time.perf_counter() - started)
    figures["full sync, periodic (median of 3)"] = statistics.median(again)
    restart = BACKENDS[mode](node_name=NODE, cluster_cidr=CLUSTER_CIDR)  # a restarted agent: rules in place
    started = time.perf_counter()
    run(restart.sync(all_states(), None))
    figures["full sync after an agent restart (rules in place)"] = time.perf_counter() - started
    backend = restart

    partial = []
    for round_ in range(5):
        index = 7 + round_
        key = f"bench/svc-{index}"
        started = time.perf_counter()
        states = dict(states)
        states[key] = rules.build_state(service(index), [endpoint_slice(index, endpoints, skip=3)])
        run(backend.sync(states, {key}))
        partial.append(time.perf_counter() - started)
    figures["one endpoint removed: partial sync (median of 5)"] = statistics.median(partial)

    # Baselines in the same run: the kernel tool alone on the same input.
    if mode == "iptables":
        rendered = rules.render(states, node_name=NODE, cluster_cidr=CLUSTER_CIDR)
        started = time.perf_counter()
        iptables.restore_sync(rendered.text)
        figures["baseline: iptables-restore of the full text alone"] = time.perf_counter() - started
        figures["  full text (lines)"] = rendered.text.count("\n")
        key = "bench/svc-20"
        states[key] = rules.build_state(service(20), [endpoint_slice(20, endpoints, skip=3)])
        changed = rules.render(states, node_name=NODE, cluster_cidr=CLUSTER_CIDR, dirty={key},
                               maybe_stale=backend._chains.get(key, set()))
        started = time.perf_counter()
        iptables.restore_sync(changed.text)
        figures["baseline: iptables-restore of one change's text alone"] = time.perf_counter() - started
    else:
        transaction = nftables.render(states, node_name=NODE, cluster_cidr=CLUSTER_CIDR, previous=None)
        started = time.perf_counter()
        nftables.apply_sync(transaction.text)
        figures["baseline: nft -f of the full text alone (table replaced)"] = time.perf_counter() - started
        figures["  full text (lines)"] = transaction.text.count("\n")
        key = "bench/svc-20"
        states[key] = rules.build_state(service(20), [endpoint_slice(20, endpoints, skip=3)])
        delta = nftables.render(states, node_name=NODE, cluster_cidr=CLUSTER_CIDR, previous=transaction.written,
                                dirty={key})
        started = time.perf_counter()
        nftables.apply_sync(delta.text)
        figures["baseline: nft -f of one change's text alone"] = time.perf_counter() - started
    return figures


def remove_rules() -> None:
    from pyk8s.proxy.cleanup import remove_all
    remove_all()


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
for _ in range(7):
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
        return {"connect, straight to the pod IP (µs, best mean of 7)": direct * 1e6,
                "connect, through the ClusterIP (µs, best mean of 7)": through * 1e6,
                "ratio ClusterIP / direct": through / direct}
    finally:
        if server is not None:
            server.kill()
            server.wait()
        for name, _ in pods.values():
            subprocess.run(["ip", "netns", "delete", name], capture_output=True)
        subprocess.run(["ip", "link", "delete", bridge], capture_output=True)


def ready_to_reachable(mode: str, samples: int) -> dict:
    """A real cluster (`pyk8s server --proxy-mode MODE`, its embedded node, in this network
    namespace): per sample a Service and then its one pod (pyk8s/whoami, no readiness probe);
    from the moment the pod watch shows the pod Ready, connects are tried every 5 ms to the
    ClusterIP (refused at once while the Service has no endpoint) and, as the baseline, to
    the pod IP. Figures: Ready → first connect through the ClusterIP, and → to the pod IP."""
    work = Path(tempfile.mkdtemp(prefix="pyk8s-bench-services-"))
    server = LocalServer(work / "server", extra_args=["--proxy-mode", mode, "--node-name", "bench-ready"])
    try:
        server.start(timeout=120)
        return asyncio.run(_measure_ready(server, samples))
    finally:
        server.stop(timeout=60, remove_pods=True)
        shutil.rmtree(work, ignore_errors=True)


async def _first_connect(host_of, port: int, deadline: float) -> float:
    while time.monotonic() < deadline:
        host = host_of()
        if host:
            try:
                _, writer = await asyncio.wait_for(asyncio.open_connection(host, port), 0.5)
                now = time.monotonic()
                writer.close()
                return now
            except (OSError, asyncio.TimeoutError):
                pass
        await asyncio.sleep(0.005)
    raise TimeoutError(f"{port}: never reachable")


async def _measure_ready(server: LocalServer, samples: int) -> dict:
    from pyk8s.api.resources import lookup
    from pyk8s.client import Client

    pods_resource, services_resource, nodes = (lookup("", "v1", "pods"), lookup("", "v1", "services"),
                                               lookup("", "v1", "nodes"))
    async with Client.from_kubeconfig(server.kubeconfig, field_manager="bench") as client:
        deadline = time.monotonic() + 120
        while not any(c["type"] == "Ready" and c["status"] == "True" for n in (await client.list(nodes))["items"]
                      for c in (n.get("status") or {}).get("conditions") or []):
            assert time.monotonic() < deadline, "node not Ready"
            await asyncio.sleep(0.2)
        routed = asyncio.Lock()

        async def route_service_cidr() -> None:
            # The node reaches ClusterIPs as a host with a default route does: through the
            # pod bridge (CNI gives it its address with the first pod).
            async with routed:
                while True:
                    if "10.43.0.0/16" in subprocess.run(["ip", "route"], capture_output=True, text=True).stdout:
                        return
                    addresses = subprocess.run(["ip", "-o", "-4", "addr", "show"], capture_output=True, text=True).stdout
                    device = next((line.split()[1] for line in addresses.splitlines() if " 10.42." in line), None)
                    if device:
                        subprocess.run(["ip", "route", "replace", "10.43.0.0/16", "dev", device], check=True)
                        return
                    await asyncio.sleep(0.1)
        ready_at: dict[str, float] = {}
        pod_ips: dict[str, str] = {}
        events: dict[str, asyncio.Event] = {}

        async def watch(resource_version: str) -> None:
            async for event in client.watch(pods_resource, "default", resource_version=resource_version):
                pod = event["object"]
                name = pod["metadata"]["name"]
                status = pod.get("status") or {}
                if status.get("podIP"):
                    pod_ips[name] = status["podIP"]
                if any(c["type"] == "Ready" and c["status"] == "True" for c in status.get("conditions") or []):
                    if name not in ready_at:
                        ready_at[name] = time.monotonic()
                        events.setdefault(name, asyncio.Event()).set()

        watcher = asyncio.create_task(watch((await client.list(pods_resource, "default"))["metadata"]["resourceVersion"]))
        through, direct = [], []

        async def one(index: int) -> None:
            name = f"ready-{index}"
            svc = await client.create(services_resource, {
                "apiVersion": "v1", "kind": "Service", "metadata": {"name": name},
                "spec": {"selector": {"bench-ready": str(index)}, "ports": [{"port": 80, "targetPort": 80}]}}, "default")
            cluster_ip = svc["spec"]["clusterIP"]
            events.setdefault(name, asyncio.Event())
            await client.create(pods_resource, {
                "apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "labels": {"bench-ready": str(index)}},
                "spec": {"terminationGracePeriodSeconds": 0,
                         "containers": [{"name": "web", "image": "pyk8s/whoami:1", "imagePullPolicy": "IfNotPresent"}]}},
                "default")
            await asyncio.wait_for(events[name].wait(), 120)
            await asyncio.wait_for(route_service_cidr(), 30)
            limit = time.monotonic() + 30
            service_at, pod_at = await asyncio.gather(_first_connect(lambda: cluster_ip, 80, limit),
                                                      _first_connect(lambda: pod_ips.get(name), 80, limit))
            through.append(service_at - ready_at[name])
            direct.append(pod_at - ready_at[name])

        try:
            batch = 4
            for first in range(0, samples, batch):
                await asyncio.gather(*(one(i) for i in range(first, min(samples, first + batch))))
        finally:
            watcher.cancel()
            await asyncio.gather(watcher, return_exceptions=True)
            subprocess.run(["ip", "route", "del", "10.43.0.0/16"], capture_output=True)

    def pct(values: list[float], fraction: float) -> float:
        ordered = sorted(values)
        return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))] * 1000
    return {"Ready -> reachable via ClusterIP, p50 (ms)": pct(through, 0.5),
            "Ready -> reachable via ClusterIP, p99 (ms)": pct(through, 0.99),
            "Ready -> reachable at the pod IP (baseline), p50 (ms)": pct(direct, 0.5),
            "Ready -> reachable at the pod IP (baseline), p99 (ms)": pct(direct, 0.99),
            "Ready -> reachable: samples (4 pods at a time)": len(through)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--services", type=int, default=1000)
    parser.add_argument("--endpoints", type=int, default=10)
    parser.add_argument("--connections", type=int, default=2000)
    parser.add_argument("--modes", default="iptables,nftables", help="proxy modes to measure, in order")
    parser.add_argument("--ready-samples", type=int, default=20,
                        help="pods measured for Ready -> reachable through their Service, per mode (0: skip)")
    args = parser.parse_args()
    from pyk8s.cluster.localcluster import in_isolated_network
    assert in_isolated_network() or os.environ.get("PYK8S_BENCH_NETNS"), "run as a script (it isolates itself)"
    iptables.set_sysctls()
    modes = [m for m in args.modes.split(",") if m]
    print(f"service proxy: {args.services} services x {args.endpoints} endpoints "
          f"(iptables backend {iptables.backend()}); each mode beside its baseline", flush=True)
    results: dict[str, dict] = {}
    try:
        for mode in modes:
            remove_rules()
            figures = bench_sync(mode, args.services, args.endpoints)
            figures.update(bench_connections(args.connections))
            results[mode] = figures
            report(mode, figures)
        remove_rules()
        for mode in modes if args.ready_samples else ():
            figures = ready_to_reachable(mode, args.ready_samples)
            report(mode, figures)
            results[mode].update(figures)
    finally:
        remove_rules()
    for mode, figures in results.items():
        full = figures["full sync at start (empty table)"]
        partial = figures["one endpoint removed: partial sync (median of 5)"]
        ratio = figures["ratio ClusterIP / direct"]
        line = (f"goals, --proxy-mode {mode}: full sync <= 1 s {'met' if full <= 1 else 'MISSED'}; one change <= 100 ms "
                f"{'met' if partial <= 0.1 else 'MISSED'}; ClusterIP/direct <= 1.1 {'met' if ratio <= 1.1 else 'MISSED'}")
        if "Ready -> reachable via ClusterIP, p99 (ms)" in figures:
            line += (f"; Ready -> reachable p99 <= 1 s "
                     f"{'met' if figures['Ready -> reachable via ClusterIP, p99 (ms)'] <= 1000 else 'MISSED'}")
        print(line)
    return 0


def report(mode: str, figures: dict) -> None:
    print(f"--proxy-mode {mode}")
    for name, value in figures.items():
        unit = " s" if isinstance(value, float) and not name.startswith(("ratio", "connect", "Ready")) else ""
        print(f"  {name:62} {value:10.3f}{unit}", flush=True)


if __name__ == "__main__":
    raise SystemExit(main())
