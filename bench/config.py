"""ConfigMap volume benchmark: how fast a ConfigMap write shows inside running pods, and
what ConfigMap/Secret volumes add to pod start-up, through a real `pyk8s server` with its
embedded node.

- update latency: one pod mounts ConfigMap `bench-config`; the ConfigMap's value is
  rewritten U times (PATCH through the API, one after another) and each time the clock runs
  from just before the write until the new value is read *inside the pod* — through
  /proc/<pid>/root of the container's process, i.e. its own mount namespace and bind
  mount, polled every 2 ms. p50/p99. Goal: p99 <= 2 s (the book waits 120 s upstream).
- fan-out: N pods mount the same ConfigMap; per write, the time until every pod sees the
  new value (p50/p99 over the writes) and the per-pod latencies (p50/p99 over all).
- start-up: S pods with 5 volumes (3 ConfigMaps, 2 Secrets) and S pods with none, created
  alternately one at a time, create -> Running from one pod watch. Goal: p50 with volumes
  <= 1.2x p50 without, measured in the same run.

    .venv/bin/python bench/config.py                      # 50 updates, 100 pods, 10+10 starts
    .venv/bin/python bench/config.py --fanout 30 --updates 20

Runs in its own network namespace (loopback only), entered before anything else starts;
every pod and process it starts is removed on every exit path. Run it under the shared
cluster lock: `flock /tmp/pyk8s-cluster.lock .venv/bin/python bench/config.py`.
"""

from __future__ import annotations

if __name__ == "__main__":
    from pyk8s.cluster.localcluster import isolate_network

    isolate_network()

import argparse
import asyncio
import shutil
import sys
import tempfile
import time
from pathlib import Path

from pod_startup import NODES, PODS, PodWatch, delete_pods, percentile

from pyk8s.api.resources import lookup
from pyk8s.client import Client
from pyk8s.cluster.localcluster import LocalServer, in_isolated_network

CONFIGMAPS = lookup("", "v1", "configmaps")
SECRETS = lookup("", "v1", "secrets")
NAMESPACE = "default"
GOAL_UPDATE_P99 = 2.0
GOAL_START_RATIO = 1.2
POLL = 0.002


def pod_body(name: str, *, volumes: int = 0, mount_config: bool = False) -> dict:
    container = {"name": "main", "image": "pyk8s/busybox:1.35", "imagePullPolicy": "IfNotPresent",
                 "command": ["sleep", "3600"], "env": [{"name": "BENCH_POD", "value": name}], "volumeMounts": []}
    pod_volumes = []
    if mount_config:
        pod_volumes.append({"name": "config", "configMap": {"name": "bench-config"}})
        container["volumeMounts"].append({"name": "config", "mountPath": "/config"})
    for index in range(volumes):
        if index < 3:
            source = {"configMap": {"name": f"bench-start-{index}"}}
        else:
            source = {"secret": {"secretName": f"bench-start-{index}", "defaultMode": 0o400}}
        pod_volumes.append({"name": f"v{index}", **source})
        container["volumeMounts"].append({"name": f"v{index}", "mountPath": f"/v{index}"})
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "labels": {"bench": "config"}},
            "spec": {"terminationGracePeriodSeconds": 0, "containers": [container], "volumes": pod_volumes}}


def container_pids(names: set[str]) -> dict[str, int]:
    """pod name -> PID of its container's process, found by the BENCH_POD variable."""
    found: dict[str, int] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            environ = (entry / "environ").read_bytes().split(b"\0")
        except OSError:
            continue
        for variable in environ:
            if variable.startswith(b"BENCH_POD="):
                name = variable[len(b"BENCH_POD="):].decode()
                if name in names:
                    found[name] = int(entry.name)
    return found


def read_inside(pid: int, path: str) -> str | None:
    try:
        with open(f"/proc/{pid}/root{path}") as handle:
            return handle.read()
    except OSError:
        return None


async def wait_node(client: Client) -> None:
    deadline = time.monotonic() + 120
    while True:
        nodes = (await client.list(NODES))["items"]
        if any(c["type"] == "Ready" and c["status"] == "True"
               for n in nodes for c in (n.get("status") or {}).get("conditions") or []):
            return
        if time.monotonic() > deadline:
            raise TimeoutError("node not Ready")
        await asyncio.sleep(0.2)


async def start_pods(client: Client, watch: PodWatch, bodies: list[dict]) -> list[float]:
    async def one(body: dict) -> float:
        name = body["metadata"]["name"]
        watch.expect(name)
        started = time.monotonic()
        await client.create(PODS, body, NAMESPACE)
        return await asyncio.wait_for(watch.running[name], 300) - started
    return list(await asyncio.gather(*(one(body) for body in bodies)))


async def measure_updates(client: Client, pids: dict[str, int], updates: int, first_value: int) -> tuple[list[float], list[float]]:
    """Per write: time until every pod reads the new value; and every pod's own latency."""
    last_pod, per_pod = [], []
    for index in range(updates):
        value = f"value-{first_value + index}"
        started = time.monotonic()
        await client.patch(CONFIGMAPS, "bench-config", {"data": {"value": value}}, NAMESPACE)
        waiting = dict(pids)
        deadline = started + 30
        while waiting:
            now = time.monotonic()
            for name, pid in list(waiting.items()):
                if read_inside(pid, "/config/value") == value:
                    per_pod.append(now - started)
                    del waiting[name]
            if waiting:
                if now > deadline:
                    raise TimeoutError(f"{len(waiting)} pods never saw {value}")
                await asyncio.sleep(POLL)
        last_pod.append(time.monotonic() - started)
    return last_pod, per_pod


