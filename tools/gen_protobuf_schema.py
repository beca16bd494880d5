"""Generate src/pyk8s/api/protobuf_schema.py from the protobuf field reference.

Reads /work/shared/reference/protobuf-fields.md (or the path given as the first argument)
and writes the message tables as plain Python data, so the server never parses Markdown.

Usage: python tools/gen_protobuf_schema.py [protobuf-fields.md] [output.py]

Each message becomes a tuple of field rows in Go declaration order (which is Go's JSON key
order):  (number, json_name, wire_type, type, target, flags)
  wire_type  0 = VARINT, 2 = LEN, taken from the reference's `wire` column (never from the
             struct tag's first word: 11 fields are tagged `bytes` but sent as varints)
  type       string | bytes | bool | int32 | int64 | msg | map
  target     message name for `msg`; value type for `map` ("string", "bytes" or "msg:<name>")
  flags      letters: r = repeated, p = Go pointer (presence matters), a = JSON "always",
             s = struct-always, z = omitzero, i = INLINE (flattened into the parent object)
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DEFAULT_SOURCE = Path("/work/shared/reference/protobuf-fields.md")
DEFAULT_OUTPUT = REPO / "src" / "pyk8s" / "api" / "protobuf_schema.py"

# The reference names messages by Go package; the wire's apiVersion uses the API group.
PACKAGE_API_VERSION = {
    "core/v1": "v1",
    "apps/v1": "apps/v1",
    "batch/v1": "batch/v1",
    "policy/v1": "policy/v1",
    "scheduling/v1": "scheduling.k8s.io/v1",
    "rbac/v1": "rbac.authorization.k8s.io/v1",
    "networking/v1": "networking.k8s.io/v1",
}

# Messages the reference does not list, written from upstream's generated.proto of their
# package in the same row format: TokenRequest (serviceaccounts/token, `kubectl create token`).
PACKAGE_API_VERSION["authentication/v1"] = "authentication.k8s.io/v1"
EXTRA_MESSAGES = {
    "authentication/v1.BoundObjectReference": [
        (1, "kind", 2, "string", None, ""), (2, "apiVersion", 2, "string", None, ""),
        (3, "name", 2, "string", None, ""), (4, "uid", 2, "string", None, "")],
    "authentication/v1.TokenRequest": [
        (1, "metadata", 2, "msg", "meta/v1.ObjectMeta", "s"),
        (2, "spec", 2, "msg", "authentication/v1.TokenRequestSpec", "s"),
        (3, "status", 2, "msg", "authentication/v1.TokenRequestStatus", "s")],
    "authentication/v1.TokenRequestSpec": [
        (1, "audiences", 2, "string", None, "r"), (4, "expirationSeconds", 0, "int64", None, "p"),
        (3, "boundObjectRef", 2, "msg", "authentication/v1.BoundObjectReference", "p")],
    "authentication/v1.TokenRequestStatus": [
        (1, "token", 2, "string", None, "a"), (2, "expirationTimestamp", 2, "msg", "meta/v1.Time", "s")],
}
# certificates.k8s.io/v1 CertificateSigningRequest (node client certificates); spec.extra
# (a map of string lists) is not carried.
PACKAGE_API_VERSION["certificates/v1"] = "certificates.k8s.io/v1"
EXTRA_MESSAGES.update({
    "certificates/v1.CertificateSigningRequest": [
        (1, "metadata", 2, "msg", "meta/v1.ObjectMeta", "s"),
        (2, "spec", 2, "msg", "certificates/v1.CertificateSigningRequestSpec", "s"),
        (3, "status", 2, "msg", "certificates/v1.CertificateSigningRequestStatus", "s")],
    "certificates/v1.CertificateSigningRequestSpec": [
        (1, "request", 2, "bytes", None, "a"), (7, "signerName", 2, "string", None, "a"),
        (8, "expirationSeconds", 0, "int32", None, "p"), (5, "usages", 2, "string", None, "r"),
        (2, "username", 2, "string", None, ""), (3, "uid", 2, "string", None, ""),
        (4, "groups", 2, "string", None, "r")],
    "certificates/v1.CertificateSigningRequestStatus": [
        (1, "conditions", 2, "msg", "certificates/v1.CertificateSigningRequestCondition", "r"),
        (2, "certificate", 2, "bytes", None, "")],
    "certificates/v1.CertificateSigningRequestCondition": [
        (1, "type", 2, "string", None, "a"), (6, "status", 2, "string", None, "a"),
        (2, "reason", 2, "string", None, ""), (3, "message", 2, "string", None, ""),
        (4, "lastUpdateTime", 2, "msg", "meta/v1.Time", "s"),
        (5, "lastTransitionTime", 2, "msg", "meta/v1.Time", "s")],
})
EXTRA_KINDS = ["authentication/v1.TokenRequest", "certificates/v1.CertificateSigningRequest"]

SCALAR_TYPES = {"string": 2, "bytes": 2, "bool": 0, "int32": 0, "int64": 0}
WIRE_RE = re.compile(r"^(VARINT|LEN)\((\d)\) key ([0-9a-f ]+)$")
MAP_RE = re.compile(r"^map<string,(string|bytes|msg [\w/.]+)>$")


def parse_reference(text: str) -> tuple[dict[str, list[tuple]], list[str]]:
    """Return ({message: [row, ...]}, [top-level message names])."""
    messages: dict[str, list[tuple]] = {}
    top_level: list[str] = []
    section = ""
    current: str | None = None
    for line in text.splitlines():
        if line.startswith("## "):
            section = line[3:].strip()
            current = None
            continue
        if line.startswith("### "):
            current = line[4:].strip()
            messages[current] = []
            continue
        if section == "Top-level objects" and current is None and line.startswith("| "):
            cell = line.split("|")[1].strip()
            if cell not in ("object", "---"):
                top_level.append(cell)
            continue
        if current is None or not re.match(r"^\| \d+ \|", line):
            continue
        messages[current].append(parse_row(current, line))
    return messages, top_level


def parse_row(message: str, line: str) -> tuple:
    cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
    number_text, json_name, wire_text, type_text, cardinality, notes = cells
    number = int(number_text)
    wire_match = WIRE_RE.match(wire_text)
    if not wire_match:
        raise ValueError(f"{message} #{number}: unreadable wire column {wire_text!r}")
    wire_type = int(wire_match.group(2))
    key_bytes = bytes.fromhex(wire_match.group(3))
    if decode_key(key_bytes) != (number << 3) | wire_type:
        raise ValueError(f"{message} #{number}: key bytes {wire_text!r} disagree with number/wire")

    note_words = [note.strip() for note in notes.split(";")]
    flags = ""
    if cardinality == "repeated":
        flags += "r"
    if "ptr" in note_words:
        flags += "p"
    if "always" in note_words:
        flags += "a"
    if "struct-always" in note_words:
        flags += "s"
    if "omitzero" in note_words:
        flags += "z"
    if any(note.startswith("INLINE") for note in note_words):
        flags += "i"

    map_match = MAP_RE.match(type_text)
    if cardinality == "map":
        if not map_match or wire_type != 2:
            raise ValueError(f"{message} #{number}: unsupported map {type_text!r}")
        value = map_match.group(1)
        target = "msg:" + value[4:] if value.startswith("msg ") else value
        return (number, json_name, wire_type, "map", target, flags)
    if type_text.startswith("msg "):
        if wire_type != 2:
            raise ValueError(f"{message} #{number}: message field must be LEN")
        return (number, json_name, wire_type, "msg", type_text[4:], flags)
    if type_text not in SCALAR_TYPES:
        raise ValueError(f"{message} #{number}: unknown type {type_text!r}")
    if SCALAR_TYPES[type_text] != wire_type:
        # The trap in the reference's header: trust the wire column, but it must be a
        # wire type that can carry the Go type.
        raise ValueError(f"{message} #{number}: {type_text} cannot travel as wire type {wire_type}")
    return (number, json_name, wire_type, type_text, None, flags)


def decode_key(key_bytes: bytes) -> int:
    value = 0
    for shift, byte in enumerate(key_bytes):
        value |= (byte & 0x7F) << (7 * shift)
    return value


def render_module(messages: dict[str, list[tuple]], top_level: list[str], source: Path) -> str:
    for name, rows in messages.items():
        for row in rows:
            target = row[4]
            if row[3] == "msg" and target not in messages:
                raise ValueError(f"{name} #{row[0]}: message {target} is not in the reference")
            if row[3] == "map" and target.startswith("msg:") and target[4:] not in messages:
                raise ValueError(f"{name} #{row[0]}: map value {target} is not in the reference")
    kinds = {}
    for qualified in top_level:
        package, kind = qualified.rsplit(".", 1)
        kinds[(PACKAGE_API_VERSION[package], kind)] = qualified
    lines = [
        '"""Protobuf message tables for the Kubernetes objects kubectl sends as protobuf.',
        "",
        f"GENERATED by tools/gen_protobuf_schema.py from {source.name}; do not edit by hand.",
        "Each field row: (number, json_name, wire_type, type, target, flags); see the generator's",
        "docstring for the meaning of each column and flag letter.",
        '"""',
        "",
        "MESSAGES = {",
    ]
    for name in sorted(messages):
        rows = ", ".join(repr(row) for row in messages[name])
        lines.append(f"    {name!r}: ({rows}{',' if len(messages[name]) == 1 else ''}),")
    lines.append("}")
    lines.append("")
    lines.append("# (apiVersion, kind) from runtime.Unknown.typeMeta -> message of the object")
    lines.append("OBJECT_MESSAGES = {")
    for key in sorted(kinds):
        lines.append(f"    {key!r}: {kinds[key]!r},")
    lines.append("}")
    return "\n".join(lines) + "\n"


def main(argv: list[str]) -> int:
    source = Path(argv[1]) if len(argv) > 1 else DEFAULT_SOURCE
    output = Path(argv[2]) if len(argv) > 2 else DEFAULT_OUTPUT
    messages, top_level = parse_reference(source.read_text())
    messages.update({name: [tuple(row) for row in rows] for name, rows in EXTRA_MESSAGES.items()})
    top_level = top_level + EXTRA_KINDS
    output.write_text(render_module(messages, top_level, source))
    field_count = sum(len(rows) for rows in messages.values())
    print(f"wrote {output}: {len(messages)} messages, {field_count} fields, {len(top_level)} kinds")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
