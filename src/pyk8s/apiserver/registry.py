"""Object semantics over the store: what upstream's generic registry does.

Objects are plain JSON dicts. They are stored as JSON without `metadata.resourceVersion`;
the store's `mod_revision` is put back as the resourceVersion on every read, so a
resourceVersion is always the revision of the object's last write.

Write path: decode → namespace/name checks → defaults → strategy (what a create resets,
what an update may change) → validation → compare-and-swap in the store. Reads decode and
stamp resourceVersion. Watches are in `watch.py`.
"""

from __future__ import annotations

import base64
import random
import time
import uuid
from dataclasses import dataclass
from typing import Any, Callable

import orjson

from pyk8s.api import errors, managedfields
from pyk8s.api.defaults import apply_defaults
from pyk8s.api.resources import Resource, lookup
from pyk8s.api.selectors import FieldSelector, LabelSelector, object_field
from pyk8s.api.validation import validate_create, validate_update
from pyk8s.apiserver import admission, identityadmission, strategies
from pyk8s.apiserver.serviceallocation import ServiceAllocator
from pyk8s.storage.interface import (Compacted, KeyExists, KeyNotFound, KeyValue, RevisionMismatch,
                                     RevisionTooNew, Store)

NAMESPACES = lookup("", "v1", "namespaces")
SERVICES = lookup("", "v1", "services")

# Upstream's generateName alphabet (no vowels, no 0/1/3 that read like letters).
_NAME_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"


def now_rfc3339() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def encode(obj: dict[str, Any]) -> bytes:
    return orjson.dumps(obj)


class StoredObject(dict):
    """An object as a write just stored it, carrying that JSON (resourceVersion spliced in)
    so a JSON reply need not encode it again. Callers that change it must not reply `raw`."""

    __slots__ = ("raw",)

    @classmethod
    def of(cls, obj: dict[str, Any], kv: KeyValue) -> "StoredObject":
        stored = cls(obj)
        stored["metadata"]["resourceVersion"] = str(kv.mod_revision)
        stored.raw = encode_with_resource_version(kv)
        return stored


def decode(kv: KeyValue) -> dict[str, Any]:
    obj = orjson.loads(kv.value)
    obj["metadata"]["resourceVersion"] = str(kv.mod_revision)
    return obj


_METADATA_OPENING = b'"metadata":{'


def _top_level_metadata(value: bytes) -> int:
    """Where the object's own `"metadata":{` starts, or -1. Stored objects put it after
    apiVersion and kind (_TOP_ORDER); with no `{` or `[` before it, it is at depth one (that
    byte sequence cannot occur inside a JSON string, whose quotes are escaped). Any other
    layout (an embedded ObjectMeta first) is -1: the caller decodes in full."""
    at = value.find(_METADATA_OPENING)
    if at < 0 or value.find(b"{", 1, at) >= 0 or value.find(b"[", 0, at) >= 0:
        return -1
    return at


def encode_with_resource_version(kv: KeyValue) -> bytes:
    """The stored JSON with its resourceVersion put back, without decoding it: stored
    objects always start their metadata with a name, so the field can go first in it."""
    value = kv.value
    at = _top_level_metadata(value)
    if at < 0:
        return orjson.dumps(decode(kv))
    at += len(_METADATA_OPENING)
    return b"".join((value[:at], b'"resourceVersion":"', str(kv.mod_revision).encode(), b'",', value[at:]))


_MANAGED_FIELDS_OPENING = b',"managedFields":['
# Where an embedded ObjectMeta (a template's, a revision's data) could hold managedFields too.
_AFTER_METADATA = (b'"spec":', b'"data":', b'"template":')


