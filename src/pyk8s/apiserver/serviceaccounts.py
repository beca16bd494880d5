"""Pod identities in the API server: ServiceAccount tokens (upstream's TokenRequest REST,
token authenticator and issuer discovery) and the ServiceAccount admission plugin.

- `create_token`: POST serviceaccounts/NAME/token. A TokenRequest names audiences (default:
  the API server's own, i.e. the issuer), a lifetime (default 1 h, at least 10 min) and
  maybe an object to bind the token to (Pod, Secret or Node, checked to exist with the
  given uid; a pod must run as this ServiceAccount). The token is an ES256 JWT
  (api/serviceaccounttoken.py) signed with the key in the data dir
  (cluster/serviceaccountkeys.py).
- `ServiceAccountTokenAuthenticator`: a bearer JWT we signed is the user
  `system:serviceaccount:NS:NAME` in groups system:serviceaccounts,
  system:serviceaccounts:NS (and system:authenticated), while it has not expired, one of its
  audiences is ours, its ServiceAccount still exists with the same uid and so does the
  object it is bound to (a deleted pod's token works at most 60 s past its
  deletionTimestamp, as upstream). Legacy tokens (from kubernetes.io/service-account-token
  Secrets) have no expiry and are valid while their Secret holds exactly that token.
  Answers are kept `CACHE_SECONDS`, so a busy pod does not cost two reads per request.
- issuer discovery: `/.well-known/openid-configuration` and `/openid/v1/jwks`, readable
  anonymously (upstream's system:service-account-issuer-discovery binding).
- `admit_pod`: pods get `default` as ServiceAccount, must name an existing one, and (unless
  automountServiceAccountToken is false on the pod, or on the account with the pod silent)
  get the projected volume `kube-api-access-XXXXX` (token, ca.crt from the kube-root-ca.crt
  ConfigMap, namespace) mounted read-only at /var/run/secrets/kubernetes.io/serviceaccount
  in every container; an account's imagePullSecrets are copied to a pod that has none.

Expiry: tokens live as long as they were asked to (the kubelet asks 3607 s and refreshes at
80 %). Upstream's --service-account-extend-token-expiration (default on there) would give
kubelet tokens a year; `extend_expiration` does so here only when asked, so a stolen
projected token stops working within the hour.
"""

from __future__ import annotations

import asyncio
import hashlib
import random
import time
from typing import Any, Callable

from pyk8s.api import errors
from pyk8s.api import serviceaccounttoken as satoken
from pyk8s.api.resources import lookup

SERVICE_ACCOUNTS = lookup("", "v1", "serviceaccounts")
PODS = lookup("", "v1", "pods")
SECRETS = lookup("", "v1", "secrets")
NODES = lookup("", "v1", "nodes")

DISCOVERY_PATH = "/.well-known/openid-configuration"
JWKS_PATH = "/openid/v1/jwks"
JWKS_CONTENT_TYPE = "application/jwk-set+json"

DEFAULT_EXPIRATION_SECONDS = 3600
MIN_EXPIRATION_SECONDS = 600
MAX_EXPIRATION_SECONDS = 1 << 32
# Upstream keeps a deleted bound object's tokens valid this long past its deletionTimestamp.
DELETION_GRACE_SECONDS = 60
CACHE_SECONDS = 2.0
CACHE_ENTRIES = 1024

LEGACY_TOKEN_TYPE = "kubernetes.io/service-account-token"
SA_NAME_ANNOTATION = "kubernetes.io/service-account.name"
SA_UID_ANNOTATION = "kubernetes.io/service-account.uid"

MOUNT_PATH = "/var/run/secrets/kubernetes.io/serviceaccount"
VOLUME_PREFIX = "kube-api-access-"
ROOT_CA_CONFIG_MAP = "kube-root-ca.crt"
MIRROR_POD_ANNOTATION = "kubernetes.io/config.mirror"
_NAME_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"  # upstream's utilrand alphabet


def _rfc3339(seconds: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(seconds))


def _parse_rfc3339(value: Any) -> float | None:
    import calendar
    if not isinstance(value, str):
        return None
    try:
        return float(calendar.timegm(time.strptime(value, "%Y-%m-%dT%H:%M:%SZ")))
    except ValueError:
        return None


async def _get(registry, resource, namespace: str | None, name: str) -> dict[str, Any] | None:
    try:
        return await registry.get(resource, namespace, name)
    except errors.NotFound:
        return None


# ---- issuer discovery ---------------------------------------------------------------------

