"""The official `kubernetes` Python client (36.x) against a pyk8s server started by the test
module: CRUD, conflicts, errors, watch, paging, label and field selectors."""

from __future__ import annotations

import json
import queue
import threading
import time
import uuid

import pytest
from kubernetes import client, watch
from kubernetes.client.rest import ApiException

from conftest import eventually


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:6]}"


@pytest.fixture(scope="module")
def core(api_client):
    return client.CoreV1Api(api_client)


@pytest.fixture(scope="module")
def apps(api_client):
    return client.AppsV1Api(api_client)


ROOT_CA = "kube-root-ca.crt"  # every namespace has it (upstream's root-ca-cert-publisher)


@pytest.fixture
def namespace(core):
    name = unique("pc")
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=name)))
    # Its publication is an event of its own: wait for it, so watches opened by a test start after it.
    eventually(lambda: any(item.metadata.name == ROOT_CA for item in core.list_namespaced_config_map(name).items),
               20, what=f"{ROOT_CA} in {name}")
    return name


def configmap(name: str, data: dict | None = None, labels: dict | None = None) -> client.V1ConfigMap:
    return client.V1ConfigMap(metadata=client.V1ObjectMeta(name=name, labels=labels), data=data or {})


def pod(name: str, labels: dict | None = None, node: str | None = None) -> client.V1Pod:
    return client.V1Pod(
        metadata=client.V1ObjectMeta(name=name, labels=labels),
        spec=client.V1PodSpec(node_name=node, containers=[client.V1Container(name="main", image="busybox")]))


def status_body(error: ApiException) -> dict:
    return json.loads(error.body)


# ---------------------------------------------------------------- CRUD


def test_configmap_create_read_replace_patch_delete(core, namespace):
    created = core.create_namespaced_config_map(namespace, configmap("crud", {"a": "1"}))
    assert created.metadata.uid and created.metadata.resource_version
    assert created.metadata.creation_timestamp is not None
    assert created.metadata.namespace == namespace

    read = core.read_namespaced_config_map("crud", namespace)
    assert read.data == {"a": "1"} and read.metadata.uid == created.metadata.uid

    read.data["b"] = "2"
    replaced = core.replace_namespaced_config_map("crud", namespace, read)
    assert replaced.data == {"a": "1", "b": "2"}
    assert int(replaced.metadata.resource_version) > int(created.metadata.resource_version)
    assert replaced.metadata.uid == created.metadata.uid
    assert replaced.metadata.creation_timestamp == created.metadata.creation_timestamp

    patched = core.patch_namespaced_config_map("crud", namespace, {"data": {"a": None, "c": "3"}})
    assert patched.data == {"b": "2", "c": "3"}

    core.delete_namespaced_config_map("crud", namespace)
    with pytest.raises(ApiException) as missing:
        core.read_namespaced_config_map("crud", namespace)
    assert missing.value.status == 404


def test_deployment_crud_through_apps_v1(apps, namespace):
    body = client.V1Deployment(
        metadata=client.V1ObjectMeta(name="web"),
        spec=client.V1DeploymentSpec(
            replicas=2, selector=client.V1LabelSelector(match_labels={"app": "web"}),
            template=client.V1PodTemplateSpec(
                metadata=client.V1ObjectMeta(labels={"app": "web"}),
                spec=client.V1PodSpec(containers=[client.V1Container(name="web", image="nginx")]))))
    created = apps.create_namespaced_deployment(namespace, body)
    assert created.metadata.generation == 1
    assert created.spec.strategy.type == "RollingUpdate"  # defaulted by the server
    assert created.spec.revision_history_limit == 10
    scale = apps.read_namespaced_deployment_scale("web", namespace)
    assert scale.spec.replicas == 2
    apps.patch_namespaced_deployment_scale("web", namespace, {"spec": {"replicas": 4}})
    assert apps.read_namespaced_deployment("web", namespace).spec.replicas == 4
    names = [d.metadata.name for d in apps.list_namespaced_deployment(namespace).items]
    assert names == ["web"]


