"""Every reply built from stored bytes equals the reply built from a full decode.

Generated objects (with and without managedFields, ownerReferences, an embedded ObjectMeta
with managedFields of its own, keys in unusual order, unicode and brackets in strings) are
stored as the registry stores them, and as a re-encoding would leave them; the fast paths
(Table rows from stored bytes, the managedFields split, the resourceVersion splice) must
answer exactly what decoding in full answers, after canonical JSON.
"""

from __future__ import annotations

import random

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from pyk8s.api import managedfields
from pyk8s.api.resources import lookup
from pyk8s.apiserver.registry import _ordered, decode, decode_without_managed_fields, encode_with_resource_version
from pyk8s.apiserver.server import table_row, table_row_json
from pyk8s.storage.interface import KeyValue

RESOURCES = {
    "Pod": lookup("", "v1", "pods"),
    "Deployment": lookup("apps", "v1", "deployments"),
    "ReplicaSet": lookup("apps", "v1", "replicasets"),
    "Service": lookup("", "v1", "services"),
    "ConfigMap": lookup("", "v1", "configmaps"),
    "Endpoints": lookup("", "v1", "endpoints"),
}
NOW = 1_800_000_000.0

# Strings that stress a byte-level reader: JSON punctuation, brackets, escapes, unicode.
tricky_text = st.text(alphabet=st.sampled_from(list('ab]}[{",:\\ \u00e9\u4e2d\U0001f600') + ["\n"]), max_size=12)
label_values = st.one_of(st.sampled_from(["web", "api", "", "hello-world"]), tricky_text)


def _containers(draw, count: int) -> list[dict]:
    return [{"name": f"c{i}", "image": draw(st.sampled_from(["nginx", "pyk8s/busybox:1.35", "a]}b"])),
             "ports": [{"containerPort": 80 + i, "protocol": "TCP"}]} for i in range(count)]


@st.composite
def objects(draw):
    kind = draw(st.sampled_from(sorted(RESOURCES)))
    metadata: dict = {"name": draw(st.sampled_from(["web", "web-1", "x"])), "namespace": "default",
                      "uid": "0b9c0f1e-1111-2222-3333-444455556666", "creationTimestamp": "2026-12-01T00:00:00Z"}
    if draw(st.booleans()):
        metadata["labels"] = draw(st.dictionaries(st.sampled_from(["app", "run", "tier", "k"]), label_values, max_size=3))
    if draw(st.booleans()):
        metadata["annotations"] = draw(st.dictionaries(st.sampled_from(["note", "spec", '"spec":']), tricky_text, max_size=2))
    if draw(st.booleans()):
        metadata["ownerReferences"] = [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web-1",
                                        "uid": "u", "controller": True, "blockOwnerDeletion": True}]
    if draw(st.booleans()):
        metadata["deletionTimestamp"] = "2026-12-01T00:01:00Z"
    obj: dict = {"apiVersion": RESOURCES[kind].api_version, "kind": kind, "metadata": metadata}
    count = draw(st.integers(1, 3))
    if kind == "Pod":
        obj["spec"] = {"containers": _containers(draw, count), "nodeName": draw(st.sampled_from(["", "vm"]))}
        if draw(st.booleans()):
            obj["status"] = {"phase": draw(st.sampled_from(["Pending", "Running", "Succeeded"])),
                             "podIP": "10.42.0.5", "podIPs": [{"ip": "10.42.0.5"}],
                             "conditions": [{"type": "Ready", "status": draw(st.sampled_from(["True", "False"]))}],
                             "containerStatuses": [{"name": f"c{i}", "ready": draw(st.booleans()),
                                                    "restartCount": draw(st.integers(0, 3)),
                                                    "state": draw(st.sampled_from([{"running": {"startedAt": "2026-12-01T00:00:01Z"}},
                                                                                   {"waiting": {"reason": "CrashLoopBackOff"}}]))}
                                                   for i in range(count)]}
    elif kind in ("Deployment", "ReplicaSet"):
        template_meta: dict = {"labels": {"app": "web"}}
        if draw(st.booleans()):
            template_meta["managedFields"] = [{"manager": draw(tricky_text), "operation": "Update", "fieldsV1": {}}]
        obj["spec"] = {"replicas": count, "selector": {"matchLabels": {"app": "web"}},
                       "template": {"metadata": template_meta, "spec": {"containers": _containers(draw, count)}}}
        if draw(st.booleans()):
            obj["status"] = {"replicas": count, "readyReplicas": draw(st.integers(0, count)), "availableReplicas": 1}
    elif kind == "Service":
        obj["spec"] = {"type": "NodePort", "clusterIP": "10.43.0.7", "clusterIPs": ["10.43.0.7"],
                       "selector": {"app": "web"}, "ports": [{"port": 80, "nodePort": 30080, "protocol": "TCP"}]}
    elif kind == "ConfigMap":
        obj["data"] = draw(st.dictionaries(st.sampled_from(["a", "b.txt", "spec"]), tricky_text, max_size=3))
    else:
        obj["subsets"] = [{"addresses": [{"ip": f"10.42.0.{i}"} for i in range(count)], "ports": [{"port": 80}]}]
    if draw(st.booleans()):
        manager = draw(st.one_of(st.sampled_from(["kubectl", "kube-controller-manager"]), tricky_text))
        managedfields.update(RESOURCES[kind], None, obj, manager, now="2026-12-01T00:00:00Z")
    return obj


