"""Informers: a local cache of one resource kept current by list + watch (client-go's
SharedInformer, in asyncio).

`run()` lists, fills the cache, marks itself synced, then watches from the list's
resourceVersion. A dropped watch resumes from the last resourceVersion seen (events or
BOOKMARKs); a 410 Gone relists and replays the difference to handlers as adds, updates
and deletes, so handlers never miss a change. Cached objects are shared: never mutate one,
copy it first.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, Callable

from pyk8s.api import errors
from pyk8s.api.resources import Resource

log = logging.getLogger("pyk8s.informer")

Handler = Callable[..., None]


def object_key(obj: dict[str, Any]) -> str:
    meta = obj["metadata"]
    namespace = meta.get("namespace")
    return f"{namespace}/{meta['name']}" if namespace else meta["name"]


class Informer:
    def __init__(self, client, resource: Resource, *, namespace: str | None = None,
                 label_selector: str = "", field_selector: str = "", watch_timeout: int = 300):
        self.client = client
        self.resource = resource
        self.namespace = namespace
        self.label_selector = label_selector
        self.field_selector = field_selector
        self.watch_timeout = watch_timeout
        self.cache: dict[str, dict[str, Any]] = {}
        self.synced = asyncio.Event()
        self.resource_version = ""
        self._on_add: list[Handler] = []
        self._on_update: list[Handler] = []
        self._on_delete: list[Handler] = []

    def add_handlers(self, *, on_add: Handler | None = None, on_update: Handler | None = None,
                     on_delete: Handler | None = None) -> None:
        """on_add(obj), on_update(old, new), on_delete(obj). Handlers run on the informer's
        task and must be quick (typically: enqueue a key)."""
        if on_add:
            self._on_add.append(on_add)
            # A handler that joins a shared informer late still sees what is cached.
            for obj in list(self.cache.values()):
                self._dispatch([on_add], obj)
        if on_update:
            self._on_update.append(on_update)
        if on_delete:
            self._on_delete.append(on_delete)

    def get(self, key: str) -> dict[str, Any] | None:
        return self.cache.get(key)

    def list(self, namespace: str | None = None) -> list[dict[str, Any]]:
        if namespace is None:
            return list(self.cache.values())
        return [obj for obj in self.cache.values() if obj["metadata"].get("namespace") == namespace]

    def _params(self) -> dict[str, Any]:
        params: dict[str, Any] = {}
        if self.label_selector:
            params["labelSelector"] = self.label_selector
        if self.field_selector:
            params["fieldSelector"] = self.field_selector
        return params

    async def _relist(self) -> None:
        listed = await self.client.list(self.resource, self.namespace, **self._params())
        fresh = {object_key(obj): obj for obj in listed["items"]}
        kind = self.resource.kind
        for obj in listed["items"]:
            obj.setdefault("kind", kind)
            obj.setdefault("apiVersion", self.resource.api_version)
        old_cache, self.cache = self.cache, fresh
        self.resource_version = listed["metadata"]["resourceVersion"]
        for key, obj in fresh.items():
            previous = old_cache.get(key)
            if previous is None:
                self._dispatch(self._on_add, obj)
            elif previous["metadata"].get("resourceVersion") != obj["metadata"].get("resourceVersion"):
                self._dispatch(self._on_update, previous, obj)
        for key, obj in old_cache.items():
            if key not in fresh:
                self._dispatch(self._on_delete, obj)

    def _dispatch(self, handlers: list[Handler], *args: Any) -> None:
        for handler in handlers:
            try:
                handler(*args)
            except Exception:  # one bad handler must not stop the informer
                log.exception("%s informer handler failed", self.resource.plural)

    def _apply(self, event: dict[str, Any]) -> None:
        event_type = event["type"]
        obj = event["object"]
        if event_type == "BOOKMARK":
            self.resource_version = obj["metadata"]["resourceVersion"]
            return
        if event_type == "ERROR":
            code = obj.get("code")
            if code == 410:
                raise errors.Gone(obj.get("message", "resource version too old"))
            raise errors.InternalError(obj.get("message", "watch error"))
        obj.setdefault("kind", self.resource.kind)
        obj.setdefault("apiVersion", self.resource.api_version)
        key = object_key(obj)
        self.resource_version = obj["metadata"]["resourceVersion"]
        if event_type == "DELETED":
            previous = self.cache.pop(key, None)
            self._dispatch(self._on_delete, previous or obj)
            return
        previous = self.cache.get(key)
        self.cache[key] = obj
        if previous is None:
            self._dispatch(self._on_add, obj)
        else:
            self._dispatch(self._on_update, previous, obj)

    async def run(self) -> None:
        backoff = 0.2
        needs_list = True
        while True:
            try:
                if needs_list:
                    await self._relist()
                    needs_list = False
                    self.synced.set()
                async for event in self.client.watch(self.resource, self.namespace,
                                                     resource_version=self.resource_version,
                                                     timeout_seconds=self.watch_timeout, **self._params()):
                    self._apply(event)
                backoff = 0.2
            except asyncio.CancelledError:
                raise
            except errors.Gone:
                needs_list = True
            except Exception as exc:
                log.debug("%s watch interrupted: %s", self.resource.plural, exc)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 5.0)


class SharedInformers:
    """One informer per (resource, namespace, selectors) for every controller that uses the
    same client (client-go's SharedInformerFactory): one list+watch and one cache however
    many controllers look at pods. Informers run while at least one user has started them."""

    def __init__(self, client):
        self.client = client
        self._informers: dict[tuple, Informer] = {}
        self._tasks: dict[int, asyncio.Task] = {}
        self._users: dict[int, int] = {}

    def informer(self, resource: Resource, **kwargs: Any) -> Informer:
        key = (resource.group, resource.version, resource.plural, tuple(sorted(kwargs.items())))
        informer = self._informers.get(key)
        if informer is None:
            informer = self._informers[key] = Informer(self.client, resource, **kwargs)
        return informer

    def start(self, informer: Informer) -> None:
        identity = id(informer)
        self._users[identity] = self._users.get(identity, 0) + 1
        if identity not in self._tasks:
            self._tasks[identity] = asyncio.create_task(informer.run(), name=f"informer-{informer.resource.plural}")

    async def release(self, informer: Informer) -> None:
        identity = id(informer)
        self._users[identity] = self._users.get(identity, 1) - 1
        if self._users[identity] <= 0:
            self._users.pop(identity, None)
            task = self._tasks.pop(identity, None)
            if task is not None:
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)


def shared_informers(client) -> SharedInformers:
    """The SharedInformers of a client, made on first use."""
    shared = getattr(client, "_shared_informers", None)
    if shared is None:
        shared = client._shared_informers = SharedInformers(client)
    return shared
