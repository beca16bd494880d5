"""The etcd store: the store contract (interface.py) on an etcd v3 cluster, for one or
several API servers.

Mapping (what upstream's apiserver does in storage/etcd3):
- an object's resourceVersion is its key's `mod_revision`; a list's is the header revision
  of the first page (later pages are read at that revision, so a list is one snapshot);
- create = Txn(create_revision(key) == 0 ? put : range key), so a lost race returns the
  stored value in the same round trip; update/delete = Txn(mod_revision(key) == expected ?
  put/delete with prev_kv : range key); expected 0 compares create_revision > 0 instead
  (the key must exist);
- watches ask etcd for start_revision N+1 with prev_kv, so a DELETE carries the deleted
  value and an update its predecessor; a put whose create revision equals its mod revision
  is ADDED;
- a compacted revision (gRPC OUT_OF_RANGE "required revision has been compacted", or a
  watch cancelled with compact_revision) is the contract's `Compacted`.

Client: hand-encoded messages (etcdwire.py) over the project's own gRPC-over-HTTP/2 client
(pyk8s.grpcclient). DESIGN.md's measurements found the Python etcd libraries lose data or
semantics (range revision ignored, watch resume dropping events); this one is small enough to
check by reading. grpc.aio cost the API server more CPU per call than the rest of an etcd
round trip (bench/api.py --datastore etcd, in the note of issue 14). Every call has
a deadline and carries etcd's `hasleader` metadata, so a member without quorum answers
"etcdserver: no leader" at once instead of queueing the request; connection failures and
"no leader" move to the next endpoint until the deadline, then raise `StoreUnavailable`
(503) — a deadline spent waiting on etcd is `StoreTimeout` (504). A write is sent again
within its deadline when an attempt gets no answer (etcd drops the proposals of a member
whose leader died): the guard makes a repeated write fail if the first one committed, and
the guard's range then shows our value, so it is answered as written (DESIGN.md: "a retried
write after a timeout may already have committed").

Watches: every `Watch` of this store is one watch id on one shared etcd watch stream
(`_WatchStream`), so a thousand API watches are one HTTP/2 stream. When the stream breaks
(member down, no leader) it reconnects, to the next endpoint if need be, and re-creates each
watch from the revision after the last event it delivered: no event is lost or repeated
(events at or before that revision are dropped). See FLOW.md ("etcd store").
"""

from __future__ import annotations

import asyncio
import collections
import itertools
import logging
import ssl
import time
from dataclasses import dataclass
from typing import AsyncIterator
from urllib.parse import urlsplit

from pyk8s.grpcclient.http2 import BidiStream, GrpcChannel, GrpcError
from pyk8s.storage import etcdwire as wire
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
    StoreTimeout,
    StoreUnavailable,
    Watch,
)

log = logging.getLogger("pyk8s.storage.etcd")

# Keys per Range page: bounded memory and messages well under the receive limit below for
# ordinary objects (upstream's apiserver pages etcd reads the same way).
RANGE_PAGE_SIZE = 1000
# etcd's own request limit is 1.5 MiB per value, so 1000 values fit in 1.5 GiB at worst;
# gRPC's 4 MiB default would fail on 2 000 ordinary pods: allow large pages.
MAX_RECEIVE_MESSAGE = 256 * 1024 * 1024

# Events a watch still catching up may queue before it is ended as too slow.
CATCH_UP_QUEUE_LIMIT = 10_000

_METADATA = (("hasleader", "true"),)
_COMPACTED_MESSAGE = "required revision has been compacted"
_FUTURE_MESSAGE = "required revision is a future revision"


@dataclass(frozen=True)
class Endpoint:
    host: str
    port: int
    tls: bool

    @property
    def target(self) -> str:
        return f"{self.host}:{self.port}"


