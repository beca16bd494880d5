"""Moving the keys of pyk8s's first layout to upstream's, once, when a server starts.

pyk8s first kept objects under `/registry/<group or core>/<plural>/...`; it now uses
upstream's layout (api/resources.py's storage_prefix: `/registry/pods/...`,
`/registry/services/specs/...`, `/registry/minions/...`). A store written before (a SQLite
file, an etcd cluster, a snapshot restored, a SQLite state migrated to etcd) still holds
the old keys: `move_legacy_keys` copies each one to its new key and deletes the old one,
before the API serves. Values are copied as stored (an encrypted Secret stays sealed, so
this runs on the store beneath the encryption layer). Each move is a create guarded on
the new key's absence then a delete guarded on the old key's revision, so a server that
dies half-way, or two servers starting together on one etcd, finish the job without
losing or duplicating an object. Moved objects get new resourceVersions, as when k3s
moves a cluster between datastores.

A server of the old layout still running on the same etcd would see every object deleted
(and its controllers act on that: a Node deleted removes its server's etcd member). So the
move waits while another server's apiserver identity Lease under the old layout is live
(renewed within its duration): upgrade a cluster of several servers by stopping them all,
then starting them again.
"""

from __future__ import annotations

import asyncio
import datetime
import json
import logging
import time

from pyk8s.api.resources import RESOURCES, legacy_storage_prefix
from pyk8s.storage.interface import KeyExists, KeyNotFound, RevisionMismatch, Store

log = logging.getLogger("pyk8s.storage.keylayout")

_PAGE = 500
_IDENTITY_LABEL = "apiserver.kubernetes.io/identity"
_DEFAULT_LEASE_SECONDS = 15


def legacy_moves() -> list[tuple[str, str]]:
    """(old prefix, new prefix) of every stored kind whose keys moved."""
    moves = {}
    for resource in RESOURCES:
        old, new = legacy_storage_prefix(resource.group, resource.plural), resource.storage_prefix()
        if old != new:
            moves[old] = new
    return sorted(moves.items())


def live_legacy_servers(leases: list[bytes], own_lease: str, now: datetime.datetime) -> list[str]:
    """Names of the apiserver identity Leases (stored values) other than `own_lease` that
    were renewed within their duration."""
    live = []
    for value in leases:
        try:
            lease = json.loads(value)
            metadata, spec = lease.get("metadata") or {}, lease.get("spec") or {}
            renewed = datetime.datetime.fromisoformat(str(spec.get("renewTime")).replace("Z", "+00:00"))
        except (ValueError, TypeError, AttributeError):
            continue
        if (metadata.get("labels") or {}).get(_IDENTITY_LABEL) != "kube-apiserver" or metadata.get("name") == own_lease:
            continue
        duration = spec.get("leaseDurationSeconds") or _DEFAULT_LEASE_SECONDS
        if renewed + datetime.timedelta(seconds=duration) > now:
            live.append(metadata.get("name", ""))
    return live


async def move_legacy_keys(store: Store, *, own_lease: str = "", poll_seconds: float = 2.0) -> int:
    """Move every key under an old prefix to its new key, once no other server of the old
    layout is live (`own_lease`: this server's identity Lease name); returns how many moved."""
    if not any([(await store.list(old_prefix, limit=1)).items for old_prefix, _ in legacy_moves()]):
        return 0
    leases_prefix = legacy_storage_prefix("coordination.k8s.io", "leases") + "kube-system/"
    while live := live_legacy_servers([kv.value for kv in (await store.list(leases_prefix)).items], own_lease,
                                      datetime.datetime.now(datetime.timezone.utc)):
        log.warning("the store holds objects under pyk8s's old key layout and servers of that layout still run "
                    "(%s): waiting for them to stop before moving the keys", ", ".join(sorted(live)))
        await asyncio.sleep(poll_seconds)
    started = time.monotonic()
    moved = 0
    for old_prefix, new_prefix in legacy_moves():
        start_after = ""
        while True:
            page = await store.list(old_prefix, start_after=start_after, limit=_PAGE)
            for kv in page.items:
                new_key = new_prefix + kv.key[len(old_prefix):]
                try:
                    await store.create(new_key, kv.value)
                except KeyExists:
                    pass  # moved before the old key's delete (an interrupted start): that copy stands
                try:
                    await store.delete(kv.key, kv.mod_revision)
                except (KeyNotFound, RevisionMismatch):
                    pass  # another server moved it meanwhile
                moved += 1
            if not page.more or not page.items:
                break
            start_after = page.items[-1].key
    if moved:
        log.info("moved %d keys to upstream's layout (/registry/<resource>/...) in %.1fs", moved,
                 time.monotonic() - started)
    return moved
