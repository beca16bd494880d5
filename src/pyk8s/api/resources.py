"""The catalogue of served API resources: group, version, kind, names and verbs.

One `Resource` per (group, version, plural). Discovery, routing, storage keys and table
printing all read from here, so adding a kind is one entry.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field

ALL_VERBS = ("create", "delete", "deletecollection", "get", "list", "patch", "update", "watch")


@dataclass(frozen=True)
class Resource:
    group: str  # "" for the core group
    version: str
    plural: str
    kind: str
    namespaced: bool
    short_names: tuple[str, ...] = ()
    categories: tuple[str, ...] = ()
    subresources: tuple[str, ...] = ()  # "status", "scale", ...
    verbs: tuple[str, ...] = ALL_VERBS
    singular: str = ""
    # Fields (besides metadata.name/namespace) usable in fieldSelector, with their paths.
    field_selectors: dict[str, str] = field(default_factory=dict, hash=False, compare=False)

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def group_version(self) -> str:
        return self.api_version

    @property
    def singular_name(self) -> str:
        return self.singular or self.kind.lower()

    def storage_prefix(self, namespace: str | None = None) -> str:
        """Key prefix in the store, upstream's etcd layout: `/registry/<resource>/` (see
        storage_resource), then `<namespace>/` for a namespace's objects."""
        base = _storage_base(self.group, self.plural)
        if self.namespaced and namespace:
            return f"{base}{namespace}/"
        return base

    def storage_key(self, namespace: str | None, name: str) -> str:
        if self.namespaced:
            return f"{self.storage_prefix()}{namespace}/{name}"
        return f"{self.storage_prefix()}{name}"


# Upstream's etcd key layout: `/registry/<resource>/[<namespace>/]<name>`, the group left
# out for built-in kinds (so `etcdctl get --prefix /registry/pods` lists the pods), with the
# historical prefixes compiled into kube-apiserver (its SpecialDefaultResourcePrefixes).
_SPECIAL_STORAGE_RESOURCES = {
    ("", "replicationcontrollers"): "controllers",
    ("", "endpoints"): "services/endpoints",
    ("", "services"): "services/specs",
    ("", "nodes"): "minions",
    ("networking.k8s.io", "ingresses"): "ingress",
}
# Kept under `/registry/<group>/<resource>/`, as upstream keeps custom resources: the
# events.k8s.io Events (stored apart from core Events; upstream converts between the two in
# one /registry/events) and the RBAC kinds (the authorizer's index lists and watches all
# four under one prefix, apiserver/authz.py's RBAC_PREFIX).
_GROUPED_STORAGE = frozenset({"events.k8s.io", "rbac.authorization.k8s.io"})


def storage_resource(group: str, plural: str) -> str:
    """The `<resource>` part of the keys of (group, plural)."""
    special = _SPECIAL_STORAGE_RESOURCES.get((group, plural))
    if special is not None:
        return special
    if group in _GROUPED_STORAGE or group not in _BUILT_IN_GROUPS:
        return f"{group}/{plural}"
    return plural


@functools.cache
def _storage_base(group: str, plural: str) -> str:
    return f"/registry/{storage_resource(group, plural)}/"


def legacy_storage_prefix(group: str, plural: str) -> str:
    """Where pyk8s kept (group, plural) before it used upstream's layout (storage/keylayout.py
    moves such keys at start)."""
    return f"/registry/{group or 'core'}/{plural}/"


_POD_FIELDS = {
    "spec.nodeName": "spec.nodeName",
    "spec.restartPolicy": "spec.restartPolicy",
    "spec.schedulerName": "spec.schedulerName",
    "spec.serviceAccountName": "spec.serviceAccountName",
    "spec.hostNetwork": "spec.hostNetwork",
    "status.phase": "status.phase",
    "status.podIP": "status.podIP",
    "status.nominatedNodeName": "status.nominatedNodeName",
}
_EVENT_FIELDS = {
    "involvedObject.kind": "involvedObject.kind",
    "involvedObject.namespace": "involvedObject.namespace",
    "involvedObject.name": "involvedObject.name",
    "involvedObject.uid": "involvedObject.uid",
    "involvedObject.apiVersion": "involvedObject.apiVersion",
    "involvedObject.resourceVersion": "involvedObject.resourceVersion",
    "involvedObject.fieldPath": "involvedObject.fieldPath",
    "reason": "reason",
    "reportingComponent": "reportingComponent",
    "source": "source.component",
    "type": "type",
}
_EVENTS_V1_FIELDS = {
    "regarding.kind": "regarding.kind",
    "regarding.namespace": "regarding.namespace",
    "regarding.name": "regarding.name",
    "regarding.uid": "regarding.uid",
    "reason": "reason",
    "type": "type",
}

_ALL = ("all",)
_RBAC = "rbac.authorization.k8s.io"

