"""Node identities against a real `pyk8s server` (control plane, no agent): the CSR flow
with kubectl, what a node certificate may read (Node authorizer), what it may change
(NodeRestriction), and the audit log of a server started with --audit-log and a policy.

Node certificates are issued with the cluster CA directly (cluster/pki.py), for Node
objects and pods this test creates and binds itself.
"""

from __future__ import annotations

import asyncio
import base64
import json
import ssl
import urllib.error
import urllib.request

import subprocess

import pytest
import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from pyk8s.api import errors
from pyk8s.api.resources import lookup
from pyk8s.client import Client
from pyk8s.cluster.localcluster import LocalServer
from pyk8s.cluster.pki import client_ssl_context, ensure_pki, issue_client_cert

from conftest import KUBECTL, Kubectl, eventually

NODES = lookup("", "v1", "nodes")
PODS = lookup("", "v1", "pods")
SECRETS = lookup("", "v1", "secrets")
LEASES = lookup("coordination.k8s.io", "v1", "leases")
CSRS = lookup("certificates.k8s.io", "v1", "certificatesigningrequests")
ROLES = lookup("rbac.authorization.k8s.io", "v1", "roles")
ROLE_BINDINGS = lookup("rbac.authorization.k8s.io", "v1", "rolebindings")
CLUSTER_ROLE_BINDINGS = lookup("rbac.authorization.k8s.io", "v1", "clusterrolebindings")


def admin_user() -> str:
    from pyk8s.cluster.pki import ADMIN_USER
    return ADMIN_USER


ADMIN = admin_user()

AUDIT_POLICY = """\
apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: ["RequestReceived"]
rules:
- level: RequestResponse
  resources: [{group: "", resources: ["configmaps"]}]
  namespaces: ["audited"]
- level: None
  resources: [{group: "", resources: ["events"]}]
- level: Metadata
"""


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    data_dir = tmp_path_factory.mktemp("node-identity")
    policy = data_dir / "audit-policy.yaml"
    policy.write_text(AUDIT_POLICY)
    local = LocalServer(data_dir / "server", extra_args=[
        "--disable-agent", "--audit-log", str(data_dir / "audit" / "audit.log"),
        "--audit-policy-file", str(policy)])
    local.audit_log = data_dir / "audit" / "audit.log"
    local.start()
    yield local
    local.stop()


@pytest.fixture
def kubectl(server, tmp_path):
    return Kubectl(server, tmp_path / "kube-cache")


def pki_of(server):
    return ensure_pki(server.data_dir / "server" / "tls", [])


def node_client(server, node: str, tmp_path) -> Client:
    pki = pki_of(server)
    cert, key = issue_client_cert(pki, f"system:node:{node}", ["system:nodes"], tmp_path / f"certs-{node}")
    return Client(server.url, client_ssl_context(pki, cert, key), field_manager="kubelet")


def run(server, scenario):
    async def main():
        async with Client.from_kubeconfig(server.kubeconfig) as admin:
            await scenario(admin)
    asyncio.run(main())


