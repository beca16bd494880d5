"""RBAC as pure logic: request attributes as upstream's RequestInfo parses them, rule and
subject matching, the index's bindings by subject, aggregation, escalation (covers) and
upstream's texts; the bootstrap policy's reconciliation never takes a user's change back."""

from __future__ import annotations

import orjson
import pytest

from pyk8s.api import rbac
from pyk8s.api.rbac import Attributes, User, request_attributes
from pyk8s.apiserver import authz, bootstrappolicy

ALICE = User("alice", ("devs", "system:authenticated"))


def attrs(method, path, query=None, user=ALICE):
    return request_attributes(user, method, path, query or {})


# ------------------------------------------------------------------ request info

@pytest.mark.parametrize("method, path, query, expected", [
    ("GET", "/api/v1/namespaces/default/pods", {}, ("list", "", "pods", "", "default", "")),
    ("GET", "/api/v1/namespaces/default/pods", {"watch": "1"}, ("watch", "", "pods", "", "default", "")),
    ("GET", "/api/v1/namespaces/default/pods", {"watch": "true"}, ("watch", "", "pods", "", "default", "")),
    ("GET", "/api/v1/watch/namespaces/default/pods", {}, ("watch", "", "pods", "", "default", "")),
    ("GET", "/api/v1/namespaces/default/pods/web", {}, ("get", "", "pods", "", "default", "web")),
    ("GET", "/api/v1/namespaces/default/pods/web/log", {}, ("get", "", "pods", "log", "default", "web")),
    ("POST", "/api/v1/namespaces/default/pods/web/exec", {}, ("create", "", "pods", "exec", "default", "web")),
    ("POST", "/api/v1/namespaces/default/pods", {}, ("create", "", "pods", "", "default", "")),
    ("PUT", "/apis/apps/v1/namespaces/ns/deployments/web/scale", {}, ("update", "apps", "deployments", "scale", "ns", "web")),
    ("PATCH", "/apis/apps/v1/namespaces/ns/deployments/web", {}, ("patch", "apps", "deployments", "", "ns", "web")),
    ("DELETE", "/api/v1/namespaces/ns/configmaps/a", {}, ("delete", "", "configmaps", "", "ns", "a")),
    ("DELETE", "/api/v1/namespaces/ns/configmaps", {}, ("deletecollection", "", "configmaps", "", "ns", "")),
    ("GET", "/api/v1/nodes", {}, ("list", "", "nodes", "", "", "")),
    ("GET", "/api/v1/namespaces/kube-system", {}, ("get", "", "namespaces", "", "kube-system", "kube-system")),
    ("PUT", "/api/v1/namespaces/gone/finalize", {}, ("update", "", "namespaces", "finalize", "gone", "gone")),
    ("GET", "/api/v1/namespaces", {}, ("list", "", "namespaces", "", "", "")),
    ("GET", "/api/v1/namespaces/ns/pods", {"fieldSelector": "metadata.name=web"}, ("list", "", "pods", "", "ns", "web")),
    ("GET", "/apis/rbac.authorization.k8s.io/v1/clusterroles/admin", {}, ("get", "rbac.authorization.k8s.io", "clusterroles", "", "", "admin")),
])
def test_request_attributes_follow_upstreams_request_info(method, path, query, expected):
    got = attrs(method, path, query)
    assert got.resource_request
    assert (got.verb, got.api_group, got.resource, got.subresource, got.namespace, got.name) == expected


@pytest.mark.parametrize("method, path, verb", [
    ("GET", "/api", "get"), ("GET", "/api/v1", "get"), ("GET", "/apis", "get"), ("GET", "/apis/apps", "get"),
    ("GET", "/apis/apps/v1", "get"), ("GET", "/healthz", "get"), ("GET", "/version", "get"),
    ("GET", "/openapi/v3/api/v1", "get"), ("POST", "/logs", "post"), ("HEAD", "/readyz", "head"),
])
def test_discovery_and_other_paths_are_non_resource_requests(method, path, verb):
    got = attrs(method, path)
    assert not got.resource_request and got.verb == verb and got.path == path


# ------------------------------------------------------------------ rules

def rule(verbs, groups=("",), resources=(), names=()):
    out = {"verbs": list(verbs), "apiGroups": list(groups), "resources": list(resources)}
    if names:
        out["resourceNames"] = list(names)
    return out


