"""The EndpointSlice controller (upstream pkg/controller/endpointslice with the reconciler of
staging k8s.io/endpointslice).

For every Service with a selector it keeps discovery.k8s.io/v1 EndpointSlices named
`<service>-<random>`, labelled `kubernetes.io/service-name` and
`endpointslice.kubernetes.io/managed-by: endpointslice-controller.k8s.io`, owned by the
Service (the garbage collector removes them with it). Each selected pod with an IP is one
endpoint with conditions ready / serving / terminating (pods being deleted stay, marked
terminating and not ready, so proxies can drain them), its node, the node's zone, its
hostname when its subdomain names the Service, and a targetRef. Pods whose resolved ports
differ go to different slices (one port map per slice); a slice holds at most 100 endpoints.

Updates follow upstream's packing: endpoints stay in the slice they are in, removed ones
leave it, new ones first fill slices that are being written anyway, then the fullest
untouched slice that can take them all, then new slices; a create that would pair with a
delete becomes an update of the slice being deleted. A Service with no endpoints keeps one
empty placeholder slice.

Informers: services, pods (Services selecting the pod before/after a change), nodes (zones;
pods on a node that did not exist yet), and endpointslices (a changed or deleted slice of ours
queues its Service).
"""

from __future__ import annotations

import copy
import ipaddress
import logging
from typing import Any

from pyk8s.api import errors
from pyk8s.api.resources import lookup
from pyk8s.api.selectors import label_selector_from_set
from pyk8s.controllers import endpointutil as util
from pyk8s.controllers import podtemplate
from pyk8s.controllers.base import Controller, owner_reference, split_key
from pyk8s.controllers.endpointutil import ENDPOINT_SLICES, endpoint_key, port_map_key

log = logging.getLogger("pyk8s.controllers.endpointslice")

SERVICES = lookup("", "v1", "services")
PODS = lookup("", "v1", "pods")
NODES = lookup("", "v1", "nodes")

CONTROLLER_NAME = "endpointslice-controller.k8s.io"
# Upstream --max-endpoints-per-slice default.
MAX_ENDPOINTS_PER_SLICE = 100
RESERVED_LABELS = (util.LABEL_SERVICE_NAME, util.LABEL_MANAGED_BY, util.LABEL_HEADLESS)


# -- pure: endpoints of pods --------------------------------------------------------------

def endpoint_ports(service: dict[str, Any], pod: dict[str, Any]) -> list[dict[str, Any]]:
    """The slice ports for a pod: each service port whose targetPort the pod has, with the
    service port's name ("" when unnamed: kubectl reads the name of every port)."""
    ports = []
    for service_port in (service.get("spec") or {}).get("ports") or []:
        number = util.find_port(pod, service_port)
        if number is None:
            continue
        ports.append(util.slice_port(service_port, number))
    return ports


def pod_to_endpoint(pod: dict[str, Any], node: dict[str, Any] | None, service: dict[str, Any],
                    address_type: str) -> dict[str, Any]:
    """Upstream podToEndpoint: ready only when serving and not terminating, unless the
    Service publishes not-ready addresses."""
    spec = pod.get("spec") or {}
    serving = podtemplate.is_pod_ready(pod)
    terminating = bool(pod["metadata"].get("deletionTimestamp"))
    ready = bool((service.get("spec") or {}).get("publishNotReadyAddresses")) or (serving and not terminating)
    endpoint: dict[str, Any] = {
        "addresses": [ip for ip in util.pod_ips(pod) if util.ip_family(ip) == address_type],
        "conditions": {"ready": ready, "serving": serving, "terminating": terminating},
    }
    if util.should_set_hostname(pod, service):
        endpoint["hostname"] = spec["hostname"]
    endpoint["targetRef"] = util.target_ref(pod)
    if spec.get("nodeName"):
        endpoint["nodeName"] = spec["nodeName"]
    zone = ((node["metadata"].get("labels") or {}).get(util.LABEL_ZONE)) if node else None
    if zone:
        endpoint["zone"] = zone
    return endpoint


def _comparable(endpoint: dict[str, Any]) -> dict[str, Any]:
    ref = endpoint.get("targetRef")
    if ref and "resourceVersion" in ref:
        endpoint = dict(endpoint, targetRef={k: v for k, v in ref.items() if k != "resourceVersion"})
    return endpoint


