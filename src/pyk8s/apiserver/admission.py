"""Storage admission, run by the registry on writes after defaulting and before validation
(upstream's admission plugins of the same names):
- DefaultStorageClass: a claim created without a class (no `storageClassName`, no beta
  annotation; an explicit "" is a choice) gets the default StorageClass's name.
- StorageObjectInUseProtection: claims get `kubernetes.io/pvc-protection` and volumes
  `kubernetes.io/pv-protection` when created.
- PersistentVolumeClaimResize: a claim may ask for more storage only when its StorageClass
  allows volume expansion.
"""

from __future__ import annotations

from typing import Any

from pyk8s.api import errors
from pyk8s.api import volumebinding as vb
from pyk8s.api.resources import Resource, lookup

STORAGE_CLASSES = lookup("storage.k8s.io", "v1", "storageclasses")

KINDS = frozenset({"PersistentVolumeClaim", "PersistentVolume"})

RESIZE_FORBIDDEN = ("only dynamically provisioned pvc can be resized and the storageclass that provisions "
                    "the pvc must support resize")


async def _storage_classes(registry) -> list[dict[str, Any]]:
    from pyk8s.apiserver.registry import ListOptions
    items, _, _, _ = await registry.list(STORAGE_CLASSES, None, ListOptions())
    return items


def _add_finalizer(obj: dict[str, Any], finalizer: str) -> None:
    finalizers = obj["metadata"].setdefault("finalizers", [])
    if finalizer not in finalizers:
        finalizers.append(finalizer)


async def admit_create(registry, resource: Resource, obj: dict[str, Any]) -> None:
    if resource.group != "" or resource.kind not in KINDS:
        return
    if resource.kind == "PersistentVolume":
        _add_finalizer(obj, vb.PV_PROTECTION_FINALIZER)
        return
    _add_finalizer(obj, vb.PVC_PROTECTION_FINALIZER)
    if not vb.claim_names_class(obj):
        default = vb.default_class(await _storage_classes(registry))
        if default is not None:
            obj.setdefault("spec", {})["storageClassName"] = default["metadata"]["name"]


async def admit_update(registry, resource: Resource, new: dict[str, Any], old: dict[str, Any]) -> None:
    if resource.group != "" or resource.kind != "PersistentVolumeClaim":
        return
    if vb.claim_request(new) <= vb.claim_request(old):
        return
    class_name = vb.claim_class(new)
    allowed = False
    if class_name and class_name == vb.claim_class(old):
        for storage_class in await _storage_classes(registry):
            if storage_class["metadata"]["name"] == class_name:
                allowed = bool(storage_class.get("allowVolumeExpansion"))
    if not allowed:
        name = new["metadata"].get("name", "")
        raise errors.Forbidden(f'persistentvolumeclaims "{name}" is forbidden: {RESIZE_FORBIDDEN}',
                               details={"name": name, "kind": "persistentvolumeclaims"})