def csr_request(common_name: str, organizations: list[str]) -> str:
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([*(x509.NameAttribute(NameOID.ORGANIZATION_NAME, o) for o in organizations),
                         x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    pem = x509.CertificateSigningRequestBuilder().subject_name(subject).sign(key, hashes.SHA256()) \
        .public_bytes(serialization.Encoding.PEM)
    return base64.b64encode(pem).decode()


async def make_node(admin, name: str) -> None:
    try:
        await admin.create(NODES, {"apiVersion": "v1", "kind": "Node", "metadata": {
            "name": name, "labels": {"kubernetes.io/hostname": name}}})
    except errors.AlreadyExists:
        pass


async def make_bound_pod(admin, name: str, node: str, secret: str) -> None:
    await admin.create(SECRETS, {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": secret, "namespace": "default"},
                                 "stringData": {"password": "s3cret"}})
    await admin.create(PODS, {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": "default"},
                              "spec": {"nodeName": node, "containers": [{
                                  "name": "main", "image": "pyk8s/busybox:1.35",
                                  "env": [{"name": "PASSWORD", "valueFrom": {"secretKeyRef": {"name": secret, "key": "password"}}}]}]}})


# --------------------------------------------------------------------------- CSRs

def test_csr_is_listed_approved_by_kubectl_and_signed(server, kubectl):
    body = {"apiVersion": "certificates.k8s.io/v1", "kind": "CertificateSigningRequest",
            "metadata": {"name": "alice"},
            "spec": {"request": csr_request("alice", ["developers"]), "signerName": "kubernetes.io/kube-apiserver-client",
                     "expirationSeconds": 86400, "usages": ["digital signature", "client auth"],
                     "username": "someone-else", "groups": ["system:masters"]}}
    kubectl("create", "-f", "-", input=json.dumps(body))
    created = json.loads(kubectl("get", "csr", "alice", "-o", "json"))
    assert created["spec"]["username"] == ADMIN  # the requestor, not what the body claimed
    assert "system:masters" in created["spec"]["groups"]
    header, row = kubectl("get", "csr", "alice").splitlines()
    assert header.split() == ["NAME", "AGE", "SIGNERNAME", "REQUESTOR", "REQUESTEDDURATION", "CONDITION"]
    assert row.split()[2:] == ["kubernetes.io/kube-apiserver-client", ADMIN, "24h", "Pending"]

    assert kubectl("certificate", "approve", "alice").strip() == \
        "certificatesigningrequest.certificates.k8s.io/alice approved"
    issued = eventually(lambda: (lambda c: c if c.get("status", {}).get("certificate") else None)(
        json.loads(kubectl("get", "csr", "alice", "-o", "json"))))
    certificate = x509.load_pem_x509_certificate(base64.b64decode(issued["status"]["certificate"]))
    assert certificate.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "alice"
    ca = x509.load_pem_x509_certificate((server.data_dir / "server" / "tls" / "ca.crt").read_bytes())
    certificate.verify_directly_issued_by(ca)
    assert kubectl("get", "csr", "alice").splitlines()[1].split()[-1] == "Approved,Issued"
    condition = issued["status"]["conditions"][0]
    assert (condition["type"], condition["reason"]) == ("Approved", "KubectlApprove")


def test_denied_csr_is_not_signed_and_cannot_then_be_approved(server, kubectl):
    body = {"apiVersion": "certificates.k8s.io/v1", "kind": "CertificateSigningRequest",
            "metadata": {"name": "mallory"},
            "spec": {"request": csr_request("mallory", []), "signerName": "kubernetes.io/kube-apiserver-client",
                     "usages": ["client auth"]}}
    kubectl("create", "-f", "-", input=json.dumps(body))
    kubectl("certificate", "deny", "mallory")
    row = kubectl("get", "csr", "mallory").splitlines()[1].split()
    assert row[-2:] == ["<none>", "Denied"]
    approved = kubectl.run("certificate", "approve", "mallory", check=False)
    assert 'certificate signing request "mallory" is already Denied' in approved.stderr

    async def approve_anyway(admin):
        csr = await admin.get(CSRS, "mallory")
        csr["status"]["conditions"].append({"type": "Approved", "status": "True", "reason": "Insist"})
        with pytest.raises(errors.Invalid) as refused:
            await admin.update(CSRS, csr, subresource="approval")
        assert "Approved and Denied conditions are mutually exclusive" in str(refused.value)
    run(server, approve_anyway)


def test_node_client_csr_from_a_bootstrap_token_is_auto_approved_and_issued(server):
    token = (server.data_dir / "node-token").read_text().strip().split("::", 1)[1]
    ca_pem = (server.data_dir / "server" / "tls" / "ca.crt").read_bytes()

    async def scenario(admin):
        async with Client.from_token(server.url, token, ca_pem) as joining:
            created = await joining.create(CSRS, {
                "apiVersion": "certificates.k8s.io/v1", "kind": "CertificateSigningRequest",
                "metadata": {"generateName": "csr-"},
                "spec": {"request": csr_request("system:node:csr-node", ["system:nodes"]),
                         "signerName": "kubernetes.io/kube-apiserver-client-kubelet",
                         "usages": ["digital signature", "client auth"]}})
            assert created["spec"]["username"].startswith("system:bootstrap:")
            name = created["metadata"]["name"]

            async def issued():
                csr = await joining.get(CSRS, name)
                return csr if csr.get("status", {}).get("certificate") else None
            from conftest import eventually_async
            csr = await eventually_async(issued, timeout=20)
            assert csr["status"]["conditions"][0]["reason"] == "AutoApproved"
    run(server, scenario)


def test_csr_for_another_signer_or_identity_stays_pending(server, kubectl):
    """A kubelet CSR asking for system:masters is no node client request: left Pending."""
    token = (server.data_dir / "node-token").read_text().strip().split("::", 1)[1]
    ca_pem = (server.data_dir / "server" / "tls" / "ca.crt").read_bytes()

    async def scenario(admin):
        async with Client.from_token(server.url, token, ca_pem) as joining:
            await joining.create(CSRS, {
                "apiVersion": "certificates.k8s.io/v1", "kind": "CertificateSigningRequest",
                "metadata": {"name": "sneaky"},
                "spec": {"request": csr_request("system:node:x", ["system:masters"]),
                         "signerName": "kubernetes.io/kube-apiserver-client-kubelet",
                         "usages": ["digital signature", "client auth"]}})
    run(server, scenario)
    # The approver has seen it (a later CSR was approved) but left it alone.
    eventually(lambda: "Approved" in kubectl("get", "csr"))
    assert kubectl("get", "csr", "sneaky").splitlines()[1].split()[-1] == "Pending"


def kubelet_csr(name: str, common_name: str) -> dict:
    return {"apiVersion": "certificates.k8s.io/v1", "kind": "CertificateSigningRequest", "metadata": {"name": name},
            "spec": {"request": csr_request(common_name, ["system:nodes"]),
                     "signerName": "kubernetes.io/kube-apiserver-client-kubelet",
                     "usages": ["digital signature", "client auth"]}}


def test_csr_approval_follows_a_subject_access_review_of_the_requestor(server, tmp_path):
    """The approver asks the authorizer (certificatesigningrequests/selfnodeclient, then
    /nodeclient, create) as the CSR's requestor: a node renews its own certificate; it may
    not request another node's until RBAC grants it nodeclient."""
    async def scenario(admin):
        async with node_client(server, "renewer", tmp_path) as renewer:
            await renewer.create(CSRS, kubelet_csr("renewer-self", "system:node:renewer"))
            await renewer.create(CSRS, kubelet_csr("renewer-other", "system:node:someone-else"))

            async def approved(name):
                csr = await admin.get(CSRS, name)
                found = [c for c in (csr.get("status") or {}).get("conditions") or [] if c["type"] == "Approved"]
                return found[0] if found else None
            from conftest import eventually_async
            condition = await eventually_async(lambda: approved("renewer-self"), timeout=20)
            assert (condition["reason"], condition["message"]) == (
                "AutoApproved", "Auto approving self kubelet client certificate after SubjectAccessReview.")
            # Recognized as nodeclient, but system:nodes may not create certificatesigningrequests/nodeclient.
            await asyncio.sleep(1.0)
            assert await approved("renewer-other") is None
            await admin.create(CLUSTER_ROLE_BINDINGS, {
                "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
                "metadata": {"name": "renewer-nodeclient"},
                "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole",
                            "name": "system:certificates.k8s.io:certificatesigningrequests:nodeclient"},
                "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": "system:node:renewer"}]})
            try:
                # A new request after the grant (the approver does not retry refused ones, as upstream).
                await renewer.create(CSRS, kubelet_csr("renewer-other-granted", "system:node:someone-else"))
                condition = await eventually_async(lambda: approved("renewer-other-granted"), timeout=20)
                assert condition["message"] == "Auto approving kubelet client certificate after SubjectAccessReview."
            finally:
                await admin.delete(CLUSTER_ROLE_BINDINGS, "renewer-nodeclient")
    run(server, scenario)


