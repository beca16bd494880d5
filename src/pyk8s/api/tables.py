"""Server-side Table printing: the columns and cells `kubectl get` shows for each kind.

kubectl asks for `application/json;as=Table;v=v1;g=meta.k8s.io` and prints whatever columns
the server describes, so what a user sees is decided here. The column sets, cell formats and
status rules follow upstream's printers (`pkg/printers/internalversion`), and ages follow
apimachinery's `HumanDuration`.

Like upstream's API server, rows always carry every column, wide ones included: kubectl hides
the columns with priority >= 1 unless it was given `-o wide`.

Pure functions, no I/O: the API server passes a `Resource` from `resources.py`, the stored
object as a plain JSON dict (possibly partial: nothing here raises on missing or mistyped
fields) and the current time.
"""

from __future__ import annotations

import re
from datetime import datetime, timezone
from typing import Any, Callable

from pyk8s.api.resources import Resource

__all__ = ["column_definitions", "row_cells", "human_duration"]


# --------------------------------------------------------------------------------------------
# Durations and timestamps


def human_duration(seconds: float) -> str:
    """Render a duration with two or three significant figures, like upstream's HumanDuration.

    Up to two seconds in the future counts as "now" (clocks drift between machines); anything
    further ahead is "<invalid>".
    """
    whole_seconds = int(seconds)  # truncates toward zero, as Go's int(d.Seconds()) does
    if whole_seconds < -1:
        return "<invalid>"
    if whole_seconds < 0:
        return "0s"
    if whole_seconds < 120:
        return f"{whole_seconds}s"
    minutes = whole_seconds // 60
    if minutes < 10:
        leftover_seconds = whole_seconds % 60
        return f"{minutes}m{leftover_seconds}s" if leftover_seconds else f"{minutes}m"
    if minutes < 180:
        return f"{minutes}m"
    hours = whole_seconds // 3600
    if hours < 8:
        leftover_minutes = minutes % 60
        return f"{hours}h{leftover_minutes}m" if leftover_minutes else f"{hours}h"
    if hours < 48:
        return f"{hours}h"
    days = hours // 24
    if hours < 24 * 8:
        leftover_hours = hours % 24
        return f"{days}d{leftover_hours}h" if leftover_hours else f"{days}d"
    if hours < 24 * 365 * 2:
        return f"{days}d"
    years = days // 365
    if hours < 24 * 365 * 8:
        leftover_days = days % 365
        return f"{years}y{leftover_days}d" if leftover_days else f"{years}y"
    return f"{years}y"


def _parse_time(value: Any) -> float | None:
    """Seconds since the epoch for an RFC 3339 string, or None when absent or unreadable."""
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=timezone.utc)
    return parsed.timestamp()


def _since(timestamp: Any, now: float) -> str:
    """Age of a timestamp; "<unknown>" when it is missing (upstream's zero time)."""
    moment = _parse_time(timestamp)
    if moment is None:
        return "<unknown>"
    return human_duration(now - moment)


# --------------------------------------------------------------------------------------------
# Defensive field access: stored objects may be partial or carry the wrong types.


def _dict(value: Any) -> dict:
    return value if isinstance(value, dict) else {}


def _list(value: Any) -> list:
    return value if isinstance(value, list) else []


def _str(value: Any, default: str = "") -> str:
    if value is None:
        return default
    if isinstance(value, bool):
        return "true" if value else "false"
    return value if isinstance(value, str) else str(value)


def _int(value: Any, default: int = 0) -> int:
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return int(value)
    if isinstance(value, str):
        try:
            return int(value)
        except ValueError:
            return default
    return default


def _at(obj: Any, *path: str) -> Any:
    """The value at a dotted path, or None if any step is missing or not an object."""
    current = obj
    for key in path:
        if not isinstance(current, dict):
            return None
        current = current.get(key)
    return current


def _meta(obj: dict) -> dict:
    return _dict(_dict(obj).get("metadata"))


def _name(obj: dict) -> str:
    return _str(_meta(obj).get("name"))


def _age(obj: dict, now: float) -> str:
    return _since(_meta(obj).get("creationTimestamp"), now)


def _is_deleting(obj: dict) -> bool:
    return bool(_meta(obj).get("deletionTimestamp"))


# --------------------------------------------------------------------------------------------
# Labels and selectors, rendered the way apimachinery's String() methods do.


def _format_labels(labels: Any) -> str:
    """`a=1,b=2` sorted by key, "<none>" when empty (upstream's labels.FormatLabels)."""
    labels = _dict(labels)
    if not labels:
        return "<none>"
    return ",".join(f"{key}={_str(labels[key])}" for key in sorted(labels))


_LABEL_NAME = re.compile(r"^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$")
_DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")


def _valid_label_key(key: Any) -> bool:
    if not isinstance(key, str) or not key:
        return False
    prefix, slash, name = key.rpartition("/")
    if slash and (not prefix or len(prefix) > 253 or not _DNS_SUBDOMAIN.match(prefix)):
        return False
    return len(name) <= 63 and bool(_LABEL_NAME.match(name))


def _valid_label_value(value: Any) -> bool:
    return isinstance(value, str) and (value == "" or (len(value) <= 63 and bool(_LABEL_NAME.match(value))))


_SET_OPERATORS = {"In": " in ", "NotIn": " notin "}


