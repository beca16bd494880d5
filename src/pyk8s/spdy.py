"""SPDY/3.1 framing as Kubernetes speaks it, shared by the API server (the client half: it
translates WebSocket exec into a SPDY session to the kubelet) and the kubelet (the server
half: it serves port-forward itself) — the part of moby/spdystream both need.

Facts about the Go side (moby/spdystream under apimachinery/pkg/util/httpstream/spdy, used
by kubectl, client-go and every runtime's stream server) that shape this module:
- No flow control: spdystream never sends SETTINGS or WINDOW_UPDATE and ignores both when it
  receives them. A slow reader pushes back only through TCP (its frame reader stops reading
  once its per-connection frame queues are full). Neither half here keeps windows either.
- One data frame per Write: Go senders send 32 KiB frames (io.Copy's buffer). A receiver
  hands each frame through several goroutines before its reader sees it, so a sender here
  should send frames as large as it has bytes (up to 16 MiB - 1), not chop them.
- Header blocks are one zlib stream per direction for the whole session, primed with the
  SPDY/3 dictionary, flushed with Z_SYNC_FLUSH after each block; names are lower case.
- Stream ids: client-initiated odd, server-initiated even; a stream is half-closed by a
  frame with FLAG_FIN (often an empty data frame).

Wire format (draft-mbelshe-httpbis-spdy-00 §2.2): every frame has an 8-byte head. Control
frames: 1 bit set, 15 bits version (3), 16 bits type, 8 bits flags, 24 bits length. Data
frames: 1 bit clear, 31 bits stream id, 8 bits flags, 24 bits length.
"""

from __future__ import annotations

import asyncio
import struct
import zlib


def _spdy3_dictionary() -> bytes:
    """The SPDY/3 header-compression dictionary (draft-mbelshe-httpbis-spdy-00 §2.6.10.1):
    length-prefixed header names and values, then a block of common value text."""
    words = ("options head post put delete trace accept accept-charset accept-encoding accept-language "
             "accept-ranges age allow authorization cache-control connection content-base content-encoding "
             "content-language content-length content-location content-md5 content-range content-type date "
             "etag expect expires from host if-match if-modified-since if-none-match if-range "
             "if-unmodified-since last-modified location max-forwards pragma proxy-authenticate "
             "proxy-authorization range referer retry-after server te trailer transfer-encoding upgrade "
             "user-agent vary via warning www-authenticate method get status").split()
    words += ["200 OK", "version", "HTTP/1.1", "url", "public", "set-cookie", "keep-alive", "origin"]
    tail = ("100101201202205206300302303304305306307402405406407408409410411412413414415416417502504505"
            "203 Non-Authoritative Information204 No Content301 Moved Permanently400 Bad Request"
            "401 Unauthorized403 Forbidden404 Not Found500 Internal Server Error501 Not Implemented"
            "503 Service UnavailableJan Feb Mar Apr May Jun Jul Aug Sept Oct Nov Dec 00:00:00 "
            "Mon, Tue, Wed, Thu, Fri, Sat, Sun, GMTchunked,text/html,image/png,image/jpg,image/gif,"
            "application/xml,application/xhtml+xml,text/plain,text/javascript,publicprivatemax-age="
            "gzip,deflate,sdchcharset=utf-8charset=iso-8859-1,utf-,*,enq=0.")
    return b"".join(struct.pack(">I", len(word)) + word.encode() for word in words) + tail.encode()


SPDY3_DICTIONARY = _spdy3_dictionary()
assert len(SPDY3_DICTIONARY) == 1423

SYN_STREAM, SYN_REPLY, RST_STREAM, SETTINGS, PING, GOAWAY, HEADERS, WINDOW_UPDATE = 1, 2, 3, 4, 6, 7, 8, 9
FLAG_FIN = 0x01
# RST_STREAM status codes (§2.6.3)
PROTOCOL_ERROR, INVALID_STREAM, REFUSED_STREAM, CANCEL, INTERNAL_ERROR = 1, 2, 3, 5, 6
MAX_FRAME_LENGTH = 0xFFFFFF
_CONTROL_BIT = 0x80000000
_HEAD = struct.Struct(">II")
_CONTROL_HEAD = struct.Struct(">HHI")


