"""The ReplicaSet and ReplicationController controllers (upstream
pkg/controller/replicaset, which serves RCs too as "an older API version of ReplicaSet").

Informers on the owner kind and on pods feed one work queue of owner keys. `reconcile`
claims pods (adopts matching orphans, releases owned pods whose labels stopped matching),
creates missing pods in slow-start batches or deletes the surplus by upstream's ranking,
then writes status through the status subresource. Expectations remember the creates and
deletes in flight so a reconcile that runs before the pod informer has caught up does not
create or delete twice.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from pyk8s.api import errors
from pyk8s.api.resources import lookup
from pyk8s.api.selectors import label_selector_from_set, label_selector_from_spec
from pyk8s.client.informer import object_key
from pyk8s.controllers.base import Controller, Requeue, controller_ref, owner_reference, split_key
from pyk8s.client.events import EventRecorder
from pyk8s.controllers import podtemplate

log = logging.getLogger("pyk8s.controllers.replicaset")

PODS = lookup("", "v1", "pods")

# Upstream caps the pods created or deleted in one sync (BurstReplicas).
BURST_REPLICAS = 500
# Upstream ExpectationsTimeout: after this, stale expectations no longer block a sync.
EXPECTATIONS_TIMEOUT = 300.0


class Expectations:
    """Creates and deletions we issued but have not yet seen in the pod informer (upstream
    `UIDTrackingControllerExpectations`)."""

    def __init__(self):
        self._adds: dict[str, int] = {}
        self._deletes: dict[str, set[str]] = {}
        self._since: dict[str, float] = {}

    def expect(self, key: str, adds: int = 0, deletes: set[str] | None = None) -> None:
        self._adds[key] = adds
        self._deletes[key] = set(deletes or ())
        self._since[key] = time.monotonic()

    def creation_observed(self, key: str) -> None:
        if key in self._adds:
            self._adds[key] -= 1

    def creation_failed(self, key: str, count: int = 1) -> None:
        if key in self._adds:
            self._adds[key] -= count

    def deletion_observed(self, key: str, pod_key: str) -> None:
        if key in self._deletes:
            self._deletes[key].discard(pod_key)

    def satisfied(self, key: str) -> bool:
        if key not in self._since:
            return True
        if self._adds.get(key, 0) <= 0 and not self._deletes.get(key):
            return True
        return time.monotonic() - self._since[key] > EXPECTATIONS_TIMEOUT

    def forget(self, key: str) -> None:
        for store in (self._adds, self._deletes, self._since):
            store.pop(key, None)


def _namespace_terminating(exc: errors.ApiError) -> bool:
    return "because it is being terminated" in str(exc)


def _replica_failure_condition(reason: str, message: str) -> dict[str, Any]:
    return {"type": "ReplicaFailure", "status": "True",
            "lastTransitionTime": podtemplate.format_time(podtemplate.now_utc()), "reason": reason, "message": message}


def calculate_status(owner: dict[str, Any], pods: list[dict[str, Any]], manage_error: Exception | None,
                     diff: int, now) -> dict[str, Any]:
    """Upstream `calculateStatus`: counts over the owner's active pods, plus the
    ReplicaFailure condition while creating or deleting fails."""
    spec = owner.get("spec") or {}
    template_labels = ((spec.get("template") or {}).get("metadata") or {}).get("labels") or {}
    min_ready_seconds = spec.get("minReadySeconds") or 0
    fully_labeled = ready = available = 0
    for pod in pods:
        labels = pod["metadata"].get("labels") or {}
        if all(labels.get(key) == value for key, value in template_labels.items()):
            fully_labeled += 1
        if podtemplate.is_pod_ready(pod):
            ready += 1
            if podtemplate.is_pod_available(pod, min_ready_seconds, now):
                available += 1
    old_status = owner.get("status") or {}
    conditions = [dict(c) for c in old_status.get("conditions") or []]
    failure = next((c for c in conditions if c.get("type") == "ReplicaFailure"), None)
    if manage_error is not None and failure is None:
        reason = "FailedCreate" if diff < 0 else "FailedDelete"
        conditions.append(_replica_failure_condition(reason, str(manage_error)))
    elif manage_error is None and failure is not None:
        conditions = [c for c in conditions if c.get("type") != "ReplicaFailure"]
    status: dict[str, Any] = {"replicas": len(pods), "fullyLabeledReplicas": fully_labeled,
                              "readyReplicas": ready, "availableReplicas": available,
                              "observedGeneration": owner["metadata"].get("generation")}
    if conditions:
        status["conditions"] = conditions
    return status


def _status_differs(old: dict[str, Any], new: dict[str, Any]) -> bool:
    for key in ("replicas", "fullyLabeledReplicas", "readyReplicas", "availableReplicas", "observedGeneration"):
        if (old.get(key) or 0) != (new.get(key) or 0):
            return True
    return (old.get("conditions") or []) != (new.get("conditions") or [])


class ReplicaSetController(Controller):
    name = "replicaset-controller"
    workers = 4
    group, version, plural, kind = "apps", "v1", "replicasets", "ReplicaSet"

    def __init__(self, client):
        super().__init__(client)
        self.resource = lookup(self.group, self.version, self.plural)
        self.owners = self.informer(self.resource)
        self.pods = self.informer(PODS)
        self.recorder = EventRecorder(client, self.name)
        self.expectations = Expectations()
        self.owners.add_handlers(on_add=self.enqueue, on_update=self._owner_updated, on_delete=self._owner_deleted)
        self.pods.add_handlers(on_add=self._pod_added, on_update=self._pod_updated, on_delete=self._pod_deleted)

    # -- selector ----------------------------------------------------------------------

    def selector(self, owner: dict[str, Any]):
        return label_selector_from_spec((owner.get("spec") or {}).get("selector"))

    # -- event handlers ---------------------------------------------------------------------

    def _owner_updated(self, old: dict[str, Any], new: dict[str, Any]) -> None:
        self.enqueue(new)

    def _owner_deleted(self, owner: dict[str, Any]) -> None:
        self.expectations.forget(object_key(owner))
        self.enqueue(owner)

    def _owner_key_of(self, pod: dict[str, Any]) -> str | None:
        ref = controller_ref(pod)
        if not ref or ref.get("kind") != self.kind:
            return None
        key = f"{pod['metadata'].get('namespace')}/{ref['name']}"
        owner = self.owners.get(key)
        if owner is None or owner["metadata"].get("uid") != ref.get("uid"):
            return None
        return key

    def _enqueue_matching_owners(self, pod: dict[str, Any]) -> None:
        labels = pod["metadata"].get("labels") or {}
        for owner in self.owners.list(pod["metadata"].get("namespace")):
            try:
                if self.selector(owner).matches(labels):
                    self.enqueue(owner)
            except errors.ApiError:
                continue

    def _pod_added(self, pod: dict[str, Any]) -> None:
        if pod["metadata"].get("deletionTimestamp"):
            self._pod_deleted(pod)
            return
        key = self._owner_key_of(pod)
        if key:
            self.expectations.creation_observed(key)
            self.queue.add(key)
        elif not controller_ref(pod):
            self._enqueue_matching_owners(pod)

    def _pod_updated(self, old: dict[str, Any], new: dict[str, Any]) -> None:
        if old["metadata"].get("resourceVersion") == new["metadata"].get("resourceVersion"):
            return
        if new["metadata"].get("deletionTimestamp") and not old["metadata"].get("deletionTimestamp"):
            # A graceful delete: the pod is on its way out; count it as gone now, as upstream.
            self._pod_deleted(new)
        old_key = self._owner_key_of(old)
        new_key = self._owner_key_of(new)
        if old_key and old_key != new_key:
            self.queue.add(old_key)
        if new_key:
            self.queue.add(new_key)
        elif not controller_ref(new) and (old["metadata"].get("labels") != new["metadata"].get("labels")
                                          or controller_ref(old)):
            self._enqueue_matching_owners(new)

    def _pod_deleted(self, pod: dict[str, Any]) -> None:
        key = self._owner_key_of(pod)
        if key:
            self.expectations.deletion_observed(key, object_key(pod))
            self.queue.add(key)

    # -- reconcile ---------------------------------------------------------------------

    async def reconcile(self, key: str) -> None:
        namespace, name = split_key(key)
        owner = self.owners.get(key)
        if owner is None:
            self.expectations.forget(key)
            return
        try:
            selector = self.selector(owner)
        except errors.ApiError as exc:
            log.warning("%s %s has an invalid selector: %s", self.kind, key, exc)
            return
        pods = await self._claim_pods(owner, selector, namespace)
        active = [pod for pod in pods if podtemplate.is_pod_active(pod)]

        manage_error: Exception | None = None
        diff = len(active) - int((owner.get("spec") or {}).get("replicas", 1) or 0)
        if self.expectations.satisfied(key) and not owner["metadata"].get("deletionTimestamp"):
            manage_error = await self._manage_replicas(key, owner, active, pods)

        now = podtemplate.now_utc()
        status = calculate_status(owner, active, manage_error, diff, now)
        if _status_differs(owner.get("status") or {}, status):
            updated = {k: v for k, v in owner.items() if k != "status"}
            updated["status"] = status
            try:
                await self.client.update(self.resource, updated, subresource="status")
            except errors.NotFound:
                return
        if manage_error is not None:
            raise manage_error
        # Pods that are ready but not yet available become available by the clock alone.
        min_ready = (owner.get("spec") or {}).get("minReadySeconds") or 0
        if min_ready:
            waits = [w for w in (podtemplate.seconds_until_available(p, min_ready, now) for p in active) if w]
            if waits:
                raise Requeue(min(waits) + 0.5)

    async def _claim_pods(self, owner: dict[str, Any], selector, namespace: str | None) -> list[dict[str, Any]]:
        """Upstream `PodControllerRefManager.ClaimPods`: the pods this owner controls after
        adopting matching orphans and releasing owned pods that no longer match."""
        uid = owner["metadata"]["uid"]
        deleting = bool(owner["metadata"].get("deletionTimestamp"))
        claimed = []
        for pod in self.pods.list(namespace):
            ref = controller_ref(pod)
            labels = pod["metadata"].get("labels") or {}
            if ref is not None:
                if ref.get("uid") != uid:
                    continue
                if selector.matches(labels):
                    claimed.append(pod)
                elif not deleting:
                    await self._release(owner, pod)
                continue
            if deleting or pod["metadata"].get("deletionTimestamp") or not selector.matches(labels):
                continue
            adopted = await self._adopt(owner, pod)
            if adopted is not None:
                claimed.append(adopted)
        return claimed

    async def _adopt(self, owner: dict[str, Any], pod: dict[str, Any]) -> dict[str, Any] | None:
        refs = list(pod["metadata"].get("ownerReferences") or []) + [owner_reference(owner)]
        # resourceVersion makes the patch conditional: another controller may adopt first.
        patch = {"metadata": {"ownerReferences": refs, "resourceVersion": pod["metadata"]["resourceVersion"]}}
        try:
            return await self.client.patch(PODS, pod["metadata"]["name"], patch, pod["metadata"].get("namespace"))
        except (errors.NotFound, errors.Conflict):
            return None

    async def _release(self, owner: dict[str, Any], pod: dict[str, Any]) -> None:
        uid = owner["metadata"]["uid"]
        refs = [ref for ref in pod["metadata"].get("ownerReferences") or [] if ref.get("uid") != uid]
        patch = {"metadata": {"ownerReferences": refs or None, "resourceVersion": pod["metadata"]["resourceVersion"]}}
        try:
            await self.client.patch(PODS, pod["metadata"]["name"], patch, pod["metadata"].get("namespace"))
        except (errors.NotFound, errors.Conflict):
            pass

    async def _manage_replicas(self, key: str, owner: dict[str, Any], active: list[dict[str, Any]],
                               claimed: list[dict[str, Any]]) -> Exception | None:
        wanted = int((owner.get("spec") or {}).get("replicas", 1) or 0)
        diff = len(active) - wanted
        namespace = owner["metadata"].get("namespace")
        if diff < 0:
            count = min(-diff, BURST_REPLICAS)
            self.expectations.expect(key, adds=count)
            template = (owner.get("spec") or {}).get("template") or {}
            ref = owner_reference(owner)

            async def create_one():
                pod = podtemplate.pod_from_template(template, owner, ref)
                try:
                    created = await self.client.create(PODS, pod, namespace)
                except errors.Forbidden as exc:
                    if _namespace_terminating(exc):
                        # Upstream ignores NamespaceTerminating: the owner is about to go too.
                        self.expectations.creation_failed(key)
                        return
                    await self.recorder.event(owner, "Warning", "FailedCreate", f"Error creating: {exc}")
                    raise
                except Exception as exc:
                    await self.recorder.event(owner, "Warning", "FailedCreate", f"Error creating: {exc}")
                    raise
                await self.recorder.event(owner, "Normal", "SuccessfulCreate",
                                          f"Created pod: {created['metadata']['name']}")

            successes, error = await podtemplate.slow_start_batch(count, 1, create_one)
            if error is not None:
                # Failed and never-attempted creates will never be observed by the informer.
                self.expectations.creation_failed(key, count - successes)
            return error
        if diff > 0:
            count = min(diff, BURST_REPLICAS)
            victims = podtemplate.pods_to_delete_first(active, claimed)[:count]
            self.expectations.expect(key, deletes={object_key(pod) for pod in victims})
            first_error: Exception | None = None
            for pod in victims:
                pod_name = pod["metadata"]["name"]
                try:
                    await self.client.delete(PODS, pod_name, namespace)
                except errors.NotFound:
                    self.expectations.deletion_observed(key, object_key(pod))
                    continue
                except Exception as exc:
                    self.expectations.deletion_observed(key, object_key(pod))
                    await self.recorder.event(owner, "Warning", "FailedDelete", f"Error deleting: {exc}")
                    first_error = first_error or exc
                    continue
                await self.recorder.event(owner, "Normal", "SuccessfulDelete", f"Deleted pod: {pod_name}")
            return first_error
        return None


class ReplicationControllerController(ReplicaSetController):
    """The same controller for the core/v1 ReplicationController, whose selector is a plain
    label map (defaulted from the template labels by the API server)."""

    name = "replicationcontroller-controller"
    group, version, plural, kind = "", "v1", "replicationcontrollers", "ReplicationController"

    def selector(self, owner: dict[str, Any]):
        spec = owner.get("spec") or {}
        labels = spec.get("selector") or ((spec.get("template") or {}).get("metadata") or {}).get("labels")
        if not labels:
            from pyk8s.api.selectors import NOTHING
            return NOTHING
        return label_selector_from_set(labels)
