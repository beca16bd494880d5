"""Decision logic of the garbage collector, namespace, node-lifecycle and event-TTL
controllers, without a server."""

from pyk8s.controllers.eventttl import expired, parse_timestamp
from pyk8s.controllers.garbagecollector import classify_owners, deletion_policy_for, graphed_resources
from pyk8s.controllers.namespace import deletion_conditions, merge_conditions
from pyk8s.controllers.nodelifecycle import eviction_time, unknown_conditions, wanted_taints


def test_owners_are_split_into_solid_dangling_and_waiting():
    refs = [{"uid": "a"}, {"uid": "b"}, {"uid": "c"}]
    solid, dangling, waiting = classify_owners(refs, {"a": "solid", "b": "dangling", "c": "waiting"})
    assert (solid, dangling, waiting) == ([{"uid": "a"}], [{"uid": "b"}], [{"uid": "c"}])


def test_object_without_solid_owner_is_deleted_with_its_own_finalizer_policy():
    assert deletion_policy_for({"metadata": {}}) == "Background"
    assert deletion_policy_for({"metadata": {"finalizers": ["orphan"]}}) == "Orphan"
    assert deletion_policy_for({"metadata": {"finalizers": ["foregroundDeletion"]}}) == "Foreground"


def test_events_are_left_out_of_the_ownership_graph():
    plurals = {(r.group, r.plural) for r in graphed_resources()}
    assert ("", "events") not in plurals and ("events.k8s.io", "events") not in plurals
    assert ("apps", "replicasets") in plurals and ("", "pods") in plurals


def test_namespace_conditions_report_remaining_content_and_finalizers():
    conditions = {c["type"]: c for c in deletion_conditions({"pods.": 2}, {"example.com/x": 1}, [])}
    assert conditions["NamespaceContentRemaining"]["message"] == "Some resources are remaining: pods. has 2 resource instances"
    assert conditions["NamespaceFinalizersRemaining"]["reason"] == "SomeFinalizersRemain"
    assert conditions["NamespaceDeletionContentFailure"]["status"] == "False"
    done = {c["type"]: c for c in deletion_conditions({}, {}, [])}
    assert done["NamespaceContentRemaining"]["reason"] == "ContentRemoved"


def test_unchanged_namespace_condition_keeps_its_transition_time():
    wanted = deletion_conditions({}, {}, [])
    first = merge_conditions([], wanted, "T1")
    again = merge_conditions(first, wanted, "T2")
    assert {c["lastTransitionTime"] for c in again} == {"T1"}


def test_silent_node_conditions_become_unknown_once():
    node = {"metadata": {"creationTimestamp": "T0"},
            "status": {"conditions": [{"type": "Ready", "status": "True", "lastHeartbeatTime": "T1"}]}}
    conditions = {c["type"]: c for c in unknown_conditions(node, "T9")}
    assert conditions["Ready"]["status"] == "Unknown" and conditions["Ready"]["reason"] == "NodeStatusUnknown"
    assert conditions["Ready"]["message"] == "Kubelet stopped posting node status."
    assert conditions["MemoryPressure"]["reason"] == "NodeStatusNeverUpdated"
    node["status"]["conditions"] = list(conditions.values())
    assert unknown_conditions(node, "T10") is None


def test_taints_follow_ready_condition_and_keep_foreign_taints():
    foreign = {"key": "gpu", "effect": "NoSchedule"}
    node = {"spec": {"taints": [foreign]}, "status": {"conditions": [{"type": "Ready", "status": "Unknown"}]}}
    taints = wanted_taints(node, "T")
    assert {(t["key"], t["effect"]) for t in taints} == {
        ("gpu", "NoSchedule"), ("node.kubernetes.io/unreachable", "NoSchedule"), ("node.kubernetes.io/unreachable", "NoExecute")}
    node["spec"]["taints"] = taints
    node["status"]["conditions"][0]["status"] = "False"
    assert {t["key"] for t in wanted_taints(node, "T")} == {"gpu", "node.kubernetes.io/not-ready"}
    node["status"]["conditions"][0]["status"] = "True"
    node["spec"]["unschedulable"] = True
    assert {t["key"] for t in wanted_taints(node, "T")} == {"gpu", "node.kubernetes.io/unschedulable"}


def test_eviction_waits_for_the_shortest_toleration():
    taints = [{"key": "node.kubernetes.io/unreachable", "effect": "NoExecute", "timeAdded": "1970-01-01T00:01:40Z"}]
    tolerating = {"spec": {"tolerations": [
        {"key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300},
        {"operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 30}]}}
    assert eviction_time(tolerating, taints, 0) == 130.0
    assert eviction_time({"spec": {}}, taints, 0) == 0.0
    forever = {"spec": {"tolerations": [{"operator": "Exists"}]}}
    assert eviction_time(forever, taints, 0) is None
    assert eviction_time(tolerating, [{"key": "x", "effect": "NoSchedule"}], 0) is None


def test_events_expire_an_hour_after_their_last_occurrence():
    now = parse_timestamp("2024-05-01T12:00:00Z")
    assert expired({"metadata": {}, "lastTimestamp": "2024-05-01T10:59:59Z"}, now, 3600)
    assert not expired({"metadata": {}, "lastTimestamp": "2024-05-01T11:30:00Z"}, now, 3600)
    assert expired({"metadata": {}, "eventTime": "2024-05-01T10:00:00.123456Z"}, now, 3600)
    assert not expired({"metadata": {"creationTimestamp": "2024-05-01T11:59:00Z"}}, now, 3600)
