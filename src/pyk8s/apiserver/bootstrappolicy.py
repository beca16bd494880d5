"""The default RBAC policy every cluster starts with, and its reconciliation at start.

Roles and bindings follow upstream's bootstrap policy (plugin/pkg/auth/authorizer/rbac/
bootstrappolicy), plus what pyk8s's own components need where they differ from upstream:
- `system:kube-controller-manager`: upstream's rules plus what pyk8s's controllers need,
  since they all run with the controller manager's one identity (upstream gives each
  controller its own ServiceAccount and role). The extra rules are the union of upstream's
  roles for the controllers pyk8s runs: the garbage collector and namespace controller
  (read, update and delete everything), creates of the objects the workload, endpoint,
  service-account and node-lease controllers make, and `escalate` on ClusterRoles for
  the clusterrole-aggregation controller.
- The node agent's kubelet, service proxy and local-path provisioner share one identity
  (`system:node:<name>` in `system:nodes`, or a bootstrap token's): the Node authorizer
  decides the kubelet's requests, and `system:nodes` is bound to `system:node-proxier` and
  `pyk8s:local-path-provisioner` for the rest; the node token (group
  `system:bootstrappers:pyk8s:default-node-token`) gets only `system:node-bootstrapper`
  (kubeadm's `kubeadm:kubelet-bootstrap`) and nodeclient CSR approval: it buys the agent its
  certificate and nothing else.
- `system:coredns` (k3s's) for the DNS add-on's ServiceAccount; `pyk8s:addons` (a Role in
  kube-system) for the add-on applier `system:pyk8s:addons`.
- kubeadm's `kubeadm:bootstrap-signer-clusterinfo` Role: anonymous may read
  kube-public/cluster-info.

Reconciliation (upstream's `reconcile` at start): missing objects are created; objects
annotated `rbac.authorization.kubernetes.io/autoupdate: "true"` get missing rules,
aggregation selectors, subjects, labels and annotations added (nothing is removed);
objects whose annotation is anything else are the user's and are left alone.
"""

from __future__ import annotations

import copy
import logging
from typing import Any

from pyk8s.api import errors, rbac
from pyk8s.api.resources import lookup

log = logging.getLogger("pyk8s.apiserver.bootstrappolicy")

READ = ["get", "list", "watch"]
WRITE = ["create", "update", "patch", "delete", "deletecollection"]
READ_WRITE = READ + WRITE
READ_UPDATE = ["get", "list", "watch", "update", "patch"]

LABELS = {"kubernetes.io/bootstrapping": "rbac-defaults"}
ANNOTATIONS = {rbac.AUTOUPDATE_ANNOTATION: "true"}

AGGREGATE_TO_ADMIN = "rbac.authorization.k8s.io/aggregate-to-admin"
AGGREGATE_TO_EDIT = "rbac.authorization.k8s.io/aggregate-to-edit"
AGGREGATE_TO_VIEW = "rbac.authorization.k8s.io/aggregate-to-view"

NODE_TOKEN_GROUP = "system:bootstrappers:pyk8s:default-node-token"
ADDONS_USER = "system:pyk8s:addons"


def rule(verbs: list[str] | str, groups: list[str] | str = "", resources: list[str] | str = (),
         names: list[str] | str = ()) -> dict[str, Any]:
    as_list = (lambda value: [value] if isinstance(value, str) else list(value))
    out: dict[str, Any] = {"verbs": as_list(verbs), "apiGroups": as_list(groups), "resources": as_list(resources)}
    if names:
        out["resourceNames"] = as_list(names)
    return out


def urls(verbs: list[str] | str, *paths: str) -> dict[str, Any]:
    return {"verbs": [verbs] if isinstance(verbs, str) else list(verbs), "nonResourceURLs": list(paths)}


def events_rule() -> dict[str, Any]:
    return rule(["create", "update", "patch"], ["", "events.k8s.io"], "events")


def _cluster_role(name: str, rules: list[dict] | None = None, *, labels: dict[str, str] | None = None,
                  aggregate_from: str | None = None) -> dict[str, Any]:
    role: dict[str, Any] = {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
                            "metadata": {"name": name, "labels": {**LABELS, **(labels or {})},
                                         "annotations": dict(ANNOTATIONS)}}
    if aggregate_from is not None:
        role["aggregationRule"] = {"clusterRoleSelectors": [{"matchLabels": {aggregate_from: "true"}}]}
        role["rules"] = []
    else:
        role["rules"] = rules or []
    return role


