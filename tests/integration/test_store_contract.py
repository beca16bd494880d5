"""The store contract (storage/interface.py: etcd's semantics), run against every backend:
the SQLite store, the etcd store on one real etcd member, and on a real three-member etcd
cluster (Debian's etcd, started per test on free loopback ports of the test's network
namespace, data in the test's temp dir, killed at teardown). Revisions, compare-and-swap,
lists (paged, historical), watches (replay, no gap, slow watchers), compaction, restart and
durability across kill -9 of the writer.

SQLite-only behaviour (its tables, its file lock, its lazy replay) is in
tests/unit/test_storage_sqlite.py; etcd failures (members down, no quorum) in
test_etcd_store.py."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from etcdcluster import EtcdCluster
from pyk8s.storage import (
    Compacted,
    Event,
    KeyExists,
    KeyNotFound,
    RevisionMismatch,
    RevisionTooNew,
    SQLiteStore,
)
from pyk8s.storage.etcd import EtcdStore

SRC_DIR = Path(__file__).resolve().parents[2] / "src"


class StoreBackend:
    """A fresh backend per test; `make()` opens a store on it (again after a close, for
    restart tests)."""

    def __init__(self, kind: str, directory: Path):
        self.kind = kind
        self.directory = directory
        self.cluster: EtcdCluster | None = None
        if kind != "sqlite":
            self.cluster = EtcdCluster(directory / "etcd", members=3 if kind == "etcd-3" else 1).start()

    @property
    def spec(self) -> str:
        """What `pyk8s server --datastore` would be given."""
        if self.cluster is None:
            return "sqlite:" + str(self.directory / "state.db")
        return self.cluster.endpoints

    def make(self, **options):
        options.setdefault("compact_interval", 0)
        return open_store(self.spec, **options)

    def run(self, scenario, **options):
        """Run `scenario(store)` on a started store, then close it."""

        async def main():
            store = self.make(**options)
            await store.start()
            try:
                return await scenario(store)
            finally:
                await store.close()

        return asyncio.run(main())

    def stop(self) -> None:
        if self.cluster is not None:
            self.cluster.stop()


def open_store(spec: str, **options):
    if spec.startswith("sqlite:"):
        return SQLiteStore(spec[len("sqlite:"):], **options)
    return EtcdStore(spec, **options)


@pytest.fixture(params=["sqlite", "etcd", "etcd-3"])
def store_backend(request, tmp_path):
    backend = StoreBackend(request.param, tmp_path)
    yield backend
    backend.stop()


async def next_event(watch, timeout: float = 2.0) -> Event:
    return await asyncio.wait_for(watch.__anext__(), timeout)


async def collect_events(watch, count: int, timeout: float = 5.0) -> list[Event]:
    return [await next_event(watch, timeout) for _ in range(count)]


async def caught_up(watch, timeout: float = 5.0) -> int | None:
    """The watch's caught-up revision once it has one (etcd confirms asynchronously)."""
    deadline = time.monotonic() + timeout
    while (revision := watch.caught_up_revision()) is None and time.monotonic() < deadline:
        await asyncio.sleep(0.01)
    return revision


def live_watch_count(store) -> int:
    if isinstance(store, SQLiteStore):
        return sum(len(group) for group in store._watchers_by_prefix.values())
    return len(store._stream._watchers)


# -- revisions and writes ------------------------------------------------------------------

def test_fresh_store_is_at_revision_1_and_first_write_gets_2(store_backend):
    async def scenario(store):
        assert store.revision == 1
        kv = await store.create("/a", b"v")
        assert (kv.create_revision, kv.mod_revision, store.revision) == (2, 2, 2)

    store_backend.run(scenario)


def test_create_of_existing_key_raises_key_exists_with_stored_value(store_backend):
    async def scenario(store):
        first = await store.create("/a", b"first")
        with pytest.raises(KeyExists) as raised:
            await store.create("/a", b"second")
        assert raised.value.kv == first
        assert store.revision == first.mod_revision  # a failed write takes no revision

    store_backend.run(scenario)


