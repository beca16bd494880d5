"""Discovery documents, built once from the resource catalogue.

Aggregated discovery (apidiscovery.k8s.io/v2, one request for all groups) and the legacy
documents (APIVersions, APIGroupList, APIResourceList per group-version) that older
clients and the official Python client read.
"""

from __future__ import annotations

import hashlib
from typing import Any

from pyk8s.api.resources import RESOURCES, Resource, group_versions

AGGREGATED_CONTENT_TYPE = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList"

# Subresource → (response group, version, kind or "" for the parent's kind, verbs).
_SUBRESOURCES: dict[str, tuple[str, str, str, tuple[str, ...]]] = {
    "status": ("", "", "", ("get", "patch", "update")),
    "scale": ("autoscaling", "v1", "Scale", ("get", "patch", "update")),
    "binding": ("", "v1", "Binding", ("create",)),
    "eviction": ("policy", "v1", "Eviction", ("create",)),
    "log": ("", "v1", "Pod", ("get",)),
    "exec": ("", "v1", "PodExecOptions", ("create", "get")),
    "attach": ("", "v1", "PodAttachOptions", ("create", "get")),
    "portforward": ("", "v1", "PodPortForwardOptions", ("create", "get")),
    "proxy": ("", "v1", "", ("create", "delete", "get", "patch", "update")),
    "token": ("authentication.k8s.io", "v1", "TokenRequest", ("create",)),
    "ephemeralcontainers": ("", "", "", ("get", "patch", "update")),
    "finalize": ("", "", "", ("update",)),
    "approval": ("", "", "", ("get", "patch", "update")),
}
_PROXY_KINDS = {"Pod": "PodProxyOptions", "Node": "NodeProxyOptions", "Service": "ServiceProxyOptions"}


def _subresource(resource: Resource, name: str) -> tuple[str, str, str, tuple[str, ...]]:
    group, version, kind, verbs = _SUBRESOURCES[name]
    if name == "proxy":
        kind = _PROXY_KINDS.get(resource.kind, "")
    if not kind:
        group, version, kind = resource.group, resource.version, resource.kind
    return group, version, kind, verbs


def _storage_version_hash(resource: Resource) -> str:
    digest = hashlib.sha256(f"{resource.group}/{resource.version}/{resource.kind}".encode()).digest()
    import base64
    return base64.b64encode(digest[:8]).decode()


def _resources_of(group: str, version: str) -> list[Resource]:
    return [r for r in RESOURCES if r.group == group and r.version == version]


def aggregated(core: bool) -> dict[str, Any]:
    """`/api` (core=True) or `/apis` as an APIGroupDiscoveryList."""
    items = []
    for group, version in group_versions():
        if (group == "") != core:
            continue
        resources = []
        for r in _resources_of(group, version):
            entry: dict[str, Any] = {
                "resource": r.plural,
                "responseKind": {"group": r.group, "version": r.version, "kind": r.kind},
                "scope": "Namespaced" if r.namespaced else "Cluster",
                "singularResource": r.singular_name,
                "verbs": list(r.verbs),
            }
            if r.short_names:
                entry["shortNames"] = list(r.short_names)
            if r.categories:
                entry["categories"] = list(r.categories)
            if r.subresources:
                entry["subresources"] = []
                for name in r.subresources:
                    sub_group, sub_version, sub_kind, verbs = _subresource(r, name)
                    entry["subresources"].append({
                        "subresource": name,
                        "responseKind": {"group": sub_group, "version": sub_version, "kind": sub_kind},
                        "verbs": list(verbs),
                    })
            resources.append(entry)
        metadata: dict[str, Any] = {"creationTimestamp": None}
        if group:
            metadata["name"] = group
        items.append({"metadata": metadata,
                      "versions": [{"version": version, "resources": resources, "freshness": "Current"}]})
    return {"kind": "APIGroupDiscoveryList", "apiVersion": "apidiscovery.k8s.io/v2", "metadata": {}, "items": items}


def api_versions(server_address: str) -> dict[str, Any]:
    return {"kind": "APIVersions", "versions": ["v1"],
            "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": server_address}]}


def api_group_list() -> dict[str, Any]:
    groups = []
    for group, version in group_versions():
        if not group:
            continue
        gv = {"groupVersion": f"{group}/{version}", "version": version}
        groups.append({"name": group, "versions": [gv], "preferredVersion": gv})
    return {"kind": "APIGroupList", "apiVersion": "v1", "groups": groups}


def api_group(group: str) -> dict[str, Any] | None:
    for entry in api_group_list()["groups"]:
        if entry["name"] == group:
            return {"kind": "APIGroup", "apiVersion": "v1", **entry}
    return None


def api_resource_list(group: str, version: str) -> dict[str, Any] | None:
    resources = _resources_of(group, version)
    if not resources:
        return None
    entries = []
    for r in resources:
        entry: dict[str, Any] = {
            "name": r.plural, "singularName": r.singular_name, "namespaced": r.namespaced,
            "kind": r.kind, "verbs": list(r.verbs),
        }
        if r.short_names:
            entry["shortNames"] = list(r.short_names)
        if r.categories:
            entry["categories"] = list(r.categories)
        entry["storageVersionHash"] = _storage_version_hash(r)
        entries.append(entry)
        for name in r.subresources:
            sub_group, sub_version, sub_kind, verbs = _subresource(r, name)
            sub: dict[str, Any] = {"name": f"{r.plural}/{name}", "singularName": r.singular_name,
                                   "namespaced": r.namespaced, "kind": sub_kind, "verbs": list(verbs)}
            if sub_group != r.group or sub_version != r.version:
                sub["group"] = sub_group
                sub["version"] = sub_version
            entries.append(sub)
    group_version = f"{group}/{version}" if group else version
    return {"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": group_version, "resources": entries}
