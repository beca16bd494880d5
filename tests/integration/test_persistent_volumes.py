"""PersistentVolumes, claims and StorageClasses against a real server with no node: the
binder's rules and phases, reclaim, the protection finalizers, default-class admission,
expansion, the scheduler's VolumeBinding answers (with hollow Node objects) and what
`kubectl get`/`describe` print. Every test deletes what it made."""

from __future__ import annotations

import asyncio
import json
import subprocess
import uuid
from functools import partial

import pytest

from pyk8s.api import errors
from pyk8s.api.resources import lookup
from pyk8s.client import Client
from pyk8s.provisioner import LocalPathProvisioner

from conftest import eventually, eventually_async

wait_for = partial(eventually, interval=0.05)


def _name(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:6]}"


def apply(kubectl, obj) -> None:
    kubectl("apply", "-f", "-", input=json.dumps(obj))


def get(kubectl, kind, name, namespace="default"):
    result = kubectl.run("get", kind, name, "-n", namespace, "-o", "json", check=False)
    return json.loads(result.stdout) if result.returncode == 0 else None


def pv(name, storage="50Mi", *, cls=None, reclaim=None, affinity=None, claim_ref=None):
    spec = {"capacity": {"storage": storage}, "accessModes": ["ReadWriteOnce"], "hostPath": {"path": f"/tmp/{name}"}}
    if cls is not None:
        spec["storageClassName"] = cls
    if reclaim:
        spec["persistentVolumeReclaimPolicy"] = reclaim
    if affinity:
        spec["nodeAffinity"] = {"required": {"nodeSelectorTerms": [{"matchExpressions": [
            {"key": k, "operator": "In", "values": [v]} for k, v in affinity.items()]}]}}
    if claim_ref:
        spec["claimRef"] = claim_ref
    return {"apiVersion": "v1", "kind": "PersistentVolume", "metadata": {"name": name}, "spec": spec}


def pvc(name, storage="40Mi", *, cls: str | None = ""):
    spec = {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": storage}}}
    if cls is not None:
        spec["storageClassName"] = cls
    return {"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": name}, "spec": spec}


def phase(kubectl, kind, name):
    obj = get(kubectl, kind, name)
    return obj and obj["status"].get("phase")


def events_for(kubectl, name):
    listed = json.loads(kubectl("get", "events", "-o", "json", "--field-selector", f"involvedObject.name={name}"))
    return [(e["reason"], e["message"]) for e in listed["items"]]


def cleanup(kubectl, *objects):
    for kind, name in objects:
        kubectl.run("delete", kind, name, "--wait=false", "--ignore-not-found", check=False)


def test_claim_binds_the_smallest_volume_that_fits_and_kubectl_shows_both(kubectl):
    small, big, claim = _name("pv-small"), _name("pv-big"), _name("claim")
    apply(kubectl, pv(big, "1Gi"))
    apply(kubectl, pv(small, "50Mi"))
    wait_for(lambda: phase(kubectl, "pv", small) == "Available" and phase(kubectl, "pv", big) == "Available",
             what="volumes Available")
    apply(kubectl, pvc(claim, "40Mi"))
    try:
        wait_for(lambda: phase(kubectl, "pvc", claim) == "Bound", what="claim Bound")
        bound = get(kubectl, "pvc", claim)
        assert bound["spec"]["volumeName"] == small
        assert bound["status"]["capacity"] == {"storage": "50Mi"}
        assert bound["metadata"]["annotations"]["pv.kubernetes.io/bind-completed"] == "yes"
        assert bound["metadata"]["annotations"]["pv.kubernetes.io/bound-by-controller"] == "yes"
        assert bound["metadata"]["finalizers"] == ["kubernetes.io/pvc-protection"]
        volume = wait_for(lambda: (v := get(kubectl, "pv", small)) and v["status"]["phase"] == "Bound" and v)
        assert volume["spec"]["claimRef"]["name"] == claim and volume["spec"]["claimRef"]["uid"] == bound["metadata"]["uid"]
        assert volume["metadata"]["finalizers"] == ["kubernetes.io/pv-protection"]
        assert phase(kubectl, "pv", big) == "Available"

        out = kubectl("get", "pv,pvc")
        lines = out.splitlines()
        assert lines[0].split() == ["NAME", "CAPACITY", "ACCESS", "MODES", "RECLAIM", "POLICY", "STATUS", "CLAIM",
                                    "STORAGECLASS", "VOLUMEATTRIBUTESCLASS", "REASON", "AGE"]
        row = next(line for line in lines if line.startswith(f"persistentvolume/{small}"))
        assert row.split()[1:6] == ["50Mi", "RWO", "Retain", "Bound", f"default/{claim}"]
        header = next(line for line in lines if line.startswith("NAME") and "VOLUME " in line)
        assert header.split() == ["NAME", "STATUS", "VOLUME", "CAPACITY", "ACCESS", "MODES", "STORAGECLASS",
                                  "VOLUMEATTRIBUTESCLASS", "AGE"]
        row = next(line for line in lines if line.startswith(f"persistentvolumeclaim/{claim}"))
        assert row.split()[1:5] == ["Bound", small, "50Mi", "RWO"]
        described = kubectl("describe", "pvc", claim)
        assert "Used By:       <none>" in described and "Finalizers:    [kubernetes.io/pvc-protection]" in described
    finally:
        cleanup(kubectl, ("pvc", claim), ("pv", small), ("pv", big))


