"""Bootstrap tokens and anonymous discovery against a real `pyk8s server`, over raw HTTPS
with no client certificate: what a joining node sees before it has any credential.

Checked: the node token the server writes (CA pin + a bootstrap token it keeps across
restarts), bearer tokens accepted or refused according to their Secret (refusals look
exactly like a request with no credential at all; an accepted token is then authorized by
RBAC like any user), a deleted token stops working, and only
GET of kube-public/cluster-info is open to anonymous requests.
"""

from __future__ import annotations

import asyncio
import base64
import datetime
import hashlib
import json
import ssl
import urllib.error
import urllib.request
import uuid

import pytest
import yaml

from pyk8s.api import errors
from pyk8s.api.resources import lookup
from pyk8s.apiserver.bootstrap import bootstrap_token_secret
from pyk8s.client import Client
from pyk8s.client.nodetoken import NodeTokenError, discover_cluster_ca, parse_node_token
from pyk8s.cluster.localcluster import LocalServer

from conftest import eventually

SECRETS = lookup("", "v1", "secrets")
CSRS = lookup("certificates.k8s.io", "v1", "certificatesigningrequests")
# What the node token may read: its CSRs (system:node-bootstrapper), nothing of the node's.
CSRS_PATH = "/apis/certificates.k8s.io/v1/certificatesigningrequests"
PODS_PATH = "/api/v1/namespaces/default/pods"
CLUSTER_INFO_PATH = "/api/v1/namespaces/kube-public/configmaps/cluster-info"
# What a request with no credential at all gets (upstream's body too).
UNAUTHORIZED = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                "message": "Unauthorized", "reason": "Unauthorized", "code": 401}


def ca_path(server: LocalServer):
    return server.data_dir / "server" / "tls" / "ca.crt"


def request(server: LocalServer, method: str, path: str, *, token: str | None = None, authorization: str | None = None,
            body: dict | None = None) -> tuple[int, dict]:
    """One HTTPS request that trusts the cluster CA and presents no client certificate."""
    context = ssl.create_default_context(cafile=str(ca_path(server)))
    headers = {"Accept": "application/json", "Content-Type": "application/json"}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    if authorization is not None:
        headers["Authorization"] = authorization
    data = json.dumps(body).encode() if body is not None else None
    http_request = urllib.request.Request(server.url + path, data=data, method=method, headers=headers)
    try:
        with urllib.request.urlopen(http_request, context=context, timeout=10) as reply:
            return reply.status, json.loads(reply.read() or b"null")
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"null")


def admin(server: LocalServer, scenario):
    async def main():
        async with Client.from_kubeconfig(server.kubeconfig) as client:
            return await scenario(client)
    return asyncio.run(main())


def random_token() -> tuple[str, str]:
    alphabet = "0123456789abcdefghijklmnopqrstuvwxyz"
    raw = uuid.uuid4().int
    chars = []
    for _ in range(22):
        raw, index = divmod(raw, len(alphabet))
        chars.append(alphabet[index])
    return "".join(chars[:6]), "".join(chars[6:])


def create_token(server: LocalServer, *, expiration: str = "", usage: str = "true") -> str:
    token_id, token_secret = random_token()
    secret = bootstrap_token_secret(token_id, token_secret, description="test token",
                                    extra_groups=["system:bootstrappers:test"], expiration=expiration)
    secret["data"]["usage-bootstrap-authentication"] = base64.b64encode(usage.encode()).decode()
    admin(server, lambda client: client.create(SECRETS, secret))
    return f"{token_id}.{token_secret}"


def delete_token(server: LocalServer, token: str) -> None:
    admin(server, lambda client: client.delete(SECRETS, f"bootstrap-token-{token.split('.')[0]}", "kube-system"))


def rfc3339(offset: datetime.timedelta) -> str:
    return (datetime.datetime.now(datetime.timezone.utc) + offset).strftime("%Y-%m-%dT%H:%M:%SZ")


