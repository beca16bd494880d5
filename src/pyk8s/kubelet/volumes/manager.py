"""The volume manager: the pod worker's one entry point to volumes.

- `set_up(pod)` before the pod's sandbox and containers exist, and again on every sync:
  each volume the node has a plugin for is set up (idempotent: unchanged files are not
  rewritten). It returns False while some volume has never been set up (a missing
  ConfigMap): the pod waits in ContainerCreating with upstream's FailedMount event and is
  woken when the object appears. A volume set up once stays as it is when its object
  goes away (upstream keeps the files of a deleted ConfigMap).
- `container_mounts(pod, container)`: the CRI mounts of a container's volumeMounts
  (read-only for API-data volumes, subPath resolved to the file or directory it names at
  container start, so a subPath mount does not follow updates, as upstream).
- live updates: ReferencedObjects watches the ConfigMaps/Secrets pods use and calls back
  here; the pods using a changed object get the affected volumes rewritten at once, on
  the event loop, without waking the whole pod worker.
- `tear_down(uid)` when the pod's runtime pod is removed; `remove_orphans(known)` for pod
  directories no pod owns (deleted while the agent was down, `remove_all`).
Nothing lives only in memory: after an agent restart the first sync of each running pod
finds its volumes in place (tmpfs mounts outlive the agent), registers its references
again and so resumes live updates.
"""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
from pathlib import Path
from typing import Any, Callable

from pyk8s.api import errors
from pyk8s.api.resources import lookup
from pyk8s.kubelet import envvars
from pyk8s.kubelet.volumes.base import MountError, VolumeContext, VolumeNotReady, VolumePlugin
from pyk8s.kubelet.volumes.claim import PersistentVolumeClaimPlugin
from pyk8s.kubelet.volumes.configmap import ConfigMapPlugin
from pyk8s.kubelet.volumes.downwardapi import DownwardAPIPlugin, node_allocatable
from pyk8s.kubelet.volumes.emptydir import EmptyDirPlugin, disk_usage, size_limit
from pyk8s.kubelet.volumes.hostpath import HostPathPlugin
from pyk8s.kubelet.volumes.objects import Key, ReferencedObjects
from pyk8s.kubelet.volumes.projected import ProjectedPlugin
from pyk8s.kubelet.volumes.secret import SecretPlugin

log = logging.getLogger("pyk8s.kubelet.volumes")
PERSISTENT_VOLUMES = lookup("", "v1", "persistentvolumes")
# How often emptyDir usage is measured against sizeLimit (upstream's eviction manager
# monitors every 10 s).
SIZE_LIMIT_PERIOD = 10.0
# CRI MountPropagation for the API's mountPropagation (upstream's translateMountPropagation).
PROPAGATION = {None: 0, "None": 0, "HostToContainer": 1, "Bidirectional": 2}


def default_plugins() -> list[VolumePlugin]:
    return [ConfigMapPlugin(), SecretPlugin(), DownwardAPIPlugin(), ProjectedPlugin(), EmptyDirPlugin(),
            HostPathPlugin(), PersistentVolumeClaimPlugin()]


class ContainerMountError(Exception):
    """A container's volumeMounts cannot be made (a subPath escaping its volume, a
    subPathExpr naming a missing variable); str() is upstream's message, shown as the
    container's CreateContainerConfigError."""


