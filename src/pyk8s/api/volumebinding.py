"""PersistentVolume <-> PersistentVolumeClaim matching, shared by the PV binder controller
and the scheduler's VolumeBinding filter (upstream pkg/controller/volume/persistentvolume
index.go and the storage helpers). Pure: no I/O.

Rules (upstream's findMatchingVolume): a volume pre-bound to the claim (`claimRef` naming
it) wins whatever its class or phase, if it is big enough, of the same volumeMode, not being
deleted and reachable from the node; otherwise the candidates are Available volumes with no
claimRef, of the claim's class ("" means no class), whose access modes include the claim's,
whose labels match the claim's selector, big enough and of the same volumeMode. Among them
the volume with the fewest access modes, then the smallest capacity, wins (upstream searches
its access-mode index from the smallest mode set, and keeps the smallest volume of a set).
"""

from __future__ import annotations

import bisect
import math
from dataclasses import dataclass, field
from typing import Any, Iterable

from pyk8s.api.quantity import parse_quantity
from pyk8s.api.scheduling import match_node_selector_term
from pyk8s.api.selectors import label_selector_from_spec

# Annotations (upstream pkg/controller/volume/persistentvolume/util).
ANN_BIND_COMPLETED = "pv.kubernetes.io/bind-completed"
ANN_BOUND_BY_CONTROLLER = "pv.kubernetes.io/bound-by-controller"
ANN_SELECTED_NODE = "volume.kubernetes.io/selected-node"
ANN_STORAGE_PROVISIONER = "volume.kubernetes.io/storage-provisioner"
ANN_BETA_STORAGE_PROVISIONER = "volume.beta.kubernetes.io/storage-provisioner"
ANN_DYNAMICALLY_PROVISIONED = "pv.kubernetes.io/provisioned-by"
ANN_BETA_STORAGE_CLASS = "volume.beta.kubernetes.io/storage-class"
ANN_DEFAULT_CLASS = "storageclass.kubernetes.io/is-default-class"
ANN_BETA_DEFAULT_CLASS = "storageclass.beta.kubernetes.io/is-default-class"

PVC_PROTECTION_FINALIZER = "kubernetes.io/pvc-protection"
PV_PROTECTION_FINALIZER = "kubernetes.io/pv-protection"

# Phases.
VOLUME_PENDING, VOLUME_AVAILABLE, VOLUME_BOUND, VOLUME_RELEASED, VOLUME_FAILED = (
    "Pending", "Available", "Bound", "Released", "Failed")
CLAIM_PENDING, CLAIM_BOUND, CLAIM_LOST = "Pending", "Bound", "Lost"

WAIT_FOR_FIRST_CONSUMER = "WaitForFirstConsumer"
NO_PROVISIONER = "kubernetes.io/no-provisioner"


def _meta(obj: dict[str, Any]) -> dict[str, Any]:
    return obj.get("metadata") or {}


def _spec(obj: dict[str, Any]) -> dict[str, Any]:
    return obj.get("spec") or {}


def storage_bytes(value: Any) -> int:
    """A storage quantity in bytes, rounded up (0 when absent or unparsable)."""
    if value is None:
        return 0
    try:
        return math.ceil(parse_quantity(value))
    except (ValueError, TypeError, ZeroDivisionError):
        return 0


def claim_request(claim: dict[str, Any]) -> int:
    return storage_bytes(((_spec(claim).get("resources") or {}).get("requests") or {}).get("storage"))


def volume_capacity(volume: dict[str, Any]) -> int:
    return storage_bytes((_spec(volume).get("capacity") or {}).get("storage"))


def claim_class(claim: dict[str, Any]) -> str:
    """upstream GetPersistentVolumeClaimClass: the beta annotation wins over the field."""
    annotations = _meta(claim).get("annotations") or {}
    if ANN_BETA_STORAGE_CLASS in annotations:
        return annotations[ANN_BETA_STORAGE_CLASS]
    return _spec(claim).get("storageClassName") or ""


def volume_class(volume: dict[str, Any]) -> str:
    annotations = _meta(volume).get("annotations") or {}
    if ANN_BETA_STORAGE_CLASS in annotations:
        return annotations[ANN_BETA_STORAGE_CLASS]
    return _spec(volume).get("storageClassName") or ""


def claim_names_class(claim: dict[str, Any]) -> bool:
    """Whether the claim says which class it wants (an explicit "" included)."""
    annotations = _meta(claim).get("annotations") or {}
    return ANN_BETA_STORAGE_CLASS in annotations or _spec(claim).get("storageClassName") is not None


