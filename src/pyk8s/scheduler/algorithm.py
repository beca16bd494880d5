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
from pyk8s.scheduler.filters import REASON_NODE_PORTS, host_ports_conflict, insufficient_resources, static_reason
from pyk8s.scheduler.requests import CPU, MEMORY, pod_host_ports, pod_requests
from pyk8s.scheduler.volumebinding import PodVolumes, VolumeBinding

NO_NODES_AVAILABLE = "no nodes available to schedule pods"
PREEMPTION_NOT_HELPFUL = "Preemption is not helpful for scheduling"
NO_PREEMPTION_VICTIMS = "No preemption victims found for incoming pod"
PREEMPTION_POLICY_NEVER = "not eligible due to preemptionPolicy=Never"

# upstream's minFeasibleNodesToFind / minFeasibleNodesPercentageToFind
MIN_FEASIBLE_NODES_TO_FIND = 100
MIN_FEASIBLE_NODES_PERCENTAGE_TO_FIND = 5


def reasons_histogram(reasons: Counter) -> str:
    """"2 Insufficient cpu, 1 node(s) were unschedulable", sorted as upstream sorts the
    strings."""
    return ", ".join(sorted(f"{count} {reason}" for reason, count in reasons.items()))


def fit_error_message(node_count: int, reasons: Counter, preemption: Counter | None,
                      preemption_never: bool = False, pre_filter_message: str = "") -> str:
    # A PreFilter's message replaces the per-node reasons (upstream FitError.Error).
    message = f"0/{node_count} nodes are available: {pre_filter_message or reasons_histogram(reasons)}."
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
    any_affinity_weight: bool = False
    any_prefer_no_schedule: bool = False


def placement_spec_key(spec: dict[str, Any]) -> bytes:
    return orjson.dumps([spec.get("nodeSelector"), (spec.get("affinity") or {}).get("nodeAffinity"),
                         spec.get("tolerations")], option=orjson.OPT_SORT_KEYS)


@dataclass
class Decision:
    node_name: str | None
    message: str = ""  # why nothing fitted
    feasible_count: int = 0
    volumes: PodVolumes | None = None  # the pod's claims, to prepare on the chosen node (PreBind)


