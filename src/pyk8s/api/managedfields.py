"""`metadata.managedFields` and server-side apply, with upstream's semantics.

Pure library (no I/O). Follows k8s.io/apimachinery `pkg/util/managedfields` (the field
manager chain the apiserver installs) over structured-merge-diff's `merge.Updater`, with
the sets of `pyk8s.api.fieldpath`:

- `update(resource, old, new, manager)` runs on every create/update/patch that is not an
  apply: the fields the write added or changed become the request manager's (an entry with
  `operation: Update`, keyed by manager, apiVersion and subresource), other managers lose
  them, removed fields leave every manager. `new` may carry managedFields of its own: they
  replace the live ones (that is how clients migrate or reset them; `[]` resets).
- `apply(resource, live, applied, manager, force)` is a server-side apply: the applied
  configuration is merged into the live object, the manager's `Apply` entry becomes exactly
  the applied fields, fields it applied before and omits now are removed unless another
  manager owns them, and changing a value someone else manages is a conflict (409, one
  cause per field) unless `force`. For the manager `kubectl`, conflicts with fields a
  client-side apply set to the same values are allowed (upgrade from client-side apply)
  and a last-applied-configuration annotation is kept in sync.

Status is a reset field of the main resource (and everything but status of the status
subresource), as upstream's strategies declare: writes never record ownership there.

Cost: an update compares old and new with `==` short-cuts per subtree, decodes nothing
(sets stay in their wire form) and touches managers only when fields changed.
"""

from __future__ import annotations

import collections

import json
import time
import unicodedata
from typing import Any

import orjson

from pyk8s.api import errors, fieldpath
from pyk8s.api.patch import deep_copy_json
from pyk8s.api.resources import Resource

__all__ = ["update", "apply", "manager_name", "validate_patch_options", "conflict_error",
           "LAST_APPLIED_ANNOTATION", "MAX_UPDATE_MANAGERS"]

LAST_APPLIED_ANNOTATION = "kubectl.kubernetes.io/last-applied-configuration"
MAX_UPDATE_MANAGERS = 10
ANCIENT_CHANGES_MANAGER = "ancient-changes"
FIELD_MANAGER_MAX_LENGTH = 128
APPLY, UPDATE = "Apply", "Update"

# Fields no manager ever owns (managedfields stripMetaManager).
_STRIPPED = fieldpath.from_paths(
    ("f:apiVersion",), ("f:kind",), ("f:metadata",),
    *(("f:metadata", "f:" + name) for name in ("name", "namespace", "creationTimestamp", "selfLink", "uid",
                                                 "clusterName", "generation", "managedFields", "resourceVersion")))
# Metadata the comparison skips outright: it changes on every write and is stripped anyway.
_VOLATILE_METADATA = ("managedFields", "resourceVersion", "generation", "creationTimestamp", "uid", "selfLink")
_STATUS = fieldpath.from_paths(("f:status",))

# Struct fields Go always has (non-pointer structs), so upstream's create compares against
# an object that already holds them and does not list them as members of the new set.
_ZERO_VALUE_STRUCTS: dict[str, Any] = {
    "metadata": {}, "status": {},
    "spec": {"containers": None, "template": {"metadata": {}, "spec": {"containers": None}}, "strategy": {},
             "updateStrategy": {},
             "jobTemplate": {"metadata": {}, "spec": {"template": {"metadata": {}, "spec": {"containers": None}}}}},
}


def now_rfc3339() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


# --------------------------------------------------------------------------------------
# Manager names and request options
# --------------------------------------------------------------------------------------

def manager_name(field_manager: str | None, user_agent: str | None) -> str:
    """The request's field manager: `?fieldManager=`, else the User-Agent up to its first
    `/` with unprintable characters dropped (`kubectl/v1.36.4 (linux/amd64) ...` → `kubectl`)."""
    if field_manager:
        return field_manager
    prefix = (user_agent or "").split("/", 1)[0]
    kept = []
    size = 0
    for char in prefix:
        if not char.isprintable() and char != " ":
            continue
        size += len(char.encode())
        if size > FIELD_MANAGER_MAX_LENGTH:
            break
        kept.append(char)
    return "".join(kept)


