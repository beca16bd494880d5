"""The Node object and its heartbeat: registration, status, and the Lease.

Like upstream's kubelet node status manager: the Node is registered once (capacity,
allocatable, addresses, nodeInfo, podCIDR from the cluster CIDR when empty), its status is
rewritten when something changes or every `status_report_interval` (conditions carry a
lastHeartbeatTime), and the Lease `kube-node-lease/<node>` is renewed every 10 s; the node
lifecycle controller reads the Lease to tell a live node from a dead one.
"""

from __future__ import annotations

import asyncio
import copy
import datetime
import ipaddress
import logging
import os
import platform
import shutil
import socket
from pathlib import Path
from typing import Any, Awaitable, Callable

from pyk8s.api import errors
from pyk8s.api.resources import lookup
from pyk8s.hostnet import host_ipv4

log = logging.getLogger("pyk8s.kubelet.node")

NODES = lookup("", "v1", "nodes")
LEASES = lookup("coordination.k8s.io", "v1", "leases")
KUBELET_VERSION = "v1.36.0+pyk8s"
LEASE_DURATION_SECONDS = 40
LEASE_RENEW_SECONDS = 10
MAX_PODS = 110


def now_rfc3339() -> str:
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def now_micro() -> str:
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def default_node_ip() -> str:
    """The host's own address (see pyk8s.hostnet), else 127.0.0.1."""
    return host_ipv4() or "127.0.0.1"


def first_pod_cidr(cluster_cidr: str) -> str:
    """The first /24 of the cluster CIDR (a single node's share; upstream's node IPAM
    controller hands out one per node)."""
    network = ipaddress.ip_network(cluster_cidr, strict=False)
    return str(next(network.subnets(new_prefix=24)) if network.prefixlen < 24 else network)


def _memory_kib() -> int:
    with open("/proc/meminfo") as meminfo:
        for line in meminfo:
            if line.startswith("MemTotal:"):
                return int(line.split()[1])
    return 0


def _read(path: str, default: str = "") -> str:
    try:
        return Path(path).read_text().strip()
    except OSError:
        return default


def _os_image() -> str:
    for line in _read("/etc/os-release").splitlines():
        if line.startswith("PRETTY_NAME="):
            return line.split("=", 1)[1].strip('"')
    return "Linux"