def decode_without_managed_fields(value: bytes) -> tuple[dict[str, Any], bytes] | None:
    """From an object's JSON as stored (resourceVersion spliced in or not): the object
    without metadata.managedFields, and its metadata's JSON as it is, for rows that show the metadata as stored but read other fields:
    managedFields are most of a typical object's decoding cost. Stored metadata ends with
    managedFields (see _META_ORDER), an array whose elements hold no arrays, so the first
    `]` after its opening closes it, and metadata's `}` must follow at once. Anything else
    (a `]` inside a string, a key after managedFields as in a re-encoded object) is not that
    plain shape: None, and the caller decodes in full."""
    meta_at = _top_level_metadata(value)
    if meta_at < 0:
        return None
    fields_at = value.find(_MANAGED_FIELDS_OPENING, meta_at)
    if fields_at < 0 or value.find(_METADATA_OPENING, meta_at + 1, fields_at) >= 0 \
            or any(value.find(marker, meta_at, fields_at) >= 0 for marker in _AFTER_METADATA):
        return None
    end = value.find(b"]", fields_at + len(_MANAGED_FIELDS_OPENING))
    if end < 0 or value[end + 1:end + 2] != b"}" or value[end - 1:end] not in (b"}", b"[") \
            or value[end + 2:end + 3] not in (b",", b"}"):
        return None
    try:
        obj = orjson.loads(value[:fields_at] + value[end + 1:])
    except orjson.JSONDecodeError:
        return None
    meta = obj.get("metadata") if type(obj) is dict else None
    if type(meta) is not dict or "managedFields" in meta:
        return None
    return obj, value[meta_at + len(_METADATA_OPENING) - 1:end + 2]


def generated_suffix(length: int = 5) -> str:
    return "".join(random.choice(_NAME_ALPHABET) for _ in range(length))


@dataclass
class ListOptions:
    label_selector: LabelSelector | None = None
    field_selector: FieldSelector | None = None
    limit: int = 0
    continue_token: str = ""
    resource_version: str = ""
    resource_version_match: str = ""


@dataclass
class DeleteOptions:
    grace_period_seconds: int | None = None
    propagation_policy: str | None = None  # Orphan | Background | Foreground
    orphan_dependents: bool | None = None
    precondition_uid: str | None = None
    precondition_resource_version: str | None = None
    dry_run: bool = False


def encode_continue(revision: int, last_key: str) -> str:
    token = orjson.dumps({"v": "meta.k8s.io/v1", "rv": revision, "start": last_key})
    return base64.urlsafe_b64encode(token).decode().rstrip("=")


def decode_continue(token: str) -> tuple[int, str]:
    try:
        padded = token + "=" * (-len(token) % 4)
        data = orjson.loads(base64.urlsafe_b64decode(padded))
        return int(data["rv"]), str(data["start"])
    except Exception:
        raise errors.BadRequest("continue key is not valid: incorrect encoded start resourceVersion (version meta.k8s.io/v1)")


def object_matches(obj: dict[str, Any], options: ListOptions) -> bool:
    if options.label_selector is not None and not options.label_selector.empty():
        if not options.label_selector.matches(obj["metadata"].get("labels")):
            return False
    if options.field_selector is not None:
        return options.field_selector.matches(lambda path: object_field(obj, path))
    return True


