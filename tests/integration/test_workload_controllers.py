"""The ReplicaSet, ReplicationController and Deployment controllers against a real pyk8s
server (with every controller and the scheduler), driven through the API.

There is no kubelet: pods stay Pending until a test marks them Ready itself through the
status subresource, which is what lets rollouts progress here.
"""

from __future__ import annotations

import json
import time
import uuid
from functools import partial

import pytest

from pyk8s.controllers.podtemplate import SAFE_ALPHABET

from conftest import eventually


class Api:
    """Raw JSON requests through the official client's connection (dicts in, dicts out)."""

    def __init__(self, api_client):
        self.api_client = api_client

    def request(self, method: str, path: str, body=None, content_type: str = "application/json", query=None):
        reply = self.api_client.call_api(
            path, method, query_params=list((query or {}).items()),
            header_params={"Accept": "application/json", "Content-Type": content_type},
            body=body, auth_settings=["BearerToken"], _preload_content=False, _return_http_data_only=True)
        return json.loads(reply.data) if reply.data else None

    def get(self, path, **query):
        return self.request("GET", path, query=query)

    def post(self, path, body):
        return self.request("POST", path, body)

    def patch(self, path, body, content_type="application/merge-patch+json"):
        return self.request("PATCH", path, body, content_type)

    def delete(self, path):
        return self.request("DELETE", path)


@pytest.fixture(scope="module")
def api(api_client):
    return Api(api_client)


@pytest.fixture
def ns(api):
    name = f"wl-{uuid.uuid4().hex[:6]}"
    api.post("/api/v1/namespaces", {"metadata": {"name": name}})
    yield name
    api.delete(f"/api/v1/namespaces/{name}")


# Every wait here: up to 15 s unless a test says otherwise, polled every 50 ms.
wait_for = partial(eventually, timeout=15.0, interval=0.05)


def pods(api, ns, selector=""):
    items = api.get(f"/api/v1/namespaces/{ns}/pods", labelSelector=selector)["items"]
    return [pod for pod in items if not pod["metadata"].get("deletionTimestamp")]


def make_ready(api, ns, pod):
    now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    containers = pod["spec"]["containers"]
    api.patch(f"/api/v1/namespaces/{ns}/pods/{pod['metadata']['name']}/status", {"status": {
        "phase": "Running",
        "conditions": [{"type": "Ready", "status": "True", "lastTransitionTime": now},
                       {"type": "ContainersReady", "status": "True", "lastTransitionTime": now}],
        "containerStatuses": [{"name": c["name"], "image": c["image"], "imageID": "", "ready": True,
                               "restartCount": 0, "started": True, "state": {"running": {"startedAt": now}}}
                              for c in containers]}})


def is_ready(pod):
    return any(c["type"] == "Ready" and c["status"] == "True" for c in (pod.get("status") or {}).get("conditions") or [])


def make_all_ready(api, ns, selector=""):
    for pod in pods(api, ns, selector):
        if not is_ready(pod):
            make_ready(api, ns, pod)


def template(app: str, image: str = "nginx:1", **labels):
    return {"metadata": {"labels": {"app": app, **labels}},
            "spec": {"containers": [{"name": "web", "image": image}]}}


def replicaset(name, replicas, app, **spec):
    return {"apiVersion": "apps/v1", "kind": "ReplicaSet", "metadata": {"name": name},
            "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": app}}, "template": template(app), **spec}}


def deployment(name, replicas, app, image="nginx:1", **spec):
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name},
            "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": app}},
                     "template": template(app, image), **spec}}


def events(api, ns, name):
    items = api.get(f"/api/v1/namespaces/{ns}/events", fieldSelector=f"involvedObject.name={name}")["items"]
    return [(e["reason"], e["message"]) for e in items]


# ---------------------------------------------------------------- ReplicaSet


