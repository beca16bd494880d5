"""The server half of WebSocket (RFC 6455) framing and of Kubernetes' channel protocols, for
the kubelet's WebSocket port-forward: pure functions and a parser, no I/O.

Facts from upstream (apimachinery/pkg/util/httpstream/wsstream, conn.go) that shape it:
- Every message starts with a channel byte; what follows is that channel's data. With
  `*.base64.channel.k8s.io` the messages are text: the channel as an ASCII digit ('0' + n)
  and the data base64-encoded (standard alphabet, padded), both directions.
- The subprotocol is the first one the client offers that the server supports, in the
  client's order; a client offering none gets the "" protocol (binary channels).
- `v5.channel.k8s.io` adds one message, client to server only: [255, n] closes channel n
  for reading (its half-close). Anything else after 255 is a protocol error that ends the
  connection. The server never sends it.
- x/net/websocket reads text and binary messages alike as bytes, so a text message on a
  binary protocol is data too.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import struct

OP_CONTINUATION, OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA
CLOSE_NORMAL, CLOSE_PROTOCOL_ERROR, CLOSE_TOO_BIG = 1000, 1002, 1009
# RFC 6455 §1.3: the key is hashed with this GUID to prove the server read the handshake.
_HANDSHAKE_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
# The longest head a server frame can have (2 bytes, then a 64-bit length); servers never mask.
MAX_HEAD = 10
# A client message larger than this ends the connection (1009). The official Python client
# sends at most 1 MiB of a socket's data per message; kubectl never uses this path.
MAX_MESSAGE = 64 * 1024 * 1024

STREAM_CLOSE = 255  # v5's "close channel" signal
V4_BINARY, V4_BASE64, V5_BINARY = "v4.channel.k8s.io", "v4.base64.channel.k8s.io", "v5.channel.k8s.io"
# upstream's port-forward protocols ("", v4 binary, v4 base64) and v5, whose framing is v4's
# plus the close signal; the Python client offers v5 first.
PORT_FORWARD_PROTOCOLS = ("", V4_BINARY, V4_BASE64, V5_BINARY)


class ProtocolError(Exception):
    """The client broke the framing; `code` is the close status to answer with."""

    def __init__(self, message: str, code: int = CLOSE_PROTOCOL_ERROR):
        super().__init__(message)
        self.code = code


def accept_key(key: str) -> str:
    """Sec-WebSocket-Accept for a client's Sec-WebSocket-Key (RFC 6455 §4.2.2)."""
    return base64.b64encode(hashlib.sha1(key.strip().encode("latin-1") + _HANDSHAKE_GUID).digest()).decode()


def offered_protocols(header_values: list[str]) -> list[str]:
    """The subprotocols of the Sec-WebSocket-Protocol headers, in order."""
    return [p.strip() for value in header_values for p in value.split(",") if p.strip()]


def negotiate(offered: list[str], supported=PORT_FORWARD_PROTOCOLS) -> str | None:
    """The client's first offered protocol the server supports ("" when it offers none), or
    None: no match."""
    for protocol in offered or [""]:
        if protocol in supported:
            return protocol
    return None


def frame_head(opcode: int, length: int) -> bytes:
    """The head of one final, unmasked frame: what a server sends (§5.2)."""
    if length < 126:
        return bytes((0x80 | opcode, length))
    if length < 65536:
        return bytes((0x80 | opcode, 126)) + length.to_bytes(2, "big")
    return bytes((0x80 | opcode, 127)) + length.to_bytes(8, "big")


def frame(opcode: int, payload: bytes) -> bytes:
    return frame_head(opcode, len(payload)) + payload


def close_frame(code: int = CLOSE_NORMAL, reason: str = "") -> bytes:
    return frame(OP_CLOSE, struct.pack(">H", code) + reason.encode()[:123])


