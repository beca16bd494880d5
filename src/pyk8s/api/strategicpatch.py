"""Strategic merge patch: applying it (the API server's PATCH) and computing it (kubectl's
`apply`, `edit`, `set image`, ...), with upstream's semantics.

Pure library (no I/O). The semantics follow apimachinery `pkg/util/strategicpatch`
(`StrategicMergeMapPatch`, `CreateTwoWayMergeMapPatch`, `CreateThreeWayMergePatch`); the merge
information comes from upstream's OpenAPI schemas in `pyk8s.api.schemas`:

- maps merge recursively and `null` deletes a key;
- a list whose field says `x-kubernetes-patch-strategy: merge` merges element by element:
  maps by `x-kubernetes-patch-merge-key` (containers by name, ports by containerPort, ...),
  scalars as a union (finalizers); every other list, and every scalar, is replaced;
- a field whose strategy includes `retainKeys` (deployment strategy, volume sources) drops the
  keys the patch's `$retainKeys` list does not name;
- directives: `$patch: replace | delete` (in a map or as a list element), `$setElementOrder/<f>`
  (order of a merged list), `$deleteFromPrimitiveList/<f>` (remove scalars from a merged list),
  `$retainKeys`;
- fields the schema does not know (and kinds without a schema) are untyped: maps merge, lists
  are replaced. `x-kubernetes-list-type` / `map-type` play no part, as upstream's struct tags
  (not the list types) drive strategic merge patch.

`resource` names the kind whose schema gives the merge information; an OpenAPI schema
node (a dict) may be passed instead, and `None` means untyped data.

Data flow: `apply` deep-copies the stored object and the patch once, then merges in place
(the upstream algorithm is written for mutation); the diff functions copy their inputs too,
so no caller's data is ever changed or aliased by a result.

Errors carry upstream's wording. The API server turns the same upstream errors into the same
statuses (apiserver `interpretStrategicMergePatchError`): malformed directives are 400
BadRequest, lists of lists and retainKeys mismatches 422 with the generic message, and any
other failure (a list element without its merge key, an unknown `$patch` value) is a 500 with
no reason, which kubectl prints as `Error from server: <message>`.
"""

from __future__ import annotations

import decimal
import math
from dataclasses import dataclass, replace
from typing import Any, NamedTuple

from pyk8s.api import errors, schemas
from pyk8s.api.patch import deep_copy_json, json_equal
from pyk8s.api.resources import Resource

__all__ = [
    "apply",
    "create_two_way_merge_patch",
    "create_three_way_merge_patch",
    "StrategicMergePatchFailed",
    "StrategicMergePatchInvalid",
]

DIRECTIVE = "$patch"
DELETE = "delete"
REPLACE = "replace"
MERGE = "merge"
RETAIN_KEYS_STRATEGY = "retainKeys"
RETAIN_KEYS = "$retainKeys"
DELETE_FROM_PRIMITIVE_LIST = "$deleteFromPrimitiveList"
SET_ELEMENT_ORDER = "$setElementOrder"

_ABSENT = object()


# --------------------------------------------------------------------------------------
# Errors (mergepatch.Err* wording)
# --------------------------------------------------------------------------------------

class StrategicMergePatchFailed(errors.ApiError):
    """A merge failure upstream does not classify: 500 with an empty (Unknown) reason, as the
    apiserver answers any error that is not an API status."""

    code = 500
    reason = ""  # upstream's empty (Unknown) reason, left out of the Status body


class StrategicMergePatchInvalid(errors.ApiError):
    """422 from upstream's NewGenericServerResponse: a generic message, the cause in `detail`."""

    code = 422
    reason = "Invalid"
    GENERIC_MESSAGE = "the server rejected our request due to an error in our request"

    def __init__(self, detail: str):
        super().__init__(self.GENERIC_MESSAGE, details={})
        self.detail = detail

    def __str__(self) -> str:
        return f"{self.message}: {self.detail}"


def _bad_json_doc() -> errors.BadRequest:
    return errors.BadRequest("invalid JSON document")


def _bad_primitive_list_format() -> errors.BadRequest:
    return errors.BadRequest("invalid patch format of primitive list")


def _bad_retain_keys_format() -> errors.BadRequest:
    return errors.BadRequest("invalid patch format of retainKeys")


def _bad_set_element_order_format() -> errors.BadRequest:
    return errors.BadRequest("invalid patch format of setElementOrder list")


def _no_list_of_lists() -> StrategicMergePatchInvalid:
    return StrategicMergePatchInvalid("lists of lists are not supported")


def _no_merge_key(element: dict, merge_key: str) -> StrategicMergePatchFailed:
    return StrategicMergePatchFailed(f"map: {go_format(element)} does not contain declared merge key: {merge_key}")


def _bad_arg_type(expected: str, actual: Any) -> StrategicMergePatchFailed:
    return StrategicMergePatchFailed(f"expected a {expected}, but received a {_go_type_name(actual)}")


