import asyncio

from pyk8s.client.workqueue import WorkQueue


def test_key_added_twice_while_queued_is_worked_once():
    async def run():
        queue = WorkQueue()
        queue.add("a")
        queue.add("a")
        queue.add("b")
        assert len(queue) == 2
        assert await queue.get() == "a"
        assert await queue.get() == "b"
    asyncio.run(run())


def test_key_added_while_processing_is_requeued_only_after_done():
    async def run():
        queue = WorkQueue()
        queue.add("a")
        key = await queue.get()
        queue.add("a")
        assert len(queue) == 0  # not handed to a second worker while the first has it
        queue.done(key)
        assert len(queue) == 1
        assert await queue.get() == "a"
    asyncio.run(run())


def test_rate_limited_retries_back_off_and_forget_resets():
    async def run():
        queue = WorkQueue(base_delay=0.01)
        loop = asyncio.get_running_loop()
        queue.add_rate_limited("a")
        queue.add_rate_limited("a")  # second failure: 20 ms, the earlier 10 ms timer wins
        assert queue.failures("a") == 2
        started = loop.time()
        assert await asyncio.wait_for(queue.get(), 1) == "a"
        assert loop.time() - started >= 0.009
        queue.done("a")
        queue.forget("a")
        assert queue.failures("a") == 0
    asyncio.run(run())


def test_waiting_getter_is_woken_by_add():
    async def run():
        queue = WorkQueue()
        getter = asyncio.create_task(queue.get())
        await asyncio.sleep(0)
        assert not getter.done()
        queue.add("x")
        assert await asyncio.wait_for(getter, 1) == "x"
    asyncio.run(run())
