"""The real kubectl (PyPI 1.36) against a pyk8s server started by the test module.

Covers every command of the wire contract that needs no node: run (the pod stays Pending),
create namespace|deployment|configmap|secret|service (protobuf bodies), get in all its output
forms (table, wide, yaml, json, jsonpath, custom-columns, name, --show-labels, -L, -A,
--sort-by, -w), describe, label/annotate, scale, delete (name, -l, --all, -f), get all,
api-resources, and the error messages upstream prints. Expected outputs are what kubectl
1.36 prints against a real cluster.
"""

from __future__ import annotations

import json
import queue
import re
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import pytest
import yaml

from conftest import eventually

KUBECTL = str(Path(sys.executable).with_name("kubectl"))


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:6]}"


def table(output: str) -> tuple[list[str], list[list[str]]]:
    """Splits a kubectl table into its header and rows (columns separated by 2+ spaces)."""
    lines = [line for line in output.splitlines() if line.strip()]
    header = re.split(r"\s{2,}", lines[0].strip())
    rows = [re.split(r"\s{2,}", line.strip()) for line in lines[1:]]
    return header, rows


@pytest.fixture
def namespace(kubectl):
    name = unique("kt")
    assert kubectl("create", "namespace", name).strip() == f"namespace/{name} created"
    return name


# ---------------------------------------------------------------- run / get forms


def test_run_creates_a_pod_that_stays_pending(kubectl, namespace):
    assert kubectl("run", "web", "--image=nginx", "-n", namespace).strip() == "pod/web created"
    header, rows = table(kubectl("get", "pods", "-n", namespace))
    assert header == ["NAME", "READY", "STATUS", "RESTARTS", "AGE"]
    assert len(rows) == 1
    name, ready, status, restarts, age = rows[0]
    assert (name, ready, status, restarts) == ("web", "0/1", "Pending", "0")
    assert re.fullmatch(r"\d+s", age), age


def test_get_wide_shows_ip_and_node_columns_empty_for_a_pending_pod(kubectl, namespace):
    kubectl("run", "wide", "--image=nginx", "-n", namespace)
    header, rows = table(kubectl("get", "pods", "-o", "wide", "-n", namespace))
    assert header == ["NAME", "READY", "STATUS", "RESTARTS", "AGE", "IP", "NODE", "NOMINATED NODE", "READINESS GATES"]
    row = rows[0]
    assert row[0] == "wide" and row[2] == "Pending"
    assert row[5:] == ["<none>", "<none>", "<none>", "<none>"]


def test_get_yaml_and_json_return_the_full_object(kubectl, namespace):
    kubectl("run", "yamly", "--image=nginx:1.25", "-n", namespace)
    as_yaml = yaml.safe_load(kubectl("get", "pod", "yamly", "-o", "yaml", "-n", namespace))
    as_json = json.loads(kubectl("get", "pod", "yamly", "-o", "json", "-n", namespace))
    for pod in (as_yaml, as_json):
        assert pod["apiVersion"] == "v1" and pod["kind"] == "Pod"
        assert pod["metadata"]["name"] == "yamly"
        assert pod["metadata"]["namespace"] == namespace
        assert pod["metadata"]["labels"] == {"run": "yamly"}
        assert pod["spec"]["containers"][0]["image"] == "nginx:1.25"
        assert pod["status"]["phase"] == "Pending"
        assert pod["metadata"]["uid"] and pod["metadata"]["resourceVersion"]
    assert as_yaml["metadata"]["uid"] == as_json["metadata"]["uid"]
    listing = json.loads(kubectl("get", "pods", "-o", "json", "-n", namespace))
    assert listing["kind"] == "List" and [item["metadata"]["name"] for item in listing["items"]] == ["yamly"]


def test_get_jsonpath_custom_columns_and_name(kubectl, namespace):
    kubectl("run", "jp", "--image=nginx", "-n", namespace)
    assert kubectl("get", "pod", "jp", "-n", namespace, "-o", "jsonpath={.metadata.name} {.status.phase}") == "jp Pending"
    assert kubectl("get", "pods", "-n", namespace, "-o", "jsonpath={.items[*].spec.containers[0].image}") == "nginx"
    header, rows = table(kubectl("get", "pods", "-n", namespace,
                                 "-o", "custom-columns=NAME:.metadata.name,IMAGE:.spec.containers[0].image,PHASE:.status.phase"))
    assert header == ["NAME", "IMAGE", "PHASE"]
    assert rows == [["jp", "nginx", "Pending"]]
    assert kubectl("get", "pods", "-n", namespace, "-o", "name") == "pod/jp\n"


