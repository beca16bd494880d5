"""A rolling update with real pods: a 10-replica Deployment whose pods run busybox httpd
behind an HTTP readiness probe, updated with maxUnavailable 2 and maxSurge 3 while a watch on
its pods counts the Ready ones, then rolled back with `kubectl rollout undo`.

The kubelet's probes decide readiness here, so the bounds the test asserts are the ones the
Deployment controller promises upstream: never fewer than replicas − maxUnavailable Ready
pods, never more than replicas + maxSurge pods.
"""

from __future__ import annotations

import asyncio
import json
import os
import time

import pytest

from pyk8s.api.resources import lookup
from pyk8s.client import Client

from conftest import eventually_async

BUSYBOX = "pyk8s/busybox:1.35"
PODS = lookup("", "v1", "pods")
REPLICAS = 10
MAX_UNAVAILABLE = 2
MAX_SURGE = 3

pytestmark = pytest.mark.skipif(os.geteuid() != 0 or not os.path.exists("/usr/bin/containerd"),
                                reason="needs root and containerd (scripts/install-node-deps.sh)")


@pytest.fixture
def kubectl(cluster, tmp_path):
    from conftest import Kubectl

    return Kubectl(cluster, tmp_path / "kube-cache")


def deployment_manifest(name: str, namespace: str) -> dict:
    # httpd serves the page the shell writes from $VERSION, so a template change (kubectl set
    # env) is visible both as a new ReplicaSet and in what the pods answer.
    return {
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "replicas": REPLICAS,
            "selector": {"matchLabels": {"app": name}},
            "strategy": {"type": "RollingUpdate",
                         "rollingUpdate": {"maxUnavailable": MAX_UNAVAILABLE, "maxSurge": MAX_SURGE}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {
                    # httpd as PID 1 ignores SIGTERM; without a short grace period every old
                    # pod would linger for 30 s.
                    "terminationGracePeriodSeconds": 1,
                    "containers": [{
                        "name": "web", "image": BUSYBOX,
                        "command": ["sh", "-c", 'echo "$VERSION" > /tmp/index.html && exec httpd -f -p 8080 -h /tmp'],
                        "env": [{"name": "VERSION", "value": "v1"}],
                        "ports": [{"containerPort": 8080}],
                        "readinessProbe": {"httpGet": {"path": "/", "port": 8080}, "periodSeconds": 1},
                    }],
                },
            },
        },
    }