def validate_patch_options(*, apply: bool, field_manager: str | None, force: str | None) -> None:
    """PatchOptions validation (422 on kind PatchOptions.meta.k8s.io) as upstream does it
    before reading a patch."""
    causes = []
    if apply:
        if not field_manager:
            causes.append(errors.required("fieldManager", "is required for apply patch"))
    elif force is not None:
        causes.append(errors.forbidden("force", "may not be specified for non-apply patch"))
    if field_manager:
        causes.extend(_field_manager_errors(field_manager))
    if causes:
        raise errors.Invalid("PatchOptions", "", causes, group="meta.k8s.io")


def _field_manager_errors(field_manager: str) -> list[dict[str, str]]:
    if len(field_manager.encode()) > FIELD_MANAGER_MAX_LENGTH:
        return [errors.too_long("fieldManager", field_manager, FIELD_MANAGER_MAX_LENGTH)]
    if any(not char.isprintable() and unicodedata.category(char) != "Zs" for char in field_manager):
        return [errors.invalid("fieldManager", field_manager, "must only contain printable characters")]
    return []


# --------------------------------------------------------------------------------------
# Entries
# --------------------------------------------------------------------------------------

class _Entry:
    """One managedFields entry: identity (manager, operation, apiVersion for updates,
    subresource), its field set (wire form) and time."""

    __slots__ = ("manager", "operation", "api_version", "subresource", "fields", "time")

    def __init__(self, manager: str, operation: str, api_version: str, subresource: str, fields: dict,
                 time_: str | None):
        self.manager = manager
        self.operation = operation
        self.api_version = api_version
        self.subresource = subresource
        self.fields = fields
        self.time = time_

    @property
    def identity(self) -> tuple[str, str, str, str]:
        # Appliers keep one entry whatever version they applied with (BuildManagerIdentifier).
        return (self.manager, self.operation, "" if self.operation == APPLY else self.api_version, self.subresource)

    def with_fields(self, fields: dict) -> "_Entry":
        return _Entry(self.manager, self.operation, self.api_version, self.subresource, fields, self.time)

    def encoded(self) -> dict[str, Any]:
        entry: dict[str, Any] = {"manager": self.manager, "operation": self.operation, "apiVersion": self.api_version}
        if self.time:
            entry["time"] = self.time
        entry["fieldsType"] = "FieldsV1"
        entry["fieldsV1"] = self.fields
        if self.subresource:
            entry["subresource"] = self.subresource
        return entry

    def described(self) -> str:
        """How conflict messages name the manager (printManager)."""
        text = json.dumps(self.manager)
        if self.subresource:
            text += f" with subresource {json.dumps(self.subresource)}"
        if self.operation == UPDATE:
            text += f" using {self.api_version}"
        return text


class _InvalidManagedFields(ValueError):
    pass


def _decode(entries: Any) -> dict[tuple, _Entry]:
    if not isinstance(entries, list):
        raise _InvalidManagedFields("managedFields must be a list")
    decoded: dict[tuple, _Entry] = {}
    for index, raw in enumerate(entries):
        if not isinstance(raw, dict):
            raise _InvalidManagedFields(f"managed fields entry {index} is not an object")
        operation = raw.get("operation")
        if operation not in (APPLY, UPDATE):
            raise _InvalidManagedFields("operation must be `Apply` or `Update`")
        if not raw.get("apiVersion"):
            raise _InvalidManagedFields("apiVersion must not be empty")
        if raw.get("fieldsType") != "FieldsV1":
            raise _InvalidManagedFields(f"invalid fieldsType in managed fields entry {index}")
        fields = raw.get("fieldsV1") or {}
        if not isinstance(fields, dict):
            raise _InvalidManagedFields(f"invalid fieldsV1 in managed fields entry {index}")
        entry = _Entry(str(raw.get("manager") or ""), operation, raw["apiVersion"], str(raw.get("subresource") or ""),
                       fields, raw.get("time"))
        decoded[entry.identity] = entry
    return decoded


def _decode_or_empty(entries: Any) -> dict[tuple, _Entry]:
    if not entries:
        return {}
    try:
        return _decode(entries)
    except _InvalidManagedFields:
        return {}


def _encode(managers: dict[tuple, _Entry]) -> list[dict[str, Any]] | None:
    if not managers:
        return None
    ordered = sorted(managers.values(), key=lambda e: (e.operation, e.time or "", e.manager, e.api_version, e.subresource))
    return [entry.encoded() for entry in ordered]


