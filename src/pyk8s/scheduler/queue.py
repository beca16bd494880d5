"""The queue of pods waiting for a node (upstream's PriorityQueue, simplified).

Three places a pending pod can be:
- active: ready to be tried now, highest `spec.priority` first, then first come;
- backing off: failed recently, moved back to active when its back-off ends
  (1 s doubling to 10 s per attempt, as upstream's podInitialBackoff/podMaxBackoff);
- unschedulable: no node fitted; it waits for a cluster change that may help (a node
  added or changed, a bound pod gone: `move_all_to_active`), or for the periodic flush
  of pods that waited longer than `UNSCHEDULABLE_MAX_WAIT`.

Keys are `namespace/name`; a key is in at most one place. All methods are synchronous
except `pop()`, so informer handlers can call them directly.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import time

INITIAL_BACKOFF = 1.0
MAX_BACKOFF = 10.0
# upstream keeps unschedulable pods up to 5 minutes between flushes; we react to fewer
# kinds of cluster events than upstream does, so retry them sooner.
UNSCHEDULABLE_MAX_WAIT = 60.0


class SchedulingQueue:
    def __init__(self) -> None:
        self._heap: list[tuple[int, int, str]] = []
        self._active: dict[str, int] = {}  # key -> priority of its live heap entry
        self._sequence = itertools.count()
        self._attempts: dict[str, int] = {}
        self._backoff: dict[str, asyncio.TimerHandle] = {}
        self._unschedulable: dict[str, tuple[float, int]] = {}  # key -> (since, priority)
        self._wakeup = asyncio.Event()
        self._closed = False

    # -- sizes, for tests and logs --------------------------------------------------

    def __len__(self) -> int:
        return len(self._active)

    def pending_count(self) -> int:
        return len(self._active) + len(self._backoff) + len(self._unschedulable)

    def is_unschedulable(self, key: str) -> bool:
        return key in self._unschedulable

    # -- entering and leaving -------------------------------------------------------

    def add(self, key: str, priority: int = 0) -> None:
        """Make the pod active now (a new pod, or one whose spec changed)."""
        if self._closed or key in self._active:
            return
        self._unschedulable.pop(key, None)
        timer = self._backoff.pop(key, None)
        if timer is not None:
            timer.cancel()
        self._push(key, priority)

    def _push(self, key: str, priority: int) -> None:
        self._active[key] = priority
        heapq.heappush(self._heap, (-priority, next(self._sequence), key))
        self._wakeup.set()

    def delete(self, key: str) -> None:
        """The pod was bound, deleted, or is no longer ours."""
        self._active.pop(key, None)  # its heap entry is skipped when popped
        self._unschedulable.pop(key, None)
        self._attempts.pop(key, None)
        timer = self._backoff.pop(key, None)
        if timer is not None:
            timer.cancel()

    def forget(self, key: str) -> None:
        """Success: the next failure starts from the initial back-off again."""
        self._attempts.pop(key, None)

    async def pop(self) -> str:
        while True:
            while self._heap:
                _, _, key = heapq.heappop(self._heap)
                if key in self._active:
                    del self._active[key]
                    return key
            if self._closed:
                raise asyncio.CancelledError
            self._wakeup.clear()
            await self._wakeup.wait()

    def close(self) -> None:
        self._closed = True
        for timer in self._backoff.values():
            timer.cancel()
        self._backoff.clear()
        self._wakeup.set()

    # -- failures -----------------------------------------------------------------------

    def backoff_delay(self, key: str) -> float:
        attempts = self._attempts.get(key, 1)
        return min(INITIAL_BACKOFF * (2 ** (attempts - 1)), MAX_BACKOFF)

    def add_unschedulable(self, key: str, priority: int = 0) -> None:
        """No node fitted: wait for a cluster change (then back off) or the flush."""
        if self._closed:
            return
        self._attempts[key] = self._attempts.get(key, 0) + 1
        self._unschedulable[key] = (time.monotonic(), priority)

    def add_backoff(self, key: str, priority: int = 0) -> None:
        """An error that is not about fit (API trouble): retry after the back-off."""
        if self._closed:
            return
        self._attempts[key] = self._attempts.get(key, 0) + 1
        self._start_backoff(key, priority, time.monotonic())

    def _start_backoff(self, key: str, priority: int, failed_at: float) -> None:
        """Active again at failed_at + back-off (right away if that has passed)."""
        if key in self._backoff or key in self._active:
            return
        remaining = failed_at + self.backoff_delay(key) - time.monotonic()
        if remaining <= 0:
            self._push(key, priority)
            return
        loop = asyncio.get_running_loop()
        self._backoff[key] = loop.call_later(remaining, self._backoff_done, key, priority)

    def _backoff_done(self, key: str, priority: int) -> None:
        if self._backoff.pop(key, None) is not None and not self._closed:
            self._push(key, priority)

    # -- cluster changes ----------------------------------------------------------------

    def move_all_to_active(self) -> None:
        """Something changed that may let unschedulable pods fit: retry each once its
        back-off has passed."""
        waiting, self._unschedulable = self._unschedulable, {}
        for key, (since, priority) in waiting.items():
            self._start_backoff(key, priority, since)

    def flush_unschedulable(self, max_wait: float = UNSCHEDULABLE_MAX_WAIT) -> None:
        now = time.monotonic()
        for key, (since, priority) in list(self._unschedulable.items()):
            if now - since >= max_wait:
                del self._unschedulable[key]
                self._start_backoff(key, priority, since)
