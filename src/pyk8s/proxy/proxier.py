"""ServiceProxy: keeps this node's iptables rules (or, with mode "nftables", its nft table)
equal to what Services and EndpointSlices say.

Informers on Services and discovery.k8s.io/v1 EndpointSlices mark the Service they touch
as dirty; one sync task turns dirty Services into a partial update (iptables mode: a
`iptables-restore --noflush` of the top-level chains plus the dirty services' chains;
nftables mode: an `nft -f` of the dirty services' chains and map elements) at most every
`min_sync_interval`, and writes everything (a full sync, which also deletes any chain no
service uses) at start and every `full_sync_interval` (upstream: minSyncPeriod 1 s,
syncPeriod 1 h). Only the first sync reads what the kernel has (iptables-save; the nftables
mode replaces its table instead); later ones know what they wrote. Nothing is flushed at
start: a restarted proxy replaces the rules the previous one left in one transaction, so
traffic never goes without rules. Rules stay when
the proxy stops; pyk8s.proxy.cleanup removes them (both modes). At start the proxy removes
the other mode's rules, as upstream does.
"""

from __future__ import annotations

import asyncio
import logging
import shutil
import time

from pyk8s.api.resources import lookup
from pyk8s.client.informer import shared_informers
from pyk8s.proxy import iptables, nftables, rules

log = logging.getLogger("pyk8s.proxy")

SERVICES = lookup("", "v1", "services")
ENDPOINT_SLICES = lookup("discovery.k8s.io", "v1", "endpointslices")