def test_get_show_labels_and_label_columns(kubectl, namespace):
    kubectl("run", "lbl", "--image=nginx", "--labels=app=shop,tier=front", "-n", namespace)
    header, rows = table(kubectl("get", "pods", "--show-labels", "-n", namespace))
    assert header == ["NAME", "READY", "STATUS", "RESTARTS", "AGE", "LABELS"]
    assert rows[0][0] == "lbl" and rows[0][-1] == "app=shop,tier=front"
    header, rows = table(kubectl("get", "pods", "-L", "tier", "-L", "missing", "-n", namespace))
    assert header == ["NAME", "READY", "STATUS", "RESTARTS", "AGE", "TIER", "MISSING"]
    # an absent label is an empty cell: the row has one cell fewer when split on whitespace
    assert rows[0][0] == "lbl" and rows[0][5] == "front"


def test_get_all_namespaces_adds_a_namespace_column(kubectl, namespace):
    kubectl("run", "everywhere", "--image=nginx", "-n", namespace)
    header, rows = table(kubectl("get", "pods", "-A"))
    assert header == ["NAMESPACE", "NAME", "READY", "STATUS", "RESTARTS", "AGE"]
    assert [namespace, "everywhere", "0/1", "Pending", "0"] in [row[:5] for row in rows]


def test_get_sort_by_orders_rows(kubectl, namespace):
    for name in ("charlie", "alpha", "bravo"):
        kubectl("run", name, "--image=nginx", "-n", namespace)
    _, rows = table(kubectl("get", "pods", "--sort-by=.metadata.name", "-n", namespace))
    assert [row[0] for row in rows] == ["alpha", "bravo", "charlie"]
    _, rows = table(kubectl("get", "pods", "--sort-by={.metadata.name}", "--no-headers=false", "-n", namespace))
    assert [row[0] for row in rows] == ["alpha", "bravo", "charlie"]


def test_get_no_resources_prints_upstream_message(kubectl, namespace):
    result = kubectl.run("get", "pods", "-n", namespace)
    assert result.stdout == ""
    assert result.stderr.strip() == f"No resources found in {namespace} namespace."


def test_get_namespaces_lists_the_default_namespaces_as_active(kubectl):
    header, rows = table(kubectl("get", "namespaces"))
    assert header == ["NAME", "STATUS", "AGE"]
    status = {row[0]: row[1] for row in rows}
    for name in ("default", "kube-system", "kube-public", "kube-node-lease"):
        assert status.get(name) == "Active", rows


class LineReader:
    """Reads a subprocess's stdout lines on a thread so the test can wait with a deadline."""

    def __init__(self, process: subprocess.Popen):
        self.lines: queue.Queue[str] = queue.Queue()
        self.seen: list[str] = []
        threading.Thread(target=self._pump, args=(process,), daemon=True).start()

    def _pump(self, process):
        for line in process.stdout:
            self.lines.put(line.rstrip("\n"))

    def wait_for(self, predicate, timeout: float = 15.0) -> str:
        """The next line `predicate` accepts; the lines before it are used up."""
        return eventually(lambda: self._next_line(predicate), timeout, what="a matching line", interval=0,
                          context=lambda: f"saw {self.seen}")

    def _next_line(self, predicate) -> str | None:
        """The next line if `predicate` accepts it, else None (also when none comes within 0.1 s)."""
        try:
            line = self.lines.get(timeout=0.1)
        except queue.Empty:
            return None
        self.seen.append(line)
        return line if predicate(line) else None


