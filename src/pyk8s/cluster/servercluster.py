"""Several servers on embedded etcd: what `pyk8s server` does beyond one machine.

- `start_embedded_datastore(config, advertise)`, before the certificates are made: with
  `--cluster-init` start this server's etcd member as a new cluster (restoring a snapshot
  first with `--cluster-reset-restore-path`, k3s's flag; migrating the objects of an
  existing SQLite state, as k3s moves from kine to etcd); with `--server URL --token T` fetch
  the shared keys from that server (cluster/serverjoin.py) and join as a new member; on a
  restart just start the member again, or stop with how to rejoin when the cluster removed
  it. Returns the member (or None on SQLite) and the store.
- `MemberRemover`: a Node deleted whose annotation names an etcd member removes that
  member (k3s's etcd member-removal controller), so `kubectl delete node` of a server takes
  it out of the etcd cluster; the embedded agent's Node carries the annotation.
- Leader election of the controller manager and the scheduler is client/leaderelection.py;
  the `kubernetes` endpoints follow the live servers in controllers/kubernetesservice.py.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from pathlib import Path

from pyk8s.cluster.embeddedetcd import EmbeddedEtcd, EtcdError, MemberRemoved, remove_member, restore_snapshot

log = logging.getLogger("pyk8s.servercluster")

MEMBER_ANNOTATION = "etcd.pyk8s.io/member-name"
MIGRATED_SUFFIX = ".migrated"


def uses_embedded_etcd(config) -> bool:
    return bool(getattr(config, "cluster_init", False) or getattr(config, "join_server", ""))


async def start_embedded_datastore(config, advertise: str, extra_hosts: list[str] = ()):
    """(member, store) for a server on embedded etcd, else (None, None)."""
    if not uses_embedded_etcd(config):
        return None, None
    from pyk8s.storage.etcd import EtcdStore

    etcd = EmbeddedEtcd(config.data_dir, advertise, node_name=config.node_name)
    fresh = not etcd.files.has_member_data()
    join_endpoints = None
    if config.cluster_reset_restore_path:
        moved = restore_snapshot(config.data_dir, Path(config.cluster_reset_restore_path), advertise)
        log.info("restored etcd snapshot %s as a new one-member cluster (old data: %s)",
                 config.cluster_reset_restore_path, moved)
        fresh = False
    elif config.join_server and fresh:
        from pyk8s.cluster.serverjoin import fetch_bootstrap, parse_server_token

        if not config.token:
            raise SystemExit("pyk8s server: --server needs --token (the first server's <data-dir>/server-token)")
        join_endpoints = await fetch_bootstrap(config.join_server, parse_server_token(config.token), config.data_dir)
        log.info("joining the etcd cluster of %s (members %s)", config.join_server, ",".join(join_endpoints))
    etcd.prepare(list(extra_hosts))
    try:
        await etcd.start(join_endpoints=join_endpoints)
    except MemberRemoved as removed:
        await etcd.stop()
        raise SystemExit(f"pyk8s server: {removed}")

    def new_store() -> EtcdStore:
        return EtcdStore(f"https://{etcd.local_endpoint.split('://', 1)[1]}", ca_file=str(etcd.files.server_ca_cert),
                         cert_file=str(etcd.files.client_cert), key_file=str(etcd.files.client_key))
    if fresh and config.cluster_init and not config.join_server:
        await migrate_sqlite(config.datastore_path, new_store())
    return etcd, new_store()


async def migrate_sqlite(database: Path, etcd_store) -> int:
    """Copy every key of the SQLite state at `database` into the (new) etcd cluster, then
    rename the file `<name>.migrated` so it is never read again. Values are copied as
    stored (encrypted Secrets stay sealed); resourceVersions become etcd's revisions, as
    when k3s moves a cluster from kine to etcd. Returns the number of keys copied."""
    from pyk8s.storage.interface import KeyExists
    from pyk8s.storage.sqlite import SQLiteStore

    database = Path(database)
    if not database.exists():
        return 0
    started = time.monotonic()
    source = SQLiteStore(str(database))
    await source.start()
    await etcd_store.start()
    copied = 0
    try:
        start_after = ""
        while True:
            page = await source.list("/", start_after=start_after, limit=500)
            for kv in page.items:
                try:
                    await etcd_store.create(kv.key, kv.value)
                    copied += 1
                except KeyExists:
                    pass  # an interrupted migration copied it already
            if not page.more or not page.items:
                break
            start_after = page.items[-1].key
    finally:
        await source.close()
        await etcd_store.close()
    for suffix in ("", "-wal", "-shm"):
        path = Path(str(database) + suffix)
        if path.exists():
            os.replace(path, Path(str(database) + suffix + MIGRATED_SUFFIX))
    log.info("migrated %d keys from SQLite %s to etcd in %.1fs (the file is now %s%s)", copied, database,
             time.monotonic() - started, database, MIGRATED_SUFFIX)
    return copied


class MemberRemover:
    """Removes the etcd member of a deleted Node (annotation MEMBER_ANNOTATION)."""

    def __init__(self, client, etcd: EmbeddedEtcd):
        self.client = client
        self.etcd = etcd
        self._task: asyncio.Task | None = None

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="etcd-member-remover")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    async def _run(self) -> None:
        from pyk8s.api.resources import lookup

        nodes = lookup("", "v1", "nodes")
        version = ""
        while True:
            try:
                if not version:
                    version = (await self.client.list(nodes))["metadata"].get("resourceVersion", "")
                async for event in self.client.watch(nodes, resource_version=version, timeout_seconds=300):
                    obj = event.get("object") or {}
                    version = (obj.get("metadata") or {}).get("resourceVersion", version)
                    if event.get("type") == "ERROR":
                        version = ""
                        break
                    if event.get("type") != "DELETED":
                        continue
                    member = ((obj.get("metadata") or {}).get("annotations") or {}).get(MEMBER_ANNOTATION)
                    if member and member != self.etcd.name:
                        await self._remove(member, obj["metadata"]["name"])
            except asyncio.CancelledError:
                raise
            except Exception as error:  # noqa: BLE001 - API briefly unavailable: resume
                log.debug("watching nodes for etcd member removal: %s", error)
                await asyncio.sleep(1.0)

    async def _remove(self, member: str, node: str) -> None:
        try:
            removed = await asyncio.to_thread(remove_member, self.etcd.files, [self.etcd.local_endpoint], member)
        except EtcdError as error:
            if "member not found" in str(error).lower():  # every server races to remove it; one wins
                log.info("etcd member %s of deleted node %s: already removed", member, node)
            else:
                log.error("removing etcd member %s of deleted node %s failed: %s", member, node, error)
            return
        if removed:
            log.info("node %s deleted: removed its etcd member %s", node, member)


async def annotate_node_member(client, node_name: str, member: str) -> None:
    from pyk8s.api.resources import lookup

    try:
        await client.patch(lookup("", "v1", "nodes"), node_name,
                           {"metadata": {"annotations": {MEMBER_ANNOTATION: member}}})
    except Exception as error:  # noqa: BLE001 - removal then needs etcdctl by hand
        log.warning("could not annotate node %s with its etcd member: %s", node_name, error)
