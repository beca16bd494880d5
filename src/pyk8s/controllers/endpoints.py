"""The Endpoints controller (upstream pkg/controller/endpoint).

For every Service with a selector it keeps an Endpoints object of the same name: the
addresses of the selected pods that have an IP, ready ones under `addresses` and the others
under `notReadyAddresses` (all under `addresses` with publishNotReadyAddresses), pods being
deleted left out. Each service port's targetPort is resolved per pod (a named port can be a
different number on each pod), and pods are then grouped into subsets that share the same
ports (upstream RepackSubsets). At most 1 000 addresses are kept; above that the object is
truncated and annotated `endpoints.kubernetes.io/over-capacity: truncated`.

Services without a selector get no endpoints from here: their Endpoints are written by
hand and never touched while the Service exists. When a Service goes, the Endpoints of its
name go too (upstream does the same, whoever wrote them).

Informers: services (queue their key), pods (queue the keys of the Services selecting the
pod before and after a change), endpoints (a deleted one is re-made).
"""

from __future__ import annotations

import copy
import ipaddress
import logging
import math
from typing import Any

from pyk8s.api import errors
from pyk8s.api.resources import lookup
from pyk8s.api.selectors import label_selector_from_set
from pyk8s.client.events import EventRecorder
from pyk8s.client.informer import object_key
from pyk8s.controllers import endpointutil as util
from pyk8s.controllers import podtemplate
from pyk8s.controllers.base import Controller, split_key

log = logging.getLogger("pyk8s.controllers.endpoints")

SERVICES = lookup("", "v1", "services")
PODS = lookup("", "v1", "pods")
ENDPOINTS = lookup("", "v1", "endpoints")

# Upstream maxCapacity: addresses kept in one Endpoints object.
MAX_CAPACITY = 1000
TRUNCATED = "truncated"


# -- pure: the desired subsets ------------------------------------------------------------

def endpoint_address(service: dict[str, Any], pod: dict[str, Any]) -> dict[str, Any] | None:
    ip = util.pod_address_for_service(service, pod)
    if ip is None:
        return None
    address: dict[str, Any] = {"ip": ip}
    if util.should_set_hostname(pod, service):
        address["hostname"] = pod["spec"]["hostname"]
    node_name = (pod.get("spec") or {}).get("nodeName")
    if node_name:
        address["nodeName"] = node_name
    address["targetRef"] = util.target_ref(pod)
    return address


def endpoint_port(service_port: dict[str, Any], number: int) -> dict[str, Any]:
    port: dict[str, Any] = {"port": number, "protocol": service_port.get("protocol") or "TCP"}
    if service_port.get("name"):
        port["name"] = service_port["name"]
    if service_port.get("appProtocol"):
        port["appProtocol"] = service_port["appProtocol"]
    return port


def _port_key(port: dict[str, Any]) -> tuple:
    return (port.get("name") or "", port.get("port"), port.get("protocol") or "TCP", port.get("appProtocol") or "")


def _address_key(address: dict[str, Any]) -> tuple:
    return (address.get("ip") or "", (address.get("targetRef") or {}).get("uid") or "")