def test_get_watch_prints_new_and_changed_pods(kubectl, namespace):
    kubectl("run", "first", "--image=nginx", "-n", namespace)
    command = [KUBECTL, "--kubeconfig", str(kubectl.server.kubeconfig), "--cache-dir", str(kubectl.cache_dir),
               "get", "pods", "-w", "-n", namespace]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        reader = LineReader(process)
        header = reader.wait_for(lambda line: line.startswith("NAME"))
        assert re.split(r"\s{2,}", header.strip()) == ["NAME", "READY", "STATUS", "RESTARTS", "AGE"]
        reader.wait_for(lambda line: line.split()[:3] == ["first", "0/1", "Pending"])
        kubectl("run", "second", "--image=nginx", "-n", namespace)
        reader.wait_for(lambda line: line.split()[:3] == ["second", "0/1", "Pending"])
        kubectl("label", "pod", "first", "seen=yes", "-n", namespace)
        reader.wait_for(lambda line: line.split()[:1] == ["first"])
        assert process.poll() is None, "kubectl get -w must keep watching"
    finally:
        process.kill()
        process.wait()


# ---------------------------------------------------------------- describe


def test_describe_pod_shows_pending_pod_details(kubectl, namespace):
    kubectl("run", "desc", "--image=nginx", "-n", namespace)
    out = kubectl("describe", "pod", "desc", "-n", namespace)
    assert re.search(r"^Name:\s+desc$", out, re.M), out
    assert re.search(rf"^Namespace:\s+{namespace}$", out, re.M)
    assert re.search(r"^Node:\s+<none>$", out, re.M)
    assert re.search(r"^Labels:\s+run=desc$", out, re.M)
    assert re.search(r"^Status:\s+Pending$", out, re.M)
    assert re.search(r"^Containers:\n  desc:\n", out, re.M)
    assert re.search(r"^\s+Image:\s+nginx$", out, re.M)
    assert re.search(r"^QoS Class:\s+BestEffort$", out, re.M)
    # No node exists, so the scheduler reports it, as upstream's does.
    assert re.search(r"Warning\s+FailedScheduling\s+\S+\s+default-scheduler\s+no nodes available to schedule pods$", out, re.M)


def test_describe_namespace_and_configmap(kubectl, namespace):
    kubectl("create", "configmap", "settings", "--from-literal=color=blue", "-n", namespace)
    out = kubectl("describe", "configmap", "settings", "-n", namespace)
    assert re.search(r"^Name:\s+settings$", out, re.M)
    assert re.search(r"^color:\n----\nblue$", out, re.M), out
    out = kubectl("describe", "namespace", namespace)
    assert re.search(rf"^Name:\s+{namespace}$", out, re.M)
    assert re.search(r"^Status:\s+Active$", out, re.M)


# ---------------------------------------------------------------- label / annotate


def test_label_add_refuse_overwrite_and_remove(kubectl, namespace):
    kubectl("run", "lab", "--image=nginx", "-n", namespace)
    assert kubectl("label", "pod", "lab", "tier=web", "-n", namespace).strip() == "pod/lab labeled"
    refused = kubectl.run("label", "pod", "lab", "tier=db", "-n", namespace, check=False)
    assert refused.returncode != 0
    assert refused.stderr.strip() == "error: 'tier' already has a value (web), and --overwrite is false"
    assert kubectl("label", "pod", "lab", "tier=db", "--overwrite", "-n", namespace).strip() == "pod/lab labeled"
    assert kubectl("get", "pod", "lab", "-n", namespace, "-o", "jsonpath={.metadata.labels.tier}") == "db"
    assert kubectl("label", "pod", "lab", "tier-", "-n", namespace).strip() == "pod/lab unlabeled"
    labels = json.loads(kubectl("get", "pod", "lab", "-n", namespace, "-o", "json"))["metadata"]["labels"]
    assert labels == {"run": "lab"}


def test_label_with_selector_labels_only_matching_pods(kubectl, namespace):
    kubectl("run", "one", "--image=nginx", "--labels=group=a", "-n", namespace)
    kubectl("run", "two", "--image=nginx", "--labels=group=a", "-n", namespace)
    kubectl("run", "three", "--image=nginx", "--labels=group=b", "-n", namespace)
    out = kubectl("label", "pods", "-l", "group=a", "color=blue", "-n", namespace)
    assert sorted(out.split("\n")[:-1]) == ["pod/one labeled", "pod/two labeled"]
    assert kubectl("get", "pods", "-l", "color=blue", "-n", namespace, "-o", "name").split() == ["pod/one", "pod/two"]


