"""ServiceAccount tokens as upstream's apiserver issues them: compact JWS (JWTs) signed with
ES256 (ECDSA P-256, SHA-256; the signature is r||s, 32 bytes each, as JOSE wants it).

Two shapes of claims, as upstream's pkg/serviceaccount/claims.go and legacy.go:
- bound tokens (TokenRequest, projected volumes): issuer, audiences, exp/iat/nbf, a random
  jti, subject `system:serviceaccount:NS:NAME` and a private `kubernetes.io` claim naming the
  namespace, the ServiceAccount and the object the token is bound to (a Pod, which brings
  its Node, a Secret or a Node), each with its uid;
- legacy tokens (Secrets of type kubernetes.io/service-account-token): issuer
  `kubernetes/serviceaccount`, no audience, no expiry, flat `kubernetes.io/serviceaccount/*`
  claims naming the Secret and the ServiceAccount.

Pure: no I/O. `decode_and_verify` only proves the token was signed by one of the given keys
and reads its claims; what the claims are worth (expiry, audience, the objects still
existing) is the authenticator's business.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import uuid
from dataclasses import dataclass
from typing import Any

import orjson

DEFAULT_ISSUER = "https://kubernetes.default.svc.cluster.local"
LEGACY_ISSUER = "kubernetes/serviceaccount"
USER_PREFIX = "system:serviceaccount:"
ALL_SERVICE_ACCOUNTS_GROUP = "system:serviceaccounts"
ALGORITHM = "ES256"
# What the ServiceAccount admission plugin asks for in every pod's projected volume
# (upstream's WarnOnlyBoundTokenExpirationSeconds: 1 h plus 7 s, so it can be told apart).
KUBELET_TOKEN_EXPIRATION_SECONDS = 3607
# What --service-account-extend-token-expiration gives such tokens upstream.
EXTENDED_EXPIRATION_SECONDS = 365 * 24 * 3600
# Upstream's extra keys on the user of a bound token.
EXTRA_POD_NAME = "authentication.kubernetes.io/pod-name"
EXTRA_POD_UID = "authentication.kubernetes.io/pod-uid"
EXTRA_NODE_NAME = "authentication.kubernetes.io/node-name"
EXTRA_NODE_UID = "authentication.kubernetes.io/node-uid"
EXTRA_CREDENTIAL_ID = "authentication.kubernetes.io/credential-id"

_LEGACY_PREFIX = "kubernetes.io/serviceaccount/"
LEGACY_NAMESPACE_CLAIM = _LEGACY_PREFIX + "namespace"
LEGACY_SECRET_NAME_CLAIM = _LEGACY_PREFIX + "secret.name"
LEGACY_SA_NAME_CLAIM = _LEGACY_PREFIX + "service-account.name"
LEGACY_SA_UID_CLAIM = _LEGACY_PREFIX + "service-account.uid"

MAX_TOKEN_BYTES = 64 * 1024  # larger bearer strings are not even parsed


class TokenError(ValueError):
    """Not a token we signed, or not readable as one."""


def service_account_user(namespace: str, name: str) -> str:
    return f"{USER_PREFIX}{namespace}:{name}"


def service_account_groups(namespace: str) -> tuple[str, ...]:
    return (ALL_SERVICE_ACCOUNTS_GROUP, f"{ALL_SERVICE_ACCOUNTS_GROUP}:{namespace}")


def split_user(username: str) -> tuple[str, str] | None:
    """(namespace, name) of `system:serviceaccount:NS:NAME`, else None."""
    if not username.startswith(USER_PREFIX):
        return None
    namespace, _, name = username[len(USER_PREFIX):].partition(":")
    if not namespace or not name or ":" in name:
        return None
    return namespace, name


# ---- base64url and keys -----------------------------------------------------------------

def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64url_decode(text: str) -> bytes:
    if not isinstance(text, str) or "=" in text:
        raise TokenError("malformed base64url")
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError):
        raise TokenError("malformed base64url") from None


def key_id(public_key) -> str:
    """Upstream's keyIDFromPublicKey: base64url(SHA-256(DER SubjectPublicKeyInfo))."""
    from cryptography.hazmat.primitives import serialization
    der = public_key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return b64url(hashlib.sha256(der).digest())


