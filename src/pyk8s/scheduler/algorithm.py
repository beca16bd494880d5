"""One scheduling decision: filter every node, score the feasible ones, pick the best
(upstream's schedulePod: findNodesThatFitPod + prioritizeNodes + selectHost). No I/O.

The pod-spec-only filters (cordon, taints, node selector / required affinity) and the
static scores (preferred affinity, PreferNoSchedule taints) are memoised per distinct
"placement spec" and cache generation, so the thousand identical pods of one ReplicaSet
pay for them once; per pod only ports, resources and the load-based scores are computed.

When nothing fits, `fit_error_message` words the reason as upstream's FitError, with the
preemption summary upstream's DefaultPreemption adds (we do not preempt: nodes failing
on resources or ports report "No preemption victims found for incoming pod", the others
"Preemption is not helpful for scheduling").
"""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import orjson

from pyk8s.scheduler import scores
from pyk8s.scheduler.cache import NodeInfo, SchedulerCache, controller_uid
from pyk8s.scheduler.filters import (REASON_NODE_PORTS, REASON_TOO_MANY_PODS, host_ports_conflict, insufficient_reason,
                                     static_reason)
from pyk8s.scheduler.requests import CPU, MEMORY, pod_host_ports, pod_requests

NO_NODES_AVAILABLE = "no nodes available to schedule pods"
PREEMPTION_NOT_HELPFUL = "Preemption is not helpful for scheduling"
NO_PREEMPTION_VICTIMS = "No preemption victims found for incoming pod"
PREEMPTION_POLICY_NEVER = "not eligible due to preemptionPolicy=Never"


def reasons_histogram(reasons: Counter) -> str:
    """"2 Insufficient cpu, 1 node(s) were unschedulable", sorted as upstream sorts the
    strings."""
    return ", ".join(sorted(f"{count} {reason}" for reason, count in reasons.items()))


def fit_error_message(node_count: int, reasons: Counter, preemption: Counter | None,
                      preemption_never: bool = False) -> str:
    message = f"0/{node_count} nodes are available: {reasons_histogram(reasons)}."
    if preemption_never:
        message += f" preemption: {PREEMPTION_POLICY_NEVER}."
    elif preemption:
        message += f" preemption: 0/{node_count} nodes are available: {reasons_histogram(preemption)}."
    return message


@dataclass
class StaticResult:
    generation: int
    passing: list[tuple[NodeInfo, int, int]]  # node, preferred-affinity weight, untolerated PreferNoSchedule
    failures: Counter = field(default_factory=Counter)


def placement_spec_key(spec: dict[str, Any]) -> bytes:
    return orjson.dumps([spec.get("nodeSelector"), (spec.get("affinity") or {}).get("nodeAffinity"),
                         spec.get("tolerations")], option=orjson.OPT_SORT_KEYS)


@dataclass
class Decision:
    node_name: str | None
    message: str = ""  # why nothing fitted
    feasible_count: int = 0


