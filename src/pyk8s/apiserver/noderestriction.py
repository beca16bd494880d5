"""NodeRestriction admission (upstream's plugin/pkg/admission/noderestriction): what the
Node authorizer cannot decide without seeing the object. A node (user system:node:<name>)
- may create, update and delete only its own Node, never set labels under
  node-restriction.kubernetes.io/ nor kubernetes.io / k8s.io labels outside the kubelet's
  own set, and never change its taints;
- may update the status of, evict and delete only pods bound to it; it may create only
  mirror pods bound to it (pyk8s has no static pods, so in practice none);
- may change only its own Lease in kube-node-lease;
- may change claims only through their status (capacity and conditions);
- may request ServiceAccount tokens only bound to a pod scheduled on it.

Errors read as upstream's admission.NewForbidden: `<resource> "<name>" is forbidden: <why>`.
"""

from __future__ import annotations

from typing import Any

from pyk8s.api import errors
from pyk8s.api.resources import Resource, lookup

PODS = lookup("", "v1", "pods")
NODE_LEASE_NAMESPACE = "kube-node-lease"
MIRROR_POD_ANNOTATION = "kubernetes.io/config.mirror"
NODE_RESTRICTION_LABEL_PREFIX = "node-restriction.kubernetes.io"

# kubeletapis.IsKubeletLabel: labels a kubelet may set on its own Node.
KUBELET_LABELS = frozenset({
    "kubernetes.io/hostname", "topology.kubernetes.io/zone", "topology.kubernetes.io/region",
    "failure-domain.beta.kubernetes.io/zone", "failure-domain.beta.kubernetes.io/region",
    "beta.kubernetes.io/instance-type", "node.kubernetes.io/instance-type", "kubernetes.io/os",
    "kubernetes.io/arch", "beta.kubernetes.io/os", "beta.kubernetes.io/arch",
})
KUBELET_LABEL_NAMESPACES = ("kubelet.kubernetes.io", "node.kubernetes.io")


def _label_namespace(key: str) -> str:
    prefix, slash, _ = key.partition("/")
    return prefix if slash else ""


def _in_domain(namespace: str, domain: str) -> bool:
    return namespace == domain or namespace.endswith("." + domain)


def is_kubelet_label(key: str) -> bool:
    if key in KUBELET_LABELS:
        return True
    namespace = _label_namespace(key)
    return any(_in_domain(namespace, allowed) for allowed in KUBELET_LABEL_NAMESPACES)


def is_kubernetes_label(key: str) -> bool:
    namespace = _label_namespace(key)
    return _in_domain(namespace, "kubernetes.io") or _in_domain(namespace, "k8s.io")


def modified_labels(new: dict[str, str], old: dict[str, str]) -> set[str]:
    return {key for key in set(new) | set(old) if new.get(key) != old.get(key)}


def forbidden_labels(labels: set[str]) -> list[str]:
    forbidden = set()
    for label in labels:
        if _in_domain(_label_namespace(label), NODE_RESTRICTION_LABEL_PREFIX):
            forbidden.add(label)
        if is_kubernetes_label(label) and not is_kubelet_label(label):
            forbidden.add(label)
    return sorted(forbidden)


def forbidden(resource: Resource, name: str, why: str) -> errors.Forbidden:
    qualified = f"{resource.plural}.{resource.group}" if resource.group else resource.plural
    message = f'{qualified} "{name}" is forbidden: {why}' if name else f"{qualified} is forbidden: {why}"
    details: dict[str, Any] = {"name": name, "kind": resource.plural}
    if resource.group:
        details["group"] = resource.group
    return errors.Forbidden(message, details=details)


def _labels(obj: dict[str, Any] | None) -> dict[str, str]:
    return dict(((obj or {}).get("metadata") or {}).get("labels") or {})


def _node_name_of(pod: dict[str, Any] | None) -> str:
    return ((pod or {}).get("spec") or {}).get("nodeName") or ""


def admit(node: str, operation: str, resource: Resource, subresource: str, name: str,
          new: dict[str, Any] | None, old: dict[str, Any] | None) -> None:
    """Raise Forbidden if node `node` may not do `operation` (CREATE, UPDATE, DELETE) to
    this object; `new` is the object being written, `old` the stored one."""
    group, plural = resource.group, resource.plural
    if group == "" and plural == "pods":
        _admit_pod(node, operation, resource, subresource, name, new, old)
    elif group == "" and plural == "nodes":
        _admit_node(node, operation, resource, name, new, old)
    elif group == "" and plural == "persistentvolumeclaims":
        if subresource != "status":
            raise forbidden(resource, name, "may only update PVC status")
        if operation != "UPDATE":
            raise forbidden(resource, name, f'unexpected operation "{operation}"')
        _admit_claim_status(node, resource, name, new or {}, old or {})
    elif group == "coordination.k8s.io" and plural == "leases":
        if (new or old or {}).get("metadata", {}).get("namespace", "") != NODE_LEASE_NAMESPACE:
            raise forbidden(resource, name, f'can only access leases in the "{NODE_LEASE_NAMESPACE}" system namespace')
        if name != node:
            raise forbidden(resource, name, "can only access node lease with the same name as the requesting node")


