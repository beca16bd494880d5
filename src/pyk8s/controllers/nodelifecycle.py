"""The node lifecycle controller (upstream's pkg/controller/nodelifecycle, with its
NoExecute taint manager).

Health: every `monitor_period` the controller looks at each node's heartbeat, which is its
Lease in kube-node-lease (renewTime) or its Ready condition's lastHeartbeatTime. Like
upstream it measures on its own clock when the heartbeat last *changed* (no clock skew
between kubelet and controller matters). A node silent for longer than `grace_period`
(40 s) gets its Ready, MemoryPressure, DiskPressure and PIDPressure conditions set to
Unknown ("NodeStatusUnknown", "Kubelet stopped posting node status.") and its pods marked
not Ready.

Taints follow the conditions (TaintNodesByCondition and the NoExecute tainting pass):
Ready=False → node.kubernetes.io/not-ready, Ready=Unknown → node.kubernetes.io/unreachable
(NoSchedule and NoExecute each); memory/disk/pid pressure, NetworkUnavailable and
spec.unschedulable → their NoSchedule taints. When the kubelet posts Ready=True again (it
does so as soon as its lease renews) the taints go.

Eviction (taint manager): a pod on a node with NoExecute taints it does not tolerate is
deleted at once; one that tolerates them all is deleted when the shortest tolerationSeconds
(300 s by the API's defaults) has passed since the taint was added, so its controller
replaces it elsewhere. Tolerations without tolerationSeconds keep the pod forever.
"""

from __future__ import annotations

import asyncio
import calendar
import logging
import time
from typing import Any

from pyk8s.api import errors
from pyk8s.api.scheduling import toleration_tolerates
from pyk8s.api.resources import lookup
from pyk8s.controllers.base import Controller, Requeue
from pyk8s.client.events import EventRecorder

log = logging.getLogger("pyk8s.controllers.nodelifecycle")

NODES = lookup("", "v1", "nodes")
PODS = lookup("", "v1", "pods")
LEASES = lookup("coordination.k8s.io", "v1", "leases")
NODE_LEASE_NAMESPACE = "kube-node-lease"

DEFAULT_NODE_MONITOR_GRACE_PERIOD = 40.0  # --node-monitor-grace-period
DEFAULT_NODE_MONITOR_PERIOD = 5.0  # --node-monitor-period

NOT_READY = "node.kubernetes.io/not-ready"
UNREACHABLE = "node.kubernetes.io/unreachable"
CONDITION_TAINTS = {  # condition type → NoSchedule taint key when the condition is True
    "MemoryPressure": "node.kubernetes.io/memory-pressure",
    "DiskPressure": "node.kubernetes.io/disk-pressure",
    "PIDPressure": "node.kubernetes.io/pid-pressure",
    "NetworkUnavailable": "node.kubernetes.io/network-unavailable",
}
UNSCHEDULABLE = "node.kubernetes.io/unschedulable"
MANAGED_TAINT_KEYS = {NOT_READY, UNREACHABLE, UNSCHEDULABLE, *CONDITION_TAINTS.values()}
UNKNOWN_CONDITIONS = ("Ready", "MemoryPressure", "DiskPressure", "PIDPressure")


def now_rfc3339(now: float | None = None) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() if now is None else now))


def parse_rfc3339(text: str | None) -> float | None:
    if not text:
        return None
    try:
        return float(calendar.timegm(time.strptime(text[:19], "%Y-%m-%dT%H:%M:%S")))
    except ValueError:
        return None


def condition(node: dict[str, Any], kind: str) -> dict[str, Any] | None:
    for item in (node.get("status") or {}).get("conditions") or []:
        if item.get("type") == kind:
            return item
    return None


def heartbeat_signature(node: dict[str, Any], lease: dict[str, Any] | None) -> tuple:
    """What changes whenever the kubelet is alive: the lease's renewTime and the Ready
    condition's lastHeartbeatTime."""
    ready = condition(node, "Ready") or {}
    renew = ((lease or {}).get("spec") or {}).get("renewTime")
    return renew, ready.get("lastHeartbeatTime")


def unknown_conditions(node: dict[str, Any], now: str) -> list[dict[str, Any]] | None:
    """The node's conditions with Ready and the pressure conditions Unknown (upstream's
    tryUpdateNodeHealth), or None when they already are."""
    conditions = [dict(c) for c in (node.get("status") or {}).get("conditions") or []]
    by_type = {c.get("type"): c for c in conditions}
    changed = False
    for kind in UNKNOWN_CONDITIONS:
        existing = by_type.get(kind)
        if existing is None:
            conditions.append({"type": kind, "status": "Unknown", "reason": "NodeStatusNeverUpdated",
                               "message": "Kubelet never posted node status.",
                               "lastHeartbeatTime": node["metadata"].get("creationTimestamp"),
                               "lastTransitionTime": now})
            changed = True
        elif existing.get("status") != "Unknown":
            existing.update(status="Unknown", reason="NodeStatusUnknown",
                            message="Kubelet stopped posting node status.", lastTransitionTime=now)
            changed = True
    return conditions if changed else None


