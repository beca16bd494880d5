"""Port-forward over WebSocket, served by the kubelet itself: what upstream's
kubelet/cri/streaming/portforward/websocket.go does, with the pod dialled from its network
namespace by the same code as the SPDY session (`pyk8s.kubelet.portforward`).

Who uses it: clients that speak channel WebSockets rather than SPDY — the official Python
client's `kubernetes.stream.portforward`, browsers and dashboards. The API server passes the
WebSocket upgrade through to here unchanged (kubectl's `SPDY/3.1+portforward.k8s.io` tunnel
and plain SPDY go to the SPDY session instead).

The protocol (upstream's): the ports are fixed by the request (`?port=80&port=8080` or
`?port=80,8080`); port i gets channel 2i for data (both ways) and 2i+1 for errors (server to
client). The server first sends each channel the port number, 2 bytes little-endian, then
dials every port at once. A failed dial writes "error forwarding port P to pod ID, uid : ..."
on the error channel. A forward ends when the pod's side ends (after upstream's one-second
grace for the client's last bytes) or fails; the WebSocket closes (status 1000) once every
forward has ended — a channel protocol has no other way to tell the client a port is done.
With v5, the client's [255, 2i] half-closes port i (its EOF reaches the pod).

Data flow, all in event-loop callbacks as in the SPDY session: client bytes -> aiohttp's
protocol -> `feed_data` (frames parsed, messages decoded) -> the pod connection's transport;
pod bytes -> read into the pod connection's buffer behind HEAD_ROOM free bytes -> frame head
and channel byte written in front -> the client's transport. Back-pressure is the shared
session's (pyk8s.kubelet.portforward.ForwardingSession).
"""

from __future__ import annotations

import asyncio
import logging
import struct

from aiohttp import web

from pyk8s.httpstream import hold_upgraded
from pyk8s.kubelet import wsstream
from pyk8s.kubelet.portforward import Forward, ForwardingSession, _log_failure

log = logging.getLogger("pyk8s.kubelet.wsportforward")

# containerd's PortForward: once one direction ends, the other gets this long before the pod
# connection is closed ("give a chance to terminate gracefully", as socat does).
POD_EOF_GRACE = 1.0
# A pod connection closed with client bytes still queued for it gets this long to take them.
CLOSE_FLUSH_TIMEOUT = 10.0
PORT_QUERY = "port"  # upstream's api.PortHeader, the kubelet's query parameter


def ports_from_query(values: list[str]) -> list[int]:
    """upstream's NewV4Options: repeated and comma-separated ports; ValueError with its text."""
    if not values:
        raise ValueError(f'query parameter "{PORT_QUERY}" is required')
    ports = []
    for value in values:
        if not value:
            raise ValueError(f'query parameter "{PORT_QUERY}" cannot be empty')
        for text in value.split(","):
            if not text.isascii() or not text.isdigit():
                raise ValueError(f'unable to parse "{value}" as a port: strconv.ParseUint: parsing "{text}": '
                                 "invalid syntax")
            if int(text) > 65535:
                raise ValueError(f'unable to parse "{value}" as a port: strconv.ParseUint: parsing "{text}": '
                                 "value out of range")
            if int(text) < 1:
                raise ValueError(f'port "{value}" must be > 0')
            ports.append(int(text))
    return ports


def handshake_refusal(request: web.BaseRequest) -> tuple[str | None, web.Response | None]:
    """The negotiated subprotocol, or the refusal to send (x/net/websocket's checks)."""
    if request.method != "GET":
        return None, web.Response(status=405, text="websocket: method not allowed")
    if not request.headers.get("Sec-WebSocket-Key", "").strip():
        return None, web.Response(status=400, text="websocket: missing Sec-WebSocket-Key")
    if request.headers.get("Sec-WebSocket-Version", "").strip() != "13":
        return None, web.Response(status=400, headers={"Sec-WebSocket-Version": "13"},
                                  text="websocket: unsupported Sec-WebSocket-Version")
    offered = wsstream.offered_protocols(request.headers.getall("Sec-WebSocket-Protocol", []))
    protocol = wsstream.negotiate(offered)
    if protocol is None:
        # upstream's handshake error, answered 403 as x/net/websocket does
        return None, web.Response(status=403, text=f"unable to upgrade websocket connection: requested protocol(s) "
                                                   f"are not supported: [{' '.join(offered)}]; supports "
                                                   f"[{' '.join(wsstream.PORT_FORWARD_PROTOCOLS)}]")
    return protocol, None


class _ChannelPair(Forward):
    """Port `index`'s forward: data on channel 2*index, errors on 2*index + 1."""

    def __init__(self, index: int, port: int):
        super().__init__(port)
        self.data_channel, self.error_channel = 2 * index, 2 * index + 1


