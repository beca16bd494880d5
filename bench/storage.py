"""Storage benchmark: dynamic provisioning to a running pod, and the PV binder's throughput.

- dynamic start: C times, a claim of the default class `local-path` (WaitForFirstConsumer)
  and a pod using it are created together; the clock runs from the claim's create to the
  pod's Running (scheduler picks the node, sets selected-node, the binder hands the claim to
  the node's provisioner, which makes the directory and the PV, the binder binds, the
  scheduler binds the pod, the kubelet mounts the directory and starts it). Alternated with
  plain pods (no volume) created the same way, one at a time. p50/p99. Goal: p50 with a
  dynamic claim <= 1.5x plain, measured in the same run.
- binder throughput (a second server, no node): N PersistentVolumes (no class, sizes
  varied) are created, then N claims at once (32 in flight); the clock runs from the first
  claim create to the last claim seen Bound on a watch. Goal: N = 1 000 all Bound <= 10 s.

    .venv/bin/python bench/storage.py                       # 20 claims, 1 000 PVs + claims
    .venv/bin/python bench/storage.py --claims 5 --binds 200

Runs in its own network namespace (loopback only), entered before anything else starts;
every pod and process it starts is removed on every exit path. Run it under the shared
cluster lock: `flock /tmp/pyk8s-cluster.lock .venv/bin/python bench/storage.py`.
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

from pod_startup import PODS, PodWatch, delete_pods, percentile
from config import wait_node

from pyk8s.api.resources import lookup
from pyk8s.client import Client
from pyk8s.cluster.localcluster import LocalServer, in_isolated_network

PVS = lookup("", "v1", "persistentvolumes")
PVCS = lookup("", "v1", "persistentvolumeclaims")
NAMESPACE = "default"
GOAL_START_RATIO = 1.5
GOAL_BIND_SECONDS = 10.0


def pod_body(name: str, claim: str | None = None) -> dict:
    container = {"name": "main", "image": "pyk8s/busybox:1.35", "imagePullPolicy": "IfNotPresent",
                 "command": ["sleep", "3600"]}
    spec: dict = {"terminationGracePeriodSeconds": 0, "containers": [container]}
    if claim:
        spec["volumes"] = [{"name": "data", "persistentVolumeClaim": {"claimName": claim}}]
        container["volumeMounts"] = [{"name": "data", "mountPath": "/data"}]
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name}, "spec": spec}


def claim_body(name: str, storage: str = "100Mi", storage_class: str | None = None) -> dict:
    spec: dict = {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": storage}}}
    if storage_class is not None:
        spec["storageClassName"] = storage_class
    return {"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": name}, "spec": spec}


def line(label: str, values: list[float]) -> str:
    return (f"{label:<46} p50 {percentile(values, 0.5) * 1000:7.0f} ms   p99 {percentile(values, 0.99) * 1000:7.0f} ms"
            f"   max {max(values) * 1000:7.0f} ms")


async def start_one(client: Client, watch: PodWatch, name: str, claim: str | None) -> float:
    watch.expect(name)
    started = time.monotonic()
    if claim:
        await client.create(PVCS, claim_body(claim), NAMESPACE)
    await client.create(PODS, pod_body(name, claim), NAMESPACE)
    return await asyncio.wait_for(watch.running[name], 300) - started


async def wait_claims_gone(client: Client, names: list[str]) -> None:
    deadline = time.monotonic() + 120
    while True:
        listed = {c["metadata"]["name"] for c in (await client.list(PVCS, NAMESPACE))["items"]}
        volumes = (await client.list(PVS))["items"]
        if not listed & set(names) and not volumes:
            return
        if time.monotonic() > deadline:
            raise TimeoutError("claims or volumes left behind")
        await asyncio.sleep(0.2)


async def measure_dynamic(server: LocalServer, claims: int) -> tuple[list[float], list[float]]:
    async with Client.from_kubeconfig(server.kubeconfig, field_manager="bench") as client:
        await wait_node(client)
        watch = PodWatch(client)
        resource_version = (await client.list(PODS, NAMESPACE))["metadata"]["resourceVersion"]
        watch.task = asyncio.create_task(watch.run(resource_version))
        try:
            await asyncio.sleep(2)
            await start_one(client, watch, "warmup", "warmup-data")  # informers, image, CNI
            await delete_pods(client, watch, ["warmup"])
            await client.delete(PVCS, "warmup-data", NAMESPACE)
            plain, dynamic, pods, claim_names = [], [], [], []
            for index in range(claims):
                for into, claim in ((plain, None), (dynamic, f"data-{index}")):
                    name = f"{'dyn' if claim else 'plain'}-{index}"
                    pods.append(name)
                    into.append(await start_one(client, watch, name, claim))
                    if claim:
                        claim_names.append(claim)
            await delete_pods(client, watch, pods)
            for claim in claim_names + ["warmup-data"]:
                try:
                    await client.delete(PVCS, claim, NAMESPACE)
                except Exception:  # noqa: BLE001 - already gone
                    pass
            await wait_claims_gone(client, claim_names)  # reclaim Delete removed every PV
        finally:
            watch.task.cancel()
            await asyncio.gather(watch.task, return_exceptions=True)
    return plain, dynamic


async def measure_binder(server: LocalServer, count: int) -> tuple[float, float, float]:
    async with Client.from_kubeconfig(server.kubeconfig, field_manager="bench") as client:
        slots = asyncio.Semaphore(32)

        async def create(resource, body, namespace=None):
            async with slots:
                await client.create(resource, body, namespace)

        sizes = ["50Mi", "100Mi", "1Gi", "5Gi"]
        started = time.monotonic()
        await asyncio.gather(*(create(PVS, {
            "apiVersion": "v1", "kind": "PersistentVolume", "metadata": {"name": f"bench-pv-{i:04d}"},
            "spec": {"capacity": {"storage": sizes[i % 4]}, "accessModes": ["ReadWriteOnce"], "storageClassName": "",
                     "hostPath": {"path": f"/tmp/bench-pv-{i}"}}}) for i in range(count)))
        volumes_created = time.monotonic() - started

        bound: set[str] = set()
        all_bound = asyncio.get_running_loop().create_future()
        resource_version = (await client.list(PVCS, NAMESPACE))["metadata"]["resourceVersion"]

        async def watch_claims():
            async for event in client.watch(PVCS, NAMESPACE, resource_version=resource_version):
                claim = event["object"]
                if (claim.get("status") or {}).get("phase") == "Bound":
                    bound.add(claim["metadata"]["name"])
                    if len(bound) >= count and not all_bound.done():
                        all_bound.set_result(time.monotonic())
        watcher = asyncio.create_task(watch_claims())
        try:
            await asyncio.sleep(0.5)
            started = time.monotonic()
            await asyncio.gather(*(create(PVCS, claim_body(f"bench-claim-{i:04d}", sizes[(i + 1) % 4], ""), NAMESPACE)
                                   for i in range(count)))
            claims_created = time.monotonic() - started
            finished = await asyncio.wait_for(all_bound, 300)
        finally:
            watcher.cancel()
            await asyncio.gather(watcher, return_exceptions=True)
        return volumes_created, claims_created, finished - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--claims", type=int, default=20, help="dynamic claims and plain pods started (default 20 each)")
    parser.add_argument("--binds", type=int, default=1000, help="PVs and claims for the binder (default 1000)")
    parser.add_argument("--keep", action="store_true", help="keep the temp dir (server logs)")
    args = parser.parse_args()
    if not in_isolated_network():
        print("refusing to run outside an isolated network namespace", file=sys.stderr)
        return 1
    work = Path(tempfile.mkdtemp(prefix="pyk8s-bench-storage-"))
    try:
        server = LocalServer(work / "cluster")
        try:
            server.start(timeout=120)
            plain, dynamic = asyncio.run(measure_dynamic(server, args.claims))
        finally:
            server.stop(timeout=60, remove_pods=True)
        server = LocalServer(work / "binder", extra_args=["--disable-agent"])
        try:
            server.start(timeout=120)
            volumes_created, claims_created, bind_seconds = asyncio.run(measure_binder(server, args.binds))
        finally:
            server.stop(timeout=60)
    finally:
        mounted = [line for line in Path("/proc/mounts").read_text().splitlines() if str(work) in line]
        if args.keep or mounted:
            print(f"kept {work}" + (f" ({len(mounted)} mounts still under it)" if mounted else ""), file=sys.stderr)
        else:
            shutil.rmtree(work, ignore_errors=True)

    ratio = percentile(dynamic, 0.5) / percentile(plain, 0.5)
    print("Storage on pyk8s (embedded node, containerd 1.6, runc), this machine: 2 cores")
    print(line(f"start, plain pod ({args.claims}x)", plain))
    print(line(f"claim + pod -> Running, local-path ({args.claims}x)", dynamic))
    print(f"binder: {args.binds} PVs created in {volumes_created:.2f} s; {args.binds} claims created in "
          f"{claims_created:.2f} s, all Bound {bind_seconds:.2f} s after the first create")
    print(f"goals: dynamic p50 = {ratio:.2f}x plain (goal <= {GOAL_START_RATIO:g}x: "
          f"{'met' if ratio <= GOAL_START_RATIO else 'MISSED'}); {args.binds} bound in {bind_seconds:.1f} s "
          f"(goal <= {GOAL_BIND_SECONDS:g} s: {'met' if bind_seconds <= GOAL_BIND_SECONDS else 'MISSED'})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
