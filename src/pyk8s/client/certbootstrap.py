"""A node's own client certificate, obtained through a CertificateSigningRequest (upstream's
kubelet TLS bootstrap).

A joining node holds only a bootstrap token. It makes a key, sends a CSR for
CN=system:node:<name>, O=system:nodes to signer kubernetes.io/kube-apiserver-client-kubelet
with the token, waits for the control plane to approve and sign it, and stores key and
certificate in one file, `<dir>/kubelet-client-current.pem` (upstream's name, mode 0600).
From then on the node authenticates with that certificate, and a restart reuses it. One
that is expired, issued by another CA or for another node is replaced; one past 80 % of its
lifetime is renewed with the certificate itself (the "selfnodeclient" approval), or with the
token when the certificate no longer works.

While the agent runs, `CertificateRotation` renews the certificate as upstream's kubelet
certificate manager does: at a random point between 70 and 90 % of its lifetime it sends a
new CSR with the current certificate, stores the issued one, loads it into the client's TLS
context and drops the client's pooled connections, so that every request from then on
(including the watches, which reconnect) presents the new certificate; a failed attempt is
retried with back-off until the certificate expires.
"""

from __future__ import annotations

import asyncio
import base64
import datetime
import logging
import os
import random
import ssl
import tempfile
from pathlib import Path
from typing import Callable

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from pyk8s.api import errors
from pyk8s.api.resources import lookup

log = logging.getLogger("pyk8s.client.certbootstrap")

CSRS = lookup("certificates.k8s.io", "v1", "certificatesigningrequests")
KUBELET_CLIENT_SIGNER = "kubernetes.io/kube-apiserver-client-kubelet"
CURRENT_FILE = "kubelet-client-current.pem"
RENEW_AFTER_FRACTION = 0.8
ROTATE_BETWEEN = (0.7, 0.9)  # upstream's certificate manager: a jittered 70-90 % of the lifetime
RETRY_BACKOFF = (1.0, 128.0)  # first and longest wait after a failed rotation


class CertificateBootstrapError(Exception):
    pass


def node_user(node_name: str) -> str:
    return f"system:node:{node_name}"


def certificate_request_pem(key: ec.EllipticCurvePrivateKey, node_name: str) -> bytes:
    subject = x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "system:nodes"),
                         x509.NameAttribute(NameOID.COMMON_NAME, node_user(node_name))])
    request = x509.CertificateSigningRequestBuilder().subject_name(subject).sign(key, hashes.SHA256())
    return request.public_bytes(serialization.Encoding.PEM)


def csr_object(request_pem: bytes) -> dict:
    # Upstream's kubelet names its requests csr-<random>; an EC key asks for no key encipherment.
    return {"apiVersion": "certificates.k8s.io/v1", "kind": "CertificateSigningRequest",
            "metadata": {"generateName": "csr-"},
            "spec": {"request": base64.b64encode(request_pem).decode("ascii"), "signerName": KUBELET_CLIENT_SIGNER,
                     "usages": ["digital signature", "client auth"]}}


def load_current(path: Path, ca_pem: bytes, node_name: str) -> tuple[x509.Certificate, bool] | None:
    """(certificate, due for renewal) of a usable stored certificate for this node and CA,
    else None."""
    try:
        data = path.read_bytes()
        cert = x509.load_pem_x509_certificate(data)
        key = serialization.load_pem_private_key(data, password=None)
        ca = x509.load_pem_x509_certificate(ca_pem)
        cert.verify_directly_issued_by(ca)
    except Exception:  # noqa: BLE001 - missing, damaged or from another cluster: bootstrap again
        return None
    if cert.public_key().public_numbers() != key.public_key().public_numbers():
        return None
    names = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    if not names or names[0].value != node_user(node_name):
        return None
    now = datetime.datetime.now(datetime.timezone.utc)
    if cert.not_valid_after_utc <= now:
        return None
    lifetime = (cert.not_valid_after_utc - cert.not_valid_before_utc).total_seconds()
    due = now >= cert.not_valid_before_utc + datetime.timedelta(seconds=lifetime * RENEW_AFTER_FRACTION)
    return cert, due


def client_ssl_context(ca_pem: bytes, cert_file: Path) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_verify_locations(cadata=ca_pem.decode("ascii"))
    context.load_cert_chain(str(cert_file), str(cert_file))
    return context


