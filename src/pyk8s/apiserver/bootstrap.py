"""Objects every cluster has from the start, created at API server start when missing:
the system namespaces and the `kubernetes` Service in `default` with its endpoints
(upstream's bootstrap controllers do the same), and the default StorageClass `local-path`
(k3s's bundled local-storage manifest). The control-plane process then adds what
nodes join with (`ensure_cluster_info`, `ensure_node_join_token`), as `kubeadm init` does."""

from __future__ import annotations

import base64
import secrets
from typing import Any

import yaml

from pyk8s.api import errors
from pyk8s.api.resources import lookup
from pyk8s.apiserver import authn
from pyk8s.apiserver.registry import ListOptions

SYSTEM_NAMESPACES = ("default", "kube-system", "kube-public", "kube-node-lease")


async def _ensure(registry, resource, namespace: str | None, obj: dict[str, Any]) -> None:
    try:
        await registry.get(resource, namespace, obj["metadata"]["name"])
        return
    except errors.NotFound:
        pass
    try:
        await registry.create(resource, namespace, obj)
    except errors.AlreadyExists:
        pass


async def bootstrap(registry, config) -> None:
    namespaces = lookup("", "v1", "namespaces")
    for name in SYSTEM_NAMESPACES:
        await _ensure(registry, namespaces, None, {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})

    address = config.resolved_advertise_address()
    port = config.https_port
    labels = {"component": "apiserver", "provider": "kubernetes"}
    await _ensure(registry, lookup("", "v1", "services"), "default", {
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": "kubernetes", "namespace": "default", "labels": labels},
        "spec": {"type": "ClusterIP", "clusterIP": config.kubernetes_service_ip(),
                 "ports": [{"name": "https", "port": 443, "protocol": "TCP", "targetPort": port}],
                 "sessionAffinity": "None"},
    })
    await _ensure(registry, lookup("", "v1", "endpoints"), "default", {
        "apiVersion": "v1", "kind": "Endpoints",
        "metadata": {"name": "kubernetes", "namespace": "default",
                     "labels": {"endpointslice.kubernetes.io/skip-mirror": "true"}},
        "subsets": [{"addresses": [{"ip": address}],
                     "ports": [{"name": "https", "port": port, "protocol": "TCP"}]}],
    })
    await _ensure(registry, lookup("discovery.k8s.io", "v1", "endpointslices"), "default", {
        "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
        "metadata": {"name": "kubernetes", "namespace": "default",
                     "labels": {"kubernetes.io/service-name": "kubernetes"}},
        "addressType": "IPv4",
        "endpoints": [{"addresses": [address], "conditions": {"ready": True}}],
        "ports": [{"name": "https", "port": port, "protocol": "TCP"}],
    })
    await _ensure(registry, lookup("storage.k8s.io", "v1", "storageclasses"), None, default_storage_class())


# The built-in dynamic provisioner, run by every node's agent (pyk8s.provisioner). Not k3s's
# `rancher.io/local-path`: Rancher's own local-path-provisioner, which people install on
# clusters, would then act on the same claims as ours.
LOCAL_PATH_PROVISIONER = "pyk8s.io/local-path"
DEFAULT_STORAGE_CLASS = "local-path"


def default_storage_class() -> dict[str, Any]:
    """The one default class, as k3s's local-storage manifest makes it (created when missing:
    a class the user changed or un-defaulted is left as it is)."""
    return {"apiVersion": "storage.k8s.io/v1", "kind": "StorageClass",
            "metadata": {"name": DEFAULT_STORAGE_CLASS,
                         "annotations": {"storageclass.kubernetes.io/is-default-class": "true"}},
            "provisioner": LOCAL_PATH_PROVISIONER, "reclaimPolicy": "Delete",
            "volumeBindingMode": "WaitForFirstConsumer"}


# --- what nodes join with ---------------------------------------------------------------

CONFIGMAPS = lookup("", "v1", "configmaps")
NODE_TOKEN_DESCRIPTION = "pyk8s node join token"
# kubeadm's default token carries system:bootstrappers:kubeadm:default-node-token.
NODE_TOKEN_GROUP = "system:bootstrappers:pyk8s:default-node-token"
TOKEN_ALPHABET = "0123456789abcdefghijklmnopqrstuvwxyz"