def _selector_string(selector: Any) -> str | None:
    """A LabelSelector as upstream's selector string (`app=x,tier in (a,b),!gone`).

    Empty and absent selectors give "" like upstream's Everything/Nothing selectors; None
    means the selector is invalid (unknown operator, wrong value count, bad key or value).
    """
    selector = _dict(selector)
    requirements: list[tuple[str, str]] = []
    for key, value in _dict(selector.get("matchLabels")).items():
        if not _valid_label_key(key) or not _valid_label_value(value):
            return None
        requirements.append((key, f"{key}={value}"))
    for expression in _list(selector.get("matchExpressions")):
        expression = _dict(expression)
        key, operator = expression.get("key"), expression.get("operator")
        values = _list(expression.get("values"))
        if not _valid_label_key(key) or not all(_valid_label_value(v) for v in values):
            return None
        if operator in _SET_OPERATORS:
            if not values:
                return None
            rendered_values = values[0] if len(values) == 1 else ",".join(sorted(values))
            requirements.append((key, f"{key}{_SET_OPERATORS[operator]}({rendered_values})"))
        elif operator in ("Exists", "DoesNotExist"):
            if values:
                return None
            requirements.append((key, key if operator == "Exists" else f"!{key}"))
        else:
            return None
    # Upstream keeps a selector's requirements sorted by key.
    requirements.sort(key=lambda requirement: requirement[0])
    return ",".join(text for _, text in requirements)


def _format_label_selector(selector: Any) -> str:
    """Upstream's FormatLabelSelector: "<none>" for empty, "<error>" for invalid."""
    rendered = _selector_string(selector)
    if rendered is None:
        return "<error>"
    return rendered or "<none>"


def _container_cells(pod_spec: Any) -> tuple[str, str]:
    """Comma-joined container names and images of a pod spec (the wide Containers/Images)."""
    containers = [_dict(c) for c in _list(_dict(pod_spec).get("containers"))]
    return (",".join(_str(c.get("name")) for c in containers),
            ",".join(_str(c.get("image")) for c in containers))


def _list_with_more(items: list[str], total: int, shown_at_most: int = 3) -> str:
    """First few items then "+ N more...", "<unset>" when there are none."""
    rendered = ",".join(items[:shown_at_most])
    if total > shown_at_most:
        return f"{rendered} + {total - shown_at_most} more..."
    return rendered or "<unset>"


_ACCESS_MODE_ABBREVIATIONS = (
    ("ReadWriteOnce", "RWO"),
    ("ReadOnlyMany", "ROX"),
    ("ReadWriteMany", "RWX"),
    ("ReadWriteOncePod", "RWOP"),
)


def _access_modes(modes: Any) -> str:
    """Upstream's GetAccessModesAsString: abbreviations in a fixed order, each once."""
    present = set(m for m in _list(modes) if isinstance(m, str))
    return ",".join(short for full, short in _ACCESS_MODE_ABBREVIATIONS if full in present)


_BETA_STORAGE_CLASS_ANNOTATION = "volume.beta.kubernetes.io/storage-class"


def _volume_class(obj: dict) -> str:
    """The storage class of a PV or PVC; the old beta annotation wins over the field."""
    annotations = _dict(_meta(obj).get("annotations"))
    if _BETA_STORAGE_CLASS_ANNOTATION in annotations:
        return _str(annotations[_BETA_STORAGE_CLASS_ANNOTATION])
    return _str(_at(obj, "spec", "storageClassName"))


def _storage_quantity(resources: Any) -> str:
    """The `storage` quantity as written; upstream prints a missing quantity as "0"."""
    quantity = _dict(resources).get("storage")
    return "0" if quantity is None else _str(quantity)


# --------------------------------------------------------------------------------------------
# Column definitions


def _column(name: str, description: str, *, type_: str = "string", priority: int = 0,
            format_: str = "") -> dict:
    return {"name": name, "type": type_, "format": format_, "description": description,
            "priority": priority}


_NAME_DESCRIPTION = ("Name of the object: unique among objects of its kind in its namespace "
                     "(or in the cluster for cluster-scoped kinds).")
_AGE_DESCRIPTION = ("Time since the server created the object (metadata.creationTimestamp), "
                    "as an approximate human-readable duration.")
_CONTAINERS_DESCRIPTION = "Names of the containers in the pod template."
_IMAGES_DESCRIPTION = "Images of the containers in the pod template."


def _name_column(priority: int = 0) -> dict:
    return _column("Name", _NAME_DESCRIPTION, format_="name", priority=priority)


def _age_column() -> dict:
    return _column("Age", _AGE_DESCRIPTION)


def _template_columns(selector_description: str | None) -> list[dict]:
    columns = [_column("Containers", _CONTAINERS_DESCRIPTION, priority=1),
               _column("Images", _IMAGES_DESCRIPTION, priority=1)]
    if selector_description is not None:
        columns.append(_column("Selector", selector_description, priority=1))
    return columns


_DEFAULT_COLUMNS = [_name_column(), _age_column()]

_POD_COLUMNS = [
    _name_column(),
    _column("Ready", "Containers ready to serve traffic out of all the pod's containers."),
    _column("Status", "Summary of the state of the pod's containers."),
    _column("Restarts", "How many times the pod's containers restarted, and how long ago the "
                        "most recent restart was."),
    _age_column(),
    _column("IP", "The pod's IP address (the first of status.podIPs).", priority=1),
    _column("Node", "The node the pod is bound to.", priority=1),
    _column("Nominated Node", "The node where the scheduler expects to place the pod once "
                              "preemption of other pods completes.", priority=1),
    _column("Readiness Gates", "Extra pod conditions required for readiness that are true, "
                               "out of those required.", priority=1),
]

_NAMESPACE_COLUMNS = [
    _name_column(),
    _column("Status", "Lifecycle phase of the namespace (Active or Terminating)."),
    _age_column(),
]

_SERVICE_COLUMNS = [
    _name_column(),
    _column("Type", "How the service is exposed: ClusterIP, NodePort, LoadBalancer or "
                    "ExternalName."),
    _column("Cluster-IP", "The virtual IP address assigned to the service inside the cluster."),
    _column("External-IP", "Addresses outside the cluster through which the service is "
                           "reachable."),
    _column("Port(s)", "The ports the service exposes, with node ports and protocols."),
    _age_column(),
    _column("Selector", "Labels of the pods the service sends traffic to.", priority=1),
]

_ENDPOINTS_COLUMNS = [
    _name_column(),
    _column("Endpoints", "Addresses and ports backing the service."),
    _age_column(),
]

_CONFIGMAP_COLUMNS = [
    _name_column(),
    _column("Data", "Number of keys (text and binary) in the config map."),
    _age_column(),
]

