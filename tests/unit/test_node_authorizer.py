"""The Node authorizer's graph and decisions, and NodeRestriction's checks, without a server."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from pyk8s.api import errors
from pyk8s.api.resources import lookup
from pyk8s.apiserver import noderestriction
from pyk8s.apiserver.authz import AuthorizerChain
from pyk8s.apiserver.nodeauthorizer import ALLOW, NO_OPINION, NodeAuthorizer, NodeGraph, authorize_node, pod_references


@dataclass(frozen=True)
class User:
    name: str
    groups: tuple[str, ...] = ()


@dataclass(frozen=True)
class Attrs:
    user: User
    verb: str
    resource: str
    name: str = ""
    namespace: str = "default"
    api_group: str = ""
    subresource: str = ""
    resource_request: bool = True
    path: str = ""


def node(name: str) -> User:
    return User(f"system:node:{name}", ("system:nodes", "system:authenticated"))


def pod(name: str, node_name: str, **spec) -> dict:
    return {"metadata": {"name": name, "namespace": "default"}, "spec": {"nodeName": node_name, **spec}}


@pytest.fixture
def graph() -> NodeGraph:
    graph = NodeGraph()
    graph.set_pod(pod("web", "n1", serviceAccountName="app",
                      volumes=[{"name": "cfg", "configMap": {"name": "web-config"}},
                               {"name": "data", "persistentVolumeClaim": {"claimName": "web-data"}}],
                      containers=[{"name": "c", "envFrom": [{"secretRef": {"name": "web-env"}}]}]))
    graph.set_volume({"metadata": {"name": "pv-1"}, "spec": {"claimRef": {"namespace": "default", "name": "web-data"}}})
    return graph


def test_pod_references_cover_volumes_env_pull_secrets_and_account():
    refs = pod_references(pod("p", "n", imagePullSecrets=[{"name": "pull"}], serviceAccountName="sa",
                              volumes=[{"name": "s", "secret": {"secretName": "vol"}},
                                       {"name": "e", "ephemeral": {}},
                                       {"name": "pr", "projected": {"sources": [{"configMap": {"name": "proj"}}]}}],
                              containers=[{"name": "c", "env": [{"name": "X", "valueFrom": {"configMapKeyRef": {"name": "envcm"}}}]}]))
    assert refs == {("secret", "pull"), ("serviceaccount", "sa"), ("secret", "vol"), ("pvc", "p-e"),
                    ("configmap", "proj"), ("configmap", "envcm")}


def test_node_reads_what_its_pods_use_and_nothing_else(graph):
    assert authorize_node(Attrs(node("n1"), "get", "secrets", "web-env"), graph) == (ALLOW, "")
    assert authorize_node(Attrs(node("n1"), "watch", "configmaps", "web-config"), graph) == (ALLOW, "")
    assert authorize_node(Attrs(node("n1"), "get", "persistentvolumeclaims", "web-data"), graph) == (ALLOW, "")
    assert authorize_node(Attrs(node("n1"), "get", "persistentvolumes", "pv-1", namespace=""), graph) == (ALLOW, "")
    assert authorize_node(Attrs(node("n2"), "get", "secrets", "web-env"), graph) == \
        (NO_OPINION, "no relationship found between node 'n2' and this object")
    assert authorize_node(Attrs(node("n1"), "get", "secrets", "other"), graph)[0] == NO_OPINION


class GrantsOneSecret:
    """An RBAC stand-in after the Node authorizer: allows `get secrets/granted` to node n2 only."""

    def authorize(self, attributes) -> tuple[str, str]:
        if (attributes.user.name, attributes.verb, attributes.resource, attributes.name) == \
                ("system:node:n2", "get", "secrets", "granted"):
            return ALLOW, ""
        return NO_OPINION, ""


def test_an_unrelated_object_is_left_to_the_next_authorizer(graph):
    # Upstream's Node authorizer answers NoOpinion for an object without a relationship,
    # so RBAC can still grant it; without a grant the chain's reason is the node's.
    chain = AuthorizerChain([NodeAuthorizer(graph), GrantsOneSecret()])
    assert chain.authorize(Attrs(node("n2"), "get", "secrets", "granted")) == (ALLOW, "")
    assert chain.authorize(Attrs(node("n2"), "get", "secrets", "web-env")) == \
        (NO_OPINION, "no relationship found between node 'n2' and this object")
    assert chain.authorize(Attrs(node("n1"), "get", "secrets", "granted")) == \
        (NO_OPINION, "no relationship found between node 'n1' and this object")
    # What the graph allows needs no grant.
    assert chain.authorize(Attrs(node("n1"), "get", "secrets", "web-env")) == (ALLOW, "")


def test_verbs_and_shapes_the_graph_does_not_decide(graph):
    assert authorize_node(Attrs(node("n1"), "update", "secrets", "web-env"), graph) == \
        (NO_OPINION, "can only read resources of this type")
    assert authorize_node(Attrs(node("n1"), "list", "secrets"), graph) == (NO_OPINION, "No Object name found")
    assert authorize_node(Attrs(node("n1"), "list", "persistentvolumes", namespace=""), graph) == \
        (NO_OPINION, "can only get individual resources of this type")
    assert authorize_node(Attrs(node("n1"), "get", "serviceaccounts", "app"), graph) == \
        (NO_OPINION, "can only create tokens for individual service accounts")
    assert authorize_node(Attrs(node("n1"), "create", "serviceaccounts", "app", subresource="token"), graph) == (ALLOW, "")


def test_static_node_rules_and_leases(graph):
    assert authorize_node(Attrs(node("n2"), "list", "pods"), graph) == (ALLOW, "")
    assert authorize_node(Attrs(node("n2"), "patch", "nodes", "n2", namespace="", subresource="status"), graph) == (ALLOW, "")
    assert authorize_node(Attrs(node("n2"), "delete", "services", "x"), graph) == (NO_OPINION, "")
    lease = dict(api_group="coordination.k8s.io", namespace="kube-node-lease")
    assert authorize_node(Attrs(node("n2"), "update", "leases", "n2", **lease), graph) == (ALLOW, "")
    assert authorize_node(Attrs(node("n2"), "update", "leases", "n1", **lease), graph) == \
        (NO_OPINION, "can only access node lease with the same name as the requesting node")


def test_only_node_identities_are_judged(graph):
    assert authorize_node(Attrs(User("alice", ("system:nodes",)), "get", "secrets", "x"), graph) == (NO_OPINION, "")
    assert authorize_node(Attrs(User("system:node:n1", ()), "get", "secrets", "x"), graph) == (NO_OPINION, "")


def test_deleting_or_moving_a_pod_removes_its_relationships(graph):
    graph.set_pod(pod("web2", "n1", volumes=[{"name": "cfg", "configMap": {"name": "web-config"}}]))
    graph.delete_pod(("default", "web"))
    assert graph.has_path("n1", "configmap", "default", "web-config")  # web2 still uses it
    assert not graph.has_path("n1", "secret", "default", "web-env")
    assert not graph.has_path("n1", "pv", "", "pv-1")
    graph.set_pod(pod("web2", "n3", volumes=[{"name": "cfg", "configMap": {"name": "web-config"}}]))
    assert not graph.has_path("n1", "configmap", "default", "web-config")
    assert graph.has_path("n3", "configmap", "default", "web-config")


NODES = lookup("", "v1", "nodes")
PODS = lookup("", "v1", "pods")


def test_node_restriction_messages():
    with pytest.raises(errors.Forbidden, match='node "n2" is not allowed to modify node "n1"'):
        noderestriction.admit("n2", "UPDATE", NODES, "", "n1", {}, {})
    new = {"metadata": {"labels": {"node-restriction.kubernetes.io/x": "1", "kubernetes.io/hostname": "n1",
                                   "example.com/free": "yes"}}}
    with pytest.raises(errors.Forbidden) as refused:
        noderestriction.admit("n1", "UPDATE", NODES, "", "n1", new, {"metadata": {}})
    assert refused.value.message == 'nodes "n1" is forbidden: is not allowed to modify labels: node-restriction.kubernetes.io/x'
    with pytest.raises(errors.Forbidden, match="is not allowed to set the following labels: node-role.kubernetes.io/master"):
        noderestriction.admit("n1", "CREATE", NODES, "", "n1", {"metadata": {"labels": {"node-role.kubernetes.io/master": ""}}}, None)
    with pytest.raises(errors.Forbidden, match="not allowed to modify taints"):
        noderestriction.admit("n1", "UPDATE", NODES, "", "n1", {"spec": {"taints": []}}, {"spec": {}})
    noderestriction.admit("n1", "UPDATE", NODES, "", "n1", {"metadata": {"labels": {"topology.kubernetes.io/zone": "a"}}}, {})
    with pytest.raises(errors.Forbidden, match="can only update pod status for pods with spec.nodeName set to itself"):
        noderestriction.admit("n2", "UPDATE", PODS, "status", "p", {}, pod("p", "n1"))
    noderestriction.admit("n1", "DELETE", PODS, "", "p", None, pod("p", "n1"))
    with pytest.raises(errors.Forbidden, match='unexpected operation "UPDATE"'):
        noderestriction.admit("n1", "UPDATE", PODS, "", "p", pod("p", "n1"), pod("p", "n1"))


def test_token_requests_of_a_node_must_be_bound_to_its_pods():
    mine = {"metadata": {"name": "p", "uid": "u1"}, "spec": {"nodeName": "n1"}}
    bound = {"spec": {"boundObjectRef": {"apiVersion": "v1", "kind": "Pod", "name": "p", "uid": "u1"}}}
    noderestriction.admit_token_request("n1", "default", "sa", bound, mine)
    with pytest.raises(errors.Forbidden, match="node requested token bound to a pod scheduled on a different node"):
        noderestriction.admit_token_request("n2", "default", "sa", bound, mine)
    with pytest.raises(errors.Forbidden, match="node requested token not bound to a pod"):
        noderestriction.admit_token_request("n1", "default", "sa", {"spec": {}}, mine)
