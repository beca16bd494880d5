"""Port-forward served by the kubelet itself: the server half of a SPDY/3.1
`portforward.k8s.io` session, dialling the pod's ports from inside its network namespace.

This is what upstream's pkg/kubelet/cri/streaming/portforward library does for the runtimes
that embed it (and what dockershim's kubelet did): the client (kubectl, through the API
server) opens a pair of streams per local connection — `streamtype: error` then
`streamtype: data`, both with `port` and `requestid` headers — and the server answers each
SYN_STREAM with a SYN_REPLY, connects to 127.0.0.1:<port> in the pod's network namespace
once the pair is complete, and copies bytes between the data stream and that connection.
A failure is written as text on the error stream (upstream's wording: "error forwarding port
P to pod ID, uid : ...", with containerd's inner message, so kubectl users see what they see
with containerd). Both streams are half-closed (FIN) when the pod's side ends.

Why not containerd's stream server (CRI PortForward), as before: it is another hop (a TCP
connection and a relay in this process), and it sends 32 KiB frames; kubectl's SPDY library
passes every frame through three goroutines, so frame count, not bytes, limited the
throughput (bench/streaming.py). Here each read from the pod (up to 256 KiB) becomes one
frame.

The dialling, the pod connections and the flow control below are `ForwardingSession`'s,
which the WebSocket port-forward (`pyk8s.kubelet.wsportforward`) shares; the SPDY session
adds its framing (`PortForwardSession`).

Data flow, all in event-loop callbacks (no task per chunk): client bytes -> aiohttp's
protocol -> `feed_data` (frames parsed) -> the pod connection's transport; pod bytes -> read
into `PodConnection`'s buffer -> one data frame -> the client's transport.
Back-pressure, as in spdystream (no SPDY flow control: kubectl neither sends nor honours
WINDOW_UPDATE): when the client's transport has more than RELAY_HIGH_WATER queued, every
pod connection of the session stops reading until it drains; when a pod connection has more
than POD_HIGH_WATER queued, the client's connection stops reading (all its streams wait, as
spdystream's frame handler blocks on a full stream).

The netns dance: a socket belongs to the network namespace it was created in, and setns()
changes only the calling thread's namespace. Python 3.11 has no os.setns, so libc's setns is
called through ctypes in a new thread made for one dial: it enters the pod's namespace,
creates and connects the socket, and ends. The connected socket is then handed to the event
loop (it stays in the pod's namespace); no pooled thread ever runs in another namespace.
"""

from __future__ import annotations

import asyncio
import ctypes
import logging
import os
import socket
import struct
import threading

from aiohttp import web

from pyk8s.httpstream import RELAY_HIGH_WATER, hold_upgraded
from pyk8s.spdy import (CANCEL, FLAG_FIN, GOAWAY, HEADERS, PING, RST_STREAM, SYN_REPLY, SYN_STREAM, FrameParser,
                        HeaderCodec, control_frame, data_frame_head, frame_type, is_control, is_server_ping,
                        reset_frame, stream_id_of)

log = logging.getLogger("pyk8s.kubelet.portforward")

PROTOCOL = "portforward.k8s.io"
# Client bytes a pod connection may have queued before the client's connection stops being read.
POD_HIGH_WATER = 1024 * 1024
# Upstream's streamCreationTimeout: how long the second stream of a pair may keep us waiting.
STREAM_CREATION_TIMEOUT = 30.0
CONNECT_TIMEOUT = 10.0
# The most a read from the pod takes, hence the largest data frame sent. kubectl's SPDY library
# has a large fixed cost per frame (each goes through three goroutines): against a stub server
# kubectl alone moved ~250 MB/s with 32 KiB frames (what containerd sends), ~380 MB/s with
# 256 KiB and ~530 MB/s with 1 MiB. Past 256 KiB this process paid more per byte than kubectl
# gained (buffers out of cache; in noisy runs 4-4.5 ms of server CPU per MB at 256-512 KiB,
# 5.5-6.5 at 1-4 MiB), and it is the busier of the two.
READ_SIZE = 256 * 1024
_DATA_HEAD = struct.Struct(">II")
CLONE_NEWNET = 0x40000000

_libc = ctypes.CDLL(None, use_errno=True)


class DialError(Exception):
    """The pod's port could not be reached; the message is what the error stream carries."""


def _go_error(error: OSError) -> str:
    """An errno as Go prints it ("connection refused"), the way containerd's messages read."""
    text = os.strerror(error.errno) if error.errno else str(error)
    return text[:1].lower() + text[1:]