def _subject(kind: str, name: str, namespace: str = "") -> dict[str, Any]:
    if kind == "ServiceAccount":
        return {"kind": kind, "name": name, "namespace": namespace}
    return {"kind": kind, "apiGroup": "rbac.authorization.k8s.io", "name": name}


def _cluster_binding(name: str, role: str | None = None, *subjects: dict[str, Any]) -> dict[str, Any]:
    binding = {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
               "metadata": {"name": name, "labels": dict(LABELS), "annotations": dict(ANNOTATIONS)},
               "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": role or name}}
    if subjects:
        binding["subjects"] = list(subjects)
    return binding


def node_rules() -> list[dict[str, Any]]:
    """Upstream's system:node rules (NodeRules), for the resources pyk8s serves, plus what
    pyk8s's kubelet reads besides: ServiceAccounts (their imagePullSecrets)."""
    return [
        rule("create", "authentication.k8s.io", "tokenreviews"),
        rule("create", "authorization.k8s.io", ["subjectaccessreviews", "localsubjectaccessreviews"]),
        rule(READ, "", "services"),
        rule(["create", "get", "list", "watch"], "", "nodes"),
        rule(["update", "patch"], "", "nodes/status"),
        rule(["update", "patch"], "", "nodes"),
        rule(["create", "update", "patch"], "", "events"),
        rule(READ, "", "pods"),
        rule(["create", "delete"], "", "pods"),
        rule(["update", "patch"], "", "pods/status"),
        rule("create", "", "pods/eviction"),
        rule(READ, "", ["secrets", "configmaps"]),
        rule("get", "", ["persistentvolumeclaims", "persistentvolumes"]),
        rule("get", "", "endpoints"),
        rule(["create", "get", "list", "watch"], "certificates.k8s.io", "certificatesigningrequests"),
        rule(["get", "create", "update", "patch", "delete"], "coordination.k8s.io", "leases"),
        rule("get", "storage.k8s.io", "volumeattachments"),
        rule(["get", "update", "patch"], "", "persistentvolumeclaims/status"),
        rule("create", "", "serviceaccounts/token"),
        rule(["get", "watch", "list"], "storage.k8s.io", "csidrivers"),
        rule(["get", "create", "update", "patch", "delete"], "storage.k8s.io", "csinodes"),
        rule(["get", "list", "watch"], "node.k8s.io", "runtimeclasses"),
        # pyk8s: the kubelet adds a pod's ServiceAccount's imagePullSecrets to its pulls.
        rule(READ, "", "serviceaccounts"),
    ]


def controller_manager_rules() -> list[dict[str, Any]]:
    upstream = [
        events_rule(),
        rule("create", "coordination.k8s.io", "leases"),
        rule(["get", "update"], "coordination.k8s.io", "leases", "kube-controller-manager"),
        rule("create", "", "endpoints"),
        rule(["get", "update"], "", "endpoints", "kube-controller-manager"),
        rule("create", "", ["secrets", "serviceaccounts"]),
        rule("delete", "", "secrets"),
        rule("get", "", ["namespaces", "secrets", "serviceaccounts", "configmaps"]),
        rule("update", "", ["secrets", "serviceaccounts"]),
        rule("create", "authentication.k8s.io", "tokenreviews"),
        rule("create", "authorization.k8s.io", "subjectaccessreviews"),
        rule(["list", "watch"], "*", "*"),
        rule("create", "", "serviceaccounts/token"),
    ]
    # pyk8s: every controller runs as the controller manager (see the module docstring).
    controllers = [
        # generic-garbage-collector, namespace-controller, and the status writers
        rule(["get", "list", "watch", "patch", "update", "delete", "deletecollection"], "*", "*"),
        # replicaset, replication, daemonset, deployment controllers
        rule("create", "", "pods"),
        rule("create", "apps", ["replicasets", "controllerrevisions"]),
        # endpoint, endpointslice, endpointslicemirroring controllers; the kubernetes Service
        rule("create", "", ["endpoints", "services"]),
        rule("create", "discovery.k8s.io", "endpointslices"),
        # service-account, root-ca-cert-publisher, persistent-volume-binder, node-lifecycle
        rule("create", "", ["serviceaccounts", "configmaps", "persistentvolumes", "persistentvolumeclaims"]),
        rule("create", "", "pods/eviction"),
        rule("create", "coordination.k8s.io", "leases"),
        # clusterrole-aggregation controller
        rule("escalate", "rbac.authorization.k8s.io", "clusterroles"),
    ]
    return upstream + controllers