def test_replicaset_creates_owned_pods_named_after_it(api, ns):
    rs = api.post(f"/apis/apps/v1/namespaces/{ns}/replicasets", replicaset("web", 3, "web"))
    created = wait_for(lambda: len(pods(api, ns, "app=web")) == 3 and pods(api, ns, "app=web"), what="3 pods")
    for pod in created:
        name = pod["metadata"]["name"]
        assert name.startswith("web-") and len(name) == 9
        assert set(name[4:]) <= set(SAFE_ALPHABET)
        assert pod["metadata"]["ownerReferences"] == [{
            "apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web", "uid": rs["metadata"]["uid"],
            "controller": True, "blockOwnerDeletion": True}]
        assert pod["spec"]["containers"][0]["image"] == "nginx:1"
    status = wait_for(lambda: (s := api.get(f"/apis/apps/v1/namespaces/{ns}/replicasets/web")["status"])
                      .get("replicas") == 3 and s, what="status")
    assert status["fullyLabeledReplicas"] == 3
    assert status["observedGeneration"] == 1
    recorded = wait_for(lambda: [e for e in events(api, ns, "web") if e[0] == "SuccessfulCreate"], what="events")
    assert all(message.startswith("Created pod: web-") for _, message in recorded)


def test_replicaset_status_counts_ready_and_available_pods(api, ns):
    api.post(f"/apis/apps/v1/namespaces/{ns}/replicasets", replicaset("ready", 2, "ready"))
    wait_for(lambda: len(pods(api, ns, "app=ready")) == 2, what="2 pods")
    make_ready(api, ns, pods(api, ns, "app=ready")[0])
    status = wait_for(lambda: (s := api.get(f"/apis/apps/v1/namespaces/{ns}/replicasets/ready")["status"])
                      .get("readyReplicas") == 1 and s, what="ready count")
    assert status["availableReplicas"] == 1 and status["replicas"] == 2


def test_scale_down_keeps_ready_pods(api, ns):
    api.post(f"/apis/apps/v1/namespaces/{ns}/replicasets", replicaset("down", 3, "down"))
    wait_for(lambda: len(pods(api, ns, "app=down")) == 3, what="3 pods")
    keep = pods(api, ns, "app=down")[1]
    make_ready(api, ns, keep)
    wait_for(lambda: api.get(f"/apis/apps/v1/namespaces/{ns}/replicasets/down")["status"].get("readyReplicas") == 1)
    api.patch(f"/apis/apps/v1/namespaces/{ns}/replicasets/down/scale", {"spec": {"replicas": 1}})
    remaining = wait_for(lambda: len(pods(api, ns, "app=down")) == 1 and pods(api, ns, "app=down"), what="1 pod")
    assert remaining[0]["metadata"]["name"] == keep["metadata"]["name"]
    assert wait_for(lambda: [e for e in events(api, ns, "down") if e[0] == "SuccessfulDelete"])


def test_relabelled_pod_is_released_and_replaced(api, ns):
    api.post(f"/apis/apps/v1/namespaces/{ns}/replicasets", replicaset("rel", 2, "rel"))
    wait_for(lambda: len(pods(api, ns, "app=rel")) == 2, what="2 pods")
    victim = pods(api, ns, "app=rel")[0]["metadata"]["name"]
    api.patch(f"/api/v1/namespaces/{ns}/pods/{victim}", {"metadata": {"labels": {"app": "other"}}})
    wait_for(lambda: len(pods(api, ns, "app=rel")) == 2, what="replacement")
    released = wait_for(lambda: (p := api.get(f"/api/v1/namespaces/{ns}/pods/{victim}"))["metadata"].get("ownerReferences") is None and p,
                        what="release")
    assert released["metadata"]["labels"]["app"] == "other"
    # Relabel it back: adopted again, and one pod too many is deleted.
    api.patch(f"/api/v1/namespaces/{ns}/pods/{victim}", {"metadata": {"labels": {"app": "rel"}}})
    wait_for(lambda: len(pods(api, ns, "app=rel")) == 2 and all(p["metadata"].get("ownerReferences") for p in pods(api, ns, "app=rel")),
             what="back to 2 owned pods")