class Algorithm:
    def __init__(self, cache: SchedulerCache, rng: random.Random | None = None):
        self.cache = cache
        self.rng = rng or random.Random()
        self._static: dict[bytes, StaticResult] = {}

    def static_filter(self, spec: dict[str, Any]) -> StaticResult:
        key = placement_spec_key(spec)
        generation = self.cache.generation
        result = self._static.get(key)
        if result is not None and result.generation == generation:
            return result
        if len(self._static) > 512:
            self._static.clear()
        tolerations = spec.get("tolerations") or []
        result = StaticResult(generation, [])
        for info in self.cache.node_list():
            reason = static_reason(info.node, info.taints, spec)
            if reason is not None:
                result.failures[reason] += 1
                continue
            result.passing.append((info, scores.preferred_affinity_weight(info.node, spec),
                                   scores.untolerated_prefer_no_schedule(info.taints, tolerations)))
        self._static[key] = result
        return result

    def schedule(self, pod: dict[str, Any]) -> Decision:
        nodes = self.cache.node_list()
        if not nodes:
            return Decision(None, NO_NODES_AVAILABLE)
        spec = pod.get("spec") or {}
        static = self.static_filter(spec)
        requests = pod_requests(pod)
        wanted = requests.resources
        want_cpu = wanted.get(CPU, 0)
        want_memory = wanted.get(MEMORY, 0)
        other_resources = [(name, amount) for name, amount in wanted.items() if name not in (CPU, MEMORY)]
        ports = pod_host_ports(pod)

        dynamic_failures: Counter = Counter()
        resolvable_nodes = 0
        feasible: list[tuple[NodeInfo, int, int]] = []
        for entry in static.passing:
            info = entry[0]
            if ports and host_ports_conflict(ports, info.used_host_ports()):
                dynamic_failures[REASON_NODE_PORTS] += 1
                resolvable_nodes += 1
                continue
            requested = info.requested
            # Inlined NodeResourcesFit: this loop runs nodes x pods times.
            short = None
            if info.pod_count + 1 > info.allocatable_pods:
                short = [REASON_TOO_MANY_PODS]
            if want_cpu and want_cpu > info.allocatable_cpu - requested.get(CPU, 0):
                (short := short or []).append(insufficient_reason(CPU))
            if want_memory and want_memory > info.allocatable_memory - requested.get(MEMORY, 0):
                (short := short or []).append(insufficient_reason(MEMORY))
            for name, amount in other_resources:
                if amount > info.allocatable.get(name, 0) - requested.get(name, 0):
                    (short := short or []).append(insufficient_reason(name))
            if short:
                for reason in short:
                    dynamic_failures[reason] += 1
                resolvable_nodes += 1
                continue
            feasible.append(entry)

        if not feasible:
            reasons = static.failures + dynamic_failures
            unresolvable = sum(static.failures.values())
            preemption = Counter()
            if resolvable_nodes:
                preemption[NO_PREEMPTION_VICTIMS] = resolvable_nodes
            if unresolvable:
                preemption[PREEMPTION_NOT_HELPFUL] = unresolvable
            return Decision(None, fit_error_message(len(nodes), reasons, preemption,
                                                    spec.get("preemptionPolicy") == "Never"))
        if len(feasible) == 1:
            return Decision(feasible[0][0].name, feasible_count=1)
        return Decision(self._best(feasible, requests, controller_uid(pod), want_cpu, want_memory).name,
                        feasible_count=len(feasible))

    def _best(self, feasible: list[tuple[NodeInfo, int, int]], requests, owner_uid: str | None,
              want_cpu: int, want_memory: int) -> NodeInfo:
        affinity = scores.normalize([entry[1] for entry in feasible])
        taints = scores.normalize([entry[2] for entry in feasible], reverse=True)
        spread = (scores.spread_scores([entry[0].owner_counts.get(owner_uid, 0) for entry in feasible],
                                       len(feasible)) if owner_uid else None)
        least_allocated = scores.least_allocated_score
        balanced = scores.balanced_allocation_score
        non_zero_cpu = requests.non_zero_milli_cpu
        non_zero_memory = requests.non_zero_memory
        best_score = -1
        best: list[NodeInfo] = []
        for index, (info, _, _) in enumerate(feasible):
            requested = info.requested
            total = (scores.WEIGHT_NODE_AFFINITY * affinity[index]
                     + scores.WEIGHT_TAINT_TOLERATION * taints[index]
                     + scores.WEIGHT_LEAST_ALLOCATED * least_allocated(
                         info.allocatable_cpu, info.allocatable_memory,
                         info.non_zero_cpu + non_zero_cpu, info.non_zero_memory + non_zero_memory)
                     + scores.WEIGHT_BALANCED_ALLOCATION * balanced(
                         info.allocatable_cpu, info.allocatable_memory,
                         requested.get(CPU, 0) + want_cpu, requested.get(MEMORY, 0) + want_memory))
            if spread is not None:
                total += scores.WEIGHT_TOPOLOGY_SPREAD * spread[index]
            if total > best_score:
                best_score = total
                best = [info]
            elif total == best_score:
                best.append(info)
        return best[0] if len(best) == 1 else self.rng.choice(best)
