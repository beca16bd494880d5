"""Persistent volume controllers (upstream pkg/controller/volume): the PV/PVC binder, the
expander, and the two StorageObjectInUseProtection controllers.

Binder (upstream's PersistentVolumeController): informers on PersistentVolumes, claims and
StorageClasses feed one work queue of `claim:<ns>/<name>` and `volume:<name>` keys.
- A claim without `pv.kubernetes.io/bind-completed` is matched (api/volumebinding.py) and
  bound: the PV gets `claimRef` (and `bound-by-controller` unless it was pre-bound) and
  phase Bound, then the claim gets `volumeName`, the two annotations and status Bound with
  the PV's capacity and access modes. No match: a WaitForFirstConsumer claim waits for the
  scheduler's `volume.kubernetes.io/selected-node`; a claim of a class is handed to the
  class's provisioner (annotation `volume.kubernetes.io/storage-provisioner`, event
  ExternalProvisioning: every provisioner here is external, like upstream's CSI ones); a
  claim of no class waits for a PV (FailedBinding). Pending claims are synced again every
  15 s, as upstream's resync, so their events repeat with a count.
- A claim that names no class (no `storageClassName`, not even "") and finds no volume gets
  the default StorageClass as soon as one exists (upstream's retroactive default class).
- A bound claim whose PV is gone or bound elsewhere is Lost.
- A volume whose claim is gone is Released, then reclaimed: Retain keeps it; Delete of a
  provisioned volume is its provisioner's job (it removes the directory and the PV); Delete
  or Recycle of a hand-made volume fails (no plugin can delete a local or hostPath volume).
- Expansion: a bound claim of a class with `allowVolumeExpansion` that asks for more than its
  PV has grows the PV, then the claim's status capacity (local directories have no size to
  change, so no filesystem resize step).
Several workers bind at once: a volume picked for a claim is reserved until the write that
binds it has been seen, and every write is compare-and-swap, so two claims never get the
same volume.

Protection (upstream pvcprotection and pvprotection): a claim marked for deletion keeps
`kubernetes.io/pvc-protection` while a scheduled, running pod uses it; a PV keeps
`kubernetes.io/pv-protection` while it is Bound. The API server adds both finalizers at
create (StorageObjectInUseProtection admission); these controllers add them to objects that
lack them too.
"""

from __future__ import annotations

import copy
import logging
import time
from typing import Any

from pyk8s.api import errors
from pyk8s.api import volumebinding as vb
from pyk8s.api.resources import lookup
from pyk8s.client.events import EventRecorder
from pyk8s.client.informer import object_key
from pyk8s.controllers.base import Controller, Requeue, split_key

log = logging.getLogger("pyk8s.controllers.persistentvolume")

PVS = lookup("", "v1", "persistentvolumes")
PVCS = lookup("", "v1", "persistentvolumeclaims")
STORAGE_CLASSES = lookup("storage.k8s.io", "v1", "storageclasses")
PODS = lookup("", "v1", "pods")

RESYNC_PERIOD = 15.0  # upstream's PV controller sync period

MSG_NO_CLASS = "no persistent volumes available for this claim and no storage class is set"
MSG_WAIT_FOR_CONSUMER = "waiting for first consumer to be created before binding"


def external_provisioning_message(provisioner: str) -> str:
    return (f'waiting for a volume to be created, either by external provisioner "{provisioner}" '
            f"or manually created by system administrator")


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def _rv(obj: dict[str, Any] | None) -> int:
    try:
        return int((obj or {}).get("metadata", {}).get("resourceVersion") or 0)
    except ValueError:
        return 0


def _annotations(obj: dict[str, Any]) -> dict[str, str]:
    return obj["metadata"].get("annotations") or {}


def _phase(obj: dict[str, Any]) -> str:
    return (obj.get("status") or {}).get("phase") or ""


