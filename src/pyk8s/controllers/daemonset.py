"""The DaemonSet controller (upstream's pkg/controller/daemon: daemon_controller.go,
update.go, util).

One pod per eligible node. A node is eligible when the pod template's nodeSelector and
required node affinity match it and its taints are tolerated (the template's tolerations
plus the ones every daemon pod gets: not-ready/unreachable NoExecute, disk-, memory- and
pid-pressure and unschedulable NoSchedule, network-unavailable for hostNetwork pods).
Pods are pinned to their node with required node affinity `metadata.name In [node]`, as
upstream does, and the scheduler binds them.

Data flow: informers on DaemonSets, pods, nodes and ControllerRevisions queue DaemonSet
keys; `reconcile` claims pods (adopting orphans that match the selector, releasing pods
that no longer match), keeps ControllerRevisions (`<ds>-<hash>`, numbered revisions whose
data is the template patch `kubectl rollout history/undo` read), creates and deletes pods
per node, rolls out template changes (RollingUpdate with maxUnavailable/maxSurge, or
OnDelete) and writes status. Expectations stop a second pass from creating the same pods
again while the pod informer has not yet seen the first pass's work.
"""

from __future__ import annotations

import asyncio
import calendar
import copy
import logging
import math
import time
from typing import Any

import orjson

from pyk8s.api import errors
from pyk8s.api.scheduling import match_required_node_affinity, untolerated_taints
from pyk8s.api.resources import lookup
from pyk8s.api.selectors import label_selector_from_spec
from pyk8s.controllers.base import Controller, Requeue, controller_ref, owner_reference
from pyk8s.client.events import EventRecorder

log = logging.getLogger("pyk8s.controllers.daemonset")

DAEMONSETS = lookup("apps", "v1", "daemonsets")
PODS = lookup("", "v1", "pods")
NODES = lookup("", "v1", "nodes")
CONTROLLER_REVISIONS = lookup("apps", "v1", "controllerrevisions")

HASH_LABEL = "controller-revision-hash"
DEFAULT_REVISION_HISTORY_LIMIT = 10
EXPECTATIONS_TIMEOUT = 30.0  # upstream's ExpectationsTimeout is 5 minutes; we recover sooner

# -- taints and tolerations ------------------------------------------------------------


def daemon_pod_tolerations(pod_spec: dict[str, Any]) -> list[dict[str, Any]]:
    """The template's tolerations plus the ones upstream adds to every daemon pod
    (util.AddOrUpdateDaemonPodTolerations)."""
    tolerations = [dict(t) for t in pod_spec.get("tolerations") or []]
    wanted = [
        ("node.kubernetes.io/not-ready", "NoExecute"),
        ("node.kubernetes.io/unreachable", "NoExecute"),
        ("node.kubernetes.io/disk-pressure", "NoSchedule"),
        ("node.kubernetes.io/memory-pressure", "NoSchedule"),
        ("node.kubernetes.io/pid-pressure", "NoSchedule"),
        ("node.kubernetes.io/unschedulable", "NoSchedule"),
    ]
    if pod_spec.get("hostNetwork"):
        wanted.append(("node.kubernetes.io/network-unavailable", "NoSchedule"))
    for key, effect in wanted:
        # Added or updated: a template toleration for the same key and effect is replaced.
        tolerations = [t for t in tolerations if not (t.get("key") == key and t.get("effect") == effect)]
        tolerations.append({"key": key, "operator": "Exists", "effect": effect})
    return tolerations


# -- node selection --------------------------------------------------------------------


def node_should_run_daemon_pod(node: dict[str, Any], ds: dict[str, Any]) -> tuple[bool, bool]:
    """(should run, should continue running) as upstream's NodeShouldRunDaemonPod: a
    node whose taints are not all tolerated gets no new pod, but an existing one stays
    unless a NoExecute taint is untolerated."""
    pod_spec = ds["spec"]["template"].get("spec") or {}
    wanted_node = pod_spec.get("nodeName")
    if wanted_node and wanted_node != node["metadata"]["name"]:
        return False, False
    if not match_required_node_affinity(node, pod_spec):
        return False, False
    taints = (node.get("spec") or {}).get("taints") or []
    tolerations = daemon_pod_tolerations(pod_spec)
    if untolerated_taints(taints, tolerations, ("NoSchedule", "NoExecute")):
        return False, not untolerated_taints(taints, tolerations, ("NoExecute",))
    return True, True


