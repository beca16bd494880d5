"""The SQLite store: etcd's semantics (global revision, compare-and-swap, watch from a
revision, compaction) on one SQLite file, for a single server.

Tables (kine-like):
- `log`: every write ever made (until compaction), keyed by its revision. A delete is a
  row with `deleted = 1` that carries the deleted value, so watch replay can rebuild the
  DELETE event. `prev_revision` points at the row the write replaced (0 for a create).
- `current`: the latest live value of each key, so current reads and lists never scan
  history.
- `meta`: the compacted revision (and the revision at that moment, because compaction may
  delete the newest log row when it is a delete).

Writes are group-committed: callers queue them, the write loop applies everything queued
so far in one transaction (each write's guard checked in order; statements into SQLite's
page cache, on the loop thread, which owns the writer connection between commits) and one
writer thread runs the COMMIT, with WAL and synchronous=FULL, so one fsync covers many
writes and the event loop never waits on the disk. Only the COMMIT goes to the thread:
running the statements there too made the two threads trade the GIL on every statement. Back on the loop thread the batch's revisions are published and fanned out to watchers
in revision order, with no await in between — which is what keeps watch registration
gap-free: "read the store revision" and "register the watcher" happen on the loop thread,
where no batch can be half-published. Reads use a second connection on the loop thread and
see only committed data. See FLOW.md.
"""

from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import fcntl
import logging
import os
import sqlite3
from dataclasses import dataclass, field
from typing import AsyncIterator

from pyk8s.storage.interface import (
    Compacted,
    Event,
    KeyExists,
    KeyNotFound,
    KeyValue,
    ListResult,
    RevisionMismatch,
    RevisionTooNew,
    Store,
    Watch,
)

log = logging.getLogger("pyk8s.storage.sqlite")

# Bound on the keys kept in memory for keep_current_in_memory (namespaces: a few).
_IN_MEMORY_MAX = 4096

# etcd's fresh store is at revision 1; the first write gets revision 2.
FRESH_STORE_REVISION = 1

SCHEMA_VERSION = 1

_SCHEMA = """
CREATE TABLE IF NOT EXISTS log (
    revision INTEGER PRIMARY KEY,
    key TEXT NOT NULL,
    deleted INTEGER NOT NULL,
    create_revision INTEGER NOT NULL,
    prev_revision INTEGER NOT NULL,
    value BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS log_key_revision ON log (key, revision);
CREATE TABLE IF NOT EXISTS current (
    key TEXT PRIMARY KEY,
    create_revision INTEGER NOT NULL,
    mod_revision INTEGER NOT NULL,
    value BLOB NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS meta (
    name TEXT PRIMARY KEY,
    value INTEGER NOT NULL
) WITHOUT ROWID;
"""

# Column order of every KeyValue-producing query matches KeyValue(key, value,
# create_revision, mod_revision) so rows can be splatted straight into it.
_SELECT_CURRENT = "SELECT key, value, create_revision, mod_revision FROM current WHERE key = ?"
_INSERT_LOG = "INSERT INTO log (revision, key, deleted, create_revision, prev_revision, value) VALUES (?, ?, ?, ?, ?, ?)"
_INSERT_CURRENT = "INSERT INTO current (key, create_revision, mod_revision, value) VALUES (?, ?, ?, ?)"
_UPDATE_CURRENT = "UPDATE current SET mod_revision = ?, value = ? WHERE key = ?"
_DELETE_CURRENT = "DELETE FROM current WHERE key = ?"
_SELECT_HISTORICAL = (
    "SELECT key, value, create_revision, revision, deleted FROM log"
    " WHERE key = ? AND revision <= ? ORDER BY revision DESC LIMIT 1"
)
# Watch replay: the rows of a prefix in a revision window, each with the value it replaced.
_SELECT_REPLAY_PAGE = (
    "SELECT log.revision, log.key, log.deleted, log.create_revision, log.prev_revision, log.value,"
    " prev.create_revision, prev.value"
    " FROM log LEFT JOIN log AS prev ON prev.revision = log.prev_revision"
    " WHERE log.revision > ? AND log.revision <= ? AND log.key >= ? AND log.key < ?"
    " ORDER BY log.revision LIMIT ?"
)

# Compaction deletes in windows of this many revisions, one transaction each, yielding to
# the event loop in between so a large compaction does not stall the API server.
COMPACT_WINDOW = 10_000

