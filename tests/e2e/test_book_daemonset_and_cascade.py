"""Book chapter 6 with the real kubectl: a DaemonSet with a nodeSelector no node matches
scales to zero, labelling a node brings its pod, `delete ds --cascade=orphan` leaves the
pod and re-applying adopts that same pod; and cascading deletes of a Deployment
(background, orphan, foreground).

There is no kubelet: a fake Node is registered, and pods stay Pending.
"""

from __future__ import annotations

import json

import pytest

from conftest import eventually

PI_PROXY_DS = """
apiVersion: apps/v1
kind: DaemonSet
metadata:
  name: pi-proxy
  labels:
    kiamol: ch06
spec:
  selector:
    matchLabels:
      app: pi-proxy
  template:
    metadata:
      labels:
        app: pi-proxy
    spec:
      containers:
        - image: nginx:1.17-alpine
          name: nginx
          ports:
            - containerPort: 80
              name: http
      nodeSelector:
        kiamol: ch06
"""

NODE = "book-node-ch06"


def pods(kubectl, selector):
    listed = json.loads(kubectl("get", "pods", "-l", selector, "-o", "json"))["items"]
    return [p for p in listed if not p["metadata"].get("deletionTimestamp")]


@pytest.fixture
def fake_node(kubectl):
    kubectl("apply", "-f", "-", input=json.dumps({"apiVersion": "v1", "kind": "Node",
                                                 "metadata": {"name": NODE, "labels": {"kubernetes.io/hostname": NODE}}}))
    yield NODE
    kubectl("delete", "node", NODE, "--ignore-not-found", "--wait=false")


def force_delete(kubectl, selector):
    kubectl("delete", "pods", "-l", selector, "--grace-period=0", "--force", "--ignore-not-found", check=False)


def test_book_daemonset_node_selector_label_orphan_and_adopt(kubectl, fake_node):
    try:
        kubectl("apply", "-f", "-", input=PI_PROXY_DS)
        ds = eventually(lambda: (lambda d: d.get("status", {}).get("observedGeneration") and d)(
            json.loads(kubectl("get", "ds", "pi-proxy", "-o", "json"))), what="DaemonSet status")
        assert ds["status"]["desiredNumberScheduled"] == 0
        assert pods(kubectl, "app=pi-proxy") == []

        kubectl("label", "node", fake_node, "kiamol=ch06", "--overwrite")
        first = eventually(lambda: pods(kubectl, "app=pi-proxy"), what="a pod once the node is labelled")
        assert len(first) == 1
        pod_name = first[0]["metadata"]["name"]
        eventually(lambda: "pi-proxy   1         1" in kubectl("get", "ds", "pi-proxy"), what="DESIRED 1 CURRENT 1")
        history = kubectl("rollout", "history", "ds/pi-proxy").splitlines()
        assert history[1].split() == ["REVISION", "CHANGE-CAUSE"] and history[2].split() == ["1", "<none>"]

        out = kubectl("delete", "ds", "pi-proxy", "--cascade=orphan")
        assert 'daemonset.apps "pi-proxy" deleted' in out
        orphan = kubectl("get", "pod", pod_name, "-o", "json")
        assert not json.loads(orphan)["metadata"].get("ownerReferences")

        kubectl("apply", "-f", "-", input=PI_PROXY_DS)

        def adopted():
            pod = json.loads(kubectl("get", "pod", pod_name, "-o", "json"))
            refs = pod["metadata"].get("ownerReferences") or []
            return refs and refs[0]["kind"] == "DaemonSet" and refs[0]["name"] == "pi-proxy"
        eventually(adopted, what="the same pod adopted by the new DaemonSet")
        assert [p["metadata"]["name"] for p in pods(kubectl, "app=pi-proxy")] == [pod_name]

        kubectl("delete", "ds", "pi-proxy")
        eventually(lambda: pods(kubectl, "app=pi-proxy") == [], what="the pod deleted with its DaemonSet")
    finally:
        kubectl("delete", "ds", "pi-proxy", "--ignore-not-found", "--wait=false")
        force_delete(kubectl, "app=pi-proxy")


def _deployment_with_pods(kubectl, name):
    kubectl("create", "deployment", name, "--image=busybox", "--replicas=2")
    eventually(lambda: len(pods(kubectl, f"app={name}")) == 2, what=f"pods of {name}")


@pytest.mark.parametrize("cascade", ["background", "foreground"])
def test_deleting_a_deployment_cascades_to_replicasets_and_pods(kubectl, cascade):
    name = f"cascade-{cascade}"
    try:
        _deployment_with_pods(kubectl, name)
        kubectl("delete", "deploy", name, f"--cascade={cascade}")
        eventually(lambda: pods(kubectl, f"app={name}") == [], what="pods deleted")
        eventually(lambda: kubectl("get", "rs", "-l", f"app={name}", "-o", "name") == "", what="ReplicaSets deleted")
    finally:
        kubectl("delete", "deploy", name, "--ignore-not-found", "--wait=false")
        force_delete(kubectl, f"app={name}")


def test_orphan_cascade_keeps_replicaset_and_pods(kubectl):
    name = "cascade-orphan"
    try:
        _deployment_with_pods(kubectl, name)
        kubectl("delete", "deploy", name, "--cascade=orphan")
        replicasets = json.loads(kubectl("get", "rs", "-l", f"app={name}", "-o", "json"))["items"]
        assert len(replicasets) == 1 and not replicasets[0]["metadata"].get("ownerReferences")
        assert len(pods(kubectl, f"app={name}")) == 2
    finally:
        kubectl("delete", "deploy", name, "--ignore-not-found", "--wait=false")
        kubectl("delete", "rs", "-l", f"app={name}", "--ignore-not-found")
        force_delete(kubectl, f"app={name}")
