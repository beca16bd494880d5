"""The service load-balancer controller (k3s's ServiceLB idea, without its pods).

A Service of type LoadBalancer whose spec.loadBalancerClass is unset is served by the nodes
themselves (the node proxy answers on every node address for the Service's ports), so its
status.loadBalancer.ingress is the InternalIP addresses of the ready nodes: one entry per
address, each with only `ip`. Nodes labelled
`node.kubernetes.io/exclude-from-external-load-balancers` are left out, as upstream's
service controller does. Services with another loadBalancerClass belong to another
controller and are left alone; a Service that stops being a LoadBalancer has its ingress
cleared.

Informers: services (queue their key) and nodes (a node that comes, goes, changes address
or readiness queues every Service this controller writes).
"""

from __future__ import annotations

import ipaddress
import logging
from typing import Any

from pyk8s.api import errors
from pyk8s.api.resources import lookup
from pyk8s.client.events import EventRecorder
from pyk8s.client.informer import object_key
from pyk8s.controllers.base import Controller, split_key

log = logging.getLogger("pyk8s.controllers.servicelb")

SERVICES = lookup("", "v1", "services")
NODES = lookup("", "v1", "nodes")

EXCLUDE_LABEL = "node.kubernetes.io/exclude-from-external-load-balancers"


def node_is_ready(node: dict[str, Any]) -> bool:
    for condition in (node.get("status") or {}).get("conditions") or []:
        if condition.get("type") == "Ready":
            return condition.get("status") == "True"
    return False


def node_view(node: dict[str, Any]) -> tuple:
    """What of a node decides the ingress."""
    addresses = tuple((a.get("type"), a.get("address")) for a in (node.get("status") or {}).get("addresses") or [])
    return (node_is_ready(node), addresses, EXCLUDE_LABEL in (node["metadata"].get("labels") or {}))


def _ip_sort_key(ip: str) -> tuple:
    try:
        parsed = ipaddress.ip_address(ip)
        return (parsed.version, int(parsed))
    except ValueError:
        return (9, 0)


def ingress_for(service: dict[str, Any], nodes: list[dict[str, Any]]) -> list[dict[str, str]]:
    """The ingress entries of a LoadBalancer Service: the ready nodes' InternalIPs of the
    Service's IP families, sorted, each once."""
    families = set((service.get("spec") or {}).get("ipFamilies") or ["IPv4"])
    addresses = set()
    for node in nodes:
        if not node_is_ready(node) or EXCLUDE_LABEL in (node["metadata"].get("labels") or {}):
            continue
        for address in (node.get("status") or {}).get("addresses") or []:
            if address.get("type") != "InternalIP" or not address.get("address"):
                continue
            try:
                family = "IPv6" if ipaddress.ip_address(address["address"]).version == 6 else "IPv4"
            except ValueError:
                continue
            if family in families:
                addresses.add(address["address"])
    return [{"ip": ip} for ip in sorted(addresses, key=_ip_sort_key)]


def is_ours(service: dict[str, Any]) -> bool:
    spec = service.get("spec") or {}
    return spec.get("type") == "LoadBalancer" and not spec.get("loadBalancerClass")


def desired_ingress(service: dict[str, Any], nodes: list[dict[str, Any]]) -> list[dict[str, str]] | None:
    """The ingress to write, [] to clear it, or None to leave the Service alone."""
    spec = service.get("spec") or {}
    if spec.get("type") == "LoadBalancer":
        return ingress_for(service, nodes) if is_ours(service) else None
    return []


class ServiceLBController(Controller):
    name = "service-lb-controller"

    def __init__(self, client):
        super().__init__(client)
        self.services = self.informer(SERVICES)
        self.nodes = self.informer(NODES)
        self.recorder = EventRecorder(client, self.name)
        self.services.add_handlers(**self.enqueue_handlers())
        self.nodes.add_handlers(on_add=self._nodes_changed, on_delete=self._nodes_changed,
                                on_update=self._node_updated)

    def _nodes_changed(self, _node: dict[str, Any]) -> None:
        for service in self.services.list():
            if is_ours(service):
                self.enqueue(service)

    def _node_updated(self, old: dict[str, Any], new: dict[str, Any]) -> None:
        if node_view(old) != node_view(new):
            self._nodes_changed(new)

    async def reconcile(self, key: str) -> None:
        namespace, name = split_key(key)
        service = self.services.get(key)
        if service is None:
            return
        wanted = desired_ingress(service, self.nodes.list())
        if wanted is None:
            return
        current = ((service.get("status") or {}).get("loadBalancer") or {}).get("ingress") or []
        if current == wanted:
            return
        patch = {"status": {"loadBalancer": {"ingress": wanted or None}}}
        try:
            await self.client.patch(SERVICES, name, patch, namespace, subresource="status")
        except errors.NotFound:
            return
        if wanted:
            await self.recorder.event(service, "Normal", "UpdatedIngressIP",
                                      "LoadBalancer Ingress IP addresses updated: "
                                      + ", ".join(entry["ip"] for entry in wanted))
        log.debug("service %s ingress: %s", object_key(service), wanted)
