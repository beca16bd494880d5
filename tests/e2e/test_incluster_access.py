"""In-cluster API access with real pods: the ServiceAccount admission plugin's projected
volume gives every container its token, the cluster CA and its namespace, the kubelet sets
KUBERNETES_SERVICE_HOST/PORT, and a client inside the pod calls the API through the
`kubernetes` Service with them, as client-go's InClusterConfig and the official Python
client's load_incluster_config() do. The pod runs the node's Python image (the one the
cluster DNS runs), with a stdlib-only script doing raw HTTPS.

With RBAC served, the test grants its ServiceAccount a Role to list pods first (and checks
that Secrets stay out of reach); without it any authenticated caller may list pods.
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


def test_a_pod_calls_the_api_through_the_kubernetes_service_with_its_token(cluster, kubectl):
    kubectl("create", "serviceaccount", "lister", "-n", NAMESPACE)
    rbac = rbac_served(kubectl)
    if rbac:
        kubectl("create", "role", "pod-lister", "--verb", "list,get", "--resource", "pods", "-n", NAMESPACE)
        kubectl("create", "rolebinding", "pod-lister", "--role", "pod-lister",
                "--serviceaccount", f"{NAMESPACE}:lister", "-n", NAMESPACE)
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "caller", "namespace": NAMESPACE},
           "spec": {"serviceAccountName": "lister", "restartPolicy": "Never",
                    "containers": [{"name": "caller", "image": python_image(), "imagePullPolicy": "IfNotPresent",
                                    "command": [str(Path(sys.executable).resolve()), "-c", SCRIPT]}]}}
    kubectl("create", "-f", "-", input=json.dumps(pod))

    def finished():
        phase = kubectl("get", "pod", "caller", "-n", NAMESPACE, "-o", "jsonpath={.status.phase}")
        return phase if phase in ("Succeeded", "Failed") else None
    phase = eventually(finished, 120, what="the caller pod finished",
                       context=lambda: kubectl.run("describe", "pod", "caller", "-n", NAMESPACE, check=False).stdout)
    logs = kubectl("logs", "caller", "-n", NAMESPACE)
    assert phase == "Succeeded", logs
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
