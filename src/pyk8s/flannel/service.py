"""FlannelNetwork: the agent's pod-network service (see the package docstring)."""

from __future__ import annotations

import asyncio
import ipaddress
import logging

from pyk8s.api.resources import lookup
from pyk8s.client.informer import shared_informers
from pyk8s.flannel import kernel, plan

log = logging.getLogger("pyk8s.flannel")

NODES = lookup("", "v1", "nodes")
BACKENDS = ("vxlan", "host-gw", "none")
RESYNC_SECONDS = 30.0


class FlannelNetwork:
    """`start()` needs the Node to exist with its podCIDR (the agent waits for node IPAM
    first); it sets the backend up, publishes this node's annotations and keeps the routes
    to every other node's pods in step with the Node objects until `stop()`. Routes stay
    when it stops (pods keep talking while an agent restarts); `teardown()` removes them."""

    def __init__(self, client, *, node_name: str, node_ip: str, pod_cidr: str,
                 cluster_cidr: str = "10.42.0.0/16", backend: str = "vxlan"):
        if backend not in BACKENDS:
            raise ValueError(f"unknown flannel backend {backend!r} (expected one of {', '.join(BACKENDS)})")
        self.client = client
        self.node_name = node_name
        self.node_ip = node_ip
        self.pod_cidr = pod_cidr
        self.cluster_cidr = cluster_cidr
        self.backend = backend
        self.mtu: int | None = None  # the pods' MTU when the backend needs a smaller one
        self.vtep_mac = ""
        self._informers = shared_informers(client)
        self.nodes = self._informers.informer(NODES)
        self._wake = asyncio.Event()
        self._task: asyncio.Task | None = None
        self.syncs = 0

    @property
    def enabled(self) -> bool:
        # A node known by a loopback address cannot be reached by any other: one-node cluster.
        return self.backend != "none" and not ipaddress.ip_address(self.node_ip).is_loopback

    async def start(self) -> None:
        if not self.enabled:
            log.info("pod network across nodes off (backend %s, node address %s)", self.backend, self.node_ip)
            return
        await asyncio.to_thread(kernel.enable_forwarding)
        if self.backend == "vxlan":
            self.vtep_mac, self.mtu = await kernel.ensure_vxlan(self.node_ip, self.pod_cidr)
        else:
            if await kernel.delete_link(plan.VXLAN_DEVICE):
                log.info("removed %s (backend is now %s)", plan.VXLAN_DEVICE, self.backend)
        await kernel.write_masquerade(self.cluster_cidr, self.pod_cidr)
        await self._publish()
        self.nodes.add_handlers(on_add=self._changed, on_update=lambda old, new: self._changed(new),
                                on_delete=self._changed)
        self._informers.start(self.nodes)
        await asyncio.wait_for(self.nodes.synced.wait(), 30)
        await self.sync()
        self._task = asyncio.create_task(self._run(), name="flannel")
        log.info("pod network: backend %s, node %s, podCIDR %s%s", self.backend, self.node_ip, self.pod_cidr,
                 f", {plan.VXLAN_DEVICE} {self.vtep_mac} mtu {self.mtu}" if self.backend == "vxlan" else "")

    async def _publish(self) -> None:
        """This node's annotations, as flannel's kube subnet manager writes them."""
        wanted = plan.own_annotations(self.backend, self.node_ip, self.vtep_mac)
        node = await self.client.get(NODES, self.node_name)
        have = node["metadata"].get("annotations") or {}
        if any(have.get(key) != value for key, value in wanted.items()):
            await self.client.patch(NODES, self.node_name, {"metadata": {"annotations": wanted}})

    def _changed(self, node) -> None:
        self._wake.set()

    async def _run(self) -> None:
        while True:
            try:
                await asyncio.wait_for(self._wake.wait(), RESYNC_SECONDS)
            except asyncio.TimeoutError:
                pass
            self._wake.clear()
            try:
                own = self.nodes.get(self.node_name)
                if own is not None and plan.peer_of(own) != plan.Peer(
                        self.node_name, self.pod_cidr, self.node_ip, self.backend, self.vtep_mac):
                    await self._publish()  # someone changed or dropped our annotations
                await self.sync()
            except asyncio.CancelledError:
                raise
            except Exception as error:  # noqa: BLE001 - the next change or resync retries
                log.warning("pod network sync failed: %s", error)
                await asyncio.sleep(1.0)
                self._wake.set()

    async def sync(self) -> None:
        peer_list = plan.peers(self.node_name, self.nodes.list())
        if self.backend == "vxlan":
            desired = plan.vxlan_desired(peer_list)
            ip_lines, bridge_lines = plan.vxlan_commands(desired, await kernel.vxlan_current())
            await kernel.batch("bridge", bridge_lines)
            await kernel.batch("ip", ip_lines)
        else:
            current = plan.host_gw_current(await kernel.main_routes(), self.cluster_cidr, self.pod_cidr)
            ip_lines, bridge_lines = plan.host_gw_commands(plan.host_gw_desired(peer_list), current), []
            await kernel.batch("ip", ip_lines)
        if ip_lines or bridge_lines:
            log.info("pod network: %d peers; applied %s", len(peer_list), "; ".join(bridge_lines + ip_lines))
        self.syncs += 1

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
            await self._informers.release(self.nodes)

    async def teardown(self) -> None:
        """Remove flannel.1 (its routes go with it), host-gw routes and the masquerade rules."""
        await kernel.delete_link(plan.VXLAN_DEVICE)
        if self.backend == "host-gw":
            current = plan.host_gw_current(await kernel.main_routes(), self.cluster_cidr, self.pod_cidr)
            await kernel.batch("ip", plan.host_gw_commands({}, current))
        await kernel.remove_masquerade()