def discovery_document(issuer: str) -> dict[str, Any]:
    """jwks_uri under the issuer, as upstream derives it when --service-account-jwks-uri is unset."""
    return satoken.openid_configuration(issuer, issuer.rstrip("/") + JWKS_PATH)


def anonymous_discovery(method: str, path: str) -> bool:
    return method == "GET" and path in (DISCOVERY_PATH, JWKS_PATH)


# ---- TokenRequest ---------------------------------------------------------------------------

def _invalid(name: str, causes: list[dict[str, Any]]) -> errors.Invalid:
    return errors.Invalid("TokenRequest", name, causes, group="authentication.k8s.io")


async def create_token(registry, keys, issuer: str, api_audiences: list[str], namespace: str, name: str,
                       body: Any, *, now: float | None = None, extend_expiration: bool = False) -> dict[str, Any]:
    """The TokenRequest answered (upstream's TokenREST.Create)."""
    if not isinstance(body, dict) or body.get("kind") not in (None, "TokenRequest"):
        raise errors.BadRequest(f"not a TokenRequest: {body!r}"[:200])
    spec = body.get("spec") if isinstance(body.get("spec"), dict) else {}
    expiration = spec.get("expirationSeconds")
    if expiration is None:
        expiration = DEFAULT_EXPIRATION_SECONDS
    if isinstance(expiration, bool) or not isinstance(expiration, int):
        raise errors.BadRequest("json: cannot unmarshal into Go struct field TokenRequestSpec.spec.expirationSeconds of type int64")
    if expiration < MIN_EXPIRATION_SECONDS:
        raise _invalid(name, [errors.invalid("spec.expirationSeconds", expiration, "may not specify a duration less than 10 minutes")])
    if expiration > MAX_EXPIRATION_SECONDS:
        raise _invalid(name, [errors.invalid("spec.expirationSeconds", expiration, "may not specify a duration larger than 2^32 seconds")])
    audiences = spec.get("audiences") or list(api_audiences)
    if not isinstance(audiences, list) or not all(isinstance(a, str) for a in audiences):
        raise errors.BadRequest("json: cannot unmarshal into Go struct field TokenRequestSpec.spec.audiences of type string")

    account = await registry.get(SERVICE_ACCOUNTS, namespace, name)  # NotFound as upstream answers it
    if account["metadata"].get("deletionTimestamp"):
        raise errors.NotFound.of("", "serviceaccounts", name)

    bound = node = None
    pod = None
    reference = spec.get("boundObjectRef")
    if isinstance(reference, dict) and reference:
        kind, api_version = reference.get("kind", ""), reference.get("apiVersion", "")
        ref_name, ref_uid = reference.get("name", ""), reference.get("uid", "")
        resource = {"Pod": PODS, "Secret": SECRETS, "Node": NODES}.get(kind) if api_version == "v1" else None
        if resource is None:
            group, _, version = api_version.rpartition("/")
            raise errors.BadRequest(f'cannot bind token for serviceaccount "{name}" to object of type '
                                    f'{group}/{version}, Kind={kind}')
        target = await registry.get(resource, None if kind == "Node" else namespace, ref_name)
        target_uid = target["metadata"].get("uid", "")
        if ref_uid and ref_uid != target_uid:
            raise errors.Conflict(
                f'Operation cannot be fulfilled on {kind} "{ref_name}": the UID in the bound object reference '
                f'({ref_uid}) does not match the UID in record. The object might have been deleted and then recreated',
                details={"name": ref_name, "kind": kind})
        if kind == "Pod":
            pod = target
            if (target.get("spec") or {}).get("serviceAccountName", "default") != name:
                raise errors.BadRequest(f'cannot bind token for serviceaccount "{name}" to pod running with '
                                        f'different serviceaccount name.')
            node_name = (target.get("spec") or {}).get("nodeName")
            if node_name:
                node_obj = await _get(registry, NODES, None, node_name)
                node = satoken.BoundObject("Node", node_name, (node_obj or {}).get("metadata", {}).get("uid", ""))
        bound = satoken.BoundObject(kind, ref_name, target_uid)

    issued_at = int(now if now is not None else time.time())
    lifetime, warn_after = expiration, None
    if extend_expiration and pod is not None and expiration == satoken.KUBELET_TOKEN_EXPIRATION_SECONDS \
            and set(audiences) & set(api_audiences):
        lifetime, warn_after = satoken.EXTENDED_EXPIRATION_SECONDS, issued_at + expiration
    claims = satoken.bound_claims(issuer=issuer, audiences=audiences, namespace=namespace, service_account=account,
                                  now=issued_at, expiration_seconds=lifetime, bound=bound, node=node,
                                  warn_after=warn_after)
    out_spec: dict[str, Any] = {"audiences": audiences, "expirationSeconds": expiration}
    if bound is not None:
        out_spec["boundObjectRef"] = {"kind": bound.kind, "apiVersion": "v1", "name": bound.name, "uid": bound.uid}
    else:
        out_spec["boundObjectRef"] = None
    return {"kind": "TokenRequest", "apiVersion": "authentication.k8s.io/v1",
            "metadata": {"name": name, "namespace": namespace, "creationTimestamp": None},
            "spec": out_spec,
            "status": {"token": keys.sign(claims), "expirationTimestamp": _rfc3339(issued_at + expiration)}}