class PersistentVolumeController(Controller):
    name = "persistentvolume-controller"
    workers = 16

    def __init__(self, client):
        super().__init__(client)
        self.volumes = self.informer(PVS)
        self.claims = self.informer(PVCS)
        self.classes = self.informer(STORAGE_CLASSES)
        self.recorder = EventRecorder(client, self.name)
        self.index = vb.VolumeIndex()
        # volume name -> claim key: picked for a claim, binding write not yet seen.
        self._reserved: dict[str, str] = {}
        # Our own latest claim writes, newer than the informer until it catches up.
        self._claim_writes: dict[str, dict[str, Any]] = {}
        # Unbound claims that found no volume, by class: a new volume wakes them at once
        # (upstream waits for its 15 s resync).
        self._waiting: dict[str, set[str]] = {}
        self.volumes.add_handlers(on_add=self._volume_changed, on_update=lambda old, new: self._volume_changed(new),
                                  on_delete=self._volume_deleted)
        self.claims.add_handlers(on_add=self._claim_changed, on_update=lambda old, new: self._claim_changed(new),
                                 on_delete=self._claim_deleted)
        self.classes.add_handlers(on_add=self._class_changed, on_update=lambda old, new: self._class_changed(new))

    # -- handlers -------------------------------------------------------------------

    def _volume_changed(self, volume: dict[str, Any]) -> None:
        current = self.index.get(volume["metadata"]["name"])
        if current is None or _rv(volume) >= _rv(current):
            self.index.put(volume)
        self.queue.add("volume:" + volume["metadata"]["name"])
        ref = (volume.get("spec") or {}).get("claimRef")
        if ref and ref.get("namespace") and ref.get("name"):
            self.queue.add(f"claim:{ref['namespace']}/{ref['name']}")
        elif not ref and _phase(volume) in (vb.VOLUME_AVAILABLE, vb.VOLUME_PENDING, ""):
            for key in self._waiting.get(vb.volume_class(volume), ()):
                self.queue.add("claim:" + key)

    def _volume_deleted(self, volume: dict[str, Any]) -> None:
        name = volume["metadata"]["name"]
        self.index.remove(name)
        self._reserved.pop(name, None)
        ref = (volume.get("spec") or {}).get("claimRef")
        if ref and ref.get("namespace") and ref.get("name"):
            self.queue.add(f"claim:{ref['namespace']}/{ref['name']}")
        # A deleted volume may have been what kept other claims from matching: nothing to do;
        # one that freed capacity does not exist (volumes are 1:1).

    def _claim_changed(self, claim: dict[str, Any]) -> None:
        key = object_key(claim)
        mine = self._claim_writes.get(key)
        if mine is not None and _rv(claim) >= _rv(mine):
            del self._claim_writes[key]
        self.queue.add("claim:" + key)
        volume_name = (claim.get("spec") or {}).get("volumeName")
        if volume_name:
            self.queue.add("volume:" + volume_name)

    def _claim_deleted(self, claim: dict[str, Any]) -> None:
        key = object_key(claim)
        self._claim_writes.pop(key, None)
        self._stop_waiting(key)
        for name, holder in list(self._reserved.items()):
            if holder == key:
                del self._reserved[name]
        volume_name = (claim.get("spec") or {}).get("volumeName")
        if volume_name:
            self.queue.add("volume:" + volume_name)
        for name in self.index._prebound.get((claim["metadata"].get("namespace") or "", claim["metadata"]["name"]), ()):
            self.queue.add("volume:" + name)

    def _stop_waiting(self, key: str) -> None:
        for keys in self._waiting.values():
            keys.discard(key)

    def _class_changed(self, storage_class: dict[str, Any]) -> None:
        name = storage_class["metadata"]["name"]
        default = vb.is_default_class(storage_class)
        for claim in self.claims.list():
            if _phase(claim) == vb.CLAIM_BOUND:
                continue
            if vb.claim_class(claim) == name or (default and not vb.claim_names_class(claim)):
                self.queue.add("claim:" + object_key(claim))

    # -- reads ------------------------------------------------------------------------

    def _claim(self, key: str) -> dict[str, Any] | None:
        cached = self.claims.get(key)
        mine = self._claim_writes.get(key)
        if mine is not None and (cached is None or _rv(mine) > _rv(cached)):
            return mine if cached is not None else None
        return cached

    def _class(self, name: str) -> dict[str, Any] | None:
        return self.classes.get(name) if name else None

    # -- reconcile --------------------------------------------------------------------

    async def reconcile(self, key: str) -> None:
        kind, _, name = key.partition(":")
        if kind == "claim":
            await self._sync_claim(name)
        else:
            await self._sync_volume(name)

    # claims

    async def _sync_claim(self, key: str) -> None:
        claim = self._claim(key)
        if claim is None:
            return
        if vb.ANN_BIND_COMPLETED not in _annotations(claim):
            await self._sync_unbound_claim(key, claim)
        else:
            await self._sync_bound_claim(key, claim)

    async def _sync_unbound_claim(self, key: str, claim: dict[str, Any]) -> None:
        spec = claim.get("spec") or {}
        volume_name = spec.get("volumeName")
        if not volume_name:
            class_name = vb.claim_class(claim)
            storage_class = self._class(class_name)
            delay = bool(storage_class) and storage_class.get("volumeBindingMode") == vb.WAIT_FOR_FIRST_CONSUMER
            excluded = {name for name, holder in self._reserved.items() if holder != key}
            volume = self.index.find(claim, delay_binding=delay, excluded=excluded)
            if volume is None and await self._assign_default_class(key, claim):
                return  # the claim's update brings it back, now of the default class
            if volume is None:
                self._waiting.setdefault(class_name, set()).add(key)
                await self._no_volume_for(claim, class_name, storage_class, delay)
                raise Requeue(RESYNC_PERIOD)
            self._stop_waiting(key)
            self._reserved[volume["metadata"]["name"]] = key
            try:
                await self._bind(key, volume, claim)
            finally:
                self._reserved.pop(volume["metadata"]["name"], None)
            return
        volume = self.index.get(volume_name)
        if volume is None:
            # The user asked for a volume that does not exist (yet): wait for it.
            await self._set_claim_phase(key, claim, vb.CLAIM_PENDING)
            raise Requeue(RESYNC_PERIOD)
        ref = (volume.get("spec") or {}).get("claimRef")
        if not ref:
            mismatch = vb.check_volume_satisfies_claim(volume, claim)
            if mismatch:
                await self.recorder.event(claim, "Warning", "VolumeMismatch",
                                          f'Cannot bind to requested volume "{volume_name}": {mismatch}')
                await self._set_claim_phase(key, claim, vb.CLAIM_PENDING)
                raise Requeue(RESYNC_PERIOD)
            await self._bind(key, volume, claim)
        elif vb.is_volume_bound_to_claim(volume, claim):
            await self._bind(key, volume, claim)
        elif vb.ANN_BOUND_BY_CONTROLLER not in _annotations(claim):
            await self.recorder.event(claim, "Warning", "FailedBinding",
                                      f'volume "{volume_name}" already bound to a different claim.')
            await self._set_claim_phase(key, claim, vb.CLAIM_PENDING)
            raise Requeue(RESYNC_PERIOD)

    async def _assign_default_class(self, key: str, claim: dict[str, Any]) -> bool:
        """upstream assignDefaultStorageClass (retroactive default StorageClass): a claim that
        names no class and found no volume gets the default class once there is one."""
        if vb.claim_names_class(claim) or claim["metadata"].get("deletionTimestamp"):
            return False
        default = vb.default_class(self.classes.list())
        if default is None:
            return False
        updated = copy.deepcopy(claim)
        updated.setdefault("spec", {})["storageClassName"] = default["metadata"]["name"]
        try:
            await self._write_claim(key, updated)
        except errors.NotFound:
            return True
        self._stop_waiting(key)
        return True

    async def _no_volume_for(self, claim: dict[str, Any], class_name: str, storage_class: dict[str, Any] | None,
                             delay: bool) -> None:
        key = object_key(claim)
        selected = vb.ANN_SELECTED_NODE in _annotations(claim)
        if delay and not selected:
            await self.recorder.event(claim, "Normal", "WaitForFirstConsumer", MSG_WAIT_FOR_CONSUMER)
        elif class_name:
            if storage_class is None:
                await self.recorder.event(claim, "Warning", "ProvisioningFailed",
                                          f'storageclass.storage.k8s.io "{class_name}" not found')
            elif not claim["metadata"].get("deletionTimestamp"):
                provisioner = storage_class.get("provisioner") or ""
                claim = await self._set_provisioner(key, claim, provisioner)
                await self.recorder.event(claim, "Normal", "ExternalProvisioning",
                                          external_provisioning_message(provisioner))
        else:
            await self.recorder.event(claim, "Normal", "FailedBinding", MSG_NO_CLASS)
        await self._set_claim_phase(key, claim, vb.CLAIM_PENDING)

    async def _set_provisioner(self, key: str, claim: dict[str, Any], provisioner: str) -> dict[str, Any]:
        annotations = _annotations(claim)
        if annotations.get(vb.ANN_STORAGE_PROVISIONER) == provisioner \
                and annotations.get(vb.ANN_BETA_STORAGE_PROVISIONER) == provisioner:
            return claim
        updated = copy.deepcopy(claim)
        updated_annotations = updated["metadata"].setdefault("annotations", {})
        updated_annotations[vb.ANN_STORAGE_PROVISIONER] = provisioner
        updated_annotations[vb.ANN_BETA_STORAGE_PROVISIONER] = provisioner
        return await self._write_claim(key, updated)

    async def _sync_bound_claim(self, key: str, claim: dict[str, Any]) -> None:
        volume_name = (claim.get("spec") or {}).get("volumeName")
        if not volume_name:
            await self._lose(key, claim, "Bound claim has lost reference to PersistentVolume. Data on the volume is lost!")
            return
        volume = self.index.get(volume_name)
        if volume is None:
            await self._lose(key, claim, "Bound claim has lost its PersistentVolume. Data on the volume is lost!")
            return
        ref = (volume.get("spec") or {}).get("claimRef")
        if not ref or ref.get("uid") == claim["metadata"].get("uid"):
            claim = await self._bind(key, volume, claim)
            await self._expand(key, claim)
            return
        await self._lose(key, claim, "Two claims are bound to the same volume, this one is bound incorrectly",
                         reason="ClaimMisbound")

    async def _lose(self, key: str, claim: dict[str, Any], message: str, reason: str = "ClaimLost") -> None:
        if _phase(claim) != vb.CLAIM_LOST:
            await self.recorder.event(claim, "Warning", reason, message)
        await self._set_claim_phase(key, claim, vb.CLAIM_LOST)

    async def _bind(self, key: str, volume: dict[str, Any], claim: dict[str, Any]) -> dict[str, Any]:
        """upstream bind(): volume first (claimRef, phase), then claim (volumeName, phase)."""
        volume_name = volume["metadata"]["name"]
        ref = (volume.get("spec") or {}).get("claimRef") or {}
        claim_meta = claim["metadata"]
        if ref.get("uid") != claim_meta.get("uid") or ref.get("name") != claim_meta.get("name") \
                or ref.get("namespace") != claim_meta.get("namespace"):
            updated = copy.deepcopy(volume)
            if not vb.is_volume_bound_to_claim(volume, claim):
                updated["metadata"].setdefault("annotations", {})[vb.ANN_BOUND_BY_CONTROLLER] = "yes"
            updated["spec"]["claimRef"] = vb.claim_reference(claim)
            volume = await self._write_volume(updated)
        if _phase(volume) != vb.VOLUME_BOUND:
            volume = await self._set_volume_phase(volume, vb.VOLUME_BOUND)

        spec = claim.get("spec") or {}
        annotations = _annotations(claim)
        if spec.get("volumeName") != volume_name or annotations.get(vb.ANN_BIND_COMPLETED) != "yes":
            updated = copy.deepcopy(claim)
            updated_annotations = updated["metadata"].setdefault("annotations", {})
            if not spec.get("volumeName"):
                updated_annotations[vb.ANN_BOUND_BY_CONTROLLER] = "yes"
            updated_annotations[vb.ANN_BIND_COMPLETED] = "yes"
            updated["spec"]["volumeName"] = volume_name
            claim = await self._write_claim(key, updated)
        volume_spec = volume.get("spec") or {}
        status = claim.get("status") or {}
        wanted_modes = list(volume_spec.get("accessModes") or [])
        capacity = dict(volume_spec.get("capacity") or {})
        if _phase(claim) != vb.CLAIM_BOUND or status.get("accessModes") != wanted_modes \
                or ("capacity" not in status and capacity):
            new_status = dict(status)
            new_status["phase"] = vb.CLAIM_BOUND
            new_status["accessModes"] = wanted_modes
            if "capacity" not in status or _phase(claim) != vb.CLAIM_BOUND:
                new_status["capacity"] = capacity
            claim = await self._write_claim_status(key, claim, new_status)
        return claim

    async def _expand(self, key: str, claim: dict[str, Any]) -> None:
        storage_class = self._class(vb.claim_class(claim))
        if not storage_class or not storage_class.get("allowVolumeExpansion"):
            return
        volume = self.index.get((claim.get("spec") or {}).get("volumeName") or "")
        if volume is None:
            return
        requested = vb.claim_request(claim)
        request_text = ((claim["spec"].get("resources") or {}).get("requests") or {}).get("storage")
        if requested > vb.volume_capacity(volume):
            await self.recorder.event(claim, "Normal", "Resizing",
                                      f"External resizer is resizing volume {volume['metadata']['name']}")
            updated = copy.deepcopy(volume)
            updated["spec"].setdefault("capacity", {})["storage"] = request_text
            volume = await self._write_volume(updated)
        status = claim.get("status") or {}
        if vb.storage_bytes((status.get("capacity") or {}).get("storage")) < vb.volume_capacity(volume) \
                and requested <= vb.volume_capacity(volume):
            new_status = dict(status)
            new_status["capacity"] = dict((volume.get("spec") or {}).get("capacity") or {})
            new_status["allocatedResources"] = {"storage": new_status["capacity"].get("storage")}
            await self._write_claim_status(key, claim, new_status)
            await self.recorder.event(claim, "Normal", "VolumeResizeSuccessful", "Resize volume succeeded")

    # volumes

    async def _sync_volume(self, name: str) -> None:
        volume = self.index.get(name)
        if volume is None:
            return
        ref = (volume.get("spec") or {}).get("claimRef")
        if not ref or not ref.get("uid"):
            # Unused, or pre-bound by its author to a claim that has not been bound yet.
            if _phase(volume) != vb.VOLUME_AVAILABLE:
                await self._set_volume_phase(volume, vb.VOLUME_AVAILABLE)
            if ref and ref.get("namespace") and ref.get("name"):
                self.queue.add(f"claim:{ref['namespace']}/{ref['name']}")
            return
        claim_key = f"{ref.get('namespace')}/{ref.get('name')}"
        claim = self._claim(claim_key)
        if claim is None:
            # The cache may be behind a claim created just now: ask the API server.
            try:
                claim = await self.client.get(PVCS, ref.get("name"), ref.get("namespace"))
            except errors.NotFound:
                claim = None
        if claim is not None and claim["metadata"].get("uid") != ref.get("uid"):
            claim = None  # deleted and created again: not the claim this volume was bound to
        if claim is None:
            if _phase(volume) not in (vb.VOLUME_RELEASED, vb.VOLUME_FAILED):
                volume = await self._set_volume_phase(volume, vb.VOLUME_RELEASED)
            await self._reclaim(volume)
            return
        claimed_volume = (claim.get("spec") or {}).get("volumeName")
        if not claimed_volume:
            self.queue.add("claim:" + claim_key)  # binding in progress: the claim's sync finishes it
            return
        if claimed_volume == name:
            if _phase(volume) != vb.VOLUME_BOUND:
                await self._set_volume_phase(volume, vb.VOLUME_BOUND)
            return
        # Bound to a claim that is bound to another volume.
        annotations = _annotations(volume)
        if vb.ANN_DYNAMICALLY_PROVISIONED in annotations \
                and (volume.get("spec") or {}).get("persistentVolumeReclaimPolicy") == "Delete":
            if _phase(volume) not in (vb.VOLUME_RELEASED, vb.VOLUME_FAILED):
                volume = await self._set_volume_phase(volume, vb.VOLUME_RELEASED)
            await self._reclaim(volume)
        elif vb.ANN_BOUND_BY_CONTROLLER in annotations:
            updated = copy.deepcopy(volume)
            updated["spec"].pop("claimRef", None)
            updated["metadata"]["annotations"].pop(vb.ANN_BOUND_BY_CONTROLLER, None)
            volume = await self._write_volume(updated)
            await self._set_volume_phase(volume, vb.VOLUME_AVAILABLE)

    async def _reclaim(self, volume: dict[str, Any]) -> None:
        policy = (volume.get("spec") or {}).get("persistentVolumeReclaimPolicy") or "Retain"
        if policy == "Retain" or _phase(volume) == vb.VOLUME_FAILED:
            return
        if policy == "Delete":
            if vb.ANN_DYNAMICALLY_PROVISIONED in _annotations(volume):
                return  # its provisioner deletes the directory, then the PV
            message = (f'error getting deleter volume plugin for volume "{volume["metadata"]["name"]}": '
                       "no deletable volume plugin matched")
            await self.recorder.event(volume, "Warning", "VolumeFailedDelete", message)
            await self._set_volume_phase(volume, vb.VOLUME_FAILED, message)
            return
        message = "No recycler plugin found for the volume!"
        await self.recorder.event(volume, "Warning", "VolumeFailedRecycle", message)
        await self._set_volume_phase(volume, vb.VOLUME_FAILED, message)

    # -- writes -------------------------------------------------------------------------

    async def _write_volume(self, volume: dict[str, Any]) -> dict[str, Any]:
        updated = await self.client.update(PVS, volume)
        self._volume_changed_locally(updated)
        return updated

    async def _set_volume_phase(self, volume: dict[str, Any], phase: str, message: str = "") -> dict[str, Any]:
        updated = copy.deepcopy(volume)
        status = {"phase": phase, "lastPhaseTransitionTime": _now()}
        if message:
            status["message"] = message
        updated["status"] = status
        try:
            result = await self.client.update(PVS, updated, subresource="status")
        except errors.NotFound:
            return volume
        self._volume_changed_locally(result)
        return result

    def _volume_changed_locally(self, volume: dict[str, Any]) -> None:
        current = self.index.get(volume["metadata"]["name"])
        if current is None or _rv(volume) >= _rv(current):
            self.index.put(volume)

    async def _write_claim(self, key: str, claim: dict[str, Any]) -> dict[str, Any]:
        updated = await self.client.update(PVCS, claim)
        self._claim_writes[key] = updated
        return updated

    async def _write_claim_status(self, key: str, claim: dict[str, Any], status: dict[str, Any]) -> dict[str, Any]:
        updated = copy.deepcopy(claim)
        updated["status"] = status
        result = await self.client.update(PVCS, updated, subresource="status")
        self._claim_writes[key] = result
        return result

    async def _set_claim_phase(self, key: str, claim: dict[str, Any], phase: str) -> dict[str, Any]:
        if _phase(claim) == phase:
            return claim
        status = dict(claim.get("status") or {})
        status["phase"] = phase
        try:
            return await self._write_claim_status(key, claim, status)
        except errors.NotFound:
            return claim