def cluster_client_cert(server, user: str, group: str, *, not_before, not_after):
    """A client certificate of the cluster CA for `user` in `group`, valid between the two
    times, and its new key."""
    pki = pki_of(server)
    ca_cert = x509.load_pem_x509_certificate(pki.ca_cert.read_bytes())
    ca_key = serialization.load_pem_private_key(pki.ca_key.read_bytes(), password=None)
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, group),
                                     x509.NameAttribute(NameOID.COMMON_NAME, user)]))
            .issuer_name(ca_cert.subject).public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(not_before).not_valid_after(not_after)
            .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
            .sign(ca_key, hashes.SHA256()))
    return cert, key


def short_lived_node_cert(server, node: str, path, *, age: float, remaining: float):
    """Key and certificate (one PEM file, as the kubelet keeps them) for system:node:<node>,
    issued `age` seconds ago and expiring in `remaining` seconds."""
    import datetime
    now = datetime.datetime.now(datetime.timezone.utc)
    cert, key = cluster_client_cert(server, f"system:node:{node}", "system:nodes",
                                    not_before=now - datetime.timedelta(seconds=age),
                                    not_after=now + datetime.timedelta(seconds=remaining))
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM) + key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL, serialization.NoEncryption()))
    return cert


def test_node_client_certificate_is_rotated_through_a_csr_before_it_expires(server, tmp_path):
    """Upstream's kubelet certificate manager: past 70-90 % of its lifetime the certificate
    is replaced through a CSR the node sends with it (approved as selfnodeclient), and the
    client keeps working after the old one expires (its pooled connections are dropped)."""
    import datetime

    from pyk8s.client.certbootstrap import CertificateRotation, client_ssl_context, rotation_deadline
    from conftest import eventually_async

    path = tmp_path / "kubelet-client-current.pem"
    # 30 s lifetime, 24 s gone: past the 70 % deadline (21 s), expiring in 6 s.
    old = short_lived_node_cert(server, "rotating", path, age=24, remaining=6)
    assert rotation_deadline(old, 0.7) < datetime.datetime.now(datetime.timezone.utc) < old.not_valid_after_utc
    ca_pem = pki_of(server).ca_cert.read_bytes()

    async def scenario(admin):
        await make_node(admin, "rotating")
        async with Client(server.url, client_ssl_context(ca_pem, path), field_manager="kubelet") as node:
            assert (await node.get(NODES, "rotating"))["metadata"]["name"] == "rotating"  # a pooled connection
            rotation = CertificateRotation(node, ca_pem, "rotating", path, fraction=lambda: 0.7, csr_timeout=30)
            running = asyncio.create_task(rotation.run())
            try:
                await eventually_async(lambda: rotation.rotations >= 1, timeout=30)
            finally:
                running.cancel()
            new = x509.load_pem_x509_certificate(path.read_bytes())
            assert new.serial_number != old.serial_number
            assert new.subject == old.subject
            assert new.not_valid_after_utc - new.not_valid_before_utc > datetime.timedelta(days=300)
            # Once the old certificate has expired, the node's requests still authenticate.
            wait = (old.not_valid_after_utc - datetime.datetime.now(datetime.timezone.utc)).total_seconds() + 1
            await asyncio.sleep(max(0.0, wait))
            assert (await node.get(NODES, "rotating"))["metadata"]["name"] == "rotating"
        requests = [c for c in (await admin.list(CSRS))["items"] if c["spec"]["username"] == "system:node:rotating"]
        assert len(requests) == 1
        assert [c["message"] for c in requests[0]["status"]["conditions"] if c["type"] == "Approved"] == [
            "Auto approving self kubelet client certificate after SubjectAccessReview."]
    run(server, scenario)


