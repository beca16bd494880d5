"""Image pull secrets → registry credentials (kubelet/credentials.py, upstream's keyring)."""

from __future__ import annotations

import base64
import json

from pyk8s.kubelet.credentials import image_registry_and_path, keyring_from_secrets, lookup


def dockerconfigjson(auths: dict) -> dict:
    raw = json.dumps({"auths": auths}).encode()
    return {"type": "kubernetes.io/dockerconfigjson", "data": {".dockerconfigjson": base64.b64encode(raw).decode()}}


def test_image_names_split_into_registry_and_repository():
    assert image_registry_and_path("busybox") == ("docker.io", "library/busybox")
    assert image_registry_and_path("pyk8s/busybox:1.35") == ("docker.io", "pyk8s/busybox")
    assert image_registry_and_path("127.0.0.1:5000/team/app:1") == ("127.0.0.1:5000", "team/app")
    assert image_registry_and_path("registry.example.com/app@sha256:abc") == ("registry.example.com", "app")
    assert image_registry_and_path("localhost/app") == ("localhost", "app")


def test_credentials_match_host_port_and_path_prefix():
    secret = dockerconfigjson({
        "127.0.0.1:5000": {"username": "alice", "password": "pw", "auth": base64.b64encode(b"alice:pw").decode()},
        "https://127.0.0.1:5000/team/": {"auth": base64.b64encode(b"team:tpw").decode()},
        "https://index.docker.io/v1/": {"username": "hub", "password": "hpw"},
        "*.example.com": {"username": "glob", "password": "gpw"}})
    keyring = keyring_from_secrets([secret])
    users = lambda image: [c.username for c in lookup(keyring, image)]  # noqa: E731
    assert users("127.0.0.1:5000/team/app:1") == ["team", "alice"]  # most specific first
    assert users("127.0.0.1:5000/other:1") == ["alice"]
    assert users("127.0.0.1:5001/other:1") == []
    assert users("busybox") == ["hub"]
    assert users("registry.example.com/app") == ["glob"]
    assert users("a.b.example.com/app") == []
    assert lookup(keyring, "127.0.0.1:5000/x")[0].auth_config() == {"username": "alice", "password": "pw"}


def test_legacy_dockercfg_and_broken_secrets():
    legacy = {"data": {".dockercfg": base64.b64encode(json.dumps(
        {"127.0.0.1:5000": {"auth": base64.b64encode(b"bob:secret:with:colons").decode()}}).encode()).decode()}}
    broken = {"data": {".dockerconfigjson": base64.b64encode(b"not json").decode()}}
    credentials = lookup(keyring_from_secrets([broken, legacy]), "127.0.0.1:5000/app")
    assert [(c.username, c.password) for c in credentials] == [("bob", "secret:with:colons")]