class PVCProtectionController(Controller):
    """upstream pvcprotection: the finalizer goes once no scheduled, running pod uses the claim."""

    name = "pvc-protection-controller"
    workers = 2

    def __init__(self, client):
        super().__init__(client)
        self.claims = self.informer(PVCS)
        self.pods = self.informer(PODS)
        self.claims.add_handlers(**self.enqueue_handlers())
        self.pods.add_handlers(on_add=self._pod_changed, on_update=lambda old, new: self._pod_changed(new, old),
                               on_delete=self._pod_changed)

    def _pod_changed(self, pod: dict[str, Any], old: dict[str, Any] | None = None) -> None:
        namespace = pod["metadata"].get("namespace")
        for name in set(vb.pod_claim_names(pod)) | set(vb.pod_claim_names(old) if old else ()):
            claim = self.claims.get(f"{namespace}/{name}")
            if claim is not None and claim["metadata"].get("deletionTimestamp"):
                self.queue.add(f"{namespace}/{name}")

    def _in_use(self, pods: list[dict[str, Any]], name: str) -> bool:
        return any(vb.pod_uses_claim(pod, name) for pod in pods)

    async def reconcile(self, key: str) -> None:
        namespace, name = split_key(key)
        claim = self.claims.get(key)
        if claim is None:
            return
        finalizers = list(claim["metadata"].get("finalizers") or [])
        deleting = bool(claim["metadata"].get("deletionTimestamp"))
        if not deleting:
            if vb.PVC_PROTECTION_FINALIZER not in finalizers:
                await _set_finalizers(self.client, PVCS, claim, finalizers + [vb.PVC_PROTECTION_FINALIZER])
            return
        if vb.PVC_PROTECTION_FINALIZER not in finalizers:
            return
        if self._in_use(self.pods.list(namespace), name):
            return
        # The cache may miss a pod created just now: ask the API server before letting go.
        listed = await self.client.list(PODS, namespace)
        if self._in_use(listed.get("items") or [], name):
            return
        await _set_finalizers(self.client, PVCS, claim, [f for f in finalizers if f != vb.PVC_PROTECTION_FINALIZER])


