"""Recording Events (client-go's EventRecorder with its aggregation).

An event for the same object, reason, type, message and source is not written twice:
the existing Event's `count` goes up and `lastTimestamp` moves, like upstream's
EventCorrelator. Names are `<object name>.<16 hex digits>` as upstream makes them.
"""

from __future__ import annotations

import logging
import os
import time
from typing import Any

from pyk8s.api import errors
from pyk8s.api.resources import lookup

log = logging.getLogger("pyk8s.events")

EVENTS = lookup("", "v1", "events")


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


class EventRecorder:
    def __init__(self, client, component: str, host: str = ""):
        self.client = client
        self.component = component
        self.host = host
        # (namespace, uid, reason, type, message) → (event name, count)
        self._seen: dict[tuple, tuple[str, int]] = {}

    async def event(self, obj: dict[str, Any], event_type: str, reason: str, message: str,
                    field_path: str = "") -> None:
        """Best effort: a failure to record an event never fails the caller."""
        meta = obj["metadata"]
        namespace = meta.get("namespace") or "default"
        involved = {"kind": obj.get("kind"), "namespace": meta.get("namespace"), "name": meta["name"],
                    "uid": meta.get("uid"), "apiVersion": obj.get("apiVersion"),
                    "resourceVersion": meta.get("resourceVersion")}
        if field_path:
            involved["fieldPath"] = field_path
        involved = {k: v for k, v in involved.items() if v}
        key = (namespace, meta.get("uid"), reason, event_type, message, field_path)
        now = _now()
        try:
            if key in self._seen:
                name, count = self._seen[key]
                try:
                    await self.client.patch(EVENTS, name, {"count": count + 1, "lastTimestamp": now}, namespace)
                    self._seen[key] = (name, count + 1)
                    return
                except errors.NotFound:
                    del self._seen[key]
            name = f"{meta['name']}.{os.urandom(8).hex()}"
            source = {"component": self.component}
            if self.host:
                source["host"] = self.host
            await self.client.create(EVENTS, {
                "apiVersion": "v1", "kind": "Event",
                "metadata": {"name": name, "namespace": namespace},
                "involvedObject": involved, "reason": reason, "message": message, "type": event_type,
                "source": source, "firstTimestamp": now, "lastTimestamp": now, "count": 1,
                "reportingComponent": self.component, "reportingInstance": self.host,
            }, namespace)
            self._seen[key] = (name, 1)
            if len(self._seen) > 4096:
                self._seen.pop(next(iter(self._seen)))
        except Exception as exc:
            log.debug("could not record event %s for %s: %s", reason, meta.get("name"), exc)
