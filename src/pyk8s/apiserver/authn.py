"""Who a request comes from: a client certificate signed by the cluster CA (x509auth.py), a bootstrap
token, a ServiceAccount token (apiserver/serviceaccounts.py), or nobody (allowed only to
read the public cluster-info ConfigMap and the service-account issuer discovery documents).

Bootstrap tokens follow upstream's bootstrap-token authenticator: `Authorization: Bearer
<id>.<secret>` names Secret `kube-system/bootstrap-token-<id>` of type
`bootstrap.kubernetes.io/token`, which must hold the same id and secret, allow
authentication and not have expired. The Secret is read through the registry and kept for
`CACHE_SECONDS`, so a busy agent does not read SQLite on every request while a deleted
token stops working within seconds. Expiry is checked on every request.

What an authenticated user may do is authz.py's question. Anonymous requests are limited
here to the one object kubeadm's discovery reads (upstream grants it to `system:anonymous`
by RBAC) and the issuer discovery documents.
"""

from __future__ import annotations

import base64
import binascii
import datetime
import hmac
import re
import time
from dataclasses import dataclass
from typing import Any, Callable

from pyk8s.api import errors
from pyk8s.api.resources import lookup
from pyk8s.apiserver import requestcontext

SECRETS = lookup("", "v1", "secrets")

BOOTSTRAP_TOKEN_TYPE = "bootstrap.kubernetes.io/token"
BOOTSTRAP_TOKEN_NAMESPACE = "kube-system"
BOOTSTRAP_TOKEN_SECRET_PREFIX = "bootstrap-token-"
BOOTSTRAP_USER_PREFIX = "system:bootstrap:"
BOOTSTRAPPERS_GROUP = "system:bootstrappers"
TOKEN_PATTERN = re.compile(r"([a-z0-9]{6})\.([a-z0-9]{16})")
# Upstream accepts only extra groups under system:bootstrappers: a token cannot claim
# system:masters.
EXTRA_GROUP_PATTERN = re.compile(r"system:bootstrappers:[a-z0-9:-]{0,255}[a-z0-9]")

CLUSTER_INFO_NAMESPACE = "kube-public"
CLUSTER_INFO_NAME = "cluster-info"
CLUSTER_INFO_PATH = f"/api/v1/namespaces/{CLUSTER_INFO_NAMESPACE}/configmaps/{CLUSTER_INFO_NAME}"

CACHE_SECONDS = 2.0
CACHE_ENTRIES = 256  # bounded: unknown ids are cached too, and anyone can send those

ANONYMOUS = "system:anonymous"
UNAUTHENTICATED_GROUP = "system:unauthenticated"


AUTHENTICATED_GROUP = "system:authenticated"


@dataclass(frozen=True)
class UserInfo:
    name: str
    groups: tuple[str, ...] = ()
    uid: str = ""
    extra: tuple[tuple[str, tuple[str, ...]], ...] = ()  # (key, values) pairs, sorted by key


def bootstrap_token_secret_name(token_id: str) -> str:
    return BOOTSTRAP_TOKEN_SECRET_PREFIX + token_id


def anonymous_allowed(method: str, path: str) -> bool:
    """Only `GET` of kube-public/cluster-info: what a joining node reads before it trusts
    the server (kubeadm's token discovery), and of the service-account issuer discovery
    documents (upstream's system:service-account-issuer-discovery binding)."""
    from pyk8s.apiserver.serviceaccounts import anonymous_discovery
    return method == "GET" and (path == CLUSTER_INFO_PATH or anonymous_discovery(method, path))


def user_from_certificate(peercert: dict[str, Any]) -> UserInfo:
    """CN is the user, each O a group (upstream's x509 authenticator)."""
    name, groups = "", []
    for rdn in peercert.get("subject") or ():
        for attribute, value in rdn:
            if attribute == "commonName":
                name = value
            elif attribute == "organizationName":
                groups.append(value)
    return UserInfo(name, tuple(groups))


def secret_string(secret: dict[str, Any], key: str) -> str | None:
    """A Secret data value decoded to text; None when absent or not base64 text."""
    value = (secret.get("data") or {}).get(key)
    if not isinstance(value, str):
        return None
    try:
        return base64.b64decode(value, validate=True).decode()
    except (binascii.Error, UnicodeDecodeError):
        return None


def token_expired(secret: dict[str, Any], now: datetime.datetime) -> bool:
    """No (or an empty) expiration never expires; upstream treats an unparsable one as
    expired."""
    if not (secret.get("data") or {}).get("expiration"):
        return False
    expiration = secret_string(secret, "expiration") or ""
    try:
        when = datetime.datetime.fromisoformat(expiration.replace("Z", "+00:00"))
    except ValueError:
        return True
    if when.tzinfo is None:
        return True
    return when <= now


