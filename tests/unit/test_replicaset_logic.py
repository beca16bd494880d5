"""Pure logic of the ReplicaSet controller: template hashing helpers, the scale-down ranking,
slow-start batches, expectations and status calculation."""

from __future__ import annotations

import asyncio
import datetime

from pyk8s.controllers import podtemplate
from pyk8s.controllers.replicaset import Expectations, calculate_status

NOW = datetime.datetime(2026, 1, 1, 12, 0, 0, tzinfo=datetime.timezone.utc)


def pod(name, *, node="", phase="Pending", ready=False, ready_since="2026-01-01T11:00:00Z",
        created="2026-01-01T10:00:00Z", restarts=0, labels=None):
    status = {"phase": phase, "containerStatuses": [{"name": "c", "restartCount": restarts}]}
    if ready:
        status["conditions"] = [{"type": "Ready", "status": "True", "lastTransitionTime": ready_since}]
    return {"metadata": {"name": name, "creationTimestamp": created, "labels": labels or {}},
            "spec": {"nodeName": node} if node else {}, "status": status}


def names(pods):
    return [p["metadata"]["name"] for p in pods]


def test_unassigned_pods_are_deleted_before_assigned_ones():
    assert names(podtemplate.pods_to_delete_first([pod("assigned", node="n1"), pod("unassigned")])) == ["unassigned", "assigned"]


def test_pending_before_unknown_before_running():
    ranked = podtemplate.pods_to_delete_first([pod("r", node="n", phase="Running"), pod("u", node="n", phase="Unknown"),
                                               pod("p", node="n", phase="Pending")])
    assert names(ranked) == ["p", "u", "r"]


def test_not_ready_before_ready_and_recently_ready_first():
    ranked = podtemplate.pods_to_delete_first([
        pod("old-ready", node="n", phase="Running", ready=True, ready_since="2026-01-01T09:00:00Z"),
        pod("not-ready", node="n", phase="Running"),
        pod("new-ready", node="n", phase="Running", ready=True, ready_since="2026-01-01T11:30:00Z")])
    assert names(ranked) == ["not-ready", "new-ready", "old-ready"]


def test_more_restarts_then_newer_pods_go_first():
    ranked = podtemplate.pods_to_delete_first([
        pod("old", created="2026-01-01T08:00:00Z"), pod("new", created="2026-01-01T09:00:00Z"),
        pod("crashy", created="2026-01-01T07:00:00Z", restarts=5)])
    assert names(ranked) == ["crashy", "new", "old"]


def test_pods_doubled_up_on_a_node_go_first():
    ranked = podtemplate.pods_to_delete_first([pod("alone", node="a", phase="Running"),
                                               pod("crowded1", node="b", phase="Running"),
                                               pod("crowded2", node="b", phase="Running", created="2026-01-01T09:00:00Z")])
    assert names(ranked)[-1] == "alone"


def test_availability_waits_for_min_ready_seconds():
    ready = pod("p", ready=True, ready_since="2026-01-01T11:59:50Z")
    assert podtemplate.is_pod_available(ready, 0, NOW)
    assert podtemplate.is_pod_available(ready, 10, NOW)
    assert not podtemplate.is_pod_available(ready, 11, NOW)
    assert podtemplate.seconds_until_available(ready, 15, NOW) == 5


def test_slow_start_batches_double_and_stop_at_first_failing_batch():
    batches = []
    calls = 0

    async def action():
        nonlocal calls
        calls += 1
        if calls == 5:
            raise RuntimeError("quota")

    async def main():
        return await podtemplate.slow_start_batch(10, 1, action)

    successes, error = asyncio.run(main())
    # Batches 1, 2, 4: the 5th call (in the third batch) fails, the fourth batch never runs.
    assert (successes, str(error), calls) == (6, "quota", 7)


def test_slow_start_batch_creates_exactly_count():
    calls = []

    async def action():
        calls.append(1)

    assert asyncio.run(podtemplate.slow_start_batch(11, 1, action)) == (11, None)
    assert len(calls) == 11


def test_expectations_block_until_creations_are_observed():
    expectations = Expectations()
    assert expectations.satisfied("ns/rs")
    expectations.expect("ns/rs", adds=2)
    assert not expectations.satisfied("ns/rs")
    expectations.creation_observed("ns/rs")
    assert not expectations.satisfied("ns/rs")
    expectations.creation_observed("ns/rs")
    assert expectations.satisfied("ns/rs")
    expectations.expect("ns/rs", deletes={"ns/a"})
    assert not expectations.satisfied("ns/rs")
    expectations.deletion_observed("ns/rs", "ns/a")
    assert expectations.satisfied("ns/rs")


def test_status_counts_labels_readiness_and_replica_failure():
    owner = {"metadata": {"generation": 3},
             "spec": {"minReadySeconds": 30, "template": {"metadata": {"labels": {"app": "a", "tier": "t"}}}},
             "status": {}}
    pods = [pod("full", labels={"app": "a", "tier": "t"}, ready=True, ready_since="2026-01-01T11:00:00Z"),
            pod("partial", labels={"app": "a"}, ready=True, ready_since="2026-01-01T11:59:59Z")]
    status = calculate_status(owner, pods, RuntimeError("forbidden"), -1, NOW)
    assert status["replicas"] == 2 and status["fullyLabeledReplicas"] == 1
    assert status["readyReplicas"] == 2 and status["availableReplicas"] == 1
    assert status["observedGeneration"] == 3
    [failure] = status["conditions"]
    assert (failure["type"], failure["reason"], failure["message"]) == ("ReplicaFailure", "FailedCreate", "forbidden")
    owner["status"] = status
    assert "conditions" not in calculate_status(owner, pods, None, 0, NOW)


def test_pod_from_template_uses_generate_name_and_owner():
    template = {"metadata": {"labels": {"app": "a"}, "annotations": {"x": "y"}},
                "spec": {"containers": [{"name": "c", "image": "i"}]}}
    owner = {"metadata": {"name": "web", "namespace": "ns"}}
    ref = {"kind": "ReplicaSet", "name": "web", "uid": "u", "controller": True, "blockOwnerDeletion": True}
    pod_obj = podtemplate.pod_from_template(template, owner, ref)
    assert pod_obj["metadata"] == {"generateName": "web-", "namespace": "ns", "ownerReferences": [ref],
                                   "labels": {"app": "a"}, "annotations": {"x": "y"}}
    assert pod_obj["spec"] == template["spec"] and pod_obj["spec"] is not template["spec"]