def test_update_with_stale_revision_raises_mismatch_carrying_current_value(store_backend):
    async def scenario(store):
        created = await store.create("/a", b"1")
        updated = await store.update("/a", b"2", created.mod_revision)
        with pytest.raises(RevisionMismatch) as raised:
            await store.update("/a", b"3", created.mod_revision)
        assert raised.value.kv == updated
        assert (await store.get("/a")).value == b"2"

    store_backend.run(scenario)


def test_update_keeps_create_revision_and_takes_next_revision(store_backend):
    async def scenario(store):
        created = await store.create("/a", b"1")
        await store.create("/b", b"1")
        updated = await store.update("/a", b"2", created.mod_revision)
        assert updated.create_revision == created.create_revision
        assert updated.mod_revision == store.revision == created.mod_revision + 2
        assert await store.get("/a") == updated

    store_backend.run(scenario)


def test_update_with_expected_revision_zero_is_unconditional(store_backend):
    async def scenario(store):
        await store.create("/a", b"1")
        await store.update("/a", b"2", 0)
        updated = await store.update("/a", b"3", 0)
        assert (await store.get("/a")) == updated and updated.value == b"3"

    store_backend.run(scenario)


def test_update_of_missing_key_raises_key_not_found(store_backend):
    async def scenario(store):
        with pytest.raises(KeyNotFound):
            await store.update("/missing", b"x", 0)

    store_backend.run(scenario)


def test_delete_returns_deleted_value_at_the_delete_revision(store_backend):
    async def scenario(store):
        created = await store.create("/a", b"value")
        deleted = await store.delete("/a")
        assert deleted.value == b"value"
        assert deleted.create_revision == created.create_revision
        assert deleted.mod_revision == store.revision == created.mod_revision + 1
        assert await store.get("/a") is None

    store_backend.run(scenario)


def test_delete_with_stale_revision_raises_mismatch_and_keeps_key(store_backend):
    async def scenario(store):
        created = await store.create("/a", b"1")
        updated = await store.update("/a", b"2", 0)
        with pytest.raises(RevisionMismatch) as raised:
            await store.delete("/a", created.mod_revision)
        assert raised.value.kv == updated
        assert await store.get("/a") == updated
        await store.delete("/a", updated.mod_revision)
        assert await store.get("/a") is None

    store_backend.run(scenario)


def test_delete_of_missing_key_raises_key_not_found(store_backend):
    async def scenario(store):
        with pytest.raises(KeyNotFound):
            await store.delete("/missing")

    store_backend.run(scenario)


def test_recreated_key_gets_a_new_create_revision(store_backend):
    async def scenario(store):
        await store.create("/a", b"1")
        await store.delete("/a")
        again = await store.create("/a", b"2")
        assert again.create_revision == again.mod_revision == store.revision

    store_backend.run(scenario)


# -- reads ---------------------------------------------------------------------------------

def test_list_returns_only_keys_under_prefix_in_key_order(store_backend):
    async def scenario(store):
        for key in ["/r/pods/b", "/r/pods/a", "/r/podsx/a", "/r/pod", "/r/pods/c/d"]:
            await store.create(key, key.encode())
        result = await store.list("/r/pods/")
        assert [kv.key for kv in result.items] == ["/r/pods/a", "/r/pods/b", "/r/pods/c/d"]
        assert result.revision == store.revision and result.more is False
        assert await store.count("/r/pods/") == 3
        assert await store.count("/r/") == 5

    store_backend.run(scenario)


def test_list_pages_with_limit_and_start_after_cover_every_key_once(store_backend):
    async def scenario(store):
        keys = [f"/r/k{i:03d}" for i in range(25)]
        for key in reversed(keys):
            await store.create(key, b"x")
        await store.create("/s/outside", b"x")
        seen, start_after, pages = [], "", 0
        while True:
            page = await store.list("/r/", start_after=start_after, limit=10)
            pages += 1
            seen += [kv.key for kv in page.items]
            if not page.more:
                break
            start_after = page.items[-1].key
        assert seen == keys and pages == 3

    store_backend.run(scenario)


