"""The volume plugin interface, and the base every projected-files plugin shares.

A plugin handles one volume source field of the pod spec (`configMap`, `secret`, ...):
- `references(volume)`: the API objects (kind, name) whose changes must refresh it;
- `set_up(context, pod, volume, path)`: make `path` hold the volume (first time and on
  every refresh: it must be idempotent and cheap when nothing changed); raises MountError;
- `is_set_up(path)`: whether an earlier set-up (maybe by a kubelet before a restart) left
  the volume in place;
- `tear_down(path)`: remove it (unmounting what it mounted).
The volume lives in `<pod dir>/volumes/<plugin name with ~ for />/<volume name>` as upstream.
emptyDir, hostPath and persistentVolumeClaim implement the same calls; their `set_up` may
return the host path containers mount instead (`refresh = False`: set up once per pod).
"""

from __future__ import annotations

import ctypes
import errno
import os
import shutil
from pathlib import Path
from typing import Any, Awaitable, Callable, Iterable

from pyk8s.kubelet.volumes.atomic_writer import (AtomicWriter, FileProjection, PayloadError,
                                                 set_volume_ownership)

MNT_DETACH = 2


class MountError(Exception):
    """A volume could not be set up; str() is upstream's reason (`configmap "x" not found`)."""


class VolumeNotReady(MountError):
    """A volume that cannot be set up yet for a reason outside the plugin (an unbound claim);
    str() is the whole FailedMount event message."""


class VolumeContext:
    """What plugins may ask the node for: API objects of the pod's namespace (from the
    watch-fed cache), node allocatable resources, and API calls for sources that need one
    (the serviceAccountToken source's TokenRequest)."""

    def __init__(self, get_object: Callable[[str, str, str], Awaitable[dict[str, Any] | None]],
                 node_allocatable: Callable[[], dict[str, int]], client=None):
        self.get_object = get_object
        self.node_allocatable = node_allocatable
        self.client = client


class VolumePlugin:
    plugin_name = ""        # upstream's name: kubernetes.io/configmap
    source_field = ""       # the pod volume's source field: configMap
    read_only = True        # container mounts of it are read-only whatever the pod says
    # Set up again on every sync (API-data volumes refresh their files); False: set up once
    # per pod (emptyDir, hostPath, claims), later syncs leave it as it is.
    refresh = True

    def directory_name(self) -> str:
        return self.plugin_name.replace("/", "~")

    def references(self, volume: dict[str, Any]) -> set[tuple[str, str]]:
        return set()

    def mount_read_only(self, volume: dict[str, Any]) -> bool:
        """Whether every container mount of this volume is read-only."""
        return self.read_only

    async def set_up(self, context: VolumeContext, pod: dict[str, Any], volume: dict[str, Any],
                     path: Path) -> Path | None:
        """Make the volume ready; returns the host path containers mount when it is not
        `path` (a hostPath, a claim's PersistentVolume), else None."""
        raise NotImplementedError

    def is_set_up(self, path: Path) -> bool:
        return path.is_dir()

    def tear_down(self, path: Path) -> None:
        unmount(path)
        shutil.rmtree(path, ignore_errors=True)


class ProjectedFilesPlugin(VolumePlugin):
    """configMap, secret, downwardAPI and projected: a payload of files written by the atomic
    writer, on tmpfs when it may hold secrets (upstream wraps those in a memory emptyDir)."""
    tmpfs = False

    async def payload(self, context: VolumeContext, pod: dict[str, Any],
                      volume: dict[str, Any]) -> dict[str, FileProjection]:
        raise NotImplementedError

    def is_set_up(self, path: Path) -> bool:
        return os.path.lexists(path / "..data") and (not self.tmpfs or os.path.ismount(path))

    async def set_up(self, context: VolumeContext, pod: dict[str, Any], volume: dict[str, Any], path: Path) -> None:
        payload = await self.payload(context, pod, volume)
        self.prepare_dir(path)
        fs_group = ((pod.get("spec") or {}).get("securityContext") or {}).get("fsGroup")
        set_perms = (lambda directory: set_volume_ownership(directory, int(fs_group))) if fs_group is not None else None
        try:
            written = AtomicWriter(path).write(payload, set_perms)
        except PayloadError as error:
            raise MountError(str(error)) from None
        if written and set_perms is not None:
            set_perms(path)

    def prepare_dir(self, path: Path) -> None:
        if self.tmpfs:
            if not os.path.ismount(path):
                path.mkdir(parents=True, exist_ok=True)
                mount_tmpfs(path)
                os.chmod(path, 0o1777)  # a fresh tmpfs root, as upstream's memory emptyDir shows it
        elif not path.is_dir():
            path.mkdir(parents=True, exist_ok=True)
            os.chmod(path, 0o777)  # upstream's emptyDir wrapper


_libc = None


def _mount_call():
    global _libc
    if _libc is None:
        _libc = ctypes.CDLL(None, use_errno=True)
    return _libc


def mount_tmpfs(path: Path, size: int | None = None) -> None:
    """A private tmpfs at `path` (at most `size` bytes): its contents never touch the node's disk."""
    libc = _mount_call()
    options = b"mode=1777" + (f",size={size}".encode() if size else b"")
    if libc.mount(b"tmpfs", os.fsencode(str(path)), b"tmpfs", 0, options) != 0:
        code = ctypes.get_errno()
        raise MountError(f"mount of tmpfs at {path} failed: {os.strerror(code)}")


def unmount(path: Path) -> None:
    """Lazily unmount `path` while it is a mount point (stacked mounts included)."""
    libc = _mount_call()
    for _ in range(8):
        if not os.path.ismount(path):
            return
        if libc.umount2(os.fsencode(str(path)), MNT_DETACH) != 0:
            code = ctypes.get_errno()
            if code in (errno.EINVAL, errno.ENOENT):
                return
            raise OSError(code, f"umount {path}: {os.strerror(code)}")


def mode_of(value: Any, default: int = 0o644) -> int:
    return int(value) if value is not None else default


# -- what configMap, secret and projected volumes share ---------------------------------------

def key_payload(keys: Iterable[str], value: Callable[[str], bytes | None], items: list[dict[str, Any]] | None,
                default_mode: int, optional: bool, missing_key_message: str) -> dict[str, FileProjection]:
    """Upstream's MakePayload for keyed objects (configmap and secret): every key in `keys`
    at `default_mode`, or only `items` (key -> path, per-item mode); an item whose key has
    no value fails with `missing_key_message` and the key, unless optional."""
    payload: dict[str, FileProjection] = {}
    if not items:
        for key in keys:
            payload[key] = FileProjection(value(key) or b"", default_mode)
        return payload
    for item in items:
        content = value(item["key"])
        if content is None:
            if optional:
                continue
            raise MountError(f"{missing_key_message}: {item['key']}")
        payload[item["path"]] = FileProjection(content, mode_of(item.get("mode"), default_mode))
    return payload


async def get_referenced_object(context: VolumeContext, resource: str, kind: str, namespace: str, name: str,
                                optional: bool) -> dict[str, Any]:
    """The object a volume source names, {} when it is missing and optional. The kubelet's
    object cache names the resource in the singular (upstream): `configmap "x" not found`."""
    found = await context.get_object(resource, namespace, name)
    if found is None:
        if not optional:
            raise MountError(f'{kind} "{name}" not found')
        found = {}
    return found