def jwk(public_key) -> dict[str, Any]:
    """The public key as a JWK (RFC 7517), in upstream's field order for /openid/v1/jwks."""
    numbers = public_key.public_numbers()
    return {"use": "sig", "kty": "EC", "kid": key_id(public_key), "crv": "P-256", "alg": ALGORITHM,
            "x": b64url(numbers.x.to_bytes(32, "big")), "y": b64url(numbers.y.to_bytes(32, "big"))}


def jwks(public_keys) -> dict[str, Any]:
    return {"keys": [jwk(key) for key in public_keys]}


def openid_configuration(issuer: str, jwks_uri: str) -> dict[str, Any]:
    """Upstream's service-account issuer discovery document."""
    return {"issuer": issuer, "jwks_uri": jwks_uri, "response_types_supported": ["id_token"],
            "subject_types_supported": ["public"], "id_token_signing_alg_values_supported": [ALGORITHM]}


# ---- signing and verifying ------------------------------------------------------------------

def sign(private_key, claims: dict[str, Any]) -> str:
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

    header = {"alg": ALGORITHM, "kid": key_id(private_key.public_key())}
    signing_input = f"{b64url(orjson.dumps(header))}.{b64url(orjson.dumps(claims))}"
    r, s = decode_dss_signature(private_key.sign(signing_input.encode("ascii"), ec.ECDSA(hashes.SHA256())))
    return f"{signing_input}.{b64url(r.to_bytes(32, 'big') + s.to_bytes(32, 'big'))}"


def looks_like_jwt(token: str) -> bool:
    return token.count(".") == 2 and len(token) <= MAX_TOKEN_BYTES


def decode_and_verify(token: str, public_keys) -> dict[str, Any]:
    """The claims of a token signed by one of `public_keys` (found by kid, or tried in turn
    when the header has none); TokenError for anything else."""
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

    if not isinstance(token, str) or not looks_like_jwt(token):
        raise TokenError("not a JWT")
    header_part, claims_part, signature_part = token.split(".")
    try:
        header = orjson.loads(b64url_decode(header_part))
        claims = orjson.loads(b64url_decode(claims_part))
    except orjson.JSONDecodeError:
        raise TokenError("malformed JWT") from None
    if not isinstance(header, dict) or not isinstance(claims, dict):
        raise TokenError("malformed JWT")
    if header.get("alg") != ALGORITHM:  # never "none", never an algorithm we did not choose
        raise TokenError("unexpected signing algorithm")
    signature = b64url_decode(signature_part)
    if len(signature) != 64:
        raise TokenError("malformed signature")
    der = encode_dss_signature(int.from_bytes(signature[:32], "big"), int.from_bytes(signature[32:], "big"))
    kid = header.get("kid")
    candidates = [key for key in public_keys if not kid or key_id(key) == kid] if isinstance(kid, (str, type(None))) else []
    signed = f"{header_part}.{claims_part}".encode("ascii")
    for key in candidates:
        try:
            key.verify(der, signed, ec.ECDSA(hashes.SHA256()))
            return claims
        except InvalidSignature:
            continue
    raise TokenError("invalid signature")


# ---- claims -----------------------------------------------------------------------------------

@dataclass
class BoundObject:
    """What a token is bound to: kind Pod, Secret or Node, with its uid."""
    kind: str
    name: str
    uid: str


def bound_claims(*, issuer: str, audiences: list[str], namespace: str, service_account: dict[str, Any],
                 now: int, expiration_seconds: int, bound: BoundObject | None = None,
                 node: BoundObject | None = None, warn_after: int | None = None,
                 jti: str | None = None) -> dict[str, Any]:
    """Upstream's token.Claims: a Pod binding brings the pod's node too (`node` here)."""
    account_meta = service_account["metadata"]
    private: dict[str, Any] = {"namespace": namespace}
    if bound is not None and bound.kind == "Node":
        node = bound
    if node is not None:
        private["node"] = {"name": node.name, "uid": node.uid}
    if bound is not None and bound.kind == "Pod":
        private["pod"] = {"name": bound.name, "uid": bound.uid}
    if bound is not None and bound.kind == "Secret":
        private["secret"] = {"name": bound.name, "uid": bound.uid}
    private["serviceaccount"] = {"name": account_meta["name"], "uid": account_meta.get("uid", "")}
    if warn_after is not None:
        private["warnafter"] = warn_after
    return {"aud": list(audiences), "exp": now + expiration_seconds, "iat": now, "iss": issuer,
            "jti": jti or str(uuid.uuid4()), "kubernetes.io": private, "nbf": now,
            "sub": service_account_user(namespace, account_meta["name"])}