def parse_endpoints(datastore: str) -> list[Endpoint]:
    """`etcd://H1:2379,H2:2379`, `https://H1:2379,https://H2:2379` or `http://...` (a
    scheme given once applies to the hosts after it)."""
    endpoints: list[Endpoint] = []
    scheme = ""
    for part in datastore.split(","):
        part = part.strip()
        if not part:
            continue
        if "://" in part:
            scheme, _, rest = part.partition("://")
            scheme = scheme.lower()
        else:
            rest = part
        if scheme not in ("etcd", "http", "https"):
            raise ValueError(f"unsupported etcd endpoint {part!r} (expected etcd://, http:// or https://)")
        parsed = urlsplit("//" + rest.rstrip("/"))
        if not parsed.hostname:
            raise ValueError(f"etcd endpoint {part!r} has no host")
        endpoints.append(Endpoint(parsed.hostname, parsed.port or 2379, scheme == "https"))
    if not endpoints:
        raise ValueError(f"no etcd endpoint in {datastore!r}")
    return endpoints


def prefix_range_end(prefix: bytes) -> bytes:
    """etcd's range end for "every key starting with prefix" (clientv3.GetPrefixRangeEnd)."""
    end = bytearray(prefix)
    while end:
        if end[-1] < 0xFF:
            end[-1] += 1
            return bytes(end)
        end.pop()
    return b"\x00"  # no prefix (or all 0xff): to the end of the key space


def _kv(message: wire.KeyValueMessage) -> KeyValue:
    return KeyValue(bytes(message.key).decode(), bytes(message.value), message.create_revision,
                    message.mod_revision)


class EtcdClient:
    """Unary calls with deadline and endpoint failover, and watch streams, over our own
    HTTP/2 (pyk8s.grpcclient): one connection per member, opened when first used."""

    def __init__(self, endpoints: list[Endpoint], *, ca_file: str = "", cert_file: str = "",
                 key_file: str = "", request_timeout: float = 5.0):
        self.endpoints = endpoints
        self.request_timeout = request_timeout
        self._ssl: ssl.SSLContext | None = None
        if ca_file or cert_file or any(endpoint.tls for endpoint in endpoints):
            self._ssl = ssl.create_default_context(cafile=ca_file or None)
            if cert_file:
                self._ssl.load_cert_chain(cert_file, key_file or None)
        self._channels: dict[int, GrpcChannel] = {}
        self._current = 0

    def channel(self, index: int) -> GrpcChannel:
        channel = self._channels.get(index)
        if channel is None:
            endpoint = self.endpoints[index]
            # Keepalive: a member gone without closing its connections (a partition) fails
            # the watch stream within 15 s, and it resumes on another member.
            channel = self._channels[index] = GrpcChannel.tcp(
                endpoint.host, endpoint.port, ssl=self._ssl, max_message=MAX_RECEIVE_MESSAGE, metadata=_METADATA,
                user_agent="pyk8s-etcd-store", keepalive=10.0, keepalive_timeout=5.0)
        return channel

    @property
    def current_endpoint(self) -> Endpoint:
        return self.endpoints[self._current]

    def next_endpoint(self, failed: int) -> None:
        if self._current == failed:
            self._current = (failed + 1) % len(self.endpoints)

    async def call(self, method: str, request: bytes, *, timeout: float | None = None) -> bytes:
        """One unary call. Connection failures and "no leader" try the next endpoint (after
        a full round, 100 ms later) until the deadline. Other errors raise GrpcError."""
        deadline = time.monotonic() + (timeout or self.request_timeout)
        last_error: GrpcError | None = None
        tried_in_round = 0
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise _unavailable(method, last_error, self.endpoints)
            index = self._current
            try:
                return await self.channel(index).unary(method, request, timeout=remaining)
            except GrpcError as error:
                if error.code == "DEADLINE_EXCEEDED":
                    raise StoreTimeout(
                        f"etcd did not answer {method.rsplit('/', 1)[-1]} within "
                        f"{timeout or self.request_timeout:g}s ({self.endpoints[index].target}): "
                        "the cluster may have lost quorum") from None
                if error.code != "UNAVAILABLE":
                    raise
                last_error = error
                self.next_endpoint(index)
                tried_in_round += 1
                if tried_in_round >= len(self.endpoints):
                    tried_in_round = 0
                    await asyncio.sleep(min(0.1, max(0.0, deadline - time.monotonic())))

    async def close(self) -> None:
        channels, self._channels = list(self._channels.values()), {}
        for channel in channels:
            await channel.close()