def _write_private(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        os.fchmod(fd, 0o600)
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(temporary, path)


async def request_certificate(client, node_name: str, *, timeout: float = 900.0, poll: float = 0.5) -> bytes:
    """Create a CSR with `client` and wait until it is issued: the PEM of key and certificate."""
    key = ec.generate_private_key(ec.SECP256R1())
    created = await client.create(CSRS, csr_object(certificate_request_pem(key, node_name)))
    name = created["metadata"]["name"]
    log.info("requested a client certificate for node %s: CertificateSigningRequest %s", node_name, name)
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        csr = await client.get(CSRS, name)
        status = csr.get("status") or {}
        for condition in status.get("conditions") or []:
            if condition.get("type") in ("Denied", "Failed") and condition.get("status", "True") == "True":
                raise CertificateBootstrapError(f"CertificateSigningRequest {name} was {condition['type'].lower()}: "
                                                f"{condition.get('reason', '')} {condition.get('message', '')}".strip())
        if status.get("certificate"):
            cert_pem = base64.b64decode(status["certificate"])
            key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL,
                                        serialization.NoEncryption())
            return cert_pem + key_pem
        if asyncio.get_running_loop().time() > deadline:
            raise CertificateBootstrapError(f"CertificateSigningRequest {name} was not issued within {timeout:.0f}s "
                                            f"(approve it with: kubectl certificate approve {name})")
        await asyncio.sleep(poll)


async def ensure_node_certificate(server: str, ca_pem: bytes, node_name: str, directory: Path,
                                  bootstrap_token: str | None) -> Path:
    """The path of a valid client certificate for `node_name` (key and certificate in one
    PEM file), reused, renewed or bootstrapped as needed."""
    from pyk8s.client import Client

    path = Path(directory) / CURRENT_FILE
    current = load_current(path, ca_pem, node_name)
    if current is not None and not current[1]:
        log.info("using the node client certificate %s", path)
        return path
    pem = None
    if current is not None:  # due for renewal: the node asks for itself
        async with Client(server, client_ssl_context(ca_pem, path), field_manager="kubelet") as client:
            try:
                pem = await request_certificate(client, node_name)
            except (errors.ApiError, CertificateBootstrapError) as error:
                log.warning("renewing the node client certificate failed (%s); keeping the current one", error)
                return path
    else:
        if not bootstrap_token:
            raise CertificateBootstrapError(f"no usable client certificate in {path} and no bootstrap token")
        async with Client.from_token(server, bootstrap_token, ca_pem, field_manager="kubelet") as client:
            pem = await request_certificate(client, node_name)
    _write_private(path, pem)
    log.info("stored the node client certificate %s", path)
    return path


def rotation_deadline(cert: x509.Certificate, fraction: float) -> datetime.datetime:
    """When a certificate is rotated: `fraction` (ROTATE_BETWEEN) of the way through its lifetime."""
    lifetime = cert.not_valid_after_utc - cert.not_valid_before_utc
    return cert.not_valid_before_utc + lifetime * fraction


class CertificateRotation:
    """Keeps the node client certificate in `path` (used by `client`) renewed; see the
    module docstring. `run()` loops until cancelled."""

    def __init__(self, client, ca_pem: bytes, node_name: str, path: Path, *,
                 fraction: Callable[[], float] = lambda: random.uniform(*ROTATE_BETWEEN),
                 now: Callable[[], datetime.datetime] = lambda: datetime.datetime.now(datetime.timezone.utc),
                 csr_timeout: float = 900.0):
        self.client = client
        self.ca_pem = ca_pem
        self.node_name = node_name
        self.path = Path(path)
        self.fraction = fraction
        self.now = now
        self.csr_timeout = csr_timeout
        self.rotations = 0

    def current(self) -> x509.Certificate:
        return x509.load_pem_x509_certificate(self.path.read_bytes())

    async def run(self) -> None:
        backoff = RETRY_BACKOFF[0]
        while True:
            cert = self.current()
            deadline = rotation_deadline(cert, self.fraction())
            log.info("node client certificate %s expires %s; rotating at %s", self.path,
                     cert.not_valid_after_utc.isoformat(), deadline.isoformat())
            await asyncio.sleep(max(0.0, (deadline - self.now()).total_seconds()))
            while True:
                try:
                    await self.rotate()
                    backoff = RETRY_BACKOFF[0]
                    break
                except asyncio.CancelledError:
                    raise
                except Exception as error:  # noqa: BLE001 - keep the old certificate, try again
                    log.warning("rotating the node client certificate failed (%s); retrying in %.0fs", error, backoff)
                    await asyncio.sleep(backoff)
                    backoff = min(backoff * 2, RETRY_BACKOFF[1])

    async def rotate(self) -> None:
        """One rotation: a CSR sent with the current certificate, the issued one stored,
        loaded and used by every new connection."""
        pem = await request_certificate(self.client, self.node_name, timeout=self.csr_timeout)
        _write_private(self.path, pem)
        self.client.ssl_context.load_cert_chain(str(self.path), str(self.path))
        # Pooled connections authenticated with the old certificate, which the server checks
        # on every request until it expires: drop them (upstream's kubelet closes them too).
        await self.client.reset_connections()
        self.rotations += 1
        log.info("rotated the node client certificate %s (valid until %s)", self.path,
                 self.current().not_valid_after_utc.isoformat())