_SECRET_COLUMNS = [
    _name_column(),
    _column("Type", "Type of the secret's data, e.g. Opaque or kubernetes.io/tls."),
    _column("Data", "Number of keys in the secret."),
    _age_column(),
]

_NODE_COLUMNS = [
    _name_column(),
    _column("Status", "Readiness of the node, and whether scheduling onto it is disabled."),
    _column("Roles", "Roles of the node, from its node-role.kubernetes.io labels."),
    _age_column(),
    _column("Version", "Kubelet version reported by the node."),
    _column("Internal-IP", "The node's first InternalIP address.", priority=1),
    _column("External-IP", "The node's first ExternalIP address.", priority=1),
    _column("OS-Image", "Operating system image reported by the node.", priority=1),
    _column("Kernel-Version", "Kernel version reported by the node.", priority=1),
    _column("Container-Runtime", "Container runtime name and version reported by the node.",
            priority=1),
]

_EVENT_COLUMNS = [
    _column("Last Seen", "Time since the event was most recently observed."),
    _column("Type", "Type of the event: Normal or Warning."),
    _column("Reason", "Short machine-readable reason for the event."),
    _column("Object", "The object the event is about, as kind/name."),
    _column("Subobject", "Part of the object the event is about, e.g. a container.",
            priority=1),
    _column("Source", "Component (and host) that reported the event.", priority=1),
    _column("Message", "Human-readable description of the event."),
    _column("First Seen", "Time since the event was first observed.", priority=1),
    _column("Count", "How many times the event has occurred.", priority=1),
    _name_column(priority=1),
]

_SERVICE_ACCOUNT_COLUMNS = [
    _name_column(),
    _column("Secrets", "Number of secrets listed in the service account."),
    _age_column(),
]

_PERSISTENT_VOLUME_COLUMNS = [
    _name_column(),
    _column("Capacity", "Storage capacity of the volume."),
    _column("Access Modes", "Ways the volume can be mounted (RWO, ROX, RWX, RWOP)."),
    _column("Reclaim Policy", "What happens to the volume when its claim is released."),
    _column("Status", "Lifecycle phase of the volume."),
    _column("Claim", "The claim bound to the volume, as namespace/name."),
    _column("StorageClass", "Storage class of the volume."),
    _column("VolumeAttributesClass", "Volume attributes class of the volume."),
    _column("Reason", "Why the volume is in its current phase, if it failed."),
    _age_column(),
    _column("VolumeMode", "Whether the volume is a filesystem or a raw block device.",
            priority=1),
]

_PERSISTENT_VOLUME_CLAIM_COLUMNS = [
    _name_column(),
    _column("Status", "Lifecycle phase of the claim."),
    _column("Volume", "The persistent volume bound to the claim."),
    _column("Capacity", "Storage capacity of the bound volume."),
    _column("Access Modes", "Access modes of the bound volume (RWO, ROX, RWX, RWOP)."),
    _column("StorageClass", "Storage class requested by the claim."),
    _column("VolumeAttributesClass", "Volume attributes class requested by the claim."),
    _age_column(),
    _column("VolumeMode", "Whether the claim wants a filesystem or a raw block device.",
            priority=1),
]

_REPLICATION_CONTROLLER_COLUMNS = [
    _name_column(),
    _column("Desired", "Number of replicas wanted.", type_="integer"),
    _column("Current", "Number of replicas that exist.", type_="integer"),
    _column("Ready", "Number of replicas that are ready.", type_="integer"),
    _age_column(),
    *_template_columns("Labels a pod must have to be counted as a replica."),
]

_REPLICA_SET_COLUMNS = [
    _name_column(),
    _column("Desired", "Number of replicas wanted.", type_="integer"),
    _column("Current", "Number of replicas that exist.", type_="integer"),
    _column("Ready", "Number of replicas that are ready.", type_="integer"),
    _age_column(),
    *_template_columns("Label query a pod must match to be counted as a replica."),
]

_DEPLOYMENT_COLUMNS = [
    _name_column(),
    _column("Ready", "Ready pods out of the desired number of pods."),
    _column("Up-to-date", "Pods running the latest pod template."),
    _column("Available", "Pods that have been ready for at least minReadySeconds."),
    _age_column(),
    *_template_columns("Label query of the pods the deployment manages."),
]

_DAEMON_SET_COLUMNS = [
    _name_column(),
    _column("Desired", "Number of nodes that should run the daemon pod.", type_="integer"),
    _column("Current", "Number of nodes running at least one daemon pod.", type_="integer"),
    _column("Ready", "Number of nodes whose daemon pod is ready.", type_="integer"),
    _column("Up-to-date", "Number of nodes running the latest daemon pod template.",
            type_="integer"),
    _column("Available", "Number of nodes whose daemon pod is available.", type_="integer"),
    _column("Node Selector", "Node labels the daemon pods are restricted to."),
    _age_column(),
    *_template_columns("Label query of the pods the daemon set manages."),
]

_STATEFUL_SET_COLUMNS = [
    _name_column(),
    _column("Ready", "Ready pods out of the desired number of pods."),
    _age_column(),
    *_template_columns(None),
]

_CONTROLLER_REVISION_COLUMNS = [
    _name_column(),
    _column("Controller", "The object that owns and controls this revision."),
    _column("Revision", "Revision number of the state this object records."),
    _age_column(),
]

_JOB_COLUMNS = [
    _name_column(),
    _column("Status", "Overall status of the job."),
    _column("Completions", "Pods that succeeded out of the completions wanted."),
    _column("Duration", "Time the job took, or has taken so far, to complete."),
    _age_column(),
    *_template_columns("Label query of the pods the job manages."),
]

_CRON_JOB_COLUMNS = [
    _name_column(),
    _column("Schedule", "The cron schedule the jobs are started on."),
    _column("Timezone", "Time zone the schedule is interpreted in."),
    _column("Suspend", "Whether starting new jobs is suspended.", type_="boolean"),
    _column("Active", "Number of jobs currently running.", type_="integer"),
    _column("Last Schedule", "Time since a job was last scheduled."),
    _age_column(),
    *_template_columns("Label query of the pods the created jobs manage."),
]

