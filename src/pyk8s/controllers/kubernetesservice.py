"""The `kubernetes` Service keeper (upstream pkg/controlplane/controller/kubernetesservice and
the endpoints reconciler the API server runs).

Keeps three objects in `default` as the API servers publish themselves to pods:
- Service `kubernetes`: ClusterIP 10.43.0.1 (the first address of the service CIDR, always
  requested explicitly, so a deleted Service comes back with the same IP), port 443 named
  `https` with targetPort the API server's secure port, no selector;
- Endpoints `kubernetes`: every live server's advertise address and secure port, labelled
  skip-mirror (this keeper, not the mirroring controller, writes the slice);
- EndpointSlice `kubernetes`: the same addresses, ready.

Which servers are live follows upstream's lease endpoint reconciler
(--endpoint-reconciler-type=lease): every server runs this keeper, which keeps a Lease of
its own, `kube-system/apiserver-<hash of its endpoint>` (labelled like upstream's
apiserver identity leases, its `address:port` in an annotation), renewed at every
reconcile, with upstream's master lease TTL of 15 s. The endpoints list the servers whose
lease has not expired. A server that stops cleanly deletes its lease and takes itself out;
one that dies drops out when its lease expires (at most TTL + one reconcile interval).

A missing object is re-created and a changed one put back, on any watch event for one of
them and every 10 s (upstream's reconcile interval). Upstream runs this inside the API
server; here it is a client of the API like the controllers, started by the control-plane
process, which knows the advertise address and port.
"""

from __future__ import annotations

import copy
import datetime
import hashlib
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
LEASES = lookup("coordination.k8s.io", "v1", "leases")

NAMESPACE = "default"
NAME = "kubernetes"
KEY = f"{NAMESPACE}/{NAME}"
# Upstream's endpoint reconcile interval.
RECONCILE_INTERVAL = 10.0
SERVICE_LABELS = {"component": "apiserver", "provider": "kubernetes"}
# Upstream's master lease TTL (lease endpoint reconciler).
LEASE_TTL = 15
LEASE_NAMESPACE = "kube-system"
LEASE_LABEL = "apiserver.kubernetes.io/identity"
LEASE_LABEL_VALUE = "kube-apiserver"
ENDPOINT_ANNOTATION = "pyk8s.io/apiserver-endpoint"


def apiserver_lease_name(address: str, secure_port: int) -> str:
    digest = hashlib.sha256(f"{address}:{secure_port}".encode()).hexdigest()[:16]
    return f"apiserver-{digest}"


def _parse_time(text: str | None) -> datetime.datetime | None:
    if not text:
        return None
    try:
        return datetime.datetime.strptime(text.replace("Z", "+0000"), "%Y-%m-%dT%H:%M:%S.%f%z")
    except ValueError:
        try:
            return datetime.datetime.strptime(text.replace("Z", "+0000"), "%Y-%m-%dT%H:%M:%S%z")
        except ValueError:
            return None


def live_endpoints(leases: list[dict[str, Any]], now: datetime.datetime) -> list[tuple[str, int]]:
    """(address, port) of every server whose lease has not expired, sorted."""
    live = set()
    for lease in leases:
        meta = lease.get("metadata") or {}
        if (meta.get("labels") or {}).get(LEASE_LABEL) != LEASE_LABEL_VALUE:
            continue
        endpoint = (meta.get("annotations") or {}).get(ENDPOINT_ANNOTATION, "")
        host, _, port = endpoint.rpartition(":")
        renewed = _parse_time((lease.get("spec") or {}).get("renewTime"))
        duration = (lease.get("spec") or {}).get("leaseDurationSeconds") or LEASE_TTL
        if not host or not port.isdigit() or renewed is None:
            continue
        if renewed + datetime.timedelta(seconds=duration) > now:
            live.add((host.strip("[]"), int(port)))
    return sorted(live)


def desired_service_ports(secure_port: int) -> list[dict[str, Any]]:
    return [{"name": "https", "port": 443, "protocol": "TCP", "targetPort": secure_port}]


def kubernetes_service(cluster_ip: str, secure_port: int) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Service",
            "metadata": {"name": NAME, "namespace": NAMESPACE, "labels": dict(SERVICE_LABELS)},
            "spec": {"type": "ClusterIP", "clusterIP": cluster_ip,
                     "ports": desired_service_ports(secure_port), "sessionAffinity": "None"}}


def kubernetes_endpoints_subsets(endpoints: list[tuple[str, int]]) -> list[dict[str, Any]]:
    """One subset per port (servers normally share one), addresses sorted."""
    by_port: dict[int, list[str]] = {}
    for address, port in sorted(endpoints):
        by_port.setdefault(port, []).append(address)
    return [{"addresses": [{"ip": address} for address in addresses],
             "ports": [{"name": "https", "port": port, "protocol": "TCP"}]}
            for port, addresses in sorted(by_port.items())]


