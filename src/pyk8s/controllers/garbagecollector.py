"""The garbage collector (upstream's pkg/controller/garbagecollector).

It keeps an ownerReference graph over every kind in the catalogue that can own or be owned
(informers on each; Events are left out, as upstream ignores them) and works one object
at a time, keyed by uid:

- background propagation: an object whose owners are all gone (no object with the
  owner's uid exists, checked with a live GET before deleting, because another kind's
  informer may simply be behind) is deleted;
- foreground propagation: an owner marked for deletion with the `foregroundDeletion`
  finalizer has its dependents deleted; dependents that themselves have dependents are
  deleted in the foreground too; once no dependent with `blockOwnerDeletion` remains the
  finalizer is removed and the API server removes the owner;
- orphan propagation: an owner marked for deletion with the `orphan` finalizer has the
  ownerReferences to it removed from its dependents, then the finalizer is removed.

Pods bound to a node are deleted gracefully by the API server and stay Terminating until
their kubelet removes them; a foreground owner waits for them, as upstream does.
"""

from __future__ import annotations

import logging
from typing import Any

from pyk8s.api import errors
from pyk8s.api.resources import RESOURCES, Resource, by_api_version_kind
from pyk8s.client import resource_path
from pyk8s.client.informer import object_key
from pyk8s.controllers.base import Controller

log = logging.getLogger("pyk8s.controllers.gc")

ORPHAN_FINALIZER = "orphan"
FOREGROUND_FINALIZER = "foregroundDeletion"

# Events are never owners and are far too many to graph (upstream ignores them too).
IGNORED_KINDS = {("", "events"), ("events.k8s.io", "events")}


def graphed_resources() -> list[Resource]:
    return [r for r in RESOURCES
            if (r.group, r.plural) not in IGNORED_KINDS and {"list", "watch", "delete"} <= set(r.verbs)]


def owner_uids(obj: dict[str, Any]) -> list[str]:
    return [ref["uid"] for ref in obj["metadata"].get("ownerReferences") or [] if ref.get("uid")]


def is_deleting_dependents(obj: dict[str, Any]) -> bool:
    meta = obj["metadata"]
    return bool(meta.get("deletionTimestamp")) and FOREGROUND_FINALIZER in (meta.get("finalizers") or [])


def is_orphaning(obj: dict[str, Any]) -> bool:
    meta = obj["metadata"]
    return bool(meta.get("deletionTimestamp")) and ORPHAN_FINALIZER in (meta.get("finalizers") or [])


def classify_owners(refs: list[dict[str, Any]], owner_state: dict[str, str]) -> tuple[list, list, list]:
    """Splits ownerReferences as upstream's attemptToDeleteItem does: `solid` owners exist
    and are not waiting for their dependents, `dangling` ones are gone, and `waiting` ones
    are being deleted in the foreground. owner_state maps uid → "solid"|"dangling"|"waiting"."""
    solid, dangling, waiting = [], [], []
    for ref in refs:
        state = owner_state.get(ref.get("uid"), "solid")
        (solid if state == "solid" else dangling if state == "dangling" else waiting).append(ref)
    return solid, dangling, waiting


def deletion_policy_for(obj: dict[str, Any]) -> str:
    """The propagation policy for an object that has no solid owner left: its own
    finalizers decide, Background by default (upstream's attemptToDeleteItem)."""
    finalizers = obj["metadata"].get("finalizers") or []
    if ORPHAN_FINALIZER in finalizers:
        return "Orphan"
    if FOREGROUND_FINALIZER in finalizers:
        return "Foreground"
    return "Background"


def _graph_relevant_change(old: dict[str, Any], new: dict[str, Any]) -> bool:
    old_meta, new_meta = old["metadata"], new["metadata"]
    return any(old_meta.get(field) != new_meta.get(field)
               for field in ("ownerReferences", "deletionTimestamp", "finalizers", "uid"))