class ReadyPodCounter:
    """Follows the namespace's pods through one watch and records, after every event, how
    many live (not terminating) pods exist and how many of them are Ready."""

    def __init__(self):
        self.pods: dict[str, dict] = {}
        self.ready_counts: list[int] = []
        self.live_counts: list[int] = []

    def apply(self, event_type: str, pod: dict) -> None:
        name = pod["metadata"]["name"]
        if event_type == "DELETED":
            self.pods.pop(name, None)
        else:
            self.pods[name] = pod
        live = [p for p in self.pods.values() if not p["metadata"].get("deletionTimestamp")]
        self.live_counts.append(len(live))
        self.ready_counts.append(sum(1 for p in live if is_ready(p)))

    def ready_with_hash(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for pod in self.pods.values():
            if not pod["metadata"].get("deletionTimestamp") and is_ready(pod):
                template_hash = pod["metadata"]["labels"].get("pod-template-hash", "")
                counts[template_hash] = counts.get(template_hash, 0) + 1
        return counts


def is_ready(pod: dict) -> bool:
    return any(c.get("type") == "Ready" and c.get("status") == "True"
               for c in (pod.get("status") or {}).get("conditions") or [])


async def follow_pods(client: Client, namespace: str, counter: ReadyPodCounter, watching: asyncio.Event) -> None:
    listed = await client.list(PODS, namespace)
    for pod in listed["items"]:
        counter.apply("ADDED", pod)
    resource_version = listed["metadata"]["resourceVersion"]
    watching.set()
    while True:  # the server may end a watch; resume from the last revision seen
        async for event in client.watch(PODS, namespace, resource_version=resource_version):
            if event["type"] == "BOOKMARK":
                resource_version = event["object"]["metadata"]["resourceVersion"]
                continue
            if event["type"] == "ERROR":
                raise AssertionError(f"pod watch failed: {event['object']}")
            counter.apply(event["type"], event["object"])
            resource_version = event["object"]["metadata"]["resourceVersion"]


def replicasets(kubectl, namespace: str, name: str) -> dict[str, dict]:
    listed = json.loads(kubectl("get", "replicasets", "-n", namespace, "-l", f"app={name}", "-o", "json"))
    return {rs["metadata"]["labels"]["pod-template-hash"]: rs for rs in listed["items"]}


async def rollout_within_bounds(kubectl, namespace: str, name: str, counter: ReadyPodCounter,
                                change: tuple[str, ...]) -> None:
    """Runs one kubectl change and waits for the rollout, checking the watch's counts."""
    counter.ready_counts.clear()
    counter.live_counts.clear()
    await asyncio.to_thread(kubectl, *change, "-n", namespace)
    await asyncio.to_thread(kubectl, "rollout", "status", f"deployment/{name}", "-n", namespace, "--timeout=60s")
    template_hash = await asyncio.to_thread(scaled_template_hash, kubectl, namespace, name)
    # The watch lags the API a little: let it see the finished rollout before judging it.
    await eventually_async(lambda: counter.ready_with_hash() == {template_hash: REPLICAS}, 30,
                           what=f"the watch to see {REPLICAS} ready pods of {template_hash}")
    assert counter.ready_counts, "the watch saw no pod change during the rollout"
    assert min(counter.ready_counts) >= REPLICAS - MAX_UNAVAILABLE, counter.ready_counts
    assert max(counter.ready_counts) <= REPLICAS + MAX_SURGE, counter.ready_counts
    assert max(counter.live_counts) <= REPLICAS + MAX_SURGE, counter.live_counts
    # The rollout really went through the surge: more than `replicas` pods existed at once.
    assert max(counter.live_counts) > REPLICAS, counter.live_counts


def scaled_template_hash(kubectl, namespace: str, name: str) -> str:
    """The pod-template-hash of the only ReplicaSet that has replicas."""
    scaled = [h for h, rs in replicasets(kubectl, namespace, name).items() if rs["spec"]["replicas"]]
    assert len(scaled) == 1, scaled
    return scaled[0]


def test_rolling_update_keeps_ready_pods_within_bounds_and_undo_restores_the_old_replicaset(kubectl, cluster):
    namespace = f"rollout-{os.urandom(3).hex()}"
    name = "web"
    kubectl("create", "namespace", namespace)

    async def scenario():
        async with Client.from_kubeconfig(cluster.kubeconfig) as client:
            await asyncio.to_thread(kubectl, "apply", "-f", "-", input=json.dumps(deployment_manifest(name, namespace)))
            await asyncio.to_thread(kubectl, "rollout", "status", f"deployment/{name}", "-n", namespace, "--timeout=60s")
            first = replicasets(kubectl, namespace, name)
            assert len(first) == 1
            first_hash, first_rs = next(iter(first.items()))
            assert first_rs["metadata"]["name"] == f"{name}-{first_hash}"

            counter = ReadyPodCounter()
            watching = asyncio.Event()
            watcher = asyncio.create_task(follow_pods(client, namespace, counter, watching))
            try:
                await asyncio.wait_for(watching.wait(), 10)
                assert counter.ready_with_hash() == {first_hash: REPLICAS}

                await rollout_within_bounds(kubectl, namespace, name, counter,
                                            ("set", "env", f"deployment/{name}", "VERSION=v2"))
                second = replicasets(kubectl, namespace, name)
                assert first_hash in second and len(second) == 2
                second_hash = next(h for h in second if h != first_hash)
                assert second[first_hash]["spec"]["replicas"] == 0
                assert second[second_hash]["metadata"]["annotations"]["deployment.kubernetes.io/revision"] == "2"
                page = await asyncio.to_thread(kubectl, "exec", "-n", namespace, f"deploy/{name}", "--",
                                               "wget", "-qO-", "localhost:8080")
                assert page.strip() == "v2"

                # Undo: the first ReplicaSet (same name, same hash) is scaled back up as
                # revision 3 and the second goes to 0 — no third ReplicaSet appears.
                await rollout_within_bounds(kubectl, namespace, name, counter,
                                            ("rollout", "undo", f"deployment/{name}"))
                undone = replicasets(kubectl, namespace, name)
                assert set(undone) == {first_hash, second_hash}
                assert undone[first_hash]["metadata"]["name"] == first_rs["metadata"]["name"]
                assert undone[first_hash]["metadata"]["uid"] == first_rs["metadata"]["uid"]
                assert undone[first_hash]["spec"]["replicas"] == REPLICAS
                assert undone[first_hash]["status"].get("readyReplicas") == REPLICAS
                assert undone[first_hash]["metadata"]["annotations"]["deployment.kubernetes.io/revision"] == "3"
                assert undone[second_hash]["spec"]["replicas"] == 0
                page = await asyncio.to_thread(kubectl, "exec", "-n", namespace, f"deploy/{name}", "--",
                                               "wget", "-qO-", "localhost:8080")
                assert page.strip() == "v1"
            finally:
                watcher.cancel()
                try:
                    await watcher
                except asyncio.CancelledError:
                    pass

    try:
        asyncio.run(scenario())
    finally:
        kubectl("delete", "namespace", namespace, "--wait=false", check=False)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if not kubectl("get", "pods", "-n", namespace, "-o", "name", check=False).split():
                break
            time.sleep(0.3)