def test_rule_matches_verbs_groups_resources_and_stars():
    list_pods = attrs("GET", "/api/v1/namespaces/default/pods")
    assert rbac.rule_allows(list_pods, rule(["list"], [""], ["pods"]))
    assert rbac.rule_allows(list_pods, rule(["*"], ["*"], ["*"]))
    assert not rbac.rule_allows(list_pods, rule(["get"], [""], ["pods"]))
    assert not rbac.rule_allows(list_pods, rule(["list"], ["apps"], ["pods"]))
    assert not rbac.rule_allows(list_pods, rule(["list"], [""], ["pods/log"]))


def test_subresources_need_their_own_rule_or_star_slash():
    logs = attrs("GET", "/api/v1/namespaces/default/pods/web/log")
    assert not rbac.rule_allows(logs, rule(["get"], [""], ["pods"]))
    assert rbac.rule_allows(logs, rule(["get"], [""], ["pods/log"]))
    assert rbac.rule_allows(logs, rule(["get"], [""], ["*/log"]))
    assert not rbac.rule_allows(logs, rule(["get"], [""], ["*/status"]))


def test_resource_names_limit_to_named_objects_and_never_match_lists_or_creates():
    named = rule(["get", "list", "create"], [""], ["configmaps"], ["settings"])
    assert rbac.rule_allows(attrs("GET", "/api/v1/namespaces/a/configmaps/settings"), named)
    assert not rbac.rule_allows(attrs("GET", "/api/v1/namespaces/a/configmaps/other"), named)
    assert not rbac.rule_allows(attrs("GET", "/api/v1/namespaces/a/configmaps"), named)
    assert not rbac.rule_allows(attrs("POST", "/api/v1/namespaces/a/configmaps"), named)


def test_non_resource_urls_match_exactly_or_by_trailing_star():
    healthz = attrs("GET", "/healthz")
    openapi = attrs("GET", "/openapi/v3/apis/apps/v1")
    assert rbac.rule_allows(healthz, {"verbs": ["get"], "nonResourceURLs": ["/healthz"]})
    assert not rbac.rule_allows(healthz, {"verbs": ["get"], "nonResourceURLs": ["/health"]})
    assert rbac.rule_allows(openapi, {"verbs": ["get"], "nonResourceURLs": ["/openapi/*"]})
    assert rbac.rule_allows(openapi, {"verbs": ["*"], "nonResourceURLs": ["*"]})
    assert not rbac.rule_allows(openapi, {"verbs": ["post"], "nonResourceURLs": ["*"]})
    # a resource rule never allows a path, nor a path rule a resource
    assert not rbac.rule_allows(healthz, rule(["*"], ["*"], ["*"]))
    assert not rbac.rule_allows(attrs("GET", "/api/v1/pods"), {"verbs": ["*"], "nonResourceURLs": ["*"]})


def test_subjects_apply_by_user_group_and_service_account():
    sa_user = User("system:serviceaccount:team:app", ("system:serviceaccounts",))
    assert rbac.subject_applies({"kind": "User", "name": "alice"}, ALICE, "")
    assert rbac.subject_applies({"kind": "Group", "name": "devs"}, ALICE, "")
    assert not rbac.subject_applies({"kind": "Group", "name": "ops"}, ALICE, "")
    assert rbac.subject_applies({"kind": "ServiceAccount", "name": "app", "namespace": "team"}, sa_user, "other")
    assert rbac.subject_applies({"kind": "ServiceAccount", "name": "app"}, sa_user, "team")
    assert not rbac.subject_applies({"kind": "ServiceAccount", "name": "app"}, sa_user, "other")


# ------------------------------------------------------------------ the index and the authorizer

def feed(index, kind, obj):
    meta = obj["metadata"]
    plural = {"Role": "roles", "ClusterRole": "clusterroles", "RoleBinding": "rolebindings",
              "ClusterRoleBinding": "clusterrolebindings"}[kind]
    key = f"{authz.RBAC_PREFIX}{plural}/" + (f"{meta['namespace']}/" if "namespace" in meta else "") + meta["name"]
    index.apply(key, orjson.dumps(obj) if obj.get("rules") is not None or "roleRef" in obj else orjson.dumps(obj))
    return key


def rbac_chain():
    index = authz.RBACIndex()
    chain = authz.AuthorizerChain([authz.PrivilegedGroups(), authz.RBACAuthorizer(index)])
    return index, chain