def test_claim_that_no_volume_fits_stays_pending_with_upstreams_event(kubectl):
    claim = _name("toobig")
    apply(kubectl, pvc(claim, "100Gi"))
    try:
        wait_for(lambda: ("FailedBinding", "no persistent volumes available for this claim and no storage class is set")
                 in events_for(kubectl, claim), what="FailedBinding event")
        assert phase(kubectl, "pvc", claim) == "Pending"
        row = next(line for line in kubectl("get", "pvc").splitlines() if line.startswith(claim))
        assert row.split()[1] == "Pending"
    finally:
        cleanup(kubectl, ("pvc", claim))


def test_claim_naming_no_class_gets_the_default_local_path_class(kubectl):
    out = kubectl("get", "storageclass")
    assert out.splitlines()[0].split() == ["NAME", "PROVISIONER", "RECLAIMPOLICY", "VOLUMEBINDINGMODE",
                                           "ALLOWVOLUMEEXPANSION", "AGE"]
    assert out.splitlines()[1].split()[:6] == ["local-path", "(default)", "pyk8s.io/local-path", "Delete",
                                               "WaitForFirstConsumer", "false"]
    claim = _name("dynamic")
    apply(kubectl, pvc(claim, "100Mi", cls=None))
    try:
        assert get(kubectl, "pvc", claim)["spec"]["storageClassName"] == "local-path"
        wait_for(lambda: ("WaitForFirstConsumer", "waiting for first consumer to be created before binding")
                 in events_for(kubectl, claim), what="WaitForFirstConsumer event")
        assert phase(kubectl, "pvc", claim) == "Pending"
        # an explicit "" stays "": a choice of no class
        explicit = _name("noclass")
        apply(kubectl, pvc(explicit, cls=""))
        assert get(kubectl, "pvc", explicit)["spec"]["storageClassName"] == ""
        cleanup(kubectl, ("pvc", explicit))
    finally:
        cleanup(kubectl, ("pvc", claim))


