"""The lifecycle controllers against a real server: garbage collection (background,
foreground, orphan), namespace deletion, default service accounts, DaemonSets on fake
nodes, node lifecycle (with short timings, run in-process) and the event TTL sweep.

There is no kubelet: fake Nodes are registered with a Ready condition, and pods the
scheduler binds to them are deleted gracefully and stay Terminating, so clean-up removes
them with gracePeriodSeconds=0.
"""

from __future__ import annotations

import asyncio
import os
import time
from functools import partial

import pytest

from pyk8s.api import errors
from pyk8s.api.resources import lookup
from pyk8s.client import Client

from conftest import eventually_async

NAMESPACES = lookup("", "v1", "namespaces")
CONFIGMAPS = lookup("", "v1", "configmaps")
PODS = lookup("", "v1", "pods")
NODES = lookup("", "v1", "nodes")
EVENTS = lookup("", "v1", "events")
LEASES = lookup("coordination.k8s.io", "v1", "leases")
SERVICE_ACCOUNTS = lookup("", "v1", "serviceaccounts")
DAEMONSETS = lookup("apps", "v1", "daemonsets")
REVISIONS = lookup("apps", "v1", "controllerrevisions")

DEADLINE = 15.0


def run(server, scenario):
    async def main():
        async with Client.from_kubeconfig(server.kubeconfig) as client:
            await scenario(client)
    asyncio.run(main())


# Every wait here: up to DEADLINE seconds, polled every 50 ms.
eventually = partial(eventually_async, timeout=DEADLINE, interval=0.05)


async def get_or_none(client, resource, name, namespace=None) -> dict | None:
    try:
        return await client.get(resource, name, namespace)
    except errors.NotFound:
        return None


async def gone(client, resource, name, namespace=None) -> bool:
    return await get_or_none(client, resource, name, namespace) is None


def unique(prefix: str) -> str:
    return f"{prefix}-{os.urandom(3).hex()}"


async def configmap(client, name, namespace="default", owners=(), finalizers=()):
    meta = {"name": name, "namespace": namespace}
    if owners:
        meta["ownerReferences"] = list(owners)
    if finalizers:
        meta["finalizers"] = list(finalizers)
    return await client.create(CONFIGMAPS, {"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta})


def ref_to(owner, block=False):
    return {"apiVersion": owner.get("apiVersion", "v1"), "kind": owner.get("kind", "ConfigMap"),
            "name": owner["metadata"]["name"], "uid": owner["metadata"]["uid"], "blockOwnerDeletion": block}


async def register_node(client, name, labels=None):
    node = await client.create(NODES, {"apiVersion": "v1", "kind": "Node",
                                       "metadata": {"name": name, "labels": {"kubernetes.io/hostname": name, **(labels or {})}}})
    now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    status = {"conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady",
                              "message": "kubelet is posting ready status", "lastHeartbeatTime": now,
                              "lastTransitionTime": now}],
              "allocatable": {"cpu": "4", "memory": "8Gi", "pods": "110"},
              "capacity": {"cpu": "4", "memory": "8Gi", "pods": "110"}}
    # The node IPAM controller writes spec.podCIDR(s) right after the create, as upstream's
    # does: a status write on the created object's resourceVersion may conflict, so re-read
    # and retry (what a kubelet does).
    for _ in range(10):
        node["status"] = status
        try:
            return await client.update(NODES, node, subresource="status")
        except errors.Conflict:
            node = await client.get(NODES, name)
    node["status"] = status
    return await client.update(NODES, node, subresource="status")


async def remove_node(client, name):
    try:
        await client.delete(NODES, name)
    except errors.NotFound:
        pass


async def force_delete_pods(client, namespace, label_selector):
    listed = await client.list(PODS, namespace, labelSelector=label_selector)
    for pod in listed["items"]:
        try:
            await client.delete(PODS, pod["metadata"]["name"], namespace, grace_period_seconds=0)
        except errors.NotFound:
            pass


async def live_pods(client, namespace, label_selector):
    listed = await client.list(PODS, namespace, labelSelector=label_selector)
    return [p for p in listed["items"] if not p["metadata"].get("deletionTimestamp")]


# -- garbage collector -----------------------------------------------------------------


def test_deleting_an_owner_in_the_background_deletes_its_dependents(server):
    async def scenario(client):
        owner = await configmap(client, unique("owner"))
        child = await configmap(client, unique("child"), owners=[ref_to(owner)])
        grandchild = await configmap(client, unique("grandchild"), owners=[ref_to(child)])
        await client.delete(CONFIGMAPS, owner["metadata"]["name"], "default", propagation_policy="Background")
        for obj in (child, grandchild):
            await eventually(lambda obj=obj: gone(client, CONFIGMAPS, obj["metadata"]["name"], "default"),
                             what=f"{obj['metadata']['name']} collected")
    run(server, scenario)