def test_list_with_limit_equal_to_remaining_keys_reports_no_more(store_backend):
    async def scenario(store):
        for i in range(4):
            await store.create(f"/r/{i}", b"x")
        page = await store.list("/r/", limit=4)
        assert len(page.items) == 4 and page.more is False

    store_backend.run(scenario)


def test_historical_list_shows_values_and_keys_as_of_that_revision(store_backend):
    async def scenario(store):
        await store.create("/r/a", b"a1")
        await store.create("/r/b", b"b1")
        await store.create("/r/gone-later", b"g")
        await store.create("/r/gone-before", b"x")
        await store.delete("/r/gone-before")
        then = store.revision
        await store.update("/r/a", b"a2", 0)
        await store.delete("/r/gone-later")
        await store.create("/r/c", b"c1")
        past = await store.list("/r/", revision=then)
        assert past.revision == then
        assert [(kv.key, kv.value) for kv in past.items] == [
            ("/r/a", b"a1"), ("/r/b", b"b1"), ("/r/gone-later", b"g")]
        assert past.items[0].mod_revision == 2
        paged = await store.list("/r/", revision=then, start_after="/r/a", limit=1)
        assert [kv.key for kv in paged.items] == ["/r/b"] and paged.more is True
        now = await store.list("/r/")
        assert [(kv.key, kv.value) for kv in now.items] == [("/r/a", b"a2"), ("/r/b", b"b1"), ("/r/c", b"c1")]

    store_backend.run(scenario)


def test_historical_get_returns_value_at_revision_or_none_before_creation(store_backend):
    async def scenario(store):
        await store.create("/other", b"x")
        before = store.revision
        created = await store.create("/a", b"1")
        await store.update("/a", b"2", 0)
        deleted = await store.delete("/a")
        assert await store.get("/a", before) is None
        assert await store.get("/a", created.mod_revision) == created
        assert (await store.get("/a", deleted.mod_revision - 1)).value == b"2"
        assert await store.get("/a", deleted.mod_revision) is None

    store_backend.run(scenario)


def test_reads_at_future_revision_raise_revision_too_new(store_backend):
    async def scenario(store):
        await store.create("/a", b"1")
        with pytest.raises(RevisionTooNew):
            await store.get("/a", store.revision + 1)
        with pytest.raises(RevisionTooNew):
            await store.list("/", revision=store.revision + 1)

    store_backend.run(scenario)


# -- watch ---------------------------------------------------------------------------------

def test_watch_from_past_revision_replays_every_later_write_in_order(store_backend):
    async def scenario(store):
        start = store.revision
        a = await store.create("/r/a", b"1")
        a2 = await store.update("/r/a", b"2", 0)
        await store.create("/elsewhere", b"x")
        b = await store.create("/r/b", b"1")
        watch = store.watch("/r/", start)
        events = await collect_events(watch, 3)
        assert [(e.type, e.kv) for e in events] == [("PUT", a), ("PUT", a2), ("PUT", b)]
        assert [e.created for e in events] == [True, False, True]
        assert events[0].prev is None and events[1].prev == a
        assert watch.caught_up_revision() == store.revision
        watch.close()

    store_backend.run(scenario)


def test_watch_from_zero_sees_only_writes_after_it_started(store_backend):
    async def scenario(store):
        await store.create("/r/old", b"x")
        watch = store.watch("/r/", 0)
        new = await store.create("/r/new", b"y")
        event = await next_event(watch)
        assert event.kv == new and event.created
        assert watch.caught_up_revision() == store.revision
        watch.close()

    store_backend.run(scenario)


