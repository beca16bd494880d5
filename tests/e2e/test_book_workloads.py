"""The book's Deployment exercises (chapters 2 and 6, plus the rollout commands) with the
real kubectl against a pyk8s server with all controllers.

There is no kubelet yet: pods stay Pending, so the tests mark pods Ready themselves through
the status subresource wherever the book's output shows Running pods or a rollout has to
progress.
"""

from __future__ import annotations

import json
import re
import time
import uuid

import pytest

from conftest import eventually


# kubectl's client-side validation downloads the OpenAPI document, which the server does not
# serve completely yet; the controllers under test do not depend on it.
APPLY: tuple[str, ...] = ()  # client-side validation runs against our OpenAPI documents


# -- helpers ------------------------------------------------------------------------------

def rows(output: str) -> list[list[str]]:
    lines = [line for line in output.splitlines() if line.strip()]
    return [re.split(r"\s{2,}", line.strip()) for line in lines[1:]]


class PodReadiness:
    """Marks pods Ready through the status subresource (stands in for the kubelet)."""

    def __init__(self, api_client):
        self.api_client = api_client

    def _call(self, method, path, body=None, query=None, content_type="application/json"):
        reply = self.api_client.call_api(
            path, method, query_params=list((query or {}).items()),
            header_params={"Accept": "application/json", "Content-Type": content_type}, body=body,
            auth_settings=["BearerToken"], _preload_content=False, _return_http_data_only=True)
        return json.loads(reply.data) if reply.data else None

    def rollout_complete(self, namespace: str, name: str) -> bool:
        deployment = self._call("GET", f"/apis/apps/v1/namespaces/{namespace}/deployments/{name}")
        status = deployment.get("status") or {}
        replicas = deployment["spec"]["replicas"]
        return (status.get("observedGeneration", 0) >= deployment["metadata"]["generation"]
                and status.get("updatedReplicas", 0) == replicas and status.get("replicas", 0) == replicas
                and status.get("availableReplicas", 0) == replicas)

    def mark_all(self, namespace: str) -> None:
        now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        for pod in self._call("GET", f"/api/v1/namespaces/{namespace}/pods")["items"]:
            if pod["metadata"].get("deletionTimestamp"):
                continue
            if any(c["type"] == "Ready" and c["status"] == "True" for c in pod["status"].get("conditions") or []):
                continue
            self._call("PATCH", f"/api/v1/namespaces/{namespace}/pods/{pod['metadata']['name']}/status", {"status": {
                "phase": "Running",
                "conditions": [{"type": "Ready", "status": "True", "lastTransitionTime": now},
                               {"type": "ContainersReady", "status": "True", "lastTransitionTime": now}],
                "containerStatuses": [{"name": c["name"], "image": c["image"], "imageID": "", "ready": True,
                                       "restartCount": 0, "started": True, "state": {"running": {"startedAt": now}}}
                                      for c in pod["spec"]["containers"]]}}, content_type="application/merge-patch+json")


@pytest.fixture
def ns(kubectl):
    name = f"book-{uuid.uuid4().hex[:6]}"
    kubectl("create", "namespace", name)
    yield name
    kubectl("delete", "namespace", name, "--wait=false", check=False)


@pytest.fixture
def readiness(api_client):
    return PodReadiness(api_client)


def pod_rows(kubectl, ns, *selector):
    output = kubectl("get", "pods", "-n", ns, *selector, "-o",
                     "custom-columns=NAME:.metadata.name,LABELS:.metadata.labels.app,"
                     "OWNER:.metadata.ownerReferences[0].name,DELETING:.metadata.deletionTimestamp")
    return [row for row in rows(output) if row[-1] == "<none>"]


def rollout_done(kubectl, readiness, ns, name):
    """Keeps pods Ready until the Deployment's status says the rollout is complete (the
    rule kubectl uses), then checks that `kubectl rollout status` agrees."""
    def step():
        readiness.mark_all(ns)
        return readiness.rollout_complete(ns, name)
    eventually(step, what=f"rollout of {name}")
    return kubectl("rollout", "status", f"deploy/{name}", "-n", ns, "--timeout=5s")


def pi_web(image: str, replicas: int, change_cause: str = "") -> str:
    annotations = f"\n  annotations:\n    kubernetes.io/change-cause: {change_cause}" if change_cause else ""
    return f"""apiVersion: apps/v1
kind: Deployment
metadata:
  name: pi-web{annotations}
spec:
  replicas: {replicas}
  selector:
    matchLabels:
      app: pi-web
  template:
    metadata:
      labels:
        app: pi-web
    spec:
      containers:
        - name: web
          image: {image}
"""