_STORAGE_CLASS_COLUMNS = [
    _name_column(),
    _column("Provisioner", "The volume plugin that provisions volumes of this class."),
    _column("ReclaimPolicy", "Reclaim policy given to volumes provisioned from this class."),
    _column("VolumeBindingMode", "When volumes are provisioned and bound to claims."),
    _column("AllowVolumeExpansion", "Whether claims of this class may be resized."),
    _age_column(),
]

_ENDPOINT_SLICE_COLUMNS = [
    _name_column(),
    _column("AddressType", "Type of the addresses in the slice: IPv4, IPv6 or FQDN."),
    _column("Ports", "Ports exposed by the endpoints in the slice."),
    _column("Endpoints", "Addresses of the endpoints in the slice."),
    _age_column(),
]

_LEASE_COLUMNS = [
    _name_column(),
    _column("Holder", "Identity of the current holder of the lease."),
    _age_column(),
]


# --------------------------------------------------------------------------------------------
# Rows


def _pod_cells(pod: dict, now: float) -> list:
    spec, status = _dict(pod.get("spec")), _dict(pod.get("status"))
    conditions = [_dict(c) for c in _list(status.get("conditions"))]
    phase = _str(status.get("phase"))
    reason = _str(status.get("reason")) or phase
    for condition in conditions:
        if condition.get("type") == "PodScheduled" and condition.get("reason") == "SchedulingGated":
            reason = "SchedulingGated"

    # Sidecars (init containers that restart Always) count as containers of the pod.
    init_containers = {}
    total_containers = len(_list(spec.get("containers")))
    for container in _list(spec.get("initContainers")):
        container = _dict(container)
        init_containers[container.get("name")] = container
        if container.get("restartPolicy") == "Always":
            total_containers += 1

    restarts = 0
    sidecar_restarts = 0
    ready_containers = 0
    last_restart: float | None = None
    last_sidecar_restart: float | None = None

    def finished_at(container_status: dict) -> float | None:
        return _parse_time(_at(container_status, "lastState", "terminated", "finishedAt"))

    def later(a: float | None, b: float | None) -> float | None:
        if a is None:
            return b
        return a if b is None else max(a, b)

    init_statuses = [_dict(s) for s in _list(status.get("initContainerStatuses"))]
    init_spec_count = len(_list(spec.get("initContainers")))
    initializing = False
    for index, container_status in enumerate(init_statuses):
        restart_count = _int(container_status.get("restartCount"))
        restarts += restart_count
        last_restart = later(last_restart, finished_at(container_status))
        is_sidecar = _dict(init_containers.get(container_status.get("name"))).get("restartPolicy") == "Always"
        if is_sidecar:
            sidecar_restarts += restart_count
            last_sidecar_restart = later(last_sidecar_restart, finished_at(container_status))
        state = _dict(container_status.get("state"))
        terminated = state.get("terminated")
        waiting = state.get("waiting")
        if isinstance(terminated, dict) and _int(terminated.get("exitCode")) == 0:
            continue
        if is_sidecar and container_status.get("started") is True:
            if container_status.get("ready") is True:
                ready_containers += 1
            continue
        initializing = True
        if isinstance(terminated, dict):
            if terminated.get("reason"):
                reason = "Init:" + _str(terminated.get("reason"))
            elif _int(terminated.get("signal")):
                reason = f"Init:Signal:{_int(terminated.get('signal'))}"
            else:
                reason = f"Init:ExitCode:{_int(terminated.get('exitCode'))}"
        elif isinstance(waiting, dict) and waiting.get("reason") and waiting.get("reason") != "PodInitializing":
            reason = "Init:" + _str(waiting.get("reason"))
        else:
            reason = f"Init:{index}/{init_spec_count}"
        break

    if not initializing or _condition_is_true(conditions, "Initialized"):
        restarts = sidecar_restarts
        last_restart = last_sidecar_restart
        has_running = False
        # Walk backwards so the first container's state decides the reason, as upstream does.
        for container_status in reversed([_dict(s) for s in _list(status.get("containerStatuses"))]):
            restarts += _int(container_status.get("restartCount"))
            last_restart = later(last_restart, finished_at(container_status))
            state = _dict(container_status.get("state"))
            waiting, terminated = state.get("waiting"), state.get("terminated")
            if isinstance(waiting, dict) and waiting.get("reason"):
                reason = _str(waiting.get("reason"))
            elif isinstance(terminated, dict) and terminated.get("reason"):
                reason = _str(terminated.get("reason"))
            elif isinstance(terminated, dict):
                if _int(terminated.get("signal")):
                    reason = f"Signal:{_int(terminated.get('signal'))}"
                else:
                    reason = f"ExitCode:{_int(terminated.get('exitCode'))}"
            elif container_status.get("ready") is True and isinstance(state.get("running"), dict):
                has_running = True
                ready_containers += 1
        # A finished container next to a still-running one does not make the pod "Completed".
        if reason == "Completed" and has_running:
            pod_ready = any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)
            reason = "Running" if pod_ready else "NotReady"

    if _is_deleting(pod) and status.get("reason") == "NodeLost":
        reason = "Unknown"
    elif _is_deleting(pod) and phase not in ("Succeeded", "Failed"):
        reason = "Terminating"

    restarts_cell = str(restarts)
    if restarts and last_restart is not None:
        restarts_cell = f"{restarts} ({human_duration(now - last_restart)} ago)"

    pod_ips = _list(status.get("podIPs"))
    pod_ip = _str(_dict(pod_ips[0]).get("ip")) if pod_ips else _str(status.get("podIP"))
    readiness_gates = "<none>"
    gates = [_dict(g) for g in _list(spec.get("readinessGates"))]
    if gates:
        true_gates = 0
        for gate in gates:
            for condition in conditions:
                if condition.get("type") == gate.get("conditionType"):
                    true_gates += condition.get("status") == "True"
                    break
        readiness_gates = f"{true_gates}/{len(gates)}"

    return [
        _name(pod), f"{ready_containers}/{total_containers}", reason, restarts_cell, _age(pod, now),
        pod_ip or "<none>", _str(spec.get("nodeName")) or "<none>",
        _str(status.get("nominatedNodeName")) or "<none>", readiness_gates,
    ]