def test_deleted_claim_releases_a_retain_volume_and_fails_a_delete_one(kubectl):
    keep, drop = _name("pv-keep"), _name("pv-drop")
    claim_keep, claim_drop = _name("c-keep"), _name("c-drop")
    apply(kubectl, pv(keep, claim_ref={"namespace": "default", "name": claim_keep}))
    apply(kubectl, pv(drop, reclaim="Delete", claim_ref={"namespace": "default", "name": claim_drop}))
    apply(kubectl, pvc(claim_keep))
    apply(kubectl, pvc(claim_drop))
    try:
        wait_for(lambda: phase(kubectl, "pvc", claim_keep) == "Bound" and phase(kubectl, "pvc", claim_drop) == "Bound")
        # pre-bound by its author: the volume is not marked bound-by-controller
        assert "pv.kubernetes.io/bound-by-controller" not in (get(kubectl, "pv", keep)["metadata"].get("annotations") or {})
        kubectl("delete", "pvc", claim_keep, claim_drop)
        wait_for(lambda: phase(kubectl, "pv", keep) == "Released", what="Retain volume Released")
        assert get(kubectl, "pv", keep)["spec"]["claimRef"]["name"] == claim_keep
        wait_for(lambda: phase(kubectl, "pv", drop) == "Failed", what="Delete volume Failed")
        assert any(reason == "VolumeFailedDelete" for reason, _ in events_for(kubectl, drop))
        row = next(line for line in kubectl("get", "pv").splitlines() if line.startswith(keep))
        assert row.split()[4] == "Released"
        # a claim of the same name later does not get the released volume
        apply(kubectl, pvc(claim_keep))
        wait_for(lambda: ("FailedBinding", "no persistent volumes available for this claim and no storage class is set")
                 in events_for(kubectl, claim_keep))
    finally:
        cleanup(kubectl, ("pvc", claim_keep), ("pv", keep), ("pv", drop))


def test_claim_in_use_stays_terminating_until_the_pod_is_gone(kubectl):
    volume, claim, pod = _name("pv"), _name("inuse"), _name("user")
    apply(kubectl, pv(volume))
    apply(kubectl, pvc(claim))
    wait_for(lambda: phase(kubectl, "pvc", claim) == "Bound")
    apply(kubectl, {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": pod},
                    "spec": {"nodeName": "ghost-node", "containers": [{"name": "c", "image": "busybox"}],
                             "volumes": [{"name": "data", "persistentVolumeClaim": {"claimName": claim}}]}})
    try:
        kubectl("delete", "pvc", claim, "--wait=false")
        kubectl("delete", "pv", volume, "--wait=false")
        wait_for(lambda: get(kubectl, "pvc", claim)["metadata"].get("deletionTimestamp"))
        row = next(line for line in kubectl("get", "pvc").splitlines() if line.startswith(claim))
        assert row.split()[1] == "Terminating"
        assert f"Used By:       {pod}" in kubectl("describe", "pvc", claim)
        # a bound volume is protected too
        assert get(kubectl, "pv", volume)["metadata"].get("deletionTimestamp")
        assert get(kubectl, "pvc", claim) is not None and get(kubectl, "pv", volume) is not None
        kubectl("delete", "pod", pod, "--grace-period=0", "--force")
        wait_for(lambda: get(kubectl, "pvc", claim) is None, what="claim removed once its pod is gone")
        wait_for(lambda: get(kubectl, "pv", volume) is None, what="volume removed once released")
    finally:
        kubectl.run("delete", "pod", pod, "--grace-period=0", "--force", "--ignore-not-found", check=False)
        cleanup(kubectl, ("pvc", claim), ("pv", volume))


