"""The OpenAPI v3 documents the API server publishes under `/openapi/v3`.

kubectl reads them for three things (see reference/kubectl-wire-contract.md, trap 3):
- `create -f` / `apply` / `edit` look for a path whose `patch` operation carries the kind's
  `x-kubernetes-group-version-kind` and a `fieldValidation` query parameter; when found they
  skip client-side validation and send `fieldValidation=Strict` instead;
- client-side `apply` builds strategic merge patches from `components.schemas` when that
  patch operation accepts `application/strategic-merge-patch+json`;
- `explain` prints descriptions and fields from `components.schemas`.

Data flow: the served resources (api.resources) give the paths and operations, upstream's
schemas (api.schemas) give `components.schemas`. Each document is built once per process,
on first request, and kept as JSON bytes together with its hash, which is what upstream's
kube-openapi handler does: the index names every group-version document by a URL carrying
`?hash=<SHA-512 of the bytes, upper-case hex>`, and such URLs are served as immutable.

`/openapi/v2` serves the same schemas as Swagger 2.0 (openapiv2.py): kubectl validates a
kind without a PATCH operation (the access reviews) against them, downloaded as protobuf.
"""

from __future__ import annotations

import functools
import hashlib
import time
from email.utils import formatdate
from typing import Any, Mapping, NamedTuple

import orjson

from pyk8s.api import schemas
from pyk8s.api.resources import RESOURCES, Resource, group_versions
from pyk8s.apiserver import openapiv2

JSON = "application/json"
# The protobuf form kubectl may list first; we answer it with JSON when the client also
# accepts JSON, and with 406 when it accepts nothing else (as upstream does for an
# unsatisfiable Accept).
PROTOBUF_V3 = "application/com.github.proto-openapi.spec.v3@v1.0+protobuf"

PATCH_CONTENT_TYPES = (
    "application/json-patch+json",
    "application/merge-patch+json",
    "application/strategic-merge-patch+json",
    "application/apply-patch+yaml",
)
_OBJECT_CONTENT_TYPES = ("application/json", "application/yaml", "application/vnd.kubernetes.protobuf")
_LIST_CONTENT_TYPES = _OBJECT_CONTENT_TYPES + (
    "application/json;stream=watch", "application/vnd.kubernetes.protobuf;stream=watch")

_META = "io.k8s.apimachinery.pkg.apis.meta.v1."
_STATUS_SCHEMA = _META + "Status"
_DELETE_OPTIONS_SCHEMA = _META + "DeleteOptions"
# Upstream's PATCH request bodies reference this schema (not the kind's): it is an opaque
# object. kubectl only checks that the strategic-merge media type has a schema.
_PATCH_SCHEMA = _META + "Patch"
_EXTRA_SCHEMAS = {
    _PATCH_SCHEMA: {
        "description": "Patch is provided to give a concrete name and type to the Kubernetes PATCH request body.",
        "type": "object",
    },
}
_SCALE_GVK = {"group": "autoscaling", "version": "v1", "kind": "Scale"}
_SCALE_SCHEMA = "io.k8s.api.autoscaling.v1.Scale"


class OpenAPIResponse(NamedTuple):
    status: int
    content_type: str
    body: bytes
    headers: dict[str, str]


class _Document(NamedTuple):
    body: bytes
    etag: str  # SHA-512 of body, upper-case hex (kube-openapi's ETag and ?hash= value)


# ---------------------------------------------------------------- public entry point

