"""Unit tests of the scheduler's filters, scores, requests and decisions on plain dicts."""

from __future__ import annotations

import random

from pyk8s.scheduler import filters, scores
from pyk8s.scheduler.algorithm import Algorithm
from pyk8s.scheduler.cache import SchedulerCache
from pyk8s.scheduler.requests import DEFAULT_MEMORY_REQUEST, HostPort, pod_host_ports, pod_requests


def node(name, *, cpu="4", memory="8Gi", pods="110", labels=None, taints=None, unschedulable=False, ready="True"):
    return {"metadata": {"name": name, "labels": labels or {}},
            "spec": {"taints": taints or [], "unschedulable": unschedulable},
            "status": {"allocatable": {"cpu": cpu, "memory": memory, "pods": pods},
                       "conditions": [{"type": "Ready", "status": ready}]}}


def pod(name="p", *, cpu=None, memory=None, node_selector=None, tolerations=None, affinity=None, ports=None,
        owner=None, uid=None):
    requests = {k: v for k, v in (("cpu", cpu), ("memory", memory)) if v}
    container = {"name": "c", "image": "x", "resources": {"requests": requests} if requests else {}}
    if ports:
        container["ports"] = ports
    spec = {"containers": [container]}
    if node_selector:
        spec["nodeSelector"] = node_selector
    if tolerations:
        spec["tolerations"] = tolerations
    if affinity:
        spec["affinity"] = {"nodeAffinity": affinity}
    meta = {"name": name, "namespace": "default", "uid": uid or f"uid-{name}"}
    if owner:
        meta["ownerReferences"] = [{"controller": True, "uid": owner, "kind": "ReplicaSet", "name": owner}]
    return {"metadata": meta, "spec": spec}


def algorithm_with(*nodes):
    cache = SchedulerCache()
    for item in nodes:
        cache.set_node(item)
    return cache, Algorithm(cache, random.Random(7))


# -- requests ---------------------------------------------------------------------------


def test_pod_request_takes_the_larger_of_app_containers_sum_and_biggest_init_container():
    spec = {"containers": [{"resources": {"requests": {"cpu": "100m", "memory": "64Mi"}}},
                           {"resources": {"requests": {"cpu": "200m"}}}],
            "initContainers": [{"resources": {"requests": {"cpu": "500m", "memory": "32Mi"}}}],
            "overhead": {"cpu": "10m"}}
    requests = pod_requests({"spec": spec})
    assert requests.resources == {"cpu": 510, "memory": 64 * 1024 * 1024}


def test_sidecar_init_container_adds_to_the_app_containers():
    spec = {"containers": [{"resources": {"requests": {"cpu": "100m"}}}],
            "initContainers": [{"restartPolicy": "Always", "resources": {"requests": {"cpu": "50m"}}}]}
    assert pod_requests({"spec": spec}).resources == {"cpu": 150}


def test_containers_without_requests_count_as_non_zero_defaults_for_scoring():
    requests = pod_requests(pod())
    assert requests.resources == {}
    assert (requests.non_zero_milli_cpu, requests.non_zero_memory) == (100, DEFAULT_MEMORY_REQUEST)


def test_limits_stand_in_for_missing_requests():
    spec = {"containers": [{"resources": {"limits": {"cpu": "1", "memory": "1Gi"}}}]}
    assert pod_requests({"spec": spec}).resources == {"cpu": 1000, "memory": 1 << 30}


# -- taints and tolerations ---------------------------------------------------------------


def test_equal_toleration_needs_matching_key_value_and_effect():
    taint = {"key": "dedicated", "value": "gpu", "effect": "NoSchedule"}
    assert filters.toleration_tolerates({"key": "dedicated", "value": "gpu", "effect": "NoSchedule"}, taint)
    assert filters.toleration_tolerates({"key": "dedicated", "operator": "Equal", "value": "gpu"}, taint)
    assert not filters.toleration_tolerates({"key": "dedicated", "value": "cpu"}, taint)
    assert not filters.toleration_tolerates({"key": "dedicated", "value": "gpu", "effect": "NoExecute"}, taint)


def test_exists_with_empty_key_tolerates_every_taint():
    assert filters.toleration_tolerates({"operator": "Exists"}, {"key": "anything", "effect": "NoExecute"})
    assert filters.toleration_tolerates({"key": "a", "operator": "Exists"}, {"key": "a", "value": "v", "effect": "NoSchedule"})
    assert not filters.toleration_tolerates({"key": "b", "operator": "Exists"}, {"key": "a", "effect": "NoSchedule"})


def test_prefer_no_schedule_taints_do_not_filter():
    taints = [{"key": "soft", "effect": "PreferNoSchedule"}]
    assert filters.taint_toleration_reason(taints, []) is None
    assert scores.untolerated_prefer_no_schedule(taints, []) == 1


def test_untolerated_taint_reason_has_upstream_wording():
    taints = [{"key": "node-role.kubernetes.io/control-plane", "effect": "NoSchedule"}]
    assert filters.taint_toleration_reason(taints, []) == \
        "node(s) had untolerated taint {node-role.kubernetes.io/control-plane: }"


