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


def _table(output: str) -> list[list[str]]:
    import re

    return [re.split(r"\s{2,}", line.strip()) for line in output.splitlines()[1:] if line.strip()]


def test_book_selector_commands_print_running_pods_as_plain_get_does(kubectl):
    """Book 2.5/2.15/3.1: `kubectl get pods -l ...` in every output form shows what the plain
    `get pods` shows for pods the kubelet runs (it once printed `0/0` and no STATUS)."""
    import subprocess

    kubectl("create", "deployment", "sel-hello", f"--image={BUSYBOX}", "--", "sleep", "3600")
    kubectl("run", "sel-solo", f"--image={BUSYBOX}", "--labels=run=sel-solo", "--", "sleep", "3600")
    kubectl("wait", "--for=condition=Ready", "pod", "-l", "app=sel-hello", "--timeout=90s")
    kubectl("wait", "--for=condition=Ready", "pod/sel-solo", "--timeout=90s")
    try:
        everything = {row[0]: row for row in _table(kubectl("get", "pods"))}
        for selector, name_prefix in (("app=sel-hello", "sel-hello-"), ("run=sel-solo", "sel-solo")):
            rows = _table(kubectl("get", "pods", "-l", selector))
            assert len(rows) == 1 and rows[0][0].startswith(name_prefix)
            assert rows[0][1:3] == ["1/1", "Running"], rows
            assert rows[0][:4] == everything[rows[0][0]][:4]

            wide = _table(kubectl("get", "pods", "-l", selector, "-o", "wide"))
            assert wide[0][1:3] == ["1/1", "Running"] and wide[0][5].startswith("10.42."), wide

            labelled = kubectl("get", "pods", "-l", selector, "--show-labels")
            assert "1/1" in labelled and "Running" in labelled and selector in labelled

            columns = _table(kubectl("get", "pods", "-l", selector, "-L", "app,run"))
            assert columns[0][1:3] == ["1/1", "Running"]
            assert columns[0][-1] == ("sel-solo" if selector.startswith("run=") else "sel-hello"), columns

        # -w prints the current rows first, then follows: read those and stop.
        watch = subprocess.Popen(
            [*kubectl_command(kubectl), "get", "pods", "-l", "app=sel-hello", "-w"], stdout=subprocess.PIPE, text=True)
        try:
            header, first = watch.stdout.readline(), watch.stdout.readline()
        finally:
            watch.kill()
            watch.wait()
        assert header.split()[:3] == ["NAME", "READY", "STATUS"]
        assert first.split()[1:3] == ["1/1", "Running"], first
    finally:
        kubectl("delete", "deployment", "sel-hello", "--wait=false")
        kubectl("delete", "pod", "sel-solo", "--grace-period=1", "--wait=false")


def kubectl_command(kubectl) -> list[str]:
    from conftest import KUBECTL

    return [KUBECTL, "--kubeconfig", str(kubectl.server.kubeconfig), "--cache-dir", str(kubectl.cache_dir)]
