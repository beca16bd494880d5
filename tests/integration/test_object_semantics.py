"""Object semantics of the API server, driven through raw HTTPS and the official client:
uid/resourceVersion/generation/creationTimestamp, finalizers and deletionTimestamp,
namespaces going Terminating, graceful deletion of bound pods, dryRun, deletecollection,
YAML in and out. Expected behaviour is upstream's (kube-apiserver 1.36)."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
import uuid

import pytest
import yaml
from kubernetes import client
from kubernetes.client.rest import ApiException


ROOT_CA = "kube-root-ca.crt"  # published into every namespace, as upstream: not the tests' objects


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:6]}"


class Raw:
    """Plain HTTPS requests with the kubeconfig's CA and client certificate."""

    def __init__(self, server):
        self.url = server.url
        self.context = server.ssl_context()

    def request(self, method: str, path: str, body=None, *, content_type: str = "application/json",
                accept: str = "application/json") -> tuple[int, dict[str, str], bytes]:
        data = None
        if body is not None:
            data = body if isinstance(body, bytes) else json.dumps(body).encode()
        request = urllib.request.Request(self.url + path, data=data, method=method,
                                         headers={"Content-Type": content_type, "Accept": accept})
        try:
            with urllib.request.urlopen(request, context=self.context, timeout=10) as reply:
                return reply.status, dict(reply.headers), reply.read()
        except urllib.error.HTTPError as error:
            return error.code, dict(error.headers), error.read()

    def json(self, method: str, path: str, body=None, **kwargs) -> tuple[int, dict]:
        status, _, payload = self.request(method, path, body, **kwargs)
        return status, json.loads(payload) if payload else {}


@pytest.fixture(scope="module")
def raw(server):
    return Raw(server)


@pytest.fixture(scope="module")
def core(api_client):
    return client.CoreV1Api(api_client)


@pytest.fixture
def namespace(raw):
    name = unique("os")
    status, _ = raw.json("POST", "/api/v1/namespaces", {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})
    assert status == 201
    return name


def poll(condition, timeout: float = 10.0, interval: float = 0.05):
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError("condition not met before the deadline")
        time.sleep(interval)


def deployment(name: str, replicas: int = 1, image: str = "nginx") -> dict:
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name},
            "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": name}},
                     "template": {"metadata": {"labels": {"app": name}},
                                  "spec": {"containers": [{"name": "main", "image": image}]}}}}


# ---------------------------------------------------------------- metadata


def test_create_sets_uid_resource_version_and_creation_timestamp(raw, namespace):
    status, created = raw.json("POST", f"/api/v1/namespaces/{namespace}/configmaps",
                               {"apiVersion": "v1", "kind": "ConfigMap",
                                "metadata": {"name": "meta", "uid": "client-chosen", "creationTimestamp": "2000-01-01T00:00:00Z"}})
    assert status == 201
    meta = created["metadata"]
    assert meta["uid"] != "client-chosen" and len(meta["uid"]) == 36
    assert meta["creationTimestamp"] != "2000-01-01T00:00:00Z"
    assert meta["creationTimestamp"].endswith("Z")
    assert int(meta["resourceVersion"]) > 0
    status, fetched = raw.json("GET", f"/api/v1/namespaces/{namespace}/configmaps/meta")
    assert status == 200 and fetched["metadata"] == meta


def test_generation_is_bumped_on_spec_change_only(raw, namespace):
    base = f"/apis/apps/v1/namespaces/{namespace}/deployments"
    status, created = raw.json("POST", base, deployment("gen"))
    assert status == 201 and created["metadata"]["generation"] == 1
    status, relabelled = raw.json("PATCH", f"{base}/gen", {"metadata": {"labels": {"x": "y"}}},
                                  content_type="application/merge-patch+json")
    assert status == 200 and relabelled["metadata"]["generation"] == 1
    assert int(relabelled["metadata"]["resourceVersion"]) > int(created["metadata"]["resourceVersion"])
    status, scaled = raw.json("PATCH", f"{base}/gen", {"spec": {"replicas": 5}},
                              content_type="application/merge-patch+json")
    assert status == 200 and scaled["metadata"]["generation"] == 2
    # status writes never bump generation, and the main resource ignores status changes
    status, with_status = raw.json("PATCH", f"{base}/gen/status", {"status": {"observedGeneration": 2, "replicas": 0}},
                                   content_type="application/merge-patch+json")
    assert status == 200 and with_status["metadata"]["generation"] == 2
    assert with_status["status"]["observedGeneration"] == 2
    status, ignored = raw.json("PATCH", f"{base}/gen", {"status": {"observedGeneration": 99}},
                               content_type="application/merge-patch+json")
    assert status == 200 and ignored["status"]["observedGeneration"] == 2