def pin_to_node(affinity: dict[str, Any] | None, node_name: str) -> dict[str, Any]:
    """Required node affinity `metadata.name In [node]` replacing any required terms
    (upstream's ReplaceDaemonSetPodNodeNameNodeAffinity: the controller already checked
    the original terms against the node)."""
    affinity = copy.deepcopy(affinity) if affinity else {}
    node_affinity = affinity.setdefault("nodeAffinity", {})
    node_affinity["requiredDuringSchedulingIgnoredDuringExecution"] = {"nodeSelectorTerms": [
        {"matchFields": [{"key": "metadata.name", "operator": "In", "values": [node_name]}]}]}
    return affinity


def target_node_name(pod: dict[str, Any]) -> str | None:
    """The node a daemon pod is for: its nodeName, else its pinning affinity."""
    spec = pod.get("spec") or {}
    if spec.get("nodeName"):
        return spec["nodeName"]
    required = (((spec.get("affinity") or {}).get("nodeAffinity") or {})
                .get("requiredDuringSchedulingIgnoredDuringExecution") or {})
    terms = required.get("nodeSelectorTerms") or []
    if len(terms) != 1:
        return None
    for requirement in terms[0].get("matchFields") or []:
        if requirement.get("key") == "metadata.name" and requirement.get("operator") == "In" \
                and len(requirement.get("values") or []) == 1:
            return requirement["values"][0]
    return None


# -- revisions -------------------------------------------------------------------------

_SAFE_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"


def safe_encode(text: str) -> str:
    """Upstream's rand.SafeEncodeString: no vowels, no look-alike characters."""
    return "".join(_SAFE_ALPHABET[ord(ch) % len(_SAFE_ALPHABET)] for ch in text)


def fnv32a(data: bytes) -> int:
    value = 0x811C9DC5
    for byte in data:
        value ^= byte
        value = (value * 0x01000193) & 0xFFFFFFFF
    return value


def template_patch(ds: dict[str, Any]) -> dict[str, Any]:
    """A revision's data: the template as a strategic-merge patch that replaces it
    (upstream's getPatch), which `kubectl rollout undo` applies."""
    template = copy.deepcopy(ds["spec"]["template"])
    template["$patch"] = "replace"
    return {"spec": {"template": template}}


def revision_hash(data: dict[str, Any], collision_count: int = 0) -> str:
    """The controller-revision-hash: fnv32a of the revision data (and the collision
    count), the decimal value safe-encoded (upstream's HashControllerRevision)."""
    raw = orjson.dumps(data, option=orjson.OPT_SORT_KEYS)
    if collision_count:
        raw += str(collision_count).encode()
    return safe_encode(str(fnv32a(raw)))


# -- pods ------------------------------------------------------------------------------


def _parse_time(text: str | None) -> float | None:
    if not text:
        return None
    try:
        return float(calendar.timegm(time.strptime(text[:19], "%Y-%m-%dT%H:%M:%S")))
    except ValueError:
        return None


def pod_ready_since(pod: dict[str, Any]) -> float | None:
    for condition in (pod.get("status") or {}).get("conditions") or []:
        if condition.get("type") == "Ready":
            if condition.get("status") != "True":
                return None
            return _parse_time(condition.get("lastTransitionTime")) or 0.0
    return None


def pod_available(pod: dict[str, Any], min_ready_seconds: int, now: float) -> bool:
    since = pod_ready_since(pod)
    if since is None:
        return False
    return min_ready_seconds <= 0 or since + min_ready_seconds <= now


def is_updated(pod: dict[str, Any], current_hash: str) -> bool:
    return (pod["metadata"].get("labels") or {}).get(HASH_LABEL) == current_hash


def _creation_order(pod: dict[str, Any]) -> tuple:
    return (pod["metadata"].get("creationTimestamp") or "", pod["metadata"]["name"])