def connect_in_network_namespace(netns_path: str | None, port: int, sandbox_id: str) -> socket.socket:
    """Connect to localhost:port from inside `netns_path` (None: this process's namespace, for
    host-network pods), IPv4 first then IPv6 as containerd does. Only for a thread of its own:
    setns() leaves the calling thread in the pod's namespace."""
    if netns_path:
        try:
            descriptor = os.open(netns_path, os.O_RDONLY | os.O_CLOEXEC)
        except OSError as error:
            raise DialError(f'failed to execute portforward in network namespace "{netns_path}": '
                            f"open {netns_path}: {_go_error(error)}") from None
        try:
            if _libc.setns(descriptor, CLONE_NEWNET) != 0:
                number = ctypes.get_errno()
                raise DialError(f'failed to execute portforward in network namespace "{netns_path}": '
                                f"setns: {_go_error(OSError(number, os.strerror(number)))}")
        finally:
            os.close(descriptor)
    failures = []
    for family, address, name in ((socket.AF_INET, ("127.0.0.1", port), f"tcp4 127.0.0.1:{port}"),
                                  (socket.AF_INET6, ("::1", port), f"tcp6 [::1]:{port}")):
        try:
            sock = socket.socket(family, socket.SOCK_STREAM)
        except OSError as error:
            failures.append(f"dial {name}: socket: {_go_error(error)}")
            continue
        try:
            sock.settimeout(CONNECT_TIMEOUT)
            sock.connect(address)
        except OSError as error:
            sock.close()
            failures.append(f"dial {name}: connect: {_go_error(error) if error.errno else 'i/o timeout'}")
            continue
        sock.setblocking(False)
        return sock
    # containerd's wording (internal/cri/server/sandbox_portforward_linux.go), trailing space included
    inner = (f'failed to connect to localhost:{port} inside namespace "{sandbox_id}", '
             f"IPv4: {failures[0]} IPv6 {failures[1]} ")
    if netns_path:
        inner = f'failed to execute portforward in network namespace "{netns_path}": {inner}'
    raise DialError(inner)


async def dial_pod(netns_path: str | None, port: int, sandbox_id: str) -> socket.socket:
    """`connect_in_network_namespace` in a thread started for this dial alone."""
    loop = asyncio.get_running_loop()
    result: asyncio.Future = loop.create_future()

    def settle(sock: socket.socket | None, error: BaseException | None) -> None:
        if result.cancelled():
            if sock is not None:
                sock.close()  # nobody waits for it any more: do not keep the pod's namespace alive
        elif error is not None:
            result.set_exception(error)
        else:
            result.set_result(sock)

    def dial() -> None:
        try:
            sock = connect_in_network_namespace(netns_path, port, sandbox_id)
        except BaseException as error:  # handed to the waiting coroutine
            loop.call_soon_threadsafe(settle, None, error)
        else:
            try:
                loop.call_soon_threadsafe(settle, sock, None)
            except RuntimeError:  # the loop has closed
                sock.close()

    threading.Thread(target=dial, name=f"portforward-dial-{port}", daemon=True).start()
    return await result


class Forward:
    """One forwarded connection: the pod's side of it and where it stands. Each protocol's
    session adds how the client addresses it (SPDY streams, WebSocket channels)."""

    def __init__(self, port: int):
        self.port = port
        self.pod: asyncio.Transport | None = None
        self.early: list[bytes] = []  # client bytes that came before the pod connection
        self.client_finished = False  # the client half-closed its side
        self.pod_finished = False  # the pod's side ended (and the client was told, where it can be)
        self.closed = False
        self.timer: asyncio.TimerHandle | None = None


class _StreamPair(Forward):
    """The error and data streams of one SPDY-forwarded connection."""

    def __init__(self, request_id: str, port: int):
        super().__init__(port)
        self.request_id = request_id
        self.error_stream = 0
        self.data_stream = 0

    @property
    def complete(self) -> bool:
        return bool(self.error_stream and self.data_stream)