def test_orphan_pod_matching_selector_is_adopted(api, ns):
    api.post(f"/api/v1/namespaces/{ns}/pods", {"metadata": {"name": "orphan", "labels": {"app": "adopt"}},
                                               "spec": {"containers": [{"name": "web", "image": "nginx:1"}]}})
    # The controller's pod informer sees pods in write order: once it has counted a pod
    # created after the orphan, it knows the orphan too (otherwise it would create a pod).
    api.post(f"/apis/apps/v1/namespaces/{ns}/replicasets", replicaset("sentinel", 1, "sentinel"))
    wait_for(lambda: api.get(f"/apis/apps/v1/namespaces/{ns}/replicasets/sentinel")["status"].get("replicas") == 1)
    rs = api.post(f"/apis/apps/v1/namespaces/{ns}/replicasets", replicaset("adopt", 1, "adopt"))
    adopted = wait_for(lambda: (p := api.get(f"/api/v1/namespaces/{ns}/pods/orphan"))["metadata"].get("ownerReferences") and p,
                       what="adoption")
    assert adopted["metadata"]["ownerReferences"][0]["uid"] == rs["metadata"]["uid"]
    wait_for(lambda: api.get(f"/apis/apps/v1/namespaces/{ns}/replicasets/adopt")["status"].get("replicas") == 1)
    assert [p["metadata"]["name"] for p in pods(api, ns, "app=adopt")] == ["orphan"]


def test_replication_controller_keeps_replicas_with_map_selector(api, ns):
    rc = api.post(f"/api/v1/namespaces/{ns}/replicationcontrollers", {
        "metadata": {"name": "legacy"},
        "spec": {"replicas": 2, "selector": {"app": "legacy"}, "template": template("legacy")}})
    created = wait_for(lambda: len(pods(api, ns, "app=legacy")) == 2 and pods(api, ns, "app=legacy"), what="2 pods")
    assert created[0]["metadata"]["ownerReferences"][0]["kind"] == "ReplicationController"
    assert created[0]["metadata"]["ownerReferences"][0]["uid"] == rc["metadata"]["uid"]
    api.delete(f"/api/v1/namespaces/{ns}/pods/{created[0]['metadata']['name']}")
    wait_for(lambda: len(pods(api, ns, "app=legacy")) == 2
             and created[0]["metadata"]["name"] not in {p["metadata"]["name"] for p in pods(api, ns, "app=legacy")},
             what="replacement")


# ---------------------------------------------------------------- Deployment


def owned_replicasets(api, ns, name):
    items = api.get(f"/apis/apps/v1/namespaces/{ns}/replicasets")["items"]
    return {rs["metadata"]["name"]: rs for rs in items
            if any(ref["name"] == name and ref["kind"] == "Deployment" for ref in rs["metadata"].get("ownerReferences") or [])}


def drive_rollout(api, ns, name, check, timeout=20.0):
    """Mark pods Ready as they appear until `check(deployment)` holds."""
    def step():
        make_all_ready(api, ns)
        current = api.get(f"/apis/apps/v1/namespaces/{ns}/deployments/{name}")
        return check(current) and current
    return wait_for(step, timeout=timeout, what=f"rollout of {name}")


def complete(replicas):
    def check(d):
        s = d.get("status") or {}
        return (s.get("observedGeneration", 0) >= d["metadata"]["generation"] and s.get("updatedReplicas") == replicas
                and s.get("replicas") == replicas and s.get("availableReplicas") == replicas)
    return check


def condition(d, kind):
    return next((c for c in (d.get("status") or {}).get("conditions") or [] if c["type"] == kind), None)


def test_deployment_creates_hashed_replicaset_and_completes(api, ns):
    api.post(f"/apis/apps/v1/namespaces/{ns}/deployments", deployment("app", 2, "app"))
    done = drive_rollout(api, ns, "app", complete(2))
    [(rs_name, rs)] = owned_replicasets(api, ns, "app").items()
    pod_hash = rs["spec"]["template"]["metadata"]["labels"]["pod-template-hash"]
    assert rs_name == f"app-{pod_hash}"
    assert rs["spec"]["selector"]["matchLabels"] == {"app": "app", "pod-template-hash": pod_hash}
    assert rs["metadata"]["annotations"]["deployment.kubernetes.io/revision"] == "1"
    assert rs["metadata"]["annotations"]["deployment.kubernetes.io/desired-replicas"] == "2"
    assert rs["metadata"]["annotations"]["deployment.kubernetes.io/max-replicas"] == "3"
    assert all(p["metadata"]["labels"]["pod-template-hash"] == pod_hash for p in pods(api, ns, "app=app"))
    done = wait_for(lambda: (d := api.get(f"/apis/apps/v1/namespaces/{ns}/deployments/app"))
                    and (condition(d, "Progressing") or {}).get("reason") == "NewReplicaSetAvailable" and d)
    assert done["metadata"]["annotations"]["deployment.kubernetes.io/revision"] == "1"
    assert condition(done, "Progressing")["message"] == f'ReplicaSet "{rs_name}" has successfully progressed.'
    assert condition(done, "Available")["reason"] == "MinimumReplicasAvailable"
    assert ("ScalingReplicaSet", f"Scaled up replica set {rs_name} to 2 from 0") in events(api, ns, "app")