def test_not_ready_node_gets_the_not_ready_taint_that_daemon_pods_tolerate():
    taints = filters.effective_taints(node("n", ready="False"))
    assert taints == [{"key": "node.kubernetes.io/not-ready", "effect": "NoSchedule"}]
    assert filters.taint_toleration_reason(taints, [{"key": "node.kubernetes.io/not-ready", "operator": "Exists"}]) is None
    assert filters.effective_taints(node("n")) == []


def test_cordoned_node_is_unschedulable_unless_tolerated():
    cordoned = node("n", unschedulable=True)
    assert filters.node_unschedulable_reason(cordoned, []) == "node(s) were unschedulable"
    tolerate = [{"key": "node.kubernetes.io/unschedulable", "operator": "Exists", "effect": "NoSchedule"}]
    assert filters.node_unschedulable_reason(cordoned, tolerate) is None


# -- node selector and affinity ---------------------------------------------------------------


def test_node_selector_needs_every_label():
    labeled = node("n", labels={"disk": "ssd", "zone": "a"})
    assert filters.match_required_node_affinity(labeled, {"nodeSelector": {"disk": "ssd"}})
    assert not filters.match_required_node_affinity(labeled, {"nodeSelector": {"disk": "ssd", "zone": "b"}})


def test_affinity_operators():
    labels = {"disk": "ssd", "cores": "8"}
    assert filters.match_expression(labels, {"key": "disk", "operator": "In", "values": ["ssd", "nvme"]})
    assert not filters.match_expression(labels, {"key": "disk", "operator": "NotIn", "values": ["ssd"]})
    assert filters.match_expression(labels, {"key": "gpu", "operator": "NotIn", "values": ["x"]})
    assert filters.match_expression(labels, {"key": "disk", "operator": "Exists"})
    assert filters.match_expression(labels, {"key": "gpu", "operator": "DoesNotExist"})
    assert filters.match_expression(labels, {"key": "cores", "operator": "Gt", "values": ["4"]})
    assert not filters.match_expression(labels, {"key": "cores", "operator": "Lt", "values": ["4"]})
    assert not filters.match_expression(labels, {"key": "disk", "operator": "Gt", "values": ["4"]})