def openapi_response(path: str, query: Mapping[str, str], accept: str | None) -> OpenAPIResponse | None:
    """Answers a GET of `/openapi/...`; None when `path` is not an OpenAPI path at all.

    `path` is the request path (leading slash optional), `query` its query parameters.
    """
    path = "/" + path.strip("/")
    if path != "/openapi" and not path.startswith("/openapi/"):
        return None
    if path == "/openapi/v2":
        return _v2_response(accept)
    if path == "/openapi/v3":
        document = _index_document()
    elif path.startswith("/openapi/v3/"):
        document = _group_version_documents().get(path[len("/openapi/v3/"):])
        if document is None:
            return _not_found()
    else:
        return _not_found()
    if not _accepts_json(accept):
        return OpenAPIResponse(406, "text/plain; charset=utf-8", b"", {"Vary": "Accept"})
    headers = {"Vary": "Accept", "Etag": f'"{document.etag}"',
               "Last-Modified": _STARTED_AT}
    wanted_hash = query.get("hash")
    if wanted_hash:
        if wanted_hash != document.etag:
            # A stale hash is redirected to the current document (kube-openapi handler3).
            location = f"{path}?hash={document.etag}"
            return OpenAPIResponse(301, "text/html; charset=utf-8",
                                   f'<a href="{location}">Moved Permanently</a>.\n\n'.encode(),
                                   {"Location": location, "Vary": "Accept"})
        headers["Cache-Control"] = "public, immutable"
        headers["Expires"] = formatdate(time.time() + 365 * 24 * 3600, usegmt=True)
    return OpenAPIResponse(200, JSON, document.body, headers)


def _v2_response(accept: str | None) -> OpenAPIResponse:
    document = _v2_document()
    headers = {"Vary": "Accept", "Etag": f'"{document.etag}"', "Last-Modified": _STARTED_AT}
    if openapiv2.wants_protobuf(accept):
        return OpenAPIResponse(200, openapiv2.PROTOBUF_V2, document.protobuf, headers)
    if not _accepts_json(accept):
        return OpenAPIResponse(406, "text/plain; charset=utf-8", b"", {"Vary": "Accept"})
    return OpenAPIResponse(200, JSON, document.json, headers)


@functools.cache
def _v2_document() -> openapiv2.Served:
    """Every schema of the v3 group-version documents, as one Swagger 2.0 document."""
    components: dict[str, Any] = {}
    for document in _group_version_documents().values():
        components.update(orjson.loads(document.body)["components"]["schemas"])
    return openapiv2.Served(openapiv2.document(components))


def v2_document() -> dict[str, Any]:
    """The parsed v2 document (for tests and tools)."""
    return orjson.loads(_v2_document().json)


def group_version_path(group: str, version: str) -> str:
    """The index key of a group-version: `api/v1`, `apis/apps/v1`."""
    return f"apis/{group}/{version}" if group else f"api/{version}"


def group_version_document(group: str, version: str) -> dict[str, Any]:
    """The parsed document of one group-version (for tests and tools)."""
    return orjson.loads(_group_version_documents()[group_version_path(group, version)].body)


def index_document() -> dict[str, Any]:
    return orjson.loads(_index_document().body)


# ---------------------------------------------------------------- negotiation

_STARTED_AT = formatdate(time.time(), usegmt=True)


def _accepts_json(accept: str | None) -> bool:
    """True when the Accept header allows application/json (kubectl's openapi client asks
    `application/json`; a protobuf-only request cannot be satisfied here)."""
    if not accept:
        return True
    for clause in accept.split(","):
        pieces = [piece.strip() for piece in clause.split(";")]
        media_type = pieces[0].lower()
        quality = 1.0
        for parameter in pieces[1:]:
            name, _, value = parameter.partition("=")
            if name.strip() == "q":
                try:
                    quality = float(value)
                except ValueError:
                    quality = 0.0
        if quality > 0 and media_type in (JSON, "application/*", "*/*"):
            return True
    return False


def _not_found() -> OpenAPIResponse:
    return OpenAPIResponse(404, "text/plain; charset=utf-8", b"404 page not found\n", {})


# ---------------------------------------------------------------- documents

def _finish(document: dict[str, Any]) -> _Document:
    body = orjson.dumps(document)
    return _Document(body, hashlib.sha512(body).hexdigest().upper())


@functools.cache
def _group_version_documents() -> dict[str, _Document]:
    return {group_version_path(group, version): _finish(_build_group_version(group, version))
            for group, version in group_versions()}


@functools.cache
def _index_document() -> _Document:
    paths = {key: {"serverRelativeURL": f"/openapi/v3/{key}?hash={document.etag}"}
             for key, document in _group_version_documents().items()}
    return _finish({"paths": paths})


