"""The cluster's certificates: one self-signed CA, the API server's serving certificate and
client certificates (the admin's, and later the kubelet's and the controllers').

Files live in one directory (by default `<data-dir>/server/tls`) and are created once, then
reused, so kubeconfigs handed out earlier keep working across restarts. Like k3s:
- the CA is named `pyk8s-ca@<unix time>` and is valid 10 years, leaf certificates 1 year;
- the serving certificate is re-issued (by the same CA) only when a requested host name or
  address is missing from its SANs, or when it is close to expiry; it keeps the SANs it had,
  so starting once with an extra `--tls-san` does not make later restarts flip-flop;
- Kubernetes authenticates client certificates by their subject: CN is the user name and
  each O is a group (`system:masters` is the built-in cluster-admin group).

Keys are EC P-256 (generation takes microseconds, RSA-2048 takes ~100 ms), stored 0600.
"""

from __future__ import annotations

import datetime
import ipaddress
import os
import re
import ssl
import time
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from pyk8s.cluster.files import write_file_atomic

CA_VALIDITY = datetime.timedelta(days=3650)
LEAF_VALIDITY = datetime.timedelta(days=365)
# k3s renews leaf certificates that expire within 90 days when the server starts.
RENEW_BEFORE = datetime.timedelta(days=90)
# Tolerate clocks of other nodes that are a little behind ours.
CLOCK_SKEW = datetime.timedelta(minutes=5)

ADMIN_USER = "system:admin"  # k3s's admin identity, in system:masters
ADMIN_GROUP = "system:masters"
SERVER_COMMON_NAME = "kube-apiserver"


@dataclass
class Pki:
    ca_cert: Path
    ca_key: Path
    server_cert: Path
    server_key: Path
    admin_cert: Path
    admin_key: Path


def ensure_pki(directory: Path, hosts: list[str]) -> Pki:
    """Create the CA, serving and admin certificates in `directory` if missing, else reuse
    them. `hosts` (IP addresses and DNS names) must all be SANs of the serving certificate;
    if one is missing only the serving certificate is re-issued."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    os.chmod(directory, 0o700)
    pki = Pki(
        ca_cert=directory / "ca.crt", ca_key=directory / "ca.key",
        server_cert=directory / "server.crt", server_key=directory / "server.key",
        admin_cert=directory / "admin.crt", admin_key=directory / "admin.key",
    )

    ca = _load_ca(pki)
    if ca is None:
        ca = _create_ca(pki)
    ca_cert, ca_key = ca

    wanted_sans = _parse_hosts(hosts)
    existing_server = _load_valid_leaf(pki.server_cert, pki.server_key, ca_cert)
    if existing_server is None or not wanted_sans <= _sans_of(existing_server):
        kept_sans = _sans_of(existing_server) if existing_server is not None else set()
        _issue(ca_cert, ca_key, pki.server_cert, pki.server_key,
               subject=_name(SERVER_COMMON_NAME, []),
               usage=ExtendedKeyUsageOID.SERVER_AUTH,
               sans=kept_sans | wanted_sans)

    existing_admin = _load_valid_leaf(pki.admin_cert, pki.admin_key, ca_cert)
    admin_subject = _name(ADMIN_USER, [ADMIN_GROUP])
    if existing_admin is None or existing_admin.subject != admin_subject:
        _issue(ca_cert, ca_key, pki.admin_cert, pki.admin_key,
               subject=admin_subject, usage=ExtendedKeyUsageOID.CLIENT_AUTH, sans=set())
    return pki


def issue_client_cert(pki: Pki, common_name: str, organizations: list[str],
                      directory: Path) -> tuple[Path, Path]:
    """A client certificate for user `common_name` in groups `organizations`, signed by the
    cluster CA, stored in `directory` as `<name>.crt`/`<name>.key` and reused while valid."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    file_stem = "client-" + re.sub(r"[^A-Za-z0-9_.-]+", "-", common_name).strip("-")
    cert_path, key_path = directory / f"{file_stem}.crt", directory / f"{file_stem}.key"
    ca_cert = x509.load_pem_x509_certificate(pki.ca_cert.read_bytes())
    subject = _name(common_name, organizations)
    existing = _load_valid_leaf(cert_path, key_path, ca_cert)
    if existing is None or existing.subject != subject:
        ca_key = serialization.load_pem_private_key(pki.ca_key.read_bytes(), password=None)
        _issue(ca_cert, ca_key, cert_path, key_path,
               subject=subject, usage=ExtendedKeyUsageOID.CLIENT_AUTH, sans=set())
    return cert_path, key_path