class Registry:
    """CRUD with upstream's object semantics for every resource in the catalogue."""

    # Upstream's ServiceAccount admission plugin on pod creates (apiserver/serviceaccounts.py):
    # off for an API-only server, which has no controller to make the accounts it demands.
    service_account_admission = False
    # Checks that may refuse a write after validation: await hook(resource, obj, old or None)
    # (apiserver/authz.py's RBAC escalation check).
    write_hooks: tuple = ()

    def __init__(self, store: Store, *, service_cidr: str = "10.43.0.0/16",
                 node_port_range: tuple[int, int] = (30000, 32767)):
        self.store = store
        # Every namespaced create reads its namespace (NamespaceLifecycle).
        store.keep_current_in_memory(NAMESPACES.storage_prefix())
        # ClusterIPs and NodePorts: records in the store, repaired before the first Service write.
        self.service_allocator = ServiceAllocator(store, service_cidr, node_port_range)

    # ---------------------------------------------------------------- reads

    async def get(self, resource: Resource, namespace: str | None, name: str,
                  resource_version: str = "") -> dict[str, Any]:
        return decode(await self._get_kv(resource, namespace, name, resource_version))

    async def get_raw(self, resource: Resource, namespace: str | None, name: str,
                      resource_version: str = "") -> bytes:
        """The object's JSON as stored, with its resourceVersion, never decoded."""
        return encode_with_resource_version(await self._get_kv(resource, namespace, name, resource_version))

    async def _get_kv(self, resource: Resource, namespace: str | None, name: str, resource_version: str) -> KeyValue:
        key = resource.storage_key(namespace, name)
        revision = 0
        if resource_version not in ("", "0"):
            revision = _parse_rv(resource_version)
        try:
            kv = await self.store.get(key, revision)
        except Compacted as exc:
            raise errors.Gone(f"too old resource version: {resource_version} ({exc.compacted})")
        except RevisionTooNew:
            kv = await self.store.get(key)
        if kv is None:
            raise errors.NotFound.of(resource.group, resource.plural, name)
        return kv

    async def list(self, resource: Resource, namespace: str | None, options: ListOptions, *,
                   raw: bool = False) -> tuple[list[Any], int, str, int | None]:
        """Returns (items, revision, continue token, remainingItemCount). With `raw`, items
        are the stored JSON bytes with their resourceVersion spliced in (JSON and Table lists)."""
        prefix = resource.storage_prefix(namespace)
        revision = 0
        start_after = ""
        if options.continue_token:
            revision, start_after = decode_continue(options.continue_token)
            if not start_after.startswith(prefix):
                raise errors.BadRequest("continue key is not valid: key does not match the request")
        elif options.resource_version and options.resource_version != "0":
            requested = _parse_rv(options.resource_version)
            if options.resource_version_match == "Exact":
                revision = requested
            elif requested > self.store.revision:
                raise errors.Timeout(f"Too large resource version: {requested}, current: {self.store.revision}",
                                     details={"causes": [{"reason": "ResourceVersionTooLarge", "message": "Too large resource version"}], "retryAfterSeconds": 1})
        limit = options.limit if options.limit > 0 else 0
        items: list[dict[str, Any]] = []
        filtering = (options.label_selector is not None and not options.label_selector.empty()) or \
            options.field_selector is not None
        chunk = max(limit, 500) if limit else 0
        read_revision = revision
        while True:
            try:
                result = await self.store.list(prefix, revision=read_revision, start_after=start_after, limit=(chunk + 1) if chunk else 0)
            except Compacted as exc:
                if options.continue_token:
                    raise errors.Gone(
                        "The provided continue parameter is too old to display a consistent list result. "
                        "You can start a new list without the continue parameter, or use the continue token "
                        "in this response to retrieve the remainder of the results. Continuing with the provided "
                        "token results in an inconsistent list - objects that were created, modified, or deleted "
                        "between the time the first chunk was returned and now may show up in the list.")
                raise errors.Gone(f"too old resource version: {options.resource_version} ({exc.compacted})")
            except RevisionTooNew:
                raise errors.Timeout(f"Too large resource version: {revision}, current: {self.store.revision}")
            read_revision = result.revision
            kvs = result.items
            more = result.more or (chunk and len(kvs) > chunk)
            if chunk and len(kvs) > chunk:
                kvs = kvs[:chunk]
            for index, kv in enumerate(kvs):
                if raw:
                    # The stored bytes, never a re-encoding: callers read their layout
                    # (decode_without_managed_fields), which a re-encoded object does not keep.
                    if filtering and not object_matches(decode(kv), options):
                        continue
                    items.append(encode_with_resource_version(kv))
                else:
                    obj = decode(kv)
                    if filtering and not object_matches(obj, options):
                        continue
                    items.append(obj)
                if limit and len(items) == limit:
                    # Upstream hands out a continue token whenever the read stopped early,
                    # even if every later key would be filtered out.
                    if more or index < len(kvs) - 1:
                        remaining = None if filtering else await self._remaining(prefix, kv.key, read_revision)
                        return items, read_revision, encode_continue(read_revision, kv.key), remaining
                    return items, read_revision, "", None
            if not more:
                return items, read_revision, "", None
            start_after = kvs[-1].key

    async def _remaining(self, prefix: str, after_key: str, revision: int) -> int | None:
        try:
            result = await self.store.list(prefix, revision=revision, start_after=after_key)
        except Exception:
            return None
        return len(result.items)

    # --------------------------------------------------------------- writes

    async def create(self, resource: Resource, namespace: str | None, obj: dict[str, Any], *,
                     dry_run: bool = False, field_manager: str | None = None) -> dict[str, Any]:
        """`field_manager`: the request's manager, recorded in managedFields (None: the
        object's managedFields are kept as given, e.g. by a server-side apply)."""
        meta = obj.get("metadata")
        if not isinstance(meta, dict):
            meta = obj["metadata"] = {}
        if resource.namespaced:
            body_namespace = meta.get("namespace")
            if body_namespace and namespace and body_namespace != namespace:
                raise errors.BadRequest("the namespace of the provided object does not match the namespace sent on the request")
            meta["namespace"] = namespace or body_namespace or "default"
            namespace = meta["namespace"]
        else:
            meta.pop("namespace", None)
            namespace = None
        if not meta.get("name") and meta.get("generateName"):
            meta["name"] = meta["generateName"] + generated_suffix()
        # The uid comes first: a Job's generated selector is built from it during defaulting.
        meta["uid"] = str(uuid.uuid4())
        apply_defaults(resource, obj)
        strategies.prepare_for_create(resource, obj)
        if resource.namespaced:
            # NamespaceLifecycle comes first in upstream's admission chain: a create into a
            # missing or terminating namespace is refused before any other plugin (e.g.
            # ServiceAccount admission, which would otherwise report a missing account).
            await self._check_namespace_accepts(namespace, resource, meta.get("name") or "")
        if resource.kind in admission.KINDS:
            await admission.admit_create(self, resource, obj)
        await identityadmission.admit_create(self, resource, obj)
        if resource.kind == "Pod" and resource.group == "" and self.service_account_admission:
            from pyk8s.apiserver.serviceaccounts import admit_pod
            await admit_pod(self, obj)
        validate_create(resource, obj)
        for hook in self.write_hooks:
            await hook(resource, obj, None)
        if field_manager is not None:
            managedfields.update(resource, None, obj, field_manager)
        name = meta["name"]
        for key in ("resourceVersion", "deletionTimestamp", "deletionGracePeriodSeconds", "selfLink"):
            meta.pop(key, None)
        meta["creationTimestamp"] = now_rfc3339()
        allocation = None
        if resource.kind == "Service":
            allocation = await self.service_allocator.allocate(obj, dry_run=dry_run)
        obj["apiVersion"] = resource.api_version
        obj["kind"] = resource.kind
        key = resource.storage_key(namespace, name)
        if dry_run:
            existing = await self.store.get(key)
            if existing is not None:
                raise errors.AlreadyExists.of(resource.group, resource.plural, name)
            return obj
        stored = _ordered(obj)
        try:
            kv = await self.store.create(key, encode(stored))
        except Exception as exc:
            # Not on cancellation: the write may still commit, and a record must never be
            # missing for a stored Service (a leaked one is repaired at the next start).
            if allocation is not None:
                await allocation.revert()
            if isinstance(exc, KeyExists):
                raise errors.AlreadyExists.of(resource.group, resource.plural, name) from None
            raise
        # The object just stored, with its revision: no need to decode what we encoded.
        return StoredObject.of(stored, kv)

    async def _check_namespace_accepts(self, namespace: str, resource: Resource, name: str) -> None:
        kv = await self.store.get(NAMESPACES.storage_key(None, namespace))
        if kv is None:
            raise errors.NotFound(f'namespaces "{namespace}" not found',
                                  details={"name": namespace, "kind": "namespaces"})
        # Most namespaces are not terminating: look at the bytes before parsing them.
        if b'"deletionTimestamp"' not in kv.value and b'"Terminating"' not in kv.value:
            return
        ns = orjson.loads(kv.value)
        if ns["metadata"].get("deletionTimestamp") or (ns.get("status") or {}).get("phase") == "Terminating":
            qualified = f"{resource.plural}.{resource.group}" if resource.group else resource.plural
            raise errors.Forbidden(
                f'{qualified} "{name}" is forbidden: unable to create new content in namespace {namespace} because it is being terminated',
                details={"name": name, "kind": resource.plural, **({"group": resource.group} if resource.group else {}),
                         "causes": [{"reason": "NamespaceTerminating", "message": f"namespace {namespace} is being terminated", "field": "metadata.namespace"}]})

    async def update(self, resource: Resource, namespace: str | None, name: str, obj: dict[str, Any], *,
                     subresource: str = "", dry_run: bool = False, field_manager: str | None = None) -> dict[str, Any]:
        meta = obj.get("metadata")
        if not isinstance(meta, dict):
            raise errors.BadRequest("metadata is required")
        if meta.get("name") and meta["name"] != name:
            raise errors.BadRequest(f"the name of the object ({meta['name']}) does not match the name on the URL ({name})")
        if resource.namespaced and meta.get("namespace") and meta["namespace"] != namespace:
            raise errors.BadRequest("the namespace of the provided object does not match the namespace sent on the request")
        key = resource.storage_key(namespace, name)
        current = await self.store.get(key)
        if current is None:
            raise errors.NotFound.of(resource.group, resource.plural, name)
        expected = 0
        if meta.get("resourceVersion"):
            expected = _parse_rv(meta["resourceVersion"])
            if expected != current.mod_revision:
                raise errors.Conflict.of(resource.group, resource.plural, name, errors.OBJECT_MODIFIED)
        old = decode(current)
        return await self._write_update(resource, namespace, name, obj, old, current, subresource=subresource,
                                        dry_run=dry_run, field_manager=field_manager)

    async def _write_update(self, resource: Resource, namespace: str | None, name: str, obj: dict[str, Any],
                            old: dict[str, Any], current: KeyValue, *, subresource: str = "",
                            dry_run: bool = False, field_manager: str | None = None) -> dict[str, Any]:
        meta = obj.setdefault("metadata", {})
        meta["name"] = name
        if resource.namespaced:
            meta["namespace"] = namespace
        obj["apiVersion"] = resource.api_version
        obj["kind"] = resource.kind
        if subresource == "status":
            obj = strategies.prepare_for_status_update(resource, obj, old)
        elif subresource == "binding":
            pass  # upstream's binding REST writes spec.nodeName and PodScheduled to storage directly
        elif subresource == "approval":
            obj = identityadmission.prepare_approval(resource, obj, old)
        else:
            apply_defaults(resource, obj)
            strategies.prepare_for_update(resource, obj, old)
            if resource.kind == "Service":
                strategies.prepare_service_update(obj, old)
            # Identity fields cannot be changed by an update (upstream resets them).
            for field in ("uid", "creationTimestamp"):
                if field in old["metadata"]:
                    obj["metadata"][field] = old["metadata"][field]
            if resource.kind in admission.KINDS:
                await admission.admit_update(self, resource, obj, old)
            validate_update(resource, obj, old)
            for hook in self.write_hooks:
                await hook(resource, obj, old)
        await identityadmission.admit_update(self, resource, subresource, obj, old)
        if field_manager is not None:
            managedfields.update(resource, old, obj, field_manager, subresource=subresource)
        obj["metadata"].pop("resourceVersion", None)
        old_without_rv = dict(old)
        old_without_rv["metadata"] = {k: v for k, v in old["metadata"].items() if k != "resourceVersion"}
        # A finalizer-less object already marked for deletion goes away on this write.
        if obj["metadata"].get("deletionTimestamp") and not obj["metadata"].get("finalizers") \
                and not self._awaits_kubelet(resource, obj) \
                and not (resource.kind == "Namespace" and (obj.get("spec") or {}).get("finalizers")):
            if dry_run:
                return obj
            try:
                kv = await self.store.delete(resource.storage_key(namespace, name), current.mod_revision)
            except RevisionMismatch:
                raise errors.Conflict.of(resource.group, resource.plural, name, errors.OBJECT_MODIFIED)
            except KeyNotFound:
                raise errors.NotFound.of(resource.group, resource.plural, name)
            if resource.kind == "Service":
                await self.service_allocator.release(old)
            result = orjson.loads(encode(obj))
            result["metadata"]["resourceVersion"] = str(kv.mod_revision)
            return result
        allocation = None
        if resource.kind == "Service" and not subresource:
            # Type changes allocate and release (upstream's allocateUpdate); kept values stay.
            allocation = await self.service_allocator.allocate(obj, old, dry_run=dry_run)
        if obj == old_without_rv:
            # No-op writes do not bump the resourceVersion (upstream skips the etcd write).
            return old
        if dry_run:
            obj["metadata"]["resourceVersion"] = str(current.mod_revision)
            return obj
        stored = _ordered(obj)
        try:
            kv = await self.store.update(resource.storage_key(namespace, name), encode(stored), current.mod_revision)
        except Exception as exc:
            # Not on cancellation: the write may still commit, and a record must never be
            # missing for a stored Service (a leaked one is repaired at the next start).
            if allocation is not None:
                await allocation.revert()
            if isinstance(exc, RevisionMismatch):
                raise errors.Conflict.of(resource.group, resource.plural, name, errors.OBJECT_MODIFIED) from None
            if isinstance(exc, KeyNotFound):
                raise errors.NotFound.of(resource.group, resource.plural, name) from None
            raise
        if allocation is not None:
            await allocation.commit()
        return StoredObject.of(stored, kv)

    async def modify(self, resource: Resource, namespace: str | None, name: str,
                     mutate: Callable[[dict[str, Any]], dict[str, Any]], *, subresource: str = "",
                     dry_run: bool = False, retries: int = 5, field_manager: str | None = None) -> dict[str, Any]:
        """Read-modify-write with retry on conflict (what PATCH does server-side)."""
        key = resource.storage_key(namespace, name)
        for attempt in range(retries):
            current = await self.store.get(key)
            if current is None:
                raise errors.NotFound.of(resource.group, resource.plural, name)
            old = decode(current)
            # The patch sees the resourceVersion (a JSON patch may test or replace it, as
            # kubectl's managedFields upgrade does); one it changed is a precondition.
            new = mutate(decode(current))
            if not isinstance(new, dict):
                raise errors.BadRequest("patch did not produce an object")
            new_meta = new.get("metadata") if isinstance(new.get("metadata"), dict) else {}
            new["metadata"] = new_meta
            if new_meta.get("name", name) != name:
                raise errors.BadRequest(f"the name of the object ({new_meta.get('name')}) does not match the name on the URL ({name})")
            # A patch may carry a resourceVersion precondition.
            if new_meta.get("resourceVersion") and _parse_rv(new_meta["resourceVersion"]) != current.mod_revision:
                raise errors.Conflict.of(resource.group, resource.plural, name, errors.OBJECT_MODIFIED)
            try:
                return await self._write_update(resource, namespace, name, new, old, current,
                                                subresource=subresource, dry_run=dry_run,
                                                field_manager=field_manager)
            except errors.Conflict:
                # A retry re-applies the patch to the newer object: a resourceVersion the
                # patch itself set then fails the precondition check above.
                if attempt == retries - 1:
                    raise
        raise errors.Conflict.of(resource.group, resource.plural, name, errors.OBJECT_MODIFIED)

    def _awaits_kubelet(self, resource: Resource, obj: dict[str, Any]) -> bool:
        """A pod marked for graceful deletion stays until its node's kubelet removes it."""
        if resource.kind != "Pod":
            return False
        grace = obj["metadata"].get("deletionGracePeriodSeconds")
        return bool(grace) and bool((obj.get("spec") or {}).get("nodeName"))

    async def delete(self, resource: Resource, namespace: str | None, name: str,
                     options: DeleteOptions) -> tuple[dict[str, Any], bool]:
        """Returns (object, removed): removed is False when the object was only marked for
        deletion (finalizers, graceful pod deletion, a terminating namespace)."""
        key = resource.storage_key(namespace, name)
        for _ in range(5):
            current = await self.store.get(key)
            if current is None:
                raise errors.NotFound.of(resource.group, resource.plural, name)
            obj = decode(current)
            meta = obj["metadata"]
            if options.precondition_uid and options.precondition_uid != meta.get("uid"):
                raise errors.Conflict.of(resource.group, resource.plural, name,
                                         f"Precondition failed: UID in precondition: {options.precondition_uid}, UID in object meta: {meta.get('uid')}")
            if options.precondition_resource_version and options.precondition_resource_version != meta.get("resourceVersion"):
                raise errors.Conflict.of(resource.group, resource.plural, name,
                                         f"Precondition failed: ResourceVersion in precondition: {options.precondition_resource_version}, ResourceVersion in object meta: {meta.get('resourceVersion')}")
            await identityadmission.admit_delete(self, resource, obj)
            marked = self._mark_for_deletion(resource, obj, options)
            if marked is None:
                if options.dry_run:
                    return obj, True
                try:
                    kv = await self.store.delete(key, current.mod_revision)
                except (RevisionMismatch, KeyNotFound):
                    continue
                if resource.kind == "Service":
                    await self.service_allocator.release(obj)
                deleted = orjson.loads(kv.value)
                deleted["metadata"]["resourceVersion"] = str(kv.mod_revision)
                return deleted, True
            if options.dry_run:
                return marked, False
            marked["metadata"].pop("resourceVersion", None)
            try:
                if marked == _without_rv(obj):
                    return obj, False
                kv = await self.store.update(key, encode(_ordered(marked)), current.mod_revision)
            except (RevisionMismatch, KeyNotFound):
                continue
            return decode(kv), False
        raise errors.Conflict.of(resource.group, resource.plural, name, errors.OBJECT_MODIFIED)

    def _mark_for_deletion(self, resource: Resource, obj: dict[str, Any], options: DeleteOptions) -> dict[str, Any] | None:
        """The object as marked for deletion, or None when it can be removed now."""
        meta = obj["metadata"]
        finalizers = list(meta.get("finalizers") or [])
        policy = options.propagation_policy
        if policy is None and options.orphan_dependents is not None:
            policy = "Orphan" if options.orphan_dependents else "Background"
        if policy == "Orphan" and "orphan" not in finalizers:
            finalizers.append("orphan")
        elif policy == "Foreground" and "foregroundDeletion" not in finalizers:
            finalizers.append("foregroundDeletion")
        grace = 0
        if resource.kind == "Pod":
            grace = strategies.graceful_pod_delete(obj, options.grace_period_seconds)
        if resource.kind == "Namespace":
            marked = _without_rv(obj)
            marked["metadata"].setdefault("deletionTimestamp", now_rfc3339())
            marked["metadata"]["deletionGracePeriodSeconds"] = 0
            marked["status"] = dict(marked.get("status") or {}, phase="Terminating")
            if finalizers:
                marked["metadata"]["finalizers"] = finalizers
            if not finalizers and not (marked.get("spec") or {}).get("finalizers"):
                return None
            return marked
        if meta.get("deletionTimestamp"):
            # Already terminating: a shorter grace period may still shorten it.
            if resource.kind == "Pod" and grace == 0 and not finalizers:
                return None
            if not finalizers and resource.kind != "Pod":
                return None
            marked = _without_rv(obj)
            if resource.kind == "Pod" and grace < (meta.get("deletionGracePeriodSeconds") or 0):
                marked["metadata"]["deletionGracePeriodSeconds"] = grace
            if finalizers:
                marked["metadata"]["finalizers"] = finalizers
            return marked
        if not finalizers and grace == 0:
            return None
        marked = _without_rv(obj)
        marked["metadata"]["deletionTimestamp"] = _rfc3339_in(grace)
        marked["metadata"]["deletionGracePeriodSeconds"] = grace
        if finalizers:
            marked["metadata"]["finalizers"] = finalizers
        return marked


