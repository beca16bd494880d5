"""The ConfigMaps, Secrets and PersistentVolumeClaims this node's pods use, kept current by watches.

Upstream's kubelet watches each referenced object (its watch-based configmap/secret
manager), and so does this cache: one informer per referenced object, a list and watch
narrowed by `fieldSelector=metadata.name=NAME`, which is all the Node authorizer lets a
kubelet read (a namespace-wide list of Secrets or ConfigMaps is refused). A watch runs while
some pod of this node references its object and stops when the last such pod goes.
Immutable objects are read once and never watched again (upstream): their first copy is
kept.

`on_change(kind, namespace, name)` is called for every add, update and delete of a
referenced object (not for frozen immutable ones); the volume manager refreshes the pods
that use it.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, Callable

from pyk8s.api.resources import lookup
from pyk8s.client.informer import Informer
from pyk8s.kubelet.volumes.base import MountError

log = logging.getLogger("pyk8s.kubelet.volumes")
RESOURCES = {"configmaps": lookup("", "v1", "configmaps"), "secrets": lookup("", "v1", "secrets"),
             "persistentvolumeclaims": lookup("", "v1", "persistentvolumeclaims")}
# What must change for a pod to care: files for ConfigMaps and Secrets, binding for claims.
WATCHED_FIELDS = {"configmaps": ("data", "binaryData"), "secrets": ("data", "binaryData"),
                  "persistentvolumeclaims": ("spec", "status")}
SYNC_TIMEOUT = 10.0

Key = tuple[str, str, str]  # kind, namespace, name


class ReferencedObjects:
    def __init__(self, client, on_change: Callable[[str, str, str], None]):
        self.client = client
        self.on_change = on_change
        self.users: dict[Key, set[str]] = {}        # object -> pod UIDs
        self.by_pod: dict[str, set[Key]] = {}       # pod UID -> objects
        self.frozen: dict[Key, dict[str, Any]] = {}  # immutable objects, as first read
        self.informers: dict[Key, tuple[Informer, asyncio.Task]] = {}

    # ---- references --------------------------------------------------------------------
    def use(self, uid: str, keys: set[Key]) -> None:
        """Pod `uid` references exactly `keys` now."""
        old = self.by_pod.get(uid, set())
        if old == keys:
            return
        for key in old - keys:
            self._drop(uid, key)
        for key in keys - old:
            self.users.setdefault(key, set()).add(uid)
        self.by_pod[uid] = set(keys)
        for key in old ^ keys:
            self._update_watch(key)

    def release(self, uid: str) -> None:
        self.use(uid, set())
        self.by_pod.pop(uid, None)

    def _drop(self, uid: str, key: Key) -> None:
        users = self.users.get(key)
        if users is not None:
            users.discard(uid)
            if not users:
                del self.users[key]
                self.frozen.pop(key, None)

    def pods_using(self, kind: str, namespace: str, name: str) -> set[str]:
        return set(self.users.get((kind, namespace, name), ()))

    # ---- reads -------------------------------------------------------------------------
    async def get(self, kind: str, namespace: str, name: str) -> dict[str, Any] | None:
        key = (kind, namespace, name)
        if key in self.frozen:
            return self.frozen[key]
        informer = self._informer(key)
        try:
            await asyncio.wait_for(informer.synced.wait(), SYNC_TIMEOUT)
        except asyncio.TimeoutError:
            raise MountError(f"failed to sync {kind[:-1]} cache: timed out waiting for the condition") from None
        obj = informer.get(f"{namespace}/{name}")
        if obj is not None and obj.get("immutable") is True and key in self.users:
            self.frozen[key] = obj
            self._update_watch(key)
        return obj

    # ---- watches -----------------------------------------------------------------------
    def _update_watch(self, key: Key) -> None:
        if key in self.users and key not in self.frozen:
            self._informer(key)
            return
        entry = self.informers.pop(key, None)
        if entry is not None:
            entry[1].cancel()

    def _informer(self, key: Key) -> Informer:
        entry = self.informers.get(key)
        if entry is None:
            kind, namespace, name = key
            informer = Informer(self.client, RESOURCES[kind], namespace=namespace,
                                field_selector=f"metadata.name={name}")
            informer.add_handlers(on_add=lambda obj: self._changed(kind, obj),
                                  on_update=lambda old, new: self._changed(kind, new, old),
                                  on_delete=lambda obj: self._changed(kind, obj))
            task = asyncio.create_task(informer.run(), name=f"volume-{kind}-{namespace}-{name}")
            entry = self.informers[key] = (informer, task)
        return entry[0]

    def _changed(self, kind: str, obj: dict[str, Any], old: dict[str, Any] | None = None) -> None:
        meta = obj["metadata"]
        key = (kind, meta.get("namespace", ""), meta["name"])
        if key not in self.users or key in self.frozen:
            return
        if old is not None and all(old.get(field) == obj.get(field) for field in WATCHED_FIELDS[kind]) and \
                bool(old["metadata"].get("deletionTimestamp")) == bool(meta.get("deletionTimestamp")):
            return  # metadata only: nothing a volume shows changed
        self.on_change(*key)

    async def stop(self) -> None:
        tasks = [task for _, task in self.informers.values()]
        self.informers.clear()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