def desired_endpoints(service: dict[str, Any], pods: list[dict[str, Any]], nodes,
                      address_type: str) -> tuple[dict[tuple, tuple[list, list]], list[str]]:
    """{port map key: (ports, endpoints)} for the selected pods, and the names of pods left
    out because their node does not exist (upstream retries those later)."""
    publish_not_ready = bool((service.get("spec") or {}).get("publishNotReadyAddresses"))
    by_port_map: dict[tuple, tuple[list, list]] = {}
    missing_node: list[str] = []
    for pod in sorted(pods, key=lambda p: p["metadata"]["name"]):
        if not util.should_pod_be_in_endpoints(pod, True):
            continue
        ports = endpoint_ports(service, pod)
        key = port_map_key(ports)
        _, endpoints = by_port_map.setdefault(key, (ports, []))
        node_name = (pod.get("spec") or {}).get("nodeName") or ""
        node = nodes(node_name)
        if node is None and not publish_not_ready:
            missing_node.append(pod["metadata"]["name"])
            continue
        endpoint = pod_to_endpoint(pod, node, service, address_type)
        if endpoint["addresses"]:
            endpoints.append(endpoint)
    return by_port_map, missing_node


# -- pure: slices ------------------------------------------------------------------------------

def slice_labels(service: dict[str, Any], managed_by: str = CONTROLLER_NAME) -> dict[str, str]:
    """Upstream setEndpointSliceLabels: the Service's labels but the reserved ones, the
    headless marker, the service name and the managing controller."""
    labels = {k: v for k, v in (service["metadata"].get("labels") or {}).items() if k not in RESERVED_LABELS}
    cluster_ip = (service.get("spec") or {}).get("clusterIP")
    if not cluster_ip or cluster_ip == "None":
        labels[util.LABEL_HEADLESS] = ""
    labels[util.LABEL_SERVICE_NAME] = service["metadata"]["name"]
    labels[util.LABEL_MANAGED_BY] = managed_by
    return labels


def new_slice(service: dict[str, Any], ports: list[dict[str, Any]], address_type: str) -> dict[str, Any]:
    meta = service["metadata"]
    return {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
            "metadata": {"generateName": f"{meta['name']}-", "namespace": meta.get("namespace"),
                         "labels": slice_labels(service),
                         "ownerReferences": [owner_reference({"apiVersion": "v1", "kind": "Service", "metadata": meta})]},
            "addressType": address_type, "endpoints": [], "ports": copy.deepcopy(ports)}


def owned_by(endpoint_slice: dict[str, Any], service: dict[str, Any]) -> bool:
    uid = service["metadata"].get("uid")
    return any(ref.get("uid") == uid and ref.get("kind") == "Service"
               for ref in endpoint_slice["metadata"].get("ownerReferences") or [])


def _is_placeholder_for(endpoint_slice: dict[str, Any], placeholder: dict[str, Any]) -> bool:
    labels = endpoint_slice["metadata"].get("labels") or {}
    return (not endpoint_slice.get("endpoints") and not endpoint_slice.get("ports")
            and endpoint_slice.get("addressType") == placeholder["addressType"]
            and all(labels.get(k) == v for k, v in placeholder["metadata"]["labels"].items()))


def _endpoint_sort_key(endpoint: dict[str, Any]) -> tuple:
    addresses = endpoint.get("addresses") or [""]
    try:
        parsed = ipaddress.ip_address(addresses[0])
        return (parsed.version, int(parsed))
    except ValueError:
        return (9, 0)


