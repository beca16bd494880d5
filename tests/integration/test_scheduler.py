"""The scheduler against a real server: hollow nodes (Node objects, no kubelet) are
registered through the API, pods are created with the official client and kubectl, and
the tests watch where they land, what `kubectl describe` says when nothing fits, and that
a cordoned node gets nothing. Every test deletes the nodes and pods it created."""

from __future__ import annotations

import uuid
from functools import partial

import pytest
from kubernetes import client
from kubernetes.client.rest import ApiException

from conftest import eventually

NAMESPACE = "default"


# Every wait here polls every 50 ms.
wait_for = partial(eventually, interval=0.05)


class Cluster:
    """Creates nodes and pods for one test, labelled so its pods can only see its nodes,
    and deletes them all afterwards."""

    def __init__(self, server, api_client):
        self.server = server
        self.core = client.CoreV1Api(api_client)
        self.group = f"t{uuid.uuid4().hex[:8]}"
        self.nodes: list[str] = []
        self.pods: list[str] = []

    def add_node(self, suffix, *, cpu="2", memory="4Gi", pods="110", labels=None, taints=None, ready="True"):
        name = f"{self.group}-{suffix}"
        body = {"apiVersion": "v1", "kind": "Node",
                "metadata": {"name": name, "labels": {"test-group": self.group, "kubernetes.io/hostname": name,
                                                      **(labels or {})}},
                "spec": {"taints": taints or []},
                "status": {"capacity": {"cpu": cpu, "memory": memory, "pods": pods},
                           "allocatable": {"cpu": cpu, "memory": memory, "pods": pods},
                           "conditions": [{"type": "Ready", "status": ready, "reason": "KubeletReady",
                                           "message": "hollow node"}]}}
        self.core.create_node(body)
        self.nodes.append(name)
        created = self.core.read_node(name)
        if not created.status or not created.status.conditions:
            self.core.replace_node_status(name, dict(body, metadata=dict(body["metadata"],
                                                     resourceVersion=created.metadata.resource_version)))
        return name

    def add_pod(self, suffix, *, cpu=None, memory=None, node_selector=None, tolerations=None, host_port=None):
        name = f"{self.group}-{suffix}"
        container = {"name": "app", "image": "busybox"}
        requests = {k: v for k, v in (("cpu", cpu), ("memory", memory)) if v}
        if requests:
            container["resources"] = {"requests": requests}
        if host_port:
            container["ports"] = [{"containerPort": host_port, "hostPort": host_port}]
        spec = {"containers": [container], "nodeSelector": {"test-group": self.group, **(node_selector or {})}}
        if tolerations:
            spec["tolerations"] = tolerations
        self.core.create_namespaced_pod(NAMESPACE, {"apiVersion": "v1", "kind": "Pod",
                                                    "metadata": {"name": name}, "spec": spec})
        self.pods.append(name)
        return name

    def node_of(self, pod):
        return self.core.read_namespaced_pod(pod, NAMESPACE).spec.node_name

    def wait_bound(self, pod, timeout=20.0):
        def context():
            return f"PodScheduled: {self.scheduled_condition(pod)}\nserver log:\n{self.server.log_tail()}"
        return wait_for(lambda: self.node_of(pod), timeout, what=f"{pod} to be bound", context=context)

    def scheduled_condition(self, pod):
        conditions = self.core.read_namespaced_pod(pod, NAMESPACE).status.conditions or []
        return next((c for c in conditions if c.type == "PodScheduled"), None)

    def cleanup(self):
        for pod in self.pods:
            try:
                self.core.delete_namespaced_pod(pod, NAMESPACE, grace_period_seconds=0)
            except ApiException:
                pass
        for node in self.nodes:
            try:
                self.core.delete_node(node)
            except ApiException:
                pass


@pytest.fixture
def cluster(server, api_client):
    test_cluster = Cluster(server, api_client)
    yield test_cluster
    test_cluster.cleanup()


def test_pod_lands_on_the_node_matching_its_node_selector(cluster):
    cluster.add_node("plain")
    ssd = cluster.add_node("ssd", labels={"disk": "ssd"})
    pod = cluster.add_pod("wants-ssd", node_selector={"disk": "ssd"})
    assert cluster.wait_bound(pod) == ssd
    condition = cluster.scheduled_condition(pod)
    assert condition is not None and condition.status == "True"


def test_scheduled_event_says_where_the_pod_went(cluster, kubectl):
    node = cluster.add_node("only")
    pod = cluster.add_pod("evented")
    assert cluster.wait_bound(pod) == node
    expected = f"Successfully assigned {NAMESPACE}/{pod} to {node}"
    wait_for(lambda: expected in kubectl("describe", "pod", pod), what="Scheduled event")