def _bad_patch_type(directive: Any, element: dict) -> StrategicMergePatchFailed:
    return StrategicMergePatchFailed(f"unknown patch type: {go_format(directive)} in map: {go_format(element)}")


_GO_MAP = "map[string]interface {}"
_GO_SLICE = "[]interface {}"


def _go_type_name(value: Any) -> str:
    if value is None:
        return "%!s(<nil>)"
    if isinstance(value, dict):
        return _GO_MAP
    if isinstance(value, list):
        return _GO_SLICE
    if isinstance(value, str):
        return "string"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int64"
    return "float64"


def go_format(value: Any) -> str:
    """`fmt.Sprintf("%v", value)` of decoded JSON, as upstream's error messages print it."""
    if value is None:
        return "<nil>"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return value
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return _go_float(value)
    if isinstance(value, dict):
        return "map[" + " ".join(f"{key}:{go_format(value[key])}" for key in sorted(value)) + "]"
    if isinstance(value, (list, tuple)):
        return "[" + " ".join(go_format(item) for item in value) + "]"
    return str(value)


def _go_float(value: float) -> str:
    # Go's %v on a float64 is %g with the shortest digits, switching to an exponent below 1e-4
    # and from 1e6 up (strconv's "shortest uses precision 6" rule).
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    if value == 0:
        return "-0" if math.copysign(1, value) < 0 else "0"
    sign, digits, exponent = decimal.Decimal(repr(value)).normalize().as_tuple()
    digit_text = "".join(map(str, digits))
    decimal_exponent = len(digits) + exponent - 1
    prefix = "-" if sign else ""
    if decimal_exponent < -4 or decimal_exponent >= 6:
        mantissa = digit_text[0] + ("." + digit_text[1:] if len(digit_text) > 1 else "")
        return f"{prefix}{mantissa}e{'-' if decimal_exponent < 0 else '+'}{abs(decimal_exponent):02d}"
    text = format(decimal.Decimal(repr(abs(value))), "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return prefix + text


# --------------------------------------------------------------------------------------
# Merge information from the OpenAPI schemas
# --------------------------------------------------------------------------------------

class _FieldMeta(NamedTuple):
    schema: "_Schema"      # of the field's value; for a list, of its items
    strategy: str          # "merge", "replace" or "" (upstream's default: replace lists)
    retain_keys: bool
    merge_key: str


class _Schema:
    """Merge information of one schema node, looked up lazily and cached per field name."""

    __slots__ = ("_node", "_fields")

    def __init__(self, node: dict[str, Any]):
        self._node = node
        self._fields: dict[str, _FieldMeta] = {}

    def field(self, key: str) -> _FieldMeta:
        meta = self._fields.get(key)
        if meta is None:
            meta = self._fields[key] = self._lookup(key)
        return meta

    def _lookup(self, key: str) -> _FieldMeta:
        properties = self._node.get("properties")
        prop = properties.get(key) if properties else None
        if prop is None:
            # map[string]X: every key has X's schema; anything else is an unknown field.
            extra = self._node.get("additionalProperties")
            if not isinstance(extra, dict):
                return _UNTYPED_FIELD
            prop = extra
        resolved = schemas.resolve(prop)
        strategies = [part for part in (resolved.get("x-kubernetes-patch-strategy") or "").split(",") if part]
        retain_keys, strategy = _split_retain_keys_strategy(strategies)
        merge_key = resolved.get("x-kubernetes-patch-merge-key") or ""
        if resolved.get("type") == "array":
            items = resolved.get("items")
            value_schema = _schema_of(items) if isinstance(items, dict) else _UNTYPED
        else:
            value_schema = _schema_of(prop)
        return _FieldMeta(value_schema, strategy, retain_keys, merge_key)


def _split_retain_keys_strategy(strategies: list[str]) -> tuple[bool, str]:
    # extractRetainKeysPatchStrategy: at most two strategies, one of which may be retainKeys.
    if not strategies:
        return False, ""
    if len(strategies) == 1:
        return (True, "") if strategies[0] == RETAIN_KEYS_STRATEGY else (False, strategies[0])
    if len(strategies) == 2:
        if strategies[0] == RETAIN_KEYS_STRATEGY:
            return True, strategies[1]
        if strategies[1] == RETAIN_KEYS_STRATEGY:
            return True, strategies[0]
    raise StrategicMergePatchFailed(f"unexpected patch strategy: [{' '.join(strategies)}]")


_UNTYPED = _Schema({})
_UNTYPED_FIELD = _FieldMeta(_UNTYPED, "", False, "")
_NAMED_SCHEMAS: dict[str, _Schema] = {}


def _schema_named(name: str) -> _Schema:
    found = _NAMED_SCHEMAS.get(name)
    if found is None:
        found = _NAMED_SCHEMAS[name] = _Schema(schemas.schema(name))
    return found


def _schema_of(node: dict[str, Any]) -> _Schema:
    name = schemas.ref_name(node)
    if name is not None:
        return _schema_named(name)
    return _Schema(node)


def _root_schema(resource: Resource | dict | None) -> _Schema:
    if resource is None:
        return _UNTYPED
    if isinstance(resource, dict):
        return _Schema(resource)
    name = schemas.schema_name(resource.group, resource.version, resource.kind)
    return _schema_named(name) if name else _UNTYPED


# --------------------------------------------------------------------------------------
# Small helpers over decoded JSON
# --------------------------------------------------------------------------------------

def _kind(value: Any) -> str:
    """Go's reflect.TypeOf on decoded JSON, coarsened to what the algorithm distinguishes."""
    if isinstance(value, dict):
        return "map"
    if isinstance(value, list):
        return "slice"
    if value is None:
        return "nil"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, str):
        return "string"
    if isinstance(value, int):
        return "int64"
    return "float64"


