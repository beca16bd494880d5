"""Filters: can this pod run on this node? Pure functions on plain dicts (no I/O).

Each filter follows an upstream scheduler plugin and returns the reasons a node fails, in
upstream's words, because those strings are what users read in `FailedScheduling` events
("0/3 nodes are available: 1 node(s) had untolerated taint {...}, 2 Insufficient cpu.").
Like upstream's framework, a node's evaluation stops at the first failing filter, in
upstream's plugin order: NodeUnschedulable, TaintToleration, NodeAffinity, NodePorts,
NodeResourcesFit. The first three depend only on the pod's spec and the node (the
"static" part, cached per kind of pod); ports and resources depend on what is already
placed on the node.
"""

from __future__ import annotations

from typing import Any, Iterable

from pyk8s.api.scheduling import (match_expression, match_node_selector_term,  # noqa: F401 (used by scores)
                                   match_required_node_affinity, toleration_tolerates)
from pyk8s.scheduler.requests import PODS, HostPort

# Reasons, worded as upstream's plugins word them.
REASON_UNSCHEDULABLE = "node(s) were unschedulable"
REASON_NODE_AFFINITY = "node(s) didn't match Pod's node affinity/selector"
REASON_NODE_PORTS = "node(s) didn't have free ports for the requested pod ports"
REASON_TOO_MANY_PODS = "Too many pods"

TAINT_UNSCHEDULABLE = "node.kubernetes.io/unschedulable"
TAINT_NOT_READY = "node.kubernetes.io/not-ready"
TAINT_UNREACHABLE = "node.kubernetes.io/unreachable"


def untolerated_taint_reason(taint: dict[str, Any]) -> str:
    return f"node(s) had untolerated taint {{{taint.get('key', '')}: {taint.get('value', '')}}}"


def insufficient_reason(resource: str) -> str:
    return f"Insufficient {resource}"


# -- readiness and cordon -----------------------------------------------------------


def node_ready_status(node: dict[str, Any]) -> str:
    """"True", "False" or "Unknown" (also when the node reports no Ready condition)."""
    for condition in (node.get("status") or {}).get("conditions") or ():
        if condition.get("type") == "Ready":
            return condition.get("status") or "Unknown"
    return "Unknown"


def effective_taints(node: dict[str, Any]) -> list[dict[str, Any]]:
    """The node's taints plus the NoSchedule taint upstream's node lifecycle controller
    would add for a node that is not Ready (TaintNodesByCondition), so pods that tolerate
    it (DaemonSet pods) still land there and every other pod is told why not."""
    taints = list((node.get("spec") or {}).get("taints") or ())
    ready = node_ready_status(node)
    if ready != "True":
        key = TAINT_NOT_READY if ready == "False" else TAINT_UNREACHABLE
        if not any(t.get("key") == key and t.get("effect") == "NoSchedule" for t in taints):
            taints.append({"key": key, "effect": "NoSchedule"})
    return taints


def tolerates_unschedulable(tolerations: Iterable[dict[str, Any]]) -> bool:
    return any(toleration_tolerates(t, {"key": TAINT_UNSCHEDULABLE, "effect": "NoSchedule"}) for t in tolerations)


def node_unschedulable_reason(node: dict[str, Any], tolerations: list[dict[str, Any]]) -> str | None:
    """NodeUnschedulable: a cordoned node takes only pods tolerating the unschedulable taint."""
    if (node.get("spec") or {}).get("unschedulable") and not tolerates_unschedulable(tolerations):
        return REASON_UNSCHEDULABLE
    return None


# -- taints and tolerations ------------------------------------------------------------


def first_untolerated_taint(taints: Iterable[dict[str, Any]], tolerations: list[dict[str, Any]],
                            effects: tuple[str, ...] = ("NoSchedule", "NoExecute")) -> dict[str, Any] | None:
    for taint in taints:
        if taint.get("effect") not in effects:
            continue
        if not any(toleration_tolerates(toleration, taint) for toleration in tolerations):
            return taint
    return None


def taint_toleration_reason(taints: list[dict[str, Any]], tolerations: list[dict[str, Any]]) -> str | None:
    taint = first_untolerated_taint(taints, tolerations)
    return untolerated_taint_reason(taint) if taint is not None else None


# -- node selector and node affinity -------------------------------------------------------


def node_affinity_reason(node: dict[str, Any], pod_spec: dict[str, Any]) -> str | None:
    return None if match_required_node_affinity(node, pod_spec) else REASON_NODE_AFFINITY


# -- the static filters together ------------------------------------------------------------


def static_reason(node: dict[str, Any], taints: list[dict[str, Any]], pod_spec: dict[str, Any]) -> str | None:
    """The first pod-spec-only filter the node fails, or None. `taints` is the node's
    effective_taints() (computed once per node)."""
    tolerations = pod_spec.get("tolerations") or []
    return (node_unschedulable_reason(node, tolerations)
            or taint_toleration_reason(taints, tolerations)
            or node_affinity_reason(node, pod_spec))


# -- host ports and resources (depend on what the node already runs) ----------------------


def host_ports_conflict(wanted: Iterable[HostPort], used: Iterable[HostPort]) -> bool:
    """Same protocol and port, and the same IP or either side on 0.0.0.0."""
    used = list(used)
    for port in wanted:
        for taken in used:
            if port.port == taken.port and port.protocol == taken.protocol and (
                    port.ip == taken.ip or port.ip == "0.0.0.0" or taken.ip == "0.0.0.0"):
                return True
    return False


def insufficient_resources(requests: dict[str, int], allocatable: dict[str, int], requested: dict[str, int],
                           pod_count: int) -> list[str]:
    """NodeResourcesFit: every reason (upstream lists each short resource), pods first."""
    reasons = []
    if pod_count + 1 > allocatable.get(PODS, 0):
        reasons.append(REASON_TOO_MANY_PODS)
    for name, amount in requests.items():
        if amount and amount > allocatable.get(name, 0) - requested.get(name, 0):
            reasons.append(insufficient_reason(name))
    return reasons
