"""What the Endpoints and EndpointSlice controllers share (upstream
pkg/controller/util/endpoint and staging k8s.io/endpointslice/util): which pods back a
Service, which port a service port reaches on a pod, which Services a pod change touches,
the last-change trigger time, a guard against acting on an informer cache that has not
yet seen our own writes, and what the EndpointSlice and mirroring controllers share about
slices (port and endpoint identity, which controller a slice belongs to, writing a plan).

Everything here is pure except `services_for_pod*` and `managed_slices` (which read an
informer), the handler mixins `PodServiceHandlers` and `SliceOwnerHandlers` (which read
informers and queue keys) and `write_slices` (which writes through the client).
"""

from __future__ import annotations

import datetime
import ipaddress
from typing import Any, Iterable

from pyk8s.api import errors
from pyk8s.api.resources import lookup
from pyk8s.api.selectors import label_selector_from_set
from pyk8s.client.informer import object_key
from pyk8s.controllers import podtemplate

# Annotation and label names (core/v1 and discovery/v1 constants).
LAST_CHANGE_TRIGGER_TIME = "endpoints.kubernetes.io/last-change-trigger-time"
OVER_CAPACITY = "endpoints.kubernetes.io/over-capacity"
LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration"
LEADER_ELECTION = "control-plane.alpha.kubernetes.io/leader"
LABEL_SERVICE_NAME = "kubernetes.io/service-name"
LABEL_MANAGED_BY = "endpointslice.kubernetes.io/managed-by"
LABEL_SKIP_MIRROR = "endpointslice.kubernetes.io/skip-mirror"
LABEL_HEADLESS = "service.kubernetes.io/headless"
LABEL_ZONE = "topology.kubernetes.io/zone"


# -- services ------------------------------------------------------------------------

def service_selector(service: dict[str, Any]) -> dict[str, str] | None:
    """The Service's pod selector, or None for a Service without one (its endpoints are
    written by hand) and for ExternalName Services, which get no endpoints."""
    spec = service.get("spec") or {}
    if spec.get("type") == "ExternalName":
        return None
    return spec.get("selector") or None


def is_headless(service: dict[str, Any]) -> bool:
    return (service.get("spec") or {}).get("clusterIP") == "None"


def service_ip_family(service: dict[str, Any]) -> str:
    """IPv4 or IPv6: the Service's first IP family (upstream podToEndpointAddressForService)."""
    spec = service.get("spec") or {}
    families = spec.get("ipFamilies") or []
    if families:
        return families[0]
    cluster_ip = spec.get("clusterIP") or ""
    if cluster_ip and cluster_ip != "None" and ":" in cluster_ip:
        return "IPv6"
    return "IPv4"


def ip_family(address: str) -> str | None:
    try:
        return "IPv6" if ipaddress.ip_address(address).version == 6 else "IPv4"
    except ValueError:
        return None


# -- pods ----------------------------------------------------------------------------