def server_ssl_context(pki: Pki) -> ssl.SSLContext:
    """TLS for the API server: presents the serving certificate and verifies client
    certificates against the CA. A client certificate is optional at the TLS level (upstream
    also allows token auth and anonymous requests); the server answers 401 without one."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(pki.server_cert, pki.server_key)
    context.load_verify_locations(cafile=str(pki.ca_cert))
    context.verify_mode = ssl.CERT_OPTIONAL
    # kubectl and client-go negotiate HTTP/2 when offered; aiohttp only speaks HTTP/1.1.
    context.set_alpn_protocols(["http/1.1"])
    return context


def client_ssl_context(pki: Pki, cert: Path | None = None, key: Path | None = None) -> ssl.SSLContext:
    """TLS for a client of the API server: trusts only the cluster CA and presents the admin
    certificate (or `cert`/`key`, e.g. one made by `issue_client_cert`)."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_verify_locations(cafile=str(pki.ca_cert))
    context.load_cert_chain(cert or pki.admin_cert, key or pki.admin_key)
    return context


def ensure_ca(cert_path: Path, key_path: Path, prefix: str) -> None:
    """A CA (`<prefix>@<unix time>`, 10 years) at `cert_path`/`key_path`, created when missing
    or unusable: the etcd CAs (k3s keeps etcd's server and peer CAs apart from the cluster's,
    so no API client certificate is an etcd credential)."""
    holder = Pki(ca_cert=Path(cert_path), ca_key=Path(key_path), server_cert=Path(), server_key=Path(),
                 admin_cert=Path(), admin_key=Path())
    Path(cert_path).parent.mkdir(parents=True, exist_ok=True)
    if _load_ca(holder) is None:
        _create_ca(holder, prefix)


def ensure_leaf_cert(ca_cert_path: Path, ca_key_path: Path, cert_path: Path, key_path: Path, *,
                     common_name: str, server: bool, client: bool, hosts: list[str] = ()) -> None:
    """A leaf certificate signed by the CA at `ca_cert_path`, for TLS serving and/or client
    authentication, reused while valid, signed by that CA and covering `hosts`."""
    ca_cert = x509.load_pem_x509_certificate(Path(ca_cert_path).read_bytes())
    wanted_sans = _parse_hosts(list(hosts))
    existing = _load_valid_leaf(Path(cert_path), Path(key_path), ca_cert)
    if existing is not None and wanted_sans <= _sans_of(existing):
        return
    usages = ([ExtendedKeyUsageOID.SERVER_AUTH] if server else []) + ([ExtendedKeyUsageOID.CLIENT_AUTH] if client else [])
    ca_key = serialization.load_pem_private_key(Path(ca_key_path).read_bytes(), password=None)
    _issue(ca_cert, ca_key, Path(cert_path), Path(key_path), subject=_name(common_name, []), usage=usages,
           sans=wanted_sans | (_sans_of(existing) if existing is not None else set()))


# --- internals -------------------------------------------------------------------------

def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.timezone.utc)


def _name(common_name: str, organizations: list[str]) -> x509.Name:
    attributes = [x509.NameAttribute(NameOID.ORGANIZATION_NAME, org) for org in organizations]
    attributes.append(x509.NameAttribute(NameOID.COMMON_NAME, common_name))
    return x509.Name(attributes)


