"""Scores: how good is each feasible node for this pod? Pure functions (no I/O).

Each score follows an upstream plugin and lands in 0..100 (MaxNodeScore); the scheduler
adds them with upstream's default weights and picks the best node, breaking ties at
random:

| plugin (upstream)                | weight | what scores high                          |
|----------------------------------|--------|-------------------------------------------|
| TaintToleration                  | 3      | few untolerated PreferNoSchedule taints   |
| NodeAffinity                     | 2      | large sum of matching preferred terms     |
| PodTopologySpread (system default)| 2     | few pods of the same owner on the node    |
| NodeResourcesFit (LeastAllocated)| 1      | much cpu and memory left after placing it |
| NodeResourcesBalancedAllocation  | 1      | cpu and memory used in the same fraction  |
"""

from __future__ import annotations

import math
from typing import Any, Iterable

from pyk8s.scheduler.filters import match_node_selector_term, toleration_tolerates

MAX_NODE_SCORE = 100

WEIGHT_TAINT_TOLERATION = 3
WEIGHT_NODE_AFFINITY = 2
WEIGHT_TOPOLOGY_SPREAD = 2
WEIGHT_LEAST_ALLOCATED = 1
WEIGHT_BALANCED_ALLOCATION = 1

# The system default topology constraint on hostname has maxSkew 3 (upstream
# podtopologyspread systemDefaultConstraints); the score adds maxSkew - 1.
SPREAD_HOSTNAME_MAX_SKEW = 3


def least_allocated(allocatable: int, requested: int) -> int:
    """One resource's share left free, 0..100 (integer arithmetic as upstream)."""
    if allocatable <= 0 or requested > allocatable:
        return 0
    return (allocatable - requested) * MAX_NODE_SCORE // allocatable


def least_allocated_score(allocatable_cpu: int, allocatable_memory: int, requested_cpu: int,
                          requested_memory: int) -> int:
    """cpu and memory weighted 1:1; `requested_*` already include the incoming pod."""
    return (least_allocated(allocatable_cpu, requested_cpu)
            + least_allocated(allocatable_memory, requested_memory)) // 2


def balanced_allocation_score(allocatable_cpu: int, allocatable_memory: int, requested_cpu: int,
                              requested_memory: int) -> int:
    """(1 - standard deviation of the used fractions) * 100; for two resources the
    deviation is half their difference."""
    if allocatable_cpu <= 0 or allocatable_memory <= 0:
        return 0
    cpu_fraction = min(requested_cpu / allocatable_cpu, 1.0)
    memory_fraction = min(requested_memory / allocatable_memory, 1.0)
    deviation = abs(cpu_fraction - memory_fraction) / 2
    return int((1 - deviation) * MAX_NODE_SCORE)


def preferred_affinity_weight(node: dict[str, Any], pod_spec: dict[str, Any]) -> int:
    """Sum of the weights of the preferred node-affinity terms the node matches."""
    preferred = ((pod_spec.get("affinity") or {}).get("nodeAffinity") or {}).get(
        "preferredDuringSchedulingIgnoredDuringExecution") or []
    total = 0
    for term in preferred:
        weight = term.get("weight") or 0
        if weight and match_node_selector_term(node, term.get("preference") or {}):
            total += weight
    return total


def untolerated_prefer_no_schedule(taints: Iterable[dict[str, Any]], tolerations: list[dict[str, Any]]) -> int:
    """How many PreferNoSchedule taints the pod does not tolerate (only tolerations with
    an empty or PreferNoSchedule effect count, as upstream)."""
    relevant = [t for t in tolerations if (t.get("effect") or "") in ("", "PreferNoSchedule")]
    return sum(1 for taint in taints if taint.get("effect") == "PreferNoSchedule"
               and not any(toleration_tolerates(t, taint) for t in relevant))


def normalize(raw: list[int], *, reverse: bool = False) -> list[int]:
    """upstream's DefaultNormalizeScore: scale so the largest raw score is 100 (reverse:
    the largest becomes 0). All zero stays all zero (or all 100 when reversed)."""
    highest = max(raw, default=0)
    if highest == 0:
        return [MAX_NODE_SCORE if reverse else 0 for _ in raw]
    if reverse:
        return [MAX_NODE_SCORE - value * MAX_NODE_SCORE // highest for value in raw]
    return [value * MAX_NODE_SCORE // highest for value in raw]


def spread_scores(same_owner_counts: list[int], node_count: int) -> list[int]:
    """PodTopologySpread's score for the default hostname constraint: a node's raw score
    grows with the pods of the same owner already there (weighted by log(nodes + 2) and
    offset by maxSkew - 1); normalising turns fewest-pods into 100."""
    if not same_owner_counts:
        return []
    weight = math.log(node_count + 2)
    raw = [count * weight + (SPREAD_HOSTNAME_MAX_SKEW - 1) for count in same_owner_counts]
    highest, lowest = max(raw), min(raw)
    if highest == 0:
        return [MAX_NODE_SCORE] * len(raw)
    return [int(MAX_NODE_SCORE * (highest + lowest - value) / highest) for value in raw]