# Rows a replaying watcher reads from the log at a time (bounds its memory).
REPLAY_PAGE_SIZE = 256

# Larger than any key we store: the upper bound of the empty prefix.
_KEY_SPACE_END = "\U0010ffff" * 4


def prefix_upper_bound(prefix: str) -> str:
    """The smallest string greater than every string starting with `prefix` (etcd's
    "range end" for a prefix), in code-point order, which is SQLite's UTF-8 byte order."""
    while prefix:
        last = ord(prefix[-1])
        if last < 0x10FFFF:
            following = last + 1
            if 0xD800 <= following <= 0xDFFF:  # surrogates cannot be encoded; skip them
                following = 0xE000
            return prefix[:-1] + chr(following)
        prefix = prefix[:-1]
    return _KEY_SPACE_END


class SQLiteWatch(Watch):
    """Events under one prefix after one revision: first replayed page by page from the
    log (revisions up to the store revision at registration), then live events that the
    store's writers put into `_pending` right after each commit."""

    def __init__(self, store: "SQLiteStore", prefix: str, from_revision: int, replay_until: int):
        self._store = store
        self.prefix = prefix
        self._prefix_end = prefix_upper_bound(prefix)
        # Log rows in (_replay_position, _replay_until] have not been read yet.
        self._replay_position = from_revision
        self._replay_until = replay_until
        self._replay_buffer: collections.deque[Event] = collections.deque()
        # Live events only come after both the replay window and the requested start.
        self._live_after = max(from_revision, replay_until)
        self._pending: collections.deque[Event] = collections.deque()
        self._waiter: asyncio.Future | None = None
        self._closed = False
        # Why iteration ended: "closed", "overflow" (fell behind) or "compacted".
        self.end_reason: str | None = None

    # -- called by the store -------------------------------------------------------------

    def _deliver(self, event: Event) -> bool:
        """Queue a live event; False when the queue overflowed and the watch was ended."""
        if event.kv.mod_revision <= self._live_after:
            return True
        self._pending.append(event)
        if len(self._pending) > self._store.watch_queue_limit:
            # A slow watcher is cut off rather than buffered without bound; the client
            # resumes from its last revision (upstream: the watch cache terminates
            # watchers whose channel is full). The store unregisters it after the fan-out
            # loop, which cannot change the watcher sets while it iterates them.
            self._end("overflow", unregister=False)
            return False
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)
        return True

    def _end(self, reason: str, *, unregister: bool = True) -> None:
        if self._closed:
            return
        self._closed = True
        self.end_reason = reason
        self._pending.clear()
        self._replay_buffer.clear()
        if unregister:
            self._store._unregister(self)
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    # -- the Watch interface -------------------------------------------------------------

    def __aiter__(self) -> AsyncIterator[Event]:
        return self

    async def __anext__(self) -> Event:
        while True:
            if self._closed:
                raise StopAsyncIteration
            if self._replay_buffer:
                return self._replay_buffer.popleft()
            if self._replay_position < self._replay_until:
                self._read_replay_page()
                continue
            if self._pending:
                return self._pending.popleft()
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None

    def close(self) -> None:
        self._end("closed")

    async def next_batch(self, timeout: float, limit: int = 256) -> list[Event] | None:
        while True:
            if self._closed:
                return None
            if not self._replay_buffer and self._replay_position < self._replay_until:
                self._read_replay_page()
                continue
            source = self._replay_buffer or self._pending
            if source:
                count = min(len(source), limit)
                return [source.popleft() for _ in range(count)]
            if timeout <= 0:
                return []
            loop = asyncio.get_running_loop()
            waiter = self._waiter = loop.create_future()
            # A timer rather than asyncio.wait_for: no task per wait on this hot path.
            timer = loop.call_later(timeout, lambda: waiter.done() or waiter.set_result(None))
            try:
                await waiter
            finally:
                timer.cancel()
                self._waiter = None
            timeout = 0  # one wait only: return what came, or [] on timeout

    def caught_up_revision(self) -> int | None:
        if self._closed or self._pending or self._replay_buffer:
            return None
        if self._replay_position < self._replay_until:
            return None
        return self._store.revision

    # -- replay --------------------------------------------------------------------------

    def _read_replay_page(self) -> None:
        compacted = self._store.compacted_revision
        if self._replay_position < compacted:
            # Compaction overtook this replay: rows it still needed may be gone.
            requested = self._replay_position
            self._end("compacted")
            raise Compacted(requested, compacted)
        rows = self._store._connection.execute(
            _SELECT_REPLAY_PAGE,
            (self._replay_position, self._replay_until, self.prefix, self._prefix_end, REPLAY_PAGE_SIZE),
        ).fetchall()
        for revision, key, deleted, create_revision, prev_revision, value, prev_create, prev_value in rows:
            if deleted:
                # A delete row carries the deleted value and points at the write it removed.
                prev = KeyValue(key, value, create_revision, prev_revision)
                self._replay_buffer.append(Event("DELETE", KeyValue(key, value, create_revision, revision), prev))
            else:
                prev = KeyValue(key, prev_value, prev_create, prev_revision) if prev_revision else None
                self._replay_buffer.append(Event("PUT", KeyValue(key, value, create_revision, revision), prev))
        if len(rows) < REPLAY_PAGE_SIZE:
            self._replay_position = self._replay_until
        else:
            self._replay_position = rows[-1][0]