def cluster_info_kubeconfig(server_url: str, ca_pem: bytes) -> str:
    """kubeadm's cluster-info kubeconfig: one unnamed cluster (CA and server URL), no
    users, no credentials."""
    return yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "preferences": {},
        "clusters": [{"name": "", "cluster": {
            "certificate-authority-data": base64.b64encode(ca_pem).decode("ascii"),
            "server": server_url}}],
        "contexts": None, "current-context": "", "users": None,
    }, default_flow_style=False, sort_keys=False)


async def ensure_cluster_info(registry, server_url: str, ca_pem: bytes) -> None:
    """ConfigMap kube-public/cluster-info, readable anonymously: a joining node fetches it
    without trusting the server, then checks the CA against the hash in its token."""
    kubeconfig = cluster_info_kubeconfig(server_url, ca_pem)
    try:
        await registry.create(CONFIGMAPS, authn.CLUSTER_INFO_NAMESPACE, {
            "apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": authn.CLUSTER_INFO_NAME, "namespace": authn.CLUSTER_INFO_NAMESPACE},
            "data": {"kubeconfig": kubeconfig}})
        return
    except errors.AlreadyExists:
        pass

    def with_kubeconfig(current: dict[str, Any]) -> dict[str, Any]:
        current.setdefault("data", {})["kubeconfig"] = kubeconfig
        return current
    current = await registry.get(CONFIGMAPS, authn.CLUSTER_INFO_NAMESPACE, authn.CLUSTER_INFO_NAME)
    if (current.get("data") or {}).get("kubeconfig") != kubeconfig:  # a new address or CA
        await registry.modify(CONFIGMAPS, authn.CLUSTER_INFO_NAMESPACE, authn.CLUSTER_INFO_NAME, with_kubeconfig)


def _random_token_part(length: int) -> str:
    return "".join(secrets.choice(TOKEN_ALPHABET) for _ in range(length))


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode("ascii")


def bootstrap_token_secret(token_id: str, token_secret: str, *, description: str,
                           extra_groups: list[str], expiration: str = "") -> dict[str, Any]:
    """A bootstrap-token Secret as `kubeadm token create` writes it, for authentication
    only (nothing signs cluster-info here: the CA hash in the node token pins it)."""
    data = {"token-id": _b64(token_id), "token-secret": _b64(token_secret), "description": _b64(description),
            "usage-bootstrap-authentication": _b64("true")}
    if extra_groups:
        data["auth-extra-groups"] = _b64(",".join(extra_groups))
    if expiration:
        data["expiration"] = _b64(expiration)
    return {"apiVersion": "v1", "kind": "Secret", "type": authn.BOOTSTRAP_TOKEN_TYPE,
            "metadata": {"name": authn.bootstrap_token_secret_name(token_id),
                         "namespace": authn.BOOTSTRAP_TOKEN_NAMESPACE},
            "data": data}


async def ensure_node_join_token(registry) -> str:
    """The `<id>.<secret>` of the cluster's node join token: the existing one (so a restart
    keeps tokens handed out earlier valid), or a new non-expiring one. Deleting its Secret
    revokes it; the next start mints another."""
    secrets_resource = authn.SECRETS
    listed, _, _, _ = await registry.list(secrets_resource, authn.BOOTSTRAP_TOKEN_NAMESPACE, ListOptions())
    for secret in sorted(listed, key=lambda s: s["metadata"]["name"]):
        if secret.get("type") != authn.BOOTSTRAP_TOKEN_TYPE:
            continue
        if authn.secret_string(secret, "description") != NODE_TOKEN_DESCRIPTION:
            continue
        token_id = authn.secret_string(secret, "token-id") or ""
        token_secret = authn.secret_string(secret, "token-secret") or ""
        user = authn.bootstrap_token_user(secret, token_id, token_secret, authn.now_utc())
        if user is not None and NODE_TOKEN_GROUP in user.groups and authn.TOKEN_PATTERN.fullmatch(f"{token_id}.{token_secret}"):
            return f"{token_id}.{token_secret}"
    while True:
        token_id, token_secret = _random_token_part(6), _random_token_part(16)
        try:
            await registry.create(secrets_resource, authn.BOOTSTRAP_TOKEN_NAMESPACE, bootstrap_token_secret(
                token_id, token_secret, description=NODE_TOKEN_DESCRIPTION, extra_groups=[NODE_TOKEN_GROUP]))
        except errors.AlreadyExists:  # an id taken by another token: draw again
            continue
        return f"{token_id}.{token_secret}"
