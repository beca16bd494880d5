"""LIST and WATCH answers built from stored bytes equal the answers built from full decodes,
for every variant of the request, over objects as real writers leave them.

The objects are written the ways a cluster writes them: a Deployment's pods made by the
controllers, their status written through the status subresource as the kubelet writes it,
a server-side applied ConfigMap and a client-side applied Service. The fast forms (JSON
lists and Tables with includeObject=Metadata, answered from stored bytes) are compared with
the plain forms (YAML lists and Tables with includeObject=Object, answered from decoded
objects). This is the check that would have caught `kubectl get pods -l app=x` printing
`0/0` for running pods.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid

import pytest
import yaml

from conftest import eventually

TABLE = "application/json;as=Table;v=v1;g=meta.k8s.io"


class Raw:
    def __init__(self, server):
        self.url = server.url
        self.context = server.ssl_context()

    def get(self, path: str, query: dict[str, str] | None = None, accept: str = "application/json") -> bytes:
        url = self.url + path + ("?" + urllib.parse.urlencode(query) if query else "")
        request = urllib.request.Request(url, headers={"Accept": accept})
        with urllib.request.urlopen(request, context=self.context, timeout=20) as reply:
            return reply.read()

    def send(self, method: str, path: str, body: dict, content_type: str, query: dict[str, str] | None = None) -> dict:
        url = self.url + path + ("?" + urllib.parse.urlencode(query) if query else "")
        request = urllib.request.Request(url, data=json.dumps(body).encode(), method=method,
                                         headers={"Content-Type": content_type, "Accept": "application/json"})
        with urllib.request.urlopen(request, context=self.context, timeout=20) as reply:
            return json.loads(reply.read())


@pytest.fixture(scope="module")
def raw(server):
    return Raw(server)


def _mark_running_as_the_kubelet_does(raw: Raw, namespace: str, pod: dict, ip: str) -> None:
    now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    containers = pod["spec"]["containers"]
    raw.send("PATCH", f"/api/v1/namespaces/{namespace}/pods/{pod['metadata']['name']}/status", {"status": {
        "phase": "Running", "hostIP": "10.0.0.1", "hostIPs": [{"ip": "10.0.0.1"}], "podIP": ip, "podIPs": [{"ip": ip}],
        "startTime": now,
        "conditions": [{"type": t, "status": "True", "lastProbeTime": None, "lastTransitionTime": now}
                       for t in ("PodReadyToStartContainers", "Initialized", "Ready", "ContainersReady", "PodScheduled")],
        "containerStatuses": [{"name": c["name"], "image": c["image"], "imageID": "sha256:0", "ready": True,
                               "started": True, "restartCount": 0, "containerID": "containerd://abc",
                               "state": {"running": {"startedAt": now}}} for c in containers]}},
        "application/strategic-merge-patch+json", {"fieldManager": "kubelet"})


@pytest.fixture(scope="module")
def objects(server, raw, tmp_path_factory):
    """Two namespaces with pods written by the controllers and 'the kubelet', plus applied objects."""
    from conftest import Kubectl

    kubectl = Kubectl(server, tmp_path_factory.mktemp("kube-cache"))
    namespaces = [f"fast-{uuid.uuid4().hex[:6]}", f"fast-{uuid.uuid4().hex[:6]}"]
    for index, namespace in enumerate(namespaces):
        kubectl("create", "namespace", namespace)
        kubectl("-n", namespace, "create", "deployment", "hello", "--image=pyk8s/busybox:1.35", "--replicas=3")
        kubectl("-n", namespace, "run", "solo", "--image=pyk8s/busybox:1.35", "--labels=run=solo",
                "--annotations=note=ünïcode ]} \"quoted\"")
        pods = eventually(lambda: (lambda items: items if len(items) == 4 else None)(
            json.loads(raw.get(f"/api/v1/namespaces/{namespace}/pods"))["items"]), what="4 pods")
        # One pod stays Pending so rows differ in READY and STATUS.
        for number, pod in enumerate(pods[1:], start=2):
            _mark_running_as_the_kubelet_does(raw, namespace, pod, f"10.42.{index}.{number}")
        kubectl("-n", namespace, "apply", "--server-side", "-f", "-", input=yaml.safe_dump({
            "apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "settings", "labels": {"app": "hello"}},
            "data": {"a": "]}", "b": "中文"}}))
        kubectl("-n", namespace, "apply", "-f", "-", input=yaml.safe_dump({
            "apiVersion": "v1", "kind": "Service", "metadata": {"name": "hello", "labels": {"app": "hello"}},
            "spec": {"selector": {"app": "hello"}, "ports": [{"port": 80, "targetPort": 8080}]}}))
    return namespaces


def _variants(namespace: str, revision: str) -> list[tuple[str, dict[str, str]]]:
    pods, all_pods = f"/api/v1/namespaces/{namespace}/pods", "/api/v1/pods"
    return [
        (pods, {}),
        (pods, {"labelSelector": "app=hello"}),
        (pods, {"labelSelector": "run=solo"}),
        (pods, {"labelSelector": "app in (hello),pod-template-hash"}),
        (pods, {"labelSelector": "app!=hello"}),
        (pods, {"fieldSelector": "status.phase=Running"}),
        (pods, {"fieldSelector": "metadata.name=solo"}),
        (pods, {"labelSelector": "app=hello", "fieldSelector": "status.phase=Running"}),
        (pods, {"labelSelector": "app=hello", "limit": "1"}),
        (pods, {"limit": "2"}),
        (pods, {"labelSelector": "app=hello", "resourceVersion": "0"}),
        (pods, {"labelSelector": "app=hello", "resourceVersion": revision, "resourceVersionMatch": "NotOlderThan"}),
        (pods, {"labelSelector": "app=hello", "resourceVersion": revision, "resourceVersionMatch": "Exact"}),
        (all_pods, {"labelSelector": "app=hello"}),
        (all_pods, {"fieldSelector": f"metadata.namespace={namespace}", "labelSelector": "run=solo"}),
        (all_pods, {"limit": "3"}),
        (f"/api/v1/namespaces/{namespace}/configmaps", {"labelSelector": "app=hello"}),
        (f"/api/v1/namespaces/{namespace}/services", {"labelSelector": "app=hello"}),
        ("/api/v1/services", {}),
    ]


def _pages(raw: Raw, path: str, query: dict[str, str], accept: str, key: str) -> list:
    """Every page of a list (following `continue`), its items or rows concatenated."""
    collected, query = [], dict(query)
    while True:
        body = raw.get(path, query, accept)
        page = yaml.safe_load(body) if "yaml" in accept else json.loads(body)
        collected.extend(page.get(key) or [])
        token = page["metadata"].get("continue")
        if not token:
            return collected
        query = {k: v for k, v in query.items() if k not in ("resourceVersion", "resourceVersionMatch")}
        query["continue"] = token


def test_table_rows_from_stored_bytes_equal_rows_from_full_objects(raw, objects):
    for namespace in objects:
        revision = json.loads(raw.get(f"/api/v1/namespaces/{namespace}/pods"))["metadata"]["resourceVersion"]
        for path, query in _variants(namespace, revision):
            fast = _pages(raw, path, query, TABLE, "rows")
            plain = _pages(raw, path, {**query, "includeObject": "Object"}, TABLE, "rows")
            # AGE may tick between the two requests: every other cell must be equal.
            columns = json.loads(raw.get(path, {"limit": "1"}, TABLE))["columnDefinitions"]
            age = [c["name"] for c in columns].index("Age")
            assert [r["cells"][:age] + r["cells"][age + 1:] for r in fast] == \
                [r["cells"][:age] + r["cells"][age + 1:] for r in plain], (path, query)
            assert [r["object"]["metadata"] for r in fast] == [r["object"]["metadata"] for r in plain], (path, query)
            assert all(r["object"]["kind"] == "PartialObjectMetadata" for r in fast)


def test_json_lists_from_stored_bytes_equal_yaml_lists_from_full_objects(raw, objects):
    for namespace in objects:
        revision = json.loads(raw.get(f"/api/v1/namespaces/{namespace}/pods"))["metadata"]["resourceVersion"]
        for path, query in _variants(namespace, revision):
            fast = _pages(raw, path, query, "application/json", "items")
            plain = _pages(raw, path, query, "application/yaml", "items")
            assert fast == plain, (path, query)


def test_selected_running_pods_print_their_ready_and_status_cells(raw, objects):
    namespace = objects[0]
    table = json.loads(raw.get(f"/api/v1/namespaces/{namespace}/pods", {"labelSelector": "app=hello"}, TABLE))
    # The first pod by name (a hello pod) was left Pending; the others run.
    cells = sorted(tuple(row["cells"][1:3]) for row in table["rows"])
    assert cells == [("0/1", "Pending"), ("1/1", "Running"), ("1/1", "Running")]
    solo = json.loads(raw.get(f"/api/v1/namespaces/{namespace}/pods", {"labelSelector": "run=solo"}, TABLE))["rows"]
    assert [row["cells"][1:3] for row in solo] == [["1/1", "Running"]]


def test_table_watch_rows_equal_table_list_rows(raw, objects):
    namespace = objects[0]
    path = f"/api/v1/namespaces/{namespace}/pods"
    listed = json.loads(raw.get(path, {"labelSelector": "app=hello"}, TABLE))
    expected = sorted(row["cells"][:4] + row["cells"][5:] for row in listed["rows"])  # all but AGE
    body = raw.get(path, {"labelSelector": "app=hello", "watch": "1", "resourceVersion": "0", "timeoutSeconds": "1"}, TABLE)
    events = [json.loads(line) for line in body.splitlines() if line.strip()]
    watched = sorted(row["cells"][:4] + row["cells"][5:] for event in events if event["type"] == "ADDED"
                     for row in event["object"]["rows"])
    assert watched == expected
    assert len(watched) == 3