def _namespace_cells(namespace: dict, now: float) -> list:
    return [_name(namespace), _str(_at(namespace, "status", "phase")), _age(namespace, now)]


def _service_external_ip(spec: dict, status: dict, service_type: str) -> str:
    external_ips = [_str(ip) for ip in _list(spec.get("externalIPs"))]
    if service_type in ("ClusterIP", "NodePort"):
        return ",".join(external_ips) if external_ips else "<none>"
    if service_type == "LoadBalancer":
        ingress_addresses = set()
        for ingress in _list(_at(status, "loadBalancer", "ingress")):
            ingress = _dict(ingress)
            address = ingress.get("ip") or ingress.get("hostname")
            if address:
                ingress_addresses.add(_str(address))
        # Upstream clips this to 16 characters only for non-wide output; servers print wide.
        addresses = sorted(ingress_addresses) + external_ips
        return ",".join(addresses) if addresses else "<pending>"
    if service_type == "ExternalName":
        return _str(spec.get("externalName"))
    return "<unknown>"


def _service_cells(service: dict, now: float) -> list:
    spec, status = _dict(service.get("spec")), _dict(service.get("status"))
    service_type = _str(spec.get("type")) or "ClusterIP"  # the API default
    cluster_ips = _list(spec.get("clusterIPs"))
    cluster_ip = _str(cluster_ips[0]) if cluster_ips else _str(spec.get("clusterIP"))
    port_texts = []
    for port in _list(spec.get("ports")):
        port = _dict(port)
        protocol = _str(port.get("protocol")) or "TCP"
        node_port = _int(port.get("nodePort"))
        if node_port > 0:
            port_texts.append(f"{_int(port.get('port'))}:{node_port}/{protocol}")
        else:
            port_texts.append(f"{_int(port.get('port'))}/{protocol}")
    return [
        _name(service), service_type, cluster_ip or "<none>",
        _service_external_ip(spec, status, service_type), ",".join(port_texts) or "<none>",
        _age(service, now), _format_labels(spec.get("selector")),
    ]


def _host_port(ip: str, port: int) -> str:
    return f"[{ip}]:{port}" if ":" in ip else f"{ip}:{port}"


def _endpoints_cells(endpoints: dict, now: float) -> list:
    subsets = [_dict(s) for s in _list(endpoints.get("subsets"))]
    if not subsets:
        return [_name(endpoints), "<none>", _age(endpoints, now)]
    shown: list[str] = []
    total = 0
    for subset in subsets:
        addresses = [_str(_dict(a).get("ip")) for a in _list(subset.get("addresses"))]
        ports = [_dict(p) for p in _list(subset.get("ports"))]
        if not ports:  # headless services may have addresses without ports
            total += len(addresses)
            shown.extend(addresses)
            continue
        for port in ports:
            total += len(addresses)
            shown.extend(_host_port(ip, _int(port.get("port"))) for ip in addresses)
    text = ",".join(shown[:3])
    if total > 3:
        text = f"{text} + {total - 3} more..."
    return [_name(endpoints), text, _age(endpoints, now)]


def _configmap_cells(configmap: dict, now: float) -> list:
    keys = len(_dict(configmap.get("data"))) + len(_dict(configmap.get("binaryData")))
    return [_name(configmap), keys, _age(configmap, now)]


def _secret_cells(secret: dict, now: float) -> list:
    return [_name(secret), _str(secret.get("type")) or "Opaque", len(_dict(secret.get("data"))),
            _age(secret, now)]


_NODE_ROLE_PREFIX = "node-role.kubernetes.io/"


def _node_cells(node: dict, now: float) -> list:
    spec, status = _dict(node.get("spec")), _dict(node.get("status"))
    states = []
    for condition in _list(status.get("conditions")):
        condition = _dict(condition)
        if condition.get("type") == "Ready":  # the only condition upstream summarises
            states = ["Ready" if condition.get("status") == "True" else "NotReady"]
    if not states:
        states = ["Unknown"]
    if spec.get("unschedulable") is True:
        states.append("SchedulingDisabled")

    roles = set()
    for key, value in _dict(_meta(node).get("labels")).items():
        if isinstance(key, str) and key.startswith(_NODE_ROLE_PREFIX) and key[len(_NODE_ROLE_PREFIX):]:
            roles.add(key[len(_NODE_ROLE_PREFIX):])
        elif key == "kubernetes.io/role" and value:
            roles.add(_str(value))

    def first_address(address_type: str) -> str:
        for address in _list(status.get("addresses")):
            address = _dict(address)
            if address.get("type") == address_type:
                return _str(address.get("address"))
        return "<none>"

    node_info = _dict(status.get("nodeInfo"))
    return [
        _name(node), ",".join(states), ",".join(sorted(roles)) or "<none>", _age(node, now),
        _str(node_info.get("kubeletVersion")),
        first_address("InternalIP"), first_address("ExternalIP"),
        _str(node_info.get("osImage")) or "<unknown>",
        _str(node_info.get("kernelVersion")) or "<unknown>",
        _str(node_info.get("containerRuntimeVersion")) or "<unknown>",
    ]


