"""Decode Kubernetes protobuf request bodies (what `kubectl create <subcommand>` POSTs) to JSON dicts.

A body is `b"k8s\\x00"` + runtime.Unknown{1: typeMeta{1: apiVersion, 2: kind}, 2: raw, ...};
`raw` is the typed object without apiVersion/kind. The message tables come from
`protobuf_schema` (generated from the protobuf field reference by tools/gen_protobuf_schema.py).

The result is the object as Go's JSON encoder would render it, in Go's key order, with the
zero-value rules applied so that defaulting can run afterwards on "absent" keys:
- Go writes every non-pointer field even when zero, so a zero scalar, empty string or empty
  message in a non-pointer field counts as unset and its key is omitted; the exception is a
  scalar whose JSON tag has no omitempty ("always"), which Go renders and upstream stores
  (e.g. PriorityClass `value: 0`).
- A pointer field is written only when set, so a present zero (replicas 0, minAvailable 0)
  is kept.
Anything the tables do not know (field number, wire type, kind) is a BadRequest: silently
dropping a field would store a different object than the client asked for.
"""

from __future__ import annotations

import base64
import datetime
from typing import Any

import orjson

from pyk8s.api.errors import BadRequest
from pyk8s.api.protobuf_schema import MESSAGES, OBJECT_MESSAGES

PROTOBUF_CONTENT_TYPE = "application/vnd.kubernetes.protobuf"
PROTOBUF_MAGIC = b"k8s\x00"

_VARINT = 0
_LEN = 2
_WIRE_NAMES = {0: "varint", 1: "fixed64", 2: "length-delimited", 3: "start-group",
               4: "end-group", 5: "fixed32"}

# Hand-marshalled types with their own JSON form (see the reference's "special types").
_TIME = "meta/v1.Time"
_QUANTITY = "resource.Quantity"
_INT_OR_STRING = "intstr.IntOrString"
_FIELDS_V1 = "meta/v1.FieldsV1"

# Marker for "this field is unset", distinct from None (which no decoded value uses).
_UNSET = object()

# message name -> {field number: row}; rows keep declaration order in MESSAGES.
_FIELDS_BY_NUMBER = {
    name: {row[0]: row for row in rows} for name, rows in MESSAGES.items()
}


def decode_request(body: bytes) -> dict[str, Any]:
    """Decode a `k8s\\0` + runtime.Unknown body into the object's JSON dict."""
    if not body.startswith(PROTOBUF_MAGIC):
        raise BadRequest("protobuf body does not start with the k8s\\x00 magic prefix")
    envelope = _read_fields(memoryview(body)[len(PROTOBUF_MAGIC):], "runtime.Unknown")
    type_meta = _read_fields(_join(envelope.get(1, [b""])), "runtime.TypeMeta")
    api_version = _utf8(type_meta.get(1, [b""])[-1])
    kind = _utf8(type_meta.get(2, [b""])[-1])
    content_encoding = _utf8(envelope.get(3, [b""])[-1])
    if content_encoding:
        raise BadRequest(f"unsupported protobuf contentEncoding {content_encoding!r}")
    if not kind or not api_version:
        raise BadRequest("protobuf body has no apiVersion/kind in runtime.Unknown.typeMeta")
    message = OBJECT_MESSAGES.get((api_version, kind))
    if message is None:
        raise BadRequest(f"no protobuf schema for kind {kind!r} in {api_version!r}")
    raw = b"".join(bytes(chunk) for chunk in envelope.get(2, []))
    if not raw:
        # Go always writes an object's metadata, so an empty raw is a cut or garbled body.
        raise BadRequest(f"protobuf body for {kind} has no object in runtime.Unknown.raw")
    obj: dict[str, Any] = {"kind": kind, "apiVersion": api_version}
    obj.update(_decode_message(memoryview(raw), message))
    return obj


# --- wire level -------------------------------------------------------------------------

def _read_varint(data: memoryview, pos: int, message: str) -> tuple[int, int]:
    value = 0
    shift = 0
    end = len(data)
    while True:
        if pos >= end:
            raise BadRequest(f"truncated protobuf varint in {message}")
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            return value, pos
        shift += 7
        if shift >= 70:
            raise BadRequest(f"malformed protobuf varint in {message}")