def _unavailable(method: str, error: GrpcError | None, endpoints: list[Endpoint]) -> StoreUnavailable:
    detail = error.details if error is not None else "no answer"
    where = ",".join(endpoint.target for endpoint in endpoints)
    return StoreUnavailable(f"etcd cluster is unavailable or misconfigured ({where}): {detail}")


class EtcdWatch(Watch):
    """One watch id on the store's shared stream. Events are queued by the stream's reader
    task; `_last_revision` (the newest event delivered to the queue) is where a resumed
    watch starts again."""

    def __init__(self, stream: "_WatchStream", prefix: str, from_revision: int, watch_queue_limit: int):
        self._stream = stream
        self.prefix = prefix
        self.key = prefix.encode()
        self.range_end = prefix_range_end(self.key)
        self.watch_id = 0
        self._limit = watch_queue_limit
        # Every event with a revision <= _last_revision has been queued (or was before the start).
        self._last_revision = from_revision
        # Events up to _confirmed_revision are known to have been queued: the start, the last
        # event, or an etcd progress notification for this watch.
        self._confirmed_revision = from_revision
        # Known to be synced in etcd (its catch-up is over): broadcast progress applies.
        self._synced = False
        self._pending: collections.deque[Event] = collections.deque()
        self._waiter: asyncio.Future | None = None
        self._closed = False
        self._error: Exception | None = None
        self.end_reason: str | None = None

    # -- called by the stream --------------------------------------------------------------

    def _deliver(self, events: list[Event]) -> None:
        if self._closed:
            return
        for event in events:
            revision = event.kv.mod_revision
            if revision <= self._last_revision:
                continue  # a resumed watch repeating what it already delivered
            self._pending.append(event)
            self._last_revision = revision
        if self._last_revision > self._confirmed_revision:
            self._confirmed_revision = self._last_revision
        # A watch catching up from the past gets etcd's replay pushed in batches of up to 1 000
        # revisions (the SQLite store pages its replay lazily instead): the limit is for live
        # events, the catch-up is allowed the default limit at least.
        limit = self._limit if self._synced else max(self._limit, CATCH_UP_QUEUE_LIMIT)
        if len(self._pending) > limit:
            # Cut off a slow reader rather than buffer without bound (as the SQLite store
            # does); the client resumes from its last revision.
            self._end("overflow")
            return
        self._wake()

    def _progress(self, revision: int) -> None:
        if revision > self._confirmed_revision:
            self._confirmed_revision = revision
        if revision > self._last_revision:
            self._last_revision = revision
        self._wake()

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def _end(self, reason: str, error: Exception | None = None) -> None:
        if self._closed:
            return
        self._closed = True
        self.end_reason = reason
        self._error = error
        if error is None:
            self._pending.clear()
        self._stream.remove(self)
        self._wake()

    # -- the Watch interface -------------------------------------------------------------

    def __aiter__(self) -> AsyncIterator[Event]:
        return self

    async def __anext__(self) -> Event:
        while True:
            if self._pending:
                return self._pending.popleft()
            if self._closed:
                self._raise_end()
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None

    def _raise_end(self):
        error, self._error = self._error, None
        if error is not None:
            raise error
        raise StopAsyncIteration

    def close(self) -> None:
        self._end("closed")

    async def next_batch(self, timeout: float, limit: int = 256) -> list[Event] | None:
        waited = False
        while True:
            if self._pending:
                count = min(len(self._pending), limit)
                return [self._pending.popleft() for _ in range(count)]
            if self._closed:
                try:
                    self._raise_end()
                except StopAsyncIteration:
                    return None
            if waited or timeout <= 0:
                return []
            loop = asyncio.get_running_loop()
            waiter = self._waiter = loop.create_future()
            timer = loop.call_later(timeout, lambda: waiter.done() or waiter.set_result(None))
            try:
                await waiter
            finally:
                timer.cancel()
                self._waiter = None
            waited = True

    def caught_up_revision(self) -> int | None:
        if self._closed or self._pending:
            return None
        revision = self._stream.store.revision
        if self._confirmed_revision >= revision:
            return revision
        # Not known yet: ask etcd where the stream is; the answer arrives asynchronously.
        if self._synced:
            self._stream.request_progress()
        return None


