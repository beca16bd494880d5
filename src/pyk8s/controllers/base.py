"""The shape every controller shares (upstream's sample-controller): informers feed a
rate-limited work queue of keys; workers take a key, call `reconcile(key)`, forget the key
on success and requeue it with back-off on failure. `reconcile` reads the informer caches
(current state, never the event), makes the smallest change through the API, and is safe to
run any number of times.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from pyk8s.api import errors
from pyk8s.client.informer import Informer, object_key, shared_informers
from pyk8s.client.workqueue import WorkQueue

log = logging.getLogger("pyk8s.controllers")


class Requeue(Exception):
    """Raised by reconcile() to ask for the key again after `delay` seconds, without
    counting as a failure (e.g. waiting for minReadySeconds to pass)."""

    def __init__(self, delay: float):
        super().__init__(delay)
        self.delay = delay


class Controller:
    name = "controller"
    workers = 1

    def __init__(self, client):
        self.client = client
        self.queue = WorkQueue()
        self.informers: list[Informer] = []
        self._tasks: list[asyncio.Task] = []

    # -- wiring helpers -------------------------------------------------------------

    def informer(self, resource, **kwargs) -> Informer:
        """The shared informer for `resource` (one per client, whatever number of
        controllers use it)."""
        informer = shared_informers(self.client).informer(resource, **kwargs)
        if informer not in self.informers:
            self.informers.append(informer)
        return informer

    def enqueue(self, obj: dict[str, Any]) -> None:
        self.queue.add(object_key(obj))

    def enqueue_handlers(self) -> dict[str, Any]:
        """Handlers that queue the object's own key on any change."""
        return {"on_add": self.enqueue, "on_update": lambda old, new: self.enqueue(new), "on_delete": self.enqueue}

    # -- lifecycle ------------------------------------------------------------------

    async def start(self) -> None:
        shared = shared_informers(self.client)
        for informer in self.informers:
            shared.start(informer)
        self._tasks.append(asyncio.create_task(self._run_workers(), name=f"{self.name}-workers"))

    async def _run_workers(self) -> None:
        await asyncio.gather(*(informer.synced.wait() for informer in self.informers))
        await self.on_synced()
        await asyncio.gather(*(self._worker() for _ in range(self.workers)))

    async def on_synced(self) -> None:
        """Called once every informer has synced, before workers start."""

    async def stop(self) -> None:
        self.queue.shut_down()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks.clear()
        shared = shared_informers(self.client)
        for informer in self.informers:
            await shared.release(informer)

    async def _worker(self) -> None:
        while True:
            key = await self.queue.get()
            try:
                await self.reconcile(key)
                self.queue.forget(key)
            except Requeue as again:
                self.queue.forget(key)
                self.queue.add_after(key, again.delay)
            except asyncio.CancelledError:
                raise
            except errors.Conflict:
                # Our cache was behind the server: try again once the informer catches up.
                self.queue.add_rate_limited(key)
            except Exception as exc:
                log.warning("%s: reconcile %s failed: %s", self.name, key, exc,
                            exc_info=not isinstance(exc, errors.ApiError))
                self.queue.add_rate_limited(key)
            finally:
                self.queue.done(key)

    async def reconcile(self, key: str) -> None:
        raise NotImplementedError


def split_key(key: str) -> tuple[str | None, str]:
    namespace, _, name = key.rpartition("/")
    return (namespace or None), name


def controller_ref(obj: dict[str, Any]) -> dict[str, Any] | None:
    for ref in obj["metadata"].get("ownerReferences") or []:
        if ref.get("controller"):
            return ref
    return None


def owner_reference(owner: dict[str, Any], *, controller: bool = True, block: bool = True) -> dict[str, Any]:
    return {"apiVersion": owner["apiVersion"], "kind": owner["kind"], "name": owner["metadata"]["name"],
            "uid": owner["metadata"]["uid"], "controller": controller, "blockOwnerDeletion": block}