def test_generate_name_gets_a_random_suffix(core, namespace):
    body = client.V1ConfigMap(metadata=client.V1ObjectMeta(generate_name="gen-"))
    first = core.create_namespaced_config_map(namespace, body)
    second = core.create_namespaced_config_map(namespace, body)
    for created in (first, second):
        assert created.metadata.name.startswith("gen-") and len(created.metadata.name) == len("gen-") + 5
        assert created.metadata.generate_name == "gen-"
    assert first.metadata.name != second.metadata.name


def test_default_namespaces_exist(core):
    names = {ns.metadata.name for ns in core.list_namespace().items}
    assert {"default", "kube-system", "kube-public", "kube-node-lease"} <= names
    assert core.read_namespace("default").status.phase == "Active"


# ---------------------------------------------------------------- errors


def test_replace_with_stale_resource_version_is_a_conflict(core, namespace):
    created = core.create_namespaced_config_map(namespace, configmap("stale", {"v": "1"}))
    fresh = core.read_namespaced_config_map("stale", namespace)
    fresh.data = {"v": "2"}
    core.replace_namespaced_config_map("stale", namespace, fresh)
    created.data = {"v": "3"}
    with pytest.raises(ApiException) as conflict:
        core.replace_namespaced_config_map("stale", namespace, created)
    assert conflict.value.status == 409
    body = status_body(conflict.value)
    assert body["reason"] == "Conflict"
    assert body["message"] == ('Operation cannot be fulfilled on configmaps "stale": the object has been modified; '
                               "please apply your changes to the latest version and try again")
    assert core.read_namespaced_config_map("stale", namespace).data == {"v": "2"}


def test_create_existing_is_already_exists(core, namespace):
    core.create_namespaced_config_map(namespace, configmap("twice"))
    with pytest.raises(ApiException) as exists:
        core.create_namespaced_config_map(namespace, configmap("twice"))
    assert exists.value.status == 409
    body = status_body(exists.value)
    assert body["reason"] == "AlreadyExists"
    assert body["message"] == 'configmaps "twice" already exists'
    assert body["details"] == {"name": "twice", "kind": "configmaps"}


def test_read_missing_is_not_found_with_status_details(core, namespace):
    with pytest.raises(ApiException) as missing:
        core.read_namespaced_pod("ghost", namespace)
    assert missing.value.status == 404
    body = status_body(missing.value)
    assert body["kind"] == "Status" and body["status"] == "Failure"
    assert body["reason"] == "NotFound" and body["code"] == 404
    assert body["message"] == 'pods "ghost" not found'
    assert body["details"] == {"name": "ghost", "kind": "pods"}


def test_create_in_missing_namespace_is_namespace_not_found(core):
    with pytest.raises(ApiException) as missing:
        core.create_namespaced_config_map("does-not-exist", configmap("x"))
    assert missing.value.status == 404
    assert status_body(missing.value)["message"] == 'namespaces "does-not-exist" not found'


def test_invalid_label_value_is_unprocessable_with_causes(core, namespace):
    with pytest.raises(ApiException) as invalid:
        core.create_namespaced_config_map(namespace, configmap("badlabels", labels={"ok": "not valid!"}))
    assert invalid.value.status == 422
    body = status_body(invalid.value)
    assert body["reason"] == "Invalid"
    assert body["details"]["name"] == "badlabels" and body["details"]["kind"] == "ConfigMap"
    cause = body["details"]["causes"][0]
    assert cause["reason"] == "FieldValueInvalid"
    assert cause["field"] == "metadata.labels"
    assert cause["message"].startswith('Invalid value: "not valid!": a valid label must be an empty string or consist of')


def test_pod_without_containers_is_invalid_with_required_cause(core, namespace):
    body = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "empty"}, "spec": {"containers": []}}
    with pytest.raises(ApiException) as invalid:
        core.create_namespaced_pod(namespace, body)
    assert invalid.value.status == 422
    causes = status_body(invalid.value)["details"]["causes"]
    assert {"reason": "FieldValueRequired", "message": "Required value", "field": "spec.containers"} in causes


