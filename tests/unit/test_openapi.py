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
    assert openapi_response("/openapi/v2/x", {}, None).status == 404
    assert openapi_response("/api/v1", {}, None) is None
    assert openapi_response("/openapiv3", {}, None) is None



# ---------------------------------------------------------------- /openapi/v2

def _fields(data: bytes) -> list[tuple[int, int | bytes]]:
    """A protobuf message as (field number, varint or bytes), in order."""
    fields, position = [], 0

    def varint() -> int:
        nonlocal position
        value = shift = 0
        while True:
            byte = data[position]
            position += 1
            value |= (byte & 0x7F) << shift
            shift += 7
            if not byte & 0x80:
                return value
    while position < len(data):
        key = varint()
        number, wire = key >> 3, key & 7
        assert wire in (0, 2), wire
        if wire == 0:
            fields.append((number, varint()))
        else:
            length = varint()
            fields.append((number, bytes(data[position:position + length])))
            position += length
    return fields


def _decode_schema(data: bytes) -> dict:
    """gnostic openapi.v2.Schema back to JSON (the fields the encoder writes)."""
    schema: dict = {}
    for number, value in _fields(data):
        if number in (1, 2, 3, 4):
            schema[{1: "$ref", 2: "format", 3: "title", 4: "description"}[number]] = value.decode()
        elif number == 19:
            schema.setdefault("required", []).append(value.decode())
        elif number == 21:
            ((inner_number, inner),) = _fields(value)
            schema["additionalProperties"] = _decode_schema(inner) if inner_number == 1 else bool(inner)
        elif number == 22:
            types = [item.decode() for _, item in _fields(value)]
            schema["type"] = types[0] if len(types) == 1 else types
        elif number == 23:
            ((_, inner),) = _fields(value)
            schema["items"] = _decode_schema(inner)
        elif number == 25:
            schema["properties"] = {}
            for _, named in _fields(value):
                (_, name), (_, child) = _fields(named)
                schema["properties"][name.decode()] = _decode_schema(child)
        elif number == 27:
            schema["readOnly"] = bool(value)
        elif number == 31:
            (_, name), (_, any_value) = _fields(value)
            ((yaml_number, text),) = _fields(any_value)
            assert yaml_number == 2
            schema[name.decode()] = orjson.loads(text)
        else:
            raise AssertionError(f"unexpected Schema field {number}")
    return schema


def test_v2_document_has_every_served_schema_in_swagger_2_form():
    from pyk8s.apiserver.openapi import v2_document
    document = v2_document()
    assert document["swagger"] == "2.0"
    served = {}
    for key in index_document()["paths"]:
        group_version = key.removeprefix("apis/").removeprefix("api/")
        group, _, version = group_version.rpartition("/")
        served.update(group_version_document(group, version)["components"]["schemas"])
    assert set(document["definitions"]) == set(served)
    review = document["definitions"]["io.k8s.api.authorization.v1.SubjectAccessReview"]
    assert review["x-kubernetes-group-version-kind"] == [
        {"group": "authorization.k8s.io", "kind": "SubjectAccessReview", "version": "v1"}]
    # v3's described reference (allOf of one $ref) is v2's $ref with a description.
    assert review["properties"]["spec"] == {"$ref": "#/definitions/io.k8s.api.authorization.v1.SubjectAccessReviewSpec",
                                            "description": served["io.k8s.api.authorization.v1.SubjectAccessReview"][
                                                "properties"]["spec"]["description"]}
    text = orjson.dumps(document).decode()
    assert "#/components/" not in text and '"allOf"' not in text
    # Every reference resolves inside the document (kubectl's parser refuses unknown models).
    for ref in _refs(document["definitions"]):
        assert ref.removeprefix("#/definitions/") in document["definitions"], ref


def _refs(node):
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "$ref":
                yield value
            else:
                yield from _refs(value)
    elif isinstance(node, list):
        for item in node:
            yield from _refs(item)


def test_v2_protobuf_is_the_json_document_in_gnostic_form():
    from pyk8s.apiserver.openapi import v2_document
    accept = "application/com.github.proto-openapi.spec.v2@v1.0+protobuf"
    answer = openapi_response("/openapi/v2", {}, accept)
    assert answer.status == 200
    assert answer.content_type == "application/com.github.proto-openapi.spec.v2.v1.0+protobuf"
    document = v2_document()
    fields = dict(_fields(answer.body))
    assert fields[1] == b"2.0"
    info = dict(_fields(fields[2]))
    assert (info[1].decode(), info[2].decode()) == (document["info"]["title"], document["info"]["version"])
    decoded = {}
    for _, named in _fields(fields[9]):
        (_, name), (_, schema) = _fields(named)
        decoded[name.decode()] = _decode_schema(schema)
    assert decoded == document["definitions"]
    json_answer = openapi_response("/openapi/v2", {}, "application/json")
    assert json_answer.content_type == "application/json" and orjson.loads(json_answer.body) == document
    assert openapi_response("/openapi/v2", {}, "text/html").status == 406
