"""Taking over an HTTP connection after an upgrade (SPDY, or any protocol aiohttp does not
speak), shared by the API server and the kubelet — the role upstream's
apimachinery/pkg/util/httpstream plays for both.

aiohttp parses only WebSocket upgrades itself. For the others the handler writes the 101
itself, joins the client's connection to the one it opened upstream with a `Relay`, and
returns an `UpgradedResponse` (which writes nothing) when the relay ends.

The relay moves bytes from asyncio's data callbacks, not from coroutines: each chunk read
(up to RELAY_READ_SIZE) is written to the other transport at once, and back-pressure comes from
asyncio's write flow control (a side with more than RELAY_HIGH_WATER queued pauses reading
on the other) rather than from awaiting drain() per chunk. On the client side, the relay is
aiohttp's payload parser for the upgraded connection (so bytes aiohttp read past the
request head are not lost); on the upstream side it replaces the StreamReader that read the
response head (`take_over`).
"""

from __future__ import annotations

import asyncio

from aiohttp import web

class UpgradedResponse(web.StreamResponse):
    def __init__(self):
        super().__init__(status=101)
        self.force_close()

    async def prepare(self, request):  # the 101 head was written already
        return None

    async def write_eof(self, data: bytes = b"") -> None:
        return None


async def hold_upgraded(request: web.BaseRequest, session) -> UpgradedResponse:
    """What a handler returns after taking over an upgraded connection: waits until the
    session (a `done` future and `finish()`: a Relay, a port-forward session) ends, then
    closes the client's connection once what is queued for it was sent."""
    transport = request.transport
    try:
        await session.done
    finally:
        session.finish()
        if not transport.is_closing():
            transport.close()
    return UpgradedResponse()


# ---------------------------------------------------------------- relaying without coroutines

# Bytes a side may have queued for writing before the side feeding it stops reading. Small:
# the kernel's socket buffers (megabytes on loopback) keep the pipe full; what asyncio holds
# beyond them only costs memory and copies (a TLS transport hands its whole backlog to the
# socket on each resume, and every partial send re-slices the rest).
RELAY_HIGH_WATER = 256 * 1024
# The most one read from the upstream takes (and so the largest chunk written to the client):
# asyncio's own read size; larger buffers fall out of the CPU's caches.
RELAY_READ_SIZE = 256 * 1024