def test_role_binding_grants_in_its_namespace_only_and_deleting_it_revokes():
    index, chain = rbac_chain()
    feed(index, "Role", {"metadata": {"name": "pod-reader", "namespace": "team"},
                         "rules": [rule(["get", "list", "watch"], [""], ["pods"])]})
    key = feed(index, "RoleBinding", {"metadata": {"name": "read", "namespace": "team"},
                                      "roleRef": {"kind": "Role", "name": "pod-reader"},
                                      "subjects": [{"kind": "User", "name": "alice"}]})
    assert chain.authorize(attrs("GET", "/api/v1/namespaces/team/pods"))[0] == authz.ALLOW
    assert chain.authorize(attrs("GET", "/api/v1/namespaces/other/pods"))[0] == authz.NO_OPINION
    assert chain.authorize(attrs("GET", "/api/v1/pods"))[0] == authz.NO_OPINION
    index.apply(key, None)
    assert chain.authorize(attrs("GET", "/api/v1/namespaces/team/pods"))[0] == authz.NO_OPINION


def test_cluster_role_binding_grants_everywhere_and_role_binding_to_cluster_role_in_one_namespace():
    index, chain = rbac_chain()
    feed(index, "ClusterRole", {"metadata": {"name": "reader"}, "rules": [rule(["list"], [""], ["secrets"])]})
    feed(index, "RoleBinding", {"metadata": {"name": "r", "namespace": "a"},
                                "roleRef": {"kind": "ClusterRole", "name": "reader"},
                                "subjects": [{"kind": "Group", "name": "devs"}]})
    assert chain.authorize(attrs("GET", "/api/v1/namespaces/a/secrets"))[0] == authz.ALLOW
    assert chain.authorize(attrs("GET", "/api/v1/namespaces/b/secrets"))[0] == authz.NO_OPINION
    feed(index, "ClusterRoleBinding", {"metadata": {"name": "r"}, "roleRef": {"kind": "ClusterRole", "name": "reader"},
                                       "subjects": [{"kind": "User", "name": "alice"}]})
    assert chain.authorize(attrs("GET", "/api/v1/namespaces/b/secrets"))[0] == authz.ALLOW
    assert chain.authorize(attrs("GET", "/api/v1/secrets"))[0] == authz.ALLOW


def test_system_masters_may_do_anything_without_bindings():
    _, chain = rbac_chain()
    admin = User("system:admin", ("system:masters", "system:authenticated"))
    assert chain.authorize(attrs("DELETE", "/api/v1/nodes/n1", user=admin))[0] == authz.ALLOW


def test_binding_to_a_missing_role_says_so_in_the_reason():
    index, chain = rbac_chain()
    feed(index, "ClusterRoleBinding", {"metadata": {"name": "b"}, "roleRef": {"kind": "ClusterRole", "name": "nope"},
                                       "subjects": [{"kind": "User", "name": "alice"}]})
    decision, reason = chain.authorize(attrs("GET", "/api/v1/pods"))
    assert decision == authz.NO_OPINION
    assert reason == 'RBAC: clusterrole.rbac.authorization.k8s.io "nope" not found'


def test_allow_reason_names_the_binding_like_upstream():
    index, _ = rbac_chain()
    feed(index, "ClusterRole", {"metadata": {"name": "view-pods"}, "rules": [rule(["get"], [""], ["pods"])]})
    feed(index, "RoleBinding", {"metadata": {"name": "vp", "namespace": "a"},
                                "roleRef": {"kind": "ClusterRole", "name": "view-pods"},
                                "subjects": [{"kind": "ServiceAccount", "name": "app"}]})
    sa = User("system:serviceaccount:a:app", ("system:serviceaccounts", "system:serviceaccounts:a"))
    decision, reason = authz.RBACAuthorizer(index).explain(attrs("GET", "/api/v1/namespaces/a/pods/x", user=sa))
    assert decision == authz.ALLOW
    assert reason == 'RBAC: allowed by RoleBinding "vp/a" of ClusterRole "view-pods" to ServiceAccount "app/a"'


# ------------------------------------------------------------------ aggregation

def test_aggregation_collects_rules_of_matching_cluster_roles_in_name_order_once():
    aggregate = {"metadata": {"name": "monitoring"},
                 "aggregationRule": {"clusterRoleSelectors": [{"matchLabels": {"agg": "true"}}]}}
    roles = [
        aggregate,
        {"metadata": {"name": "b", "labels": {"agg": "true"}}, "rules": [rule(["get"], [""], ["pods"])]},
        {"metadata": {"name": "a", "labels": {"agg": "true"}},
         "rules": [rule(["list"], [""], ["services"]), rule(["get"], [""], ["pods"])]},
        {"metadata": {"name": "c", "labels": {"agg": "false"}}, "rules": [rule(["*"], ["*"], ["*"])]},
    ]
    assert rbac.aggregated_rules(aggregate, roles) == [rule(["list"], [""], ["services"]), rule(["get"], [""], ["pods"])]