def volume_mode(obj: dict[str, Any]) -> str:
    return _spec(obj).get("volumeMode") or "Filesystem"


def access_modes_contain(volume_modes: Iterable[str], claim_modes: Iterable[str]) -> bool:
    have = set(volume_modes or ())
    return all(mode in have for mode in claim_modes or ())


def volume_node_affinity_matches(volume: dict[str, Any], node: dict[str, Any]) -> bool:
    """upstream CheckNodeAffinity: any required term matches (no required terms: any node)."""
    required = (_spec(volume).get("nodeAffinity") or {}).get("required")
    if not required:
        return True
    terms = required.get("nodeSelectorTerms") or []
    return any(match_node_selector_term(node, term) for term in terms)


def is_default_class(storage_class: dict[str, Any]) -> bool:
    annotations = _meta(storage_class).get("annotations") or {}
    return annotations.get(ANN_DEFAULT_CLASS) == "true" or annotations.get(ANN_BETA_DEFAULT_CLASS) == "true"


def default_class(classes: Iterable[dict[str, Any]]) -> dict[str, Any] | None:
    """The default StorageClass; with several, the newest (then by name), as upstream since 1.26."""
    defaults = [c for c in classes if is_default_class(c)]
    if not defaults:
        return None
    defaults.sort(key=lambda c: (_meta(c).get("creationTimestamp") or "", _meta(c).get("name") or ""))
    return defaults[-1]


def is_volume_bound_to_claim(volume: dict[str, Any], claim: dict[str, Any]) -> bool:
    """upstream IsVolumeBoundToClaim: claimRef names the claim (and its uid, once set)."""
    ref = _spec(volume).get("claimRef")
    if not ref:
        return False
    meta = _meta(claim)
    if ref.get("name") != meta.get("name") or ref.get("namespace") != meta.get("namespace"):
        return False
    return not ref.get("uid") or ref.get("uid") == meta.get("uid")


def claim_reference(claim: dict[str, Any]) -> dict[str, Any]:
    meta = _meta(claim)
    return {"kind": "PersistentVolumeClaim", "namespace": meta.get("namespace"), "name": meta.get("name"),
            "uid": meta.get("uid"), "apiVersion": "v1", "resourceVersion": meta.get("resourceVersion")}


def check_volume_satisfies_claim(volume: dict[str, Any], claim: dict[str, Any]) -> str | None:
    """upstream checkVolumeSatisfyClaim, for a claim that names its volume."""
    if claim_request(claim) > volume_capacity(volume):
        return "requested PV is too small"
    if volume_class(volume) != claim_class(claim):
        return "storageClassName does not match"
    if volume_mode(volume) != volume_mode(claim):
        return "incompatible volumeMode"
    if not access_modes_contain(_spec(volume).get("accessModes"), _spec(claim).get("accessModes")):
        return "incompatible accessMode"
    return None


def pod_claim_names(pod: dict[str, Any]) -> list[str]:
    """The claims a pod's volumes use: persistentVolumeClaim volumes and generic ephemeral
    volumes (whose claim is named `<pod>-<volume>`)."""
    names = []
    pod_name = _meta(pod).get("name")
    for volume in _spec(pod).get("volumes") or ():
        source = volume.get("persistentVolumeClaim")
        if source and source.get("claimName"):
            names.append(source["claimName"])
        elif volume.get("ephemeral") is not None:
            names.append(f"{pod_name}-{volume.get('name')}")
    return names


def pod_is_shut_down(pod: dict[str, Any]) -> bool:
    """upstream pvcprotection podIsShutDown: deleted with a zero grace period (the kubelet is
    done with it, or it was forced)."""
    meta = _meta(pod)
    return bool(meta.get("deletionTimestamp")) and meta.get("deletionGracePeriodSeconds") == 0