def test_rolling_update_replaces_pods_and_revert_reuses_old_replicaset(api, ns):
    api.post(f"/apis/apps/v1/namespaces/{ns}/deployments", deployment("roll", 3, "roll"))
    drive_rollout(api, ns, "roll", complete(3))
    [first] = owned_replicasets(api, ns, "roll")
    api.patch(f"/apis/apps/v1/namespaces/{ns}/deployments/roll",
              {"spec": {"template": {"spec": {"containers": [{"name": "web", "image": "nginx:2"}]}}}})
    drive_rollout(api, ns, "roll", complete(3))
    rses = owned_replicasets(api, ns, "roll")
    second = next(name for name in rses if name != first)
    assert rses[first]["spec"]["replicas"] == 0 and rses[second]["spec"]["replicas"] == 3
    assert rses[second]["metadata"]["annotations"]["deployment.kubernetes.io/revision"] == "2"
    assert {p["spec"]["containers"][0]["image"] for p in pods(api, ns, "app=roll")} == {"nginx:2"}
    # Back to the first template: the first ReplicaSet scales up again as revision 3.
    api.patch(f"/apis/apps/v1/namespaces/{ns}/deployments/roll",
              {"spec": {"template": {"spec": {"containers": [{"name": "web", "image": "nginx:1"}]}}}})
    drive_rollout(api, ns, "roll", complete(3))
    rses = owned_replicasets(api, ns, "roll")
    assert set(rses) == {first, second}
    assert rses[first]["spec"]["replicas"] == 3 and rses[second]["spec"]["replicas"] == 0
    assert rses[first]["metadata"]["annotations"]["deployment.kubernetes.io/revision"] == "3"
    assert rses[first]["metadata"]["annotations"]["deployment.kubernetes.io/revision-history"] == "1"


