"""The admin kubeconfig, and merging it into and out of the user's kubeconfig."""

from __future__ import annotations

import socket
import ssl
import stat
import threading

import pytest
import yaml
from kubernetes import client as k8s_client
from kubernetes import config as k8s_config

from pyk8s.cluster.kubeconfig import (
    merge_into_user_config,
    remove_from_user_config,
    server_url_and_ssl_context,
    user_kubeconfig_path,
    write_kubeconfig,
)
from pyk8s.cluster.pki import ensure_pki, server_ssl_context


URL = "https://127.0.0.1:6443"

OTHER_CLUSTER = {
    "apiVersion": "v1",
    "kind": "Config",
    "preferences": {"colors": True},
    "clusters": [{"name": "work", "cluster": {"server": "https://work.example:6443"}},
                 {"name": "pyk8s", "cluster": {"server": "https://stale.example:6443"}}],
    "users": [{"name": "work", "user": {"token": "secret"}},
              {"name": "pyk8s", "user": {"token": "stale"}}],
    "contexts": [{"name": "work", "context": {"cluster": "work", "user": "work", "namespace": "dev"}},
                 {"name": "pyk8s", "context": {"cluster": "pyk8s", "user": "pyk8s"}}],
    "current-context": "work",
}


def handshake(server_context: ssl.SSLContext, client_context: ssl.SSLContext, server_hostname: str):
    """A TLS handshake over a socket pair (no network); returns the client certificate the
    server saw."""
    server_end, client_end = socket.socketpair()
    outcome = {}

    def serve():
        try:
            with server_context.wrap_socket(server_end, server_side=True) as tls:
                outcome["peer"] = tls.getpeercert()
                tls.recv(1)
        except Exception as error:  # noqa: BLE001 - reported to the test
            outcome["error"] = error

    thread = threading.Thread(target=serve)
    thread.start()
    try:
        with client_context.wrap_socket(client_end, server_hostname=server_hostname) as tls:
            tls.sendall(b"x")
    finally:
        thread.join(5)
    if "error" in outcome:
        raise outcome["error"]
    return outcome["peer"]


@pytest.fixture
def pki(tmp_path):
    return ensure_pki(tmp_path / "tls", ["127.0.0.1", "localhost"])


@pytest.fixture
def admin_kubeconfig(tmp_path, pki):
    path = tmp_path / "data" / "kubeconfig.yaml"
    write_kubeconfig(path, URL, pki)
    return path


def load_with_official_client(path, context="pyk8s") -> k8s_client.Configuration:
    configuration = k8s_client.Configuration()
    k8s_config.load_kube_config(config_file=str(path), context=context, client_configuration=configuration)
    return configuration


def by_name(config, section):
    return {entry["name"]: entry for entry in config[section]}


def test_written_kubeconfig_is_private_and_embeds_ca_and_admin_credentials(admin_kubeconfig, pki):
    assert stat.S_IMODE(admin_kubeconfig.stat().st_mode) == 0o600
    config = yaml.safe_load(admin_kubeconfig.read_text())
    assert config["current-context"] == "pyk8s"
    cluster = by_name(config, "clusters")["pyk8s"]["cluster"]
    assert set(cluster) == {"server", "certificate-authority-data"}
    assert set(by_name(config, "users")["pyk8s"]["user"]) == {"client-certificate-data", "client-key-data"}


def test_official_client_loads_written_kubeconfig_with_the_same_credentials(admin_kubeconfig, pki):
    configuration = load_with_official_client(admin_kubeconfig)
    assert configuration.host == URL
    with open(configuration.ssl_ca_cert, "rb") as ca, open(configuration.cert_file, "rb") as cert, \
            open(configuration.key_file, "rb") as key:
        assert (ca.read(), cert.read(), key.read()) == (
            pki.ca_cert.read_bytes(), pki.admin_cert.read_bytes(), pki.admin_key.read_bytes())


