"""In-cluster API access with real pods: the ServiceAccount admission plugin's projected
volume gives every container its token, the cluster CA and its namespace, the kubelet sets
KUBERNETES_SERVICE_HOST/PORT, and a client inside the pod calls the API through the
`kubernetes` Service with them, as client-go's InClusterConfig and the official Python
client's load_incluster_config() do. Three callers, each with only what a pod has:
- a stdlib-only script doing raw HTTPS in the node's Python image (the one the cluster DNS runs);
- the real kubectl (a static binary, mounted read-only from the test's venv through a hostPath)
  in a busybox pod, with no kubeconfig: client-go's in-cluster config;
- the official Python client's `load_incluster_config()` in the node's Python image, its
  packages mounted read-only from the test's venv through a hostPath.

With RBAC served, the test grants its ServiceAccount a Role to list pods first (and checks
that Secrets and other namespaces stay out of reach, with upstream's 403 text); without it any
authenticated caller may list pods.
"""

from __future__ import annotations

import base64
import json
import sys
from pathlib import Path

import pytest

from conftest import Kubectl, eventually

NAMESPACE = "incluster"
TOKEN_DIR = "/var/run/secrets/kubernetes.io/serviceaccount"

# What the pod runs: read the mounted files, list pods through the kubernetes Service,
# print one JSON line.
SCRIPT = r'''
import json, os, ssl, urllib.request, urllib.error
base = "/var/run/secrets/kubernetes.io/serviceaccount"
token = open(base + "/token").read().strip()
namespace = open(base + "/namespace").read().strip()
context = ssl.create_default_context(cafile=base + "/ca.crt")
host, port = os.environ["KUBERNETES_SERVICE_HOST"], os.environ["KUBERNETES_SERVICE_PORT"]
def get(path):
    request = urllib.request.Request(f"https://{host}:{port}{path}",
                                     headers={"Authorization": "Bearer " + token, "Accept": "application/json"})
    try:
        with urllib.request.urlopen(request, context=context, timeout=10) as reply:
            return reply.status, json.loads(reply.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"null")
pods_status, pods = get(f"/api/v1/namespaces/{namespace}/pods")
secrets_status, _ = get(f"/api/v1/namespaces/{namespace}/secrets")
by_name_status, _ = get("/api/v1/namespaces/default/pods/x")
print(json.dumps({"host": host, "port": port, "namespace": namespace, "token": token,
                  "ca": open(base + "/ca.crt").read(),
                  "pods_status": pods_status, "pods": [p["metadata"]["name"] for p in (pods or {}).get("items", [])],
                  "secrets_status": secrets_status}), flush=True)
'''


@pytest.fixture(scope="module")
def kubectl(cluster, tmp_path_factory):
    kubectl = Kubectl(cluster, tmp_path_factory.mktemp("incluster-cache"))
    kubectl("create", "namespace", NAMESPACE)
    yield kubectl
    kubectl("delete", "namespace", NAMESPACE, "--wait=false", check=False)


def rbac_served(kubectl) -> bool:
    found = kubectl.run("api-resources", "--api-group", "rbac.authorization.k8s.io", "-o", "name", check=False)
    return found.returncode == 0 and "roles" in found.stdout


def python_image() -> str:
    from pyk8s.kubelet.images.python import dns_image_name
    return dns_image_name()


def claims_of(token: str) -> dict:
    payload = token.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))


@pytest.fixture(scope="module")
def lister(kubectl) -> bool:
    """The ServiceAccount `lister`, granted list/get on pods in its namespace (and nothing
    else) when RBAC is served; whether it is."""
    kubectl("create", "serviceaccount", "lister", "-n", NAMESPACE)
    rbac = rbac_served(kubectl)
    if rbac:
        kubectl("create", "role", "pod-lister", "--verb", "list,get", "--resource", "pods", "-n", NAMESPACE)
        kubectl("create", "rolebinding", "pod-lister", "--role", "pod-lister",
                "--serviceaccount", f"{NAMESPACE}:lister", "-n", NAMESPACE)
    return rbac


def forbidden_text(resource: str, namespace: str) -> str:
    """Upstream's 403 message for a list by the lister account."""
    return (f'{resource} is forbidden: User "system:serviceaccount:{NAMESPACE}:lister" cannot list resource '
            f'"{resource}" in API group "" in the namespace "{namespace}"')


