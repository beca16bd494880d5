"""The emptyDir volume: a directory that lives as long as the pod on this node.

It sits in `<pod dir>/volumes/kubernetes.io~empty-dir/<name>` (upstream's layout), so a
container that restarts finds what its predecessor wrote, and it goes when the pod's
volumes are torn down. `medium: Memory` puts it on a tmpfs of its own (sized by
`sizeLimit` when given, as upstream's SizeMemoryBackedVolumes); on disk, `sizeLimit` is
enforced by the volume manager's periodic usage check, which has the pod evicted.
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
            limit = size_limit(volume)
            mount_tmpfs(path, size=limit)
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