def control_frame(frame_type: int, flags: int, payload: bytes) -> bytes:
    return _CONTROL_HEAD.pack(0x8003, frame_type, (flags << 24) | len(payload)) + payload


def data_frame_head(stream_id: int, length: int, *, fin: bool = False) -> bytes:
    """The 8-byte head of a data frame carrying `length` (≤ MAX_FRAME_LENGTH) bytes."""
    return _HEAD.pack(stream_id & 0x7FFFFFFF, ((FLAG_FIN if fin else 0) << 24) | length)


def data_frames(stream_id: int, data: bytes, *, fin: bool = False) -> bytes:
    """`data` as data frames (one, unless it is over 16 MiB), FIN on the last when asked."""
    if len(data) <= MAX_FRAME_LENGTH:
        return data_frame_head(stream_id, len(data), fin=fin) + data
    view, pieces = memoryview(data), []
    while len(view):
        piece, view = view[:MAX_FRAME_LENGTH], view[MAX_FRAME_LENGTH:]
        pieces += [data_frame_head(stream_id, len(piece), fin=fin and not len(view)), piece]
    return b"".join(pieces)


def reset_frame(stream_id: int, status: int = CANCEL) -> bytes:
    return control_frame(RST_STREAM, 0, struct.pack(">II", stream_id & 0x7FFFFFFF, status))


class HeaderCodec:
    """The two zlib contexts of a session's header blocks (one per direction, SPDY/3
    §2.6.10): every block sent or received must go through the same context, in order, even
    those of streams that are then refused."""

    def __init__(self):
        self._deflate = zlib.compressobj(zdict=SPDY3_DICTIONARY)
        self._inflate = zlib.decompressobj(zdict=SPDY3_DICTIONARY)

    def encode(self, headers: dict[str, str]) -> bytes:
        block = bytearray(struct.pack(">I", len(headers)))
        for name, value in headers.items():
            name_bytes, value_bytes = name.lower().encode(), value.encode()
            block += struct.pack(">I", len(name_bytes)) + name_bytes + struct.pack(">I", len(value_bytes)) + value_bytes
        return self._deflate.compress(bytes(block)) + self._deflate.flush(zlib.Z_SYNC_FLUSH)

    def decode(self, compressed: bytes) -> dict[str, str]:
        """Header names lower-cased; a value with several parts (NUL-separated) keeps the first."""
        raw = self._inflate.decompress(compressed)
        count, position, headers = struct.unpack_from(">I", raw)[0], 4, {}
        for _ in range(count):
            (name_length,) = struct.unpack_from(">I", raw, position)
            name = raw[position + 4:position + 4 + name_length].decode().lower()
            position += 4 + name_length
            (value_length,) = struct.unpack_from(">I", raw, position)
            headers.setdefault(name, raw[position + 4:position + 4 + value_length].decode().split("\0")[0])
            position += 4 + value_length
        return headers


class FrameParser:
    """Splits a byte stream into frames. `feed(data)` returns the frames completed so far as
    (head word, flags, payload): for a data frame the head word is the stream id, for a
    control frame it has the high bit set and the type in its low 16 bits (`is_control`,
    `frame_type`). A frame arriving in many pieces is joined once, when it is complete."""

    def __init__(self):
        self._pieces: list[bytes] = []
        self._held = 0  # bytes in _pieces
        self._wanted = 8  # bytes needed before the next frame can be cut

    def feed(self, data: bytes) -> list[tuple[int, int, bytes]]:
        if self._pieces:
            self._pieces.append(data)
            self._held += len(data)
            if self._held < self._wanted:
                return []
            data = b"".join(self._pieces)
            self._pieces.clear()
        frames = []
        position, end = 0, len(data)
        while end - position >= 8:
            first, second = _HEAD.unpack_from(data, position)
            frame_end = position + 8 + (second & 0xFFFFFF)
            if frame_end > end:
                break
            frames.append((first, second >> 24, data[position + 8:frame_end]))
            position = frame_end
        self._held, self._wanted = end - position, 8
        if position < end:
            rest = data[position:]
            self._pieces.append(rest)
            if len(rest) >= 8:
                self._wanted = 8 + (_HEAD.unpack_from(rest)[1] & 0xFFFFFF)
        return frames


