"""PV/PVC matching (api/volumebinding.py), the scheduler's VolumeBinding plugin and the
local-path provisioner's pure parts."""

from __future__ import annotations

from collections import Counter

from pyk8s.api import volumebinding as vb
from pyk8s.provisioner.localpath import immediate_node, provisioned_volume, volume_directory_name
from pyk8s.scheduler.algorithm import PREEMPTION_NOT_HELPFUL, fit_error_message
from pyk8s.scheduler.volumebinding import (REASON_BIND_CONFLICT, REASON_NODE_CONFLICT, UNBOUND_IMMEDIATE,
                                           VolumeBinding)


def pv(name, storage="1Gi", modes=("ReadWriteOnce",), cls="", phase="Available", labels=None, claim_ref=None,
       mode=None, affinity=None, deleting=False):
    spec = {"capacity": {"storage": storage}, "accessModes": list(modes), "hostPath": {"path": f"/v/{name}"}}
    if cls:
        spec["storageClassName"] = cls
    if claim_ref:
        spec["claimRef"] = claim_ref
    if mode:
        spec["volumeMode"] = mode
    if affinity:
        spec["nodeAffinity"] = {"required": {"nodeSelectorTerms": [{"matchExpressions": [
            {"key": key, "operator": "In", "values": [value]}]} for key, value in affinity.items()]}}
    meta = {"name": name, "labels": labels or {}, "resourceVersion": "1"}
    if deleting:
        meta["deletionTimestamp"] = "2024-01-01T00:00:00Z"
    return {"metadata": meta, "spec": spec, "status": {"phase": phase}}


def pvc(name="data", storage="500Mi", modes=("ReadWriteOnce",), cls="", selector=None, uid="u1", volume_name="",
        mode=None, namespace="default"):
    spec = {"accessModes": list(modes), "resources": {"requests": {"storage": storage}}, "storageClassName": cls}
    if selector is not None:
        spec["selector"] = selector
    if volume_name:
        spec["volumeName"] = volume_name
    if mode:
        spec["volumeMode"] = mode
    return {"metadata": {"name": name, "namespace": namespace, "uid": uid}, "spec": spec, "status": {"phase": "Pending"}}


def node(name, **labels):
    return {"metadata": {"name": name, "labels": {"kubernetes.io/hostname": name, **labels}}}


def match(claim, volumes, **kwargs):
    found = vb.find_matching_volume(claim, volumes, **kwargs)
    return found["metadata"]["name"] if found else None


def test_smallest_volume_that_fits_is_chosen():
    volumes = [pv("big", "10Gi"), pv("small", "600Mi"), pv("tiny", "100Mi"), pv("mid", "1Gi")]
    assert match(pvc(storage="500Mi"), volumes) == "small"


def test_claim_too_big_for_every_volume_matches_nothing():
    assert match(pvc(storage="100Mi"), [pv("pv01", "50Mi")]) is None


def test_book_claim_of_40mi_binds_the_50mi_local_volume():
    assert match(pvc(storage="40Mi"), [pv("pv01", "50Mi")]) == "pv01"


def test_storage_class_must_be_equal_and_empty_means_no_class():
    volumes = [pv("fast", cls="fast"), pv("plain")]
    assert match(pvc(cls=""), volumes) == "plain"
    assert match(pvc(cls="fast"), volumes) == "fast"
    assert match(pvc(cls="slow"), volumes) is None


def test_access_modes_must_be_included_and_fewest_modes_win():
    volumes = [pv("rwx", "1Gi", modes=("ReadWriteOnce", "ReadWriteMany")), pv("rwo", "5Gi")]
    assert match(pvc(modes=("ReadWriteOnce",)), volumes) == "rwo"
    assert match(pvc(modes=("ReadWriteMany",)), volumes) == "rwx"
    assert match(pvc(modes=("ReadOnlyMany",)), volumes) is None


def test_volume_mode_must_be_equal():
    volumes = [pv("block", mode="Block"), pv("fs")]
    assert match(pvc(mode="Block"), volumes) == "block"
    assert match(pvc(), volumes) == "fs"


def test_selector_filters_on_volume_labels():
    volumes = [pv("a", "1Gi", labels={"tier": "gold"}), pv("b", "600Mi", labels={"tier": "silver"})]
    assert match(pvc(selector={"matchLabels": {"tier": "gold"}}), volumes) == "a"
    assert match(pvc(selector={"matchExpressions": [{"key": "tier", "operator": "In", "values": ["bronze"]}]}),
                 volumes) is None


