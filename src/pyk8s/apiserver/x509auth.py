"""Client certificates checked by the x509 authenticator, not by the TLS handshake.

Upstream's API server asks every client for a certificate without verifying it in the
handshake (Go's tls.RequestClientCert) and verifies the chain in its x509 authenticator:
a certificate from another CA, an expired one or one not meant for client auth is a 401
Unauthorized, like a bad token, never a handshake failure.

Python's ssl module cannot express that: it sets OpenSSL's verify mode without a verify
callback (`SSL_CTX_set_verify(ctx, mode, NULL)`), so CERT_OPTIONAL/CERT_REQUIRED abort the
handshake on any chain error, and CERT_NONE on a server sends no certificate request at
all. `request_client_certificates` therefore installs, through ctypes on the context's own
`SSL_CTX` (the one libssl the `_ssl` module is linked with), SSL_VERIFY_PEER with a
callback that accepts every chain; `ssl.SSLObject.getpeercert()` then returns whatever the
client sent, and `CertificateAuthenticator` does what Go's x509 verification does for a
client certificate: issued by a CA in the bundle (signature and issuer name), inside its
validity period, extended key usage clientAuth (or none/any).

Flow: TLS handshake (any client certificate accepted, DER kept on the connection) ->
`CertificateAuthenticator.user(der)` once per distinct certificate (cached, expiry still
checked every time) -> UserInfo (CN user, O groups) or None (401).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import datetime
import ssl
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

_SSL_VERIFY_PEER = 0x01
_VERIFY_CALLBACK = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_int, ctypes.c_void_p)


@_VERIFY_CALLBACK
def _accept_every_chain(preverify_ok: int, store_context: int) -> int:
    return 1  # the x509 authenticator decides, per request


def _libssl() -> ctypes.CDLL:
    """The libssl the `_ssl` extension is linked with (already loaded: same handle)."""
    import _ssl
    with open("/proc/self/maps") as maps:
        for line in maps:
            path = line.split()[-1] if len(line.split()) >= 6 else ""
            if "/libssl." in path:
                return ctypes.CDLL(path)
    name = ctypes.util.find_library("ssl")
    if name is None:
        raise RuntimeError(f"libssl not found (ssl module: {getattr(_ssl, '__file__', 'built in')})")
    return ctypes.CDLL(name)


def request_client_certificates(context: ssl.SSLContext) -> ssl.SSLContext:
    """Ask clients for a certificate and accept any in the handshake (module docstring).
    Setting `verify_mode` on the context afterwards undoes this."""
    if context.verify_mode == ssl.CERT_NONE:
        context.verify_mode = ssl.CERT_OPTIONAL  # so _ssl's own bookkeeping says "peer certs wanted"
    libssl = _libssl()
    libssl.SSL_CTX_set_verify.argtypes = [ctypes.c_void_p, ctypes.c_int, _VERIFY_CALLBACK]
    libssl.SSL_CTX_set_verify.restype = None
    libssl.SSL_CTX_get_verify_mode.argtypes = [ctypes.c_void_p]
    libssl.SSL_CTX_get_verify_mode.restype = ctypes.c_int
    # CPython's PySSLContext starts with PyObject_HEAD followed by its SSL_CTX pointer.
    ssl_ctx = ctypes.c_void_p.from_address(id(context) + object.__basicsize__).value
    if not ssl_ctx or libssl.SSL_CTX_get_verify_mode(ssl_ctx) != _SSL_VERIFY_PEER:
        raise RuntimeError("unexpected SSLContext layout: cannot request client certificates")
    libssl.SSL_CTX_set_verify(ssl_ctx, _SSL_VERIFY_PEER, _accept_every_chain)
    return context


class CertificateAuthenticator:
    """`user(der)`: the (name, groups) of a client certificate our CA bundle vouches for,
    else None. Results are cached by certificate bytes (bounded)."""

    CACHE_ENTRIES = 4096

    def __init__(self, ca_bundle: Path | bytes, *, now=None):
        pem = ca_bundle if isinstance(ca_bundle, bytes) else Path(ca_bundle).read_bytes()
        self.authorities = x509.load_pem_x509_certificates(pem)
        self.now = now or (lambda: datetime.datetime.now(datetime.timezone.utc))
        # der -> (name, groups, not before, not after), or None for a certificate we refuse
        self._cache: dict[bytes, tuple[str, tuple[str, ...], datetime.datetime, datetime.datetime] | None] = {}

    def user(self, der: bytes) -> tuple[str, tuple[str, ...]] | None:
        entry = self._cache.get(der, False)
        if entry is False:
            entry = self._verify(der)
            if len(self._cache) >= self.CACHE_ENTRIES:
                self._cache.clear()
            self._cache[der] = entry
        if entry is None:
            return None
        name, groups, not_before, not_after = entry
        if not not_before <= self.now() <= not_after:
            return None
        return name, groups

    def _verify(self, der: bytes) -> tuple[str, tuple[str, ...], datetime.datetime, datetime.datetime] | None:
        try:
            return self._checked(der)
        except Exception:  # noqa: BLE001 - whatever a client sends is a 401, never a 500
            return None

    def _checked(self, der: bytes) -> tuple[str, tuple[str, ...], datetime.datetime, datetime.datetime] | None:
        certificate = x509.load_der_x509_certificate(der)
        if not any(_issued_by(certificate, authority) for authority in self.authorities):
            return None
        try:
            usages = certificate.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
        except x509.ExtensionNotFound:
            usages = None
        except ValueError:  # a malformed extension
            return None
        if usages is not None and ExtendedKeyUsageOID.CLIENT_AUTH not in usages \
                and ExtendedKeyUsageOID.ANY_EXTENDED_KEY_USAGE not in usages:
            return None
        name = _attribute(certificate, NameOID.COMMON_NAME)
        groups = tuple(_attributes(certificate, NameOID.ORGANIZATION_NAME))
        return name, groups, certificate.not_valid_before_utc, certificate.not_valid_after_utc


def _issued_by(certificate: x509.Certificate, authority: x509.Certificate) -> bool:
    try:
        certificate.verify_directly_issued_by(authority)
    except (ValueError, TypeError, InvalidSignature):
        return False
    return True


def _attributes(certificate: x509.Certificate, oid: Any) -> list[str]:
    return [attribute.value for attribute in certificate.subject.get_attributes_for_oid(oid)
            if isinstance(attribute.value, str)]


def _attribute(certificate: x509.Certificate, oid: Any) -> str:
    values = _attributes(certificate, oid)
    return values[-1] if values else ""  # Go keeps the last CN of the subject
