"""Pure logic of the Deployment controller (upstream deployment_util.go): the template hash,
surge/unavailable resolution, new-ReplicaSet selection, proportional scaling, annotations,
conditions and history cleanup."""

from __future__ import annotations

import datetime

import pytest

from pyk8s.controllers import deployment as d
from pyk8s.controllers import podtemplate

TEMPLATE = {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "web", "image": "nginx:1"}]}}


def deploy(replicas=10, surge="25%", unavailable="25%", strategy="RollingUpdate", **extra):
    spec = {"replicas": replicas, "strategy": {"type": strategy}, "template": TEMPLATE, **extra}
    if strategy == "RollingUpdate":
        spec["strategy"]["rollingUpdate"] = {"maxSurge": surge, "maxUnavailable": unavailable}
    return {"metadata": {"name": "web", "generation": 1, "annotations": {}}, "spec": spec, "status": {}}


def rs(name, replicas, *, created="2026-01-01T00:00:00Z", template=TEMPLATE, annotations=None, available=0):
    return {"metadata": {"name": name, "creationTimestamp": created, "annotations": dict(annotations or {})},
            "spec": {"replicas": replicas, "template": template},
            "status": {"replicas": replicas, "availableReplicas": available}}


def test_hash_is_stable_and_uses_the_safe_alphabet():
    first = podtemplate.compute_template_hash(TEMPLATE)
    assert first == podtemplate.compute_template_hash({"spec": TEMPLATE["spec"], "metadata": TEMPLATE["metadata"]})
    assert set(first) <= set(podtemplate.SAFE_ALPHABET)
    # Pinned: a restart (or another Python) must name the same ReplicaSet.
    assert first == "75f67448f4"


def test_hash_ignores_its_own_label_and_changes_with_template_and_collisions():
    base = podtemplate.compute_template_hash(TEMPLATE)
    labelled = {"metadata": {"labels": {"app": "web", "pod-template-hash": base}}, "spec": TEMPLATE["spec"]}
    assert podtemplate.compute_template_hash(labelled) == base
    changed = {"metadata": TEMPLATE["metadata"], "spec": {"containers": [{"name": "web", "image": "nginx:2"}]}}
    assert podtemplate.compute_template_hash(changed) != base
    assert podtemplate.compute_template_hash(TEMPLATE, 1) != base
    assert podtemplate.compute_template_hash(TEMPLATE, 1) != podtemplate.compute_template_hash(TEMPLATE, 2)


def test_fnv32a_and_safe_encoding_match_reference_values():
    assert podtemplate.fnv32a(b"") == 0x811C9DC5
    assert podtemplate.fnv32a(b"a") == 0xE40C292C
    assert podtemplate.safe_encode_string("0123456789") == "456789bcdf"


@pytest.mark.parametrize("surge, unavailable, replicas, expected", [
    ("25%", "25%", 10, (3, 2)),      # surge rounds up, unavailable down
    ("25%", "25%", 1, (1, 0)),
    (0, 0, 3, (0, 1)),               # both zero would deadlock: unavailable becomes 1
    ("0%", "0%", 3, (0, 1)),
    (2, "50%", 5, (2, 2)),
    ("100%", 0, 3, (3, 0)),
])
def test_fenceposts(surge, unavailable, replicas, expected):
    assert d.resolve_fenceposts(surge, unavailable, replicas) == expected


def test_max_unavailable_is_capped_and_zero_for_recreate():
    assert d.max_unavailable(deploy(replicas=2, unavailable=5)) == 2
    assert d.max_unavailable(deploy(replicas=0)) == 0
    assert d.max_unavailable(deploy(strategy="Recreate")) == 0
    assert d.max_surge(deploy(strategy="Recreate")) == 0
    assert d.max_surge(deploy(replicas=10)) == 3


def test_new_replica_set_is_the_oldest_with_an_equal_template():
    other = {"metadata": TEMPLATE["metadata"], "spec": {"containers": [{"name": "web", "image": "nginx:2"}]}}
    hashed = {"metadata": {"labels": {"app": "web", "pod-template-hash": "abc"}}, "spec": TEMPLATE["spec"]}
    candidates = [rs("newer", 1, created="2026-01-02T00:00:00Z", template=hashed),
                  rs("other", 1, template=other),
                  rs("older", 1, created="2026-01-01T00:00:00Z", template=hashed)]
    assert d.find_new_replica_set(deploy(), candidates)["metadata"]["name"] == "older"
    assert d.find_new_replica_set(deploy(), [rs("other", 1, template=other)]) is None


def test_new_rs_grows_within_surge():
    deployment = deploy(replicas=10)  # surge 3 → at most 13 pods
    old = rs("old", 10)
    new = rs("new", 0)
    assert d.new_rs_new_replicas(deployment, [old, new], new) == 3
    assert d.new_rs_new_replicas(deployment, [rs("old", 8), rs("new", 3)], rs("new", 3)) == 5
    assert d.new_rs_new_replicas(deploy(strategy="Recreate"), [old, new], new) == 10