def test_watch_ignores_keys_outside_its_prefix(store_backend):
    async def scenario(store):
        watch = store.watch("/r/pods/", 0)
        await store.create("/r/podsx", b"x")
        await store.create("/r/services/a", b"x")
        inside = await store.create("/r/pods/a", b"x")
        assert (await next_event(watch)).kv == inside
        watch.close()

    store_backend.run(scenario)


def test_delete_events_carry_the_deleted_value_live_and_replayed(store_backend):
    async def scenario(store):
        start = store.revision
        live = store.watch("/r/", start)
        created = await store.create("/r/a", b"last value")
        deleted = await store.delete("/r/a")
        replayed = store.watch("/r/", start)
        for watch in (live, replayed):
            put, delete = await collect_events(watch, 2)
            assert put.kv == created
            assert delete.type == "DELETE" and not delete.created
            assert delete.kv.value == b"last value"
            assert delete.kv.mod_revision == deleted.mod_revision
            assert delete.kv.create_revision == created.create_revision
            assert delete.prev == created
            watch.close()

    store_backend.run(scenario)


def test_replayed_update_event_carries_previous_value(store_backend):
    async def scenario(store):
        created = await store.create("/r/a", b"1")
        start = store.revision
        await store.update("/r/a", b"2", 0)
        watch = store.watch("/r/", start)
        event = await next_event(watch)
        assert event.prev == created and event.kv.value == b"2"
        watch.close()

    store_backend.run(scenario)


def test_watch_started_from_a_list_mid_stream_misses_and_repeats_nothing(store_backend):
    """A writer makes 500 writes; halfway a client lists and watches from the list's
    revision. List plus events must be exactly the final state, and the events exactly the
    writes after the list revision."""
    write_count = 500

    async def scenario(store):
        written_revisions: list[int] = []
        halfway = asyncio.Event()

        async def writer():
            for i in range(write_count):
                key = f"/r/{i % 37}"
                if i % 5 == 4:
                    try:
                        kv = await store.delete(key)
                    except KeyNotFound:
                        kv = await store.create(key, b"%d" % i)
                else:
                    try:
                        kv = await store.create(key, b"%d" % i)
                    except KeyExists:
                        kv = await store.update(key, b"%d" % i, 0)
                written_revisions.append(kv.mod_revision)
                if i == write_count // 2:
                    halfway.set()
                await asyncio.sleep(0)  # let the watcher run between writes

        writer_task = asyncio.create_task(writer())
        await halfway.wait()
        listed = await store.list("/r/")
        watch = store.watch("/r/", listed.revision)
        # Also a watcher that replays from the start, racing with the same writer.
        from_start = store.watch("/r/", 1)
        await writer_task
        expected = [revision for revision in written_revisions if revision > listed.revision]
        assert 0 < len(expected) < write_count
        events = await collect_events(watch, len(expected))
        assert [e.kv.mod_revision for e in events] == expected
        assert watch.caught_up_revision() == store.revision
        replayed = await collect_events(from_start, write_count)
        assert [e.kv.mod_revision for e in replayed] == written_revisions

        state = {kv.key: kv for kv in listed.items}
        for event in events:
            if event.type == "DELETE":
                del state[event.kv.key]
            else:
                state[event.kv.key] = event.kv
        final = await store.list("/r/")
        assert sorted(state.values(), key=lambda kv: kv.key) == final.items
        watch.close()
        from_start.close()

    store_backend.run(scenario)


def test_watch_from_future_revision_starts_after_it(store_backend):
    async def scenario(store):
        watch = store.watch("/r/", store.revision + 2)
        await store.create("/r/1", b"x")
        await store.create("/r/2", b"x")
        third = await store.create("/r/3", b"x")
        assert (await next_event(watch)).kv == third
        watch.close()

    store_backend.run(scenario)


