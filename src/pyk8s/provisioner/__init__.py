"""The built-in dynamic provisioner `pyk8s.io/local-path` (k3s's local-path provisioner,
reimplemented): one per node, started by the node agent beside the kubelet, knowing the
cluster only through the API.

Data flow: informers on claims, PersistentVolumes, StorageClasses and Nodes feed a work
queue. A claim the PV binder handed to this provisioner (annotation
`volume.kubernetes.io/storage-provisioner`) whose node is this one (the scheduler's
`volume.kubernetes.io/selected-node` for WaitForFirstConsumer classes, or, for Immediate
classes, the ready node picked by hashing the claim's uid) gets a directory
`<storage dir>/pvc-<uid>_<namespace>_<name>` and a PV `pvc-<uid>` (hostPath, nodeAffinity to
this node, pre-bound to the claim) that the binder then binds. A failure is a
ProvisioningFailed event on the claim; the claim's `selected-node` is removed (upstream's
external-provisioner reschedules) so the scheduler picks a node again, or, where this
identity may not change the claim (a node under NodeRestriction) or for Immediate classes,
the claim is retried here with back-off (1 s doubling to 5 min, csi-provisioner's).
A PV with reclaim policy Delete carries `external-provisioner.volume.kubernetes.io/finalizer`;
once Released, its directory is removed, the PV deleted, then the finalizer dropped.
"""

from pyk8s.provisioner.localpath import LocalPathProvisioner, PROVISIONER_NAME

__all__ = ["LocalPathProvisioner", "PROVISIONER_NAME"]
