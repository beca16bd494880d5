"""API server benchmark: creates/s, GET latency, LIST time, watch fan-out and memory.

Starts a real `pyk8s server` (SQLite, HTTPS, client certificates) and, for comparison, a
minimal aiohttp HTTPS server with the same certificates that answers fixed JSON (the
"HTTP floor"). Both are driven by the same load-generating code in this process, so every
pyk8s figure is printed next to the floor measured in the same run. See bench/README.md.

    .venv/bin/python bench/api.py            # default, about 2-3 minutes
    .venv/bin/python bench/api.py --quick    # smaller counts, under a minute
    .venv/bin/python bench/api.py --datastore etcd   # the same API on etcd beside SQLite, and
                                                     # raw etcd txn-creates/s with the store's client

The whole run happens inside its own network namespace (only loopback), created before
anything else starts; the servers are child processes and are stopped on every exit path.
"""

from __future__ import annotations

import sys

# Network safety: enter a private network namespace before any thread or event loop exists.
# The baseline server is our own child and already lives in that namespace: it must not
# unshare again (it would land in a fresh, unreachable namespace).
if __name__ == "__main__" and "--serve-baseline" not in sys.argv:
    from pyk8s.cluster.localcluster import isolate_network

    isolate_network()

import argparse
import asyncio
import os
import random
import signal
import ssl
import statistics
import subprocess
import tempfile
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Awaitable, Callable

import aiohttp
import orjson

CLK_TCK = os.sysconf("SC_CLK_TCK")
TABLE_ACCEPT = "application/json;as=Table;v=v1;g=meta.k8s.io"
BENCH_NAMESPACE = "bench"
WATCH_NAMESPACE = "bench-watch"


# ---------------------------------------------------------------- workload

def pod_manifest(name: str, namespace: str) -> dict[str, Any]:
    """A realistic pod (~1.5 KB of JSON): labels, annotations, one container with ports,
    env, resources and a probe, like what a Deployment stamps out."""
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "labels": {"app": "checkout", "tier": "backend", "release": "stable", "track": "canary",
                       "team": "payments", "app.kubernetes.io/version": "1.24.3"},
            "annotations": {"bench.pyk8s.io/owner": "payments-oncall@example.com",
                            "bench.pyk8s.io/revision": "7f3c2a91"},
        },
        "spec": {
            "containers": [{
                "name": "checkout",
                "image": "registry.local/payments/checkout:1.24.3",
                "imagePullPolicy": "IfNotPresent",
                "command": ["/bin/checkout"],
                "args": ["--listen=:8080", "--metrics=:9090", "--log-level=info"],
                "ports": [{"name": "http", "containerPort": 8080, "protocol": "TCP"},
                          {"name": "metrics", "containerPort": 9090, "protocol": "TCP"}],
                "env": [{"name": "DATABASE_URL", "value": "postgres://checkout@db.payments.svc:5432/checkout"},
                        {"name": "CACHE_URL", "value": "redis://cache.payments.svc:6379/0"},
                        {"name": "FEATURE_FLAGS", "value": "new-cart,fast-path,async-receipts"},
                        {"name": "OTEL_EXPORTER_OTLP_ENDPOINT", "value": "http://otel-collector.monitoring.svc:4317"},
                        {"name": "GOMAXPROCS", "value": "2"}],
                "resources": {"requests": {"cpu": "250m", "memory": "256Mi"},
                              "limits": {"cpu": "1", "memory": "512Mi"}},
                "readinessProbe": {"httpGet": {"path": "/healthz", "port": 8080},
                                   "initialDelaySeconds": 3, "periodSeconds": 5},
                "livenessProbe": {"httpGet": {"path": "/livez", "port": 8080},
                                  "initialDelaySeconds": 10, "periodSeconds": 10},
            }],
            "restartPolicy": "Always",
            "terminationGracePeriodSeconds": 30,
            "nodeSelector": {"kubernetes.io/os": "linux"},
        },
    }


def pods_path(namespace: str, name: str | None = None) -> str:
    path = f"/api/v1/namespaces/{namespace}/pods"
    return f"{path}/{name}" if name else path


# ---------------------------------------------------------------- process facts

def proc_status_kb(pid: int, field_name: str) -> int:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith(field_name + ":"):
                return int(line.split()[1])
    return 0


def rss_mb(pid: int) -> float:
    return proc_status_kb(pid, "VmRSS") / 1024