def _event_cells_from_core_fields(*, name: str, involved: dict, event_type: str, reason: str,
                                  message: str, source: dict, reporting_controller: str,
                                  reporting_instance: str, first_timestamp: Any,
                                  last_timestamp: Any, event_time: Any, count: int,
                                  series: Any, now: float) -> list:
    first_seen = _since(first_timestamp if _parse_time(first_timestamp) is not None else event_time, now)
    last_seen = _since(last_timestamp, now) if _parse_time(last_timestamp) is not None else first_seen
    if isinstance(series, dict):
        last_seen = _since(series.get("lastObservedTime"), now)
        count = _int(series.get("count"))
    elif count == 0:
        count = 1  # events from the new API are singletons without a count
    kind = _str(involved.get("kind")).lower()
    involved_name = _str(involved.get("name"))
    target = f"{kind}/{involved_name}" if involved_name else kind
    component = _str(source.get("component")) or reporting_controller
    instance = _str(source.get("host")) or reporting_instance
    source_text = f"{component}, {instance}" if instance else component
    return [last_seen, event_type, reason, target, _str(involved.get("fieldPath")), source_text,
            message.strip(), first_seen, count, name]


def _event_cells(event: dict, now: float) -> list:
    return _event_cells_from_core_fields(
        name=_name(event), involved=_dict(event.get("involvedObject")),
        event_type=_str(event.get("type")), reason=_str(event.get("reason")),
        message=_str(event.get("message")), source=_dict(event.get("source")),
        reporting_controller=_str(event.get("reportingComponent")),
        reporting_instance=_str(event.get("reportingInstance")),
        first_timestamp=event.get("firstTimestamp"), last_timestamp=event.get("lastTimestamp"),
        event_time=event.get("eventTime"), count=_int(event.get("count")),
        series=event.get("series"), now=now)


def _events_v1_cells(event: dict, now: float) -> list:
    # Upstream prints events.k8s.io events through the core printer after converting them:
    # regarding -> involvedObject, note -> message, deprecated* -> the old core fields.
    return _event_cells_from_core_fields(
        name=_name(event), involved=_dict(event.get("regarding")),
        event_type=_str(event.get("type")), reason=_str(event.get("reason")),
        message=_str(event.get("note")), source=_dict(event.get("deprecatedSource")),
        reporting_controller=_str(event.get("reportingController")),
        reporting_instance=_str(event.get("reportingInstance")),
        first_timestamp=event.get("deprecatedFirstTimestamp"),
        last_timestamp=event.get("deprecatedLastTimestamp"),
        event_time=event.get("eventTime"), count=_int(event.get("deprecatedCount")),
        series=event.get("series"), now=now)


def _service_account_cells(account: dict, now: float) -> list:
    return [_name(account), len(_list(account.get("secrets"))), _age(account, now)]


def _persistent_volume_cells(volume: dict, now: float) -> list:
    spec, status = _dict(volume.get("spec")), _dict(volume.get("status"))
    claim = ""
    claim_ref = spec.get("claimRef")
    if isinstance(claim_ref, dict):
        claim = f"{_str(claim_ref.get('namespace'))}/{_str(claim_ref.get('name'))}"
    phase = "Terminating" if _is_deleting(volume) else _str(status.get("phase"))
    return [
        _name(volume), _storage_quantity(spec.get("capacity")), _access_modes(spec.get("accessModes")),
        _str(spec.get("persistentVolumeReclaimPolicy")), phase, claim, _volume_class(volume),
        _str(spec.get("volumeAttributesClassName")) or "<unset>", _str(status.get("reason")),
        _age(volume, now), _str(spec.get("volumeMode")) or "<unset>",
    ]


def _persistent_volume_claim_cells(claim: dict, now: float) -> list:
    spec, status = _dict(claim.get("spec")), _dict(claim.get("status"))
    phase = "Terminating" if _is_deleting(claim) else _str(status.get("phase"))
    volume_name = _str(spec.get("volumeName"))
    capacity, access_modes = "", ""
    if volume_name:  # capacity and modes are those of the bound volume, once there is one
        capacity = _storage_quantity(status.get("capacity"))
        access_modes = _access_modes(status.get("accessModes"))
    return [
        _name(claim), phase, volume_name, capacity, access_modes, _volume_class(claim),
        _str(spec.get("volumeAttributesClassName")) or "<unset>", _age(claim, now),
        _str(spec.get("volumeMode")) or "<unset>",
    ]


def _desired_replicas(spec: dict) -> int:
    # The API defaults spec.replicas to 1 for every replicated workload kind.
    return 1 if spec.get("replicas") is None else _int(spec.get("replicas"), 1)


def _replication_controller_cells(controller: dict, now: float) -> list:
    spec, status = _dict(controller.get("spec")), _dict(controller.get("status"))
    names, images = _container_cells(_at(spec, "template", "spec"))
    return [
        _name(controller), _desired_replicas(spec), _int(status.get("replicas")),
        _int(status.get("readyReplicas")), _age(controller, now),
        names, images, _format_labels(spec.get("selector")),
    ]


def _replica_set_cells(replica_set: dict, now: float) -> list:
    spec, status = _dict(replica_set.get("spec")), _dict(replica_set.get("status"))
    names, images = _container_cells(_at(spec, "template", "spec"))
    return [
        _name(replica_set), _desired_replicas(spec), _int(status.get("replicas")),
        _int(status.get("readyReplicas")), _age(replica_set, now),
        names, images, _format_label_selector(spec.get("selector")),
    ]


def _deployment_cells(deployment: dict, now: float) -> list:
    spec, status = _dict(deployment.get("spec")), _dict(deployment.get("status"))
    names, images = _container_cells(_at(spec, "template", "spec"))
    # Upstream prints the bare selector string here: empty stays empty, invalid is flagged.
    selector = _selector_string(spec.get("selector"))
    return [
        _name(deployment), f"{_int(status.get('readyReplicas'))}/{_desired_replicas(spec)}",
        _int(status.get("updatedReplicas")), _int(status.get("availableReplicas")),
        _age(deployment, now), names, images, "<invalid>" if selector is None else selector,
    ]


