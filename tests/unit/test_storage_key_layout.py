"""Storage keys follow upstream's etcd layout, and the keys of pyk8s's first layout
(`/registry/<group or core>/<plural>/...`) move to it at start (storage/keylayout.py), on a
real SQLite store: values kept byte for byte, other keys untouched, nothing moved twice, and
no move while another server of the old layout is live."""

from __future__ import annotations

import asyncio
import datetime
import json

import pytest

from pyk8s.api.resources import RESOURCES, lookup
from pyk8s.storage.keylayout import live_legacy_servers, move_legacy_keys
from pyk8s.storage.sqlite import SQLiteStore

NOW = datetime.datetime(2026, 12, 7, 8, 0, 0, tzinfo=datetime.timezone.utc)


def test_keys_are_upstreams():
    key = lambda group, plural, namespace, name: lookup(group, "v1", plural).storage_key(namespace, name)  # noqa: E731
    assert key("", "pods", "default", "web-1") == "/registry/pods/default/web-1"
    assert key("apps", "deployments", "default", "web") == "/registry/deployments/default/web"
    assert key("", "namespaces", None, "default") == "/registry/namespaces/default"
    assert key("", "services", "default", "kubernetes") == "/registry/services/specs/default/kubernetes"
    assert key("", "endpoints", "default", "kubernetes") == "/registry/services/endpoints/default/kubernetes"
    assert key("", "nodes", None, "n1") == "/registry/minions/n1"
    assert key("", "replicationcontrollers", "a", "rc") == "/registry/controllers/a/rc"
    assert key("coordination.k8s.io", "leases", "kube-node-lease", "n1") == "/registry/leases/kube-node-lease/n1"
    assert lookup("", "v1", "pods").storage_prefix("default") == "/registry/pods/default/"


def test_no_kinds_prefix_holds_another_kinds_keys():
    prefixes = {(r.group, r.plural): r.storage_prefix() for r in RESOURCES}
    for (group, plural), prefix in prefixes.items():
        others = [other for key, other in prefixes.items() if key != (group, plural) and other.startswith(prefix)]
        # core and events.k8s.io Events are two kinds here, each under its own prefix
        assert not others, (group, plural, prefix, others)


def lease(name: str, renewed: datetime.datetime, duration: int = 15, identity: str = "kube-apiserver") -> bytes:
    return json.dumps({"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
                       "metadata": {"name": name, "namespace": "kube-system",
                                    "labels": {"apiserver.kubernetes.io/identity": identity}},
                       "spec": {"holderIdentity": name, "leaseDurationSeconds": duration,
                                "renewTime": renewed.strftime("%Y-%m-%dT%H:%M:%S.%fZ")}}).encode()


def test_live_legacy_servers_are_the_other_apiserver_leases_renewed_within_their_duration():
    leases = [lease("apiserver-mine", NOW), lease("apiserver-live", NOW - datetime.timedelta(seconds=14)),
              lease("apiserver-gone", NOW - datetime.timedelta(seconds=16)),
              lease("apiserver-long", NOW - datetime.timedelta(seconds=50), duration=60),
              lease("controller", NOW, identity="other"), b"not json"]
    assert live_legacy_servers(leases, "apiserver-mine", NOW) == ["apiserver-live", "apiserver-long"]
    assert live_legacy_servers(leases, "apiserver-mine", NOW + datetime.timedelta(seconds=61)) == []


@pytest.fixture
def store(tmp_path):
    return SQLiteStore(str(tmp_path / "state.db"))


LEGACY = {
    "/registry/core/configmaps/default/cm": b'{"kind":"ConfigMap","data":{"k":"v"}}',
    "/registry/core/nodes/n1": b'{"kind":"Node"}',
    "/registry/core/services/default/kubernetes": b'{"kind":"Service"}',
    "/registry/core/secrets/default/s": b"k8s:enc:aescbc:v1:key1:sealed-bytes",
    "/registry/apps/deployments/default/web": b'{"kind":"Deployment"}',
}
MOVED = {
    "/registry/configmaps/default/cm": LEGACY["/registry/core/configmaps/default/cm"],
    "/registry/minions/n1": LEGACY["/registry/core/nodes/n1"],
    "/registry/services/specs/default/kubernetes": LEGACY["/registry/core/services/default/kubernetes"],
    "/registry/secrets/default/s": LEGACY["/registry/core/secrets/default/s"],
    "/registry/deployments/default/web": LEGACY["/registry/apps/deployments/default/web"],
}
UNMOVED = {
    "/registry/ranges/serviceips/10.43.0.1": b'{"service":{}}',
    "/registry/rbac.authorization.k8s.io/roles/default/r": b'{"kind":"Role"}',
}


def test_old_keys_move_to_upstreams_with_their_values(store):
    async def scenario():
        await store.start()
        try:
            for key, value in {**LEGACY, **UNMOVED}.items():
                await store.create(key, value)
            assert await move_legacy_keys(store) == len(LEGACY)
            stored = {kv.key: kv.value for kv in (await store.list("/registry/")).items}
            assert stored == {**MOVED, **UNMOVED}
            revision = store.revision
            assert await move_legacy_keys(store) == 0
            assert store.revision == revision  # nothing written the second time
        finally:
            await store.close()
    asyncio.run(scenario())


def test_an_interrupted_move_finishes_without_a_duplicate(store):
    async def scenario():
        await store.start()
        try:
            await store.create("/registry/core/configmaps/default/cm", b"old")
            await store.create("/registry/configmaps/default/cm", b"old")  # copied, then the server died
            assert await move_legacy_keys(store) == 1
            assert [(kv.key, kv.value) for kv in (await store.list("/registry/")).items] == [
                ("/registry/configmaps/default/cm", b"old")]
        finally:
            await store.close()
    asyncio.run(scenario())


def test_no_move_while_another_server_of_the_old_layout_is_live(store):
    async def scenario():
        await store.start()
        try:
            now = datetime.datetime.now(datetime.timezone.utc)
            await store.create("/registry/core/configmaps/default/cm", b"v")
            await store.create("/registry/coordination.k8s.io/leases/kube-system/apiserver-mine", lease("apiserver-mine", now))
            other = await store.create("/registry/coordination.k8s.io/leases/kube-system/apiserver-other",
                                       lease("apiserver-other", now, duration=3600))
            mover = asyncio.create_task(move_legacy_keys(store, own_lease="apiserver-mine", poll_seconds=0.02))
            await asyncio.sleep(0.3)
            assert not mover.done()
            assert await store.get("/registry/core/configmaps/default/cm") is not None
            # The other server stopped: its lease runs out.
            await store.update(other.key, lease("apiserver-other", now - datetime.timedelta(hours=2), duration=3600),
                               other.mod_revision)
            assert await asyncio.wait_for(mover, 5) == 3  # the config map and the two leases
            assert (await store.get("/registry/configmaps/default/cm")).value == b"v"
        finally:
            await store.close()
    asyncio.run(scenario())