def test_node_selector_terms_are_ored_and_match_fields_select_by_name():
    spec = {"affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
        {"matchExpressions": [{"key": "disk", "operator": "In", "values": ["ssd"]}]},
        {"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["special"]}]}]}}}}
    assert filters.match_required_node_affinity(node("a", labels={"disk": "ssd"}), spec)
    assert filters.match_required_node_affinity(node("special"), spec)
    assert not filters.match_required_node_affinity(node("other"), spec)


def test_empty_node_selector_term_matches_nothing():
    spec = {"affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [{}]}}}}
    assert not filters.match_required_node_affinity(node("a"), spec)


# -- ports and resources -------------------------------------------------------------------


def test_host_ports_conflict_on_same_port_and_protocol_with_wildcard_ip():
    wanted = pod_host_ports(pod(ports=[{"containerPort": 80, "hostPort": 8080}]))
    assert wanted == (HostPort("0.0.0.0", "TCP", 8080),)
    assert filters.host_ports_conflict(wanted, [HostPort("127.0.0.1", "TCP", 8080)])
    assert not filters.host_ports_conflict(wanted, [HostPort("0.0.0.0", "UDP", 8080)])
    assert not filters.host_ports_conflict((HostPort("10.0.0.1", "TCP", 1),), [HostPort("10.0.0.2", "TCP", 1)])


def test_insufficient_resources_lists_every_short_resource():
    reasons = filters.insufficient_resources({"cpu": 3000, "memory": 10, "ephemeral-storage": 5},
                                             {"cpu": 4000, "memory": 100, "pods": 1}, {"cpu": 2000}, 1)
    assert reasons == ["Too many pods", "Insufficient cpu", "Insufficient ephemeral-storage"]


# -- scores -------------------------------------------------------------------------------


def test_least_allocated_prefers_the_emptier_node():
    assert scores.least_allocated_score(4000, 1000, 1000, 500) == (75 + 50) // 2
    assert scores.least_allocated(1000, 2000) == 0


def test_balanced_allocation_is_best_when_fractions_match():
    assert scores.balanced_allocation_score(1000, 1000, 500, 500) == 100
    assert scores.balanced_allocation_score(1000, 1000, 1000, 0) == 50


def test_preferred_affinity_weights_add_up():
    spec = {"affinity": {"nodeAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [
        {"weight": 10, "preference": {"matchExpressions": [{"key": "disk", "operator": "In", "values": ["ssd"]}]}},
        {"weight": 5, "preference": {"matchExpressions": [{"key": "zone", "operator": "Exists"}]}}]}}}
    assert scores.preferred_affinity_weight(node("n", labels={"disk": "ssd", "zone": "a"}), spec) == 15
    assert scores.preferred_affinity_weight(node("n", labels={"zone": "a"}), spec) == 5


def test_spread_scores_favour_nodes_with_fewer_pods_of_the_owner():
    spread = scores.spread_scores([0, 2, 1], 3)
    assert spread[0] > spread[2] > spread[1]


# -- decisions ----------------------------------------------------------------------------------


def test_pod_goes_to_the_only_node_matching_its_selector():
    _, algorithm = algorithm_with(node("a"), node("b", labels={"disk": "ssd"}), node("c"))
    assert algorithm.schedule(pod(node_selector={"disk": "ssd"})).node_name == "b"


def test_assumed_pods_use_up_the_node():
    cache, algorithm = algorithm_with(node("a", cpu="1"))
    first = pod("first", cpu="600m")
    decision = algorithm.schedule(first)
    assert decision.node_name == "a"
    cache.assume(first, "a")
    assert algorithm.schedule(pod("second", cpu="600m")).node_name is None
    cache.forget("uid-first")
    assert algorithm.schedule(pod("second", cpu="600m")).node_name == "a"


def test_pods_of_one_owner_spread_over_nodes():
    cache, algorithm = algorithm_with(node("a"), node("b"), node("c"))
    placed = []
    for index in range(6):
        item = pod(f"p{index}", cpu="10m", owner="rs-1")
        decision = algorithm.schedule(item)
        cache.assume(item, decision.node_name)
        placed.append(decision.node_name)
    assert sorted(placed) == ["a", "a", "b", "b", "c", "c"]


def test_preferred_affinity_wins_among_equal_nodes():
    _, algorithm = algorithm_with(node("a"), node("b", labels={"disk": "ssd"}), node("c"))
    affinity = {"preferredDuringSchedulingIgnoredDuringExecution": [
        {"weight": 50, "preference": {"matchExpressions": [{"key": "disk", "operator": "In", "values": ["ssd"]}]}}]}
    assert algorithm.schedule(pod(affinity=affinity)).node_name == "b"


def test_host_port_in_use_sends_the_pod_elsewhere():
    cache, algorithm = algorithm_with(node("a"), node("b"))
    web = [{"containerPort": 80, "hostPort": 80}]
    first = pod("first", ports=web)
    cache.assume(first, "a")
    assert algorithm.schedule(pod("second", ports=web)).node_name == "b"


def test_failure_message_counts_reasons_like_upstream():
    taint = {"key": "node-role.kubernetes.io/control-plane", "effect": "NoSchedule"}
    _, algorithm = algorithm_with(node("cp", taints=[taint]), node("w1", cpu="1"), node("w2", cpu="1"))
    decision = algorithm.schedule(pod(cpu="2"))
    assert decision.node_name is None
    assert decision.message == (
        "0/3 nodes are available: 1 node(s) had untolerated taint {node-role.kubernetes.io/control-plane: }, "
        "2 Insufficient cpu. preemption: 0/3 nodes are available: 1 Preemption is not helpful for scheduling, "
        "2 No preemption victims found for incoming pod.")


def test_failure_message_when_only_unresolvable_reasons():
    _, algorithm = algorithm_with(node("a", unschedulable=True), node("b"), node("c"))
    decision = algorithm.schedule(pod(node_selector={"disk": "ssd"}))
    assert decision.message == (
        "0/3 nodes are available: 1 node(s) were unschedulable, 2 node(s) didn't match Pod's node "
        "affinity/selector. preemption: 0/3 nodes are available: 3 Preemption is not helpful for scheduling.")


def test_no_nodes_at_all():
    _, algorithm = algorithm_with()
    assert algorithm.schedule(pod()).message == "no nodes available to schedule pods"


def test_static_results_are_recomputed_after_a_node_changes():
    cache, algorithm = algorithm_with(node("a"))
    assert algorithm.schedule(pod(node_selector={"disk": "ssd"})).node_name is None
    assert cache.set_node(node("a", labels={"disk": "ssd"}))
    assert algorithm.schedule(pod(node_selector={"disk": "ssd"})).node_name == "a"


def test_heartbeat_only_node_update_is_not_a_scheduling_change():
    cache = SchedulerCache()
    cache.set_node(node("a"))
    beat = node("a")
    beat["status"]["conditions"][0]["lastHeartbeatTime"] = "2030-01-01T00:00:00Z"
    assert not cache.set_node(beat)


def test_confirmed_pod_is_counted_once_and_freed_on_delete():
    cache = SchedulerCache()
    cache.set_node(node("a"))
    item = pod("x", cpu="500m")
    cache.assume(item, "a")
    bound = dict(item, spec=dict(item["spec"], nodeName="a"))
    cache.add_bound_pod(bound)
    assert cache.nodes["a"].requested["cpu"] == 500 and cache.nodes["a"].pod_count == 1
    cache.forget("uid-x")  # confirmed: a late forget must not drop it
    assert cache.nodes["a"].pod_count == 1
    cache.remove_pod_uid("uid-x")
    assert cache.nodes["a"].requested["cpu"] == 0 and cache.nodes["a"].pod_count == 0