def test_node_token_file_pins_the_ca_and_holds_a_working_bootstrap_token(server):
    path = server.data_dir / "node-token"
    assert path.stat().st_mode & 0o777 == 0o600
    token = parse_node_token(path.read_text())
    assert token.ca_hash == hashlib.sha256(ca_path(server).read_bytes()).hexdigest()
    token_id = token.credential.split(".")[0]
    secret = admin(server, lambda client: client.get(SECRETS, f"bootstrap-token-{token_id}", "kube-system"))
    data = {key: base64.b64decode(value).decode() for key, value in secret["data"].items()}
    assert secret["type"] == "bootstrap.kubernetes.io/token"
    assert data["usage-bootstrap-authentication"] == "true"
    assert data["description"] == "pyk8s node join token"
    assert data["auth-extra-groups"] == "system:bootstrappers:pyk8s:default-node-token"
    assert "expiration" not in data
    status, csrs = request(server, "GET", CSRS_PATH, token=token.credential)
    assert status == 200 and csrs["kind"] == "CertificateSigningRequestList"
    assert "node token: " + str(path) in server.log_path.read_text()


def test_valid_bootstrap_token_authenticates_and_rbac_decides_what_it_may_do(server):
    token = create_token(server, expiration=rfc3339(datetime.timedelta(hours=1)))
    status, review = request(server, "POST", "/apis/authentication.k8s.io/v1/selfsubjectreviews", token=token,
                             body={"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview"})
    assert status == 201, review
    user = review["status"]["userInfo"]
    assert user["username"] == f"system:bootstrap:{token.split('.')[0]}"
    assert user["groups"] == ["system:bootstrappers", "system:bootstrappers:test", "system:authenticated"]
    # No binding grants a test token's groups more.
    status, refused = request(server, "GET", PODS_PATH, token=token)
    assert status == 403
    assert refused["message"] == (f'pods is forbidden: User "{user["username"]}" cannot list resource "pods" '
                                  f'in API group "" in the namespace "default"')


def test_the_node_token_may_only_ask_for_a_node_certificate(server):
    """The node token's group is bound to system:node-bootstrapper and nodeclient approval
    only (kubeadm's bindings): it reads no Secret, ConfigMap or pod, as upstream's tokens."""
    node_token = (server.data_dir / "node-token").read_text().strip().split("::", 1)[1]
    token_user = f"system:bootstrap:{node_token.split('.')[0]}"
    for resource, path in (("secrets", "/api/v1/namespaces/kube-system/secrets"),
                           ("configmaps", "/api/v1/namespaces/default/configmaps"), ("pods", PODS_PATH)):
        status, refused = request(server, "GET", path, token=node_token)
        assert status == 403, (path, refused)
        namespace = path.split("/")[4]
        assert refused["message"] == (f'{resource} is forbidden: User "{token_user}" cannot list resource '
                                      f'"{resource}" in API group "" in the namespace "{namespace}"')
    status, listed = request(server, "GET", "/apis/certificates.k8s.io/v1/certificatesigningrequests", token=node_token)
    assert status == 200 and listed["kind"] == "CertificateSigningRequestList"


def test_refused_tokens_get_the_same_401_as_no_credential(server):
    valid = create_token(server)
    token_id, token_secret = valid.split(".")
    expired = create_token(server, expiration=rfc3339(-datetime.timedelta(minutes=1)))
    not_for_authentication = create_token(server, usage="false")
    assert request(server, "GET", PODS_PATH) == (401, UNAUTHORIZED)
    refused = {
        "wrong secret": {"token": f"{token_id}.{token_secret[::-1]}"},
        "unknown id": {"token": ".".join(random_token())},
        "expired": {"token": expired},
        "usage not true": {"token": not_for_authentication},
        "no token": {"authorization": "Bearer"},
        "not a bootstrap token": {"token": "sometoken"},
        "another scheme": {"authorization": f"Basic {valid}"},
    }
    for case, credential in refused.items():
        assert request(server, "GET", PODS_PATH, **credential) == (401, UNAUTHORIZED), case
    assert request(server, "GET", PODS_PATH, token=valid)[0] == 403  # authenticated; RBAC refuses


def test_deleted_token_stops_working_after_the_cache_window(server):
    token = create_token(server)
    assert request(server, "GET", PODS_PATH, token=token)[0] == 403  # authenticated; RBAC refuses
    delete_token(server, token)
    eventually(lambda: request(server, "GET", PODS_PATH, token=token)[0] == 401, what="the deleted token refused")


def test_cluster_info_is_readable_anonymously_and_holds_only_ca_and_server(server):
    status, config_map = request(server, "GET", CLUSTER_INFO_PATH)
    assert status == 200, config_map
    kubeconfig = yaml.safe_load(config_map["data"]["kubeconfig"])
    [cluster] = kubeconfig["clusters"]
    assert base64.b64decode(cluster["cluster"]["certificate-authority-data"]) == ca_path(server).read_bytes()
    assert cluster["cluster"]["server"] == server.url
    assert not kubeconfig.get("users")
    assert "token" not in config_map["data"]["kubeconfig"]


