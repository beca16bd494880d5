"""The kubelet's streaming endpoints: exec, attach and port-forward.

`GET|POST /exec/{namespace}/{pod}/{container}?command=..&input=1&output=1&error=1&tty=1`,
`/attach/{namespace}/{pod}/{container}?...` and `/portForward/{namespace}/{pod}` are what the
API server's `pods/exec|attach|portforward` subresources reach (upstream kubelet's server
paths).

exec and attach: each request asks the runtime (CRI Exec / Attach) for a fresh stream URL —
containerd's URLs are single-use — then opens that URL with the caller's upgrade headers and,
once containerd answers 101, splices the two connections byte for byte (upstream's kubelet
proxies the same way). Whatever containerd's stream server speaks (SPDY/3.1 with
v4.channel.k8s.io, WebSocket v4) passes through unchanged; the API server is the one that
translates newer protocols.

port-forward is served here, without the runtime's stream server, over SPDY
(`pyk8s.kubelet.portforward`) and over channel WebSockets (`pyk8s.kubelet.wsportforward`,
which the API server passes through unchanged): the kubelet finds the sandbox's network
namespace (CRI PodSandboxStatus, verbose) and dials the pod's ports from inside it.

Data flow of the splices (`pyk8s.httpstream.Relay`, all in event-loop callbacks): client
bytes -> aiohttp protocol -> containerd's transport; containerd bytes -> client transport. A
side with more than RELAY_HIGH_WATER queued makes the other stop reading until it drains.
Either side closing ends both.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, Callable
from urllib.parse import urlsplit

import orjson
from aiohttp import web

from pyk8s.httpstream import Relay, hold_upgraded, take_over

from pyk8s.kubelet import portforward, wsportforward
from pyk8s.kubelet.cri import CRIClient, CRIError
from pyk8s.kubelet.cri.messages import CONTAINER_RUNNING, SANDBOX_READY

log = logging.getLogger("pyk8s.kubelet.streaming")

POD_NAME, POD_NAMESPACE = "io.kubernetes.pod.name", "io.kubernetes.pod.namespace"
CONTAINER_NAME = "io.kubernetes.container.name"

# Request headers that carry the upgrade negotiation to the runtime's stream server.
_UPGRADE_HEADERS = ("Connection", "Upgrade", "X-Stream-Protocol-Version", "Sec-WebSocket-Key",
                    "Sec-WebSocket-Version", "Sec-WebSocket-Protocol", "Sec-WebSocket-Extensions")
_HEAD_LIMIT = 256 * 1024  # the stream server's response head (and a non-101 body) fits


def _flag(query, *names: str) -> bool:
    return any(query.get(name) in ("1", "true", "True") for name in names)


def _status(code: int, reason: str, message: str) -> web.Response:
    body = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
            "message": message, "reason": reason, "code": code}
    return web.Response(status=code, body=orjson.dumps(body), content_type="application/json")


async def splice_upgraded(request: web.Request, head: bytes, upstream_reader: asyncio.StreamReader,
                          upstream_writer: asyncio.StreamWriter) -> web.StreamResponse:
    """Send the upstream's 101 head to the client, then relay both ways until one side ends:
    the runtime closes its side once the command or forward is done, and a client going away
    ends it too."""
    upstream, buffered, upstream_ended = take_over(upstream_reader, upstream_writer)
    request.transport.write(head)
    return await hold_upgraded(request, Relay(request, upstream, buffered, upstream_ended))


async def read_response_head(reader: asyncio.StreamReader) -> tuple[int, bytes, dict[str, str]]:
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ", 2)[1])
    headers: dict[str, str] = {}
    for line in lines[1:]:
        if ":" in line:
            name, value = line.split(":", 1)
            headers[name.strip().lower()] = value.strip()
    return status, head, headers


async def proxy_to_stream_url(request: web.Request, url: str) -> web.StreamResponse:
    """Open the runtime's stream URL with the caller's upgrade headers and splice on 101."""
    parts = urlsplit(url)
    reader, writer = await asyncio.open_connection(parts.hostname, parts.port or 80, limit=_HEAD_LIMIT)
    path = parts.path + (f"?{parts.query}" if parts.query else "")
    lines = [f"{request.method} {path} HTTP/1.1", f"Host: {parts.netloc}"]
    for name in _UPGRADE_HEADERS:
        for value in request.headers.getall(name, ()):
            lines.append(f"{name}: {value}")
    writer.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))
    await writer.drain()
    try:
        status, head, headers = await read_response_head(reader)
    except (asyncio.IncompleteReadError, ConnectionError) as error:
        writer.close()
        return _status(500, "InternalError", f"runtime stream server: {error}")
    if status != 101:
        length = int(headers.get("content-length") or 0)
        body = await reader.readexactly(length) if length else await reader.read(64 * 1024)
        writer.close()
        return web.Response(status=status, body=body, content_type=headers.get("content-type", "text/plain"))
    return await splice_upgraded(request, head, reader, writer)


class StreamingRoutes:
    """Registers exec/attach/portForward on the kubelet's aiohttp app. `runtime()` returns the
    agent's CRI client (None until the runtime is up)."""

    def __init__(self, runtime: Callable[[], CRIClient | None]):
        self.runtime = runtime

    def register(self, app: web.Application) -> None:
        for method in ("GET", "POST"):
            app.router.add_route(method, "/exec/{namespace}/{pod}/{container}", self.exec)
            app.router.add_route(method, "/attach/{namespace}/{pod}/{container}", self.attach)
            app.router.add_route(method, "/portForward/{namespace}/{pod}", self.port_forward)

    def _cri(self) -> CRIClient:
        cri = self.runtime()
        if cri is None:
            raise LookupError("container runtime is not ready")
        return cri

    async def _running_container(self, namespace: str, pod: str, container: str) -> str:
        cri = self._cri()
        found = await cri.list_containers({POD_NAMESPACE: namespace, POD_NAME: pod, CONTAINER_NAME: container})
        running = [c for c in found if c.get("state") == CONTAINER_RUNNING]
        if not running:
            # upstream kubelet's wording (GetExec: container not found)
            raise LookupError(f'container not found ("{container}")')
        return max(running, key=lambda c: c.get("created_at", 0))["id"]

    async def exec(self, request: web.Request) -> web.StreamResponse:
        info, query = request.match_info, request.query
        command = query.getall("command", [])
        if not command:
            return _status(400, "BadRequest", "you must specify at least 1 command")
        tty = _flag(query, "tty")
        try:
            container_id = await self._running_container(info["namespace"], info["pod"], info["container"])
            reply = await self._cri().call("Exec", {
                "container_id": container_id, "cmd": command, "tty": tty,
                "stdin": _flag(query, "input", "stdin"), "stdout": _flag(query, "output", "stdout"),
                # with a tty, stderr is merged into stdout (upstream's rule)
                "stderr": _flag(query, "error", "stderr") and not tty})
        except LookupError as error:
            return _status(500, "InternalError", str(error))
        except CRIError as error:
            return _status(500, "InternalError", error.details)
        return await proxy_to_stream_url(request, reply["url"])

    async def attach(self, request: web.Request) -> web.StreamResponse:
        info, query = request.match_info, request.query
        tty = _flag(query, "tty")
        try:
            container_id = await self._running_container(info["namespace"], info["pod"], info["container"])
            reply = await self._cri().call("Attach", {
                "container_id": container_id, "tty": tty, "stdin": _flag(query, "input", "stdin"),
                "stdout": _flag(query, "output", "stdout"),
                "stderr": _flag(query, "error", "stderr") and not tty})
        except LookupError as error:
            return _status(500, "InternalError", str(error))
        except CRIError as error:
            return _status(500, "InternalError", error.details)
        return await proxy_to_stream_url(request, reply["url"])

    async def port_forward(self, request: web.Request) -> web.StreamResponse:
        """Both protocols are served here (pyk8s.kubelet.portforward, .wsportforward); the
        request is checked (ports, subprotocol) before the pod is looked up, as upstream does."""
        info = request.match_info
        upgrade = request.headers.get("Upgrade", "").lower()
        protocol = ports = None
        if upgrade == "websocket":
            try:
                ports = wsportforward.ports_from_query(request.query.getall(wsportforward.PORT_QUERY, []))
            except ValueError as error:
                return _status(400, "BadRequest", str(error))
            protocol, refusal = wsportforward.handshake_refusal(request)
        elif upgrade.startswith("spdy/"):
            refusal = portforward.negotiate(request)
        else:
            return _status(400, "BadRequest", "Upgrade request required")
        if refusal is not None:
            return refusal
        try:
            cri = self._cri()
            sandbox = await self._ready_sandbox(cri, info["namespace"], info["pod"])
            netns_path = await self._network_namespace(cri, sandbox["id"])
        except LookupError as error:
            return _status(404, "NotFound", str(error))
        except CRIError as error:
            return _status(500, "InternalError", error.details)
        if ports is not None:
            return await wsportforward.serve(request, sandbox["id"], netns_path, ports, protocol)
        return await portforward.serve(request, sandbox["id"], netns_path)

    async def _ready_sandbox(self, cri: CRIClient, namespace: str, pod: str) -> dict[str, Any]:
        sandboxes = [s for s in await cri.list_sandboxes({POD_NAMESPACE: namespace, POD_NAME: pod})
                     if s.get("state") == SANDBOX_READY]
        if not sandboxes:
            raise LookupError(f'pod "{pod}" not found')
        return max(sandboxes, key=lambda s: s.get("created_at", 0))

    @staticmethod
    async def _network_namespace(cri: CRIClient, sandbox_id: str) -> str | None:
        """The sandbox's network namespace path from the runtime's verbose status (its OCI
        spec); None for a host-network pod (no network namespace of its own)."""
        reply = await cri.call("PodSandboxStatus", {"pod_sandbox_id": sandbox_id, "verbose": True})
        try:
            info = orjson.loads((reply.get("info") or {}).get("info") or "{}")
        except orjson.JSONDecodeError:
            info = {}
        spec = info.get("runtimeSpec")
        if not spec or info.get("netNamespaceClosed"):
            raise LookupError(f'network namespace for sandbox "{sandbox_id}" is closed')
        for namespace in (spec.get("linux") or {}).get("namespaces") or []:
            if namespace.get("type") == "network":
                return namespace.get("path") or None
        return None


def runtime_of(find_log: Any) -> Callable[[], CRIClient | None]:
    """The agent's CRI client, reached through the agent method the KubeletServer was given
    (the server is constructed by the agent with its bound `_find_log`)."""
    owner = getattr(find_log, "__self__", None)
    return lambda: getattr(owner, "cri", None)
