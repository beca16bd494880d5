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

from pyk8s.kubelet.volumes.base import MountError, VolumeContext, VolumePlugin
from pyk8s.kubelet.volumes.configmap import ConfigMapPlugin
from pyk8s.kubelet.volumes.downwardapi import DownwardAPIPlugin, node_allocatable
from pyk8s.kubelet.volumes.objects import Key, ReferencedObjects
from pyk8s.kubelet.volumes.projected import ProjectedPlugin
from pyk8s.kubelet.volumes.secret import SecretPlugin

log = logging.getLogger("pyk8s.kubelet.volumes")


def default_plugins() -> list[VolumePlugin]:
    return [ConfigMapPlugin(), SecretPlugin(), DownwardAPIPlugin(), ProjectedPlugin()]


class VolumeManager:
    def __init__(self, client, pods_root: Path, *, wake: Callable[[str], None],
                 event: Callable[..., None], plugins: list[VolumePlugin] | None = None):
        self.pods_root = Path(pods_root)
        self.wake = wake
        self.event = event
        self.plugins = {plugin.source_field: plugin for plugin in (plugins or default_plugins())}
        self.objects = ReferencedObjects(client, self._object_changed)
        self.context = VolumeContext(self.objects.get, node_allocatable, client)
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
            path = self.volume_path(uid, plugin, volume["name"])
            try:
                await plugin.set_up(self.context, pod, volume, path)
            except (MountError, OSError) as error:
                if plugin.is_set_up(path):
                    log.info("volume %s of pod %s keeps its files: %s", volume["name"], uid, error)
                    continue
                ready = False
                self.event(pod, "Warning", "FailedMount",
                           f'MountVolume.SetUp failed for volume "{volume["name"]}" : {error}')
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
    def container_mounts(self, pod: dict[str, Any], container: dict[str, Any]) -> list[dict[str, Any]]:
        """CRI Mounts for the container's volumeMounts of volumes this manager set up."""
        uid = pod["metadata"]["uid"]
        volumes = {volume["name"]: volume for volume in pod["spec"].get("volumes") or []}
        mounts = []
        for mount in container.get("volumeMounts") or []:
            volume = volumes.get(mount["name"])
            plugin = self.plugin_for(volume) if volume is not None else None
            if plugin is None:
                continue
            host_path = self.volume_path(uid, plugin, volume["name"])
            if mount.get("subPath"):
                host_path = sub_path(host_path, mount["subPath"])
                if host_path is None:
                    log.warning("subPath %r of volume %s escapes the volume: not mounted", mount["subPath"],
                                volume["name"])
                    continue
            mounts.append({"container_path": mount["mountPath"], "host_path": str(host_path),
                           "readonly": plugin.read_only or bool(mount.get("readOnly"))})
        return mounts

    # ---- tear down ---------------------------------------------------------------------
    async def tear_down(self, uid: str) -> None:
        """Unmount and remove every volume of pod `uid` and forget its references."""
        self.objects.release(uid)
        self.pods.pop(uid, None)
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


def sub_path(volume_path: Path, sub: str) -> Path | None:
    """The host path a subPath names, symlinks resolved (so the mount holds the file of the
    current payload, not the `..data` link); created as a directory when missing, as
    upstream does. None when it resolves outside the volume."""
    root = os.path.realpath(volume_path)
    target = os.path.realpath(os.path.join(root, sub))
    if target != root and not target.startswith(root + os.sep):
        return None
    if not os.path.lexists(target):
        os.makedirs(target, exist_ok=True)
    return Path(target)