class _WatchStream:
    """One etcd Watch RPC carrying many watch ids; reconnects and resumes every watch."""

    def __init__(self, store: "EtcdStore"):
        self.store = store
        self._watchers: dict[int, EtcdWatch] = {}
        self._ids = itertools.count(1)
        self._outbox: asyncio.Queue[bytes] | None = None
        self._task: asyncio.Task | None = None
        self._closed = False
        self._progress_in_flight = False
        self._progress_wanted = False
        self._progress_candidate: int | None = None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name="etcd-watch-stream")

    def add(self, watcher: EtcdWatch) -> None:
        watcher.watch_id = next(self._ids)
        self._watchers[watcher.watch_id] = watcher
        if self._outbox is not None:
            self._outbox.put_nowait(self._create_request(watcher))

    def remove(self, watcher: EtcdWatch) -> None:
        if self._watchers.pop(watcher.watch_id, None) is not None and self._outbox is not None:
            self._outbox.put_nowait(wire.watch_cancel_request(watcher.watch_id))

    def request_progress(self) -> None:
        self._progress_wanted = True
        if not self._progress_in_flight and self._outbox is not None:
            self._progress_in_flight = True
            self._progress_wanted = False
            self._outbox.put_nowait(wire.watch_progress_request())

    @staticmethod
    def _create_request(watcher: EtcdWatch) -> bytes:
        return wire.watch_create_request(watcher.key, watcher.range_end,
                                         start_revision=watcher._last_revision + 1,
                                         watch_id=watcher.watch_id)

    async def close(self) -> None:
        self._closed = True
        for watcher in list(self._watchers.values()):
            watcher._end("closed")
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except (asyncio.CancelledError, Exception):
                pass
            self._task = None

    async def _run(self) -> None:
        client = self.store.client
        backoff = 0.05
        while not self._closed:
            index = client._current
            outbox: asyncio.Queue[bytes] = asyncio.Queue()
            # Resume every watch after the last revision it delivered.
            for watcher in list(self._watchers.values()):
                outbox.put_nowait(self._create_request(watcher))
            self._outbox = outbox
            self._progress_in_flight = False
            self._progress_candidate = None
            call: BidiStream | None = None
            writer: asyncio.Task | None = None
            try:
                call = await client.channel(index).open_stream(wire.WATCH, timeout=client.request_timeout)
                writer = asyncio.get_running_loop().create_task(self._write(call, outbox))
                while (message := await call.read()) is not None:
                    backoff = 0.05
                    self._handle(wire.decode_watch_response(message))
            except GrpcError as error:
                if not self._closed:
                    log.info("etcd watch stream to %s ended (%s: %s); resuming",
                             client.endpoints[index].target, error.code, error.details)
                client.next_endpoint(index)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("etcd watch stream failed; resuming")
            finally:
                self._outbox = None
                if writer is not None:
                    writer.cancel()
                if call is not None:
                    call.cancel()
            if self._closed:
                return
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, 1.0)

    @staticmethod
    async def _write(call: BidiStream, outbox: asyncio.Queue[bytes]) -> None:
        try:
            while True:
                await call.send(await outbox.get())
        except GrpcError:
            pass  # the reader sees the stream end and reconnects

    def _handle(self, response: wire.WatchResponse) -> None:
        store = self.store
        if response.revision > store._revision:
            store._revision = response.revision
        if response.watch_id == -1 or (response.watch_id == 0 and not response.created
                                       and not response.canceled and not response.events):
            self._broadcast_progress(response.revision)
            return
        watcher = self._watchers.get(response.watch_id)
        if watcher is None:
            return
        if response.compact_revision:
            requested = watcher._last_revision
            store._note_compacted(response.compact_revision)
            watcher._end("compacted", Compacted(requested, response.compact_revision))
            return
        if response.canceled:
            watcher._end("canceled", StoreUnavailable(
                f"etcd cancelled the watch on {watcher.prefix}: {response.cancel_reason or 'no reason given'}"))
            return
        if response.created:
            # Created with a start after the store revision of the moment: etcd put it in
            # its synced set, so nothing up to that revision can be missing.
            if watcher._last_revision >= response.revision:
                watcher._synced = True
                watcher._progress(response.revision)
            return
        if response.events:
            events = []
            for message in response.events:
                kv = message.kv
                if message.type == 1:
                    prev = _kv(message.prev_kv) if message.prev_kv is not None else None
                    value = prev.value if prev is not None else b""
                    create_revision = prev.create_revision if prev is not None else 0
                    events.append(Event("DELETE", KeyValue(bytes(kv.key).decode(), value, create_revision,
                                                           kv.mod_revision), prev))
                else:
                    prev = _kv(message.prev_kv) if message.prev_kv is not None else None
                    events.append(Event("PUT", _kv(kv), prev))
            watcher._deliver(events)
            if not watcher._synced and watcher._last_revision >= response.revision:
                watcher._synced = True
        elif not response.fragment:
            # A progress notification for this watch id: etcd sends these only to synced
            # watchers, on the same channel as their events, so every event up to the
            # header revision has been sent.
            watcher._synced = True
            watcher._progress(response.revision)

    def _broadcast_progress(self, revision: int) -> None:
        """A reply to a progress request. etcd 3.4 sends it on a control channel that can
        overtake events already queued for the stream, so a reply is trusted only once a
        second request, sent after it arrived, has come back."""
        self._progress_in_flight = False
        candidate, self._progress_candidate = self._progress_candidate, None
        if candidate is not None:
            for watcher in list(self._watchers.values()):
                if watcher._synced:
                    watcher._progress(candidate)
            if not self._progress_wanted:
                return
        self._progress_candidate = revision
        self._progress_wanted = False
        if self._outbox is not None:
            self._progress_in_flight = True
            self._outbox.put_nowait(wire.watch_progress_request())


