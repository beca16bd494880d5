"""Encryption at rest: upstream's value transformers, as a Store that wraps another.

`TransformingStore(inner, config, prefixes)` encrypts the values of keys under `prefixes`
(the Secrets') on their way into `inner` and decrypts them on every way out: get, list,
watch events (value and previous value), and the values carried by KeyExists /
RevisionMismatch and by create/update/delete results. Everything above the store — the
registry's fast paths that hand out stored bytes (get_raw, raw lists, watch RawObject,
decode_without_managed_fields) — therefore only ever sees plain JSON: an encrypted value
cannot be served raw, because no caller holds one. A cluster without encryption does not
wrap its store at all (no cost).

Envelope, as upstream's aescbc provider writes it: `k8s:enc:aescbc:v1:<key name>:` + a
random 16-byte IV + AES-256-CBC ciphertext of the value with PKCS#7 padding. A value
without the `k8s:enc:` prefix is read as plain (upstream's identity provider), so Secrets
written before encryption was turned on stay readable until they are rewritten.

Keys live in an EncryptionConfiguration (upstream's apiserver.config.k8s.io/v1 shape, as
JSON; k3s keeps the same file) with mode 0600: the first aescbc key encrypts, every key
decrypts. `rewrite_stale()` rewrites every value under the prefixes not written with the
first key (a compare-and-swap write each; watchers see MODIFIED events, as after upstream's
`kubectl replace` rewrite) — what key rotation needs, and what enabling encryption on a
cluster with plain Secrets needs.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import os
import secrets as random_source
import time
from pathlib import Path
from typing import AsyncIterator

from cryptography.hazmat.primitives import padding
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from pyk8s.api.resources import lookup
from pyk8s.storage.interface import (Event, KeyExists, KeyValue, ListResult, RevisionMismatch, Store, StoreError,
                                     Watch)

log = logging.getLogger("pyk8s.storage.encryption")

ENVELOPE = b"k8s:enc:"
AESCBC_PREFIX = b"k8s:enc:aescbc:v1:"
SECRETS_PREFIX = lookup("", "v1", "secrets").storage_prefix()  # /registry/secrets/
_BLOCK = 16


class DecryptionError(StoreError):
    """A value under an encrypted prefix that no configured key can read."""


class AESCBCKey:
    def __init__(self, name: str, secret: bytes):
        if len(secret) not in (16, 24, 32):
            raise ValueError(f"aescbc key {name!r} must be 16, 24 or 32 bytes, not {len(secret)}")
        self.name = name
        self.secret = secret
        self.prefix = AESCBC_PREFIX + name.encode() + b":"

    def encrypt(self, plain: bytes) -> bytes:
        iv = random_source.token_bytes(_BLOCK)
        padder = padding.PKCS7(128).padder()
        padded = padder.update(plain) + padder.finalize()
        encryptor = Cipher(algorithms.AES(self.secret), modes.CBC(iv)).encryptor()
        return self.prefix + iv + encryptor.update(padded) + encryptor.finalize()

    def decrypt(self, data: bytes) -> bytes:
        body = data[len(self.prefix):]
        if len(body) < 2 * _BLOCK or len(body) % _BLOCK:
            raise DecryptionError("the stored data is not a whole number of AES blocks")
        decryptor = Cipher(algorithms.AES(self.secret), modes.CBC(body[:_BLOCK])).decryptor()
        padded = decryptor.update(body[_BLOCK:]) + decryptor.finalize()
        unpadder = padding.PKCS7(128).unpadder()
        try:
            return unpadder.update(padded) + unpadder.finalize()
        except ValueError:
            raise DecryptionError(f"invalid padding after decrypting with key {self.name!r}") from None


class EncryptionConfig:
    """The keys of an EncryptionConfiguration file, the first one writing."""

    def __init__(self, keys: list[AESCBCKey]):
        if not keys:
            raise ValueError("an encryption configuration needs at least one aescbc key")
        self.keys = keys

    @property
    def primary(self) -> AESCBCKey:
        return self.keys[0]

    def encrypt(self, plain: bytes) -> bytes:
        return self.primary.encrypt(plain)

    def decrypt(self, data: bytes) -> bytes:
        if not data.startswith(ENVELOPE):
            return data  # written before encryption was enabled: upstream's identity provider
        for key in self.keys:
            if data.startswith(key.prefix):
                return key.decrypt(data)
        raise DecryptionError("no key of the encryption configuration matches the stored data's prefix "
                              f"{data[:64].split(b':')[:5]!r}")

    def is_current(self, data: bytes) -> bool:
        return data.startswith(self.primary.prefix)

    # -- the file ---------------------------------------------------------------------------

    @classmethod
    def load(cls, path: Path) -> "EncryptionConfig":
        document = json.loads(Path(path).read_text())
        keys = []
        for entry in document.get("resources") or []:
            for provider in entry.get("providers") or []:
                for key in (provider.get("aescbc") or {}).get("keys") or []:
                    keys.append(AESCBCKey(key["name"], base64.b64decode(key["secret"])))
        return cls(keys)

    def document(self) -> dict:
        return {"kind": "EncryptionConfiguration", "apiVersion": "apiserver.config.k8s.io/v1",
                "resources": [{"resources": ["secrets"], "providers": [
                    {"aescbc": {"keys": [{"name": key.name, "secret": base64.b64encode(key.secret).decode()}
                                         for key in self.keys]}},
                    {"identity": {}}]}]}

    def save(self, path: Path) -> None:
        """Written atomically with mode 0600 (the file holds the keys)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        temporary = path.with_name(path.name + ".tmp")
        descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(descriptor, "w") as file:
            json.dump(self.document(), file, indent=2)
            file.write("\n")
            file.flush()
            os.fsync(file.fileno())
        os.chmod(temporary, 0o600)
        os.replace(temporary, path)

    @staticmethod
    def new_key(name: str = "") -> AESCBCKey:
        return AESCBCKey(name or time.strftime("aescbckey-%Y%m%dT%H%M%SZ", time.gmtime()),
                         random_source.token_bytes(32))

    def with_new_primary(self, key: AESCBCKey) -> "EncryptionConfig":
        return EncryptionConfig([key, *[k for k in self.keys if k.name != key.name]])


