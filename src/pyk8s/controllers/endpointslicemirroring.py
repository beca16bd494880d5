"""The EndpointSlice mirroring controller (upstream pkg/controller/endpointslicemirroring).

A Service without a selector gets its Endpoints written by hand (pointing at an outside
database, say); this controller mirrors each such Endpoints object into EndpointSlices so
that everything reading slices (proxies, `kubectl describe svc`) sees the same backends.
One slice per distinct (address type, ports) of the Endpoints' subsets, at most 1 000
addresses each, labelled `kubernetes.io/service-name` and
`endpointslice.kubernetes.io/managed-by: endpointslicemirroring-controller.k8s.io`, owned by
the Endpoints object, carrying its labels and annotations (but the last-change trigger time
and kubectl's last-applied configuration).

Nothing is mirrored for Services with a selector (the EndpointSlice controller makes their
slices), ExternalName Services, Endpoints labelled `endpointslice.kubernetes.io/skip-mirror:
"true"` or leader-election Endpoints; mirrored slices of those are deleted.

Informers: services and endpoints queue the Endpoints key; a changed or deleted mirrored
slice queues the key of its Endpoints.
"""

from __future__ import annotations

import copy
import ipaddress
import logging
from typing import Any

from pyk8s.api import errors
from pyk8s.api.resources import lookup
from pyk8s.client.events import EventRecorder
from pyk8s.controllers import endpointutil as util
from pyk8s.controllers.base import Controller, owner_reference, split_key
from pyk8s.controllers.endpointutil import ENDPOINT_SLICES, endpoint_key, port_map_key

log = logging.getLogger("pyk8s.controllers.endpointslicemirroring")

SERVICES = lookup("", "v1", "services")
ENDPOINTS = lookup("", "v1", "endpoints")

CONTROLLER_NAME = "endpointslicemirroring-controller.k8s.io"
# Upstream --mirroring-max-endpoints-per-subset default.
MAX_ENDPOINTS_PER_SUBSET = 1000


def address_to_endpoint(address: dict[str, Any], ready: bool) -> tuple[dict[str, Any], str] | None:
    """A slice endpoint and its address type for an Endpoints address; None for an
    address that is not an IP."""
    try:
        ip = ipaddress.ip_address((address.get("ip") or "").strip())
    except ValueError:
        return None
    endpoint: dict[str, Any] = {"addresses": [str(ip)], "conditions": {"ready": ready}}
    if address.get("hostname"):
        endpoint["hostname"] = address["hostname"]
    if address.get("targetRef"):
        endpoint["targetRef"] = address["targetRef"]
    if address.get("nodeName"):
        endpoint["nodeName"] = address["nodeName"]
    return endpoint, ("IPv6" if ip.version == 6 else "IPv4")


def slice_ports(ports: list[dict[str, Any]] | None) -> list[dict[str, Any]]:
    return [util.slice_port(port, port.get("port")) for port in ports or []]


def desired_mirror(endpoints: dict[str, Any], max_per_subset: int = MAX_ENDPOINTS_PER_SUBSET):
    """{(address type, port map key): (ports, [endpoints])} for an Endpoints object, with
    the numbers of invalid and skipped (over the per-subset cap) addresses."""
    desired: dict[tuple, tuple[list, dict]] = {}
    invalid = skipped = 0
    for subset in endpoints.get("subsets") or []:
        ports = slice_ports(subset.get("ports"))
        added = 0
        total = len(subset.get("addresses") or []) + len(subset.get("notReadyAddresses") or [])
        for field, ready in (("addresses", True), ("notReadyAddresses", False)):
            for address in subset.get(field) or []:
                if added >= max_per_subset:
                    break
                converted = address_to_endpoint(address, ready)
                if converted is None:
                    invalid += 1
                    continue
                endpoint, address_type = converted
                _, endpoint_set = desired.setdefault((address_type, port_map_key(ports)), (ports, {}))
                endpoint_set.setdefault(endpoint_key(endpoint), endpoint)
                added += 1
        skipped += total - added
    return ({key: (ports, list(endpoint_set.values())) for key, (ports, endpoint_set) in desired.items()},
            invalid, skipped)


def mirrored_slice(endpoints: dict[str, Any], ports: list[dict[str, Any]], address_type: str,
                   slice_endpoints: list[dict[str, Any]], name: str = "") -> dict[str, Any]:
    meta = endpoints["metadata"]
    labels = dict(meta.get("labels") or {})
    labels[util.LABEL_SERVICE_NAME] = meta["name"]
    labels[util.LABEL_MANAGED_BY] = CONTROLLER_NAME
    annotations = {k: v for k, v in (meta.get("annotations") or {}).items()
                   if k not in (util.LAST_CHANGE_TRIGGER_TIME, util.LAST_APPLIED)}
    slice_meta: dict[str, Any] = {"namespace": meta.get("namespace"), "labels": labels,
                                  "ownerReferences": [owner_reference(
                                      {"apiVersion": "v1", "kind": "Endpoints", "metadata": meta})]}
    if annotations:
        slice_meta["annotations"] = annotations
    if name:
        slice_meta["name"] = name
    else:
        slice_meta["generateName"] = f"{meta['name']}-"
    return {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice", "metadata": slice_meta,
            "addressType": address_type, "endpoints": slice_endpoints, "ports": copy.deepcopy(ports)}


