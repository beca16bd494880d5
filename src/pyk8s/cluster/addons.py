"""Objects the server applies at every start, like k3s's bundled manifests: the cluster
DNS (ServiceAccount, its ClusterRole and binding when RBAC is served, Service `kube-dns`,
Deployment `coredns`).

The DNS (pyk8s.dns) runs on the pod network as 2 replicas of Deployment
kube-system/coredns (labels `k8s-app: kube-dns`, as k3s and kubeadm name it). Two, as
kubeadm runs CoreDNS, not k3s's one: a rolling update or a crash of one replica leaves
names resolving; the scheduler's default spreading puts them on different nodes when there
are several, and on a single node they cost ~2 x 30 MB. Readiness is CoreDNS's
`/ready` on 8181 (informers synced), liveness `/health` on 8080, metrics on 9153.

How the DNS pods reach the API: as in-cluster clients, like any pod. They run as
ServiceAccount kube-system/coredns, so the ServiceAccount admission plugin gives them the
projected token, ca.crt and namespace files, and the kubelet the KUBERNETES_SERVICE_HOST/PORT
of the `kubernetes` Service (whose endpoint is the server's advertise address, or, when the
server listens on loopback only (isolated namespaces, tests), its pod gateway address
relayed to the loopback API: see cluster/server.py). The Secret that held a client
certificate before tokens existed (`coredns-api-credentials`) is deleted at start.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import socket
from typing import Any

from pyk8s.api import errors
from pyk8s.api.resources import lookup

log = logging.getLogger("pyk8s.addons")
NAMESPACE = "kube-system"
DNS_LABELS = {"k8s-app": "kube-dns"}
OLD_CREDENTIALS_SECRET = "coredns-api-credentials"  # pyk8s before ServiceAccount tokens
APPLIED_HASH = "pyk8s.io/applied-hash"
IP_FREEBIND = 15  # linux/in.h: listen on an address the bridge gets only with the first pod


def dns_objects(*, image: str, dns_ip: str, zone: str, replicas: int = 2) -> list[tuple[Any, dict[str, Any]]]:
    """(resource, object) pairs of the DNS add-on, in the order they are applied."""
    container = {
        "name": "coredns", "image": image, "imagePullPolicy": "IfNotPresent",
        "args": ["--zone", zone, "--dns-ip", dns_ip],
        "ports": [{"name": "dns", "containerPort": 53, "protocol": "UDP"},
                  {"name": "dns-tcp", "containerPort": 53, "protocol": "TCP"},
                  {"name": "metrics", "containerPort": 9153, "protocol": "TCP"}],
        "resources": {"requests": {"cpu": "100m", "memory": "70Mi"}, "limits": {"memory": "170Mi"}},
        "readinessProbe": {"httpGet": {"path": "/ready", "port": 8181, "scheme": "HTTP"}, "periodSeconds": 2,
                           "timeoutSeconds": 1, "successThreshold": 1, "failureThreshold": 3},
        "livenessProbe": {"httpGet": {"path": "/health", "port": 8080, "scheme": "HTTP"}, "initialDelaySeconds": 60,
                          "periodSeconds": 10, "timeoutSeconds": 1, "successThreshold": 1, "failureThreshold": 3},
    }
    deployment = {
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "coredns", "namespace": NAMESPACE, "labels": {**DNS_LABELS, "kubernetes.io/name": "CoreDNS"}},
        "spec": {
            "replicas": replicas, "revisionHistoryLimit": 0,
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 1}},
            "selector": {"matchLabels": dict(DNS_LABELS)},
            "template": {
                "metadata": {"labels": dict(DNS_LABELS)},
                "spec": {"serviceAccountName": "coredns", "dnsPolicy": "Default",
                         "nodeSelector": {"kubernetes.io/os": "linux"},
                         "tolerations": [{"key": "CriticalAddonsOnly", "operator": "Exists"},
                                         {"key": "node-role.kubernetes.io/control-plane", "operator": "Exists",
                                          "effect": "NoSchedule"}],
                         "containers": [container]}},
        },
    }
    service = {
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": "kube-dns", "namespace": NAMESPACE,
                     "labels": {**DNS_LABELS, "kubernetes.io/cluster-service": "true", "kubernetes.io/name": "CoreDNS"},
                     "annotations": {"prometheus.io/port": "9153", "prometheus.io/scrape": "true"}},
        "spec": {"selector": dict(DNS_LABELS), "clusterIP": dns_ip, "clusterIPs": [dns_ip],
                 "ports": [{"name": "dns", "port": 53, "protocol": "UDP", "targetPort": 53},
                           {"name": "dns-tcp", "port": 53, "protocol": "TCP", "targetPort": 53},
                           {"name": "metrics", "port": 9153, "protocol": "TCP", "targetPort": 9153}]},
    }
    account = {"apiVersion": "v1", "kind": "ServiceAccount",
               "metadata": {"name": "coredns", "namespace": NAMESPACE, "labels": dict(DNS_LABELS)}}
    objects = [(lookup("", "v1", "serviceaccounts"), account)]
    cluster_roles = lookup("rbac.authorization.k8s.io", "v1", "clusterroles")
    if cluster_roles is not None:
        # What the DNS reads, as k3s's coredns manifest grants it (ClusterRole system:coredns).
        rbac_meta = {"name": "system:coredns", "labels": {"kubernetes.io/bootstrapping": "rbac-defaults"},
                     "annotations": {"rbac.authorization.kubernetes.io/autoupdate": "true"}}
        objects += [
            (cluster_roles, {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole", "metadata": rbac_meta,
                             "rules": [{"apiGroups": [""], "resources": ["endpoints", "services", "pods", "namespaces"],
                                        "verbs": ["list", "watch"]},
                                       {"apiGroups": ["discovery.k8s.io"], "resources": ["endpointslices"],
                                        "verbs": ["list", "watch"]}]}),
            (lookup("rbac.authorization.k8s.io", "v1", "clusterrolebindings"),
             {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding", "metadata": rbac_meta,
              "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "system:coredns"},
              "subjects": [{"kind": "ServiceAccount", "name": "coredns", "namespace": NAMESPACE}]})]
    return objects + [(lookup("", "v1", "services"), service), (lookup("apps", "v1", "deployments"), deployment)]


async def delete_old_credentials(client) -> None:
    """The client-certificate Secret the DNS pods used before ServiceAccount tokens."""
    try:
        await client.delete(lookup("", "v1", "secrets"), OLD_CREDENTIALS_SECRET, NAMESPACE)
        log.info("deleted Secret %s/%s (the DNS pods use their ServiceAccount token now)", NAMESPACE,
                 OLD_CREDENTIALS_SECRET)
    except errors.NotFound:
        pass


async def apply_objects(client, objects: list[tuple[Any, dict[str, Any]]]) -> None:
    """Create what is missing (re-creating what was deleted), replace what differs from its
    manifest (by a hash of the manifest kept in an annotation), leave the rest alone."""
    for resource, obj in objects:
        digest = hashlib.sha256(json.dumps(obj, sort_keys=True).encode()).hexdigest()[:16]
        desired = json.loads(json.dumps(obj))
        desired["metadata"].setdefault("annotations", {})[APPLIED_HASH] = digest
        meta = desired["metadata"]
        where = f'{meta["namespace"]}/{meta["name"]}' if "namespace" in meta else meta["name"]
        try:
            current = await client.get(resource, meta["name"], meta.get("namespace"))
        except errors.NotFound:
            try:
                await client.create(resource, desired)
                log.info("created %s %s", resource.kind, where)
            except errors.AlreadyExists:
                pass
            continue
        if (current["metadata"].get("annotations") or {}).get(APPLIED_HASH) == digest:
            continue
        if resource.plural == "services":
            continue  # clusterIP and ports are what clients already use: never replaced
        desired["metadata"]["resourceVersion"] = current["metadata"]["resourceVersion"]
        try:
            await client.update(resource, desired)
            log.info("updated %s %s", resource.kind, where)
        except errors.Conflict:
            log.warning("%s %s changed while applying; next start applies it", resource.kind, where)


class LoopbackRelay:
    """Accepts on (address, port) and copies bytes to and from 127.0.0.1:target_port."""

    def __init__(self, address: str, port: int, target_port: int, target_host: str = "127.0.0.1"):
        self.address, self.port = address, port
        self.target = (target_host, target_port)
        self._server: asyncio.AbstractServer | None = None

    async def start(self) -> None:
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.setsockopt(socket.IPPROTO_IP, IP_FREEBIND, 1)
        listener.bind((self.address, self.port))
        listener.setblocking(False)
        self._server = await asyncio.start_server(self._relay, sock=listener)

    async def _relay(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            upstream_reader, upstream_writer = await asyncio.open_connection(*self.target)
        except OSError:
            writer.close()
            return

        async def copy(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
            try:
                while data := await source.read(65536):
                    sink.write(data)
                    await sink.drain()
            except (ConnectionError, OSError):
                pass
            finally:
                sink.close()
        await asyncio.gather(copy(reader, upstream_writer), copy(upstream_reader, writer))

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