def test_bootstrap_view_edit_admin_aggregate_as_upstream():
    roles = bootstrappolicy.cluster_roles()
    by_name = {r["metadata"]["name"]: r for r in roles}
    view = rbac.aggregated_rules(by_name["view"], roles)
    edit_roles = [dict(r, rules=view) if r["metadata"]["name"] == "view" else r for r in roles]
    edit = rbac.aggregated_rules(by_name["edit"], edit_roles)
    assert rbac.uncovered_rules(view, [rule(["list"], [""], ["pods"])]) == []
    assert rbac.uncovered_rules(view, [rule(["create"], [""], ["pods"])]) != []
    assert rbac.uncovered_rules(edit, [rule(["create"], ["apps"], ["deployments"]), rule(["get"], [""], ["pods"])]) == []
    assert rbac.uncovered_rules(edit, [rule(["create"], ["rbac.authorization.k8s.io"], ["roles"])]) != []


# ------------------------------------------------------------------ escalation

def test_covers_breaks_rules_down_and_honours_stars_subresources_names_and_urls():
    owner = [rule(["get", "list"], [""], ["pods", "*/status"]), rule(["*"], ["apps"], ["deployments"], ["web"]),
             {"verbs": ["get"], "nonResourceURLs": ["/logs/*"]}]
    assert rbac.uncovered_rules(owner, [rule(["get"], [""], ["pods", "pods/status"])]) == []
    assert rbac.uncovered_rules(owner, [rule(["delete"], ["apps"], ["deployments"], ["web"])]) == []
    assert rbac.uncovered_rules(owner, [rule(["delete"], ["apps"], ["deployments"])]) == \
        [{"verbs": ["delete"], "apiGroups": ["apps"], "resources": ["deployments"]}]
    assert rbac.uncovered_rules(owner, [{"verbs": ["get"], "nonResourceURLs": ["/logs/kubelet"]}]) == []
    assert rbac.uncovered_rules(owner, [rule(["watch"], [""], ["pods"])]) == \
        [{"verbs": ["watch"], "apiGroups": [""], "resources": ["pods"]}]
    assert rbac.uncovered_rules([rule(["*"], ["*"], ["*"])], rbac.FULL_AUTHORITY)[0]["nonResourceURLs"] == ["*"]


def test_escalation_message_is_upstreams_compact_text():
    user = User("bob", ("system:authenticated",))
    missing = rbac.uncovered_rules([], [rule(["get", "list"], [""], ["secrets"]),
                                        {"verbs": ["get"], "nonResourceURLs": ["/metrics"]}])
    assert rbac.escalation_message(user, missing) == (
        'user "bob" (groups=["system:authenticated"]) is attempting to grant RBAC permissions not currently held:\n'
        '{APIGroups:[""], Resources:["secrets"], Verbs:["get" "list"]}\n'
        '{NonResourceURLs:["/metrics"], Verbs:["get"]}')


# ------------------------------------------------------------------ texts

def test_forbidden_texts_are_upstreams():
    app = User("system:serviceaccount:default:app", ())
    message, details = rbac.forbidden_status_parts(attrs("GET", "/api/v1/namespaces/default/pods", user=app))
    assert message == ('pods is forbidden: User "system:serviceaccount:default:app" cannot list resource "pods" '
                       'in API group "" in the namespace "default"')
    assert details == {"name": "", "group": "", "kind": "pods"}
    message, _ = rbac.forbidden_status_parts(attrs("GET", "/api/v1/nodes/n1", user=app))
    assert message == ('nodes "n1" is forbidden: User "system:serviceaccount:default:app" cannot get resource "nodes" '
                       'in API group "" at the cluster scope')
    message, _ = rbac.forbidden_status_parts(attrs("GET", "/apis/apps/v1/namespaces/a/deployments/w/scale", user=app))
    assert message.startswith('deployments.apps "w" is forbidden: User "system:serviceaccount:default:app" cannot get '
                              'resource "deployments/scale" in API group "apps" in the namespace "a"')
    message, details = rbac.forbidden_status_parts(attrs("GET", "/foo", user=User("x")))
    assert message == 'forbidden: User "x" cannot get path "/foo"' and details == {}