class EtcdStore(Store):
    """`Store` on etcd. Calls must come from the event-loop thread that called `start()`."""

    def __init__(self, endpoints: str | list[Endpoint], *, ca_file: str = "", cert_file: str = "",
                 key_file: str = "", request_timeout: float = 5.0, watch_queue_limit: int = 10000,
                 compact_interval: float = 300.0, compact_keep: int = 1000):
        if isinstance(endpoints, str):
            endpoints = parse_endpoints(endpoints)
        self.client = EtcdClient(endpoints, ca_file=ca_file, cert_file=cert_file, key_file=key_file,
                                 request_timeout=request_timeout)
        self.watch_queue_limit = watch_queue_limit
        self.compact_interval = compact_interval
        self.compact_keep = compact_keep
        self._revision = 0
        self._compacted_revision = 0
        self._stream: _WatchStream | None = None
        self._compactor: asyncio.Task | None = None
        self._compact_lock = asyncio.Lock()
        # keep_current_in_memory: key -> (KeyValue or None when deleted, revision of that
        # state), fed by a watch of each prefix and by this store's own acknowledged writes.
        self._memory_prefixes: tuple[str, ...] = ()
        self._memory: dict[str, tuple[KeyValue | None, int]] = {}
        self._memory_primed: set[str] = set()
        self._memory_tasks: list[asyncio.Task] = []

    def __repr__(self) -> str:
        return f"EtcdStore({','.join(endpoint.target for endpoint in self.client.endpoints)})"

    # -- lifecycle -----------------------------------------------------------------------

    async def start(self) -> None:
        status = wire.decode_status_response(await self.client.call(wire.STATUS, wire.STATUS_REQUEST))
        self._revision = max(self._revision, status.revision)
        await self._read_compacted_revision()
        self._stream = _WatchStream(self)
        self._stream.start()
        if self.compact_interval > 0:
            self._compactor = asyncio.get_running_loop().create_task(
                self._compact_periodically(), name="etcd-store-compactor")

    async def _read_compacted_revision(self) -> None:
        """etcd has no call that returns its compacted revision (upstream's apiserver keeps
        it in a key of its own). A read at a revision before it fails and one at it works:
        bisect, about log2(revision) small reads, at start-up and before each compaction."""
        low, high = max(1, self._compacted_revision), self._revision  # low: readable? high: readable
        if high > low and not await self._readable(low):
            while low < high:
                middle = (low + high) // 2
                if await self._readable(middle):
                    high = middle
                else:
                    low = middle + 1
            self._note_compacted(high)

    async def _readable(self, revision: int) -> bool:
        try:
            await self.client.call(wire.RANGE, wire.range_request(b"\x00", revision=revision, count_only=True))
        except GrpcError as error:
            if _COMPACTED_MESSAGE in error.details:
                return False
            raise
        return True

    def _note_compacted(self, revision: int) -> None:
        if revision > self._compacted_revision:
            self._compacted_revision = revision

    async def close(self) -> None:
        for task in self._memory_tasks:
            task.cancel()
        await asyncio.gather(*self._memory_tasks, return_exceptions=True)
        self._memory_tasks.clear()
        if self._compactor is not None:
            self._compactor.cancel()
            try:
                await self._compactor
            except asyncio.CancelledError:
                pass
            self._compactor = None
        if self._stream is not None:
            await self._stream.close()
        await self.client.close()

    @property
    def revision(self) -> int:
        return self._revision

    @property
    def compacted_revision(self) -> int:
        return self._compacted_revision

    def _saw(self, revision: int) -> None:
        if revision > self._revision:
            self._revision = revision

    # -- writes --------------------------------------------------------------------------

    async def _attempts(self, method: str, request: bytes) -> tuple[bytes, bool]:
        """Send a request until it is answered or the request deadline passes: (answer,
        whether an earlier attempt went unanswered).

        An attempt gets a third of the deadline; one that times out or loses its member goes
        to the next member. A leader election is the reason: etcd drops the proposals of a
        member whose leader died ("leader changed"), and holds its linearizable reads until
        its read index times out (longer than our whole deadline), while the other members
        answer as soon as they have elected a leader. Only "no leader" and connection
        refusals are known not to have reached etcd; they are retried all the same."""
        client = self.client
        deadline = time.monotonic() + client.request_timeout
        per_attempt = max(1.0, client.request_timeout / 3)
        unanswered = False
        while True:
            remaining = deadline - time.monotonic()
            try:
                return await client.call(method, request, timeout=min(per_attempt, remaining)), unanswered
            except (StoreTimeout, StoreUnavailable):
                if deadline - time.monotonic() < 0.05:
                    raise
                unanswered = True
                client.next_endpoint(client._current)
                await asyncio.sleep(0.05)

    async def _txn(self, request: bytes) -> tuple[wire.TxnResponse, bool]:
        """A guarded write through `_attempts`: (response, whether an earlier attempt may have
        committed). A write that may have committed is sent again all the same: the guard
        (key absent / mod_revision) makes the second attempt fail if the first committed, and
        the caller then reads the outcome off the guard's range (the key holds our value: the
        write is ours)."""
        raw, uncertain = await self._attempts(wire.TXN, request)
        response = wire.decode_txn_response(raw)
        self._saw(response.revision)
        return response, uncertain

    async def create(self, key: str, value: bytes) -> KeyValue:
        raw_key = key.encode()
        response, retried = await self._txn(wire.txn_request(
            [wire.compare(raw_key, wire.TARGET_CREATE, wire.EQUAL, 0)],
            [wire.request_op_put(wire.put_request(raw_key, value))],
            [wire.request_op_range(wire.range_request(raw_key))]))
        if response.succeeded:
            return self._remember(KeyValue(key, value, response.revision, response.revision))
        stored = self._stored(key, response)
        if retried and stored.value == value:
            return self._remember(stored)  # an earlier attempt committed it
        raise KeyExists(stored)

    def _stored(self, key: str, response: wire.TxnResponse) -> KeyValue:
        _, found = response.responses[0]
        if not found.kvs:
            raise KeyNotFound(key)
        return _kv(found.kvs[0])

    def _guard(self, raw_key: bytes, expected_revision: int) -> bytes:
        if expected_revision:
            return wire.compare(raw_key, wire.TARGET_MOD, wire.EQUAL, expected_revision)
        return wire.compare(raw_key, wire.TARGET_CREATE, wire.GREATER, 0)  # present

    async def update(self, key: str, value: bytes, expected_revision: int) -> KeyValue:
        raw_key = key.encode()
        response, retried = await self._txn(wire.txn_request(
            [self._guard(raw_key, expected_revision)],
            [wire.request_op_put(wire.put_request(raw_key, value, prev_kv=True))],
            [wire.request_op_range(wire.range_request(raw_key))]))
        if not response.succeeded:
            stored = self._stored(key, response)
            if retried and stored.value == value and stored.mod_revision > expected_revision:
                return self._remember(stored)  # an earlier attempt committed it
            raise RevisionMismatch(stored)
        _, prev = response.responses[0]
        return self._remember(KeyValue(key, value, prev.create_revision, response.revision))

    async def delete(self, key: str, expected_revision: int = 0) -> KeyValue:
        raw_key = key.encode()
        response, retried = await self._txn(wire.txn_request(
            [self._guard(raw_key, expected_revision)],
            [wire.request_op_delete(wire.delete_range_request(raw_key, prev_kv=True))],
            [wire.request_op_range(wire.range_request(raw_key))]))
        if not response.succeeded:
            if retried and expected_revision and not response.responses[0][1].kvs:
                # Gone after an attempt that may have committed: that attempt deleted the
                # revision we expected (the value as of it; the delete's revision is at
                # most this answer's).
                prev = await self.get(key, revision=expected_revision)
                if prev is not None and prev.mod_revision == expected_revision:
                    deleted = KeyValue(key, prev.value, prev.create_revision, response.revision)
                    if self._memory_prefixes and key.startswith(self._memory_prefixes):
                        self._remember_state(key, None, response.revision)
                    return deleted
            raise RevisionMismatch(self._stored(key, response))
        _, prevs = response.responses[0]
        prev = _kv(prevs[0])
        deleted = KeyValue(key, prev.value, prev.create_revision, response.revision)
        if self._memory_prefixes and key.startswith(self._memory_prefixes):
            self._remember_state(key, None, response.revision)
        return deleted

    # -- reads ---------------------------------------------------------------------------

    async def _range(self, request: bytes, revision: int) -> wire.RangeResponse:
        try:
            response = wire.decode_range_response((await self._attempts(wire.RANGE, request))[0])
        except GrpcError as error:
            raise self._read_error(error, revision) from None
        self._saw(response.revision)
        return response

    def _read_error(self, error: GrpcError, revision: int) -> Exception:
        details = error.details
        if _COMPACTED_MESSAGE in details:
            self._note_compacted(revision + 1)
            return Compacted(revision, self._compacted_revision)
        if _FUTURE_MESSAGE in details:
            return RevisionTooNew(f"requested revision {revision} is newer than the store revision {self._revision}")
        return error

    async def get(self, key: str, revision: int = 0) -> KeyValue | None:
        if not revision and self._memory_primed and key.startswith(tuple(self._memory_primed)):
            state = self._memory.get(key)
            if state is not None:
                return state[0]
            # Never seen: perhaps created by another server a moment ago; ask etcd (upstream's
            # NamespaceLifecycle does the same live lookup on a cache miss).
        if revision and revision < self._compacted_revision:
            raise Compacted(revision, self._compacted_revision)
        response = await self._range(wire.range_request(key.encode(), revision=revision), revision)
        return _kv(response.kvs[0]) if response.kvs else None

    async def list(self, prefix: str, *, revision: int = 0, start_after: str = "",
                   limit: int = 0) -> ListResult:
        if revision and revision < self._compacted_revision:
            raise Compacted(revision, self._compacted_revision)
        raw_prefix = prefix.encode()
        range_end = prefix_range_end(raw_prefix)
        start = raw_prefix
        if start_after and start_after.encode() >= raw_prefix:
            start = start_after.encode() + b"\x00"
        items: list[KeyValue] = []
        read_revision = revision
        more = False
        while True:
            want = limit - len(items) if limit > 0 else 0
            page = RANGE_PAGE_SIZE if want == 0 else min(want, RANGE_PAGE_SIZE)
            response = await self._range(
                wire.range_request(start, range_end, limit=page, revision=read_revision), read_revision)
            if not read_revision:
                read_revision = response.revision  # the later pages read the same snapshot
            items.extend(_kv(kv) for kv in response.kvs)
            if not response.more or not response.kvs:
                break
            if limit > 0 and len(items) >= limit:
                more = True
                break
            start = bytes(response.kvs[-1].key) + b"\x00"
        return ListResult(items, read_revision, more)

    async def count(self, prefix: str) -> int:
        raw_prefix = prefix.encode()
        response = await self._range(
            wire.range_request(raw_prefix, prefix_range_end(raw_prefix), count_only=True), 0)
        return response.count

    # -- keys kept in memory -------------------------------------------------------------

    def keep_current_in_memory(self, prefix: str) -> None:
        """Serve current gets under `prefix` from a map kept by a watch of the prefix (like
        upstream's namespace lister) and by this store's own writes, which update it before
        they are acknowledged: a get after this server's write sees it. Until the first list
        is in, and while the watch is resuming, gets go to etcd."""
        self._memory_prefixes += (prefix,)
        self._memory_tasks.append(asyncio.get_running_loop().create_task(
            self._keep_in_memory(prefix), name=f"etcd-store-memory {prefix}"))

    def _remember(self, kv: KeyValue) -> KeyValue:
        if self._memory_prefixes and kv.key.startswith(self._memory_prefixes):
            self._remember_state(kv.key, kv, kv.mod_revision)
        return kv

    def _remember_state(self, key: str, kv: KeyValue | None, revision: int) -> None:
        known = self._memory.get(key)
        if known is None or known[1] < revision:
            self._memory[key] = (kv, revision)

    async def _keep_in_memory(self, prefix: str) -> None:
        while True:
            try:
                listed = await self.list(prefix)
                for key in [key for key in self._memory if key.startswith(prefix)]:
                    if self._memory[key][1] <= listed.revision:
                        del self._memory[key]
                for kv in listed.items:
                    self._remember_state(kv.key, kv, kv.mod_revision)
                # Keys absent from the list are absent at its revision (not remembered: a
                # miss in a primed prefix reads as absent).
                watch = self.watch(prefix, listed.revision)
                self._memory_primed.add(prefix)
                try:
                    while (batch := await watch.next_batch(30.0)) is not None:
                        for event in batch:
                            if event.type == "PUT":
                                self._remember_state(event.kv.key, event.kv, event.kv.mod_revision)
                            else:
                                self._remember_state(event.kv.key, None, event.kv.mod_revision)
                finally:
                    self._memory_primed.discard(prefix)
                    watch.close()
            except asyncio.CancelledError:
                raise
            except Exception as error:
                log.info("keeping %s in memory: %s; reading from etcd meanwhile", prefix, error)
                self._memory_primed.discard(prefix)
                await asyncio.sleep(1.0)

    # -- watch ---------------------------------------------------------------------------

    def watch(self, prefix: str, from_revision: int) -> EtcdWatch:
        if self._stream is None:
            raise RuntimeError("store is not started")
        if from_revision and from_revision < self._compacted_revision:
            raise Compacted(from_revision, self._compacted_revision)
        if from_revision == 0:
            from_revision = self._revision
        watcher = EtcdWatch(self._stream, prefix, from_revision, self.watch_queue_limit)
        self._stream.add(watcher)
        return watcher

    # -- compaction ----------------------------------------------------------------------

    async def compact(self, revision: int) -> None:
        async with self._compact_lock:
            if revision <= self._compacted_revision:
                return
            try:
                response = await self.client.call(wire.COMPACT, wire.compaction_request(revision))
            except GrpcError as error:
                details = error.details
                if _COMPACTED_MESSAGE in details:  # another server compacted further already
                    self._note_compacted(revision)
                    return
                if _FUTURE_MESSAGE in details:
                    raise RevisionTooNew(f"cannot compact at {revision}: store revision is {self._revision}") from None
                raise
            self._saw(wire.decode_header_revision(_header_of(response)))
            self._note_compacted(revision)

    async def _compact_periodically(self) -> None:
        # Upstream's apiserver compacts every 5 minutes; like the SQLite store this keeps the
        # last `compact_keep` revisions so watchers can resume after a short disconnect.
        while True:
            await asyncio.sleep(self.compact_interval)
            target = self._revision - self.compact_keep
            try:
                await self._read_compacted_revision()  # another server may have compacted
                if target <= self._compacted_revision:
                    continue
                await self.compact(target)
                log.debug("compacted etcd at revision %d", target)
            except Exception as error:
                log.warning("etcd compaction at revision %d failed: %s", target, error)


def _header_of(response: bytes) -> bytes:
    for number, _, value in wire._fields(response):
        if number == 1:
            return value
    return b""
