"""pods/exec, pods/attach and pods/portforward: streaming into a pod through its node.

What clients send (see shared/reference/kubectl-wire-contract.md):
- kubectl ≥ 1.30 opens exec/attach as a WebSocket with subprotocol `v5.channel.k8s.io`
  (the Python client: `v4.channel.k8s.io`). Each message is one channel byte plus data:
  0 stdin, 1 stdout, 2 stderr, 3 status (a metav1.Status JSON), 4 resize JSON, and, in v5
  only, 255 "close this channel" (how stdin EOF travels).
- port-forward opens a WebSocket with `SPDY/3.1+portforward.k8s.io`: the messages carry a
  plain SPDY/3.1 session (upstream's tunnelling connection). Other WebSocket clients (the
  Python client: `v5`/`v4.channel.k8s.io`, `v4.base64.channel.k8s.io`) use channels, two per
  port, which the kubelet serves itself: their upgrade is passed to it unchanged and spliced
  (upstream's UpgradeAwareHandler).
- Older clients (and kubectl with KUBECTL_REMOTE_COMMAND_WEBSOCKETS=false, or after a
  refused WebSocket upgrade) send `Upgrade: SPDY/3.1` with `X-Stream-Protocol-Version`.

What the node speaks: SPDY. The kubelet serves port-forward (portforward.k8s.io) itself and
splices exec/attach to containerd's stream server, which knows SPDY (v4.channel.k8s.io) and
WebSocket v4 but not v5 — and v4 WebSockets cannot half-close stdin. So, like upstream's API
server (StreamTranslatorProxy):
- WebSocket v5/v4 exec/attach is translated here into a SPDY session to the kubelet
  (`pyk8s.spdy.SpdySession`, framing shared with the kubelet), one SPDY stream per channel;
  channel 255 becomes a FIN on the stdin stream; the error stream's Status becomes channel 3
  (kubectl prints "command terminated with exit code N" from its NonZeroExitCode/ExitCode
  cause).
- The port-forward tunnel needs no translation: the WebSocket messages' bytes are the SPDY
  session, so they are copied to and from a SPDY upgrade to the kubelet.
- Plain SPDY from the client is spliced byte for byte to the kubelet's upgrade.

Performance (bench/streaming.py): the port-forward tunnel and the SPDY splice move bytes with
`pyk8s.httpstream.Relay` (event-loop callbacks, one WebSocket frame per chunk read — up to
256 KiB, decrypted straight into the relay's buffer —, flow control by pause/resume reading
instead of a drain per chunk). The SPDY frames inside are the kubelet's, passed on as they
are: their size, not this hop, decides how much work kubectl does per byte. Each upgrade
needs a new connection to the kubelet, so one is kept dialled ahead per node
(`SpareKubeletConnections`): the TCP and TLS handshakes are off the exec's critical path.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any
from urllib.parse import quote, urlencode

import orjson
from aiohttp import WSMsgType, web

from pyk8s.api import errors
from pyk8s.api.resources import lookup
from pyk8s.apiserver import nodeproxy
from pyk8s.httpstream import Relay, hold_upgraded, take_over, websocket_binary_frame_head
from pyk8s.spdy import SpdySession

log = logging.getLogger("pyk8s.apiserver.streaming")

CHANNEL_PROTOCOLS = ("v5.channel.k8s.io", "v4.channel.k8s.io")
PORT_FORWARD_TUNNEL = "SPDY/3.1+portforward.k8s.io"
STDIN, STDOUT, STDERR, STATUS, RESIZE, CLOSE = 0, 1, 2, 3, 4, 255
# StreamReader buffer for the kubelet's connection (the SPDY session of a translated exec):
# large, so a burst of output is taken in one read rather than many small ones.
_READ_LIMIT = 1024 * 1024


# ---------------------------------------------------------------- raw connections

async def _dial_kubelet(ssl_context, host: str, port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    try:
        return await asyncio.open_connection(host, port, ssl=ssl_context, server_hostname=host, limit=_READ_LIMIT)
    except OSError as error:
        raise errors.InternalError(f'error dialing backend: {error}') from None


class SpareKubeletConnections:
    """One pre-dialled TLS connection per kubelet, so the TCP and TLS handshakes of the next
    exec/attach/port-forward are not on its critical path (several ms in this process, which
    also runs the kubelet's side of the handshake). An upgraded connection cannot be reused,
    so a new spare is dialled after each upgrade; a spare the kubelet has closed is skipped."""

    def __init__(self):
        self._dialling: dict[tuple, asyncio.Task] = {}

    def take(self, ssl_context, host: str, port: int):
        """A ready connection to (host, port), or None."""
        task = self._dialling.pop(self._key(ssl_context, host, port), None)
        if task is None or not task.done():
            if task is not None:
                task.cancel()
            return None
        if task.cancelled() or task.exception() is not None:
            return None
        reader, writer = task.result()
        if writer.transport.is_closing() or reader.at_eof() or reader._buffer:
            writer.close()
            return None
        return reader, writer

    def refill(self, ssl_context, host: str, port: int) -> None:
        key = self._key(ssl_context, host, port)
        if key not in self._dialling:
            task = asyncio.ensure_future(_dial_kubelet(ssl_context, host, port))
            task.add_done_callback(lambda t: t.cancelled() or t.exception())  # a failed dial is only skipped
            self._dialling[key] = task

    @staticmethod
    def _key(ssl_context, host: str, port: int) -> tuple:
        # per event loop too: tests run several servers, each in its own loop
        return id(asyncio.get_running_loop()), id(ssl_context), host, port


_spare_connections = SpareKubeletConnections()


class KubeletUpgrade:
    """A connection to the node's kubelet on which an upgrade was requested."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, status: int,
                 head: bytes, headers: dict[str, str], body: bytes):
        self.reader, self.writer = reader, writer
        self.status, self.head, self.headers, self.body = status, head, headers, body

    @classmethod
    async def open(cls, ssl_context, host: str, port: int, method: str, path: str,
                   headers: list[tuple[str, str]]) -> "KubeletUpgrade":
        lines = [f"{method} {path} HTTP/1.1", f"Host: {host}:{port}", *(f"{n}: {v}" for n, v in headers)]
        request_head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
        spare = _spare_connections.take(ssl_context, host, port)
        if spare is not None:
            reader, writer = spare
            writer.write(request_head)
            try:
                head = await reader.readuntil(b"\r\n\r\n")
            except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError):
                # The kubelet dropped the idle connection as the request went out: nothing was
                # done on it, so the request is sent again on a fresh one.
                writer.close()
                spare = None
        if spare is None:
            reader, writer = await _dial_kubelet(ssl_context, host, port)
            writer.write(request_head)
            try:
                head = await reader.readuntil(b"\r\n\r\n")
            except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError) as error:
                writer.close()
                raise errors.InternalError(f"error reading from kubelet: {error}") from None
        _spare_connections.refill(ssl_context, host, port)
        text = head.decode("latin-1").split("\r\n")
        status = int(text[0].split(" ", 2)[1])
        reply_headers = {}
        for line in text[1:]:
            if ":" in line:
                name, value = line.split(":", 1)
                reply_headers[name.strip().lower()] = value.strip()
        body = b""
        if status != 101:
            length = int(reply_headers.get("content-length") or 0)
            try:
                body = await reader.readexactly(length) if length else b""
            except (asyncio.IncompleteReadError, ConnectionError):
                body = b""
            writer.close()
        return cls(reader, writer, status, head, reply_headers, body)

    def error(self) -> errors.ApiError:
        """The kubelet's refusal as the Status kubectl shows ("unable to upgrade connection: ...")."""
        message = self.body.decode(errors="replace").strip()
        try:
            message = orjson.loads(self.body).get("message", message)
        except (orjson.JSONDecodeError, AttributeError):
            pass
        if self.status == 404:
            return errors.NotFound(message)
        if self.status == 400:
            return errors.BadRequest(message)
        if self.status == 403:  # a refused handshake (no protocol in common)
            return errors.Forbidden(message)
        return errors.InternalError(message or f"kubelet answered {self.status}")