# -- chapter 2 ----------------------------------------------------------------------------

def test_ch2_relabelled_pod_is_replaced_and_relabelling_back_removes_one(kubectl, ns):
    kubectl("create", "deployment", "hello-kiamol-2", "--image=kiamol/ch02-hello-kiamol", "-n", ns)
    eventually(lambda: len(pod_rows(kubectl, ns, "-l", "app")) == 1, what="first pod")
    # Book 2.3: relabel the pod out of the Deployment: it is released and replaced.
    out = kubectl("label", "pods", "-n", ns, "-l", "app=hello-kiamol-2", "--overwrite", "app=hello-kiamol-x")
    assert re.fullmatch(r"pod/hello-kiamol-2-[a-z0-9]+-[a-z0-9]{5} labeled\n", out)
    both = eventually(lambda: (r := pod_rows(kubectl, ns, "-l", "app")) and len(r) == 2 and r, what="replacement")
    owners = {app: owner for _, app, owner, _ in both}
    assert owners["hello-kiamol-x"] == "<none>"
    assert owners["hello-kiamol-2"].startswith("hello-kiamol-2-")
    # Relabel it back: adopted again, and the ReplicaSet deletes one pod.
    kubectl("label", "pods", "-n", ns, "-l", "app=hello-kiamol-x", "--overwrite", "app=hello-kiamol-2")
    final = eventually(lambda: (r := pod_rows(kubectl, ns, "-l", "app")) and len(r) == 1 and r, what="one pod")
    assert final[0][1] == "hello-kiamol-2"


def test_ch2_deleted_pod_is_replaced_and_owned_by_the_replicaset(kubectl, ns):
    kubectl("create", "deployment", "hello-kiamol-2", "--image=kiamol/ch02-hello-kiamol", "-n", ns)
    [first] = eventually(lambda: pod_rows(kubectl, ns), what="pod")
    kubectl("delete", "pod", first[0], "-n", ns, "--wait=false")
    [second] = eventually(lambda: [r for r in pod_rows(kubectl, ns) if r[0] != first[0]], what="replacement")
    owners = kubectl("get", "po", "-n", ns, "-o",
                     "custom-columns=NAME:.metadata.name,OWNER:.metadata.ownerReferences[0].name")
    assert [second[0], second[2]] in rows(owners)
    rs_owner = kubectl("get", "rs", "-n", ns, "-o",
                       "custom-columns=NAME:{.metadata.name},OWNER:{.metadata.ownerReferences[0].name},"
                       "OWNER_KIND:{.metadata.ownerReferences[0].kind}")
    assert rows(rs_owner) == [[second[2], "hello-kiamol-2", "Deployment"]]


# -- chapter 6 ----------------------------------------------------------------------------

def test_ch6_scale_then_revert_template_scales_old_replicaset_back_up(kubectl, readiness, ns):
    assert kubectl("apply", *APPLY, "-n", ns, "-f", "-", input=pi_web("kiamol/ch05-pi", 2)).strip() == "deployment.apps/pi-web created"
    rollout_done(kubectl, readiness, ns, "pi-web")
    [[original, *_]] = rows(kubectl("get", "rs", "-n", ns, "-l", "app=pi-web"))
    # An update of the template: a new ReplicaSet takes over.
    kubectl("apply", *APPLY, "-n", ns, "-f", "-", input=pi_web("kiamol/ch05-pi:v2", 3))
    rollout_done(kubectl, readiness, ns, "pi-web")
    # The manual scale changes the current ReplicaSet only.
    assert kubectl("scale", "--replicas=4", "deploy/pi-web", "-n", ns).strip() == "deployment.apps/pi-web scaled"
    eventually(lambda: {r[0]: r[1] for r in rows(kubectl("get", "rs", "-n", ns, "-l", "app=pi-web"))}.get(original) == "0"
               and sorted(r[1] for r in rows(kubectl("get", "rs", "-n", ns, "-l", "app=pi-web"))) == ["0", "4"],
               what="scaled to 4")
    # Back to the original spec: the original ReplicaSet (same name, same hash) scales up again.
    kubectl("apply", *APPLY, "-n", ns, "-f", "-", input=pi_web("kiamol/ch05-pi", 3))
    rollout_done(kubectl, readiness, ns, "pi-web")
    desired = {r[0]: r[1] for r in rows(kubectl("get", "rs", "-n", ns, "-l", "app=pi-web"))}
    assert desired[original] == "3" and sorted(desired.values()) == ["0", "3"]
    labelled = rows(kubectl("get", "rs", "-n", ns, "-l", "app=pi-web", "--show-labels"))
    template_hash = original.removeprefix("pi-web-")
    assert [original, "3", "3", "3"] == next(r for r in labelled if r[0] == original)[:4]
    assert next(r for r in labelled if r[0] == original)[-1] == f"app=pi-web,pod-template-hash={template_hash}"
    pod_labels = rows(kubectl("get", "po", "-n", ns, "-l", f"app=pi-web,pod-template-hash={template_hash}", "--show-labels"))
    live = [r for r in pod_labels if r[0].startswith(original + "-")]
    assert len(live) >= 3