def _set_managed_fields(obj: dict[str, Any], managers: dict[tuple, _Entry]) -> None:
    meta = obj.setdefault("metadata", {})
    encoded = _encode(managers)
    if encoded is None:
        meta.pop("managedFields", None)
    else:
        meta["managedFields"] = encoded


# --------------------------------------------------------------------------------------
# Comparison helpers
# --------------------------------------------------------------------------------------

def _comparable(obj: dict[str, Any] | None) -> dict[str, Any]:
    """A shallow view of the object without the metadata that changes on every write."""
    if not obj:
        return {}
    meta = obj.get("metadata")
    if not isinstance(meta, dict):
        return obj
    view = dict(obj)
    view["metadata"] = {key: value for key, value in meta.items() if key not in _VOLATILE_METADATA}
    return view


# Field sets name fields, not values (but for list keys and set members): objects created
# from one template (a ReplicaSet's pods, a benchmark's) share their create comparison.
_CREATE_FIELDS: collections.OrderedDict[tuple, bytes] = collections.OrderedDict()
_CREATE_FIELDS_MAX = 256
_VALUE_FREE_METADATA = ("name", "generateName", "namespace")


def _create_key(resource: Resource, new: dict[str, Any]) -> tuple | None:
    view = _comparable(new)
    meta = view.get("metadata")
    if isinstance(meta, dict):
        # Values that never show in a field set are blanked in the cache key.
        meta = dict(meta)
        for key in _VALUE_FREE_METADATA:
            if key in meta:
                meta[key] = ""
        for key in ("labels", "annotations"):
            if isinstance(meta.get(key), dict):
                meta[key] = dict.fromkeys(meta[key], "")
        view = dict(view, metadata=meta)
    try:
        return (resource.group, resource.kind, orjson.dumps(view))
    except TypeError:
        return None


def _created_fields(resource: Resource, value_type: Any, new: dict[str, Any]) -> dict:
    """The field set a plain create gives its manager (what `update` computes for `old`
    None, no subresource and no managedFields in the request), cached by shape."""
    cache_key = _create_key(resource, new)
    cached = _CREATE_FIELDS.get(cache_key) if cache_key is not None else None
    if cached is not None:
        _CREATE_FIELDS.move_to_end(cache_key)
        return orjson.loads(cached)  # a fresh copy for the caller
    comparison = fieldpath.compare(value_type, _zero_baseline(new), _comparable(new))
    taken = fieldpath.difference(_filtered(resource, "", comparison).changed(), _STRIPPED)
    fields = fieldpath.canonical(taken) if not fieldpath.is_empty(taken) else {}
    if cache_key is not None:
        _CREATE_FIELDS[cache_key] = orjson.dumps(fields)
        if len(_CREATE_FIELDS) > _CREATE_FIELDS_MAX:
            _CREATE_FIELDS.popitem(last=False)
    return fields


def _zero_baseline(new: dict[str, Any], shape: dict[str, Any] = _ZERO_VALUE_STRUCTS) -> dict[str, Any]:
    baseline: dict[str, Any] = {}
    for key, inner in shape.items():
        if inner is None and key in new:
            baseline[key] = None  # a nil slice
        elif isinstance(new.get(key), dict):
            baseline[key] = _zero_baseline(new[key], inner)
    return baseline


def _owned_by_request(resource: Resource, subresource: str, changes: dict) -> dict:
    """The part of a change a write on this (sub)resource may own: reset fields dropped."""
    if subresource == "status":
        status = changes.get("f:status")
        return {"f:status": status} if status is not None else {}
    if subresource == "scale":
        replicas = (changes.get("f:spec") or {}).get("f:replicas")
        return {"f:spec": {"f:replicas": replicas}} if replicas is not None else {}
    if "status" in resource.subresources:
        return fieldpath.recursive_difference(changes, _STATUS)
    return changes


def _filtered(resource: Resource, subresource: str, comparison: fieldpath.Comparison) -> fieldpath.Comparison:
    return fieldpath.Comparison(_owned_by_request(resource, subresource, comparison.added),
                                _owned_by_request(resource, subresource, comparison.modified),
                                _owned_by_request(resource, subresource, comparison.removed))