def scheduler_rules() -> list[dict[str, Any]]:
    return [
        events_rule(),
        rule("create", "coordination.k8s.io", "leases"),
        rule(["get", "update"], "coordination.k8s.io", "leases", "kube-scheduler"),
        rule("create", "", "endpoints"),
        rule(["get", "update"], "", "endpoints", "kube-scheduler"),
        rule(READ, "", "nodes"),
        rule(["get", "list", "watch", "delete"], "", "pods"),
        rule("create", "", ["pods/binding", "bindings"]),
        rule(["patch", "update"], "", "pods/status"),
        rule(READ, "", ["services", "replicationcontrollers"]),
        rule(READ, ["apps", "extensions"], "replicasets"),
        rule(READ, "apps", "statefulsets"),
        rule(READ, "policy", "poddisruptionbudgets"),
        rule(READ, "", ["persistentvolumeclaims", "persistentvolumes"]),
        rule("create", "authentication.k8s.io", "tokenreviews"),
        rule("create", "authorization.k8s.io", "subjectaccessreviews"),
        rule(READ, "storage.k8s.io", "csinodes"),
        rule(READ, "", ["namespaces"]),
        rule(READ, "storage.k8s.io", ["csidrivers", "csistoragecapacities"]),
    ]


def cluster_roles() -> list[dict[str, Any]]:
    return [
        _cluster_role("cluster-admin", [rule("*", "*", "*"), urls("*", "*")]),
        _cluster_role("system:discovery", [urls("get", "/livez", "/readyz", "/healthz", "/version", "/version/",
                                                "/openapi", "/openapi/*", "/api", "/api/*", "/apis", "/apis/*")]),
        _cluster_role("system:basic-user", [
            rule("create", "authorization.k8s.io", ["selfsubjectaccessreviews", "selfsubjectrulesreviews"]),
            rule("create", "authentication.k8s.io", "selfsubjectreviews"),
        ]),
        _cluster_role("system:public-info-viewer", [urls("get", "/livez", "/readyz", "/healthz", "/version", "/version/")]),
        _cluster_role("admin", aggregate_from=AGGREGATE_TO_ADMIN),
        _cluster_role("edit", labels={AGGREGATE_TO_ADMIN: "true"}, aggregate_from=AGGREGATE_TO_EDIT),
        _cluster_role("view", labels={AGGREGATE_TO_EDIT: "true"}, aggregate_from=AGGREGATE_TO_VIEW),
        _cluster_role("system:aggregate-to-admin", [
            rule("create", "authorization.k8s.io", "localsubjectaccessreviews"),
            rule(READ_WRITE, "rbac.authorization.k8s.io", ["roles", "rolebindings"]),
        ], labels={AGGREGATE_TO_ADMIN: "true"}),
        _cluster_role("system:aggregate-to-edit", [
            rule(READ, "", ["pods/attach", "pods/proxy", "pods/exec", "pods/portforward", "secrets", "services/proxy"]),
            rule("impersonate", "", "serviceaccounts"),
            rule(WRITE, "", ["pods", "pods/attach", "pods/proxy", "pods/exec", "pods/portforward"]),
            rule(WRITE, "", ["pods/eviction"]),
            rule(WRITE, "", ["replicationcontrollers", "replicationcontrollers/scale", "serviceaccounts", "services",
                             "services/proxy", "persistentvolumeclaims", "configmaps", "secrets", "events"]),
            rule(WRITE, "apps", ["statefulsets", "statefulsets/scale", "daemonsets", "deployments", "deployments/scale",
                                 "deployments/rollback", "replicasets", "replicasets/scale"]),
            rule(WRITE, "autoscaling", "horizontalpodautoscalers"),
            rule(WRITE, "batch", ["jobs", "cronjobs"]),
            rule(WRITE, "extensions", ["daemonsets", "deployments", "deployments/scale", "deployments/rollback",
                                       "ingresses", "replicasets", "replicasets/scale", "replicationcontrollers/scale",
                                       "networkpolicies"]),
            rule(WRITE, "policy", "poddisruptionbudgets"),
            rule(WRITE, "networking.k8s.io", ["networkpolicies", "ingresses"]),
            rule(WRITE, "coordination.k8s.io", "leases"),
        ], labels={AGGREGATE_TO_EDIT: "true"}),
        _cluster_role("system:aggregate-to-view", [
            rule(READ, "", ["pods", "replicationcontrollers", "replicationcontrollers/scale", "serviceaccounts",
                            "services", "services/status", "endpoints", "persistentvolumeclaims",
                            "persistentvolumeclaims/status", "configmaps"]),
            rule(READ, "", ["limitranges", "resourcequotas", "bindings", "events", "pods/status", "resourcequotas/status",
                            "namespaces/status", "replicationcontrollers/status", "pods/log"]),
            rule(READ, "", "namespaces"),
            rule(READ, "discovery.k8s.io", "endpointslices"),
            rule(READ, "apps", ["controllerrevisions", "statefulsets", "statefulsets/status", "statefulsets/scale",
                                "daemonsets", "daemonsets/status", "deployments", "deployments/status",
                                "deployments/scale", "replicasets", "replicasets/status", "replicasets/scale"]),
            rule(READ, "autoscaling", ["horizontalpodautoscalers", "horizontalpodautoscalers/status"]),
            rule(READ, "batch", ["jobs", "cronjobs", "cronjobs/status", "jobs/status"]),
            rule(READ, "extensions", ["daemonsets", "daemonsets/status", "deployments", "deployments/scale",
                                      "deployments/status", "ingresses", "ingresses/status", "replicasets",
                                      "replicasets/scale", "replicasets/status", "replicationcontrollers/scale",
                                      "networkpolicies"]),
            rule(READ, "policy", ["poddisruptionbudgets", "poddisruptionbudgets/status"]),
            rule(READ, "networking.k8s.io", ["networkpolicies", "ingresses", "ingresses/status"]),
            rule(READ, "coordination.k8s.io", "leases"),
        ], labels={AGGREGATE_TO_VIEW: "true"}),
        _cluster_role("system:node", node_rules()),
        _cluster_role("system:node-bootstrapper", [
            rule(["create", "get", "list", "watch"], "certificates.k8s.io", "certificatesigningrequests")]),
        _cluster_role("system:node-proxier", [
            rule(["list", "watch"], "", ["services", "endpoints"]),
            rule(["get", "list", "watch"], "", "nodes"),
            events_rule(),
            rule(["list", "watch"], "discovery.k8s.io", "endpointslices"),
        ]),
        _cluster_role("system:auth-delegator", [
            rule("create", "authentication.k8s.io", "tokenreviews"),
            rule("create", "authorization.k8s.io", "subjectaccessreviews"),
        ]),
        _cluster_role("system:kube-controller-manager", controller_manager_rules()),
        _cluster_role("system:kube-scheduler", scheduler_rules()),
        _cluster_role("system:volume-scheduler", [
            rule(READ_UPDATE, "", "persistentvolumes"),
            rule(READ, "storage.k8s.io", "storageclasses"),
            rule(READ_UPDATE, "", "persistentvolumeclaims"),
        ]),
        _cluster_role("system:kube-dns", [rule(["list", "watch"], "", ["endpoints", "services"])]),
        _cluster_role("system:persistent-volume-provisioner", [
            rule(["get", "list", "watch", "create", "delete"], "", "persistentvolumes"),
            rule(["get", "list", "watch", "update"], "", "persistentvolumeclaims"),
            rule(READ, "storage.k8s.io", "storageclasses"),
            rule("watch", "", "events"),
            events_rule(),
        ]),
        _cluster_role("system:service-account-issuer-discovery", [
            urls("get", "/.well-known/openid-configuration", "/openid/v1/jwks")]),
        _cluster_role("system:certificates.k8s.io:certificatesigningrequests:nodeclient", [
            rule("create", "certificates.k8s.io", "certificatesigningrequests/nodeclient")]),
        _cluster_role("system:certificates.k8s.io:certificatesigningrequests:selfnodeclient", [
            rule("create", "certificates.k8s.io", "certificatesigningrequests/selfnodeclient")]),
        _cluster_role("system:kubelet-api-admin", [
            rule(["get", "list", "watch"], "", "nodes"),
            rule("proxy", "", "nodes"),
            rule("*", "", ["nodes/proxy", "nodes/metrics", "nodes/spec", "nodes/stats", "nodes/log"]),
        ]),
        # k3s's system:coredns (its coredns manifest)
        _cluster_role("system:coredns", [
            rule(["list", "watch"], "", ["endpoints", "services", "pods", "namespaces"]),
            rule(["list", "watch"], "discovery.k8s.io", "endpointslices"),
        ]),
        # pyk8s: the local-path provisioner every node agent runs (its own identity: the node's)
        _cluster_role("pyk8s:local-path-provisioner", [
            rule(["get", "list", "watch", "create", "delete", "update", "patch"], "", "persistentvolumes"),
            rule(["get", "list", "watch", "update", "patch"], "", ["persistentvolumeclaims"]),
            rule(READ, "storage.k8s.io", "storageclasses"),
            rule(READ, "", "nodes"),
            events_rule(),
        ]),
    ]