def _build_group_version(group: str, version: str) -> dict[str, Any]:
    paths: dict[str, Any] = {}
    for resource in RESOURCES:
        if resource.group == group and resource.version == version:
            _add_resource_paths(paths, resource)
    roots = {ref.rsplit("/", 1)[-1] for ref in _refs_in(paths)}
    return {
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes", "version": f"v{schemas.KUBERNETES_MINOR}.0"},
        "paths": dict(sorted(paths.items())),
        "components": {
            "schemas": _schema_closure(roots),
            "securitySchemes": {"BearerToken": {"type": "apiKey", "description": "Bearer Token authentication",
                                                "name": "authorization", "in": "header"}},
        },
    }


def _schema_closure(roots: set[str]) -> dict[str, Any]:
    """Every schema reachable from `roots` through `$ref`s, by name, sorted."""
    found: dict[str, Any] = {}
    pending = sorted(roots)
    while pending:
        name = pending.pop()
        if name in found:
            continue
        node = _EXTRA_SCHEMAS.get(name) or _as_served(schemas.schema(name))
        found[name] = node
        pending.extend(ref.rsplit("/", 1)[-1] for ref in _refs_in(node))
    return dict(sorted(found.items()))


def _as_served(node: dict[str, Any]) -> dict[str, Any]:
    """The schema as kube-apiserver serves it. Our copy (from kubernetes-validate) pins
    `apiVersion` and `kind` with a one-value `enum` that upstream's documents do not have,
    and that `kubectl explain` would print as an extra `enum: v1` line."""
    properties = node.get("properties")
    if not properties or not any("enum" in (properties.get(name) or {}) for name in ("apiVersion", "kind")):
        return node
    properties = dict(properties)
    for name in ("apiVersion", "kind"):
        if name in properties and "enum" in properties[name]:
            properties[name] = {key: value for key, value in properties[name].items() if key != "enum"}
    return dict(node, properties=properties)


def _refs_in(node: Any):
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "$ref" and isinstance(value, str):
                yield value
            else:
                yield from _refs_in(value)
    elif isinstance(node, list):
        for item in node:
            yield from _refs_in(item)


# ---------------------------------------------------------------- paths and operations

def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _gvk(resource: Resource) -> dict[str, str]:
    return {"group": resource.group, "version": resource.version, "kind": resource.kind}


def _operation_prefix(resource: Resource) -> str:
    """`CoreV1`, `AppsV1`, `StorageV1`, `EventsV1` as in upstream's operation ids."""
    group = resource.group.split(".")[0] if resource.group else "core"
    return "".join(part[:1].upper() + part[1:] for part in group.split("-")) + resource.version[:1].upper() + resource.version[1:]


def _tag(resource: Resource) -> str:
    group = resource.group.split(".")[0] if resource.group else "core"
    return f"{group}_{resource.version}"


def _query(name: str, description: str, schema_type: str = "string", **extra: Any) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": schema_type}
    schema.update(extra)
    return {"name": name, "in": "query", "description": description, "schema": schema}


