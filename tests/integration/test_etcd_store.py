"""The etcd store when etcd fails, and the API server on etcd.

- Three members on loopback: one killed, writes go on (the client moves to another
  endpoint; a write caught in the leader election is retried by the store, within its
  deadline) and a watch resumes on the survivors without losing or repeating an event; two
  killed, writes fail with StoreUnavailable / StoreTimeout (503 / 504) within the deadline
  rather than hang, and succeed again once a member returns.
- A write whose answer is lost after it committed is retried and recognised as ours (the
  guard fails, the key holds our value), never answered AlreadyExists or Conflict.
- `pyk8s server --datastore etcd://... --disable-agent`: kubectl create / get / list / watch,
  objects under upstream's keys that etcdctl shows (`/registry/configmaps/<ns>/<name>`,
  `/registry/services/specs/...`, `/registry/minions/...`), an object an older pyk8s stored
  under `/registry/core/...` moved to its key at start, and the server restarted on the same
  etcd keeps them.
"""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import time

import pytest

from conftest import KUBECTL, Kubectl
from etcdcluster import EtcdCluster
from pyk8s.cluster.localcluster import LocalServer
from pyk8s.storage import KeyExists, RevisionMismatch, StoreTimeout, StoreUnavailable
from pyk8s.storage.etcd import EtcdStore, parse_endpoints


@pytest.fixture
def three_members(tmp_path):
    cluster = EtcdCluster(tmp_path / "etcd", members=3).start()
    yield cluster
    cluster.stop()


def test_endpoints_parse_schemes_and_default_port():
    endpoints = parse_endpoints("etcd://a:1,b,https://c:3")
    assert [(e.host, e.port, e.tls) for e in endpoints] == [("a", 1, False), ("b", 2379, False), ("c", 3, True)]
    with pytest.raises(ValueError):
        parse_endpoints("mysql://x")


class AnswerLost:
    """Wraps the store's client: the first Txn of each `lose` count reaches etcd (and
    commits) but its answer is lost, as when the member dies before replying."""

    def __init__(self, store: EtcdStore, lose: int = 1):
        self.store, self.lose, self.calls = store, lose, 0
        self._call = store.client.call
        store.client.call = self.call

    async def call(self, method, request, *, timeout=None):
        self.calls += 1
        answer = await self._call(method, request, timeout=timeout)
        if method.endswith("/Txn") and self.lose > 0:
            self.lose -= 1
            raise StoreTimeout("answer lost")
        return answer


def test_a_write_whose_answer_was_lost_is_read_back_not_refused(tmp_path):
    cluster = EtcdCluster(tmp_path / "etcd", members=1).start()

    async def scenario():
        store = EtcdStore(cluster.endpoints, compact_interval=0, request_timeout=5)
        await store.start()
        try:
            lost = AnswerLost(store)
            created = await store.create("/r/a", b"v1")  # retried: the guard fails, the value is ours
            assert lost.calls == 2 and created.value == b"v1"
            assert created == await store.get("/r/a")
            lost.lose = 1
            updated = await store.update("/r/a", b"v2", created.mod_revision)
            assert updated == await store.get("/r/a") and updated.create_revision == created.create_revision
            lost.lose = 1
            deleted = await store.delete("/r/a", updated.mod_revision)
            assert (deleted.key, deleted.value) == ("/r/a", b"v2") and await store.get("/r/a") is None
            # Someone else's object is still refused, even on a retry.
            await store.create("/r/b", b"theirs")
            lost.lose = 1
            with pytest.raises(KeyExists):
                await store.create("/r/b", b"mine")
            current = await store.get("/r/b")
            lost.lose = 1
            with pytest.raises(RevisionMismatch):
                await store.update("/r/b", b"mine", current.mod_revision - 1)
        finally:
            await store.close()

    try:
        asyncio.run(scenario())
    finally:
        cluster.stop()