# ------------------------------------------------------------------ reconciliation

def test_reconcile_adds_missing_rules_but_leaves_user_owned_roles_alone():
    expected = bootstrappolicy._cluster_role("r", [rule(["get"], [""], ["pods"]), rule(["list"], [""], ["pods"])])
    existing = bootstrappolicy._cluster_role("r", [rule(["get"], [""], ["pods"]), rule(["delete"], [""], ["nodes"])])
    updated = bootstrappolicy.reconciled(existing, expected)
    assert updated["rules"] == [rule(["get"], [""], ["pods"]), rule(["delete"], [""], ["nodes"]),
                                rule(["list"], [""], ["pods"])]
    assert bootstrappolicy.reconciled(updated, expected) is None
    owned = dict(existing, metadata=dict(existing["metadata"], annotations={rbac.AUTOUPDATE_ANNOTATION: "false"}))
    assert bootstrappolicy.reconciled(owned, expected) is None


def test_reconcile_adds_subjects_to_bindings():
    expected = bootstrappolicy.cluster_role_bindings()[0]
    existing = dict(expected, subjects=[{"kind": "User", "name": "me"}])
    updated = bootstrappolicy.reconciled(existing, expected)
    assert updated["subjects"] == [{"kind": "User", "name": "me"}, *expected["subjects"]]


# ------------------------------------------------------------------ impersonation

class Headers(dict):
    def getall(self, key, default=()):
        value = self.get(key)
        return [value] if value is not None else list(default)


def test_impersonation_needs_the_verb_and_builds_the_user():
    authorization = authz.Authorization.__new__(authz.Authorization)
    index, chain = rbac_chain()
    authorization.chain, authorization.index, authorization.mode = chain, index, "RBAC"
    with pytest.raises(Exception) as refused:
        authorization.impersonate(ALICE, Headers({"Impersonate-User": "bob"}))
    assert str(refused.value) == ('users "bob" is forbidden: User "alice" cannot impersonate resource "users" '
                                  'in API group "" at the cluster scope')
    feed(index, "ClusterRole", {"metadata": {"name": "imp"}, "rules": [rule(["impersonate"], [""], ["users"]),
                                                                      rule(["impersonate"], [""], ["serviceaccounts"])]})
    feed(index, "ClusterRoleBinding", {"metadata": {"name": "imp"}, "roleRef": {"kind": "ClusterRole", "name": "imp"},
                                       "subjects": [{"kind": "User", "name": "alice"}]})
    bob = authorization.impersonate(ALICE, Headers({"Impersonate-User": "bob"}))
    assert (bob.name, bob.groups) == ("bob", ("system:authenticated",))
    sa = authorization.impersonate(ALICE, Headers({"Impersonate-User": "system:serviceaccount:ns:app"}))
    assert sa.groups == ("system:serviceaccounts", "system:serviceaccounts:ns", "system:authenticated")
    with pytest.raises(Exception):  # groups need impersonate on groups
        authorization.impersonate(ALICE, Headers({"Impersonate-User": "bob", "Impersonate-Group": "system:masters"}))


# ------------------------------------------------------------------ the index's caches against plain evaluation

def plain_rbac_allows(objects: dict[str, dict], attributes: Attributes) -> bool:
    """RBAC evaluated from the objects themselves, every binding every time (no index, no
    cache): upstream's rule resolver walk."""
    roles = {(o["metadata"].get("namespace", ""), o["metadata"]["name"]): o.get("rules") or []
             for k, o in objects.items() if k.startswith("Role/")}
    cluster_roles = {o["metadata"]["name"]: o.get("rules") or [] for k, o in objects.items() if k.startswith("ClusterRole/")}
    for key, binding in objects.items():
        kind = key.partition("/")[0]
        if kind not in ("RoleBinding", "ClusterRoleBinding"):
            continue
        namespace = binding["metadata"].get("namespace", "") if kind == "RoleBinding" else ""
        if namespace and namespace != attributes.namespace:
            continue
        if not any(rbac.subject_applies(s, attributes.user, namespace) for s in binding.get("subjects") or []):
            continue
        ref = binding["roleRef"]
        rules = cluster_roles.get(ref["name"]) if ref["kind"] == "ClusterRole" else roles.get((namespace, ref["name"]))
        if any(rbac.rule_allows(attributes, r) for r in rules or []):
            return True
    return False


