"""ServiceAccount identities against a real `pyk8s server` (controllers, no node): the
TokenRequest API and `kubectl create token`, tokens used as bearer credentials (who they
authenticate as, refusal once the bound pod or account is gone), issuer discovery open to
anonymous requests, the admission plugin's token volume, kube-root-ca.crt in every namespace
and legacy token Secrets filled by the token controller."""

from __future__ import annotations

import base64
import json
import ssl
import subprocess
import urllib.error
import urllib.request

import pytest
import yaml

from conftest import KUBECTL, eventually

ISSUER = "https://kubernetes.default.svc.cluster.local"


def claims_of(token: str) -> dict:
    payload = token.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))


def raw(server, path: str, token: str | None = None) -> tuple[int, dict]:
    """GET over HTTPS trusting the cluster CA, with no client certificate."""
    context = ssl.create_default_context(cafile=str(server.data_dir / "server" / "tls" / "ca.crt"))
    headers = {"Accept": "application/json"}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    try:
        with urllib.request.urlopen(urllib.request.Request(server.url + path, headers=headers), context=context,
                                    timeout=10) as reply:
            return reply.status, json.loads(reply.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"null")


def token_kubeconfig(server, token: str, path) -> str:
    ca = base64.b64encode((server.data_dir / "server" / "tls" / "ca.crt").read_bytes()).decode()
    path.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "current-context": "sa",
        "clusters": [{"name": "c", "cluster": {"server": server.url, "certificate-authority-data": ca}}],
        "users": [{"name": "sa", "user": {"token": token}}],
        "contexts": [{"name": "sa", "context": {"cluster": "c", "user": "sa", "namespace": "default"}}]}))
    return str(path)


def as_token(server, token: str, tmp_path, *args: str) -> subprocess.CompletedProcess:
    config = token_kubeconfig(server, token, tmp_path / "sa.kubeconfig")
    return subprocess.run([KUBECTL, "--kubeconfig", config, "--cache-dir", str(tmp_path / "sa-cache"), *args],
                          capture_output=True, text=True, timeout=60)


def authenticated(server, token: str) -> bool:
    """Whether the API knows who `token` is: any answer but 401 (authorization, which
    another part of the server does, may still refuse it with 403)."""
    return raw(server, "/api", token)[0] != 401


def serves_self_subject_review(kubectl) -> bool:
    """kubectl auth whoami needs SelfSubjectReview (the authorization work adds it)."""
    found = kubectl.run("api-resources", "--api-group", "authentication.k8s.io", "-o", "name", check=False)
    return found.returncode == 0 and "selfsubjectreviews" in found.stdout


@pytest.fixture(scope="module")
def account(server, tmp_path_factory):
    from conftest import Kubectl
    kubectl = Kubectl(server, tmp_path_factory.mktemp("sa-cache"))
    kubectl("create", "serviceaccount", "app")
    yield "app"
    kubectl("delete", "serviceaccount", "app", "--ignore-not-found")


def test_kubectl_create_token_with_duration(kubectl, account):
    token = kubectl("create", "token", account, "--duration", "20m").strip()
    claims = claims_of(token)
    assert claims["iss"] == ISSUER and claims["aud"] == [ISSUER]
    assert claims["sub"] == "system:serviceaccount:default:app"
    assert claims["exp"] - claims["iat"] == 1200
    assert claims["kubernetes.io"]["serviceaccount"]["name"] == "app"
    assert "pod" not in claims["kubernetes.io"]
    short = kubectl.run("create", "token", account, "--duration", "5m", check=False)
    assert short.returncode != 0
    assert "may not specify a duration less than 10 minutes" in short.stderr


def test_a_token_authenticates_as_its_service_account(server, kubectl, account, tmp_path):
    token = kubectl("create", "token", account).strip()
    assert authenticated(server, token)
    for bad in ("not-a-token", token[:-6] + "AAAAAA", token.replace(".", "", 1), "a.b.c"):
        status, body = raw(server, "/api", bad)
        assert (status, body["reason"]) == (401, "Unauthorized")
    audience = kubectl("create", "token", account, "--audience", "vault").strip()
    assert raw(server, "/api", audience)[0] == 401


def test_auth_whoami_with_a_token(server, kubectl, account, tmp_path):
    if not serves_self_subject_review(kubectl):
        pytest.skip("SelfSubjectReview is not served (the authorization work adds it)")
    token = kubectl("create", "token", account).strip()
    whoami = as_token(server, token, tmp_path, "auth", "whoami", "-o", "json")
    assert whoami.returncode == 0, whoami.stderr
    user = json.loads(whoami.stdout)["status"]["userInfo"]
    assert user["username"] == "system:serviceaccount:default:app"
    assert set(user["groups"]) == {"system:serviceaccounts", "system:serviceaccounts:default",
                                   "system:authenticated"}


def test_a_pod_bound_token_stops_working_when_the_pod_is_deleted(server, kubectl, account):
    kubectl("run", "bound", "--image", "busybox", "--overrides",
            json.dumps({"spec": {"serviceAccountName": account}}), "--restart", "Never")
    uid = kubectl("get", "pod", "bound", "-o", "jsonpath={.metadata.uid}")
    token = kubectl("create", "token", account, "--bound-object-kind", "Pod", "--bound-object-name", "bound").strip()
    claims = claims_of(token)
    assert claims["kubernetes.io"]["pod"] == {"name": "bound", "uid": uid}
    assert authenticated(server, token)
    kubectl("delete", "pod", "bound", "--grace-period=0", "--force")
    eventually(lambda: not authenticated(server, token), 10, what="the bound pod's token refused")
    wrong = kubectl.run("create", "token", account, "--bound-object-kind", "Pod", "--bound-object-name", "bound",
                        check=False)
    assert 'pods "bound" not found' in wrong.stderr


