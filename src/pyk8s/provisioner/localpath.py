"""LocalPathProvisioner: see the package docstring."""

from __future__ import annotations

import asyncio
import copy
import hashlib
import logging
import os
import shutil
from pathlib import Path
from typing import Any

from pyk8s.api import errors
from pyk8s.api import volumebinding as vb
from pyk8s.api.resources import lookup
from pyk8s.client.events import EventRecorder
from pyk8s.client.informer import Informer, object_key
from pyk8s.client.workqueue import WorkQueue

log = logging.getLogger("pyk8s.provisioner")

PROVISIONER_NAME = "pyk8s.io/local-path"
ANN_NODE = "pyk8s.io/local-path-node"  # which node's disk holds the directory
HOSTNAME_LABEL = "kubernetes.io/hostname"
# upstream external-provisioner's finalizer: a Delete volume's PV outlives its directory
FINALIZER = "external-provisioner.volume.kubernetes.io/finalizer"
# Retry delays after a failed provisioning or deletion (csi-provisioner's
# --retry-interval-start and --retry-interval-max defaults).
RETRY_START = 1.0
RETRY_MAX = 300.0

PVS = lookup("", "v1", "persistentvolumes")
PVCS = lookup("", "v1", "persistentvolumeclaims")
STORAGE_CLASSES = lookup("storage.k8s.io", "v1", "storageclasses")
NODES = lookup("", "v1", "nodes")


def _node_ready(node: dict[str, Any]) -> bool:
    return any(c.get("type") == "Ready" and c.get("status") == "True"
               for c in (node.get("status") or {}).get("conditions") or ())


def immediate_node(claim_uid: str, ready_nodes: list[str]) -> str | None:
    """The node that provisions a claim of an Immediate class: the same answer on every
    node, so exactly one provisions it."""
    if not ready_nodes:
        return None
    digest = int.from_bytes(hashlib.sha256(claim_uid.encode()).digest()[:8], "big")
    return sorted(ready_nodes)[digest % len(ready_nodes)]


def volume_directory_name(claim: dict[str, Any]) -> str:
    meta = claim["metadata"]
    return f"pvc-{meta['uid']}_{meta.get('namespace')}_{meta['name']}"


def provisioned_volume(claim: dict[str, Any], storage_class: dict[str, Any], node_name: str, path: str,
                       provisioner: str = PROVISIONER_NAME) -> dict[str, Any]:
    """The PV for a claim, as an external provisioner makes it: named after the claim's uid,
    pre-bound to the claim, reachable only from `node_name`."""
    spec = claim.get("spec") or {}
    volume_spec: dict[str, Any] = {
        "capacity": {"storage": ((spec.get("resources") or {}).get("requests") or {}).get("storage")},
        "accessModes": list(spec.get("accessModes") or ["ReadWriteOnce"]),
        "persistentVolumeReclaimPolicy": storage_class.get("reclaimPolicy") or "Delete",
        "storageClassName": storage_class["metadata"]["name"],
        "volumeMode": spec.get("volumeMode") or "Filesystem",
        "hostPath": {"path": path, "type": "DirectoryOrCreate"},
        "nodeAffinity": {"required": {"nodeSelectorTerms": [{"matchExpressions": [
            {"key": HOSTNAME_LABEL, "operator": "In", "values": [node_name]}]}]}},
        "claimRef": vb.claim_reference(claim),
    }
    if storage_class.get("mountOptions"):
        volume_spec["mountOptions"] = list(storage_class["mountOptions"])
    metadata: dict[str, Any] = {"name": f"pvc-{claim['metadata']['uid']}",
                                "annotations": {vb.ANN_DYNAMICALLY_PROVISIONED: provisioner, ANN_NODE: node_name}}
    if volume_spec["persistentVolumeReclaimPolicy"] == "Delete":
        metadata["finalizers"] = [FINALIZER]
    return {"apiVersion": "v1", "kind": "PersistentVolume", "metadata": metadata, "spec": volume_spec}


def failure_message(exc: BaseException, operation: str = "mkdir") -> str:
    """A file system error as a Go provisioner words it (`mkdir <path>: file exists`)."""
    if isinstance(exc, OSError) and exc.strerror and exc.filename:
        return f"{operation} {exc.filename}: {exc.strerror[:1].lower()}{exc.strerror[1:]}"
    return str(exc)