def _hashable(value: Any) -> Any:
    """A key for a merge-key value or a scalar: JSON equality, with true distinct from 1."""
    if isinstance(value, bool):
        return ("bool", value)
    if isinstance(value, (dict, list)):
        return ("json", go_format(value))
    return value


def _slice_element_kind(*lists: list) -> str:
    # sliceElementType: every element of every list has the same type, and is not a list.
    previous = None
    for items in lists:
        for item in items:
            current = _kind(item)
            if previous is None:
                previous = current
                if current == "slice":
                    raise _no_list_of_lists()
            elif previous != current:
                raise StrategicMergePatchFailed(f"list element types are not identical: {go_format(list(lists))}")
    if previous is None:
        raise StrategicMergePatchFailed("no elements in any of the given slices")
    return previous


def _sort_scalars(items: list) -> list:
    return sorted(items, key=go_format)


def _deduplicate_scalars(items: list) -> list:
    # Upstream's in-place dedupe moves the last element into each duplicate's slot; the
    # resulting order shows in `$deleteFromPrimitiveList` lists, so it is kept.
    result = list(items)
    last = len(result) - 1
    i = 0
    while i < last:
        j = i + 1
        while j <= last:
            if _hashable(result[i]) == _hashable(result[j]):
                result[j] = result[last]
                result.pop()
                last -= 1
                j -= 1
            j += 1
        i += 1
    return result


def _clean(value: Any, *, drop_nulls: bool, drop_patch_maps: bool, drop_directive_keys: bool) -> tuple[Any, bool]:
    """Returns (value without directives, whether to keep it at all).

    `drop_patch_maps` is upstream's removeDirectives (a map carrying `$patch` disappears);
    `drop_nulls` its discardNullValuesFromPatch; `drop_directive_keys` removes directive keys
    from the result, as upstream's decoding into typed objects drops them as unknown fields.
    """
    if isinstance(value, dict):
        if drop_patch_maps and DIRECTIVE in value:
            return None, False
        cleaned = {}
        for key, item in value.items():
            if item is None and drop_nulls:
                continue
            if drop_directive_keys and _is_directive_key(key):
                continue
            item, keep = _clean(item, drop_nulls=drop_nulls, drop_patch_maps=drop_patch_maps,
                                drop_directive_keys=drop_directive_keys)
            if keep:
                cleaned[key] = item
        return cleaned, True
    if isinstance(value, list):
        cleaned_list = []
        for item in value:
            item, keep = _clean(item, drop_nulls=drop_nulls, drop_patch_maps=drop_patch_maps,
                                drop_directive_keys=drop_directive_keys)
            if keep:
                cleaned_list.append(item)
        return cleaned_list, True
    return value, True


def _is_directive_key(key: str) -> bool:
    return key.startswith("$") and (key in (DIRECTIVE, RETAIN_KEYS) or key.startswith(SET_ELEMENT_ORDER + "/")
                                    or key.startswith(DELETE_FROM_PRIMITIVE_LIST + "/"))


def _extract_key(key: str, prefix: str) -> str:
    head, slash, rest = key.partition("/")
    if not slash or head != prefix:
        if prefix == DELETE_FROM_PRIMITIVE_LIST:
            raise _bad_primitive_list_format()
        raise _bad_set_element_order_format()
    return rest


# --------------------------------------------------------------------------------------
# Applying a patch (mergeMap and friends)
# --------------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class _MergeOptions:
    # Server side merges the parallel lists ($deleteFromPrimitiveList, $setElementOrder) and
    # drops nulls that match nothing; the three-way diff merges two patches and keeps both.
    merge_parallel_list: bool
    ignore_unmatched_nulls: bool


_SERVER_MERGE = _MergeOptions(merge_parallel_list=True, ignore_unmatched_nulls=True)
_PATCH_MERGE = _MergeOptions(merge_parallel_list=False, ignore_unmatched_nulls=False)