def test_expansion_grows_the_volume_only_when_the_class_allows_it(kubectl):
    cls, fixed = _name("expandable"), _name("fixed")
    apply(kubectl, {"apiVersion": "storage.k8s.io/v1", "kind": "StorageClass", "metadata": {"name": cls},
                    "provisioner": "example.com/none", "allowVolumeExpansion": True})
    apply(kubectl, {"apiVersion": "storage.k8s.io/v1", "kind": "StorageClass", "metadata": {"name": fixed},
                    "provisioner": "example.com/none"})
    volume, claim = _name("pv"), _name("grow")
    volume2, claim2 = _name("pv"), _name("stuck")
    apply(kubectl, pv(volume, "1Gi", cls=cls))
    apply(kubectl, pv(volume2, "1Gi", cls=fixed))
    apply(kubectl, pvc(claim, "1Gi", cls=cls))
    apply(kubectl, pvc(claim2, "1Gi", cls=fixed))
    try:
        wait_for(lambda: phase(kubectl, "pvc", claim) == "Bound" and phase(kubectl, "pvc", claim2) == "Bound")
        kubectl("patch", "pvc", claim, "-p", '{"spec":{"resources":{"requests":{"storage":"2Gi"}}}}')
        wait_for(lambda: get(kubectl, "pvc", claim)["status"]["capacity"]["storage"] == "2Gi", what="claim grown")
        assert get(kubectl, "pv", volume)["spec"]["capacity"]["storage"] == "2Gi"
        shrink = kubectl.run("patch", "pvc", claim, "-p", '{"spec":{"resources":{"requests":{"storage":"1Gi"}}}}',
                             check=False)
        assert shrink.returncode != 0 and "spec.resources.requests.storage: Forbidden" in shrink.stderr
        refused = kubectl.run("patch", "pvc", claim2, "-p", '{"spec":{"resources":{"requests":{"storage":"2Gi"}}}}',
                              check=False)
        assert refused.returncode != 0
        assert ("only dynamically provisioned pvc can be resized and the storageclass that provisions the pvc "
                "must support resize") in refused.stderr
    finally:
        cleanup(kubectl, ("pvc", claim), ("pvc", claim2), ("pv", volume), ("pv", volume2), ("sc", cls), ("sc", fixed))


# -- the scheduler's VolumeBinding ----------------------------------------------------------


@pytest.fixture
def hollow_node(kubectl):
    name = _name("node")
    body = {"apiVersion": "v1", "kind": "Node",
            "metadata": {"name": name, "labels": {"kubernetes.io/hostname": name}},
            "status": {"capacity": {"cpu": "2", "memory": "4Gi", "pods": "110"},
                       "allocatable": {"cpu": "2", "memory": "4Gi", "pods": "110"},
                       "conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady"}]}}
    apply(kubectl, body)
    node = get(kubectl, "node", name, "")
    if not node["status"].get("conditions"):
        node["status"] = body["status"]
        kubectl("replace", "--subresource=status", "-f", "-", input=json.dumps(node))
    yield name
    kubectl.run("delete", "node", name, "--wait=false", check=False)


def pod_using(name, claim):
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
            "spec": {"containers": [{"name": "c", "image": "busybox"}],
                     "volumes": [{"name": "data", "persistentVolumeClaim": {"claimName": claim}}]}}


def scheduled_message(kubectl, pod):
    obj = get(kubectl, "pod", pod)
    for condition in (obj or {}).get("status", {}).get("conditions") or []:
        if condition["type"] == "PodScheduled" and condition["status"] == "False":
            return condition.get("message")
    return None


def test_pod_with_an_unbound_immediate_claim_is_unschedulable_until_it_binds(kubectl, hollow_node):
    claim, pod, volume = _name("later"), _name("waits"), _name("pv")
    apply(kubectl, pvc(claim, "1Gi"))
    apply(kubectl, pod_using(pod, claim))
    try:
        message = wait_for(lambda: scheduled_message(kubectl, pod), what="FailedScheduling")
        assert message == ("0/1 nodes are available: pod has unbound immediate PersistentVolumeClaims. "
                           "preemption: 0/1 nodes are available: 1 Preemption is not helpful for scheduling.")
        apply(kubectl, pv(volume, "1Gi"))
        wait_for(lambda: get(kubectl, "pod", pod)["spec"].get("nodeName") == hollow_node, what="pod scheduled")
    finally:
        kubectl.run("delete", "pod", pod, "--grace-period=0", "--force", check=False)
        cleanup(kubectl, ("pvc", claim), ("pv", volume))


def test_volume_node_affinity_decides_where_the_pod_goes(kubectl, hollow_node):
    claim, pod, volume = _name("pinned"), _name("follows"), _name("pv")
    apply(kubectl, pv(volume, affinity={"kiamol": "ch05"}))
    apply(kubectl, pvc(claim))
    wait_for(lambda: phase(kubectl, "pvc", claim) == "Bound")
    apply(kubectl, pod_using(pod, claim))
    try:
        message = wait_for(lambda: scheduled_message(kubectl, pod), what="FailedScheduling")
        assert message == ("0/1 nodes are available: 1 node(s) had volume node affinity conflict. "
                           "preemption: 0/1 nodes are available: 1 Preemption is not helpful for scheduling.")
        kubectl("label", "node", hollow_node, "kiamol=ch05")
        wait_for(lambda: get(kubectl, "pod", pod)["spec"].get("nodeName") == hollow_node, what="pod scheduled")
    finally:
        kubectl.run("delete", "pod", pod, "--grace-period=0", "--force", check=False)
        cleanup(kubectl, ("pvc", claim), ("pv", volume))


