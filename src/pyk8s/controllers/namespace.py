"""The namespace controller (upstream's pkg/controller/namespace/deletion).

A namespace marked for deletion (deletionTimestamp set, phase Terminating) whose
`spec.finalizers` still holds "kubernetes" has all of its content deleted: every
namespaced kind of the catalogue is listed in it and each object deleted (Background
propagation, as upstream's deleteCollection). The status conditions say how it goes
(NamespaceDeletionDiscoveryFailure, NamespaceDeletionGroupVersionParsingFailure,
NamespaceDeletionContentFailure, NamespaceContentRemaining, NamespaceFinalizersRemaining,
with upstream's reasons and messages). While objects remain the namespace is requeued; once
the namespace is empty "kubernetes" is removed through `PUT .../finalize` and the API server
removes the namespace.

Like upstream, this waits: pods bound to a node are deleted gracefully and stay until their
kubelet confirms they stopped (a node without a kubelet keeps the namespace Terminating),
and objects whose finalizers never get removed keep it too.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from pyk8s.api import errors
from pyk8s.api.resources import RESOURCES, lookup
from pyk8s.controllers.base import Controller, Requeue

log = logging.getLogger("pyk8s.controllers.namespace")

NAMESPACES = lookup("", "v1", "namespaces")
KUBERNETES_FINALIZER = "kubernetes"
# How soon to look again while content remains (upstream estimates from grace periods).
RECHECK_SECONDS = 1.0


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def namespaced_content_resources():
    return [r for r in RESOURCES if r.namespaced and {"list", "delete"} <= set(r.verbs)]


def resource_label(resource) -> str:
    """`<plural>.<group>` as upstream's messages name resources ("pods." for core)."""
    return f"{resource.plural}.{resource.group}"


def deletion_conditions(remaining: dict[str, int], finalizers: dict[str, int], failures: list[str]) -> list[dict[str, Any]]:
    """The namespace status conditions for one deletion pass (upstream's
    namespace_deleter conditions updater), without transition times."""
    conditions = [
        {"type": "NamespaceDeletionDiscoveryFailure", "status": "False", "reason": "ResourcesDiscovered",
         "message": "All resources successfully discovered"},
        {"type": "NamespaceDeletionGroupVersionParsingFailure", "status": "False", "reason": "ParsedGroupVersions",
         "message": "All legacy kube types successfully parsed"},
    ]
    if failures:
        conditions.append({"type": "NamespaceDeletionContentFailure", "status": "True", "reason": "ContentDeletionFailed",
                           "message": "Failed to delete all resource types, %d remaining: %s"
                                      % (len(failures), ", ".join(sorted(failures)))})
    else:
        conditions.append({"type": "NamespaceDeletionContentFailure", "status": "False", "reason": "ContentDeleted",
                           "message": "All content successfully deleted, may be waiting on finalization"})
    if remaining:
        conditions.append({"type": "NamespaceContentRemaining", "status": "True", "reason": "SomeResourcesRemain",
                           "message": "Some resources are remaining: " + ", ".join(
                               f"{label} has {count} resource instances" for label, count in sorted(remaining.items()))})
    else:
        conditions.append({"type": "NamespaceContentRemaining", "status": "False", "reason": "ContentRemoved",
                           "message": "All content successfully removed"})
    if finalizers:
        conditions.append({"type": "NamespaceFinalizersRemaining", "status": "True", "reason": "SomeFinalizersRemain",
                           "message": "Some content in the namespace has finalizers remaining: " + ", ".join(
                               f"{name} in {count} resource instances" for name, count in sorted(finalizers.items()))})
    else:
        conditions.append({"type": "NamespaceFinalizersRemaining", "status": "False", "reason": "ContentHasNoFinalizers",
                           "message": "All content-preserving finalizers finished"})
    return conditions


def merge_conditions(existing: list[dict[str, Any]], wanted: list[dict[str, Any]], now: str) -> list[dict[str, Any]]:
    """Keeps lastTransitionTime for conditions whose status did not change."""
    by_type = {c.get("type"): c for c in existing or []}
    merged = []
    for condition in wanted:
        old = by_type.get(condition["type"])
        same = old is not None and all(old.get(k) == condition[k] for k in ("status", "reason", "message"))
        merged.append(dict(condition, lastTransitionTime=old.get("lastTransitionTime", now) if same else now))
    return merged


class NamespaceController(Controller):
    name = "namespace"
    workers = 2

    def __init__(self, client):
        super().__init__(client)
        self.namespaces = self.informer(NAMESPACES)
        self.namespaces.add_handlers(**self.enqueue_handlers())

    async def reconcile(self, key: str) -> None:
        namespace = self.namespaces.get(key)
        if namespace is None or not namespace["metadata"].get("deletionTimestamp"):
            return
        if KUBERNETES_FINALIZER not in ((namespace.get("spec") or {}).get("finalizers") or []):
            return  # our part is done; other finalizers belong to others
        remaining, finalizers, failures = await self._delete_content(key)
        await self._update_conditions(namespace, deletion_conditions(remaining, finalizers, failures))
        if remaining or failures:
            raise Requeue(RECHECK_SECONDS)
        await self._finalize(key)

    async def _delete_content(self, namespace: str) -> tuple[dict[str, int], dict[str, int], list[str]]:
        remaining: dict[str, int] = {}
        finalizers: dict[str, int] = {}
        failures: list[str] = []
        for resource in namespaced_content_resources():
            try:
                listed = await self.client.list(resource, namespace)
            except errors.ApiError as exc:
                failures.append(f"{resource_label(resource)}: {exc}")
                continue
            for obj in listed.get("items") or []:
                meta = obj["metadata"]
                if not meta.get("deletionTimestamp"):
                    try:
                        await self.client.delete(resource, meta["name"], namespace, propagation_policy="Background")
                    except errors.NotFound:
                        continue
                    except errors.ApiError as exc:
                        failures.append(f"{resource_label(resource)} {meta['name']}: {exc}")
                # Whatever was listed counts until a later pass no longer sees it.
                remaining[resource_label(resource)] = remaining.get(resource_label(resource), 0) + 1
                for finalizer in meta.get("finalizers") or []:
                    finalizers[finalizer] = finalizers.get(finalizer, 0) + 1
        return remaining, finalizers, failures

    async def _update_conditions(self, namespace: dict[str, Any], wanted: list[dict[str, Any]]) -> None:
        status = namespace.get("status") or {}
        conditions = merge_conditions(status.get("conditions") or [], wanted, _now())
        if conditions == status.get("conditions"):
            return
        updated = {"apiVersion": "v1", "kind": "Namespace", "metadata": dict(namespace["metadata"]),
                   "spec": namespace.get("spec") or {}, "status": dict(status, conditions=conditions)}
        try:
            await self.client.update(NAMESPACES, updated, subresource="status")
        except (errors.NotFound, errors.Conflict):
            pass  # the next pass writes them again

    async def _finalize(self, name: str) -> None:
        try:
            current = await self.client.get(NAMESPACES, name)
        except errors.NotFound:
            return
        spec = current.get("spec") or {}
        current["spec"] = dict(spec, finalizers=[f for f in spec.get("finalizers") or [] if f != KUBERNETES_FINALIZER])
        try:
            await self.client.update(NAMESPACES, current, subresource="finalize")
        except errors.NotFound:
            return
        log.info("namespace %s finalized", name)