_PRETTY = _query("pretty", "If 'true', then the output is pretty printed. Defaults to 'false' unless the user-agent indicates a browser or command-line HTTP tool (curl and wget).")
_DRY_RUN = _query("dryRun", "When present, indicates that modifications should not be persisted. An invalid or unrecognized dryRun directive will result in an error response and no further processing of the request. Valid values are: - All: all dry run stages will be processed", uniqueItems=True)
_FIELD_MANAGER = _query("fieldManager", "fieldManager is a name associated with the actor or entity that is making these changes. The value must be less than or 128 characters long, and only contain printable characters, as defined by https://golang.org/pkg/unicode/#IsPrint.", uniqueItems=True)
_PATCH_FIELD_MANAGER = _query("fieldManager", "fieldManager is a name associated with the actor or entity that is making these changes. The value must be less than or 128 characters long, and only contain printable characters, as defined by https://golang.org/pkg/unicode/#IsPrint. This field is required for apply requests (application/apply-patch) but optional for non-apply patch types (JsonPatch, MergePatch, StrategicMergePatch).", uniqueItems=True)
_FIELD_VALIDATION = _query("fieldValidation", "fieldValidation instructs the server on how to handle objects in the request (POST/PUT/PATCH) containing unknown or duplicate fields. Valid values are: - Ignore: This will ignore any unknown fields that are silently dropped from the object, and will ignore all but the last duplicate field that the decoder encounters. This is the default behavior prior to v1.23. - Warn: This will send a warning via the standard warning response header for each unknown field that is dropped from the object, and for each duplicate field that is encountered. The request will still succeed if there are no other errors, and will only persist the last of any duplicate fields. This is the default in v1.23+ - Strict: This will fail the request with a BadRequest error if any unknown fields would be dropped from the object, or if any duplicate fields are present. The error returned from the server will contain all unknown and duplicate fields encountered.", uniqueItems=True)
_FORCE = _query("force", "Force is going to \"force\" Apply requests. It means user will re-acquire conflicting fields owned by other people. Force flag must be unset for non-apply patch requests.", "boolean", uniqueItems=True)
_GRACE_PERIOD = _query("gracePeriodSeconds", "The duration in seconds before the object should be deleted. Value must be non-negative integer. The value zero indicates delete immediately. If this value is nil, the default grace period for the specified type will be used. Defaults to a per object value if not specified. zero means delete immediately.", "integer", uniqueItems=True)
_PROPAGATION_POLICY = _query("propagationPolicy", "Whether and how garbage collection will be performed. Either this field or OrphanDependents may be set, but not both. The default policy is decided by the existing finalizer set in the metadata.finalizers and the resource-specific default policy. Acceptable values are: 'Orphan' - orphan the dependents; 'Background' - allow the garbage collector to delete the dependents in the background; 'Foreground' - a cascading policy that deletes all dependents in the foreground.", uniqueItems=True)
_ORPHAN_DEPENDENTS = _query("orphanDependents", "Deprecated: please use the PropagationPolicy, this field will be deprecated in 1.7. Should the dependent objects be orphaned. If true/false, the \"orphan\" finalizer will be added to/removed from the object's finalizers list. Either this field or PropagationPolicy may be set, but not both.", "boolean", uniqueItems=True)
_LIST_PARAMETERS = [
    _query("allowWatchBookmarks", "allowWatchBookmarks requests watch events with type \"BOOKMARK\". Servers that do not implement bookmarks may ignore this flag and bookmarks are sent at the server's discretion.", "boolean", uniqueItems=True),
    _query("continue", "The continue option should be set when retrieving more results from the server.", uniqueItems=True),
    _query("fieldSelector", "A selector to restrict the list of returned objects by their fields. Defaults to everything.", uniqueItems=True),
    _query("labelSelector", "A selector to restrict the list of returned objects by their labels. Defaults to everything.", uniqueItems=True),
    _query("limit", "limit is a maximum number of responses to return for a list call.", "integer", uniqueItems=True),
    _query("resourceVersion", "resourceVersion sets a constraint on what resource versions a request may be served from. Defaults to unset", uniqueItems=True),
    _query("resourceVersionMatch", "resourceVersionMatch determines how resourceVersion is applied to list calls. Defaults to unset", uniqueItems=True),
    _query("sendInitialEvents", "`sendInitialEvents=true` may be set together with `watch=true`. In that case, the watch stream will begin with synthetic events to produce the current state of objects in the collection.", "boolean", uniqueItems=True),
    _query("timeoutSeconds", "Timeout for the list/watch call. This limits the duration of the call, regardless of any activity or inactivity.", "integer", uniqueItems=True),
    _query("watch", "Watch for changes to the described resources and return them as a stream of add, update, and remove notifications. Specify resourceVersion.", "boolean", uniqueItems=True),
]


def _path_parameter(name: str, description: str) -> dict[str, Any]:
    return {"name": name, "in": "path", "description": description, "required": True,
            "schema": {"type": "string", "uniqueItems": True}}