def _daemon_set_cells(daemon_set: dict, now: float) -> list:
    spec, status = _dict(daemon_set.get("spec")), _dict(daemon_set.get("status"))
    pod_spec = _at(spec, "template", "spec")
    names, images = _container_cells(pod_spec)
    return [
        _name(daemon_set), _int(status.get("desiredNumberScheduled")),
        _int(status.get("currentNumberScheduled")), _int(status.get("numberReady")),
        _int(status.get("updatedNumberScheduled")), _int(status.get("numberAvailable")),
        _format_labels(_dict(pod_spec).get("nodeSelector")), _age(daemon_set, now),
        names, images, _format_label_selector(spec.get("selector")),
    ]


def _stateful_set_cells(stateful_set: dict, now: float) -> list:
    spec, status = _dict(stateful_set.get("spec")), _dict(stateful_set.get("status"))
    names, images = _container_cells(_at(spec, "template", "spec"))
    return [
        _name(stateful_set), f"{_int(status.get('readyReplicas'))}/{_desired_replicas(spec)}",
        _age(stateful_set, now), names, images,
    ]


def _controller_revision_cells(revision: dict, now: float) -> list:
    controller = "<none>"
    for reference in _list(_meta(revision).get("ownerReferences")):
        reference = _dict(reference)
        if reference.get("controller") is True:
            api_version = _str(reference.get("apiVersion"))
            group = api_version.rpartition("/")[0] if "/" in api_version else ""
            kind = _str(reference.get("kind"))
            group_kind = f"{kind}.{group}" if group else kind
            name = _str(reference.get("name"))
            controller = f"{group_kind.lower()}/{name}" if (kind or group) else name
            break
    return [_name(revision), controller, _int(revision.get("revision")), _age(revision, now)]


def _condition_is_true(conditions: list, condition_type: str) -> bool:
    """Whether the first condition of a type is True (upstream looks no further)."""
    for condition in conditions:
        condition = _dict(condition)
        if condition.get("type") == condition_type:
            return condition.get("status") == "True"
    return False


def _job_cells(job: dict, now: float) -> list:
    spec, status = _dict(job.get("spec")), _dict(job.get("status"))
    succeeded = _int(status.get("succeeded"))
    if spec.get("completions") is not None:
        completions = f"{succeeded}/{_int(spec.get('completions'))}"
    elif _int(spec.get("parallelism")) > 1:
        completions = f"{succeeded}/1 of {_int(spec.get('parallelism'))}"
    else:
        completions = f"{succeeded}/1"

    started = _parse_time(status.get("startTime"))
    completed = _parse_time(status.get("completionTime"))
    if started is None:
        duration = ""
    elif completed is None:
        duration = human_duration(now - started)
    else:
        duration = human_duration(completed - started)

    conditions = _list(status.get("conditions"))
    if _condition_is_true(conditions, "Complete"):
        job_status = "Complete"
    elif _condition_is_true(conditions, "Failed"):
        job_status = "Failed"
    elif _is_deleting(job):
        job_status = "Terminating"
    elif _condition_is_true(conditions, "Suspended"):
        job_status = "Suspended"
    elif _condition_is_true(conditions, "FailureTarget"):
        job_status = "FailureTarget"
    else:
        job_status = "Running"

    names, images = _container_cells(_at(spec, "template", "spec"))
    return [
        _name(job), job_status, completions, duration, _age(job, now),
        names, images, _format_label_selector(spec.get("selector")),
    ]


def _cron_job_cells(cron_job: dict, now: float) -> list:
    spec, status = _dict(cron_job.get("spec")), _dict(cron_job.get("status"))
    suspend = spec.get("suspend")
    # Upstream renders this pointer as text even though the column is declared boolean.
    suspend_cell = "<unset>" if not isinstance(suspend, bool) else ("True" if suspend else "False")
    last_schedule = status.get("lastScheduleTime")
    job_spec = _at(spec, "jobTemplate", "spec")
    names, images = _container_cells(_at(job_spec, "template", "spec"))
    return [
        _name(cron_job), _str(spec.get("schedule")), _str(spec.get("timeZone")) or "<none>",
        suspend_cell, len(_list(status.get("active"))),
        "<none>" if last_schedule is None else _since(last_schedule, now), _age(cron_job, now),
        names, images, _format_label_selector(_dict(job_spec).get("selector")),
    ]


_DEFAULT_CLASS_ANNOTATIONS = ("storageclass.kubernetes.io/is-default-class",
                              "storageclass.beta.kubernetes.io/is-default-class")


def _storage_class_cells(storage_class: dict, now: float) -> list:
    annotations = _dict(_meta(storage_class).get("annotations"))
    name = _name(storage_class)
    if any(annotations.get(key) == "true" for key in _DEFAULT_CLASS_ANNOTATIONS):
        name += " (default)"
    expansion = storage_class.get("allowVolumeExpansion")
    return [
        name, _str(storage_class.get("provisioner")),
        _str(storage_class.get("reclaimPolicy")) or "Delete",
        _str(storage_class.get("volumeBindingMode")) or "Immediate",
        expansion if isinstance(expansion, bool) else False,
        _age(storage_class, now),
    ]


def _endpoint_slice_cells(endpoint_slice: dict, now: float) -> list:
    ports = []
    for port in _list(endpoint_slice.get("ports")):
        port = _dict(port)
        if port.get("port") is not None:
            ports.append(str(_int(port.get("port"))))
        elif port.get("name") is not None:
            ports.append(_str(port.get("name")))
        else:
            ports.append("*")
    addresses = [_str(address) for endpoint in _list(endpoint_slice.get("endpoints"))
                 for address in _list(_dict(endpoint).get("addresses"))]
    return [
        _name(endpoint_slice), _str(endpoint_slice.get("addressType")),
        _list_with_more(ports, len(ports)), _list_with_more(addresses, len(addresses)),
        _age(endpoint_slice, now),
    ]


def _lease_cells(lease: dict, now: float) -> list:
    return [_name(lease), _str(_at(lease, "spec", "holderIdentity")), _age(lease, now)]


_CSR_COLUMNS = [
    _name_column(),
    _age_column(),
    _column("SignerName", "The signer the request asks for."),
    _column("Requestor", "The user that made the request."),
    _column("RequestedDuration", "How long the requested certificate should be valid."),
    _column("Condition", "Approved, Denied or Pending, then Failed and Issued."),
]