def test_invalid_csr_is_rejected(server, kubectl):
    body = {"apiVersion": "certificates.k8s.io/v1", "kind": "CertificateSigningRequest",
            "metadata": {"name": "broken"},
            "spec": {"request": base64.b64encode(b"not a pem").decode(), "signerName": "kubernetes.io/kube-apiserver-client",
                     "usages": ["client auth"], "expirationSeconds": 60}}
    result = kubectl.run("create", "-f", "-", input=json.dumps(body), check=False)
    assert result.returncode != 0
    assert "PEM block type must be CERTIFICATE REQUEST" in result.stderr
    assert "may not specify a duration less than 600 seconds (10 minutes)" in result.stderr


# --------------------------------------------------------------------------- Node authorizer

def _authorizer_chain_exists() -> bool:
    try:
        import pyk8s.apiserver.authz  # noqa: F401
    except ImportError:
        return False
    return True


@pytest.mark.skipif(not _authorizer_chain_exists(), reason="the Node authorizer sits in the authorizer chain (authz.py)")
def test_node_reads_only_the_secrets_of_its_own_pods(server, tmp_path):
    async def scenario(admin):
        await make_node(admin, "n1")
        await make_node(admin, "n2")
        await make_bound_pod(admin, "on-n1", "n1", "n1-secret")
        await make_bound_pod(admin, "on-n2", "n2", "n2-secret")
        async with node_client(server, "n1", tmp_path) as n1, node_client(server, "n2", tmp_path) as n2:
            async def n1_reads_its_secret():
                try:
                    return await n1.get(SECRETS, "n1-secret", "default")
                except errors.Forbidden:
                    return None
            from conftest import eventually_async
            await eventually_async(n1_reads_its_secret, timeout=10)  # once the graph has the pod
            with pytest.raises(errors.Forbidden) as refused:
                await n2.get(SECRETS, "n1-secret", "default")
            assert str(refused.value) == (
                'secrets "n1-secret" is forbidden: User "system:node:n2" cannot get resource "secrets" in API group "" '
                "in the namespace \"default\": no relationship found between node 'n2' and this object")
            assert (await n2.get(SECRETS, "n2-secret", "default"))["metadata"]["name"] == "n2-secret"
            # No relationship is the Node authorizer's NoOpinion, not a Deny: RBAC may still
            # grant the object, as upstream.
            await admin.create(ROLES, {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
                                       "metadata": {"name": "n2-reads-n1-secret", "namespace": "default"},
                                       "rules": [{"verbs": ["get"], "apiGroups": [""], "resources": ["secrets"],
                                                  "resourceNames": ["n1-secret"]}]})
            await admin.create(ROLE_BINDINGS, {
                "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
                "metadata": {"name": "n2-reads-n1-secret", "namespace": "default"},
                "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "n2-reads-n1-secret"},
                "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": "system:node:n2"}]})

            async def n2_granted():
                try:
                    return await n2.get(SECRETS, "n1-secret", "default")
                except errors.Forbidden:
                    return None
            assert (await eventually_async(n2_granted, timeout=10))["metadata"]["name"] == "n1-secret"
            await admin.delete(ROLE_BINDINGS, "n2-reads-n1-secret", "default")
            await admin.delete(ROLES, "n2-reads-n1-secret", "default")
            # Pods, nodes and services stay readable to every node, as upstream.
            assert (await n2.get(PODS, "on-n1", "default"))["spec"]["nodeName"] == "n1"
            assert (await n2.get(NODES, "n1"))["metadata"]["name"] == "n1"
            # A pod deleted from the node takes the relationship with it.
            await admin.delete(PODS, "on-n1", "default", grace_period_seconds=0)

            async def n1_refused():
                try:
                    await n1.get(SECRETS, "n1-secret", "default")
                    return False
                except errors.Forbidden:
                    return True
            await eventually_async(n1_refused, timeout=10)
        await admin.delete(PODS, "on-n2", "default", grace_period_seconds=0)
    run(server, scenario)


