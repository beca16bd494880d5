"""ClusterIP and NodePort allocation for Services, kept in the store (upstream's
ipallocator / portallocator and their repair controllers).

Every allocated value is one key in the store, written with a "key absent" guard:

    /registry/ranges/serviceips/<ip>          {"service": {"namespace", "name", "uid"}}
    /registry/ranges/servicenodeports/<port>  same

(Upstream's default keeps one bitmap per range in etcd, `/registry/ranges/serviceips`;
its newer allocator writes one IPAddress object per IP. A key per value is the latter's
shape: two API server requests, or two API servers, racing for the same value meet at
the store's create guard, and exactly one wins.)

Write order, and why nothing leaks or double-allocates:
- create / update: the records for new values are created *before* the Service write.
  If the Service write fails, the records are deleted again. A value held by a Service
  therefore always has its record, so no later create can take it.
- delete / an update that drops values: the records are deleted *after* the Service
  write, and only if they still name that Service (its uid).
- a crash between the two steps can only leave a record whose Service does not hold
  the value (a leak, never a double allocation). The store has no multi-key
  transaction, so leaks are repaired instead: the first Service write after the API
  server starts runs `repair()` (upstream's repair controllers), which deletes records
  whose owner does not hold the value and writes the records missing for stored
  Services (a store written before this allocator existed). Until it is done no Service
  write is served.

Allocation order follows upstream: the lower part of each range is the static block
(IPs: min(max(16, size/16), 256) addresses, so 10.43.0.1-10.43.1.0 of a /16; ports:
min(max(16, size/32), 128), so 30000-30085 of 30000-32767), kept for explicitly requested
values (10.43.0.1 is `kubernetes`, 10.43.0.10 is `kube-dns`). A value picked for a
Service that asked for none comes from the upper, dynamic block (random start, then in
order), and from the static block only once the dynamic one is full.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import random
from dataclasses import dataclass, field
from typing import Any, Iterator

import orjson

from pyk8s.api import errors
from pyk8s.api.resources import lookup
from pyk8s.storage.interface import KeyExists, KeyNotFound, RevisionMismatch, Store

log = logging.getLogger("pyk8s.apiserver.services")

SERVICE_IPS_PREFIX = "/registry/ranges/serviceips/"
NODE_PORTS_PREFIX = "/registry/ranges/servicenodeports/"
SERVICES_PREFIX = lookup("", "v1", "services").storage_prefix()  # /registry/services/specs/

# Consecutive taken candidates probed one by one before the allocated set is read whole.
_PROBES_BEFORE_LISTING = 16


def _static_block(size: int, minimum: int, maximum: int, step: int) -> int:
    """Upstream's calculateRangeOffset: min(max(minimum, size/step), maximum), 0 for tiny ranges."""
    if size <= minimum:
        return 0
    return min(max(minimum, size // step), maximum)


class IPRange:
    """The service CIDR without its network and broadcast addresses (upstream's Range)."""

    def __init__(self, cidr: str):
        self.network = ipaddress.ip_network(cidr, strict=False)
        self.cidr = str(self.network)
        total = self.network.num_addresses
        self.base = int(self.network.network_address) + 1
        # IPv4 loses the broadcast address too; IPv6 only the subnet-router one.
        self.size = max(total - (2 if self.network.version == 4 else 1), 0)
        self.static_size = _static_block(total, 16, 256, 16)

    def contains(self, ip: str) -> bool:
        try:
            address = ipaddress.ip_address(ip)
        except ValueError:
            return False
        if address.version != self.network.version:
            return False
        return 0 <= int(address) - self.base < self.size

    def value(self, offset: int) -> str:
        return str(ipaddress.ip_address(self.base + offset))

    def candidates(self, rng: random.Random) -> Iterator[str]:
        for offset in _scan_order(self.size, self.static_size, rng):
            yield self.value(offset)

    def not_in_range(self, ip: str) -> str:
        return f"the provided IP ({ip}) is not in the valid range. The range of valid IPs is {self.cidr}"


class PortRange:
    """The NodePort range, both ends included (upstream's net.PortRange)."""

    def __init__(self, low: int, high: int):
        self.low, self.high = low, high
        self.size = high - low + 1
        self.static_size = _static_block(self.size, 16, 128, 32)

    def contains(self, port: int) -> bool:
        return self.low <= port <= self.high

    def candidates(self, rng: random.Random) -> Iterator[int]:
        for offset in _scan_order(self.size, self.static_size, rng):
            yield self.low + offset

    def not_in_range(self) -> str:
        return f"provided port is not in the valid range. The range of valid ports is {self.low}-{self.high}"


def _scan_order(size: int, static_size: int, rng: random.Random) -> Iterator[int]:
    """Upstream's randomScanStrategyWithOffset: every offset of the dynamic block from a
    random start, wrapping, then every offset of the static block the same way."""
    dynamic = size - static_size
    if dynamic > 0:
        start = rng.randrange(dynamic)
        for step in range(dynamic):
            yield static_size + (start + step) % dynamic
    if static_size > 0:
        start = rng.randrange(static_size)
        for step in range(static_size):
            yield (start + step) % static_size


# ---------------------------------------------------------------- what a Service holds

def needs_cluster_ip(spec: dict[str, Any]) -> bool:
    return spec.get("type", "ClusterIP") != "ExternalName"


def is_headless(spec: dict[str, Any]) -> bool:
    return spec.get("clusterIP") == "None"


def needs_node_ports(spec: dict[str, Any]) -> bool:
    return spec.get("type") in ("NodePort", "LoadBalancer")


def allocates_node_ports(spec: dict[str, Any]) -> bool:
    """Upstream's shouldAllocateNodePorts: a LoadBalancer may opt out."""
    if spec.get("type") == "NodePort":
        return True
    if spec.get("type") == "LoadBalancer":
        return spec.get("allocateLoadBalancerNodePorts", True) is not False
    return False


def needs_health_check_node_port(spec: dict[str, Any]) -> bool:
    """Upstream's NeedsHealthCheck: a LoadBalancer with externalTrafficPolicy Local."""
    return spec.get("type") == "LoadBalancer" and spec.get("externalTrafficPolicy") == "Local"


def service_ips(spec: dict[str, Any]) -> list[str]:
    """The ClusterIPs a Service holds (none when headless or ExternalName)."""
    if not needs_cluster_ip(spec):
        return []
    ips = [ip for ip in (spec.get("clusterIPs") or []) if isinstance(ip, str)]
    if not ips and isinstance(spec.get("clusterIP"), str):
        ips = [spec["clusterIP"]]
    return [ip for ip in ips if ip and ip != "None"]


def service_node_ports(spec: dict[str, Any]) -> list[int]:
    """Upstream's collectServiceNodePorts plus the health-check port: each number once."""
    ports: list[int] = []
    if needs_node_ports(spec):
        for port in spec.get("ports") or []:
            number = port.get("nodePort") if isinstance(port, dict) else None
            if isinstance(number, int) and number and number not in ports:
                ports.append(number)
    health = spec.get("healthCheckNodePort")
    if needs_health_check_node_port(spec) and isinstance(health, int) and health and health not in ports:
        ports.append(health)
    return ports


def _owner(obj: dict[str, Any]) -> dict[str, str]:
    meta = obj.get("metadata") or {}
    return {"namespace": meta.get("namespace", ""), "name": meta.get("name", ""), "uid": meta.get("uid", "")}


def _record(obj: dict[str, Any]) -> bytes:
    return orjson.dumps({"service": _owner(obj)})


def _record_owner(value: bytes) -> dict[str, str]:
    try:
        owner = orjson.loads(value).get("service")
    except (orjson.JSONDecodeError, AttributeError):
        return {}
    return owner if isinstance(owner, dict) else {}


def _invalid(obj: dict[str, Any], path: str, value: Any, detail: str) -> errors.Invalid:
    return errors.Invalid("Service", (obj.get("metadata") or {}).get("name", ""), [errors.invalid(path, value, detail)])


def _invalid_ips(obj: dict[str, Any], ips: list[str], detail: str) -> errors.Invalid:
    """Upstream reports a failed IP allocation on spec.clusterIPs with the whole slice as
    the value (Go's %#v: []string{"10.43.0.5"})."""
    rendered = "[]string{" + ", ".join(orjson.dumps(ip).decode() for ip in ips) + "}"
    return errors.Invalid("Service", (obj.get("metadata") or {}).get("name", ""), [{
        "reason": "FieldValueInvalid", "message": f"Invalid value: {rendered}: {detail}", "field": "spec.clusterIPs"}])


# ---------------------------------------------------------------- one write's allocations

@dataclass
class Allocation:
    """What one Service write allocated (records to delete if the write fails) and what it
    gives up (records to delete once the write succeeded): upstream's transaction."""

    allocator: "ServiceAllocator"
    owner_uid: str
    dry_run: bool = False
    created: list[tuple[str, int]] = field(default_factory=list)  # (key, mod_revision)
    to_release: list[str] = field(default_factory=list)  # keys

    async def revert(self) -> None:
        if self.dry_run:
            return
        for key, revision in reversed(self.created):
            await self.allocator._delete_record(key, revision)
        self.created.clear()

    async def commit(self) -> None:
        if self.dry_run:
            return
        for key in self.to_release:
            await self.allocator._release_key(key, self.owner_uid)
        self.to_release.clear()


class ServiceAllocator:
    def __init__(self, store: Store, service_cidr: str = "10.43.0.0/16",
                 node_port_range: tuple[int, int] = (30000, 32767), *, rng: random.Random | None = None):
        self.store = store
        self.ips = IPRange(service_cidr)
        self.ports = PortRange(*node_port_range)
        self.rng = rng or random.Random()
        self._repaired = False
        self._repair_lock = asyncio.Lock()

    # ------------------------------------------------------------ start-up repair

    async def ready(self) -> None:
        """Repair once, before the first Service write this server serves."""
        if self._repaired:
            return
        async with self._repair_lock:
            if not self._repaired:
                await self.repair()
                self._repaired = True

    async def repair(self) -> dict[str, int]:
        """Make the records match the stored Services (upstream's ipallocator and
        portallocator repair controllers, run once at start). Returns counts for logs/tests."""
        services = await self.store.list(SERVICES_PREFIX)
        held: dict[str, dict[str, str]] = {}  # record key -> owner it must name
        for kv in services.items:
            obj = orjson.loads(kv.value)
            spec = obj.get("spec") or {}
            owner = _owner(obj)
            for ip in service_ips(spec):
                if not self.ips.contains(ip):
                    log.warning("Service %s/%s: cluster IP %s is not within the service CIDR %s; please recreate",
                                owner["namespace"], owner["name"], ip, self.ips.cidr)
                    continue
                self._claim(held, SERVICE_IPS_PREFIX + ip, owner, f"cluster IP {ip}")
            for port in service_node_ports(spec):
                if not self.ports.contains(port):
                    log.warning("Service %s/%s: node port %d is not within the range %d-%d; please recreate",
                                owner["namespace"], owner["name"], port, self.ports.low, self.ports.high)
                    continue
                self._claim(held, NODE_PORTS_PREFIX + str(port), owner, f"node port {port}")
        counts = {"released": 0, "recorded": 0}
        for prefix in (SERVICE_IPS_PREFIX, NODE_PORTS_PREFIX):
            records = await self.store.list(prefix)
            for kv in records.items:
                owner = held.pop(kv.key, None)
                if owner is None:
                    # Leaked: a crash came between the record and the Service write.
                    if await self._delete_record(kv.key, kv.mod_revision):
                        counts["released"] += 1
                elif _record_owner(kv.value).get("uid") != owner["uid"]:
                    try:
                        await self.store.update(kv.key, orjson.dumps({"service": owner}), kv.mod_revision)
                        counts["recorded"] += 1
                    except (KeyNotFound, RevisionMismatch):
                        pass
        for key, owner in held.items():
            try:
                await self.store.create(key, orjson.dumps({"service": owner}))
                counts["recorded"] += 1
            except KeyExists:
                pass
        if counts["released"] or counts["recorded"]:
            log.info("service allocation repair: %d leaked values released, %d records written",
                     counts["released"], counts["recorded"])
        return counts

    @staticmethod
    def _claim(held: dict[str, dict[str, str]], key: str, owner: dict[str, str], what: str) -> None:
        if key in held:
            other = held[key]
            log.warning("%s is allocated to both %s/%s and %s/%s", what, other["namespace"], other["name"],
                        owner["namespace"], owner["name"])
            return
        held[key] = owner

    # ------------------------------------------------------------ allocation

    async def allocate(self, obj: dict[str, Any], old: dict[str, Any] | None = None, *,
                       dry_run: bool = False) -> Allocation:
        """Fill in and reserve what `obj` (a create, or an update of `old`) needs: its
        ClusterIP, NodePorts, health-check NodePort. Values `old` held and `obj` keeps stay
        reserved; values `old` held and `obj` drops are released by `commit()`.
        Raises errors.Invalid / InternalError with upstream's messages; on error nothing
        stays reserved."""
        await self.ready()
        spec = obj.setdefault("spec", {})
        old_spec = (old or {}).get("spec") or {}
        allocation = Allocation(self, _owner(obj)["uid"], dry_run)
        try:
            await self._allocate_ips(obj, spec, old_spec, allocation)
            await self._allocate_node_ports(obj, spec, old_spec, allocation)
        except BaseException:
            await allocation.revert()
            raise
        keep_ips = set(service_ips(spec))
        allocation.to_release += [SERVICE_IPS_PREFIX + ip for ip in service_ips(old_spec) if ip not in keep_ips]
        keep_ports = set(service_node_ports(spec))
        allocation.to_release += [NODE_PORTS_PREFIX + str(port) for port in service_node_ports(old_spec)
                                  if port not in keep_ports]
        return allocation

    async def release(self, obj: dict[str, Any]) -> None:
        """After a Service is gone: free what it held."""
        spec = obj.get("spec") or {}
        uid = _owner(obj)["uid"]
        for ip in service_ips(spec):
            await self._release_key(SERVICE_IPS_PREFIX + ip, uid)
        for port in service_node_ports(spec):
            await self._release_key(NODE_PORTS_PREFIX + str(port), uid)

    async def _allocate_ips(self, obj: dict[str, Any], spec: dict[str, Any], old_spec: dict[str, Any],
                            allocation: Allocation) -> None:
        if not needs_cluster_ip(spec) or is_headless(spec):
            return
        held = set(service_ips(old_spec))
        requested = spec.get("clusterIP") or ""
        if not requested:
            ip = await self._allocate_next(SERVICE_IPS_PREFIX, self.ips.candidates(self.rng), obj, allocation)
            if ip is None:
                raise errors.InternalError.of("failed to allocate a serviceIP: range is full")
            spec["clusterIP"] = ip
            spec["clusterIPs"] = [ip]
            return
        spec.setdefault("clusterIPs", [requested])
        if requested in held:
            return
        ips_value = spec.get("clusterIPs") or [requested]
        if not self.ips.contains(requested):
            raise _invalid_ips(obj, ips_value, f"failed to allocate IP {requested}: {self.ips.not_in_range(requested)}")
        if not await self._reserve(SERVICE_IPS_PREFIX + requested, obj, allocation):
            raise _invalid_ips(obj, ips_value, f"failed to allocate IP {requested}: provided IP is already allocated")

    async def _allocate_node_ports(self, obj: dict[str, Any], spec: dict[str, Any], old_spec: dict[str, Any],
                                   allocation: Allocation) -> None:
        held = set(service_node_ports(old_spec))
        reserved_here: set[int] = set()

        async def explicit_error(number: int) -> str | None:
            """Why `number` cannot be this Service's, or None once it is reserved."""
            if number in held or number in reserved_here:
                return None
            if not self.ports.contains(number):
                return self.ports.not_in_range()
            if not await self._reserve(NODE_PORTS_PREFIX + str(number), obj, allocation):
                return "provided port is already allocated"
            reserved_here.add(number)
            return None

        async def reserve_explicit(number: int, path: str) -> None:
            problem = await explicit_error(number)
            if problem:
                raise _invalid(obj, path, number, problem)

        async def reserve_next(what: str) -> int:
            number = await self._allocate_next(NODE_PORTS_PREFIX, self.ports.candidates(self.rng), obj, allocation,
                                               skip={str(port) for port in held | reserved_here})
            if number is None:
                raise errors.InternalError.of(f"failed to allocate {what}: range is full")
            reserved_here.add(int(number))
            return int(number)

        if needs_node_ports(spec):
            ports = [port for port in spec.get("ports") or [] if isinstance(port, dict)]
            by_service_port: dict[Any, int] = {}
            allocate_new = allocates_node_ports(spec)
            for index, port in enumerate(ports):
                number = port.get("nodePort")
                path = f"spec.ports[{index}].nodePort"
                if not number and not allocate_new:
                    continue  # respect explicit requests only
                if number:
                    await reserve_explicit(int(number), path)
                    by_service_port.setdefault(port.get("port"), int(number))
                    continue
                # Ports sharing a number (TCP and UDP 53) share one nodePort, as upstream.
                shared = by_service_port.get(port.get("port"))
                if shared is None:
                    for later in ports[index + 1:]:
                        if later.get("port") == port.get("port") and later.get("nodePort"):
                            shared = int(later["nodePort"])
                            await reserve_explicit(shared, path)
                            break
                if shared is None:
                    shared = await reserve_next("a nodePort")
                port["nodePort"] = shared
                by_service_port[port.get("port")] = shared
        if needs_health_check_node_port(spec):
            health = spec.get("healthCheckNodePort")
            if health:
                problem = await explicit_error(int(health))
                if problem:
                    raise errors.InternalError.of(
                        f"failed to allocate requested HealthCheck NodePort {health}: {problem}")
            else:
                spec["healthCheckNodePort"] = await reserve_next("a HealthCheck NodePort")
        else:
            spec.pop("healthCheckNodePort", None)

    # ------------------------------------------------------------ store primitives

    async def _reserve(self, key: str, obj: dict[str, Any], allocation: Allocation) -> bool:
        """Create the record; False if the value is held. A record naming this very
        Service (same uid) counts as held by it."""
        if allocation.dry_run:
            current = await self.store.get(key)
            return current is None or _record_owner(current.value).get("uid") == allocation.owner_uid
        try:
            kv = await self.store.create(key, _record(obj))
        except KeyExists as exc:
            return _record_owner(exc.kv.value).get("uid") == allocation.owner_uid and bool(allocation.owner_uid)
        allocation.created.append((key, kv.mod_revision))
        return True

    async def _allocate_next(self, prefix: str, candidates: Iterator[Any], obj: dict[str, Any],
                             allocation: Allocation, skip: set[str] = frozenset()) -> str | None:
        """The first candidate whose record this write creates. Candidates are probed with
        reads (cheap) before a guarded create (a write); a crowded range is read once."""
        taken: set[str] | None = None
        misses = 0
        for candidate in candidates:
            value = str(candidate)
            if value in skip or (taken is not None and value in taken):
                continue
            if taken is None and await self.store.get(prefix + value) is not None:
                misses += 1
                if misses >= _PROBES_BEFORE_LISTING:
                    listed = await self.store.list(prefix)
                    taken = {kv.key[len(prefix):] for kv in listed.items}
                continue
            if await self._reserve(prefix + value, obj, allocation):
                return value
        return None

    async def _delete_record(self, key: str, revision: int) -> bool:
        try:
            await self.store.delete(key, revision)
            return True
        except (KeyNotFound, RevisionMismatch):
            return False
        except Exception:  # the repair at next start frees it
            log.exception("failed to release %s", key)
            return False

    async def _release_key(self, key: str, owner_uid: str) -> None:
        """Delete the record if it still names this Service."""
        current = await self.store.get(key)
        if current is None:
            return
        if owner_uid and _record_owner(current.value).get("uid") not in (owner_uid, None):
            return
        await self._delete_record(key, current.mod_revision)
