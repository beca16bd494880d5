"""The kubelet's volumes: what a pod's `spec.volumes` puts on the node, and the CRI mounts
that show it to containers.

    PodManager.sync ──> VolumeManager.set_up(pod) ──> plugin per volume type ──> files under
          │                     ▲                     (configMap, secret,        <pod dir>/volumes/
          │                     │ object changed        downwardAPI, projected,   <plugin>/<name>
          │                     │                       emptyDir, hostPath, PVC)  (or the node's path)
          │             ReferencedObjects (watches the ConfigMaps/Secrets/claims pods use)
          └──> container config: VolumeManager.container_mounts(pod, container)

- manager.py: set up before containers start (a missing object holds the pod with a
  FailedMount event), live refresh on watch events, container mounts (subPath), tear down.
- base.py: the plugin interface (set_up / is_set_up / tear_down / references) and tmpfs.
- atomic_writer.py: upstream's `..data` layout, swapped atomically by rename.
- objects.py: per-namespace informers on referenced ConfigMaps and Secrets.
- configmap.py, secret.py, downwardapi.py, projected.py: one plugin each (refreshed).
- emptydir.py, hostpath.py, claim.py: set up once per pod; a hostPath and a claim's
  PersistentVolume are mounted where they are on the node and never removed; an emptyDir
  over its sizeLimit has the pod evicted (the manager's periodic check).
- container mounts: subPath / subPathExpr resolved with symlinks followed and refused
  outside the volume (ContainerMountError -> CreateContainerConfigError), readOnly,
  mountPropagation.
It talks to the API only through the client's informers, and to the node through the
filesystem (and mount(2) for tmpfs); containerd sees volumes only as bind mounts.
"""

from pyk8s.kubelet.volumes.manager import VolumeManager

__all__ = ["VolumeManager"]