class Algorithm:
    def __init__(self, cache: SchedulerCache, rng: random.Random | None = None,
                 volume_binding: VolumeBinding | None = None):
        self.cache = cache
        self.volume_binding = volume_binding
        self._next_start = 0
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
        result.any_affinity_weight = any(entry[1] for entry in result.passing)
        result.any_prefer_no_schedule = any(entry[2] for entry in result.passing)
        self._static[key] = result
        return result

    def nodes_to_find(self, node_count: int) -> int:
        """upstream's numFeasibleNodesToFind with the adaptive percentage: every node up
        to 100, then 50% minus 1% per 125 nodes (never under 5%), at least 100."""
        if node_count <= MIN_FEASIBLE_NODES_TO_FIND:
            return node_count
        percentage = max(50 - node_count // 125, MIN_FEASIBLE_NODES_PERCENTAGE_TO_FIND)
        return max(node_count * percentage // 100, MIN_FEASIBLE_NODES_TO_FIND)

    def schedule(self, pod: dict[str, Any]) -> Decision:
        nodes = self.cache.node_list()
        if not nodes:
            return Decision(None, NO_NODES_AVAILABLE)
        spec = pod.get("spec") or {}
        volumes = None
        if self.volume_binding is not None and spec.get("volumes"):
            message, volumes = self.volume_binding.pre_filter(pod)
            if message is not None:
                # A PreFilter rejection: its message stands for every node (upstream's FitError).
                return Decision(None, fit_error_message(len(nodes), Counter(), Counter(
                    {PREEMPTION_NOT_HELPFUL: len(nodes)}), spec.get("preemptionPolicy") == "Never",
                    pre_filter_message=message))
        static = self.static_filter(spec)
        requests = pod_requests(pod)
        wanted = requests.resources
        want_cpu = wanted.get(CPU, 0)
        want_memory = wanted.get(MEMORY, 0)
        other_resources = [(name, amount) for name, amount in wanted.items() if name not in (CPU, MEMORY)]
        ports = pod_host_ports(pod)

        passing = static.passing
        count = len(passing)
        to_find = self.nodes_to_find(len(nodes))
        # Like upstream, start where the previous search stopped so that, on big
        # clusters, searches that stop early still visit every node over time.
        start = self._next_start % count if count else 0
        dynamic_failures: Counter = Counter()
        resolvable_nodes = 0
        volume_failed_nodes = 0
        feasible: list[tuple[NodeInfo, int, int]] = []
        visited = 0
        for offset in range(count):
            entry = passing[(start + offset) % count]
            visited += 1
            info = entry[0]
            if ports and host_ports_conflict(ports, info.used_host_ports()):
                dynamic_failures[REASON_NODE_PORTS] += 1
                resolvable_nodes += 1
                continue
            requested = info.requested
            # Inlined NodeResourcesFit: this loop runs nodes x pods times.
            if (info.pod_count < info.allocatable_pods
                    and (not want_cpu or want_cpu <= info.allocatable_cpu - requested.get(CPU, 0))
                    and (not want_memory or want_memory <= info.allocatable_memory - requested.get(MEMORY, 0))
                    and all(amount <= info.allocatable.get(name, 0) - requested.get(name, 0)
                            for name, amount in other_resources)):
                if volumes is not None:
                    volume_reasons = volumes.filter(info.node)
                    if volume_reasons:  # VolumeBinding: unresolvable by preemption
                        for reason in volume_reasons:
                            dynamic_failures[reason] += 1
                        volume_failed_nodes += 1
                        continue
                feasible.append(entry)
                if len(feasible) >= to_find:
                    break
                continue
            for reason in insufficient_resources(wanted, info.allocatable, requested, info.pod_count):
                dynamic_failures[reason] += 1
            resolvable_nodes += 1
        self._next_start = (start + visited) % count if count else 0

        if not feasible:
            reasons = static.failures + dynamic_failures
            unresolvable = sum(static.failures.values()) + volume_failed_nodes
            preemption = Counter()
            if resolvable_nodes:
                preemption[NO_PREEMPTION_VICTIMS] = resolvable_nodes
            if unresolvable:
                preemption[PREEMPTION_NOT_HELPFUL] = unresolvable
            return Decision(None, fit_error_message(len(nodes), reasons, preemption,
                                                    spec.get("preemptionPolicy") == "Never"))
        if len(feasible) == 1:
            return Decision(feasible[0][0].name, feasible_count=1, volumes=volumes)
        return Decision(self._best(feasible, static, requests, controller_uid(pod), want_cpu, want_memory).name,
                        feasible_count=len(feasible), volumes=volumes)

    def _best(self, feasible: list[tuple[NodeInfo, int, int]], static: StaticResult, requests,
              owner_uid: str | None, want_cpu: int, want_memory: int) -> NodeInfo:
        # Scores equal on every node change no choice: skip them (the common case of pods
        # without preferred affinity on nodes without PreferNoSchedule taints).
        affinity = scores.normalize([entry[1] for entry in feasible]) if static.any_affinity_weight else None
        taints = (scores.normalize([entry[2] for entry in feasible], reverse=True)
                  if static.any_prefer_no_schedule else None)
        spread = (scores.spread_scores([entry[0].owner_counts.get(owner_uid, 0) for entry in feasible],
                                       len(feasible)) if owner_uid else None)
        non_zero_cpu = requests.non_zero_milli_cpu
        non_zero_memory = requests.non_zero_memory
        best_score = -1
        best: list[NodeInfo] = []
        for index, (info, _, _) in enumerate(feasible):
            allocatable_cpu = info.allocatable_cpu
            allocatable_memory = info.allocatable_memory
            # LeastAllocated (non-zero requests) and BalancedAllocation (real requests),
            # inlined from scores.least_allocated_score / balanced_allocation_score.
            if allocatable_cpu > 0 and allocatable_memory > 0:
                used_cpu = info.non_zero_cpu + non_zero_cpu
                used_memory = info.non_zero_memory + non_zero_memory
                least = ((0 if used_cpu > allocatable_cpu else
                          (allocatable_cpu - used_cpu) * 100 // allocatable_cpu)
                         + (0 if used_memory > allocatable_memory else
                            (allocatable_memory - used_memory) * 100 // allocatable_memory)) // 2
                requested = info.requested
                cpu_fraction = min((requested.get(CPU, 0) + want_cpu) / allocatable_cpu, 1.0)
                memory_fraction = min((requested.get(MEMORY, 0) + want_memory) / allocatable_memory, 1.0)
                total = (scores.WEIGHT_LEAST_ALLOCATED * least + scores.WEIGHT_BALANCED_ALLOCATION
                         * int((1 - abs(cpu_fraction - memory_fraction) / 2) * 100))
            else:
                total = 0
            if affinity is not None:
                total += scores.WEIGHT_NODE_AFFINITY * affinity[index]
            if taints is not None:
                total += scores.WEIGHT_TAINT_TOLERATION * taints[index]
            if spread is not None:
                total += scores.WEIGHT_TOPOLOGY_SPREAD * spread[index]
            if total > best_score:
                best_score = total
                best = [info]
            elif total == best_score:
                best.append(info)
        return best[0] if len(best) == 1 else self.rng.choice(best)