@dataclass(slots=True)
class _WriteOp:
    kind: str  # "create" | "update" | "delete"
    key: str
    value: bytes | None
    expected_revision: int
    future: asyncio.Future = field(repr=False)


class SQLiteStore(Store):
    """`Store` on one SQLite file. One process owns the file (exclusive lock) and every
    call must come from the event-loop thread that called `start()`."""

    def __init__(self, path: str, *, watch_queue_limit: int = 10000, compact_interval: float = 300.0,
                 compact_keep: int = 1000):
        self.path = path
        self.watch_queue_limit = watch_queue_limit
        self.compact_interval = compact_interval
        self.compact_keep = compact_keep
        self._connection: sqlite3.Connection | None = None  # reads, on the loop thread
        self._writer: sqlite3.Connection | None = None  # writes; used by one holder of _writer_lock at a time
        self._executor: concurrent.futures.ThreadPoolExecutor | None = None
        self._pending_writes: list[_WriteOp] = []
        self._writes_queued = asyncio.Event()
        self._write_loop_task: asyncio.Task | None = None
        self._lock_file: int | None = None
        self._revision = FRESH_STORE_REVISION
        self._compacted_revision = 0
        self._watchers_by_prefix: dict[str, set[SQLiteWatch]] = {}
        self._compact_lock = asyncio.Lock()
        self._writer_lock = asyncio.Lock()
        # Current values (None: absent) of keys under the prefixes given to
        # keep_current_in_memory, as published: kept exact by the write loop, which updates
        # an entry as it publishes a write of that key, before the write is acknowledged.
        self._memory_prefixes: tuple[str, ...] = ()
        self._in_memory: dict[str, KeyValue | None] = {}
        self._compactor: asyncio.Task | None = None

    # -- lifecycle -----------------------------------------------------------------------

    async def start(self) -> None:
        # Two servers on one file would hand out the same revisions: an exclusive lock on a
        # side file (held until close) refuses the second one at once.
        lock_fd = os.open(self.path + ".lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(lock_fd)
            raise sqlite3.OperationalError(f"database is locked: {self.path} is in use by another server")
        writer = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False,
                                 cached_statements=64, timeout=5.0)
        try:
            writer.execute("PRAGMA journal_mode=WAL")
            # FULL: fsync the WAL on every commit, so an acknowledged write survives a
            # power loss as well as kill -9.
            writer.execute("PRAGMA synchronous=FULL")
            writer.executescript(_SCHEMA)
            writer.execute("BEGIN EXCLUSIVE")
            writer.execute("INSERT OR IGNORE INTO meta (name, value) VALUES ('schema_version', ?)",
                           (SCHEMA_VERSION,))
            writer.execute("COMMIT")
            meta = dict(writer.execute("SELECT name, value FROM meta").fetchall())
            (newest_logged,) = writer.execute("SELECT COALESCE(MAX(revision), 0) FROM log").fetchone()
            reader = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False,
                                     cached_statements=64, timeout=5.0)
        except BaseException:
            writer.close()
            os.close(lock_fd)
            raise
        self._lock_file = lock_fd
        self._writer = writer
        self._connection = reader
        self._executor = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="sqlite-writer")
        self._compacted_revision = meta.get("compacted_revision", 0)
        self._revision = max(FRESH_STORE_REVISION, newest_logged, meta.get("revision_at_compaction", 0))
        loop = asyncio.get_running_loop()
        self._write_loop_task = loop.create_task(self._write_loop(), name="sqlite-store-writer")
        if self.compact_interval > 0:
            self._compactor = loop.create_task(self._compact_periodically(), name="sqlite-store-compactor")

    async def close(self) -> None:
        if self._compactor is not None:
            self._compactor.cancel()
            try:
                await self._compactor
            except asyncio.CancelledError:
                pass
            self._compactor = None
        if self._write_loop_task is not None:
            # Let queued writes finish: they may already be acknowledged by the time they commit.
            while self._pending_writes:
                await asyncio.sleep(0.001)
            async with self._writer_lock:  # and the batch in flight commits and is published
                self._write_loop_task.cancel()
            try:
                await self._write_loop_task
            except asyncio.CancelledError:
                pass
            self._write_loop_task = None
        for group in list(self._watchers_by_prefix.values()):
            for watcher in list(group):
                watcher.close()
        if self._executor is not None:
            self._executor.shutdown(wait=True)
            self._executor = None
        for attribute in ("_connection", "_writer"):
            connection = getattr(self, attribute)
            if connection is not None:
                connection.close()
                setattr(self, attribute, None)
        if self._lock_file is not None:
            os.close(self._lock_file)
            self._lock_file = None

    @property
    def revision(self) -> int:
        return self._revision

    @property
    def compacted_revision(self) -> int:
        return self._compacted_revision

    # -- writes --------------------------------------------------------------------------

    def _commit_now(self, statements: list[tuple[str, tuple]]) -> None:
        """Writer thread: one transaction of raw statements (compaction)."""
        connection = self._writer
        connection.execute("BEGIN IMMEDIATE")
        try:
            for sql, parameters in statements:
                connection.execute(sql, parameters)
            connection.execute("COMMIT")
        except BaseException:
            if connection.in_transaction:
                connection.execute("ROLLBACK")
            raise

    async def _commit(self, statements: list[tuple[str, tuple]]) -> None:
        async with self._writer_lock:
            await asyncio.get_running_loop().run_in_executor(self._executor, self._commit_now, statements)

    def _finish_transaction(self) -> None:
        """Writer thread: the batch's COMMIT (the fsync); ROLLBACK if it fails."""
        connection = self._writer
        try:
            connection.execute("COMMIT")
        except BaseException:
            if connection.in_transaction:
                connection.execute("ROLLBACK")
            raise

    def _current(self, key: str) -> KeyValue | None:
        row = self._connection.execute(_SELECT_CURRENT, (key,)).fetchone()
        return KeyValue(*row) if row is not None else None

    def _queue_write(self, kind: str, key: str, value: bytes | None, expected_revision: int) -> asyncio.Future:
        if self._writer is None:
            raise RuntimeError("store is not started")
        future = asyncio.get_running_loop().create_future()
        self._pending_writes.append(_WriteOp(kind, key, value, expected_revision, future))
        self._writes_queued.set()
        return future

    async def create(self, key: str, value: bytes) -> KeyValue:
        return await self._queue_write("create", key, value, 0)

    async def update(self, key: str, value: bytes, expected_revision: int) -> KeyValue:
        return await self._queue_write("update", key, value, expected_revision)

    async def delete(self, key: str, expected_revision: int = 0) -> KeyValue:
        return await self._queue_write("delete", key, None, expected_revision)

    async def _write_loop(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await self._writes_queued.wait()
            self._writes_queued.clear()
            while self._pending_writes:
                batch, self._pending_writes = self._pending_writes, []
                try:
                    async with self._writer_lock:
                        results = self._apply_batch(batch, self._revision)
                        await loop.run_in_executor(self._executor, self._finish_transaction)
                except Exception as exc:  # the whole transaction rolled back: nothing was written
                    for op in batch:
                        if not op.future.done():
                            op.future.set_exception(exc)
                    continue
                # Publish in revision order with no await in between (see the module docstring).
                for op, result in zip(batch, results):
                    if isinstance(result, Event):
                        self._revision = result.kv.mod_revision
                        if op.key in self._in_memory:
                            self._in_memory[op.key] = result.kv if result.type == "PUT" else None
                        if self._watchers_by_prefix:
                            self._fan_out(result)
                        if not op.future.done():
                            op.future.set_result(result.kv)
                    elif not op.future.done():
                        op.future.set_exception(result)

    def _apply_batch(self, batch: list[_WriteOp], base_revision: int) -> list[Event | Exception]:
        """Apply each queued write in order (guards see the writes before them in the batch),
        leaving the transaction open for `_finish_transaction`; rolled back on any error."""
        connection = self._writer
        revision = base_revision
        results: list[Event | Exception] = []
        connection.execute("BEGIN IMMEDIATE")
        try:
            for op in batch:
                row = connection.execute(_SELECT_CURRENT, (op.key,)).fetchone()
                existing = KeyValue(*row) if row is not None else None
                if op.kind == "create":
                    if existing is not None:
                        results.append(KeyExists(existing))
                        continue
                    revision += 1
                    connection.execute(_INSERT_LOG, (revision, op.key, 0, revision, 0, op.value))
                    connection.execute(_INSERT_CURRENT, (op.key, revision, revision, op.value))
                    results.append(Event("PUT", KeyValue(op.key, op.value, revision, revision)))
                    continue
                if existing is None:
                    results.append(KeyNotFound(op.key))
                    continue
                if op.expected_revision and existing.mod_revision != op.expected_revision:
                    results.append(RevisionMismatch(existing))
                    continue
                revision += 1
                if op.kind == "update":
                    connection.execute(_INSERT_LOG, (revision, op.key, 0, existing.create_revision,
                                                     existing.mod_revision, op.value))
                    connection.execute(_UPDATE_CURRENT, (revision, op.value, op.key))
                    results.append(Event("PUT", KeyValue(op.key, op.value, existing.create_revision, revision), existing))
                else:
                    connection.execute(_INSERT_LOG, (revision, op.key, 1, existing.create_revision,
                                                     existing.mod_revision, existing.value))
                    connection.execute(_DELETE_CURRENT, (op.key,))
                    results.append(Event("DELETE", KeyValue(op.key, existing.value, existing.create_revision, revision), existing))
        except BaseException:
            if connection.in_transaction:
                connection.execute("ROLLBACK")
            raise
        return results

    # -- watch ---------------------------------------------------------------------------

    def _fan_out(self, event: Event) -> None:
        key = event.kv.key
        overflowed: list[SQLiteWatch] = []
        for prefix, group in self._watchers_by_prefix.items():
            if key.startswith(prefix):
                for watcher in group:
                    if not watcher._deliver(event):
                        overflowed.append(watcher)
        for watcher in overflowed:
            self._unregister(watcher)

    def _unregister(self, watcher: SQLiteWatch) -> None:
        group = self._watchers_by_prefix.get(watcher.prefix)
        if group is None:
            return
        group.discard(watcher)
        if not group:
            del self._watchers_by_prefix[watcher.prefix]

    def watch(self, prefix: str, from_revision: int) -> SQLiteWatch:
        """Raises Compacted here, synchronously, for a compacted start. A watch whose replay
        is overtaken by a later compaction raises Compacted from iteration instead."""
        if from_revision and from_revision < self._compacted_revision:
            raise Compacted(from_revision, self._compacted_revision)
        if from_revision == 0:
            from_revision = self._revision
        # Registration and reading the replay bound happen with no await in between, and
        # writes run on this thread, so every write is either <= replay_until (replayed
        # from the log) or > replay_until (delivered live): no gap, no duplicate.
        watcher = SQLiteWatch(self, prefix, from_revision, replay_until=self._revision)
        if self._watchers_by_prefix.get(prefix) is None:
            self._watchers_by_prefix[prefix] = set()
        self._watchers_by_prefix[prefix].add(watcher)
        return watcher

    # -- reads ---------------------------------------------------------------------------

    def _check_readable(self, revision: int) -> None:
        if revision > self._revision:
            raise RevisionTooNew(f"requested revision {revision} is newer than the store revision {self._revision}")
        if revision < self._compacted_revision:
            raise Compacted(revision, self._compacted_revision)

    def keep_current_in_memory(self, prefix: str) -> None:
        self._memory_prefixes += (prefix,)

    async def get(self, key: str, revision: int = 0) -> KeyValue | None:
        if revision == 0 or revision == self._revision:
            if not self._memory_prefixes or not key.startswith(self._memory_prefixes):
                return self._current(key)
            try:
                return self._in_memory[key]
            except KeyError:
                pass
            if self._writer_lock.locked():
                # A batch may be committed but not yet published: what SQLite has could be
                # newer than what the write loop will publish into the entry. Read, don't keep.
                return self._current(key)
            if len(self._in_memory) >= _IN_MEMORY_MAX:
                self._in_memory.clear()
            kv = self._in_memory[key] = self._current(key)
            return kv
        self._check_readable(revision)
        row = self._connection.execute(_SELECT_HISTORICAL, (key, revision)).fetchone()
        if row is None or row[4]:
            return None
        return KeyValue(row[0], row[1], row[2], row[3])

    async def list(self, prefix: str, *, revision: int = 0, start_after: str = "",
                   limit: int = 0) -> ListResult:
        read_revision = self._revision
        if revision and revision != read_revision:
            self._check_readable(revision)
            read_revision = revision
        upper_bound = prefix_upper_bound(prefix)
        # One lower bound: the later of "starts with prefix" and "after start_after".
        if start_after >= prefix:
            lower_condition, lower_bound = "key > ?", start_after
        else:
            lower_condition, lower_bound = "key >= ?", prefix
        fetch = limit + 1 if limit > 0 else -1  # one extra row tells whether there is more
        rows = None
        if read_revision == self._revision:
            sql = (f"SELECT key, value, create_revision, mod_revision FROM current"
                   f" WHERE {lower_condition} AND key < ? ORDER BY key LIMIT ?")
            rows = self._connection.execute(sql, (lower_bound, upper_bound, fetch)).fetchall()
            # A batch committed by the writer thread but not yet published on this thread
            # would make the list newer than its revision (and a watch from it would repeat
            # those writes): read the log at the published revision instead.
            if any(row[3] > read_revision for row in rows):
                rows = None
        if rows is None:
            # The latest log row of each key at or before the revision, unless a delete.
            sql = (f"SELECT key, value, create_revision, revision FROM log WHERE revision IN"
                   f" (SELECT MAX(revision) FROM log WHERE {lower_condition} AND key < ? AND revision <= ?"
                   f" GROUP BY key) AND deleted = 0 ORDER BY key LIMIT ?")
            rows = self._connection.execute(sql, (lower_bound, upper_bound, read_revision, fetch)).fetchall()
        more = limit > 0 and len(rows) > limit
        if more:
            del rows[limit:]
        return ListResult([KeyValue(*row) for row in rows], read_revision, more)

    async def count(self, prefix: str) -> int:
        (number,) = self._connection.execute(
            "SELECT COUNT(*) FROM current WHERE key >= ? AND key < ?", (prefix, prefix_upper_bound(prefix)),
        ).fetchone()
        return number

    # -- compaction ----------------------------------------------------------------------

    async def compact(self, revision: int) -> None:
        """Forget history before `revision`: reads and watches older than it get Compacted.
        For every key the newest row at or before `revision` is kept (unless it is a delete)
        so reads at `revision` and later still work, as in etcd."""
        async with self._compact_lock:
            if revision > self._revision:
                raise RevisionTooNew(f"cannot compact at {revision}: store revision is {self._revision}")
            previous = self._compacted_revision
            if revision <= previous:
                return
            # Publish the new bound before deleting anything, so no read or replay can see
            # a half-compacted history.
            await self._commit([
                ("INSERT OR REPLACE INTO meta (name, value) VALUES ('compacted_revision', ?)", (revision,)),
                ("INSERT OR REPLACE INTO meta (name, value) VALUES ('revision_at_compaction', ?)",
                 (self._revision,)),
            ])
            self._compacted_revision = revision
            window_start = previous
            while window_start < revision:
                window_end = min(window_start + COMPACT_WINDOW, revision)
                await self._commit([
                    # Rows superseded by a newer write at or before the compaction revision
                    # first, then deletes (whose predecessors are gone by now).
                    ("DELETE FROM log WHERE revision > ? AND revision <= ? AND EXISTS"
                     " (SELECT 1 FROM log AS newer WHERE newer.key = log.key"
                     " AND newer.revision > log.revision AND newer.revision <= ?)",
                     (window_start, window_end, revision)),
                    ("DELETE FROM log WHERE revision > ? AND revision <= ? AND deleted = 1",
                     (window_start, window_end)),
                ])
                window_start = window_end
                await asyncio.sleep(0)

    async def _compact_periodically(self) -> None:
        while True:
            await asyncio.sleep(self.compact_interval)
            target = self._revision - self.compact_keep
            if target <= self._compacted_revision:
                continue
            try:
                await self.compact(target)
                log.debug("compacted at revision %d", target)
            except Exception:
                log.exception("compaction at revision %d failed", target)
