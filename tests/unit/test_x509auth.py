"""Client certificates: any one passes the TLS handshake, the x509 authenticator decides
(CA, validity, client-auth usage), as upstream's API server does."""

from __future__ import annotations

import datetime
import socket
import ssl
import threading
import warnings

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from pyk8s.apiserver.x509auth import CertificateAuthenticator, request_client_certificates
from pyk8s.cluster.pki import ensure_pki, server_ssl_context

NOW = datetime.datetime(2030, 1, 1, tzinfo=datetime.timezone.utc)


def ca(name: str):
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(NOW - datetime.timedelta(days=1))
            .not_valid_after(NOW + datetime.timedelta(days=3650))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    return cert, key


def leaf(authority, common_name: str, organizations=(), *, usages=(ExtendedKeyUsageOID.CLIENT_AUTH,),
         not_before=NOW - datetime.timedelta(hours=1), not_after=NOW + datetime.timedelta(days=1)) -> bytes:
    ca_cert, ca_key = authority
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([*(x509.NameAttribute(NameOID.ORGANIZATION_NAME, o) for o in organizations),
                         x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    builder = (x509.CertificateBuilder().subject_name(subject).issuer_name(ca_cert.subject)
               .public_key(key.public_key()).serial_number(x509.random_serial_number())
               .not_valid_before(not_before).not_valid_after(not_after))
    if usages is not None:
        builder = builder.add_extension(x509.ExtendedKeyUsage(list(usages)), critical=False)
    return builder.sign(ca_key, hashes.SHA256()).public_bytes(serialization.Encoding.DER)


@pytest.fixture
def ours():
    return ca("ours")


@pytest.fixture
def authenticator(ours):
    clock = {"now": NOW}
    authenticator = CertificateAuthenticator(ours[0].public_bytes(serialization.Encoding.PEM), now=lambda: clock["now"])
    authenticator.clock = clock
    return authenticator


def test_a_certificate_of_our_ca_names_user_and_groups(ours, authenticator):
    assert authenticator.user(leaf(ours, "alice", ["devs", "ops"])) == ("alice", ("devs", "ops"))
    assert authenticator.user(leaf(ours, "bob", usages=None)) == ("bob", ())  # no EKU: any usage
    assert authenticator.user(leaf(ours, "carol", usages=[ExtendedKeyUsageOID.ANY_EXTENDED_KEY_USAGE])) == \
        ("carol", ())


def test_foreign_expired_not_yet_valid_server_only_and_garbage_are_refused(ours, authenticator):
    foreign = ca("ours")  # the same name, another key: the signature decides
    assert authenticator.user(leaf(foreign, "system:admin", ["system:masters"])) is None
    assert authenticator.user(leaf(ours, "late", not_after=NOW - datetime.timedelta(seconds=1))) is None
    assert authenticator.user(leaf(ours, "early", not_before=NOW + datetime.timedelta(minutes=5))) is None
    assert authenticator.user(leaf(ours, "server", usages=[ExtendedKeyUsageOID.SERVER_AUTH])) is None
    assert authenticator.user(b"") is None
    assert authenticator.user(b"\x30\x03\x02\x01\x01") is None


def test_cached_answers_still_expire(ours, authenticator):
    der = leaf(ours, "alice", not_after=NOW + datetime.timedelta(minutes=1))
    assert authenticator.user(der) == ("alice", ())
    authenticator.clock["now"] = NOW + datetime.timedelta(minutes=2)
    assert authenticator.user(der) is None
    # The cache answers as a fresh authenticator does, for every certificate above.
    fresh = CertificateAuthenticator(ours[0].public_bytes(serialization.Encoding.PEM), now=lambda: authenticator.clock["now"])
    for cached in list(authenticator._cache):
        assert authenticator.user(cached) == fresh.user(cached)


def test_a_bundle_with_two_authorities_accepts_both(ours):
    other = ca("other")
    bundle = b"".join(c.public_bytes(serialization.Encoding.PEM) for c, _ in (ours, other))
    authenticator = CertificateAuthenticator(bundle, now=lambda: NOW)
    assert authenticator.user(leaf(ours, "a")) == ("a", ())
    assert authenticator.user(leaf(other, "b")) == ("b", ())


def test_the_handshake_accepts_any_client_certificate_and_hands_it_over(tmp_path):
    cluster = ensure_pki(tmp_path / "ours", ["127.0.0.1"])
    foreign = ensure_pki(tmp_path / "foreign", [])
    context = request_client_certificates(server_ssl_context(cluster))
    authenticator = CertificateAuthenticator(cluster.ca_cert)
    seen = []
    for pair in ((cluster.admin_cert, cluster.admin_key), (foreign.admin_cert, foreign.admin_key), None):
        server_end, client_end = socket.socketpair()

        def serve():
            try:
                with context.wrap_socket(server_end, server_side=True) as tls:
                    seen.append(tls.getpeercert(binary_form=True))
                    tls.recv(1)
            except Exception as error:  # noqa: BLE001 - reported to the test
                seen.append(error)
        thread = threading.Thread(target=serve)
        thread.start()
        client = ssl.create_default_context(cafile=str(cluster.ca_cert))
        if pair is not None:
            client.load_cert_chain(str(pair[0]), str(pair[1]))
        with client.wrap_socket(client_end, server_hostname="127.0.0.1") as tls:
            tls.sendall(b"x")
        thread.join(5)
    ours_der, foreign_der, none = seen
    assert none is None
    assert authenticator.user(ours_der) == ("system:admin", ("system:masters",))
    assert isinstance(foreign_der, bytes) and authenticator.user(foreign_der) is None
    # Without the callback, the same foreign certificate fails the handshake (what changed).
    assert server_ssl_context(cluster).verify_mode == ssl.CERT_OPTIONAL


def test_every_single_bit_flip_of_a_good_certificate_is_refused_without_an_exception(ours, authenticator):
    """Fuzzing the DER: a flip inside the signed part (tbsCertificate) is always refused; a
    flip outside it (the unsigned envelope, e.g. the signature's unused-bits byte) may at
    most leave the same identity; nothing raises."""
    der = leaf(ours, "alice", ["devs"])
    assert authenticator.user(der) == ("alice", ("devs",))
    tbs = x509.load_der_x509_certificate(der).tbs_certificate_bytes
    tbs_start = der.index(tbs)
    for position in range(len(der)):
        for bit in (0x01, 0x80):
            damaged = der[:position] + bytes([der[position] ^ bit]) + der[position + 1:]
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # cryptography warns about some damaged serials
                answer = authenticator.user(damaged)
            if tbs_start <= position < tbs_start + len(tbs):
                assert answer is None, (position, bit)
            else:
                assert answer in (None, ("alice", ("devs",))), (position, bit)
