"""The `kubernetes` Service keeper (upstream pkg/controlplane/controller/kubernetesservice and
the endpoints reconciler the API server runs).

Keeps three objects in `default` as the API server publishes itself to pods:
- Service `kubernetes`: ClusterIP 10.43.0.1 (the first address of the service CIDR, always
  requested explicitly, so a deleted Service comes back with the same IP), port 443 named
  `https` with targetPort the API server's secure port, no selector;
- Endpoints `kubernetes`: the advertise address and secure port, labelled skip-mirror (this
  keeper, not the mirroring controller, writes the slice);
- EndpointSlice `kubernetes`: the same address, ready.

A missing object is re-created and a changed one put back, on any watch event for one of
them and every 10 s (upstream's reconcile interval). Upstream runs this inside the API
server; here it is a client of the API like the controllers, started by the control-plane
process, which knows the advertise address and port.
"""

from __future__ import annotations

import copy
import logging
from typing import Any

from pyk8s.api import errors
from pyk8s.api.resources import lookup
from pyk8s.controllers import endpointutil as util
from pyk8s.controllers.base import Controller, Requeue

log = logging.getLogger("pyk8s.controllers.kubernetesservice")

SERVICES = lookup("", "v1", "services")
ENDPOINTS = lookup("", "v1", "endpoints")
ENDPOINT_SLICES = lookup("discovery.k8s.io", "v1", "endpointslices")

NAMESPACE = "default"
NAME = "kubernetes"
KEY = f"{NAMESPACE}/{NAME}"
# Upstream's endpoint reconcile interval.
RECONCILE_INTERVAL = 10.0
SERVICE_LABELS = {"component": "apiserver", "provider": "kubernetes"}


def desired_service_ports(secure_port: int) -> list[dict[str, Any]]:
    return [{"name": "https", "port": 443, "protocol": "TCP", "targetPort": secure_port}]


def kubernetes_service(cluster_ip: str, secure_port: int) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Service",
            "metadata": {"name": NAME, "namespace": NAMESPACE, "labels": dict(SERVICE_LABELS)},
            "spec": {"type": "ClusterIP", "clusterIP": cluster_ip,
                     "ports": desired_service_ports(secure_port), "sessionAffinity": "None"}}


def kubernetes_endpoints_subsets(address: str, secure_port: int) -> list[dict[str, Any]]:
    return [{"addresses": [{"ip": address}], "ports": [{"name": "https", "port": secure_port, "protocol": "TCP"}]}]


def kubernetes_endpoint_slice_body(address: str, secure_port: int) -> dict[str, Any]:
    return {"addressType": util.ip_family(address) or "IPv4",
            "endpoints": [{"addresses": [address], "conditions": {"ready": True}}],
            "ports": [{"name": "https", "port": secure_port, "protocol": "TCP"}]}


def service_needs_update(service: dict[str, Any], secure_port: int) -> dict[str, Any] | None:
    """The Service with its ports and type put back (upstream
    getMasterServiceUpdateIfNeeded), or None when they are as they should be."""
    spec = service.get("spec") or {}
    wanted = desired_service_ports(secure_port)
    ports = spec.get("ports") or []
    ports_ok = (len(ports) == 1 and all(ports[0].get(k) == v for k, v in wanted[0].items()))
    if ports_ok and spec.get("type") == "ClusterIP":
        return None
    updated = copy.deepcopy(service)
    updated["spec"]["ports"] = wanted
    updated["spec"]["type"] = "ClusterIP"
    return updated


class KubernetesServiceController(Controller):
    name = "kubernetes-service-controller"

    def __init__(self, client, *, cluster_ip: str, address: str, secure_port: int):
        super().__init__(client)
        self.cluster_ip = cluster_ip
        self.address = address
        self.secure_port = secure_port
        selector = f"metadata.name={NAME}"
        self.services = self.informer(SERVICES, namespace=NAMESPACE, field_selector=selector)
        self.endpoints = self.informer(ENDPOINTS, namespace=NAMESPACE, field_selector=selector)
        self.slices = self.informer(ENDPOINT_SLICES, namespace=NAMESPACE, field_selector=selector)
        for informer in (self.services, self.endpoints, self.slices):
            informer.add_handlers(on_add=self._changed, on_update=lambda old, new: self._changed(new),
                                  on_delete=self._changed)

    def _changed(self, _obj: dict[str, Any]) -> None:
        self.queue.add(KEY)

    async def on_synced(self) -> None:
        self.queue.add(KEY)

    async def reconcile(self, key: str) -> None:
        await self._ensure_service()
        await self._ensure_endpoints()
        await self._ensure_endpoint_slice()
        raise Requeue(RECONCILE_INTERVAL)

    async def _ensure_service(self) -> None:
        service = self.services.get(KEY)
        if service is None:
            try:
                await self.client.create(SERVICES, kubernetes_service(self.cluster_ip, self.secure_port), NAMESPACE)
                log.info("created service %s with cluster IP %s", KEY, self.cluster_ip)
            except errors.AlreadyExists:
                pass  # our cache is behind: the next event brings it
            return
        updated = service_needs_update(service, self.secure_port)
        if updated is not None:
            await self.client.update(SERVICES, updated)

    async def _ensure_endpoints(self) -> None:
        subsets = kubernetes_endpoints_subsets(self.address, self.secure_port)
        current = self.endpoints.get(KEY)
        if current is None:
            try:
                await self.client.create(ENDPOINTS, {
                    "apiVersion": "v1", "kind": "Endpoints",
                    "metadata": {"name": NAME, "namespace": NAMESPACE, "labels": {util.LABEL_SKIP_MIRROR: "true"}},
                    "subsets": subsets}, NAMESPACE)
            except errors.AlreadyExists:
                pass
            return
        labels = current["metadata"].get("labels") or {}
        if current.get("subsets") == subsets and labels.get(util.LABEL_SKIP_MIRROR) == "true":
            return
        updated = copy.deepcopy(current)
        updated["subsets"] = subsets
        updated["metadata"]["labels"] = dict(labels, **{util.LABEL_SKIP_MIRROR: "true"})
        await self.client.update(ENDPOINTS, updated)

    async def _ensure_endpoint_slice(self) -> None:
        body = kubernetes_endpoint_slice_body(self.address, self.secure_port)
        current = self.slices.get(KEY)
        if current is None:
            try:
                await self.client.create(ENDPOINT_SLICES, {
                    "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
                    "metadata": {"name": NAME, "namespace": NAMESPACE, "labels": {util.LABEL_SERVICE_NAME: NAME}},
                    **body}, NAMESPACE)
            except errors.AlreadyExists:
                pass
            return
        labels = current["metadata"].get("labels") or {}
        if (all(current.get(k) == v for k, v in body.items()) and labels.get(util.LABEL_SERVICE_NAME) == NAME):
            return
        if current.get("addressType") != body["addressType"]:
            # addressType is immutable: replace the slice.
            await self.client.delete(ENDPOINT_SLICES, NAME, NAMESPACE)
            return
        updated = copy.deepcopy(current)
        updated.update(body)
        updated["metadata"]["labels"] = dict(labels, **{util.LABEL_SERVICE_NAME: NAME})
        await self.client.update(ENDPOINT_SLICES, updated)