def test_proportional_scaling_follows_max_replicas_annotation():
    deployment = deploy(replicas=8, surge=3, unavailable=0)
    old = rs("old", 4, created="2026-01-01T00:00:00Z", annotations={d.MAX_REPLICAS_ANNOTATION: "7"})
    new = rs("new", 3, created="2026-01-02T00:00:00Z", annotations={d.MAX_REPLICAS_ANNOTATION: "7"})
    sizes, operation = d.proportional_sizes(deployment, [old, new])
    assert operation == "up"
    assert sizes == {"old": 6, "new": 5}
    assert sum(sizes.values()) == 11


def test_proportional_scale_down_gives_leftovers_to_largest():
    deployment = deploy(replicas=2, surge=0, unavailable=1)
    old = rs("old", 3, annotations={d.MAX_REPLICAS_ANNOTATION: "5"})
    new = rs("new", 2, created="2026-01-02T00:00:00Z", annotations={d.MAX_REPLICAS_ANNOTATION: "5"})
    sizes, operation = d.proportional_sizes(deployment, [old, new])
    assert operation == "down" and sum(sizes.values()) == 2


def test_go_round_is_half_away_from_zero():
    assert [d.go_round(x) for x in (0.5, 1.5, 2.5, -0.5, -2.5)] == [1, 2, 3, -1, -3]


def test_new_rs_annotations_copy_change_cause_and_keep_revision_history():
    deployment = deploy(replicas=3)
    deployment["metadata"]["annotations"] = {"kubernetes.io/change-cause": "v2",
                                             d.LAST_APPLIED_ANNOTATION: "{}", d.REVISION_ANNOTATION: "1"}
    fresh = rs("new", 0, annotations={})
    assert d.set_new_replica_set_annotations(deployment, fresh, 1, exists=False)
    assert fresh["metadata"]["annotations"] == {"kubernetes.io/change-cause": "v2", d.REVISION_ANNOTATION: "1",
                                                d.DESIRED_REPLICAS_ANNOTATION: "3", d.MAX_REPLICAS_ANNOTATION: "4"}
    reused = rs("old", 0, annotations={d.REVISION_ANNOTATION: "1", "kubernetes.io/change-cause": "v2"})
    assert d.set_new_replica_set_annotations(deployment, reused, 3, exists=True)
    assert reused["metadata"]["annotations"][d.REVISION_ANNOTATION] == "3"
    assert reused["metadata"]["annotations"][d.REVISION_HISTORY_ANNOTATION] == "1"
    assert not d.set_new_replica_set_annotations(deployment, reused, 3, exists=True)


def test_set_condition_keeps_transition_time_when_status_is_unchanged():
    status = {}
    d.set_condition(status, d.new_condition("Progressing", "True", d.NEW_RS_CREATED, "a", "t1"))
    d.set_condition(status, d.new_condition("Progressing", "True", d.RS_UPDATED, "b", "t2"))
    [condition] = status["conditions"]
    assert (condition["reason"], condition["lastTransitionTime"], condition["lastUpdateTime"]) == (d.RS_UPDATED, "t1", "t2")
    d.set_condition(status, d.new_condition("Progressing", "True", d.RS_UPDATED, "c", "t3"))
    assert status["conditions"][0]["message"] == "b"


def test_available_condition_uses_max_unavailable():
    deployment = deploy(replicas=4, unavailable=1)
    status = d.calculate_status([rs("a", 4, available=3)], None, deployment, "now")
    assert d.get_condition(status, "Available")["reason"] == d.MIN_AVAILABLE
    status = d.calculate_status([rs("a", 4, available=2)], None, deployment, "now")
    available = d.get_condition(status, "Available")
    assert (available["status"], available["message"]) == ("False", "Deployment does not have minimum availability.")
    assert status["unavailableReplicas"] == 2


def test_timed_out_after_progress_deadline():
    deployment = deploy(progressDeadlineSeconds=60)
    now = datetime.datetime(2026, 1, 1, 0, 2, 0, tzinfo=datetime.timezone.utc)
    status = {"conditions": [d.new_condition("Progressing", "True", d.RS_UPDATED, "m", "2026-01-01T00:00:00Z")]}
    assert d.deployment_timed_out(deployment, status, now)
    status["conditions"][0]["lastUpdateTime"] = "2026-01-01T00:01:30Z"
    assert not d.deployment_timed_out(deployment, status, now)
    status["conditions"][0]["reason"] = d.NEW_RS_AVAILABLE
    assert not d.deployment_timed_out(deployment, {"conditions": status["conditions"]}, now - datetime.timedelta(days=1))


def test_cleanup_removes_oldest_scaled_down_revisions_beyond_limit():
    deployment = deploy(revisionHistoryLimit=1)
    olds = [rs("r1", 0, annotations={d.REVISION_ANNOTATION: "1"}), rs("r3", 0, annotations={d.REVISION_ANNOTATION: "3"}),
            rs("r2", 1, annotations={d.REVISION_ANNOTATION: "2"})]
    # Two over the limit: r1 goes, r2 still has a replica and stays.
    assert [x["metadata"]["name"] for x in d.old_replica_sets_to_clean(deployment, olds)] == ["r1"]
