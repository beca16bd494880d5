"""The node agent: everything that makes this machine a Kubernetes node.

`Agent.start()` brings the node up in this order: the Node object and its podCIDR (from the
control plane's node IPAM, or --pod-cidr), the pod network across nodes (pyk8s.flannel, a
component of its own), the CNI conflist for the node's podCIDR,
our own containerd (supervised), the project images imported into it, the kubelet's HTTPS
endpoint (logs), the Node object with its status and Lease, the pod workers, then the
service proxy (pyk8s.proxy: a component of its own beside the kubelet, as kube-proxy is).
`stop()` stops the agent but leaves containerd's containers and the proxy's rules in place
(a restarted agent adopts them); `stop(remove_pods=True)` also removes every pod sandbox
(tests, reset).
"""

from __future__ import annotations

import asyncio
import logging
import socket
import sys
from pathlib import Path
from typing import Any, Awaitable, Callable

from pyk8s.api import errors
from pyk8s.kubelet import cni
from pyk8s.kubelet.containerd import Containerd
from pyk8s.kubelet.cri import CRIClient, CRIError
from pyk8s.kubelet.cri.messages import CONTAINER_RUNNING
from pyk8s.kubelet.images import (BUSYBOX_IMAGE, PAUSE_IMAGE, SMALL_IMAGES, WHOAMI_IMAGE, archive_paths,
                                 build_images, docker_reference)
from pyk8s.kubelet.images.python import dns_image_name
from pyk8s.kubelet.logs import KubeletServer
from pyk8s.flannel import FlannelNetwork
from pyk8s.kubelet.node import NODES, NodeStatusManager, default_node_ip, first_pod_cidr
from pyk8s.kubelet.pods import CONTAINER_NAME, POD_UID, PodManager
from pyk8s.kubelet.probes import Prober
from pyk8s.provisioner import LocalPathProvisioner
from pyk8s.proxy import ServiceProxy

log = logging.getLogger("pyk8s.kubelet")


