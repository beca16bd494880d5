"""The API client every pyk8s component uses to talk to the API server.

Components (controllers, scheduler, kubelet, proxy, dns) know the cluster only through
this client: list, watch, get, create, update, patch and delete over HTTPS with a client
certificate (or, for a node that joined with a token, a bearer token), exactly like any
other Kubernetes client. Objects are plain JSON dicts; API errors come back as the
`pyk8s.api.errors` exception for their Status reason.
"""

from __future__ import annotations

import os
import ssl
import time
from pathlib import Path
from typing import Any, AsyncIterator

import aiohttp
import orjson

from pyk8s.api import errors
from pyk8s.api.resources import Resource

# In-cluster configuration, as client-go's rest.InClusterConfig reads it.
SERVICE_ACCOUNT_DIR = Path("/var/run/secrets/kubernetes.io/serviceaccount")
# client-go re-reads a token file at most once a minute (the kubelet renews the file well
# before the token expires).
TOKEN_FILE_RELOAD_SECONDS = 60.0

_ERRORS_BY_REASON = {cls.reason: cls for cls in (
    errors.BadRequest, errors.Unauthorized, errors.Forbidden, errors.NotFound, errors.MethodNotAllowed,
    errors.AlreadyExists, errors.Gone, errors.UnsupportedMediaType, errors.TooManyRequests,
    errors.InternalError, errors.ServiceUnavailable, errors.Timeout, errors.NotAcceptable)}
_ERRORS_BY_CODE = {cls.code: cls for cls in reversed(list(_ERRORS_BY_REASON.values()))}


def error_from_status(status: dict[str, Any], http_code: int) -> errors.ApiError:
    reason = status.get("reason", "")
    message = status.get("message", "") or f"HTTP {http_code}"
    if reason == "Invalid":
        details = status.get("details") or {}
        error = errors.Invalid.__new__(errors.Invalid)
        errors.ApiError.__init__(error, message, details=details)
        error.causes = details.get("causes") or []
        return error
    if reason == "Conflict" or (http_code == 409 and reason != "AlreadyExists"):
        return errors.Conflict(message, details=status.get("details"))
    cls = _ERRORS_BY_REASON.get(reason) or _ERRORS_BY_CODE.get(http_code, errors.InternalError)
    return cls(message, details=status.get("details"))


def resource_path(resource: Resource, namespace: str | None = None, name: str | None = None,
                  subresource: str = "") -> str:
    base = f"/apis/{resource.group}/{resource.version}" if resource.group else f"/api/{resource.version}"
    if resource.namespaced and namespace:
        base += f"/namespaces/{namespace}"
    base += f"/{resource.plural}"
    if name:
        base += f"/{name}"
        if subresource:
            base += f"/{subresource}"
    return base