def bootstrap_token_user(secret: dict[str, Any] | None, token_id: str, token_secret: str,
                         now: datetime.datetime) -> UserInfo | None:
    """The user a token authenticates as, given its Secret; None if the Secret does not
    vouch for it."""
    if secret is None or (secret.get("metadata") or {}).get("deletionTimestamp"):
        return None
    if secret.get("type") != BOOTSTRAP_TOKEN_TYPE:
        return None
    stored_secret = secret_string(secret, "token-secret") or ""
    if not hmac.compare_digest(stored_secret.encode(), token_secret.encode()):
        return None
    if secret_string(secret, "token-id") != token_id:
        return None
    if token_expired(secret, now):
        return None
    if secret_string(secret, "usage-bootstrap-authentication") != "true":
        return None
    groups = {BOOTSTRAPPERS_GROUP}
    for group in (secret_string(secret, "auth-extra-groups") or "").split(","):
        group = group.strip()
        if not group:
            continue
        if not EXTRA_GROUP_PATTERN.fullmatch(group):
            return None
        groups.add(group)
    return UserInfo(BOOTSTRAP_USER_PREFIX + token_id, tuple(sorted(groups)))


def now_utc() -> datetime.datetime:
    return datetime.datetime.now(datetime.timezone.utc)


class BootstrapTokenAuthenticator:
    def __init__(self, registry, *, cache_seconds: float = CACHE_SECONDS,
                 clock: Callable[[], float] = time.monotonic,
                 now: Callable[[], datetime.datetime] = now_utc):
        self.registry = registry
        self.cache_seconds = cache_seconds
        self.clock = clock
        self.now = now
        self._secrets: dict[str, tuple[float, dict[str, Any] | None]] = {}

    async def authenticate(self, token: str) -> UserInfo | None:
        match = TOKEN_PATTERN.fullmatch(token)
        if match is None:
            return None
        token_id, token_secret = match.groups()
        secret = await self._secret(token_id)
        return bootstrap_token_user(secret, token_id, token_secret, self.now())

    async def _secret(self, token_id: str) -> dict[str, Any] | None:
        moment = self.clock()
        cached = self._secrets.get(token_id)
        if cached is not None and cached[0] > moment:
            return cached[1]
        try:
            secret = await self.registry.get(SECRETS, BOOTSTRAP_TOKEN_NAMESPACE, bootstrap_token_secret_name(token_id))
        except errors.NotFound:
            secret = None
        if len(self._secrets) >= CACHE_ENTRIES:
            self._secrets = {key: entry for key, entry in self._secrets.items() if entry[0] > moment}
            if len(self._secrets) >= CACHE_ENTRIES:
                self._secrets.clear()
        self._secrets[token_id] = (moment + self.cache_seconds, secret)
        return secret


class RequestAuthenticator:
    """Upstream's order: a client certificate wins; else an Authorization header must
    authenticate (a bad token is 401 even where anonymous access would be allowed); else
    the request is anonymous."""

    def __init__(self, registry, service_account_tokens=None, certificates=None, **token_options):
        self.bootstrap_tokens = BootstrapTokenAuthenticator(registry, **token_options)
        self.service_account_tokens = service_account_tokens
        self.certificates = certificates  # x509auth.CertificateAuthenticator

    async def authenticate(self, method: str, path: str, peercert: bytes | dict[str, Any] | None,
                           authorization: str | None) -> UserInfo | None:
        """`peercert`: the client certificate as DER, verified here by `certificates` (a
        certificate it refuses is a 401, as upstream's x509 authenticator), or the decoded
        form of one the TLS handshake has already verified."""
        user = await self._authenticate(method, path, peercert, authorization)
        # Kept for what runs below the HTTP layer on this request (CSR requestor, NodeRestriction).
        requestcontext.current_user.set(user)
        return user

    async def _authenticate(self, method: str, path: str, peercert: dict[str, Any] | None,
                            authorization: str | None) -> UserInfo | None:
        if isinstance(peercert, (bytes, bytearray)) and peercert:
            if self.certificates is None:
                return None
            found = self.certificates.user(bytes(peercert))
            return UserInfo(found[0], found[1]) if found is not None else None
        if peercert:
            return user_from_certificate(peercert)
        if authorization is not None:
            scheme, _, token = authorization.strip().partition(" ")
            if scheme.lower() != "bearer" or not token.strip():
                return None
            token = token.strip()
            if self.service_account_tokens is not None and TOKEN_PATTERN.fullmatch(token) is None:
                found = await self.service_account_tokens.authenticate(token)
                if found is None:
                    return None
                name, groups, uid, extra = found
                return UserInfo(name, (*groups, AUTHENTICATED_GROUP), uid, extra)
            return await self.bootstrap_tokens.authenticate(token)
        if anonymous_allowed(method, path):
            return UserInfo(ANONYMOUS, (UNAUTHENTICATED_GROUP,))
        return None