def kubernetes_endpoint_slice_body(endpoints: list[tuple[str, int]]) -> dict[str, Any]:
    """The slice of the most common port's servers (a slice has one port list)."""
    ports = [port for _, port in endpoints]
    port = max(sorted(set(ports)), key=ports.count)
    addresses = sorted(address for address, p in endpoints if p == port)
    return {"addressType": util.ip_family(addresses[0]) or "IPv4",
            "endpoints": [{"addresses": [address], "conditions": {"ready": True}} for address in addresses],
            "ports": [{"name": "https", "port": port, "protocol": "TCP"}]}


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
        self.leases = self.informer(LEASES, namespace=LEASE_NAMESPACE,
                                    label_selector=f"{LEASE_LABEL}={LEASE_LABEL_VALUE}")
        self.lease_name = apiserver_lease_name(address, secure_port)
        for informer in (self.services, self.endpoints, self.slices, self.leases):
            informer.add_handlers(on_add=self._changed, on_update=lambda old, new: self._changed(new),
                                  on_delete=self._changed)

    def _changed(self, _obj: dict[str, Any]) -> None:
        self.queue.add(KEY)

    async def on_synced(self) -> None:
        self.queue.add(KEY)

    async def reconcile(self, key: str) -> None:
        await self._renew_own_lease()
        await self._ensure_service()
        endpoints = self._live_endpoints()
        await self._ensure_endpoints(endpoints)
        await self._ensure_endpoint_slice(endpoints)
        raise Requeue(RECONCILE_INTERVAL)

    def _live_endpoints(self) -> list[tuple[str, int]]:
        now = datetime.datetime.now(datetime.timezone.utc)
        endpoints = set(live_endpoints(self.leases.list(LEASE_NAMESPACE), now))
        endpoints.add((self.address, self.secure_port))  # this server is live: it is running this
        return sorted(endpoints)

    async def _renew_own_lease(self) -> None:
        """Create or renew this server's lease when it is older than half a reconcile
        interval (events for other objects reconcile too, and need not write it)."""
        now = datetime.datetime.now(datetime.timezone.utc)
        stamp = now.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        current = self.leases.get(f"{LEASE_NAMESPACE}/{self.lease_name}")
        spec = {"holderIdentity": self.lease_name, "leaseDurationSeconds": LEASE_TTL, "renewTime": stamp}
        if current is None:
            try:
                await self.client.create(LEASES, {
                    "apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
                    "metadata": {"name": self.lease_name, "namespace": LEASE_NAMESPACE,
                                 "labels": {LEASE_LABEL: LEASE_LABEL_VALUE},
                                 "annotations": {ENDPOINT_ANNOTATION: f"{self.address}:{self.secure_port}"}},
                    "spec": dict(spec, acquireTime=stamp)}, LEASE_NAMESPACE)
            except errors.AlreadyExists:
                pass
            return
        renewed = _parse_time((current.get("spec") or {}).get("renewTime"))
        if renewed is not None and now - renewed < datetime.timedelta(seconds=RECONCILE_INTERVAL / 2):
            return
        updated = copy.deepcopy(current)
        updated["spec"] = dict(updated.get("spec") or {}, **spec)
        updated["metadata"].setdefault("annotations", {})[ENDPOINT_ANNOTATION] = f"{self.address}:{self.secure_port}"
        await self.client.update(LEASES, updated)

    async def stop(self) -> None:
        """Take this server out of the endpoints (upstream's RemoveEndpoints at shutdown)
        when others remain, and delete its lease."""
        try:
            await self.client.delete(LEASES, self.lease_name, LEASE_NAMESPACE)
        except Exception:  # noqa: BLE001 - it then expires
            pass
        try:
            now = datetime.datetime.now(datetime.timezone.utc)
            others = [e for e in live_endpoints(self.leases.list(LEASE_NAMESPACE), now)
                      if e != (self.address, self.secure_port)]
            if others:
                await self._ensure_endpoints(others)
                await self._ensure_endpoint_slice(others)
        except Exception as error:  # noqa: BLE001 - the others' keepers repair it
            log.warning("could not remove this server from the kubernetes endpoints: %s", error)
        await super().stop()

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

    async def _ensure_endpoints(self, endpoints: list[tuple[str, int]]) -> None:
        subsets = kubernetes_endpoints_subsets(endpoints)
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

    async def _ensure_endpoint_slice(self, endpoints: list[tuple[str, int]]) -> None:
        body = kubernetes_endpoint_slice_body(endpoints)
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
