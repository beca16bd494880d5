"""Field sets in the FieldsV1 form of `metadata.managedFields`, and typed walks over objects.

Pure library (no I/O). Semantics follow sigs.k8s.io/structured-merge-diff (`fieldpath`,
`typed`, `schema`): a set is a tree of path elements, and every set in this module is held
directly in its wire form, so decoding and encoding managedFields costs nothing:

    {"f:spec": {"f:replicas": {}},
     "f:containers": {"k:{\"name\":\"web\"}": {".": {}, "f:image": {}}}}

- `f:<name>` a field, `k:<json>` a list-map item by its keys, `v:<json>` a set item,
  `i:<n>` a list index;
- a node `{}` is a member with no children; `"."` in a node with children says the node
  itself is a member too; a node without `"."` is only a prefix of members.

A "level" is the dict of path elements under one node (the whole set is the root level).
Sets are never mutated: operations return new dicts that may share unchanged subtrees.
Results of `union` are in upstream's serialisation order ("." first, then fields, keys,
values, indices, each sorted) when their inputs are.

Types come from upstream's OpenAPI schemas (`pyk8s.api.schemas`), as kube-openapi's
schemaconv turns them into structured-merge-diff schemas: `x-kubernetes-list-type`
(atomic | set | map with `x-kubernetes-list-map-keys`), falling back to the patch strategy
(merge + merge key → map, merge → set, else atomic); `x-kubernetes-map-type: atomic`; maps
and structs are granular otherwise. Unknown fields and kinds without a schema are
"deduced": maps are granular, lists atomic.
"""

from __future__ import annotations

import functools
import json
from typing import Any, Iterator

import orjson

from pyk8s.api import schemas
from pyk8s.api.resources import Resource

__all__ = [
    "Type", "type_for", "UNTYPED",
    "union", "difference", "intersection", "recursive_difference", "canonical", "is_empty",
    "member_paths", "path_string", "from_paths",
    "to_field_set", "compare", "merge", "remove_items", "ensure_named_fields_are_members",
    "SchemaError",
]

SELF = "."
_LEAF: dict = {}

SCALAR, MAP, LIST, DEDUCED = "scalar", "map", "list", "deduced"
ATOMIC, SET, ASSOCIATIVE = "atomic", "set", "map"

# Key fields upstream's schemas default (`+default="TCP"` on ports): an item that omits
# one is keyed with the default, as structured-merge-diff does.
_KEY_DEFAULTS = {"protocol": "TCP"}


class SchemaError(ValueError):
    """An object that does not fit its schema's list semantics (e.g. a list-map item
    without its keys, duplicate keys in an applied configuration)."""


# --------------------------------------------------------------------------------------
# Types
# --------------------------------------------------------------------------------------

class Type:
    """One structured-merge-diff type: scalar, map (struct or map, granular or atomic),
    list (atomic, set or associative by keys) or deduced (untyped)."""

    __slots__ = ("kind", "atomic", "relation", "keys", "_properties", "_fields", "_element_node", "_element")

    def __init__(self, kind: str, *, atomic: bool = False, relation: str = ATOMIC, keys: tuple[str, ...] = (),
                 properties: dict | None = None, element_node: Any = None):
        self.kind = kind
        self.atomic = atomic
        self.relation = relation
        self.keys = keys
        self._properties = properties or {}
        self._fields: dict[str, Type] = {}
        self._element_node = element_node
        self._element: Type | None = None

    def field(self, name: str) -> "Type":
        """The type of a struct field or map value; DEDUCED for unknown fields."""
        found = self._fields.get(name)
        if found is None:
            node = self._properties.get(name)
            if node is not None:
                found = _compile(node)
            else:
                found = self.element
            self._fields[name] = found
        return found

    def declares(self, name: str) -> bool:
        return name in self._properties

    @property
    def element(self) -> "Type":
        if self._element is None:
            self._element = _compile(self._element_node) if isinstance(self._element_node, dict) else UNTYPED
        return self._element


UNTYPED = Type(DEDUCED)
_SCALAR_TYPE = Type(SCALAR)
_NAMED: dict[str, Type] = {}


def _compile(node: dict[str, Any]) -> Type:
    name = schemas.ref_name(node)
    if name is not None and len(node) == 1 or (name is not None and set(node) <= {"allOf", "description", "default"}):
        found = _NAMED.get(name)
        if found is None:
            found = _NAMED[name] = _compile_resolved(schemas.schema(name))
        return found
    return _compile_resolved(schemas.resolve(node))