def hwm_mb(pid: int) -> float:
    return proc_status_kb(pid, "VmHWM") / 1024


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process (fields 14 and 15 of /proc/<pid>/stat)."""
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


class CpuMeter:
    """Server and benchmark-process CPU used over a phase, to see who was busy."""

    def __init__(self, pid: int):
        self.pid = pid

    def __enter__(self) -> "CpuMeter":
        self.server_start = cpu_seconds(self.pid)
        self.self_start = time.process_time()
        self.wall_start = time.perf_counter()
        return self

    def __exit__(self, *exc) -> None:
        self.wall = time.perf_counter() - self.wall_start
        self.server = cpu_seconds(self.pid) - self.server_start
        self.client = time.process_time() - self.self_start

    def describe(self) -> str:
        wall = max(self.wall, 1e-9)
        return f"cpu: server {self.server / wall:4.0%}, load generator {self.client / wall:4.0%} of one core"


class PhaseProfile:
    """With --py-spy, records the server's stacks during one phase into
    <dir>/<phase>.txt (collapsed "frame;frame;... count" lines, for flamegraph.pl or
    speedscope); otherwise does nothing."""

    py_spy: str | None = None
    directory: Path | None = None

    def __init__(self, pid: int, phase: str):
        self.pid = pid
        self.phase = phase
        self.process: subprocess.Popen | None = None

    def __enter__(self) -> "PhaseProfile":
        if self.py_spy and self.directory and self.pid:  # pid 0: not profiled (the floor)
            self.directory.mkdir(parents=True, exist_ok=True)
            self.process = subprocess.Popen(
                [self.py_spy, "record", "--pid", str(self.pid), "--format", "raw", "--rate", "250", "--nonblocking",
                 "--output", str(self.directory / f"{self.phase}.txt")],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL)
            time.sleep(0.3)  # let it attach
        return self

    def __exit__(self, *exc) -> None:
        if self.process is not None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


# ---------------------------------------------------------------- the HTTP floor

def serve_baseline(argv: list[str]) -> None:
    """A minimal aiohttp HTTPS server with pyk8s's certificates (client cert required):
    GET of a pod answers a fixed pod, GET of the collection a fixed list of --list-size
    pods, POST reads the body and answers 201 with a fixed pod."""
    from aiohttp import web

    parser = argparse.ArgumentParser()
    parser.add_argument("--serve-baseline", action="store_true")
    parser.add_argument("--tls-dir", required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--list-size", type=int, default=5000)
    args = parser.parse_args(argv)
    tls = Path(args.tls_dir)

    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(tls / "server.crt", tls / "server.key")
    context.load_verify_locations(cafile=str(tls / "ca.crt"))
    context.verify_mode = ssl.CERT_REQUIRED
    context.set_alpn_protocols(["http/1.1"])

    def stored(name: str, revision: int) -> dict[str, Any]:
        pod = pod_manifest(name, BENCH_NAMESPACE)
        pod["metadata"].update(uid="0b7e1f5c-3f0e-4f0b-9d76-6f1f3c1d2a4e", resourceVersion=str(revision),
                               creationTimestamp="2026-01-01T00:00:00Z")
        return pod

    pod_body = orjson.dumps(stored("checkout-0", 2))
    list_body = orjson.dumps({"kind": "PodList", "apiVersion": "v1", "metadata": {"resourceVersion": "9999"},
                              "items": [stored(f"checkout-{i}", i + 2) for i in range(args.list_size)]})

    async def handle(request: web.Request) -> web.Response:
        if request.transport is None or not request.transport.get_extra_info("peercert"):
            return web.Response(status=401)
        if request.path == "/readyz":
            return web.Response(text="ok")
        collection = request.path.rstrip("/").endswith("/pods")
        if request.method == "POST":
            await request.read()
            return web.Response(body=pod_body, status=201, content_type="application/json")
        return web.Response(body=list_body if collection else pod_body, content_type="application/json")

    app = web.Application(client_max_size=16 * 1024 * 1024)
    app.router.add_route("*", "/{tail:.*}", handle)
    web.run_app(app, host="127.0.0.1", port=args.port, ssl_context=context, access_log=None,
                print=None, backlog=1024, reuse_address=True)


class BaselineServer:
    def __init__(self, tls_dir: Path, list_size: int, log_path: Path):
        from pyk8s.cluster.localcluster import free_port

        self.tls_dir = tls_dir
        self.port = free_port()
        self.list_size = list_size
        self.log_path = log_path
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    def start(self, timeout: float = 30.0) -> "BaselineServer":
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, os.path.abspath(__file__), "--serve-baseline", "--tls-dir", str(self.tls_dir),
                 "--port", str(self.port), "--list-size", str(self.list_size)],
                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + timeout
        context = client_ssl_context(self.tls_dir)
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"baseline server exited with {self.process.returncode}: {self.log_path.read_text()}")
            try:
                with urllib.request.urlopen(f"{self.url}/readyz", context=context, timeout=2) as reply:
                    if reply.status == 200:
                        return self
            except OSError:
                time.sleep(0.05)
        raise TimeoutError("baseline server not ready")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None


def client_ssl_context(tls_dir: Path) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(tls_dir / "ca.crt"))
    context.load_cert_chain(str(tls_dir / "admin.crt"), str(tls_dir / "admin.key"))
    return context


# ---------------------------------------------------------------- load generation

@dataclass
class Row:
    figure: str
    value: str
    goal: str = ""
    passed: bool | None = None
    note: str = ""


@dataclass
class Report:
    rows: list[Row] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def add(self, *args, **kwargs) -> None:
        self.rows.append(Row(*args, **kwargs))

    def print(self) -> None:
        widths = [max(len(r.figure) for r in self.rows), max(len(r.value) for r in self.rows),
                  max(len(r.goal) for r in self.rows)]
        header = f"{'figure':<{widths[0]}}  {'measured':>{widths[1]}}  {'goal':<{widths[2]}}  result  vs floor / note"
        print()
        print(header)
        print("-" * len(header))
        for r in self.rows:
            verdict = "" if r.passed is None else ("PASS" if r.passed else "FAIL")
            print(f"{r.figure:<{widths[0]}}  {r.value:>{widths[1]}}  {r.goal:<{widths[2]}}  {verdict:<6}  {r.note}")
        for note in self.notes:
            print(f"* {note}")


def say(text: str) -> None:
    print(text, flush=True)


def percentile(sorted_values: list[float], fraction: float) -> float:
    if not sorted_values:
        return float("nan")
    index = min(len(sorted_values) - 1, max(0, int(round(fraction * len(sorted_values) + 0.5)) - 1))
    return sorted_values[index]


class Target:
    """One server under test, driven over HTTPS by one aiohttp session (the same code
    for pyk8s and the floor)."""

    def __init__(self, name: str, url: str, context: ssl.SSLContext):
        self.name = name
        self.url = url
        self.session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(ssl=context, limit=64),
            timeout=aiohttp.ClientTimeout(total=30))

    async def close(self) -> None:
        await self.session.close()

    async def create(self, namespace: str, name: str) -> None:
        body = orjson.dumps(pod_manifest(name, namespace))
        async with self.session.post(self.url + pods_path(namespace), data=body, params={"fieldManager": "bench"},
                                     headers={"Content-Type": "application/json", "Accept": "application/json"}) as reply:
            payload = await reply.read()
            if reply.status != 201:
                raise RuntimeError(f"create {name}: HTTP {reply.status} {payload[:200]!r}")
            orjson.loads(payload)

    async def get(self, namespace: str, name: str) -> None:
        async with self.session.get(self.url + pods_path(namespace, name), headers={"Accept": "application/json"}) as reply:
            payload = await reply.read()
            if reply.status != 200:
                raise RuntimeError(f"get {name}: HTTP {reply.status} {payload[:200]!r}")
            orjson.loads(payload)

    async def list(self, namespace: str, accept: str = "application/json") -> tuple[int, float, float]:
        """(items, ms until the whole body arrived, ms the client then spent parsing it)."""
        start = time.perf_counter()
        async with self.session.get(self.url + pods_path(namespace), headers={"Accept": accept}) as reply:
            payload = await reply.read()
            fetched = time.perf_counter()
            if reply.status != 200:
                raise RuntimeError(f"list: HTTP {reply.status} {payload[:200]!r}")
            document = orjson.loads(payload)
            parsed = time.perf_counter()
            return (len(document.get("items") or document.get("rows") or []),
                    (fetched - start) * 1000, (parsed - fetched) * 1000)


async def run_creates(target: Target, namespace: str, names: list[str], concurrency: int,
                      time_limit: float) -> tuple[int, float, int]:
    """Creates `names` from `concurrency` tasks; returns (created, seconds, errors)."""
    queue = iter(names)
    created = 0
    failures = 0
    deadline = time.perf_counter() + time_limit

    async def worker() -> None:
        nonlocal created, failures
        for name in queue:
            if time.perf_counter() > deadline:
                return
            try:
                await target.create(namespace, name)
                created += 1
            except Exception as exc:
                failures += 1
                if failures <= 3:
                    say(f"    create error: {exc}")

    start = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return created, time.perf_counter() - start, failures


async def open_loop(operation: Callable[[int], Awaitable[None]], rate: float, duration: float,
                    drain_limit: float = 30.0) -> tuple[list[float], int, int]:
    """Issues operation(i) at fixed times (i / rate) for `duration` seconds, whatever the
    server's speed, and measures each latency from its scheduled time (no coordinated
    omission). Returns (sorted latencies in ms, errors, requests not finished in time)."""
    loop = asyncio.get_running_loop()
    latencies: list[float] = []
    failures = 0
    count = int(rate * duration)
    tasks: list[asyncio.Task] = []

    async def one(i: int, scheduled: float) -> None:
        nonlocal failures
        try:
            await operation(i)
            latencies.append((loop.time() - scheduled) * 1000)
        except Exception:
            failures += 1

    start = loop.time() + 0.05
    for i in range(count):
        scheduled = start + i / rate
        delay = scheduled - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(loop.create_task(one(i, scheduled)))
    done, pending = await asyncio.wait(tasks, timeout=drain_limit)
    for task in pending:
        task.cancel()
    await asyncio.gather(*pending, return_exceptions=True)
    return sorted(latencies), failures, len(pending)


async def list_medians(operation: Callable[[], Awaitable[tuple[int, float, float]]],
                       repeats: int) -> tuple[float, float, int]:
    """Median time until a LIST's body has arrived (the server's work and the transfer),
    and median client-side parse time, reported apart: parsing is the client's cost."""
    fetches, parses, items = [], [], 0
    for _ in range(repeats):
        items, fetch_ms, parse_ms = await operation()
        fetches.append(fetch_ms)
        parses.append(parse_ms)
    return statistics.median(fetches), statistics.median(parses), items