def test_anonymous_requests_are_refused_everywhere_else(server):
    body = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cluster-info"}, "data": {}}
    for method, path, payload in (
            ("POST", "/api/v1/namespaces/kube-public/configmaps", body),
            ("PUT", CLUSTER_INFO_PATH, body),
            ("DELETE", CLUSTER_INFO_PATH, None),
            ("GET", "/api/v1/namespaces/kube-public/configmaps", None),
            ("GET", "/api/v1/watch/namespaces/kube-public/configmaps/cluster-info", None),
            ("GET", "/api/v1/namespaces/kube-system/secrets", None),
            ("GET", "/api/v1/namespaces/kube-system/configmaps/cluster-info", None),
            ("GET", "/api", None),
            ("GET", "/version", None)):
        assert request(server, method, path, body=payload) == (401, UNAUTHORIZED), (method, path)
    # Still there, unchanged.
    assert request(server, "GET", CLUSTER_INFO_PATH)[0] == 200


def test_discovery_refuses_a_server_whose_ca_does_not_match_the_pin(server):
    token = parse_node_token((server.data_dir / "node-token").read_text())
    assert asyncio.run(discover_cluster_ca(server.url, token)) == ca_path(server).read_bytes()
    wrong = type(token)("0" * 64, token.credential)
    with pytest.raises(NodeTokenError, match="does not match the node token"):
        asyncio.run(discover_cluster_ca(server.url, wrong))


def test_a_restart_keeps_the_node_token_and_a_deleted_one_is_replaced(tmp_path):
    local = LocalServer(tmp_path / "server", extra_args=["--disable-agent", "--disable-controllers"])
    local.start()
    try:
        first = (local.data_dir / "node-token").read_text()
        local.stop()
        local.start()
        assert (local.data_dir / "node-token").read_text() == first
        credential = parse_node_token(first).credential
        assert request(local, "GET", CSRS_PATH, token=credential)[0] == 200

        delete_token(local, credential)
        local.stop()
        local.start()
        second = (local.data_dir / "node-token").read_text()
        assert parse_node_token(second).credential != credential
        assert request(local, "GET", CSRS_PATH, token=parse_node_token(second).credential)[0] == 200
        assert request(local, "GET", CSRS_PATH, token=credential)[0] == 401
    finally:
        local.stop()


def test_client_with_a_bearer_token_lists_and_watches(server):
    token = parse_node_token((server.data_dir / "node-token").read_text())

    async def scenario():
        ca_pem = await discover_cluster_ca(server.url, token)
        async with Client.from_token(server.url, token.credential, ca_pem) as client:
            from cryptography import x509
            from cryptography.hazmat.primitives import hashes, serialization
            from cryptography.hazmat.primitives.asymmetric import ec
            from cryptography.x509.oid import NameOID
            request_pem = x509.CertificateSigningRequestBuilder().subject_name(x509.Name([
                x509.NameAttribute(NameOID.ORGANIZATION_NAME, "system:nodes"),
                x509.NameAttribute(NameOID.COMMON_NAME, "system:node:watched")])).sign(
                ec.generate_private_key(ec.SECP256R1()), hashes.SHA256()).public_bytes(serialization.Encoding.PEM)
            created = await client.create(CSRS, {
                "apiVersion": "certificates.k8s.io/v1", "kind": "CertificateSigningRequest",
                "metadata": {"generateName": "csr-"},
                "spec": {"request": base64.b64encode(request_pem).decode(), "usages": ["digital signature", "client auth"],
                         "signerName": "kubernetes.io/kube-apiserver-client-kubelet"}})
            listed = await client.list(CSRS)
            assert created["metadata"]["name"] in [c["metadata"]["name"] for c in listed["items"]]
            seen = []
            async for event in client.watch(CSRS, timeout_seconds=1):
                seen.append((event["type"], event["object"]["metadata"].get("name")))
                if event["type"] == "ADDED":
                    break
            assert any(event_type == "ADDED" for event_type, _ in seen), seen
            with pytest.raises(errors.Forbidden):
                await client.list(SECRETS, "kube-system")
        async with Client.from_token(server.url, "abcdef.0123456789abcdef", ca_pem) as stranger:
            with pytest.raises(errors.Unauthorized):
                await stranger.list(CSRS)
    asyncio.run(scenario())
