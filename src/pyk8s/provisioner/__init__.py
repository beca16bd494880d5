"""The built-in dynamic provisioner `pyk8s.io/local-path` (k3s's local-path provisioner,
reimplemented): one per node, started by the node agent beside the kubelet, knowing the
cluster only through the API.

Data flow: informers on claims, PersistentVolumes, StorageClasses and Nodes feed a work
queue. A claim the PV binder handed to this provisioner (annotation
`volume.kubernetes.io/storage-provisioner`) whose node is this one (the scheduler's
`volume.kubernetes.io/selected-node` for WaitForFirstConsumer classes, or, for Immediate
classes, the ready node picked by hashing the claim's uid) gets a directory
`<storage dir>/pvc-<uid>_<namespace>_<name>` and a PV `pvc-<uid>` (hostPath, nodeAffinity to
this node, pre-bound to the claim) that the binder then binds. A Released PV this
provisioner made on this node with reclaim policy Delete has its directory removed, then
the PV deleted.
"""

from pyk8s.provisioner.localpath import LocalPathProvisioner, PROVISIONER_NAME

__all__ = ["LocalPathProvisioner", "PROVISIONER_NAME"]
