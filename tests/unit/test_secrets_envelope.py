"""Encryption at rest (storage/encryption.py): upstream's aescbc envelope, the key file, and
a TransformingStore over SQLite whose every way out is plain and every stored byte sealed —
including the registry's fast paths that hand out stored bytes."""

from __future__ import annotations

import asyncio
import base64
import sqlite3
import stat

import orjson
import pytest

from pyk8s.api.resources import lookup
from pyk8s.apiserver.registry import ListOptions, Registry
from pyk8s.storage.encryption import (AESCBC_PREFIX, AESCBCKey, DecryptionError, EncryptionConfig,
                                      TransformingStore)
from pyk8s.storage.interface import KeyExists, RevisionMismatch
from pyk8s.storage.sqlite import SQLiteStore

SECRETS = lookup("", "v1", "secrets")
CONFIGMAPS = lookup("", "v1", "configmaps")
KEY = "/registry/secrets/default/db"
PLAIN_VALUE = b'{"apiVersion":"v1","kind":"Secret","metadata":{"name":"db"},"data":{"p":"c3VwZXItc2VjcmV0LXZhbHVl"}}'


def test_aescbc_envelope_is_upstreams():
    key = AESCBCKey("key1", bytes(range(32)))
    sealed = key.encrypt(b"hello")
    assert sealed.startswith(b"k8s:enc:aescbc:v1:key1:")
    body = sealed[len(b"k8s:enc:aescbc:v1:key1:"):]
    assert len(body) == 16 + 16  # IV + one padded block
    assert key.decrypt(sealed) == b"hello"
    assert key.encrypt(b"hello") != sealed  # a fresh IV each time
    assert key.decrypt(key.encrypt(b"x" * 16)) == b"x" * 16  # a full block of padding


def test_config_reads_old_keys_plain_values_and_refuses_unknown_keys():
    old, new = AESCBCKey("old", b"o" * 32), AESCBCKey("new", b"n" * 32)
    config = EncryptionConfig([new, old])
    assert config.decrypt(old.encrypt(b"v")) == b"v"
    assert config.decrypt(b'{"plain":1}') == b'{"plain":1}'
    assert config.encrypt(b"v").startswith(AESCBC_PREFIX + b"new:")
    assert config.is_current(config.encrypt(b"v")) and not config.is_current(old.encrypt(b"v"))
    with pytest.raises(DecryptionError):
        EncryptionConfig([new]).decrypt(AESCBCKey("gone", b"g" * 32).encrypt(b"v"))
    with pytest.raises(DecryptionError):
        EncryptionConfig([AESCBCKey("new", b"x" * 32)]).decrypt(new.encrypt(b"v"))