def _compile_resolved(node: dict[str, Any]) -> Type:
    if node.get("x-kubernetes-int-or-string"):
        return _SCALAR_TYPE
    kind = node.get("type")
    if kind == "array" or "items" in node:
        list_type = node.get("x-kubernetes-list-type")
        keys: tuple[str, ...] = ()
        if list_type in (ATOMIC, SET):
            relation = list_type
        elif list_type == "map":
            relation, keys = ASSOCIATIVE, tuple(node.get("x-kubernetes-list-map-keys") or ())
        else:
            strategy = node.get("x-kubernetes-patch-strategy") or ""
            merge_key = node.get("x-kubernetes-patch-merge-key")
            if "merge" in strategy.split(","):
                relation, keys = (ASSOCIATIVE, (merge_key,)) if merge_key else (SET, ())
            else:
                relation = ATOMIC
        return Type(LIST, relation=relation, keys=keys, element_node=node.get("items"))
    if kind == "object" or "properties" in node or "additionalProperties" in node:
        extra = node.get("additionalProperties")
        element_node = extra if isinstance(extra, dict) else None
        return Type(MAP, atomic=node.get("x-kubernetes-map-type") == ATOMIC,
                    properties=node.get("properties"), element_node=element_node)
    if kind in ("string", "integer", "number", "boolean"):
        return _SCALAR_TYPE
    return UNTYPED


@functools.cache
def type_for(resource: Resource) -> Type:
    """The root type of a served kind (DEDUCED when upstream has no schema for it)."""
    name = schemas.schema_name(resource.group, resource.version, resource.kind)
    if name is None:
        return UNTYPED
    return _compile({"$ref": f"#/components/schemas/{name}"})


# --------------------------------------------------------------------------------------
# Path elements
# --------------------------------------------------------------------------------------

def _json(value: Any) -> str:
    return orjson.dumps(value, option=orjson.OPT_SORT_KEYS).decode()


def _item_element(list_type: Type, item: Any, index: int) -> str:
    if list_type.relation == SET:
        return "v:" + _json(item)
    if list_type.relation == ASSOCIATIVE:
        if not isinstance(item, dict):
            raise SchemaError(f"associative list with keys has an element that is not a map: {_json(item)}")
        key_fields = {}
        for key in list_type.keys:
            if key in item and item[key] is not None:
                key_fields[key] = item[key]
            elif key in _KEY_DEFAULTS:
                key_fields[key] = _KEY_DEFAULTS[key]
        if not key_fields:
            raise SchemaError(f"associative list with keys has an element that omits all key fields {list(list_type.keys)!r}")
        return "k:" + _json(key_fields)
    return f"i:{index}"


def _value_rank(value: Any) -> tuple:
    # structured-merge-diff's total order of values: numbers, strings, booleans, lists, maps, null.
    if isinstance(value, bool):
        return (2, value)
    if isinstance(value, (int, float)):
        return (0, value)
    if isinstance(value, str):
        return (1, value)
    if isinstance(value, list):
        return (3, tuple(_value_rank(v) for v in value))
    if isinstance(value, dict):
        return (4, tuple((k, _value_rank(v)) for k, v in sorted(value.items())))
    return (5,)


@functools.lru_cache(maxsize=4096)
def _element_rank(element: str) -> tuple:
    prefix = element[:2]
    if element == SELF:
        return (-1,)
    if prefix == "f:":
        return (0, element[2:])
    if prefix == "k:":
        fields = json.loads(element[2:])
        return (1, tuple((name, _value_rank(fields[name])) for name in sorted(fields)))
    if prefix == "v:":
        return (2, _value_rank(json.loads(element[2:])))
    if prefix == "i:":
        return (3, int(element[2:]))
    return (4, element)


def _sorted_level(level: dict) -> dict:
    return {key: level[key] for key in sorted(level, key=_element_rank)}


# --------------------------------------------------------------------------------------
# Set operations (on levels in wire form)
# --------------------------------------------------------------------------------------

def _is_member(node: dict) -> bool:
    return not node or SELF in node


def _normalised(level: dict) -> dict | None:
    """A node from the level of its children: None when it holds nothing."""
    if not level:
        return None
    if len(level) == 1 and SELF in level:
        return _LEAF
    return level


def is_empty(level: dict) -> bool:
    return not level


def canonical(level: dict) -> dict:
    """The set in upstream's serialisation order."""
    return _sorted_level({key: (canonical(node) if node else node) for key, node in level.items()})