def _drop_from_others(managers: dict[tuple, _Entry], skip: tuple, taken: dict, removed: dict) -> None:
    for identity in list(managers):
        if identity == skip:
            continue
        entry = managers[identity]
        fields = fieldpath.difference(fieldpath.difference(entry.fields, taken), removed)
        if fields is entry.fields:
            continue
        if fieldpath.is_empty(fields):
            del managers[identity]
        else:
            managers[identity] = entry.with_fields(fields)


def _cap_update_managers(managers: dict[tuple, _Entry], api_version: str) -> None:
    """At most MAX_UPDATE_MANAGERS update entries: the oldest merge into `ancient-changes`
    (capManagersManager)."""
    updates = [entry for entry in managers.values() if entry.operation == UPDATE]
    if len(updates) <= MAX_UPDATE_MANAGERS:
        return
    updates.sort(key=lambda e: e.time or "")
    for entry in updates[:len(updates) - MAX_UPDATE_MANAGERS]:
        del managers[entry.identity]
        ancient_identity = (ANCIENT_CHANGES_MANAGER, UPDATE, entry.api_version, "")
        ancient = managers.get(ancient_identity)
        fields = entry.fields if ancient is None else fieldpath.union(ancient.fields, entry.fields)
        managers[ancient_identity] = _Entry(ANCIENT_CHANGES_MANAGER, UPDATE, entry.api_version, "", fields,
                                            entry.time if ancient is None else ancient.time)


# --------------------------------------------------------------------------------------
# Update (every write that is not an apply)
# --------------------------------------------------------------------------------------

def update(resource: Resource, old: dict[str, Any] | None, new: dict[str, Any], manager: str, *,
           subresource: str = "", now: str | None = None) -> None:
    """Sets `new["metadata"]["managedFields"]` for a create (`old` None) or update by
    `manager`. Never fails: an object whose fields do not fit the schema keeps its
    managedFields as they were (upstream's UpdateNoErrors)."""
    meta = new.get("metadata")
    if not isinstance(meta, dict):
        return
    old_entries = old.get("metadata", {}).get("managedFields") if old else None
    requested = meta.get("managedFields")
    from_old = False
    if subresource and old is not None:
        # Subresource writes cannot set managedFields (decodeLiveOrNew).
        managers, from_old = _decode_or_empty(old_entries), True
    elif isinstance(requested, list) and (not requested or (len(requested) == 1 and requested[0] == {})):
        managers = {}  # an explicit reset
    else:
        try:
            managers = _decode(requested) if requested else {}
        except _InvalidManagedFields:
            managers = {}
        if not managers:
            # Clients that do not know managedFields must not drop them by omission.
            managers, from_old = _decode_or_empty(old_entries), True
    value_type = fieldpath.type_for(resource)
    if old is None and not subresource and not managers:
        try:
            fields = _created_fields(resource, value_type, new)
        except fieldpath.SchemaError:
            meta.pop("managedFields", None)
            return
        if fields:
            meta["managedFields"] = [_Entry(manager, UPDATE, resource.api_version, "", fields,
                                            now or now_rfc3339()).encoded()]
        else:
            meta.pop("managedFields", None)
        return
    try:
        if old is None:
            comparison = fieldpath.compare(value_type, _zero_baseline(new), _comparable(new))
        else:
            comparison = fieldpath.compare(value_type, _comparable(old), _comparable(new))
    except fieldpath.SchemaError:
        if old_entries is not None:
            meta["managedFields"] = old_entries
        else:
            meta.pop("managedFields", None)
        return
    comparison = _filtered(resource, subresource, comparison)
    if comparison.is_same():
        if from_old:
            if old_entries:
                meta["managedFields"] = old_entries
            else:
                meta.pop("managedFields", None)
        else:
            _set_managed_fields(new, managers)
        return
    changed = comparison.changed()
    identity = (manager, UPDATE, resource.api_version, subresource)
    _drop_from_others(managers, identity, changed, comparison.removed)
    taken = fieldpath.difference(changed, _STRIPPED)
    previous = managers.get(identity)
    if not fieldpath.is_empty(taken):
        base = fieldpath.difference(previous.fields, comparison.removed) if previous else {}
        fields = fieldpath.union(base, fieldpath.canonical(taken))
        managers[identity] = _Entry(manager, UPDATE, resource.api_version, subresource, fields, now or now_rfc3339())
        _cap_update_managers(managers, resource.api_version)
    elif previous is not None:
        fields = fieldpath.difference(previous.fields, comparison.removed)
        if fieldpath.is_empty(fields):
            del managers[identity]
        else:
            managers[identity] = previous.with_fields(fields)
    _set_managed_fields(new, managers)