def apply(resource: Resource | dict | None, original: dict, patch: dict) -> dict:
    """`original` with the strategic merge `patch` applied, as a new object.

    Raises BadRequest / StrategicMergePatchInvalid / StrategicMergePatchFailed with upstream's
    wording and status for patches upstream rejects.
    """
    if not isinstance(original, dict) or not isinstance(patch, dict):
        raise _bad_json_doc()
    result = _merge_map(deep_copy_json(original), deep_copy_json(patch), _root_schema(resource), _SERVER_MERGE)
    return result


def _fresh(value: Any, options: _MergeOptions) -> tuple[Any, bool]:
    """A patch value that lands where the original had nothing to merge with."""
    if options.merge_parallel_list:
        return _clean(value, drop_nulls=True, drop_patch_maps=True, drop_directive_keys=True)
    return _clean(value, drop_nulls=options.ignore_unmatched_nulls, drop_patch_maps=True, drop_directive_keys=False)


def _verbatim(value: Any, options: _MergeOptions) -> Any:
    """A patch value taken as is (replaced list, appended element): on the server, clean it
    the way upstream's typed decoding would (no nulls, no directive keys)."""
    if options.merge_parallel_list:
        return _clean(value, drop_nulls=True, drop_patch_maps=False, drop_directive_keys=True)[0]
    return value


def _merge_map(original: dict | None, patch: dict, schema: _Schema, options: _MergeOptions) -> dict:
    directive = patch.get(DIRECTIVE, _ABSENT)
    if directive is not _ABSENT:
        return _directive_in_map(directive, patch, options)
    if original is None:
        original = {}
    _apply_retain_keys(original, patch, options)
    _merge_set_element_order(original, patch, schema, options)

    for key, patch_value in list(patch.items()):
        is_delete_list = False
        if key.startswith(DELETE_FROM_PRIMITIVE_LIST):
            if not options.merge_parallel_list:
                original[key] = patch_value
                continue
            key = _extract_key(key, DELETE_FROM_PRIMITIVE_LIST)
            is_delete_list = True

        if patch_value is None:
            original.pop(key, None)
            if options.ignore_unmatched_nulls:
                continue

        current = original.get(key, _ABSENT)
        if current is _ABSENT or _kind(current) != _kind(patch_value):
            if not is_delete_list:
                value, keep = _fresh(patch_value, options)
                if keep:
                    original[key] = value
                else:
                    original.pop(key, None)
            continue

        if isinstance(current, dict):
            meta = schema.field(key)
            if meta.strategy == REPLACE:
                original[key] = _verbatim(patch_value, options)
            else:
                original[key] = _merge_map(current, patch_value, meta.schema, options)
        elif isinstance(current, list):
            original[key] = _merge_slice_handler(current, patch_value, schema.field(key), is_delete_list, options)
        else:
            value, keep = _fresh(patch_value, options)
            if keep:
                original[key] = value
            else:
                original.pop(key, None)
    return original


def _directive_in_map(directive: Any, patch: dict, options: _MergeOptions) -> dict:
    if directive == REPLACE:
        del patch[DIRECTIVE]
        return _verbatim(patch, options)
    if directive == DELETE:
        return {}
    raise _bad_patch_type(directive, patch)


def _apply_retain_keys(original: dict, patch: dict, options: _MergeOptions) -> None:
    retain = patch.pop(RETAIN_KEYS, _ABSENT)
    if retain is _ABSENT:
        return
    if not options.merge_parallel_list:
        # Merging two patches: both must agree on the list, which then travels on.
        existing = original.get(RETAIN_KEYS, _ABSENT)
        if existing is _ABSENT:
            original[RETAIN_KEYS] = retain
        elif not json_equal(existing, retain):
            raise StrategicMergePatchFailed(
                f"{go_format(existing)} and {go_format(retain)} are not deep equal: "
                "this may happen when calculating the 3-way diff patch")
        return
    if not isinstance(retain, list):
        raise _bad_retain_keys_format()
    kept = {_hashable(name) for name in retain}
    for key, value in patch.items():
        if value is None or key.startswith(DELETE_FROM_PRIMITIVE_LIST) or key.startswith(SET_ELEMENT_ORDER):
            continue
        if key not in kept:
            raise _bad_retain_keys_format()
    for key in [key for key in original if key not in kept]:
        del original[key]