class PVProtectionController(Controller):
    """upstream pvprotection: the finalizer goes once the volume is not Bound."""

    name = "pv-protection-controller"
    workers = 2

    def __init__(self, client):
        super().__init__(client)
        self.volumes = self.informer(PVS)
        self.volumes.add_handlers(**self.enqueue_handlers())

    async def reconcile(self, key: str) -> None:
        volume = self.volumes.get(key)
        if volume is None:
            return
        finalizers = list(volume["metadata"].get("finalizers") or [])
        if not volume["metadata"].get("deletionTimestamp"):
            if vb.PV_PROTECTION_FINALIZER not in finalizers:
                await _set_finalizers(self.client, PVS, volume, finalizers + [vb.PV_PROTECTION_FINALIZER])
            return
        if vb.PV_PROTECTION_FINALIZER in finalizers and _phase(volume) != vb.VOLUME_BOUND:
            await _set_finalizers(self.client, PVS, volume, [f for f in finalizers if f != vb.PV_PROTECTION_FINALIZER])


async def _set_finalizers(client, resource, obj: dict[str, Any], finalizers: list[str]) -> None:
    meta = obj["metadata"]
    patch = {"metadata": {"finalizers": finalizers or None, "resourceVersion": meta["resourceVersion"]}}
    try:
        await client.patch(resource, meta["name"], patch, meta.get("namespace"))
    except errors.NotFound:
        pass