def test_annotate_add_refuse_overwrite_and_remove(kubectl, namespace):
    kubectl("run", "ann", "--image=nginx", "-n", namespace)
    assert kubectl("annotate", "pod", "ann", "note=hello", "-n", namespace).strip() == "pod/ann annotated"
    refused = kubectl.run("annotate", "pod", "ann", "note=bye", "-n", namespace, check=False)
    assert refused.returncode != 0
    assert refused.stderr.strip() == \
        "error: --overwrite is false but found the following declared annotation(s): 'note' already has a value (hello)"
    assert kubectl("annotate", "pod", "ann", "note=bye", "--overwrite", "-n", namespace).strip() == "pod/ann annotated"
    assert kubectl("get", "pod", "ann", "-n", namespace, "-o", "jsonpath={.metadata.annotations.note}") == "bye"
    kubectl("run", "ann2", "--image=nginx", "-n", namespace)
    out = kubectl("annotate", "pods", "--all", "team=x", "-n", namespace)
    assert sorted(out.split("\n")[:-1]) == ["pod/ann annotated", "pod/ann2 annotated"]
    assert kubectl("annotate", "pod", "ann", "note-", "-n", namespace).strip() == "pod/ann annotated"
    annotations = json.loads(kubectl("get", "pod", "ann", "-n", namespace, "-o", "json"))["metadata"]["annotations"]
    assert "note" not in annotations and annotations["team"] == "x"


# ---------------------------------------------------------------- create (protobuf) / scale


def test_create_deployment_then_scale_it(kubectl, namespace):
    out = kubectl("create", "deployment", "web", "--image=nginx", "--replicas=1", "-n", namespace)
    assert out.strip() == "deployment.apps/web created"
    header, rows = table(kubectl("get", "deployments", "-n", namespace))
    assert header == ["NAME", "READY", "UP-TO-DATE", "AVAILABLE", "AGE"]
    # No pod can run (no node): none ready or available, whatever the controller has done.
    assert rows[0][:2] == ["web", "0/1"] and rows[0][3] == "0"
    assert kubectl("scale", "deployment", "web", "--replicas=3", "-n", namespace).strip() == "deployment.apps/web scaled"
    deployment = json.loads(kubectl("get", "deployment", "web", "-n", namespace, "-o", "json"))
    assert deployment["spec"]["replicas"] == 3
    assert deployment["metadata"]["generation"] == 2
    assert deployment["spec"]["selector"] == {"matchLabels": {"app": "web"}}
    assert deployment["spec"]["template"]["spec"]["containers"][0]["image"] == "nginx"
    header, rows = table(kubectl("get", "deploy", "web", "-o", "wide", "-n", namespace))
    assert header == ["NAME", "READY", "UP-TO-DATE", "AVAILABLE", "AGE", "CONTAINERS", "IMAGES", "SELECTOR"]
    assert rows[0][0] == "web" and rows[0][1] == "0/3" and rows[0][-3:] == ["nginx", "nginx", "app=web"]


def test_create_configmap_and_secret(kubectl, namespace):
    assert kubectl("create", "configmap", "cfg", "--from-literal=a=1", "--from-literal=b=2",
                   "-n", namespace).strip() == "configmap/cfg created"
    assert kubectl("create", "secret", "generic", "pw", "--from-literal=password=s3cret",
                   "-n", namespace).strip() == "secret/pw created"
    header, rows = table(kubectl("get", "configmap", "cfg", "-n", namespace))
    assert header == ["NAME", "DATA", "AGE"] and rows[0][:2] == ["cfg", "2"]
    header, rows = table(kubectl("get", "secret", "pw", "-n", namespace))
    assert header == ["NAME", "TYPE", "DATA", "AGE"] and rows[0][:3] == ["pw", "Opaque", "1"]
    assert kubectl("get", "configmap", "cfg", "-n", namespace, "-o", "jsonpath={.data.b}") == "2"
    assert kubectl("get", "secret", "pw", "-n", namespace, "-o", "jsonpath={.data.password}") == "czNjcmV0"


