"""The hostPath volume: a file or directory of the node itself, mounted as it is.

Nothing is copied and nothing is ever removed: the container mounts the node's path (with
`type` checked or created first, upstream's checkType), tear-down leaves it alone. A
`hostPath: /` gives the container the node's whole filesystem (book 5.6), which is why a
subPath of it is resolved with symlinks followed and refused when it leaves the volume.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Any

from pyk8s.kubelet.volumes.base import MountError, VolumePlugin

# type -> (predicate on an lstat-free stat result, upstream's "is not ..." words)
TYPE_CHECKS = {
    "Directory": (stat.S_ISDIR, "a directory"),
    "File": (stat.S_ISREG, "a file"),
    "Socket": (stat.S_ISSOCK, "a socket file"),
    "CharDevice": (stat.S_ISCHR, "a character device"),
    "BlockDevice": (stat.S_ISBLK, "a block device"),
}


def check_type(path: str, path_type: str | None) -> None:
    """Upstream's checkTypeInternal: `DirectoryOrCreate` makes a missing directory (0755,
    parents too), `FileOrCreate` a missing empty file (0644, parent must exist); the other
    types must already be there and be of that type; "" checks nothing."""
    if not path_type:
        return
    exists = os.path.exists(path)
    if path_type == "DirectoryOrCreate":
        if not exists:
            try:
                os.makedirs(path, 0o755, exist_ok=True)
            except OSError as error:
                raise MountError(f"mkdir {path}: {error.strerror.lower() if error.strerror else error}") from None
            return
        path_type = "Directory"
    elif path_type == "FileOrCreate":
        if not exists:
            try:
                os.close(os.open(path, os.O_CREAT | os.O_WRONLY, 0o644))
            except OSError as error:
                raise MountError(f"open {path}: {error.strerror.lower() if error.strerror else error}") from None
            return
        path_type = "File"
    check = TYPE_CHECKS.get(path_type)
    if check is None:
        raise MountError(f"{path_type} is an invalid volume type")
    predicate, words = check
    try:
        mode = os.stat(path).st_mode
    except OSError:
        mode = 0
    if not predicate(mode):
        raise MountError(f"hostPath type check failed: {path} is not {words}")


def no_backsteps(path: str) -> bool:
    return ".." not in path.split("/")


class HostPathPlugin(VolumePlugin):
    plugin_name = "kubernetes.io/host-path"
    source_field = "hostPath"
    read_only = False
    refresh = False

    async def set_up(self, context, pod: dict[str, Any], volume: dict[str, Any], path: Path) -> Path:
        source = volume["hostPath"]
        host_path = source.get("path") or ""
        if not no_backsteps(host_path):
            raise MountError(f"invalid HostPath `{host_path}`: must not contain '..'")
        check_type(host_path, source.get("type"))
        return Path(host_path)

    def is_set_up(self, path: Path) -> bool:
        return False  # nothing of it lives under the pod's directory

    def tear_down(self, path: Path) -> None:
        pass  # the node's files are never removed
