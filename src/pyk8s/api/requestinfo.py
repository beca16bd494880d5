"""What an HTTP request asks, as upstream's RequestInfoFactory parses it from the method,
path and query: verb, group/version/resource/subresource, namespace and name.

Pure: the authorizer (api/rbac.py's request_attributes) and the audit policy
(apiserver/audit.py) both read requests through `parse_request_info`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping
from urllib.parse import unquote

# Upstream's RequestInfoFactory: the verbs of methods and the namespace subresources.
METHOD_VERBS = {"POST": "create", "GET": "get", "HEAD": "get", "PUT": "update", "PATCH": "patch", "DELETE": "delete"}
NAMESPACE_SUBRESOURCES = frozenset({"status", "finalize"})


@dataclass
class RequestInfo:
    verb: str
    resource_request: bool = False
    api_group: str = ""
    api_version: str = ""
    resource: str = ""
    subresource: str = ""
    namespace: str = ""
    name: str = ""
    path: str = ""


def parse_request_info(method: str, path: str, query: Mapping[str, str], *, unescape_segments: bool = False,
                       name_from_field_selector: bool = False, namespace_names_itself: bool = False) -> RequestInfo:
    """`/api/v1/...` and `/apis/<group>/<version>/...` with at least a resource are resource
    requests (verb from the method; get without a name is list or, with ?watch, watch;
    delete without a name is deletecollection); everything else is a non-resource request
    whose verb is the lowercase method.

    The keywords keep each caller's reading: `unescape_segments` percent-decodes each path
    segment (audit); `name_from_field_selector` takes a list's name from an exact
    metadata.name field selector (authorization, as upstream); `namespace_names_itself`
    gives a nameless namespaces request the namespace as its name (audit)."""
    stripped = path.strip("/")
    if stripped:
        parts = [unquote(p) for p in stripped.split("/")] if unescape_segments else stripped.split("/")
    else:
        parts = []
    non_resource = RequestInfo(method.lower(), path=path)
    if not parts or parts[0] not in ("api", "apis"):
        return non_resource
    if parts[0] == "api":
        if len(parts) < 3:
            return non_resource
        group, version, rest = "", parts[1], parts[2:]
    else:
        if len(parts) < 4:
            return non_resource
        group, version, rest = parts[1], parts[2], parts[3:]
    verb = METHOD_VERBS.get(method.upper(), method.lower())
    if rest[0] == "watch":  # /api/v1/watch/... (deprecated, still served)
        verb = "watch"
        rest = rest[1:]
        if not rest:
            return non_resource
    namespace = ""
    if rest[0] == "namespaces":
        if len(rest) > 1:
            namespace = rest[1]
            if len(rest) > 2 and rest[2] not in NAMESPACE_SUBRESOURCES:
                rest = rest[2:]
    resource = rest[0]
    name = rest[1] if len(rest) > 1 else ""
    subresource = rest[2] if len(rest) > 2 else ""
    if namespace_names_itself and resource == "namespaces" and name == "" and namespace:
        name = namespace
    if not name and verb == "get":
        verb = "watch" if (query.get("watch") or "").lower() in ("1", "true") else "list"
        if name_from_field_selector:
            selected = exact_name(query.get("fieldSelector") or "")
            if selected:
                name = selected
    if not name and verb == "delete":
        verb = "deletecollection"
    return RequestInfo(verb, True, group, version, resource, subresource, namespace, name, path)


def exact_name(field_selector: str) -> str:
    """metadata.name=X (or ==X) in a field selector narrows a list to one name, as upstream."""
    for term in field_selector.split(","):
        key, op, value = term.partition("==") if "==" in term else term.partition("=")
        if op and key.strip() == "metadata.name" and not key.endswith("!"):
            value = value.strip()
            if value and "/" not in value and value not in (".", ".."):
                return value
    return ""