async def watch_fan_out(url: str, context: ssl.SSLContext, writer: Target, watchers: int, writes: int,
                        resource_version: str, time_limit: float) -> dict[str, float]:
    """`watchers` concurrent watches on pods of WATCH_NAMESPACE from `resource_version`,
    then `writes` pod creates from 8 tasks; times until every watcher saw every event."""
    session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=context, limit=0),
                                    timeout=aiohttp.ClientTimeout(total=None, sock_read=None))
    connected = 0
    all_connected = asyncio.Event()
    received = [0] * watchers
    finished_at: list[float] = []
    everyone_done = asyncio.Event()
    params = {"watch": "true", "resourceVersion": resource_version, "allowWatchBookmarks": "true"}

    async def watcher(index: int) -> None:
        nonlocal connected
        async with session.get(url + pods_path(WATCH_NAMESPACE), params=params,
                               headers={"Accept": "application/json"}) as reply:
            if reply.status != 200:
                raise RuntimeError(f"watch: HTTP {reply.status}")
            connected += 1
            if connected == watchers:
                all_connected.set()
            async for line in reply.content:
                if not line.strip():
                    continue
                event = orjson.loads(line)
                if event["type"] in ("ADDED", "MODIFIED", "DELETED"):
                    received[index] += 1
                    if received[index] == writes:
                        finished_at.append(time.perf_counter())
                        if len(finished_at) == watchers:
                            everyone_done.set()
                        return
                elif event["type"] == "ERROR":
                    raise RuntimeError(f"watch error event: {event['object']}")

    tasks = [asyncio.create_task(watcher(i)) for i in range(watchers)]
    try:
        await asyncio.wait_for(all_connected.wait(), 30)
        start = time.perf_counter()
        names = [f"watched-{i:05d}" for i in range(writes)]
        created, write_seconds, failures = await run_creates(writer, WATCH_NAMESPACE, names, 8, time_limit)
        try:
            await asyncio.wait_for(everyone_done.wait(), max(1.0, time_limit - (time.perf_counter() - start)))
        except asyncio.TimeoutError:
            pass
        end = max(finished_at) if len(finished_at) == watchers else time.perf_counter()
        return {"seconds": end - start, "write_seconds": write_seconds, "created": created,
                "write_errors": failures, "complete": len(finished_at), "events": sum(received)}
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await session.close()


async def raw_store_creates(count: int, directory: Path) -> float:
    from pyk8s.storage.sqlite import SQLiteStore

    store = SQLiteStore(str(directory / "raw-store.db"), compact_interval=0)
    await store.start()
    try:
        value = orjson.dumps(pod_manifest("x", BENCH_NAMESPACE))
        start = time.perf_counter()
        for i in range(count):
            await store.create(f"/registry/pods/{BENCH_NAMESPACE}/raw-{i:06d}", value)
        return count / (time.perf_counter() - start)
    finally:
        await store.close()


def start_etcd(directory: Path) -> tuple[subprocess.Popen, str]:
    """One etcd member (Debian's etcd-server) on free loopback ports of the bench's private
    namespace, data under `directory` (the same disk as the SQLite file). Returns (process,
    the --datastore value)."""
    import socket

    def free_port() -> int:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            return probe.getsockname()[1]

    client, peer = free_port(), free_port()
    directory.mkdir(parents=True, exist_ok=True)
    log = open(directory / "etcd.log", "ab")
    process = subprocess.Popen(
        ["etcd", "--name", "bench", "--data-dir", str(directory / "data"),
         "--listen-client-urls", f"http://127.0.0.1:{client}", "--advertise-client-urls", f"http://127.0.0.1:{client}",
         "--listen-peer-urls", f"http://127.0.0.1:{peer}", "--initial-advertise-peer-urls", f"http://127.0.0.1:{peer}",
         "--initial-cluster", f"bench=http://127.0.0.1:{peer}", "--logger", "zap", "--log-level", "warn"],
        stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    log.close()
    deadline = time.monotonic() + 30
    while subprocess.run(["etcdctl", "--endpoints", f"127.0.0.1:{client}", "endpoint", "health"],
                         capture_output=True, env=dict(os.environ, ETCDCTL_API="3")).returncode != 0:
        if process.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError("etcd did not start: " + (directory / "etcd.log").read_text()[-2000:])
        time.sleep(0.05)
    return process, f"etcd://127.0.0.1:{client}"


async def raw_etcd_creates(datastore: str, count: int, concurrency: int) -> float:
    """Guarded creates (the store's Txn) straight to etcd with the store's own client."""
    from pyk8s.storage.etcd import EtcdStore

    store = EtcdStore(datastore, compact_interval=0)
    await store.start()
    try:
        value = orjson.dumps(pod_manifest("x", BENCH_NAMESPACE))
        keys = iter(range(count))

        async def worker() -> None:
            for i in keys:
                await store.create(f"/raw-bench/{concurrency}/{i:06d}", value)

        start = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        return count / (time.perf_counter() - start)
    finally:
        await store.close()


async def watch_latency(url: str, context: ssl.SSLContext, writer: Target, writes: int, rate: float,
                        prefix: str) -> tuple[list[float], int]:
    """One watch on WATCH_NAMESPACE; `writes` creates issued at `rate`/s; the latency of each
    event is from the create's scheduled time to the event's arrival (sorted ms, missing)."""
    session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=context, limit=0),
                                    timeout=aiohttp.ClientTimeout(total=None, sock_read=None))
    loop = asyncio.get_running_loop()
    scheduled_at: dict[str, float] = {}
    latencies: list[float] = []
    connected = asyncio.Event()
    done = asyncio.Event()

    async def watcher() -> None:
        async with session.get(url + pods_path(WATCH_NAMESPACE), params={"watch": "true"},
                               headers={"Accept": "application/json"}) as reply:
            connected.set()
            async for line in reply.content:
                if not line.strip():
                    continue
                event = orjson.loads(line)
                name = event["object"]["metadata"].get("name", "")
                if event["type"] == "ADDED" and name in scheduled_at:
                    latencies.append((loop.time() - scheduled_at[name]) * 1000)
                    if len(latencies) == writes:
                        done.set()
                        return

    task = loop.create_task(watcher())
    try:
        await asyncio.wait_for(connected.wait(), 30)
        await asyncio.sleep(0.2)

        async def create(i: int) -> None:
            name = f"{prefix}-{i:05d}"
            scheduled_at[name] = loop.time()
            await writer.create(WATCH_NAMESPACE, name)

        await open_loop(create, rate, writes / rate)
        try:
            await asyncio.wait_for(done.wait(), 10)
        except asyncio.TimeoutError:
            pass
        return sorted(latencies), writes - len(latencies)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await session.close()


