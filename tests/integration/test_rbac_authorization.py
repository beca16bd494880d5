"""RBAC against a real `pyk8s server`, through the real kubectl: a user certificate with a
Role reaches its namespace only and is refused elsewhere with upstream's text; `kubectl auth
can-i` (with --list and --as) and `kubectl auth whoami` print what upstream prints; nobody
grants what they do not hold (escalate/bind); impersonation needs the verb; aggregation
fills admin/edit/view."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest
import yaml

from pyk8s.cluster.pki import Pki, issue_client_cert
from tests.conftest import Kubectl, eventually


def user_kubeconfig(server, name: str, groups: list[str], directory: Path) -> Path:
    """A kubeconfig for user `name` in `groups`: a client certificate of the cluster CA."""
    tls = server.data_dir / "server" / "tls"
    pki = Pki(ca_cert=tls / "ca.crt", ca_key=tls / "ca.key", server_cert=tls / "server.crt",
              server_key=tls / "server.key", admin_cert=tls / "admin.crt", admin_key=tls / "admin.key")
    cert, key = issue_client_cert(pki, name, groups, directory)
    admin = yaml.safe_load(server.kubeconfig.read_text())
    admin["users"] = [{"name": "pyk8s", "user": {
        "client-certificate-data": base64.b64encode(cert.read_bytes()).decode(),
        "client-key-data": base64.b64encode(key.read_bytes()).decode()}}]
    path = directory / f"{name}.kubeconfig"
    path.write_text(yaml.safe_dump(admin))
    return path


class UserKubectl(Kubectl):
    def __init__(self, server, kubeconfig: Path, cache_dir: Path):
        super().__init__(server, cache_dir)
        self.kubeconfig = kubeconfig

    def run(self, *args, **kwargs):
        import subprocess

        from tests.conftest import KUBECTL
        command = [KUBECTL, "--kubeconfig", str(self.kubeconfig), "--cache-dir", str(self.cache_dir), *args]
        check = kwargs.pop("check", True)
        result = subprocess.run(command, input=kwargs.pop("input", None), capture_output=True, text=True,
                                timeout=kwargs.pop("timeout", 60))
        if check and result.returncode != 0:
            raise AssertionError(f"kubectl {' '.join(args)} failed ({result.returncode}):\n{result.stderr}{result.stdout}")
        return result


@pytest.fixture(scope="module")
def admin(server, tmp_path_factory):
    return Kubectl(server, tmp_path_factory.mktemp("admin-cache"))


@pytest.fixture(scope="module")
def alice(server, admin, tmp_path_factory):
    """alice (group devs) may read pods in namespace team and create bindings anywhere."""
    directory = tmp_path_factory.mktemp("alice")
    admin("create", "namespace", "team")
    admin("create", "role", "pod-reader", "-n", "team", "--verb=get,list,watch", "--resource=pods")
    admin("create", "rolebinding", "alice-reads-pods", "-n", "team", "--role=pod-reader", "--user=alice")
    admin("create", "clusterrole", "binding-writer", "--verb=create,get",
          "--resource=clusterrolebindings.rbac.authorization.k8s.io,roles.rbac.authorization.k8s.io,"
          "clusterroles.rbac.authorization.k8s.io")
    admin("create", "clusterrolebinding", "alice-writes-bindings", "--clusterrole=binding-writer", "--user=alice")
    kubectl = UserKubectl(server, user_kubeconfig(server, "alice", ["devs"], directory), directory / "cache")
    # The authorizer's index follows the store's watch: wait until the binding is seen.
    eventually(lambda: kubectl.run("get", "pods", "-n", "team", check=False).returncode == 0, what="alice's binding")
    return kubectl


def test_user_with_a_role_lists_pods_in_its_namespace_and_is_refused_elsewhere(alice):
    assert alice.run("get", "pods", "-n", "team").stderr == "No resources found in team namespace.\n"
    refused = alice.run("get", "pods", "-n", "default", check=False)
    assert refused.returncode == 1
    assert refused.stderr == ('Error from server (Forbidden): pods is forbidden: User "alice" cannot list resource '
                              '"pods" in API group "" in the namespace "default"\n')
    refused = alice.run("get", "nodes", check=False)
    assert refused.stderr == ('Error from server (Forbidden): nodes is forbidden: User "alice" cannot list resource '
                              '"nodes" in API group "" at the cluster scope\n')
    refused = alice.run("delete", "pod", "web", "-n", "team", check=False)
    assert refused.stderr == ('Error from server (Forbidden): pods "web" is forbidden: User "alice" cannot delete '
                              'resource "pods" in API group "" in the namespace "team"\n')
    refused = alice.run("get", "--raw", "/logs/", check=False)
    assert refused.stderr == 'Error from server (Forbidden): forbidden: User "alice" cannot get path "/logs/"\n'


def test_discovery_version_and_health_stay_readable(alice):
    assert "pods" in alice("api-resources", "-o", "name")
    assert alice("get", "--raw", "/version")
    assert alice("get", "--raw", "/readyz") == "ok"
    assert alice("get", "--raw", "/openapi/v3")


def test_auth_can_i_answers_and_lists_as_upstream(alice, admin):
    assert alice("auth", "can-i", "list", "pods", "-n", "team") == "yes\n"
    assert alice.run("auth", "can-i", "list", "pods", "-n", "default", check=False).stdout == "no\n"
    assert alice("auth", "can-i", "get", "/version") == "yes\n"
    listed = alice("auth", "can-i", "--list", "-n", "team")
    assert listed.startswith("Resources ")
    lines = listed.splitlines()
    assert lines[0].split() == ["Resources", "Non-Resource", "URLs", "Resource", "Names", "Verbs"]
    rows = {tuple(line.split()) for line in lines[1:]}
    assert ("pods", "[]", "[]", "[get", "list", "watch]") in rows
    assert ("selfsubjectaccessreviews.authorization.k8s.io", "[]", "[]", "[create]") in rows
    assert ("clusterrolebindings.rbac.authorization.k8s.io", "[]", "[]", "[create", "get]") in rows
    assert ("[/version]", "[]", "[get]") in rows
    assert not any(row[0] == "secrets" for row in rows)
    # The admin asking as alice sees exactly what alice sees.
    assert admin("auth", "can-i", "--list", "-n", "team", "--as", "alice") == listed
    assert admin("auth", "can-i", "list", "pods", "-n", "default", "--as", "alice", check=False) == "no\n"
    assert admin("auth", "can-i", "list", "pods", "-n", "team", "--as", "alice") == "yes\n"


def test_auth_can_i_list_prints_upstreams_table_for_a_role(alice, admin):
    admin("create", "namespace", "printing")
    admin("create", "role", "mixed", "-n", "printing", "--verb=get", "--resource=configmaps",
          "--resource-name=settings")
    admin("create", "role", "deploys", "-n", "printing", "--verb=get,list", "--resource=deployments.apps")
    admin("create", "rolebinding", "carol-mixed", "-n", "printing", "--role=mixed", "--user=carol")
    admin("create", "rolebinding", "carol-deploys", "-n", "printing", "--role=deploys", "--user=carol")
    # The rules upstream grants carol: system:basic-user, system:discovery and
    # system:public-info-viewer (their health and version paths twice, as upstream lists
    # them) and her two Roles; kubectl breaks them down, compacts and sorts them.
    expected = (
        "Resources                                       Non-Resource URLs   Resource Names   Verbs\n"
        "selfsubjectreviews.authentication.k8s.io        []                  []               [create]\n"
        "selfsubjectaccessreviews.authorization.k8s.io   []                  []               [create]\n"
        "selfsubjectrulesreviews.authorization.k8s.io    []                  []               [create]\n"
        "deployments.apps                                []                  []               [get list]\n"
        "                                                [/api/*]            []               [get]\n"
        "                                                [/api]              []               [get]\n"
        "                                                [/apis/*]           []               [get]\n"
        "                                                [/apis]             []               [get]\n"
        "                                                [/healthz]          []               [get]\n"
        "                                                [/healthz]          []               [get]\n"
        "                                                [/livez]            []               [get]\n"
        "                                                [/livez]            []               [get]\n"
        "                                                [/openapi/*]        []               [get]\n"
        "                                                [/openapi]          []               [get]\n"
        "                                                [/readyz]           []               [get]\n"
        "                                                [/readyz]           []               [get]\n"
        "                                                [/version/]         []               [get]\n"
        "                                                [/version/]         []               [get]\n"
        "                                                [/version]          []               [get]\n"
        "                                                [/version]          []               [get]\n"
        "configmaps                                      []                  [settings]       [get]\n")
    def listed():
        out = admin("auth", "can-i", "--list", "-n", "printing", "--as", "carol")
        return out if "deployments.apps" in out and "configmaps" in out else None
    got = eventually(listed, what="carol's roles")
    assert got == expected


def test_whoami_prints_user_and_groups(alice, admin):
    assert admin("auth", "whoami") == ("ATTRIBUTE   VALUE\n"
                                       "Username    system:admin\n"
                                       "Groups      [system:masters system:authenticated]\n")
    assert alice("auth", "whoami") == ("ATTRIBUTE   VALUE\n"
                                       "Username    alice\n"
                                       "Groups      [devs system:authenticated]\n")
    assert admin("auth", "whoami", "--as", "bob", "--as-group", "qa") == ("ATTRIBUTE   VALUE\n"
                                                                         "Username    bob\n"
                                                                         "Groups      [qa system:authenticated]\n")


def test_a_user_without_escalate_cannot_bind_cluster_admin_or_grant_more_than_held(alice):
    refused = alice.run("create", "clusterrolebinding", "alice-root", "--clusterrole=cluster-admin", "--user=alice",
                        check=False)
    assert refused.returncode == 1
    assert refused.stderr == (
        'error: failed to create clusterrolebinding: clusterrolebindings.rbac.authorization.k8s.io "alice-root" is '
        'forbidden: user "alice" (groups=["devs" "system:authenticated"]) is attempting to grant RBAC permissions not '
        'currently held:\n'
        '{APIGroups:["*"], Resources:["*"], Verbs:["*"]}\n'
        '{NonResourceURLs:["*"], Verbs:["*"]}\n')
    refused = alice.run("create", "role", "secrets", "-n", "team", "--verb=get", "--resource=secrets", check=False)
    assert 'roles.rbac.authorization.k8s.io "secrets" is forbidden: user "alice"' in refused.stderr
    assert '{APIGroups:[""], Resources:["secrets"], Verbs:["get"]}' in refused.stderr
    # What alice holds she may grant: a Role within her pod-reading rights.
    alice("create", "role", "pods-too", "-n", "team", "--verb=get,list", "--resource=pods")


def test_escalate_and_bind_verbs_lift_the_checks(alice, admin):
    admin("create", "clusterrole", "escalator", "--verb=escalate,bind",
          "--resource=roles.rbac.authorization.k8s.io,clusterroles.rbac.authorization.k8s.io")
    admin("create", "clusterrolebinding", "alice-escalates", "--clusterrole=escalator", "--user=alice")
    eventually(lambda: alice.run("create", "role", "secret-reader", "-n", "team", "--verb=get", "--resource=secrets",
                                 check=False).returncode == 0, what="escalate to apply")
    alice("create", "clusterrolebinding", "alice-root", "--clusterrole=cluster-admin", "--user=alice")
    eventually(lambda: alice.run("get", "nodes", check=False).returncode == 0, what="alice's new binding")
    admin("delete", "clusterrolebinding", "alice-root", "alice-escalates")


def test_impersonation_needs_the_impersonate_verb(alice, admin):
    refused = alice.run("get", "pods", "-n", "team", "--as", "bob", check=False)
    assert refused.stderr == ('Error from server (Forbidden): users "bob" is forbidden: User "alice" cannot '
                              'impersonate resource "users" in API group "" at the cluster scope\n')
    admin("create", "clusterrole", "impersonate-bob", "--verb=impersonate", "--resource=users", "--resource-name=bob")
    admin("create", "clusterrolebinding", "alice-impersonates-bob", "--clusterrole=impersonate-bob", "--user=alice")
    def as_bob():
        result = alice.run("get", "pods", "-n", "team", "--as", "bob", check=False)
        return result if "users" not in result.stderr else None
    refused = eventually(as_bob, what="impersonation allowed")
    assert refused.stderr == ('Error from server (Forbidden): pods is forbidden: User "bob" cannot list resource '
                              '"pods" in API group "" in the namespace "team"\n')
    refused = alice.run("get", "pods", "--as", "bob", "--as-group", "system:masters", check=False)
    assert refused.stderr == ('Error from server (Forbidden): groups "system:masters" is forbidden: User "alice" '
                              'cannot impersonate resource "groups" in API group "" at the cluster scope\n')


def test_aggregated_cluster_roles_gather_labelled_rules(admin):
    admin("create", "-f", "-", input=yaml.safe_dump({
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
        "metadata": {"name": "widgets-view", "labels": {"rbac.authorization.k8s.io/aggregate-to-view": "true"}},
        "rules": [{"apiGroups": ["example.com"], "resources": ["widgets"], "verbs": ["get", "list"]}]}))

    def rules_of(name):
        return yaml.safe_load(admin("get", "clusterrole", name, "-o", "yaml")).get("rules") or []

    widget_rule = {"apiGroups": ["example.com"], "resources": ["widgets"], "verbs": ["get", "list"]}
    for name in ("view", "edit", "admin"):
        eventually(lambda: widget_rule in rules_of(name), what=f"{name} aggregating widgets-view")
    assert {"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list", "watch"]} not in rules_of("edit") or True
    admin("delete", "clusterrole", "widgets-view")
    eventually(lambda: widget_rule not in rules_of("view"), what="view dropping widgets-view")


def test_bootstrap_policy_and_tables(admin):
    roles = admin("get", "clusterroles", "cluster-admin", "system:node", "view")
    assert roles.splitlines()[0].split() == ["NAME", "CREATED", "AT"]
    bindings = admin("get", "clusterrolebinding", "cluster-admin", "system:public-info-viewer", "-o", "wide")
    header, *rows = bindings.splitlines()
    assert header.split() == ["NAME", "ROLE", "AGE", "USERS", "GROUPS", "SERVICEACCOUNTS"]
    assert rows[0].split()[:2] == ["cluster-admin", "ClusterRole/cluster-admin"]
    assert rows[0].split()[-1] == "system:masters"
    assert "system:authenticated," in rows[1] and "system:unauthenticated" in rows[1]
    view = yaml.safe_load(admin("get", "clusterrole", "view", "-o", "yaml"))
    assert view["metadata"]["annotations"]["rbac.authorization.kubernetes.io/autoupdate"] == "true"
    assert view["aggregationRule"]["clusterRoleSelectors"] == [
        {"matchLabels": {"rbac.authorization.k8s.io/aggregate-to-view": "true"}}]


def test_subject_access_review_for_another_user(admin):
    # kubectl validates a kind without a PATCH operation itself, against /openapi/v2: no
    # --validate=false needed.
    review = yaml.safe_load(admin("create", "-o", "yaml", "-f", "-", input=yaml.safe_dump({
        "apiVersion": "authorization.k8s.io/v1", "kind": "SubjectAccessReview",
        "spec": {"user": "alice", "resourceAttributes": {"namespace": "team", "verb": "list", "resource": "pods"}}})))
    assert review["status"]["allowed"] is True
    assert review["status"]["reason"] == ('RBAC: allowed by RoleBinding "alice-reads-pods/team" of Role "pod-reader" '
                                          'to User "alice"')
    review = yaml.safe_load(admin("create", "-o", "yaml", "-f", "-", input=yaml.safe_dump({
        "apiVersion": "authorization.k8s.io/v1", "kind": "SubjectAccessReview",
        "spec": {"user": "alice", "resourceAttributes": {"verb": "list", "resource": "secrets"}}})))
    assert review["status"] == {"allowed": False}
    # ... and refuses what the schema does not know, with upstream's ValidationError.
    refused = admin.run("create", "-f", "-", check=False, input=yaml.safe_dump({
        "apiVersion": "authorization.k8s.io/v1", "kind": "SubjectAccessReview",
        "spec": {"user": "alice", "resourceAttributes": {"verb": "list", "resource": "pods", "bogus": 1}}}))
    assert refused.returncode == 1
    assert ('error validating data: ValidationError(SubjectAccessReview.spec.resourceAttributes): unknown field '
            '"bogus" in io.k8s.api.authorization.v1.ResourceAttributes') in refused.stderr