def _merge_set_element_order(original: dict, patch: dict, schema: _Schema, options: _MergeOptions) -> None:
    """mergePatchIntoOriginal: merges each list named by a `$setElementOrder/<field>` directive
    and orders it ($setElementOrder first, then the patch's order, then the live order)."""
    for directive_key in [key for key in patch if key.startswith(SET_ELEMENT_ORDER)]:
        order = patch.pop(directive_key)
        if not options.merge_parallel_list:
            existing = original.get(directive_key, _ABSENT)
            if existing is _ABSENT:
                original[directive_key] = order
            elif not json_equal(existing, order):
                raise _bad_set_element_order_format()
        if not isinstance(order, list):
            raise _bad_arg_type(_GO_SLICE, order)
        field = _extract_key(directive_key, SET_ELEMENT_ORDER)
        original_list = original.get(field, _ABSENT)
        patch_list = patch.get(field, _ABSENT)
        if original_list is not _ABSENT and not isinstance(original_list, list):
            raise _bad_arg_type(_GO_SLICE, original_list)
        if patch_list is not _ABSENT and not isinstance(patch_list, list):
            raise _bad_arg_type(_GO_SLICE, patch_list)
        meta = schema.field(field)
        _validate_patch_with_set_order(patch_list if patch_list is not _ABSENT else [], order, meta.merge_key)

        if original_list is not _ABSENT and patch_list is _ABSENT:
            merged = original_list
        elif original_list is _ABSENT and patch_list is not _ABSENT:
            # Upstream takes the list as it is; on the server, clean it like any new value.
            merged = _fresh(patch_list, options)[0] if options.merge_parallel_list else patch_list
        elif original_list is not _ABSENT:
            merged, live_order = _merge_slice_handler_in_order(original_list, patch_list, meta, False, options)
        else:
            continue

        if meta.merge_key:
            patch_items, server_only = _partition_maps(merged, order, meta.merge_key)
        else:
            patch_items, server_only = _partition_primitives(merged, order)
        live = original_list if original_list is not _ABSENT else []
        kind = _slice_element_kind(live, patch_list if patch_list is not _ABSENT else [])
        if original_list is _ABSENT or patch_list is _ABSENT:
            live_order = live
        original[field] = _normalize_element_order(patch_items, server_only, order, live_order, meta.merge_key, kind)
        patch.pop(field, None)


def _validate_patch_with_set_order(patch_list: list, order: list, merge_key: str) -> None:
    """The patch's items must appear in `$setElementOrder` and in the same relative order."""
    if not order or not patch_list:
        return
    if merge_key:
        non_delete, _ = _extract_to_delete_items(patch_list)
    else:
        non_delete = patch_list
    patch_index = order_index = 0
    while patch_index < len(non_delete) and order_index < len(order):
        item = non_delete[patch_index]
        if isinstance(item, dict) and DIRECTIVE in item:
            patch_index += 1
            continue
        if _merge_key_value_equal(item, order[order_index], merge_key):
            patch_index += 1
        order_index += 1
    if patch_index < len(non_delete) and order_index >= len(order):
        raise StrategicMergePatchFailed(
            f"The order in patch list:\n{go_format(patch_list)}\n doesn't match {SET_ELEMENT_ORDER} list:\n"
            f"{go_format(order)}\n")


def _merge_key_value_equal(left: Any, right: Any, merge_key: str) -> bool:
    if not merge_key:
        return _hashable(left) == _hashable(right)
    if not isinstance(left, dict):
        raise _bad_arg_type(_GO_MAP, left)
    if not isinstance(right, dict):
        raise _bad_arg_type(_GO_MAP, right)
    if merge_key not in left:
        raise _no_merge_key(left, merge_key)
    if merge_key not in right:
        raise _no_merge_key(right, merge_key)
    return _hashable(left[merge_key]) == _hashable(right[merge_key])


def _merge_slice_handler(original: list, patch: Any, meta: _FieldMeta, is_delete_list: bool,
                         options: _MergeOptions) -> list:
    return _merge_slice_handler_in_order(original, patch, meta, is_delete_list, options)[0]


def _merge_slice_handler_in_order(original: list, patch: Any, meta: _FieldMeta, is_delete_list: bool,
                                  options: _MergeOptions) -> tuple[list, list]:
    """The merged list, and the live order a following `$setElementOrder` pass compares with."""
    if not isinstance(patch, list):
        raise _bad_arg_type(_GO_SLICE, patch)
    # A deletion list deletes whatever the field's strategy (upstream does the same).
    if meta.strategy == MERGE or is_delete_list:
        return _merge_slice(original, patch, meta.schema, meta.merge_key, options, is_delete_list)
    return _verbatim(patch, options), original


