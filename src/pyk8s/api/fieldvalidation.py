"""Field validation of request bodies: unknown and duplicate fields (`?fieldValidation=`).

Upstream decodes every JSON body into the kind's Go struct with a strict decoder
(sigs.k8s.io/json): fields the struct does not declare are dropped, and a key given twice
keeps its last value. `fieldValidation` decides what the client hears about it:
- `Strict`: the request fails (create/update: 400 BadRequest, patch: 422 Invalid);
- `Warn` (the default when the parameter is absent): one `Warning: 299 - "..."` response
  header per problem, and the request goes on;
- `Ignore`: nothing.
Server-side apply (`application/apply-patch+yaml`) is typed by structured-merge-diff
instead, which rejects unknown fields whatever the directive.

Here the kind's OpenAPI schema (api.schemas) stands in for the Go struct: each schema is
compiled once into a small "shape" tree (object with declared fields, map, list, or
anything/scalar), and bodies are walked against it. Problems are reported in document
order with upstream's paths (`spec.template.spec.containers[0].imagePullPolicyy`), and
the unknown fields are removed from the object, as upstream's typed decoding would.
Protobuf bodies need none of this: their decoder only knows declared fields.
"""

from __future__ import annotations

import functools
import json
from typing import Any, Iterable

import orjson

from pyk8s.api import errors, schemas
from pyk8s.api.resources import Resource

STRICT = "Strict"
WARN = "Warn"
IGNORE = "Ignore"
# Upstream's allowed values, sorted as its error message lists them ("" = not given = Warn).
_DIRECTIVES = ("", IGNORE, STRICT, WARN)

_JSON_TYPES = ("application/json", "", "*/*")
_PROTOBUF = "application/vnd.kubernetes.protobuf"
_MERGE_PATCH = "application/merge-patch+json"
_STRATEGIC_MERGE_PATCH = "application/strategic-merge-patch+json"
_JSON_PATCH = "application/json-patch+json"
_APPLY_PATCH = "application/apply-patch+yaml"
_PATCH_TYPES = (_MERGE_PATCH, _STRATEGIC_MERGE_PATCH, _JSON_PATCH, _APPLY_PATCH)
_OPTIONS_KIND = {"create": "CreateOptions", "update": "UpdateOptions", "patch": "PatchOptions"}


# ---------------------------------------------------------------- shapes

class _Shape:
    """What a schema node accepts. kind: "object" (declared fields), "map" (any key, values
    of `element`), "list" (items of `element`), "any" (scalars, raw JSON, preserved)."""

    __slots__ = ("kind", "fields", "element", "map_keys")

    def __init__(self, kind: str):
        self.kind = kind
        self.fields: dict[str, _Shape] = {}
        self.element: _Shape | None = None
        self.map_keys: tuple[str, ...] = ()  # list-map keys, for server-side apply paths


_ANY = _Shape("any")


@functools.cache
def _named_shape(name: str) -> _Shape:
    # The served built-in kinds have no recursive schemas (unlike CRDs' JSONSchemaProps),
    # so compiling each named schema once, depth first, terminates.
    return _compile(schemas.schema(name))


def _compile(node: dict[str, Any]) -> _Shape:
    if node.get("x-kubernetes-preserve-unknown-fields"):
        return _ANY
    name = schemas.ref_name(node)
    if name is not None:
        return _named_shape(name)
    if "properties" in node:
        shape = _Shape("object")
        shape.fields = {field: _compile(child) for field, child in node["properties"].items()}
        return shape
    additional = node.get("additionalProperties")
    if additional is not None:
        shape = _Shape("map")
        shape.element = _compile(additional) if isinstance(additional, dict) else _ANY
        return shape
    if node.get("type") == "array":
        shape = _Shape("list")
        shape.element = _compile(node.get("items") or {})
        if node.get("x-kubernetes-list-type") == "map":
            shape.map_keys = tuple(node.get("x-kubernetes-list-map-keys") or ())
        return shape
    # Scalars, and objects without declared properties (FieldsV1, RawExtension) that
    # upstream keeps as raw JSON.
    return _ANY


def _kind_shape(resource: Resource) -> _Shape:
    name = schemas.schema_name(resource.group, resource.version, resource.kind)
    return _named_shape(name) if name else _ANY


# ---------------------------------------------------------------- raw JSON with duplicates

class _Pairs:
    """A JSON object that repeats a key, kept as its (key, value) pairs in order (not a
    list subclass, so that it is never mistaken for a JSON array)."""

    __slots__ = ("pairs",)

    def __init__(self, pairs: list[tuple[str, Any]]):
        self.pairs = pairs