class VolumeManager:
    def __init__(self, client, pods_root: Path, *, wake: Callable[[str], None],
                 event: Callable[..., None], plugins: list[VolumePlugin] | None = None,
                 evict: Callable[[str, str], None] | None = None):
        self.client = client
        self.pods_root = Path(pods_root)
        self.wake = wake
        self.event = event
        self.evict = evict
        self.plugins = {plugin.source_field: plugin for plugin in (plugins or default_plugins())}
        self.objects = ReferencedObjects(client, self._object_changed)
        self.context = VolumeContext(self._get_object, node_allocatable, client)
        # (UID, volume name) -> the host path containers mount, for volumes that live
        # elsewhere than under the pod's directory (hostPath, claims) and every set-up-once one
        self.sources: dict[tuple[str, str], Path] = {}
        self._size_checker: asyncio.Task | None = None
        self.pods: dict[str, dict[str, Any]] = {}  # UID -> the pod as last set up
        self.ready: set[str] = set()               # every volume set up at least once
        self._locks: dict[str, asyncio.Lock] = {}
        self._pending: dict[str, set[tuple[str, str]]] = {}  # UID -> changed (kind, name)
        self._recheck: set[str] = set()
        self._tasks: set[asyncio.Task] = set()

    # ---- where volumes live --------------------------------------------------------------
    def plugin_for(self, volume: dict[str, Any]) -> VolumePlugin | None:
        for field, plugin in self.plugins.items():
            if volume.get(field) is not None:
                return plugin
        return None

    def volume_path(self, uid: str, plugin: VolumePlugin, name: str) -> Path:
        return self.pods_root / uid / "volumes" / plugin.directory_name() / name

    async def _get_object(self, kind: str, namespace: str, name: str) -> dict[str, Any] | None:
        if kind == "persistentvolumes":  # cluster-scoped, read once per pod: no watch
            try:
                return await self.client.get(PERSISTENT_VOLUMES, name)
            except errors.NotFound:
                return None
        return await self.objects.get(kind, namespace, name)

    def _lock(self, uid: str) -> asyncio.Lock:
        lock = self._locks.get(uid)
        if lock is None:
            lock = self._locks[uid] = asyncio.Lock()
        return lock

    def _references(self, pod: dict[str, Any]) -> set[Key]:
        namespace = pod["metadata"]["namespace"]
        keys: set[Key] = set()
        for volume in pod["spec"].get("volumes") or []:
            plugin = self.plugin_for(volume)
            if plugin is not None:
                keys |= {(kind, namespace, name) for kind, name in plugin.references(volume)}
        return keys

    # ---- set up ------------------------------------------------------------------------
    async def set_up(self, pod: dict[str, Any]) -> bool:
        """Set up (or refresh) every volume of `pod`; False while one never could be."""
        uid = pod["metadata"]["uid"]
        self.pods[uid] = pod
        self.objects.use(uid, self._references(pod))
        async with self._lock(uid):
            ready = await self._set_up_volumes(pod)
        if ready:
            self.ready.add(uid)
            if self.evict is not None and any(size_limit(v) for v in pod["spec"].get("volumes") or []
                                              if v.get("emptyDir") is not None):
                self._start_size_checker()
        elif uid in self._recheck:
            self.wake(uid)  # an object it waits for arrived while it was being set up
        self._recheck.discard(uid)
        return ready

    async def _set_up_volumes(self, pod: dict[str, Any], changed: set[tuple[str, str]] | None = None) -> bool:
        uid = pod["metadata"]["uid"]
        ready = True
        for volume in pod["spec"].get("volumes") or []:
            plugin = self.plugin_for(volume)
            if plugin is None or (changed is not None and not plugin.references(volume) & changed):
                continue
            key = (uid, volume["name"])
            if not plugin.refresh and key in self.sources:
                continue  # set up once for the pod's life, as upstream mounts it once
            path = self.volume_path(uid, plugin, volume["name"])
            try:
                source = await plugin.set_up(self.context, pod, volume, path)
            except (MountError, OSError) as error:
                if key in self.sources or plugin.is_set_up(path):
                    log.info("volume %s of pod %s keeps its files: %s", volume["name"], uid, error)
                    continue
                ready = False
                message = str(error) if isinstance(error, VolumeNotReady) else \
                    f'MountVolume.SetUp failed for volume "{volume["name"]}" : {error}'
                self.event(pod, "Warning", "FailedMount", message)
                continue
            if source is not None or not plugin.refresh:
                self.sources[key] = Path(source) if source is not None else path
        return ready

    # ---- live updates ------------------------------------------------------------------
    def _object_changed(self, kind: str, namespace: str, name: str) -> None:
        for uid in self.objects.pods_using(kind, namespace, name):
            if uid not in self.ready:
                if self._lock(uid).locked():
                    self._recheck.add(uid)
                else:
                    self.wake(uid)
                continue
            pending = self._pending.get(uid)
            if pending is not None:
                pending.add((kind, name))
                continue
            self._pending[uid] = {(kind, name)}
            task = asyncio.create_task(self._refresh(uid), name=f"volumes-{uid[:8]}")
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _refresh(self, uid: str) -> None:
        async with self._lock(uid):
            changed = self._pending.pop(uid, set())
            pod = self.pods.get(uid)
            if pod is None:
                return
            try:
                await self._set_up_volumes(pod, changed)
            except Exception:  # noqa: BLE001 - the next sync retries
                log.exception("refreshing volumes of pod %s failed", uid)

    # ---- containers --------------------------------------------------------------------
    def container_mounts(self, pod: dict[str, Any], container: dict[str, Any],
                         env: list[tuple[str, str]] | None = None) -> list[dict[str, Any]]:
        """CRI Mounts for the container's volumeMounts of volumes this manager set up
        (upstream's makeMounts). `env` is the container's environment, for subPathExpr.
        Raises ContainerMountError with upstream's message for a subPath it refuses."""
        uid = pod["metadata"]["uid"]
        volumes = {volume["name"]: volume for volume in pod["spec"].get("volumes") or []}
        mounts = []
        for mount in container.get("volumeMounts") or []:
            volume = volumes.get(mount["name"])
            plugin = self.plugin_for(volume) if volume is not None else None
            if plugin is None:
                continue
            host_path = self.sources.get((uid, volume["name"])) or self.volume_path(uid, plugin, volume["name"])
            sub = mount.get("subPath") or ""
            if mount.get("subPathExpr"):
                sub = expand_sub_path_expr(mount["subPathExpr"], env or [])
            if sub:
                host_path = checked_sub_path(host_path, sub, mount["name"], container["name"])
            entry = {"container_path": mount["mountPath"], "host_path": str(host_path),
                     "readonly": plugin.mount_read_only(volume) or bool(mount.get("readOnly"))}
            propagation = PROPAGATION.get(mount.get("mountPropagation"), 0)
            if propagation:
                entry["propagation"] = propagation
            mounts.append(entry)
        return mounts

    # ---- emptyDir sizeLimit ------------------------------------------------------------
    def _start_size_checker(self) -> None:
        if self._size_checker is None or self._size_checker.done():
            self._size_checker = asyncio.create_task(self._check_size_limits_forever(), name="emptydir-limits")
            self._tasks.add(self._size_checker)
            self._size_checker.add_done_callback(self._tasks.discard)

    async def _check_size_limits_forever(self) -> None:
        while True:
            await asyncio.sleep(SIZE_LIMIT_PERIOD)
            try:
                if not await self.check_size_limits():
                    return  # no pod with a limit left; the next one starts the check again
            except Exception:  # noqa: BLE001 - measured again next period
                log.exception("checking emptyDir size limits failed")

    async def check_size_limits(self) -> bool:
        """Measure every emptyDir with a sizeLimit (upstream's localStorageEviction) and have
        the pod evicted, with upstream's message, when one is over. Returns whether any
        pod with a limit is still here."""
        limited = False
        for uid, pod in list(self.pods.items()):
            if uid not in self.ready:
                continue
            for volume in pod["spec"].get("volumes") or []:
                limit = size_limit(volume) if volume.get("emptyDir") is not None else None
                if not limit:
                    continue
                limited = True
                path = self.volume_path(uid, self.plugins["emptyDir"], volume["name"])
                used = await asyncio.to_thread(disk_usage, path)
                if used > limit and self.evict is not None:
                    quantity = volume["emptyDir"]["sizeLimit"]
                    self.evict(uid, f'Usage of EmptyDir volume "{volume["name"]}" exceeds the limit "{quantity}". ')
                    break
        return limited

    # ---- tear down ---------------------------------------------------------------------
    async def tear_down(self, uid: str) -> None:
        """Unmount and remove every volume of pod `uid` and forget its references."""
        self.objects.release(uid)
        self.pods.pop(uid, None)
        for key in [key for key in self.sources if key[0] == uid]:
            del self.sources[key]
        self.ready.discard(uid)
        self._pending.pop(uid, None)
        async with self._lock(uid):
            root = self.pods_root / uid / "volumes"
            by_directory = {plugin.directory_name(): plugin for plugin in self.plugins.values()}
            if root.is_dir():
                for plugin_dir in root.iterdir():
                    plugin = by_directory.get(plugin_dir.name) or VolumePlugin()
                    for volume_dir in plugin_dir.iterdir() if plugin_dir.is_dir() else []:
                        try:
                            plugin.tear_down(volume_dir)
                        except OSError as error:
                            log.warning("tearing down %s failed: %s", volume_dir, error)
                shutil.rmtree(root, ignore_errors=True)
        self._locks.pop(uid, None)

    async def remove_orphans(self, known: set[str]) -> None:
        """Tear down the volumes of pod directories whose pod is not in `known`."""
        if not self.pods_root.is_dir():
            return
        for directory in self.pods_root.iterdir():
            if directory.name not in known and (directory / "volumes").is_dir():
                log.info("removing volumes of unknown pod %s", directory.name)
                await self.tear_down(directory.name)

    async def stop(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.objects.stop()


def expand_sub_path_expr(expression: str, env: list[tuple[str, str]]) -> str:
    """Upstream's ExpandContainerVolumeMounts: `$(VAR)` from the container's environment;
    a variable that is missing or empty is an error."""
    values = dict(env)
    missing = sorted({name for name in _references(expression) if not values.get(name)})
    if missing:
        raise ContainerMountError(f"missing value for {', '.join(missing)}")
    return envvars.expand(expression, values)


def _references(expression: str) -> list[str]:
    """The names `$(NAME)` refers to, `$$` escapes skipped."""
    names, cursor = [], 0
    while True:
        cursor = expression.find("$", cursor)
        if cursor < 0 or cursor + 1 >= len(expression):
            return names
        if expression[cursor + 1] == "(":
            closing = expression.find(")", cursor + 2)
            if closing < 0:
                return names
            names.append(expression[cursor + 2:closing])
            cursor = closing + 1
        else:
            cursor += 2


def checked_sub_path(volume_path: Path, sub: str, mount_name: str, container_name: str) -> Path:
    """The host path of a volumeMount's subPath, with upstream's checks: not absolute, no
    `..`, created as a directory when missing (with the volume's mode), and refused when it
    resolves (symlinks followed) outside its volume."""
    if os.path.isabs(sub):
        raise ContainerMountError(f"error SubPath `{sub}` must not be an absolute path")
    if ".." in sub.split("/"):
        raise ContainerMountError(f"unable to provision SubPath `{sub}`: must not contain '..'")
    resolved = sub_path(volume_path, sub)
    if resolved is None:
        log.warning("subPath %r of volumeMount %s of container %s resolves outside its volume: refused", sub,
                    mount_name, container_name)
        raise ContainerMountError(f'failed to prepare subPath for volumeMount "{mount_name}" of container '
                                  f'"{container_name}"')
    return resolved


def sub_path(volume_path: Path, sub: str) -> Path | None:
    """The host path a subPath names, symlinks resolved (so the mount holds the file of the
    current payload, not the `..data` link); created as a directory when missing, as
    upstream does. None when it resolves outside the volume."""
    root = os.path.realpath(volume_path)
    target = os.path.realpath(os.path.join(root, sub))
    if os.path.commonpath([root, target]) != root:
        return None
    if not os.path.lexists(target):
        mode = os.stat(root).st_mode & 0o7777  # upstream: the volume's own mode
        missing = []
        parent = target
        while not os.path.lexists(parent):
            missing.append(parent)
            parent = os.path.dirname(parent)
        for directory in reversed(missing):
            os.mkdir(directory)
            os.chmod(directory, mode)
    return Path(target)