def test_key_file_is_upstreams_shape_and_private(tmp_path):
    path = tmp_path / "cred" / "encryption-config.json"
    config = EncryptionConfig([EncryptionConfig.new_key("aescbckey")])
    config.save(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    document = orjson.loads(path.read_bytes())
    assert document["kind"] == "EncryptionConfiguration"
    assert document["apiVersion"] == "apiserver.config.k8s.io/v1"
    provider = document["resources"][0]
    assert provider["resources"] == ["secrets"]
    assert provider["providers"][0]["aescbc"]["keys"][0]["name"] == "aescbckey"
    assert len(base64.b64decode(provider["providers"][0]["aescbc"]["keys"][0]["secret"])) == 32
    assert provider["providers"][1] == {"identity": {}}
    loaded = EncryptionConfig.load(path)
    assert loaded.primary.secret == config.primary.secret
    rotated = loaded.with_new_primary(EncryptionConfig.new_key("second"))
    assert [k.name for k in rotated.keys] == ["second", "aescbckey"]


def run(tmp_path, scenario, config=None):
    async def main():
        inner = SQLiteStore(str(tmp_path / "state.db"), compact_interval=0)
        store = TransformingStore(inner, config or EncryptionConfig([AESCBCKey("k1", b"1" * 32)]))
        await store.start()
        try:
            return await scenario(store)
        finally:
            await store.close()
    return asyncio.run(main())


def stored_rows(tmp_path) -> dict[str, bytes]:
    with sqlite3.connect(tmp_path / "state.db") as connection:
        return {key: bytes(value) for key, value in connection.execute("SELECT key, value FROM current")}


def test_every_way_out_is_plain_and_the_file_holds_no_plain_value(tmp_path):
    async def scenario(store):
        watch = store.watch("/registry/secrets/", 0)
        created = await store.create(KEY, PLAIN_VALUE)
        assert created.value == PLAIN_VALUE
        await store.create("/registry/configmaps/default/cm", b'{"data":{"k":"visible"}}')
        assert (await store.get(KEY)).value == PLAIN_VALUE
        assert [kv.value for kv in (await store.list("/registry/secrets/")).items] == [PLAIN_VALUE]
        assert [kv.value for kv in (await store.list("/registry/")).items][1] == PLAIN_VALUE
        with pytest.raises(KeyExists) as exists:
            await store.create(KEY, b"{}")
        assert exists.value.kv.value == PLAIN_VALUE
        with pytest.raises(RevisionMismatch) as mismatch:
            await store.update(KEY, b"{}", 1)
        assert mismatch.value.kv.value == PLAIN_VALUE
        updated_value = PLAIN_VALUE.replace(b"db", b"db2")
        updated = await store.update(KEY, updated_value, created.mod_revision)
        assert updated.value == updated_value
        assert (await store.get(KEY, created.mod_revision)).value == PLAIN_VALUE  # history, decrypted
        events = await watch.next_batch(1.0)
        assert [(e.type, e.kv.value) for e in events] == [("PUT", PLAIN_VALUE), ("PUT", updated_value)]
        assert events[1].prev.value == PLAIN_VALUE
        deleted = await store.delete(KEY)
        assert deleted.value == updated_value
        (event,) = await watch.next_batch(1.0)
        assert event.type == "DELETE" and event.kv.value == updated_value
        replay = store.watch("/registry/secrets/", 1)
        assert [e.kv.value for e in await replay.next_batch(1.0)] == [PLAIN_VALUE, updated_value, updated_value]
        await store.create(KEY, PLAIN_VALUE)
    run(tmp_path, scenario)
    rows = stored_rows(tmp_path)
    assert rows[KEY].startswith(b"k8s:enc:aescbc:v1:k1:")
    assert rows["/registry/configmaps/default/cm"] == b'{"data":{"k":"visible"}}'
    database = b"".join((tmp_path / name).read_bytes() for name in ("state.db", "state.db-wal")
                        if (tmp_path / name).exists())
    assert b"c3VwZXItc2VjcmV0LXZhbHVl" not in database and b'"kind":"Secret"' not in database


def test_rewrite_stale_moves_every_value_to_the_first_key(tmp_path):
    first, second = AESCBCKey("first", b"1" * 32), AESCBCKey("second", b"2" * 32)

    async def plain_then_first(store):
        # One value written before encryption (plain), the others with the first key.
        await store.inner.create("/registry/secrets/default/plain", PLAIN_VALUE)
        for index in range(3):
            await store.create(f"/registry/secrets/default/s{index}", PLAIN_VALUE)
        return await store.rewrite_stale(page=2)
    assert run(tmp_path, plain_then_first, EncryptionConfig([first])) == 1

    async def rotate(store):
        count = await store.rewrite_stale(page=2)
        assert all(kv.value == PLAIN_VALUE for kv in (await store.list("/registry/secrets/")).items)
        return count
    assert run(tmp_path, rotate, EncryptionConfig([second, first])) == 4
    assert all(value.startswith(b"k8s:enc:aescbc:v1:second:") for key, value in stored_rows(tmp_path).items()
               if key.startswith("/registry/secrets/"))


def test_registry_answers_equal_a_plain_registry_on_every_fast_path(tmp_path):
    """get, get_raw (stored bytes), list and raw list, watch: the same through an encrypted
    store as through a plain one, for Secrets and for what shares no prefix with them."""
    async def answers(store) -> list:
        registry = Registry(store)
        await registry.create(lookup("", "v1", "namespaces"), None, {"apiVersion": "v1", "kind": "Namespace",
                                                                     "metadata": {"name": "default"}})
        watch = store.watch("/registry/secrets/", 0)
        secret = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "db", "labels": {"a": "b"}},
                  "type": "Opaque", "data": {"password": base64.b64encode(b"super-secret-value").decode()}}
        await registry.create(SECRETS, "default", secret, field_manager="kubectl")
        await registry.create(CONFIGMAPS, "default", {"apiVersion": "v1", "kind": "ConfigMap",
                                                      "metadata": {"name": "cm"}, "data": {"k": "v"}})
        await registry.modify(SECRETS, "default", "db", lambda obj: {**obj, "stringData": {"more": "x"}},
                               field_manager="kubectl")
        got = await registry.get(SECRETS, "default", "db")
        raw = await registry.get_raw(SECRETS, "default", "db")
        listed, *_ = await registry.list(SECRETS, "default", ListOptions())
        raw_listed, *_ = await registry.list(SECRETS, None, ListOptions(), raw=True)
        events = await watch.next_batch(1.0)
        normalise = lambda value: orjson.loads(value) if isinstance(value, bytes) else value  # noqa: E731
        strip = lambda obj: {**obj, "metadata": {k: v for k, v in obj["metadata"].items()  # noqa: E731
                                                 if k not in ("uid", "creationTimestamp", "managedFields")}}
        return [strip(got), strip(normalise(raw)), [strip(o) for o in listed],
                [strip(normalise(o)) for o in raw_listed],
                [(e.type, strip(orjson.loads(e.kv.value))) for e in events]]

    async def plain():
        store = SQLiteStore(str(tmp_path / "plain.db"), compact_interval=0)
        await store.start()
        try:
            return await answers(store)
        finally:
            await store.close()

    async def encrypted():
        store = TransformingStore(SQLiteStore(str(tmp_path / "sealed.db"), compact_interval=0),
                                  EncryptionConfig([AESCBCKey("k", b"k" * 32)]))
        await store.start()
        try:
            return await answers(store)
        finally:
            await store.close()

    plain_answers, sealed_answers = asyncio.run(plain()), asyncio.run(encrypted())
    assert sealed_answers == plain_answers
    assert sealed_answers[0]["data"]["more"] == base64.b64encode(b"x").decode()
