"""Secrets encryption at rest for `pyk8s server --secrets-encryption` (k3s's flag) and
`pyk8s secrets-encrypt rotate|status`.

The key file is `<data-dir>/server/cred/encryption-config.json` (k3s's place and upstream's
EncryptionConfiguration shape), mode 0600. Once it exists the server keeps encrypting, with
or without the flag: dropping the flag must not leave Secrets unreadable.

Rotation adds a new first key to the file. A running server notices the change (it re-reads
the file when its mtime moves) and rewrites every Secret with the new key; `rotate` waits
until the database shows every Secret under the new key. With the server stopped, `rotate`
opens the database itself and rewrites them. Old keys stay in the file so that values
written with them (a backup restored later) remain readable.
"""

from __future__ import annotations

import asyncio
import fcntl
import os
import sqlite3
import time
from pathlib import Path

from pyk8s.storage.encryption import SECRETS_PREFIX, EncryptionConfig, TransformingStore
from pyk8s.storage.interface import Store
from pyk8s.storage.sqlite import SQLiteStore, prefix_upper_bound


def config_path(data_dir: Path) -> Path:
    return Path(data_dir) / "server" / "cred" / "encryption-config.json"


def wrap_store(store: Store, data_dir: Path, enable: bool) -> Store:
    """The store the API server uses: `store` itself when encryption was never enabled, else
    a TransformingStore with the keys of the data dir (made on first enable). Call before
    `start()`."""
    path = config_path(data_dir)
    if not path.exists():
        if not enable:
            return store
        EncryptionConfig([EncryptionConfig.new_key("aescbckey")]).save(path)
    os.chmod(path, 0o600)
    return TransformingStore(store, EncryptionConfig.load(path), config_path=path)


def _server_holds(database: Path) -> bool:
    """True when a server has the database open (SQLiteStore's exclusive side-file lock)."""
    lock = Path(str(database) + ".lock")
    if not lock.exists():
        return False
    descriptor = os.open(lock, os.O_RDWR)
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        return True
    finally:
        os.close(descriptor)
    return False


def stored_key_names(database: Path, config: EncryptionConfig) -> dict[str, int]:
    """How many Secrets the database holds under each key of `config` ("identity" = plain,
    "unknown" = a key not in the file), read straight from SQLite (readers do not block the
    server)."""
    counts: dict[str, int] = {}
    connection = sqlite3.connect(f"file:{database}?mode=ro", uri=True, timeout=5.0)
    try:
        rows = connection.execute("SELECT value FROM current WHERE key >= ? AND key < ?",
                                  (SECRETS_PREFIX, prefix_upper_bound(SECRETS_PREFIX))).fetchall()
    finally:
        connection.close()
    for (value,) in rows:
        value = bytes(value)
        name = next((key.name for key in config.keys if value.startswith(key.prefix)),
                    "unknown" if value.startswith(b"k8s:enc:") else "identity")
        counts[name] = counts.get(name, 0) + 1
    return counts


def status(data_dir: Path, database: Path) -> str:
    path = config_path(data_dir)
    if not path.exists():
        return "Encryption Status: Disabled"
    config = EncryptionConfig.load(path)
    lines = ["Encryption Status: Enabled", f"Active Key: {config.primary.name}",
             "Keys: " + ", ".join(key.name for key in config.keys)]
    if database.exists():
        counts = stored_key_names(database, config)
        lines.append("Secrets by key: " + (", ".join(f"{name}={count}" for name, count in sorted(counts.items()))
                                           or "none"))
    return "\n".join(lines)


def rotate(data_dir: Path, database: Path, timeout: float = 60.0) -> str:
    """Add a new first key and rewrite every Secret with it; returns what was done."""
    path = config_path(data_dir)
    if not path.exists():
        raise SystemExit("secrets encryption is not enabled: start the server with --secrets-encryption first")
    config = EncryptionConfig.load(path)
    key = EncryptionConfig.new_key()
    if key.name in {k.name for k in config.keys}:
        key = EncryptionConfig.new_key(f"{key.name}-{os.getpid()}")
    config = config.with_new_primary(key)
    config.save(path)
    if _server_holds(database):
        deadline = time.monotonic() + timeout
        while True:
            counts = stored_key_names(database, config)
            if set(counts) <= {key.name}:
                return f"new key {key.name}: the running server rewrote {counts.get(key.name, 0)} secrets"
            if time.monotonic() > deadline:
                raise SystemExit(f"new key {key.name} written, but the server has not rewritten every secret "
                                 f"within {timeout:g}s: {counts}")
            time.sleep(0.2)
    rewritten = asyncio.run(_rewrite_offline(database, path))
    return f"new key {key.name}: {rewritten} secrets rewritten"


async def _rewrite_offline(database: Path, path: Path) -> int:
    inner = SQLiteStore(str(database))
    await inner.start()
    store = TransformingStore(inner, EncryptionConfig.load(path))
    try:
        return await store.rewrite_stale()
    finally:
        await store.close()
