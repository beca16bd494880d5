"""Scheduling rules more than one component applies — whether a toleration tolerates a
taint (upstream's Toleration.ToleratesTaint), whether a node satisfies a pod's nodeSelector
and required node affinity — used by the scheduler, the DaemonSet controller and the
node-lifecycle controller alike."""

from __future__ import annotations

from typing import Any, Iterable


def toleration_tolerates(toleration: dict[str, Any], taint: dict[str, Any]) -> bool:
    effect = toleration.get("effect") or ""
    if effect and effect != taint.get("effect"):
        return False
    key = toleration.get("key") or ""
    operator = toleration.get("operator") or "Equal"
    if key and key != taint.get("key"):
        return False
    if operator == "Exists":
        return True  # an empty key with Exists tolerates every taint
    if operator == "Equal":
        return bool(key) and (toleration.get("value") or "") == (taint.get("value") or "")
    return False


def untolerated_taints(taints: Iterable[dict[str, Any]] | None, tolerations: list[dict[str, Any]],
                       effects: tuple[str, ...]) -> list[dict[str, Any]]:
    """The taints with one of `effects` that no toleration tolerates."""
    return [taint for taint in taints or [] if taint.get("effect") in effects
            and not any(toleration_tolerates(t, taint) for t in tolerations)]


def _parse_int(text: str) -> int | None:
    try:
        return int(text)
    except (TypeError, ValueError):
        return None


def match_expression(labels: dict[str, str], expression: dict[str, Any]) -> bool:
    """One NodeSelectorRequirement against a label (or field) map."""
    key = expression.get("key", "")
    operator = expression.get("operator", "")
    values = expression.get("values") or []
    present = key in labels
    if operator == "In":
        return present and labels[key] in values
    if operator == "NotIn":
        return not present or labels[key] not in values
    if operator == "Exists":
        return present
    if operator == "DoesNotExist":
        return not present
    if operator in ("Gt", "Lt"):
        if not present or len(values) != 1:
            return False
        have, want = _parse_int(labels[key]), _parse_int(values[0])
        if have is None or want is None:
            return False
        return have > want if operator == "Gt" else have < want
    return False


def match_node_selector_term(node: dict[str, Any], term: dict[str, Any]) -> bool:
    """All expressions and fields must match; a term with neither matches nothing."""
    expressions = term.get("matchExpressions") or []
    fields = term.get("matchFields") or []
    if not expressions and not fields:
        return False
    labels = (node.get("metadata") or {}).get("labels") or {}
    if not all(match_expression(labels, expression) for expression in expressions):
        return False
    if fields:
        # metadata.name is the only field upstream supports in matchFields.
        node_fields = {"metadata.name": node["metadata"]["name"]}
        for expression in fields:
            if expression.get("key") != "metadata.name" or not match_expression(node_fields, expression):
                return False
    return True


def match_required_node_affinity(node: dict[str, Any], pod_spec: dict[str, Any]) -> bool:
    """nodeSelector (every label equal) and requiredDuringScheduling terms (any term)."""
    node_selector = pod_spec.get("nodeSelector")
    if node_selector:
        labels = (node.get("metadata") or {}).get("labels") or {}
        for key, value in node_selector.items():
            if labels.get(key) != value:
                return False
    required = ((pod_spec.get("affinity") or {}).get("nodeAffinity") or {}).get(
        "requiredDuringSchedulingIgnoredDuringExecution")
    if required is not None:
        terms = required.get("nodeSelectorTerms") or []
        if not any(match_node_selector_term(node, term) for term in terms):
            return False
    return True
