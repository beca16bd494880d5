"""gRPC calls over one HTTP/2 connection (RFC 9113; plain text with prior knowledge, or
TLS with ALPN "h2"), the gRPC wire protocol of grpc/doc/PROTOCOL-HTTP2.md, in asyncio.

Unary calls (the kubelet to containerd, gRPC health probes, the etcd store's reads and
writes) and bidirectional streams (the etcd store's one watch stream). Client side only: no
server push, no compression.

Flow: `GrpcChannel.unary()` opens the connection on first use (and again after it broke),
queues HEADERS + DATA for a new stream and waits for the stream's response
headers, message and trailers, which one reader task per connection demultiplexes. The
reader takes whatever bytes have arrived and handles every whole frame in them, so a burst
of answers costs one wake-up, not two reads per frame; the frames that concurrent calls queue
in one turn of the event loop leave in one write. Request header blocks are literals
without indexing, so a method's block is encoded once and reused; only grpc-timeout is
written per call. `open_stream()` gives a `BidiStream`: messages go out as DATA frames
without END_STREAM, and come back split out of the stream's DATA as they complete.

Flow control: we grant the server a 1 MiB window per stream and on the connection and top
both up as data arrives; we send within the windows the server grants. A GOAWAY lets open
streams finish and sends new calls to a new connection; a call the server never processed
(beyond the GOAWAY's last stream, or refused) is tried once more on the new connection, as
grpc's transparent retry does. With `keepalive`, a PING every so many seconds that is not
answered within `keepalive_timeout` ends the connection: a peer gone without a FIN (a
partition) fails the calls and streams on it instead of leaving them hanging. Errors come
back as `GrpcError` with the status code's name.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import ssl as ssl_module
import struct
from typing import Any, Awaitable, Callable
from urllib.parse import unquote

from pyk8s.grpcclient import hpack

log = logging.getLogger("pyk8s.grpcclient.http2")

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
DATA, HEADERS, PRIORITY, RST_STREAM, SETTINGS, PUSH_PROMISE, PING, GOAWAY, WINDOW_UPDATE, CONTINUATION = range(10)
END_STREAM, ACK, END_HEADERS, PADDED, PRIORITY_FLAG = 0x1, 0x1, 0x4, 0x8, 0x20
SETTINGS_ENABLE_PUSH, SETTINGS_MAX_CONCURRENT_STREAMS = 0x2, 0x3
SETTINGS_INITIAL_WINDOW_SIZE, SETTINGS_MAX_FRAME_SIZE = 0x4, 0x5
NO_ERROR, PROTOCOL_ERROR, REFUSED_STREAM, CANCEL = 0x0, 0x1, 0x7, 0x8
DEFAULT_WINDOW = 65535
RECEIVE_WINDOW = 1 << 20
MAX_FRAME_SIZE = 16384  # what we accept (the protocol default; we do not raise it)
READ_CHUNK = 256 * 1024

STATUS_CODES = ("OK", "CANCELLED", "UNKNOWN", "INVALID_ARGUMENT", "DEADLINE_EXCEEDED", "NOT_FOUND", "ALREADY_EXISTS",
                "PERMISSION_DENIED", "RESOURCE_EXHAUSTED", "FAILED_PRECONDITION", "ABORTED", "OUT_OF_RANGE",
                "UNIMPLEMENTED", "INTERNAL", "UNAVAILABLE", "DATA_LOSS", "UNAUTHENTICATED")
# gRPC's mapping of an HTTP status without grpc-status (PROTOCOL-HTTP2.md, http-grpc-status-mapping.md).
_HTTP_STATUS_CODES = {400: "INTERNAL", 401: "UNAUTHENTICATED", 403: "PERMISSION_DENIED", 404: "UNIMPLEMENTED",
                      429: "UNAVAILABLE", 502: "UNAVAILABLE", 503: "UNAVAILABLE", 504: "UNAVAILABLE"}
# ... and of an HTTP/2 RST_STREAM error code.
_RESET_CODES = {REFUSED_STREAM: "UNAVAILABLE", CANCEL: "CANCELLED", 0xB: "RESOURCE_EXHAUSTED",
                0xC: "PERMISSION_DENIED"}

Connect = Callable[[], Awaitable[tuple[asyncio.StreamReader, asyncio.StreamWriter]]]


class GrpcError(Exception):
    def __init__(self, code: str, details: str, *, unprocessed: bool = False):
        super().__init__(f"{code}: {details}")
        self.code = code
        self.details = details
        self.unprocessed = unprocessed  # the server never saw the call: safe to try again


def _timeout_value(timeout: float) -> str:
    return f"{max(1, int(timeout * 1000))}m" if timeout < 99999 else f"{int(timeout)}S"


class _Stream:
    __slots__ = ("id", "send_window", "window_open", "headers", "trailers", "body", "unacknowledged", "done", "error",
                 "messages", "message_waiter")

    def __init__(self, stream_id: int, send_window: int, streaming: bool = False):
        self.id = stream_id
        self.send_window = send_window
        self.window_open = asyncio.Event()
        self.headers: list[tuple[str, str]] | None = None
        self.trailers: list[tuple[str, str]] | None = None
        self.body = bytearray()
        self.unacknowledged = 0
        self.done = asyncio.get_running_loop().create_future()
        self.error: GrpcError | None = None
        # A streaming call's complete messages, split out of `body` as they arrive.
        self.messages: collections.deque[bytes] | None = collections.deque() if streaming else None
        self.message_waiter: asyncio.Future | None = None


def _frame(frame_type: int, flags: int, stream_id: int, payload: bytes = b"") -> bytes:
    return struct.pack(">I", len(payload))[1:] + bytes((frame_type, flags)) + struct.pack(">I", stream_id) + payload


def _status_error(headers: list[tuple[str, str]] | None,
                  trailers: list[tuple[str, str]] | None) -> GrpcError | None:
    """The call's outcome from its response headers and trailers: None for OK."""
    header_map = dict(headers or [])
    trailer_map = dict(trailers) if trailers is not None else header_map  # trailers-only response
    status = header_map.get(":status", "")
    if status != "200":
        code = _HTTP_STATUS_CODES.get(int(status) if status.isdigit() else 0, "UNKNOWN")
        return GrpcError(code, f"HTTP status {status or 'missing'}")
    grpc_status = trailer_map.get("grpc-status")
    if grpc_status is None:
        return GrpcError("UNKNOWN", "response without grpc-status")
    number = int(grpc_status) if grpc_status.isdigit() else 2
    code = STATUS_CODES[number] if number < len(STATUS_CODES) else "UNKNOWN"
    if code != "OK":
        return GrpcError(code, unquote(trailer_map.get("grpc-message", ""), errors="replace"))
    return None