def is_control(first_word: int) -> bool:
    return bool(first_word & _CONTROL_BIT)


def frame_type(first_word: int) -> int:
    return first_word & 0xFFFF


def is_server_ping(payload: bytes) -> bool:
    """Pings carry the sender's parity (client odd, server even, like stream ids): each side
    answers the other's and must not answer its own answers back (spdystream's rule)."""
    return not struct.unpack_from(">I", payload)[0] & 1


def stream_id_of(payload: bytes) -> int:
    """The stream id that starts a SYN_STREAM, SYN_REPLY, RST_STREAM, HEADERS or
    WINDOW_UPDATE payload."""
    return struct.unpack_from(">I", payload)[0] & 0x7FFFFFFF


class SpdySession:
    """The client half of a SPDY/3.1 session on an upgraded connection (asyncio streams):
    opens streams, sends data (with FIN for half-close) and yields what the server sends."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter):
        self.reader = reader
        self.writer = writer
        self._next_stream_id = 1  # client-initiated streams are odd
        self._headers = HeaderCodec()

    def open_stream(self, headers: dict[str, str]) -> int:
        stream_id = self._next_stream_id
        self._next_stream_id += 2
        self.writer.write(control_frame(SYN_STREAM, 0, struct.pack(">IIBB", stream_id, 0, 0, 0)
                                        + self._headers.encode(headers)))
        return stream_id

    def send_data(self, stream_id: int, data: bytes, *, fin: bool = False) -> None:
        self.writer.write(data_frames(stream_id, data, fin=fin))

    def reset(self, stream_id: int, status: int = CANCEL) -> None:
        self.writer.write(reset_frame(stream_id, status))

    async def frames(self):
        """Yield ("data", stream, bytes, fin), ("reply", stream, headers, fin), ("reset", stream,
        status, True), ("ping", 0, id, False) for answers to our pings and ("goaway", 0, b"",
        True) until the connection ends."""
        reader = self.reader
        while True:
            try:
                head = await reader.readexactly(8)
                first, second = _HEAD.unpack(head)
                length = second & 0xFFFFFF
                payload = await reader.readexactly(length) if length else b""
            except (asyncio.IncompleteReadError, ConnectionError):
                return
            flags = second >> 24
            if not first & _CONTROL_BIT:
                yield "data", first & 0x7FFFFFFF, payload, bool(flags & FLAG_FIN)
                continue
            kind = first & 0xFFFF
            if kind in (SYN_REPLY, HEADERS):
                yield "reply", stream_id_of(payload), self._headers.decode(payload[4:]), bool(flags & FLAG_FIN)
            elif kind == RST_STREAM:
                stream_id, status = struct.unpack_from(">II", payload)
                yield "reset", stream_id & 0x7FFFFFFF, status, True
            elif kind == PING:
                if is_server_ping(payload):
                    self.writer.write(control_frame(PING, 0, payload))  # answered with the same id
                else:
                    yield "ping", 0, payload, False  # the answer to one of ours
            elif kind == GOAWAY:
                yield "goaway", 0, b"", True
            elif kind == SYN_STREAM:
                # Servers in these protocols never open streams; refuse any that appear.
                self._headers.decode(payload[10:])  # keep the shared zlib context in step
                self.reset(stream_id_of(payload), REFUSED_STREAM)
            # SETTINGS and WINDOW_UPDATE need no answer (no flow control, as in spdystream).