def line(label: str, values: list[float]) -> str:
    return (f"{label:<46} p50 {percentile(values, 0.5) * 1000:7.0f} ms   p99 {percentile(values, 0.99) * 1000:7.0f} ms"
            f"   max {max(values) * 1000:7.0f} ms")


async def measure(server: LocalServer, args: argparse.Namespace) -> None:
    async with Client.from_kubeconfig(server.kubeconfig, field_manager="bench") as client:
        await wait_node(client)
        await client.create(CONFIGMAPS, {"metadata": {"name": "bench-config"}, "data": {"value": "value-0"}}, NAMESPACE)
        for index in range(5):
            if index < 3:
                await client.create(CONFIGMAPS, {"metadata": {"name": f"bench-start-{index}"},
                                                 "data": {"a.json": "{}", "b.txt": "b" * 512}}, NAMESPACE)
            else:
                await client.create(SECRETS, {"metadata": {"name": f"bench-start-{index}"},
                                              "stringData": {"password": "p" * 32}}, NAMESPACE)
        watch = PodWatch(client)
        resource_version = (await client.list(PODS, NAMESPACE))["metadata"]["resourceVersion"]
        watch.task = asyncio.create_task(watch.run(resource_version))
        try:
            await asyncio.sleep(2)
            # warm-up: informers, image, CNI
            await start_pods(client, watch, [pod_body("warmup", volumes=5)])
            await delete_pods(client, watch, ["warmup"])

            # 1. start-up with and without volumes, alternating
            with_volumes, without = [], []
            names = []
            for index in range(args.starts):
                for volumes, into in ((0, without), (5, with_volumes)):
                    name = f"start-{volumes}-{index}"
                    names.append(name)
                    into.extend(await start_pods(client, watch, [pod_body(name, volumes=volumes)]))
            await delete_pods(client, watch, names)

            # 2. one pod, U updates
            await start_pods(client, watch, [pod_body("single", mount_config=True)])
            pids = container_pids({"single"})
            single, _ = await measure_updates(client, pids, args.updates, 1)
            await delete_pods(client, watch, ["single"])

            # 3. N pods on the same ConfigMap
            names = [f"fan-{i}" for i in range(args.fanout)]
            burst_started = time.monotonic()
            await start_pods(client, watch, [pod_body(name, mount_config=True) for name in names])
            burst = time.monotonic() - burst_started
            pids = container_pids(set(names))
            if len(pids) != len(names):
                raise RuntimeError(f"found {len(pids)} of {len(names)} container processes")
            fan_last, fan_each = await measure_updates(client, pids, args.fanout_updates, 1000)
            await delete_pods(client, watch, names)
        finally:
            watch.task.cancel()
            await asyncio.gather(watch.task, return_exceptions=True)

    ratio = percentile(with_volumes, 0.5) / percentile(without, 0.5)
    print(f"ConfigMap volumes on pyk8s (embedded node, containerd 1.6, runc), this machine: 2 cores")
    print(line(f"1 pod: ConfigMap write -> seen in pod ({args.updates}x)", single))
    print(line(f"{args.fanout} pods: write -> seen by all ({args.fanout_updates}x)", fan_last))
    print(line(f"{args.fanout} pods: write -> seen, per pod", fan_each))
    print(f"{'':<46} ({args.fanout} pods started in {burst:.1f} s)")
    print(line(f"start, no volumes ({args.starts}x)", without))
    print(line(f"start, 3 ConfigMap + 2 Secret volumes ({args.starts}x)", with_volumes))
    print(f"goals: update p99 <= {GOAL_UPDATE_P99:g} s: "
          f"{'met' if percentile(single, 0.99) <= GOAL_UPDATE_P99 else 'MISSED'} (1 pod), "
          f"{'met' if percentile(fan_last, 0.99) <= GOAL_UPDATE_P99 else 'MISSED'} ({args.fanout} pods); "
          f"start p50 with volumes = {ratio:.2f}x without (goal <= {GOAL_START_RATIO:g}x: "
          f"{'met' if ratio <= GOAL_START_RATIO else 'MISSED'})")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--updates", type=int, default=50, help="writes seen by one pod (default 50)")
    parser.add_argument("--fanout", type=int, default=100, help="pods mounting the same ConfigMap (default 100)")
    parser.add_argument("--fanout-updates", type=int, default=20, help="writes with the fan-out pods (default 20)")
    parser.add_argument("--starts", type=int, default=10, help="pods started with and without volumes (default 10 each)")
    parser.add_argument("--keep", action="store_true", help="keep the temp dir (server log)")
    args = parser.parse_args()
    if not in_isolated_network():
        print("refusing to run outside an isolated network namespace", file=sys.stderr)
        return 1
    work = Path(tempfile.mkdtemp(prefix="pyk8s-bench-config-"))
    server = LocalServer(work / "server")
    try:
        server.start(timeout=120)
        asyncio.run(measure(server, args))
    finally:
        server.stop(timeout=60, remove_pods=True)
        mounted = [line for line in Path("/proc/mounts").read_text().splitlines() if str(work) in line]
        if args.keep or mounted:
            print(f"kept {work}" + (f" ({len(mounted)} mounts still under it)" if mounted else ""), file=sys.stderr)
        else:
            shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