def _reconcile_port_map(service: dict[str, Any], existing: list[dict[str, Any]], ports: list[dict[str, Any]],
                        desired: list[dict[str, Any]], address_type: str, max_per_slice: int):
    """Upstream reconcileByPortMapping for one port map: (create, update, delete, unchanged)."""
    to_create: list[dict] = []
    to_update: list[dict] = []
    to_delete: list[dict] = []
    unchanged: dict[str, dict] = {}
    wanted = {endpoint_key(e): e for e in sorted(desired, key=_endpoint_sort_key)}
    labels = slice_labels(service)

    # 1. Existing slices keep the endpoints still wanted, in their new version.
    for existing_slice in existing:
        kept = []
        changed = False
        for endpoint in existing_slice.get("endpoints") or []:
            key = endpoint_key(endpoint)
            want = wanted.pop(key, None)
            if want is None:
                continue
            kept.append(want)
            if _comparable(want) != _comparable(endpoint):
                changed = True
        labels_changed = (existing_slice["metadata"].get("labels") or {}) != labels
        if changed or len(kept) != len(existing_slice.get("endpoints") or []):
            if not kept:
                to_delete.append(existing_slice)
                continue
            updated = copy.deepcopy(existing_slice)
            updated["endpoints"] = kept
            updated["metadata"]["labels"] = labels
            to_update.append(updated)
        elif labels_changed:
            updated = copy.deepcopy(existing_slice)
            updated["metadata"]["labels"] = labels
            to_update.append(updated)
        else:
            unchanged[existing_slice["metadata"]["name"]] = existing_slice

    remaining = list(wanted.values())
    # 2. Slices written anyway take new endpoints first, fullest first.
    if remaining and to_update:
        for endpoint_slice in sorted(to_update, key=lambda s: -len(s["endpoints"])):
            while remaining and len(endpoint_slice["endpoints"]) < max_per_slice:
                endpoint_slice["endpoints"].append(remaining.pop(0))

    # 3. The rest: into the fullest untouched slice that can take them all, else new slices.
    while remaining:
        target = None
        if len(remaining) < max_per_slice and unchanged:
            fitting = [s for s in unchanged.values() if max_per_slice - len(s.get("endpoints") or []) >= len(remaining)]
            if fitting:
                chosen = min(fitting, key=lambda s: max_per_slice - len(s.get("endpoints") or []))
                unchanged.pop(chosen["metadata"]["name"])
                target = copy.deepcopy(chosen)
                target["metadata"]["labels"] = labels
                target.setdefault("endpoints", [])
                to_update.append(target)
        if target is None:
            target = new_slice(service, ports, address_type)
            to_create.append(target)
        while remaining and len(target["endpoints"]) < max_per_slice:
            target["endpoints"].append(remaining.pop(0))
    return to_create, to_update, to_delete, unchanged


def plan_slices(service: dict[str, Any], desired: dict[tuple, tuple[list, list]], existing: list[dict[str, Any]],
                address_type: str = "IPv4", max_per_slice: int = MAX_ENDPOINTS_PER_SLICE):
    """What to create, update and delete so the Service's slices hold `desired`
    ({port map key: (ports, endpoints)}). Pure; the slices returned are new dicts."""
    to_create: list[dict] = []
    to_update: list[dict] = []
    to_delete: list[dict] = []
    by_port_map: dict[tuple, list[dict]] = {}
    for existing_slice in existing:
        if existing_slice.get("addressType") != address_type or not owned_by(existing_slice, service):
            to_delete.append(existing_slice)
            continue
        by_port_map.setdefault(port_map_key(existing_slice.get("ports")), []).append(existing_slice)

    for key, (ports, endpoints) in desired.items():
        if not endpoints:
            continue
        created, updated, deleted, _ = _reconcile_port_map(service, by_port_map.get(key, []), ports, endpoints,
                                                           address_type, max_per_slice)
        to_create += created
        to_update += updated
        to_delete += deleted
    for key, slices in by_port_map.items():
        if key not in desired or not desired[key][1]:
            to_delete += slices

    # A Service with no endpoints keeps one empty placeholder slice.
    if len(existing) == len(to_delete) and not to_create:
        placeholder = new_slice(service, [], address_type)
        if len(to_delete) == 1 and _is_placeholder_for(to_delete[0], placeholder) and owned_by(to_delete[0], service):
            to_delete = []
        else:
            to_create.append(placeholder)

    # Recycle: a create paired with a delete becomes an update of the slice being deleted.
    index = 0
    while index < len(to_delete) and to_create:
        doomed = to_delete[index]
        if doomed.get("addressType") == address_type and owned_by(doomed, service):
            recycled = to_create.pop()
            recycled["metadata"].pop("generateName", None)
            recycled["metadata"]["name"] = doomed["metadata"]["name"]
            recycled["metadata"]["resourceVersion"] = doomed["metadata"].get("resourceVersion")
            if doomed["metadata"].get("annotations"):
                recycled["metadata"]["annotations"] = dict(doomed["metadata"]["annotations"])
            to_update.append(recycled)
            to_delete.pop(index)
        else:
            index += 1
    return to_create, to_update, to_delete