def test_dependent_whose_owner_never_existed_is_collected(server):
    async def scenario(client):
        phantom = {"apiVersion": "v1", "kind": "ConfigMap", "name": "nobody", "uid": "00000000-dead-beef-0000-000000000000"}
        child = await configmap(client, unique("stray"), owners=[phantom])
        await eventually(lambda: gone(client, CONFIGMAPS, child["metadata"]["name"], "default"), what="stray collected")
    run(server, scenario)


def test_dependent_with_one_live_owner_survives_and_loses_the_dead_reference(server):
    async def scenario(client):
        alive = await configmap(client, unique("alive"))
        doomed = await configmap(client, unique("doomed"))
        child = await configmap(client, unique("shared"), owners=[ref_to(alive), ref_to(doomed)])
        await client.delete(CONFIGMAPS, doomed["metadata"]["name"], "default")

        async def single_owner():
            current = await client.get(CONFIGMAPS, child["metadata"]["name"], "default")
            return [r["uid"] for r in current["metadata"].get("ownerReferences") or []] == [alive["metadata"]["uid"]]
        await eventually(single_owner, what="dangling reference removed")
        await client.delete(CONFIGMAPS, alive["metadata"]["name"], "default")
        await eventually(lambda: gone(client, CONFIGMAPS, child["metadata"]["name"], "default"), what="child collected")
    run(server, scenario)


def test_orphan_deletion_keeps_dependents_and_removes_their_owner_reference(server):
    async def scenario(client):
        owner = await configmap(client, unique("parent"))
        child = await configmap(client, unique("orphan"), owners=[ref_to(owner)])
        await client.delete(CONFIGMAPS, owner["metadata"]["name"], "default", propagation_policy="Orphan")
        await eventually(lambda: gone(client, CONFIGMAPS, owner["metadata"]["name"], "default"), what="owner removed")
        survivor = await client.get(CONFIGMAPS, child["metadata"]["name"], "default")
        assert not survivor["metadata"].get("ownerReferences")
        await client.delete(CONFIGMAPS, child["metadata"]["name"], "default")
    run(server, scenario)


def test_foreground_deletion_waits_for_blocking_dependents(server):
    async def scenario(client):
        owner = await configmap(client, unique("fg"))
        # The dependent holds its own finalizer so the owner's wait can be observed.
        child = await configmap(client, unique("fg-child"), owners=[ref_to(owner, block=True)],
                                finalizers=["test.pyk8s.io/hold"])
        await client.delete(CONFIGMAPS, owner["metadata"]["name"], "default", propagation_policy="Foreground")

        async def child_marked():
            current = await client.get(CONFIGMAPS, child["metadata"]["name"], "default")
            return current["metadata"].get("deletionTimestamp")
        await eventually(child_marked, what="dependent deleted first")
        waiting = await client.get(CONFIGMAPS, owner["metadata"]["name"], "default")
        assert "foregroundDeletion" in waiting["metadata"]["finalizers"]
        await client.patch(CONFIGMAPS, child["metadata"]["name"], {"metadata": {"finalizers": None}}, "default")
        await eventually(lambda: gone(client, CONFIGMAPS, owner["metadata"]["name"], "default"), what="owner removed")
    run(server, scenario)


# -- namespaces and service accounts ---------------------------------------------------


def test_new_namespace_gets_a_default_service_account_that_comes_back(server):
    async def scenario(client):
        name = unique("sa")
        await client.create(NAMESPACES, {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})
        try:
            first = await eventually(lambda: get_or_none(client, SERVICE_ACCOUNTS, "default", name), what="default SA")
            await client.delete(SERVICE_ACCOUNTS, "default", name)

            async def recreated():
                account = await get_or_none(client, SERVICE_ACCOUNTS, "default", name)
                return account and account["metadata"]["uid"] != first["metadata"]["uid"]
            await eventually(recreated, what="default SA recreated")
        finally:
            await client.delete(NAMESPACES, name)
    run(server, scenario)