def _read_fields(data: memoryview | bytes, message: str) -> dict[int, list]:
    """Split a message into {field number: [raw values]}: ints for varints, memoryviews for LEN.

    Every number must be known to the schema of `message` with a matching wire type (a
    repeated varint may also come packed as LEN, which proto decoders must accept).
    """
    data = memoryview(data)
    fields_by_number = _FIELDS_BY_NUMBER[message]
    values: dict[int, list] = {}
    pos = 0
    end = len(data)
    while pos < end:
        key, pos = _read_varint(data, pos, message)
        number, wire_type = key >> 3, key & 7
        if number == 0:
            raise BadRequest(f"garbled protobuf: field number 0 in {message}")
        row = fields_by_number.get(number)
        if row is None:
            raise BadRequest(f"unknown protobuf field {number} in message {message}")
        if wire_type == _VARINT:
            value, pos = _read_varint(data, pos, message)
        elif wire_type == _LEN:
            length, pos = _read_varint(data, pos, message)
            if pos + length > end:
                raise BadRequest(f"truncated protobuf field {number} in message {message}")
            value = data[pos:pos + length]
            pos += length
        else:
            raise BadRequest(f"unsupported protobuf wire type {_WIRE_NAMES.get(wire_type, wire_type)} "
                             f"for field {number} in message {message}")
        if wire_type != row[2]:
            if row[2] == _VARINT and wire_type == _LEN and "r" in row[5]:
                values.setdefault(number, []).extend(_unpack_varints(value, message))
                continue
            raise BadRequest(f"protobuf field {number} ({row[1]}) in message {message} has wire type "
                             f"{_WIRE_NAMES[wire_type]}, expected {_WIRE_NAMES[row[2]]}")
        values.setdefault(number, []).append(value)
    return values


def _unpack_varints(data: memoryview, message: str) -> list[int]:
    numbers = []
    pos = 0
    while pos < len(data):
        value, pos = _read_varint(data, pos, message)
        numbers.append(value)
    return numbers


def _int32(value: int) -> int:
    # Negative int32s travel as 10-byte two's-complement varints: keep the low 32 bits.
    value &= 0xFFFFFFFF
    return value - (1 << 32) if value >= 1 << 31 else value


def _int64(value: int) -> int:
    value &= 0xFFFFFFFFFFFFFFFF
    return value - (1 << 64) if value >= 1 << 63 else value


def _utf8(data: memoryview | bytes) -> str:
    # Go does not validate UTF-8 in these strings; its JSON encoder replaces bad bytes with
    # U+FFFD, which is what "replace" does.
    return bytes(data).decode("utf-8", errors="replace")


# --- schema level -----------------------------------------------------------------------

def _decode_message(data: memoryview, message: str) -> dict[str, Any]:
    """Decode a table-described message into a dict with unset fields left out."""
    values = _read_fields(data, message)
    result: dict[str, Any] = {}
    for row in MESSAGES[message]:
        raw_values = values.get(row[0])
        if raw_values is None:
            continue
        number, json_name, _wire, field_type, target, flags = row
        if "i" in flags:
            # INLINE: a separate message on the wire, flattened into this object in JSON.
            result.update(_decode_message(_join(raw_values), target))
            continue
        value = _decode_field(raw_values, field_type, target, flags, message, number)
        if value is not _UNSET:
            result[json_name] = value
    return result


def _join(raw_values: list) -> memoryview:
    # A message field seen several times merges; for protobuf that is the same as parsing
    # the concatenation (later scalars win, repeated fields append).
    if len(raw_values) == 1:
        return raw_values[0]
    return memoryview(b"".join(bytes(chunk) for chunk in raw_values))