def test_volumes_not_available_or_claimed_or_deleting_are_skipped():
    other = {"namespace": "default", "name": "other", "uid": "u2"}
    volumes = [pv("released", phase="Released"), pv("taken", claim_ref=other), pv("going", deleting=True)]
    assert match(pvc(), volumes) is None


def test_volume_pre_bound_to_the_claim_wins_over_a_smaller_one():
    ref = {"namespace": "default", "name": "data"}
    volumes = [pv("small", "600Mi"), pv("mine", "10Gi", claim_ref=ref, cls="other", phase="Available")]
    assert match(pvc(), volumes) == "mine"
    # pre-bound to an earlier claim of that name (another uid): not ours
    stale = {"namespace": "default", "name": "data", "uid": "old"}
    assert match(pvc(), [pv("stale", claim_ref=stale)]) is None


def test_delayed_binding_without_a_node_matches_only_pre_bound_volumes():
    assert match(pvc(), [pv("a")], delay_binding=True) is None
    ref = {"namespace": "default", "name": "data", "uid": "u1"}
    assert match(pvc(), [pv("a", claim_ref=ref)], delay_binding=True) == "a"


def test_node_affinity_restricts_volumes_to_nodes():
    volumes = [pv("on-a", "1Gi", affinity={"kiamol": "ch05"}), pv("on-b", "2Gi", affinity={"kubernetes.io/hostname": "b"})]
    assert match(pvc(), volumes, node=node("a", kiamol="ch05")) == "on-a"
    assert match(pvc(), volumes, node=node("b")) == "on-b"
    assert match(pvc(), volumes, node=node("c")) is None


def test_index_updates_and_excludes_reserved_volumes():
    index = vb.VolumeIndex()
    index.put(pv("a", "1Gi"))
    index.put(pv("b", "2Gi"))
    assert index.find(pvc())["metadata"]["name"] == "a"
    assert index.find(pvc(), excluded={"a"})["metadata"]["name"] == "b"
    index.put(pv("a", "1Gi", claim_ref={"namespace": "default", "name": "x", "uid": "ux"}, phase="Bound"))
    assert index.find(pvc())["metadata"]["name"] == "b"
    index.remove("b")
    assert index.find(pvc()) is None and len(index) == 1


def test_requested_volume_is_checked_against_the_claim():
    assert vb.check_volume_satisfies_claim(pv("a", "50Mi"), pvc(storage="100Mi")) == "requested PV is too small"
    assert vb.check_volume_satisfies_claim(pv("a", cls="x"), pvc()) == "storageClassName does not match"
    assert vb.check_volume_satisfies_claim(pv("a", mode="Block"), pvc()) == "incompatible volumeMode"
    assert vb.check_volume_satisfies_claim(pv("a", modes=("ReadOnlyMany",)), pvc()) == "incompatible accessMode"
    assert vb.check_volume_satisfies_claim(pv("a"), pvc()) is None


def test_claim_class_annotation_wins_and_class_absence_is_distinguished():
    claim = pvc(cls="a")
    claim["metadata"]["annotations"] = {vb.ANN_BETA_STORAGE_CLASS: "b"}
    assert vb.claim_class(claim) == "b"
    unnamed = pvc()
    del unnamed["spec"]["storageClassName"]
    assert not vb.claim_names_class(unnamed) and vb.claim_names_class(pvc(cls=""))


def test_default_class_is_the_newest_default():
    classes = [{"metadata": {"name": "old", "creationTimestamp": "2024-01-01T00:00:00Z",
                             "annotations": {vb.ANN_DEFAULT_CLASS: "true"}}},
               {"metadata": {"name": "new", "creationTimestamp": "2024-02-01T00:00:00Z",
                             "annotations": {vb.ANN_BETA_DEFAULT_CLASS: "true"}}},
               {"metadata": {"name": "plain", "creationTimestamp": "2024-03-01T00:00:00Z"}}]
    assert vb.default_class(classes)["metadata"]["name"] == "new"
    assert vb.default_class(classes[2:]) is None


def test_claim_in_use_only_by_scheduled_running_pods():
    pod = {"metadata": {"name": "db"}, "spec": {"nodeName": "n", "volumes": [
        {"name": "data", "persistentVolumeClaim": {"claimName": "data"}}]}, "status": {"phase": "Running"}}
    assert vb.pod_uses_claim(pod, "data") and not vb.pod_uses_claim(pod, "other")
    assert not vb.pod_uses_claim({**pod, "status": {"phase": "Succeeded"}}, "data")
    assert not vb.pod_uses_claim({**pod, "spec": {**pod["spec"], "nodeName": ""}}, "data")
    forced = {**pod, "metadata": {"name": "db", "deletionTimestamp": "x", "deletionGracePeriodSeconds": 0}}
    assert not vb.pod_uses_claim(forced, "data")
    ephemeral = {"metadata": {"name": "web"}, "spec": {"volumes": [{"name": "scratch", "ephemeral": {}}]}}
    assert vb.pod_claim_names(ephemeral) == ["web-scratch"]