def test_wait_for_first_consumer_claim_is_provisioned_for_the_chosen_node(kubectl, hollow_node):
    claim, pod = _name("wffc"), _name("consumer")
    apply(kubectl, pvc(claim, "100Mi", cls=None))
    apply(kubectl, pod_using(pod, claim))
    try:
        selected = wait_for(lambda: (get(kubectl, "pvc", claim)["metadata"].get("annotations") or {}).get(
            "volume.kubernetes.io/selected-node"), what="selected-node annotation")
        assert selected == hollow_node
        annotations = wait_for(lambda: (a := get(kubectl, "pvc", claim)["metadata"].get("annotations") or {})
                               .get("volume.kubernetes.io/storage-provisioner") and a)
        assert annotations["volume.kubernetes.io/storage-provisioner"] == "pyk8s.io/local-path"
        wait_for(lambda: ("ExternalProvisioning", 'waiting for a volume to be created, either by external provisioner '
                          '"pyk8s.io/local-path" or manually created by system administrator') in events_for(kubectl, claim))
        assert not get(kubectl, "pod", pod)["spec"].get("nodeName")  # waits for its volume
        # what the node's provisioner does: a PV pre-bound to the claim, pinned to the node
        created = get(kubectl, "pvc", claim)
        volume = pv(f"pvc-{created['metadata']['uid']}", "100Mi", cls="local-path", reclaim="Delete",
                    affinity={"kubernetes.io/hostname": hollow_node},
                    claim_ref={"namespace": "default", "name": claim, "uid": created["metadata"]["uid"]})
        apply(kubectl, volume)
        wait_for(lambda: phase(kubectl, "pvc", claim) == "Bound", what="claim Bound")
        wait_for(lambda: get(kubectl, "pod", pod)["spec"].get("nodeName") == hollow_node, what="pod scheduled")
    finally:
        kubectl.run("delete", "pod", pod, "--grace-period=0", "--force", check=False)
        cleanup(kubectl, ("pvc", claim))


# -- the local-path provisioner, run here for a hollow node -----------------------------------

PVS = lookup("", "v1", "persistentvolumes")
PVCS = lookup("", "v1", "persistentvolumeclaims")
PODS = lookup("", "v1", "pods")
EVENTS = lookup("", "v1", "events")
STORAGE_CLASSES = lookup("storage.k8s.io", "v1", "storageclasses")
SELECTED_NODE = "volume.kubernetes.io/selected-node"


def run_async(server, scenario):
    async def main():
        async with Client.from_kubeconfig(server.kubeconfig) as client:
            await scenario(client)
    asyncio.run(main())


async def events_of(client, name: str) -> list[dict]:
    listed = await client.list(EVENTS, "default", fieldSelector=f"involvedObject.name={name}")
    return listed["items"]


