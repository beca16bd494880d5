"""The /openapi/v3 index and group-version documents kubectl reads for create/apply/explain."""
from __future__ import annotations

import hashlib

import orjson
import pytest

from pyk8s.api.resources import RESOURCES, group_versions
from pyk8s.apiserver.openapi import (PATCH_CONTENT_TYPES, group_version_document, group_version_path,
                                     index_document, openapi_response)

GROUP_VERSIONS = group_versions()


def _walk_refs(node):
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "$ref":
                yield value
            else:
                yield from _walk_refs(value)
    elif isinstance(node, list):
        for item in node:
            yield from _walk_refs(item)


def test_index_lists_every_served_group_version_with_hashed_url():
    paths = index_document()["paths"]
    assert set(paths) == {group_version_path(group, version) for group, version in GROUP_VERSIONS}
    assert "api/v1" in paths and "apis/apps/v1" in paths
    for key, entry in paths.items():
        body = openapi_response(f"/openapi/v3/{key}", {}, "application/json").body
        assert entry["serverRelativeURL"] == f"/openapi/v3/{key}?hash={hashlib.sha512(body).hexdigest().upper()}"


@pytest.mark.parametrize("group, version", GROUP_VERSIONS)
def test_document_is_openapi_3_with_refs_resolving_inside_it(group, version):
    document = group_version_document(group, version)
    assert document["openapi"] == "3.0.0"
    schemas = document["components"]["schemas"]
    refs = set(_walk_refs(document))
    assert refs
    for ref in refs:
        assert ref.startswith("#/components/schemas/")
        assert ref.removeprefix("#/components/schemas/") in schemas


@pytest.mark.parametrize("resource", RESOURCES, ids=lambda r: f"{r.group or 'core'}/{r.plural}")
def test_each_kind_has_a_gvk_patch_operation_with_field_validation_and_patch_bodies(resource):
    if "patch" not in resource.verbs:
        pytest.skip("create-only kind (an access review): upstream's document has no patch either")
    document = group_version_document(resource.group, resource.version)
    wanted = {"group": resource.group, "version": resource.version, "kind": resource.kind}
    patches = [item["patch"] for item in document["paths"].values()
               if "patch" in item and item["patch"]["x-kubernetes-group-version-kind"] == wanted]
    assert patches
    for patch in patches:  # kubectl stops at the first one it finds: every one must qualify
        assert patch["x-kubernetes-action"] == "patch"
        parameters = {p["name"]: p for p in patch["parameters"]}
        assert parameters["fieldValidation"]["in"] == "query"
        assert {"dryRun", "fieldManager", "force"} <= set(parameters)
        assert tuple(patch["requestBody"]["content"]) == PATCH_CONTENT_TYPES
        for media_type in patch["requestBody"]["content"].values():
            assert media_type["schema"]["$ref"].startswith("#/components/schemas/")


def test_kind_schemas_keep_gvk_and_descriptions_for_explain():
    document = group_version_document("apps", "v1")
    deployment = document["components"]["schemas"]["io.k8s.api.apps.v1.Deployment"]
    assert deployment["x-kubernetes-group-version-kind"] == [{"group": "apps", "kind": "Deployment", "version": "v1"}]
    assert deployment["description"].startswith("Deployment enables declarative updates")
    # Served as upstream serves it: no one-value enum pinning apiVersion (explain prints enums).
    assert "enum" not in deployment["properties"]["apiVersion"]
    assert "io.k8s.api.core.v1.Container" in document["components"]["schemas"]


def test_pod_paths_cover_collections_items_and_subresources():
    paths = group_version_document("", "v1")["paths"]
    pods = "/api/v1/namespaces/{namespace}/pods"
    assert set(paths[pods]) >= {"get", "post", "delete", "parameters"}
    assert set(paths[pods + "/{name}"]) >= {"get", "put", "patch", "delete"}
    assert "patch" in paths[pods + "/{name}/status"]
    assert paths["/api/v1/pods"]["get"]["x-kubernetes-action"] == "list"
    assert "/api/v1/nodes/{name}" in paths  # cluster-scoped: no namespace segment
    post = paths[pods]["post"]
    assert {p["name"] for p in post["parameters"]} >= {"fieldValidation", "fieldManager", "dryRun"}


def test_scale_subresource_is_autoscaling_scale():
    paths = group_version_document("apps", "v1")["paths"]
    scale = paths["/apis/apps/v1/namespaces/{namespace}/deployments/{name}/scale"]["patch"]
    assert scale["x-kubernetes-group-version-kind"] == {"group": "autoscaling", "version": "v1", "kind": "Scale"}
    assert "io.k8s.api.autoscaling.v1.Scale" in group_version_document("apps", "v1")["components"]["schemas"]


def test_hashed_url_is_immutable_and_carries_etag():
    url = index_document()["paths"]["apis/apps/v1"]["serverRelativeURL"]
    path, _, query = url.partition("?")
    answer = openapi_response(path, {"hash": query.removeprefix("hash=")}, "application/json")
    assert answer.status == 200 and answer.content_type == "application/json"
    assert answer.headers["Cache-Control"] == "public, immutable"
    assert answer.headers["Etag"] == '"' + query.removeprefix("hash=") + '"'


def test_stale_hash_redirects_to_current_document():
    answer = openapi_response("/openapi/v3/apis/apps/v1", {"hash": "0000"}, "application/json")
    assert answer.status == 301
    assert answer.headers["Location"] == index_document()["paths"]["apis/apps/v1"]["serverRelativeURL"]


def test_unhashed_document_is_not_marked_immutable():
    answer = openapi_response("openapi/v3/api/v1", {}, None)
    assert answer.status == 200 and "Cache-Control" not in answer.headers
    assert orjson.loads(answer.body)["openapi"] == "3.0.0"


def test_protobuf_only_accept_is_not_acceptable_but_json_fallback_is_served():
    protobuf = "application/com.github.proto-openapi.spec.v3@v1.0+protobuf"
    assert openapi_response("/openapi/v3", {}, protobuf).status == 406
    assert openapi_response("/openapi/v3", {}, f"{protobuf}, application/json").status == 200
    assert openapi_response("/openapi/v3", {}, "application/json, */*").status == 200


def test_unknown_openapi_paths_are_404_and_other_paths_are_not_ours():
    assert openapi_response("/openapi/v3/apis/nosuch.group/v1", {}, None).status == 404
    assert openapi_response("/openapi/v2", {}, None).status == 404
    assert openapi_response("/api/v1", {}, None) is None
    assert openapi_response("/openapiv3", {}, None) is None