_NAMESPACE_PARAMETER = _path_parameter("namespace", "object name and auth scope, such as for teams and projects")


def _content(schema_name: str, media_types: tuple[str, ...] = _OBJECT_CONTENT_TYPES) -> dict[str, Any]:
    return {media_type: {"schema": _ref(schema_name)} for media_type in media_types}


def _responses(schema_name: str, *codes: str) -> dict[str, Any]:
    responses = {code: {"description": {"200": "OK", "201": "Created", "202": "Accepted"}[code],
                        "content": _content(schema_name)} for code in codes}
    responses["401"] = {"description": "Unauthorized"}
    return responses


def _operation(resource: Resource, action: str, operation_id: str, description: str,
               parameters: list[dict[str, Any]], responses: dict[str, Any],
               gvk: dict[str, str] | None = None, request_body: dict[str, Any] | None = None) -> dict[str, Any]:
    operation: dict[str, Any] = {"tags": [_tag(resource)], "description": description,
                                 "operationId": operation_id}
    if parameters:
        operation["parameters"] = parameters
    if request_body is not None:
        operation["requestBody"] = request_body
    operation["responses"] = responses
    operation["x-kubernetes-action"] = action
    operation["x-kubernetes-group-version-kind"] = gvk or _gvk(resource)
    return operation


def _body(schema_name: str) -> dict[str, Any]:
    return {"content": {"*/*": {"schema": _ref(schema_name)}}, "required": True}


def _patch_body() -> dict[str, Any]:
    return {"content": {media_type: {"schema": _ref(_PATCH_SCHEMA)} for media_type in PATCH_CONTENT_TYPES},
            "required": True}