# ---------------------------------------------------------------- watch


def test_watch_stream_sees_added_modified_deleted(core, namespace):
    start = core.list_namespaced_config_map(namespace).metadata.resource_version
    events: queue.Queue = queue.Queue()
    watcher = watch.Watch()

    def consume():
        try:
            for event in watcher.stream(core.list_namespaced_config_map, namespace,
                                        resource_version=start, timeout_seconds=20):
                events.put((event["type"], event["object"].metadata.name, event["object"].data))
                if event["type"] == "DELETED":
                    watcher.stop()
        except Exception as error:  # surfaced through the assertion below
            events.put(("ERROR", repr(error), None))

    thread = threading.Thread(target=consume, daemon=True)
    thread.start()
    core.create_namespaced_config_map(namespace, configmap("watched", {"v": "1"}))
    core.patch_namespaced_config_map("watched", namespace, {"data": {"v": "2"}})
    core.delete_namespaced_config_map("watched", namespace)
    seen = []
    deadline = time.monotonic() + 15
    while len(seen) < 3 and time.monotonic() < deadline:
        try:
            seen.append(events.get(timeout=max(0.01, deadline - time.monotonic())))
        except queue.Empty:
            break
    assert seen == [("ADDED", "watched", {"v": "1"}), ("MODIFIED", "watched", {"v": "2"}),
                    ("DELETED", "watched", {"v": "2"})]
    thread.join(5)


def test_watch_resumed_from_a_resource_version_misses_nothing(core, namespace):
    start = core.list_namespaced_config_map(namespace).metadata.resource_version
    for index in range(5):
        core.create_namespaced_config_map(namespace, configmap(f"r{index}", {"i": str(index)}))
    core.delete_namespaced_config_map("r2", namespace)
    middle = core.read_namespaced_config_map("r3", namespace).metadata.resource_version

    def collect(resource_version: str, expected: int) -> list[tuple[str, str]]:
        seen = []
        watcher = watch.Watch()
        for event in watcher.stream(core.list_namespaced_config_map, namespace,
                                    resource_version=resource_version, timeout_seconds=5):
            seen.append((event["type"], event["object"].metadata.name))
            if len(seen) == expected:
                watcher.stop()
        return seen

    assert collect(start, 6) == [("ADDED", "r0"), ("ADDED", "r1"), ("ADDED", "r2"), ("ADDED", "r3"),
                                 ("ADDED", "r4"), ("DELETED", "r2")]
    # from the revision of r3's creation: only what came after it
    assert collect(middle, 2) == [("ADDED", "r4"), ("DELETED", "r2")]


def test_watch_with_label_selector_reports_objects_leaving_the_selection(core, namespace):
    core.create_namespaced_config_map(namespace, configmap("sel", labels={"watch": "me"}))
    start = core.list_namespaced_config_map(namespace, label_selector="watch=me").metadata.resource_version
    core.patch_namespaced_config_map("sel", namespace, {"metadata": {"labels": {"watch": "other"}}})
    core.create_namespaced_config_map(namespace, configmap("unrelated"))
    core.create_namespaced_config_map(namespace, configmap("sel2", labels={"watch": "me"}))
    seen = []
    watcher = watch.Watch()
    for event in watcher.stream(core.list_namespaced_config_map, namespace, label_selector="watch=me",
                                resource_version=start, timeout_seconds=5):
        seen.append((event["type"], event["object"].metadata.name))
        if len(seen) == 2:
            watcher.stop()
    # upstream's watch cache turns "no longer matches" into DELETED
    assert seen == [("DELETED", "sel"), ("ADDED", "sel2")]


# ---------------------------------------------------------------- paging


