"""Protocol Buffers wire primitives shared by every hand-written encoder in pyk8s (the API's
protobuf answers, the CRI client, the etcd client, the OpenAPI v2 document)."""

from __future__ import annotations

VARINT, LENGTH_DELIMITED = 0, 2


def varint(value: int) -> bytes:
    """Base-128 varint; negative int32/int64 values are sent as ten-byte two's complement."""
    if value < 0:
        value += 1 << 64
    if value < 0x80:
        return bytes((value,))
    out = bytearray()
    while value > 0x7F:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def key(number: int, wire_type: int) -> bytes:
    return varint(number << 3 | wire_type)


def length_delimited(number: int, payload: bytes) -> bytes:
    return key(number, LENGTH_DELIMITED) + varint(len(payload)) + payload