RESOURCES: tuple[Resource, ...] = (
    # core/v1
    Resource("", "v1", "namespaces", "Namespace", False, ("ns",), subresources=("status", "finalize"),
             field_selectors={"status.phase": "status.phase"}),
    Resource("", "v1", "pods", "Pod", True, ("po",), _ALL, ("status", "binding", "eviction", "log", "exec", "attach", "portforward", "ephemeralcontainers"),
             field_selectors=_POD_FIELDS),
    Resource("", "v1", "services", "Service", True, ("svc",), _ALL, ("status", "proxy")),
    Resource("", "v1", "endpoints", "Endpoints", True, ("ep",), singular="endpoints"),
    Resource("", "v1", "configmaps", "ConfigMap", True, ("cm",)),
    Resource("", "v1", "secrets", "Secret", True, (), field_selectors={"type": "type"}),
    Resource("", "v1", "nodes", "Node", False, ("no",), subresources=("status", "proxy"),
             field_selectors={"spec.unschedulable": "spec.unschedulable"}),
    Resource("", "v1", "events", "Event", True, ("ev",), field_selectors=_EVENT_FIELDS),
    Resource("", "v1", "serviceaccounts", "ServiceAccount", True, ("sa",), subresources=("token",)),
    Resource("", "v1", "persistentvolumes", "PersistentVolume", False, ("pv",), subresources=("status",)),
    Resource("", "v1", "persistentvolumeclaims", "PersistentVolumeClaim", True, ("pvc",), subresources=("status",)),
    Resource("", "v1", "replicationcontrollers", "ReplicationController", True, ("rc",), _ALL, ("status", "scale")),
    # apps/v1
    Resource("apps", "v1", "deployments", "Deployment", True, ("deploy",), _ALL, ("status", "scale")),
    Resource("apps", "v1", "replicasets", "ReplicaSet", True, ("rs",), _ALL, ("status", "scale")),
    Resource("apps", "v1", "daemonsets", "DaemonSet", True, ("ds",), _ALL, ("status",)),
    Resource("apps", "v1", "statefulsets", "StatefulSet", True, ("sts",), _ALL, ("status", "scale")),
    Resource("apps", "v1", "controllerrevisions", "ControllerRevision", True),
    # batch/v1
    Resource("batch", "v1", "jobs", "Job", True, (), _ALL, ("status",)),
    Resource("batch", "v1", "cronjobs", "CronJob", True, ("cj",), _ALL, ("status",)),
    # certificates.k8s.io/v1
    Resource("certificates.k8s.io", "v1", "certificatesigningrequests", "CertificateSigningRequest", False, ("csr",),
             subresources=("approval", "status")),
    # storage.k8s.io/v1
    Resource("storage.k8s.io", "v1", "storageclasses", "StorageClass", False, ("sc",)),
    # discovery.k8s.io/v1
    Resource("discovery.k8s.io", "v1", "endpointslices", "EndpointSlice", True),
    # coordination.k8s.io/v1
    Resource("coordination.k8s.io", "v1", "leases", "Lease", True),
    # events.k8s.io/v1: stored on its own for now (upstream converts to and from core events).
    Resource("events.k8s.io", "v1", "events", "Event", True, ("ev",), field_selectors=_EVENTS_V1_FIELDS),
    # rbac.authorization.k8s.io/v1 (apiserver/authz.py); the reviews are create-only and never stored
    Resource(_RBAC, "v1", "clusterrolebindings", "ClusterRoleBinding", False),
    Resource(_RBAC, "v1", "clusterroles", "ClusterRole", False),
    Resource(_RBAC, "v1", "rolebindings", "RoleBinding", True),
    Resource(_RBAC, "v1", "roles", "Role", True),
    Resource("authorization.k8s.io", "v1", "localsubjectaccessreviews", "LocalSubjectAccessReview", True, verbs=("create",)),
    Resource("authorization.k8s.io", "v1", "selfsubjectaccessreviews", "SelfSubjectAccessReview", False, verbs=("create",)),
    Resource("authorization.k8s.io", "v1", "selfsubjectrulesreviews", "SelfSubjectRulesReview", False, verbs=("create",)),
    Resource("authorization.k8s.io", "v1", "subjectaccessreviews", "SubjectAccessReview", False, verbs=("create",)),
    Resource("authentication.k8s.io", "v1", "selfsubjectreviews", "SelfSubjectReview", False, verbs=("create",)),
)

# Group order as upstream's discovery lists them (kubectl uses it to pick between
# same-named resources: core events win over events.k8s.io events).
GROUP_ORDER = ("", "apps", "events.k8s.io", "authentication.k8s.io", "authorization.k8s.io", "batch",
               "certificates.k8s.io", "rbac.authorization.k8s.io", "storage.k8s.io", "coordination.k8s.io",
               "discovery.k8s.io")

_BUILT_IN_GROUPS = frozenset(r.group for r in RESOURCES)
_BY_PATH = {(r.group, r.version, r.plural): r for r in RESOURCES}
_BY_KIND = {}
for _r in RESOURCES:
    _BY_KIND.setdefault((_r.group, _r.kind), _r)


def lookup(group: str, version: str, plural: str) -> Resource | None:
    return _BY_PATH.get((group, version, plural))


def by_kind(group: str, kind: str) -> Resource | None:
    return _BY_KIND.get((group, kind))


def by_api_version_kind(api_version: str, kind: str) -> Resource | None:
    group = api_version.rpartition("/")[0]
    return _BY_KIND.get((group, kind))


def group_versions() -> list[tuple[str, str]]:
    """Served (group, version) pairs in discovery order."""
    seen: list[tuple[str, str]] = []
    for group in GROUP_ORDER:
        for r in RESOURCES:
            if r.group == group and (r.group, r.version) not in seen:
                seen.append((r.group, r.version))
    return seen

