"""Per-kind rules the registry applies around a write (upstream's `rest.RESTCreateStrategy`
and friends): what a create resets, which changes bump `generation`, what the main resource
and its status subresource may each change, and when deletion is graceful.
"""

from __future__ import annotations

from typing import Any

from pyk8s.api.resources import Resource

# Kinds whose metadata.generation tracks spec changes (upstream strategies set it to 1 on
# create and bump it when the spec changes).
GENERATION_KINDS = {
    "Pod", "Deployment", "ReplicaSet", "DaemonSet", "StatefulSet", "ReplicationController",
    "Job", "CronJob", "PersistentVolumeClaim", "PersistentVolume", "Service", "Namespace",
    "Node", "StorageClass",
}
# Of those, the ones whose spec actually exists as a `spec` field (for the others the
# generation stays 1 unless their top-level data changes: we follow upstream, which only
# bumps on spec for workloads).
SPEC_GENERATION_KINDS = {
    "Pod", "Deployment", "ReplicaSet", "DaemonSet", "StatefulSet", "ReplicationController",
    "Job", "CronJob",
}

# Top-level fields that are not the object's "spec" for generation purposes.
_NON_SPEC_FIELDS = {"apiVersion", "kind", "metadata", "status"}


def has_status_subresource(resource: Resource) -> bool:
    return "status" in resource.subresources


def prepare_for_create(resource: Resource, obj: dict[str, Any]) -> None:
    """Reset what a client may not set on create."""
    meta = obj["metadata"]
    if resource.kind in SPEC_GENERATION_KINDS:
        meta["generation"] = 1
    if has_status_subresource(resource) and resource.kind not in ("Namespace", "Node", "PersistentVolume", "PersistentVolumeClaim", "Service"):
        obj.pop("status", None)
    kind = resource.kind
    if kind == "Pod":
        status = {"phase": "Pending", "qosClass": pod_qos_class(obj.get("spec") or {})}
        obj["status"] = status
    elif kind == "Namespace":
        obj["status"] = {"phase": "Active"}
    elif kind == "PersistentVolumeClaim":
        obj["status"] = {"phase": "Pending"}
    elif kind == "PersistentVolume":
        obj["status"] = {"phase": "Pending"}
    elif kind == "Service":
        obj["status"] = {"loadBalancer": {}}
    elif kind in ("Deployment", "ReplicaSet", "DaemonSet", "StatefulSet", "ReplicationController"):
        obj["status"] = _initial_workload_status(kind)
    elif kind in ("Job", "CronJob"):
        obj["status"] = {}


def _initial_workload_status(kind: str) -> dict[str, Any]:
    if kind == "DaemonSet":
        return {"currentNumberScheduled": 0, "numberMisscheduled": 0, "desiredNumberScheduled": 0, "numberReady": 0}
    if kind in ("ReplicaSet", "ReplicationController", "StatefulSet"):
        return {"replicas": 0}
    return {}


def spec_changed(resource: Resource, new: dict[str, Any], old: dict[str, Any]) -> bool:
    for key in set(new) | set(old):
        if key in _NON_SPEC_FIELDS:
            continue
        if new.get(key) != old.get(key):
            return True
    return False


def prepare_for_update(resource: Resource, new: dict[str, Any], old: dict[str, Any]) -> None:
    """An update of the main resource: status is kept from the stored object when the kind
    has a status subresource; generation is bumped on spec change."""
    if has_status_subresource(resource):
        if "status" in old:
            new["status"] = old["status"]
        else:
            new.pop("status", None)
    old_generation = old["metadata"].get("generation")
    if old_generation is not None:
        new["metadata"]["generation"] = old_generation
        if resource.kind in SPEC_GENERATION_KINDS and spec_changed(resource, new, old):
            new["metadata"]["generation"] = old_generation + 1
    # Upstream keeps deletion state: clients cannot clear it.
    for key in ("deletionTimestamp", "deletionGracePeriodSeconds"):
        if key in old["metadata"]:
            new["metadata"][key] = old["metadata"][key]
        else:
            new["metadata"].pop(key, None)


def prepare_service_update(new: dict[str, Any], old: dict[str, Any]) -> None:
    """A Service update: fields the new type no longer uses are dropped, allocated values
    the update left out are carried over (upstream's dropTypeDependentFields and
    patchAllocatedValues)."""
    _drop_type_dependent_fields(new, old)
    keep_allocations(new, old)


def _needs_cluster_ip(spec: dict[str, Any]) -> bool:
    return spec.get("type", "ClusterIP") != "ExternalName"


def _needs_node_ports(spec: dict[str, Any]) -> bool:
    return spec.get("type") in ("NodePort", "LoadBalancer")


def _needs_health_check_port(spec: dict[str, Any]) -> bool:
    return spec.get("type") == "LoadBalancer" and spec.get("externalTrafficPolicy") == "Local"


def _node_ports(spec: dict[str, Any]) -> list[Any]:
    return [port.get("nodePort") for port in spec.get("ports") or [] if isinstance(port, dict)]


