"""Reading kubeconfig files: the server URL and TLS credentials of a context."""

from __future__ import annotations

import base64
import os
import ssl
import tempfile
from pathlib import Path
from typing import Any

import yaml


def named_entry(config: dict[str, Any], section: str, name: str | None) -> dict[str, Any]:
    for entry in config.get(section) or []:
        if entry.get("name") == name:
            return entry
    raise KeyError(f"kubeconfig has no {section[:-1]} named {name!r}")


def load_kubeconfig(path: Path) -> dict[str, Any]:
    """A kubeconfig as a dict; a missing or empty file is an empty config."""
    try:
        text = path.read_text()
    except FileNotFoundError:
        text = ""
    config = yaml.safe_load(text) or {}
    if not isinstance(config, dict):
        raise ValueError(f"{path} is not a kubeconfig (expected a mapping at the top level)")
    config.setdefault("apiVersion", "v1")
    config.setdefault("kind", "Config")
    return config


def cluster_ca_pem(path: Path, context: str | None = None) -> bytes | None:
    """The CA certificate (PEM bytes) of `context`'s cluster (default: the current one), or
    None when the kubeconfig relies on the system's trust store."""
    config = load_kubeconfig(Path(path))
    context_entry = named_entry(config, "contexts", context or config.get("current-context"))["context"]
    cluster = named_entry(config, "clusters", context_entry["cluster"])["cluster"]
    if cluster.get("certificate-authority-data"):
        return base64.b64decode(cluster["certificate-authority-data"])
    if cluster.get("certificate-authority"):
        return Path(cluster["certificate-authority"]).read_bytes()
    return None


def server_url_and_ssl_context(path: Path, context: str | None = None) -> tuple[str, ssl.SSLContext]:
    """The API server URL of `context` (default: the current context) in kubeconfig `path`
    and a TLS context that trusts its CA and presents its client certificate, for talking to
    the cluster without the kubernetes client library (readiness checks)."""
    config = load_kubeconfig(Path(path))
    context_name = context or config.get("current-context")
    context_entry = named_entry(config, "contexts", context_name)["context"]
    cluster = named_entry(config, "clusters", context_entry["cluster"])["cluster"]
    user = named_entry(config, "users", context_entry["user"])["user"]
    ssl_context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    if cluster.get("certificate-authority-data"):
        ssl_context.load_verify_locations(cadata=base64.b64decode(cluster["certificate-authority-data"]).decode())
    elif cluster.get("certificate-authority"):
        ssl_context.load_verify_locations(cafile=cluster["certificate-authority"])
    else:
        ssl_context.load_default_certs()
    if user.get("client-certificate-data"):
        # ssl can only load a certificate chain from files: use short-lived private ones.
        with tempfile.TemporaryDirectory(prefix="pyk8s-kubeconfig-") as scratch:
            cert_file, key_file = Path(scratch) / "client.crt", Path(scratch) / "client.key"
            for target, data in ((cert_file, user["client-certificate-data"]), (key_file, user["client-key-data"])):
                target.write_bytes(base64.b64decode(data))
                os.chmod(target, 0o600)
            ssl_context.load_cert_chain(cert_file, key_file)
    elif user.get("client-certificate"):
        ssl_context.load_cert_chain(user["client-certificate"], user.get("client-key"))
    return cluster["server"], ssl_context