class ServiceProxy:
    def __init__(self, client, *, node_name: str, cluster_cidr: str = "10.42.0.0/16",
                 min_sync_interval: float = 0.1, full_sync_interval: float = 60.0, mode: str = "nftables"):
        self.client = client
        self.node_name = node_name
        self.cluster_cidr = cluster_cidr
        self.min_sync_interval = min_sync_interval
        self.full_sync_interval = full_sync_interval
        informers = shared_informers(client)
        self._informers = informers
        self.services = informers.informer(SERVICES)
        self.slices = informers.informer(ENDPOINT_SLICES)
        self._slices_of: dict[str, set[str]] = {}  # service key -> slice keys
        self._states: dict[str, rules.ServiceState] = {}
        if mode not in BACKENDS:
            raise ValueError(f"unknown proxy mode {mode!r} (one of {', '.join(BACKENDS)})")
        if mode == "nftables" and shutil.which("nft") is None:
            log.warning("proxy mode nftables needs nft (the nftables package): using the iptables mode")
            mode = "iptables"
        self.mode = mode
        self._backend = BACKENDS[mode](node_name=node_name, cluster_cidr=cluster_cidr)
        self._dirty: set[str] = set()
        self._wake = asyncio.Event()
        self._task: asyncio.Task | None = None
        self.syncs = 0  # completed syncs (tests and the benchmark look at it)
        self.last_sync_seconds = 0.0

    # --- informer handlers (quick: note what changed) -------------------------------------

    def _service_changed(self, *objects) -> None:
        self._mark(f"{objects[-1]['metadata'].get('namespace')}/{objects[-1]['metadata']['name']}")

    def _slice_added(self, endpoint_slice) -> None:
        self._index_slice(endpoint_slice, add=True)

    def _slice_updated(self, old, new) -> None:
        self._index_slice(old, add=False)
        self._index_slice(new, add=True)

    def _slice_deleted(self, endpoint_slice) -> None:
        self._index_slice(endpoint_slice, add=False)

    def _index_slice(self, endpoint_slice, *, add: bool) -> None:
        service = rules.service_of_slice(endpoint_slice)
        if service is None:
            return
        key = f"{endpoint_slice['metadata'].get('namespace')}/{endpoint_slice['metadata']['name']}"
        members = self._slices_of.setdefault(service, set())
        if add:
            members.add(key)
        else:
            members.discard(key)
            if not members:
                del self._slices_of[service]
        self._mark(service)

    def _mark(self, service_key: str) -> None:
        self._dirty.add(service_key)
        self._wake.set()

    # --- lifecycle -------------------------------------------------------------------------

    async def start(self, sync_timeout: float = 30.0) -> None:
        failed = await asyncio.to_thread(iptables.set_sysctls)
        # Upstream removes the other mode's rules when it starts: one set of rules per node.
        await asyncio.to_thread(self._backend.remove_other_mode)
        for name, why in failed.items():
            log.warning("cannot set %s (%s): some service traffic may not work", name, why)
        self.services.add_handlers(on_add=self._service_changed, on_update=self._service_changed,
                                   on_delete=self._service_changed)
        self.slices.add_handlers(on_add=self._slice_added, on_update=self._slice_updated,
                                 on_delete=self._slice_deleted)
        self._informers.start(self.services)
        self._informers.start(self.slices)
        # Rules written before both caches are full would drop services for a moment.
        await asyncio.wait_for(asyncio.gather(self.services.synced.wait(), self.slices.synced.wait()), sync_timeout)
        await self.sync(full=True)
        self._task = asyncio.create_task(self._run(), name="service-proxy")
        log.info("service proxy started (%s mode): %d services", self._backend.describe(), len(self._states))

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
        await self._informers.release(self.services)
        await self._informers.release(self.slices)

    async def _run(self) -> None:
        next_full = time.monotonic() + self.full_sync_interval
        backoff = self.min_sync_interval
        while True:
            try:
                await asyncio.wait_for(self._wake.wait(), max(0.0, next_full - time.monotonic()))
            except asyncio.TimeoutError:
                pass
            self._wake.clear()
            full = time.monotonic() >= next_full
            try:
                await self.sync(full=full)
                backoff = self.min_sync_interval
                if full:
                    next_full = time.monotonic() + self.full_sync_interval
            except Exception as error:  # retried: the next sync rewrites everything
                log.warning("%s sync failed (retrying with a full sync): %s", self.mode, error)
                next_full = time.monotonic() + backoff
                backoff = min(backoff * 2, 10.0)
            await asyncio.sleep(self.min_sync_interval)

    # --- syncing -----------------------------------------------------------------------------

    def _state_of(self, service_key: str) -> rules.ServiceState | None:
        service = self.services.get(service_key)
        if service is None:
            return None
        slices = [self.slices.get(key) for key in self._slices_of.get(service_key, ())]
        return rules.build_state(service, [s for s in slices if s is not None])

    async def sync(self, *, full: bool = False) -> None:
        started = time.perf_counter()
        dirty, self._dirty = self._dirty, set()
        try:
            if full:
                states = {}
                for key in self.services.cache:
                    state = self._state_of(key)
                    if state is not None and state.ports:
                        states[key] = state
                await self._backend.sync(states, None)
            else:
                if not dirty:
                    return
                states = dict(self._states)
                for key in dirty:
                    state = self._state_of(key)
                    if state is not None and state.ports:
                        states[key] = state
                    else:
                        states.pop(key, None)
                await self._backend.sync(states, dirty)
        except BaseException:
            self._dirty |= dirty  # not applied: try again
            raise
        old_states = self._states
        self._states = states
        self.syncs += 1
        self.last_sync_seconds = time.perf_counter() - started
        log.debug("%s sync of %d services in %.3fs", "full" if full else "partial", len(states),
                  self.last_sync_seconds)
        changed = set(old_states) | set(states) if full else dirty
        await self._flush_stale_udp({key: old_states.get(key) for key in changed}, states)

    async def _flush_stale_udp(self, before: dict[str, rules.ServiceState | None],
                               after: dict[str, rules.ServiceState]) -> None:
        """Upstream's conntrack cleanup: UDP flows to an endpoint that is gone are deleted
        (else the client's flow keeps going to it); flows to a port that had no endpoints
        are deleted once it has some (they were answered by REJECT)."""
        for key, old in before.items():
            if old is None:
                continue
            new = after.get(key)
            new_ports = {(p.port_name, p.protocol): p for p in new.ports} if new else {}
            for port in old.ports:
                if port.protocol != "UDP":
                    continue
                old_ips = {e.ip for e in rules.usable(old.endpoints_of(port))}
                new_port = new_ports.get((port.port_name, port.protocol))
                new_ips = {e.ip for e in rules.usable(new.endpoints_of(new_port))} if new and new_port else set()
                destinations = (port.cluster_ip, *port.external_ips, *port.load_balancer_ips)
                for ip in old_ips - new_ips:
                    for destination in destinations:
                        await iptables.flush_udp_conntrack(destination=destination, nat_destination=ip)
                    if port.node_port:
                        await iptables.flush_udp_conntrack(original_port=port.node_port, nat_destination=ip)
                if not old_ips and new_ips and new_port is not None:
                    for destination in destinations:
                        await iptables.flush_udp_conntrack(destination=destination)
                    if port.node_port:
                        await iptables.flush_udp_conntrack(original_port=port.node_port)