def run_to_completion(kubectl, pod: dict) -> str:
    """Creates `pod` (restartPolicy Never) as the lister, waits for it to finish and returns
    its logs; a failed pod fails the test with them."""
    name = pod["metadata"]["name"]
    pod["metadata"]["namespace"] = NAMESPACE
    pod["spec"].update(serviceAccountName="lister", restartPolicy="Never")
    kubectl("create", "-f", "-", input=json.dumps(pod))

    def finished():
        phase = kubectl("get", "pod", name, "-n", NAMESPACE, "-o", "jsonpath={.status.phase}")
        return phase if phase in ("Succeeded", "Failed") else None
    phase = eventually(finished, 120, what=f"the {name} pod finished",
                       context=lambda: kubectl.run("describe", "pod", name, "-n", NAMESPACE, check=False).stdout)
    logs = kubectl("logs", name, "-n", NAMESPACE)
    assert phase == "Succeeded", logs
    return logs


def test_a_pod_calls_the_api_through_the_kubernetes_service_with_its_token(cluster, kubectl, lister):
    rbac = lister
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "caller"},
           "spec": {"containers": [{"name": "caller", "image": python_image(), "imagePullPolicy": "IfNotPresent",
                                    "command": [str(Path(sys.executable).resolve()), "-c", SCRIPT]}]}}
    logs = run_to_completion(kubectl, pod)
    seen = json.loads(logs.strip().splitlines()[-1])

    assert seen["host"] == "10.43.0.1" and seen["port"] == "443"
    assert seen["namespace"] == NAMESPACE
    assert seen["ca"] == (cluster.data_dir / "server" / "tls" / "ca.crt").read_text()
    pod_uid = kubectl("get", "pod", "caller", "-n", NAMESPACE, "-o", "jsonpath={.metadata.uid}")
    claims = claims_of(seen["token"])
    assert claims["sub"] == f"system:serviceaccount:{NAMESPACE}:lister"
    assert claims["kubernetes.io"]["pod"] == {"name": "caller", "uid": pod_uid}
    assert claims["kubernetes.io"]["node"]["name"]
    assert claims["exp"] - claims["iat"] == 3607

    assert seen["pods_status"] == 200
    assert "caller" in seen["pods"]
    if rbac:
        assert seen["secrets_status"] == 403

    # The pod's token dies with the pod.
    kubectl("delete", "pod", "caller", "-n", NAMESPACE, "--grace-period=0", "--force")
    import ssl
    import urllib.error
    import urllib.request

    def refused():
        context = ssl.create_default_context(cafile=str(cluster.data_dir / "server" / "tls" / "ca.crt"))
        request = urllib.request.Request(cluster.url + "/api", headers={"Authorization": "Bearer " + seen["token"]})
        try:
            urllib.request.urlopen(request, context=context, timeout=10).close()
            return False
        except urllib.error.HTTPError as error:
            return error.code == 401
    eventually(refused, 90, what="the deleted pod's token refused")


# kubectl inside a pod: no kubeconfig, so client-go's in-cluster config (the Service
# variables, the token, ca.crt and the namespace file). Each call prints its output and exit code.
KUBECTL_CALLS = {"pods": "get pods -o name", "other_namespace": "get pods -n default -o name",
                 "secrets": "get secrets -o name"}
KUBECTL_SCRIPT = "; ".join(f'echo "== {key}"; /kubectl {args} 2>&1; echo "== rc $?"'
                           for key, args in KUBECTL_CALLS.items())


def kubectl_sections(logs: str) -> dict[str, tuple[str, int]]:
    """{call: (output, exit code)} from KUBECTL_SCRIPT's logs."""
    sections, key, lines = {}, None, []
    for line in logs.splitlines():
        if line.startswith("== rc "):
            sections[key] = ("\n".join(lines).strip(), int(line.removeprefix("== rc ")))
        elif line.startswith("== "):
            key, lines = line.removeprefix("== "), []
        else:
            lines.append(line)
    return sections


