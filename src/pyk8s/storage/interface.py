"""The store contract: etcd's semantics, whatever the backend.

Keys are strings (`/registry/<resource>/[<namespace>/]<name>`), values opaque bytes.
Every write gets the next global revision; a key's `mod_revision` is the revision of its
last write (it becomes the object's resourceVersion), `create_revision` that of its
creation. Watches deliver every write after a revision, in revision order, with no gap
between a list at revision R and a watch from R.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass
from typing import AsyncIterator, Literal

from pyk8s.api.errors import ServiceUnavailable, Timeout


@dataclass(frozen=True, slots=True)
class KeyValue:
    key: str
    value: bytes
    create_revision: int
    mod_revision: int


@dataclass(frozen=True, slots=True)
class Event:
    """One write. PUT: `kv` is the new value (`prev` the old one, if any). DELETE: `kv.value`
    is the deleted value and `kv.mod_revision` the revision of the delete."""

    type: Literal["PUT", "DELETE"]
    kv: KeyValue
    prev: KeyValue | None = None

    @property
    def created(self) -> bool:
        return self.type == "PUT" and self.kv.create_revision == self.kv.mod_revision


@dataclass(frozen=True, slots=True)
class ListResult:
    items: list[KeyValue]
    revision: int  # the store revision the list was read at
    more: bool  # True when `limit` cut the result; continue after items[-1].key


class StoreError(Exception):
    pass


class KeyExists(StoreError):
    """create() of a key that is present. `kv` is the stored value."""

    def __init__(self, kv: KeyValue):
        super().__init__(kv.key)
        self.kv = kv


class KeyNotFound(StoreError):
    pass


class RevisionMismatch(StoreError):
    """Compare-and-swap failed. `kv` is the current value."""

    def __init__(self, kv: KeyValue):
        super().__init__(kv.key)
        self.kv = kv


class Compacted(StoreError):
    """A read or watch asked for a revision older than the compacted one."""

    def __init__(self, requested: int, compacted: int):
        super().__init__(f"required revision {requested} has been compacted (compacted at {compacted})")
        self.requested = requested
        self.compacted = compacted


class RevisionTooNew(StoreError):
    """A read at a revision the store has not reached yet."""


class StoreUnavailable(StoreError, ServiceUnavailable):
    """The store cannot be reached or cannot commit (etcd: no quorum, every endpoint down).
    Also an API error: the request fails with 503 instead of hanging."""


class StoreTimeout(StoreError, Timeout):
    """The store did not answer within its deadline (504); a write may or may not have
    been applied."""


class Store(abc.ABC):
    @abc.abstractmethod
    async def start(self) -> None: ...

    @abc.abstractmethod
    async def close(self) -> None: ...

    @property
    @abc.abstractmethod
    def revision(self) -> int:
        """The latest committed revision."""

    @property
    @abc.abstractmethod
    def compacted_revision(self) -> int: ...

    @abc.abstractmethod
    async def create(self, key: str, value: bytes) -> KeyValue:
        """Write `key` if absent (raises KeyExists); returns the stored KeyValue."""

    @abc.abstractmethod
    async def get(self, key: str, revision: int = 0) -> KeyValue | None:
        """Current value, or the value as of `revision` (Compacted / RevisionTooNew)."""

    @abc.abstractmethod
    async def list(self, prefix: str, *, revision: int = 0, start_after: str = "",
                   limit: int = 0) -> ListResult:
        """Keys under `prefix` in key order, as of `revision` (0 = now), after `start_after`."""

    @abc.abstractmethod
    async def count(self, prefix: str) -> int: ...

    @abc.abstractmethod
    async def update(self, key: str, value: bytes, expected_revision: int) -> KeyValue:
        """Replace if the key's mod_revision is `expected_revision` (0 = unconditional).
        Raises KeyNotFound or RevisionMismatch."""

    @abc.abstractmethod
    async def delete(self, key: str, expected_revision: int = 0) -> KeyValue:
        """Delete; returns the deleted KeyValue with mod_revision = the delete's revision.
        Raises KeyNotFound or RevisionMismatch."""

    @abc.abstractmethod
    def watch(self, prefix: str, from_revision: int) -> "Watch":
        """Events for keys under `prefix` with revision > from_revision (0 = from now).
        Raises Compacted when from_revision < compacted_revision."""

    @abc.abstractmethod
    async def compact(self, revision: int) -> None:
        """Forget history at and before `revision`."""

    def keep_current_in_memory(self, prefix: str) -> None:
        """A hint: current-value `get`s of keys under `prefix` are frequent (namespaces, read
        on every namespaced create), so a store may serve them from memory. It must stay
        exact: a get after a write is acknowledged sees that write. Default: no caching."""


class Watch(abc.ABC):
    """An async iterator of Events; `close()` ends it. When the watcher falls too far behind
    the store ends it (iteration stops) and the client resumes from its last revision."""

    @abc.abstractmethod
    def __aiter__(self) -> AsyncIterator[Event]: ...

    @abc.abstractmethod
    async def __anext__(self) -> Event: ...

    @abc.abstractmethod
    def close(self) -> None: ...

    @abc.abstractmethod
    async def next_batch(self, timeout: float, limit: int = 256) -> list[Event] | None:
        """Every event available now (at most `limit`), waiting up to `timeout` seconds for
        the first; [] when none came in time, None when the watch has ended. Lets a reader
        send many events in one write and wake for bookmarks without extra tasks."""

    @abc.abstractmethod
    def caught_up_revision(self) -> int | None:
        """The store revision if no event is pending for this watcher (every write up to it
        has been delivered), else None. The API server sends it as a BOOKMARK. A store whose
        events arrive asynchronously (etcd) may answer None until it has confirmed that
        nothing is in flight; a later call answers."""