def test_slow_watcher_is_terminated_and_can_resume_from_its_last_revision(store_backend):
    async def scenario(store):
        slow = store.watch("/r/", 0)
        keeps_up = store.watch("/r/", 0)
        first = await store.create("/r/0", b"x")
        last_seen = (await next_event(slow)).kv.mod_revision
        assert last_seen == first.mod_revision
        for i in range(1, 20):
            await store.create(f"/r/{i}", b"x")
            await next_event(keeps_up)
        with pytest.raises(StopAsyncIteration):
            await next_event(slow)
        assert slow.end_reason == "overflow"
        resumed = store.watch("/r/", last_seen)
        events = await collect_events(resumed, 19)
        assert [e.kv.key for e in events] == [f"/r/{i}" for i in range(1, 20)]
        assert keeps_up.end_reason is None
        resumed.close()
        keeps_up.close()

    store_backend.run(scenario, watch_queue_limit=5)


def test_close_ends_a_waiting_iteration(store_backend):
    async def scenario(store):
        watch = store.watch("/r/", 0)

        async def consume():
            return [event async for event in watch]

        consumer = asyncio.create_task(consume())
        await asyncio.sleep(0)
        watch.close()
        assert await asyncio.wait_for(consumer, 2) == []
        await store.create("/r/a", b"x")  # a closed watch is no longer fed
        assert live_watch_count(store) == 0

    store_backend.run(scenario)


def test_caught_up_revision_is_none_while_events_are_pending(store_backend):
    async def scenario(store):
        watch = store.watch("/r/", 0)
        assert watch.caught_up_revision() == store.revision
        await store.create("/r/a", b"x")
        assert watch.caught_up_revision() is None
        await next_event(watch)
        assert watch.caught_up_revision() == store.revision
        await store.create("/elsewhere", b"x")  # not for this watcher: still caught up
        assert await caught_up(watch) == store.revision
        watch.close()

    store_backend.run(scenario)


def test_closing_the_store_ends_its_watches(store_backend):
    async def scenario():
        store = store_backend.make()
        await store.start()
        watch = store.watch("/", 0)
        await store.close()
        with pytest.raises(StopAsyncIteration):
            await next_event(watch)

    asyncio.run(scenario())


# -- compaction ----------------------------------------------------------------------------

def test_reads_and_watches_before_compacted_revision_raise_compacted(store_backend):
    async def scenario(store):
        old = store.revision
        await store.create("/r/a", b"1")
        await store.update("/r/a", b"2", 0)
        await store.create("/r/b", b"1")
        compact_at = store.revision
        await store.update("/r/b", b"2", 0)
        await store.compact(compact_at)
        assert store.compacted_revision == compact_at
        with pytest.raises(Compacted):
            await store.get("/r/a", old)
        with pytest.raises(Compacted):
            await store.list("/r/", revision=old)
        with pytest.raises(Compacted) as raised:
            store.watch("/r/", old)
        assert (raised.value.requested, raised.value.compacted) == (old, compact_at)
        # At the compacted revision itself history is still complete.
        at_compaction = await store.list("/r/", revision=compact_at)
        assert [(kv.key, kv.value) for kv in at_compaction.items] == [("/r/a", b"2"), ("/r/b", b"1")]
        watch = store.watch("/r/", compact_at)
        event = await next_event(watch)
        assert event.kv.value == b"2" and event.prev.value == b"1"
        watch.close()

    store_backend.run(scenario)


def test_compact_at_future_revision_raises_revision_too_new(store_backend):
    async def scenario(store):
        with pytest.raises(RevisionTooNew):
            await store.compact(store.revision + 1)

    store_backend.run(scenario)


def test_background_compaction_keeps_the_last_revisions(store_backend):
    async def scenario(store):
        for i in range(30):
            await store.create(f"/r/{i}", b"x")
        # The compactor runs every 20 ms, also while the writes above were going on: wait
        # for the pass after the last write.
        deadline = time.monotonic() + 5
        while store.compacted_revision != store.revision - 10 and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        assert store.compacted_revision == store.revision - 10

    store_backend.run(scenario, compact_interval=0.02, compact_keep=10)


# -- restart and durability ----------------------------------------------------------------