def union(left: dict, right: dict) -> dict:
    if not right:
        return left
    if not left:
        return right
    out = {}
    added = False
    for key, node in left.items():
        other = right.get(key)
        out[key] = node if other is None else _union_node(node, other)
    for key, node in right.items():
        if key not in left:
            out[key] = node
            added = True
    return _sorted_level(out) if added else out


def _union_node(node: dict, other: dict) -> dict:
    if not node:
        return other if (not other or SELF in other) else {SELF: _LEAF, **other}
    if not other:
        return node if SELF in node else {SELF: _LEAF, **node}
    return union(node, other)


def difference(left: dict, right: dict) -> dict:
    """Paths of `left` that are not paths of `right` (prefixes of removed members stay when
    they still hold other members)."""
    if not right or not left:
        return left
    out = {}
    changed = False
    for key, node in left.items():
        other = right.get(key)
        if other is None:
            out[key] = node
            continue
        changed = True
        if key == SELF:
            continue
        remaining = _difference_node(node, other)
        if remaining is not None:
            out[key] = remaining
    return out if changed else left


def _difference_node(node: dict, other: dict) -> dict | None:
    if not node:
        return None if _is_member(other) else _LEAF
    if not other:
        return _normalised({key: value for key, value in node.items() if key != SELF})
    return _normalised(difference(node, other))


def intersection(left: dict, right: dict) -> dict:
    if not left or not right:
        return {}
    out = {}
    for key, node in left.items():
        other = right.get(key)
        if other is None:
            continue
        if key == SELF:
            out[SELF] = _LEAF
            continue
        common = _intersection_node(node, other)
        if common is not None:
            out[key] = common
    return out


def _intersection_node(node: dict, other: dict) -> dict | None:
    if not node:
        return _LEAF if _is_member(other) else None
    if not other:
        return _LEAF if SELF in node else None
    return _normalised(intersection(node, other))


def recursive_difference(left: dict, right: dict) -> dict:
    """`left` without the paths of `right` and without everything under a member of `right`."""
    if not right or not left:
        return left
    out = {}
    for key, node in left.items():
        other = right.get(key)
        if other is None:
            out[key] = node
        elif key == SELF or _is_member(other):
            continue
        elif node:
            remaining = _normalised(recursive_difference(node, other))
            if remaining is not None:
                out[key] = remaining
        else:
            out[key] = node
    return out


def member_paths(level: dict, prefix: tuple[str, ...] = ()) -> Iterator[tuple[str, ...]]:
    """Every member path, in structured-merge-diff's iteration order (a level's members
    first, then its children's members)."""
    ordered = sorted((key for key in level if key != SELF), key=_element_rank)
    for key in ordered:
        if _is_member(level[key]):
            yield prefix + (key,)
    for key in ordered:
        node = level[key]
        if node:
            yield from member_paths(node, prefix + (key,))


def from_paths(*paths: tuple[str, ...]) -> dict:
    """A set holding the given member paths (each a tuple of path elements)."""
    result: dict = {}
    for path in paths:
        tree: dict = _LEAF
        for element in reversed(path):
            tree = {element: tree}
        result = union(result, tree)
    return canonical(result)


def _go_value(value: Any) -> str:
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    return _json(value)


def path_string(path: tuple[str, ...]) -> str:
    """A path as structured-merge-diff prints it: `.spec.containers[name="web"].image`."""
    parts = []
    for element in path:
        prefix, rest = element[:2], element[2:]
        if prefix == "f:":
            parts.append("." + rest)
        elif prefix == "k:":
            fields = json.loads(rest)
            parts.append("[" + ",".join(f"{name}={_go_value(fields[name])}" for name in fields) + "]")
        elif prefix == "v:":
            parts.append(f"[={_go_value(json.loads(rest))}]")
        elif prefix == "i:":
            parts.append(f"[{rest}]")
    return "".join(parts)


# --------------------------------------------------------------------------------------
# Typed walks
# --------------------------------------------------------------------------------------

def _granular_map(value_type: Type, value: Any) -> bool:
    return isinstance(value, dict) and (value_type.kind == DEDUCED or (value_type.kind == MAP and not value_type.atomic))


def _granular_list(value_type: Type, value: Any) -> bool:
    return isinstance(value, list) and value_type.kind == LIST and value_type.relation != ATOMIC