class NodeStatusManager:
    def __init__(self, client, *, node_name: str, node_ip: str, pod_cidr: str, data_dir: Path,
                 kubelet_port: int, runtime_version: Callable[[], Awaitable[str]],
                 runtime_ready: Callable[[], Awaitable[bool]], labels: dict[str, str] | None = None,
                 status_report_interval: float = 60.0, lease_renew_interval: float = LEASE_RENEW_SECONDS):
        self.client = client
        self.node_name = node_name
        self.node_ip = node_ip
        self.pod_cidr = pod_cidr
        self.data_dir = Path(data_dir)
        self.kubelet_port = kubelet_port
        self.runtime_version = runtime_version
        self.runtime_ready = runtime_ready
        self.labels = labels or {}
        self.status_report_interval = status_report_interval
        self.lease_renew_interval = lease_renew_interval
        self._tasks: list[asyncio.Task] = []
        self._last_status: dict[str, Any] | None = None
        self._last_report = 0.0
        self.registered = asyncio.Event()

    def _capacity(self) -> dict[str, str]:
        disk = shutil.disk_usage(self.data_dir)
        return {"cpu": str(os.cpu_count() or 1), "memory": f"{_memory_kib()}Ki", "pods": str(MAX_PODS),
                "ephemeral-storage": f"{disk.total // 1024}Ki", "hugepages-2Mi": "0", "hugepages-1Gi": "0"}

    async def _status(self, previous_conditions: list[dict[str, Any]]) -> dict[str, Any]:
        ready = await self.runtime_ready()
        heartbeat = now_rfc3339()
        by_type = {condition["type"]: condition for condition in previous_conditions or []}

        def condition(kind: str, status: str, reason: str, message: str) -> dict[str, Any]:
            old = by_type.get(kind)
            transition = old["lastTransitionTime"] if old and old.get("status") == status else heartbeat
            return {"type": kind, "status": status, "lastHeartbeatTime": heartbeat,
                    "lastTransitionTime": transition, "reason": reason, "message": message}

        capacity = self._capacity()
        return {
            "capacity": capacity,
            "allocatable": dict(capacity),
            "conditions": [
                condition("MemoryPressure", "False", "KubeletHasSufficientMemory", "kubelet has sufficient memory available"),
                condition("DiskPressure", "False", "KubeletHasNoDiskPressure", "kubelet has no disk pressure"),
                condition("PIDPressure", "False", "KubeletHasSufficientPID", "kubelet has sufficient PID available"),
                condition("Ready", "True", "KubeletReady", "kubelet is posting ready status") if ready else
                condition("Ready", "False", "KubeletNotReady", "container runtime is down"),
            ],
            "addresses": [{"type": "InternalIP", "address": self.node_ip},
                          {"type": "Hostname", "address": self.node_name}],
            "daemonEndpoints": {"kubeletEndpoint": {"Port": self.kubelet_port}},
            "nodeInfo": {
                "machineID": _read("/etc/machine-id"),
                "systemUUID": _read("/sys/class/dmi/id/product_uuid", _read("/etc/machine-id")),
                "bootID": _read("/proc/sys/kernel/random/boot_id"),
                "kernelVersion": platform.release(),
                "osImage": _os_image(),
                "containerRuntimeVersion": await self.runtime_version(),
                "kubeletVersion": KUBELET_VERSION,
                "kubeProxyVersion": "",
                "operatingSystem": "linux",
                "architecture": {"x86_64": "amd64", "aarch64": "arm64"}.get(platform.machine(), platform.machine()),
            },
        }

    def _labels(self) -> dict[str, str]:
        return {"kubernetes.io/hostname": self.node_name, "kubernetes.io/os": "linux",
                "kubernetes.io/arch": {"x86_64": "amd64", "aarch64": "arm64"}.get(platform.machine(), platform.machine()),
                "beta.kubernetes.io/os": "linux",
                "beta.kubernetes.io/arch": {"x86_64": "amd64"}.get(platform.machine(), platform.machine()),
                **self.labels}

    async def ensure_node(self) -> dict[str, Any]:
        """The Node object, created (or its labels fixed) before anything else runs: the node
        IPAM controller gives it a podCIDR, which the agent needs for pod networking. With
        `pod_cidr` set (--pod-cidr) a Node without one gets it; else the Node's own is used."""
        labels = self._labels()
        try:
            node = await self.client.get(NODES, self.node_name)
        except errors.NotFound:
            spec = {"podCIDR": self.pod_cidr, "podCIDRs": [self.pod_cidr]} if self.pod_cidr else {}
            body = {"apiVersion": "v1", "kind": "Node",
                    "metadata": {"name": self.node_name, "labels": labels,
                                 "annotations": {"node.alpha.kubernetes.io/ttl": "0"}},
                    "spec": spec}
            try:
                node = await self.client.create(NODES, body)
                log.info("registered node %s (podCIDR %s)", self.node_name, self.pod_cidr or "to be allocated")
            except errors.AlreadyExists:
                node = await self.client.get(NODES, self.node_name)
        spec = node.get("spec") or {}
        missing_labels = {k: v for k, v in labels.items() if (node["metadata"].get("labels") or {}).get(k) != v}
        patch: dict[str, Any] = {}
        if not spec.get("podCIDR") and self.pod_cidr:
            patch["spec"] = {"podCIDR": self.pod_cidr, "podCIDRs": [self.pod_cidr]}
        if missing_labels:
            patch["metadata"] = {"labels": missing_labels}
        if patch:
            node = await self.client.patch(NODES, self.node_name, patch)
        if (node.get("spec") or {}).get("podCIDR"):
            self.pod_cidr = node["spec"]["podCIDR"]
        return node

    async def register(self) -> dict[str, Any]:
        node = await self.ensure_node()
        await self.report_status(force=True, node=node)
        self.registered.set()
        return node

    async def report_status(self, *, force: bool = False, node: dict[str, Any] | None = None) -> None:
        loop = asyncio.get_running_loop()
        if node is None:
            node = await self.client.get(NODES, self.node_name)
        status = await self._status((node.get("status") or {}).get("conditions") or [])
        comparable = _without_heartbeats(status)
        if not force and self._last_status == comparable and loop.time() - self._last_report < self.status_report_interval:
            return
        await self.client.patch(NODES, self.node_name, {"status": status}, subresource="status")
        self._last_status = comparable
        self._last_report = loop.time()

    async def renew_lease(self) -> None:
        body = {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
                "metadata": {"name": self.node_name, "namespace": "kube-node-lease"},
                "spec": {"holderIdentity": self.node_name, "leaseDurationSeconds": LEASE_DURATION_SECONDS,
                         "renewTime": now_micro()}}
        try:
            lease = await self.client.get(LEASES, self.node_name, "kube-node-lease")
        except errors.NotFound:
            try:
                node = await self.client.get(NODES, self.node_name)
                body["metadata"]["ownerReferences"] = [{"apiVersion": "v1", "kind": "Node", "name": self.node_name,
                                                        "uid": node["metadata"]["uid"]}]
                await self.client.create(LEASES, body)
                return
            except errors.AlreadyExists:
                lease = await self.client.get(LEASES, self.node_name, "kube-node-lease")
        updated = copy.deepcopy(lease)
        updated["spec"].update(body["spec"])
        await self.client.update(LEASES, updated)

    async def start(self) -> None:
        await self.register()
        await self.renew_lease()
        self._tasks = [asyncio.create_task(self._every(self.lease_renew_interval, self.renew_lease), name="lease"),
                       asyncio.create_task(self._every(10.0, self.report_status), name="node-status")]

    async def _every(self, interval: float, action: Callable[[], Awaitable[None]]) -> None:
        while True:
            await asyncio.sleep(interval)
            try:
                await action()
            except asyncio.CancelledError:
                raise
            except Exception as error:  # noqa: BLE001 - the API may be restarting
                log.warning("%s failed: %s", getattr(action, "__name__", action), error)

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []


def _without_heartbeats(status: dict[str, Any]) -> dict[str, Any]:
    copy_ = copy.deepcopy(status)
    for condition in copy_["conditions"]:
        condition.pop("lastHeartbeatTime", None)
    return copy_