def test_deleting_the_service_account_invalidates_its_tokens(server, kubectl):
    kubectl("create", "serviceaccount", "shortlived")
    token = kubectl("create", "token", "shortlived").strip()
    assert authenticated(server, token)
    kubectl("delete", "serviceaccount", "shortlived")
    eventually(lambda: not authenticated(server, token), 10, what="the deleted account's token refused")


def test_issuer_discovery_documents(server, kubectl, account):
    # Anonymous requests pass authentication; upstream's RBAC then lets only service
    # accounts read them (system:service-account-issuer-discovery), so 200 without RBAC, 403 with it.
    assert raw(server, "/.well-known/openid-configuration")[0] in (200, 403)
    assert raw(server, "/api/v1/namespaces/default/pods")[0] == 401  # nothing else opens up
    token = kubectl("create", "token", account).strip()
    status, document = raw(server, "/.well-known/openid-configuration", token)
    assert status == 200
    assert document == {"issuer": ISSUER, "jwks_uri": ISSUER + "/openid/v1/jwks",
                        "response_types_supported": ["id_token"], "subject_types_supported": ["public"],
                        "id_token_signing_alg_values_supported": ["ES256"]}
    status, keys = raw(server, "/openid/v1/jwks", token)
    assert status == 200
    assert [key["kty"] for key in keys["keys"]] == ["EC"]
    assert keys["keys"][0]["kid"] == json.loads(base64.urlsafe_b64decode(token.split(".")[0] + "=="))["kid"]


def test_admission_gives_pods_the_token_volume(kubectl):
    kubectl("run", "mounted", "--image", "busybox", "--restart", "Never")
    spec = json.loads(kubectl("get", "pod", "mounted", "-o", "json"))["spec"]
    assert spec["serviceAccountName"] == "default"
    (volume,) = [v for v in spec["volumes"] if v["name"].startswith("kube-api-access-")]
    sources = volume["projected"]["sources"]
    assert sources[0] == {"serviceAccountToken": {"expirationSeconds": 3607, "path": "token"}}
    assert sources[1]["configMap"]["name"] == "kube-root-ca.crt"
    assert spec["containers"][0]["volumeMounts"] == [
        {"name": volume["name"], "readOnly": True, "mountPath": "/var/run/secrets/kubernetes.io/serviceaccount"}]
    kubectl("delete", "pod", "mounted", "--grace-period=0", "--force")

    quiet = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "quiet"},
             "spec": {"automountServiceAccountToken": False, "containers": [{"name": "c", "image": "busybox"}]}}
    kubectl("create", "-f", "-", input=json.dumps(quiet))
    assert not json.loads(kubectl("get", "pod", "quiet", "-o", "json"))["spec"].get("volumes")
    kubectl("delete", "pod", "quiet", "--grace-period=0", "--force")

    missing = kubectl.run("run", "orphan", "--image", "busybox", "--overrides",
                          json.dumps({"spec": {"serviceAccountName": "ghost"}}), check=False)
    assert missing.returncode != 0
    assert ('pods "orphan" is forbidden: error looking up service account default/ghost: '
            'serviceaccount "ghost" not found') in missing.stderr


def test_every_namespace_gets_the_root_ca_config_map(server, kubectl):
    kubectl("create", "namespace", "ca-check")
    try:
        def ca():
            result = kubectl.run("get", "configmap", "kube-root-ca.crt", "-n", "ca-check", "-o", "json", check=False)
            return json.loads(result.stdout)["data"]["ca.crt"] if result.returncode == 0 else None
        assert eventually(ca, 20) == (server.data_dir / "server" / "tls" / "ca.crt").read_text()
        kubectl("delete", "configmap", "kube-root-ca.crt", "-n", "ca-check")
        eventually(ca, 20, what="kube-root-ca.crt re-created")
    finally:
        kubectl("delete", "namespace", "ca-check", "--wait=false")


def test_legacy_token_secret_is_filled_and_authenticates(server, kubectl, account):
    secret = {"apiVersion": "v1", "kind": "Secret", "type": "kubernetes.io/service-account-token",
              "metadata": {"name": "app-legacy", "annotations": {"kubernetes.io/service-account.name": account}}}
    kubectl("create", "-f", "-", input=json.dumps(secret))

    def filled():
        data = json.loads(kubectl("get", "secret", "app-legacy", "-o", "json")).get("data") or {}
        return data if {"token", "ca.crt", "namespace"} <= set(data) else None
    data = eventually(filled, 20, what="legacy token Secret filled")
    token = base64.b64decode(data["token"]).decode()
    assert base64.b64decode(data["namespace"]) == b"default"
    claims = claims_of(token)
    assert claims["iss"] == "kubernetes/serviceaccount" and "exp" not in claims
    assert claims["kubernetes.io/serviceaccount/secret.name"] == "app-legacy"
    assert authenticated(server, token)
    kubectl("delete", "secret", "app-legacy")
    eventually(lambda: not authenticated(server, token), 10, what="legacy token refused after its Secret")