class IptablesBackend:
    """`iptables-restore --noflush` of rules.render: the chains of the dirty services, or
    all of them. Which chains exist is read (iptables-save) only before the first sync and
    after a failed one; otherwise the chains the last syncs wrote are known."""

    def __init__(self, *, node_name: str, cluster_cidr: str):
        self.node_name, self.cluster_cidr = node_name, cluster_cidr
        self._chains: dict[str, set[str]] | None = None  # service key -> nat chains written for it

    def describe(self) -> str:
        return f"iptables, {iptables.backend()}"

    @staticmethod
    def remove_other_mode() -> None:
        if nftables.table_exists():
            nftables.remove_table()

    async def sync(self, states: dict[str, rules.ServiceState], dirty: set[str] | None) -> None:
        known, self._chains = self._chains, None  # unknown until this sync has been applied
        if dirty is None or known is None:
            missing_jumps: list = []
            if known is None:
                existing, jumps = await iptables.current()
                maybe_stale: set[str] = set(existing.get("nat", ()))
                missing_jumps = [jump for jump in rules.JUMPS if jump not in jumps]
            else:
                maybe_stale = set().union(*known.values()) if known else set()
            rendered = rules.render(states, node_name=self.node_name, cluster_cidr=self.cluster_cidr,
                                    maybe_stale=maybe_stale, missing_jumps=missing_jumps)
        else:
            maybe_stale = set().union(*(known.get(key, set()) for key in dirty))
            rendered = rules.render(states, node_name=self.node_name, cluster_cidr=self.cluster_cidr,
                                    dirty=dirty, maybe_stale=maybe_stale)
        await iptables.restore(rendered.text)
        self._chains = rendered.chains


class NftablesBackend:
    """One `nft -f` transaction of nftables.render per sync; what the table holds is
    remembered from the transactions (never read back)."""

    def __init__(self, *, node_name: str, cluster_cidr: str):
        self.node_name, self.cluster_cidr = node_name, cluster_cidr
        self._written: dict[str, nftables.Written] | None = None  # None: replace the table
        self._flushed: set[str] = set()

    @staticmethod
    def describe() -> str:
        return "nftables"

    @staticmethod
    def remove_other_mode() -> None:
        iptables.remove_all_rules()

    async def sync(self, states: dict[str, rules.ServiceState], dirty: set[str] | None) -> None:
        written, self._written = self._written, None  # a failed transaction: replace the table next time
        transaction = nftables.render(states, node_name=self.node_name, cluster_cidr=self.cluster_cidr,
                                      previous=written, dirty=dirty, flushed_before=self._flushed)
        await nftables.apply(transaction.text)
        self._written, self._flushed = transaction.written, transaction.flushed


BACKENDS = {"iptables": IptablesBackend, "nftables": NftablesBackend}