def _admit_pod(node: str, operation: str, resource: Resource, subresource: str, name: str,
               new: dict[str, Any] | None, old: dict[str, Any] | None) -> None:
    if subresource == "":
        if operation == "CREATE":
            annotations = ((new or {}).get("metadata") or {}).get("annotations") or {}
            if MIRROR_POD_ANNOTATION not in annotations:
                raise forbidden(resource, name, f'pod does not have "{MIRROR_POD_ANNOTATION}" annotation, '
                                                f'node "{node}" can only create mirror pods')
            if _node_name_of(new) != node:
                raise forbidden(resource, name, f'node "{node}" can only create pods with spec.nodeName set to itself')
            return
        if operation == "DELETE":
            if _node_name_of(old) != node:
                raise forbidden(resource, name, f'node "{node}" can only delete pods with spec.nodeName set to itself')
            return
        raise forbidden(resource, name, f'unexpected operation "{operation}", node "{node}" can only create and delete mirror pods')
    if subresource == "status":
        if operation != "UPDATE":
            raise forbidden(resource, name, f'unexpected operation "{operation}"')
        if _node_name_of(old) != node:
            raise forbidden(resource, name, f'node "{node}" can only update pod status for pods with spec.nodeName set to itself')
        return
    if subresource == "eviction":
        if _node_name_of(old) != node:
            raise forbidden(resource, name, f'node "{node}" can only evict pods with spec.nodeName set to itself')
        return
    raise forbidden(resource, name, f'unexpected subresource "{subresource}", node "{node}" can only update pod status and create evictions')


def _admit_node(node: str, operation: str, resource: Resource, name: str,
                new: dict[str, Any] | None, old: dict[str, Any] | None) -> None:
    if name != node:
        raise forbidden(resource, name, f'node "{node}" is not allowed to modify node "{name}"')
    if operation == "CREATE":
        labels = forbidden_labels(set(_labels(new)))
        if labels:
            raise forbidden(resource, name, f'node "{node}" is not allowed to set the following labels: {", ".join(labels)}')
    elif operation == "UPDATE":
        if ((new or {}).get("spec") or {}).get("taints") != ((old or {}).get("spec") or {}).get("taints"):
            raise forbidden(resource, name, f'node "{node}" is not allowed to modify taints')
        labels = forbidden_labels(modified_labels(_labels(new), _labels(old)))
        if labels:
            raise forbidden(resource, name, f'is not allowed to modify labels: {", ".join(labels)}')


def _admit_claim_status(node: str, resource: Resource, name: str, new: dict[str, Any], old: dict[str, Any]) -> None:
    def without_allowed(claim: dict[str, Any]) -> dict[str, Any]:
        status = {k: v for k, v in (claim.get("status") or {}).items() if k not in ("capacity", "conditions")}
        meta = {k: v for k, v in (claim.get("metadata") or {}).items()
                if k not in ("resourceVersion", "managedFields", "generation")}
        return {"spec": claim.get("spec"), "status": status, "metadata": meta}
    if without_allowed(new) != without_allowed(old):
        raise forbidden(resource, name, f'node "{node}" is not allowed to update fields other than '
                                        f"status.capacity and status.conditions")


def admit_token_request(node: str, namespace: str, service_account: str, token_request: dict[str, Any],
                        pod: dict[str, Any] | None) -> None:
    """A node's TokenRequest must be bound to a pod (by name and uid) scheduled on it.
    `pod` is the stored pod the request's boundObjectRef names (None: not found)."""
    resource = lookup("", "v1", "serviceaccounts")
    ref = (token_request.get("spec") or {}).get("boundObjectRef") or {}
    if not ref or ref.get("apiVersion") != "v1" or ref.get("kind") != "Pod" or not ref.get("name"):
        raise forbidden(resource, service_account, "node requested token not bound to a pod")
    if not ref.get("uid"):
        raise forbidden(resource, service_account, "node requested token with a pod binding without a uid")
    if pod is None:
        raise errors.NotFound.of("", "pods", ref["name"])
    if ref["uid"] != pod["metadata"].get("uid"):
        raise forbidden(resource, service_account, f"the UID in the bound object reference ({ref['uid']}) does not match "
                                                   f"the UID in record. The object might have been deleted and then recreated")
    if _node_name_of(pod) != node:
        raise forbidden(resource, service_account, "node requested token bound to a pod scheduled on a different node")