def _merge_slice(original: list, patch: list, item_schema: _Schema, merge_key: str, options: _MergeOptions,
                 is_delete_list: bool) -> tuple[list, list]:
    if not original and not patch:
        return original, original
    kind = _slice_element_kind(original, patch)
    live_order = original
    if kind != "map":
        if options.merge_parallel_list and is_delete_list:
            doomed = {_hashable(item) for item in patch}
            return [item for item in original if _hashable(item) not in doomed], original
        merged = _deduplicate_scalars(original + patch)
    else:
        if not merge_key:
            raise StrategicMergePatchFailed("cannot merge lists without merge key for type struct")
        length = len(original)
        original, patch = _merge_slice_with_special_elements(original, patch, merge_key)
        merged = _merge_slice_without_special_elements(original, patch, merge_key, item_schema, options)
        # Upstream deletes and appends in the live list's own array, so the live order a
        # following $setElementOrder pass sees is the list after deletions with the first
        # appended items in the freed slots. Its expected results depend on that.
        if len(original) < length:
            live_order = merged[:length]

    if merge_key:
        patch_items, server_only = _partition_maps(merged, patch, merge_key)
    else:
        patch_items, server_only = _partition_primitives(merged, patch)
    return _normalize_element_order(patch_items, server_only, patch, original, merge_key, kind), live_order


def _merge_slice_with_special_elements(original: list, patch: list, merge_key: str) -> tuple[list, list]:
    """Applies `$patch: delete` elements and detects `$patch: replace`; returns the live list
    and the patch's ordinary elements."""
    plain = []
    replace_all = False
    for element in patch:
        directive = element.get(DIRECTIVE, _ABSENT)
        if directive is _ABSENT:
            plain.append(element)
        elif directive == DELETE:
            if merge_key not in element:
                raise _no_merge_key(element, merge_key)
            doomed = _hashable(element[merge_key])
            original = [item for item in original
                        if not (merge_key in item and _hashable(item[merge_key]) == doomed)]
        elif directive == REPLACE:
            replace_all = True  # keep going: the other directives are pruned as well
        elif directive == MERGE:
            raise StrategicMergePatchFailed("merging lists cannot yet be specified in the patch")
        else:
            raise _bad_patch_type(directive, element)
    if replace_all:
        return plain, []
    return original, plain


def _merge_slice_without_special_elements(original: list, patch: list, merge_key: str, item_schema: _Schema,
                                          options: _MergeOptions) -> list:
    merged = list(original)
    position = {}
    for index, item in enumerate(merged):
        if not isinstance(item, dict):
            raise StrategicMergePatchFailed(f"value for key {index} is not a map.")
        if merge_key in item:
            position.setdefault(_hashable(item[merge_key]), index)
    for element in patch:
        if merge_key not in element:
            raise _no_merge_key(element, merge_key)
        key = _hashable(element[merge_key])
        index = position.get(key)
        if index is not None:
            merged[index] = _merge_map(merged[index], element, item_schema, options)
        else:
            position[key] = len(merged)
            merged.append(_verbatim(element, options))
    return merged


def _partition_primitives(items: list, partition_by: list) -> tuple[list, list]:
    wanted = {_hashable(item) for item in partition_by}
    in_patch, server_only = [], []
    for item in items:
        (in_patch if _hashable(item) in wanted else server_only).append(item)
    return in_patch, server_only


def _partition_maps(items: list, partition_by: list, merge_key: str) -> tuple[list, list]:
    wanted = set()
    for index, element in enumerate(partition_by):
        if not isinstance(element, dict):
            raise StrategicMergePatchFailed(f"value for key {index} is not a map.")
        if merge_key in element:
            wanted.add(_hashable(element[merge_key]))
    in_patch, server_only = [], []
    for item in items:
        if not isinstance(item, dict):
            raise _bad_arg_type(_GO_MAP, item)
        if merge_key not in item:
            raise _no_merge_key(item, merge_key)
        (in_patch if _hashable(item[merge_key]) in wanted else server_only).append(item)
    return in_patch, server_only


def _identity(item: Any, merge_key: str, kind: str) -> Any:
    if kind == "map":
        return _hashable(item.get(merge_key)) if isinstance(item, dict) else None
    return _hashable(item)


def _positions(order: list, merge_key: str, kind: str) -> dict:
    positions: dict = {}
    for index, item in enumerate(order):
        positions.setdefault(_identity(item, merge_key, kind), index)
    return positions


def _extract_to_delete_items(items: list) -> tuple[list, list]:
    keep, doomed = [], []
    for item in items:
        if not isinstance(item, dict):
            raise _bad_arg_type(_GO_MAP, item)
        (doomed if item.get(DIRECTIVE) == DELETE else keep).append(item)
    return keep, doomed


def _normalize_slice_order(items: list, order: list, merge_key: str, kind: str) -> list:
    """`items` sorted by their place in `order` (stable; unknown items last), with
    `$patch: delete` elements moved to the end."""
    doomed: list = []
    if kind == "map":
        for item in items:
            if not isinstance(item, dict):
                raise _bad_arg_type(_GO_MAP, item)
            if merge_key not in item:
                raise _no_merge_key(item, merge_key)
        for item in order:
            if not isinstance(item, dict):
                raise _bad_arg_type(_GO_MAP, item)
            if merge_key not in item:
                raise _no_merge_key(item, merge_key)
        items, doomed = _extract_to_delete_items(items)
    positions = _positions(order, merge_key, kind)
    unknown = len(order)
    ordered = sorted(items, key=lambda item: positions.get(_identity(item, merge_key, kind), unknown))
    return ordered + doomed


