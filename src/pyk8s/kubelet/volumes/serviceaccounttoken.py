"""The projected volume's `serviceAccountToken` source: a token of the pod's ServiceAccount,
asked for through the TokenRequest API bound to the pod (its name and uid), with the
source's audience (none: the API server's own) and expirationSeconds.

Tokens are kept per (namespace, account, audience, lifetime, pod uid) by TokenManager, as
upstream's kubelet token manager: a kept token is handed out again until it needs a refresh,
i.e. once it is older than 80 % of its lifetime or than 24 h (minus a jitter of up to 10 s).
The volume is set up again on every pod sync (pods.py's resync, every 10 s), so the file is
renewed within a sync of that point; the atomic writer leaves it alone while it is unchanged.
If a refresh fails while the kept token is still valid, the kept one is written again and
the next sync retries. Entries of expired tokens are dropped.
"""

from __future__ import annotations

import calendar
import random
import time
from typing import Any, Callable

from pyk8s.api import errors
from pyk8s.kubelet.volumes.atomic_writer import FileProjection
from pyk8s.kubelet.volumes.base import MountError

MAX_TTL_SECONDS = 24 * 3600
MAX_JITTER_SECONDS = 10.0
REFRESH_FRACTION = 0.8


def _parse_time(value: str) -> float:
    return float(calendar.timegm(time.strptime(value, "%Y-%m-%dT%H:%M:%SZ")))


def requires_refresh(expiration_seconds: int, expires_at: float, now: float, jitter: float) -> bool:
    """Upstream's requiresRefresh: past 24 h since issue, or within 20 % of the lifetime
    (plus jitter) of the expiry."""
    issued_at = expires_at - expiration_seconds
    if now > issued_at + MAX_TTL_SECONDS - jitter:
        return True
    return now > expires_at - expiration_seconds * (1 - REFRESH_FRACTION) - jitter


class TokenManager:
    def __init__(self, client, *, now: Callable[[], float] = time.time,
                 jitter: Callable[[], float] = lambda: random.uniform(0, MAX_JITTER_SECONDS)):
        self.client = client
        self.now = now
        self.jitter = jitter
        self._tokens: dict[tuple, tuple[str, float, int]] = {}  # key -> (token, expires_at, expirationSeconds)

    async def token(self, namespace: str, account: str, pod_name: str, pod_uid: str,
                    audience: str, expiration_seconds: int) -> str:
        key = (namespace, account, audience, expiration_seconds, pod_uid)
        now = self.now()
        self._tokens = {k: entry for k, entry in self._tokens.items() if entry[1] > now}
        kept = self._tokens.get(key)
        if kept is not None and not requires_refresh(kept[2], kept[1], now, self.jitter()):
            return kept[0]
        spec: dict[str, Any] = {"expirationSeconds": expiration_seconds,
                                "boundObjectRef": {"apiVersion": "v1", "kind": "Pod", "name": pod_name, "uid": pod_uid}}
        if audience:
            spec["audiences"] = [audience]
        request = {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest", "spec": spec}
        try:
            answer = await self.client.request("POST", f"/api/v1/namespaces/{namespace}/serviceaccounts/{account}/token",
                                               body=request)
            status = answer["status"]
            token, expires_at = status["token"], _parse_time(status["expirationTimestamp"])
        except (errors.ApiError, OSError, KeyError, TypeError, ValueError) as error:
            if kept is not None:
                return kept[0]  # still valid: keep serving it, the next sync asks again
            raise MountError(f'failed to fetch token: {error}') from None
        self._tokens[key] = (token, expires_at, int((answer.get("spec") or {}).get("expirationSeconds")
                                                    or expiration_seconds))
        return token


async def service_account_token_source(context, pod: dict[str, Any], source: dict[str, Any],
                                       default_mode: int) -> dict[str, FileProjection]:
    manager = getattr(context, "service_account_tokens", None)
    if manager is None:
        manager = context.service_account_tokens = TokenManager(context.client)
    meta, spec = pod["metadata"], pod.get("spec") or {}
    token = await manager.token(meta["namespace"], spec.get("serviceAccountName") or "default", meta["name"],
                                meta["uid"], source.get("audience") or "",
                                int(source.get("expirationSeconds") or 3600))
    return {source.get("path") or "token": FileProjection(token.encode(), default_mode)}
