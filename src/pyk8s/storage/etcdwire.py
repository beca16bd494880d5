"""The etcd v3 gRPC messages the etcd store uses, encoded and decoded by hand.

Field numbers follow etcd's `api/etcdserverpb/rpc.proto` and `api/mvccpb/kv.proto` (v3.4).
Only the messages and fields the store needs are here; decoding skips any field it does not
know, as protobuf requires. Requests are built as bytes and passed to `grpc.aio` without a
serializer, so the only runtime dependency is grpcio (no generated code, no `protobuf`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from pyk8s.api.protowire import varint

# gRPC method paths.
RANGE = "/etcdserverpb.KV/Range"
TXN = "/etcdserverpb.KV/Txn"
COMPACT = "/etcdserverpb.KV/Compact"
WATCH = "/etcdserverpb.Watch/Watch"
STATUS = "/etcdserverpb.Maintenance/Status"

# Compare.CompareResult / Compare.CompareTarget
EQUAL, GREATER, LESS, NOT_EQUAL = 0, 1, 2, 3
TARGET_VERSION, TARGET_CREATE, TARGET_MOD, TARGET_VALUE = 0, 1, 2, 3

_VARINT, _LEN = 0, 2


# -- encoding ------------------------------------------------------------------------------

def _int_field(number: int, value: int) -> bytes:
    return varint(number << 3 | _VARINT) + varint(value) if value else b""


def _bool_field(number: int, value: bool) -> bytes:
    return varint(number << 3 | _VARINT) + b"\x01" if value else b""


def _bytes_field(number: int, value: bytes) -> bytes:
    return varint(number << 3 | _LEN) + varint(len(value)) + value if value else b""


def _message_field(number: int, value: bytes) -> bytes:
    # An embedded message is written even when empty: its presence selects a oneof branch.
    return varint(number << 3 | _LEN) + varint(len(value)) + value


def range_request(key: bytes, range_end: bytes = b"", *, limit: int = 0, revision: int = 0,
                  count_only: bool = False, serializable: bool = False) -> bytes:
    return (_bytes_field(1, key) + _bytes_field(2, range_end) + _int_field(3, limit)
            + _int_field(4, revision) + _bool_field(7, serializable) + _bool_field(9, count_only))


def put_request(key: bytes, value: bytes, *, prev_kv: bool = False) -> bytes:
    return _bytes_field(1, key) + _bytes_field(2, value) + _bool_field(4, prev_kv)


def delete_range_request(key: bytes, *, prev_kv: bool = False) -> bytes:
    return _bytes_field(1, key) + _bool_field(3, prev_kv)


def compare(key: bytes, target: int, result: int, value: int) -> bytes:
    # target_union: version = 4, create_revision = 5, mod_revision = 6
    union_field = {TARGET_VERSION: 4, TARGET_CREATE: 5, TARGET_MOD: 6}[target]
    # A zero in a oneof is still written (its presence says which target is compared).
    operand = varint(union_field << 3 | _VARINT) + varint(value)
    return _int_field(1, result) + _int_field(2, target) + _bytes_field(3, key) + operand


def request_op_range(request: bytes) -> bytes:
    return _message_field(1, request)


def request_op_put(request: bytes) -> bytes:
    return _message_field(2, request)


def request_op_delete(request: bytes) -> bytes:
    return _message_field(3, request)


def txn_request(compares: list[bytes], success: list[bytes], failure: list[bytes]) -> bytes:
    return (b"".join(_message_field(1, c) for c in compares)
            + b"".join(_message_field(2, op) for op in success)
            + b"".join(_message_field(3, op) for op in failure))


def compaction_request(revision: int, *, physical: bool = False) -> bytes:
    return _int_field(1, revision) + _bool_field(2, physical)


def watch_create_request(key: bytes, range_end: bytes, *, start_revision: int, watch_id: int,
                         prev_kv: bool = True, progress_notify: bool = True) -> bytes:
    create = (_bytes_field(1, key) + _bytes_field(2, range_end) + _int_field(3, start_revision)
              + _bool_field(4, progress_notify) + _bool_field(6, prev_kv) + _int_field(7, watch_id))
    return _message_field(1, create)


def watch_cancel_request(watch_id: int) -> bytes:
    return _message_field(2, _int_field(1, watch_id))


def watch_progress_request() -> bytes:
    return _message_field(3, b"")


STATUS_REQUEST = b""


# -- decoding ------------------------------------------------------------------------------

class DecodeError(ValueError):
    pass


def _fields(data: bytes):
    """(field number, wire type, value) of each field: ints for varints, bytes for
    length-delimited, skipped for fixed32/64 (no etcd field we read uses them)."""
    position, end = 0, len(data)
    while position < end:
        tag = 0
        shift = 0
        while True:
            byte = data[position]
            position += 1
            tag |= (byte & 0x7F) << shift
            if byte < 0x80:
                break
            shift += 7
        number, wire = tag >> 3, tag & 7
        if wire == _VARINT:
            value = 0
            shift = 0
            while True:
                byte = data[position]
                position += 1
                value |= (byte & 0x7F) << shift
                if byte < 0x80:
                    break
                shift += 7
            if value >= 1 << 63:
                value -= 1 << 64
            yield number, wire, value
        elif wire == _LEN:
            length = 0
            shift = 0
            while True:
                byte = data[position]
                position += 1
                length |= (byte & 0x7F) << shift
                if byte < 0x80:
                    break
                shift += 7
            yield number, wire, data[position:position + length]
            position += length
        elif wire == 1:
            position += 8
        elif wire == 5:
            position += 4
        else:
            raise DecodeError(f"unsupported wire type {wire}")
    if position != end:
        raise DecodeError("truncated message")


@dataclass(slots=True)
class KeyValueMessage:
    key: bytes = b""
    create_revision: int = 0
    mod_revision: int = 0
    version: int = 0
    value: bytes = b""


def decode_kv(data: bytes) -> KeyValueMessage:
    kv = KeyValueMessage()
    for number, _, value in _fields(data):
        if number == 1:
            kv.key = value
        elif number == 2:
            kv.create_revision = value
        elif number == 3:
            kv.mod_revision = value
        elif number == 4:
            kv.version = value
        elif number == 5:
            kv.value = value
    return kv


def decode_header_revision(data: bytes) -> int:
    for number, _, value in _fields(data):
        if number == 3:
            return value
    return 0


@dataclass(slots=True)
class RangeResponse:
    revision: int = 0
    kvs: list[KeyValueMessage] = field(default_factory=list)
    more: bool = False
    count: int = 0


def decode_range_response(data: bytes) -> RangeResponse:
    response = RangeResponse()
    for number, _, value in _fields(data):
        if number == 2:
            response.kvs.append(decode_kv(value))
        elif number == 1:
            response.revision = decode_header_revision(value)
        elif number == 3:
            response.more = bool(value)
        elif number == 4:
            response.count = value
    return response


@dataclass(slots=True)
class TxnResponse:
    revision: int = 0
    succeeded: bool = False
    # One entry per op: ("range", RangeResponse) | ("put", prev KeyValueMessage | None)
    # | ("delete", [prev KeyValueMessage...])
    responses: list[tuple[str, object]] = field(default_factory=list)


def _decode_put_response(data: bytes) -> KeyValueMessage | None:
    for number, _, value in _fields(data):
        if number == 2:
            return decode_kv(value)
    return None


def _decode_delete_response(data: bytes) -> list[KeyValueMessage]:
    return [decode_kv(value) for number, _, value in _fields(data) if number == 3]


def decode_txn_response(data: bytes) -> TxnResponse:
    response = TxnResponse()
    for number, _, value in _fields(data):
        if number == 1:
            response.revision = decode_header_revision(value)
        elif number == 2:
            response.succeeded = bool(value)
        elif number == 3:
            for op_number, _, op in _fields(value):
                if op_number == 1:
                    response.responses.append(("range", decode_range_response(op)))
                elif op_number == 2:
                    response.responses.append(("put", _decode_put_response(op)))
                elif op_number == 3:
                    response.responses.append(("delete", _decode_delete_response(op)))
    return response


@dataclass(slots=True)
class EventMessage:
    type: int  # 0 PUT, 1 DELETE
    kv: KeyValueMessage
    prev_kv: KeyValueMessage | None


@dataclass(slots=True)
class WatchResponse:
    revision: int = 0
    watch_id: int = 0
    created: bool = False
    canceled: bool = False
    compact_revision: int = 0
    cancel_reason: str = ""
    fragment: bool = False
    events: list[EventMessage] = field(default_factory=list)


def decode_watch_response(data: bytes) -> WatchResponse:
    response = WatchResponse()
    for number, _, value in _fields(data):
        if number == 11:
            event_type, kv, prev = 0, None, None
            for event_number, _, event_value in _fields(value):
                if event_number == 1:
                    event_type = event_value
                elif event_number == 2:
                    kv = decode_kv(event_value)
                elif event_number == 3:
                    prev = decode_kv(event_value)
            response.events.append(EventMessage(event_type, kv or KeyValueMessage(), prev))
        elif number == 1:
            response.revision = decode_header_revision(value)
        elif number == 2:
            response.watch_id = value
        elif number == 3:
            response.created = bool(value)
        elif number == 4:
            response.canceled = bool(value)
        elif number == 5:
            response.compact_revision = value
        elif number == 6:
            response.cancel_reason = bytes(value).decode("utf-8", "replace")
        elif number == 7:
            response.fragment = bool(value)
    return response


@dataclass(slots=True)
class StatusResponse:
    revision: int = 0
    version: str = ""
    db_size: int = 0
    leader: int = 0
    raft_index: int = 0
    raft_term: int = 0


def decode_status_response(data: bytes) -> StatusResponse:
    response = StatusResponse()
    for number, _, value in _fields(data):
        if number == 1:
            response.revision = decode_header_revision(value)
        elif number == 2:
            response.version = bytes(value).decode()
        elif number == 3:
            response.db_size = value
        elif number == 4:
            response.leader = value
        elif number == 5:
            response.raft_index = value
        elif number == 6:
            response.raft_term = value
    return response