def _object_hook(pairs: list[tuple[str, Any]]) -> Any:
    result = dict(pairs)
    return result if len(result) == len(pairs) else _Pairs(pairs)


def _key_count(value: Any) -> int:
    if isinstance(value, dict):
        return len(value) + sum(_key_count(child) for child in value.values())
    if isinstance(value, list):
        return sum(_key_count(child) for child in value)
    return 0


def _has_duplicate_keys(raw: bytes, parsed: Any = None) -> bool:
    """Cheap tests that never miss a repeated key. `parsed` (what `raw` decoded to, if the
    caller has it): compact JSON that re-encodes to the very same bytes spells each key once.
    Then: in a body where no quote is followed by white space, every key spelled adds one
    `":`, so as many `":` as keys parsed means no key was spelled twice. Otherwise
    (pretty-printed JSON, or a repeat) the caller parses slowly."""
    if parsed is not None and len(raw) < 1 << 20:
        try:
            if orjson.dumps(parsed) == raw:
                return False
        except TypeError:
            pass
    if b'" ' in raw or b'"\n' in raw or b'"\t' in raw or b'"\r' in raw:
        return True
    if parsed is None:
        try:
            parsed = orjson.loads(raw)
        except orjson.JSONDecodeError:
            return True  # let the full parser report it
    return raw.count(b'":') != _key_count(parsed)


def _parse_keeping_duplicates(raw: bytes, parsed: Any = None) -> tuple[Any, bool]:
    """Parses JSON; objects with a repeated key stay `_Pairs`. Returns (tree, any_duplicates)."""
    if not _has_duplicate_keys(raw, parsed):
        return None, False
    found = False

    def hook(pairs):
        nonlocal found
        value = _object_hook(pairs)
        if type(value) is _Pairs:
            found = True
        return value

    try:
        return json.loads(raw, object_pairs_hook=hook), found
    except (ValueError, UnicodeDecodeError):
        return None, False


def _items(value: Any) -> Iterable[tuple[str, Any]]:
    return value.pairs if type(value) is _Pairs else value.items()


def _is_object(value: Any) -> bool:
    return isinstance(value, dict) or type(value) is _Pairs


# ---------------------------------------------------------------- walking

def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _problems(value: Any, shape: _Shape, path: str, out: list[str], check_unknown: bool = True) -> None:
    """Appends `unknown field "..."` / `duplicate field "..."` in document order, the way the
    strict decoder meets them (a key both unknown and repeated is reported once, as unknown)."""
    kind = shape.kind
    if kind == "any":
        return
    if kind == "list":
        if isinstance(value, list):
            element = shape.element
            for index, item in enumerate(value):
                _problems(item, element, f"{path}[{index}]", out, check_unknown)
        return
    if not _is_object(value):
        return
    seen: set[str] = set()
    repeated = type(value) is _Pairs
    for key, child in _items(value):
        child_path = _join(path, key)
        if kind == "object":
            field_shape = shape.fields.get(key)
            if field_shape is None:
                if check_unknown and key not in seen:
                    out.append(f'unknown field "{child_path}"')
                seen.add(key)
                continue
        else:
            field_shape = shape.element
        if repeated:
            if key in seen:
                out.append(f'duplicate field "{child_path}"')
            seen.add(key)
        _problems(child, field_shape, child_path, out, check_unknown)


def _all_known(value: Any, shape: _Shape) -> bool:
    """Whether a plain decoded tree (no `_Pairs`) holds only declared fields: the walk of
    `_problems` without building paths, so a body with nothing to report costs little."""
    kind = shape.kind
    if kind == "list":
        element = shape.element
        if type(value) is list and element.kind != "any":
            for item in value:
                if type(item) in (dict, list) and not _all_known(item, element):
                    return False
        return True
    if type(value) is not dict:
        return True
    if kind == "object":
        fields = shape.fields
        for key, child in value.items():
            field_shape = fields.get(key)
            if field_shape is None:
                return False
            if type(child) in (dict, list) and field_shape.kind != "any" and not _all_known(child, field_shape):
                return False
        return True
    element = shape.element
    if kind == "map" and element.kind != "any":
        for child in value.values():
            if type(child) in (dict, list) and not _all_known(child, element):
                return False
    return True


def _duplicates_only(value: Any, path: str, out: list[str]) -> None:
    """Duplicate keys anywhere, without a schema (patch bodies decoded into a plain map)."""
    if isinstance(value, list):
        for index, item in enumerate(value):
            _duplicates_only(item, f"{path}[{index}]", out)
        return
    if not _is_object(value):
        return
    seen: set[str] = set()
    for key, child in _items(value):
        child_path = _join(path, key)
        if key in seen:
            out.append(f'duplicate field "{child_path}"')
        seen.add(key)
        _duplicates_only(child, child_path, out)


