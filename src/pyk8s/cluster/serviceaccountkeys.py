"""The keys ServiceAccount tokens are signed and verified with, in k3s's layout under
`<data-dir>/server/tls`:
- `service.current.key`: the private key new tokens are signed with (ECDSA P-256, 0600);
- `service.key`: every public key a token may still be verified with, PEM blocks one after
  another (upstream's --service-account-key-file accepts such a bundle), the current one
  included.

Created at the first start and read at every later one, so tokens survive restarts.
`rotate_service_account_key` makes a new signing key and appends its public key to the
bundle: tokens signed with an older key stay valid until they expire (or until its block is
removed from `service.key`). A running server reads the files at start only.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from pyk8s.api import serviceaccounttoken as satoken
from pyk8s.cluster.files import write_file_atomic

SIGNING_KEY_FILE = "service.current.key"
VERIFICATION_KEYS_FILE = "service.key"


@dataclass
class ServiceAccountKeys:
    signing_key: object          # cryptography EllipticCurvePrivateKey
    public_keys: list            # every verification key, the signing key's first

    def sign(self, claims: dict) -> str:
        return satoken.sign(self.signing_key, claims)

    def verify(self, token: str) -> dict:
        return satoken.decode_and_verify(token, self.public_keys)


def _public_pem(key) -> bytes:
    from cryptography.hazmat.primitives import serialization
    return key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


def _private_pem(key) -> bytes:
    from cryptography.hazmat.primitives import serialization
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def _new_key():
    from cryptography.hazmat.primitives.asymmetric import ec
    return ec.generate_private_key(ec.SECP256R1())


def _read_public_keys(path: Path) -> list:
    from cryptography.hazmat.primitives import serialization
    keys = []
    if not path.exists():
        return keys
    text = path.read_bytes()
    marker = b"-----END PUBLIC KEY-----"
    for block in text.split(marker):
        if b"-----BEGIN PUBLIC KEY-----" in block:
            keys.append(serialization.load_pem_public_key(block.strip() + b"\n" + marker + b"\n"))
    return keys


def load_service_account_keys(tls_dir: Path) -> ServiceAccountKeys:
    """The keys of `tls_dir`, creating the signing key at the first start."""
    from cryptography.hazmat.primitives import serialization

    tls_dir = Path(tls_dir)
    tls_dir.mkdir(parents=True, exist_ok=True)
    signing_path = tls_dir / SIGNING_KEY_FILE
    if signing_path.exists():
        signing_key = serialization.load_pem_private_key(signing_path.read_bytes(), password=None)
    else:
        signing_key = _new_key()
        write_file_atomic(signing_path, _private_pem(signing_key), 0o600)
    bundle_path = tls_dir / VERIFICATION_KEYS_FILE
    public_keys = _read_public_keys(bundle_path)
    current_kid = satoken.key_id(signing_key.public_key())
    if current_kid not in {satoken.key_id(key) for key in public_keys}:
        public_keys.append(signing_key.public_key())
        write_file_atomic(bundle_path, b"".join(_public_pem(key) for key in public_keys), 0o600)
    # The signing key first: /openid/v1/jwks lists it first, and verification tries it first.
    public_keys.sort(key=lambda key: satoken.key_id(key) != current_kid)
    return ServiceAccountKeys(signing_key, public_keys)


def rotate_service_account_key(tls_dir: Path) -> ServiceAccountKeys:
    """A new signing key; the old public keys stay in the bundle (old tokens keep working)."""
    tls_dir = Path(tls_dir)
    load_service_account_keys(tls_dir)  # the bundle holds the current key before it is replaced
    write_file_atomic(tls_dir / SIGNING_KEY_FILE, _private_pem(_new_key()), 0o600)
    return load_service_account_keys(tls_dir)
