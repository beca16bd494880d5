"""The cluster PKI: what the certificates say, that they chain, and when they are re-issued."""

from __future__ import annotations

import ipaddress
import socket
import ssl
import stat
import threading

import pytest
from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from pyk8s.cluster.pki import client_ssl_context, ensure_pki, issue_client_cert, server_ssl_context

HOSTS = ["127.0.0.1", "localhost", "10.43.0.1", "kubernetes.default.svc", "node-1"]


def load(path) -> x509.Certificate:
    return x509.load_pem_x509_certificate(path.read_bytes())


def sans(cert: x509.Certificate) -> x509.SubjectAlternativeName:
    return cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value


def eku(cert: x509.Certificate) -> list:
    return list(cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value)


def handshake(server_context: ssl.SSLContext, client_context: ssl.SSLContext, server_hostname: str):
    """A TLS handshake over a socket pair (no network); returns the client certificate the
    server saw, or raises the handshake error from either side."""
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
    return ensure_pki(tmp_path / "tls", HOSTS)


def test_server_cert_has_ips_as_ip_sans_and_names_as_dns_sans(pki):
    names = sans(load(pki.server_cert))
    assert set(names.get_values_for_type(x509.IPAddress)) == {ipaddress.ip_address("127.0.0.1"),
                                                              ipaddress.ip_address("10.43.0.1")}
    assert set(names.get_values_for_type(x509.DNSName)) == {"localhost", "kubernetes.default.svc", "node-1"}


def test_ca_is_named_like_k3s_and_valid_ten_years(pki):
    ca = load(pki.ca_cert)
    common_name = ca.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value
    assert common_name.startswith("pyk8s-ca@") and common_name.split("@")[1].isdigit()
    assert ca.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    assert (ca.not_valid_after_utc - ca.not_valid_before_utc).days >= 3650


def test_server_cert_is_kube_apiserver_for_server_auth_valid_one_year(pki):
    server = load(pki.server_cert)
    assert server.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "kube-apiserver"
    assert eku(server) == [ExtendedKeyUsageOID.SERVER_AUTH]
    assert 365 <= (server.not_valid_after_utc - server.not_valid_before_utc).days <= 366


def test_admin_cert_is_admin_in_system_masters_for_client_auth(pki):
    admin = load(pki.admin_cert)
    assert admin.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "system:admin"
    assert [a.value for a in admin.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)] == ["system:masters"]
    assert eku(admin) == [ExtendedKeyUsageOID.CLIENT_AUTH]


def test_private_keys_are_readable_by_owner_only(pki):
    for key in (pki.ca_key, pki.server_key, pki.admin_key):
        assert stat.S_IMODE(key.stat().st_mode) == 0o600


def test_tls_handshake_verifies_both_directions_and_server_sees_admin_groups(pki):
    peer = handshake(server_ssl_context(pki), client_ssl_context(pki), "localhost")
    subject = dict(attribute for rdn in peer["subject"] for attribute in rdn)
    assert subject == {"organizationName": "system:masters", "commonName": "system:admin"}


def test_client_rejects_server_name_missing_from_sans(pki):
    with pytest.raises(ssl.SSLCertVerificationError):
        handshake(server_ssl_context(pki), client_ssl_context(pki), "not-a-san.example")


def test_server_accepts_a_client_without_certificate(pki):
    anonymous = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    anonymous.load_verify_locations(cafile=str(pki.ca_cert))
    assert handshake(server_ssl_context(pki), anonymous, "127.0.0.1") in (None, {})


def test_second_call_reuses_every_file(tmp_path, pki):
    before = {path: path.read_bytes() for path in vars(pki).values()}
    again = ensure_pki(tmp_path / "tls", list(reversed(HOSTS)))
    assert {path: path.read_bytes() for path in vars(again).values()} == before


def test_missing_san_reissues_only_the_server_cert_and_keeps_old_sans(tmp_path, pki):
    ca_before, admin_before = pki.ca_cert.read_bytes(), pki.admin_cert.read_bytes()
    server_before = pki.server_cert.read_bytes()
    ensure_pki(tmp_path / "tls", ["127.0.0.1", "192.0.2.7", "extra.example"])
    assert pki.ca_cert.read_bytes() == ca_before
    assert pki.admin_cert.read_bytes() == admin_before
    assert pki.server_cert.read_bytes() != server_before
    names = sans(load(pki.server_cert))
    assert ipaddress.ip_address("192.0.2.7") in names.get_values_for_type(x509.IPAddress)
    assert {"extra.example", "node-1"} <= set(names.get_values_for_type(x509.DNSName))
    handshake(server_ssl_context(pki), client_ssl_context(pki), "extra.example")


def test_lost_ca_reissues_certificates_signed_by_the_new_ca(tmp_path, pki):
    pki.ca_key.unlink()
    ensure_pki(tmp_path / "tls", HOSTS)
    handshake(server_ssl_context(pki), client_ssl_context(pki), "localhost")


def test_issued_client_cert_carries_user_and_groups_and_is_reused(tmp_path, pki):
    cert_path, key_path = issue_client_cert(pki, "system:node:node-1", ["system:nodes"], tmp_path / "kubelet")
    cert = load(cert_path)
    cert.verify_directly_issued_by(load(pki.ca_cert))
    assert cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "system:node:node-1"
    assert [a.value for a in cert.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)] == ["system:nodes"]
    assert stat.S_IMODE(key_path.stat().st_mode) == 0o600
    first = cert_path.read_bytes()
    assert issue_client_cert(pki, "system:node:node-1", ["system:nodes"], tmp_path / "kubelet") == (cert_path, key_path)
    assert cert_path.read_bytes() == first
    peer = handshake(server_ssl_context(pki), client_ssl_context(pki, cert_path, key_path), "localhost")
    assert ("commonName", "system:node:node-1") in [a for rdn in peer["subject"] for a in rdn]