def to_field_set(value_type: Type, value: Any, *, named_fields_are_members: bool = False) -> dict:
    """The set of fields `value` sets (structured-merge-diff `ToFieldSet`): leaves, atomic
    values, list items and map entries are members; declared struct fields are members
    only when null or empty (or always, with `named_fields_are_members`)."""
    if _granular_map(value_type, value):
        level = {}
        for key, child in value.items():
            child_type = value_type.field(key) if value_type.kind == MAP else UNTYPED
            member = child is None or (isinstance(child, dict) and not child) or named_fields_are_members \
                or not (value_type.kind == MAP and value_type.declares(key))
            level["f:" + key] = _node(child_type, child, member, named_fields_are_members)
        return level
    if _granular_list(value_type, value):
        level = {}
        element_type = value_type.element
        for index, item in enumerate(value):
            element = _item_element(value_type, item, index)
            level[element] = _node(element_type, item, True, named_fields_are_members)
        return level
    return {}


def _node(value_type: Type, value: Any, member: bool, named: bool) -> dict:
    children = to_field_set(value_type, value, named_fields_are_members=named)
    if not children:
        return _LEAF
    if member:
        return {SELF: _LEAF, **children}
    return children


def _all_members(value_type: Type, value: Any) -> dict:
    """The node of a value added or removed as a whole: it and everything in it."""
    children = _all_member_children(value_type, value)
    return {SELF: _LEAF, **children} if children else _LEAF


def _all_member_children(value_type: Type, value: Any) -> dict:
    if _granular_map(value_type, value):
        return {"f:" + key: _all_members(value_type.field(key) if value_type.kind == MAP else UNTYPED, child)
                for key, child in value.items()}
    if _granular_list(value_type, value):
        element_type = value_type.element
        return {_item_element(value_type, item, index): _all_members(element_type, item)
                for index, item in enumerate(value)}
    return {}


class Comparison:
    """Fields added, modified and removed between two objects (`typed.Comparison`)."""

    __slots__ = ("added", "modified", "removed")

    def __init__(self, added: dict, modified: dict, removed: dict):
        self.added = added
        self.modified = modified
        self.removed = removed

    def is_same(self) -> bool:
        return not (self.added or self.modified or self.removed)

    def changed(self) -> dict:
        """Modified ∪ added."""
        return union(self.modified, self.added)


def compare(value_type: Type, old: Any, new: Any) -> Comparison:
    added: dict = {}
    modified: dict = {}
    removed: dict = {}
    if old != new:
        _compare_children(value_type, old, new, added, modified, removed)
    return Comparison(added, modified, removed)


def _compare_children(value_type: Type, old: Any, new: Any, added: dict, modified: dict, removed: dict) -> bool:
    """Fills the three levels with the differences under one node; False when the node is
    a leaf for comparison (scalar, atomic, or a change of shape)."""
    # A null granular map or list compares as an empty one (structured-merge-diff derefs
    # nil to empty before visiting items).
    if old is None and isinstance(new, (dict, list)):
        old = type(new)()
    elif new is None and isinstance(old, (dict, list)):
        new = type(old)()
    if _granular_map(value_type, old) and _granular_map(value_type, new) and (old or new):
        typed = value_type.kind == MAP
        for key, old_child in old.items():
            element = "f:" + key
            child_type = value_type.field(key) if typed else UNTYPED
            if key not in new:
                removed[element] = _all_members(child_type, old_child)
                continue
            new_child = new[key]
            if old_child != new_child:
                _compare_child(child_type, element, old_child, new_child, added, modified, removed)
        for key, new_child in new.items():
            if key not in old:
                added["f:" + key] = _all_members(value_type.field(key) if typed else UNTYPED, new_child)
        return True
    if _granular_list(value_type, old) and _granular_list(value_type, new):
        element_type = value_type.element
        old_items = {_item_element(value_type, item, index): item for index, item in enumerate(old)}
        new_items = {_item_element(value_type, item, index): item for index, item in enumerate(new)}
        for element, old_item in old_items.items():
            if element not in new_items:
                removed[element] = _all_members(element_type, old_item)
                continue
            new_item = new_items[element]
            if old_item != new_item:
                _compare_child(element_type, element, old_item, new_item, added, modified, removed)
        for element, new_item in new_items.items():
            if element not in old_items:
                added[element] = _all_members(element_type, new_item)
        return True
    return False


def _compare_child(child_type: Type, element: str, old: Any, new: Any, added: dict, modified: dict, removed: dict) -> None:
    child_added: dict = {}
    child_modified: dict = {}
    child_removed: dict = {}
    if _compare_children(child_type, old, new, child_added, child_modified, child_removed):
        if child_added:
            added[element] = child_added
        if child_modified:
            modified[element] = child_modified
        if child_removed:
            removed[element] = child_removed
    else:
        modified[element] = _LEAF


