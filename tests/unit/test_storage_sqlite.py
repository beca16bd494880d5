"""SQLite-only behaviour of the SQLite store: its log table after compaction, its lazy
replay overtaken by compaction, its exclusive file lock, its prefix bound. The store
contract itself (shared with the etcd store) is tests/integration/test_store_contract.py."""

from __future__ import annotations

import asyncio
import sqlite3

import pytest

from pyk8s.storage import Compacted, Event, SQLiteStore
from pyk8s.storage.sqlite import prefix_upper_bound


def run_with_store(tmp_path, scenario, **options):
    """Run `scenario(store)` on a started store over tmp_path/state.db, then close it."""
    options.setdefault("compact_interval", 0)

    async def main():
        store = SQLiteStore(str(tmp_path / "state.db"), **options)
        await store.start()
        try:
            return await scenario(store)
        finally:
            await store.close()

    return asyncio.run(main())


async def next_event(watch, timeout: float = 2.0) -> Event:
    return await asyncio.wait_for(watch.__anext__(), timeout)


async def collect_events(watch, count: int, timeout: float = 5.0) -> list[Event]:
    return [await next_event(watch, timeout) for _ in range(count)]


# -- revisions and writes ------------------------------------------------------------------

# -- reads ---------------------------------------------------------------------------------

def test_prefix_upper_bound_is_just_past_every_key_with_prefix():
    assert prefix_upper_bound("/r/pods/") == "/r/pods0"
    assert prefix_upper_bound("a\U0010ffff") == "b"
    assert prefix_upper_bound("\ud7ff") == "\ue000"
    assert prefix_upper_bound("") > "\U0010fffe" * 3


# -- watch ---------------------------------------------------------------------------------

# -- compaction ----------------------------------------------------------------------------

def test_compaction_removes_superseded_history_and_keeps_current_state(tmp_path):
    async def scenario(store):
        for i in range(10):
            await store.create(f"/r/{i}", b"v0")
            await store.update(f"/r/{i}", b"v1", 0)
        await store.delete("/r/0")
        await store.compact(store.revision)
        (log_rows,) = store._connection.execute("SELECT COUNT(*) FROM log").fetchone()
        assert log_rows == 9  # the latest write of each live key
        assert [kv.value for kv in (await store.list("/r/")).items] == [b"v1"] * 9
        assert await store.get("/r/0", store.revision) is None

    run_with_store(tmp_path, scenario)


def test_compaction_that_overtakes_a_replay_ends_it_with_compacted(tmp_path):
    async def scenario(store):
        start = store.revision
        for i in range(600):  # more than one replay page
            await store.create("/r/k", b"%d" % i) if i == 0 else await store.update("/r/k", b"%d" % i, 0)
        watch = store.watch("/r/", start)
        await next_event(watch)
        await store.compact(store.revision)
        with pytest.raises(Compacted):
            for _ in range(600):
                await next_event(watch)
        assert watch.end_reason == "compacted"

    run_with_store(tmp_path, scenario)


# -- restart and durability ----------------------------------------------------------------

def test_second_store_on_the_same_file_is_refused(tmp_path):
    async def scenario(store):
        second = SQLiteStore(str(tmp_path / "state.db"), compact_interval=0)
        with pytest.raises(sqlite3.OperationalError):
            await second.start()

    run_with_store(tmp_path, scenario)