def repack_subsets(subsets: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Upstream RepackSubsets: one subset per distinct set of addresses, carrying every port
    those addresses share. An address ready for a port in any input subset is ready.
    Addresses are sorted by IP (then pod UID); ports keep their first-seen order."""
    addresses: dict[tuple, dict[str, Any]] = {}
    # port key -> (port, {address key: ready})
    by_port: dict[tuple, tuple[dict[str, Any] | None, dict[tuple, bool]]] = {}
    for subset in subsets:
        ports = subset.get("ports") or [None]  # None: a headless service without ports
        for port in ports:
            port_key = _port_key(port) if port is not None else ("", -1, "", "")
            _, ready_map = by_port.setdefault(port_key, (port, {}))
            for field, ready in (("addresses", True), ("notReadyAddresses", False)):
                for address in subset.get(field) or []:
                    key = _address_key(address)
                    addresses.setdefault(key, address)
                    if not ready_map.get(key, False):
                        ready_map[key] = ready
    # Group the ports by the exact address set they map to.
    groups: dict[tuple, tuple[dict[tuple, bool], list[dict[str, Any]]]] = {}
    for port, ready_map in by_port.values():
        group_key = tuple(sorted(ready_map.items()))
        _, ports = groups.setdefault(group_key, (ready_map, []))
        if port is not None:
            ports.append(port)
    final = []
    for ready_map, ports in groups.values():
        ordered = sorted(ready_map.items(), key=lambda item: _ip_sort_key(item[0]))
        subset: dict[str, Any] = {}
        ready = [addresses[key] for key, is_ready in ordered if is_ready]
        not_ready = [addresses[key] for key, is_ready in ordered if not is_ready]
        if ready:
            subset["addresses"] = ready
        if not_ready:
            subset["notReadyAddresses"] = not_ready
        if ports:
            subset["ports"] = ports
        final.append(subset)
    final.sort(key=_subset_sort_key)
    return final


def _ip_sort_key(address_key: tuple) -> tuple:
    ip, uid = address_key
    try:
        parsed = ipaddress.ip_address(ip)
        return (parsed.version, int(parsed), uid)
    except ValueError:
        return (9, 0, ip + uid)


def _subset_sort_key(subset: dict[str, Any]) -> tuple:
    ports = tuple((p.get("name") or "", p.get("port") or 0, p.get("protocol") or "", p.get("appProtocol") or "")
                  for p in subset.get("ports") or [])
    first = (subset.get("addresses") or subset.get("notReadyAddresses") or [{}])[0]
    return (ports, _ip_sort_key(_address_key(first)))


def desired_subsets(service: dict[str, Any], pods: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The subsets of a selector Service's Endpoints for the pods its selector matches."""
    spec = service.get("spec") or {}
    publish_not_ready = bool(spec.get("publishNotReadyAddresses"))
    service_ports = spec.get("ports") or []
    subsets: list[dict[str, Any]] = []
    for pod in sorted(pods, key=lambda p: p["metadata"]["name"]):
        if not util.should_pod_be_in_endpoints(pod, publish_not_ready):
            continue
        address = endpoint_address(service, pod)
        if address is None:
            continue
        field = "addresses" if publish_not_ready or podtemplate.is_pod_ready(pod) else "notReadyAddresses"
        if not service_ports:
            # A headless Service may have no ports: its addresses alone.
            if util.is_headless(service):
                subsets.append({field: [address]})
            continue
        for service_port in service_ports:
            number = util.find_port(pod, service_port)
            if number is None:
                continue
            subsets.append({field: [address], "ports": [endpoint_port(service_port, number)]})
    return repack_subsets(subsets)


def truncate_subsets(subsets: list[dict[str, Any]], capacity: int = MAX_CAPACITY) -> bool:
    """Upstream truncateEndpoints: when there are more than `capacity` addresses, keep ready
    addresses first and spread what is kept over the subsets in proportion to their size
    (rounded up, the last subsets getting what is left). Changes `subsets` in place; True
    when something was cut."""
    total_ready = sum(len(s.get("addresses") or []) for s in subsets)
    total_not_ready = sum(len(s.get("notReadyAddresses") or []) for s in subsets)
    if total_ready + total_not_ready <= capacity:
        return False
    truncate_ready = total_ready > capacity
    if truncate_ready:
        room, total = capacity, total_ready
    else:
        room, total = capacity - total_ready, total_not_ready
    can_be_added = room
    for subset in subsets:
        field = "addresses" if truncate_ready else "notReadyAddresses"
        in_subset = len(subset.get(field) or [])
        to_add = min(math.ceil(in_subset / total * room) if total else 0, can_be_added)
        kept = (subset.get(field) or [])[:to_add]
        if kept:
            subset[field] = kept
        else:
            subset.pop(field, None)
        if truncate_ready:
            subset.pop("notReadyAddresses", None)
        can_be_added -= len(kept)
    return True


def _without_target_versions(subsets: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Subsets compared without the pods' resourceVersions (upstream compares so, to skip
    writes caused by pod changes that do not matter)."""
    cleaned = copy.deepcopy(subsets)
    for subset in cleaned:
        for field in ("addresses", "notReadyAddresses"):
            for address in subset.get(field) or []:
                (address.get("targetRef") or {}).pop("resourceVersion", None)
    return cleaned


def desired_labels(service: dict[str, Any]) -> dict[str, str]:
    """The Service's labels, the headless marker for a Service without a cluster IP, and
    skip-mirror (the mirroring controller leaves controller-made Endpoints alone)."""
    labels = dict(service["metadata"].get("labels") or {})
    labels.pop(util.LABEL_HEADLESS, None)
    cluster_ip = (service.get("spec") or {}).get("clusterIP")
    if not cluster_ip or cluster_ip == "None":
        labels[util.LABEL_HEADLESS] = ""
    labels[util.LABEL_SKIP_MIRROR] = "true"
    return labels


# -- the controller ---------------------------------------------------------------------------

class EndpointsController(util.PodServiceHandlers, Controller):
    name = "endpoint-controller"
    workers = 4

    def __init__(self, client):
        super().__init__(client)
        self.services = self.informer(SERVICES)
        self.pods = self.informer(PODS)
        self.endpoints = self.informer(ENDPOINTS)
        self.recorder = EventRecorder(client, self.name)
        self.trigger_times = util.TriggerTimeTracker()
        self.written = util.WrittenVersions()
        self.services.add_handlers(**self.enqueue_handlers())
        self.pods.add_handlers(on_add=self._pod_added, on_update=self._pod_updated, on_delete=self._pod_added)
        self.endpoints.add_handlers(on_delete=self._endpoints_deleted)

    def _endpoints_deleted(self, endpoints: dict[str, Any]) -> None:
        key = object_key(endpoints)
        self.written.observed_delete(key)
        self.queue.add(key)

    async def on_synced(self) -> None:
        # Upstream checkLeftoverEndpoints: Endpoints whose Service went while we were down.
        for endpoints in self.endpoints.list():
            annotations = endpoints["metadata"].get("annotations") or {}
            if util.LEADER_ELECTION not in annotations:
                self.enqueue(endpoints)

    async def reconcile(self, key: str) -> None:
        namespace, name = split_key(key)
        service = self.services.get(key)
        if service is None:
            self.trigger_times.forget(key)
            if self.endpoints.get(key) is None:
                self.written.forget(key)
                return
            try:
                await self.client.delete(ENDPOINTS, name, namespace)
            except errors.NotFound:
                pass
            self.written.deleted(key)
            return
        selector = util.service_selector(service)
        if selector is None:
            return
        matcher = label_selector_from_set(selector)
        pods = [pod for pod in self.pods.list(namespace) if matcher.matches(pod["metadata"].get("labels") or {})]
        trigger_time = self.trigger_times.compute(key, service, pods)
        subsets = desired_subsets(service, pods)
        labels = desired_labels(service)

        current = self.endpoints.get(key)
        if self.written.is_stale(key, current):
            raise errors.Conflict(f"endpoints informer cache is out of date for {key}")
        # Cut before comparing (upstream cuts after, and so rewrites a full object each sync).
        truncated = truncate_subsets(subsets)
        if current is not None:
            annotations = current["metadata"].get("annotations") or {}
            if (_without_target_versions(current.get("subsets") or []) == _without_target_versions(subsets)
                    and (current["metadata"].get("labels") or {}) == labels
                    and (annotations.get(util.OVER_CAPACITY) == TRUNCATED) == truncated):
                return
            updated = copy.deepcopy(current)
        else:
            updated = {"apiVersion": "v1", "kind": "Endpoints",
                       "metadata": {"name": name, "namespace": namespace}}
        meta = updated["metadata"]
        meta["labels"] = labels
        annotations = dict(meta.get("annotations") or {})
        if trigger_time is not None:
            annotations[util.LAST_CHANGE_TRIGGER_TIME] = util.format_trigger_time(trigger_time)
        else:
            annotations.pop(util.LAST_CHANGE_TRIGGER_TIME, None)
        if truncated:
            annotations[util.OVER_CAPACITY] = TRUNCATED
        else:
            annotations.pop(util.OVER_CAPACITY, None)
        if annotations:
            meta["annotations"] = annotations
        else:
            meta.pop("annotations", None)
        if subsets:
            updated["subsets"] = subsets
        else:  # as upstream serializes an empty list: no field at all
            updated.pop("subsets", None)

        try:
            if current is None:
                written = await self.client.create(ENDPOINTS, updated, namespace)
            else:
                written = await self.client.update(ENDPOINTS, updated)
        except errors.AlreadyExists:
            raise errors.Conflict(f"endpoints {key} exists but is not in the cache yet")
        except errors.Forbidden as exc:
            if current is None and "because it is being terminated" in str(exc):
                return  # the namespace is going: drop the key, as upstream
            await self._failed(service, current is None, exc)
            raise
        except errors.Conflict:
            raise
        except Exception as exc:
            await self._failed(service, current is None, exc)
            raise
        self.written.wrote(key, written)

    async def _failed(self, service: dict[str, Any], creating: bool, exc: Exception) -> None:
        namespace, name = service["metadata"].get("namespace"), service["metadata"]["name"]
        target = {"apiVersion": "v1", "kind": "Endpoints", "metadata": {"name": name, "namespace": namespace}}
        if creating:
            await self.recorder.event(target, "Warning", "FailedToCreateEndpoint",
                                      f"Failed to create endpoint for service {namespace}/{name}: {exc}")
        else:
            await self.recorder.event(target, "Warning", "FailedToUpdateEndpoint",
                                      f"Failed to update endpoint {namespace}/{name}: {exc}")