def take_over(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> tuple[asyncio.Transport, bytes, bool]:
    """Detach a connection opened with asyncio.open_connection from its StreamReader once the
    upgrade's response head was read: returns the transport, the bytes already read past the
    head (the first bytes of the upgraded stream) and whether the peer has already closed
    (its EOF went to the StreamReader, so the relay would never hear of it)."""
    buffered = bytes(reader._buffer)  # what StreamReader holds beyond the head
    reader._buffer.clear()
    transport = writer.transport
    transport.resume_reading()  # StreamReader may have paused it when its buffer filled
    return transport, buffered, reader.at_eof() or transport.is_closing()


class Relay:
    """Copies bytes both ways between a client's upgraded connection (still owned by aiohttp)
    and a connection this process opened (to the kubelet, or to the runtime's stream server),
    from the event loop's data callbacks: no task wakes up per chunk and nothing is awaited
    per write. Back-pressure follows asyncio's write flow control: when one side has more than
    RELAY_HIGH_WATER queued, the side feeding it stops reading until it drains.

    `frame_for_client` wraps what goes to the client (a WebSocket tunnel's message framing);
    with `read_client=False` the caller reads the client (e.g. through aiohttp's WebSocket
    reader) and calls `to_upstream`. `done` resolves when either side ends; the upstream
    ending first lets what was queued for the client be flushed by the transport's close."""

    def __init__(self, request: web.BaseRequest, upstream: asyncio.Transport, buffered: bytes = b"",
                 upstream_ended: bool = False, *, frame_for_client=None, read_client: bool = True):
        self.done = asyncio.get_running_loop().create_future()
        self.client = request.transport
        self._client_protocol = request.protocol
        self.upstream = upstream
        self._frame = frame_for_client
        self._upstream_paused_for_client = False
        self._upstream_writable: asyncio.Future | None = None
        self.client.set_write_buffer_limits(high=RELAY_HIGH_WATER)
        upstream.set_write_buffer_limits(high=RELAY_HIGH_WATER)
        upstream.set_protocol(_UpstreamSide(self))
        if read_client:
            request.protocol.set_parser(_ClientSide(self))
        if buffered:
            self.to_client(buffered)
        if upstream_ended:
            self.finish()

    # client -> upstream
    def to_upstream(self, data: bytes) -> None:
        if not self.upstream.is_closing():
            self.upstream.write(data)

    async def upstream_writable(self) -> None:
        """For callers that read the client themselves: wait while the upstream is backed up."""
        if self._upstream_writable is not None:
            await asyncio.shield(self._upstream_writable)

    def client_ended(self) -> None:
        # aiohttp reports the end of an upgraded connection only when it is lost, so there
        # is nobody left to deliver the rest of the session to: end both sides.
        self.finish()

    # upstream -> client
    def to_client(self, data: bytes) -> None:
        client = self.client
        if client is None or client.is_closing():
            return
        if self._frame is not None:
            client.write(self._frame(data))
        else:
            client.write(data)
        if client.get_write_buffer_size() > RELAY_HIGH_WATER and not self._upstream_paused_for_client:
            self._upstream_paused_for_client = True
            self.upstream.pause_reading()
            asyncio.ensure_future(self._resume_upstream_when_client_drained())

    async def _resume_upstream_when_client_drained(self) -> None:
        try:
            await self._client_protocol._drain_helper()  # aiohttp's wait for resume_writing
        except (ConnectionError, RuntimeError):
            self.finish()
            return
        self._upstream_paused_for_client = False
        if not self.upstream.is_closing():
            self.upstream.resume_reading()

    def finish(self) -> None:
        if not self.done.done():
            self.done.set_result(None)
        if not self.upstream.is_closing():
            self.upstream.close()


class _UpstreamSide(asyncio.BufferedProtocol):
    """The relay's protocol on the connection this process opened. It reads into a buffer of
    its own: on a TLS connection asyncio then decrypts straight into it (a plain Protocol gets
    a new bytes object per 16 KiB record, joined again before data_received)."""

    def __init__(self, relay: Relay):
        self.relay = relay
        self._buffer = memoryview(bytearray(RELAY_READ_SIZE))

    def get_buffer(self, sizehint: int) -> memoryview:
        return self._buffer

    def buffer_updated(self, nbytes: int) -> None:
        self.relay.to_client(bytes(self._buffer[:nbytes]))  # a copy: the buffer is read into again

    def eof_received(self) -> bool:
        self.relay.finish()
        return False

    def connection_lost(self, exc) -> None:
        self.relay.finish()
        self.resume_writing()

    def pause_writing(self) -> None:
        relay = self.relay
        if relay._upstream_writable is None:
            relay._upstream_writable = asyncio.get_running_loop().create_future()
        if relay.client is not None:
            relay.client.pause_reading()

    def resume_writing(self) -> None:
        relay = self.relay
        if relay._upstream_writable is not None:
            relay._upstream_writable.set_result(None)
            relay._upstream_writable = None
        if relay.client is not None and not relay.client.is_closing():
            relay.client.resume_reading()


class _ClientSide:
    """aiohttp's payload parser on the client's upgraded connection: each received chunk is
    written straight to the upstream."""

    def __init__(self, relay: Relay):
        self.relay = relay

    def feed_data(self, data: bytes) -> tuple[bool, bytes]:
        self.relay.to_upstream(data)
        return False, b""

    def feed_eof(self) -> None:
        self.relay.client_ended()


def websocket_binary_frame_head(length: int) -> bytes:
    """The head of one unmasked, final, binary WebSocket frame (RFC 6455 §5.2) — what a server
    sends."""
    if length < 126:
        return bytes((0x82, length))
    if length < 65536:
        return bytes((0x82, 126)) + length.to_bytes(2, "big")
    return bytes((0x82, 127)) + length.to_bytes(8, "big")