def is_pod_terminal(pod: dict[str, Any]) -> bool:
    return (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed")


def pod_ips(pod: dict[str, Any]) -> list[str]:
    status = pod.get("status") or {}
    ips = [entry.get("ip") for entry in status.get("podIPs") or [] if entry.get("ip")]
    if not ips and status.get("podIP"):
        ips = [status["podIP"]]
    return ips


def should_pod_be_in_endpoints(pod: dict[str, Any], include_terminating: bool) -> bool:
    """Upstream ShouldPodBeInEndpoints: no finished pods, no pods without an IP, and pods
    being deleted only when asked for (EndpointSlices keep them, marked terminating)."""
    if is_pod_terminal(pod):
        return False
    if not pod_ips(pod):
        return False
    if not include_terminating and pod["metadata"].get("deletionTimestamp"):
        return False
    return True


def pod_address_for_service(service: dict[str, Any], pod: dict[str, Any]) -> str | None:
    """The pod IP of the Service's IP family, or None."""
    family = service_ip_family(service)
    for ip in pod_ips(pod):
        if ip_family(ip) == family:
            return ip
    return None


def should_set_hostname(pod: dict[str, Any], service: dict[str, Any]) -> bool:
    """A pod's hostname is published when its subdomain names the Service (upstream
    ShouldSetHostname: the pod is then `<hostname>.<service>.<ns>.svc`)."""
    spec = pod.get("spec") or {}
    return (bool(spec.get("hostname")) and spec.get("subdomain") == service["metadata"]["name"]
            and pod["metadata"].get("namespace") == service["metadata"].get("namespace"))


def find_port(pod: dict[str, Any], service_port: dict[str, Any]) -> int | None:
    """The container port a service port's targetPort reaches on this pod (upstream
    podutil.FindPort): a number is itself; a name is looked up among the pod's container
    ports of the same protocol (containers, then sidecar init containers); None when the
    pod has no such named port."""
    target = service_port.get("targetPort")
    if target is None or target == "" or target == 0:
        target = service_port.get("port")
    if isinstance(target, int):
        return target
    if isinstance(target, str) and target.isdigit():
        return int(target)
    protocol = service_port.get("protocol") or "TCP"
    spec = pod.get("spec") or {}
    containers = list(spec.get("containers") or [])
    containers += [c for c in spec.get("initContainers") or [] if c.get("restartPolicy") == "Always"]
    for container in containers:
        for port in container.get("ports") or []:
            if port.get("name") == target and (port.get("protocol") or "TCP") == protocol:
                return int(port["containerPort"])
    return None


def target_ref(pod: dict[str, Any]) -> dict[str, Any]:
    meta = pod["metadata"]
    return {"kind": "Pod", "namespace": meta.get("namespace"), "name": meta["name"], "uid": meta.get("uid")}


def endpoint_relevant(pod: dict[str, Any]) -> tuple:
    """What of a pod ends up in its Services' endpoints (upstream podEndpointsChanged)."""
    spec = pod.get("spec") or {}
    return (tuple(pod_ips(pod)), bool(pod["metadata"].get("deletionTimestamp")), podtemplate.is_pod_ready(pod),
            (pod.get("status") or {}).get("phase"), spec.get("hostname"), spec.get("subdomain"),
            spec.get("nodeName"),
            tuple((p.get("name"), p.get("containerPort"), p.get("protocol"))
                  for c in spec.get("containers") or [] for p in c.get("ports") or []))


# -- which services a pod change touches ------------------------------------------------

def services_for_pod(services, pod: dict[str, Any], labels: dict[str, str] | None = None) -> set[str]:
    """Keys of the Services in the pod's namespace whose selector matches it (upstream
    GetPodServiceMemberships). `services` is an informer."""
    namespace = pod["metadata"].get("namespace")
    labels = pod["metadata"].get("labels") or {} if labels is None else labels
    keys = set()
    for service in services.list(namespace):
        selector = service_selector(service)
        if selector is None:
            continue
        if label_selector_from_set(selector).matches(labels):
            keys.add(f"{namespace}/{service['metadata']['name']}")
    return keys


def services_for_pod_change(services, old: dict[str, Any], new: dict[str, Any]) -> set[str]:
    """Upstream GetServicesToUpdateOnPodChange: nothing for a resync; the old and new
    Services when labels changed; the current ones when an endpoint field changed."""
    if old["metadata"].get("resourceVersion") == new["metadata"].get("resourceVersion"):
        return set()
    labels_changed = (old["metadata"].get("labels") or {}) != (new["metadata"].get("labels") or {})
    if not labels_changed and endpoint_relevant(old) == endpoint_relevant(new):
        return set()
    keys = services_for_pod(services, new)
    if labels_changed:
        keys |= services_for_pod(services, old)
    return keys


class PodServiceHandlers:
    """Pod informer handlers that queue the Services a pod change touches (Endpoints and
    EndpointSlice controllers). The controller sets `queue` and `services` (informer)."""

    def _pod_added(self, pod: dict[str, Any]) -> None:
        for key in services_for_pod(self.services, pod):
            self.queue.add(key)

    def _pod_updated(self, old: dict[str, Any], new: dict[str, Any]) -> None:
        for key in services_for_pod_change(self.services, old, new):
            self.queue.add(key)


# -- last change trigger time --------------------------------------------------------------

def _parse(text: str | None) -> datetime.datetime | None:
    return podtemplate.parse_time(text)


def format_trigger_time(moment: datetime.datetime) -> str:
    """Go's RFC3339Nano in UTC, which drops a zero fraction: 2026-01-01T12:00:00Z."""
    moment = moment.astimezone(datetime.timezone.utc)
    text = moment.strftime("%Y-%m-%dT%H:%M:%S")
    if moment.microsecond:
        text += ("." + f"{moment.microsecond:06d}").rstrip("0")
    return text + "Z"


class TriggerTimeTracker:
    """Upstream TriggerTimeTracker: the time of the earliest change (a pod's Ready
    transition, or the Service's creation) that the coming endpoints write reflects, which
    becomes the `last-change-trigger-time` annotation. The first sync of a Service uses its
    creation time; later syncs the earliest pod trigger time that moved since the last
    sync; None when nothing moved (the annotation is then dropped)."""

    def __init__(self):
        self._states: dict[str, tuple[dict[str, datetime.datetime], datetime.datetime | None]] = {}

    @staticmethod
    def pod_trigger_time(pod: dict[str, Any]) -> datetime.datetime | None:
        condition = podtemplate.pod_condition(pod, "Ready")
        return _parse(condition.get("lastTransitionTime")) if condition else None

    def compute(self, key: str, service: dict[str, Any], pods: Iterable[dict[str, Any]]) -> datetime.datetime | None:
        known = key in self._states
        last_pods, last_service = self._states.get(key, ({}, None))
        earliest: datetime.datetime | None = None
        pod_times: dict[str, datetime.datetime] = {}
        for pod in pods:
            moment = self.pod_trigger_time(pod)
            if moment is None:
                continue
            name = pod["metadata"]["name"]
            pod_times[name] = moment
            previous = last_pods.get(name)
            if previous is None or moment > previous:
                earliest = moment if earliest is None else min(earliest, moment)
        service_time = _parse(service["metadata"].get("creationTimestamp"))
        if service_time is not None and (last_service is None or service_time > last_service):
            earliest = service_time if earliest is None else min(earliest, service_time)
        self._states[key] = (pod_times, service_time)
        if not known:
            return service_time
        return earliest

    def forget(self, key: str) -> None:
        self._states.pop(key, None)


# -- our own writes versus the cache ---------------------------------------------------------

def _revision(obj: dict[str, Any]) -> int:
    try:
        return int(obj["metadata"].get("resourceVersion") or 0)
    except (TypeError, ValueError):
        return 0


class WrittenVersions:
    """The resourceVersions this controller wrote, per object key (upstream's
    staleEndpointsTracker / endpointSliceTracker): a reconcile that finds the cache older
    than our last write, or still holding what we deleted, waits for the informer instead of
    writing again from stale data (a second create of a generateName slice, say)."""

    def __init__(self):
        self._written: dict[str, int] = {}
        self._deleted: set[str] = set()

    def wrote(self, key: str, obj: dict[str, Any]) -> None:
        self._written[key] = max(self._written.get(key, 0), _revision(obj))
        self._deleted.discard(key)

    def deleted(self, key: str) -> None:
        self._written.pop(key, None)
        self._deleted.add(key)

    def observed_delete(self, key: str) -> None:
        self._deleted.discard(key)
        self._written.pop(key, None)

    def is_stale(self, key: str, cached: dict[str, Any] | None) -> bool:
        if cached is None:
            return key in self._written
        if key in self._deleted:
            return True
        return _revision(cached) < self._written.get(key, 0)

    def tracks(self, key: str) -> bool:
        return key in self._written or key in self._deleted

    def forget(self, key: str) -> None:
        self._written.pop(key, None)
        self._deleted.discard(key)


# -- endpoint slices ----------------------------------------------------------------------------

ENDPOINT_SLICES = lookup("discovery.k8s.io", "v1", "endpointslices")


def slice_port(port: dict[str, Any], number: Any) -> dict[str, Any]:
    """A slice port named and typed as `port` (a Service or Endpoints port), reaching
    `number`; the name is "" when unnamed (kubectl reads the name of every port)."""
    entry = {"name": port.get("name") or "", "port": number, "protocol": port.get("protocol") or "TCP"}
    if port.get("appProtocol"):
        entry["appProtocol"] = port["appProtocol"]
    return entry


def port_map_key(ports: list[dict[str, Any]] | None) -> tuple:
    """The identity of a set of ports, whatever their order."""
    return tuple(sorted((p.get("name") or "", p.get("port") or 0, p.get("protocol") or "TCP",
                         p.get("appProtocol") or "") for p in ports or []))


def endpoint_key(endpoint: dict[str, Any]) -> tuple:
    """Which endpoint this is, across versions (upstream's endpoint hash: addresses,
    hostname and the pod it stands for)."""
    ref = endpoint.get("targetRef") or {}
    return (tuple(sorted(endpoint.get("addresses") or [])), endpoint.get("hostname") or "",
            ref.get("namespace") or "", ref.get("name") or "")


def slice_owner_key(endpoint_slice: dict[str, Any], managed_by: str) -> str | None:
    """`namespace/service-name` of a slice managed by `managed_by`, else None."""
    labels = endpoint_slice["metadata"].get("labels") or {}
    if labels.get(LABEL_MANAGED_BY) != managed_by or not labels.get(LABEL_SERVICE_NAME):
        return None
    return f"{endpoint_slice['metadata'].get('namespace')}/{labels[LABEL_SERVICE_NAME]}"


def managed_slices(slices, namespace: str | None, name: str, managed_by: str) -> list[dict[str, Any]]:
    """The slices of Service (or Endpoints) `name` that `managed_by` manages. `slices` is an
    informer."""
    return [s for s in slices.list(namespace)
            if (s["metadata"].get("labels") or {}).get(LABEL_SERVICE_NAME) == name
            and (s["metadata"].get("labels") or {}).get(LABEL_MANAGED_BY) == managed_by]


class SliceOwnerHandlers:
    """Slice informer handlers and the stale-cache check for a controller that writes
    EndpointSlices labelled managed-by `slice_manager`: a changed or deleted slice of ours
    queues its owner's key; a delete the informer saw ends the tracking of our own delete.
    The controller sets `queue`, `slices` (informer), `written` (WrittenVersions) and
    `_slices_written` (owner key -> keys of the slices written for it)."""

    slice_manager: str

    def _slice_changed(self, endpoint_slice: dict[str, Any]) -> None:
        key = slice_owner_key(endpoint_slice, self.slice_manager)
        if key:
            self.queue.add(key)

    def _slice_deleted(self, endpoint_slice: dict[str, Any]) -> None:
        self.written.observed_delete(object_key(endpoint_slice))
        self._slice_changed(endpoint_slice)

    def _slices_stale(self, key: str) -> bool:
        """Whether the slice cache has not yet seen a write we made for owner `key`."""
        return any(self.written.is_stale(slice_key, self.slices.get(slice_key))
                   for slice_key in self._slices_written.get(key, ()))


async def write_slices(client, written: WrittenVersions, written_keys: set[str], namespace: str | None,
                       to_create: list[dict[str, Any]], to_update: list[dict[str, Any]],
                       to_delete: list[dict[str, Any]]) -> bool:
    """Create, update and delete the planned slices, noting each write in `written` and its
    key in `written_keys`. False when a create finds the namespace terminating (the key is
    then dropped, as upstream); nothing after that create is written."""
    for endpoint_slice in to_create:
        try:
            created = await client.create(ENDPOINT_SLICES, endpoint_slice, namespace)
        except errors.Forbidden as exc:
            if "because it is being terminated" in str(exc):
                return False
            raise
        slice_key = object_key(created)
        written.wrote(slice_key, created)
        written_keys.add(slice_key)
    for endpoint_slice in to_update:
        updated = await client.update(ENDPOINT_SLICES, endpoint_slice)
        slice_key = object_key(updated)
        written.wrote(slice_key, updated)
        written_keys.add(slice_key)
    for endpoint_slice in to_delete:
        slice_key = object_key(endpoint_slice)
        try:
            await client.delete(ENDPOINT_SLICES, endpoint_slice["metadata"]["name"], namespace)
        except errors.NotFound:
            pass
        written.deleted(slice_key)
        written_keys.add(slice_key)
    return True