def scaled_value(value: Any, total: int, default: int | str) -> int:
    """An int-or-percent against `total`, rounding up (intstr.GetScaledValueFromIntOrPercent)."""
    if value is None:
        value = default
    if isinstance(value, str) and value.endswith("%"):
        return math.ceil(int(value[:-1]) * total / 100)
    return int(value)


def surge_and_unavailable(ds: dict[str, Any], desired: int) -> tuple[int, int]:
    rolling = ((ds["spec"].get("updateStrategy") or {}).get("rollingUpdate")) or {}
    max_surge = scaled_value(rolling.get("maxSurge"), desired, 0)
    max_unavailable = scaled_value(rolling.get("maxUnavailable"), desired, 1)
    if desired > 0 and max_surge == 0 and max_unavailable == 0:
        max_unavailable = 1  # upstream never lets a rollout stall on a zero budget
    return max_surge, max_unavailable


def plan_rolling_update(ds: dict[str, Any], node_pods: dict[str, list[dict[str, Any]]],
                        should_run: set[str], current_hash: str, now: float) -> tuple[list[str], list[str]]:
    """(pod names to delete, node names to create a surge pod on) for one RollingUpdate
    step (upstream's rollingUpdate in update.go). node_pods holds live (not deleting) pods."""
    min_ready = int(ds["spec"].get("minReadySeconds") or 0)
    max_surge, max_unavailable = surge_and_unavailable(ds, len(should_run))
    to_delete: list[str] = []
    to_create: list[str] = []
    if max_surge == 0:
        unavailable = 0
        candidates: list[str] = []
        for node in sorted(should_run):
            pods = node_pods.get(node) or []
            new = [p for p in pods if is_updated(p, current_hash)]
            old = [p for p in pods if not is_updated(p, current_hash)]
            if not old:
                if not new or not pod_available(new[0], min_ready, now):
                    unavailable += 1
                continue
            old_pod = sorted(old, key=_creation_order)[0]
            if not pod_available(old_pod, min_ready, now):
                # An unavailable old pod can go at once: it costs no availability.
                to_delete.append(old_pod["metadata"]["name"])
                unavailable += 1
            else:
                candidates.append(old_pod["metadata"]["name"])
        budget = max(max_unavailable - unavailable, 0)
        to_delete.extend(candidates[:budget])
        return to_delete, to_create
    surging = 0
    candidate_nodes: list[str] = []
    for node in sorted(should_run):
        pods = node_pods.get(node) or []
        new = [p for p in pods if is_updated(p, current_hash)]
        old = [p for p in pods if not is_updated(p, current_hash)]
        if not old:
            continue
        old_pod = sorted(old, key=_creation_order)[0]
        if new:
            surging += 1
            if pod_available(sorted(new, key=_creation_order)[0], min_ready, now):
                to_delete.append(old_pod["metadata"]["name"])
            continue
        if not pod_available(old_pod, min_ready, now):
            to_create.append(node)  # nothing available to protect here
        else:
            candidate_nodes.append(node)
    budget = max(max_surge - surging, 0)
    to_create.extend(candidate_nodes[:budget])
    return to_delete, to_create


def daemonset_status(ds: dict[str, Any], nodes: list[dict[str, Any]], node_pods: dict[str, list[dict[str, Any]]],
                     current_hash: str, now: float) -> dict[str, Any]:
    """Status counts per node, as upstream's updateDaemonSetStatus (the oldest pod per
    node is the one counted)."""
    min_ready = int(ds["spec"].get("minReadySeconds") or 0)
    desired = current = misscheduled = ready = available = updated = 0
    for node in nodes:
        name = node["metadata"]["name"]
        should_run, _ = node_should_run_daemon_pod(node, ds)
        pods = sorted(node_pods.get(name) or [], key=_creation_order)
        if should_run:
            desired += 1
            if pods:
                current += 1
                pod = pods[0]
                if pod_ready_since(pod) is not None:
                    ready += 1
                    if pod_available(pod, min_ready, now):
                        available += 1
                if is_updated(pod, current_hash):
                    updated += 1
        elif pods:
            misscheduled += 1
    status = {"currentNumberScheduled": current, "numberMisscheduled": misscheduled,
              "desiredNumberScheduled": desired, "numberReady": ready,
              "observedGeneration": ds["metadata"].get("generation", 0),
              "updatedNumberScheduled": updated, "numberAvailable": available,
              "numberUnavailable": max(desired - available, 0)}
    return status