async def _splice(request: web.Request, upgrade: KubeletUpgrade) -> web.StreamResponse:
    """Hand the kubelet's 101 to the client and relay both ways until one side ends."""
    kubelet, buffered, kubelet_ended = take_over(upgrade.reader, upgrade.writer)
    request.transport.write(upgrade.head)
    return await hold_upgraded(request, Relay(request, kubelet, buffered, kubelet_ended))


async def _until_either_ends(to_kubelet, from_kubelet, upgrade: KubeletUpgrade) -> None:
    """Run both copy directions until one ends: the node's side ends when the command or
    forward is over (after its last byte was passed on), the client's when it goes away."""
    sending = asyncio.ensure_future(to_kubelet)
    receiving = asyncio.ensure_future(from_kubelet)
    try:
        await asyncio.wait({sending, receiving}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        sending.cancel()
        receiving.cancel()
        upgrade.writer.close()
    for task in (sending, receiving):
        if task.done() and not task.cancelled() and task.exception() is not None:
            error = task.exception()
            if not isinstance(error, (ConnectionError, asyncio.CancelledError)):
                log.warning("stream copy failed: %r", error)


# ---------------------------------------------------------------- the subresources

def _truthy(value: str | None) -> bool:
    return (value or "").lower() in ("1", "true", "yes")


def _is_websocket(request: web.Request) -> bool:
    return request.headers.get("Upgrade", "").lower() == "websocket"


def _is_spdy(request: web.Request) -> bool:
    return request.headers.get("Upgrade", "").lower().startswith("spdy/")


async def pod_stream(server: Any, request: web.Request, target: Any) -> web.StreamResponse:
    """Entry point from the API server's router for pods/{exec,attach,portforward}."""
    if request.method not in ("GET", "POST"):
        raise errors.MethodNotAllowed("the server does not allow this method on the requested resource")
    if not (_is_websocket(request) or _is_spdy(request)):
        raise errors.BadRequest("Upgrade request required")
    pod = await server.registry.get(target.resource, target.namespace, target.name)
    spec, status = pod.get("spec") or {}, pod.get("status") or {}
    name = target.name
    if target.subresource == "portforward":
        path = f"/portForward/{quote(target.namespace)}/{quote(name)}"
        container = ""
    else:
        container = request.query.get("container") or nodeproxy.default_container(pod)
        names = [c["name"] for c in spec.get("containers") or []] + \
            [c["name"] for c in spec.get("initContainers") or []] + \
            [c["name"] for c in spec.get("ephemeralContainers") or []]
        if container not in names:
            raise errors.BadRequest(f"container {container} is not valid for pod {name}")
        path = f"/{target.subresource}/{quote(target.namespace)}/{quote(name)}/{quote(container)}"
    phase = status.get("phase")
    if phase in ("Succeeded", "Failed"):
        # upstream's wording (pkg/registry/core/pod/strategy.go streamLocation)
        raise errors.BadRequest(f"cannot {'exec into' if target.subresource == 'exec' else 'attach to'} "
                                f"a container in a completed pod; current phase is {phase}"
                                if container else f"pod {name} is not running; current phase is {phase}")
    node_name = spec.get("nodeName")
    if not node_name:
        raise errors.BadRequest(f"pod {name} does not have a host assigned")
    node = await server.registry.get(lookup("", "v1", "nodes"), None, node_name)
    host, port = nodeproxy.node_address(node)
    ssl_context = server._kubelet().ssl_context

    query: list[tuple[str, str]] = []
    if target.subresource != "portforward":
        query += [("command", c) for c in request.query.getall("command", [])]
        for theirs, ours in (("stdin", "input"), ("stdout", "output"), ("stderr", "error"), ("tty", "tty")):
            if _truthy(request.query.get(theirs)):
                query.append((ours, "1"))
    else:
        query += [("port", p) for p in request.query.getall("ports", [])]
    kubelet_path = path + (f"?{urlencode(query)}" if query else "")

    if _is_spdy(request):
        headers = [("Connection", "Upgrade"), ("Upgrade", request.headers["Upgrade"])]
        headers += [("X-Stream-Protocol-Version", v) for v in request.headers.getall("X-Stream-Protocol-Version", [])]
        upgrade = await KubeletUpgrade.open(ssl_context, host, port, "POST", kubelet_path, headers)
        if upgrade.status != 101:
            raise upgrade.error()
        return await _splice(request, upgrade)

    if target.subresource == "portforward":
        if PORT_FORWARD_TUNNEL in _offered_protocols(request):
            return await _port_forward_tunnel(request, ssl_context, host, port, kubelet_path)
        return await _port_forward_websocket(request, ssl_context, host, port, kubelet_path)
    tty = _truthy(request.query.get("tty"))
    return await _channels_over_spdy(request, ssl_context, host, port, kubelet_path,
                                     stdin=_truthy(request.query.get("stdin")),
                                     stdout=_truthy(request.query.get("stdout")),
                                     stderr=_truthy(request.query.get("stderr")) and not tty, tty=tty)


def _spdy_upgrade_headers(protocol: str) -> list[tuple[str, str]]:
    return [("Connection", "Upgrade"), ("Upgrade", "SPDY/3.1"), ("X-Stream-Protocol-Version", protocol)]


async def _channels_over_spdy(request: web.Request, ssl_context, host: str, port: int, kubelet_path: str, *,
                              stdin: bool, stdout: bool, stderr: bool, tty: bool) -> web.StreamResponse:
    """WebSocket v5/v4 channels from the client <-> a SPDY v4.channel.k8s.io session to the node."""
    offered = [p.strip() for p in request.headers.get("Sec-WebSocket-Protocol", "").split(",") if p.strip()]
    if not any(p in CHANNEL_PROTOCOLS for p in offered):
        raise errors.BadRequest(f"unable to upgrade: no supported protocol in {offered!r} "
                                f"(supported: {', '.join(CHANNEL_PROTOCOLS)})")
    upgrade = await KubeletUpgrade.open(ssl_context, host, port, "POST", kubelet_path,
                                        _spdy_upgrade_headers("v4.channel.k8s.io"))
    if upgrade.status != 101:
        raise upgrade.error()
    session = SpdySession(upgrade.reader, upgrade.writer)
    # The order client-go uses (error first); the node's server waits for exactly these.
    error_stream = session.open_stream({"streamtype": "error"})
    channel_of = {error_stream: STATUS}
    stdin_stream = resize_stream = 0
    if stdin:
        stdin_stream = session.open_stream({"streamtype": "stdin"})
    if stdout:
        channel_of[session.open_stream({"streamtype": "stdout"})] = STDOUT
    if stderr:
        channel_of[session.open_stream({"streamtype": "stderr"})] = STDERR
    if tty:
        resize_stream = session.open_stream({"streamtype": "resize"})

    ws = web.WebSocketResponse(protocols=CHANNEL_PROTOCOLS, autoping=True, max_msg_size=0, compress=False)
    await ws.prepare(request)
    supports_close = ws.ws_protocol == "v5.channel.k8s.io"

    async def client_to_node() -> None:
        async for message in ws:
            if message.type == WSMsgType.BINARY:
                data = message.data
            elif message.type == WSMsgType.TEXT:
                data = message.data.encode()
            else:
                break
            if not data:
                continue
            channel, payload = data[0], data[1:]
            if channel == STDIN and stdin_stream:
                if payload:
                    session.send_data(stdin_stream, payload)
            elif channel == RESIZE and resize_stream:
                session.send_data(resize_stream, payload)
            elif channel == CLOSE and supports_close and payload and payload[0] == STDIN and stdin_stream:
                session.send_data(stdin_stream, b"", fin=True)
            await upgrade.writer.drain()

    async def node_to_client() -> None:
        status = bytearray()
        open_outputs = {s for s, c in channel_of.items()}
        async for kind, stream_id, payload, fin in session.frames():
            channel = channel_of.get(stream_id)
            if kind == "data" and channel is not None:
                if channel == STATUS:
                    status += payload
                elif payload:
                    await ws.send_bytes(bytes([channel]) + payload)
            elif kind == "goaway":
                break
            if fin and stream_id in open_outputs:
                open_outputs.discard(stream_id)
                if stream_id == error_stream and status:
                    await ws.send_bytes(bytes([STATUS]) + bytes(status))
                if not open_outputs:
                    break
        if error_stream in open_outputs and status:
            await ws.send_bytes(bytes([STATUS]) + bytes(status))

    await _until_either_ends(client_to_node(), node_to_client(), upgrade)
    await ws.close()
    return ws


def _offered_protocols(request: web.Request) -> list[str]:
    return [p.strip() for value in request.headers.getall("Sec-WebSocket-Protocol", [])
            for p in value.split(",") if p.strip()]


async def _port_forward_websocket(request: web.Request, ssl_context, host: str, port: int,
                                  kubelet_path: str) -> web.StreamResponse:
    """A channel WebSocket port-forward: the kubelet negotiates and serves it, so the upgrade
    request goes to it as the client sent it and, once it answers 101, the two connections are
    spliced byte for byte."""
    headers = [("Connection", "Upgrade"), ("Upgrade", "websocket")]
    for name in ("Sec-WebSocket-Key", "Sec-WebSocket-Version", "Sec-WebSocket-Protocol"):
        headers += [(name, value) for value in request.headers.getall(name, [])]
    upgrade = await KubeletUpgrade.open(ssl_context, host, port, request.method, kubelet_path, headers)
    if upgrade.status != 101:
        raise upgrade.error()
    return await _splice(request, upgrade)


async def _port_forward_tunnel(request: web.Request, ssl_context, host: str, port: int,
                               kubelet_path: str) -> web.StreamResponse:
    """`SPDY/3.1+portforward.k8s.io` WebSocket: its messages are a SPDY session's bytes, so
    they are copied to a SPDY portforward.k8s.io upgrade on the kubelet as they are."""
    offered = [p.strip() for p in request.headers.get("Sec-WebSocket-Protocol", "").split(",") if p.strip()]
    if PORT_FORWARD_TUNNEL not in offered:
        raise errors.BadRequest(f"unable to upgrade: no supported protocol in {offered!r} "
                                f"(supported: {PORT_FORWARD_TUNNEL})")
    upgrade = await KubeletUpgrade.open(ssl_context, host, port, "POST", kubelet_path,
                                        _spdy_upgrade_headers("portforward.k8s.io"))
    if upgrade.status != 101:
        raise upgrade.error()
    ws = web.WebSocketResponse(protocols=(PORT_FORWARD_TUNNEL,), autoping=True, max_msg_size=0, compress=False)
    await ws.prepare(request)
    # The node's bytes go to the client as they arrive, each read as one binary message
    # written straight to the transport (no task per message); the client's messages are
    # few and small (SPDY control frames, uploads) and go through aiohttp's reader.
    kubelet, buffered, kubelet_ended = take_over(upgrade.reader, upgrade.writer)
    relay = Relay(request, kubelet, buffered, kubelet_ended, read_client=False,
                  frame_for_client=lambda data: websocket_binary_frame_head(len(data)) + data)

    async def client_to_node() -> None:
        async for message in ws:
            if message.type != WSMsgType.BINARY:
                break
            relay.to_upstream(message.data)
            await relay.upstream_writable()

    reading = asyncio.ensure_future(client_to_node())
    try:
        await asyncio.wait({reading, relay.done}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        reading.cancel()
        relay.finish()
    await ws.close()
    return ws