def test_create_service_clusterip_gets_an_ip_from_the_service_cidr(kubectl, namespace):
    assert kubectl("create", "service", "clusterip", "front", "--tcp=80:8080",
                   "-n", namespace).strip() == "service/front created"
    header, rows = table(kubectl("get", "service", "front", "-n", namespace))
    assert header == ["NAME", "TYPE", "CLUSTER-IP", "EXTERNAL-IP", "PORT(S)", "AGE"]
    name, kind, cluster_ip, external_ip, ports, _ = rows[0]
    assert (name, kind, external_ip, ports) == ("front", "ClusterIP", "<none>", "80/TCP")
    assert re.fullmatch(r"10\.43\.\d+\.\d+", cluster_ip) and cluster_ip != "10.43.0.1"
    service = json.loads(kubectl("get", "svc", "front", "-n", namespace, "-o", "json"))
    assert service["spec"]["ports"][0]["targetPort"] == 8080
    assert service["spec"]["selector"] == {"app": "front"}


def test_create_namespace_shows_up_active(kubectl):
    name = unique("ns")
    assert kubectl("create", "namespace", name).strip() == f"namespace/{name} created"
    header, rows = table(kubectl("get", "namespace", name))
    assert header == ["NAME", "STATUS", "AGE"] and rows[0][:2] == [name, "Active"]


def test_create_from_yaml_file_and_get_it_back(kubectl, namespace, tmp_path):
    manifest = tmp_path / "cm.yaml"
    manifest.write_text(f"""apiVersion: v1
kind: ConfigMap
metadata:
  name: fromfile
  namespace: {namespace}
  labels:
    source: file
data:
  greeting: hello
""")
    assert kubectl("create", "-f", str(manifest)).strip() == "configmap/fromfile created"
    got = yaml.safe_load(kubectl("get", "-f", str(manifest), "-o", "yaml"))
    assert got["data"] == {"greeting": "hello"} and got["metadata"]["labels"] == {"source": "file"}


# ---------------------------------------------------------------- delete


def test_delete_by_name_removes_the_pod(kubectl, namespace):
    kubectl("run", "gone", "--image=nginx", "-n", namespace)
    out = kubectl("delete", "pod", "gone", "-n", namespace, timeout=30)
    assert re.fullmatch(rf'pod "gone" deleted( from {namespace} namespace)?\n', out), out
    result = kubectl.run("get", "pod", "gone", "-n", namespace, check=False)
    assert result.returncode == 1
    assert result.stderr.strip() == 'Error from server (NotFound): pods "gone" not found'


def test_delete_by_label_selector_deletes_only_matching(kubectl, namespace):
    kubectl("run", "keep", "--image=nginx", "--labels=fate=keep", "-n", namespace)
    kubectl("run", "drop1", "--image=nginx", "--labels=fate=drop", "-n", namespace)
    kubectl("run", "drop2", "--image=nginx", "--labels=fate=drop", "-n", namespace)
    out = kubectl("delete", "pods", "-l", "fate=drop", "-n", namespace, timeout=30)
    assert sorted(re.findall(r'pod "(\w+)" deleted', out)) == ["drop1", "drop2"]
    assert kubectl("get", "pods", "-n", namespace, "-o", "name").split() == ["pod/keep"]


def test_delete_all_empties_the_namespace(kubectl, namespace):
    for name in ("a1", "a2", "a3"):
        kubectl("run", name, "--image=nginx", "-n", namespace)
    out = kubectl("delete", "pods", "--all", "-n", namespace, timeout=30)
    assert sorted(re.findall(r'pod "(\w+)" deleted', out)) == ["a1", "a2", "a3"]
    assert kubectl.run("get", "pods", "-n", namespace).stderr.strip() == f"No resources found in {namespace} namespace."


def test_delete_from_file(kubectl, namespace, tmp_path):
    manifest = tmp_path / "things.yaml"
    manifest.write_text(f"""apiVersion: v1
kind: ConfigMap
metadata:
  name: filed-a
  namespace: {namespace}
---
apiVersion: v1
kind: Secret
metadata:
  name: filed-b
  namespace: {namespace}
stringData:
  k: v
""")
    kubectl("create", "-f", str(manifest))
    out = kubectl("delete", "-f", str(manifest), timeout=30)
    assert re.search(r'^configmap "filed-a" deleted', out, re.M) and re.search(r'^secret "filed-b" deleted', out, re.M), out
    assert kubectl.run("get", "configmap", "filed-a", "-n", namespace, check=False).returncode == 1