def test_kubectl_in_a_pod_lists_pods_with_the_pods_token_and_is_refused_elsewhere(kubectl, lister):
    from conftest import KUBECTL
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "kubectl-caller"},
           "spec": {"containers": [{"name": "kubectl", "image": "pyk8s/busybox:1.35", "imagePullPolicy": "IfNotPresent",
                                    "command": ["sh", "-c", KUBECTL_SCRIPT], "env": [{"name": "HOME", "value": "/tmp"}],
                                    "volumeMounts": [{"name": "kubectl", "mountPath": "/kubectl", "readOnly": True}]}],
                    "volumes": [{"name": "kubectl",
                                 "hostPath": {"path": str(Path(KUBECTL).resolve()), "type": "File"}}]}}
    try:
        sections = kubectl_sections(run_to_completion(kubectl, pod))
        output, code = sections["pods"]
        assert code == 0 and "pod/kubectl-caller" in output.split(), sections
        if lister:
            assert sections["other_namespace"] == (
                "Error from server (Forbidden): " + forbidden_text("pods", "default"), 1), sections
            assert sections["secrets"] == (
                "Error from server (Forbidden): " + forbidden_text("secrets", NAMESPACE), 1), sections
    finally:
        kubectl("delete", "pod", "kubectl-caller", "-n", NAMESPACE, "--grace-period=0", "--force", check=False)


# The official Python client inside a pod: load_incluster_config() and CoreV1Api.
CLIENT_SCRIPT = r'''
import json
from kubernetes import client, config
from kubernetes.client.rest import ApiException
config.load_incluster_config()
api = client.CoreV1Api()
namespace = open("/var/run/secrets/kubernetes.io/serviceaccount/namespace").read().strip()
seen = {"host": client.Configuration.get_default_copy().host}
def call(key, method):
    try:
        seen[key] = {"status": 200, "names": [item.metadata.name for item in method().items]}
    except ApiException as error:
        seen[key] = {"status": error.status, "body": json.loads(error.body)}
call("pods", lambda: api.list_namespaced_pod(namespace))
call("other_namespace", lambda: api.list_namespaced_pod("default"))
call("secrets", lambda: api.list_namespaced_secret(namespace))
print(json.dumps(seen), flush=True)
'''


def test_the_python_client_in_a_pod_uses_load_incluster_config(kubectl, lister):
    import kubernetes
    site_packages = str(Path(kubernetes.__file__).resolve().parents[1])
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "client-caller"},
           "spec": {"containers": [{"name": "client", "image": python_image(), "imagePullPolicy": "IfNotPresent",
                                    "command": [str(Path(sys.executable).resolve()), "-c", CLIENT_SCRIPT],
                                    "env": [{"name": "PYTHONPATH", "value": site_packages}],
                                    "volumeMounts": [{"name": "packages", "mountPath": site_packages,
                                                      "readOnly": True}]}],
                    "volumes": [{"name": "packages", "hostPath": {"path": site_packages, "type": "Directory"}}]}}
    try:
        seen = json.loads(run_to_completion(kubectl, pod).strip().splitlines()[-1])
        assert seen["host"] == "https://10.43.0.1:443"
        assert seen["pods"]["status"] == 200 and "client-caller" in seen["pods"]["names"], seen
        if lister:
            for key, resource, namespace in (("other_namespace", "pods", "default"),
                                             ("secrets", "secrets", NAMESPACE)):
                assert seen[key]["status"] == 403, seen
                body = seen[key]["body"]
                assert (body["kind"], body["status"], body["reason"], body["code"]) == \
                    ("Status", "Failure", "Forbidden", 403)
                assert body["message"] == forbidden_text(resource, namespace)
                assert body["details"] == {"kind": resource}
    finally:
        kubectl("delete", "pod", "client-caller", "-n", NAMESPACE, "--grace-period=0", "--force", check=False)


def test_dns_pods_use_their_service_account_token(cluster, kubectl):
    def dns_pods():
        return json.loads(kubectl("get", "pods", "-n", "kube-system", "-l", "k8s-app=kube-dns", "-o", "json"))["items"]
    pods = eventually(dns_pods, 60, what="DNS pods", context=lambda: cluster.log_tail(60))
    for pod in pods:
        spec = pod["spec"]
        assert spec["serviceAccountName"] == "coredns"
        assert any(v["name"].startswith("kube-api-access-") for v in spec["volumes"])
        assert not any("PYK8S_API" in (e.get("name") or "") for e in spec["containers"][0].get("env") or [])
    assert kubectl.run("get", "secret", "coredns-api-credentials", "-n", "kube-system", check=False).returncode != 0

    def dns_ready():
        ready = kubectl("get", "deployment", "coredns", "-n", "kube-system", "-o", "jsonpath={.status.readyReplicas}")
        return ready not in ("", "0")
    eventually(dns_ready, 120, what="the DNS deployment ready with ServiceAccount tokens")
