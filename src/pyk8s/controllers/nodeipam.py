"""The node IPAM controller (upstream's pkg/controller/nodeipam, RangeAllocator): hands each
Node one pod CIDR (a /24 by default, `--node-cidr-mask-size`) from the cluster CIDR into
`spec.podCIDR` / `spec.podCIDRs`, servers' nodes included, so no node needs `--pod-cidr`.

The Node objects are the only record of what is taken: at start, once the Node informer
has synced, every podCIDR already written is marked used (upstream's occupyCIDRs repair),
and only then are new ones handed out, so a restarted controller never gives out a CIDR a
node holds. A deleted Node's CIDR goes back to the pool. A node that arrives with a
podCIDR of its own (an agent started with `--pod-cidr`) keeps it; if that CIDR is outside
the cluster CIDR or already held by another node, the controller records a
CIDRNotAvailable event (upstream's reason) and leaves the node alone.

    Node informer ──(node names)──> reconcile: node has a CIDR? occupy : allocate + PATCH
                  └─ delete ──────> release its CIDR
"""

from __future__ import annotations

import ipaddress
import logging
from typing import Any, Iterable

from pyk8s.api import errors
from pyk8s.api.resources import lookup
from pyk8s.client.events import EventRecorder
from pyk8s.controllers.base import Controller

log = logging.getLogger("pyk8s.controllers.nodeipam")

NODES = lookup("", "v1", "nodes")
DEFAULT_NODE_CIDR_MASK_SIZE = 24


class CIDRRangeFull(Exception):
    """Every pod CIDR of the cluster CIDR is taken."""


class CIDRSet:
    """The /mask subnets of one cluster CIDR, each free or used (upstream's cidrset). Pure:
    no I/O. Allocation starts after the last one handed out, wrapping around, so a CIDR just
    released is not reused at once (upstream's nextCandidate)."""

    def __init__(self, cluster_cidr: str, mask_size: int = DEFAULT_NODE_CIDR_MASK_SIZE):
        self.network = ipaddress.ip_network(cluster_cidr, strict=False)
        if mask_size < self.network.prefixlen:
            raise ValueError(f"node CIDR mask size {mask_size} is smaller than the cluster CIDR's "
                             f"/{self.network.prefixlen}")
        self.mask_size = mask_size
        self.size = 1 << (mask_size - self.network.prefixlen)
        self._used: set[int] = set()
        self._next = 0

    def _index(self, cidr: str) -> int:
        subnet = ipaddress.ip_network(cidr, strict=False)
        if subnet.prefixlen != self.mask_size or not subnet.subnet_of(self.network):
            raise ValueError(f"{cidr} is not a /{self.mask_size} of the cluster CIDR {self.network}")
        return (int(subnet.network_address) - int(self.network.network_address)) >> (
            self.network.max_prefixlen - self.mask_size)

    def _cidr(self, index: int) -> str:
        address = int(self.network.network_address) + (index << (self.network.max_prefixlen - self.mask_size))
        return f"{ipaddress.ip_address(address)}/{self.mask_size}"

    def contains(self, cidr: str) -> bool:
        try:
            self._index(cidr)
            return True
        except ValueError:
            return False

    def is_used(self, cidr: str) -> bool:
        return self._index(cidr) in self._used

    def occupy(self, cidr: str) -> None:
        self._used.add(self._index(cidr))

    def release(self, cidr: str) -> None:
        self._used.discard(self._index(cidr))

    def allocate_next(self) -> str:
        for offset in range(self.size):
            index = (self._next + offset) % self.size
            if index not in self._used:
                self._used.add(index)
                self._next = (index + 1) % self.size
                return self._cidr(index)
        raise CIDRRangeFull(f"no remaining CIDRs left to allocate in {self.network}")

    @property
    def used(self) -> int:
        return len(self._used)


def node_pod_cidrs(node: dict[str, Any]) -> list[str]:
    spec = node.get("spec") or {}
    cidrs = list(spec.get("podCIDRs") or [])
    if not cidrs and spec.get("podCIDR"):
        cidrs = [spec["podCIDR"]]
    return cidrs


def occupy_existing(cidr_set: CIDRSet, nodes: Iterable[dict[str, Any]]) -> dict[str, str]:
    """Repair at start: mark every node's podCIDR used; returns node name → CIDR for those
    this set manages (the first node listed keeps a CIDR two nodes claim)."""
    held: dict[str, str] = {}
    for node in sorted(nodes, key=lambda n: (n["metadata"].get("creationTimestamp") or "", n["metadata"]["name"])):
        for cidr in node_pod_cidrs(node):
            if cidr_set.contains(cidr) and not cidr_set.is_used(cidr):
                cidr_set.occupy(cidr)
                held[node["metadata"]["name"]] = cidr
    return held


class NodeIPAMController(Controller):
    name = "nodeipam"

    def __init__(self, client, *, cluster_cidr: str = "10.42.0.0/16",
                 node_cidr_mask_size: int = DEFAULT_NODE_CIDR_MASK_SIZE):
        super().__init__(client)
        self.cidrs = CIDRSet(cluster_cidr, node_cidr_mask_size)
        self.recorder = EventRecorder(client, "cidrAllocator")
        self.held: dict[str, str] = {}  # node name -> the CIDR this controller counts as its
        self.nodes = self.informer(NODES)
        self.nodes.add_handlers(on_add=self.enqueue, on_update=lambda old, new: self.enqueue(new),
                                on_delete=self.enqueue)

    async def on_synced(self) -> None:
        self.held = occupy_existing(self.cidrs, self.nodes.list())
        log.info("node IPAM: %d of %d pod CIDRs of %s in use", self.cidrs.used, self.cidrs.size, self.cidrs.network)

    async def reconcile(self, key: str) -> None:
        name = key.rpartition("/")[2]
        node = self.nodes.get(key)
        if node is None:
            cidr = self.held.pop(name, None)
            if cidr is not None:
                self.cidrs.release(cidr)
                log.info("released pod CIDR %s of deleted node %s", cidr, name)
            return
        existing = node_pod_cidrs(node)
        if existing:
            cidr = existing[0]
            if self.held.get(name) == cidr:
                return
            if not self.cidrs.contains(cidr) or self.cidrs.is_used(cidr):
                await self.recorder.event(node, "Normal", "CIDRNotAvailable",
                                          f"Node {name} status is now: CIDRNotAvailable")
                log.warning("node %s has pod CIDR %s, which is %s", name, cidr,
                            "taken by another node" if self.cidrs.contains(cidr) else
                            f"outside the cluster CIDR {self.cidrs.network}")
                return
            self.cidrs.occupy(cidr)
            self.held[name] = cidr
            return
        try:
            cidr = self.cidrs.allocate_next()
        except CIDRRangeFull as full:
            await self.recorder.event(node, "Normal", "CIDRNotAvailable", f"Node {name} status is now: CIDRNotAvailable")
            log.warning("node %s: %s", name, full)
            return
        try:
            # podCIDR is set once (the API refuses to change it), so a merge patch is enough;
            # the resourceVersion guard makes a stale cache fail with Conflict, not overwrite.
            await self.client.patch(NODES, name, {"metadata": {"resourceVersion": node["metadata"]["resourceVersion"]},
                                                  "spec": {"podCIDR": cidr, "podCIDRs": [cidr]}})
        except errors.NotFound:
            self.cidrs.release(cidr)  # deleted meanwhile
            return
        except BaseException:
            self.cidrs.release(cidr)
            raise
        self.held[name] = cidr
        log.info("allocated pod CIDR %s to node %s", cidr, name)