async def floor_creates(plan: Plan, floor: BaselineServer) -> dict[int, float]:
    """Creates/s on the HTTP floor at each concurrency of the plan (the same client code)."""
    target = Target("floor", floor.url, client_ssl_context(floor.tls_dir))
    rates = {}
    try:
        for concurrency, count in zip(plan.concurrency, plan.creates_per_level):
            names = [f"floor-c{concurrency}-{i:05d}" for i in range(count)]
            created, seconds, _ = await run_creates(target, BENCH_NAMESPACE, names, concurrency, plan.phase_time_limit)
            rates[concurrency] = created / seconds
            say(f"[floor ] creates, {concurrency:>2} tasks: {created} in {seconds:5.2f}s = {created / seconds:7,.0f}/s")
    finally:
        await target.close()
    return rates


async def compare_datastores(plan: Plan, servers: dict[str, str], etcd_datastore: str, tls_dir: Path,
                             report: Report, pids: dict[str, int] | None = None,
                             floor: dict[int, float] | None = None) -> None:
    """The same API workload on each server (one per datastore), then raw etcd creates
    (with --py-spy, each server's create phases are recorded as <datastore>-creates-<n>).
    With `floor` (HTTP floor creates/s per concurrency), each ratio is printed beside what a
    server doing no work at all reaches: an API create is at least one HTTP exchange, and at
    one task it is that exchange and then an etcd txn, one after the other."""
    from pyk8s.api.resources import lookup
    from pyk8s.client import Client

    context = client_ssl_context(tls_dir)
    rates: dict[str, dict[int, float]] = {}
    for datastore, url in servers.items():
        target = Target(datastore, url, context)
        try:
            async with Client(url, context) as client:
                for namespace in (BENCH_NAMESPACE, WATCH_NAMESPACE):
                    await client.create(lookup("", "v1", "namespaces"),
                                        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}})
            rates[datastore] = {}
            created_names: list[str] = []
            for concurrency, count in zip(plan.concurrency, plan.creates_per_level):
                names = [f"checkout-c{concurrency}-{i:05d}" for i in range(count)]
                with PhaseProfile((pids or {}).get(datastore, 0), f"{datastore}-creates-{concurrency}"):
                    created, seconds, failures = await run_creates(target, BENCH_NAMESPACE, names, concurrency,
                                                                   plan.phase_time_limit)
                created_names += names[:created]
                rates[datastore][concurrency] = created / seconds
                say(f"[{datastore:<6}] creates, {concurrency:>2} tasks: {created} in {seconds:5.2f}s = "
                    f"{created / seconds:7,.0f}/s  errors {failures}")
                report.add(f"{datastore}: creates/s, {concurrency} concurrent", f"{created / seconds:,.0f}", "")
            pick = random.Random(7)

            async def get(_: int) -> None:
                await target.get(BENCH_NAMESPACE, pick.choice(created_names))

            values, failures, unfinished = await open_loop(get, plan.get_rate, plan.get_seconds)
            p50, p99 = percentile(values, 0.5), percentile(values, 0.99)
            say(f"[{datastore:<6}] GET at {plan.get_rate:.0f}/s: p50 {p50:.2f} ms  p99 {p99:.2f} ms  "
                f"errors {failures}  unfinished {unfinished}")
            report.add(f"{datastore}: GET p99 at {plan.get_rate:.0f} req/s (ms)", f"{p99:.2f}", "")
            latencies, missing = await watch_latency(url, context, target, plan.watch_writes // 2, 50.0, "lat")
            w50, w99 = percentile(latencies, 0.5), percentile(latencies, 0.99)
            say(f"[{datastore:<6}] watch latency, create -> event, 50 creates/s: p50 {w50:.1f} ms  p99 {w99:.1f} ms"
                f"  missing {missing}")
            report.add(f"{datastore}: watch latency p50 / p99 (ms)", f"{w50:.1f} / {w99:.1f}", "",
                       None if not missing else False, f"{missing} events missing" if missing else "")
        finally:
            await target.close()
    for concurrency in plan.concurrency if "etcd" in rates else ():
        raw = await raw_etcd_creates(etcd_datastore, plan.creates_per_level[-1], concurrency)
        api = rates["etcd"][concurrency]
        say(f"[raw   ] etcd txn-creates, {concurrency:>2} tasks, same client: {raw:7,.0f}/s; API on etcd = "
            f"{api / raw:.0%} of it")
        report.add(f"raw etcd txn-creates/s, {concurrency} concurrent", f"{raw:,.0f}", "")
        ceiling_note = ""
        if floor and concurrency in floor:
            # No API server can beat the floor; serially (one task) not even floor and txn in turn.
            ceiling = 1 / (1 / floor[concurrency] + 1 / raw) if concurrency == 1 else floor[concurrency]
            ceiling_note = (f"ceiling {ceiling / raw:.0%} of raw: " +
                            ("HTTP floor round trip + one raw txn, serially" if concurrency == 1 else
                             f"HTTP floor {floor[concurrency]:,.0f}/s"))
            say(f"[raw   ] {concurrency:>2} tasks: a server doing no work reaches at most {ceiling:7,.0f}/s = "
                f"{ceiling / raw:.0%} of raw ({ceiling_note.split(': ', 1)[1]}); the API reaches {api / ceiling:.0%} of that")
        report.add(f"API creates on etcd / raw, {concurrency} concurrent", f"{api / raw:.0%}", ">= 70%", api / raw >= 0.7,
                   ceiling_note)


# ---------------------------------------------------------------- the run

@dataclass
class Plan:
    concurrency: tuple[int, ...] = (1, 8, 32)
    creates_per_level: tuple[int, ...] = (1000, 2000, 2000)
    get_rate: float = 500.0
    get_seconds: float = 10.0
    list_size: int = 5000
    list_repeats: int = 5
    watchers: int = 100
    watch_writes: int = 1000
    raw_store_creates: int = 3000
    phase_time_limit: float = 60.0


QUICK = Plan(creates_per_level=(300, 600, 600), get_seconds=4.0, list_size=2000, list_repeats=3,
             watchers=50, watch_writes=300, raw_store_creates=1000, phase_time_limit=20.0)


def floor_note(value: float, floor: float, *, higher_is_better: bool) -> str:
    if not floor or value != value or floor != floor:
        return ""
    ratio = value / floor
    if higher_is_better:
        return f"= {ratio:.2f}x of the HTTP floor ({floor:,.0f})"
    return f"= {ratio:.1f}x the HTTP floor ({floor:,.1f} ms)"


async def run(plan: Plan, pyk8s_url: str, pyk8s_pid: int, floor: BaselineServer, tls_dir: Path,
              scratch: Path, report: Report) -> None:
    from pyk8s.api.resources import lookup
    from pyk8s.client import Client

    context = client_ssl_context(tls_dir)
    pyk8s = Target("pyk8s", pyk8s_url, context)
    baseline = Target("floor", floor.url, context)
    rss_after: dict[str, float] = {}
    try:
        async with Client(pyk8s_url, context) as client:
            namespaces = lookup("", "v1", "namespaces")
            for namespace in (BENCH_NAMESPACE, WATCH_NAMESPACE):
                await client.create(namespaces, {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}})

        # 0. raw store, for context (in this process, while both servers idle)
        store_rate = await raw_store_creates(plan.raw_store_creates, scratch)
        say(f"raw SQLiteStore.create, 1 task: {store_rate:,.0f} creates/s")

        # 1. creates/s at several concurrencies
        created_names: list[str] = []
        best_rate, best_floor = 0.0, 0.0
        for concurrency, count in zip(plan.concurrency, plan.creates_per_level):
            rates = {}
            for target in (pyk8s, baseline):
                names = [f"checkout-c{concurrency}-{i:05d}" for i in range(count)]
                with PhaseProfile(pyk8s_pid if target is pyk8s else 0, f"creates-{concurrency}"), \
                        CpuMeter(pyk8s_pid if target is pyk8s else floor.process.pid) as cpu:
                    created, seconds, failures = await run_creates(target, BENCH_NAMESPACE, names, concurrency,
                                                                   plan.phase_time_limit)
                rates[target.name] = created / seconds
                if target is pyk8s:
                    created_names += names[:created]
                say(f"creates, {concurrency:>2} tasks, {target.name:<5}: {created} in {seconds:5.2f}s = "
                    f"{rates[target.name]:7,.0f}/s  errors {failures}  ({cpu.describe()})")
            report.add(f"creates/s, {concurrency} concurrent", f"{rates['pyk8s']:,.0f}", "",
                       note=floor_note(rates["pyk8s"], rates["floor"], higher_is_better=True))
            if rates["pyk8s"] > best_rate:
                best_rate, best_floor = rates["pyk8s"], rates["floor"]
        report.add("creates/s, best of the above", f"{best_rate:,.0f}", ">= 1000", best_rate >= 1000,
                   floor_note(best_rate, best_floor, higher_is_better=True))
        report.add("raw SQLiteStore creates/s (1 task)", f"{store_rate:,.0f}", "", None, "context: storage ceiling")
        rss_after["creates"] = rss_mb(pyk8s_pid)

        # Top up to the LIST size.
        if len(created_names) < plan.list_size:
            names = [f"checkout-fill-{i:05d}" for i in range(plan.list_size - len(created_names))]
            created, seconds, failures = await run_creates(pyk8s, BENCH_NAMESPACE, names, 16, plan.phase_time_limit)
            created_names += names[:created]
            say(f"top-up to {plan.list_size} pods: {created} in {seconds:.1f}s")

        # 2. GET latency, open loop at a fixed rate
        latencies: dict[str, tuple[float, float]] = {}
        for target in (pyk8s, baseline):
            pick = random.Random(7)

            async def get(_: int, target=target) -> None:
                await target.get(BENCH_NAMESPACE, pick.choice(created_names))

            with PhaseProfile(pyk8s_pid if target is pyk8s else 0, "get"), \
                    CpuMeter(pyk8s_pid if target is pyk8s else floor.process.pid) as cpu:
                values, failures, unfinished = await open_loop(get, plan.get_rate, plan.get_seconds)
            p50, p99 = percentile(values, 0.50), percentile(values, 0.99)
            latencies[target.name] = (p50, p99)
            say(f"GET at {plan.get_rate:.0f}/s for {plan.get_seconds:.0f}s, {target.name:<5}: {len(values)} ok, "
                f"p50 {p50:6.2f} ms  p90 {percentile(values, 0.9):6.2f} ms  p99 {p99:6.2f} ms  "
                f"max {values[-1] if values else float('nan'):6.1f} ms  errors {failures}  unfinished {unfinished}  "
                f"({cpu.describe()})")
        (p50, p99), (floor50, floor99) = latencies["pyk8s"], latencies["floor"]
        report.add(f"GET p50 at {plan.get_rate:.0f} req/s (ms)", f"{p50:.2f}", "", None,
                   floor_note(p50, floor50, higher_is_better=False))
        report.add(f"GET p99 at {plan.get_rate:.0f} req/s (ms)", f"{p99:.2f}", "<= 20 ms", p99 <= 20,
                   floor_note(p99, floor99, higher_is_better=False))
        rss_after["get"] = rss_mb(pyk8s_pid)

        # 3. LIST of all pods: full JSON objects, and the Table kubectl get asks for
        with PhaseProfile(pyk8s_pid, "list-json"):
            list_json, parse_json, items = await list_medians(lambda: pyk8s.list(BENCH_NAMESPACE), plan.list_repeats)
        say(f"LIST {items} pods JSON, pyk8s: median {list_json:.0f} ms to receive (+{parse_json:.0f} ms client parse)")
        with PhaseProfile(pyk8s_pid, "list-table"):
            list_table, parse_table, rows = await list_medians(lambda: pyk8s.list(BENCH_NAMESPACE, TABLE_ACCEPT),
                                                               plan.list_repeats)
        say(f"LIST {rows} pods Table, pyk8s: median {list_table:.0f} ms to receive (+{parse_table:.0f} ms client parse)")
        list_floor, parse_floor, floor_items = await list_medians(lambda: baseline.list(BENCH_NAMESPACE), plan.list_repeats)
        say(f"LIST {floor_items} pods JSON, floor: median {list_floor:.0f} ms to receive "
            f"(+{parse_floor:.0f} ms client parse; fixed pre-encoded body)")
        report.add(f"LIST {items} pods, JSON (ms, median of {plan.list_repeats})", f"{list_json:.0f}", "<= 300 ms",
                   list_json <= 300, floor_note(list_json, list_floor, higher_is_better=False))
        report.add(f"LIST {rows} pods, Table (ms, median of {plan.list_repeats})", f"{list_table:.0f}", "<= 300 ms",
                   list_table <= 300, floor_note(list_table, list_floor, higher_is_better=False))
        rss_after["list"] = rss_mb(pyk8s_pid)

        # 4. Watch fan-out
        async with Client(pyk8s_url, context) as client:
            pods = lookup("", "v1", "pods")
            resource_version = (await client.list(pods, WATCH_NAMESPACE, limit=1))["metadata"]["resourceVersion"]
        with PhaseProfile(pyk8s_pid, "watch"), CpuMeter(pyk8s_pid) as cpu:
            result = await watch_fan_out(pyk8s_url, context, pyk8s, plan.watchers, plan.watch_writes,
                                         resource_version, plan.phase_time_limit)
        expected = plan.watchers * plan.watch_writes
        delivered_rate = result["events"] / result["seconds"]
        say(f"watch fan-out: {plan.watchers} watchers x {plan.watch_writes} writes: "
            f"{result['events']:.0f}/{expected} events in {result['seconds']:.2f}s = {delivered_rate:,.0f} events/s; "
            f"writes took {result['write_seconds']:.2f}s ({result['created'] / result['write_seconds']:,.0f}/s), "
            f"write errors {result['write_errors']:.0f}, watchers complete {result['complete']:.0f}  ({cpu.describe()})")
        complete = result["complete"] == plan.watchers
        report.add(f"watch: {plan.watchers} watchers x {plan.watch_writes} writes, all delivered (s)",
                   f"{result['seconds']:.2f}", "all delivered", complete,
                   f"writes alone took {result['write_seconds']:.2f}s")
        report.add("watch: events delivered/s", f"{delivered_rate:,.0f}", "", None)
        rss_after["watch"] = rss_mb(pyk8s_pid)
        say("server RSS after each phase (MB): " + ", ".join(f"{k} {v:.0f}" for k, v in rss_after.items()))
    finally:
        await pyk8s.close()
        await baseline.close()


