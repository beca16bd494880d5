"""The Node authorizer (upstream's plugin/pkg/auth/authorizer/node): what a kubelet, user
`system:node:<name>` in group `system:nodes`, may do.

A node reads only the Secrets, ConfigMaps, PersistentVolumeClaims, PersistentVolumes and
ServiceAccount tokens of the pods bound to it. That relationship lives in `NodeGraph`,
an in-memory index of pods (by `spec.nodeName`) and of PersistentVolumes (by their
`claimRef`), fed by `GraphPopulator` from list + watch on the registry, like upstream's
graph populator fed by the API server's informers. Everything else a node may do is a
fixed list of rules (upstream's NodeRules), refined by NodeRestriction admission
(noderestriction.py) where the authorizer cannot see the object (its own Node, its pods'
status, its Lease on create).

Flow: request -> (authn) -> authorize(attributes) -> Allow | NoOpinion(reason). A node
request this authorizer has no opinion on goes to the next authorizer in the chain (RBAC),
and the 403 carries this reason, as upstream's union authorizer does.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from typing import Any, Iterable

from pyk8s.api import errors
from pyk8s.api.resources import lookup

log = logging.getLogger("pyk8s.apiserver.nodeauthorizer")

ALLOW, NO_OPINION = "Allow", "NoOpinion"  # never Deny: the next authorizer (RBAC) may still allow

NODE_USER_PREFIX = "system:node:"
NODES_GROUP = "system:nodes"
NODE_LEASE_NAMESPACE = "kube-node-lease"

SECRET, CONFIGMAP, PVC, PV, SERVICEACCOUNT = "secret", "configmap", "pvc", "pv", "serviceaccount"

_READ = ["get", "list", "watch"]


def _rule(verbs: list[str], group: str, *resources: str) -> dict[str, Any]:
    return {"verbs": verbs, "apiGroups": [group], "resources": list(resources)}


# Upstream's bootstrappolicy.NodeRules(); the resources the graph subdivides (secrets,
# configmaps, claims, volumes, serviceaccounts/token, leases) never reach these rules.
NODE_RULES = (
    _rule(["create"], "authentication.k8s.io", "tokenreviews"),
    _rule(["create"], "authorization.k8s.io", "subjectaccessreviews", "localsubjectaccessreviews"),
    _rule(_READ, "", "services"),
    _rule(["create", "get", "list", "watch"], "", "nodes"),
    _rule(["update", "patch"], "", "nodes/status"),
    _rule(["update", "patch"], "", "nodes"),
    _rule(["create", "update", "patch"], "", "events"),
    _rule(["create", "update", "patch"], "events.k8s.io", "events"),
    _rule(_READ, "", "pods"),
    _rule(["create", "delete"], "", "pods"),
    _rule(["update", "patch"], "", "pods/status"),
    _rule(["create"], "", "pods/eviction"),
    _rule(["get"], "", "endpoints"),
    _rule(["create", "get", "list", "watch"], "certificates.k8s.io", "certificatesigningrequests"),
    _rule(["get"], "storage.k8s.io", "volumeattachments"),
    _rule(["get", "create", "update", "patch", "delete"], "storage.k8s.io", "csinodes"),
    _rule(_READ, "node.k8s.io", "runtimeclasses"),
    # Not upstream's: pyk8s's agent runs the service proxy with the node's identity (upstream
    # kube-proxy has its own, system:node-proxier), so the node also reads what it needs.
    _rule(["list", "watch"], "", "endpoints"),
    _rule(_READ, "discovery.k8s.io", "endpointslices"),
)


def rule_allows(attributes, rule: dict[str, Any]) -> bool:
    """An RBAC-style rule (exact verbs, groups and resource[/subresource]) against the
    request's attributes: any object with user, verb, resource_request, api_group,
    resource, subresource, namespace and name (api/rbac.py's Attributes)."""
    if attributes.verb not in rule["verbs"] or not attributes.resource_request:
        return False
    if attributes.api_group not in rule["apiGroups"]:
        return False
    wanted = f"{attributes.resource}/{attributes.subresource}" if attributes.subresource else attributes.resource
    return wanted in rule["resources"]


def node_identity(user) -> tuple[bool, str]:
    """(is a node, its name): upstream's NodeIdentifier needs both the group and the name
    prefix; a member of system:nodes without a name is a node we cannot identify."""
    if NODES_GROUP not in (getattr(user, "groups", ()) or ()):
        return False, ""
    name = getattr(user, "name", "") or ""
    if not name.startswith(NODE_USER_PREFIX):
        return False, ""
    return True, name[len(NODE_USER_PREFIX):]


# --------------------------------------------------------------------------- the graph

def pod_references(pod: dict[str, Any]) -> set[tuple[str, str]]:
    """(kind, name) of what the pod uses in its namespace: secrets and config maps in
    volumes, projections, env and envFrom, image pull secrets, claims (including generic
    ephemeral ones, `<pod>-<volume>`) and its service account (upstream's graph.AddPod)."""
    spec = pod.get("spec") or {}
    pod_name = (pod.get("metadata") or {}).get("name", "")
    found: set[tuple[str, str]] = set()

    def add(kind: str, name: Any) -> None:
        if isinstance(name, str) and name:
            found.add((kind, name))

    for ref in spec.get("imagePullSecrets") or []:
        add(SECRET, (ref or {}).get("name"))
    add(SERVICEACCOUNT, spec.get("serviceAccountName") or spec.get("serviceAccount"))
    for volume in spec.get("volumes") or []:
        volume = volume or {}
        add(SECRET, (volume.get("secret") or {}).get("secretName"))
        add(CONFIGMAP, (volume.get("configMap") or {}).get("name"))
        add(PVC, (volume.get("persistentVolumeClaim") or {}).get("claimName"))
        if volume.get("ephemeral") is not None:
            add(PVC, f"{pod_name}-{volume.get('name', '')}")
        for source in (volume.get("projected") or {}).get("sources") or []:
            add(SECRET, ((source or {}).get("secret") or {}).get("name"))
            add(CONFIGMAP, ((source or {}).get("configMap") or {}).get("name"))
        # Volume plugins that name a Secret in the pod's namespace.
        for plugin in ("azureFile", "cephfs", "cinder", "flexVolume", "iscsi", "rbd", "scaleIO", "storageos", "csi"):
            source = volume.get(plugin)
            if isinstance(source, dict):
                add(SECRET, source.get("secretName"))
                add(SECRET, (source.get("secretRef") or {}).get("name"))
                add(SECRET, (source.get("nodePublishSecretRef") or {}).get("name"))
    for group in ("containers", "initContainers", "ephemeralContainers"):
        for container in spec.get(group) or []:
            for env in (container or {}).get("env") or []:
                source = (env or {}).get("valueFrom") or {}
                add(SECRET, (source.get("secretKeyRef") or {}).get("name"))
                add(CONFIGMAP, (source.get("configMapKeyRef") or {}).get("name"))
            for env_from in (container or {}).get("envFrom") or []:
                add(SECRET, ((env_from or {}).get("secretRef") or {}).get("name"))
                add(CONFIGMAP, ((env_from or {}).get("configMapRef") or {}).get("name"))
    return found


def volume_secret_references(volume: dict[str, Any]) -> set[tuple[str, str]]:
    """(namespace, name) of the Secrets a PersistentVolume's source names (upstream's
    VisitPVSecretNames, for the sources that carry a namespace)."""
    found: set[tuple[str, str]] = set()
    for source in (volume.get("spec") or {}).values():
        if not isinstance(source, dict):
            continue
        for key in ("secretRef", "nodePublishSecretRef", "nodeStageSecretRef", "controllerExpandSecretRef",
                    "nodeExpandSecretRef"):
            ref = source.get(key)
            if isinstance(ref, dict) and ref.get("name") and ref.get("namespace"):
                found.add((ref["namespace"], ref["name"]))
    return found


class NodeGraph:
    """Which objects each node reaches through the pods bound to it.

    `reachable[node]` counts (kind, namespace, name) references of the node's pods, so two
    pods sharing a Secret keep it reachable until both are gone; PersistentVolumes are
    reached through the claim their claimRef names."""

    def __init__(self) -> None:
        self.pods: dict[tuple[str, str], tuple[str, frozenset[tuple[str, str]]]] = {}
        self.reachable: dict[str, Counter] = {}
        # PV name -> (claim namespace, claim name), and the Secrets it names.
        self.volume_claims: dict[str, tuple[str, str]] = {}
        self.volume_secrets: dict[str, frozenset[tuple[str, str]]] = {}

    # -- pods
    def set_pod(self, pod: dict[str, Any]) -> None:
        meta = pod.get("metadata") or {}
        key = (meta.get("namespace", ""), meta.get("name", ""))
        node = (pod.get("spec") or {}).get("nodeName") or ""
        self.delete_pod(key)
        if not node:  # an unscheduled pod relates to no node yet
            return
        references = frozenset(pod_references(pod))
        self.pods[key] = (node, references)
        counter = self.reachable.setdefault(node, Counter())
        for kind, name in references:
            counter[(kind, key[0], name)] += 1

    def delete_pod(self, key: tuple[str, str]) -> None:
        previous = self.pods.pop(key, None)
        if previous is None:
            return
        node, references = previous
        counter = self.reachable.get(node)
        if counter is None:
            return
        for kind, name in references:
            edge = (kind, key[0], name)
            counter[edge] -= 1
            if counter[edge] <= 0:
                del counter[edge]
        if not counter:
            del self.reachable[node]

    def replace_pods(self, pods: Iterable[dict[str, Any]]) -> None:
        self.pods.clear()
        self.reachable.clear()
        for pod in pods:
            self.set_pod(pod)

    # -- persistent volumes
    def set_volume(self, volume: dict[str, Any]) -> None:
        name = (volume.get("metadata") or {}).get("name", "")
        claim = (volume.get("spec") or {}).get("claimRef") or {}
        self.delete_volume(name)
        if claim.get("name"):
            self.volume_claims[name] = (claim.get("namespace", ""), claim["name"])
        secrets = volume_secret_references(volume)
        if secrets:
            self.volume_secrets[name] = frozenset(secrets)

    def delete_volume(self, name: str) -> None:
        self.volume_claims.pop(name, None)
        self.volume_secrets.pop(name, None)

    def replace_volumes(self, volumes: Iterable[dict[str, Any]]) -> None:
        self.volume_claims.clear()
        self.volume_secrets.clear()
        for volume in volumes:
            self.set_volume(volume)

    # -- questions
    def has_path(self, node: str, kind: str, namespace: str, name: str) -> bool:
        counter = self.reachable.get(node)
        if not counter:
            return False
        if kind == PV:
            claim = self.volume_claims.get(name)
            return claim is not None and counter.get((PVC, claim[0], claim[1]), 0) > 0
        if counter.get((kind, namespace, name), 0) > 0:
            return True
        if kind == SECRET:  # a Secret a bound claim's volume names
            for volume, secrets in self.volume_secrets.items():
                if (namespace, name) in secrets and self.has_path(node, PV, "", volume):
                    return True
        return False


# --------------------------------------------------------------------------- the authorizer

def _no_relationship(node: str) -> str:
    return f"no relationship found between node '{node}' and this object"


class NodeAuthorizer:
    """`authorize(attributes) -> (decision, reason)`, the chain's interface."""

    def __init__(self, graph: NodeGraph, rules: tuple[dict[str, Any], ...] = NODE_RULES):
        self.graph = graph
        self.rules = rules

    def authorize(self, attributes) -> tuple[str, str]:
        return authorize_node(attributes, self.graph, self.rules)


def authorize_node(attributes, graph: NodeGraph, rules: tuple[dict[str, Any], ...] = NODE_RULES) -> tuple[str, str]:
    is_node, node = node_identity(attributes.user)
    if not is_node:
        return NO_OPINION, ""
    if not node:
        return NO_OPINION, f'unknown node for user "{attributes.user.name}"'
    if attributes.resource_request:
        group, resource = attributes.api_group, attributes.resource
        if group == "":
            if resource == "secrets":
                return _read_namespaced(node, SECRET, attributes, graph)
            if resource == "configmaps":
                return _read_namespaced(node, CONFIGMAP, attributes, graph)
            if resource == "persistentvolumeclaims":
                if attributes.subresource == "status":
                    return _status_update(node, PVC, attributes, graph)
                return _get(node, PVC, attributes, graph)
            if resource == "persistentvolumes":
                return _get(node, PV, attributes, graph)
            if resource == "serviceaccounts":
                return _create_token(node, attributes, graph)
        elif group == "coordination.k8s.io" and resource == "leases":
            return _lease(node, attributes)
    if any(rule_allows(attributes, rule) for rule in rules):
        return ALLOW, ""
    return NO_OPINION, ""


def _related(node: str, kind: str, attributes, graph: NodeGraph) -> tuple[str, str]:
    if not attributes.name:
        return NO_OPINION, "No Object name found"
    if graph.has_path(node, kind, attributes.namespace, attributes.name):
        return ALLOW, ""
    # NoOpinion, as upstream: RBAC may still grant it (a binding to this node, say), and the
    # 403 carries the reason. system:node itself is bound to no node (bootstrappolicy.py).
    return NO_OPINION, _no_relationship(node)


def _read_namespaced(node: str, kind: str, attributes, graph: NodeGraph) -> tuple[str, str]:
    if attributes.verb not in ("get", "list", "watch"):
        return NO_OPINION, "can only read resources of this type"
    if attributes.subresource:
        return NO_OPINION, "cannot read subresource"
    if not attributes.namespace:
        return NO_OPINION, "can only read namespaced object of this type"
    return _related(node, kind, attributes, graph)


def _get(node: str, kind: str, attributes, graph: NodeGraph) -> tuple[str, str]:
    if attributes.verb != "get":
        return NO_OPINION, "can only get individual resources of this type"
    if attributes.subresource:
        return NO_OPINION, "cannot get subresource"
    return _related(node, kind, attributes, graph)


def _status_update(node: str, kind: str, attributes, graph: NodeGraph) -> tuple[str, str]:
    if attributes.verb not in ("get", "update", "patch"):
        return NO_OPINION, "can only get/update/patch this type"
    if attributes.subresource != "status":
        return NO_OPINION, "can only update status subresource"
    return _related(node, kind, attributes, graph)


def _create_token(node: str, attributes, graph: NodeGraph) -> tuple[str, str]:
    if attributes.verb != "create" or not attributes.name:
        return NO_OPINION, "can only create tokens for individual service accounts"
    if attributes.subresource != "token":
        return NO_OPINION, "can only create token subresource of serviceaccount"
    return _related(node, SERVICEACCOUNT, attributes, graph)


def _lease(node: str, attributes) -> tuple[str, str]:
    verb = attributes.verb
    if verb not in ("get", "create", "update", "patch", "delete"):
        return NO_OPINION, "can only get, create, update, patch, or delete a node lease"
    if attributes.namespace != NODE_LEASE_NAMESPACE:
        return NO_OPINION, f'can only access leases in the "{NODE_LEASE_NAMESPACE}" system namespace'
    # The name is unknown on create: NodeRestriction checks it there.
    if verb != "create" and attributes.name != node:
        return NO_OPINION, "can only access node lease with the same name as the requesting node"
    return ALLOW, ""


# --------------------------------------------------------------------------- feeding it

PODS = lookup("", "v1", "pods")
PERSISTENT_VOLUMES = lookup("", "v1", "persistentvolumes")


class GraphPopulator:
    """Keeps a NodeGraph current from the registry: list, then watch from the list's
    revision; a watch that ends resumes from the last revision seen, a 410 relists."""

    def __init__(self, registry, graph: NodeGraph):
        self.registry = registry
        self.graph = graph
        self.synced = asyncio.Event()
        self._synced_kinds: set[str] = set()
        self._tasks: list[asyncio.Task] = []

    def start(self) -> None:
        self._tasks = [asyncio.create_task(self._run(PODS), name="node-graph-pods"),
                       asyncio.create_task(self._run(PERSISTENT_VOLUMES), name="node-graph-pvs")]

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks.clear()

    def _replace(self, resource, items: list[dict[str, Any]]) -> None:
        if resource is PODS:
            self.graph.replace_pods(items)
        else:
            self.graph.replace_volumes(items)

    def _apply(self, resource, event_type: str, obj: dict[str, Any]) -> None:
        meta = obj.get("metadata") or {}
        if resource is PODS:
            if event_type == "DELETED":
                self.graph.delete_pod((meta.get("namespace", ""), meta.get("name", "")))
            else:
                self.graph.set_pod(obj)
        elif event_type == "DELETED":
            self.graph.delete_volume(meta.get("name", ""))
        else:
            self.graph.set_volume(obj)

    async def _run(self, resource) -> None:
        from pyk8s.apiserver.registry import ListOptions
        from pyk8s.apiserver.watch import RawObject, WatchOptions, watch_events

        revision = ""
        while True:
            try:
                if not revision:
                    items, listed_at, _, _ = await self.registry.list(resource, None, ListOptions())
                    self._replace(resource, items)
                    revision = str(listed_at)
                    self._synced_kinds.add(resource.plural)
                    if len(self._synced_kinds) == 2:
                        self.synced.set()
                events = watch_events(self.registry, resource, None, ListOptions(),
                                      WatchOptions(resource_version=revision, allow_bookmarks=True))
                try:
                    async for batch in events:
                        for event_type, obj in batch:
                            if isinstance(obj, RawObject):
                                obj = obj.decode()
                            if event_type == "ERROR":
                                revision = ""  # 410 Gone: relist
                                break
                            revision = (obj.get("metadata") or {}).get("resourceVersion") or revision
                            if event_type != "BOOKMARK":
                                self._apply(resource, event_type, obj)
                        if not revision:
                            break
                finally:
                    await events.aclose()
            except asyncio.CancelledError:
                raise
            except errors.Gone:
                revision = ""
            except Exception:  # noqa: BLE001 - keep the graph alive; relist after a pause
                log.exception("node graph: watching %s failed", resource.plural)
                revision = ""
                await asyncio.sleep(1.0)


async def install(apiserver) -> None:
    """Start the graph of `apiserver.registry` and put the Node authorizer in front of RBAC
    (upstream's --authorization-mode=Node,RBAC)."""
    graph = NodeGraph()
    populator = GraphPopulator(apiserver.registry, graph)
    populator.start()
    apiserver.node_graph, apiserver.node_graph_populator = graph, populator
    apiserver.node_authorizer = NodeAuthorizer(graph)
    authorization = getattr(apiserver, "authorization", None)
    if authorization is not None and hasattr(authorization, "set_node_authorizer"):
        authorization.set_node_authorizer(apiserver.node_authorizer)
    try:
        await asyncio.wait_for(populator.synced.wait(), timeout=30)
    except asyncio.TimeoutError:
        log.warning("node graph: not synced after 30 s; nodes are refused their objects until it is")