# -- the controller --------------------------------------------------------------------


class _Expectations:
    """Pods a pass created or deleted that the pod informer has not reported yet."""

    def __init__(self):
        self.created: set[str] = set()
        self.deleted: set[str] = set()
        self.deadline = time.monotonic() + EXPECTATIONS_TIMEOUT


class DaemonSetController(Controller):
    name = "daemonset"
    workers = 2

    def __init__(self, client):
        super().__init__(client)
        self.recorder = EventRecorder(client, "daemonset-controller")
        self.daemonsets = self.informer(DAEMONSETS)
        self.pods = self.informer(PODS)
        self.nodes = self.informer(NODES)
        self.revisions = self.informer(CONTROLLER_REVISIONS)
        self.expectations: dict[str, _Expectations] = {}
        self.daemonsets.add_handlers(**self.enqueue_handlers())
        self.pods.add_handlers(on_add=self._pod_changed, on_update=lambda old, new: self._pod_updated(old, new),
                               on_delete=self._pod_changed)
        self.nodes.add_handlers(on_add=lambda node: self._enqueue_all(),
                                on_update=self._node_updated,
                                on_delete=lambda node: self._enqueue_all())
        self.revisions.add_handlers(on_add=self._owned_changed, on_update=lambda old, new: self._owned_changed(new),
                                    on_delete=self._owned_changed)

    # -- event handlers ---------------------------------------------------------------

    def _enqueue_all(self) -> None:
        for ds in self.daemonsets.list():
            self.enqueue(ds)

    def _node_updated(self, old: dict[str, Any], new: dict[str, Any]) -> None:
        # Heartbeats change nothing a DaemonSet cares about; labels, taints, conditions do.
        relevant = (old["metadata"].get("labels") != new["metadata"].get("labels")
                    or (old.get("spec") or {}) != (new.get("spec") or {})
                    or [(c.get("type"), c.get("status")) for c in (old.get("status") or {}).get("conditions") or []]
                    != [(c.get("type"), c.get("status")) for c in (new.get("status") or {}).get("conditions") or []])
        if relevant:
            self._enqueue_all()

    def _owner_key(self, obj: dict[str, Any]) -> str | None:
        ref = controller_ref(obj)
        if ref is None or ref.get("kind") != "DaemonSet":
            return None
        return f"{obj['metadata']['namespace']}/{ref['name']}"

    def _pod_changed(self, pod: dict[str, Any]) -> None:
        key = self._owner_key(pod)
        if key is not None:
            self._observe_pod(key, pod)
            self.queue.add(key)
        else:
            self._enqueue_matching(pod)

    def _pod_updated(self, old: dict[str, Any], new: dict[str, Any]) -> None:
        old_key, new_key = self._owner_key(old), self._owner_key(new)
        if old_key and old_key != new_key:
            self.queue.add(old_key)
        if new_key:
            self._observe_pod(new_key, new)
            self.queue.add(new_key)
        elif old["metadata"].get("labels") != new["metadata"].get("labels") or old_key:
            self._enqueue_matching(new)

    def _observe_pod(self, key: str, pod: dict[str, Any]) -> None:
        expectations = self.expectations.get(key)
        if expectations is not None:
            expectations.created.discard(pod["metadata"]["name"])
            if pod["metadata"].get("deletionTimestamp") or self.pods.get(f"{pod['metadata']['namespace']}/{pod['metadata']['name']}") is None:
                expectations.deleted.discard(pod["metadata"]["name"])

    def _enqueue_matching(self, pod: dict[str, Any]) -> None:
        """An orphan pod: the DaemonSets whose selector matches may adopt it."""
        if pod["metadata"].get("deletionTimestamp"):
            return
        labels = pod["metadata"].get("labels") or {}
        for ds in self.daemonsets.list(pod["metadata"]["namespace"]):
            selector = label_selector_from_spec((ds.get("spec") or {}).get("selector"))
            if not selector.empty() and selector.matches(labels):
                self.enqueue(ds)

    def _owned_changed(self, obj: dict[str, Any]) -> None:
        key = self._owner_key(obj)
        if key is not None:
            self.queue.add(key)

    # -- reconcile ------------------------------------------------------------------

    def _expectations_met(self, key: str) -> bool:
        expectations = self.expectations.get(key)
        if expectations is None:
            return True
        if (not expectations.created and not expectations.deleted) or time.monotonic() > expectations.deadline:
            del self.expectations[key]
            return True
        return False

    async def reconcile(self, key: str) -> None:
        ds = self.daemonsets.get(key)
        if ds is None:
            self.expectations.pop(key, None)
            return
        ds = copy.deepcopy(ds)
        namespace = ds["metadata"]["namespace"]
        selector = label_selector_from_spec(ds["spec"].get("selector"))
        if selector.empty():
            await self.recorder.event(ds, "Warning", "SelectingAll",
                                      "This daemon set is selecting all pods. A non-empty selector is required.")
            return
        pods = await self._claim_pods(ds, selector)
        nodes = self.nodes.list()
        if ds["metadata"].get("deletionTimestamp"):
            return  # the garbage collector takes it from here
        current_revision, old_revisions = await self._construct_history(ds, selector)
        current_hash = current_revision["metadata"]["labels"][HASH_LABEL]
        live_pods: dict[str, list[dict[str, Any]]] = {}
        for pod in pods:
            if pod["metadata"].get("deletionTimestamp"):
                continue
            live_pods.setdefault(target_node_name(pod) or "", []).append(pod)
        requeue_after = None
        if self._expectations_met(key):
            requeue_after = await self._manage(ds, key, nodes, live_pods, current_hash)
            if self._expectations_met(key) and (ds["spec"].get("updateStrategy") or {}).get("type", "RollingUpdate") == "RollingUpdate":
                requeue_after = await self._rolling_update(ds, key, nodes, live_pods, current_hash) or requeue_after
        await self._cleanup_history(ds, pods, old_revisions)
        await self._update_status(ds, nodes, live_pods, current_hash)
        min_ready = int(ds["spec"].get("minReadySeconds") or 0)
        if min_ready and any(pod_ready_since(p) is not None and not pod_available(p, min_ready, time.time())
                             for pods_on_node in live_pods.values() for p in pods_on_node):
            requeue_after = min(requeue_after or min_ready, 1.0)
        if requeue_after:
            raise Requeue(requeue_after)

    async def _claim_pods(self, ds: dict[str, Any], selector) -> list[dict[str, Any]]:
        """Pods this DaemonSet owns after adopting matching orphans and releasing owned pods
        that no longer match (upstream's ControllerRefManager.ClaimPods)."""
        uid = ds["metadata"]["uid"]
        namespace = ds["metadata"]["namespace"]
        owned = []
        fresh_checked = False
        for pod in self.pods.list(namespace):
            meta = pod["metadata"]
            ref = controller_ref(pod)
            matches = selector.matches(meta.get("labels") or {})
            if ref is not None:
                if ref.get("uid") != uid:
                    continue
                if matches or meta.get("deletionTimestamp"):
                    owned.append(pod)
                    continue
                await self._release(pod, uid)
                continue
            if not matches or meta.get("deletionTimestamp") or ds["metadata"].get("deletionTimestamp"):
                continue
            if not fresh_checked:
                # Upstream rechecks the owner with a live read before adopting: a DaemonSet
                # deleted a moment ago must not adopt anything.
                try:
                    live = await self.client.get(DAEMONSETS, ds["metadata"]["name"], namespace)
                except errors.NotFound:
                    return owned
                if live["metadata"].get("uid") != uid or live["metadata"].get("deletionTimestamp"):
                    return owned
                fresh_checked = True
            adopted = await self._adopt(ds, pod)
            if adopted is not None:
                owned.append(adopted)
        return owned

    async def _adopt(self, ds: dict[str, Any], pod: dict[str, Any]) -> dict[str, Any] | None:
        meta = pod["metadata"]
        refs = list(meta.get("ownerReferences") or []) + [owner_reference(ds)]
        try:
            adopted = await self.client.patch(PODS, meta["name"], {"metadata": {
                "ownerReferences": refs, "resourceVersion": meta["resourceVersion"]}}, meta["namespace"])
        except (errors.NotFound, errors.Conflict, errors.Invalid):
            return None
        log.info("daemonset %s adopted pod %s", ds["metadata"]["name"], meta["name"])
        return adopted

    async def _release(self, pod: dict[str, Any], uid: str) -> None:
        meta = pod["metadata"]
        refs = [ref for ref in meta.get("ownerReferences") or [] if ref.get("uid") != uid]
        try:
            await self.client.patch(PODS, meta["name"], {"metadata": {
                "ownerReferences": refs or None, "resourceVersion": meta["resourceVersion"]}}, meta["namespace"])
        except (errors.NotFound, errors.Conflict):
            pass

    # -- history --------------------------------------------------------------------

    async def _construct_history(self, ds: dict[str, Any], selector) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        """The current ControllerRevision (created or renumbered as needed) and the old ones."""
        uid = ds["metadata"]["uid"]
        namespace = ds["metadata"]["namespace"]
        revisions = []
        for revision in self.revisions.list(namespace):
            ref = controller_ref(revision)
            if ref is not None and ref.get("uid") == uid:
                revisions.append(revision)
            elif ref is None and selector.matches(revision["metadata"].get("labels") or {}):
                adopted = await self._adopt_revision(ds, revision)
                if adopted is not None:
                    revisions.append(adopted)
        data = template_patch(ds)
        collision_count = int((ds.get("status") or {}).get("collisionCount") or 0)
        wanted_hash = revision_hash(data, collision_count)
        max_revision = max((int(r.get("revision") or 0) for r in revisions), default=0)
        current = None
        for revision in revisions:
            if revision.get("data") == data:
                current = revision
                break
        if current is None:
            current = await self._create_revision(ds, data, wanted_hash, max_revision + 1)
        elif int(current.get("revision") or 0) < max_revision:
            # A rollback to an older template makes that revision the newest again.
            current = await self.client.patch(CONTROLLER_REVISIONS, current["metadata"]["name"],
                                              {"revision": max_revision + 1}, namespace)
        old = [r for r in revisions if r["metadata"]["name"] != current["metadata"]["name"]]
        return current, old

    async def _adopt_revision(self, ds: dict[str, Any], revision: dict[str, Any]) -> dict[str, Any] | None:
        meta = revision["metadata"]
        try:
            return await self.client.patch(CONTROLLER_REVISIONS, meta["name"], {"metadata": {
                "ownerReferences": list(meta.get("ownerReferences") or []) + [owner_reference(ds)],
                "resourceVersion": meta["resourceVersion"]}}, meta["namespace"])
        except (errors.NotFound, errors.Conflict):
            return None

    async def _create_revision(self, ds: dict[str, Any], data: dict[str, Any], wanted_hash: str,
                               number: int) -> dict[str, Any]:
        namespace = ds["metadata"]["namespace"]
        labels = dict((ds["spec"]["template"].get("metadata") or {}).get("labels") or {})
        labels[HASH_LABEL] = wanted_hash
        revision = {"apiVersion": "apps/v1", "kind": "ControllerRevision",
                    "metadata": {"name": f"{ds['metadata']['name'][:223]}-{wanted_hash}", "namespace": namespace,
                                 "labels": labels, "ownerReferences": [owner_reference(ds)]},
                    "data": data, "revision": number}
        annotations = {k: v for k, v in (ds["metadata"].get("annotations") or {}).items()
                       if k == "kubernetes.io/change-cause"}
        if annotations:
            revision["metadata"]["annotations"] = annotations
        try:
            return await self.client.create(CONTROLLER_REVISIONS, revision, namespace)
        except errors.AlreadyExists:
            existing = await self.client.get(CONTROLLER_REVISIONS, revision["metadata"]["name"], namespace)
            ref = controller_ref(existing)
            if existing.get("data") == data and ref is not None and ref.get("uid") == ds["metadata"]["uid"]:
                return existing
            # A hash collision: bump collisionCount so the next pass picks another name.
            count = int((ds.get("status") or {}).get("collisionCount") or 0) + 1
            await self.client.patch(DAEMONSETS, ds["metadata"]["name"], {"status": {"collisionCount": count}},
                                    namespace, subresource="status")
            raise Requeue(0.1)

    async def _cleanup_history(self, ds: dict[str, Any], pods: list[dict[str, Any]],
                               old_revisions: list[dict[str, Any]]) -> None:
        limit = ds["spec"].get("revisionHistoryLimit")
        limit = DEFAULT_REVISION_HISTORY_LIMIT if limit is None else int(limit)
        if len(old_revisions) <= limit:
            return
        in_use = {(p["metadata"].get("labels") or {}).get(HASH_LABEL) for p in pods}
        removable = [r for r in sorted(old_revisions, key=lambda r: int(r.get("revision") or 0))
                     if (r["metadata"].get("labels") or {}).get(HASH_LABEL) not in in_use]
        for revision in removable[:len(old_revisions) - limit]:
            try:
                await self.client.delete(CONTROLLER_REVISIONS, revision["metadata"]["name"], revision["metadata"]["namespace"])
            except errors.NotFound:
                pass

    # -- pods per node --------------------------------------------------------------

    async def _manage(self, ds: dict[str, Any], key: str, nodes: list[dict[str, Any]],
                      live_pods: dict[str, list[dict[str, Any]]], current_hash: str) -> float | None:
        surge_allowed = (ds["spec"].get("updateStrategy") or {}).get("type", "RollingUpdate") == "RollingUpdate" \
            and surge_and_unavailable(ds, len(nodes))[0] > 0
        to_create: list[str] = []
        to_delete: list[dict[str, Any]] = []
        failed_seen = False
        node_names = set()
        for node in nodes:
            name = node["metadata"]["name"]
            node_names.add(name)
            should_run, should_continue = node_should_run_daemon_pod(node, ds)
            pods = sorted(live_pods.get(name) or [], key=_creation_order)
            if should_run and not pods:
                to_create.append(name)
            elif should_continue:
                running = []
                for pod in pods:
                    if (pod.get("status") or {}).get("phase") == "Failed":
                        failed_seen = True
                        await self.recorder.event(ds, "Warning", "FailedDaemonPod",
                                                  f"Found failed daemon pod {pod['metadata']['namespace']}/{pod['metadata']['name']} "
                                                  f"on node {name}, will try to kill it")
                        to_delete.append(pod)
                    else:
                        running.append(pod)
                if surge_allowed:
                    # During a surge one old and one new pod may share a node.
                    kept_new = kept_old = False
                    for pod in running:
                        if is_updated(pod, current_hash) and not kept_new:
                            kept_new = True
                        elif not is_updated(pod, current_hash) and not kept_old:
                            kept_old = True
                        else:
                            to_delete.append(pod)
                else:
                    to_delete.extend(running[1:])  # keep the oldest
            elif not should_continue:
                to_delete.extend(pods)
        # Unscheduled pods for nodes that no longer exist (bound ones are PodGC's job upstream).
        for node_name, pods in live_pods.items():
            if node_name not in node_names:
                to_delete.extend(p for p in pods if not (p.get("spec") or {}).get("nodeName"))
        await self._sync_nodes(ds, key, to_create, to_delete, current_hash)
        return 1.0 if failed_seen else None

    async def _rolling_update(self, ds: dict[str, Any], key: str, nodes: list[dict[str, Any]],
                              live_pods: dict[str, list[dict[str, Any]]], current_hash: str) -> float | None:
        should_run = {n["metadata"]["name"] for n in nodes if node_should_run_daemon_pod(n, ds)[0]}
        delete_names, create_nodes = plan_rolling_update(ds, live_pods, should_run, current_hash, time.time())
        by_name = {p["metadata"]["name"]: p for pods in live_pods.values() for p in pods}
        await self._sync_nodes(ds, key, create_nodes, [by_name[n] for n in delete_names if n in by_name], current_hash)
        return None

    async def _sync_nodes(self, ds: dict[str, Any], key: str, create_on: list[str],
                          delete: list[dict[str, Any]], current_hash: str) -> None:
        if not create_on and not delete:
            return
        expectations = self.expectations.setdefault(key, _Expectations())
        expectations.deadline = time.monotonic() + EXPECTATIONS_TIMEOUT
        # Slow start as upstream: batches of 1, 2, 4, ... stop at the first failing batch.
        pending = list(create_on)
        batch = 1
        while pending:
            chunk, pending = pending[:batch], pending[batch:]
            results = await asyncio.gather(*(self._create_pod(ds, node, current_hash, expectations) for node in chunk))
            if not all(results):
                break
            batch *= 2
        for pod in delete:
            meta = pod["metadata"]
            expectations.deleted.add(meta["name"])
            try:
                await self.client.delete(PODS, meta["name"], meta["namespace"])
            except errors.NotFound:
                expectations.deleted.discard(meta["name"])
                continue
            except errors.ApiError as exc:
                expectations.deleted.discard(meta["name"])
                await self.recorder.event(ds, "Warning", "FailedDelete", f"Error deleting: {exc}")
                continue
            await self.recorder.event(ds, "Normal", "SuccessfulDelete", f"Deleted pod: {meta['name']}")

    def new_pod(self, ds: dict[str, Any], node_name: str, current_hash: str) -> dict[str, Any]:
        template = copy.deepcopy(ds["spec"]["template"])
        template_meta = template.get("metadata") or {}
        labels = dict(template_meta.get("labels") or {})
        labels[HASH_LABEL] = current_hash
        spec = template.get("spec") or {}
        spec["affinity"] = pin_to_node(spec.get("affinity"), node_name)
        spec["tolerations"] = daemon_pod_tolerations(spec)
        metadata = {"generateName": f"{ds['metadata']['name']}-", "namespace": ds["metadata"]["namespace"],
                    "labels": labels, "ownerReferences": [owner_reference(ds)]}
        if template_meta.get("annotations"):
            metadata["annotations"] = dict(template_meta["annotations"])
        if template_meta.get("finalizers"):
            metadata["finalizers"] = list(template_meta["finalizers"])
        return {"apiVersion": "v1", "kind": "Pod", "metadata": metadata, "spec": spec}

    async def _create_pod(self, ds: dict[str, Any], node_name: str, current_hash: str,
                          expectations: _Expectations) -> bool:
        try:
            created = await self.client.create(PODS, self.new_pod(ds, node_name, current_hash), ds["metadata"]["namespace"])
        except errors.ApiError as exc:
            if isinstance(exc, errors.Forbidden) and "being terminated" in str(exc):
                return False  # the namespace is going away: no event, as upstream
            await self.recorder.event(ds, "Warning", "FailedCreate", f"Error creating: {exc}")
            return False
        name = created["metadata"]["name"]
        if self.pods.get(f"{created['metadata']['namespace']}/{name}") is None:
            expectations.created.add(name)
        await self.recorder.event(ds, "Normal", "SuccessfulCreate", f"Created pod: {name}")
        return True

    # -- status ---------------------------------------------------------------------

    async def _update_status(self, ds: dict[str, Any], nodes: list[dict[str, Any]],
                             live_pods: dict[str, list[dict[str, Any]]], current_hash: str) -> None:
        counted = {node: [p for p in pods if (p.get("status") or {}).get("phase") not in ("Succeeded", "Failed")]
                   for node, pods in live_pods.items()}
        wanted = daemonset_status(ds, nodes, counted, current_hash, time.time())
        status = dict(ds.get("status") or {})
        merged = dict(status, **wanted)
        if merged == status:
            return
        updated = {"apiVersion": "apps/v1", "kind": "DaemonSet", "metadata": ds["metadata"], "spec": ds["spec"],
                   "status": merged}
        try:
            await self.client.update(DAEMONSETS, updated, subresource="status")
        except errors.NotFound:
            pass