def wanted_taints(node: dict[str, Any], now: str) -> list[dict[str, Any]]:
    """The node's taints with the lifecycle-managed ones recomputed from its conditions
    and spec.unschedulable; other taints, and timeAdded of kept ones, are preserved."""
    existing = [dict(t) for t in (node.get("spec") or {}).get("taints") or []]
    wanted: list[tuple[str, str]] = []
    ready = condition(node, "Ready")
    if ready is not None:
        if ready.get("status") == "False":
            wanted += [(NOT_READY, "NoSchedule"), (NOT_READY, "NoExecute")]
        elif ready.get("status") == "Unknown":
            wanted += [(UNREACHABLE, "NoSchedule"), (UNREACHABLE, "NoExecute")]
    for kind, key in CONDITION_TAINTS.items():
        found = condition(node, kind)
        if found is not None and found.get("status") == "True":
            wanted.append((key, "NoSchedule"))
    if (node.get("spec") or {}).get("unschedulable"):
        wanted.append((UNSCHEDULABLE, "NoSchedule"))
    result = []
    for taint in existing:
        key, effect = taint.get("key"), taint.get("effect")
        if key not in MANAGED_TAINT_KEYS:
            result.append(taint)
        elif ready is None and effect == "NoExecute" and key in (NOT_READY, UNREACHABLE):
            result.append(taint)  # no Ready condition yet: the NoExecute pass leaves them be
        elif (key, effect) in wanted:
            result.append(taint)
    present = {(t.get("key"), t.get("effect")) for t in result}
    for key, effect in wanted:
        if (key, effect) not in present:
            taint = {"key": key, "effect": effect}
            if effect == "NoExecute":
                taint["timeAdded"] = now
            result.append(taint)
    return result



def eviction_time(pod: dict[str, Any], taints: list[dict[str, Any]], taints_noticed: float) -> float | None:
    """When the taint manager deletes the pod: now-ish (0) for an untolerated NoExecute
    taint, the earliest taint time plus the shortest tolerationSeconds otherwise, None for
    never (upstream's getMinTolerationTime)."""
    no_execute = [t for t in taints if t.get("effect") == "NoExecute"]
    if not no_execute:
        return None
    tolerations = (pod.get("spec") or {}).get("tolerations") or []
    used = []
    for taint in no_execute:
        matching = [t for t in tolerations if toleration_tolerates(t, taint)]
        if not matching:
            return 0.0
        used.extend(matching)
    seconds = [int(t["tolerationSeconds"]) for t in used if t.get("tolerationSeconds") is not None]
    if not seconds:
        return None
    added = [parse_rfc3339(t.get("timeAdded")) for t in no_execute]
    start = min([a for a in added if a is not None], default=taints_noticed)
    return start + max(min(seconds), 0)


