"""Leader election through a coordination.k8s.io Lease (upstream client-go's
tools/leaderelection with the LeaseLock), so that of several servers exactly one runs the
controller manager (Lease kube-system/kube-controller-manager) and one the scheduler
(kube-system/kube-scheduler).

Upstream's algorithm and timings: every `retry_period` (2 s, with up to 20 % jitter while
waiting) a candidate reads the Lease; it takes it when there is none, when it holds it, or
when the holder's record has not changed for `lease_duration` (15 s) of *this* candidate's
clock (the time it last saw the record change, never the holder's renewTime, so clock skew
between machines does not matter). Writes are compare-and-swap on resourceVersion, so two
candidates never both win. The leader renews every `retry_period`; when it could not renew
for `renew_deadline` (10 s) it stops leading. On a clean stop it releases the Lease
(holderIdentity emptied, leaseDurationSeconds 1: upstream's ReleaseOnCancel), so another
candidate takes over within a retry period instead of a lease duration.

The identity is upstream's `<hostname>_<uuid>`. `run(on_started, on_stopped)` alternates
between candidate and leader until `stop()`: when leadership is lost the callbacks stop the
components and the elector becomes a candidate again (upstream's binaries exit instead).
"""

from __future__ import annotations

import asyncio
import datetime
import logging
import random
import socket
import time
import uuid
from typing import Any, Awaitable, Callable

from pyk8s.api import errors
from pyk8s.api.resources import lookup

log = logging.getLogger("pyk8s.leaderelection")

LEASES = lookup("coordination.k8s.io", "v1", "leases")
LEASE_DURATION = 15.0
RENEW_DEADLINE = 10.0
RETRY_PERIOD = 2.0
JITTER_FACTOR = 1.2


def default_identity() -> str:
    return f"{socket.gethostname().lower()}_{uuid.uuid4()}"


