"""Reaching a pod's node: the API server's `pods/log` (and, later, exec/attach/portforward)
go to the kubelet's HTTPS endpoint on the node the pod is bound to, as upstream's
apiserver does, authenticating with the API server's own client certificate.
"""

from __future__ import annotations

import ssl
from typing import Any

import aiohttp

from pyk8s.api import errors


def node_address(node: dict[str, Any]) -> tuple[str, int]:
    """(InternalIP, kubelet port) from a Node object, as upstream's preferred address types."""
    status = node.get("status") or {}
    addresses = {a.get("type"): a.get("address") for a in status.get("addresses") or []}
    host = addresses.get("InternalIP") or addresses.get("ExternalIP") or addresses.get("Hostname")
    port = ((status.get("daemonEndpoints") or {}).get("kubeletEndpoint") or {}).get("Port") or 10250
    if not host:
        raise errors.InternalError(f'node "{node["metadata"]["name"]}" has no address')
    return host, int(port)


def default_container(pod: dict[str, Any]) -> str:
    """kubectl's choice when none is given: the annotated default, else the first container."""
    annotation = (pod["metadata"].get("annotations") or {}).get("kubectl.kubernetes.io/default-container")
    containers = [c["name"] for c in (pod.get("spec") or {}).get("containers") or []]
    if annotation in containers:
        return annotation
    return containers[0] if containers else ""


class KubeletClient:
    def __init__(self, ssl_context: ssl.SSLContext):
        self.ssl_context = ssl_context
        self._session: aiohttp.ClientSession | None = None

    @property
    def session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=self.ssl_context))
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()

    def get(self, host: str, port: int, path: str, params: dict[str, str]):
        """A streaming GET; use as `async with`."""
        url = f"https://{host}:{port}{path}"
        return self.session.get(url, params=params, timeout=aiohttp.ClientTimeout(total=None, sock_connect=10))