def cluster_role_bindings() -> list[dict[str, Any]]:
    group, user, sa = (lambda n: _subject("Group", n)), (lambda n: _subject("User", n)), \
        (lambda ns, n: _subject("ServiceAccount", n, ns))
    return [
        _cluster_binding("cluster-admin", None, group(rbac.SYSTEM_MASTERS)),
        _cluster_binding("system:discovery", None, group(rbac.AUTHENTICATED)),
        _cluster_binding("system:basic-user", None, group(rbac.AUTHENTICATED)),
        _cluster_binding("system:public-info-viewer", None, group(rbac.AUTHENTICATED), group(rbac.UNAUTHENTICATED)),
        _cluster_binding("system:node-proxier", None, user("system:kube-proxy")),
        _cluster_binding("system:kube-controller-manager", None, user("system:kube-controller-manager")),
        _cluster_binding("system:kube-dns", None, sa("kube-system", "kube-dns")),
        _cluster_binding("system:kube-scheduler", None, user("system:kube-scheduler")),
        _cluster_binding("system:volume-scheduler", None, user("system:kube-scheduler")),
        # No subjects, as upstream since the Node authorizer (1.8): nodes get system:node's
        # rules from the Node authorizer (nodeauthorizer.py), limited to their own objects.
        _cluster_binding("system:node"),
        _cluster_binding("system:service-account-issuer-discovery", None, group(rbac.SERVICE_ACCOUNTS_GROUP)),
        _cluster_binding("system:coredns", None, sa("kube-system", "coredns")),
        # pyk8s: the agent's proxy and provisioner run as the node
        _cluster_binding("pyk8s:node-proxier", "system:node-proxier", group("system:nodes")),
        _cluster_binding("pyk8s:node-local-path-provisioner", "pyk8s:local-path-provisioner", group("system:nodes")),
        # Agents joined with the node token (kubeadm's kubeadm:kubelet-bootstrap): the token
        # only asks for the node's client certificate (client/certbootstrap.py).
        _cluster_binding("kubeadm:kubelet-bootstrap", "system:node-bootstrapper", group(NODE_TOKEN_GROUP)),
        _cluster_binding("kubeadm:node-autoapprove-bootstrap",
                         "system:certificates.k8s.io:certificatesigningrequests:nodeclient", group(NODE_TOKEN_GROUP)),
        # kubeadm's: nodes renew their own client certificates (the CSR approver's SAR).
        _cluster_binding("kubeadm:node-autoapprove-certificate-rotation",
                         "system:certificates.k8s.io:certificatesigningrequests:selfnodeclient", group("system:nodes")),
    ]