def merge(value_type: Type, live: Any, config: Any) -> Any:
    """`live` with `config` merged in (structured-merge-diff `Merge`): granular maps merge
    key by key, granular lists item by item (keeping live-only items in place), everything
    else is replaced. A null in `config` removes the field. Inputs are not modified."""
    if _granular_map(value_type, live) and _granular_map(value_type, config):
        out = dict(live)
        typed = value_type.kind == MAP
        for key, child in config.items():
            if child is None:
                out.pop(key, None)
            elif key in live:
                out[key] = merge(value_type.field(key) if typed else UNTYPED, live[key], child)
            else:
                out[key] = child
        return out
    if _granular_list(value_type, live) and _granular_list(value_type, config):
        return _merge_list(value_type, live, config)
    return config


def _merge_list(list_type: Type, live: list, config: list) -> list:
    # Order as structured-merge-diff's list merge: shared items follow the configuration's
    # order, items only in the live list keep their place among them.
    element_type = list_type.element
    live_elements = [_item_element(list_type, item, index) for index, item in enumerate(live)]
    config_elements = [_item_element(list_type, item, index) for index, item in enumerate(config)]
    live_items: dict[str, Any] = {}
    for element, item in zip(live_elements, live):
        live_items.setdefault(element, item)
    config_items: dict[str, Any] = {}
    for element, item in zip(config_elements, config):
        if element in config_items:
            raise SchemaError(f"duplicate entries for key {path_string((element,))}")
        config_items[element] = item
    shared = [element for element in config_elements if element in live_items]
    shared_at = 0
    merged_from_config: set[str] = set()
    out: list = []

    def merged_item(element: str) -> Any:
        if element in live_items:
            return merge(element_type, live_items[element], config_items[element])
        return config_items[element]

    live_at = config_at = 0
    while live_at < len(live_elements) or config_at < len(config_elements):
        next_shared = shared[shared_at] if shared_at < len(shared) else None
        if live_at < len(live_elements) and config_at < len(config_elements):
            element = live_elements[live_at]
            if element == config_elements[config_at]:
                merged_from_config.add(element)
                out.append(merged_item(element))
                live_at += 1
                config_at += 1
                if next_shared == element:
                    shared_at += 1
                continue
            if element in config_items and next_shared is not None and next_shared != element:
                live_at += 1
                continue
        if live_at < len(live_elements):
            element = live_elements[live_at]
            if element not in config_items:
                out.append(live[live_at])
                live_at += 1
                continue
            if element in merged_from_config:
                live_at += 1
                continue
        if config_at < len(config_elements):
            element = config_elements[config_at]
            merged_from_config.add(element)
            out.append(merged_item(element))
            config_at += 1
            if next_shared == element:
                shared_at += 1
    return out


def remove_items(value_type: Type, value: Any, to_remove: dict) -> Any:
    """`value` without the members of `to_remove` (each removed with everything in it)."""
    if not to_remove:
        return value
    if _granular_map(value_type, value):
        typed = value_type.kind == MAP
        out = {}
        for key, child in value.items():
            node = to_remove.get("f:" + key)
            if node is None:
                out[key] = child
            elif not _is_member(node):
                out[key] = remove_items(value_type.field(key) if typed else UNTYPED, child, node)
        return out
    if _granular_list(value_type, value):
        element_type = value_type.element
        out_list = []
        for index, item in enumerate(value):
            node = to_remove.get(_item_element(value_type, item, index))
            if node is None:
                out_list.append(item)
            elif not _is_member(node):
                out_list.append(remove_items(element_type, item, node))
        return out_list
    return value


def ensure_named_fields_are_members(value_type: Type, level: dict) -> dict:
    """The set with every declared struct field that has members under it made a member
    too (structured-merge-diff `EnsureNamedFieldsAreMembers`)."""
    out = {}
    for key, node in level.items():
        if key == SELF or not node:
            out[key] = node
            continue
        if key.startswith("f:"):
            name = key[2:]
            child_type = value_type.field(name) if value_type.kind == MAP else UNTYPED
            children = ensure_named_fields_are_members(child_type, node)
            if value_type.kind == MAP and value_type.declares(name) and SELF not in children:
                children = {SELF: _LEAF, **children}
            out[key] = children
        else:
            element_type = value_type.element if value_type.kind == LIST else UNTYPED
            out[key] = ensure_named_fields_are_members(element_type, node)
    return out