def test_update_with_stale_resource_version_is_conflict_and_without_one_wins(raw, namespace):
    path = f"/api/v1/namespaces/{namespace}/configmaps"
    _, created = raw.json("POST", path, {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cas"}, "data": {"v": "1"}})
    updated = dict(created, data={"v": "2"})
    status, first = raw.json("PUT", f"{path}/cas", updated)
    assert status == 200
    status, conflict = raw.json("PUT", f"{path}/cas", dict(created, data={"v": "3"}))
    assert status == 409 and conflict["reason"] == "Conflict"
    assert conflict["details"] == {"name": "cas", "kind": "configmaps"}
    unconditional = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cas"}, "data": {"v": "4"}}
    status, forced = raw.json("PUT", f"{path}/cas", unconditional)
    assert status == 200 and forced["data"] == {"v": "4"}
    assert forced["metadata"]["uid"] == created["metadata"]["uid"]


def test_name_in_body_must_match_url(raw, namespace):
    path = f"/api/v1/namespaces/{namespace}/configmaps"
    raw.json("POST", path, {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "one"}})
    status, body = raw.json("PUT", f"{path}/one", {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "two"}})
    assert status == 400 and body["reason"] == "BadRequest"
    assert body["message"] == "the name of the object (two) does not match the name on the URL (one)"


def test_missing_name_is_invalid_with_required_cause(raw, namespace):
    status, body = raw.json("POST", f"/api/v1/namespaces/{namespace}/configmaps",
                            {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {}})
    assert status == 422 and body["reason"] == "Invalid"
    assert body["details"]["causes"] == [{"reason": "FieldValueRequired",
                                          "message": "Required value: name or generateName is required",
                                          "field": "metadata.name"}]


def test_generate_name_creates_distinct_names(raw, namespace):
    names = set()
    for _ in range(3):
        status, created = raw.json("POST", f"/api/v1/namespaces/{namespace}/configmaps",
                                   {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"generateName": "auto-"}})
        assert status == 201 and created["metadata"]["name"].startswith("auto-")
        names.add(created["metadata"]["name"])
    assert len(names) == 3


# ---------------------------------------------------------------- finalizers


def test_finalizer_keeps_object_until_removed(raw, namespace):
    path = f"/api/v1/namespaces/{namespace}/configmaps"
    raw.json("POST", path, {"apiVersion": "v1", "kind": "ConfigMap",
                            "metadata": {"name": "held", "finalizers": ["example.com/hold"]}})
    status, marked = raw.json("DELETE", f"{path}/held")
    # upstream answers 200 (not 202) when an object is only marked; 202 is reserved for orphanDependents=false
    assert status == 200
    assert marked["metadata"]["deletionTimestamp"]
    assert marked["metadata"]["deletionGracePeriodSeconds"] == 0
    assert marked["metadata"]["finalizers"] == ["example.com/hold"]
    status, still = raw.json("GET", f"{path}/held")
    assert status == 200 and still["metadata"]["deletionTimestamp"] == marked["metadata"]["deletionTimestamp"]
    # a second delete changes nothing; new finalizers cannot be added once deletion started
    status, again = raw.json("DELETE", f"{path}/held")
    assert status == 200 and again["metadata"]["deletionTimestamp"] == marked["metadata"]["deletionTimestamp"]
    status, _ = raw.json("PATCH", f"{path}/held", {"metadata": {"finalizers": None}},
                         content_type="application/merge-patch+json")
    assert status == 200
    status, gone = raw.json("GET", f"{path}/held")
    assert status == 404 and gone["reason"] == "NotFound"


def test_delete_with_foreground_propagation_adds_the_finalizer(raw, namespace):
    base = f"/apis/apps/v1/namespaces/{namespace}/deployments"
    raw.json("POST", base, deployment("fg"))
    status, marked = raw.json("DELETE", f"{base}/fg", {"propagationPolicy": "Foreground"})
    assert status == 200
    assert marked["metadata"]["finalizers"] == ["foregroundDeletion"]
    assert marked["metadata"]["deletionTimestamp"]