def legacy_claims(service_account: dict[str, Any], secret: dict[str, Any]) -> dict[str, Any]:
    account_meta, secret_meta = service_account["metadata"], secret["metadata"]
    return {"iss": LEGACY_ISSUER,
            LEGACY_NAMESPACE_CLAIM: account_meta["namespace"],
            LEGACY_SECRET_NAME_CLAIM: secret_meta["name"],
            LEGACY_SA_NAME_CLAIM: account_meta["name"],
            LEGACY_SA_UID_CLAIM: account_meta.get("uid", ""),
            "sub": service_account_user(account_meta["namespace"], account_meta["name"])}


@dataclass
class BoundToken:
    """A bound token's claims, checked for shape (not yet for time, audience or objects)."""
    namespace: str
    service_account: str
    service_account_uid: str
    audiences: list[str]
    expires: int
    not_before: int
    issued: int
    jti: str
    pod: BoundObject | None = None
    secret: BoundObject | None = None
    node: BoundObject | None = None
    warn_after: int | None = None


@dataclass
class LegacyToken:
    namespace: str
    service_account: str
    service_account_uid: str
    secret_name: str


def _string(value: Any) -> str:
    if not isinstance(value, str) or not value:
        raise TokenError("missing claim")
    return value


def _number(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TokenError("missing or malformed time claim")
    return int(value)


def _object(private: dict[str, Any], key: str, kind: str) -> BoundObject | None:
    value = private.get(key)
    if value is None:
        return None
    if not isinstance(value, dict):
        raise TokenError(f"malformed {key} claim")
    return BoundObject(kind, _string(value.get("name")), _string(value.get("uid")))


def parse_bound(claims: dict[str, Any]) -> BoundToken:
    private = claims.get("kubernetes.io")
    if not isinstance(private, dict):
        raise TokenError("missing kubernetes.io claim")
    account = private.get("serviceaccount")
    if not isinstance(account, dict):
        raise TokenError("missing serviceaccount claim")
    namespace = _string(private.get("namespace"))
    name = _string(account.get("name"))
    if claims.get("sub") != service_account_user(namespace, name):
        raise TokenError("subject does not name the service account")
    audiences = claims.get("aud")
    if isinstance(audiences, str):
        audiences = [audiences]
    if not isinstance(audiences, list) or not all(isinstance(a, str) for a in audiences):
        raise TokenError("malformed aud claim")
    warn_after = private.get("warnafter")
    return BoundToken(namespace=namespace, service_account=name, service_account_uid=_string(account.get("uid")),
                      audiences=audiences, expires=_number(claims.get("exp")),
                      not_before=_number(claims.get("nbf", claims.get("iat", 0))),
                      issued=_number(claims.get("iat", 0)), jti=claims.get("jti") if isinstance(claims.get("jti"), str) else "",
                      pod=_object(private, "pod", "Pod"), secret=_object(private, "secret", "Secret"),
                      node=_object(private, "node", "Node"),
                      warn_after=_number(warn_after) if warn_after is not None else None)


def parse_legacy(claims: dict[str, Any]) -> LegacyToken:
    namespace = _string(claims.get(LEGACY_NAMESPACE_CLAIM))
    name = _string(claims.get(LEGACY_SA_NAME_CLAIM))
    if claims.get("sub") != service_account_user(namespace, name):
        raise TokenError("subject does not name the service account")
    return LegacyToken(namespace=namespace, service_account=name,
                       service_account_uid=_string(claims.get(LEGACY_SA_UID_CLAIM)),
                       secret_name=_string(claims.get(LEGACY_SECRET_NAME_CLAIM)))