def pod_uses_claim(pod: dict[str, Any], claim_name: str) -> bool:
    """upstream pvcprotection podUsesPVC: a scheduled pod, not shut down and not finished,
    whose volumes name the claim."""
    if not _spec(pod).get("nodeName") or pod_is_shut_down(pod):
        return False
    if (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed"):
        return False
    return claim_name in pod_claim_names(pod)


@dataclass(eq=False)
class _Entry:
    volume: dict[str, Any]
    capacity: int
    modes: frozenset
    storage_class: str
    mode: str
    sort_key: tuple = ()


@dataclass
class VolumeIndex:
    """Volumes by class, ordered for matching (fewest access modes, then smallest), and
    volumes pre-bound by claimRef, so matching a claim looks only at its candidates."""

    _entries: dict[str, _Entry] = field(default_factory=dict)
    # class -> sort keys in order (kept sorted with bisect: puts are as frequent as finds)
    _by_class: dict[str, list[tuple]] = field(default_factory=dict)
    _prebound: dict[tuple[str, str], set[str]] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, name: str) -> dict[str, Any] | None:
        entry = self._entries.get(name)
        return entry.volume if entry else None

    def put(self, volume: dict[str, Any]) -> None:
        name = _meta(volume)["name"]
        self.remove(name)
        spec = _spec(volume)
        modes = frozenset(spec.get("accessModes") or ())
        capacity = volume_capacity(volume)
        entry = _Entry(volume, capacity, modes, volume_class(volume), volume_mode(volume), (len(modes), capacity, name))
        self._entries[name] = entry
        bisect.insort(self._by_class.setdefault(entry.storage_class, []), entry.sort_key)
        ref = spec.get("claimRef")
        if ref:
            self._prebound.setdefault((ref.get("namespace") or "", ref.get("name") or ""), set()).add(name)

    def remove(self, name: str) -> None:
        entry = self._entries.pop(name, None)
        if entry is None:
            return
        group = self._by_class.get(entry.storage_class)
        if group is not None:
            at = bisect.bisect_left(group, entry.sort_key)
            if at < len(group) and group[at] == entry.sort_key:
                del group[at]
            if not group:
                del self._by_class[entry.storage_class]
        ref = _spec(entry.volume).get("claimRef")
        if ref:
            key = (ref.get("namespace") or "", ref.get("name") or "")
            names = self._prebound.get(key)
            if names is not None:
                names.discard(name)
                if not names:
                    del self._prebound[key]

    def _class_group(self, storage_class: str):
        entries = self._entries
        for sort_key in self._by_class.get(storage_class, ()):
            yield entries[sort_key[2]]

    def find(self, claim: dict[str, Any], *, node: dict[str, Any] | None = None, delay_binding: bool = False,
             excluded: set[str] | frozenset = frozenset()) -> dict[str, Any] | None:
        """upstream findBestMatchForClaim / FindMatchingVolume. `node`: the scheduler's
        question (can this claim bind on that node); `delay_binding`: the claim's class is
        WaitForFirstConsumer, so without a node only a pre-bound volume may match."""
        meta, spec = _meta(claim), _spec(claim)
        requested = claim_request(claim)
        wanted_mode = volume_mode(claim)
        claim_modes = frozenset(spec.get("accessModes") or ())
        for name in sorted(self._prebound.get((meta.get("namespace") or "", meta.get("name") or ""), ())):
            entry = self._entries[name]
            volume = entry.volume
            if name in excluded or not is_volume_bound_to_claim(volume, claim):
                continue
            if not claim_modes <= entry.modes or entry.capacity < requested or entry.mode != wanted_mode \
                    or _meta(volume).get("deletionTimestamp"):
                continue
            if node is not None and not volume_node_affinity_matches(volume, node):
                return None  # pre-bound to a volume the node cannot reach: no match
            return volume
        if node is None and delay_binding:
            return None
        selector = label_selector_from_spec(spec["selector"]) if spec.get("selector") is not None else None
        for entry in self._class_group(claim_class(claim)):
            volume = entry.volume
            if entry.capacity < requested or not claim_modes <= entry.modes or entry.mode != wanted_mode:
                continue
            volume_spec = _spec(volume)
            if volume_spec.get("claimRef") or (volume.get("status") or {}).get("phase") != VOLUME_AVAILABLE:
                continue
            vmeta = _meta(volume)
            if vmeta.get("deletionTimestamp") or vmeta["name"] in excluded:
                continue
            if selector is not None and not selector.matches(vmeta.get("labels") or {}):
                continue
            if node is not None and not volume_node_affinity_matches(volume, node):
                continue
            return volume
        return None


def find_matching_volume(claim: dict[str, Any], volumes: Iterable[dict[str, Any]], **kwargs: Any) -> dict[str, Any] | None:
    """One-off matching over a list of volumes (see VolumeIndex.find)."""
    index = VolumeIndex()
    for volume in volumes:
        index.put(volume)
    return index.find(claim, **kwargs)