def test_reopened_store_resumes_revision_compaction_and_data(store_backend):
    async def first_life(store):
        await store.create("/r/a", b"1")
        await store.create("/r/b", b"1")
        await store.delete("/r/b")  # the newest log row is a delete, removed by compaction
        await store.compact(store.revision)
        return store.revision

    async def second_life(store):
        assert store.revision == last_revision
        assert store.compacted_revision == last_revision
        assert (await store.get("/r/a")).value == b"1"
        kv = await store.create("/r/c", b"1")
        assert kv.mod_revision == last_revision + 1

    last_revision = store_backend.run(first_life)
    store_backend.run(second_life)


WRITER_SCRIPT = """
import asyncio, sys
from pyk8s.storage.sqlite import SQLiteStore
from pyk8s.storage.etcd import EtcdStore

async def main():
    spec = sys.argv[1]
    if spec.startswith("sqlite:"):
        store = SQLiteStore(spec[len("sqlite:"):], compact_interval=0)
    else:
        store = EtcdStore(spec, compact_interval=0)
    await store.start()
    for i in range(1_000_000):
        kv = await store.create("/r/key-%d" % i, b"value-%d" % i)
        sys.stdout.write("%s %d\\n" % (kv.key, kv.mod_revision))
        sys.stdout.flush()

asyncio.run(main())
"""


def test_every_acknowledged_write_survives_kill_9(store_backend):
    env = dict(os.environ, PYTHONPATH=str(SRC_DIR))
    writer = subprocess.Popen([sys.executable, "-c", WRITER_SCRIPT, store_backend.spec], stdout=subprocess.PIPE, env=env)
    acknowledged = []
    try:
        while len(acknowledged) < 300:
            line = writer.stdout.readline()
            assert line, "writer exited early"
            acknowledged.append(line.split())
        writer.send_signal(signal.SIGKILL)
        # Lines already written before the kill are acknowledged too.
        acknowledged += [line.split() for line in writer.stdout.read().splitlines()]
    finally:
        writer.kill()
        writer.wait()
    assert writer.returncode == -signal.SIGKILL

    async def check(store):
        for key, revision in acknowledged:
            kv = await store.get(key.decode())
            assert kv is not None, key
            assert kv.mod_revision == int(revision)
        assert store.revision >= int(acknowledged[-1][1])

    store_backend.run(check)


def test_list_of_5000_two_kilobyte_objects_returns_them_all(store_backend):
    async def scenario(store):
        value = b"x" * 2048  # 10 MB in all: more than one etcd range page, and than gRPC's 4 MiB
        for start in range(0, 5000, 250):
            await asyncio.gather(*(store.create(f"/r/pods/default/pod-{i:05d}", value)
                                   for i in range(start, start + 250)))
        listed = await store.list("/r/pods/")
        assert [kv.key for kv in listed.items] == [f"/r/pods/default/pod-{i:05d}" for i in range(5000)]
        assert all(kv.value == value for kv in listed.items)

    store_backend.run(scenario)


def test_keys_kept_in_memory_always_read_as_published(store_backend):
    async def scenario(store):
        store.keep_current_in_memory("/ns/")
        assert await store.get("/ns/a") is None  # absent, remembered as absent
        created = await store.create("/ns/a", b"1")
        assert await store.get("/ns/a") == created
        updated = await store.update("/ns/a", b"2", created.mod_revision)
        assert (await store.get("/ns/a")).value == b"2"
        # Concurrent writers: every acknowledged write is what the next get sees.
        results = await asyncio.gather(*(store.update("/ns/a", str(i).encode(), 0) for i in range(20)))
        last = max(results, key=lambda kv: kv.mod_revision)
        assert await store.get("/ns/a") == last
        await store.delete("/ns/a", last.mod_revision)
        assert await store.get("/ns/a") is None
        # Reads at an older revision and keys outside the prefix go to SQLite as before.
        assert (await store.get("/ns/a", updated.mod_revision)).value == b"2"
        other = await store.create("/other/x", b"x")
        assert await store.get("/other/x") == other

    store_backend.run(scenario)
