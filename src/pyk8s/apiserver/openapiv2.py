"""The OpenAPI v2 (Swagger 2.0) document the API server publishes under `/openapi/v2`.

kubectl still needs it for one thing: client-side validation of `create -f` / `apply` for
a kind whose group-version document (v3) has no PATCH operation carrying the
`fieldValidation` parameter, such as SubjectAccessReview, TokenReview or the other
create-only reviews. Its query-parameter verifier finds no such operation, so it validates
the object itself against the v2 definitions, which it downloads as protobuf
(gnostic's `openapi.v2.Document`, media type `PROTOBUF_V2_ACCEPT`); a missing document makes the
create fail with "failed to download openapi".

What is served: `swagger`, `info` and `definitions`, the union of the schemas of every v3
group-version document converted to Swagger 2.0 the way upstream's v2 spec reads
(`#/definitions/` references, a property's single `allOf` reference collapsed into
`$ref`, no v3-only keywords). The paths are left empty: kubectl reads the v2 paths only
when the v3 documents fail, and the v3 documents carry them. The document is built once
per process; JSON for `Accept: application/json`, protobuf when the client asks for it.
"""

from __future__ import annotations

import hashlib
from typing import Any

import orjson

from pyk8s.api import schemas
from pyk8s.api.protowire import length_delimited, varint

# What kubectl asks for, and the spelling kube-openapi answers with (Go's mime parser
# refuses the "@" in a Content-Type).
PROTOBUF_V2_ACCEPT = "application/com.github.proto-openapi.spec.v2@v1.0+protobuf"
PROTOBUF_V2 = "application/com.github.proto-openapi.spec.v2.v1.0+protobuf"
JSON = "application/json"

_V3_REF = "#/components/schemas/"
_V2_REF = "#/definitions/"
# JSON-schema keywords Swagger 2.0's Schema object has and kubectl's validator reads.
_KEPT = ("description", "type", "format", "required", "items", "properties", "additionalProperties",
         "title", "readOnly")


# ---------------------------------------------------------------- the document

def definitions(v3_components: dict[str, Any]) -> dict[str, Any]:
    """`definitions` of a v2 document from v3 `components.schemas`."""
    return {name: _schema(node) for name, node in sorted(v3_components.items())}


def _schema(node: dict[str, Any]) -> dict[str, Any]:
    if "$ref" in node:
        return {"$ref": node["$ref"].replace(_V3_REF, _V2_REF)}
    all_of = node.get("allOf")
    if isinstance(all_of, list) and len(all_of) == 1 and "$ref" in all_of[0]:
        # v3 wraps a described reference in allOf; v2 puts description next to $ref.
        converted = {"$ref": all_of[0]["$ref"].replace(_V3_REF, _V2_REF)}
        if "description" in node:
            converted["description"] = node["description"]
        return converted
    converted: dict[str, Any] = {}
    for key in _KEPT:
        if key not in node:
            continue
        value = node[key]
        if key == "items" and isinstance(value, dict):
            value = _schema(value)
        elif key == "properties":
            value = {name: _schema(child) for name, child in value.items()}
        elif key == "additionalProperties" and isinstance(value, dict):
            value = _schema(value)
        converted[key] = value
    for key, value in node.items():
        if key.startswith("x-"):
            converted[key] = value
    return converted


def document(v3_components: dict[str, Any]) -> dict[str, Any]:
    return {"swagger": "2.0",
            "info": {"title": "Kubernetes", "version": f"v{schemas.KUBERNETES_MINOR}.0"},
            "paths": {},
            "definitions": definitions(v3_components)}


# ---------------------------------------------------------------- protobuf (gnostic openapi.v2)

_bytes_field = length_delimited


def _string_field(number: int, value: str) -> bytes:
    return _bytes_field(number, value.encode())


def _bool_field(number: int, value: bool) -> bytes:
    return varint(number << 3) + (b"\x01" if value else b"\x00")


def _any(value: Any) -> bytes:
    """openapi.v2.Any{yaml = 2}: JSON is YAML."""
    return _string_field(2, orjson.dumps(value).decode())


def _named_any(name: str, value: Any) -> bytes:
    return _string_field(1, name) + _bytes_field(2, _any(value))


def encode_schema(node: dict[str, Any]) -> bytes:
    """openapi.v2.Schema. Field numbers: _ref 1, format 2, title 3, description 4,
    required 19, additional_properties 21, type 22, items 23, properties 25, read_only 27,
    vendor_extension 31."""
    out = bytearray()
    if "$ref" in node:
        out += _string_field(1, node["$ref"])
    if "format" in node:
        out += _string_field(2, node["format"])
    if "title" in node:
        out += _string_field(3, node["title"])
    if "description" in node:
        out += _string_field(4, node["description"])
    for name in node.get("required") or ():
        out += _string_field(19, name)
    additional = node.get("additionalProperties")
    if isinstance(additional, dict):  # AdditionalPropertiesItem{schema 1 | boolean 2}
        out += _bytes_field(21, _bytes_field(1, encode_schema(additional)))
    elif isinstance(additional, bool):
        out += _bytes_field(21, _bool_field(2, additional))
    if "type" in node:  # TypeItem{repeated value 1}
        types = node["type"] if isinstance(node["type"], list) else [node["type"]]
        out += _bytes_field(22, b"".join(_string_field(1, t) for t in types))
    if isinstance(node.get("items"), dict):  # ItemsItem{repeated schema 1}
        out += _bytes_field(23, _bytes_field(1, encode_schema(node["items"])))
    if "properties" in node:  # Properties{repeated NamedSchema{name 1, value 2} 1}
        out += _bytes_field(25, b"".join(
            _bytes_field(1, _string_field(1, name) + _bytes_field(2, encode_schema(child)))
            for name, child in node["properties"].items()))
    if node.get("readOnly"):
        out += _bool_field(27, True)
    for key, value in node.items():
        if key.startswith("x-"):
            out += _bytes_field(31, _named_any(key, value))
    return bytes(out)


def encode_document(doc: dict[str, Any]) -> bytes:
    """openapi.v2.Document: swagger 1, info 2 (Info{title 1, version 2}), paths 8,
    definitions 9 (Definitions{repeated NamedSchema 1})."""
    out = bytearray()
    out += _string_field(1, doc["swagger"])
    out += _bytes_field(2, _string_field(1, doc["info"]["title"]) + _string_field(2, doc["info"]["version"]))
    out += _bytes_field(8, b"")
    out += _bytes_field(9, b"".join(
        _bytes_field(1, _string_field(1, name) + _bytes_field(2, encode_schema(schema)))
        for name, schema in doc["definitions"].items()))
    return bytes(out)


# ---------------------------------------------------------------- serving

class Served:
    """The document in both encodings, with its ETag (SHA-512 of the JSON, as kube-openapi)."""

    def __init__(self, doc: dict[str, Any]):
        self.json = orjson.dumps(doc)
        self.protobuf = encode_document(doc)
        self.etag = hashlib.sha512(self.json).hexdigest().upper()


def wants_protobuf(accept: str | None) -> bool:
    """True when the Accept header names the protobuf form first (kubectl asks only for it)."""
    for clause in (accept or "").split(","):
        media_type = clause.split(";")[0].strip().lower()
        if media_type in (PROTOBUF_V2_ACCEPT, PROTOBUF_V2):
            return True
        if media_type in (JSON, "application/*", "*/*"):
            return False
    return False