class PodConnection(asyncio.BufferedProtocol):
    """The event-loop protocol on one connection to the pod. It reads into a buffer that has
    the session's HEAD_ROOM free in front, so each read leaves as one frame of up to
    READ_SIZE bytes with one copy (the session writes the frame head into that room)."""

    def __init__(self, session: "ForwardingSession", forward: Forward):
        self.session, self.forward = session, forward
        self.paused = False
        self._frame = bytearray(session.HEAD_ROOM + READ_SIZE)
        self._room = memoryview(self._frame)[session.HEAD_ROOM:]

    def get_buffer(self, sizehint: int) -> memoryview:
        return self._room

    def buffer_updated(self, nbytes: int) -> None:
        self.session.to_client(self.forward, self._frame, nbytes)

    def eof_received(self) -> bool:
        self.session.pod_ended(self.forward)
        return not self.forward.closed  # keep our sending half open while the client still sends

    def connection_lost(self, exc) -> None:
        self.session.pod_ended(self.forward)
        self.session.forget(self.forward)
        if self.paused:
            self.resume_writing()

    def pause_writing(self) -> None:
        self.paused = True
        self.session.pod_backed_up(+1)

    def resume_writing(self) -> None:
        if self.paused:
            self.paused = False
            self.session.pod_backed_up(-1)


class ForwardingSession:
    """What the SPDY and WebSocket port-forward sessions share on one upgraded client
    connection: dialling the pod for a forward, passing client bytes to it, flow control both
    ways. A subclass frames the pod's bytes for its protocol (`to_client`, with HEAD_ROOM
    bytes free before them), reports errors and tells the client a forward ended."""

    HEAD_ROOM = 0

    def __init__(self, request: web.BaseRequest, sandbox_id: str, netns_path: str | None):
        self.loop = asyncio.get_running_loop()
        self.client = request.transport
        self._client_protocol = request.protocol
        self.sandbox_id, self.netns_path = sandbox_id, netns_path
        self.done = self.loop.create_future()
        self._pods_reading = True
        self._backed_up_pods = 0
        self.client.set_write_buffer_limits(high=RELAY_HIGH_WATER)

    # the protocol's part
    def forwards(self):
        raise NotImplementedError

    def to_client(self, forward: Forward, frame: bytearray, length: int) -> None:
        raise NotImplementedError

    def pod_ended(self, forward: Forward) -> None:
        raise NotImplementedError

    def forget(self, forward: Forward) -> None:
        raise NotImplementedError

    def _error(self, forward: Forward, message: str) -> None:
        raise NotImplementedError

    def _close_pair(self, forward: Forward, *, abort: bool = False) -> None:
        raise NotImplementedError

    # ------------------------------------------------------------ client -> pod

    async def connect(self, forward: Forward) -> None:
        """Dial the forward's port in the pod; on failure, upstream's message on the error
        channel and the forward ends."""
        try:
            sock = await dial_pod(self.netns_path, forward.port, self.sandbox_id)
        except DialError as error:
            self._error(forward, f"error forwarding port {forward.port} to pod {self.sandbox_id}, uid : {error}")
            self._close_pair(forward)
            return
        if forward.closed or self.done.done():
            sock.close()
            return
        try:
            transport, _ = await self.loop.create_connection(lambda: PodConnection(self, forward), sock=sock)
        except OSError as error:
            sock.close()
            self._error(forward, f"error forwarding port {forward.port} to pod {self.sandbox_id}, uid : {error}")
            self._close_pair(forward)
            return
        if forward.closed or self.done.done():
            transport.abort()
            return
        transport.set_write_buffer_limits(high=POD_HIGH_WATER)
        forward.pod = transport
        if not self._pods_reading:
            transport.pause_reading()
        for data in forward.early:
            transport.write(data)
        forward.early.clear()
        if forward.client_finished:
            if forward.pod_finished:
                self._close_pair(forward)
            elif transport.can_write_eof():
                transport.write_eof()

    def from_client(self, forward: Forward, data: bytes, fin) -> None:
        """Client bytes for the forward's pod connection; `fin`: the client's half-close."""
        if forward.closed or forward.client_finished:
            return
        if forward.pod is None:
            if data:
                forward.early.append(data)
        elif data:
            forward.pod.write(data)
        if fin:
            forward.client_finished = True
            if forward.pod is not None:
                if forward.pod_finished:
                    self._close_pair(forward)
                elif forward.pod.can_write_eof():
                    forward.pod.write_eof()

    def pod_backed_up(self, change: int) -> None:
        """A pod connection's write buffer crossed POD_HIGH_WATER (+1) or drained (-1)."""
        self._backed_up_pods += change
        if self.client.is_closing():
            return
        if self._backed_up_pods > 0:
            self.client.pause_reading()
        else:
            self.client.resume_reading()

    # ------------------------------------------------------------ pod -> client

    def client_written(self) -> None:
        """After a write to the client: past RELAY_HIGH_WATER queued, every pod connection of
        the session stops reading until the client's connection drains."""
        if self._pods_reading and self.client.get_write_buffer_size() > RELAY_HIGH_WATER:
            self._pods_reading = False
            for other in self.forwards():
                if other.pod is not None and not other.pod.is_closing():
                    other.pod.pause_reading()
            asyncio.ensure_future(self._resume_pods_when_client_drained())

    async def _resume_pods_when_client_drained(self) -> None:
        try:
            await self._client_protocol._drain_helper()  # aiohttp's wait for resume_writing
        except (ConnectionError, RuntimeError):
            self.finish()
            return
        self._pods_reading = True
        for forward in list(self.forwards()):
            if forward.pod is not None and not forward.pod.is_closing():
                forward.pod.resume_reading()

    def finish(self) -> None:
        """The session is over (client gone): every pod connection still open ends with it."""
        if not self.done.done():
            self.done.set_result(None)
        for forward in list(self.forwards()):
            if forward.timer is not None:
                forward.timer.cancel()
            if forward.pod is not None and not forward.closed:
                forward.pod.abort()
            forward.closed = True