class Client:
    def __init__(self, server: str, ssl_context: ssl.SSLContext, *, field_manager: str = "pyk8s",
                 bearer_token: str | None = None, bearer_token_file: str | Path | None = None):
        self.server = server.rstrip("/")
        self.ssl_context = ssl_context
        self.field_manager = field_manager
        self._headers = {"Authorization": f"Bearer {bearer_token}"} if bearer_token else {}
        self._session: aiohttp.ClientSession | None = None
        self._token_file = Path(bearer_token_file) if bearer_token_file else None
        self._token_read_at: float | None = None

    @classmethod
    def in_cluster(cls, **kwargs) -> "Client":
        """A client for a pod: the `kubernetes` Service from KUBERNETES_SERVICE_HOST/PORT, its
        ServiceAccount token (re-read as the kubelet renews it) and the cluster CA."""
        host, port = os.environ["KUBERNETES_SERVICE_HOST"], os.environ["KUBERNETES_SERVICE_PORT"]
        ssl_context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ssl_context.minimum_version = ssl.TLSVersion.TLSv1_2
        ssl_context.load_verify_locations(cafile=str(SERVICE_ACCOUNT_DIR / "ca.crt"))
        host = f"[{host}]" if ":" in host else host
        return cls(f"https://{host}:{port}", ssl_context, bearer_token_file=SERVICE_ACCOUNT_DIR / "token", **kwargs)

    def _reload_token(self) -> None:
        now = time.monotonic()
        if self._token_read_at is not None and now - self._token_read_at < TOKEN_FILE_RELOAD_SECONDS:
            return
        try:
            token = self._token_file.read_text().strip()
        except OSError:
            return  # keep the token read last
        self._token_read_at = now
        self._headers["Authorization"] = f"Bearer {token}"
        if self._session is not None:
            self._session.headers["Authorization"] = self._headers["Authorization"]

    @classmethod
    def from_kubeconfig(cls, path: str | Path, context: str | None = None, **kwargs) -> "Client":
        """A client for a kubeconfig context (default: the current one)."""
        from pyk8s.client.kubeconfig import server_url_and_ssl_context

        server, ssl_context = server_url_and_ssl_context(Path(path), context)
        return cls(server, ssl_context, **kwargs)

    @classmethod
    def from_token(cls, server: str, token: str, ca_pem: bytes, **kwargs) -> "Client":
        """A client that trusts only the CA `ca_pem` and authenticates with bearer `token`
        (a node that joined with a node token: see client/nodetoken.py)."""
        ssl_context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ssl_context.minimum_version = ssl.TLSVersion.TLSv1_2
        ssl_context.load_verify_locations(cadata=ca_pem.decode("ascii"))
        return cls(server, ssl_context, bearer_token=token, **kwargs)

    async def __aenter__(self) -> "Client":
        return self

    async def __aexit__(self, *exc) -> None:
        await self.close()

    @property
    def session(self) -> aiohttp.ClientSession:
        if self._token_file is not None:
            self._reload_token()
        if self._session is None or self._session.closed:
            # Each watch holds a connection: a kubelet watches every object its pods use.
            connector = aiohttp.TCPConnector(ssl=self.ssl_context, limit=512)
            self._session = aiohttp.ClientSession(connector=connector, headers=self._headers,
                                                  json_serialize=lambda v: orjson.dumps(v).decode())
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()

    async def reset_connections(self) -> None:
        """Close every pooled connection (requests in flight on them fail, watches
        reconnect): the next requests open new ones, with what `ssl_context` holds now."""
        session, self._session = self._session, None
        if session is not None:
            await session.close()

    async def request(self, method: str, path: str, *, params: dict[str, Any] | None = None,
                      body: Any = None, content_type: str = "application/json") -> Any:
        data = orjson.dumps(body) if body is not None else None
        headers = {"Accept": "application/json"}
        if data is not None:
            headers["Content-Type"] = content_type
        async with self.session.request(method, self.server + path, params=_params(params), data=data,
                                        headers=headers) as reply:
            payload = await reply.read()
            value = orjson.loads(payload) if payload else None
            if reply.status >= 400:
                raise error_from_status(value if isinstance(value, dict) else {}, reply.status)
            return value

    async def get(self, resource: Resource, name: str, namespace: str | None = None) -> dict[str, Any]:
        return await self.request("GET", resource_path(resource, namespace, name))

    async def list(self, resource: Resource, namespace: str | None = None, **params: Any) -> dict[str, Any]:
        return await self.request("GET", resource_path(resource, namespace), params=params)

    async def create(self, resource: Resource, obj: dict[str, Any], namespace: str | None = None) -> dict[str, Any]:
        namespace = namespace or (obj.get("metadata") or {}).get("namespace")
        return await self.request("POST", resource_path(resource, namespace), body=obj,
                                  params={"fieldManager": self.field_manager})

    async def update(self, resource: Resource, obj: dict[str, Any], subresource: str = "") -> dict[str, Any]:
        meta = obj["metadata"]
        return await self.request("PUT", resource_path(resource, meta.get("namespace"), meta["name"], subresource),
                                  body=obj, params={"fieldManager": self.field_manager})

    async def patch(self, resource: Resource, name: str, patch: Any, namespace: str | None = None, *,
                    subresource: str = "", patch_type: str = "application/merge-patch+json") -> dict[str, Any]:
        return await self.request("PATCH", resource_path(resource, namespace, name, subresource), body=patch,
                                  content_type=patch_type, params={"fieldManager": self.field_manager})

    async def delete(self, resource: Resource, name: str, namespace: str | None = None, *,
                     grace_period_seconds: int | None = None, propagation_policy: str | None = None) -> Any:
        options: dict[str, Any] = {"kind": "DeleteOptions", "apiVersion": "v1"}
        if grace_period_seconds is not None:
            options["gracePeriodSeconds"] = grace_period_seconds
        if propagation_policy:
            options["propagationPolicy"] = propagation_policy
        return await self.request("DELETE", resource_path(resource, namespace, name), body=options)

    async def watch(self, resource: Resource, namespace: str | None = None, *, resource_version: str = "",
                    timeout_seconds: int | None = None, **params: Any) -> AsyncIterator[dict[str, Any]]:
        """Yields watch events ({"type", "object"}) until the server ends the stream."""
        query: dict[str, Any] = {"watch": "true", "allowWatchBookmarks": "true", **params}
        if resource_version:
            query["resourceVersion"] = resource_version
        if timeout_seconds is not None:
            query["timeoutSeconds"] = timeout_seconds
        timeout = aiohttp.ClientTimeout(total=None, sock_read=None)
        async with self.session.get(self.server + resource_path(resource, namespace), params=_params(query),
                                    headers={"Accept": "application/json"}, timeout=timeout) as reply:
            if reply.status >= 400:
                payload = await reply.read()
                raise error_from_status(orjson.loads(payload) if payload else {}, reply.status)
            async for line in reply.content:
                if line.strip():
                    yield orjson.loads(line)


def _params(params: dict[str, Any] | None) -> dict[str, str] | None:
    if not params:
        return None
    return {key: ("true" if value is True else "false" if value is False else str(value))
            for key, value in params.items() if value is not None}