# -- scheduler ---------------------------------------------------------------------------


def _binding(claims, volumes, classes):
    index = vb.VolumeIndex()
    for volume in volumes:
        index.put(volume)
    return VolumeBinding(lambda key: claims.get(key), index, lambda name: classes.get(name))


def _pod(*claims):
    return {"metadata": {"name": "p", "namespace": "default"},
            "spec": {"volumes": [{"name": c, "persistentVolumeClaim": {"claimName": c}} for c in claims]}}


WFFC = {"metadata": {"name": "local-path"}, "provisioner": "pyk8s.io/local-path",
        "volumeBindingMode": "WaitForFirstConsumer"}


def test_unbound_immediate_claim_fails_pre_filter_with_upstream_message():
    binding = _binding({"default/data": pvc()}, [], {})
    message, _ = binding.pre_filter(_pod("data"))
    assert message == UNBOUND_IMMEDIATE
    assert fit_error_message(1, Counter(), Counter({PREEMPTION_NOT_HELPFUL: 1}), pre_filter_message=message) == (
        "0/1 nodes are available: pod has unbound immediate PersistentVolumeClaims. "
        "preemption: 0/1 nodes are available: 1 Preemption is not helpful for scheduling.")
    assert _binding({}, [], {}).pre_filter(_pod("gone"))[0] == 'persistentvolumeclaim "gone" not found'


def test_bound_claim_volume_node_affinity_restricts_nodes():
    claim = pvc(volume_name="pv01")
    claim["metadata"]["annotations"] = {vb.ANN_BIND_COMPLETED: "yes"}
    binding = _binding({"default/data": claim}, [pv("pv01", affinity={"kiamol": "ch05"}, phase="Bound")], {})
    message, volumes = binding.pre_filter(_pod("data"))
    assert message is None
    assert volumes.filter(node("a", kiamol="ch05")) == []
    assert volumes.filter(node("b")) == [REASON_NODE_CONFLICT]


def test_delayed_claim_binds_a_local_volume_or_provisions_on_the_node():
    claim = pvc(cls="local-path")
    binding = _binding({"default/data": claim}, [pv("on-a", cls="local-path", affinity={"kubernetes.io/hostname": "a"})],
                       {"local-path": WFFC})
    _, volumes = binding.pre_filter(_pod("data"))
    reasons, actions = volumes.plan(node("a"))
    assert reasons == [] and actions[0][0] == "bind" and actions[0][2]["metadata"]["name"] == "on-a"
    reasons, actions = volumes.plan(node("b"))
    assert reasons == [] and actions[0][0] == "provision"
    static_only = dict(WFFC, provisioner=vb.NO_PROVISIONER)
    _, volumes = _binding({"default/data": claim}, [], {"local-path": static_only}).pre_filter(_pod("data"))
    assert volumes.filter(node("b")) == [REASON_BIND_CONFLICT]


# -- provisioner ---------------------------------------------------------------------------


def test_provisioned_volume_is_pre_bound_and_pinned_to_its_node():
    claim = pvc(cls="local-path", storage="100Mi", uid="abc")
    volume = provisioned_volume(claim, {"metadata": {"name": "local-path"}, "reclaimPolicy": "Delete"}, "node1",
                                "/data/storage/pvc-abc_default_data")
    assert volume["metadata"]["name"] == "pvc-abc"
    assert volume["spec"]["claimRef"]["uid"] == "abc"
    assert volume["spec"]["capacity"] == {"storage": "100Mi"}
    assert volume["spec"]["persistentVolumeReclaimPolicy"] == "Delete"
    assert vb.volume_node_affinity_matches(volume, node("node1"))
    assert not vb.volume_node_affinity_matches(volume, node("node2"))
    assert volume_directory_name(claim) == "pvc-abc_default_data"


def test_immediate_claims_are_provisioned_by_one_agreed_node():
    nodes = ["c", "a", "b"]
    picks = {immediate_node(f"uid-{i}", nodes) for i in range(50)}
    assert picks == {"a", "b", "c"}
    assert immediate_node("uid-1", nodes) == immediate_node("uid-1", list(reversed(nodes)))
    assert immediate_node("uid-1", []) is None