class GarbageCollector(Controller):
    name = "garbagecollector"
    workers = 4

    def __init__(self, client):
        super().__init__(client)
        self.resources = graphed_resources()
        self.informers_by_resource = {}
        # uid → (resource, informer cache key): the graph's nodes.
        self.nodes: dict[str, tuple[Resource, str]] = {}
        # owner uid → dependent uids: the graph's edges (the owner need not exist).
        self.dependents: dict[str, set[str]] = {}
        for resource in self.resources:
            informer = self.informer(resource)
            self.informers_by_resource[resource] = informer
            informer.add_handlers(
                on_add=lambda obj, r=resource: self._observe(r, obj),
                on_update=lambda old, new, r=resource: self._observe_update(r, old, new),
                on_delete=lambda obj, r=resource: self._forget(obj))

    # -- the graph --------------------------------------------------------------------

    def _observe(self, resource: Resource, obj: dict[str, Any]) -> None:
        uid = obj["metadata"].get("uid")
        if not uid:
            return
        self.nodes[uid] = (resource, object_key(obj))
        for owner in owner_uids(obj):
            self.dependents.setdefault(owner, set()).add(uid)
        if owner_uids(obj) or is_orphaning(obj) or is_deleting_dependents(obj):
            self.queue.add(uid)
        if is_deleting_dependents(obj):
            for dependent in self.dependents.get(uid, ()):
                self.queue.add(dependent)

    def _observe_update(self, resource: Resource, old: dict[str, Any], new: dict[str, Any]) -> None:
        if not _graph_relevant_change(old, new):
            return
        uid = new["metadata"].get("uid")
        for owner in set(owner_uids(old)) - set(owner_uids(new)):
            self._unlink(owner, uid)
            # An owner waiting for this dependent may now be done.
            self.queue.add(owner)
        if old["metadata"].get("uid") != uid:
            self._forget(old)
        self._observe(resource, new)

    def _unlink(self, owner: str, dependent: str | None) -> None:
        dependents = self.dependents.get(owner)
        if dependents is not None:
            dependents.discard(dependent)
            if not dependents and owner not in self.nodes:
                del self.dependents[owner]

    def _forget(self, obj: dict[str, Any]) -> None:
        uid = obj["metadata"].get("uid")
        if not uid:
            return
        self.nodes.pop(uid, None)
        for owner in owner_uids(obj):
            self._unlink(owner, uid)
            self.queue.add(owner)  # a foreground owner may have been waiting for this one
        # Dependents of a vanished owner are now garbage (or orphans to re-check).
        for dependent in self.dependents.pop(uid, set()):
            self.queue.add(dependent)

    def _cached(self, uid: str) -> tuple[Resource, dict[str, Any]] | None:
        node = self.nodes.get(uid)
        if node is None:
            return None
        resource, key = node
        obj = self.informers_by_resource[resource].get(key)
        if obj is None or obj["metadata"].get("uid") != uid:
            return None
        return resource, obj

    # -- work -------------------------------------------------------------------------

    async def reconcile(self, uid: str) -> None:
        cached = self._cached(uid)
        if cached is None:
            return
        resource, obj = cached
        if is_orphaning(obj):
            await self._orphan_dependents(resource, obj)
            return
        if is_deleting_dependents(obj):
            await self._process_deleting_dependents(resource, obj)
            return
        if obj["metadata"].get("deletionTimestamp"):
            return  # already going away
        refs = obj["metadata"].get("ownerReferences") or []
        if refs:
            await self._attempt_to_delete(resource, obj, refs)

    async def _owner_state(self, dependent: dict[str, Any], ref: dict[str, Any]) -> str:
        cached = self._cached(ref["uid"])
        owner = cached[1] if cached else None
        if owner is None:
            owner_resource = by_api_version_kind(ref.get("apiVersion", ""), ref.get("kind", ""))
            if owner_resource is None:
                log.debug("cannot resolve owner kind %s/%s", ref.get("apiVersion"), ref.get("kind"))
                return "solid"  # unknown kinds are never a reason to delete
            namespace = dependent["metadata"].get("namespace") if owner_resource.namespaced else None
            if owner_resource.namespaced and not namespace:
                return "solid"  # a cluster-scoped object cannot have a namespaced owner
            try:
                owner = await self.client.get(owner_resource, ref["name"], namespace)
            except errors.NotFound:
                return "dangling"
            if owner["metadata"].get("uid") != ref["uid"]:
                return "dangling"
        if is_deleting_dependents(owner):
            return "waiting"
        return "solid"

    async def _attempt_to_delete(self, resource: Resource, obj: dict[str, Any], refs: list[dict[str, Any]]) -> None:
        states = {ref["uid"]: await self._owner_state(obj, ref) for ref in refs if ref.get("uid")}
        solid, dangling, waiting = classify_owners(refs, states)
        meta = obj["metadata"]
        if solid:
            if dangling or waiting:
                # Still owned: only drop the references to owners that are gone or going.
                gone = {ref["uid"] for ref in dangling + waiting}
                await self._remove_owner_references(resource, meta.get("namespace"), meta["name"], meta["uid"], gone)
            return
        uid = meta["uid"]
        if waiting and self.dependents.get(uid):
            # An owner waits in the foreground: this object's own dependents go first.
            policy = "Foreground"
        else:
            policy = deletion_policy_for(obj)
        log.info("deleting %s %s (owners gone or going, propagation %s)", resource.kind, object_key(obj), policy)
        await self._delete(resource, meta.get("namespace"), meta["name"], uid, policy)

    async def _delete(self, resource: Resource, namespace: str | None, name: str, uid: str, policy: str) -> None:
        body = {"kind": "DeleteOptions", "apiVersion": "v1", "propagationPolicy": policy,
                "preconditions": {"uid": uid}}
        try:
            await self.client.request("DELETE", resource_path(resource, namespace, name), body=body)
        except errors.NotFound:
            pass
        except errors.Conflict:
            pass  # a different object now has that name: ours is already gone

    async def _process_deleting_dependents(self, resource: Resource, owner: dict[str, Any]) -> None:
        uid = owner["metadata"]["uid"]
        blocking = []
        for dependent_uid in list(self.dependents.get(uid, ())):
            cached = self._cached(dependent_uid)
            if cached is None:
                continue
            dependent = cached[1]
            for ref in dependent["metadata"].get("ownerReferences") or []:
                if ref.get("uid") == uid and ref.get("blockOwnerDeletion"):
                    blocking.append(dependent)
            if not dependent["metadata"].get("deletionTimestamp") or is_deleting_dependents(dependent):
                self.queue.add(dependent_uid)
        if blocking:
            return  # each dependent's deletion re-queues this owner
        meta = owner["metadata"]
        await self._remove_finalizer(resource, meta.get("namespace"), meta["name"], uid, FOREGROUND_FINALIZER)

    async def _orphan_dependents(self, resource: Resource, owner: dict[str, Any]) -> None:
        uid = owner["metadata"]["uid"]
        for dependent_uid in list(self.dependents.get(uid, ())):
            cached = self._cached(dependent_uid)
            if cached is None:
                continue
            dependent_resource, dependent = cached
            meta = dependent["metadata"]
            await self._remove_owner_references(dependent_resource, meta.get("namespace"), meta["name"],
                                                meta["uid"], {uid})
        meta = owner["metadata"]
        await self._remove_finalizer(resource, meta.get("namespace"), meta["name"], uid, ORPHAN_FINALIZER)

    async def _remove_owner_references(self, resource: Resource, namespace: str | None, name: str,
                                       uid: str, owners: set[str]) -> None:
        await self._edit_metadata(resource, namespace, name, uid, "ownerReferences",
                                  lambda refs: [ref for ref in refs if ref.get("uid") not in owners])

    async def _remove_finalizer(self, resource: Resource, namespace: str | None, name: str,
                                uid: str, finalizer: str) -> None:
        await self._edit_metadata(resource, namespace, name, uid, "finalizers",
                                  lambda finalizers: [f for f in finalizers if f != finalizer])

    async def _edit_metadata(self, resource: Resource, namespace: str | None, name: str, uid: str,
                             field: str, edit) -> None:
        """Read-modify-write of one metadata list, guarded by resourceVersion (and uid)."""
        for _ in range(5):
            try:
                current = await self.client.get(resource, name, namespace)
            except errors.NotFound:
                return
            meta = current["metadata"]
            if meta.get("uid") != uid:
                return
            before = meta.get(field) or []
            after = edit(before)
            if after == before:
                return
            patch = {"metadata": {field: after or None, "resourceVersion": meta["resourceVersion"]}}
            try:
                await self.client.patch(resource, name, patch, namespace)
                return
            except errors.NotFound:
                return
            except errors.Conflict:
                continue
        raise errors.Conflict(f"could not update {field} of {resource.plural} {name}")