# --------------------------------------------------------------------------------------
# Apply
# --------------------------------------------------------------------------------------

def conflict_error(conflicts: list[tuple[_Entry, tuple[str, ...]]]) -> errors.Conflict:
    """409 with one FieldManagerConflict cause per field, worded as upstream."""
    causes = [{"reason": "FieldManagerConflict", "message": f"conflict with {entry.described()}",
               "field": fieldpath.path_string(path)} for entry, path in conflicts]
    if len(conflicts) == 1:
        entry, path = conflicts[0]
        message = f"Apply failed with 1 conflict: conflict with {entry.described()}: {fieldpath.path_string(path)}"
    else:
        by_manager: dict[str, list[str]] = {}
        for entry, path in conflicts:
            by_manager.setdefault(entry.described(), []).append(fieldpath.path_string(path))
        lines = []
        for described in sorted(by_manager, key=lambda text: text):
            lines.append(f"conflicts with {described}:")
            lines.extend(f"- {path}" for path in by_manager[described])
        message = f"Apply failed with {len(conflicts)} conflicts: " + "\n".join(lines)
    error = errors.Conflict(message, details={"causes": causes})
    return error


def apply(resource: Resource, live: dict[str, Any] | None, applied: dict[str, Any], manager: str,
          force: bool = False, *, subresource: str = "", now: str | None = None) -> dict[str, Any]:
    """The object after `manager` applies `applied` to `live` (None: the object does not
    exist yet and is created from the configuration). Raises BadRequest for a
    configuration that cannot be applied and Conflict for fields other managers own."""
    if not isinstance(applied, dict):
        raise errors.BadRequest("the body of the request was in an unknown format - accepted media types include: application/json, application/yaml, application/vnd.kubernetes.protobuf")
    api_version = applied.get("apiVersion")
    if api_version != resource.api_version:
        raise errors.BadRequest(f"Incorrect version specified in apply patch. Specified patch version: {api_version or ''}, "
                                f"expected: {resource.api_version}")
    if applied.get("kind") != resource.kind:
        raise errors.BadRequest(f"the kind in the data ({applied.get('kind') or ''}) does not match the expected kind ({resource.kind})")
    applied_meta = applied.get("metadata")
    if applied_meta is not None and not isinstance(applied_meta, dict):
        raise errors.BadRequest("metadata must be an object")
    if (applied_meta or {}).get("managedFields") is not None:
        raise errors.BadRequest("metadata.managedFields must be nil")
    config = deep_copy_json(applied)
    value_type = fieldpath.type_for(resource)
    live_view = _comparable(live) if live is not None else {}
    managers = _decode_or_empty((live or {}).get("metadata", {}).get("managedFields"))
    try:
        result, managers, changed = _apply_to(resource, value_type, live_view, config, managers, manager, force,
                                              subresource, live)
    except fieldpath.SchemaError as exc:
        raise errors.BadRequest(f"failed to create typed patch object ({(config.get('metadata') or {}).get('namespace', '')}/"
                                f"{(config.get('metadata') or {}).get('name', '')}; {resource.api_version}, Kind={resource.kind}): {exc}")
    if changed:
        managers[(manager, APPLY, "", subresource)].time = now or now_rfc3339()
    if manager == "kubectl" and LAST_APPLIED_ANNOTATION in ((result.get("metadata") or {}).get("annotations") or {}):
        # lastAppliedUpdater: keep a client-side apply annotation in step with what kubectl applied.
        _sync_last_applied(result, applied)
    if live is not None:
        result.setdefault("metadata", {})
        for key in _VOLATILE_METADATA:
            if key in (live.get("metadata") or {}) and key != "managedFields" and key not in result["metadata"]:
                result["metadata"][key] = live["metadata"][key]
    _set_managed_fields(result, managers)
    return result


