"""The two plain patch types: JSON merge patch (RFC 7386) and JSON patch (RFC 6902).

Pure library (no I/O). The API server's PATCH handler decodes the body, calls
`json_merge_patch` for `application/merge-patch+json` or `json_patch` for
`application/json-patch+json`, then decodes, validates and stores the result like an update.
Strategic merge patch and server-side apply live elsewhere.

Both functions return a new document and never mutate their inputs (the target is usually
an object straight from the store or a cache). `deep_copy_json` is the fast copier they use;
an orjson round trip measured 9 µs for a typical Pod here, against 26 µs for a recursive
Python copier and 82 µs for `copy.deepcopy`.

Failures follow upstream (apiserver `jsonPatcher` over evanphx/json-patch): a patch that is
not a list of operations is a 400 BadRequest; an operation that cannot be applied (missing
path, failed test, unknown op) is a 422 Invalid whose wire message is upstream's generic
"the server rejected our request due to an error in our request" (upstream drops the
detail from the response); the specific reason is kept in `JsonPatchFailed.detail`.
"""

from __future__ import annotations

import re
from typing import Any

import orjson

from pyk8s.api import errors

__all__ = ["json_merge_patch", "json_patch", "deep_copy_json", "JsonPatchFailed", "parse_json_pointer"]