def namespaced_roles() -> list[dict[str, Any]]:
    meta = (lambda name, namespace: {"name": name, "namespace": namespace, "labels": dict(LABELS),
                                     "annotations": dict(ANNOTATIONS)})
    return [
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
         "metadata": meta("kubeadm:bootstrap-signer-clusterinfo", "kube-public"),
         "rules": [rule("get", "", "configmaps", "cluster-info")]},
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role", "metadata": meta("pyk8s:addons", "kube-system"),
         "rules": [rule(["get", "list", "watch", "create", "update", "patch"], "",
                        ["serviceaccounts", "secrets", "services", "configmaps"]),
                   rule(["get", "list", "watch", "create", "update", "patch"], "apps", "deployments")]},
    ]


def namespaced_role_bindings() -> list[dict[str, Any]]:
    def binding(name: str, namespace: str, role: str, *subjects: dict[str, Any]) -> dict[str, Any]:
        return {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
                "metadata": {"name": name, "namespace": namespace, "labels": dict(LABELS),
                             "annotations": dict(ANNOTATIONS)},
                "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": role},
                "subjects": list(subjects)}
    return [
        binding("kubeadm:bootstrap-signer-clusterinfo", "kube-public", "kubeadm:bootstrap-signer-clusterinfo",
                _subject("User", rbac.ANONYMOUS)),
        binding("pyk8s:addons", "kube-system", "pyk8s:addons", _subject("User", ADDONS_USER)),
    ]