class Agent:
    def __init__(self, client, *, node_name: str = "", node_ip: str = "", data_dir: Path,
                 pod_cidr: str = "", cluster_cidr: str = "10.42.0.0/16", cluster_dns: str = "",
                 cluster_domain: str = "cluster.local", log_root: Path | None = None, kubelet_port: int = 10250,
                 registry_mirrors: dict[str, str] | None = None, client_ca: Path | None = None,
                 node_labels: dict[str, str] | None = None, resolv_conf: str = "",
                 flannel_backend: str = "vxlan", pod_cidr_timeout: float = 5.0, proxy_mode: str = "nftables"):
        self.client = client
        self.node_name = (node_name or socket.gethostname()).lower()
        self.node_ip = node_ip
        self.data_dir = Path(data_dir)
        self.pod_cidr = pod_cidr
        self.cluster_cidr = cluster_cidr
        self.cluster_dns = cluster_dns
        self.cluster_domain = cluster_domain
        self.log_root = Path(log_root) if log_root else self.data_dir / "logs"
        self.kubelet_port = kubelet_port
        self.client_ca = client_ca
        self.node_labels = node_labels or {}
        self.resolv_conf = resolv_conf  # k3s's --resolv-conf: the node's resolvers for pods
        self.flannel_backend = flannel_backend  # k3s's --flannel-backend
        self.pod_cidr_timeout = pod_cidr_timeout
        self.proxy_mode = proxy_mode  # kube-proxy's --proxy-mode
        self.network: FlannelNetwork | None = None
        self.containerd = Containerd(self.data_dir, cni_conf_dir=self.data_dir / "cni" / "net.d",
                                     registry_mirrors=registry_mirrors)
        self.cri: CRIClient | None = None
        self.prober: Prober | None = None
        self.pods: PodManager | None = None
        self.node: NodeStatusManager | None = None
        self.server: KubeletServer | None = None
        self.proxy: ServiceProxy | None = None
        self.provisioner: LocalPathProvisioner | None = None
        self._runtime_version = ""
        self._background_imports: dict[str, asyncio.Task] = {}

    async def _wait_for_pod_cidr(self, node: dict[str, Any]) -> str:
        """The podCIDR the node IPAM controller writes on our Node (--pod-cidr overrides).
        A control plane without the controller manager never writes one: after
        `pod_cidr_timeout` seconds the node takes the first /24 of the cluster CIDR, as a
        lone node did before node IPAM (the controller, if it comes, keeps that one)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.pod_cidr_timeout
        while not (node.get("spec") or {}).get("podCIDR"):
            if loop.time() >= deadline:
                fallback = first_pod_cidr(self.cluster_cidr)
                log.warning("node %s got no podCIDR from the control plane within %gs (no node IPAM?): using %s",
                            self.node_name, self.pod_cidr_timeout, fallback)
                return fallback
            await asyncio.sleep(0.1)
            node = await self.client.get(NODES, self.node_name)
        return node["spec"]["podCIDR"]

    async def start(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.node_ip = self.node_ip or default_node_ip()
        # The Node first: its podCIDR (from node IPAM, or --pod-cidr) shapes pod networking.
        self.node = NodeStatusManager(self.client, node_name=self.node_name, node_ip=self.node_ip,
                                      pod_cidr=self.pod_cidr, data_dir=self.data_dir, kubelet_port=self.kubelet_port,
                                      runtime_version=self._version, runtime_ready=self._runtime_ready,
                                      labels=self.node_labels)
        self.pod_cidr = await self._wait_for_pod_cidr(await self.node.ensure_node())
        self.node.pod_cidr = self.pod_cidr
        await self.node.ensure_node()  # writes a fallback podCIDR on the Node
        for stale in cni.remove_stale_bridges(self.data_dir):
            log.info("removed stale pod bridge %s", stale)
        self.network = FlannelNetwork(self.client, node_name=self.node_name, node_ip=self.node_ip,
                                      pod_cidr=self.pod_cidr, cluster_cidr=self.cluster_cidr,
                                      backend=self.flannel_backend)
        await self.network.start()
        cni.write_conflist(self.data_dir, self.containerd.cni_conf_dir, self.pod_cidr, mtu=self.network.mtu)
        await self.containerd.start()
        self.cri = CRIClient(self.containerd.socket)
        version = await self.cri.version()
        self._runtime_version = f"containerd://{version.get('runtime_version', '')}"
        await self.import_project_images()
        self.prober = Prober(self.cri)
        self.server = KubeletServer(self._find_log, address=self.node_ip, port=self.kubelet_port,
                                    tls_dir=self.data_dir / "kubelet" / "tls", client_ca=self.client_ca)
        self.kubelet_port = await self.server.start()
        self.node.kubelet_port = self.kubelet_port
        await self.node.start()
        self.pods = PodManager(self.client, self.cri, node_name=self.node_name, node_ip=self.node_ip,
                               data_dir=self.data_dir, log_root=self.log_root, cluster_dns=self.cluster_dns,
                               cluster_domain=self.cluster_domain, prober=self.prober, resolv_conf=self.resolv_conf,
                               pending_image_import=self.pending_image_import)
        await self.pods.start()
        self.proxy = ServiceProxy(self.client, node_name=self.node_name, cluster_cidr=self.cluster_cidr,
                                  mode=self.proxy_mode)
        await self.proxy.start()
        # Dynamic local volumes live on this node's disk: its own provisioner makes them.
        self.provisioner = LocalPathProvisioner(self.client, node_name=self.node_name,
                                                storage_dir=self.data_dir / "storage")
        await self.provisioner.start()
        log.info("node %s ready: ip %s, podCIDR %s, kubelet port %d", self.node_name, self.node_ip,
                 self.pod_cidr, self.kubelet_port)

    async def import_project_images(self) -> None:
        """Build (cached) and import the project's images that containerd lacks. Only the
        pause image (every pod's sandbox) is imported before the node is Ready; the others
        one after another in the background (the DNS server's is the large one, about 3 s to
        build and import, as long as the rest of a node's start). A pod that needs one of
        them meanwhile waits for its import (`pending_image_import`)."""
        assert self.cri is not None
        await self._import_images({PAUSE_IMAGE})
        previous: asyncio.Task | None = None
        for name in (BUSYBOX_IMAGE, WHOAMI_IMAGE, dns_image_name()):
            previous = self._background_imports[name] = asyncio.get_running_loop().create_task(
                self._import_in_background(name, after=previous), name=f"import {name}")

    async def _import_in_background(self, name: str, after: asyncio.Task | None) -> None:
        if after is not None:
            await asyncio.wait([after])
        try:
            await self._import_images({name})
        except asyncio.CancelledError:
            raise
        except Exception as error:  # noqa: BLE001 - pods needing it then fail to pull, visibly
            log.error("importing %s failed: %s", name, error)

    async def _import_images(self, names: set[str]) -> None:
        out_dir = self.data_dir / "images"
        archives = archive_paths(out_dir, names)
        missing = sorted(name for name, archive in archives.items() if not archive.exists())
        if missing and set(missing) <= SMALL_IMAGES:
            await asyncio.to_thread(build_images, out_dir, set(missing))
        elif missing:
            # Built by a child process: a layer is assembled in memory (the DNS server's is
            # about 50 MB), and the agent, which runs for days, would keep that heap.
            builder = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "pyk8s.kubelet.images", "--out", str(out_dir),
                *[f"--image={name}" for name in missing],
                stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE)
            try:
                _, errors = await builder.communicate()
            except asyncio.CancelledError:  # the agent stops: leave no builder behind
                builder.kill()
                await builder.wait()
                raise
            if builder.returncode != 0:
                raise RuntimeError(f"building {', '.join(missing)} failed: {errors.decode(errors='replace')[-2000:]}")
        for name, archive in archives.items():
            if await self.cri.image_status(name) is None:
                await asyncio.to_thread(self.containerd.import_image, archive)
                log.info("imported %s", name)

    def pending_image_import(self, image: str) -> asyncio.Task | None:
        """The background import of one of the node's own images, while it runs."""
        task = self._background_imports.get(docker_reference(image))
        return task if task is not None and not task.done() else None

    async def _version(self) -> str:
        return self._runtime_version

    async def _runtime_ready(self) -> bool:
        try:
            await self.cri.version()
            return True
        except (CRIError, AttributeError):
            return False

    async def _find_log(self, namespace: str, pod_name: str, container: str,
                        previous: bool) -> tuple[Path, Callable[[], Awaitable[bool]]]:
        assert self.pods is not None and self.cri is not None
        pod = self.pods.pods.get(f"{namespace}/{pod_name}")
        if pod is None:
            raise LookupError(f'pod "{pod_name}" not found on node {self.node_name}')
        uid = pod["metadata"]["uid"]
        history = await self.cri.list_containers({POD_UID: uid, CONTAINER_NAME: container})
        history.sort(key=lambda c: c.get("created_at", 0), reverse=True)
        index = 1 if previous else 0
        if len(history) <= index:
            if previous:
                raise LookupError(f'previous terminated container "{container}" in pod "{pod_name}" not found')
            raise LookupError(f'container "{container}" in pod "{pod_name}" is waiting to start: ContainerCreating')
        chosen = history[index]
        status = await self.cri.container_status(chosen["id"])
        path = Path(status.get("log_path", ""))
        cri = self.cri

        async def still_running() -> bool:
            try:
                return (await cri.container_status(chosen["id"])).get("state") == CONTAINER_RUNNING
            except CRIError:
                return False
        return path, still_running

    async def stop(self, *, remove_pods: bool = False) -> None:
        for task in self._background_imports.values():
            task.cancel()
        await asyncio.gather(*self._background_imports.values(), return_exceptions=True)
        if self.provisioner is not None:
            await self.provisioner.stop()
        if self.proxy is not None:
            await self.proxy.stop()
        if self.pods is not None:
            await self.pods.stop()
            if remove_pods:
                try:
                    await self.pods.remove_all()
                except CRIError as error:
                    log.warning("removing pods failed: %s", error)
        if self.network is not None:
            await self.network.stop()
        if self.prober is not None:
            self.prober.stop()
        if self.node is not None:
            await self.node.stop()
        if self.server is not None:
            await self.server.stop()
        if self.cri is not None:
            await self.cri.close()
        await self.containerd.stop()
        log.info("node agent stopped")