def _unknown_paths(value: Any, shape: _Shape, path: str, out: list[str]) -> None:
    kind = shape.kind
    if kind == "any":
        return
    if kind == "list":
        if isinstance(value, list):
            for index, item in enumerate(value):
                _unknown_paths(item, shape.element, f"{path}[{index}]", out)
        return
    if not isinstance(value, dict):
        return
    for key, child in value.items():
        child_path = _join(path, key)
        field_shape = shape.fields.get(key) if kind == "object" else shape.element
        if field_shape is None:
            out.append(child_path)
        else:
            _unknown_paths(child, field_shape, child_path, out)


def _prune(value: Any, shape: _Shape) -> None:
    kind = shape.kind
    if kind == "any":
        return
    if kind == "list":
        if isinstance(value, list):
            for item in value:
                _prune(item, shape.element)
        return
    if not isinstance(value, dict):
        return
    if kind == "object":
        for key in [key for key in value if key not in shape.fields]:
            del value[key]
        for key, child in value.items():
            _prune(child, shape.fields[key])
    else:
        for child in value.values():
            _prune(child, shape.element)


def _apply_paths(value: Any, shape: _Shape, path: str, out: list[str]) -> None:
    """Unknown fields as structured-merge-diff names them for server-side apply:
    `.spec.replica`, list-map elements by key (`.spec.containers[name="web"].foo`)."""
    kind = shape.kind
    if kind == "any":
        return
    if kind == "list":
        if isinstance(value, list):
            for index, item in enumerate(value):
                element = f"[{index}]"
                if shape.map_keys and isinstance(item, dict):
                    element = "[" + ",".join(f"{key}={json.dumps(item.get(key), separators=(',', ':'))}"
                                             for key in shape.map_keys if key in item) + "]"
                _apply_paths(item, shape.element, path + element, out)
        return
    if not isinstance(value, dict):
        return
    for key, child in value.items():
        child_path = f"{path}.{key}"
        field_shape = shape.fields.get(key) if kind == "object" else shape.element
        if field_shape is None:
            out.append(f"{child_path}: field not declared in schema")
        else:
            _apply_paths(child, field_shape, child_path, out)


# ---------------------------------------------------------------- public API

def unknown_fields(resource: Resource, obj: dict[str, Any]) -> list[str]:
    """Paths of the fields in `obj` that the kind's schema does not declare, in document
    order: `spec.replica`, `spec.template.spec.containers[0].imagePullPolicyy`,
    `metadata.lables`. Map keys (labels, data, resources.limits) are never unknown."""
    out: list[str] = []
    _unknown_paths(obj, _kind_shape(resource), "", out)
    return out


def duplicate_fields(raw_json: bytes) -> list[str]:
    """Paths of the keys repeated in one JSON object of `raw_json`, in document order
    (`spec.replicas`, `spec.template.spec.containers[0].image`). [] when there are none or
    the body is not JSON."""
    tree, any_duplicates = _parse_keeping_duplicates(raw_json)
    if not any_duplicates:
        return []
    messages: list[str] = []
    _duplicates_only(tree, "", messages)
    return [message[len('duplicate field "'):-1] for message in messages]


def prune_unknown_fields(resource: Resource, obj: dict[str, Any]) -> None:
    """Drops, in place, the fields the kind's schema does not declare (what upstream's typed
    decoding does to every body, whatever the directive)."""
    _prune(obj, _kind_shape(resource))


def check_directive(directive: str | None, verb: str = "create") -> errors.ApiError | None:
    """422 for a `fieldValidation` value upstream does not know (validation of
    CreateOptions / UpdateOptions / PatchOptions, before the body is read)."""
    if directive is None or directive in _DIRECTIVES:
        return None
    return errors.Invalid(_OPTIONS_KIND.get(verb, "CreateOptions"), "",
                          [errors.not_supported("fieldValidation", directive, list(_DIRECTIVES))],
                          group="meta.k8s.io")


