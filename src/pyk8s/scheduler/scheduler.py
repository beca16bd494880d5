"""The Scheduler service: informers in, bindings, events and pod conditions out.

Data flow:
- a pod informer (every pod; terminal ones count for nothing) and a node informer fill the SchedulerCache
  (nodes, and pods already bound, for resource accounting) and put pending pods that name
  this scheduler into the SchedulingQueue;
- one loop pops the best pending pod, decides with `Algorithm.schedule` (synchronous,
  on cached state) and, when a node fits, counts the pod there at once (assume) and
  starts the binding (POST pods/<name>/binding) as a task, so up to `bind_concurrency`
  bindings are in flight while the loop decides the next pods;
- a successful binding records a `Scheduled` event; a 409 means our cache was behind
  (someone bound or changed the pod): the assumption is dropped and the informer tells
  the truth; other errors retry with back-off;
- when nothing fits, a Warning `FailedScheduling` event and the pod's PodScheduled
  condition (False, Unschedulable, same message, through pods/<name>/status) say why, and
  the pod waits until a node is added or changes or a bound pod goes away.
Events are written by a few background workers so they never hold up bindings.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from pyk8s.api import errors
from pyk8s.api.resources import lookup
from pyk8s.client import resource_path
from pyk8s.client.informer import Informer, object_key
from pyk8s.client.events import EventRecorder
from pyk8s.scheduler.algorithm import Algorithm
from pyk8s.scheduler.cache import SchedulerCache
from pyk8s.scheduler.queue import SchedulingQueue
from pyk8s.scheduler.volumebinding import VolumeBinding, claim_is_bound
from pyk8s.api import volumebinding as vb

log = logging.getLogger("pyk8s.scheduler")

PODS = lookup("", "v1", "pods")
NODES = lookup("", "v1", "nodes")
PVS = lookup("", "v1", "persistentvolumes")
PVCS = lookup("", "v1", "persistentvolumeclaims")
STORAGE_CLASSES = lookup("storage.k8s.io", "v1", "storageclasses")
# upstream's VolumeBinding bindTimeoutSeconds: how long PreBind waits for claims to be bound
VOLUME_BIND_TIMEOUT = 600.0

DEFAULT_SCHEDULER_NAME = "default-scheduler"
FLUSH_INTERVAL = 15.0


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def _priority(pod: dict[str, Any]) -> int:
    return (pod.get("spec") or {}).get("priority") or 0


def _is_terminal(pod: dict[str, Any]) -> bool:
    return (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed")


class Scheduler:
    def __init__(self, client, scheduler_name: str = DEFAULT_SCHEDULER_NAME, *, bind_concurrency: int = 48,
                 event_workers: int = 4):
        self.client = client
        self.scheduler_name = scheduler_name
        self.cache = SchedulerCache()
        self.queue = SchedulingQueue()
        # Claims, volumes and classes for the VolumeBinding plugin.
        self.claim_informer = Informer(client, PVCS)
        self.volume_informer = Informer(client, PVS)
        self.class_informer = Informer(client, STORAGE_CLASSES)
        self.volume_index = vb.VolumeIndex()
        # claim key -> PreBind waits on it: (future, node it must be provisioned on or None,
        # resourceVersion of our selected-node write)
        self._claim_waiters: dict[str, list[tuple[asyncio.Future, str | None, int]]] = {}
        self.algorithm = Algorithm(self.cache, volume_binding=VolumeBinding(
            self.claim_informer.get, self.volume_index, self.class_informer.get))
        self.recorder = EventRecorder(client, scheduler_name)
        # Every pod, unfiltered: the API server streams unfiltered watches as stored bytes,
        # while a field selector (upstream's status.phase!=Succeeded,!=Failed) makes it
        # decode and re-encode each event. Terminal pods are dropped in the handlers.
        self.pod_informer = Informer(client, PODS)
        self.node_informer = Informer(client, NODES)
        self._bind_slots = asyncio.Semaphore(bind_concurrency)
        self._event_workers = event_workers
        self._events: asyncio.Queue = asyncio.Queue()
        self._tasks: list[asyncio.Task] = []
        self._in_flight: set[asyncio.Task] = set()
        self.scheduled_count = 0
        self.failed_count = 0

        self.pod_informer.add_handlers(on_add=self._pod_added, on_update=self._pod_updated,
                                       on_delete=self._pod_deleted)
        self.node_informer.add_handlers(on_add=self._node_added, on_update=self._node_updated,
                                        on_delete=self._node_deleted)
        self.claim_informer.add_handlers(on_add=self._claim_changed, on_update=lambda old, new: self._claim_changed(new),
                                         on_delete=lambda claim: self.queue.move_all_to_active())
        self.volume_informer.add_handlers(on_add=self._volume_changed,
                                          on_update=lambda old, new: self._volume_changed(new),
                                          on_delete=self._volume_deleted)
        self.class_informer.add_handlers(on_add=lambda c: self.queue.move_all_to_active(),
                                         on_update=lambda old, new: self.queue.move_all_to_active())

    # -- lifecycle ----------------------------------------------------------------------

    async def start(self) -> None:
        self._tasks = [
            asyncio.create_task(self.node_informer.run(), name="scheduler-nodes"),
            asyncio.create_task(self.pod_informer.run(), name="scheduler-pods"),
            asyncio.create_task(self.claim_informer.run(), name="scheduler-claims"),
            asyncio.create_task(self.volume_informer.run(), name="scheduler-volumes"),
            asyncio.create_task(self.class_informer.run(), name="scheduler-classes"),
            asyncio.create_task(self._schedule_loop(), name="scheduler-loop"),
            asyncio.create_task(self._flush_loop(), name="scheduler-flush"),
            *(asyncio.create_task(self._event_worker(), name="scheduler-events") for _ in range(self._event_workers)),
        ]

    async def stop(self) -> None:
        self.queue.close()
        tasks = [*self._tasks, *self._in_flight]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._tasks.clear()
        self._in_flight.clear()

    # -- informer handlers (quick: update the cache, queue keys) ---------------------------

    def _is_ours_and_pending(self, pod: dict[str, Any]) -> bool:
        spec = pod.get("spec") or {}
        return (not spec.get("nodeName")
                and (spec.get("schedulerName") or DEFAULT_SCHEDULER_NAME) == self.scheduler_name
                and not pod["metadata"].get("deletionTimestamp")
                and not spec.get("schedulingGates")
                and not _is_terminal(pod))

    def _pod_added(self, pod: dict[str, Any]) -> None:
        if _is_terminal(pod):
            return
        if (pod.get("spec") or {}).get("nodeName"):
            self.cache.add_bound_pod(pod)
        elif self._is_ours_and_pending(pod):
            self.queue.add(object_key(pod), _priority(pod))

    def _pod_updated(self, old: dict[str, Any], new: dict[str, Any]) -> None:
        key = object_key(new)
        if _is_terminal(new):
            self._pod_deleted(new)  # a finished pod no longer uses its node
            return
        if (new.get("spec") or {}).get("nodeName"):
            self.cache.add_bound_pod(new)
            self.queue.delete(key)
            return
        if not self._is_ours_and_pending(new):
            self.queue.delete(key)
            return
        # Our own status patches come back as updates: only a change to what decides
        # placement (spec, labels) is worth another attempt right away.
        if (old.get("spec") != new.get("spec") or old["metadata"].get("labels") != new["metadata"].get("labels")
                or not self._is_ours_and_pending(old)):
            self.queue.add(key, _priority(new))

    def _claim_changed(self, claim: dict[str, Any]) -> None:
        key = object_key(claim)
        if claim_is_bound(claim):
            for waiter, _, _ in self._claim_waiters.pop(key, ()):
                if not waiter.done():
                    waiter.set_result(None)
        elif key in self._claim_waiters:
            self._check_provisioning(claim)
        self.queue.move_all_to_active()

    def _check_provisioning(self, claim: dict[str, Any]) -> None:
        """upstream checkBindings: a claim handed to a provisioner for a node that no longer
        names that node (the provisioner gave up and cleared `selected-node`) fails PreBind,
        so the pod goes back to the queue and the scheduler picks a node again."""
        key = object_key(claim)
        selected = (claim["metadata"].get("annotations") or {}).get(vb.ANN_SELECTED_NODE)
        version = int(claim["metadata"].get("resourceVersion") or 0)
        waiting = []
        for waiter, node_name, written in self._claim_waiters.get(key, ()):
            if node_name is not None and version >= written and selected != node_name and not waiter.done():
                name = claim["metadata"]["name"]
                waiter.set_exception(RuntimeError(f'provisioning failed for PVC "{name}"'))
            if not waiter.done():
                waiting.append((waiter, node_name, written))
        if waiting:
            self._claim_waiters[key] = waiting
        else:
            self._claim_waiters.pop(key, None)

    def _volume_changed(self, volume: dict[str, Any]) -> None:
        current = self.volume_index.get(volume["metadata"]["name"])
        if current is None or int(volume["metadata"].get("resourceVersion") or 0) >= \
                int(current["metadata"].get("resourceVersion") or 0):
            self.volume_index.put(volume)
        self.queue.move_all_to_active()

    def _volume_deleted(self, volume: dict[str, Any]) -> None:
        self.volume_index.remove(volume["metadata"]["name"])

    def _pod_deleted(self, pod: dict[str, Any]) -> None:
        self.queue.delete(object_key(pod))
        placed = self.cache.remove_pod_uid(pod["metadata"].get("uid"))
        if placed is not None and not placed.assumed:
            self.queue.move_all_to_active()  # its resources and ports are free again

    def _node_added(self, node: dict[str, Any]) -> None:
        self.cache.set_node(node)
        self.queue.move_all_to_active()

    def _node_updated(self, old: dict[str, Any], new: dict[str, Any]) -> None:
        if self.cache.set_node(new):
            self.queue.move_all_to_active()

    def _node_deleted(self, node: dict[str, Any]) -> None:
        self.cache.remove_node(node["metadata"]["name"])

    # -- the scheduling loop ------------------------------------------------------------------

    async def _schedule_loop(self) -> None:
        await self.node_informer.synced.wait()
        await self.pod_informer.synced.wait()
        for informer in (self.claim_informer, self.volume_informer, self.class_informer):
            await informer.synced.wait()
        log.info("scheduler caches synced: %d nodes, %d placed pods", len(self.cache.node_list()),
                 len(self.cache.pods))
        while True:
            key = await self.queue.pop()
            try:
                await self._schedule_one(key)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("scheduling %s failed", key)
                pod = self.pod_informer.get(key)
                if pod is not None:
                    self.queue.add_backoff(key, _priority(pod))

    async def _schedule_one(self, key: str) -> None:
        pod = self.pod_informer.get(key)
        if pod is None or not self._is_ours_and_pending(pod):
            return
        uid = pod["metadata"].get("uid")
        if self.cache.is_assumed(uid):
            return  # a binding for it is already in flight
        decision = self.algorithm.schedule(pod)
        if decision.node_name is None:
            self.failed_count += 1
            self.queue.add_unschedulable(key, _priority(pod))
            self._spawn(self._report_unschedulable(pod, decision.message))
            return
        self.cache.assume(pod, decision.node_name)
        await self._bind_slots.acquire()  # back-pressure: bounded bindings in flight
        self._spawn(self._bind(pod, key, uid, decision.node_name, decision.volumes), holds_slot=True)

    def _spawn(self, coroutine, holds_slot: bool = False) -> None:
        task = asyncio.create_task(coroutine)
        self._in_flight.add(task)

        def finished(done: asyncio.Task) -> None:
            self._in_flight.discard(done)
            if holds_slot:
                self._bind_slots.release()
        task.add_done_callback(finished)

    async def _bind(self, pod: dict[str, Any], key: str, uid: str, node_name: str, volumes=None) -> None:
        meta = pod["metadata"]
        if volumes is not None and volumes.delayed:
            try:
                await self._pre_bind_volumes(pod, node_name, volumes)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                message = f'running PreBind plugin "VolumeBinding": {exc}'
                log.info("pre-binding volumes of %s on %s failed: %s", key, node_name, exc)
                self.cache.forget(uid)
                self.queue.add_backoff(key, _priority(pod))
                self._events.put_nowait((pod, "Warning", "FailedScheduling", message))
                return
        binding = {"apiVersion": "v1", "kind": "Binding",
                   "metadata": {"name": meta["name"], "namespace": meta.get("namespace"), "uid": uid},
                   "target": {"apiVersion": "v1", "kind": "Node", "name": node_name}}
        try:
            await self.client.request("POST", resource_path(PODS, meta.get("namespace"), meta["name"], "binding"),
                                      body=binding)
        except (errors.Conflict, errors.NotFound) as exc:
            # Our cache was behind: the pod was bound elsewhere, changed or deleted. The
            # informer brings the truth (and requeues the pod if it still needs a node).
            log.debug("binding %s to %s skipped: %s", key, node_name, exc)
            self.cache.forget(uid)
            return
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.warning("binding %s to %s failed: %s", key, node_name, exc)
            self.cache.forget(uid)
            self.queue.add_backoff(key, _priority(pod))
            return
        self.scheduled_count += 1
        self.queue.forget(key)
        self._events.put_nowait((pod, "Normal", "Scheduled",
                                 f"Successfully assigned {meta.get('namespace')}/{meta['name']} to {node_name}"))

    async def _pre_bind_volumes(self, pod: dict[str, Any], node_name: str, volumes) -> None:
        """upstream VolumeBinding PreBind: give matched PVs their claim, ask provisioners for
        the rest on this node, then wait until the binder has bound every claim."""
        node = self.node_informer.get(node_name)
        if node is None:
            raise RuntimeError(f"node {node_name} is gone")
        reasons, actions = volumes.plan(node)
        if reasons:
            raise RuntimeError(", ".join(reasons))
        namespace = pod["metadata"].get("namespace")
        waits: list[tuple[str, asyncio.Future]] = []
        try:
            for action, claim, volume in actions:
                claim_key = object_key(claim)
                waiter = asyncio.get_running_loop().create_future()
                waits.append((claim_key, waiter))
                if action == "bind":
                    self._claim_waiters.setdefault(claim_key, []).append((waiter, None, 0))
                    updated = {**volume, "metadata": dict(volume["metadata"]), "spec": dict(volume["spec"])}
                    updated["metadata"]["annotations"] = {**(volume["metadata"].get("annotations") or {}),
                                                          vb.ANN_BOUND_BY_CONTROLLER: "yes"}
                    updated["spec"]["claimRef"] = vb.claim_reference(claim)
                    self._volume_changed(await self.client.update(PVS, updated))
                else:
                    written = claim
                    if (claim["metadata"].get("annotations") or {}).get(vb.ANN_SELECTED_NODE) != node_name:
                        written = await self.client.patch(
                            PVCS, claim["metadata"]["name"],
                            {"metadata": {"annotations": {vb.ANN_SELECTED_NODE: node_name}}}, namespace)
                    self._claim_waiters.setdefault(claim_key, []).append(
                        (waiter, node_name, int(written["metadata"].get("resourceVersion") or 0)))
                current = self.claim_informer.get(claim_key)
                if current is not None and not waiter.done():
                    if claim_is_bound(current):
                        waiter.set_result(None)
                    elif action != "bind":
                        self._check_provisioning(current)
            try:
                await asyncio.wait_for(asyncio.gather(*(waiter for _, waiter in waits)), VOLUME_BIND_TIMEOUT)
            except asyncio.TimeoutError:
                raise RuntimeError("binding volumes: timed out waiting for the condition") from None
            except RuntimeError as exc:
                raise RuntimeError(f"binding volumes: {exc}") from None
        finally:
            for claim_key, waiter in waits:
                if not waiter.done():
                    waiter.cancel()
                elif not waiter.cancelled():
                    waiter.exception()  # retrieved: a second failure is not logged as lost
                left = [entry for entry in self._claim_waiters.get(claim_key, ()) if entry[0] is not waiter]
                if left:
                    self._claim_waiters[claim_key] = left
                else:
                    self._claim_waiters.pop(claim_key, None)

    async def _report_unschedulable(self, pod: dict[str, Any], message: str) -> None:
        self._events.put_nowait((pod, "Warning", "FailedScheduling", message))
        meta = pod["metadata"]
        status = pod.get("status") or {}
        conditions = status.get("conditions") or []
        current = next((c for c in conditions if c.get("type") == "PodScheduled"), None)
        if current is not None and current.get("status") == "False" and current.get("reason") == "Unschedulable" \
                and current.get("message") == message:
            return
        condition = {"type": "PodScheduled", "status": "False", "reason": "Unschedulable", "message": message,
                     "lastProbeTime": None,
                     "lastTransitionTime": (current.get("lastTransitionTime")
                                            if current is not None and current.get("status") == "False" else None)
                     or _now()}
        # A merge patch replaces the whole list: carry the other conditions over.
        patched = [c for c in conditions if c.get("type") != "PodScheduled"] + [condition]
        try:
            await self.client.patch(PODS, meta["name"], {"status": {"conditions": patched}}, meta.get("namespace"),
                                    subresource="status")
        except errors.ApiError as exc:
            log.debug("could not set PodScheduled on %s/%s: %s", meta.get("namespace"), meta["name"], exc)

    async def _event_worker(self) -> None:
        while True:
            obj, event_type, reason, message = await self._events.get()
            await self.recorder.event(obj, event_type, reason, message)

    async def _flush_loop(self) -> None:
        while True:
            await asyncio.sleep(FLUSH_INTERVAL)
            self.queue.flush_unschedulable()
