"""The scheduler's view of nodes and of what is placed on them (upstream's scheduler
cache and NodeInfo, simplified). No I/O: the Scheduler feeds it from its informers.

For each node it keeps what the filters and scores need, precomputed as integers when
the node or a pod changes, never per scheduling attempt: effective taints, allocatable,
summed requests of the pods on it (real and "non-zero"), pod count, host ports in use and
pods per owner (controllerRef uid) for spreading.

A pod is counted on its node as soon as the scheduler decides (it is *assumed*), before
the binding call returns, so the next decisions already see it. The informer's update
with `spec.nodeName` confirms it; a failed binding `forget`s it. `generation` changes when
a node changes in a way that can change filter results, which invalidates the per-spec
static filter results the Scheduler memoises.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from pyk8s.scheduler.filters import effective_taints
from pyk8s.scheduler.requests import CPU, MEMORY, PODS, HostPort, PodRequests, node_allocatable, pod_host_ports, pod_requests


def controller_uid(pod: dict[str, Any]) -> str | None:
    for ref in (pod.get("metadata") or {}).get("ownerReferences") or ():
        if ref.get("controller"):
            return ref.get("uid")
    return None


@dataclass
class PlacedPod:
    uid: str
    key: str
    node_name: str
    requests: PodRequests
    host_ports: tuple[HostPort, ...]
    owner_uid: str | None
    assumed: bool  # decided by us, not yet confirmed by the informer


@dataclass
class NodeInfo:
    name: str
    node: dict[str, Any] | None = None  # None: pods reference a node we have not seen
    taints: list[dict[str, Any]] = field(default_factory=list)
    allocatable: dict[str, int] = field(default_factory=dict)
    allocatable_cpu: int = 0
    allocatable_memory: int = 0
    allocatable_pods: int = 0
    requested: dict[str, int] = field(default_factory=dict)
    non_zero_cpu: int = 0
    non_zero_memory: int = 0
    pod_count: int = 0
    host_ports: dict[str, tuple[HostPort, ...]] = field(default_factory=dict)  # pod uid -> ports
    owner_counts: dict[str, int] = field(default_factory=dict)

    def set_node(self, node: dict[str, Any]) -> None:
        self.node = node
        self.taints = effective_taints(node)
        self.allocatable = node_allocatable(node)
        self.allocatable_cpu = self.allocatable.get(CPU, 0)
        self.allocatable_memory = self.allocatable.get(MEMORY, 0)
        self.allocatable_pods = self.allocatable.get(PODS, 0)

    def add(self, placed: PlacedPod) -> None:
        for name, amount in placed.requests.resources.items():
            self.requested[name] = self.requested.get(name, 0) + amount
        self.non_zero_cpu += placed.requests.non_zero_milli_cpu
        self.non_zero_memory += placed.requests.non_zero_memory
        self.pod_count += 1
        if placed.host_ports:
            self.host_ports[placed.uid] = placed.host_ports
        if placed.owner_uid:
            self.owner_counts[placed.owner_uid] = self.owner_counts.get(placed.owner_uid, 0) + 1

    def remove(self, placed: PlacedPod) -> None:
        for name, amount in placed.requests.resources.items():
            self.requested[name] = self.requested.get(name, 0) - amount
        self.non_zero_cpu -= placed.requests.non_zero_milli_cpu
        self.non_zero_memory -= placed.requests.non_zero_memory
        self.pod_count -= 1
        self.host_ports.pop(placed.uid, None)
        if placed.owner_uid:
            left = self.owner_counts.get(placed.owner_uid, 0) - 1
            if left > 0:
                self.owner_counts[placed.owner_uid] = left
            else:
                self.owner_counts.pop(placed.owner_uid, None)

    def used_host_ports(self):
        for ports in self.host_ports.values():
            yield from ports


def scheduling_view(node: dict[str, Any]) -> tuple:
    """The parts of a Node that can change filter or score results. Heartbeats change
    other fields (timestamps) and must not wake every unschedulable pod."""
    spec = node.get("spec") or {}
    status = node.get("status") or {}
    ready = next((c.get("status") for c in status.get("conditions") or () if c.get("type") == "Ready"), None)
    return (repr((node.get("metadata") or {}).get("labels")), bool(spec.get("unschedulable")), repr(spec.get("taints")),
            repr(status.get("allocatable") or status.get("capacity")), ready)


class SchedulerCache:
    def __init__(self) -> None:
        self.nodes: dict[str, NodeInfo] = {}
        self.pods: dict[str, PlacedPod] = {}  # by uid
        self.generation = 0
        self._views: dict[str, tuple] = {}
        self._schedulable_nodes: list[NodeInfo] | None = None

    # -- nodes ------------------------------------------------------------------------

    def set_node(self, node: dict[str, Any]) -> bool:
        """Add or update a node; True when the change can affect scheduling."""
        name = node["metadata"]["name"]
        view = scheduling_view(node)
        info = self.nodes.get(name)
        if info is None:
            info = self.nodes[name] = NodeInfo(name)
        changed = info.node is None or self._views.get(name) != view
        info.set_node(node)
        self._views[name] = view
        if changed:
            self.generation += 1
            self._schedulable_nodes = None
        return changed

    def remove_node(self, name: str) -> None:
        info = self.nodes.get(name)
        if info is None:
            return
        self._views.pop(name, None)
        if info.pod_count:
            info.node = None  # keep accounting for its pods until they go
        else:
            del self.nodes[name]
        self.generation += 1
        self._schedulable_nodes = None

    def node_list(self) -> list[NodeInfo]:
        """Nodes we have seen, in a stable order."""
        if self._schedulable_nodes is None:
            self._schedulable_nodes = [info for info in self.nodes.values() if info.node is not None
                                       and not info.node["metadata"].get("deletionTimestamp")]
        return self._schedulable_nodes

    # -- pods -------------------------------------------------------------------------

    def _place(self, pod: dict[str, Any], node_name: str, assumed: bool) -> PlacedPod:
        meta = pod["metadata"]
        uid = meta.get("uid") or f"{meta.get('namespace')}/{meta['name']}"
        self.remove_pod_uid(uid)
        placed = PlacedPod(uid, f"{meta.get('namespace')}/{meta['name']}", node_name, pod_requests(pod),
                           pod_host_ports(pod), controller_uid(pod), assumed)
        info = self.nodes.get(node_name)
        if info is None:
            info = self.nodes[node_name] = NodeInfo(node_name)
        info.add(placed)
        self.pods[uid] = placed
        return placed

    def assume(self, pod: dict[str, Any], node_name: str) -> PlacedPod:
        return self._place(pod, node_name, assumed=True)

    def is_assumed(self, uid: str) -> bool:
        placed = self.pods.get(uid)
        return placed is not None and placed.assumed

    def add_bound_pod(self, pod: dict[str, Any]) -> None:
        """A pod the informer shows with spec.nodeName (confirms an assumption)."""
        uid = pod["metadata"].get("uid")
        node_name = pod["spec"]["nodeName"]
        placed = self.pods.get(uid)
        if placed is not None and placed.node_name == node_name and not placed.assumed:
            return  # already counted; requests of a bound pod do not change here
        self._place(pod, node_name, assumed=False)

    def forget(self, uid: str) -> None:
        """Drop an assumption whose binding failed (confirmed placements stay)."""
        placed = self.pods.get(uid)
        if placed is not None and placed.assumed:
            self.remove_pod_uid(uid)

    def remove_pod_uid(self, uid: str) -> PlacedPod | None:
        placed = self.pods.pop(uid, None)
        if placed is None:
            return None
        info = self.nodes.get(placed.node_name)
        if info is not None:
            info.remove(placed)
            if info.node is None and info.pod_count <= 0:
                del self.nodes[placed.node_name]
        return placed