class PortForwardSession(ForwardingSession):
    """The server half of one SPDY portforward.k8s.io session on an upgraded connection
    (aiohttp's payload parser for it: `feed_data`/`feed_eof`)."""

    HEAD_ROOM = 8  # a SPDY data frame's head

    def __init__(self, request: web.BaseRequest, sandbox_id: str, netns_path: str | None):
        super().__init__(request, sandbox_id, netns_path)
        self._parser = FrameParser()
        self._headers = HeaderCodec()
        self._pairs: dict[str, _StreamPair] = {}  # by request id
        self._streams: dict[int, _StreamPair] = {}  # by stream id

    def forwards(self):
        return set(self._pairs.values()) | set(self._streams.values())

    # ------------------------------------------------------------ client -> pod

    def feed_data(self, data: bytes) -> tuple[bool, bytes]:
        for first, flags, payload in self._parser.feed(data):
            if not is_control(first):
                pair = self._streams.get(first)
                if pair is not None and first == pair.data_stream:
                    self.from_client(pair, payload, flags & FLAG_FIN)
                continue  # the error stream carries nothing from the client; unknown streams are ignored
            kind = frame_type(first)
            if kind == SYN_STREAM:
                self._stream_opened(stream_id_of(payload), self._headers.decode(payload[10:]))
            elif kind == RST_STREAM:
                pair = self._streams.get(stream_id_of(payload))
                if pair is not None:
                    self._close_pair(pair, abort=True)
            elif kind == PING:
                if not is_server_ping(payload):
                    self.client.write(control_frame(PING, 0, payload))  # answered with the same id
            elif kind == GOAWAY:
                self.finish()
            elif kind in (SYN_REPLY, HEADERS):
                self._headers.decode(payload[4:])  # keep the zlib context in step; nothing to do
            # SETTINGS, WINDOW_UPDATE: no flow control (spdystream sends neither)
        return False, b""

    def feed_eof(self) -> None:
        self.finish()

    def _stream_opened(self, stream_id: int, headers: dict[str, str]) -> None:
        # upstream's httpStreamReceived: a stream without a valid port or type is reset
        port_text, stream_type = headers.get("port", ""), headers.get("streamtype", "")
        if not port_text.isdigit() or not 0 < int(port_text) < 65536 or stream_type not in ("error", "data"):
            log.warning("port-forward stream %d rejected: headers %s", stream_id, headers)
            self.client.write(reset_frame(stream_id, CANCEL))
            return
        self.client.write(control_frame(SYN_REPLY, 0, struct.pack(">I", stream_id) + self._headers.encode({})))
        request_id = headers.get("requestid") or \
            str(stream_id if stream_type == "error" else stream_id - 2)  # clients before request ids
        pair = self._pairs.get(request_id)
        if pair is None:
            pair = self._pairs[request_id] = _StreamPair(request_id, int(port_text))
            pair.timer = self.loop.call_later(STREAM_CREATION_TIMEOUT, self._pair_timed_out, pair)
        if getattr(pair, f"{stream_type}_stream"):
            self._error(pair, f"error processing stream for request {request_id}: "
                              f"{stream_type} stream already assigned")
            return
        self._streams[stream_id] = pair
        setattr(pair, f"{stream_type}_stream", stream_id)
        if pair.complete:
            pair.timer.cancel()
            asyncio.ensure_future(self.connect(pair)).add_done_callback(_log_failure)

    def _pair_timed_out(self, pair: _StreamPair) -> None:
        if not pair.complete and not pair.closed:
            self._error(pair, f"(conn={id(self):#x}, request={pair.request_id}) timed out waiting for streams")
            self._close_pair(pair)

    # ------------------------------------------------------------ pod -> client

    def to_client(self, pair: _StreamPair, frame: bytearray, length: int) -> None:
        """Send the `length` bytes read into frame[8:] as one data frame (its head goes in
        frame[:8])."""
        client = self.client
        if client.is_closing() or pair.pod_finished:
            return
        _DATA_HEAD.pack_into(frame, 0, pair.data_stream, length)
        client.write(bytes(memoryview(frame)[:8 + length]))  # a copy: the buffer is read into again
        self.client_written()

    def pod_ended(self, pair: _StreamPair) -> None:
        """The pod's side sent EOF (or went away): FIN both streams, as upstream's handler
        closes them when the forward returns."""
        if pair.pod_finished:
            return
        pair.pod_finished = True
        if not self.client.is_closing() and not pair.closed:
            self.client.write(data_frame_head(pair.data_stream, 0, fin=True)
                              + data_frame_head(pair.error_stream, 0, fin=True))
        if pair.client_finished:
            self._close_pair(pair)

    # ------------------------------------------------------------ endings

    def _error(self, pair: _StreamPair, message: str) -> None:
        """upstream's printError: the text on the error stream (kubectl prints it)."""
        log.info("port-forward: %s", message)
        if pair.error_stream and not self.client.is_closing():
            text = message.encode()
            self.client.write(data_frame_head(pair.error_stream, len(text)) + text)

    def _close_pair(self, pair: _StreamPair, *, abort: bool = False) -> None:
        if pair.closed:
            return
        pair.closed = True
        if pair.timer is not None:
            pair.timer.cancel()
        if not pair.pod_finished and not self.client.is_closing():
            pair.pod_finished = True
            frames = b"".join(data_frame_head(stream, 0, fin=True) for stream in (pair.data_stream, pair.error_stream)
                              if stream)
            self.client.write(frames)
        if pair.pod is None:
            self.forget(pair)
        elif abort:
            pair.pod.abort()
        else:
            pair.pod.close()

    def forget(self, pair: _StreamPair) -> None:
        pair.closed = True
        if self._pairs.get(pair.request_id) is pair:
            del self._pairs[pair.request_id]
        for stream in (pair.error_stream, pair.data_stream):
            if self._streams.get(stream) is pair:
                del self._streams[stream]

    def finish(self) -> None:
        """The session is over (client gone or GOAWAY): every pod connection ends with it."""
        forwards = self.forwards()
        super().finish()
        for pair in forwards:  # closed ones too: GOAWAY ends what was still flushing
            if pair.pod is not None:
                pair.pod.abort()
        self._pairs.clear()
        self._streams.clear()