def test_one_of_three_members_down_writes_and_watches_go_on(three_members):
    async def scenario():
        store = EtcdStore(three_members.endpoints, compact_interval=0, request_timeout=5)
        await store.start()
        try:
            watch = store.watch("/r/", 0)
            written = [await store.create(f"/r/before-{i}", b"x") for i in range(20)]
            # Kill the member the client talks to (the watch stream is on it too).
            three_members.kill_member(three_members.members[store.client._current])
            started = time.monotonic()
            # Writes sent while the survivors elect a leader: the store retries them within
            # its deadline (a dropped proposal, "leader changed"), no client retry needed.
            written += [await store.create(f"/r/after-{i}", b"x") for i in range(20)]
            failover_seconds = time.monotonic() - started
            updated = await store.update("/r/before-0", b"y", written[0].mod_revision)
            written.append(updated)
            events = [await asyncio.wait_for(watch.__anext__(), 10) for _ in range(len(written))]
            assert [e.kv.mod_revision for e in events] == [kv.mod_revision for kv in written]
            assert events[-1].prev.value == b"x"
            assert (await store.list("/r/")).items.__len__() == 40
            watch.close()
            return failover_seconds
        finally:
            await store.close()

    failover_seconds = asyncio.run(scenario())
    # an election (2 s here) plus at most one timed-out write (5 s)
    assert failover_seconds < 10


def _leader_index(cluster: EtcdCluster) -> int:
    statuses = json.loads(subprocess.run(
        ["etcdctl", "--endpoints", ",".join(member.client_url for member in cluster.members), "endpoint", "status",
         "-w", "json"], check=True, capture_output=True, text=True,
        env={"ETCDCTL_API": "3", "PATH": "/usr/bin:/bin"}).stdout)
    for index, status in enumerate(statuses):
        if status["Status"]["header"]["member_id"] == status["Status"]["leader"]:
            return index
    raise AssertionError(f"no leader in {statuses}")


def test_reads_and_writes_move_off_a_member_that_stops_answering(three_members):
    """A member that keeps its connections but answers nothing (frozen with SIGSTOP here; a
    partitioned member holding linearizable reads, or one whose leader just died, looks the
    same from the client): a read or write sent to it is sent to the next member after a
    third of the deadline and answered within the deadline, not failed with 504."""
    async def scenario():
        store = EtcdStore(three_members.endpoints, compact_interval=0, request_timeout=5)
        await store.start()
        frozen = None
        try:
            for i in range(10):
                await store.create(f"/r/k-{i}", b"x")
            leader = _leader_index(three_members)
            follower = (leader + 1) % 3
            store.client._current = follower
            assert (await store.get("/r/k-0")).value == b"x"  # connected to the follower
            frozen = three_members.members[follower].process
            frozen.send_signal(signal.SIGSTOP)
            timings = []
            for operation in (lambda: store.get("/r/k-3"), lambda: store.list("/r/"),
                              lambda: store.create("/r/while-frozen", b"y")):
                began = time.monotonic()
                result = await operation()
                timings.append(time.monotonic() - began)
                assert result is not None
            assert (await store.get("/r/while-frozen")).value == b"y"
            assert len((await store.list("/r/")).items) == 11
            return timings
        finally:
            if frozen is not None:
                frozen.send_signal(signal.SIGCONT)
            await store.close()

    timings = asyncio.run(scenario())
    # The first call waits out one attempt (a third of 5 s) and moves on; the others start on
    # the member it moved to.
    assert 1.0 < timings[0] < 4 and max(timings[1:]) < 1.0, timings


def test_two_of_three_members_down_writes_fail_clearly_then_recover(three_members):
    async def scenario():
        store = EtcdStore(three_members.endpoints, compact_interval=0, request_timeout=2)
        await store.start()
        try:
            await store.create("/r/a", b"1")
            first, second, third = three_members.members
            three_members.kill_member(first)
            three_members.kill_member(second)
            for attempt in range(2):
                started = time.monotonic()
                with pytest.raises((StoreUnavailable, StoreTimeout)) as raised:
                    await store.create(f"/r/no-quorum-{attempt}", b"x")
                elapsed = time.monotonic() - started
                assert elapsed < 4, elapsed  # the 2 s deadline, not a hang
                assert raised.value.code in (503, 504)
            # A member returns: quorum again, writes succeed.
            three_members.start_member(second)
            deadline = time.monotonic() + 20
            while True:
                try:
                    kv = await store.create("/r/after-recovery", b"x")
                    break
                except (StoreUnavailable, StoreTimeout):
                    assert time.monotonic() < deadline, "no recovery after a member returned"
                    await asyncio.sleep(0.1)
            assert (await store.get("/r/after-recovery")) == kv
            assert (await store.get("/r/a")).value == b"1"
        finally:
            await store.close()

    asyncio.run(scenario())


def _etcdctl(cluster: EtcdCluster, *args: str) -> str:
    return subprocess.run(["etcdctl", "--endpoints", cluster.members[0].client_url, *args], check=True,
                          capture_output=True, text=True, env={"ETCDCTL_API": "3", "PATH": "/usr/bin:/bin"}).stdout


