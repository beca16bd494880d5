"""Pure parts of the kubelet's restart decisions: the container spec hash and the crash
back-off rebuilt from what the runtime remembers."""

from __future__ import annotations

import asyncio
import time

from pyk8s.kubelet.pods import CRASH_BACKOFF, PodManager, PodRecord, container_hash


def test_container_hash_changes_with_the_image_only():
    spec = {"name": "main", "image": "busybox:1.35", "command": ["sleep", "1"]}
    assert container_hash(spec) == container_hash({**spec, "command": ["sleep", "2"]})
    assert container_hash(spec) != container_hash({**spec, "image": "busybox:1.36"})
    assert container_hash(spec) != container_hash({**spec, "name": "other"})
    assert len(container_hash(spec)) <= 8 and int(container_hash(spec), 16) >= 0


def _manager(tmp_path) -> PodManager:
    return PodManager(None, None, node_name="n", node_ip="127.0.0.1", data_dir=tmp_path, log_root=tmp_path / "logs")


POD = {"metadata": {"name": "p", "namespace": "default", "uid": "u1"}, "spec": {"containers": [{"name": "main"}]}}


def test_crash_back_off_is_rebuilt_from_the_latest_containers_annotation(tmp_path):
    async def decide():
        manager = _manager(tmp_path)
        record = PodRecord("u1")
        now = time.time()
        latest = {"annotations": {CRASH_BACKOFF: "20"}, "created_at": int((now - 5) * 1e9),
                  "finished_at": int((now - 2) * 1e9)}
        allowed = manager._may_restart(record, POD, {"name": "main"}, latest)
        return allowed, record.waiting.get("main", {})
    allowed, waiting = asyncio.run(decide())
    assert allowed is False
    assert waiting["reason"] == "CrashLoopBackOff"
    assert waiting["message"].startswith("back-off 20s restarting failed container=main")


def test_first_failure_without_a_recorded_back_off_restarts_at_once(tmp_path):
    async def decide():
        manager = _manager(tmp_path)
        latest = {"annotations": {}, "created_at": int((time.time() - 5) * 1e9), "finished_at": int(time.time() * 1e9)}
        allowed = manager._may_restart(PodRecord("u1"), POD, {"name": "main"}, latest)
        return allowed, manager.crash_backoff.delay("u1/main")
    allowed, next_delay = asyncio.run(decide())
    assert allowed is True and next_delay == 10.0


def test_a_back_off_older_than_twice_the_maximum_is_forgotten(tmp_path):
    async def decide():
        manager = _manager(tmp_path)
        now = time.time()
        latest = {"annotations": {CRASH_BACKOFF: "300"}, "created_at": int((now - 700) * 1e9),
                  "finished_at": int((now - 1) * 1e9)}
        return manager._may_restart(PodRecord("u1"), POD, {"name": "main"}, latest)
    assert asyncio.run(decide()) is True