def set_trigger_time(endpoint_slice: dict[str, Any], trigger_time) -> None:
    annotations = dict(endpoint_slice["metadata"].get("annotations") or {})
    if trigger_time is not None:
        annotations[util.LAST_CHANGE_TRIGGER_TIME] = util.format_trigger_time(trigger_time)
    else:
        annotations.pop(util.LAST_CHANGE_TRIGGER_TIME, None)
    if annotations:
        endpoint_slice["metadata"]["annotations"] = annotations
    else:
        endpoint_slice["metadata"].pop("annotations", None)


# -- the controller ---------------------------------------------------------------------------

class EndpointSliceController(util.PodServiceHandlers, util.SliceOwnerHandlers, Controller):
    name = "endpointslice-controller"
    slice_manager = CONTROLLER_NAME
    workers = 4

    def __init__(self, client):
        super().__init__(client)
        self.services = self.informer(SERVICES)
        self.pods = self.informer(PODS)
        self.nodes = self.informer(NODES)
        self.slices = self.informer(ENDPOINT_SLICES)
        self.trigger_times = util.TriggerTimeTracker()
        self.written = util.WrittenVersions()
        # service key -> keys of the slices we wrote for it
        self._slices_written: dict[str, set[str]] = {}
        self.services.add_handlers(**self.enqueue_handlers())
        self.pods.add_handlers(on_add=self._pod_added, on_update=self._pod_updated, on_delete=self._pod_added)
        self.nodes.add_handlers(on_add=self._node_added, on_update=self._node_updated)
        self.slices.add_handlers(on_add=self._slice_changed, on_update=lambda old, new: self._slice_changed(new),
                                 on_delete=self._slice_deleted)

    # -- handlers --------------------------------------------------------------------------

    def _pods_on_node(self, node_name: str) -> None:
        for pod in self.pods.list():
            if (pod.get("spec") or {}).get("nodeName") == node_name:
                self._pod_added(pod)

    def _node_added(self, node: dict[str, Any]) -> None:
        self._pods_on_node(node["metadata"]["name"])

    def _node_updated(self, old: dict[str, Any], new: dict[str, Any]) -> None:
        old_zone = (old["metadata"].get("labels") or {}).get(util.LABEL_ZONE)
        new_zone = (new["metadata"].get("labels") or {}).get(util.LABEL_ZONE)
        if old_zone != new_zone:
            self._pods_on_node(new["metadata"]["name"])

    # -- reconcile -------------------------------------------------------------------------

    def _node(self, name: str) -> dict[str, Any] | None:
        return self.nodes.get(name) if name else None

    async def reconcile(self, key: str) -> None:
        namespace, name = split_key(key)
        service = self.services.get(key)
        if service is None:
            # The garbage collector deletes the slices the Service owned.
            self.trigger_times.forget(key)
            for slice_key in self._slices_written.pop(key, ()):
                self.written.forget(slice_key)
            return
        selector = util.service_selector(service)
        if selector is None:
            return
        if self._slices_stale(key):
            raise errors.Conflict(f"endpointslice informer cache is out of date for service {key}")
        matcher = label_selector_from_set(selector)
        pods = [pod for pod in self.pods.list(namespace) if matcher.matches(pod["metadata"].get("labels") or {})]
        address_type = util.service_ip_family(service)
        desired, missing_node = desired_endpoints(service, pods, self._node, address_type)
        trigger_time = self.trigger_times.compute(key, service, pods)
        existing = util.managed_slices(self.slices, namespace, name, CONTROLLER_NAME)
        to_create, to_update, to_delete = plan_slices(service, desired, existing, address_type)

        written_keys = self._slices_written.setdefault(key, set())
        if service["metadata"].get("deletionTimestamp"):
            to_create = []
        for endpoint_slice in to_create + to_update:
            set_trigger_time(endpoint_slice, trigger_time)
        if not await util.write_slices(self.client, self.written, written_keys, namespace,
                                       to_create, to_update, to_delete):
            return
        self._slices_written[key] = {k for k in written_keys if self.written.tracks(k)}
        if missing_node:
            log.info("service %s: pods %s skipped, their node is not known yet", key, ", ".join(missing_node))