def test_deleted_namespace_loses_its_content_and_then_disappears(server):
    async def scenario(client):
        name = unique("doomed")
        await client.create(NAMESPACES, {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})
        await configmap(client, "settings", namespace=name)
        await client.create(PODS, {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "unbound", "namespace": name},
                                   "spec": {"containers": [{"name": "c", "image": "busybox"}],
                                            "nodeSelector": {"no-such-node": "anywhere"}}})
        # A finalizer keeps one object, so the Terminating state can be looked at.
        await configmap(client, "held", namespace=name, finalizers=["test.pyk8s.io/hold"])
        await client.delete(NAMESPACES, name)

        async def only_held_left():
            namespace = await client.get(NAMESPACES, name)
            conditions = {c["type"]: c for c in (namespace.get("status") or {}).get("conditions") or []}
            remaining = conditions.get("NamespaceFinalizersRemaining", {})
            return remaining.get("status") == "True" and "test.pyk8s.io/hold in 1 resource instances" in remaining["message"]
        await eventually(only_held_left, what="NamespaceFinalizersRemaining condition")
        assert await gone(client, CONFIGMAPS, "settings", name)
        assert await gone(client, PODS, "unbound", name)
        namespace = await client.get(NAMESPACES, name)
        assert namespace["status"]["phase"] == "Terminating"
        await client.patch(CONFIGMAPS, "held", {"metadata": {"finalizers": None}}, name)
        await eventually(lambda: gone(client, NAMESPACES, name), what="namespace removed")
    run(server, scenario)


# -- DaemonSets ------------------------------------------------------------------------


def daemonset(name, node_label, **spec):
    return {"apiVersion": "apps/v1", "kind": "DaemonSet", "metadata": {"name": name, "namespace": "default"},
            "spec": {"selector": {"matchLabels": {"app": name}},
                     "template": {"metadata": {"labels": {"app": name}},
                                  "spec": {"containers": [{"name": "c", "image": "busybox:v1"}],
                                           "nodeSelector": {node_label: "yes"}}},
                     **spec}}