def _decode_field(raw_values: list, field_type: str, target: str | None, flags: str,
                  message: str, number: int) -> Any:
    pointer = "p" in flags
    if field_type == "map":
        entries = {}
        for entry_data in raw_values:
            key, value = _decode_map_entry(entry_data, target, message, number)
            entries[key] = value
        return entries if entries else _UNSET
    if "r" in flags:
        items = [_decode_value(raw, field_type, target, present=True) for raw in raw_values]
        return items if items else _UNSET
    if field_type == "msg":
        value = _decode_value(_join(raw_values), field_type, target, present=pointer)
    else:
        value = _decode_value(raw_values[-1], field_type, target, present=pointer)
    if value is _UNSET or pointer:
        return value
    if _is_zero(value):
        # Non-pointer zero: Go wrote it only because it always writes the field. Keep it
        # just for scalars Go's JSON always renders; empty messages are unset either way.
        return value if "a" in flags and field_type != "msg" else _UNSET
    return value


def _is_zero(value: Any) -> bool:
    if isinstance(value, bool):
        return not value
    return value in (0, "", {}, [])


def _decode_value(raw: Any, field_type: str, target: str | None, *, present: bool) -> Any:
    """One element's JSON value; `present` says a zero value is meaningful (pointer/list item)."""
    if field_type == "string":
        return _utf8(raw)
    if field_type == "bytes":
        return base64.b64encode(bytes(raw)).decode("ascii")
    if field_type == "bool":
        return raw != 0
    if field_type == "int32":
        return _int32(raw)
    if field_type == "int64":
        return _int64(raw)
    return _decode_special_or_message(raw, target, present=present)


def _decode_special_or_message(data: memoryview, message: str, *, present: bool) -> Any:
    if message == _TIME:
        values = _read_fields(data, message)
        if not values.get(1):
            # A zero Time (empty message) is Go's zero time: JSON null, treated as unset.
            return _UNSET
        seconds = _int64(values[1][-1])
        try:
            moment = datetime.datetime.fromtimestamp(seconds, datetime.timezone.utc)
        except (OverflowError, OSError, ValueError):
            raise BadRequest(f"protobuf Time seconds {seconds} out of range") from None
        return moment.strftime("%Y-%m-%dT%H:%M:%SZ")
    if message == _QUANTITY:
        values = _read_fields(data, message)
        text = _utf8(values[1][-1]) if values.get(1) else ""
        if not text:
            return "0" if present else _UNSET
        return text
    if message == _INT_OR_STRING:
        values = _read_fields(data, message)
        kind = _int64(values[1][-1]) if values.get(1) else 0
        if kind == 1:
            text = _utf8(values[3][-1]) if values.get(3) else ""
            return text if text or present else _UNSET
        if kind != 0:
            raise BadRequest(f"protobuf IntOrString has unknown type {kind}")
        number = _int32(values[2][-1]) if values.get(2) else 0
        return number if number or present else _UNSET
    if message == _FIELDS_V1:
        values = _read_fields(data, message)
        raw = bytes(values[1][-1]) if values.get(1) else b""
        if not raw:
            return {} if present else _UNSET
        try:
            return orjson.loads(raw)
        except orjson.JSONDecodeError:
            raise BadRequest("protobuf FieldsV1 does not hold a JSON document") from None
    decoded = _decode_message(data, message)
    if not decoded and not present:
        return _UNSET
    return decoded


def _decode_map_entry(data: memoryview, value_type: str, message: str, number: int) -> tuple[str, Any]:
    # Map entries are {1: key, 2: value} records; a missing value means the zero value.
    key = ""
    value: Any = None
    pos = 0
    end = len(data)
    entry = f"{message} field {number} map entry"
    while pos < end:
        field_key, pos = _read_varint(data, pos, entry)
        field_number, wire_type = field_key >> 3, field_key & 7
        if wire_type != _LEN or field_number not in (1, 2):
            raise BadRequest(f"garbled protobuf: field {field_number} with wire type "
                             f"{_WIRE_NAMES.get(wire_type, wire_type)} in {entry}")
        length, pos = _read_varint(data, pos, entry)
        if pos + length > end:
            raise BadRequest(f"truncated protobuf {entry}")
        chunk = data[pos:pos + length]
        pos += length
        if field_number == 1:
            key = _utf8(chunk)
        else:
            value = chunk
    if value is None:
        value = memoryview(b"")
    if value_type == "string":
        return key, _utf8(value)
    if value_type == "bytes":
        return key, base64.b64encode(bytes(value)).decode("ascii")
    decoded = _decode_special_or_message(value, value_type[4:], present=True)
    return key, None if decoded is _UNSET else decoded
