"""Multi-node behaviour on hollow nodes: Node objects and their Leases that the test keeps
alive itself, with no kubelet and no container.

The server's scheduler binds pods to the hollow nodes and its controllers act on them; the
test stands in for the kubelets by renewing each node's Lease in kube-node-lease and by
marking bound pods Running and Ready through the status subresource. Checked: a Deployment
spreads evenly across the nodes, a DaemonSet runs one pod per node (and follows a new node),
and a node whose Lease stops renewing goes Unknown, is tainted, loses its pods after their
toleration and the Deployment's replacements land on the nodes that remain.

The server's node-lifecycle controller waits upstream's 40 s (--node-monitor-grace-period,
which `pyk8s server` does not expose), so the node-loss test runs a second node-lifecycle
controller in-process with a 2 s grace period, as test_lifecycle_controllers.py does; the
server's own one would only act after the test is over.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections import Counter
from functools import partial

from pyk8s.api import errors
from pyk8s.api.resources import lookup
from pyk8s.client import Client

from conftest import eventually_async

PODS = lookup("", "v1", "pods")
NODES = lookup("", "v1", "nodes")
LEASES = lookup("coordination.k8s.io", "v1", "leases")
DEPLOYMENTS = lookup("apps", "v1", "deployments")
DAEMONSETS = lookup("apps", "v1", "daemonsets")
LEASE_NAMESPACE = "kube-node-lease"
NAMESPACE = "default"
DEADLINE = 15.0
LEASE_RENEW_INTERVAL = 0.3


def run(server, scenario):
    async def main():
        async with Client.from_kubeconfig(server.kubeconfig) as client:
            await scenario(client)
    asyncio.run(main())


# Every wait here: up to DEADLINE seconds, polled every 50 ms.
eventually = partial(eventually_async, timeout=DEADLINE, interval=0.05)


def unique(prefix: str) -> str:
    return f"{prefix}-{os.urandom(3).hex()}"


def rfc3339_micro() -> str:
    now = time.time()
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now)) + f".{int(now % 1 * 1e6):06d}Z"


class HollowNodes:
    """Registers Nodes as a kubelet would (Ready, capacity/allocatable, hostname label) and
    renews their Leases in the background until told to stop for one node."""

    def __init__(self, client: Client):
        self.client = client
        self.names: list[str] = []
        self.silenced: set[str] = set()
        self._renewer: asyncio.Task | None = None

    async def add(self, name: str) -> None:
        node = await self.client.create(NODES, {"apiVersion": "v1", "kind": "Node", "metadata": {
            "name": name, "labels": {"kubernetes.io/hostname": name, "kubernetes.io/os": "linux"}}})
        now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        resources = {"cpu": "4", "memory": "8Gi", "pods": "110"}
        node["status"] = {"conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady",
                                          "message": "kubelet is posting ready status",
                                          "lastHeartbeatTime": now, "lastTransitionTime": now}],
                          "capacity": resources, "allocatable": resources}
        # A patch, as the kubelet writes its status: node IPAM may have set the podCIDR meanwhile.
        await self.client.patch(NODES, name, {"status": node["status"]}, subresource="status")
        await self.client.create(LEASES, {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
                                          "metadata": {"name": name, "namespace": LEASE_NAMESPACE},
                                          "spec": {"holderIdentity": name, "leaseDurationSeconds": 40,
                                                   "renewTime": rfc3339_micro()}})
        self.names.append(name)

    async def _renew_forever(self) -> None:
        while True:
            for name in list(self.names):
                if name in self.silenced:
                    continue
                with contextlib.suppress(errors.NotFound, errors.Conflict):
                    await self.client.patch(LEASES, name, {"spec": {"renewTime": rfc3339_micro()}}, LEASE_NAMESPACE)
            await asyncio.sleep(LEASE_RENEW_INTERVAL)

    async def __aenter__(self) -> "HollowNodes":
        self._renewer = asyncio.create_task(self._renew_forever())
        return self

    async def __aexit__(self, *exc_info) -> None:
        self._renewer.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._renewer
        for name in self.names:
            with contextlib.suppress(errors.NotFound):
                await self.client.delete(NODES, name)
            with contextlib.suppress(errors.NotFound):
                await self.client.delete(LEASES, name, LEASE_NAMESPACE)


async def register_hollow_nodes(client: Client, count: int) -> HollowNodes:
    nodes = HollowNodes(client)
    for _ in range(count):
        await nodes.add(unique("hollow"))
    return nodes


async def live_pods(client: Client, selector: str) -> list[dict]:
    listed = await client.list(PODS, NAMESPACE, labelSelector=selector)
    return [p for p in listed["items"] if not p["metadata"].get("deletionTimestamp")]


async def mark_running_and_ready(client: Client, pods: list[dict]) -> None:
    """What the kubelet would post for a started pod, for every bound pod not yet Ready."""
    now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    for pod in pods:
        if not pod["spec"].get("nodeName") or (pod.get("status") or {}).get("phase") == "Running":
            continue
        status = {"phase": "Running", "hostIP": "127.0.0.1", "startTime": now,
                  "conditions": [{"type": "Ready", "status": "True", "lastTransitionTime": now},
                                 {"type": "ContainersReady", "status": "True", "lastTransitionTime": now}],
                  "containerStatuses": [{"name": c["name"], "image": c["image"], "imageID": "", "ready": True,
                                         "restartCount": 0, "started": True, "state": {"running": {"startedAt": now}}}
                                        for c in pod["spec"]["containers"]]}
        with contextlib.suppress(errors.NotFound):
            await client.patch(PODS, pod["metadata"]["name"], {"status": status}, NAMESPACE, subresource="status")


async def force_delete_pods(client: Client, selector: str) -> None:
    # No kubelet finishes a graceful deletion on a hollow node.
    listed = await client.list(PODS, NAMESPACE, labelSelector=selector)
    for pod in listed["items"]:
        with contextlib.suppress(errors.NotFound):
            await client.delete(PODS, pod["metadata"]["name"], NAMESPACE, grace_period_seconds=0)


def deployment(name: str, replicas: int, tolerations: list[dict] | None = None) -> dict:
    spec = {"containers": [{"name": "c", "image": "busybox:hollow",
                            "resources": {"requests": {"cpu": "100m", "memory": "64Mi"}}}]}
    if tolerations:
        spec["tolerations"] = tolerations
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name, "namespace": NAMESPACE},
            "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": name}},
                     "template": {"metadata": {"labels": {"app": name}}, "spec": spec}}}


async def pods_placed(client: Client, selector: str, count: int, *, mark_ready: bool = True):
    """Waits for `count` live pods, all bound; marks them Running/Ready as a kubelet would."""
    async def placed():
        pods = await live_pods(client, selector)
        if mark_ready:
            await mark_running_and_ready(client, pods)
        return len(pods) == count and all(p["spec"].get("nodeName") for p in pods) and pods
    return await eventually(placed, what=f"{count} bound pods for {selector}")


async def deployment_available(client: Client, name: str, replicas: int):
    async def available():
        current = await client.get(DEPLOYMENTS, name, NAMESPACE)
        status = current.get("status") or {}
        return status.get("availableReplicas") == replicas and status.get("updatedReplicas") == replicas and status
    return await eventually(available, what=f"deployment {name} with {replicas} available replicas")


def test_deployment_spreads_its_pods_evenly_across_three_nodes(server):
    async def scenario(client):
        name = unique("spread")
        async with await register_hollow_nodes(client, 3) as nodes:
            try:
                await client.create(DEPLOYMENTS, deployment(name, 6))
                pods = await pods_placed(client, f"app={name}", 6)
                placement = Counter(p["spec"]["nodeName"] for p in pods)
                assert placement == Counter({node: 2 for node in nodes.names}), placement
                await deployment_available(client, name, 6)
            finally:
                with contextlib.suppress(errors.NotFound):
                    await client.delete(DEPLOYMENTS, name, NAMESPACE)
                await force_delete_pods(client, f"app={name}")
    run(server, scenario)


def test_daemonset_runs_one_pod_per_node_and_follows_a_new_node(server):
    async def scenario(client):
        name = unique("agent")
        async with await register_hollow_nodes(client, 3) as nodes:
            try:
                await client.create(DAEMONSETS, {
                    "apiVersion": "apps/v1", "kind": "DaemonSet", "metadata": {"name": name, "namespace": NAMESPACE},
                    "spec": {"selector": {"matchLabels": {"app": name}},
                             "template": {"metadata": {"labels": {"app": name}},
                                          "spec": {"containers": [{"name": "c", "image": "busybox:hollow"}]}}}})
                pods = await pods_placed(client, f"app={name}", 3)
                assert sorted(p["spec"]["nodeName"] for p in pods) == sorted(nodes.names)

                fourth = unique("hollow")
                await nodes.add(fourth)
                pods = await pods_placed(client, f"app={name}", 4)
                assert sorted(p["spec"]["nodeName"] for p in pods) == sorted(nodes.names)

                async def status_counts():
                    current = await client.get(DAEMONSETS, name, NAMESPACE)
                    status = current.get("status") or {}
                    return (status.get("desiredNumberScheduled") == 4 and status.get("currentNumberScheduled") == 4
                            and status.get("numberReady") == 4 and status.get("numberMisscheduled") == 0 and status)
                await eventually(status_counts, what="DaemonSet status for four nodes")
            finally:
                with contextlib.suppress(errors.NotFound):
                    await client.delete(DAEMONSETS, name, NAMESPACE)
                await force_delete_pods(client, f"app={name}")
    run(server, scenario)


def test_lost_node_is_tainted_and_its_deployment_pods_are_replaced_on_the_other_nodes(server):
    from pyk8s.controllers.nodelifecycle import NodeLifecycleController

    short_toleration = [{"key": key, "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 2}
                        for key in ("node.kubernetes.io/unreachable", "node.kubernetes.io/not-ready")]

    async def scenario(client):
        name = unique("survivor")
        daemon = unique("daemon")
        controller = NodeLifecycleController(client, grace_period=2.0, monitor_period=0.2)
        async with await register_hollow_nodes(client, 3) as nodes:
            await controller.start()
            try:
                await client.create(DEPLOYMENTS, deployment(name, 6, short_toleration))
                await client.create(DAEMONSETS, {
                    "apiVersion": "apps/v1", "kind": "DaemonSet", "metadata": {"name": daemon, "namespace": NAMESPACE},
                    "spec": {"selector": {"matchLabels": {"app": daemon}},
                             "template": {"metadata": {"labels": {"app": daemon}},
                                          "spec": {"containers": [{"name": "c", "image": "busybox:hollow"}]}}}})
                pods = await pods_placed(client, f"app={name}", 6)
                await pods_placed(client, f"app={daemon}", 3)
                await deployment_available(client, name, 6)
                lost = nodes.names[0]
                lost_pods = {p["metadata"]["name"] for p in pods if p["spec"]["nodeName"] == lost}
                assert len(lost_pods) == 2

                nodes.silenced.add(lost)

                async def unknown_and_tainted():
                    node = await client.get(NODES, lost)
                    ready = next(c for c in node["status"]["conditions"] if c["type"] == "Ready")
                    taints = {(t["key"], t["effect"]) for t in (node.get("spec") or {}).get("taints") or []}
                    return ready["status"] == "Unknown" and {
                        ("node.kubernetes.io/unreachable", "NoSchedule"),
                        ("node.kubernetes.io/unreachable", "NoExecute")} <= taints
                await eventually(unknown_and_tainted, what=f"{lost} Unknown with unreachable taints")

                # The others keep renewing and stay Ready, untainted.
                for other in nodes.names[1:]:
                    node = await client.get(NODES, other)
                    assert next(c for c in node["status"]["conditions"] if c["type"] == "Ready")["status"] == "True"
                    assert not (node.get("spec") or {}).get("taints")

                async def evicted():
                    listed = await client.list(PODS, NAMESPACE, labelSelector=f"app={name}")
                    by_name = {p["metadata"]["name"]: p for p in listed["items"]}
                    return all(n not in by_name or by_name[n]["metadata"].get("deletionTimestamp") for n in lost_pods)
                await eventually(evicted, what="the lost node's pods evicted after their 2 s toleration")

                replacements = await pods_placed(client, f"app={name}", 6)
                assert not lost_pods & {p["metadata"]["name"] for p in replacements}
                assert Counter(p["spec"]["nodeName"] for p in replacements) == Counter(
                    {node: 3 for node in nodes.names[1:]})
                await deployment_available(client, name, 6)

                # DaemonSet pods tolerate unreachable forever (no tolerationSeconds): the one on
                # the lost node stays.
                daemon_pods = await live_pods(client, f"app={daemon}")
                assert sorted(p["spec"]["nodeName"] for p in daemon_pods) == sorted(nodes.names)
            finally:
                await controller.stop()
                for kind, owner in ((DEPLOYMENTS, name), (DAEMONSETS, daemon)):
                    with contextlib.suppress(errors.NotFound):
                        await client.delete(kind, owner, NAMESPACE)
                await force_delete_pods(client, f"app={name}")
                await force_delete_pods(client, f"app={daemon}")
    run(server, scenario)