# ---- authentication -------------------------------------------------------------------------

class ServiceAccountTokenAuthenticator:
    """Bearer JWTs we signed (bound and legacy); `authenticate` returns
    (user, groups, uid, extra) or None."""

    def __init__(self, registry, keys, *, issuer: str = satoken.DEFAULT_ISSUER,
                 audiences: list[str] | None = None, cache_seconds: float = CACHE_SECONDS,
                 clock: Callable[[], float] = time.monotonic, now: Callable[[], float] = time.time):
        self.registry = registry
        self.keys = keys
        self.issuer = issuer
        self.audiences = list(audiences or [issuer])
        self.cache_seconds = cache_seconds
        self.clock = clock
        self.now = now
        self._cache: dict[bytes, tuple[float, Any]] = {}

    async def authenticate(self, token: str):
        if not satoken.looks_like_jwt(token):
            return None
        digest = hashlib.sha256(token.encode()).digest()
        moment = self.clock()
        cached = self._cache.get(digest)
        if cached is not None and cached[0] > moment:
            answer = cached[1]
            # The cache never outlives the token itself.
            if answer is None or answer[4] is None or answer[4] > self.now():
                return None if answer is None else answer[:4]
        answer = await self._authenticate(token)
        if len(self._cache) >= CACHE_ENTRIES:
            self._cache = {key: entry for key, entry in self._cache.items() if entry[0] > moment}
            if len(self._cache) >= CACHE_ENTRIES:
                self._cache.clear()
        self._cache[digest] = (moment + self.cache_seconds, answer)
        return None if answer is None else answer[:4]

    async def _authenticate(self, token: str):
        try:
            claims = self.keys.verify(token)
        except satoken.TokenError:
            return None
        issuer = claims.get("iss")
        try:
            if issuer == satoken.LEGACY_ISSUER:
                return await self._legacy(token, satoken.parse_legacy(claims))
            if issuer == self.issuer:
                return await self._bound(satoken.parse_bound(claims))
        except satoken.TokenError:
            return None
        return None

    async def _account(self, namespace: str, name: str, uid: str) -> dict[str, Any] | None:
        account = await _get(self.registry, SERVICE_ACCOUNTS, namespace, name)
        if account is None or account["metadata"].get("deletionTimestamp") or account["metadata"].get("uid") != uid:
            return None
        return account

    async def _bound(self, parsed: satoken.BoundToken):
        now = self.now()
        if now >= parsed.expires or now < parsed.not_before:
            return None
        if not set(parsed.audiences) & set(self.audiences):
            return None
        if await self._account(parsed.namespace, parsed.service_account, parsed.service_account_uid) is None:
            return None
        checks = [(PODS, parsed.namespace, parsed.pod), (SECRETS, parsed.namespace, parsed.secret)]
        if parsed.pod is None and parsed.secret is None:
            checks.append((NODES, None, parsed.node))  # bound to the node itself
        for resource, namespace, bound in checks:
            if bound is None:
                continue
            obj = await _get(self.registry, resource, namespace, bound.name)
            if obj is None or obj["metadata"].get("uid") != bound.uid:
                return None
            deleted = _parse_rfc3339(obj["metadata"].get("deletionTimestamp"))
            if deleted is not None and deleted < now - DELETION_GRACE_SECONDS:
                return None
        extra: list[tuple[str, tuple[str, ...]]] = []
        if parsed.pod is not None:
            extra += [(satoken.EXTRA_POD_NAME, (parsed.pod.name,)), (satoken.EXTRA_POD_UID, (parsed.pod.uid,))]
        if parsed.node is not None:
            extra.append((satoken.EXTRA_NODE_NAME, (parsed.node.name,)))
            if parsed.node.uid:
                extra.append((satoken.EXTRA_NODE_UID, (parsed.node.uid,)))
        if parsed.jti:
            extra.append((satoken.EXTRA_CREDENTIAL_ID, (f"JTI={parsed.jti}",)))
        return (satoken.service_account_user(parsed.namespace, parsed.service_account),
                satoken.service_account_groups(parsed.namespace), parsed.service_account_uid,
                tuple(sorted(extra)), parsed.expires)

    async def _legacy(self, token: str, parsed: satoken.LegacyToken):
        secret = await _get(self.registry, SECRETS, parsed.namespace, parsed.secret_name)
        if secret is None or secret["metadata"].get("deletionTimestamp") or secret.get("type") != LEGACY_TOKEN_TYPE:
            return None
        import base64
        import hmac
        stored = (secret.get("data") or {}).get("token")
        try:
            stored_token = base64.b64decode(stored or "", validate=True)
        except ValueError:
            return None
        if not hmac.compare_digest(stored_token, token.encode()):
            return None
        if await self._account(parsed.namespace, parsed.service_account, parsed.service_account_uid) is None:
            return None
        return (satoken.service_account_user(parsed.namespace, parsed.service_account),
                satoken.service_account_groups(parsed.namespace), parsed.service_account_uid, (), None)