# ---------------------------------------------------------------- namespaces


def test_deleted_namespace_goes_terminating_and_refuses_new_content(raw):
    name = unique("term")
    raw.json("POST", "/api/v1/namespaces", {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})
    status, created = raw.json("GET", f"/api/v1/namespaces/{name}")
    assert created["spec"]["finalizers"] == ["kubernetes"]
    assert created["status"]["phase"] == "Active"
    status, deleted = raw.json("DELETE", f"/api/v1/namespaces/{name}")
    assert status == 200
    assert deleted["status"]["phase"] == "Terminating"
    assert deleted["metadata"]["deletionTimestamp"]
    status, refused = raw.json("POST", f"/api/v1/namespaces/{name}/configmaps",
                               {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "late"}})
    assert status == 403 and refused["reason"] == "Forbidden"
    assert refused["message"] == (f'configmaps "late" is forbidden: unable to create new content in namespace '
                                  f"{name} because it is being terminated")


def test_default_namespaces_exist_and_are_active(raw):
    for name in ("default", "kube-system", "kube-public", "kube-node-lease"):
        status, namespace = raw.json("GET", f"/api/v1/namespaces/{name}")
        assert status == 200 and namespace["status"]["phase"] == "Active", name
    status, service = raw.json("GET", "/api/v1/namespaces/default/services/kubernetes")
    assert status == 200 and service["spec"]["clusterIP"] == "10.43.0.1"


def test_cluster_scoped_and_namespaced_paths_are_enforced(raw, namespace):
    status, _ = raw.json("GET", f"/api/v1/namespaces/{namespace}/namespaces/x")
    assert status == 404
    status, listed = raw.json("GET", "/api/v1/configmaps")
    assert status == 200 and listed["kind"] == "ConfigMapList"


# ---------------------------------------------------------------- pods


def pod_body(name: str, node: str | None = None) -> dict:
    spec = {"containers": [{"name": "main", "image": "busybox"}]}
    if node:
        spec["nodeName"] = node
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name}, "spec": spec}


def test_unbound_pod_is_deleted_at_once(raw, namespace):
    path = f"/api/v1/namespaces/{namespace}/pods"
    raw.json("POST", path, pod_body("free"))
    status, _ = raw.json("DELETE", f"{path}/free")
    assert status == 200
    assert raw.json("GET", f"{path}/free")[0] == 404


def test_bound_pod_is_marked_for_graceful_deletion_and_stays(raw, namespace):
    path = f"/api/v1/namespaces/{namespace}/pods"
    status, created = raw.json("POST", path, pod_body("bound", node="node-1"))
    assert status == 201 and created["spec"]["terminationGracePeriodSeconds"] == 30
    status, marked = raw.json("DELETE", f"{path}/bound")
    assert status == 200
    assert marked["metadata"]["deletionTimestamp"]
    assert marked["metadata"]["deletionGracePeriodSeconds"] == 30
    status, still = raw.json("GET", f"{path}/bound")
    assert status == 200 and still["metadata"]["deletionGracePeriodSeconds"] == 30
    # a shorter grace period may replace a longer one; 0 (what the kubelet sends) removes it
    status, shorter = raw.json("DELETE", f"{path}/bound", {"gracePeriodSeconds": 5})
    assert status == 200 and shorter["metadata"]["deletionGracePeriodSeconds"] == 5
    status, _ = raw.json("DELETE", f"{path}/bound", {"gracePeriodSeconds": 0})
    assert status == 200
    assert raw.json("GET", f"{path}/bound")[0] == 404


def test_pod_defaults_are_filled_in(raw, namespace):
    status, created = raw.json("POST", f"/api/v1/namespaces/{namespace}/pods", pod_body("defaults"))
    assert status == 201
    spec = created["spec"]
    assert spec["restartPolicy"] == "Always" and spec["dnsPolicy"] == "ClusterFirst"
    assert spec["schedulerName"] == "default-scheduler"
    assert spec["containers"][0]["imagePullPolicy"] == "Always"  # no tag means :latest
    assert spec["containers"][0]["terminationMessagePath"] == "/dev/termination-log"
    assert created["status"]["phase"] == "Pending"
    assert created["status"]["qosClass"] == "BestEffort"


# ---------------------------------------------------------------- dryRun