def _add_resource_paths(paths: dict[str, Any], resource: Resource) -> None:
    kind_schema = schemas.schema_name(resource.group, resource.version, resource.kind)
    list_schema = schemas.schema_name(resource.group, resource.version, resource.kind + "List")
    if kind_schema is None:
        return  # no upstream schema: nothing kubectl could use
    base = f"/apis/{resource.group}/{resource.version}" if resource.group else f"/api/{resource.version}"
    prefix = _operation_prefix(resource)
    scope = "Namespaced" if resource.namespaced else ""
    kind = resource.kind
    verbs = set(resource.verbs)
    collection = f"{base}/namespaces/{{namespace}}/{resource.plural}" if resource.namespaced else f"{base}/{resource.plural}"
    scope_parameters = [_NAMESPACE_PARAMETER] if resource.namespaced else []
    name_parameter = _path_parameter("name", f"name of the {kind}")

    collection_item: dict[str, Any] = {}
    if "list" in verbs and list_schema:
        collection_item["get"] = _operation(
            resource, "list", f"list{prefix}{scope}{kind}", f"list or watch objects of kind {kind}",
            list(_LIST_PARAMETERS), {"200": {"description": "OK", "content": _content(list_schema, _LIST_CONTENT_TYPES)},
                                     "401": {"description": "Unauthorized"}})
    if "create" in verbs:
        collection_item["post"] = _operation(
            resource, "post", f"create{prefix}{scope}{kind}", f"create a {kind}",
            [_DRY_RUN, _FIELD_MANAGER, _FIELD_VALIDATION], _responses(kind_schema, "200", "201", "202"),
            request_body=_body(kind_schema))
    if "deletecollection" in verbs:
        collection_item["delete"] = _operation(
            resource, "deletecollection", f"deletecollection{prefix}{scope}{kind}", f"delete collection of {kind}",
            [_query("continue", "The continue option should be set when retrieving more results from the server.", uniqueItems=True),
             _DRY_RUN, _query("fieldSelector", "A selector to restrict the list of returned objects by their fields. Defaults to everything.", uniqueItems=True),
             _GRACE_PERIOD, _query("labelSelector", "A selector to restrict the list of returned objects by their labels. Defaults to everything.", uniqueItems=True),
             _query("limit", "limit is a maximum number of responses to return for a list call.", "integer", uniqueItems=True),
             _ORPHAN_DEPENDENTS, _PROPAGATION_POLICY],
            _responses(_STATUS_SCHEMA, "200"), request_body={"content": {"*/*": {"schema": _ref(_DELETE_OPTIONS_SCHEMA)}}})
    if collection_item:
        collection_item["parameters"] = scope_parameters + [_PRETTY]
        paths[collection] = collection_item

    if resource.namespaced and "list" in verbs and list_schema:
        paths[f"{base}/{resource.plural}"] = {
            "get": _operation(resource, "list", f"list{prefix}{kind}ForAllNamespaces",
                              f"list or watch objects of kind {kind}", [],
                              {"200": {"description": "OK", "content": _content(list_schema, _LIST_CONTENT_TYPES)},
                               "401": {"description": "Unauthorized"}}),
            "parameters": list(_LIST_PARAMETERS) + [_PRETTY],
        }

    item_path = f"{collection}/{{name}}"
    item: dict[str, Any] = {}
    if "get" in verbs:
        item["get"] = _operation(resource, "get", f"read{prefix}{scope}{kind}", f"read the specified {kind}",
                                 [], _responses(kind_schema, "200"))
    if "update" in verbs:
        item["put"] = _operation(resource, "put", f"replace{prefix}{scope}{kind}", f"replace the specified {kind}",
                                 [_DRY_RUN, _FIELD_MANAGER, _FIELD_VALIDATION], _responses(kind_schema, "200", "201"),
                                 request_body=_body(kind_schema))
    if "delete" in verbs:
        item["delete"] = _operation(resource, "delete", f"delete{prefix}{scope}{kind}", f"delete a {kind}",
                                    [_DRY_RUN, _GRACE_PERIOD, _ORPHAN_DEPENDENTS, _PROPAGATION_POLICY],
                                    _responses(_STATUS_SCHEMA, "200", "202"),
                                    request_body={"content": {"*/*": {"schema": _ref(_DELETE_OPTIONS_SCHEMA)}}})
    if "patch" in verbs:
        item["patch"] = _patch_operation(resource, f"patch{prefix}{scope}{kind}", f"partially update the specified {kind}",
                                         kind_schema)
    if item:
        item["parameters"] = [name_parameter] + scope_parameters + [_PRETTY]
        paths[item_path] = item

    for subresource in resource.subresources:
        sub_path = f"{item_path}/{subresource}"
        parameters = [name_parameter] + scope_parameters + [_PRETTY]
        title = subresource[:1].upper() + subresource[1:]
        if subresource in ("status", "ephemeralcontainers"):
            # Same kind as the parent, read/replace/patch of one part of it.
            what = "status" if subresource == "status" else "ephemeralcontainers"
            paths[sub_path] = {
                "get": _operation(resource, "get", f"read{prefix}{scope}{kind}{title}", f"read {what} of the specified {kind}",
                                  [], _responses(kind_schema, "200")),
                "put": _operation(resource, "put", f"replace{prefix}{scope}{kind}{title}", f"replace {what} of the specified {kind}",
                                  [_DRY_RUN, _FIELD_MANAGER, _FIELD_VALIDATION], _responses(kind_schema, "200", "201"),
                                  request_body=_body(kind_schema)),
                "patch": _patch_operation(resource, f"patch{prefix}{scope}{kind}{title}",
                                          f"partially update {what} of the specified {kind}", kind_schema),
                "parameters": parameters,
            }
        elif subresource == "scale":
            paths[sub_path] = {
                "get": _operation(resource, "get", f"read{prefix}{scope}{kind}Scale", f"read scale of the specified {kind}",
                                  [], _responses(_SCALE_SCHEMA, "200"), gvk=_SCALE_GVK),
                "put": _operation(resource, "put", f"replace{prefix}{scope}{kind}Scale", f"replace scale of the specified {kind}",
                                  [_DRY_RUN, _FIELD_MANAGER, _FIELD_VALIDATION], _responses(_SCALE_SCHEMA, "200", "201"),
                                  gvk=_SCALE_GVK, request_body=_body(_SCALE_SCHEMA)),
                "patch": _patch_operation(resource, f"patch{prefix}{scope}{kind}Scale",
                                          f"partially update scale of the specified {kind}", _SCALE_SCHEMA, gvk=_SCALE_GVK),
                "parameters": parameters,
            }
        elif subresource == "binding":
            binding_gvk = {"group": "", "version": "v1", "kind": "Binding"}
            paths[sub_path] = {
                "post": _operation(resource, "post", f"create{prefix}{scope}{kind}Binding", f"create binding of a {kind}",
                                   [_DRY_RUN, _FIELD_MANAGER, _FIELD_VALIDATION],
                                   _responses("io.k8s.api.core.v1.Binding", "200", "201", "202"),
                                   gvk=binding_gvk, request_body=_body("io.k8s.api.core.v1.Binding")),
                "parameters": parameters,
            }
        elif subresource == "finalize":
            paths[sub_path] = {
                "put": _operation(resource, "put", f"replace{prefix}{scope}{kind}Finalize", f"replace finalize of the specified {kind}",
                                  [_DRY_RUN, _FIELD_MANAGER, _FIELD_VALIDATION], _responses(kind_schema, "200", "201"),
                                  request_body=_body(kind_schema)),
                "parameters": parameters,
            }
        elif subresource == "log":
            paths[sub_path] = {
                "get": {"tags": [_tag(resource)], "description": f"read log of the specified {kind}",
                        "operationId": f"read{prefix}{scope}{kind}Log",
                        "parameters": [_query(name, description, schema_type, uniqueItems=True) for name, description, schema_type in (
                            ("container", "The container for which to stream logs. Defaults to only container if there is one container in the pod.", "string"),
                            ("follow", "Follow the log stream of the pod. Defaults to false.", "boolean"),
                            ("limitBytes", "If set, the number of bytes to read from the server before terminating the log output.", "integer"),
                            ("previous", "Return previous terminated container logs. Defaults to false.", "boolean"),
                            ("sinceSeconds", "A relative time in seconds before the current time from which to show logs.", "integer"),
                            ("tailLines", "If set, the number of lines from the end of the logs to show.", "integer"),
                            ("timestamps", "If true, add an RFC3339 or RFC3339Nano timestamp at the beginning of every line of log output. Defaults to false.", "boolean"))],
                        "responses": {"200": {"description": "OK", "content": {media_type: {"schema": {"type": "string"}} for media_type in
                                                                                 ("text/plain", "application/json", "application/yaml", "application/vnd.kubernetes.protobuf")}},
                                      "401": {"description": "Unauthorized"}},
                        "x-kubernetes-action": "get",
                        "x-kubernetes-group-version-kind": _gvk(resource)},
                "parameters": parameters,
            }
        elif subresource in ("exec", "attach", "portforward"):
            options_kind = {"exec": "PodExecOptions", "attach": "PodAttachOptions", "portforward": "PodPortForwardOptions"}[subresource]
            connect_parameters = [name_parameter] + scope_parameters
            connect = {method: {"tags": [_tag(resource)], "description": f"connect {method.upper()} requests to {subresource} of {kind}",
                                "operationId": f"connect{prefix}{method.capitalize()}{scope}{kind}{title}",
                                "responses": {"200": {"description": "OK", "content": {"*/*": {"schema": {"type": "string"}}}},
                                              "401": {"description": "Unauthorized"}},
                                "x-kubernetes-action": "connect",
                                "x-kubernetes-group-version-kind": {"group": "", "version": "v1", "kind": options_kind}}
                       for method in ("get", "post")}
            connect["parameters"] = connect_parameters
            paths[sub_path] = connect


def _patch_operation(resource: Resource, operation_id: str, description: str, result_schema: str,
                     gvk: dict[str, str] | None = None) -> dict[str, Any]:
    return _operation(resource, "patch", operation_id, description,
                      [_DRY_RUN, _PATCH_FIELD_MANAGER, _FIELD_VALIDATION, _FORCE],
                      _responses(result_schema, "200", "201"), gvk=gvk, request_body=_patch_body())