def test_tainted_node_only_takes_pods_that_tolerate_the_taint(cluster):
    taint = {"key": "dedicated", "value": "gpu", "effect": "NoSchedule"}
    tainted = cluster.add_node("gpu", taints=[taint])
    plain = cluster.add_node("plain")
    ordinary = [cluster.add_pod(f"ordinary-{i}") for i in range(4)]
    assert {cluster.wait_bound(pod) for pod in ordinary} == {plain}
    tolerant = cluster.add_pod("tolerant", node_selector={"kubernetes.io/hostname": tainted},
                               tolerations=[{"key": "dedicated", "operator": "Equal", "value": "gpu",
                                             "effect": "NoSchedule"}])
    assert cluster.wait_bound(tolerant) == tainted


def test_resource_requests_are_packed_within_allocatable(cluster):
    small = cluster.add_node("small", cpu="1", memory="1Gi")
    big = cluster.add_node("big", cpu="4", memory="8Gi")
    pods = [cluster.add_pod(f"half-cpu-{i}", cpu="500m", memory="128Mi") for i in range(8)]
    placements = [cluster.wait_bound(pod) for pod in pods]
    assert placements.count(small) <= 2
    assert placements.count(big) <= 8 and placements.count(big) >= 6


def test_host_port_is_given_once_per_node(cluster):
    first_node = cluster.add_node("a")
    second_node = cluster.add_node("b")
    pods = [cluster.add_pod(f"web-{i}", host_port=8080) for i in range(3)]
    assert sorted(filter(None, (cluster.wait_bound(p) if i < 2 else None for i, p in enumerate(pods[:2])))) == \
        sorted([first_node, second_node])
    condition = wait_for(lambda: (c := cluster.scheduled_condition(pods[2])) and c.status == "False" and c,
                         what="third pod to be unschedulable")
    assert "didn't have free ports for the requested pod ports" in condition.message
    assert cluster.node_of(pods[2]) is None


def test_unschedulable_pod_gets_failed_scheduling_event_and_condition(cluster, kubectl):
    taint = {"key": "node-role.kubernetes.io/control-plane", "effect": "NoSchedule"}
    cluster.add_node("control", taints=[taint])
    cluster.add_node("w1", cpu="1")
    cluster.add_node("w2", cpu="1")
    pod = cluster.add_pod("too-big", cpu="2")
    total_nodes = len(cluster.core.list_node().items)
    other_nodes = total_nodes - 3  # nodes outside this test fail our nodeSelector
    reasons = ["1 node(s) had untolerated taint {node-role.kubernetes.io/control-plane: }", "2 Insufficient cpu"]
    if other_nodes:
        reasons.append(f"{other_nodes} node(s) didn't match Pod's node affinity/selector")
    unhelpful = 1 + other_nodes
    expected = (f"0/{total_nodes} nodes are available: {', '.join(sorted(reasons))}. preemption: 0/{total_nodes} "
                f"nodes are available: {unhelpful} Preemption is not helpful for scheduling, "
                f"2 No preemption victims found for incoming pod.")
    condition = wait_for(lambda: (c := cluster.scheduled_condition(pod)) and c.status == "False" and c,
                         what="PodScheduled=False")
    assert condition.reason == "Unschedulable"
    assert condition.message == expected
    described = wait_for(lambda: (text := kubectl("describe", "pod", pod)) and "FailedScheduling" in text and text,
                         what="FailedScheduling in describe")
    assert "Warning  FailedScheduling" in described
    assert expected in " ".join(described.split()) or expected[:60] in described
    assert cluster.node_of(pod) is None


def test_pending_pod_is_scheduled_when_a_fitting_node_arrives(cluster):
    cluster.add_node("tiny", cpu="500m")
    pod = cluster.add_pod("waits", cpu="1")
    wait_for(lambda: (c := cluster.scheduled_condition(pod)) and c.status == "False", what="unschedulable")
    roomy = cluster.add_node("roomy", cpu="4")
    assert cluster.wait_bound(pod, timeout=30) == roomy


def test_cordoned_node_gets_no_new_pods(cluster, kubectl):
    cordoned = cluster.add_node("cordoned")
    open_node = cluster.add_node("open")
    kubectl("cordon", cordoned)
    wait_for(lambda: cluster.core.read_node(cordoned).spec.unschedulable, what="cordon")
    pods = [cluster.add_pod(f"after-cordon-{i}") for i in range(5)]
    assert {cluster.wait_bound(pod) for pod in pods} == {open_node}
    kubectl("uncordon", cordoned)


def test_not_ready_node_gets_no_pods(cluster):
    cluster.add_node("sick", ready="False")
    pod = cluster.add_pod("avoids-sick")
    condition = wait_for(lambda: (c := cluster.scheduled_condition(pod)) and c.status == "False" and c,
                         what="unschedulable")
    assert "node(s) had untolerated taint {node.kubernetes.io/not-ready: }" in condition.message
