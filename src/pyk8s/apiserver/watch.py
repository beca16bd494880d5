"""Watch streams: store events → API watch events, filtered and framed.

A watch is a store watch on the resource's key prefix from the requested revision. Each
store event becomes ADDED / MODIFIED / DELETED; with a selector, an object that starts
matching arrives as ADDED and one that stops matching as DELETED (upstream's watch cache
does the same). When idle the stream sends BOOKMARKs if the client allows them, and it
ends after `timeoutSeconds`. A start revision older than the compacted one is answered
with a single ERROR event carrying a 410 Expired Status, which makes clients relist.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, AsyncIterator

import orjson

from pyk8s.api import errors
from pyk8s.api.resources import Resource
from pyk8s.apiserver.registry import ListOptions, Registry, decode, encode_with_resource_version, object_matches
from pyk8s.storage.interface import Compacted, Event, KeyValue

BOOKMARK_INTERVAL = 10.0  # upstream sends them about once a minute; sooner costs little here


@dataclass
class WatchOptions:
    resource_version: str = ""
    timeout_seconds: float | None = None
    allow_bookmarks: bool = False
    send_initial_events: bool = False


class RawObject:
    """A stored object not decoded yet: unfiltered JSON watches send the stored bytes (with
    the resourceVersion spliced in) and never parse them."""

    __slots__ = ("kv",)

    def __init__(self, kv: KeyValue):
        self.kv = kv

    def decode(self) -> dict[str, Any]:
        return decode(self.kv)

    def json(self) -> bytes:
        return encode_with_resource_version(self.kv)


def _obj(value: bytes, revision: int) -> dict[str, Any]:
    obj = orjson.loads(value)
    obj["metadata"]["resourceVersion"] = str(revision)
    return obj


async def watch_events(registry: Registry, resource: Resource, namespace: str | None,
                       list_options: ListOptions, options: WatchOptions) -> AsyncIterator[list[tuple[str, Any]]]:
    """Yields batches of (type, object) pairs (object: a dict, or a RawObject not decoded
    yet); ends at the timeout or when the store drops the watcher."""
    store = registry.store
    prefix = resource.storage_prefix(namespace)
    filtering = (list_options.label_selector is not None and not list_options.label_selector.empty()) \
        or list_options.field_selector is not None
    rv = options.resource_version
    initial: list[dict[str, Any]] = []
    if rv in ("", "0") or options.send_initial_events:
        # "Get state and start at most recent": synthetic ADDED events for what exists now.
        initial_options = ListOptions(label_selector=list_options.label_selector,
                                      field_selector=list_options.field_selector)
        items, start_revision, _, _ = await registry.list(resource, namespace, initial_options)
        initial = items
    else:
        try:
            start_revision = int(rv)
        except ValueError:
            raise errors.BadRequest(f'invalid resource version "{rv}"')
    deadline = time.monotonic() + options.timeout_seconds if options.timeout_seconds else None

    try:
        store_watch = store.watch(prefix, start_revision)
    except Compacted as exc:
        yield [("ERROR", errors.Gone(f"too old resource version: {start_revision} ({exc.compacted})").status())]
        return

    try:
        if initial:
            yield [("ADDED", obj) for obj in initial]
        if options.send_initial_events:
            yield [("BOOKMARK", _bookmark(resource, start_revision, initial_events_end=True))]
        last_bookmark = time.monotonic()
        while True:
            timeout = BOOKMARK_INTERVAL
            if deadline is not None:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return
                timeout = min(timeout, remaining)
            batch = await store_watch.next_batch(timeout)
            if batch is None:
                return  # ended by the store (fell behind, compacted, closed)
            if not batch:
                if options.allow_bookmarks and time.monotonic() - last_bookmark >= BOOKMARK_INTERVAL:
                    caught_up = store_watch.caught_up_revision()
                    if caught_up is not None:
                        last_bookmark = time.monotonic()
                        yield [("BOOKMARK", _bookmark(resource, caught_up))]
                continue
            events = [api_event for event in batch for api_event in _translate(event, list_options, filtering)]
            if events:
                yield events
    except Compacted as exc:
        yield [("ERROR", errors.Gone(f"too old resource version: {start_revision} ({exc.compacted})").status())]
    finally:
        store_watch.close()


def _translate(event: Event, list_options: ListOptions, filtering: bool):
    kv = event.kv
    if not filtering:
        if event.type == "DELETE":
            yield "DELETED", RawObject(kv)
        elif event.created or event.prev is None:
            yield "ADDED", RawObject(kv)
        else:
            yield "MODIFIED", RawObject(kv)
        return
    if event.type == "DELETE":
        obj = _obj(kv.value, kv.mod_revision)
        if not filtering or object_matches(obj, list_options):
            yield "DELETED", obj
        return
    obj = _obj(kv.value, kv.mod_revision)
    if event.created or event.prev is None:
        if not filtering or object_matches(obj, list_options):
            yield "ADDED", obj
        return
    if not filtering:
        yield "MODIFIED", obj
        return
    now_matches = object_matches(obj, list_options)
    before = _obj(event.prev.value, event.prev.mod_revision)
    was_matching = object_matches(before, list_options)
    if now_matches and was_matching:
        yield "MODIFIED", obj
    elif now_matches:
        yield "ADDED", obj
    elif was_matching:
        # Upstream sends the new state of the object, stamped with the new revision.
        yield "DELETED", obj


def _bookmark(resource: Resource, revision: int, initial_events_end: bool = False) -> dict[str, Any]:
    metadata: dict[str, Any] = {"resourceVersion": str(revision)}
    if initial_events_end:
        metadata["annotations"] = {"k8s.io/initial-events-end": "true"}
    return {"kind": resource.kind, "apiVersion": resource.api_version, "metadata": metadata}