# ---------------------------------------------------------------- authorization on vs off

async def authorization_world(url: str, tls_dir: Path, scratch: Path, label: str) -> Target:
    """500 Roles and 500 RoleBindings (50 namespaces, 10 users each) plus a user `bench-user`
    allowed to create and get pods in BENCH_NAMESPACE by one of them; returns a Target
    acting as that user, whose every request RBAC decides (the admin, in system:masters, is
    allowed before RBAC is asked)."""
    from pyk8s.api.resources import lookup
    from pyk8s.client import Client
    from pyk8s.cluster.pki import Pki, issue_client_cert

    rbac = "rbac.authorization.k8s.io"
    roles, bindings, namespaces = lookup(rbac, "v1", "roles"), lookup(rbac, "v1", "rolebindings"), lookup("", "v1", "namespaces")
    async with Client(url, client_ssl_context(tls_dir)) as client:
        for index in range(50):
            await client.create(namespaces, {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": f"rbac-{index}"}})
        await client.create(namespaces, {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": BENCH_NAMESPACE}})

        async def make(index: int) -> None:
            namespace = f"rbac-{index % 50}"
            await client.create(roles, {"apiVersion": f"{rbac}/v1", "kind": "Role",
                                        "metadata": {"name": f"role-{index}", "namespace": namespace},
                                        "rules": [{"apiGroups": [""], "resources": ["configmaps", "secrets"],
                                                   "verbs": ["get", "list"]},
                                                  {"apiGroups": ["apps"], "resources": ["deployments"], "verbs": ["get"]}]})
            await client.create(bindings, {"apiVersion": f"{rbac}/v1", "kind": "RoleBinding",
                                           "metadata": {"name": f"binding-{index}", "namespace": namespace},
                                           "roleRef": {"apiGroup": rbac, "kind": "Role", "name": f"role-{index}"},
                                           "subjects": [{"kind": "User", "name": f"user-{index % 10}"},
                                                        {"kind": "Group", "name": f"group-{index % 7}"}]})
        for start in range(0, 500, 50):
            await asyncio.gather(*(make(i) for i in range(start, start + 50)))
        await client.create(roles, {"apiVersion": f"{rbac}/v1", "kind": "Role",
                                    "metadata": {"name": "pod-writer", "namespace": BENCH_NAMESPACE},
                                    "rules": [{"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "create"]}]})
        await client.create(bindings, {"apiVersion": f"{rbac}/v1", "kind": "RoleBinding",
                                       "metadata": {"name": "bench-user", "namespace": BENCH_NAMESPACE},
                                       "roleRef": {"apiGroup": rbac, "kind": "Role", "name": "pod-writer"},
                                       "subjects": [{"kind": "User", "name": "bench-user"}]})
    pki = Pki(ca_cert=tls_dir / "ca.crt", ca_key=tls_dir / "ca.key", server_cert=tls_dir / "server.crt",
              server_key=tls_dir / "server.key", admin_cert=tls_dir / "admin.crt", admin_key=tls_dir / "admin.key")
    cert, key = issue_client_cert(pki, "bench-user", ["group-3"], scratch / f"user-{label}")
    context = ssl.create_default_context(cafile=str(tls_dir / "ca.crt"))
    context.load_cert_chain(str(cert), str(key))
    await asyncio.sleep(0.5)  # the authorizer's index follows the store's watch
    return Target(label, url, context)


async def authorization_round(user: Target, round_number: int, plan: Plan) -> tuple[float, float, float]:
    """Creates/s (16 tasks) of fresh pods, then GETs of them at a fixed rate: (creates/s,
    GET p50 ms, GET p99 ms)."""
    names = [f"authz-{round_number}-{i:05d}" for i in range(plan.creates_per_level[-1])]
    created, seconds, failures = await run_creates(user, BENCH_NAMESPACE, names, 16, plan.phase_time_limit)
    pick = random.Random(7)

    async def get(_: int) -> None:
        await user.get(BENCH_NAMESPACE, pick.choice(names[:created]))

    values, get_failures, _ = await open_loop(get, plan.get_rate, plan.get_seconds)
    rate, p50, p99 = created / seconds, percentile(values, 0.5), percentile(values, 0.99)
    say(f"  round {round_number} {user.name:<12}: creates {rate:7,.0f}/s (16 tasks, errors {failures}); GET at "
        f"{plan.get_rate:.0f}/s p50 {p50:5.2f} ms p99 {p99:6.2f} ms (errors {get_failures})")
    return rate, p50, p99


def authorizer_cost_in_process(requests: int = 50_000) -> tuple[float, float]:
    """(µs per request to parse the request's attributes, µs to parse and decide) for GETs
    of pods by `bench-user`, against the chain the server runs (system:masters, Node, RBAC)
    holding the bootstrap policy plus the 500 Roles and 500 RoleBindings of the phase above:
    the authorizer's own cost, without the network noise of the end-to-end figures."""
    from pyk8s.api import rbac
    from pyk8s.apiserver import authz, bootstrappolicy
    from pyk8s.apiserver.nodeauthorizer import NodeAuthorizer, NodeGraph

    index = authz.RBACIndex()
    prefix = authz.RBAC_PREFIX
    for role in bootstrappolicy.cluster_roles():
        index.apply(f"{prefix}clusterroles/{role['metadata']['name']}", orjson.dumps(role))
    for binding in bootstrappolicy.cluster_role_bindings():
        index.apply(f"{prefix}clusterrolebindings/{binding['metadata']['name']}", orjson.dumps(binding))
    for i in range(500):
        namespace = f"rbac-{i % 50}"
        index.apply(f"{prefix}roles/{namespace}/role-{i}", orjson.dumps({"rules": [
            {"apiGroups": [""], "resources": ["configmaps", "secrets"], "verbs": ["get", "list"]},
            {"apiGroups": ["apps"], "resources": ["deployments"], "verbs": ["get"]}]}))
        index.apply(f"{prefix}rolebindings/{namespace}/binding-{i}", orjson.dumps({
            "roleRef": {"kind": "Role", "name": f"role-{i}"},
            "subjects": [{"kind": "User", "name": f"user-{i % 10}"}, {"kind": "Group", "name": f"group-{i % 7}"}]}))
    index.apply(f"{prefix}roles/{BENCH_NAMESPACE}/pod-writer", orjson.dumps(
        {"rules": [{"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "create"]}]}))
    index.apply(f"{prefix}rolebindings/{BENCH_NAMESPACE}/bench-user", orjson.dumps(
        {"roleRef": {"kind": "Role", "name": "pod-writer"}, "subjects": [{"kind": "User", "name": "bench-user"}]}))
    chain = authz.AuthorizerChain([authz.PrivilegedGroups(), NodeAuthorizer(NodeGraph()), authz.RBACAuthorizer(index)])
    user = rbac.User("bench-user", ("group-3", "system:authenticated"))
    pick = random.Random(7)
    paths = [f"/api/v1/namespaces/{BENCH_NAMESPACE}/pods/authz-{pick.randrange(5000):05d}" for _ in range(requests)]
    started = time.perf_counter()
    for path in paths:
        rbac.request_attributes(user, "GET", path, {})
    parse = time.perf_counter() - started
    started = time.perf_counter()
    for path in paths:
        if chain.authorize(rbac.request_attributes(user, "GET", path, {}))[0] != authz.ALLOW:
            raise AssertionError(f"bench-user refused {path}")
    decide = time.perf_counter() - started
    return parse / requests * 1e6, decide / requests * 1e6


def authorization_comparison(plan: Plan, rounds: int = 4) -> int:
    """The same workload against a server with --authorization-mode RBAC and one with
    AlwaysAllow, both running for the whole comparison and measured in alternating rounds
    (AB, BA, AB, ...), so that the shared machine's load drifts over both alike; the figures
    are the medians of the rounds and the median of the per-round ratios."""
    from pyk8s.cluster.localcluster import LocalServer
    import shutil

    modes = ("AlwaysAllow", "RBAC")
    scratch = {mode: Path(tempfile.mkdtemp(prefix=f"pyk8s-bench-authz-{mode.lower()}-")) for mode in modes}
    servers = {mode: LocalServer(scratch[mode] / "data", extra_args=[
        "--disable-agent", "--disable-controllers", "--authorization-mode", mode]) for mode in modes}

    async def compare() -> dict[str, list[tuple[float, float, float]]]:
        users = {mode: await authorization_world(servers[mode].url, servers[mode].data_dir / "server" / "tls",
                                                  scratch[mode], mode) for mode in modes}
        results: dict[str, list[tuple[float, float, float]]] = {mode: [] for mode in modes}
        try:
            for round_number in range(rounds):
                order = modes if round_number % 2 == 0 else modes[::-1]
                for mode in order:
                    results[mode].append(await authorization_round(users[mode], round_number, plan))
        finally:
            for user in users.values():
                await user.close()
        return results

    try:
        for server in servers.values():
            server.start()
        results = asyncio.run(compare())
    finally:
        for mode in modes:
            servers[mode].stop(timeout=60)
            shutil.rmtree(scratch[mode], ignore_errors=True)
    off, on = results["AlwaysAllow"], results["RBAC"]
    rate_ratio = statistics.median(b[0] / a[0] for a, b in zip(off, on))
    p99_ratio = statistics.median(b[2] / a[2] for a, b in zip(off, on))
    say(f"\n500 Roles + 500 RoleBindings, medians of {rounds} alternating rounds: creates/s "
        f"{statistics.median(r[0] for r in on):,.0f} with RBAC vs {statistics.median(r[0] for r in off):,.0f} without "
        f"(per-round ratio median {(rate_ratio - 1) * 100:+.1f} % creates/s); GET p99 "
        f"{statistics.median(r[2] for r in on):.2f} ms vs {statistics.median(r[2] for r in off):.2f} ms "
        f"(per-round ratio median {(p99_ratio - 1) * 100:+.1f} % p99)")
    parse_us, decide_us = authorizer_cost_in_process()
    say(f"authorizer in process (same world, GET pods as bench-user): {decide_us:.2f} µs per request to parse and "
        f"decide vs {parse_us:.2f} µs to parse only: {decide_us - parse_us:.2f} µs is the decision")
    return 0


def main() -> int:
    if "--serve-baseline" in sys.argv:
        serve_baseline(sys.argv[1:])
        return 0
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="smaller counts, finishes in under a minute")
    parser.add_argument("--authorization", action="store_true",
                        help="only compare --authorization-mode RBAC with AlwaysAllow (500 Roles, 500 bindings; both servers up, alternating rounds)")
    parser.add_argument("--keep", action="store_true", help="keep the data dir (server log) for inspection")
    parser.add_argument("--full", action="store_true",
                        help="run the whole control plane (controllers, scheduler, embedded node) instead of "
                             "the API server alone; the benchmark's pods are then scheduled and started")
    parser.add_argument("--py-spy", metavar="PY_SPY", help="path to a py-spy binary: record the server per phase")
    parser.add_argument("--profile-dir", type=Path, default=Path("bench-profile"),
                        help="where --py-spy writes <phase>.txt collapsed stacks (default ./bench-profile)")
    parser.add_argument("--datastore", choices=["sqlite", "etcd"], default="sqlite",
                        help="etcd: run the creates/GET/watch-latency phases on a server on etcd (Debian's etcd, "
                             "one member started here) beside the same on SQLite, plus raw etcd txn-creates/s")
    args = parser.parse_args()
    if args.py_spy:
        PhaseProfile.py_spy, PhaseProfile.directory = args.py_spy, args.profile_dir.resolve()
    plan = QUICK if args.quick else Plan()
    if args.authorization:
        return authorization_comparison(plan)

    from pyk8s.cluster.localcluster import LocalServer, in_isolated_network

    assert in_isolated_network(), "refusing to run outside a private network namespace"
    scratch = Path(tempfile.mkdtemp(prefix="pyk8s-bench-"))
    if args.datastore == "etcd":
        return main_datastores(plan, scratch, args.keep)
    # The figures are the API server's (kube-apiserver's job): by default nothing else runs
    # in the server process, so no controller, scheduler or kubelet reacts to the pods.
    server = LocalServer(scratch / "data", extra_args=[] if args.full else ["--disable-agent", "--disable-controllers"])
    floor: BaselineServer | None = None
    report = Report()
    started = time.perf_counter()
    try:
        say(f"pyk8s API benchmark ({'quick' if args.quick else 'default'}), {os.cpu_count()} CPUs; "
            f"the load generator runs in this process and shares the CPUs with the server")
        server.start()
        pid = server.process.pid
        time.sleep(1.0)
        idle = rss_mb(pid)
        say(f"pyk8s server pid {pid} ready at {server.url}; idle RSS {idle:.1f} MB")
        tls_dir = server.data_dir / "server" / "tls"
        floor = BaselineServer(tls_dir, plan.list_size, scratch / "floor.log").start()
        say(f"HTTP floor (minimal aiohttp, same TLS, client cert required) pid {floor.process.pid} at {floor.url}")
        report.add("server RSS idle (MB)", f"{idle:.1f}", "<= 80 MB", idle <= 80)

        asyncio.run(run(plan, server.url, pid, floor, tls_dir, scratch, report))

        peak = hwm_mb(pid)
        report.add("server RSS peak under load (MB, VmHWM)", f"{peak:.1f}", "", None,
                   f"floor process peak {hwm_mb(floor.process.pid):.1f} MB")
        report.notes.append("2 cores shared: the load generator (TLS, JSON parsing, 100 watch streams) runs in the "
                            "benchmark process next to the server, so figures are lower than with a separate client host.")
        report.notes.append("HTTP floor = minimal aiohttp HTTPS server with the same certificates and client-cert TLS "
                            "answering pre-encoded JSON; ratios show pyk8s's cost above plain HTTP+TLS in Python.")
        report.print()
        say(f"\nfinished in {time.perf_counter() - started:.0f}s")
        return 0
    except BaseException:
        say(f"\n--- pyk8s server log tail ---\n{server.log_tail()}")
        raise
    finally:
        if floor is not None:
            floor.stop()
        server.stop(timeout=60, remove_pods=True)
        if not args.keep:
            import shutil

            shutil.rmtree(scratch, ignore_errors=True)
        else:
            say(f"data kept in {scratch}")


def main_datastores(plan: Plan, scratch: Path, keep: bool) -> int:
    """`--datastore etcd`: a server on SQLite and one on etcd, the same phases on both."""
    from pyk8s.cluster.localcluster import LocalServer

    etcd_process, etcd_datastore = start_etcd(scratch / "etcd")
    servers = {"sqlite": LocalServer(scratch / "sqlite", extra_args=["--disable-agent", "--disable-controllers"]),
               "etcd": LocalServer(scratch / "etcd-server", extra_args=["--disable-agent", "--disable-controllers",
                                                                         "--datastore", etcd_datastore])}
    report = Report()
    started = time.perf_counter()
    try:
        say(f"pyk8s API on etcd beside SQLite ({'quick' if plan is QUICK else 'default'}), {os.cpu_count()} CPUs; "
            f"etcd {etcd_datastore} (one member, data on the same disk as the SQLite file)")
        for server in servers.values():
            server.start(timeout=60)
        floor = BaselineServer(servers["etcd"].data_dir / "server" / "tls", 10, scratch / "floor.log").start()
        try:
            floor_rates = asyncio.run(floor_creates(plan, floor))
        finally:
            floor.stop()
        # One CA per data dir: the client certificate of the first server's dir is trusted by
        # neither of the other, so each server is driven with its own.
        for name, server in servers.items():
            asyncio.run(compare_datastores(plan, {name: server.url}, etcd_datastore,
                                           server.data_dir / "server" / "tls", report, {name: server.process.pid})
                        if name == "sqlite" else _etcd_phase(plan, server, etcd_datastore, report, floor_rates))
        report.notes.append("raw = EtcdStore.create (one guarded Txn per create) from this process, the client the "
                            "API server uses; the API figure includes HTTPS, admission, validation and encoding.")
        report.print()
        say(f"\nfinished in {time.perf_counter() - started:.0f}s")
        return 0
    except BaseException:
        for name, server in servers.items():
            say(f"\n--- {name} server log tail ---\n{server.log_tail()}")
        raise
    finally:
        for server in servers.values():
            server.stop(timeout=60)
        etcd_process.kill()
        etcd_process.wait()
        if not keep:
            import shutil

            shutil.rmtree(scratch, ignore_errors=True)


async def _etcd_phase(plan: Plan, server, etcd_datastore: str, report: Report, floor: dict[int, float]) -> None:
    await compare_datastores(plan, {"etcd": server.url}, etcd_datastore, server.data_dir / "server" / "tls", report,
                             {"etcd": server.process.pid}, floor)


if __name__ == "__main__":
    sys.exit(main())