class TransformingStore(Store):
    """`inner` with values under `prefixes` encrypted at rest (module docstring). With
    `config_path`, the key file is re-read when it changes (checked every `reload_interval`
    seconds) and values not written with the new first key are rewritten."""

    def __init__(self, inner: Store, config: EncryptionConfig, prefixes: tuple[str, ...] = (SECRETS_PREFIX,),
                 *, config_path: Path | None = None, reload_interval: float = 1.0):
        self.inner = inner
        self.config = config
        self.prefixes = prefixes
        self.config_path = Path(config_path) if config_path else None
        self.reload_interval = reload_interval
        self._config_mtime = self._mtime()
        self._tasks: list[asyncio.Task] = []
        self.rewritten = 0  # values rewritten with a newer key so far (tests, logs)

    def _mtime(self) -> float:
        try:
            return self.config_path.stat().st_mtime if self.config_path else 0.0
        except OSError:
            return 0.0

    # -- value transformation ---------------------------------------------------------------

    def _covered(self, key: str) -> bool:
        return key.startswith(self.prefixes)

    def _out(self, kv: KeyValue | None) -> KeyValue | None:
        if kv is None or not self._covered(kv.key):
            return kv
        return KeyValue(kv.key, self.config.decrypt(kv.value), kv.create_revision, kv.mod_revision)

    def _event_out(self, event: Event) -> Event:
        if not self._covered(event.kv.key):
            return event
        return Event(event.type, self._out(event.kv), self._out(event.prev))

    def _in(self, key: str, value: bytes) -> bytes:
        return self.config.encrypt(value) if self._covered(key) else value

    def _plain_result(self, kv: KeyValue, value: bytes) -> KeyValue:
        return KeyValue(kv.key, value, kv.create_revision, kv.mod_revision) if self._covered(kv.key) else kv

    # -- the Store interface ----------------------------------------------------------------

    async def start(self) -> None:
        await self.inner.start()
        await self.begin()

    async def begin(self) -> None:
        """Start the key-file watcher and the rewrite of stale values over a started inner store."""
        self._tasks.append(asyncio.create_task(self._rewrite_logged(), name="encryption-rewrite"))
        if self.config_path is not None:
            self._tasks.append(asyncio.create_task(self._watch_config(), name="encryption-config"))

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []
        await self.inner.close()

    @property
    def revision(self) -> int:
        return self.inner.revision

    @property
    def compacted_revision(self) -> int:
        return self.inner.compacted_revision

    async def create(self, key: str, value: bytes) -> KeyValue:
        try:
            return self._plain_result(await self.inner.create(key, self._in(key, value)), value)
        except KeyExists as exists:
            raise KeyExists(self._out(exists.kv)) from None

    async def get(self, key: str, revision: int = 0) -> KeyValue | None:
        return self._out(await self.inner.get(key, revision))

    async def list(self, prefix: str, *, revision: int = 0, start_after: str = "", limit: int = 0) -> ListResult:
        result = await self.inner.list(prefix, revision=revision, start_after=start_after, limit=limit)
        if not (prefix.startswith(self.prefixes) or any(p.startswith(prefix) for p in self.prefixes)):
            return result
        return ListResult([self._out(kv) for kv in result.items], result.revision, result.more)

    async def count(self, prefix: str) -> int:
        return await self.inner.count(prefix)

    async def update(self, key: str, value: bytes, expected_revision: int) -> KeyValue:
        try:
            return self._plain_result(await self.inner.update(key, self._in(key, value), expected_revision), value)
        except RevisionMismatch as mismatch:
            raise RevisionMismatch(self._out(mismatch.kv)) from None

    async def delete(self, key: str, expected_revision: int = 0) -> KeyValue:
        try:
            return self._out(await self.inner.delete(key, expected_revision))
        except RevisionMismatch as mismatch:
            raise RevisionMismatch(self._out(mismatch.kv)) from None

    def watch(self, prefix: str, from_revision: int) -> Watch:
        inner = self.inner.watch(prefix, from_revision)
        if not (prefix.startswith(self.prefixes) or any(p.startswith(prefix) for p in self.prefixes)):
            return inner
        return _DecryptingWatch(inner, self)

    async def compact(self, revision: int) -> None:
        await self.inner.compact(revision)

    def keep_current_in_memory(self, prefix: str) -> None:
        self.inner.keep_current_in_memory(prefix)

    # -- key rotation -----------------------------------------------------------------------

    async def rewrite_stale(self, page: int = 500) -> int:
        """Rewrite every value under the prefixes not written with the first key; returns how
        many were rewritten. A value changed meanwhile is skipped: its writer used the
        first key already."""
        rewritten = 0
        for prefix in self.prefixes:
            start_after = ""
            while True:
                result = await self.inner.list(prefix, start_after=start_after, limit=page)
                for kv in result.items:
                    if self.config.is_current(kv.value):
                        continue
                    try:
                        await self.inner.update(kv.key, self.config.encrypt(self.config.decrypt(kv.value)),
                                                kv.mod_revision)
                        rewritten += 1
                    except (RevisionMismatch, StoreError):
                        continue
                if not result.more or not result.items:
                    break
                start_after = result.items[-1].key
        self.rewritten += rewritten
        return rewritten

    async def _rewrite_logged(self) -> None:
        try:
            count = await self.rewrite_stale()
        except Exception:  # noqa: BLE001 - retried at the next key change or start
            log.exception("rewriting secrets with key %s failed", self.config.primary.name)
            return
        if count:
            log.info("secrets encryption: %d values rewritten with key %s", count, self.config.primary.name)

    async def _watch_config(self) -> None:
        while True:
            await asyncio.sleep(self.reload_interval)
            mtime = self._mtime()
            if mtime == self._config_mtime:
                continue
            self._config_mtime = mtime
            try:
                config = EncryptionConfig.load(self.config_path)
            except (OSError, ValueError, KeyError) as error:
                log.warning("encryption config %s not reloaded: %s", self.config_path, error)
                continue
            self.config = config
            log.info("encryption config reloaded: writing with key %s", config.primary.name)
            await self._rewrite_logged()


class _DecryptingWatch(Watch):
    def __init__(self, inner: Watch, store: TransformingStore):
        self.inner = inner
        self.store = store

    def __aiter__(self) -> AsyncIterator[Event]:
        return self

    async def __anext__(self) -> Event:
        return self.store._event_out(await self.inner.__anext__())

    def close(self) -> None:
        self.inner.close()

    async def next_batch(self, timeout: float, limit: int = 256) -> list[Event] | None:
        batch = await self.inner.next_batch(timeout, limit)
        if not batch:
            return batch
        return [self.store._event_out(event) for event in batch]

    def caught_up_revision(self) -> int | None:
        return self.inner.caught_up_revision()

    @property
    def end_reason(self):
        return getattr(self.inner, "end_reason", None)
