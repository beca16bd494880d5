"""Registry credentials from image pull secrets (upstream's credentialprovider keyring).

Pure: `keyring_from_secrets` reads `kubernetes.io/dockerconfigjson` (`.dockerconfigjson`,
`{"auths": {...}}`) and `kubernetes.io/dockercfg` (`.dockercfg`) Secrets; `lookup(keyring,
image)` returns the credentials whose registry key matches the image, most specific first.
The kubelet tries each in turn as CRI PullImage's AuthConfig, and pulls anonymously when
none matches (upstream's kuberuntime PullImage).

A key matches an image as upstream's URLsMatch does: the same host (a key may use `*`
globs per dot-separated label), the same port, and a path that is a prefix of the image's
repository path. Docker Hub keys (`https://index.docker.io/v1/`, `docker.io`) match images
without a registry host.
"""

from __future__ import annotations

import base64
import fnmatch
import json
from dataclasses import dataclass
from typing import Any

DOCKER_HUB = "docker.io"
_HUB_ALIASES = {"index.docker.io", "registry-1.docker.io", "registry.hub.docker.com", DOCKER_HUB}


@dataclass(frozen=True)
class Credential:
    key: str  # the registry key it was stored under, normalised ("127.0.0.1:5000", "docker.io")
    username: str
    password: str

    def auth_config(self) -> dict[str, str]:
        """CRI runtime.v1 AuthConfig."""
        return {"username": self.username, "password": self.password}


def _split_key(key: str) -> tuple[str, str]:
    """A docker config key → (host[:port], path) without scheme or /v1/ suffixes."""
    value = key.strip()
    for scheme in ("https://", "http://"):
        if value.startswith(scheme):
            value = value[len(scheme):]
    value = value.rstrip("/")
    for suffix in ("/v1", "/v2"):
        if value.endswith(suffix):
            value = value[: -len(suffix)]
    host, _, path = value.partition("/")
    if host.lower() in _HUB_ALIASES:
        host = DOCKER_HUB
    return host.lower(), path.strip("/")


def image_registry_and_path(image: str) -> tuple[str, str]:
    """`127.0.0.1:5000/team/app:1` → ("127.0.0.1:5000", "team/app"); `busybox` →
    ("docker.io", "library/busybox")."""
    name = image.split("@", 1)[0]
    last = name.rsplit("/", 1)
    if ":" in last[-1]:
        name = name[: len(name) - len(last[-1])] + last[-1].split(":", 1)[0]
    first, _, rest = name.partition("/")
    if rest and ("." in first or ":" in first or first == "localhost"):
        host, path = first.lower(), rest
    else:
        host, path = DOCKER_HUB, name
    if host in _HUB_ALIASES:
        host = DOCKER_HUB
        if "/" not in path:
            path = "library/" + path
    return host, path


def _host_matches(pattern: str, host: str) -> bool:
    pattern_name, _, pattern_port = pattern.partition(":")
    host_name, _, host_port = host.partition(":")
    if pattern_port != host_port:
        return False
    pattern_labels, host_labels = pattern_name.split("."), host_name.split(".")
    return len(pattern_labels) == len(host_labels) and all(
        fnmatch.fnmatchcase(label, glob) for glob, label in zip(pattern_labels, host_labels))


def _entries(secret: dict[str, Any]) -> dict[str, Any]:
    data = secret.get("data") or {}
    try:
        if ".dockerconfigjson" in data:
            return json.loads(base64.b64decode(data[".dockerconfigjson"])).get("auths") or {}
        if ".dockercfg" in data:
            return json.loads(base64.b64decode(data[".dockercfg"])) or {}
    except (ValueError, AttributeError):
        pass
    return {}


def keyring_from_secrets(secrets: list[dict[str, Any]]) -> list[tuple[str, str, Credential]]:
    """(host pattern, path prefix, credential) of every entry of the pull secrets, in order."""
    keyring = []
    for secret in secrets:
        for key, entry in _entries(secret).items():
            if not isinstance(entry, dict):
                continue
            username, password = entry.get("username") or "", entry.get("password") or ""
            if entry.get("auth") and not (username or password):
                try:
                    username, _, password = base64.b64decode(entry["auth"]).decode().partition(":")
                except (ValueError, UnicodeDecodeError):
                    continue
            host, path = _split_key(key)
            keyring.append((host, path, Credential(f"{host}/{path}".rstrip("/"), username, password)))
    return keyring


def lookup(keyring: list[tuple[str, str, Credential]], image: str) -> list[Credential]:
    """Credentials for `image`, the most specific key first (upstream sorts keys in reverse
    order, so longer paths come before their prefixes); duplicates once."""
    host, path = image_registry_and_path(image)
    matched = []
    for pattern, prefix, credential in keyring:
        if not _host_matches(pattern, host):
            continue
        if prefix and not (path == prefix or path.startswith(prefix + "/")):
            continue
        matched.append((pattern, prefix, credential))
    matched.sort(key=lambda item: (item[0], item[1]), reverse=True)
    found: list[Credential] = []
    for _, _, credential in matched:
        if all((c.username, c.password) != (credential.username, credential.password) for c in found):
            found.append(credential)
    return found