def test_list_paging_with_limit_and_continue(core, namespace):
    for index in range(7):
        core.create_namespaced_config_map(namespace, configmap(f"page-{index}"))
    first = core.list_namespaced_config_map(namespace, limit=3)
    assert [item.metadata.name for item in first.items] == [ROOT_CA, "page-0", "page-1"]
    assert first.metadata._continue
    assert first.metadata.remaining_item_count == 5
    # a write between pages does not show up: every page is read at the first page's revision
    core.create_namespaced_config_map(namespace, configmap("page-9"))
    second = core.list_namespaced_config_map(namespace, limit=3, _continue=first.metadata._continue)
    assert [item.metadata.name for item in second.items] == ["page-2", "page-3", "page-4"]
    assert second.metadata.resource_version == first.metadata.resource_version
    third = core.list_namespaced_config_map(namespace, limit=3, _continue=second.metadata._continue)
    assert [item.metadata.name for item in third.items] == ["page-5", "page-6"]
    assert not third.metadata._continue
    assert third.metadata.remaining_item_count is None


def test_bad_continue_token_is_rejected(core, namespace):
    with pytest.raises(ApiException) as bad:
        core.list_namespaced_config_map(namespace, limit=1, _continue="garbage")
    assert bad.value.status == 400
    assert status_body(bad.value)["reason"] == "BadRequest"


# ---------------------------------------------------------------- selectors


@pytest.fixture
def labelled(core, namespace):
    labels = {
        "a": {"env": "prod", "tier": "front"},
        "b": {"env": "prod", "tier": "back"},
        "c": {"env": "dev", "tier": "front"},
        "d": {"env": "qa"},
        "e": {},
    }
    for name, item_labels in labels.items():
        core.create_namespaced_config_map(namespace, configmap(name, labels=item_labels or None))
    return namespace


@pytest.mark.parametrize("selector, expected", [
    ("env=prod", ["a", "b"]),
    ("env==prod", ["a", "b"]),
    ("env!=prod", ["c", "d", "e", ROOT_CA]),
    ("env in (prod,qa)", ["a", "b", "d"]),
    ("env notin (prod,qa)", ["c", "e", ROOT_CA]),
    ("tier", ["a", "b", "c"]),
    ("!tier", ["d", "e", ROOT_CA]),
    ("env=prod,tier=front", ["a"]),
    ("env in (prod,dev),!tier", []),
    ("env,tier notin (back)", ["a", "c", "d"]),
])
def test_label_selector_syntax(core, labelled, selector, expected):
    items = core.list_namespaced_config_map(labelled, label_selector=selector).items
    assert [item.metadata.name for item in items] == expected


def test_malformed_label_selector_is_bad_request(core, namespace):
    with pytest.raises(ApiException) as bad:
        core.list_namespaced_config_map(namespace, label_selector="env in prod")
    assert bad.value.status == 400
    assert status_body(bad.value)["reason"] == "BadRequest"


def test_field_selectors_on_pods(core, namespace):
    core.create_namespaced_pod(namespace, pod("loose"))
    core.create_namespaced_pod(namespace, pod("bound", node="node-1"))
    core.patch_namespaced_pod_status("bound", namespace, {"status": {"phase": "Running"}})

    def names(selector: str) -> list[str]:
        return [item.metadata.name for item in core.list_namespaced_pod(namespace, field_selector=selector).items]

    assert names("metadata.name=loose") == ["loose"]
    assert names("metadata.name!=loose") == ["bound"]
    assert names("spec.nodeName=node-1") == ["bound"]
    assert names("spec.nodeName=") == ["loose"]
    assert names("status.phase!=Running") == ["loose"]
    assert names("status.phase=Running,spec.nodeName=node-1") == ["bound"]
    assert names(f"metadata.namespace={namespace}") == ["bound", "loose"]
    everywhere = core.list_pod_for_all_namespaces(field_selector="spec.nodeName=node-1").items
    assert [(p.metadata.namespace, p.metadata.name) for p in everywhere] == [(namespace, "bound")]


def test_unsupported_field_selector_is_bad_request(core, namespace):
    with pytest.raises(ApiException) as bad:
        core.list_namespaced_config_map(namespace, field_selector="data.color=blue")
    assert bad.value.status == 400
    body = status_body(bad.value)
    assert body["reason"] == "BadRequest"
    assert body["message"] == 'field label not supported: data.color'