def test_failed_provisioning_warns_reschedules_and_retries_until_the_directory_can_be_made(server, hollow_node,
                                                                                              tmp_path):
    """A node's provisioner that cannot make the claim's directory (a file is in the way)
    records ProvisioningFailed and clears `selected-node`, as upstream's external-provisioner;
    the scheduler's PreBind fails ("provisioning failed for PVC") and picks the node again
    after its back-off, and so on until the directory can be made. The provisioned PV carries
    the provisioner's finalizer, which goes only once the directory is gone: a directory
    that cannot be removed keeps even a deleted PV (VolumeFailedDelete, retried)."""
    provisioner_name = f"test.pyk8s.io/{_name('lp')}"
    cls, claim_name, pod_name = _name("failing"), _name("blocked"), _name("waits")
    storage = tmp_path / "storage"

    async def scenario(client):
        provisioner = LocalPathProvisioner(client, node_name=hollow_node, storage_dir=storage,
                                           provisioner=provisioner_name)
        await provisioner.start()
        history: list[tuple[str, dict]] = []  # (kind, object) as the watches saw them
        ready = asyncio.Event()

        async def record(resource, kind):
            listed = await client.list(resource, "default" if resource is PVCS else None)
            ready.set()
            async for event in client.watch(resource, "default" if resource is PVCS else None,
                                            resource_version=listed["metadata"]["resourceVersion"]):
                obj = event["object"]
                if event["type"] in ("ADDED", "MODIFIED", "DELETED") and obj["metadata"]["name"] in (claim_name, volume_name[0]):
                    history.append((kind, obj, None))
        volume_name, directory = [""], []
        watchers = [asyncio.create_task(record(PVCS, "claim"))]
        await ready.wait()
        try:
            await client.create(STORAGE_CLASSES, {
                "apiVersion": "storage.k8s.io/v1", "kind": "StorageClass", "metadata": {"name": cls},
                "provisioner": provisioner_name, "volumeBindingMode": "WaitForFirstConsumer",
                "reclaimPolicy": "Delete"})
            claim = await client.create(PVCS, pvc(claim_name, "10Mi", cls=cls), "default")
            volume_name[0] = f"pvc-{claim['metadata']['uid']}"
            directory.append(f"{volume_name[0]}_default_{claim_name}")
            storage.mkdir(parents=True, exist_ok=True)
            blocker = storage / directory[0]
            blocker.write_text("in the way\n")
            await client.create(PODS, pod_using(pod_name, claim_name), "default")

            def failures():
                return [e for e in events if e["reason"] == "ProvisioningFailed"]
            events: list[dict] = []

            async def failed_twice():
                events[:] = await events_of(client, claim_name)
                return sum(e.get("count", 1) for e in failures()) >= 2
            await eventually_async(failed_twice, 30, what="two failed provisioning attempts")
            failed = failures()[0]
            assert failed["type"] == "Warning"
            assert failed["message"] == (f'failed to provision volume with StorageClass "{cls}": '
                                         f"mkdir {blocker}: file exists")
            assert failed["source"]["component"] == f"{provisioner_name}_{hollow_node}"
            # selected-node was set by the scheduler, cleared by the provisioner, set again
            selected = [(obj["metadata"].get("annotations") or {}).get(SELECTED_NODE)
                        for kind, obj, _ in history if kind == "claim"]
            first = selected.index(hollow_node)
            assert None in selected[first:] and hollow_node in selected[selected.index(None, first):]
            prebind = f'running PreBind plugin "VolumeBinding": binding volumes: provisioning failed for PVC "{claim_name}"'

            async def prebind_failed():
                return prebind in [e["message"] for e in await events_of(client, pod_name)
                                   if e["reason"] == "FailedScheduling" and e["type"] == "Warning"]
            await eventually_async(prebind_failed, 10, what="the scheduler's FailedScheduling event")
            assert not (await client.get(PODS, pod_name, "default"))["spec"].get("nodeName")

            blocker.unlink()  # the cause goes: a later attempt succeeds
            await eventually_async(lambda: _bound_pod(client, pod_name), 30, what="pod scheduled once provisioned")
            claim = await client.get(PVCS, claim_name, "default")
            assert claim["status"]["phase"] == "Bound" and claim["spec"]["volumeName"] == volume_name[0]
            assert claim["metadata"]["annotations"][SELECTED_NODE] == hollow_node
            assert (storage / directory[0]).is_dir()
            volume = await client.get(PVS, volume_name[0])
            assert volume["metadata"]["finalizers"] == ["external-provisioner.volume.kubernetes.io/finalizer",
                                                        "kubernetes.io/pv-protection"]
            assert "ProvisioningSucceeded" in [e["reason"] for e in await events_of(client, claim_name)]

            # reclaim Delete: the PV outlives its directory. A mount inside the directory keeps
            # it from being removed: the PV stays, even deleted by hand, until it can be.
            busy = storage / directory[0] / "busy"
            busy.mkdir()
            subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(busy)], check=True)
            try:
                await client.delete(PODS, pod_name, "default", grace_period_seconds=0)
                await client.delete(PVCS, claim_name, "default")

                async def failed_delete():
                    return [e for e in await events_of(client, volume_name[0]) if e["reason"] == "VolumeFailedDelete"]
                [failure] = await eventually_async(failed_delete, 30, what="VolumeFailedDelete")
                assert failure["type"] == "Warning" and failure["message"] == f"unlinkat {busy}: device or resource busy"
                await client.delete(PVS, volume_name[0])
                await asyncio.sleep(1.5)  # a retry or two
                volume = await client.get(PVS, volume_name[0])
                assert volume["metadata"].get("deletionTimestamp") and volume["status"]["phase"] == "Released"
                assert volume["metadata"]["finalizers"] == ["external-provisioner.volume.kubernetes.io/finalizer"]
                assert (storage / directory[0]).is_dir()
            finally:
                subprocess.run(["umount", "-l", str(busy)], capture_output=True)

            async def volume_gone():
                try:
                    await client.get(PVS, volume_name[0])
                except errors.NotFound:
                    return True
                return False
            await eventually_async(volume_gone, 30, what="provisioned PV deleted once its directory could go")
            assert not (storage / directory[0]).exists()
        finally:
            for task in watchers:
                task.cancel()
            await asyncio.gather(*watchers, return_exceptions=True)
            await provisioner.stop()
            await _delete_pod_claim_and_class(client, pod_name, claim_name, cls)

    run_async(server, scenario)