def test_rewriting_kubeconfig_replaces_it_whole(admin_kubeconfig, pki):
    write_kubeconfig(admin_kubeconfig, "https://127.0.0.1:7443", pki)
    assert load_with_official_client(admin_kubeconfig).host == "https://127.0.0.1:7443"
    assert not [p for p in admin_kubeconfig.parent.iterdir() if p.name.startswith(".")]


def test_merge_creates_a_missing_user_kubeconfig(tmp_path, admin_kubeconfig):
    target = tmp_path / "home" / ".kube" / "config"
    assert merge_into_user_config(admin_kubeconfig, target) == target
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    assert load_with_official_client(target).host == URL


def test_merge_replaces_stale_pyk8s_entries_keeps_others_and_switches_context(tmp_path, admin_kubeconfig):
    target = tmp_path / "config"
    target.write_text(yaml.safe_dump(OTHER_CLUSTER))
    merge_into_user_config(admin_kubeconfig, target)
    merged = yaml.safe_load(target.read_text())
    assert merged["current-context"] == "pyk8s"
    assert merged["preferences"] == {"colors": True}
    for section in ("clusters", "users", "contexts"):
        assert sorted(by_name(merged, section)) == ["pyk8s", "work"]
    assert by_name(merged, "contexts")["work"]["context"]["namespace"] == "dev"
    assert by_name(merged, "users")["work"]["user"] == {"token": "secret"}
    assert load_with_official_client(target).host == URL
    k8s_client_configuration = load_with_official_client(target, context="work")
    assert k8s_client_configuration.host == "https://work.example:6443"


def test_merge_defaults_to_first_path_of_KUBECONFIG(tmp_path, admin_kubeconfig, monkeypatch):
    first, second = tmp_path / "first", tmp_path / "second"
    monkeypatch.setenv("KUBECONFIG", f"{first}:{second}")
    assert user_kubeconfig_path() == first
    merge_into_user_config(admin_kubeconfig)
    assert first.exists() and not second.exists()


def test_user_kubeconfig_defaults_to_dot_kube_config_in_home(tmp_path, monkeypatch):
    monkeypatch.delenv("KUBECONFIG", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    assert user_kubeconfig_path() == tmp_path / ".kube" / "config"


def test_merge_through_a_symlink_updates_the_linked_file(tmp_path, admin_kubeconfig):
    real = tmp_path / "dotfiles" / "kubeconfig"
    real.parent.mkdir()
    real.write_text(yaml.safe_dump(OTHER_CLUSTER))
    link = tmp_path / "config"
    link.symlink_to(real)
    merge_into_user_config(admin_kubeconfig, link)
    assert link.is_symlink()
    assert yaml.safe_load(real.read_text())["current-context"] == "pyk8s"


def test_remove_takes_out_only_pyk8s_entries_and_clears_its_current_context(tmp_path, admin_kubeconfig):
    target = tmp_path / "config"
    target.write_text(yaml.safe_dump(OTHER_CLUSTER))
    merge_into_user_config(admin_kubeconfig, target)
    assert remove_from_user_config(target) is True
    remaining = yaml.safe_load(target.read_text())
    for section in ("clusters", "users", "contexts"):
        assert list(by_name(remaining, section)) == ["work"]
    assert remaining["current-context"] == ""
    assert load_with_official_client(target, context="work").host == "https://work.example:6443"
    assert remove_from_user_config(target) is False


def test_remove_deletes_a_user_kubeconfig_that_held_only_pyk8s(tmp_path, admin_kubeconfig):
    target = tmp_path / "config"
    merge_into_user_config(admin_kubeconfig, target)
    assert remove_from_user_config(target) is True
    assert not target.exists()
    assert remove_from_user_config(target) is False


def test_url_and_ssl_context_from_kubeconfig_authenticate_as_admin(admin_kubeconfig, pki):
    url, context = server_url_and_ssl_context(admin_kubeconfig)
    assert url == URL
    peer = handshake(server_ssl_context(pki), context, "127.0.0.1")
    assert ("organizationName", "system:masters") in [a for rdn in peer["subject"] for a in rdn]