def _copy_recursively(value: Any) -> Any:
    if isinstance(value, dict):
        return {key: _copy_recursively(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_copy_recursively(item) for item in value]
    return value


def deep_copy_json(value: Any) -> Any:
    """Deep copy of JSON-like data (dict, list, str, int, float, bool, None).

    Scalars come back as they are. Containers go through an orjson round trip (the fastest
    option measured), falling back to a recursive copy for what orjson refuses (non-string
    keys, integers beyond 64 bits). Tuples come back as lists either way.
    """
    if not isinstance(value, (dict, list, tuple)):
        return value
    try:
        return orjson.loads(orjson.dumps(value))
    except TypeError:  # orjson.JSONEncodeError is a TypeError
        return _copy_recursively(value)


# --------------------------------------------------------------------------------------
# RFC 7386 JSON merge patch
# --------------------------------------------------------------------------------------

def json_merge_patch(target: Any, patch: Any) -> Any:
    """Apply an RFC 7386 merge patch and return the new document.

    An object patch merges key by key (null deletes the key, objects merge recursively,
    anything else replaces); a non-object patch (array, string, number, null) replaces the
    whole target. Lists are never merged, only replaced.
    """
    if not isinstance(patch, dict):
        return deep_copy_json(patch)
    result = deep_copy_json(target) if isinstance(target, dict) else {}
    _merge_into(result, patch)
    return result


def _merge_into(target: dict, patch: dict) -> None:
    """Merge `patch` into `target`, which is already a private copy and may be mutated."""
    for key, patch_value in patch.items():
        if patch_value is None:
            target.pop(key, None)
        elif isinstance(patch_value, dict):
            existing = target.get(key)
            if not isinstance(existing, dict):
                # Merging into a non-object starts from {}: nested nulls in the patch vanish.
                existing = {}
                target[key] = existing
            _merge_into(existing, patch_value)
        else:
            target[key] = deep_copy_json(patch_value)


# --------------------------------------------------------------------------------------
# RFC 6902 JSON patch
# --------------------------------------------------------------------------------------

class JsonPatchFailed(errors.ApiError):
    """An operation could not be applied: 422 Invalid, as upstream answers it.

    `message` (what goes on the wire) is upstream's generic text; `detail` says what failed
    (for logs, tests and anyone who wants to show more than upstream does).
    """

    code = 422
    reason = "Invalid"
    GENERIC_MESSAGE = "the server rejected our request due to an error in our request"

    def __init__(self, detail: str, *, operation_index: int | None = None):
        # upstream's NewGenericServerResponse always sends (empty) details
        super().__init__(self.GENERIC_MESSAGE, details={})
        self.detail = detail
        self.operation_index = operation_index

    def __str__(self) -> str:
        return f"{self.message}: {self.detail}"


_ARRAY_INDEX_RE = re.compile(r"0|[1-9][0-9]*")
_APPEND = "-"


def parse_json_pointer(pointer: str) -> list[str]:
    """RFC 6901: "" is the whole document; otherwise "/"-separated tokens where "~1" means
    "/" and "~0" means "~" (decoded in that order, so "~01" is "~1")."""
    if pointer == "":
        return []
    if not pointer.startswith("/"):
        raise JsonPatchFailed(f'JSON pointer "{pointer}" must be empty or start with "/"')
    tokens = pointer[1:].split("/")
    for index, token in enumerate(tokens):
        if "~" in token:
            if re.search(r"~(?![01])", token):
                raise JsonPatchFailed(f'JSON pointer "{pointer}" has an invalid escape: "~" must be followed by 0 or 1')
            tokens[index] = token.replace("~1", "/").replace("~0", "~")
    return tokens


def _array_index(token: str, array: list, pointer: str, *, allow_end: bool) -> int:
    """Index into `array` for `token`; `allow_end` admits len(array) and "-" (for add)."""
    if token == _APPEND and allow_end:
        return len(array)
    if not _ARRAY_INDEX_RE.fullmatch(token):
        raise JsonPatchFailed(f'invalid array index "{token}" in path "{pointer}"')
    index = int(token)
    limit = len(array) if allow_end else len(array) - 1
    if index > limit:
        raise JsonPatchFailed(f"index {index} is out of bounds for array of length {len(array)} at path \"{pointer}\"")
    return index


def _parent(document: Any, tokens: list[str], pointer: str, operation: str) -> Any:
    """The container holding the last token of `pointer`; every step before it must exist."""
    node = document
    for depth, token in enumerate(tokens[:-1]):
        if isinstance(node, dict):
            if token not in node:
                raise JsonPatchFailed(f'{operation} operation does not apply: doc is missing path: "{pointer}"')
            node = node[token]
        elif isinstance(node, list):
            if not _ARRAY_INDEX_RE.fullmatch(token) or int(token) >= len(node):
                raise JsonPatchFailed(f'{operation} operation does not apply: doc is missing path: "{pointer}"')
            node = node[int(token)]
        else:
            raise JsonPatchFailed(f'{operation} operation does not apply: doc is missing path: "{pointer}"')
    if not isinstance(node, (dict, list)):
        raise JsonPatchFailed(f'{operation} operation does not apply: doc is missing path: "{pointer}"')
    return node


def _get(document: Any, pointer: str, operation: str) -> Any:
    tokens = parse_json_pointer(pointer)
    if not tokens:
        return document
    parent = _parent(document, tokens, pointer, operation)
    last = tokens[-1]
    if isinstance(parent, dict):
        if last not in parent:
            raise JsonPatchFailed(f'{operation} operation does not apply: doc is missing path: "{pointer}"')
        return parent[last]
    return parent[_array_index(last, parent, pointer, allow_end=False)]


def _add(document: Any, pointer: str, value: Any, operation: str = "add") -> Any:
    """Add `value` (already private) at `pointer`; returns the (possibly new) document root."""
    tokens = parse_json_pointer(pointer)
    if not tokens:
        return value
    parent = _parent(document, tokens, pointer, operation)
    last = tokens[-1]
    if isinstance(parent, dict):
        parent[last] = value
    else:
        parent.insert(_array_index(last, parent, pointer, allow_end=True), value)
    return document


def _remove(document: Any, pointer: str, operation: str = "remove") -> Any:
    """Remove and return the value at `pointer`."""
    tokens = parse_json_pointer(pointer)
    if not tokens:
        raise JsonPatchFailed(f"{operation} operation does not apply: cannot remove the whole document")
    parent = _parent(document, tokens, pointer, operation)
    last = tokens[-1]
    if isinstance(parent, dict):
        if last not in parent:
            raise JsonPatchFailed(f'{operation} operation does not apply: unable to remove nonexistent key: "{pointer}"')
        return parent.pop(last)
    return parent.pop(_array_index(last, parent, pointer, allow_end=False))


def _replace(document: Any, pointer: str, value: Any) -> Any:
    tokens = parse_json_pointer(pointer)
    if not tokens:
        return value
    parent = _parent(document, tokens, pointer, "replace")
    last = tokens[-1]
    if isinstance(parent, dict):
        if last not in parent:
            raise JsonPatchFailed(f'replace operation does not apply: doc is missing key: "{pointer}"')
        parent[last] = value
    else:
        parent[_array_index(last, parent, pointer, allow_end=False)] = value
    return document


def json_equal(left: Any, right: Any) -> bool:
    """JSON value equality: 1 == 1.0, but true is not 1 (Python's == says it is)."""
    if isinstance(left, bool) or isinstance(right, bool):
        return isinstance(left, bool) and isinstance(right, bool) and left == right
    if isinstance(left, dict):
        return (isinstance(right, dict) and left.keys() == right.keys()
                and all(json_equal(item, right[key]) for key, item in left.items()))
    if isinstance(left, list):
        return (isinstance(right, list) and len(left) == len(right)
                and all(json_equal(a, b) for a, b in zip(left, right)))
    if isinstance(left, (int, float)):
        return isinstance(right, (int, float)) and left == right
    if left is None or right is None:
        return left is right
    return type(left) is type(right) and left == right


def _go_json_type(value: Any) -> str:
    if isinstance(value, dict):
        return "object"
    if isinstance(value, list):
        return "array"
    if isinstance(value, str):
        return "string"
    if isinstance(value, bool):
        return "bool"
    return "number"


def _required(operation: dict, field: str, kind: str) -> Any:
    if field not in operation:
        raise JsonPatchFailed(f'{kind} operation is missing the "{field}" field')
    return operation[field]


def _pointer(operation: dict, field: str, kind: str) -> str:
    pointer = _required(operation, field, kind)
    if not isinstance(pointer, str):
        raise JsonPatchFailed(f'{kind} operation has a non-string "{field}" field')
    return pointer


def json_patch(target: Any, operations: Any) -> Any:
    """Apply RFC 6902 operations in order and return the new document.

    Operations: add (object key set or array insert, "-" appends), remove, replace (the
    location must exist), move (`from` must not be an ancestor of `path`), copy, test (JSON
    equality). Nothing is applied unless every operation succeeds. Raises BadRequest when
    `operations` is not a list of objects, JsonPatchFailed (422) when an operation fails.

    Upstream quirk kept on purpose: `test` of a missing member against null succeeds.
    """
    if not isinstance(operations, list):
        raise errors.BadRequest(
            f"json: cannot unmarshal {_go_json_type(operations) if operations is not None else 'null'} "
            "into Go value of type jsonpatch.Patch")
    for operation in operations:
        if operation is not None and not isinstance(operation, dict):
            raise errors.BadRequest(
                f"json: cannot unmarshal {_go_json_type(operation)} into Go value of type jsonpatch.Operation")

    document = deep_copy_json(target)
    for index, operation in enumerate(operations):
        try:
            document = _apply_operation(document, operation or {})
        except JsonPatchFailed as failure:
            failure.operation_index = index
            raise
    return document


def _apply_operation(document: Any, operation: dict) -> Any:
    kind = operation.get("op")
    if kind == "add":
        path = _pointer(operation, "path", kind)
        return _add(document, path, deep_copy_json(_required(operation, "value", kind)))
    if kind == "remove":
        _remove(document, _pointer(operation, "path", kind))
        return document
    if kind == "replace":
        path = _pointer(operation, "path", kind)
        return _replace(document, path, deep_copy_json(_required(operation, "value", kind)))
    if kind == "move":
        source = _pointer(operation, "from", kind)
        path = _pointer(operation, "path", kind)
        if source == path:
            _get(document, source, kind)  # still must exist
            return document
        if path.startswith(source + "/"):
            raise JsonPatchFailed(f'move operation does not apply: "from" {source} is an ancestor of "path" {path}')
        moved = _remove(document, source, kind)
        return _add(document, path, moved, kind)
    if kind == "copy":
        source = _pointer(operation, "from", kind)
        path = _pointer(operation, "path", kind)
        return _add(document, path, deep_copy_json(_get(document, source, kind)), kind)
    if kind == "test":
        path = _pointer(operation, "path", kind)
        expected = _required(operation, "value", kind)
        try:
            actual = _get(document, path, kind)
        except JsonPatchFailed:
            # evanphx/json-patch (what upstream runs) treats a missing member as null, as
            # long as its parent exists.
            tokens = parse_json_pointer(path)
            parent = _parent(document, tokens, path, kind) if tokens else None
            if expected is None and isinstance(parent, dict):
                return document
            raise JsonPatchFailed(f'testing value "{path}" failed: test failed') from None
        if not json_equal(actual, expected):
            raise JsonPatchFailed(f'testing value "{path}" failed: test failed')
        return document
    raise JsonPatchFailed(f"Unexpected kind: {kind if isinstance(kind, str) and kind else 'unknown'}")
