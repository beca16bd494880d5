"""Event time-to-live: Events older than one hour are deleted (upstream gets this from an
etcd lease per event, `--event-ttl=1h`; here a periodic sweep does it).

An Event's age is taken from its last occurrence: lastTimestamp, else eventTime (or the
series' lastObservedTime), else creationTimestamp. Both core/v1 and events.k8s.io/v1 Events
are swept.
"""

from __future__ import annotations

import asyncio
import calendar
import logging
import re
import time
from typing import Any

from pyk8s.api import errors
from pyk8s.api.resources import lookup
from pyk8s.controllers.base import Controller

log = logging.getLogger("pyk8s.controllers.eventttl")

EVENT_RESOURCES = (lookup("", "v1", "events"), lookup("events.k8s.io", "v1", "events"))
DEFAULT_EVENT_TTL = 3600.0
DEFAULT_SWEEP_INTERVAL = 60.0

_TIMESTAMP = re.compile(r"^(\d{4})-(\d\d)-(\d\d)T(\d\d):(\d\d):(\d\d)(?:\.\d+)?(Z|[+-]\d\d:\d\d)$")


def parse_timestamp(text: str | None) -> float | None:
    """Seconds since the epoch of an RFC 3339 timestamp (with or without fraction)."""
    if not text:
        return None
    match = _TIMESTAMP.match(text)
    if not match:
        return None
    year, month, day, hour, minute, second, zone = match.groups()
    seconds = calendar.timegm((int(year), int(month), int(day), int(hour), int(minute), int(second)))
    if zone != "Z":
        sign = 1 if zone[0] == "+" else -1
        seconds -= sign * (int(zone[1:3]) * 3600 + int(zone[4:6]) * 60)
    return float(seconds)


def last_seen(event: dict[str, Any]) -> float | None:
    series = event.get("series") or {}
    for text in (event.get("lastTimestamp"), series.get("lastObservedTime"), event.get("eventTime"),
                 event.get("deprecatedLastTimestamp"), event["metadata"].get("creationTimestamp")):
        seen = parse_timestamp(text)
        if seen is not None:
            return seen
    return None


def expired(event: dict[str, Any], now: float, ttl: float) -> bool:
    seen = last_seen(event)
    return seen is not None and now - seen > ttl


class EventTTLController(Controller):
    name = "eventttl"

    def __init__(self, client, *, ttl: float = DEFAULT_EVENT_TTL, interval: float = DEFAULT_SWEEP_INTERVAL):
        super().__init__(client)
        self.ttl = ttl
        self.interval = interval

    async def start(self) -> None:
        self._tasks.append(asyncio.create_task(self._sweep_forever(), name="eventttl-sweep"))

    async def _sweep_forever(self) -> None:
        while True:
            try:
                await self.sweep()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("event sweep failed: %s", exc)
            await asyncio.sleep(self.interval)  # a timer, not synchronisation

    async def sweep(self) -> int:
        """Deletes every expired Event; returns how many."""
        now = time.time()
        deleted = 0
        for resource in EVENT_RESOURCES:
            continue_token = ""
            while True:
                params = {"limit": 500}
                if continue_token:
                    params["continue"] = continue_token
                listed = await self.client.list(resource, **params)
                for event in listed.get("items") or []:
                    if expired(event, now, self.ttl):
                        meta = event["metadata"]
                        try:
                            await self.client.delete(resource, meta["name"], meta.get("namespace"))
                            deleted += 1
                        except errors.NotFound:
                            pass
                continue_token = (listed.get("metadata") or {}).get("continue") or ""
                if not continue_token:
                    break
        if deleted:
            log.info("deleted %d expired events", deleted)
        return deleted