def test_delete_namespace_without_waiting_shows_it_terminating_until_its_content_is_gone(kubectl):
    name = unique("bye")
    kubectl("create", "namespace", name)
    # A finalizer nobody removes keeps the content, and so the namespace, around.
    kubectl("create", "-f", "-", "--validate=false", input=yaml.safe_dump({
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "held", "namespace": name, "finalizers": ["example.com/hold"]}}))
    out = kubectl("delete", "namespace", name, "--wait=false")
    assert re.fullmatch(rf'namespace "{name}" deleted\n', out), out
    header, rows = table(kubectl("get", "namespace", name))
    assert rows[0][:2] == [name, "Terminating"]
    kubectl("patch", "configmap", "held", "-n", name, "--type=merge", "-p", '{"metadata":{"finalizers":null}}')
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if kubectl.run("get", "namespace", name, check=False).returncode != 0:
            break
        time.sleep(0.1)
    result = kubectl.run("get", "namespace", name, check=False)
    assert f'namespaces "{name}" not found' in result.stderr


def test_server_side_dry_run_creates_nothing(kubectl, namespace):
    out = kubectl("create", "deployment", "dry", "--image=nginx", "--dry-run=server", "-o", "yaml", "-n", namespace)
    preview = yaml.safe_load(out)
    assert preview["kind"] == "Deployment" and preview["metadata"]["uid"]
    assert preview["spec"]["strategy"]["type"] == "RollingUpdate"  # server-side defaulting ran
    assert kubectl("run", "dry", "--image=nginx", "--dry-run=server", "-n", namespace).strip() == \
        "pod/dry created (server dry run)"
    assert kubectl.run("get", "pods,deployments", "-n", namespace).stderr.strip() == \
        f"No resources found in {namespace} namespace."


def test_delete_missing_pod_reports_not_found(kubectl, namespace):
    result = kubectl.run("delete", "pod", "nope", "-n", namespace, check=False)
    assert result.returncode == 1
    assert result.stderr.strip() == 'Error from server (NotFound): pods "nope" not found'
    ignored = kubectl.run("delete", "pod", "nope", "-n", namespace, "--ignore-not-found", check=False)
    assert ignored.returncode == 0 and ignored.stdout == ""


# ---------------------------------------------------------------- get all / api-resources


def test_get_all_lists_services_deployments_and_pods(kubectl, namespace):
    kubectl("create", "deployment", "app", "--image=nginx", "-n", namespace)
    kubectl("create", "service", "clusterip", "app", "--tcp=80:80", "-n", namespace)
    kubectl("run", "loose", "--image=nginx", "-n", namespace)
    out = kubectl("get", "all", "-n", namespace)
    names = [line.split()[0] for line in out.splitlines() if line.strip() and not line.startswith("NAME")]
    assert "pod/loose" in names
    assert "service/app" in names
    assert "deployment.apps/app" in names
    # each kind gets its own table with its own header
    assert re.search(r"^NAME\s+READY\s+STATUS\s+RESTARTS\s+AGE$", out, re.M)
    assert re.search(r"^NAME\s+TYPE\s+CLUSTER-IP\s+EXTERNAL-IP\s+PORT\(S\)\s+AGE$", out, re.M)
    assert re.search(r"^NAME\s+READY\s+UP-TO-DATE\s+AVAILABLE\s+AGE$", out, re.M)


def test_get_all_in_default_namespace_shows_the_kubernetes_service(kubectl):
    out = kubectl("get", "all", "-n", "default")
    row = next(line.split() for line in out.splitlines() if line.startswith("service/kubernetes"))
    assert row[1:5] == ["ClusterIP", "10.43.0.1", "<none>", "443/TCP"]