def _log_failure(task: asyncio.Task) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.warning("port-forward connection failed: %r", task.exception())


def negotiate(request: web.BaseRequest) -> web.Response | None:
    """upstream's httpstream.Handshake: None when the client offers portforward.k8s.io, else
    the refusal to send."""
    offered = [p.strip() for value in request.headers.getall("X-Stream-Protocol-Version", [])
               for p in value.split(",") if p.strip()]
    if not offered:
        return web.Response(status=400, text="unable to upgrade: X-Stream-Protocol-Version is required")
    if PROTOCOL not in offered:
        return web.Response(status=403, headers={"X-Accepted-Stream-Protocol-Versions": PROTOCOL},
                            text=f"unable to upgrade: unable to negotiate protocol: client supports "
                                 f"[{' '.join(offered)}], server accepts [{PROTOCOL}]")
    return None


async def serve(request: web.Request, sandbox_id: str, netns_path: str | None) -> web.StreamResponse:
    """Answer the SPDY upgrade with 101 and run the session until the client goes away."""
    request.transport.write(b"HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: SPDY/3.1\r\n"
                            b"X-Stream-Protocol-Version: " + PROTOCOL.encode() + b"\r\n\r\n")
    session = PortForwardSession(request, sandbox_id, netns_path)
    request.protocol.set_parser(session)
    return await hold_upgraded(request, session)
