"""Scheduler benchmark: pods bound per second on hollow nodes.

Starts a real `pyk8s server` (API server, controllers and the scheduler in one process),
registers N hollow nodes (Node objects with a Ready condition and allocatable, plus their
Leases; no kubelet), creates M pods and measures, through a watch, the time from the first
create to the last pod bound. Goal: at least 300 pods bound/s with 100 nodes and 1000 pods.

    .venv/bin/python bench/scheduler.py                 # 100 nodes, 1000 pods
    .venv/bin/python bench/scheduler.py --nodes 500 --pods 3000

The whole run happens inside its own network namespace (only loopback), entered before
anything else starts; the server is a child process and is stopped on every exit path.
"""

from __future__ import annotations

if __name__ == "__main__":
    # Network safety: a private network namespace before any thread or event loop exists.
    from pyk8s.cluster.localcluster import isolate_network

    isolate_network()

import argparse
import asyncio
import os
import tempfile
import time
from collections import Counter
from pathlib import Path

from pyk8s.api import errors
from pyk8s.api.resources import lookup
from pyk8s.client import Client
from pyk8s.cluster.localcluster import LocalServer, in_isolated_network

GOAL_PODS_PER_SECOND = 300.0
NAMESPACE = "bench-scheduler"
LEASE_NAMESPACE = "kube-node-lease"

NAMESPACES = lookup("", "v1", "namespaces")
NODES = lookup("", "v1", "nodes")
PODS = lookup("", "v1", "pods")
LEASES = lookup("coordination.k8s.io", "v1", "leases")


def hollow_node(name: str) -> dict:
    allocatable = {"cpu": "32", "memory": "128Gi", "pods": "110", "ephemeral-storage": "100Gi"}
    now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    return {"apiVersion": "v1", "kind": "Node",
            "metadata": {"name": name, "labels": {"kubernetes.io/hostname": name, "kubernetes.io/os": "linux",
                                                  "pyk8s.io/hollow": "true"}},
            "spec": {},
            "status": {"capacity": allocatable, "allocatable": allocatable,
                       "conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady",
                                       "message": "hollow node", "lastHeartbeatTime": now,
                                       "lastTransitionTime": now}]}}


def node_lease(name: str) -> dict:
    now = time.strftime("%Y-%m-%dT%H:%M:%S.000000Z", time.gmtime())
    return {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
            "metadata": {"name": name, "namespace": LEASE_NAMESPACE},
            "spec": {"holderIdentity": name, "leaseDurationSeconds": 40, "renewTime": now}}


def bench_pod(name: str) -> dict:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "labels": {"app": "bench"}},
            "spec": {"containers": [{"name": "app", "image": "busybox",
                                     "resources": {"requests": {"cpu": "100m", "memory": "128Mi"}}}]}}


async def bounded(concurrency: int, jobs) -> None:
    slots = asyncio.Semaphore(concurrency)

    async def one(job):
        async with slots:
            await job

    await asyncio.gather(*(one(job) for job in jobs))


async def create_ignoring_exists(client: Client, resource, obj: dict, namespace: str | None = None) -> None:
    try:
        await client.create(resource, obj, namespace)
    except errors.AlreadyExists:
        pass


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process, from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def run(server: LocalServer, node_count: int, pod_count: int, concurrency: int) -> dict:
    async with Client.from_kubeconfig(server.kubeconfig) as client:
        for namespace in (NAMESPACE, LEASE_NAMESPACE):
            await create_ignoring_exists(client, NAMESPACES, {"apiVersion": "v1", "kind": "Namespace",
                                                              "metadata": {"name": namespace}})
        started = time.monotonic()
        names = [f"hollow-{index:04d}" for index in range(node_count)]
        await bounded(concurrency, (create_ignoring_exists(client, NODES, hollow_node(name)) for name in names))
        await bounded(concurrency, (create_ignoring_exists(client, LEASES, node_lease(name), LEASE_NAMESPACE)
                                    for name in names))
        nodes_seconds = time.monotonic() - started

        listed = await client.list(PODS, NAMESPACE)
        bound_at: dict[str, float] = {}
        placement: Counter = Counter()
        all_bound = asyncio.Event()

        async def watch_bindings() -> None:
            resource_version = listed["metadata"]["resourceVersion"]
            while not all_bound.is_set():
                async for event in client.watch(PODS, NAMESPACE, resource_version=resource_version,
                                                timeout_seconds=120):
                    obj = event["object"]
                    resource_version = obj["metadata"].get("resourceVersion", resource_version)
                    node = (obj.get("spec") or {}).get("nodeName")
                    name = obj["metadata"].get("name")
                    if event["type"] in ("ADDED", "MODIFIED") and node and name not in bound_at:
                        bound_at[name] = time.monotonic()
                        placement[node] += 1
                        if len(bound_at) >= pod_count:
                            all_bound.set()
                            return

        watcher = asyncio.create_task(watch_bindings())
        pod_names = [f"pod-{index:05d}" for index in range(pod_count)]
        server_cpu_before = cpu_seconds(server.process.pid)
        first_create = time.monotonic()
        await bounded(concurrency, (client.create(PODS, bench_pod(name), NAMESPACE) for name in pod_names))
        created = time.monotonic()
        try:
            await asyncio.wait_for(all_bound.wait(), timeout=max(60.0, pod_count / 10))
        finally:
            watcher.cancel()
            await asyncio.gather(watcher, return_exceptions=True)
        last_bound = max(bound_at.values())
        server_cpu = cpu_seconds(server.process.pid) - server_cpu_before
        bound_after_creates = sum(1 for at in bound_at.values() if at <= created)
        return {"server_cpu": server_cpu, "bound_after_creates": bound_after_creates, "nodes_seconds": nodes_seconds, "create_seconds": created - first_create,
                "bind_seconds": last_bound - first_create, "bound": len(bound_at), "placement": placement}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=int, default=100)
    parser.add_argument("--pods", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, default=32, help="client requests in flight")
    args = parser.parse_args()
    assert in_isolated_network(), "refusing to run outside a private network namespace"

    with tempfile.TemporaryDirectory(prefix="pyk8s-bench-scheduler-") as data_dir:
        server = LocalServer(Path(data_dir))
        server.start()
        try:
            figures = asyncio.run(run(server, args.nodes, args.pods, args.concurrency))
        except BaseException:
            print(server.log_tail())
            raise
        finally:
            server.stop()

    per_node = figures["placement"].values()
    rate = figures["bound"] / figures["bind_seconds"]
    print(f"hollow nodes registered: {args.nodes} in {figures['nodes_seconds']:.2f} s")
    print(f"pods created:            {args.pods} in {figures['create_seconds']:.2f} s "
          f"({args.pods / figures['create_seconds']:.0f}/s)")
    print(f"pods bound:              {figures['bound']} in {figures['bind_seconds']:.2f} s "
          f"(first create to last bound)")
    print(f"bound while creating:    {figures['bound_after_creates']} of {figures['bound']}")
    print(f"server process CPU:      {figures['server_cpu']:.1f} s over {figures['bind_seconds']:.1f} s "
          f"({figures['server_cpu'] / figures['bind_seconds'] * 100:.0f}% of one core; "
          f"{figures['server_cpu'] * 1000 / figures['bound']:.1f} ms per pod created and bound)")
    print(f"pods per node:           min {min(per_node)} max {max(per_node)} over {len(figures['placement'])} nodes")
    print(f"throughput:              {rate:.0f} pods bound/s; goal {GOAL_PODS_PER_SECOND:.0f}/s; "
          f"ratio {rate / GOAL_PODS_PER_SECOND:.2f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
