"""The emptyDir volume: a directory that lives as long as the pod on this node.

It sits in `<pod dir>/volumes/kubernetes.io~empty-dir/<name>` (upstream's layout), so a
container that restarts finds what its predecessor wrote, and it goes when the pod's
volumes are torn down. `medium: Memory` puts it on a tmpfs of its own, sized as upstream's
SizeMemoryBackedVolumes: the node's allocatable memory, or the pod's memory limit when
every container has one, or `sizeLimit` when that is smaller still. On disk, `sizeLimit`
is enforced by the volume manager's periodic usage check, which has the pod evicted.
"""

from __future__ import annotations

import math
import os
import shutil
from pathlib import Path
from typing import Any

from pyk8s.api.quantity import parse_quantity
from pyk8s.kubelet.volumes.base import MountError, VolumePlugin, mount_tmpfs, unmount

MEDIUM_MEMORY = "Memory"


def size_limit(volume: dict[str, Any]) -> int | None:
    """The volume's `emptyDir.sizeLimit` in bytes, None when unlimited."""
    limit = (volume.get("emptyDir") or {}).get("sizeLimit")
    if limit in (None, ""):
        return None
    return math.ceil(parse_quantity(str(limit)))


def _memory(resources: dict[str, Any] | None, kind: str = "limits") -> int:
    value = ((resources or {}).get(kind) or {}).get("memory")
    return math.ceil(parse_quantity(str(value))) if value not in (None, "") else 0


def pod_memory_limit(pod: dict[str, Any]) -> int | None:
    """The memory limit of the pod's cgroup (upstream's ResourceConfigForPod): the pod-level
    limit when set, else the containers' limits combined as upstream's PodLimits (regular
    containers and sidecars add up, a plain init container counts with the sidecars started
    before it, the larger of the two wins, plus the pod's overhead), but only when every
    container declares one; None otherwise."""
    spec = pod.get("spec") or {}
    pod_level = _memory(spec.get("resources"))
    if pod_level:
        return pod_level
    declared = True
    total = 0
    for container in spec.get("containers") or ():
        limit = _memory(container.get("resources"))
        declared = declared and limit > 0
        total += limit
    sidecars = 0
    init_peak = 0
    for container in spec.get("initContainers") or ():
        limit = _memory(container.get("resources"))
        if container.get("restartPolicy") == "Always":
            total += limit
            sidecars += limit
            counted = sidecars
        else:
            counted = limit + sidecars
        declared = declared and counted > 0
        init_peak = max(init_peak, counted)
    if not declared:
        return None
    total = max(total, init_peak)
    overhead = (spec.get("overhead") or {}).get("memory")
    if overhead not in (None, ""):
        total += math.ceil(parse_quantity(str(overhead)))
    return total


def memory_volume_size(pod: dict[str, Any], volume: dict[str, Any], node_allocatable_memory: int) -> int:
    """upstream calculateEmptyDirMemorySize: the tmpfs size of a `medium: Memory` emptyDir
    (0: unknown, no size given to the mount)."""
    size = node_allocatable_memory
    pod_limit = pod_memory_limit(pod)
    if pod_limit and (not size or pod_limit <= size):
        size = pod_limit
    volume_limit = size_limit(volume)
    if volume_limit and (not size or volume_limit <= size):
        size = volume_limit
    return size


def disk_usage(path: Path) -> int:
    """Bytes a directory tree takes (allocated blocks, as upstream's `du`), not crossing into
    other filesystems mounted below it; hard links counted once."""
    path = Path(path)
    try:
        root_device = os.lstat(path).st_dev
    except OSError:
        return 0
    seen: set[tuple[int, int]] = set()
    total = 0
    for directory, dirs, files in os.walk(path):
        for name in dirs + files:
            try:
                info = os.lstat(os.path.join(directory, name))
            except OSError:
                continue
            if info.st_dev != root_device:
                continue
            if info.st_nlink > 1:
                if (info.st_dev, info.st_ino) in seen:
                    continue
                seen.add((info.st_dev, info.st_ino))
            total += info.st_blocks * 512
        dirs[:] = [d for d in dirs if not os.path.ismount(os.path.join(directory, d))]
    return total


class EmptyDirPlugin(VolumePlugin):
    plugin_name = "kubernetes.io/empty-dir"
    source_field = "emptyDir"
    read_only = False
    refresh = False

    def is_memory(self, volume: dict[str, Any]) -> bool:
        return (volume.get("emptyDir") or {}).get("medium") == MEDIUM_MEMORY

    async def set_up(self, context, pod: dict[str, Any], volume: dict[str, Any], path: Path) -> None:
        medium = (volume.get("emptyDir") or {}).get("medium") or ""
        if medium not in ("", MEDIUM_MEMORY):
            raise MountError(f"emptyDir medium {medium!r} is not supported on this node")
        fresh = not path.is_dir()
        path.mkdir(parents=True, exist_ok=True)
        if medium == MEDIUM_MEMORY and not os.path.ismount(path):
            size = memory_volume_size(pod, volume, context.node_allocatable().get("memory") or 0)
            mount_tmpfs(path, size=size or None)
            fresh = True
        if fresh:
            # upstream: 0777 so any container user may write; fsGroup makes it the pod's group
            # with the setgid bit, so new files get the group too (SetVolumeOwnership).
            fs_group = ((pod.get("spec") or {}).get("securityContext") or {}).get("fsGroup")
            mode = 0o777
            if fs_group is not None:
                os.chown(path, -1, int(fs_group))
                mode |= 0o2000
            os.chmod(path, mode)

    def is_set_up(self, path: Path) -> bool:
        return path.is_dir()

    def tear_down(self, path: Path) -> None:
        unmount(path)
        shutil.rmtree(path, ignore_errors=True)