# ---- admission ----------------------------------------------------------------------------

def _volume_name(existing: set[str]) -> str:
    while True:
        name = VOLUME_PREFIX + "".join(random.choice(_NAME_ALPHABET) for _ in range(5))
        if name not in existing:
            return name


def token_volume(name: str) -> dict[str, Any]:
    """Upstream's TokenVolumeSource, with the defaults written out (admission runs after
    defaulting here)."""
    return {"name": name, "projected": {"defaultMode": 0o644, "sources": [
        {"serviceAccountToken": {"expirationSeconds": satoken.KUBELET_TOKEN_EXPIRATION_SECONDS, "path": "token"}},
        {"configMap": {"name": ROOT_CA_CONFIG_MAP, "items": [{"key": "ca.crt", "path": "ca.crt"}]}},
        {"downwardAPI": {"items": [{"path": "namespace",
                                    "fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.namespace"}}]}},
    ]}}


async def _service_account_for_admission(registry, namespace: str, name: str) -> dict[str, Any] | None:
    # The default account is made by a controller just after its namespace: wait a little
    # for it, as upstream's plugin retries 10 times.
    attempts = 10 if name == "default" else 1
    for attempt in range(attempts):
        if attempt:
            await asyncio.sleep(random.uniform(0.1, 0.2))
        account = await _get(registry, SERVICE_ACCOUNTS, namespace, name)
        if account is not None:
            return account
    return None


async def admit_pod(registry, pod: dict[str, Any]) -> None:
    """Upstream's ServiceAccount admission plugin, on pod create."""
    meta = pod["metadata"]
    spec = pod.setdefault("spec", {})
    if (meta.get("annotations") or {}).get(MIRROR_POD_ANNOTATION) is not None:
        return  # static pods' mirrors carry no ServiceAccount
    name = spec.get("serviceAccountName") or "default"
    spec["serviceAccountName"] = spec["serviceAccount"] = name
    namespace = meta["namespace"]
    account = await _service_account_for_admission(registry, namespace, name)
    if account is None:
        raise errors.Forbidden(f'pods "{meta.get("name", "")}" is forbidden: error looking up service account '
                               f'{namespace}/{name}: serviceaccount "{name}" not found',
                               details={"name": meta.get("name", ""), "kind": "pods"})
    automount = spec.get("automountServiceAccountToken")
    if automount is None:
        automount = account.get("automountServiceAccountToken")
    if automount is not False:
        _mount_token(spec)
    if not spec.get("imagePullSecrets") and account.get("imagePullSecrets"):
        spec["imagePullSecrets"] = [{"name": s.get("name", "")} for s in account["imagePullSecrets"]
                                    if isinstance(s, dict)]


def _mount_token(spec: dict[str, Any]) -> None:
    containers = [c for key in ("initContainers", "containers") for c in spec.get(key) or [] if isinstance(c, dict)]
    volumes = spec.setdefault("volumes", [])
    # A pod that already mounts something at the path keeps it (upstream skips such containers).
    wanting = [c for c in containers
               if not any(m.get("mountPath") == MOUNT_PATH for m in c.get("volumeMounts") or [] if isinstance(m, dict))]
    if not wanting:
        return
    volume_name = _volume_name({v.get("name") for v in volumes if isinstance(v, dict)})
    volumes.append(token_volume(volume_name))
    for container in wanting:
        container.setdefault("volumeMounts", []).append(
            {"name": volume_name, "readOnly": True, "mountPath": MOUNT_PATH})
