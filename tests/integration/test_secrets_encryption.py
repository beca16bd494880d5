"""Secrets encrypted at rest (`pyk8s server --secrets-encryption`): the SQLite file holds no
secret value, the API answers exactly as a plain server's do (GET, LIST and WATCH, in JSON
and as Tables), values survive a restart, and `pyk8s secrets-encrypt rotate` rewrites every
Secret with a new key, with the server running and with it stopped."""

from __future__ import annotations

import base64
import json
import stat
import subprocess
import sys
import urllib.parse
import urllib.request

import pytest

from conftest import Kubectl
from pyk8s.cluster.localcluster import LocalServer

VALUE = "pyk8s-at-rest-7d1f93"
TABLE = "application/json;as=Table;v=v1;g=meta.k8s.io"


@pytest.fixture(scope="module")
def servers(tmp_path_factory):
    plain = LocalServer(tmp_path_factory.mktemp("plain"), extra_args=["--disable-agent"])
    sealed = LocalServer(tmp_path_factory.mktemp("sealed"), extra_args=["--disable-agent", "--secrets-encryption"])
    plain.start()
    try:
        sealed.start()
        try:
            yield plain, sealed
        finally:
            sealed.stop()
    finally:
        plain.stop()


def kubectl_of(server: LocalServer) -> Kubectl:
    return Kubectl(server, server.data_dir / "kube-cache")


def http_get(server: LocalServer, path: str, accept: str = "application/json", **query: str) -> bytes:
    url = server.url + path + ("?" + urllib.parse.urlencode(query) if query else "")
    request = urllib.request.Request(url, headers={"Accept": accept})
    with urllib.request.urlopen(request, context=server.ssl_context(), timeout=20) as reply:
        return reply.read()


_VARYING = {"uid", "creationTimestamp", "resourceVersion", "time", "continue"}


def normalised(value):
    """Without what differs between two servers given the same writes: uids, times,
    resourceVersions, and a Table's AGE cell."""
    if isinstance(value, dict):
        result = {k: normalised(v) for k, v in value.items() if k not in _VARYING}
        if "cells" in result:
            result["cells"] = result["cells"][:-1]
        return result
    if isinstance(value, list):
        return [normalised(v) for v in value]
    return value


def database_bytes(server: LocalServer) -> bytes:
    directory = server.data_dir / "server"
    return b"".join(path.read_bytes() for path in sorted(directory.glob("state.db*")) if path.is_file())


def test_api_answers_equal_a_plain_servers_and_the_file_holds_no_value(servers):
    plain, sealed = servers
    for server in servers:
        kubectl_of(server)("create", "secret", "generic", "db", f"--from-literal=password={VALUE}",
                           "--from-literal=user=admin")
        kubectl_of(server)("label", "secret", "db", "tier=data")
    answers = {}
    for server in servers:
        base = "/api/v1/namespaces/default/secrets"
        answers[server.port] = [
            json.loads(http_get(server, f"{base}/db")),
            json.loads(http_get(server, f"{base}/db", TABLE)),
            json.loads(http_get(server, base)),
            json.loads(http_get(server, base, TABLE)),
            json.loads(http_get(server, "/api/v1/secrets", TABLE, labelSelector="tier=data")),
            json.loads(http_get(server, base, TABLE, includeObject="Object")),
            [json.loads(line) for line in http_get(server, base, watch="1", resourceVersion="0",
                                                   timeoutSeconds="1").splitlines()],
            [json.loads(line) for line in http_get(server, base, TABLE, watch="1", resourceVersion="0",
                                                   timeoutSeconds="1").splitlines()],
        ]
    assert normalised(answers[sealed.port]) == normalised(answers[plain.port])
    got = answers[sealed.port][0]
    assert base64.b64decode(got["data"]["password"]).decode() == VALUE
    assert answers[sealed.port][6][0]["object"]["data"]["password"] == base64.b64encode(VALUE.encode()).decode()

    stored = database_bytes(sealed)
    assert VALUE.encode() not in stored and base64.b64encode(VALUE.encode()) not in stored
    assert b"k8s:enc:aescbc:v1:aescbckey:" in stored
    assert base64.b64encode(VALUE.encode()) in database_bytes(plain)  # what a plain server keeps
    key_file = sealed.data_dir / "server" / "cred" / "encryption-config.json"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert not (plain.data_dir / "server" / "cred" / "encryption-config.json").exists()


def secrets_encrypt(server: LocalServer, action: str) -> str:
    result = subprocess.run([sys.executable, "-m", "pyk8s", "secrets-encrypt", action, "--data-dir",
                             str(server.data_dir)], capture_output=True, text=True, timeout=90)
    assert result.returncode == 0, result.stderr + result.stdout
    return result.stdout


def password_of(server: LocalServer) -> str:
    encoded = kubectl_of(server)("get", "secret", "db", "-o", "jsonpath={.data.password}")
    return base64.b64decode(encoded).decode()


def test_restart_and_key_rotation_keep_secrets_readable(servers):
    _, sealed = servers
    sealed.stop()
    sealed.start()
    assert password_of(sealed) == VALUE
    assert "Active Key: aescbckey\n" in secrets_encrypt(sealed, "status")

    # Rotation while the server runs: it re-reads the key file and rewrites every Secret.
    output = secrets_encrypt(sealed, "rotate")
    assert output.startswith("new key aescbckey-") and "the running server rewrote" in output
    new_key = output.split()[2].rstrip(":")
    status = secrets_encrypt(sealed, "status")
    assert f"Active Key: {new_key}\n" in status and f"Secrets by key: {new_key}=" in status
    assert password_of(sealed) == VALUE
    stored = database_bytes(sealed)
    assert f"k8s:enc:aescbc:v1:{new_key}:".encode() in stored and VALUE.encode() not in stored

    # Rotation with the server stopped: the command rewrites the database itself.
    sealed.stop()
    output = secrets_encrypt(sealed, "rotate")
    assert "secrets rewritten" in output and "running server" not in output
    offline_key = output.split()[2].rstrip(":")
    sealed.start()
    assert password_of(sealed) == VALUE
    assert f"Secrets by key: {offline_key}=" in secrets_encrypt(sealed, "status")