LEGACY_CONFIGMAP = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {
    "name": "from-old-layout", "namespace": "default", "uid": "5e0b7a52-6a3e-4f8e-9d1c-0c2f3b1d4e55",
    "creationTimestamp": "2026-01-01T00:00:00Z"}, "data": {"kept": "yes"}}


def test_api_server_on_etcd_serves_kubectl_create_get_list_watch(tmp_path):
    cluster = EtcdCluster(tmp_path / "etcd", members=1).start()
    server = LocalServer(tmp_path / "server", extra_args=["--disable-agent", "--datastore", cluster.endpoints])
    try:
        # What an older pyk8s left: an object under /registry/core/<plural>/...
        _etcdctl(cluster, "put", "/registry/core/configmaps/default/from-old-layout", json.dumps(LEGACY_CONFIGMAP))
        server.start(timeout=60)
        kubectl = Kubectl(server, tmp_path / "kubectl-cache")
        watcher = subprocess.Popen(
            [KUBECTL, "--kubeconfig", str(server.kubeconfig), "--cache-dir", str(tmp_path / "kubectl-cache-2"),
             "get", "configmaps", "--watch", "--output-watch-events", "-o", "json"],
            stdout=subprocess.PIPE, text=True)
        try:
            kubectl("create", "configmap", "on-etcd", "--from-literal=k=v")
            got = json.loads(kubectl("get", "configmap", "on-etcd", "-o", "json"))
            assert got["data"] == {"k": "v"}
            listed = json.loads(kubectl("get", "configmaps", "-o", "json"))
            assert "on-etcd" in [item["metadata"]["name"] for item in listed["items"]]
            # Upstream's keys, as etcdctl shows them; resourceVersion is the key's mod_revision.
            keys = set(_etcdctl(cluster, "get", "--prefix", "--keys-only", "/registry/").split())
            assert {"/registry/configmaps/default/on-etcd", "/registry/namespaces/default",
                    "/registry/services/specs/default/kubernetes", "/registry/services/endpoints/default/kubernetes",
                    "/registry/serviceaccounts/default/default", "/registry/configmaps/default/from-old-layout",
                    } <= keys, sorted(keys)
            assert not [key for key in keys if key.startswith("/registry/core/")]
            assert _etcdctl(cluster, "get", "--prefix", "--keys-only", "/registry/configmaps/default/").split() == \
                sorted(name for name in keys if name.startswith("/registry/configmaps/default/"))
            key = "/registry/configmaps/default/on-etcd"
            revision = json.loads(_etcdctl(cluster, "get", key, "-w", "json"))["kvs"][0]["mod_revision"]
            assert got["metadata"]["resourceVersion"] == str(revision)
            moved = json.loads(kubectl("get", "configmap", "from-old-layout", "-o", "json"))
            assert (moved["metadata"]["uid"], moved["data"]) == (LEGACY_CONFIGMAP["metadata"]["uid"], {"kept": "yes"})
            # A node (cluster-scoped) under upstream's historical name for nodes.
            kubectl("create", "-f", "-", input=json.dumps({"apiVersion": "v1", "kind": "Node",
                                                          "metadata": {"name": "layout-node"}}))
            assert _etcdctl(cluster, "get", "--prefix", "--keys-only", "/registry/minions/").split() == \
                ["/registry/minions/layout-node"]
            # the watch sees the create (after the initial list's ADDED events)
            deadline = time.monotonic() + 20
            decoder, buffer = json.JSONDecoder(), ""
            seen = False
            while not seen and time.monotonic() < deadline:
                buffer += watcher.stdout.readline()
                while buffer.strip():
                    try:
                        event, end = decoder.raw_decode(buffer.lstrip())
                    except ValueError:
                        break
                    buffer = buffer.lstrip()[end:]
                    seen = seen or event["object"]["metadata"]["name"] == "on-etcd"
            assert seen
        finally:
            watcher.kill()
            watcher.wait()
        kubectl("delete", "configmap", "on-etcd")
        kubectl("create", "configmap", "kept", "--from-literal=a=b")
        server.stop()
        server.start(timeout=60)  # a new server on the same etcd keeps every object
        assert json.loads(kubectl("get", "configmap", "kept", "-o", "json"))["data"] == {"a": "b"}
        assert kubectl("get", "configmap", "on-etcd", check=False, **{}) == ""
    finally:
        server.stop()
        cluster.stop()
