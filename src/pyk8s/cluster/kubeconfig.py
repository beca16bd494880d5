"""Kubeconfig files: the one the server writes for its admin, and merging it into (and out
of) the user's own kubeconfig so plain `kubectl` reaches the cluster.

The server writes `<data-dir>/kubeconfig.yaml` with the CA and the admin certificate embedded
as base64 (`*-data` fields), so the file works when copied elsewhere. `pyk8s up` merges its
cluster, user and context (all named `pyk8s`) into `$KUBECONFIG`'s first path or
`~/.kube/config`, keeping every other entry, like `k3d kubeconfig merge`; `pyk8s reset`
takes them out again.
"""

from __future__ import annotations

import base64
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from pyk8s.client.kubeconfig import load_kubeconfig as _load, named_entry as _named, server_url_and_ssl_context  # noqa: F401 (re-exported)
from pyk8s.cluster.files import write_file_atomic

if TYPE_CHECKING:
    from pyk8s.cluster.pki import Pki

DEFAULT_NAME = "pyk8s"


def write_kubeconfig(path: Path, server_url: str, pki: Pki, *, context: str = DEFAULT_NAME) -> None:
    """Write an admin kubeconfig for `server_url` (mode 0600, atomically). The cluster, the
    user and the context are all named `context`, which is also the current context."""
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "preferences": {},
        "clusters": [{"name": context, "cluster": {
            "server": server_url,
            "certificate-authority-data": _b64(pki.ca_cert),
        }}],
        "users": [{"name": context, "user": {
            "client-certificate-data": _b64(pki.admin_cert),
            "client-key-data": _b64(pki.admin_key),
        }}],
        "contexts": [{"name": context, "context": {"cluster": context, "user": context}}],
        "current-context": context,
    }
    _write_config(Path(path), config)


def user_kubeconfig_path() -> Path:
    """Where kubectl reads its configuration: the first path of $KUBECONFIG if set (kubectl
    writes changes to the first file of the list too), else ~/.kube/config."""
    for entry in os.environ.get("KUBECONFIG", "").split(os.pathsep):
        if entry:
            return Path(entry).expanduser()
    return Path.home() / ".kube" / "config"


def merge_into_user_config(source: Path, target: Path | None = None) -> Path:
    """Copy the clusters, users and contexts of `source` into `target` (default: the user's
    kubeconfig), replacing entries with the same names and keeping all others; the current
    context becomes `source`'s. Creates `target` if missing. Returns the path written."""
    target = Path(target) if target is not None else user_kubeconfig_path()
    incoming = _load(Path(source))
    merged = _load(target)
    for section in ("clusters", "users", "contexts"):
        new_entries = incoming.get(section) or []
        replaced = {entry.get("name") for entry in new_entries}
        kept = [entry for entry in (merged.get(section) or []) if entry.get("name") not in replaced]
        merged[section] = kept + new_entries
    if incoming.get("current-context"):
        merged["current-context"] = incoming["current-context"]
    _write_config(target, merged)
    return target


def remove_from_user_config(target: Path | None = None, *, name: str = DEFAULT_NAME) -> bool:
    """Remove the cluster, user and context called `name` from `target` (default: the user's
    kubeconfig), keeping everything else. If `name` was the current context, none is current
    afterwards. A file left with no entries at all is deleted. Returns whether anything
    changed."""
    target = Path(target) if target is not None else user_kubeconfig_path()
    if not target.exists():
        return False
    config = _load(target)
    changed = False
    for section in ("clusters", "users", "contexts"):
        entries = config.get(section) or []
        kept = [entry for entry in entries if entry.get("name") != name]
        changed |= len(kept) != len(entries)
        config[section] = kept
    if config.get("current-context") == name:
        config["current-context"] = ""
        changed = True
    if not changed:
        return False
    leftover = {key: value for key, value in config.items()
                if key not in ("apiVersion", "kind") and value not in ("", None, [], {})}
    if not leftover:
        target.unlink()
    else:
        _write_config(target, config)
    return True


# --- internals -------------------------------------------------------------------------

def _b64(path: Path) -> str:
    return base64.b64encode(Path(path).read_bytes()).decode("ascii")


def _write_config(path: Path, config: dict[str, Any]) -> None:
    if path.is_symlink():
        # Dotfile managers link ~/.kube/config elsewhere: update the file, keep the link.
        path = path.resolve()
    if not path.parent.exists():
        path.parent.mkdir(parents=True, mode=0o700)
    text = yaml.safe_dump(config, default_flow_style=False, sort_keys=False)
    write_file_atomic(path, text.encode(), 0o600)