class _Connection:
    """One HTTP/2 connection and the reader task that serves its streams."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, channel: "GrpcChannel"):
        self.reader, self.writer = reader, writer
        self.authority = channel.authority
        self.max_message = channel.max_message
        # Pseudo-headers (":path" among them) must come before the others.
        self._pseudo_headers = [(":method", "POST"), (":scheme", channel.scheme), (":authority", channel.authority)]
        self._request_headers = [("content-type", "application/grpc"), ("te", "trailers"),
                                 ("user-agent", channel.user_agent), *channel.metadata]
        self._blocks: dict[str, bytes] = {}
        self.decoder = hpack.Decoder()
        self.streams: dict[int, _Stream] = {}
        self.next_stream_id = 1
        self.send_window = DEFAULT_WINDOW
        self.connection_window_open = asyncio.Event()
        self.peer_initial_window = DEFAULT_WINDOW
        self.peer_max_frame = 16384
        self.peer_max_streams = 1 << 31
        self.stream_slot_free = asyncio.Event()
        self.unacknowledged = 0
        self.going_away = False
        self.closed = False
        self._header_block = bytearray()
        self._header_stream = 0
        self._header_end_stream = False
        self._ping_answer: asyncio.Future | None = None
        self._outgoing: list[bytes] = []
        settings = struct.pack(">HI", SETTINGS_ENABLE_PUSH, 0) + struct.pack(">HI", SETTINGS_INITIAL_WINDOW_SIZE,
                                                                             RECEIVE_WINDOW)
        writer.write(PREFACE + _frame(SETTINGS, 0, 0, settings)
                     + _frame(WINDOW_UPDATE, 0, 0, struct.pack(">I", RECEIVE_WINDOW - DEFAULT_WINDOW)))
        loop = asyncio.get_running_loop()
        self.reader_task = loop.create_task(self._read_frames(), name="grpc-http2-reader")
        self.keepalive_task = (loop.create_task(self._keepalive(channel.keepalive, channel.keepalive_timeout),
                                                name="grpc-http2-keepalive") if channel.keepalive else None)

    @property
    def usable(self) -> bool:
        return not (self.closed or self.going_away) and self.next_stream_id < (1 << 31) - 2

    # ---- writing -----------------------------------------------------------------------
    def _send(self, data: bytes) -> None:
        """Queue frames; all that concurrent calls queue in one turn of the event loop go out
        in one write at the start of the next (one send syscall, not one per call)."""
        if not self._outgoing:
            asyncio.get_running_loop().call_soon(self._flush)
        self._outgoing.append(data)

    def _flush(self) -> None:
        if self._outgoing:
            data = b"".join(self._outgoing)
            self._outgoing.clear()
            if not self.writer.is_closing():
                self.writer.write(data)

    # ---- calls -------------------------------------------------------------------------
    def _headers_for(self, path: str, timeout: float | None) -> bytes:
        block = self._blocks.get(path)
        if block is None:
            block = self._blocks[path] = hpack.encode([*self._pseudo_headers, (":path", path),
                                                        *self._request_headers])
            if len(block) > self.peer_max_frame - 32:
                raise GrpcError("INTERNAL", "request headers too large")
        if timeout is not None:
            block += hpack.encode([("grpc-timeout", _timeout_value(timeout))])
        return block

    async def _open(self, streaming: bool) -> _Stream:
        while len(self.streams) >= self.peer_max_streams:
            self.stream_slot_free.clear()
            await self.stream_slot_free.wait()
            if not self.usable:
                raise GrpcError("UNAVAILABLE", "connection closing", unprocessed=True)
        if self.closed:
            raise GrpcError("UNAVAILABLE", "connection closed", unprocessed=True)
        stream = _Stream(self.next_stream_id, self.peer_initial_window, streaming)
        self.next_stream_id += 2
        self.streams[stream.id] = stream
        return stream

    async def call(self, path: str, message: bytes, timeout: float | None) -> bytes:
        block = self._headers_for(path, timeout)
        stream = await self._open(streaming=False)
        try:
            payload = b"\x00" + struct.pack(">I", len(message)) + message
            size = len(payload)
            # Stream ids must reach the server in increasing order: write the HEADERS in the
            # same step as the id was allocated (no await in between).
            if size <= self.send_window and size <= stream.send_window and size <= self.peer_max_frame:
                self._send(_frame(HEADERS, END_HEADERS, stream.id, block)
                                  + _frame(DATA, END_STREAM, stream.id, payload))
                self.send_window -= size
                stream.send_window -= size
            else:
                self._send(_frame(HEADERS, END_HEADERS, stream.id, block))
                await self._send_data(stream, payload, end_stream=True)
            await stream.done
        except BaseException:
            if not stream.done.done() and not self.closed:
                self._reset(stream.id, CANCEL)
            self._forget(stream)
            raise
        self._forget(stream)
        if stream.error is not None:
            raise stream.error
        return self._result(stream)

    async def open_stream(self, path: str) -> "BidiStream":
        block = self._headers_for(path, None)
        stream = await self._open(streaming=True)
        self._send(_frame(HEADERS, END_HEADERS, stream.id, block))
        return BidiStream(self, stream)

    async def _drain(self) -> None:
        self._flush()
        try:
            await self.writer.drain()
        except OSError as error:
            raise GrpcError("UNAVAILABLE", f"connection lost: {error}") from None

    async def _send_data(self, stream: _Stream, payload: bytes, *, end_stream: bool) -> None:
        view = memoryview(payload)
        while True:
            if stream.done.done():  # reset, or answered before reading the whole request
                if stream.messages is not None:
                    raise stream.error or GrpcError("CANCELLED", "stream ended")
                return
            if self.closed:
                raise stream.error or GrpcError("UNAVAILABLE", "connection closed")
            size = min(len(view), self.send_window, stream.send_window, self.peer_max_frame)
            if size <= 0 and view:
                if self.send_window <= 0:
                    self.connection_window_open.clear()
                    await self.connection_window_open.wait()
                else:
                    stream.window_open.clear()
                    await stream.window_open.wait()
                continue
            last = size == len(view)
            self._send(_frame(DATA, END_STREAM if last and end_stream else 0, stream.id, bytes(view[:size])))
            self.send_window -= size
            stream.send_window -= size
            view = view[size:]
            if last:
                await self._drain()
                return

    def _result(self, stream: _Stream) -> bytes:
        error = _status_error(stream.headers, stream.trailers)
        if error is not None:
            raise error
        body = stream.body
        if len(body) < 5:
            raise GrpcError("INTERNAL", "response without a message")
        compressed, length = body[0], struct.unpack(">I", body[1:5])[0]
        if compressed:
            raise GrpcError("INTERNAL", "compressed response, but no compression was offered")
        if len(body) != 5 + length:
            raise GrpcError("INTERNAL", "a unary response must hold exactly one message")
        return bytes(body[5:])

    def _forget(self, stream: _Stream) -> None:
        if self.streams.pop(stream.id, None) is not None:
            self.stream_slot_free.set()
        if self.going_away and not self.streams:
            self.close()

    def _reset(self, stream_id: int, error_code: int) -> None:
        if not self.writer.is_closing():
            self._send(_frame(RST_STREAM, 0, stream_id, struct.pack(">I", error_code)))

    def _finish(self, stream: _Stream, error: GrpcError | None = None) -> None:
        if error is not None and stream.error is None:
            stream.error = error
        if not stream.done.done():
            stream.done.set_result(None)
        stream.window_open.set()
        _wake(stream)

    # ---- the reader --------------------------------------------------------------------
    async def _read_frames(self) -> None:
        error = GrpcError("UNAVAILABLE", "connection closed by the server")
        buffer = bytearray()
        try:
            while True:
                chunk = await self.reader.read(READ_CHUNK)
                if not chunk:
                    break
                buffer += chunk
                offset, available = 0, len(buffer)
                while available - offset >= 9:
                    length = int.from_bytes(buffer[offset:offset + 3], "big")
                    if length > MAX_FRAME_SIZE:
                        raise GrpcError("INTERNAL", f"frame of {length} bytes exceeds our maximum frame size")
                    end = offset + 9 + length
                    if end > available:
                        break
                    self._on_frame(buffer[offset + 3], buffer[offset + 4],
                                   int.from_bytes(buffer[offset + 5:offset + 9], "big") & 0x7FFFFFFF,
                                   bytes(buffer[offset + 9:end]))
                    offset = end
                del buffer[:offset]
        except GrpcError as protocol_error:
            error = protocol_error
            self._send_goaway(PROTOCOL_ERROR)
        except hpack.HpackError as decode_error:
            error = GrpcError("INTERNAL", f"header decoding failed: {decode_error}")
            self._send_goaway(0x9)  # COMPRESSION_ERROR
        except (ConnectionError, OSError) as connection_error:
            error = GrpcError("UNAVAILABLE", f"connection lost: {connection_error}")
        except asyncio.CancelledError:
            error = GrpcError("UNAVAILABLE", "channel closed")
        except Exception as malformed:  # a frame too short for its type, and the like
            log.warning("HTTP/2 connection to %s failed: %r", self.authority, malformed)
            error = GrpcError("INTERNAL", f"malformed frame from the server: {malformed!r}")
            self._send_goaway(PROTOCOL_ERROR)
        self._end(error)

    def _end(self, error: GrpcError) -> None:
        self.closed = True
        for stream in list(self.streams.values()):
            self._finish(stream, error)
        self.connection_window_open.set()
        self.stream_slot_free.set()
        if self._ping_answer is not None and not self._ping_answer.done():
            self._ping_answer.set_result(False)
        if self.keepalive_task is not None and self.keepalive_task is not asyncio.current_task():
            self.keepalive_task.cancel()
        self._flush()  # a GOAWAY with our error, if any
        self.writer.close()

    def _on_frame(self, frame_type: int, flags: int, stream_id: int, payload: bytes) -> None:
        if self._header_stream and frame_type != CONTINUATION:
            raise GrpcError("INTERNAL", "header block interrupted")
        if frame_type == DATA:
            self._on_data(stream_id, flags, payload)
        elif frame_type in (HEADERS, CONTINUATION):
            if frame_type == HEADERS:
                payload = self._strip_padding(flags, payload)
                if flags & PRIORITY_FLAG:
                    payload = payload[5:]
                self._header_stream, self._header_end_stream = stream_id, bool(flags & END_STREAM)
            elif stream_id != self._header_stream:
                raise GrpcError("INTERNAL", "CONTINUATION without a header block")
            self._header_block += payload
            if flags & END_HEADERS:
                self._on_headers(self._header_stream, bytes(self._header_block), self._header_end_stream)
                self._header_block.clear()
                self._header_stream = 0
        elif frame_type == RST_STREAM:
            stream = self.streams.get(stream_id)
            # A server that answered before reading the whole request (a trailers-only
            # error) resets the stream after its END_STREAM: the answer stands.
            if stream is not None and not stream.done.done():
                code = struct.unpack(">I", payload[:4])[0]
                self._finish(stream, GrpcError(_RESET_CODES.get(code, "INTERNAL"),
                                               f"stream reset by the server (HTTP/2 error {code})",
                                               unprocessed=code == REFUSED_STREAM))
        elif frame_type == SETTINGS:
            if not flags & ACK:
                self._on_settings(payload)
        elif frame_type == PING:
            if not flags & ACK:
                self._send(_frame(PING, ACK, 0, payload))
            elif self._ping_answer is not None and not self._ping_answer.done():
                self._ping_answer.set_result(True)
        elif frame_type == GOAWAY:
            self._on_goaway(payload)
        elif frame_type == WINDOW_UPDATE:
            self._on_window_update(stream_id, payload)
        elif frame_type == PUSH_PROMISE:
            raise GrpcError("INTERNAL", "server push was disabled")
        # PRIORITY and unknown frame types are ignored, as the protocol asks.

    @staticmethod
    def _strip_padding(flags: int, payload: bytes) -> bytes:
        if not flags & PADDED:
            return payload
        if not payload or payload[0] >= len(payload):
            raise GrpcError("INTERNAL", "bad padding")
        return payload[1:len(payload) - payload[0]]

    def _on_data(self, stream_id: int, flags: int, payload: bytes) -> None:
        self.unacknowledged += len(payload)
        updates = b""
        if self.unacknowledged >= RECEIVE_WINDOW // 2:
            updates += _frame(WINDOW_UPDATE, 0, 0, struct.pack(">I", self.unacknowledged))
            self.unacknowledged = 0
        stream = self.streams.get(stream_id)
        if stream is not None and not stream.done.done():
            stream.body += self._strip_padding(flags, payload)
            if stream.messages is not None:
                self._split_messages(stream)
            elif len(stream.body) > self.max_message + 5:
                self._reset(stream_id, CANCEL)
                self._finish(stream, GrpcError("RESOURCE_EXHAUSTED", f"response larger than {self.max_message} bytes"))
            if flags & END_STREAM:
                self._finish(stream)
            elif not stream.done.done():
                stream.unacknowledged += len(payload)
                if stream.unacknowledged >= RECEIVE_WINDOW // 2:
                    updates += _frame(WINDOW_UPDATE, 0, stream_id, struct.pack(">I", stream.unacknowledged))
                    stream.unacknowledged = 0
        if updates:
            self._send(updates)

    def _split_messages(self, stream: _Stream) -> None:
        body = stream.body
        offset = 0
        while len(body) - offset >= 5:
            length = int.from_bytes(body[offset + 1:offset + 5], "big")
            if length > self.max_message:
                self._reset(stream.id, CANCEL)
                self._finish(stream, GrpcError("RESOURCE_EXHAUSTED", f"message larger than {self.max_message} bytes"))
                return
            if body[offset]:
                self._reset(stream.id, CANCEL)
                self._finish(stream, GrpcError("INTERNAL", "compressed message, but no compression was offered"))
                return
            end = offset + 5 + length
            if end > len(body):
                break
            stream.messages.append(bytes(body[offset + 5:end]))
            offset = end
        if offset:
            del body[:offset]
            _wake(stream)

    def _on_headers(self, stream_id: int, block: bytes, end_stream: bool) -> None:
        headers = self.decoder.decode(block)  # always: it keeps the dynamic table in step
        stream = self.streams.get(stream_id)
        if stream is None or stream.done.done():
            return
        if stream.headers is None:
            stream.headers = headers
        else:
            stream.trailers = headers
        if end_stream:
            self._finish(stream)

    def _on_settings(self, payload: bytes) -> None:
        for offset in range(0, len(payload) - 5, 6):
            identifier, value = struct.unpack(">HI", payload[offset:offset + 6])
            if identifier == SETTINGS_INITIAL_WINDOW_SIZE:
                delta, self.peer_initial_window = value - self.peer_initial_window, value
                for stream in self.streams.values():
                    stream.send_window += delta
                    stream.window_open.set()
            elif identifier == SETTINGS_MAX_FRAME_SIZE:
                self.peer_max_frame = value
            elif identifier == SETTINGS_MAX_CONCURRENT_STREAMS:
                self.peer_max_streams = value
                self.stream_slot_free.set()
        self._send(_frame(SETTINGS, ACK, 0))

    def _on_goaway(self, payload: bytes) -> None:
        last_stream_id = struct.unpack(">I", payload[:4])[0] & 0x7FFFFFFF
        self.going_away = True
        for stream in list(self.streams.values()):
            if stream.id > last_stream_id:
                self._finish(stream, GrpcError("UNAVAILABLE", "connection going away", unprocessed=True))
        self.stream_slot_free.set()
        if not self.streams:
            self.close()

    def _on_window_update(self, stream_id: int, payload: bytes) -> None:
        increment = struct.unpack(">I", payload[:4])[0] & 0x7FFFFFFF
        if stream_id == 0:
            self.send_window += increment
            self.connection_window_open.set()
        elif (stream := self.streams.get(stream_id)) is not None:
            stream.send_window += increment
            stream.window_open.set()

    async def _keepalive(self, interval: float, timeout: float) -> None:
        loop = asyncio.get_running_loop()
        while not self.closed:
            await asyncio.sleep(interval)
            if self.closed:
                return
            self._ping_answer = loop.create_future()
            self._send(_frame(PING, 0, 0, b"pyk8s-ka"))
            try:
                async with asyncio.timeout(timeout):
                    await self._ping_answer
            except TimeoutError:
                log.info("HTTP/2 connection to %s: no answer to a PING within %gs; closing it", self.authority, timeout)
                self.reader_task.cancel()
                self._end(GrpcError("UNAVAILABLE", f"keepalive ping not answered within {timeout:g}s"))
                return

    def _send_goaway(self, error_code: int) -> None:
        if not self.writer.is_closing():
            self._send(_frame(GOAWAY, 0, 0, struct.pack(">II", max(0, self.next_stream_id - 2), error_code)))

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self._send_goaway(NO_ERROR)
            self._flush()
            self.reader_task.cancel()
            if self.keepalive_task is not None:
                self.keepalive_task.cancel()
            self.writer.close()


def _wake(stream: _Stream) -> None:
    waiter = stream.message_waiter
    if waiter is not None and not waiter.done():
        waiter.set_result(None)


class BidiStream:
    """One streaming call: `send()` messages while `read()` returns the server's, None when
    the server ended the call with OK; an error status or a lost connection raises
    GrpcError. `cancel()` ends it from our side (RST_STREAM CANCEL)."""

    def __init__(self, connection: _Connection, stream: _Stream):
        self._connection = connection
        self._stream = stream

    async def send(self, message: bytes) -> None:
        stream = self._stream
        if stream.done.done():
            raise stream.error or GrpcError("CANCELLED", "stream ended")
        await self._connection._send_data(stream, b"\x00" + struct.pack(">I", len(message)) + message,
                                          end_stream=False)

    async def read(self) -> bytes | None:
        stream = self._stream
        while True:
            if stream.messages:
                return stream.messages.popleft()
            if stream.done.done():
                self._connection._forget(stream)
                if stream.error is not None:
                    raise stream.error
                error = _status_error(stream.headers, stream.trailers)
                if error is not None:
                    raise error
                return None
            stream.message_waiter = asyncio.get_running_loop().create_future()
            try:
                await stream.message_waiter
            finally:
                stream.message_waiter = None

    def cancel(self) -> None:
        stream, connection = self._stream, self._connection
        if not stream.done.done() and not connection.closed:
            connection._reset(stream.id, CANCEL)
        connection._finish(stream, GrpcError("CANCELLED", "cancelled by the client"))
        connection._forget(stream)


class GrpcChannel:
    """Calls to one gRPC server; the connection is opened when needed. `metadata` is sent
    with every call; `keepalive` (seconds) pings the server on that period."""

    def __init__(self, connect: Connect, *, authority: str = "localhost", max_message: int = 4 * 1024 * 1024,
                 scheme: str = "http", metadata: tuple[tuple[str, str], ...] = (), user_agent: str = "pyk8s",
                 keepalive: float | None = None, keepalive_timeout: float = 5.0):
        self._connect = connect
        self.authority = authority
        self.max_message = max_message
        self.scheme = scheme
        self.metadata = tuple(metadata)
        self.user_agent = user_agent
        self.keepalive = keepalive
        self.keepalive_timeout = keepalive_timeout
        self._connection: _Connection | None = None
        self._connecting = asyncio.Lock()

    @classmethod
    def unix(cls, path: str, **kwargs: Any) -> "GrpcChannel":
        return cls(lambda: asyncio.open_unix_connection(path), **kwargs)

    @classmethod
    def tcp(cls, host: str, port: int, *, ssl: ssl_module.SSLContext | None = None, **kwargs: Any) -> "GrpcChannel":
        """Plain text, or TLS with `ssl` (its ALPN protocols are set to h2 here)."""
        if ssl is not None:
            ssl.set_alpn_protocols(["h2"])
            kwargs.setdefault("scheme", "https")

        def connect():
            return asyncio.open_connection(host, port, ssl=ssl, server_hostname=host if ssl is not None else None)
        authority = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        return cls(connect, authority=authority, **kwargs)

    async def _usable_connection(self) -> _Connection:
        connection = self._connection
        if connection is not None and connection.usable:
            return connection
        async with self._connecting:
            connection = self._connection
            if connection is None or not connection.usable:
                try:
                    reader, writer = await self._connect()
                except (OSError, ssl_module.SSLError) as error:
                    raise GrpcError("UNAVAILABLE", f"failed to connect: {error}") from None
                connection = self._connection = _Connection(reader, writer, self)
            return connection

    async def unary(self, path: str, message: bytes, *, timeout: float | None = None) -> bytes:
        """The response message of `path` ("/package.Service/Method") for `message`."""
        try:
            async with asyncio.timeout(timeout):
                try:
                    return await (await self._usable_connection()).call(path, message, timeout)
                except GrpcError as error:
                    if not error.unprocessed:
                        raise
                return await (await self._usable_connection()).call(path, message, timeout)
        except TimeoutError:
            raise GrpcError("DEADLINE_EXCEEDED", "Deadline Exceeded") from None

    async def open_stream(self, path: str, *, timeout: float | None = None) -> BidiStream:
        """A streaming call of `path`; `timeout` bounds connecting only."""
        try:
            async with asyncio.timeout(timeout):
                return await (await self._usable_connection()).open_stream(path)
        except TimeoutError:
            raise GrpcError("DEADLINE_EXCEEDED", "Deadline Exceeded") from None

    def drop_connection(self) -> None:
        """Close the current connection (the next call opens a new one): for a caller that
        suspects the peer is gone, e.g. after a deadline passed with no answer."""
        connection, self._connection = self._connection, None
        if connection is not None:
            connection.close()

    async def close(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None:
            connection.close()
            await asyncio.gather(connection.reader_task, return_exceptions=True)