def _apply_to(resource: Resource, value_type: fieldpath.Type, live: dict[str, Any], config: dict[str, Any],
              managers: dict[tuple, _Entry], manager: str, force: bool, subresource: str,
              live_object: dict[str, Any] | None) -> tuple[dict[str, Any], dict[tuple, _Entry], bool]:
    identity = (manager, APPLY, "", subresource)
    merged = fieldpath.merge(value_type, live, config)
    applied_set = fieldpath.difference(
        _owned_by_request(resource, subresource, fieldpath.canonical(fieldpath.to_field_set(value_type, config))),
        _STRIPPED)
    previous = managers.get(identity)
    managers = dict(managers)
    managers[identity] = _Entry(manager, APPLY, resource.api_version, subresource, applied_set,
                                previous.time if previous else None)
    if previous is not None and not fieldpath.is_empty(previous.fields):
        merged = _prune(value_type, merged, managers, previous.fields)
    comparison = _filtered(resource, subresource, fieldpath.compare(value_type, live, merged))
    changed = comparison.changed()
    conflicts = _conflicts(managers, identity, changed)
    if conflicts and not force and manager == "kubectl" and live_object is not None:
        allowed = _allowed_by_last_applied(resource, value_type, live_object)
        if allowed is not None:
            conflicts = [(entry, path) for entry, path in conflicts if not _has_path(allowed, path)]
            force = not conflicts
    if conflicts and not force:
        raise conflict_error(conflicts)
    _drop_from_others(managers, identity, changed, comparison.removed)
    if fieldpath.is_empty(managers[identity].fields):
        del managers[identity]
    return merged, managers, merged != live and identity in managers


def _prune(value_type: fieldpath.Type, merged: dict[str, Any], managers: dict[tuple, _Entry],
           last_applied: dict) -> dict[str, Any]:
    """Removes what the applier set last time and no longer does, unless someone (the
    applier's new configuration included) still owns it (Updater.prune)."""
    owned: dict = {}
    for entry in managers.values():
        owned = fieldpath.union(owned, entry.fields)
    owned = fieldpath.ensure_named_fields_are_members(value_type, owned)
    last = fieldpath.ensure_named_fields_are_members(value_type, last_applied)
    present = fieldpath.to_field_set(value_type, merged, named_fields_are_members=True)
    removal = fieldpath.difference(fieldpath.intersection(present, last), owned)
    return fieldpath.remove_items(value_type, merged, removal)


def _conflicts(managers: dict[tuple, _Entry], identity: tuple, changed: dict) -> list[tuple[_Entry, tuple[str, ...]]]:
    found = []
    for other_identity in sorted((i for i in managers if i != identity), key=lambda i: i):
        entry = managers[other_identity]
        for path in fieldpath.member_paths(fieldpath.intersection(entry.fields, changed)):
            found.append((entry, path))
    return found


def _has_path(level: dict, path: tuple[str, ...]) -> bool:
    node = level
    for element in path:
        if element not in node:
            return False
        node = node[element]
    return not node or "." in node


def _allowed_by_last_applied(resource: Resource, value_type: fieldpath.Type, live: dict[str, Any]) -> dict | None:
    """Fields a client-side apply set to the values they still have: conflicts with them
    are not conflicts for kubectl's server-side apply (lastAppliedManager)."""
    annotation = ((live.get("metadata") or {}).get("annotations") or {}).get(LAST_APPLIED_ANNOTATION)
    if not annotation:
        return None
    try:
        last_applied = json.loads(annotation)
    except ValueError:
        return None
    if not isinstance(last_applied, dict) or last_applied.get("apiVersion") != resource.api_version:
        return None
    try:
        last_set = fieldpath.to_field_set(value_type, last_applied)
        comparison = fieldpath.compare(value_type, last_applied, _comparable(live))
    except fieldpath.SchemaError:
        return None
    return fieldpath.difference(fieldpath.difference(fieldpath.difference(last_set, comparison.modified),
                                                     comparison.added), comparison.removed)


def _sync_last_applied(result: dict[str, Any], applied: dict[str, Any]) -> None:
    config = deep_copy_json(applied)
    annotations = (config.get("metadata") or {}).get("annotations")
    if isinstance(annotations, dict):
        annotations.pop(LAST_APPLIED_ANNOTATION, None)
    # Go's encoder for unstructured objects: sorted keys, compact, newline-terminated.
    text = json.dumps(config, sort_keys=True, separators=(",", ":"), ensure_ascii=False) + "\n"
    meta = result.setdefault("metadata", {})
    meta["annotations"] = dict(meta.get("annotations") or {}, **{LAST_APPLIED_ANNOTATION: text})