def _shuffled(obj, rng: random.Random):
    if isinstance(obj, dict):
        keys = list(obj)
        rng.shuffle(keys)
        return {key: _shuffled(obj[key], rng) for key in keys}
    if isinstance(obj, list):
        return [_shuffled(item, rng) for item in obj]
    return obj


def _canonical(value) -> bytes:
    return orjson.dumps(orjson.loads(value) if isinstance(value, bytes) else value, option=orjson.OPT_SORT_KEYS)


@st.composite
def stored_objects(draw):
    """(resource, KeyValue) as the store holds the object: in the registry's key order, or in
    any order (a writer that did not order it, a re-encoding)."""
    obj = draw(objects())
    if draw(st.booleans()):
        value = orjson.dumps(_ordered(obj))
    else:
        value = orjson.dumps(_shuffled(obj, random.Random(draw(st.integers(0, 2**32)))))
    revision = draw(st.integers(1, 10**9))
    return RESOURCES[obj["kind"]], KeyValue("/registry/x", value, revision, revision)


@settings(max_examples=400, deadline=None)
@given(stored_objects(), st.sampled_from(["Metadata", "Object", "None"]))
def test_table_rows_from_stored_bytes_equal_rows_from_the_full_decode(stored, include_object):
    resource, kv = stored
    fast = table_row_json(resource, encode_with_resource_version(kv), include_object, NOW)
    plain = table_row(resource, decode(kv), include_object, NOW)
    assert _canonical(fast) == _canonical(plain)


@settings(max_examples=400, deadline=None)
@given(stored_objects())
def test_the_managed_fields_split_is_exact_or_declines(stored):
    _, kv = stored
    value = encode_with_resource_version(kv)
    full = decode(kv)
    split = decode_without_managed_fields(value)
    if split is None:
        return
    obj, metadata = split
    assert _canonical(metadata) == _canonical(full["metadata"])
    full["metadata"].pop("managedFields", None)
    assert _canonical(obj) == _canonical(full)


@settings(max_examples=200, deadline=None)
@given(stored_objects())
def test_the_resource_version_splice_equals_the_full_decode(stored):
    _, kv = stored
    assert _canonical(encode_with_resource_version(kv)) == _canonical(decode(kv))


def test_an_object_re_encoded_with_its_resource_version_last_keeps_its_spec_in_the_row():
    """The shape that printed `0/0` for running pods under `kubectl get pods -l`: metadata
    with resourceVersion after managedFields, and a `]}` in the spec further on."""
    pod = {"apiVersion": "v1", "kind": "Pod",
           "metadata": {"name": "hello", "namespace": "default", "labels": {"app": "hello"}},
           "spec": {"containers": [{"name": "c", "image": "i"}]},
           "status": {"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}],
                      "containerStatuses": [{"name": "c", "ready": True, "restartCount": 0,
                                             "state": {"running": {"startedAt": "2026-12-01T00:00:01Z"}}}]}}
    managedfields.update(RESOURCES["Pod"], None, pod, "kubelet", now="2026-12-01T00:00:00Z")
    pod["metadata"]["resourceVersion"] = "7"
    row = orjson.loads(table_row_json(RESOURCES["Pod"], orjson.dumps(pod), "Metadata", NOW))
    assert row["cells"][1:3] == ["1/1", "Running"]
