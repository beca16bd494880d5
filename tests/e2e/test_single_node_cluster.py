"""`pyk8s server` as a user runs it: control plane plus the embedded node. A pod created
with kubectl is scheduled onto the node, runs in containerd, and its logs come back
through the API server."""

from __future__ import annotations

import json

import pytest

from conftest import eventually

BUSYBOX = "pyk8s/busybox:1.35"


@pytest.fixture
def kubectl(cluster, tmp_path):
    from conftest import Kubectl

    return Kubectl(cluster, tmp_path / "kube-cache")


def test_embedded_node_is_ready_and_runs_a_pod_whose_logs_kubectl_reads(kubectl):
    kubectl("wait", "--for=condition=Ready", "node", "--all", "--timeout=90s")
    nodes = json.loads(kubectl("get", "nodes", "-o", "json"))["items"]
    assert len(nodes) == 1
    assert nodes[0]["metadata"]["labels"]["node-role.kubernetes.io/control-plane"] == "true"

    kubectl("run", "hello", f"--image={BUSYBOX}", "--restart=Never", "--", "sh", "-c", "echo hello from pyk8s; sleep 3600")
    kubectl("wait", "--for=condition=Ready", "pod/hello", "--timeout=90s")
    pod = json.loads(kubectl("get", "pod", "hello", "-o", "json"))
    assert pod["spec"]["nodeName"] == nodes[0]["metadata"]["name"]
    assert pod["status"]["podIP"].startswith("10.42.")
    assert pod["status"]["containerStatuses"][0]["containerID"].startswith("containerd://")
    assert eventually(lambda: kubectl("logs", "hello").strip() == "hello from pyk8s", 60, what="the pod's logs",
                      interval=0.2)

    # The Events a learner sees in `kubectl describe pod` (book chapter 2), from the
    # scheduler and the kubelet.
    def events_shown():
        described = kubectl("describe", "pod", "hello")
        wanted = ["Scheduled", "Pulled", "Created", "Started"]
        return all(f"Normal  {reason}" in described for reason in wanted) and described
    described = eventually(events_shown, 20, what="the pod's events in describe", interval=0.2)
    assert f'Container image "{BUSYBOX}" already present on machine' in described
    assert "Created container: hello" in described and "Started container hello" in described

    out = kubectl("get", "pod", "hello", "-o", "wide")
    header = out.splitlines()[0].split()
    assert header[:5] == ["NAME", "READY", "STATUS", "RESTARTS", "AGE"]
    assert out.splitlines()[1].split()[:3] == ["hello", "1/1", "Running"]
    kubectl("delete", "pod", "hello", "--grace-period=1")
    assert "NotFound" in kubectl.run("get", "pod", "hello", check=False).stderr


def test_deployment_pods_run_on_the_node_and_are_replaced_when_deleted(kubectl):
    kubectl("create", "deployment", "web", f"--image={BUSYBOX}", "--replicas=2", "--", "httpd", "-f", "-p", "8080")
    kubectl("rollout", "status", "deployment/web", "--timeout=90s")
    pods = json.loads(kubectl("get", "pods", "-l", "app=web", "-o", "json"))["items"]
    assert len(pods) == 2 and all(p["status"]["phase"] == "Running" for p in pods)
    victim = pods[0]["metadata"]["name"]
    kubectl("delete", "pod", victim, "--grace-period=1")
    kubectl("rollout", "status", "deployment/web", "--timeout=90s")

    def replaced():
        now = json.loads(kubectl("get", "pods", "-l", "app=web", "-o", "json"))["items"]
        names = {p["metadata"]["name"] for p in now if p["status"].get("phase") == "Running"
                 and not p["metadata"].get("deletionTimestamp")}
        return len(names) == 2 and victim not in names
    assert eventually(replaced, 60, what="the deleted pod replaced", interval=0.2)
    kubectl("delete", "deployment", "web")
