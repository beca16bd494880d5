"""A server killed with SIGKILL in the middle of a write stream loses no acknowledged write,
and a watch resumed from the last resourceVersion it saw misses nothing."""

from __future__ import annotations

import asyncio

from pyk8s.api import errors
from pyk8s.api.resources import lookup
from pyk8s.client import Client
from pyk8s.cluster.localcluster import LocalServer

CONFIGMAPS = lookup("", "v1", "configmaps")


def _client(server: LocalServer) -> Client:
    return Client.from_kubeconfig(server.kubeconfig)


async def _write_until_killed(server: LocalServer, acknowledged: dict[str, int], kill_after: int) -> None:
    async with _client(server) as client:
        counter = 0

        async def writer(worker: int) -> None:
            nonlocal counter
            while True:
                counter += 1
                name = f"cm-{worker}-{counter}"
                try:
                    created = await client.create(CONFIGMAPS, {
                        "apiVersion": "v1", "kind": "ConfigMap",
                        "metadata": {"name": name, "namespace": "default"}, "data": {"n": str(counter)}})
                except Exception:
                    return  # the server is gone
                acknowledged[name] = int(created["metadata"]["resourceVersion"])
                if len(acknowledged) == kill_after:
                    server.process.kill()

        await asyncio.gather(*(writer(worker) for worker in range(8)))


async def _watch_until(server: LocalServer, seen: dict[str, int], stop: asyncio.Event, start_rv: str) -> str:
    """Records ADDED configmaps; returns the last resourceVersion seen when the stream ends."""
    last = start_rv
    async with _client(server) as client:
        try:
            async for event in client.watch(CONFIGMAPS, "default", resource_version=start_rv):
                obj = event["object"]
                last = obj["metadata"]["resourceVersion"]
                if event["type"] == "ADDED":
                    seen[obj["metadata"]["name"]] = int(last)
                if stop.is_set():
                    break
        except Exception:
            pass
    return last


def test_acknowledged_writes_survive_kill_9_and_watch_resumes_without_gap(tmp_path):
    server = LocalServer(tmp_path / "data", extra_args=["--disable-agent"]).start()
    try:
        acknowledged: dict[str, int] = {}
        seen_before: dict[str, int] = {}

        async def first_run() -> str:
            async with _client(server) as client:
                start = (await client.list(CONFIGMAPS, "default"))["metadata"]["resourceVersion"]
            watcher = asyncio.create_task(_watch_until(server, seen_before, asyncio.Event(), start))
            await _write_until_killed(server, acknowledged, kill_after=300)
            return await asyncio.wait_for(watcher, 30)

        last_seen = asyncio.run(first_run())
        assert server.process.wait(10) == -9
        assert len(acknowledged) >= 300

        server.process = None
        server.start()

        async def after_restart() -> tuple[dict[str, int], dict[str, int]]:
            async with _client(server) as client:
                listed = await client.list(CONFIGMAPS, "default")
                stored = {item["metadata"]["name"]: int(item["metadata"]["resourceVersion"]) for item in listed["items"]}
                head = int(listed["metadata"]["resourceVersion"])
            resumed: dict[str, int] = {}

            async def collect() -> None:
                async with _client(server) as client:
                    async for event in client.watch(CONFIGMAPS, "default", resource_version=last_seen, timeout_seconds=10):
                        obj = event["object"]
                        if event["type"] == "ADDED":
                            resumed[obj["metadata"]["name"]] = int(obj["metadata"]["resourceVersion"])
                        if int(obj["metadata"]["resourceVersion"]) >= head:
                            return

            if head > int(last_seen):
                await asyncio.wait_for(collect(), 20)
            return stored, resumed

        stored, resumed = asyncio.run(after_restart())
        missing = {name for name in acknowledged if name not in stored}
        assert not missing, f"acknowledged writes lost: {sorted(missing)[:5]}"
        for name, revision in acknowledged.items():
            assert stored[name] == revision
        # Every write is seen exactly once across the first watch and the resumed one.
        assert not set(seen_before) & set(resumed)
        assert set(seen_before) | set(resumed) == set(stored)
    finally:
        server.stop()


def test_client_maps_status_reasons_to_error_types(tmp_path):
    server = LocalServer(tmp_path / "data", extra_args=["--disable-agent"]).start()
    try:
        async def run() -> None:
            async with _client(server) as client:
                try:
                    await client.get(CONFIGMAPS, "absent", "default")
                except errors.NotFound as exc:
                    assert exc.message == 'configmaps "absent" not found'
                else:
                    raise AssertionError("expected NotFound")
                body = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "twice", "namespace": "default"}}
                await client.create(CONFIGMAPS, body)
                try:
                    await client.create(CONFIGMAPS, body)
                except errors.AlreadyExists as exc:
                    assert exc.message == 'configmaps "twice" already exists'
                else:
                    raise AssertionError("expected AlreadyExists")

        asyncio.run(run())
    finally:
        server.stop()
