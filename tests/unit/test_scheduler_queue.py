"""Unit tests of the scheduler's pending-pod queue."""

from __future__ import annotations

import asyncio

from pyk8s.scheduler import queue as queue_module
from pyk8s.scheduler.queue import SchedulingQueue


def run(coroutine):
    return asyncio.run(coroutine)


def test_higher_priority_pods_pop_first_then_first_come():
    async def scenario():
        pending = SchedulingQueue()
        pending.add("ns/low", 0)
        pending.add("ns/high", 100)
        pending.add("ns/low2", 0)
        pending.add("ns/low", 0)  # already queued: once
        return [await pending.pop() for _ in range(3)], len(pending)
    assert run(scenario()) == (["ns/high", "ns/low", "ns/low2"], 0)


def test_deleted_pod_is_never_popped():
    async def scenario():
        pending = SchedulingQueue()
        pending.add("ns/gone")
        pending.add("ns/kept")
        pending.delete("ns/gone")
        return await pending.pop()
    assert run(scenario()) == "ns/kept"


def test_unschedulable_pod_waits_for_a_cluster_change_and_its_backoff(monkeypatch):
    monkeypatch.setattr(queue_module, "INITIAL_BACKOFF", 0.05)

    async def scenario():
        pending = SchedulingQueue()
        pending.add_unschedulable("ns/p")
        assert pending.is_unschedulable("ns/p") and len(pending) == 0
        pending.move_all_to_active()
        assert not pending.is_unschedulable("ns/p")
        return await asyncio.wait_for(pending.pop(), timeout=5)
    assert run(scenario()) == "ns/p"


def test_backoff_doubles_per_attempt_up_to_the_maximum():
    async def scenario():
        pending = SchedulingQueue()
        delays = []
        for _ in range(6):
            pending.add_unschedulable("ns/p")
            delays.append(pending.backoff_delay("ns/p"))
        pending.forget("ns/p")
        delays.append(pending.backoff_delay("ns/p"))
        pending.close()
        return delays
    assert run(scenario()) == [1, 2, 4, 8, 10, 10, 1]


def test_flush_retries_pods_that_waited_too_long():
    async def scenario():
        pending = SchedulingQueue()
        pending.add_unschedulable("ns/p")
        pending.flush_unschedulable(max_wait=3600)
        assert pending.is_unschedulable("ns/p")
        pending.flush_unschedulable(max_wait=0)
        assert not pending.is_unschedulable("ns/p")
        pending.close()
    run(scenario())