def _micro_time(moment: datetime.datetime | None = None) -> str:
    moment = moment or datetime.datetime.now(datetime.timezone.utc)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class LeaderElector:
    def __init__(self, client, name: str, *, namespace: str = "kube-system", identity: str = "",
                 lease_duration: float = LEASE_DURATION, renew_deadline: float = RENEW_DEADLINE,
                 retry_period: float = RETRY_PERIOD, release_on_cancel: bool = True):
        self.client = client
        self.name = name
        self.namespace = namespace
        self.identity = identity or default_identity()
        self.lease_duration = lease_duration
        self.renew_deadline = renew_deadline
        self.retry_period = retry_period
        self.release_on_cancel = release_on_cancel
        self.is_leader = False
        # The record as last seen and when (our monotonic clock) it last changed.
        self._observed: dict[str, Any] | None = None
        self._observed_at = 0.0
        self._stop = asyncio.Event()
        self._task: asyncio.Task | None = None
        self.became_leader_at: float | None = None  # time.time() of the latest acquisition

    # -- one attempt (upstream tryAcquireOrRenew) -------------------------------------

    async def try_acquire_or_renew(self) -> bool:
        now = datetime.datetime.now(datetime.timezone.utc)
        try:
            lease = await self.client.get(LEASES, self.name, self.namespace)
        except errors.NotFound:
            lease = None
        if lease is None:
            body = {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
                    "metadata": {"name": self.name, "namespace": self.namespace},
                    "spec": self._spec(now, acquire_time=_micro_time(now), transitions=0)}
            try:
                created = await self.client.create(LEASES, body, self.namespace)
            except (errors.AlreadyExists, errors.Conflict):
                return False
            self._observe(created)
            return True

        spec = lease.get("spec") or {}
        self._observe(lease)
        holder = spec.get("holderIdentity") or ""
        duration = float(spec.get("leaseDurationSeconds") or self.lease_duration)
        if holder and holder != self.identity and time.monotonic() < self._observed_at + duration:
            return False  # held by someone else, and not expired on our clock
        if holder == self.identity:
            acquire_time = spec.get("acquireTime") or _micro_time(now)
            transitions = int(spec.get("leaseTransitions") or 0)
        else:
            acquire_time = _micro_time(now)
            transitions = int(spec.get("leaseTransitions") or 0) + (1 if holder else 0)
        updated = dict(lease)
        updated["spec"] = self._spec(now, acquire_time=acquire_time, transitions=transitions)
        try:
            written = await self.client.update(LEASES, updated)
        except (errors.Conflict, errors.NotFound):
            return False
        self._observe(written)
        return True

    def _spec(self, now: datetime.datetime, *, acquire_time: str, transitions: int) -> dict[str, Any]:
        return {"holderIdentity": self.identity, "leaseDurationSeconds": int(self.lease_duration),
                "acquireTime": acquire_time, "renewTime": _micro_time(now), "leaseTransitions": transitions}

    def _observe(self, lease: dict[str, Any]) -> None:
        spec = lease.get("spec") or {}
        record = {k: spec.get(k) for k in ("holderIdentity", "renewTime", "acquireTime", "leaseTransitions",
                                           "leaseDurationSeconds")}
        if record != self._observed:
            self._observed = record
            self._observed_at = time.monotonic()

    async def release(self) -> None:
        """Give the Lease up if we hold it (upstream's release on cancel)."""
        try:
            lease = await self.client.get(LEASES, self.name, self.namespace)
            if (lease.get("spec") or {}).get("holderIdentity") != self.identity:
                return
            now = datetime.datetime.now(datetime.timezone.utc)
            spec = dict(lease["spec"])
            spec.update(holderIdentity="", leaseDurationSeconds=1, renewTime=_micro_time(now),
                        acquireTime=_micro_time(now))
            await self.client.update(LEASES, dict(lease, spec=spec))
            log.info("released lease %s/%s", self.namespace, self.name)
        except Exception as error:  # noqa: BLE001 - the lease then expires by itself
            log.warning("could not release lease %s/%s: %s", self.namespace, self.name, error)

    # -- the loop ---------------------------------------------------------------------

    async def _attempt(self) -> bool:
        try:
            return await self.try_acquire_or_renew()
        except Exception as error:  # noqa: BLE001 - API unreachable: counts as a failed attempt
            log.debug("lease %s/%s: attempt failed: %s", self.namespace, self.name, error)
            return False

    async def _sleep(self, seconds: float) -> bool:
        """Sleep unless stopped; True when stopped."""
        try:
            await asyncio.wait_for(self._stop.wait(), seconds)
            return True
        except asyncio.TimeoutError:
            return False

    async def run(self, on_started_leading: Callable[[], Awaitable[None]],
                  on_stopped_leading: Callable[[], Awaitable[None]]) -> None:
        while not self._stop.is_set():
            # Candidate: acquire.
            while not self._stop.is_set():
                if await self._attempt():
                    break
                if await self._sleep(self.retry_period * (1 + random.random() * (JITTER_FACTOR - 1))):
                    return
            if self._stop.is_set():
                return
            self.is_leader = True
            self.became_leader_at = time.time()
            log.info("%s became leader of lease %s/%s", self.identity, self.namespace, self.name)
            try:
                await on_started_leading()
                # Leader: renew every retry period; give up after renew_deadline without success.
                last_renewed = time.monotonic()
                while not self._stop.is_set():
                    if await self._sleep(self.retry_period):
                        break
                    if await self._attempt():
                        last_renewed = time.monotonic()
                    elif time.monotonic() - last_renewed >= self.renew_deadline:
                        log.error("%s lost lease %s/%s: not renewed for %.0fs", self.identity, self.namespace,
                                  self.name, self.renew_deadline)
                        break
            finally:
                self.is_leader = False
                await on_stopped_leading()
            if self._stop.is_set() and self.release_on_cancel:
                await self.release()

    def start(self, on_started_leading, on_stopped_leading) -> None:
        self._task = asyncio.create_task(self.run(on_started_leading, on_stopped_leading),
                                         name=f"leader-election-{self.name}")

    async def stop(self) -> None:
        self._stop.set()
        if self._task is not None:
            await asyncio.gather(self._task, return_exceptions=True)


class LeaderElected:
    """A component with start()/stop() run only while this process leads Lease `name`;
    `factory()` makes a fresh component at every acquisition. Has start()/stop() itself, so
    the server treats it like the component it wraps."""

    def __init__(self, client, name: str, factory: Callable[[], Any], *, identity: str = "", **timings: float):
        self.elector = LeaderElector(client, name, identity=identity, **timings)
        self.factory = factory
        self.component = None

    async def _started(self) -> None:
        self.component = self.factory()
        await self.component.start()

    async def _stopped(self) -> None:
        component, self.component = self.component, None
        if component is not None:
            await component.stop()

    async def start(self) -> None:
        self.elector.start(self._started, self._stopped)

    async def stop(self) -> None:
        await self.elector.stop()