async def _delete_pod_claim_and_class(client, pod_name: str, claim_name: str, class_name: str) -> None:
    for resource, name, namespace in ((PODS, pod_name, "default"), (PVCS, claim_name, "default"),
                                      (STORAGE_CLASSES, class_name, None)):
        try:
            await client.delete(resource, name, namespace, grace_period_seconds=0 if resource is PODS else None)
        except errors.NotFound:
            pass


async def _bound_pod(client, name: str) -> bool:
    pod = await client.get(PODS, name, "default")
    return bool(pod["spec"].get("nodeName"))


def test_claim_of_no_class_gets_the_default_class_once_one_exists(kubectl):
    """upstream's retroactive default StorageClass: a claim created while no class is the
    default keeps no class until one becomes the default; then the PV controller writes it
    in. An explicit "" stays "", and a class once set cannot change."""
    claim, explicit, cls = _name("classless"), _name("noclass"), _name("newdefault")
    kubectl("annotate", "sc", "local-path", "storageclass.kubernetes.io/is-default-class=false", "--overwrite")
    try:
        apply(kubectl, pvc(claim, cls=None))
        apply(kubectl, pvc(explicit, cls=""))
        assert "storageClassName" not in get(kubectl, "pvc", claim)["spec"]
        wait_for(lambda: ("FailedBinding", "no persistent volumes available for this claim and no storage class is set")
                 in events_for(kubectl, claim), what="FailedBinding while there is no default")
        apply(kubectl, {"apiVersion": "storage.k8s.io/v1", "kind": "StorageClass",
                        "metadata": {"name": cls, "annotations": {"storageclass.kubernetes.io/is-default-class": "true"}},
                        "provisioner": "example.com/none", "volumeBindingMode": "WaitForFirstConsumer"})
        wait_for(lambda: get(kubectl, "pvc", claim)["spec"].get("storageClassName") == cls,
                 what="the default class written into the claim")
        wait_for(lambda: ("WaitForFirstConsumer", "waiting for first consumer to be created before binding")
                 in events_for(kubectl, claim), what="the claim handled as one of its new class")
        assert get(kubectl, "pvc", explicit)["spec"]["storageClassName"] == ""
        refused = kubectl.run("patch", "pvc", claim, "-p", '{"spec":{"storageClassName":"local-path"}}', check=False)
        assert refused.returncode != 0 and "spec is immutable after creation" in refused.stderr
    finally:
        cleanup(kubectl, ("pvc", claim), ("pvc", explicit), ("sc", cls))
        kubectl("annotate", "sc", "local-path", "storageclass.kubernetes.io/is-default-class=true", "--overwrite")