# --------------------------------------------------------------------------- NodeRestriction

def test_node_restriction_limits_a_node_to_itself_and_its_pods(server, tmp_path):
    async def scenario(admin):
        await make_node(admin, "r1")
        await make_node(admin, "r2")
        await make_bound_pod(admin, "pod-r1", "r1", "r1-secret")
        async with node_client(server, "r1", tmp_path) as r1, node_client(server, "r2", tmp_path) as r2:
            with pytest.raises(errors.Forbidden) as other_node:
                await r2.patch(NODES, "r1", {"metadata": {"labels": {"x": "y"}}})
            assert str(other_node.value) == 'nodes "r1" is forbidden: node "r2" is not allowed to modify node "r1"'

            with pytest.raises(errors.Forbidden) as label:
                await r2.patch(NODES, "r2", {"metadata": {"labels": {"node-restriction.kubernetes.io/trusted": "yes"}}})
            assert str(label.value) == ('nodes "r2" is forbidden: is not allowed to modify labels: '
                                        'node-restriction.kubernetes.io/trusted')
            with pytest.raises(errors.Forbidden):
                await r2.patch(NODES, "r2", {"metadata": {"labels": {"node-role.kubernetes.io/control-plane": "true"}}})
            # Its own labels in the kubelet's set, and its status, are fine.
            await r2.patch(NODES, "r2", {"metadata": {"labels": {"node.kubernetes.io/instance-type": "small"}}})
            await r2.patch(NODES, "r2", {"status": {"capacity": {"pods": "10"}}}, subresource="status")

            with pytest.raises(errors.Forbidden) as status:
                await r2.patch(PODS, "pod-r1", {"status": {"phase": "Running"}}, namespace="default", subresource="status")
            assert str(status.value) == ('pods "pod-r1" is forbidden: node "r2" can only update pod status for pods '
                                         'with spec.nodeName set to itself')
            await r1.patch(PODS, "pod-r1", {"status": {"phase": "Running"}}, namespace="default", subresource="status")

            with pytest.raises(errors.Forbidden) as delete:
                await r2.delete(PODS, "pod-r1", "default")
            assert str(delete.value) == ('pods "pod-r1" is forbidden: node "r2" can only delete pods with '
                                         'spec.nodeName set to itself')
            with pytest.raises(errors.Forbidden) as create:
                await r1.create(PODS, {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "sneaky", "namespace": "default"},
                                       "spec": {"nodeName": "r1", "containers": [{"name": "c", "image": "x"}]}})
            assert 'can only create mirror pods' in str(create.value)

            lease = {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
                     "metadata": {"name": "r1", "namespace": "kube-node-lease"}, "spec": {"holderIdentity": "r1"}}
            with pytest.raises(errors.Forbidden) as lease_refused:
                await r2.create(LEASES, lease)
            assert 'can only access node lease with the same name as the requesting node' in str(lease_refused.value)
            await r1.create(LEASES, lease)
            await r1.delete(PODS, "pod-r1", "default", grace_period_seconds=0)
    run(server, scenario)