def test_rolling_update_never_exceeds_surge(api, ns):
    spec = {"strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}}}
    api.post(f"/apis/apps/v1/namespaces/{ns}/deployments", deployment("surge", 2, "surge", **spec))
    drive_rollout(api, ns, "surge", complete(2))
    api.patch(f"/apis/apps/v1/namespaces/{ns}/deployments/surge",
              {"spec": {"template": {"spec": {"containers": [{"name": "web", "image": "nginx:2"}]}}}})
    # Without ready pods the new RS may only take the one surge pod; no old pod goes.
    wait_for(lambda: len(owned_replicasets(api, ns, "surge")) == 2)
    wait_for(lambda: len(pods(api, ns, "app=surge")) == 3, what="surge pod")
    sizes = sorted(rs["spec"]["replicas"] for rs in owned_replicasets(api, ns, "surge").values())
    assert sizes == [1, 2]
    drive_rollout(api, ns, "surge", complete(2))


def test_recreate_scales_old_to_zero_before_new(api, ns):
    api.post(f"/apis/apps/v1/namespaces/{ns}/deployments",
             deployment("rec", 2, "rec", strategy={"type": "Recreate"}))
    drive_rollout(api, ns, "rec", complete(2))
    api.patch(f"/apis/apps/v1/namespaces/{ns}/deployments/rec",
              {"spec": {"template": {"spec": {"containers": [{"name": "web", "image": "nginx:2"}]}}}})
    drive_rollout(api, ns, "rec", complete(2))
    sizes = {rs["spec"]["template"]["spec"]["containers"][0]["image"]: rs["spec"]["replicas"]
             for rs in owned_replicasets(api, ns, "rec").values()}
    assert sizes == {"nginx:1": 0, "nginx:2": 2}


def test_paused_deployment_scales_but_does_not_roll_out(api, ns):
    api.post(f"/apis/apps/v1/namespaces/{ns}/deployments", deployment("pz", 1, "pz"))
    drive_rollout(api, ns, "pz", complete(1))
    api.patch(f"/apis/apps/v1/namespaces/{ns}/deployments/pz", {"spec": {"paused": True}})
    wait_for(lambda: (condition(api.get(f"/apis/apps/v1/namespaces/{ns}/deployments/pz"), "Progressing") or {})
             .get("reason") == "DeploymentPaused")
    api.patch(f"/apis/apps/v1/namespaces/{ns}/deployments/pz",
              {"spec": {"replicas": 2, "template": {"spec": {"containers": [{"name": "web", "image": "nginx:2"}]}}}})
    wait_for(lambda: len(pods(api, ns, "app=pz")) == 2, what="scaled while paused")
    assert len(owned_replicasets(api, ns, "pz")) == 1
    api.patch(f"/apis/apps/v1/namespaces/{ns}/deployments/pz", {"spec": {"paused": False}})
    drive_rollout(api, ns, "pz", complete(2))
    assert len(owned_replicasets(api, ns, "pz")) == 2


def test_progress_deadline_exceeded_when_pods_never_ready(api, ns):
    api.post(f"/apis/apps/v1/namespaces/{ns}/deployments", deployment("slow", 1, "slow", progressDeadlineSeconds=1))
    stuck = wait_for(lambda: (d := api.get(f"/apis/apps/v1/namespaces/{ns}/deployments/slow"))
                     and (condition(d, "Progressing") or {}).get("reason") == "ProgressDeadlineExceeded" and d,
                     timeout=10)
    progressing = condition(stuck, "Progressing")
    assert progressing["status"] == "False"
    assert progressing["message"].endswith("has timed out progressing.")
    assert condition(stuck, "Available")["reason"] == "MinimumReplicasUnavailable"


def test_revision_history_limit_deletes_oldest_replicasets(api, ns):
    api.post(f"/apis/apps/v1/namespaces/{ns}/deployments", deployment("hist", 1, "hist", revisionHistoryLimit=1))
    for image in ("nginx:2", "nginx:3"):
        drive_rollout(api, ns, "hist", complete(1))
        api.patch(f"/apis/apps/v1/namespaces/{ns}/deployments/hist",
                  {"spec": {"template": {"spec": {"containers": [{"name": "web", "image": image}]}}}})
    drive_rollout(api, ns, "hist", complete(1))
    remaining = wait_for(lambda: len(r := owned_replicasets(api, ns, "hist")) == 2 and r, what="cleanup")
    images = {rs["spec"]["template"]["spec"]["containers"][0]["image"] for rs in remaining.values()}
    assert images == {"nginx:2", "nginx:3"}


def test_scaling_a_deployment_mid_rollout_is_proportional(api, ns):
    spec = {"strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 3, "maxUnavailable": 0}}}
    api.post(f"/apis/apps/v1/namespaces/{ns}/deployments", deployment("prop", 4, "prop", **spec))
    drive_rollout(api, ns, "prop", complete(4))
    api.patch(f"/apis/apps/v1/namespaces/{ns}/deployments/prop",
              {"spec": {"template": {"spec": {"containers": [{"name": "web", "image": "nginx:2"}]}}}})
    wait_for(lambda: sorted(rs["spec"]["replicas"] for rs in owned_replicasets(api, ns, "prop").values()) == [3, 4])
    api.patch(f"/apis/apps/v1/namespaces/{ns}/deployments/prop/scale", {"spec": {"replicas": 8}})
    # 7 pods at max 7 grow to 8+3=11: shared in proportion to sizes (4:3 → +2, +2).
    sizes = wait_for(lambda: (s := sorted(rs["spec"]["replicas"] for rs in owned_replicasets(api, ns, "prop").values()))
                     and sum(s) == 11 and s, what="proportional scale")
    assert sizes == [5, 6]