def test_node_provisioner_that_may_not_change_the_claim_retries_on_its_node_with_back_off(server, hollow_node,
                                                                                          tmp_path):
    """The provisioner as the node agent runs it, with the node's credentials: NodeRestriction
    refuses it the claim update that would hand the claim back to the scheduler, so it keeps
    `selected-node` and retries on its node, each wait longer than the last (1 s doubling),
    until the directory can be made."""
    from pyk8s.cluster.pki import client_ssl_context, ensure_pki, issue_client_cert

    pki = ensure_pki(server.data_dir / "server" / "tls", [])
    cert, key = issue_client_cert(pki, f"system:node:{hollow_node}", ["system:nodes"], tmp_path / "certs")
    provisioner_name = f"test.pyk8s.io/{_name('node')}"
    cls, claim_name, pod_name = _name("nodeside"), _name("blocked"), _name("waits")
    storage = tmp_path / "storage"

    async def scenario(admin):
        node = Client(server.url, client_ssl_context(pki, cert, key), field_manager="provisioner")
        provisioner = LocalPathProvisioner(node, node_name=hollow_node, storage_dir=storage,
                                           provisioner=provisioner_name)
        attempts: list[float] = []
        provision = provisioner._provision

        async def counted(key):
            if key == f"default/{claim_name}":
                attempts.append(asyncio.get_running_loop().time())
            return await provision(key)
        provisioner._provision = counted
        await provisioner.start()
        try:
            await admin.create(STORAGE_CLASSES, {
                "apiVersion": "storage.k8s.io/v1", "kind": "StorageClass", "metadata": {"name": cls},
                "provisioner": provisioner_name, "volumeBindingMode": "WaitForFirstConsumer"})
            claim = await admin.create(PVCS, pvc(claim_name, "10Mi", cls=cls), "default")
            storage.mkdir(parents=True, exist_ok=True)
            blocker = storage / f"pvc-{claim['metadata']['uid']}_default_{claim_name}"
            blocker.write_text("in the way\n")
            await admin.create(PODS, pod_using(pod_name, claim_name), "default")
            await eventually_async(lambda: len(attempts) >= 4, 30, what="four provisioning attempts")
            gaps = [later - earlier for earlier, later in zip(attempts[1:], attempts[2:4])]
            assert 0.8 <= gaps[0] and gaps[1] >= 1.5 * gaps[0], attempts  # backing off
            claim = await admin.get(PVCS, claim_name, "default")
            assert claim["metadata"]["annotations"][SELECTED_NODE] == hollow_node  # never cleared
            failed = [e for e in await events_of(admin, claim_name) if e["reason"] == "ProvisioningFailed"]
            assert failed and failed[0]["message"] == (f'failed to provision volume with StorageClass "{cls}": '
                                                       f"mkdir {blocker}: file exists")
            blocker.unlink()
            await eventually_async(lambda: _bound_pod(admin, pod_name), 30, what="pod scheduled once provisioned")
            claim = await admin.get(PVCS, claim_name, "default")
            assert claim["status"]["phase"] == "Bound"
            assert (await admin.get(PVS, claim["spec"]["volumeName"]))["metadata"]["annotations"][
                "pv.kubernetes.io/provisioned-by"] == provisioner_name
            # as the node, it also removes the directory, the PV and its finalizer
            await admin.delete(PODS, pod_name, "default", grace_period_seconds=0)
            await admin.delete(PVCS, claim_name, "default")

            async def volume_gone():
                try:
                    await admin.get(PVS, claim["spec"]["volumeName"])
                except errors.NotFound:
                    return True
                return False
            await eventually_async(volume_gone, 30, what="provisioned PV deleted")
            assert not list(storage.iterdir())
        finally:
            await provisioner.stop()
            await node.close()
            await _delete_pod_claim_and_class(admin, pod_name, claim_name, cls)

    run_async(server, scenario)