def field_errors_for(resource: Resource, obj: dict[str, Any], raw: bytes | None, content_type: str | None,
                     directive: str | None, *, verb: str | None = None,
                     decoded: Any = None) -> tuple[list[str], errors.ApiError | None]:
    """Upstream's fieldValidation for one write. Returns (warnings, error):

    - `obj`: the decoded body (create/update) or the patched object (patch);
    - `raw`: the request body bytes as received (the patch for a patch);
    - `content_type`: the request's Content-Type; a patch type means the verb is patch;
    - `directive`: the `fieldValidation` query value (None/"" = Warn);
    - `decoded`: what `raw` decoded to, untouched since, when the caller has it (saves a parse).

    `warnings` are texts for `Warning` headers (see `warning_header`); `error`, when not
    None, is the error to answer instead. Unknown fields are removed from `obj` in place
    unless the request fails.
    """
    media_type = (content_type or "").split(";")[0].strip().lower()
    if verb is None:
        verb = "patch" if media_type in _PATCH_TYPES else "create"
    invalid_directive = check_directive(directive, verb)
    if invalid_directive is not None:
        return [], invalid_directive
    if media_type == _PROTOBUF or not isinstance(obj, dict):
        return [], None
    shape = _kind_shape(resource)
    if media_type == _APPLY_PATCH:
        return [], _apply_error(resource, obj, shape)
    directive = directive or WARN
    if directive == IGNORE:
        _prune(obj, shape)
        return [], None

    problems: list[str] = []
    tree, any_duplicates = _parse_keeping_duplicates(raw, decoded) if raw and media_type in _JSON_TYPES + (_MERGE_PATCH, _STRATEGIC_MERGE_PATCH) \
        else (None, False)
    if verb == "patch":
        # The patch itself is checked for repeated keys only (upstream decodes it into a
        # plain map); the patched object is then checked for unknown fields.
        if any_duplicates:
            _duplicates_only(tree, "", problems)
        if not _all_known(obj, shape):
            _problems(obj, shape, "", problems)
    elif any_duplicates:
        _problems(tree, shape, "", problems)
    elif not _all_known(obj, shape):
        _problems(obj, shape, "", problems)
    if not problems:
        return [], None
    if directive == WARN:
        _prune(obj, shape)
        return problems, None
    detail = "strict decoding error: " + ", ".join(problems)
    if verb == "patch":
        # rest/patch.go reports strict errors of a patch as an Invalid "patch" field holding
        # the patched object (JSON/merge patch) or the patch map (strategic merge patch).
        shown = _go_value(_plain(tree) if tree is not None else obj) if media_type == _STRATEGIC_MERGE_PATCH \
            else json.dumps(obj, separators=(",", ":"), sort_keys=True)
        return [], errors.Invalid("", "", [errors.invalid("patch", shown, detail)])
    kind = obj.get("kind") or resource.kind
    api_version = obj.get("apiVersion") or resource.api_version
    version = api_version.rpartition("/")[2]
    return [], errors.BadRequest(f'{kind} in version "{version}" cannot be handled as a {resource.kind}: {detail}')


def warning_header(text: str) -> str:
    """A `Warning` header value as upstream writes it: `299 - "<text>"`, with `"` and `\\`
    escaped (apimachinery util/net NewWarningHeader)."""
    return '299 - "' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


class _UnknownReasonError(errors.ApiError):
    """A plain Go error turned into a Status: code 500 and no reason (kubectl then prints
    `Error from server: <message>`)."""

    code = 500
    reason = ""


def _apply_error(resource: Resource, obj: dict[str, Any], shape: _Shape) -> errors.ApiError | None:
    messages: list[str] = []
    _apply_paths(obj, shape, "", messages)
    if not messages:
        return None
    metadata = obj.get("metadata") or {}
    group_version = f"{resource.group}/{resource.version}"
    summary = messages[0] if len(messages) == 1 else "errors:\n" + "\n".join("  " + m for m in messages)
    return _UnknownReasonError(
        f"failed to create typed patch object ({metadata.get('namespace', '')}/{metadata.get('name', '')}; "
        f"{group_version}, Kind={resource.kind}): {summary}")


def _plain(value: Any) -> Any:
    """`_Pairs` back to dicts (last value wins, as Go's decoder keeps it)."""
    if type(value) is _Pairs:
        return {key: _plain(child) for key, child in value.pairs}
    if isinstance(value, dict):
        return {key: _plain(child) for key, child in value.items()}
    if isinstance(value, list):
        return [_plain(item) for item in value]
    return value


def _go_value(value: Any) -> str:
    """Go's `%+v` of a decoded JSON value: `map[spec:map[replica:2]]`."""
    if isinstance(value, dict):
        return "map[" + " ".join(f"{key}:{_go_value(value[key])}" for key in sorted(value)) + "]"
    if isinstance(value, list):
        return "[" + " ".join(_go_value(item) for item in value) + "]"
    if value is None:
        return "<nil>"
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)
