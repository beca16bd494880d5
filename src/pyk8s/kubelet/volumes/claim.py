"""The persistentVolumeClaim volume: the directory of the PersistentVolume bound to a claim.

The binder and the provisioner (controllers) bind claims to volumes; the kubelet only reads
the result: the claim (from the watch-fed cache, so a claim becoming Bound wakes a waiting
pod), then its PersistentVolume, and mounts the PV's `hostPath.path` or `local.path`.
A claim that is missing, not Bound or being deleted holds the pod in ContainerCreating
with a FailedMount event (upstream's volume manager never mounts it). `readOnly` on the
pod's claim source makes every mount of it read-only (access modes alone do not, as upstream).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pyk8s.kubelet.volumes.base import MountError, VolumeNotReady, VolumePlugin
from pyk8s.kubelet.volumes.hostpath import check_type

CLAIMS, VOLUMES = "persistentvolumeclaims", "persistentvolumes"


def not_ready(volume: str, reason: str) -> VolumeNotReady:
    return VolumeNotReady(f"Unable to attach or mount volumes: unmounted volumes=[{volume}], "
                          f"failed to process volumes=[{volume}]: {reason}")


def volume_path(pv: dict[str, Any]) -> tuple[str, str | None]:
    """The node path a PersistentVolume names, and the hostPath type to check."""
    spec = pv.get("spec") or {}
    if spec.get("hostPath"):
        return spec["hostPath"].get("path") or "", spec["hostPath"].get("type")
    if spec.get("local"):
        return spec["local"].get("path") or "", "Directory"
    raise MountError(f"persistentvolume {pv['metadata']['name']} has no hostPath or local source "
                     "this node can mount")


class PersistentVolumeClaimPlugin(VolumePlugin):
    plugin_name = "kubernetes.io/persistent-volume-claim"
    source_field = "persistentVolumeClaim"
    read_only = False
    refresh = False

    def references(self, volume: dict[str, Any]) -> set[tuple[str, str]]:
        return {(CLAIMS, volume["persistentVolumeClaim"]["claimName"])}

    def mount_read_only(self, volume: dict[str, Any]) -> bool:
        return bool(volume["persistentVolumeClaim"].get("readOnly"))

    async def set_up(self, context, pod: dict[str, Any], volume: dict[str, Any], path: Path) -> Path:
        namespace = pod["metadata"]["namespace"]
        claim_name = volume["persistentVolumeClaim"]["claimName"]
        where = f"error processing PVC {namespace}/{claim_name}"
        claim = await context.get_object(CLAIMS, namespace, claim_name)
        if claim is None:
            raise not_ready(volume["name"], f'{where}: failed to fetch PVC from API server: '
                                            f'persistentvolumeclaims "{claim_name}" not found')
        if claim["metadata"].get("deletionTimestamp"):
            raise not_ready(volume["name"], f"{where}: can't start pod because PVC {namespace}/{claim_name} "
                                            "is being deleted")
        pv_name = (claim.get("spec") or {}).get("volumeName")
        if (claim.get("status") or {}).get("phase") != "Bound" or not pv_name:
            raise not_ready(volume["name"], f"{where}: PVC is not bound")
        pv = await context.get_object(VOLUMES, "", pv_name)
        if pv is None:
            raise not_ready(volume["name"], f'{where}: failed to fetch PV {pv_name} from API server: '
                                            f'persistentvolumes "{pv_name}" not found')
        claim_ref = (pv.get("spec") or {}).get("claimRef") or {}
        if claim_ref.get("uid") and claim_ref["uid"] != claim["metadata"].get("uid"):
            raise not_ready(volume["name"], f"{where}: the PV's ClaimRef UID {claim_ref['uid']} does not "
                                            f"point to the PVC's UID {claim['metadata'].get('uid')}")
        host_path, path_type = volume_path(pv)
        check_type(host_path, path_type)
        return Path(host_path)

    def is_set_up(self, path: Path) -> bool:
        return False

    def tear_down(self, path: Path) -> None:
        pass  # the volume's data belongs to the PersistentVolume, not the pod