def test_scaling_by_editing_replicas_in_the_spec(kubectl, readiness, ns):
    kubectl("apply", *APPLY, "-n", ns, "-f", "-", input=pi_web("kiamol/ch05-pi", 1))
    rollout_done(kubectl, readiness, ns, "pi-web")
    kubectl("patch", "deploy/pi-web", "-n", ns, "--type=merge", "-p", '{"spec":{"replicas":3}}')
    eventually(lambda: len(pod_rows(kubectl, ns)) == 3, what="3 pods")
    out = rollout_done(kubectl, readiness, ns, "pi-web")
    assert out.strip() == 'deployment "pi-web" successfully rolled out'
    [[_, desired, current, ready, _]] = rows(kubectl("get", "rs", "-n", ns))
    assert (desired, current, ready) == ("3", "3", "3")
    assert rows(kubectl("get", "deploy", "-n", ns))[0][:4] == ["pi-web", "3/3", "3", "3"]


def test_rollout_history_and_undo(kubectl, readiness, ns):
    kubectl("apply", *APPLY, "-n", ns, "-f", "-", input=pi_web("kiamol/ch05-pi", 2, "v1"))
    rollout_done(kubectl, readiness, ns, "pi-web")
    kubectl("apply", *APPLY, "-n", ns, "-f", "-", input=pi_web("kiamol/ch05-pi:v2", 2, "v2"))
    rollout_done(kubectl, readiness, ns, "pi-web")
    history = kubectl("rollout", "history", "deploy/pi-web", "-n", ns)
    assert history.splitlines()[0] == "deployment.apps/pi-web "
    assert rows(history.split("\n", 1)[1]) == [["1", "v1"], ["2", "v2"]]
    detail = kubectl("rollout", "history", "deploy/pi-web", "-n", ns, "--revision=1")
    assert "kiamol/ch05-pi\n" in detail
    assert kubectl("rollout", "undo", "deploy/pi-web", "-n", ns).strip() == "deployment.apps/pi-web rolled back"
    rollout_done(kubectl, readiness, ns, "pi-web")
    image = kubectl("get", "deploy/pi-web", "-n", ns, "-o", "jsonpath={.spec.template.spec.containers[0].image}")
    assert image == "kiamol/ch05-pi"
    revisions = [r[0] for r in rows(kubectl("rollout", "history", "deploy/pi-web", "-n", ns).split("\n", 1)[1])]
    assert revisions == ["2", "3"]
    assert kubectl("get", "deploy/pi-web", "-n", ns, "-o",
                   "jsonpath={.metadata.annotations.deployment\\.kubernetes\\.io/revision}") == "3"


def test_rollout_pause_resume_and_restart(kubectl, readiness, ns):
    kubectl("apply", *APPLY, "-n", ns, "-f", "-", input=pi_web("kiamol/ch05-pi", 1))
    rollout_done(kubectl, readiness, ns, "pi-web")
    assert kubectl("rollout", "pause", "deploy/pi-web", "-n", ns).strip() == "deployment.apps/pi-web paused"
    kubectl("set", "image", "deploy/pi-web", "web=kiamol/ch05-pi:v2", "-n", ns)
    eventually(lambda: "DeploymentPaused" in kubectl("get", "deploy/pi-web", "-n", ns, "-o",
                                                     "jsonpath={.status.conditions[*].reason}"))
    assert len(rows(kubectl("get", "rs", "-n", ns))) == 1
    assert kubectl("rollout", "resume", "deploy/pi-web", "-n", ns).strip() == "deployment.apps/pi-web resumed"
    rollout_done(kubectl, readiness, ns, "pi-web")
    assert len(rows(kubectl("get", "rs", "-n", ns))) == 2
    assert kubectl("rollout", "restart", "deploy/pi-web", "-n", ns).strip() == "deployment.apps/pi-web restarted"
    rollout_done(kubectl, readiness, ns, "pi-web")
    assert len(rows(kubectl("get", "rs", "-n", ns))) == 3