def _parse_hosts(hosts: list[str]) -> set[x509.GeneralName]:
    sans: set[x509.GeneralName] = set()
    for host in hosts:
        host = host.strip().strip("[]")
        if not host:
            continue
        try:
            sans.add(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            sans.add(x509.DNSName(host.lower()))
    return sans


def _sans_of(cert: x509.Certificate) -> set[x509.GeneralName]:
    try:
        extension = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName)
    except x509.ExtensionNotFound:
        return set()
    return set(extension.value)


def _load_ca(pki: Pki) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey] | None:
    try:
        cert = x509.load_pem_x509_certificate(pki.ca_cert.read_bytes())
        key = serialization.load_pem_private_key(pki.ca_key.read_bytes(), password=None)
    except (FileNotFoundError, ValueError):
        return None
    if cert.public_key().public_numbers() != key.public_key().public_numbers():
        return None
    if cert.not_valid_after_utc <= _now():
        return None
    return cert, key


def _load_valid_leaf(cert_path: Path, key_path: Path, ca_cert: x509.Certificate) -> x509.Certificate | None:
    """The certificate at `cert_path` if it is issued by `ca_cert`, matches its key and is
    not due for renewal; None means "issue a new one"."""
    try:
        cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
        key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
        cert.verify_directly_issued_by(ca_cert)
    except Exception:  # noqa: BLE001 - missing, unreadable or signed by another CA: re-issue
        return None
    if cert.public_key().public_numbers() != key.public_key().public_numbers():
        return None
    if cert.not_valid_after_utc - RENEW_BEFORE <= _now():
        return None
    return cert


def _new_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL,
                             serialization.NoEncryption())


def _create_ca(pki: Pki, prefix: str = "pyk8s-ca") -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    key = _new_key()
    now = _now()
    subject = _name(f"{prefix}@{int(time.time())}", [])
    public_key = key.public_key()
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - CLOCK_SKEW)
        .not_valid_after(now + CA_VALIDITY)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=False, key_encipherment=False,
                                     data_encipherment=False, key_agreement=False, key_cert_sign=True,
                                     crl_sign=True, encipher_only=False, decipher_only=False), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
        .sign(key, hashes.SHA256())
    )
    write_file_atomic(pki.ca_key, _key_pem(key), 0o600)
    write_file_atomic(pki.ca_cert, cert.public_bytes(serialization.Encoding.PEM), 0o644)
    return cert, key


def _issue(ca_cert: x509.Certificate, ca_key, cert_path: Path, key_path: Path, *,
           subject: x509.Name, usage: x509.ObjectIdentifier, sans: set[x509.GeneralName]) -> x509.Certificate:
    key = _new_key()
    now = _now()
    public_key = key.public_key()
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(ca_cert.subject)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - CLOCK_SKEW)
        .not_valid_after(min(now + LEAF_VALIDITY, ca_cert.not_valid_after_utc))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=False, key_encipherment=False,
                                     data_encipherment=False, key_agreement=False, key_cert_sign=False,
                                     crl_sign=False, encipher_only=False, decipher_only=False), critical=True)
        .add_extension(x509.ExtendedKeyUsage(list(usage) if isinstance(usage, (list, tuple)) else [usage]),
                       critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_cert.public_key()), critical=False)
    )
    if sans:
        # Deterministic order keeps `openssl x509 -text` output readable: IPs, then names.
        ordered = sorted(sans, key=lambda name: (isinstance(name, x509.DNSName), str(name.value)))
        builder = builder.add_extension(x509.SubjectAlternativeName(ordered), critical=False)
    cert = builder.sign(ca_key, hashes.SHA256())
    write_file_atomic(key_path, _key_pem(key), 0o600)
    write_file_atomic(cert_path, cert.public_bytes(serialization.Encoding.PEM), 0o644)
    return cert