def test_daemonset_runs_one_pinned_pod_per_matching_node_and_follows_labels(server):
    async def scenario(client):
        name = unique("ds")
        label = f"pyk8s.test/{name}"
        nodes = [unique("node") for _ in range(3)]
        try:
            for index, node in enumerate(nodes):
                await register_node(client, node, {label: "yes"} if index < 2 else {})
            await client.create(DAEMONSETS, daemonset(name, label))

            async def pods_on(expected):
                pods = await live_pods(client, "default", f"app={name}")
                targets = sorted(p["spec"]["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
                                 ["nodeSelectorTerms"][0]["matchFields"][0]["values"][0] for p in pods)
                return targets == sorted(expected) and pods
            pods = await eventually(lambda: pods_on(nodes[:2]), what="a pod on each labelled node")
            tolerated = {(t["key"], t["effect"]) for t in pods[0]["spec"]["tolerations"]}
            assert ("node.kubernetes.io/unschedulable", "NoSchedule") in tolerated
            assert ("node.kubernetes.io/unreachable", "NoExecute") in tolerated
            assert pods[0]["metadata"]["labels"]["controller-revision-hash"]

            async def status_counts():
                ds = await client.get(DAEMONSETS, name, "default")
                status = ds.get("status") or {}
                return status.get("desiredNumberScheduled") == 2 and status.get("currentNumberScheduled") == 2 \
                    and status.get("observedGeneration") == ds["metadata"]["generation"] and status
            status = await eventually(status_counts, what="status counts")
            assert status["numberMisscheduled"] == 0 and status["updatedNumberScheduled"] == 2

            # Book 6.3: labelling a node brings a pod to it; unlabelling takes it away.
            await client.patch(NODES, nodes[2], {"metadata": {"labels": {label: "yes"}}})
            await client.patch(NODES, nodes[0], {"metadata": {"labels": {label: None}}})
            await eventually(lambda: pods_on(nodes[1:]), what="pods following the node labels")
        finally:
            await client.delete(DAEMONSETS, name, "default")
            await force_delete_pods(client, "default", f"app={name}")
            for node in nodes:
                await remove_node(client, node)
    run(server, scenario)


def test_daemonset_rolling_update_replaces_pods_and_records_revisions(server):
    async def scenario(client):
        name = unique("roll")
        label = f"pyk8s.test/{name}"
        nodes = [unique("node") for _ in range(2)]
        try:
            for node in nodes:
                await register_node(client, node, {label: "yes"})
            await client.create(DAEMONSETS, daemonset(name, label))
            first = await eventually(lambda: live_pods(client, "default", f"app={name}"), what="first pods")
            first_hash = first[0]["metadata"]["labels"]["controller-revision-hash"]
            await client.patch(DAEMONSETS, name, {"spec": {"template": {"spec": {
                "containers": [{"name": "c", "image": "busybox:v2"}]}}}}, "default")

            async def all_updated():
                pods = await live_pods(client, "default", f"app={name}")
                return len(pods) == 2 and all(p["spec"]["containers"][0]["image"] == "busybox:v2" for p in pods) and pods
            pods = await eventually(all_updated, what="pods on the new template")
            assert all(p["metadata"]["labels"]["controller-revision-hash"] != first_hash for p in pods)
            revisions = (await client.list(REVISIONS, "default", labelSelector=f"app={name}"))["items"]
            assert sorted(r["revision"] for r in revisions) == [1, 2]
            assert {r["metadata"]["name"] for r in revisions} >= {f"{name}-{first_hash}"}
        finally:
            await client.delete(DAEMONSETS, name, "default")
            await force_delete_pods(client, "default", f"app={name}")
            for node in nodes:
                await remove_node(client, node)
    run(server, scenario)


# -- node lifecycle and event TTL (controllers run in-process with short timings) -------


def test_silent_node_becomes_unknown_tainted_and_its_pods_evicted(server):
    from pyk8s.controllers.nodelifecycle import NodeLifecycleController

    async def scenario(client):
        node = unique("silent")
        controller = NodeLifecycleController(client, grace_period=0.5, monitor_period=0.1)
        await register_node(client, node)
        pod_name = unique("victim")
        await client.create(PODS, {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": pod_name, "namespace": "default"},
                                   "spec": {"nodeName": node, "containers": [{"name": "c", "image": "busybox"}],
                                            "tolerations": [{"key": "node.kubernetes.io/unreachable", "operator": "Exists",
                                                             "effect": "NoExecute", "tolerationSeconds": 1}]}})
        await controller.start()
        try:
            async def tainted():
                current = await client.get(NODES, node)
                ready = [c for c in current["status"]["conditions"] if c["type"] == "Ready"][0]
                taints = {(t["key"], t["effect"]) for t in (current.get("spec") or {}).get("taints") or []}
                return ready["status"] == "Unknown" and ready["reason"] == "NodeStatusUnknown" and \
                    {("node.kubernetes.io/unreachable", "NoSchedule"), ("node.kubernetes.io/unreachable", "NoExecute")} <= taints
            await eventually(tainted, what="node Unknown and tainted")

            async def evicted():
                pod = await client.get(PODS, pod_name, "default")
                return pod["metadata"].get("deletionTimestamp")
            await eventually(evicted, what="pod evicted after its toleration")

            # The kubelet comes back: lease renewed and Ready posted again.
            now = time.strftime("%Y-%m-%dT%H:%M:%S.000000Z", time.gmtime())
            await client.create(LEASES, {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
                                         "metadata": {"name": node, "namespace": "kube-node-lease"},
                                         "spec": {"holderIdentity": node, "leaseDurationSeconds": 40, "renewTime": now}})
            current = await client.get(NODES, node)
            for item in current["status"]["conditions"]:
                item.update(status="True" if item["type"] == "Ready" else "False", reason="KubeletReady",
                            lastHeartbeatTime=now[:19] + "Z")
            await client.update(NODES, current, subresource="status")

            async def untainted():
                current = await client.get(NODES, node)
                return not (current.get("spec") or {}).get("taints")
            await eventually(untainted, what="taints removed")
        finally:
            await controller.stop()
            await client.delete(PODS, pod_name, "default", grace_period_seconds=0)
            await remove_node(client, node)
            try:
                await client.delete(LEASES, node, "kube-node-lease")
            except errors.NotFound:
                pass
    run(server, scenario)


def test_event_ttl_sweep_deletes_only_expired_events(server):
    from pyk8s.controllers.eventttl import EventTTLController

    async def scenario(client):
        def event(name, when):
            return {"apiVersion": "v1", "kind": "Event", "metadata": {"name": name, "namespace": "default"},
                    "involvedObject": {"kind": "Pod", "name": "x", "namespace": "default"},
                    "reason": "Test", "message": "m", "type": "Normal", "count": 1,
                    "firstTimestamp": when, "lastTimestamp": when}
        old, fresh = unique("old"), unique("fresh")
        two_hours_ago = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() - 7200))
        now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        await client.create(EVENTS, event(old, two_hours_ago))
        await client.create(EVENTS, event(fresh, now))
        controller = EventTTLController(client)
        assert await controller.sweep() >= 1
        assert await gone(client, EVENTS, old, "default")
        await client.get(EVENTS, fresh, "default")
        await client.delete(EVENTS, fresh, "default")
    run(server, scenario)