# ------------------------------------------------------------------ reconciliation

def _autoupdate(obj: dict[str, Any]) -> bool:
    return ((obj.get("metadata") or {}).get("annotations") or {}).get(rbac.AUTOUPDATE_ANNOTATION) == "true"


def reconciled(existing: dict[str, Any], expected: dict[str, Any]) -> dict[str, Any] | None:
    """The object to write so `existing` holds everything `expected` grants (None: nothing
    to do or not ours to change)."""
    if not _autoupdate(existing):
        return None
    result = copy.deepcopy(existing)
    meta = result.setdefault("metadata", {})
    for field in ("labels", "annotations"):
        wanted = expected["metadata"].get(field) or {}
        if any(meta.get(field, {}).get(k) != v for k, v in wanted.items()):
            meta[field] = {**(meta.get(field) or {}), **wanted}
    kind = expected["kind"]
    if kind in ("ClusterRole", "Role"):
        if "aggregationRule" in expected:
            selectors = list(((result.get("aggregationRule") or {}).get("clusterRoleSelectors")) or [])
            for selector in expected["aggregationRule"]["clusterRoleSelectors"]:
                if selector not in selectors:
                    selectors.append(selector)
            result["aggregationRule"] = {"clusterRoleSelectors": selectors}
        else:
            rules = list(result.get("rules") or [])
            for wanted_rule in expected.get("rules") or []:
                if rbac.uncovered_rules(rules, [wanted_rule]):
                    rules.append(wanted_rule)
            result["rules"] = rules
    else:
        subjects = list(result.get("subjects") or [])
        for subject in expected.get("subjects") or []:
            if not any(s.get("kind") == subject["kind"] and s.get("name") == subject["name"]
                       and (s.get("namespace") or "") == (subject.get("namespace") or "") for s in subjects):
                subjects.append(subject)
        if subjects:
            result["subjects"] = subjects
    return None if result == existing else result


async def _reconcile_one(registry, resource, obj: dict[str, Any]) -> None:
    namespace = obj["metadata"].get("namespace")
    name = obj["metadata"]["name"]
    try:
        existing = await registry.get(resource, namespace, name)
    except errors.NotFound:
        try:
            await registry.create(resource, namespace, copy.deepcopy(obj))
        except errors.AlreadyExists:
            pass
        return
    if obj["kind"].endswith("Binding") and existing.get("roleRef") != obj["roleRef"] and _autoupdate(existing):
        # roleRef cannot change: upstream deletes and recreates the binding
        from pyk8s.apiserver.registry import DeleteOptions
        await registry.delete(resource, namespace, name, DeleteOptions())
        await registry.create(resource, namespace, copy.deepcopy(obj))
        return
    updated = reconciled(existing, obj)
    if updated is not None:
        try:
            await registry.update(resource, namespace, name, updated)
        except errors.Conflict:
            log.warning("%s %s changed while reconciling; the next start reconciles it", obj["kind"], name)


async def reconcile(registry) -> None:
    """Create or update the bootstrap policy (in upstream's order: roles before bindings)."""
    group = rbac.RBAC_GROUP
    for obj in cluster_roles():
        await _reconcile_one(registry, lookup(group, "v1", "clusterroles"), obj)
    for obj in cluster_role_bindings():
        await _reconcile_one(registry, lookup(group, "v1", "clusterrolebindings"), obj)
    for obj in namespaced_roles():
        await _reconcile_one(registry, lookup(group, "v1", "roles"), obj)
    for obj in namespaced_role_bindings():
        await _reconcile_one(registry, lookup(group, "v1", "rolebindings"), obj)