# --------------------------------------------------------------------------- credentials

def expired_client_cert(server, directory) -> tuple:
    """A client certificate of the cluster CA for system:admin that expired an hour ago."""
    import datetime
    now = datetime.datetime.now(datetime.timezone.utc)
    cert, key = cluster_client_cert(server, "system:admin", "system:masters",
                                    not_before=now - datetime.timedelta(days=2),
                                    not_after=now - datetime.timedelta(hours=1))
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "expired.crt").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (directory / "expired.key").write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                              serialization.NoEncryption()))
    return directory / "expired.crt", directory / "expired.key"


def test_certificates_from_another_ca_or_malformed_tokens_are_refused_not_500(server, tmp_path):
    # Any client certificate passes the TLS handshake; the x509 authenticator refuses one
    # from another CA (even naming system:masters) or an expired one with a 401, as upstream.
    foreign = ensure_pki(tmp_path / "foreign", [])
    for cert, key in ((foreign.admin_cert, foreign.admin_key), expired_client_cert(server, tmp_path / "expired")):
        context = ssl.create_default_context(cafile=str(pki_of(server).ca_cert))
        context.load_cert_chain(str(cert), str(key))
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(urllib.request.Request(server.url + "/api/v1/namespaces"), context=context, timeout=10)
        assert refused.value.code == 401
        body = json.loads(refused.value.read())
        assert (body["kind"], body["reason"], body["message"], body["code"]) == \
            ("Status", "Unauthorized", "Unauthorized", 401)
    # kubectl with a foreign certificate is told it is not logged in, as against upstream.
    kubeconfig = yaml.safe_load(server.kubeconfig.read_text())
    kubeconfig["users"][0]["user"] = {
        "client-certificate-data": base64.b64encode(foreign.admin_cert.read_bytes()).decode(),
        "client-key-data": base64.b64encode(foreign.admin_key.read_bytes()).decode()}
    (tmp_path / "foreign.kubeconfig").write_text(yaml.safe_dump(kubeconfig))
    foreign_kubectl = subprocess.run([KUBECTL, "--kubeconfig", str(tmp_path / "foreign.kubeconfig"), "--cache-dir",
                                      str(tmp_path / "cache"), "get", "namespaces"], capture_output=True, text=True, timeout=60)
    assert foreign_kubectl.returncode == 1
    assert foreign_kubectl.stderr.strip().endswith(
        "error: You must be logged in to the server (the server has asked for the client to provide credentials)"), \
        foreign_kubectl.stderr
    # The cluster's own certificates still authenticate.
    with urllib.request.urlopen(urllib.request.Request(server.url + "/api/v1/namespaces"),
                                context=server.ssl_context(), timeout=10) as reply:
        assert reply.status == 200
    plain = ssl.create_default_context(cafile=str(pki_of(server).ca_cert))
    for token in ("", "garbage", "a.b.c", "abcdef.0123456789abcdef", "eyJhbGciOiJub25lIn0.e30."):
        request = urllib.request.Request(server.url + "/api/v1/namespaces", headers={"Authorization": f"Bearer {token}"})
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(request, context=plain, timeout=10)
        assert refused.value.code == 401