def test_api_resources_lists_core_and_apps_kinds(kubectl):
    out = kubectl("api-resources")
    header, rows = table(out)
    assert header == ["NAME", "SHORTNAMES", "APIVERSION", "NAMESPACED", "KIND"]
    by_name = {row[0]: row for row in rows}
    assert by_name["pods"] == ["pods", "po", "v1", "true", "Pod"]
    assert by_name["namespaces"] == ["namespaces", "ns", "v1", "false", "Namespace"]
    assert by_name["deployments"] == ["deployments", "deploy", "apps/v1", "true", "Deployment"]
    assert by_name["configmaps"] == ["configmaps", "cm", "v1", "true", "ConfigMap"]
    assert by_name["services"] == ["services", "svc", "v1", "true", "Service"]
    namespaced = kubectl("api-resources", "--namespaced=false", "-o", "name").split()
    assert "namespaces" in namespaced and "pods" not in namespaced


# ---------------------------------------------------------------- errors


def test_get_missing_pod_prints_not_found(kubectl, namespace):
    result = kubectl.run("get", "pod", "nope", "-n", namespace, check=False)
    assert result.returncode == 1
    assert result.stderr.strip() == 'Error from server (NotFound): pods "nope" not found'


def test_creating_an_existing_object_prints_already_exists(kubectl, namespace):
    kubectl("run", "twice", "--image=nginx", "-n", namespace)
    result = kubectl.run("run", "twice", "--image=nginx", "-n", namespace, check=False)
    assert result.returncode == 1
    assert result.stderr.strip() == 'Error from server (AlreadyExists): pods "twice" already exists'
    result = kubectl.run("create", "namespace", namespace, check=False)
    assert result.stderr.strip() == f'Error from server (AlreadyExists): namespaces "{namespace}" already exists'
    result = kubectl.run("create", "configmap", "dup", "-n", namespace, check=False)
    assert result.returncode == 0
    result = kubectl.run("create", "configmap", "dup", "-n", namespace, check=False)
    assert result.stderr.strip() == 'error: failed to create configmap: configmaps "dup" already exists'


SUBDOMAIN_MESSAGE = (
    "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must "
    "start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is "
    "'[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')")
LABEL_MESSAGE = (
    "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and "
    "end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is "
    "'[a-z0-9]([-a-z0-9]*[a-z0-9])?')")


def test_invalid_pod_name_prints_invalid_with_every_cause(kubectl, namespace):
    # `run` also names the container after the pod, so upstream reports two causes.
    result = kubectl.run("run", "Bad_Name", "--image=nginx", "-n", namespace, check=False)
    assert result.returncode == 1
    assert result.stderr == (
        'The Pod "Bad_Name" is invalid: \n'
        f'* metadata.name: Invalid value: "Bad_Name": {SUBDOMAIN_MESSAGE}\n'
        f'* spec.containers[0].name: Invalid value: "Bad_Name": {LABEL_MESSAGE}\n')


def test_invalid_configmap_and_namespace_names_print_the_single_cause(kubectl, namespace):
    result = kubectl.run("create", "configmap", "Bad_Name", "-n", namespace, check=False)
    assert result.returncode == 1
    assert result.stderr.strip() == (
        'error: failed to create configmap: ConfigMap "Bad_Name" is invalid: '
        f'metadata.name: Invalid value: "Bad_Name": {SUBDOMAIN_MESSAGE}')
    result = kubectl.run("create", "namespace", "Bad", check=False)
    assert result.returncode == 1
    assert result.stderr.strip() == f'The Namespace "Bad" is invalid: metadata.name: Invalid value: "Bad": {LABEL_MESSAGE}'


def test_invalid_label_key_is_rejected_by_the_server(kubectl, namespace):
    kubectl("run", "badlabel", "--image=nginx", "-n", namespace)
    result = kubectl.run("label", "pod", "badlabel", "bad key=x", "-n", namespace, check=False)
    assert result.returncode == 1
    assert result.stderr.startswith('The Pod "badlabel" is invalid: metadata.labels: Invalid value: "bad key": '
                                    "name part must consist of alphanumeric characters")


def test_run_into_missing_namespace_prints_namespace_not_found(kubectl):
    result = kubectl.run("run", "orphan", "--image=nginx", "-n", "no-such-ns", check=False)
    assert result.returncode == 1
    assert result.stderr.strip() == 'Error from server (NotFound): namespaces "no-such-ns" not found'


def test_unknown_resource_type_is_reported(kubectl):
    result = kubectl.run("get", "frobnicators", check=False)
    assert result.returncode == 1
    assert result.stderr.strip() == 'error: the server doesn\'t have a resource type "frobnicators"'