class NodeLifecycleController(Controller):
    name = "nodelifecycle"
    workers = 2

    def __init__(self, client, *, grace_period: float = DEFAULT_NODE_MONITOR_GRACE_PERIOD,
                 monitor_period: float = DEFAULT_NODE_MONITOR_PERIOD):
        super().__init__(client)
        self.grace_period = grace_period
        self.monitor_period = monitor_period
        self.recorder = EventRecorder(client, "node-controller")
        self.nodes = self.informer(NODES)
        self.leases = self.informer(LEASES, namespace=NODE_LEASE_NAMESPACE)
        self.pods = self.informer(PODS)
        # node name → (heartbeat signature, monotonic time it last changed)
        self.probes: dict[str, tuple[tuple, float]] = {}
        self.nodes.add_handlers(on_add=self._node_changed, on_update=lambda old, new: self._node_changed(new),
                                on_delete=lambda node: self.probes.pop(node["metadata"]["name"], None))
        self.pods.add_handlers(on_add=self._pod_changed, on_update=self._pod_updated)

    def _node_changed(self, node: dict[str, Any]) -> None:
        self.queue.add("node:" + node["metadata"]["name"])

    def _pod_changed(self, pod: dict[str, Any]) -> None:
        node_name = (pod.get("spec") or {}).get("nodeName")
        if not node_name or pod["metadata"].get("deletionTimestamp"):
            return
        node = self.nodes.get(node_name)
        if node and any(t.get("effect") == "NoExecute" for t in (node.get("spec") or {}).get("taints") or []):
            self.queue.add(f"pod:{pod['metadata']['namespace']}/{pod['metadata']['name']}")

    def _pod_updated(self, old: dict[str, Any], new: dict[str, Any]) -> None:
        if (old.get("spec") or {}).get("nodeName") != (new.get("spec") or {}).get("nodeName") \
                or (old.get("spec") or {}).get("tolerations") != (new.get("spec") or {}).get("tolerations"):
            self._pod_changed(new)

    async def on_synced(self) -> None:
        self._tasks.append(asyncio.create_task(self._monitor_forever(), name="nodelifecycle-monitor"))

    async def _monitor_forever(self) -> None:
        while True:
            try:
                await self.monitor_node_health()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("node health check failed: %s", exc)
            await asyncio.sleep(self.monitor_period)  # a timer, not synchronisation

    async def monitor_node_health(self) -> None:
        monotonic = time.monotonic()
        for node in self.nodes.list():
            name = node["metadata"]["name"]
            signature = heartbeat_signature(node, self.leases.get(f"{NODE_LEASE_NAMESPACE}/{name}"))
            probe = self.probes.get(name)
            if probe is None or probe[0] != signature:
                self.probes[name] = (signature, monotonic)
                continue
            if monotonic - probe[1] <= self.grace_period:
                continue
            now = now_rfc3339()
            conditions = unknown_conditions(node, now)
            if conditions is None:
                continue
            log.info("node %s stopped posting status for %.0fs: marking it Unknown", name, monotonic - probe[1])
            updated = {"apiVersion": "v1", "kind": "Node", "metadata": node["metadata"],
                       "spec": node.get("spec") or {}, "status": dict(node.get("status") or {}, conditions=conditions)}
            try:
                await self.client.update(NODES, updated, subresource="status")
            except (errors.NotFound, errors.Conflict):
                continue  # the next period looks again
            await self.recorder.event(node, "Normal", "NodeNotReady", f"Node {name} status is now: NodeNotReady")
            await self._mark_pods_not_ready(name, now)

    async def _mark_pods_not_ready(self, node_name: str, now: str) -> None:
        """Upstream's MarkPodsNotReady: endpoints stop sending traffic to them."""
        for pod in self.pods.list():
            if (pod.get("spec") or {}).get("nodeName") != node_name or pod["metadata"].get("deletionTimestamp"):
                continue
            conditions = [dict(c) for c in (pod.get("status") or {}).get("conditions") or []]
            changed = False
            for item in conditions:
                if item.get("type") == "Ready" and item.get("status") != "False":
                    item.update(status="False", lastTransitionTime=now)
                    changed = True
            if not changed:
                continue
            meta = pod["metadata"]
            try:
                await self.client.patch(PODS, meta["name"], {"metadata": {"resourceVersion": meta["resourceVersion"]},
                                                             "status": {"conditions": conditions}},
                                        meta["namespace"], subresource="status")
            except (errors.NotFound, errors.Conflict):
                pass

    async def reconcile(self, key: str) -> None:
        kind, _, name = key.partition(":")
        if kind == "node":
            await self._reconcile_taints(name)
        else:
            await self._reconcile_eviction(name)

    async def _reconcile_taints(self, name: str) -> None:
        node = self.nodes.get(name)
        if node is None:
            return
        taints = wanted_taints(node, now_rfc3339())
        if taints != ((node.get("spec") or {}).get("taints") or []):
            meta = node["metadata"]
            try:
                await self.client.patch(NODES, name, {"metadata": {"resourceVersion": meta["resourceVersion"]},
                                                      "spec": {"taints": taints or None}})
            except errors.NotFound:
                return
            return  # the update event brings us back with the new taints
        if any(t.get("effect") == "NoExecute" for t in taints):
            for pod in self.pods.list():
                if (pod.get("spec") or {}).get("nodeName") == name and not pod["metadata"].get("deletionTimestamp"):
                    self.queue.add(f"pod:{pod['metadata']['namespace']}/{pod['metadata']['name']}")

    async def _reconcile_eviction(self, key: str) -> None:
        pod = self.pods.get(key)
        if pod is None or pod["metadata"].get("deletionTimestamp"):
            return
        node = self.nodes.get((pod.get("spec") or {}).get("nodeName") or "")
        if node is None:
            return
        when = eviction_time(pod, (node.get("spec") or {}).get("taints") or [], time.time())
        if when is None:
            return
        delay = when - time.time()
        if delay > 0:
            raise Requeue(delay)
        meta = pod["metadata"]
        log.info("taint manager: evicting pod %s from node %s", key, node["metadata"]["name"])
        await self.recorder.event(pod, "Normal", "TaintManagerEviction", f"Marking for deletion Pod {key}")
        conditions = [c for c in (pod.get("status") or {}).get("conditions") or [] if c.get("type") != "DisruptionTarget"]
        conditions.append({"type": "DisruptionTarget", "status": "True", "reason": "DeletionByTaintManager",
                           "message": "Taint manager: deleting due to NoExecute taint",
                           "lastTransitionTime": now_rfc3339()})
        try:
            await self.client.patch(PODS, meta["name"], {"status": {"conditions": conditions}},
                                    meta["namespace"], subresource="status")
        except errors.ApiError:
            pass  # the condition is informative; the deletion is what matters
        try:
            await self.client.delete(PODS, meta["name"], meta["namespace"])
        except errors.NotFound:
            pass