def _without_rv(obj: dict[str, Any]) -> dict[str, Any]:
    copy = dict(obj)
    copy["metadata"] = {k: v for k, v in obj["metadata"].items() if k != "resourceVersion"}
    return copy


def _rfc3339_in(seconds: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + seconds))


def _parse_rv(value: str) -> int:
    try:
        revision = int(value)
        if revision < 0:
            raise ValueError
        return revision
    except (TypeError, ValueError):
        raise errors.BadRequest(f'invalid resource version "{value}"') from None


_TOP_ORDER = ("apiVersion", "kind", "metadata", "spec", "status")
_META_ORDER = ("name", "generateName", "namespace", "uid", "resourceVersion", "generation",
               "creationTimestamp", "deletionTimestamp", "deletionGracePeriodSeconds",
               "labels", "annotations", "ownerReferences", "finalizers", "managedFields")


def _ordered(obj: dict[str, Any]) -> dict[str, Any]:
    """Key order as Go's encoder writes it (declaration order), so JSON and YAML output read
    like upstream's."""
    ordered = {key: obj[key] for key in _TOP_ORDER if key in obj}
    for key, value in obj.items():
        if key not in ordered:
            ordered[key] = value
    meta = ordered.get("metadata")
    if isinstance(meta, dict):
        ordered_meta = {key: meta[key] for key in _META_ORDER if key in meta}
        for key, value in meta.items():
            if key not in ordered_meta:
                ordered_meta[key] = value
        ordered["metadata"] = ordered_meta
    if "status" in ordered and ordered["status"] is not None and list(ordered)[-1] != "status":
        status = ordered.pop("status")
        ordered["status"] = status
    return ordered