def _slice_matches(existing: dict[str, Any], wanted: dict[str, Any]) -> bool:
    meta, wanted_meta = existing["metadata"], wanted["metadata"]
    return ((meta.get("labels") or {}) == wanted_meta["labels"]
            and (meta.get("annotations") or {}) == (wanted_meta.get("annotations") or {})
            and sorted(map(repr, existing.get("endpoints") or [])) == sorted(map(repr, wanted["endpoints"]))
            and port_map_key(existing.get("ports")) == port_map_key(wanted["ports"])
            and (meta.get("ownerReferences") or []) == wanted_meta["ownerReferences"])


def plan_mirror(endpoints: dict[str, Any], existing: list[dict[str, Any]],
                max_per_subset: int = MAX_ENDPOINTS_PER_SUBSET):
    """Upstream reconcile: one slice per (address type, ports); the first existing slice of
    a key is rewritten in place, any others deleted. Returns (create, update, delete)."""
    desired, _, _ = desired_mirror(endpoints, max_per_subset)
    existing_by_key: dict[tuple, list[dict]] = {}
    for existing_slice in sorted(existing, key=lambda s: s["metadata"]["name"]):
        key = (existing_slice.get("addressType"), port_map_key(existing_slice.get("ports")))
        existing_by_key.setdefault(key, []).append(existing_slice)
    to_create: list[dict] = []
    to_update: list[dict] = []
    to_delete: list[dict] = []
    for key, (ports, slice_endpoints) in desired.items():
        current = existing_by_key.get(key, [])
        to_delete += current[1:]
        name = current[0]["metadata"]["name"] if current else ""
        wanted = mirrored_slice(endpoints, ports, key[0], slice_endpoints[:max_per_subset], name)
        if current:
            if _slice_matches(current[0], wanted):
                continue
            wanted["metadata"]["resourceVersion"] = current[0]["metadata"].get("resourceVersion")
            to_update.append(wanted)
        else:
            to_create.append(wanted)
    for key, slices in existing_by_key.items():
        if key not in desired:
            to_delete += slices
    # Recycle deletes into updates where a create is pending (upstream recycleSlices).
    while to_create and to_delete:
        doomed = to_delete.pop()
        recycled = to_create.pop()
        recycled["metadata"].pop("generateName", None)
        recycled["metadata"]["name"] = doomed["metadata"]["name"]
        recycled["metadata"]["resourceVersion"] = doomed["metadata"].get("resourceVersion")
        to_update.append(recycled)
    return to_create, to_update, to_delete


class EndpointSliceMirroringController(util.SliceOwnerHandlers, Controller):
    name = "endpointslicemirroring-controller"
    slice_manager = CONTROLLER_NAME
    workers = 2

    def __init__(self, client):
        super().__init__(client)
        self.services = self.informer(SERVICES)
        self.endpoints = self.informer(ENDPOINTS)
        self.slices = self.informer(ENDPOINT_SLICES)
        self.recorder = EventRecorder(client, self.name)
        self.written = util.WrittenVersions()
        self._slices_written: dict[str, set[str]] = {}
        self.services.add_handlers(**self.enqueue_handlers())
        self.endpoints.add_handlers(**self.enqueue_handlers())
        self.slices.add_handlers(on_add=self._slice_changed, on_update=lambda old, new: self._slice_changed(new),
                                 on_delete=self._slice_deleted)

    def _mirrored(self, namespace: str | None, name: str) -> list[dict[str, Any]]:
        return util.managed_slices(self.slices, namespace, name, CONTROLLER_NAME)

    def _should_mirror(self, key: str) -> dict[str, Any] | None:
        service = self.services.get(key)
        if service is None:
            return None
        spec = service.get("spec") or {}
        if spec.get("type") == "ExternalName" or spec.get("selector"):
            return None
        endpoints = self.endpoints.get(key)
        if endpoints is None:
            return None
        meta = endpoints["metadata"]
        if (meta.get("labels") or {}).get(util.LABEL_SKIP_MIRROR) == "true":
            return None
        if util.LEADER_ELECTION in (meta.get("annotations") or {}):
            return None
        return endpoints

    async def reconcile(self, key: str) -> None:
        namespace, name = split_key(key)
        if self._slices_stale(key):
            raise errors.Conflict(f"endpointslice informer cache is out of date for endpoints {key}")
        existing = self._mirrored(namespace, name)
        endpoints = self._should_mirror(key)
        written_keys = self._slices_written.setdefault(key, set())
        if endpoints is None:
            to_create, to_update, to_delete = [], [], existing
        else:
            to_create, to_update, to_delete = plan_mirror(endpoints, existing)
            _, invalid, skipped = desired_mirror(endpoints)
            if invalid:
                await self.recorder.event(endpoints, "Warning", "InvalidIPAddress",
                                          f"Skipped {invalid} invalid IP addresses when mirroring to EndpointSlices")
            if skipped > invalid:
                await self.recorder.event(endpoints, "Warning", "TooManyAddressesToMirror",
                                          f"A max of {MAX_ENDPOINTS_PER_SUBSET} addresses can be mirrored to "
                                          f"EndpointSlices per Endpoints subset. {skipped} addresses "
                                          "were skipped")
            if endpoints["metadata"].get("deletionTimestamp"):
                to_create = []
        if not await util.write_slices(self.client, self.written, written_keys, namespace,
                                       to_create, to_update, to_delete):
            return
        self._slices_written[key] = {k for k in written_keys if self.written.tracks(k)}
        if not self._slices_written[key]:
            del self._slices_written[key]