def _normalize_element_order(patch_items: list, server_only: list, patch_order: list, server_order: list,
                             merge_key: str, kind: str) -> list:
    patch_items = _normalize_slice_order(patch_items, patch_order, merge_key, kind)
    server_only = _normalize_slice_order(server_only, server_order, merge_key, kind)
    return _merge_sorted(server_only, patch_items, server_order, merge_key, kind)


def _merge_sorted(server_only: list, patch_items: list, server_order: list, merge_key: str, kind: str) -> list:
    """mergeSortedSlice: interleave server-only items into the patch's items, keeping both
    relative orders; a server-only item goes first only when the live list puts it before the
    patch item it is compared with."""
    positions = _positions(server_order, merge_key, kind)
    result = []
    left = right = 0
    while left < len(server_only) or right < len(patch_items):
        if left >= len(server_only):
            result.append(patch_items[right])
            right += 1
        elif right >= len(patch_items):
            result.append(server_only[left])
            left += 1
        else:
            left_position = positions.get(_identity(server_only[left], merge_key, kind))
            right_position = positions.get(_identity(patch_items[right], merge_key, kind))
            if left_position is not None and right_position is not None and left_position < right_position:
                result.append(server_only[left])
                left += 1
            else:
                result.append(patch_items[right])
                right += 1
    return result


# --------------------------------------------------------------------------------------
# Computing a patch (diffMaps and friends)
# --------------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class _DiffOptions:
    set_element_order: bool = False
    ignore_changes_and_additions: bool = False
    ignore_deletions: bool = False
    build_retain_keys_directive: bool = False


def create_two_way_merge_patch(resource: Resource | dict | None, original: dict, modified: dict) -> dict:
    """The patch that turns `original` into `modified` (what `kubectl edit` and `set` send)."""
    original, modified = _decoded_documents(original, modified)
    return _diff_maps(original, modified, _root_schema(resource), _DiffOptions(set_element_order=True))


def create_three_way_merge_patch(resource: Resource | dict | None, original: dict | None, modified: dict,
                                 current: dict) -> dict:
    """kubectl's client-side apply patch: `modified` (the file) over `current` (the live object),
    deleting what `original` (the last-applied configuration) had and `modified` dropped, and
    leaving alone what others set on `current`.

    Like `kubectl apply` (overwrite=true), changes others made to fields the file sets are
    overwritten rather than reported as conflicts.
    """
    original, modified, current = _decoded_documents(original or {}, modified, current)
    schema = _root_schema(resource)
    # Additions and changes from current to modified, plus deletions from original to
    # modified; the second patch is merged onto the first as one more patch.
    delta = _diff_maps(current, modified, schema, _DiffOptions(set_element_order=True, ignore_deletions=True))
    deletions = _diff_maps(original, modified, schema,
                           _DiffOptions(set_element_order=True, ignore_changes_and_additions=True))
    return _merge_map(deletions, delta, schema, _PATCH_MERGE)


def _decoded_documents(*documents: Any) -> list[dict]:
    copies = []
    for document in documents:
        if document is None:
            document = {}
        if not isinstance(document, dict):
            raise _bad_json_doc()
        copies.append(deep_copy_json(document))
    return copies


def _diff_maps(original: dict, modified: dict, schema: _Schema, options: _DiffOptions) -> dict:
    patch: dict = {}
    retain_keys = []
    for key, modified_value in modified.items():
        if options.build_retain_keys_directive and modified_value is not None:
            retain_keys.append(key)
        original_value = original.get(key, _ABSENT)
        if original_value is _ABSENT:
            if not options.ignore_changes_and_additions:
                patch[key] = modified_value
            continue
        if key == DIRECTIVE:
            if not isinstance(original_value, str) or not isinstance(modified_value, str):
                raise StrategicMergePatchFailed(f"invalid value for special key: {DIRECTIVE}")
            if modified_value != original_value:
                patch[key] = modified_value
            continue
        if _kind(original_value) != _kind(modified_value):
            if not options.ignore_changes_and_additions:
                patch[key] = modified_value
            continue
        if isinstance(original_value, dict):
            _diff_map_field(key, original_value, modified_value, patch, schema, options)
        elif isinstance(original_value, list):
            _diff_list_field(key, original_value, modified_value, patch, schema, options)
        elif not options.ignore_changes_and_additions and not json_equal(original_value, modified_value):
            patch[key] = modified_value

    if not options.ignore_deletions:
        for key in original:
            if key not in modified:
                patch[key] = None
    # $retainKeys only when something changes or the original has fields to clear.
    if retain_keys and (patch or any(value is not None and key not in modified for key, value in original.items())):
        patch[RETAIN_KEYS] = _sort_scalars(retain_keys)
    return patch


