"""DaemonSet decisions without a server: node eligibility, tolerations, pinning,
revision hashes, rolling-update steps and status counts."""

from pyk8s.controllers.daemonset import (
    daemon_pod_tolerations, daemonset_status, node_should_run_daemon_pod, pin_to_node, plan_rolling_update,
    revision_hash, target_node_name, template_patch,
)

NOW = 1_000_000.0
READY = {"conditions": [{"type": "Ready", "status": "True", "lastTransitionTime": "1970-01-01T00:00:00Z"}]}


def node(name, labels=None, taints=None):
    return {"metadata": {"name": name, "labels": labels or {}}, "spec": {"taints": taints or []}}


def ds(pod_spec=None, strategy=None, generation=1):
    spec = {"template": {"metadata": {"labels": {"app": "x"}},
                         "spec": {"containers": [{"name": "c", "image": "i"}], **(pod_spec or {})}}}
    if strategy:
        spec["updateStrategy"] = strategy
    return {"metadata": {"name": "x", "namespace": "default", "generation": generation}, "spec": spec}


def pod(name, node_name, hash_value, ready=True, created="2024-01-01T00:00:00Z"):
    return {"metadata": {"name": name, "labels": {"controller-revision-hash": hash_value}, "creationTimestamp": created},
            "spec": {"nodeName": node_name}, "status": READY if ready else {}}


def test_node_selector_decides_which_nodes_run_the_daemon():
    daemon = ds({"nodeSelector": {"kiamol": "ch06"}})
    assert node_should_run_daemon_pod(node("a", {"kiamol": "ch06"}), daemon) == (True, True)
    assert node_should_run_daemon_pod(node("b"), daemon) == (False, False)


def test_required_node_affinity_is_honoured():
    affinity = {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
        {"matchExpressions": [{"key": "zone", "operator": "In", "values": ["z1", "z2"]}]}]}}}
    daemon = ds({"affinity": affinity})
    assert node_should_run_daemon_pod(node("a", {"zone": "z2"}), daemon)[0]
    assert not node_should_run_daemon_pod(node("b", {"zone": "z3"}), daemon)[0]


def test_untolerated_noschedule_taint_keeps_existing_pod_but_noexecute_evicts_it():
    daemon = ds()
    assert node_should_run_daemon_pod(node("a", taints=[{"key": "gpu", "effect": "NoSchedule"}]), daemon) == (False, True)
    assert node_should_run_daemon_pod(node("a", taints=[{"key": "gpu", "effect": "NoExecute"}]), daemon) == (False, False)


def test_daemon_pods_tolerate_unschedulable_and_unreachable_nodes():
    daemon = ds()
    taints = [{"key": "node.kubernetes.io/unschedulable", "effect": "NoSchedule"},
              {"key": "node.kubernetes.io/unreachable", "effect": "NoExecute"}]
    assert node_should_run_daemon_pod(node("a", taints=taints), daemon) == (True, True)


def test_network_unavailable_is_tolerated_only_by_host_network_pods():
    keys = lambda spec: {t["key"] for t in daemon_pod_tolerations(spec)}
    assert "node.kubernetes.io/network-unavailable" in keys({"hostNetwork": True})
    assert "node.kubernetes.io/network-unavailable" not in keys({})


def test_pod_is_pinned_with_node_affinity_and_its_target_node_is_read_back():
    affinity = pin_to_node({"podAntiAffinity": {"x": 1}}, "node-7")
    assert affinity["podAntiAffinity"] == {"x": 1}
    assert target_node_name({"spec": {"affinity": affinity}}) == "node-7"
    assert target_node_name({"spec": {"nodeName": "bound"}}) == "bound"


def test_revision_hash_depends_only_on_the_template():
    first, same, changed = ds(), ds(), ds({"hostNetwork": True})
    assert revision_hash(template_patch(first)) == revision_hash(template_patch(same))
    assert revision_hash(template_patch(first)) != revision_hash(template_patch(changed))
    assert revision_hash(template_patch(first), 1) != revision_hash(template_patch(first))
    assert not set(revision_hash(template_patch(first))) & set("aeiou013")
    assert template_patch(first)["spec"]["template"]["$patch"] == "replace"


def test_rolling_update_without_surge_replaces_within_max_unavailable():
    daemon = ds(strategy={"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 1}})
    pods = {n: [pod(f"old-{n}", n, "old")] for n in ("a", "b", "c")}
    delete, create = plan_rolling_update(daemon, pods, {"a", "b", "c"}, "new", NOW)
    assert delete == ["old-a"] and create == []


def test_rolling_update_deletes_unavailable_old_pods_at_once():
    daemon = ds(strategy={"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 1}})
    pods = {"a": [pod("old-a", "a", "old", ready=False)], "b": [pod("old-b", "b", "old", ready=False)]}
    delete, _ = plan_rolling_update(daemon, pods, {"a", "b"}, "new", NOW)
    assert sorted(delete) == ["old-a", "old-b"]


def test_rolling_update_with_surge_creates_first_then_deletes_old_once_new_is_available():
    daemon = ds(strategy={"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}})
    pods = {"a": [pod("old-a", "a", "old")], "b": [pod("old-b", "b", "old")]}
    delete, create = plan_rolling_update(daemon, pods, {"a", "b"}, "new", NOW)
    assert delete == [] and create == ["a"]
    pods["a"].append(pod("new-a", "a", "new"))
    delete, create = plan_rolling_update(daemon, pods, {"a", "b"}, "new", NOW)
    assert delete == ["old-a"] and create == []


def test_status_counts_desired_current_ready_updated_and_misscheduled():
    daemon = ds({"nodeSelector": {"run": "yes"}})
    nodes = [node("a", {"run": "yes"}), node("b", {"run": "yes"}), node("c")]
    pods = {"a": [pod("pa", "a", "h1")], "c": [pod("pc", "c", "h1", ready=False)]}
    status = daemonset_status(daemon, nodes, pods, "h1", NOW)
    assert status == {"currentNumberScheduled": 1, "numberMisscheduled": 1, "desiredNumberScheduled": 2,
                      "numberReady": 1, "observedGeneration": 1, "updatedNumberScheduled": 1,
                      "numberAvailable": 1, "numberUnavailable": 1}