class FrameParser:
    """Client frames in, whole messages out, whatever the read boundaries: `feed` returns
    (opcode, payload) for each complete message (fragments joined, under the opcode of the
    first) and each control frame (which may come between fragments)."""

    def __init__(self, max_message: int = MAX_MESSAGE):
        self._buffer = bytearray()
        self._fragments: list[bytes] = []
        self._fragment_opcode: int | None = None
        self._fragment_size = 0
        self._max = max_message

    def feed(self, data: bytes) -> list[tuple[int, bytes]]:
        buffer = self._buffer
        buffer += data
        messages = []
        offset = 0
        end = len(buffer)
        while end - offset >= 2:
            first, second = buffer[offset], buffer[offset + 1]
            if first & 0x70:
                raise ProtocolError("reserved bits set (no extension was negotiated)")
            fin, opcode = first & 0x80, first & 0x0F
            masked, length = second & 0x80, second & 0x7F
            head = 2
            if length == 126:
                if end - offset < 4:
                    break
                length = int.from_bytes(buffer[offset + 2:offset + 4], "big")
                head = 4
            elif length == 127:
                if end - offset < 10:
                    break
                length = int.from_bytes(buffer[offset + 2:offset + 10], "big")
                head = 10
            if opcode >= 0x8 and (length > 125 or not fin):
                raise ProtocolError("control frame fragmented or longer than 125 bytes")
            if length + (self._fragment_size if opcode == OP_CONTINUATION else 0) > self._max:
                raise ProtocolError("message too big", CLOSE_TOO_BIG)
            mask_at = offset + head
            start = mask_at + (4 if masked else 0)
            if end - start < length:
                break
            payload = bytes(buffer[start:start + length])
            if masked:
                payload = _unmask(payload, bytes(buffer[mask_at:mask_at + 4]))
            offset = start + length
            messages.extend(self._message(fin, opcode, payload))
        del buffer[:offset]
        return messages

    def _message(self, fin: int, opcode: int, payload: bytes) -> list[tuple[int, bytes]]:
        if opcode >= 0x8:
            if opcode not in (OP_CLOSE, OP_PING, OP_PONG):
                raise ProtocolError(f"unknown control opcode {opcode}")
            return [(opcode, payload)]
        if opcode == OP_CONTINUATION:
            if self._fragment_opcode is None:
                raise ProtocolError("continuation frame without a message to continue")
            self._fragments.append(payload)
            self._fragment_size += len(payload)
            if not fin:
                return []
            whole, opcode = b"".join(self._fragments), self._fragment_opcode
            self._fragments, self._fragment_opcode, self._fragment_size = [], None, 0
            return [(opcode, whole)]
        if opcode not in (OP_TEXT, OP_BINARY):
            raise ProtocolError(f"unknown data opcode {opcode}")
        if self._fragment_opcode is not None:
            raise ProtocolError("new message before the previous one's last fragment")
        if fin:
            return [(opcode, payload)]
        self._fragments, self._fragment_opcode, self._fragment_size = [payload], opcode, len(payload)
        return []


def _unmask(payload: bytes, mask: bytes) -> bytes:
    """XOR with the repeating 4-byte mask, as one big-integer operation (fast for any size)."""
    length = len(payload)
    if not length:
        return payload
    key = (mask * (length // 4 + 1))[:length]
    return (int.from_bytes(payload, "little") ^ int.from_bytes(key, "little")).to_bytes(length, "little")


class ChannelCodec:
    """Channel messages of one negotiated protocol: what `decode` makes of a client message,
    and the frames `encode` / `encode_in_place` send."""

    DATA, CLOSE = "data", "close"

    def __init__(self, protocol: str):
        self.protocol = protocol
        self.base64 = protocol.split(".")[1:2] == ["base64"]
        self.closes_channels = protocol == V5_BINARY

    def decode(self, payload: bytes) -> tuple[str, int, bytes] | None:
        """(DATA, channel, data) or (CLOSE, channel, b""); None for a message to ignore (empty,
        or base64 that does not decode — upstream logs and drops it). ProtocolError for a
        malformed close signal (upstream ends the connection)."""
        if not payload:
            return None
        if self.closes_channels and payload[0] == STREAM_CLOSE:
            if len(payload) != 2:
                raise ProtocolError(f"single channel byte should follow stream close signal, got {len(payload) - 1}")
            return self.CLOSE, payload[1], b""
        if self.base64:
            channel = payload[0] - ord("0")
            try:
                return self.DATA, channel, base64.b64decode(payload[1:], validate=True)
            except (binascii.Error, ValueError):
                return None
        return self.DATA, payload[0], payload[1:]

    def encode(self, channel: int, data: bytes) -> bytes:
        """One whole frame carrying `data` on `channel`."""
        if self.base64:
            return frame(OP_TEXT, bytes((ord("0") + channel,)) + base64.b64encode(data))
        return frame_head(OP_BINARY, len(data) + 1) + bytes((channel,)) + data

    def encode_in_place(self, buffer: bytearray, room: int, channel: int, length: int) -> memoryview:
        """The frame for the `length` bytes at buffer[room:], its head and channel byte written
        into the `room` bytes before them (room >= MAX_HEAD + 1), so a read from the pod goes
        out with one copy. Base64 cannot be done in place: it is encoded anew."""
        view = memoryview(buffer)
        if self.base64:
            return memoryview(self.encode(channel, bytes(view[room:room + length])))
        head = frame_head(OP_BINARY, length + 1)
        start = room - 1 - len(head)
        buffer[start:room - 1] = head
        buffer[room - 1] = channel
        return view[start:room + length]
