"""Objects every cluster has from the start, created at API server start when missing:
the system namespaces and the `kubernetes` Service in `default` with its endpoints
(upstream's bootstrap controllers do the same)."""

from __future__ import annotations

from typing import Any

from pyk8s.api import errors
from pyk8s.api.resources import lookup

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
