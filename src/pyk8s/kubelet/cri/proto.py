"""A small protobuf (proto3) encoder/decoder driven by hand-written schemas.

Messages are plain dicts keyed by the proto field names; a schema maps each field name to
`Field(number, kind, repeated, message)`. Encoding skips proto3 defaults (0, "", False,
empty lists/maps) exactly as generated code does; decoding gives absent scalars their proto3
default and skips unknown fields, so a newer runtime adding fields never breaks us.
Kinds: string, bytes, bool, int32, int64, uint32, uint64, enum, double, message, map
(map<string, string>).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Any

from pyk8s.api.protowire import key as field_key, length_delimited, varint

VARINT_KINDS = frozenset({"bool", "int32", "int64", "uint32", "uint64", "enum"})


@dataclass(frozen=True)
class Field:
    number: int
    kind: str
    repeated: bool = False
    message: str = ""  # schema name for kind == "message"


Schema = dict[str, Field]
SCHEMAS: dict[str, Schema] = {}


def message(schema_name: str, /, **fields: Field) -> None:
    SCHEMAS[schema_name] = fields


def encode(schema_name: str, value: dict[str, Any] | None) -> bytes:
    schema = SCHEMAS[schema_name]
    out = bytearray()
    for name, item in (value or {}).items():
        field = schema.get(name)
        if field is None:
            raise KeyError(f"{schema_name} has no field {name!r}")
        if item is None:
            continue
        if field.kind == "map":
            for map_key, map_value in sorted(item.items()):
                entry = length_delimited(1, str(map_key).encode()) + length_delimited(2, str(map_value).encode())
                out += length_delimited(field.number, entry)
        elif field.repeated:
            if field.kind in VARINT_KINDS:
                if item:
                    out += length_delimited(field.number, b"".join(varint(int(v)) for v in item))
            else:
                for element in item:
                    out += _encode_single(field, element, always=True)
        else:
            out += _encode_single(field, item, always=False)
    return bytes(out)


def _encode_single(field: Field, item: Any, *, always: bool) -> bytes:
    kind = field.kind
    if kind in VARINT_KINDS:
        number = int(item)
        return field_key(field.number, 0) + varint(number) if (number or always) else b""
    if kind == "string":
        return length_delimited(field.number, item.encode()) if (item or always) else b""
    if kind == "bytes":
        return length_delimited(field.number, bytes(item)) if (item or always) else b""
    if kind == "double":
        return field_key(field.number, 1) + struct.pack("<d", item) if (item or always) else b""
    if kind == "message":
        # A present sub-message is sent even when empty: presence matters for messages.
        return length_delimited(field.number, encode(field.message, item))
    raise ValueError(f"unsupported kind {kind}")


def _read_varint(data: bytes, position: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        byte = data[position]
        position += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, position
        shift += 7


def _signed(value: int, bits: int) -> int:
    value &= (1 << 64) - 1
    if value >= 1 << 63:
        value -= 1 << 64
    if bits == 32:
        value = ((value + (1 << 31)) % (1 << 32)) - (1 << 31)
    return value


def _scalar(kind: str, raw: int) -> Any:
    if kind == "bool":
        return bool(raw)
    if kind in ("int64", "enum"):
        return _signed(raw, 64)
    if kind == "int32":
        return _signed(raw, 32)
    return raw


def decode(schema_name: str, data: bytes) -> dict[str, Any]:
    schema = SCHEMAS[schema_name]
    by_number = {field.number: (name, field) for name, field in schema.items()}
    out: dict[str, Any] = {}
    position, end = 0, len(data)
    while position < end:
        key, position = _read_varint(data, position)
        number, wire_type = key >> 3, key & 7
        if wire_type == 0:
            raw, position = _read_varint(data, position)
            payload = None
        elif wire_type == 2:
            length, position = _read_varint(data, position)
            payload = data[position:position + length]
            position += length
            raw = 0
        elif wire_type == 1:
            payload, position = data[position:position + 8], position + 8
            raw = 0
        elif wire_type == 5:
            payload, position = data[position:position + 4], position + 4
            raw = 0
        else:
            raise ValueError(f"unsupported wire type {wire_type} in {schema_name}")
        if number not in by_number:
            continue
        name, field = by_number[number]
        if field.kind == "map":
            entry = _decode_map_entry(payload)
            out.setdefault(name, {})[entry[0]] = entry[1]
            continue
        if field.kind in VARINT_KINDS:
            if wire_type == 2:  # packed repeated
                values, cursor = [], 0
                while cursor < len(payload):
                    value, cursor = _read_varint(payload, cursor)
                    values.append(_scalar(field.kind, value))
                out.setdefault(name, []).extend(values)
                continue
            value = _scalar(field.kind, raw)
        elif field.kind == "string":
            value = payload.decode(errors="replace")
        elif field.kind == "bytes":
            value = bytes(payload)
        elif field.kind == "double":
            value = struct.unpack("<d", payload)[0]
        else:
            value = decode(field.message, payload)
        if field.repeated:
            out.setdefault(name, []).append(value)
        else:
            out[name] = value
    # Like generated code: absent scalars read as their proto3 default (0 is often a
    # meaningful enum value, e.g. SANDBOX_READY).
    for name, field in schema.items():
        if name not in out and not field.repeated and field.kind not in ("message", "map"):
            out[name] = _DEFAULTS[field.kind]
    return out


_DEFAULTS = {"string": "", "bytes": b"", "bool": False, "double": 0.0,
             **{kind: 0 for kind in VARINT_KINDS if kind != "bool"}}


def _decode_map_entry(payload: bytes) -> tuple[str, str]:
    entry = {1: "", 2: ""}
    position = 0
    while position < len(payload):
        key, position = _read_varint(payload, position)
        length, position = _read_varint(payload, position)
        entry[key >> 3] = payload[position:position + length].decode(errors="replace")
        position += length
    return entry[1], entry[2]