def _diff_map_field(key: str, original: dict, modified: dict, patch: dict, schema: _Schema,
                    options: _DiffOptions) -> None:
    meta = schema.field(key)
    if meta.strategy == REPLACE:
        if not options.ignore_changes_and_additions:
            patch[key] = modified
        return
    value = _diff_maps(original, modified, meta.schema, replace(options, build_retain_keys_directive=meta.retain_keys))
    if value:
        patch[key] = value


def _diff_list_field(key: str, original: list, modified: list, patch: dict, schema: _Schema,
                     options: _DiffOptions) -> None:
    meta = schema.field(key)
    if meta.strategy != MERGE:
        if not options.ignore_changes_and_additions and not json_equal(original, modified):
            patch[key] = modified
        return
    options = replace(options, build_retain_keys_directive=meta.retain_keys)
    additions, deletions, order = _diff_lists(original, modified, meta.schema, meta.merge_key, options)
    if additions:
        patch[key] = additions
    if deletions:
        patch[f"{DELETE_FROM_PRIMITIVE_LIST}/{key}"] = deletions
    if order:
        patch[f"{SET_ELEMENT_ORDER}/{key}"] = order


def _diff_lists(original: list, modified: list, item_schema: _Schema, merge_key: str,
                options: _DiffOptions) -> tuple[list, list, list]:
    """(patch list, primitive deletion list, $setElementOrder list) for a merging list."""
    if not original:
        if not modified or options.ignore_changes_and_additions:
            return [], [], []
        return modified, [], []
    kind = _slice_element_kind(original, modified)
    if kind == "map":
        patch_list, deletions = _diff_lists_of_maps(original, modified, item_schema, merge_key, options)
        patch_list = _normalize_slice_order(patch_list, modified, merge_key, kind)
        order_same = len(original) == len(modified) and all(
            _merge_key_value_equal(before, after, merge_key) for before, after in zip(original, modified))
        patch_list = patch_list + deletions  # deletions go last
        order = []
        if options.set_element_order and (
                (not options.ignore_changes_and_additions and (patch_list or not order_same))
                or (not options.ignore_deletions and patch_list)):
            order = [{merge_key: element[merge_key]} for element in modified]
        return patch_list, [], order
    additions, deletions = _diff_lists_of_scalars(original, modified, options)
    additions = _normalize_slice_order(additions, modified, merge_key, kind)
    order = []
    if options.set_element_order and (
            (not options.ignore_deletions and deletions)
            or (not options.ignore_changes_and_additions and not json_equal(original, modified))):
        order = modified
    return additions, deletions, order


def _diff_lists_of_scalars(original: list, modified: list, options: _DiffOptions) -> tuple[list, list]:
    # A merge walk over both lists sorted by their %v text, as upstream compares them.
    before = _sort_scalars(original)
    after = _sort_scalars(modified)
    additions, deletions = [], []
    i = j = 0
    while i < len(before) or j < len(after):
        before_text = go_format(before[i]) if i < len(before) else None
        after_text = go_format(after[j]) if j < len(after) else None
        if before_text is not None and after_text is not None and before_text == after_text:
            i += 1
            j += 1
        elif before_text is None or (after_text is not None and before_text > after_text):
            if not options.ignore_changes_and_additions:
                additions.append(after[j])
            j += 1
        else:
            if not options.ignore_deletions:
                deletions.append(before[i])
            i += 1
    return additions, _deduplicate_scalars(deletions)


def _diff_lists_of_maps(original: list, modified: list, item_schema: _Schema, merge_key: str,
                        options: _DiffOptions) -> tuple[list, list]:
    before = _sorted_by_merge_key(original, merge_key)
    after = _sorted_by_merge_key(modified, merge_key)
    patch_list, deletions = [], []
    i = j = 0
    while i < len(before) or j < len(after):
        before_text = go_format(before[i][merge_key]) if i < len(before) else None
        after_text = go_format(after[j][merge_key]) if j < len(after) else None
        if before_text is not None and after_text is not None and before_text == after_text:
            value = _diff_maps(before[i], after[j], item_schema, options)
            if value:
                value[merge_key] = after[j][merge_key]
                patch_list.append(value)
            i += 1
            j += 1
        elif before_text is None or (after_text is not None and before_text > after_text):
            if not options.ignore_changes_and_additions:
                patch_list.append(after[j])
            j += 1
        else:
            if not options.ignore_deletions:
                deletions.append({merge_key: before[i][merge_key], DIRECTIVE: DELETE})
            i += 1
    return patch_list, deletions


def _sorted_by_merge_key(elements: list, merge_key: str) -> list:
    for element in elements:
        if not isinstance(element, dict):
            raise _bad_arg_type(_GO_MAP, element)
        if merge_key not in element:
            raise _no_merge_key(element, merge_key)
    return sorted(elements, key=lambda element: go_format(element[merge_key]))