# --------------------------------------------------------------------------- audit

def audit_events(server) -> list[dict]:
    return [json.loads(line) for line in server.audit_log.read_text().splitlines() if line.strip()]


def test_audit_log_records_creates_at_the_policy_level(server, kubectl):
    kubectl("create", "namespace", "audited")
    kubectl("create", "configmap", "recorded", "-n", "audited", "--from-literal=k=v")
    kubectl("create", "configmap", "metadata-only", "--from-literal=k=v")

    def create_event(name):
        for event in audit_events(server):
            if event.get("verb") == "create" and event.get("objectRef", {}).get("name") == name \
                    and event["stage"] == "ResponseComplete":
                return event
            if event.get("verb") == "create" and event.get("objectRef", {}).get("resource") == "configmaps" \
                    and event["stage"] == "ResponseComplete" and event.get("responseObject", {}).get("metadata", {}).get("name") == name:
                return event
        return None
    recorded = eventually(lambda: create_event("recorded"))
    assert recorded["apiVersion"] == "audit.k8s.io/v1" and recorded["kind"] == "Event"
    assert recorded["level"] == "RequestResponse"
    assert recorded["user"]["username"] == ADMIN
    assert recorded["objectRef"] == {"resource": "configmaps", "namespace": "audited", "apiVersion": "v1"}
    assert recorded["responseStatus"]["code"] == 201
    assert recorded["requestObject"]["data"] == {"k": "v"}
    assert recorded["responseObject"]["metadata"]["name"] == "recorded"
    assert recorded["annotations"]["authorization.k8s.io/decision"] == "allow"
    assert recorded["sourceIPs"] == ["127.0.0.1"] and recorded["userAgent"].startswith("kubectl")

    def metadata_event():
        for event in audit_events(server):
            if event.get("verb") == "create" and event.get("objectRef", {}).get("namespace") == "default" \
                    and event.get("objectRef", {}).get("resource") == "configmaps":
                return event
        return None
    plain = eventually(metadata_event)
    assert plain["level"] == "Metadata"
    assert "requestObject" not in plain and "responseObject" not in plain
    events = audit_events(server)
    assert not any(event["stage"] == "RequestReceived" for event in events)  # omitted by the policy
    assert not any(event.get("objectRef", {}).get("resource") == "events" and "apiGroup" not in event["objectRef"]
                   for event in events)  # level None for core events
    kubectl("delete", "namespace", "audited", "--wait=false")