class WebSocketPortForwardSession(ForwardingSession):
    """The server half of one channel-WebSocket port-forward on an upgraded connection
    (aiohttp's payload parser for it: `feed_data`/`feed_eof`)."""

    HEAD_ROOM = wsstream.MAX_HEAD + 1  # a frame head and the channel byte

    def __init__(self, request: web.BaseRequest, sandbox_id: str, netns_path: str | None, ports: list[int],
                 protocol: str):
        super().__init__(request, sandbox_id, netns_path)
        self.codec = wsstream.ChannelCodec(protocol)
        self._parser = wsstream.FrameParser()
        self._pairs = [_ChannelPair(index, port) for index, port in enumerate(ports)]
        self._live = set(self._pairs)
        self._closing = False  # our close frame went out: nothing more is sent

    def forwards(self):
        return self._pairs

    def start(self) -> None:
        """upstream: each channel first carries its port number, then every port is dialled."""
        greeting = b"".join(self.codec.encode(channel, struct.pack("<H", pair.port))
                            for pair in self._pairs for channel in (pair.data_channel, pair.error_channel))
        self.client.write(greeting)
        for pair in self._pairs:
            asyncio.ensure_future(self.connect(pair)).add_done_callback(_log_failure)

    # ------------------------------------------------------------ client -> pod

    def feed_data(self, data: bytes) -> tuple[bool, bytes]:
        if self._closing:
            return False, b""
        try:
            messages = self._parser.feed(data)
            for opcode, payload in messages:
                if opcode in (wsstream.OP_BINARY, wsstream.OP_TEXT):
                    self._message(payload)
                elif opcode == wsstream.OP_PING:
                    self.client.write(wsstream.frame(wsstream.OP_PONG, payload))
                elif opcode == wsstream.OP_CLOSE:
                    # The client is done: what it sent still reaches the pods, then all ends.
                    code = int.from_bytes(payload[:2], "big") if len(payload) >= 2 else wsstream.CLOSE_NORMAL
                    self._end(code if code in (wsstream.CLOSE_NORMAL, 1001) else wsstream.CLOSE_NORMAL)
                    break
                if self._closing:
                    break
        except wsstream.ProtocolError as error:
            log.info("port-forward websocket from %s: %s", self.client.get_extra_info("peername"), error)
            self._end(error.code, str(error))
        return False, b""

    def feed_eof(self) -> None:
        self.finish()

    def _message(self, payload: bytes) -> None:
        decoded = self.codec.decode(payload)
        if decoded is None:
            return
        kind, channel, data = decoded
        index, is_error_channel = divmod(channel, 2)
        if kind == wsstream.ChannelCodec.CLOSE:
            if not 0 <= index < len(self._pairs):
                # upstream ends the connection on a close signal for a channel it does not have
                raise wsstream.ProtocolError(f"close is targeted for a channel {channel} that is not valid")
            if not is_error_channel:
                self.from_client(self._pairs[index], b"", fin=True)
            return
        # The error channels are not read (upstream: write-only); other channels are ignored.
        if 0 <= index < len(self._pairs) and not is_error_channel and data:
            self.from_client(self._pairs[index], data, fin=False)

    # ------------------------------------------------------------ pod -> client

    def to_client(self, pair: _ChannelPair, frame: bytearray, length: int) -> None:
        if self._closing or self.client.is_closing() or pair.closed:
            return
        # a copy: the buffer is read into again
        self.client.write(bytes(self.codec.encode_in_place(frame, self.HEAD_ROOM, pair.data_channel, length)))
        self.client_written()

    def pod_ended(self, pair: _ChannelPair) -> None:
        """The pod's side sent EOF (or went away): the client gets a last moment to send, then
        the forward ends (containerd's PortForward waits as long for the other direction)."""
        if pair.pod_finished:
            return
        pair.pod_finished = True
        if pair.client_finished:
            self._close_pair(pair)
        elif not pair.closed:
            pair.timer = self.loop.call_later(POD_EOF_GRACE, self._close_pair, pair)

    # ------------------------------------------------------------ endings

    def _error(self, pair: _ChannelPair, message: str) -> None:
        """upstream: the error's text on the port's error channel (the Python client keeps it
        as `error(port)` and closes that port's socket)."""
        log.info("port-forward: %s", message)
        if not self._closing and not self.client.is_closing():
            self.client.write(self.codec.encode(pair.error_channel, message.encode()))

    def _close_pair(self, pair: _ChannelPair, *, abort: bool = False) -> None:
        if pair.closed:
            return
        pair.closed = True
        if pair.timer is not None:
            pair.timer.cancel()
        if pair.pod is not None:
            if abort:
                pair.pod.abort()
            else:
                pair.pod.close()  # what the client sent is still written
                if pair.pod.get_write_buffer_size():
                    self.loop.call_later(CLOSE_FLUSH_TIMEOUT, pair.pod.abort)
        self.forget(pair)

    def forget(self, pair: _ChannelPair) -> None:
        pair.closed = True
        if pair.timer is not None:
            pair.timer.cancel()
        self._live.discard(pair)
        if not self._live:
            self._end(wsstream.CLOSE_NORMAL)  # upstream closes the connection once all forwards returned

    def _end(self, code: int, reason: str = "") -> None:
        """Close the WebSocket (after what is queued for the client) and end every forward
        gracefully; hold_upgraded then closes the connection."""
        if self._closing:
            return
        self._closing = True
        if not self.client.is_closing():
            self.client.write(wsstream.close_frame(code, reason))
        for pair in self._pairs:
            self._close_pair(pair)
        if not self.done.done():
            self.done.set_result(None)


async def serve(request: web.Request, sandbox_id: str, netns_path: str | None, ports: list[int],
                protocol: str) -> web.StreamResponse:
    """Answer the WebSocket upgrade with 101 and run the session until it ends."""
    head = ["HTTP/1.1 101 Switching Protocols", "Upgrade: websocket", "Connection: Upgrade",
            f"Sec-WebSocket-Accept: {wsstream.accept_key(request.headers['Sec-WebSocket-Key'])}"]
    if protocol:
        head.append(f"Sec-WebSocket-Protocol: {protocol}")
    request.transport.write(("\r\n".join(head) + "\r\n\r\n").encode("latin-1"))
    session = WebSocketPortForwardSession(request, sandbox_id, netns_path, ports, protocol)
    session.start()  # before the parser is set: it may feed bytes the client sent early
    request.protocol.set_parser(session)
    return await hold_upgraded(request, session)