class LocalPathProvisioner:
    def __init__(self, client, *, node_name: str, storage_dir: Path, provisioner: str = PROVISIONER_NAME):
        self.client = client
        self.node_name = node_name
        self.storage_dir = Path(storage_dir)
        self.provisioner = provisioner
        self.recorder = EventRecorder(client, f"{provisioner}_{node_name}", host=node_name)
        self.claims = Informer(client, PVCS)
        self.volumes = Informer(client, PVS)
        self.classes = Informer(client, STORAGE_CLASSES)
        self.nodes = Informer(client, NODES)
        self.queue = WorkQueue(base_delay=RETRY_START, max_delay=RETRY_MAX)
        self._tasks: list[asyncio.Task] = []
        self.claims.add_handlers(on_add=self._claim_changed, on_update=lambda old, new: self._claim_changed(new))
        self.volumes.add_handlers(on_add=self._volume_changed, on_update=lambda old, new: self._volume_changed(new))
        self.classes.add_handlers(on_add=self._requeue_claims, on_update=lambda old, new: self._requeue_claims(new))
        self.nodes.add_handlers(on_add=self._requeue_claims, on_update=self._node_updated)

    # -- lifecycle --------------------------------------------------------------------

    async def start(self) -> None:
        self.storage_dir.mkdir(parents=True, exist_ok=True)
        for informer in (self.claims, self.volumes, self.classes, self.nodes):
            self._tasks.append(asyncio.create_task(informer.run(), name=f"provisioner-{informer.resource.plural}"))
        self._tasks.append(asyncio.create_task(self._worker(), name="provisioner-worker"))

    async def stop(self) -> None:
        self.queue.shut_down()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks.clear()

    # -- handlers -----------------------------------------------------------------------

    def _claim_changed(self, claim: dict[str, Any]) -> None:
        if (claim["metadata"].get("annotations") or {}).get(vb.ANN_STORAGE_PROVISIONER) == self.provisioner \
                and not (claim.get("spec") or {}).get("volumeName"):
            self.queue.add("claim:" + object_key(claim))

    def _volume_changed(self, volume: dict[str, Any]) -> None:
        if self._is_mine(volume):
            self.queue.add("volume:" + volume["metadata"]["name"])

    def _is_mine(self, volume: dict[str, Any]) -> bool:
        """A volume this provisioner made on this node's disk."""
        annotations = volume["metadata"].get("annotations") or {}
        return annotations.get(vb.ANN_DYNAMICALLY_PROVISIONED) == self.provisioner \
            and annotations.get(ANN_NODE) == self.node_name

    def _requeue_claims(self, _obj: dict[str, Any]) -> None:
        for claim in self.claims.list():
            self._claim_changed(claim)

    def _node_updated(self, old: dict[str, Any], new: dict[str, Any]) -> None:
        if _node_ready(old) != _node_ready(new):
            self._requeue_claims(new)

    # -- work -----------------------------------------------------------------------------

    async def _worker(self) -> None:
        for informer in (self.claims, self.volumes, self.classes, self.nodes):
            await informer.synced.wait()
        while True:
            key = await self.queue.get()
            try:
                kind, _, name = key.partition(":")
                if kind == "claim":
                    await self._provision(name)
                else:
                    await self._sync_volume(name)
                self.queue.forget(key)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - retried with back-off
                log.warning("provisioner: %s failed: %s", key, exc, exc_info=not isinstance(exc, errors.ApiError))
                self.queue.add_rate_limited(key)
            finally:
                self.queue.done(key)

    def _target_node(self, claim: dict[str, Any], storage_class: dict[str, Any]) -> str | None:
        selected = (claim["metadata"].get("annotations") or {}).get(vb.ANN_SELECTED_NODE)
        if selected:
            return selected
        if storage_class.get("volumeBindingMode") == vb.WAIT_FOR_FIRST_CONSUMER:
            return None  # the scheduler has not picked a node yet
        ready = [node["metadata"]["name"] for node in self.nodes.list()
                 if _node_ready(node) and not (node.get("spec") or {}).get("unschedulable")]
        return immediate_node(claim["metadata"]["uid"], ready)

    async def _provision(self, key: str) -> None:
        claim = self.claims.get(key)
        if claim is None or claim["metadata"].get("deletionTimestamp") or (claim.get("spec") or {}).get("volumeName"):
            return
        if (claim["metadata"].get("annotations") or {}).get(vb.ANN_STORAGE_PROVISIONER) != self.provisioner:
            return
        storage_class = self.classes.get(vb.claim_class(claim))
        if storage_class is None or storage_class.get("provisioner") != self.provisioner:
            return
        if self._target_node(claim, storage_class) != self.node_name:
            return
        volume_name = f"pvc-{claim['metadata']['uid']}"
        if self.volumes.get(volume_name) is not None:
            return
        await self.recorder.event(claim, "Normal", "Provisioning",
                                  f'External provisioner is provisioning volume for claim "{key}"')
        path = self.storage_dir / volume_directory_name(claim)
        try:
            await asyncio.to_thread(_make_directory, path)
            volume = provisioned_volume(claim, storage_class, self.node_name, str(path), self.provisioner)
            try:
                await self.client.create(PVS, volume)
            except errors.AlreadyExists:
                return  # made by an earlier attempt of ours
        except Exception as exc:
            await self.recorder.event(claim, "Warning", "ProvisioningFailed",
                                      f'failed to provision volume with StorageClass "{storage_class["metadata"]["name"]}": '
                                      f"{failure_message(exc)}")
            if await self._reschedule(claim):
                return  # the scheduler picks a node again, which brings the claim back
            raise  # retried here, with back-off
        await self.recorder.event(claim, "Normal", "ProvisioningSucceeded", f"Successfully provisioned volume {volume_name}")

    async def _reschedule(self, claim: dict[str, Any]) -> bool:
        """upstream external-provisioner's rescheduleProvisioning: a claim the scheduler sent
        here (`selected-node`) gets the annotation removed, so the scheduler chooses again.
        False when there is none, or this identity may not change the claim (a node's
        credentials under NodeRestriction): then the provisioning is retried on this node."""
        annotations = claim["metadata"].get("annotations") or {}
        if vb.ANN_SELECTED_NODE not in annotations:
            return False
        updated = copy.deepcopy(claim)
        del updated["metadata"]["annotations"][vb.ANN_SELECTED_NODE]
        try:
            await self.client.update(PVCS, updated)
        except errors.Forbidden as exc:
            log.info("provisioner: cannot reschedule %s (%s): retrying on this node", object_key(claim), exc)
            return False
        except errors.NotFound:
            return True
        return True

    async def _sync_volume(self, name: str) -> None:
        volume = self.volumes.get(name)
        if volume is None or not self._is_mine(volume):
            return
        volume = await self._keep_finalizer(volume)
        spec = volume.get("spec") or {}
        finalizers = volume["metadata"].get("finalizers") or []
        # upstream shouldDelete: Released with reclaim Delete, unless a deleted PV has already
        # lost our finalizer (its directory is gone).
        if (volume.get("status") or {}).get("phase") != vb.VOLUME_RELEASED \
                or spec.get("persistentVolumeReclaimPolicy") != "Delete" \
                or (volume["metadata"].get("deletionTimestamp") and FINALIZER not in finalizers):
            return
        path = Path((spec.get("hostPath") or {}).get("path") or "")
        try:
            await asyncio.to_thread(self._remove_directory, path)
        except OSError as exc:
            await self.recorder.event(volume, "Warning", "VolumeFailedDelete", failure_message(exc, "unlinkat"))
            raise
        try:
            await self.client.delete(PVS, name)
        except errors.NotFound:
            return
        # The directory is gone: our finalizer goes, and with it (once nothing else holds
        # it) the PV.
        try:
            current = await self.client.get(PVS, name)
        except errors.NotFound:
            return
        await self._set_finalizer(current, present=False)

    async def _keep_finalizer(self, volume: dict[str, Any]) -> dict[str, Any]:
        """upstream handleProtectionFinalizer: a Bound Delete volume carries our finalizer
        (volumes made before it existed get it too); a volume switched to Retain or Recycle
        loses it."""
        policy = (volume.get("spec") or {}).get("persistentVolumeReclaimPolicy")
        finalizers = volume["metadata"].get("finalizers") or []
        if policy == "Delete" and FINALIZER not in finalizers and not volume["metadata"].get("deletionTimestamp") \
                and (volume.get("status") or {}).get("phase") == vb.VOLUME_BOUND:
            return await self._set_finalizer(volume, present=True)
        if policy in ("Retain", "Recycle") and FINALIZER in finalizers:
            return await self._set_finalizer(volume, present=False)
        return volume

    async def _set_finalizer(self, volume: dict[str, Any], *, present: bool) -> dict[str, Any]:
        finalizers = [f for f in volume["metadata"].get("finalizers") or [] if f != FINALIZER]
        if present:
            finalizers.append(FINALIZER)
        updated = copy.deepcopy(volume)
        updated["metadata"]["finalizers"] = finalizers
        try:
            return await self.client.update(PVS, updated)
        except errors.NotFound:
            return volume

    def _remove_directory(self, path: Path) -> None:
        # Only what this provisioner made: a directory right under its storage dir.
        if path.parent != self.storage_dir or not path.name.startswith("pvc-"):
            raise OSError(f"refusing to remove {path}: not a directory this provisioner made")
        if path.exists():
            shutil.rmtree(path, onerror=_raise_with_full_path)


def _raise_with_full_path(_function, path: str, exc_info) -> None:
    error = exc_info[1]
    if isinstance(error, OSError):
        raise OSError(error.errno, error.strerror, path) from error
    raise error


def _make_directory(path: Path) -> None:
    path.mkdir(parents=True, exist_ok=True)
    os.chmod(path, 0o777)  # as k3s's local-path: any container user may write