def _drop_type_dependent_fields(new: dict[str, Any], old: dict[str, Any]) -> None:
    """A field is wiped only when the new type does not use it, the server may have set it,
    and the client left it as it was (a changed value is the client's, for validation to
    judge)."""
    new_spec = new.setdefault("spec", {})
    old_spec = old.get("spec") or {}
    if _needs_cluster_ip(old_spec) and not _needs_cluster_ip(new_spec):
        if new_spec.get("clusterIP") == old_spec.get("clusterIP") and new_spec.get("clusterIPs") == old_spec.get("clusterIPs"):
            new_spec.pop("clusterIP", None)  # released once the update is stored
            new_spec.pop("clusterIPs", None)
        for key in ("ipFamilies", "ipFamilyPolicy"):
            if new_spec.get(key) == old_spec.get(key):
                new_spec.pop(key, None)
    if _needs_node_ports(old_spec) and not _needs_node_ports(new_spec) \
            and _node_ports(new_spec) == _node_ports(old_spec):
        for port in new_spec.get("ports") or []:
            if isinstance(port, dict):
                port.pop("nodePort", None)
    if _needs_health_check_port(old_spec) and not _needs_health_check_port(new_spec) \
            and new_spec.get("healthCheckNodePort") == old_spec.get("healthCheckNodePort"):
        new_spec.pop("healthCheckNodePort", None)
    if new_spec.get("type") != "LoadBalancer":
        new_spec.pop("allocateLoadBalancerNodePorts", None)
        if old_spec.get("type") == "LoadBalancer" and new_spec.get("loadBalancerClass") == old_spec.get("loadBalancerClass"):
            new_spec.pop("loadBalancerClass", None)
        # The load balancer's status is part of its spec in all but name.
        if isinstance(new.get("status"), dict):
            new["status"]["loadBalancer"] = {}
    if _needs_node_ports(old_spec) and not _needs_node_ports(new_spec) \
            and new_spec.get("externalTrafficPolicy") == old_spec.get("externalTrafficPolicy"):
        new_spec.pop("externalTrafficPolicy", None)
    if _needs_cluster_ip(old_spec) and not _needs_cluster_ip(new_spec) \
            and new_spec.get("internalTrafficPolicy") == old_spec.get("internalTrafficPolicy"):
        new_spec.pop("internalTrafficPolicy", None)


def keep_allocations(new: dict[str, Any], old: dict[str, Any]) -> None:
    """A Service update that leaves out its allocated clusterIP(s) or nodePorts keeps them
    when the type still needs them (upstream's patchAllocatedValues): a PUT or apply of a
    manifest without them must not move the Service to new values."""
    new_spec = new.setdefault("spec", {})
    old_spec = old.get("spec") or {}
    if _needs_cluster_ip(old_spec) and _needs_cluster_ip(new_spec):
        if not new_spec.get("clusterIP") and old_spec.get("clusterIP"):
            new_spec["clusterIP"] = old_spec["clusterIP"]
        if not new_spec.get("clusterIPs") and old_spec.get("clusterIPs"):
            new_spec["clusterIPs"] = list(old_spec["clusterIPs"])
    if _needs_node_ports(old_spec) and _needs_node_ports(new_spec):
        used = {number for number in _node_ports(new_spec) if number}
        old_ports = {(p.get("port"), p.get("protocol", "TCP")): p.get("nodePort")
                     for p in old_spec.get("ports") or [] if isinstance(p, dict)}
        for port in new_spec.get("ports") or []:
            if isinstance(port, dict) and not port.get("nodePort"):
                allocated = old_ports.get((port.get("port"), port.get("protocol", "TCP")))
                if allocated and allocated not in used:
                    port["nodePort"] = allocated
                    used.add(allocated)
    if _needs_health_check_port(old_spec) and _needs_health_check_port(new_spec) \
            and not new_spec.get("healthCheckNodePort") and old_spec.get("healthCheckNodePort"):
        new_spec["healthCheckNodePort"] = old_spec["healthCheckNodePort"]


def prepare_for_status_update(resource: Resource, new: dict[str, Any], old: dict[str, Any]) -> dict[str, Any]:
    """A write through `/status`: only status changes; everything else comes from the
    stored object (upstream also keeps metadata but for labels/annotations on some kinds;
    we keep all of it). Returns the object to store."""
    merged = {key: value for key, value in old.items() if key != "status"}
    if "status" in new:
        merged["status"] = new["status"]
    merged["metadata"] = dict(old["metadata"])
    return merged


def pod_qos_class(spec: dict[str, Any]) -> str:
    """Guaranteed when every container has equal cpu and memory requests and limits,
    BestEffort when none sets any, else Burstable (upstream's GetPodQOS)."""
    containers = list(spec.get("containers") or []) + list(spec.get("initContainers") or [])
    any_set = False
    guaranteed = True
    for container in containers:
        resources = container.get("resources") or {}
        requests = resources.get("requests") or {}
        limits = resources.get("limits") or {}
        if requests or limits:
            any_set = True
        for name in ("cpu", "memory"):
            limit = limits.get(name)
            request = requests.get(name, limit)
            if limit is None or str(request) != str(limit):
                guaranteed = False
    if not any_set:
        return "BestEffort"
    return "Guaranteed" if guaranteed else "Burstable"


def graceful_pod_delete(obj: dict[str, Any], grace_period: int | None) -> int:
    """The grace period a pod delete gets: 0 means remove now. Upstream removes pods that
    never reached a node, or that have finished, at once."""
    spec = obj.get("spec") or {}
    if not spec.get("nodeName"):
        return 0
    phase = (obj.get("status") or {}).get("phase")
    if phase in ("Succeeded", "Failed"):
        return 0
    if grace_period is None:
        grace_period = spec.get("terminationGracePeriodSeconds", 30)
    return max(int(grace_period), 0)
