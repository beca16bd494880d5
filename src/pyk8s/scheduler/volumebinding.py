"""The VolumeBinding plugin (upstream pkg/scheduler/framework/plugins/volumebinding): which
nodes a pod's PersistentVolumeClaims let it run on, and what to do before binding the pod.
No I/O: the Scheduler feeds the claim, volume and class caches and does the writes.

- PreFilter: every claim must exist and not be being deleted; a claim that is not bound and
  whose class binds Immediately fails the pod on every node ("pod has unbound immediate
  PersistentVolumeClaims"); unbound WaitForFirstConsumer claims are decided per node.
- Filter: a bound claim's PV must exist and its nodeAffinity admit the node; a delayed
  claim needs, on that node, an Available PV that matches it (api/volumebinding.py) or a
  class with a provisioner.
- PreBind (Scheduler): for the chosen node, a matched PV gets the claim in `claimRef`
  (the binder completes the binding), a claim to provision gets
  `volume.kubernetes.io/selected-node`; the pod is bound once every claim is Bound. A
  provisioner that gives up on the node removes `selected-node`: PreBind then fails
  ("provisioning failed for PVC"), and the pod is scheduled again after its back-off.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

from pyk8s.api import volumebinding as vb

# upstream's reasons and PreFilter messages
REASON_NODE_CONFLICT = "node(s) had volume node affinity conflict"
REASON_BIND_CONFLICT = "node(s) didn't find available persistent volumes to bind"
REASON_PV_NOT_EXIST = "node(s) unavailable due to one or more pvc(s) bound to non-existent pv(s)"
UNBOUND_IMMEDIATE = "pod has unbound immediate PersistentVolumeClaims"


def claim_is_bound(claim: dict[str, Any]) -> bool:
    """upstream isPVCBound: a volume named and the binding completed."""
    return bool((claim.get("spec") or {}).get("volumeName")) and \
        vb.ANN_BIND_COMPLETED in ((claim.get("metadata") or {}).get("annotations") or {})


@dataclass
class PodVolumes:
    """One pod's claims, sorted out by PreFilter."""

    bound_volumes: list[dict[str, Any] | None] = field(default_factory=list)  # None: the PV is missing
    delayed: list[tuple[dict[str, Any], dict[str, Any] | None]] = field(default_factory=list)  # claim, class
    index: vb.VolumeIndex | None = None

    def plan(self, node: dict[str, Any]) -> tuple[list[str], list[tuple[str, dict[str, Any], Any]]]:
        """(reasons the node fails, actions for it): ("bind", claim, volume) or
        ("provision", claim, None)."""
        reasons: list[str] = []
        for volume in self.bound_volumes:
            if volume is None:
                if REASON_PV_NOT_EXIST not in reasons:
                    reasons.append(REASON_PV_NOT_EXIST)
            elif not vb.volume_node_affinity_matches(volume, node) and REASON_NODE_CONFLICT not in reasons:
                reasons.append(REASON_NODE_CONFLICT)
        actions: list[tuple[str, dict[str, Any], Any]] = []
        chosen: set[str] = set()
        for claim, storage_class in self.delayed:
            volume = self.index.find(claim, node=node, delay_binding=True, excluded=chosen) if self.index else None
            if volume is not None:
                chosen.add(volume["metadata"]["name"])
                actions.append(("bind", claim, volume))
                continue
            provisioner = (storage_class or {}).get("provisioner") or ""
            if provisioner and provisioner != vb.NO_PROVISIONER:
                actions.append(("provision", claim, None))
            elif REASON_BIND_CONFLICT not in reasons:
                reasons.append(REASON_BIND_CONFLICT)
        return reasons, actions

    def filter(self, node: dict[str, Any]) -> list[str]:
        return self.plan(node)[0]


class VolumeBinding:
    def __init__(self, get_claim: Callable[[str], dict[str, Any] | None], index: vb.VolumeIndex,
                 get_class: Callable[[str], dict[str, Any] | None]):
        self.get_claim = get_claim
        self.index = index
        self.get_class = get_class

    def pre_filter(self, pod: dict[str, Any]) -> tuple[str | None, PodVolumes | None]:
        """(message when the pod fits no node, the pod's volumes or None without claims)."""
        names = vb.pod_claim_names(pod)
        if not names:
            return None, None
        namespace = pod["metadata"].get("namespace")
        result = PodVolumes(index=self.index)
        immediate_unbound = False
        for name in names:
            claim = self.get_claim(f"{namespace}/{name}")
            if claim is None:
                return f'persistentvolumeclaim "{name}" not found', None
            if claim["metadata"].get("deletionTimestamp"):
                return f'persistentvolumeclaim "{name}" is being deleted', None
            if claim_is_bound(claim):
                result.bound_volumes.append(self.index.get(claim["spec"]["volumeName"]))
                continue
            class_name = vb.claim_class(claim)
            storage_class = self.get_class(class_name) if class_name else None
            if storage_class is not None and storage_class.get("volumeBindingMode") == vb.WAIT_FOR_FIRST_CONSUMER:
                result.delayed.append((claim, storage_class))
            else:
                immediate_unbound = True
        if immediate_unbound:
            return UNBOUND_IMMEDIATE, None
        return None, result