def every_variant() -> list[Attributes]:
    users = [User("alice", ("devs", "system:authenticated")), User("bob", ("ops",)), User("carol"),
             User("system:serviceaccount:team:app", ("system:serviceaccounts", "system:serviceaccounts:team")),
             User("alice", ("ops",))]  # the same name in other groups: a different cache entry
    variants = []
    for user in users:
        for namespace in ("", "team", "other"):
            for verb in ("get", "list", "watch", "create", "delete"):
                for group, resource, subresource in (("", "pods", ""), ("", "pods", "log"), ("", "secrets", ""),
                                                     ("apps", "deployments", ""), ("apps", "deployments", "scale")):
                    for name in ("", "web", "db"):
                        variants.append(Attributes(user, verb, True, group, "v1", resource, subresource, namespace, name))
        for path in ("/healthz", "/metrics", "/apis", "/apis/apps"):
            variants.append(Attributes(user, "get", False, path=path))
    return variants


def test_index_caches_answer_as_plain_evaluation_over_every_variant_and_every_change():
    index = authz.RBACIndex()
    authorizer = authz.RBACAuthorizer(index)
    objects: dict[str, dict] = {}
    keys: dict[str, str] = {}

    def put(kind, obj):
        name = f"{kind}/{obj['metadata'].get('namespace', '')}/{obj['metadata']['name']}"
        objects[name] = obj
        keys[name] = feed(index, kind, obj)

    def remove(name):
        del objects[name]
        index.apply(keys.pop(name), None)

    def compare(stage):
        for attributes in every_variant() * 2:  # the second pass answers from the caches
            expected = plain_rbac_allows(objects, attributes)
            assert (authorizer.authorize(attributes)[0] == authz.ALLOW) is expected, (stage, attributes)

    put("Role", {"metadata": {"name": "pods", "namespace": "team"}, "rules": [rule(["get", "list"], [""], ["pods"])]})
    put("Role", {"metadata": {"name": "web-only", "namespace": "team"},
                 "rules": [dict(rule(["get", "delete"], [""], ["pods", "pods/log"]), resourceNames=["web"])]})
    put("ClusterRole", {"metadata": {"name": "deployer"},
                        "rules": [rule(["*"], ["apps"], ["deployments", "deployments/*"])]})
    put("ClusterRole", {"metadata": {"name": "health"}, "rules": [{"verbs": ["get"], "nonResourceURLs": ["/healthz", "/apis/*"]}]})
    put("RoleBinding", {"metadata": {"name": "devs-pods", "namespace": "team"}, "roleRef": {"kind": "Role", "name": "pods"},
                        "subjects": [{"kind": "Group", "name": "devs"}, {"kind": "ServiceAccount", "name": "app"}]})
    put("RoleBinding", {"metadata": {"name": "bob-web", "namespace": "team"}, "roleRef": {"kind": "Role", "name": "web-only"},
                        "subjects": [{"kind": "User", "name": "bob"}]})
    put("RoleBinding", {"metadata": {"name": "ops-deploy", "namespace": "other"},
                        "roleRef": {"kind": "ClusterRole", "name": "deployer"}, "subjects": [{"kind": "Group", "name": "ops"}]})
    put("ClusterRoleBinding", {"metadata": {"name": "health"}, "roleRef": {"kind": "ClusterRole", "name": "health"},
                               "subjects": [{"kind": "Group", "name": "system:authenticated"}]})
    compare("initial")
    allowed = sum(plain_rbac_allows(objects, a) for a in every_variant())
    assert 0 < allowed < len(every_variant())  # the world allows some variants and refuses others

    put("Role", {"metadata": {"name": "pods", "namespace": "team"}, "rules": [rule(["watch"], [""], ["pods", "secrets"])]})
    compare("a Role's rules changed")
    put("ClusterRoleBinding", {"metadata": {"name": "carol-deploys"}, "roleRef": {"kind": "ClusterRole", "name": "deployer"},
                               "subjects": [{"kind": "User", "name": "carol"}]})
    compare("a ClusterRoleBinding added")
    remove("RoleBinding/team/devs-pods")
    compare("a RoleBinding deleted")
    remove("ClusterRole//deployer")
    compare("a bound ClusterRole deleted")
    put("RoleBinding", {"metadata": {"name": "bob-web", "namespace": "team"}, "roleRef": {"kind": "Role", "name": "web-only"},
                        "subjects": [{"kind": "Group", "name": "system:serviceaccounts:team"}]})
    compare("a RoleBinding's subjects replaced")
