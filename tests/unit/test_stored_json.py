"""The registry's shortcuts over stored JSON: they must give what decoding in full gives."""

from __future__ import annotations

import copy

import orjson
import pytest

from pyk8s.api import managedfields
from pyk8s.api.resources import lookup
from pyk8s.apiserver.registry import _ordered, decode_without_managed_fields
from pyk8s.storage.interface import KeyValue
from pyk8s.apiserver.registry import encode_with_resource_version

PODS = lookup("", "v1", "pods")
DEPLOYMENTS = lookup("apps", "v1", "deployments")


def _pod(**metadata) -> dict:
    pod = {"apiVersion": "v1", "kind": "Pod",
           "metadata": {"name": "web", "namespace": "default", "labels": {"app": "web"}, **metadata},
           "spec": {"containers": [{"name": "web", "image": "nginx", "ports": [{"containerPort": 80}]}]},
           "status": {"phase": "Pending"}}
    managedfields.update(PODS, None, pod, "kubectl", now="2026-01-01T00:00:00Z")
    return pod


def _stored(obj: dict, revision: int = 42) -> bytes:
    return encode_with_resource_version(KeyValue("/k", orjson.dumps(_ordered(obj)), revision, revision))


def test_split_equals_the_full_decode_without_managed_fields():
    stored = _stored(_pod())
    obj, metadata = decode_without_managed_fields(stored)
    full = orjson.loads(stored)
    assert orjson.loads(metadata) == full["metadata"]
    assert full["metadata"].pop("managedFields")
    assert obj == full


@pytest.mark.parametrize("manager", ["a]}b", "x]},", "]}", 'q"]}'])
def test_brackets_in_a_manager_name_never_cut_the_metadata_short(manager):
    pod = _pod()
    pod["metadata"]["managedFields"][0]["manager"] = manager
    stored = _stored(pod)
    split = decode_without_managed_fields(stored)
    full = orjson.loads(stored)
    if split is not None:  # either exact, or refused (the caller then decodes in full)
        obj, metadata = split
        assert orjson.loads(metadata) == full["metadata"]
        del full["metadata"]["managedFields"]
        assert obj == full


def test_an_embedded_objectmeta_with_managed_fields_is_left_to_the_full_decode():
    deployment = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web", "namespace": "default"},
                  "spec": {"template": {"metadata": {"labels": {"app": "web"},
                                                     "managedFields": [{"manager": "m", "fieldsV1": {}}]},
                                        "spec": {"containers": [{"name": "web", "image": "nginx"}]}}}}
    assert decode_without_managed_fields(_stored(deployment)) is None
    # With its own managedFields first, the top-level ones are the ones split off.
    managedfields.update(DEPLOYMENTS, None, deployment, "kubectl")
    stored = _stored(copy.deepcopy(deployment))
    obj, metadata = decode_without_managed_fields(stored)
    assert orjson.loads(metadata)["managedFields"] == deployment["metadata"]["managedFields"]
    assert obj["spec"]["template"]["metadata"]["managedFields"] == [{"manager": "m", "fieldsV1": {}}]


def test_objects_without_managed_fields_are_left_to_the_full_decode():
    assert decode_without_managed_fields(_stored({"apiVersion": "v1", "kind": "ConfigMap",
                                                  "metadata": {"name": "c"}, "data": {"a": "1"}})) is None