def _csr_cells(csr: dict, now: float) -> list:
    """upstream's printCertificateSigningRequest."""
    from pyk8s.api.certificates import status_text
    spec = _dict(csr.get("spec"))
    seconds = spec.get("expirationSeconds")
    requested = human_duration(seconds) if isinstance(seconds, int) else "<none>"
    return [_name(csr), _age(csr, now), _str(spec.get("signerName")), _str(spec.get("username")), requested,
            status_text(csr)]


_ROLE_COLUMNS = [
    _name_column(),
    _column("Created At", "Time at which the object was created.", type_="date"),
]

_ROLE_BINDING_COLUMNS = [
    _name_column(),
    _column("Role", "The role bound: Kind/name."),
    _age_column(),
    _column("Users", "Users in the binding.", priority=1),
    _column("Groups", "Groups in the binding.", priority=1),
    _column("ServiceAccounts", "ServiceAccounts in the binding.", priority=1),
]


def _role_cells(role: dict, now: float) -> list:
    """upstream's printRole / printClusterRole: the creation time in RFC 3339."""
    return [_name(role), _str(_meta(role).get("creationTimestamp"))]


def _role_binding_cells(binding: dict, now: float) -> list:
    """upstream's printRoleBinding / printClusterRoleBinding (rbac.SubjectsStrings)."""
    ref = _dict(binding.get("roleRef"))
    users, groups, accounts = [], [], []
    for subject in _list(binding.get("subjects")):
        subject = _dict(subject)
        kind, name = subject.get("kind"), _str(subject.get("name"))
        if kind == "User":
            users.append(name)
        elif kind == "Group":
            groups.append(name)
        elif kind == "ServiceAccount":
            accounts.append(f"{_str(subject.get('namespace'))}/{name}")
    return [_name(binding), f"{_str(ref.get('kind'))}/{_str(ref.get('name'))}", _age(binding, now),
            ", ".join(users), ", ".join(groups), ", ".join(accounts)]


def _default_cells(obj: dict, now: float) -> list:
    return [_name(obj), _age(obj, now)]


_Printer = tuple[list[dict], Callable[[dict, float], list]]

_PRINTERS: dict[tuple[str, str], _Printer] = {
    ("", "Namespace"): (_NAMESPACE_COLUMNS, _namespace_cells),
    ("", "Pod"): (_POD_COLUMNS, _pod_cells),
    ("", "Service"): (_SERVICE_COLUMNS, _service_cells),
    ("", "Endpoints"): (_ENDPOINTS_COLUMNS, _endpoints_cells),
    ("", "ConfigMap"): (_CONFIGMAP_COLUMNS, _configmap_cells),
    ("", "Secret"): (_SECRET_COLUMNS, _secret_cells),
    ("", "Node"): (_NODE_COLUMNS, _node_cells),
    ("", "Event"): (_EVENT_COLUMNS, _event_cells),
    ("", "ServiceAccount"): (_SERVICE_ACCOUNT_COLUMNS, _service_account_cells),
    ("", "PersistentVolume"): (_PERSISTENT_VOLUME_COLUMNS, _persistent_volume_cells),
    ("", "PersistentVolumeClaim"): (_PERSISTENT_VOLUME_CLAIM_COLUMNS, _persistent_volume_claim_cells),
    ("", "ReplicationController"): (_REPLICATION_CONTROLLER_COLUMNS, _replication_controller_cells),
    ("apps", "Deployment"): (_DEPLOYMENT_COLUMNS, _deployment_cells),
    ("apps", "ReplicaSet"): (_REPLICA_SET_COLUMNS, _replica_set_cells),
    ("apps", "DaemonSet"): (_DAEMON_SET_COLUMNS, _daemon_set_cells),
    ("apps", "StatefulSet"): (_STATEFUL_SET_COLUMNS, _stateful_set_cells),
    ("apps", "ControllerRevision"): (_CONTROLLER_REVISION_COLUMNS, _controller_revision_cells),
    ("batch", "Job"): (_JOB_COLUMNS, _job_cells),
    ("batch", "CronJob"): (_CRON_JOB_COLUMNS, _cron_job_cells),
    ("certificates.k8s.io", "CertificateSigningRequest"): (_CSR_COLUMNS, _csr_cells),
    ("storage.k8s.io", "StorageClass"): (_STORAGE_CLASS_COLUMNS, _storage_class_cells),
    ("discovery.k8s.io", "EndpointSlice"): (_ENDPOINT_SLICE_COLUMNS, _endpoint_slice_cells),
    ("coordination.k8s.io", "Lease"): (_LEASE_COLUMNS, _lease_cells),
    ("rbac.authorization.k8s.io", "Role"): (_ROLE_COLUMNS, _role_cells),
    ("rbac.authorization.k8s.io", "ClusterRole"): (_ROLE_COLUMNS, _role_cells),
    ("rbac.authorization.k8s.io", "RoleBinding"): (_ROLE_BINDING_COLUMNS, _role_binding_cells),
    ("rbac.authorization.k8s.io", "ClusterRoleBinding"): (_ROLE_BINDING_COLUMNS, _role_binding_cells),
    ("events.k8s.io", "Event"): (_EVENT_COLUMNS, _events_v1_cells),
}


def _printer_for(resource: Resource) -> _Printer:
    return _PRINTERS.get((resource.group, resource.kind), (_DEFAULT_COLUMNS, _default_cells))


def column_definitions(resource: Resource) -> list[dict]:
    """The Table columnDefinitions for a resource; Name and Age for kinds without a printer."""
    columns, _ = _printer_for(resource)
    return [dict(column) for column in columns]


def row_cells(resource: Resource, obj: dict, now: float) -> list:
    """The cells of one object's row, one per column of `column_definitions(resource)`."""
    _, printer = _printer_for(resource)
    return printer(_dict(obj), now)