def test_dry_run_create_update_and_delete_persist_nothing(raw, namespace):
    path = f"/api/v1/namespaces/{namespace}/configmaps"
    body = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "dry"}, "data": {"v": "1"}}
    status, created = raw.json("POST", f"{path}?dryRun=All", body)
    assert status == 201 and created["metadata"]["name"] == "dry" and created["metadata"]["uid"]
    assert raw.json("GET", f"{path}/dry")[0] == 404

    raw.json("POST", path, body)
    status, patched = raw.json("PATCH", f"{path}/dry?dryRun=All", {"data": {"v": "2"}},
                               content_type="application/merge-patch+json")
    assert status == 200 and patched["data"] == {"v": "2"}
    assert raw.json("GET", f"{path}/dry")[1]["data"] == {"v": "1"}

    status, _ = raw.json("DELETE", f"{path}/dry?dryRun=All")
    assert status == 200
    assert raw.json("GET", f"{path}/dry")[0] == 200

    status, invalid = raw.json("POST", f"{path}?dryRun=All", dict(body, metadata={"name": "Bad_Name"}))
    assert status == 422 and invalid["reason"] == "Invalid"
    status, bad = raw.json("POST", f"{path}?dryRun=Nope", body)
    assert status == 400


def test_dry_run_through_the_official_client(core, namespace):
    body = client.V1ConfigMap(metadata=client.V1ObjectMeta(name="dry-client"), data={"a": "b"})
    returned = core.create_namespaced_config_map(namespace, body, dry_run="All")
    assert returned.metadata.name == "dry-client"
    with pytest.raises(ApiException) as missing:
        core.read_namespaced_config_map("dry-client", namespace)
    assert missing.value.status == 404


# ---------------------------------------------------------------- deletecollection


def test_deletecollection_removes_only_selected_objects(core, namespace):
    for name, team in (("c1", "red"), ("c2", "red"), ("c3", "blue")):
        core.create_namespaced_config_map(namespace, client.V1ConfigMap(
            metadata=client.V1ObjectMeta(name=name, labels={"team": team})))
    core.delete_collection_namespaced_config_map(namespace, label_selector="team=red")
    remaining = [item.metadata.name for item in core.list_namespaced_config_map(namespace).items
                 if item.metadata.name != ROOT_CA]
    assert remaining == ["c3"]


def test_deletecollection_with_field_selector(raw, namespace):
    path = f"/api/v1/namespaces/{namespace}/configmaps"
    for name in ("f1", "f2"):
        raw.json("POST", path, {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}})
    status, listed = raw.json("DELETE", f"{path}?fieldSelector=metadata.name%3Df1")
    assert status == 200 and listed["kind"] == "ConfigMapList"
    assert [item["metadata"]["name"] for item in listed["items"]] == ["f1"]
    assert [item["metadata"]["name"] for item in raw.json("GET", path)[1]["items"]
            if item["metadata"]["name"] != ROOT_CA] == ["f2"]


# ---------------------------------------------------------------- YAML


def test_yaml_request_and_response_bodies(raw, namespace):
    path = f"/api/v1/namespaces/{namespace}/configmaps"
    document = f"""apiVersion: v1
kind: ConfigMap
metadata:
  name: yamly
  namespace: {namespace}
data:
  multi: |
    line one
    line two
"""
    status, headers, payload = raw.request("POST", path, document.encode(), content_type="application/yaml",
                                           accept="application/yaml")
    assert status == 201
    assert headers["Content-Type"].startswith("application/yaml")
    created = yaml.safe_load(payload)
    assert created["data"]["multi"] == "line one\nline two\n"
    status, headers, payload = raw.request("GET", f"{path}/yamly", accept="application/yaml")
    assert status == 200 and yaml.safe_load(payload)["metadata"]["uid"] == created["metadata"]["uid"]
    status, headers, payload = raw.request("GET", f"{path}/missing", accept="application/yaml")
    assert status == 404
    assert yaml.safe_load(payload)["reason"] == "NotFound"


def test_unsupported_media_type_is_415(raw, namespace):
    status, _, _ = raw.request("POST", f"/api/v1/namespaces/{namespace}/configmaps", b"<xml/>",
                               content_type="application/xml")
    assert status == 415


def test_namespace_in_body_must_match_url(raw, namespace):
    status, body = raw.json("POST", f"/api/v1/namespaces/{namespace}/configmaps",
                            {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x", "namespace": "other"}})
    assert status == 400 and body["reason"] == "BadRequest"
    assert body["message"] == "the namespace of the provided object does not match the namespace sent on the request"
