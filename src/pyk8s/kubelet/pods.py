"""The pod sync loop: pod workers that make containerd run what the API says.

Flow (upstream's pod workers + kuberuntime manager + PLEG, in asyncio):
- an informer watches pods with `spec.nodeName=<node>`; every change wakes that pod's worker;
- the PLEG relists sandboxes and containers every second and wakes the workers of pods
  whose containers changed state (a container killed behind our back shows up here);
- one worker task per pod UID runs `sync()` serially: terminate if the pod is being deleted
  (graceful stop, sandbox removal, then the pod object is deleted), else ensure a ready
  sandbox (CNI gives it an IP), run init containers in order, start or restart containers
  under the restart policy with upstream's exponential back-off (10 s doubling to 5 min),
  kill containers whose liveness probe failed, and write the resulting status;
- at start, sandboxes of pods this node no longer has are removed; running containers of
  known pods are adopted untouched (a restart of the agent restarts nothing).
Everything a worker needs to know about containers it reads from containerd (labels and
annotations carry pod UID, container name, restart count), so no state lives only in memory.
"""

from __future__ import annotations

import asyncio
import json
import logging
import shutil
import time
from pathlib import Path
from typing import Any

from pyk8s.api import errors
from pyk8s.api.resources import lookup
from pyk8s.client.events import EventRecorder
from pyk8s.client.informer import Informer
from pyk8s.kubelet import credentials, envvars
from pyk8s.kubelet import status as pod_status
from pyk8s.kubelet.cri import CRIClient, CRIError
from pyk8s.kubelet.cri.messages import (CONTAINER_EXITED, CONTAINER_RUNNING, NAMESPACE_CONTAINER, NAMESPACE_NODE,
                                        NAMESPACE_POD, PROTOCOLS, SANDBOX_READY)
from pyk8s.kubelet.volumes import VolumeManager
from pyk8s.kubelet.volumes.manager import ContainerMountError

log = logging.getLogger("pyk8s.kubelet.pods")
PODS = lookup("", "v1", "pods")
SERVICES = lookup("", "v1", "services")

POD_NAME, POD_NAMESPACE, POD_UID = "io.kubernetes.pod.name", "io.kubernetes.pod.namespace", "io.kubernetes.pod.uid"
CONTAINER_NAME = "io.kubernetes.container.name"
RESTART_COUNT = "io.kubernetes.container.restartCount"
CONTAINER_HASH = "io.kubernetes.container.hash"
# The crash back-off delay in force when this container was started: with the container's
# creation time it rebuilds the back-off entry after an agent restart.
CRASH_BACKOFF = "pyk8s.io/crash-backoff-seconds"
TERMINATION_MESSAGE_PATH = "io.kubernetes.container.terminationMessagePath"
INIT_CONTAINER = "pyk8s.io/init-container"
CRASH_BACKOFF_INITIAL, CRASH_BACKOFF_MAX = 10.0, 300.0
IMAGE_BACKOFF_INITIAL, IMAGE_BACKOFF_MAX = 10.0, 300.0
PLEG_PERIOD = 1.0
RESYNC_PERIOD = 10.0
EVENT_QUEUE_LIMIT = 1000  # upstream's maxQueuedEvents: events beyond it are dropped
# A container whose ConfigMap / Secret reference cannot be resolved is tried again this soon
# (upstream's pod worker requeues it too): it starts by itself once the object appears.
CONFIG_ERROR_RETRY = 2.0
# How long a failed pull shows ErrImagePull (with the registry's reason) before ImagePullBackOff.
ERR_IMAGE_PULL_SHOWN = 5.0


class Backoff:
    """Upstream's flowcontrol.Backoff: per-key delay doubling up to a maximum, forgotten
    after twice the maximum without a failure."""

    def __init__(self, initial: float, maximum: float):
        self.initial, self.maximum = initial, maximum
        self.entries: dict[str, tuple[float, float]] = {}  # key -> (delay, last update, wall clock)

    def next(self, key: str, now: float) -> float:
        entry = self.entries.get(key)
        if entry is None or now - entry[1] > 2 * self.maximum:
            delay = self.initial
        else:
            delay = min(entry[0] * 2, self.maximum)
        self.entries[key] = (delay, now)
        return delay

    def in_backoff_since(self, key: str, event_time: float, now: float) -> float:
        """Seconds left in back-off counted from `event_time`, 0 when none."""
        entry = self.entries.get(key)
        if entry is None or now - entry[1] > 2 * self.maximum:
            return 0.0
        return max(0.0, entry[0] - (now - event_time))

    def delay(self, key: str) -> float:
        return self.entries.get(key, (self.initial, 0))[0]

    def forget_prefix(self, prefix: str) -> None:
        for key in [k for k in self.entries if k.startswith(prefix)]:
            del self.entries[key]


def container_hash(container_spec: dict[str, Any]) -> str:
    """The container spec hash, as upstream's HashContainer uses it: FNV-1a (32 bit) over
    the JSON of the fields whose change needs a new container (`name` and `image`: the other
    container fields of a pod are immutable), stored on the container as the
    `io.kubernetes.container.hash` annotation. A running container whose annotation differs
    from its spec's hash is killed and started again. Only this kubelet reads the value, so
    it need not equal upstream's (which hashes a spew dump of the JSON)."""
    picked = json.dumps({"image": container_spec.get("image", ""), "name": container_spec["name"]},
                        sort_keys=True, separators=(",", ":"))
    value = 0x811C9DC5
    for byte in picked.encode():
        value = ((value ^ byte) * 0x01000193) & 0xFFFFFFFF
    return format(value, "x")


def _grpc_code_name(code: str) -> str:
    """`NOT_FOUND` -> `NotFound`, as Go's codes.Code prints."""
    return "".join(part.capitalize() for part in code.split("_")) or "Unknown"


def service_env(services: list[dict[str, Any]]) -> dict[str, str]:
    """Docker-link style variables of upstream's kubelet for ClusterIP services."""
    env: dict[str, str] = {}
    for service in sorted(services, key=lambda s: s["metadata"]["name"]):
        spec = service.get("spec") or {}
        ip = spec.get("clusterIP")
        if not ip or ip == "None" or not spec.get("ports"):
            continue
        prefix = service["metadata"]["name"].upper().replace("-", "_")
        first = spec["ports"][0]
        env[f"{prefix}_SERVICE_HOST"] = ip
        env[f"{prefix}_SERVICE_PORT"] = str(first["port"])
        for port in spec["ports"]:
            if port.get("name"):
                env[f"{prefix}_SERVICE_PORT_{port['name'].upper().replace('-', '_')}"] = str(port["port"])
        protocol = first.get("protocol", "TCP")
        env[f"{prefix}_PORT"] = f"{protocol.lower()}://{ip}:{first['port']}"
        for port in spec["ports"]:
            protocol = port.get("protocol", "TCP")
            base = f"{prefix}_PORT_{port['port']}_{protocol}"
            env[base] = f"{protocol.lower()}://{ip}:{port['port']}"
            env[f"{base}_PROTO"] = protocol.lower()
            env[f"{base}_PORT"] = str(port["port"])
            env[f"{base}_ADDR"] = ip
    return env


def parse_quantity(value: Any) -> float:
    text = str(value)
    suffixes = {"Ki": 1024, "Mi": 1024 ** 2, "Gi": 1024 ** 3, "Ti": 1024 ** 4, "k": 1e3, "M": 1e6, "G": 1e9,
                "T": 1e12, "m": 1e-3}
    for suffix, factor in suffixes.items():
        if text.endswith(suffix):
            return float(text[:-len(suffix)]) * factor
    return float(text)


MAX_DNS_NAMESERVERS = 3  # upstream's validation.MaxDNSNameservers (glibc reads no more)
MAX_DNS_SEARCHES = 32  # upstream's validation.MaxDNSSearchPaths


def _unique(values: list[str]) -> list[str]:
    return list(dict.fromkeys(values))


def merge_dns_options(existing: list[str], added: list[dict[str, Any]]) -> list[str]:
    """Upstream's mergeDNSOptions: dnsConfig options override same-named ones."""
    merged: dict[str, str | None] = {}
    for option in existing:
        name, separator, value = option.partition(":")
        merged[name] = value if separator else None
    for option in added:
        merged[option["name"]] = option.get("value")
    return [name if value in (None, "") else f"{name}:{value}" for name, value in merged.items()]


def node_resolv_conf(path: str = "") -> dict[str, list[str]]:
    """The node's resolvers for dnsPolicy Default (and the searches ClusterFirst appends):
    `path` (the agent's --resolv-conf, k3s's flag) else /etc/resolv.conf. Loopback
    nameservers are dropped (a pod cannot reach the node's 127.0.0.53), and without
    --resolv-conf a node with no default route (an isolated namespace) has none at all:
    pods then fail fast instead of waiting on servers they can never reach."""
    servers, searches, options = [], [], []
    try:
        text = Path(path or "/etc/resolv.conf").read_text()
    except OSError:
        text = ""
    for line in text.splitlines():
        fields = line.split()
        if len(fields) >= 2 and fields[0] == "nameserver":
            servers.append(fields[1])
        elif fields and fields[0] in ("search", "domain"):
            searches = fields[1:]
        elif fields and fields[0] == "options":
            options.extend(fields[1:])
    servers = [s for s in servers if not s.startswith("127.") and s != "::1"]
    if not path and not _has_default_route():
        servers = []
    return {"servers": servers, "searches": searches, "options": options}


def _has_default_route() -> bool:
    try:
        with open("/proc/net/route") as routes:
            return any(line.split()[1] == "00000000" for line in list(routes)[1:] if len(line.split()) > 1)
    except OSError:
        return True


class PodRecord:
    def __init__(self, uid: str):
        self.uid = uid
        self.pod: dict[str, Any] | None = None
        self.wake = asyncio.Event()
        self.task: asyncio.Task | None = None
        self.waiting: dict[str, dict[str, str]] = {}
        self.sandbox_config: dict[str, Any] | None = None
        self.pod_ip = ""
        self.done = False
        self.eviction: str | None = None  # the message, once the kubelet decided to evict it


class PodManager:
    def __init__(self, client, cri: CRIClient, *, node_name: str, node_ip: str, data_dir: Path, log_root: Path,
                 cluster_dns: str = "", cluster_domain: str = "cluster.local", prober=None, resolv_conf: str = "",
                 pending_image_import=lambda image: None):
        self.client = client
        # image -> the still-running import of one of the node's own images (Agent)
        self.pending_image_import = pending_image_import
        self.resolv_conf = resolv_conf
        self.cri = cri
        self.node_name = node_name
        self.node_ip = node_ip
        self.data_dir = Path(data_dir)
        self.log_root = Path(log_root)
        self.cluster_dns = cluster_dns
        self.cluster_domain = cluster_domain
        self.prober = prober
        self.pods = Informer(client, PODS, field_selector=f"spec.nodeName={node_name}")
        self.recorder = EventRecorder(client, "kubelet", host=node_name)
        self._events: asyncio.Queue = asyncio.Queue(EVENT_QUEUE_LIMIT)
        self.services = Informer(client, SERVICES)
        self.records: dict[str, PodRecord] = {}
        self.crash_backoff = Backoff(CRASH_BACKOFF_INITIAL, CRASH_BACKOFF_MAX)
        self.image_backoff = Backoff(IMAGE_BACKOFF_INITIAL, IMAGE_BACKOFF_MAX)
        self.writer = pod_status.StatusWriter(client)
        self._tasks: list[asyncio.Task] = []
        self._container_states: dict[str, int] = {}
        self._image_names: dict[str, str] = {}
        self._allocatable: dict[str, str] | None = None
        self.volumes = VolumeManager(client, self.data_dir / "pods", wake=self.wake, event=self._event,
                                     evict=self.evict)
        self.pods.add_handlers(on_add=self._on_pod, on_update=lambda old, new: self._on_pod(new),
                               on_delete=self._on_pod_deleted)

    # ---- lifecycle -------------------------------------------------------------------
    async def start(self) -> None:
        self._tasks = [asyncio.create_task(self._write_events(), name="events"),
                       asyncio.create_task(self.pods.run(), name="pod-informer"),
                       asyncio.create_task(self.services.run(), name="service-informer")]
        await asyncio.wait_for(self.pods.synced.wait(), 60)
        await asyncio.wait_for(self.services.synced.wait(), 60)
        await self._adopt_or_remove_orphans()
        self._tasks.append(asyncio.create_task(self._pleg(), name="pleg"))

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        workers = [record.task for record in self.records.values() if record.task]
        for task in workers:
            task.cancel()
        await asyncio.gather(*self._tasks, *workers, return_exceptions=True)
        self._tasks = []
        await self.volumes.stop()

    # ---- events ------------------------------------------------------------------------
    def _record(self, uid: str) -> PodRecord:
        record = self.records.get(uid)
        if record is None or record.done:
            record = PodRecord(uid)
            self.records[uid] = record
            record.task = asyncio.create_task(self._worker(record), name=f"pod-{uid[:8]}")
        return record

    def _on_pod(self, pod: dict[str, Any]) -> None:
        record = self._record(pod["metadata"]["uid"])
        record.pod = pod
        record.wake.set()

    def _on_pod_deleted(self, pod: dict[str, Any]) -> None:
        record = self.records.get(pod["metadata"]["uid"])
        if record is not None:
            record.pod = None
            record.wake.set()

    def evict(self, uid: str, message: str) -> None:
        """Have pod `uid` evicted by its worker (upstream's eviction manager: an emptyDir over
        its sizeLimit)."""
        record = self.records.get(uid)
        if record is not None and record.eviction is None:
            record.eviction = message
            record.wake.set()

    def wake(self, uid: str) -> None:
        record = self.records.get(uid)
        if record is not None:
            record.wake.set()

    async def _pleg(self) -> None:
        """Relist the runtime and wake pods whose containers changed state."""
        while True:
            await asyncio.sleep(PLEG_PERIOD)
            try:
                containers = await self.cri.list_containers()
            except (CRIError, Exception) as error:  # noqa: BLE001 - containerd restarting
                log.debug("relist failed: %s", error)
                continue
            states = {c["id"]: c.get("state", 0) for c in containers}
            changed = set()
            for container in containers:
                if self._container_states.get(container["id"]) != container.get("state", 0):
                    changed.add((container.get("labels") or {}).get(POD_UID))
            for container_id in set(self._container_states) - set(states):
                changed.add(None)
            self._container_states = states
            for uid in changed:
                if uid:
                    self.wake(uid)

    async def _adopt_or_remove_orphans(self) -> None:
        known = {pod["metadata"]["uid"] for pod in self.pods.list()}
        for sandbox in await self.cri.list_sandboxes():
            uid = (sandbox.get("labels") or {}).get(POD_UID)
            if uid and uid not in known:
                log.info("removing sandbox of unknown pod %s", uid)
                record = PodRecord(uid)
                record.done = True
                await self._kill_runtime_pod(uid, grace=2)
                await self._remove_runtime_pod(uid)
        await self.volumes.remove_orphans(known)

    # ---- the worker --------------------------------------------------------------------
    async def _worker(self, record: PodRecord) -> None:
        while not record.done:
            try:
                await asyncio.wait_for(record.wake.wait(), RESYNC_PERIOD)
            except asyncio.TimeoutError:
                pass
            record.wake.clear()
            try:
                await self.sync(record)
            except asyncio.CancelledError:
                raise
            except Exception:  # noqa: BLE001 - next wake retries
                log.exception("sync of pod %s failed", record.uid)
                await asyncio.sleep(1.0)
                record.wake.set()

    async def sync(self, record: PodRecord) -> None:
        pod = record.pod
        if pod is None or pod["metadata"].get("deletionTimestamp"):
            await self._terminate(record)
            return
        uid = record.uid
        spec = pod["spec"]
        host_network = bool(spec.get("hostNetwork"))
        sandboxes = sorted(await self.cri.list_sandboxes({POD_UID: uid}), key=lambda s: s.get("created_at", 0),
                           reverse=True)
        containers = await self._containers_of(uid)
        phase = (pod.get("status") or {}).get("phase")
        terminal = phase in ("Succeeded", "Failed")
        sandbox = sandboxes[0] if sandboxes else None
        sandbox_ready = sandbox is not None and sandbox.get("state") == SANDBOX_READY
        if record.eviction is not None and not terminal:
            # upstream's evictPod: no grace for local storage, the pod ends Failed/Evicted.
            self._event(pod, "Warning", "Evicted", record.eviction)
            await self._kill_runtime_pod(uid, grace=0, pod=pod)
            await self.volumes.tear_down(uid)  # upstream unmounts a terminated pod's volumes
            await self._write_status(record, pod, await self._containers_of(uid), False, record.pod_ip)
            return
        if not terminal and not await self.volumes.set_up(pod):  # upstream: no sandbox before volumes mount
            await self._write_status(record, pod, containers, sandbox_ready, record.pod_ip)
            return
        if not terminal and not sandbox_ready:
            if sandbox is not None:
                # The sandbox died (or containerd lost it): upstream kills every container
                # and starts over with a new sandbox attempt.
                await self._kill_runtime_pod(uid, grace=0)
            attempt = ((sandbox or {}).get("metadata") or {}).get("attempt", -1) + 1
            if self._should_create_sandbox(pod, containers):
                sandbox = await self._create_sandbox(record, pod, attempt)
                sandbox_ready = sandbox is not None
                containers = await self._containers_of(uid)
        if sandbox_ready and sandbox is not None and (record.sandbox_config is None or not record.pod_ip):
            await self._load_sandbox(record, pod, sandbox)
        if sandbox_ready and not terminal:
            await self._sync_containers(record, pod, sandbox["id"], containers)
            containers = await self._containers_of(uid)
        if terminal and sandbox_ready:
            await self._kill_runtime_pod(uid, grace=int(spec.get("terminationGracePeriodSeconds", 30)))
        await self._write_status(record, pod, containers, sandbox_ready and not terminal,
                                 self.node_ip if host_network else record.pod_ip)

    def _should_create_sandbox(self, pod: dict[str, Any], containers: list[dict[str, Any]]) -> bool:
        """With restartPolicy Never, a pod whose containers already ran is not restarted."""
        if pod["spec"].get("restartPolicy", "Always") != "Never":
            return True
        return not any(not (c.get("annotations") or {}).get(INIT_CONTAINER) for c in containers)

    async def _containers_of(self, uid: str) -> list[dict[str, Any]]:
        """This pod's runtime containers with their ContainerStatus merged in, newest first."""
        listed = await self.cri.list_containers({POD_UID: uid})
        detailed = []
        for container in listed:
            try:
                status = await self.cri.container_status(container["id"])
            except CRIError:
                continue
            merged = {**container, **status}
            if merged.get("state") == CONTAINER_EXITED:
                merged["termination_message"] = self._termination_message(merged)
            detailed.append(merged)
        detailed.sort(key=lambda c: c.get("created_at", 0), reverse=True)
        return detailed

    def _termination_message(self, container: dict[str, Any]) -> str:
        path = (container.get("annotations") or {}).get("pyk8s.io/termination-message-host-path")
        message = ""
        if path:
            try:
                message = Path(path).read_text(errors="replace")[:4096]
            except OSError:
                message = ""
        policy = (container.get("annotations") or {}).get("pyk8s.io/termination-message-policy")
        if not message and policy == "FallbackToLogsOnError" and container.get("exit_code"):
            from pyk8s.kubelet.logs import tail_messages
            message = tail_messages(container.get("log_path", ""), lines=80, max_bytes=2048)
        return message

    # ---- sandboxes ---------------------------------------------------------------------
    def pod_dir(self, uid: str) -> Path:
        return self.data_dir / "pods" / uid

    def log_directory(self, pod: dict[str, Any]) -> Path:
        meta = pod["metadata"]
        return self.log_root / "pods" / f"{meta['namespace']}_{meta['name']}_{meta['uid']}"

    def _dns_config(self, pod: dict[str, Any]) -> dict[str, Any]:
        """The sandbox's resolv.conf (CRI DNSConfig) for the pod's dnsPolicy and dnsConfig,
        as upstream's kubelet dns configurer builds it."""
        spec = pod["spec"]
        policy = spec.get("dnsPolicy") or "ClusterFirst"
        if policy == "ClusterFirst" and spec.get("hostNetwork"):
            policy = "Default"  # upstream: host-network pods use ClusterFirstWithHostNet to get cluster DNS
        if policy in ("ClusterFirst", "ClusterFirstWithHostNet") and not self.cluster_dns:
            policy = "Default"  # upstream falls back too (its MissingClusterDNS event)
        host = node_resolv_conf(self.resolv_conf)
        if policy == "None":
            servers, searches, options = [], [], []
        elif policy == "Default":
            servers, searches, options = list(host["servers"]), list(host["searches"]), list(host["options"])
        else:
            domain = self.cluster_domain
            servers = [self.cluster_dns]
            searches = [f"{pod['metadata']['namespace']}.svc.{domain}", f"svc.{domain}", domain, *host["searches"]]
            options = ["ndots:5"]
        extra = spec.get("dnsConfig") or {}
        servers = _unique(servers + list(extra.get("nameservers") or []))[:MAX_DNS_NAMESERVERS]
        searches = _unique(searches + list(extra.get("searches") or []))[:MAX_DNS_SEARCHES]
        options = merge_dns_options(options, extra.get("options") or [])
        if not (servers or searches or options):
            # containerd copies the node's /etc/resolv.conf for an empty DNSConfig: say
            # "no resolvers" with glibc's default option instead.
            options = ["ndots:1"]
        return {"servers": servers, "searches": searches, "options": options}

    def _sandbox_config(self, pod: dict[str, Any], attempt: int) -> dict[str, Any]:
        meta, spec = pod["metadata"], pod["spec"]
        host_network = bool(spec.get("hostNetwork"))
        port_mappings = []
        for container in spec.get("containers") or []:
            for port in container.get("ports") or []:
                if port.get("hostPort"):
                    port_mappings.append({"protocol": PROTOCOLS.get(port.get("protocol", "TCP"), 0),
                                          "container_port": port["containerPort"], "host_port": port["hostPort"],
                                          "host_ip": port.get("hostIP", "")})
        privileged = any(((c.get("securityContext") or {}).get("privileged")) for c in
                         (spec.get("containers") or []) + (spec.get("initContainers") or []))
        hostname = spec.get("hostname") or meta["name"]
        security = {"namespace_options": {"network": NAMESPACE_NODE if host_network else NAMESPACE_POD,
                                          "pid": NAMESPACE_NODE if spec.get("hostPID") else
                                          (NAMESPACE_POD if spec.get("shareProcessNamespace") else NAMESPACE_CONTAINER),
                                          "ipc": NAMESPACE_NODE if spec.get("hostIPC") else NAMESPACE_POD},
                    "privileged": privileged}
        pod_security = spec.get("securityContext") or {}
        if pod_security.get("supplementalGroups"):
            security["supplemental_groups"] = pod_security["supplementalGroups"]
        return {
            "metadata": {"name": meta["name"], "uid": meta["uid"], "namespace": meta["namespace"], "attempt": attempt},
            "hostname": "" if host_network else hostname[:63],
            "log_directory": str(self.log_directory(pod)),
            "dns_config": self._dns_config(pod),
            "port_mappings": port_mappings,
            "labels": {**{k: v for k, v in (meta.get("labels") or {}).items()},
                       POD_NAME: meta["name"], POD_NAMESPACE: meta["namespace"], POD_UID: meta["uid"]},
            "annotations": {k: v for k, v in (meta.get("annotations") or {}).items()},
            "linux": {"cgroup_parent": self._cgroup_parent(pod), "security_context": security},
        }

    def _cgroup_parent(self, pod: dict[str, Any]) -> str:
        qos = pod_status.qos_class(pod)
        uid = pod["metadata"]["uid"]
        if qos == "Guaranteed":
            return f"/kubepods/pod{uid}"
        return f"/kubepods/{qos.lower()}/pod{uid}"

    async def _create_sandbox(self, record: PodRecord, pod: dict[str, Any], attempt: int) -> dict[str, Any] | None:
        config = self._sandbox_config(pod, attempt)
        self.log_directory(pod).mkdir(parents=True, exist_ok=True)
        self.pod_dir(record.uid).mkdir(parents=True, exist_ok=True)
        try:
            sandbox_id = (await self.cri.call("RunPodSandbox", {"config": config}))["pod_sandbox_id"]
        except CRIError as error:
            log.warning("RunPodSandbox for %s failed: %s", pod["metadata"]["name"], error)
            for container in pod["spec"].get("containers") or []:
                record.waiting[container["name"]] = {"reason": "ContainerCreating"}
            return None
        sandbox = {"id": sandbox_id, "state": SANDBOX_READY, "metadata": config["metadata"]}
        record.sandbox_config = config
        record.pod_ip = ""
        await self._load_sandbox(record, pod, sandbox)
        return sandbox

    async def _load_sandbox(self, record: PodRecord, pod: dict[str, Any], sandbox: dict[str, Any]) -> None:
        status = await self.cri.sandbox_status(sandbox["id"])
        attempt = (status.get("metadata") or {}).get("attempt", 0)
        record.sandbox_config = self._sandbox_config(pod, attempt)
        record.pod_ip = ((status.get("network") or {}).get("ip")) or ""
        self._write_hosts_file(pod, record.pod_ip)

    def _write_hosts_file(self, pod: dict[str, Any], pod_ip: str) -> Path:
        """The kubelet-managed /etc/hosts (upstream's format), mounted into every container."""
        path = self.pod_dir(pod["metadata"]["uid"]) / "etc-hosts"
        hostname = pod["spec"].get("hostname") or pod["metadata"]["name"]
        lines = ["# Kubernetes-managed hosts file.", "127.0.0.1\tlocalhost", "::1\tlocalhost ip6-localhost ip6-loopback",
                 "fe00::0\tip6-localnet", "fe00::0\tip6-mcastprefix", "fe00::1\tip6-allnodes", "fe00::2\tip6-allrouters"]
        if pod_ip:
            subdomain = pod["spec"].get("subdomain")
            if subdomain:
                fqdn = f"{hostname}.{subdomain}.{pod['metadata']['namespace']}.svc.{self.cluster_domain}"
                lines.append(f"{pod_ip}\t{fqdn}\t{hostname}")
            else:
                lines.append(f"{pod_ip}\t{hostname}")
        aliases = pod["spec"].get("hostAliases") or []
        if aliases:
            lines.append("\n# Entries added by HostAliases.")
            for alias in aliases:
                lines.append(f"{alias['ip']}\t" + "\t".join(alias.get("hostnames") or []))
        path.parent.mkdir(parents=True, exist_ok=True)
        text = "\n".join(lines) + "\n"
        if not path.exists() or path.read_text() != text:
            path.write_text(text)
        return path

    # ---- containers --------------------------------------------------------------------
    async def _sync_containers(self, record: PodRecord, pod: dict[str, Any], sandbox_id: str,
                               containers: list[dict[str, Any]]) -> None:
        spec = pod["spec"]
        restart_policy = spec.get("restartPolicy", "Always")
        by_name: dict[str, list[dict[str, Any]]] = {}
        for container in containers:
            by_name.setdefault((container.get("labels") or {}).get(CONTAINER_NAME, ""), []).append(container)
        # Init containers, one at a time, in order.
        for init in spec.get("initContainers") or []:
            history = by_name.get(init["name"], [])
            latest = history[0] if history else None
            if latest is not None and latest.get("state") == CONTAINER_EXITED and latest.get("exit_code", 0) == 0:
                continue
            if latest is not None and latest.get("state") == CONTAINER_RUNNING:
                return
            if latest is not None and latest.get("state") == CONTAINER_EXITED:
                if restart_policy == "Never":
                    return
                if not self._may_restart(record, pod, init, latest):
                    return
            await self._start_container(record, pod, sandbox_id, init, history, init_container=True)
            return
        for container_spec in spec.get("containers") or []:
            name = container_spec["name"]
            history = by_name.get(name, [])
            latest = history[0] if history else None
            if latest is None:
                await self._start_container(record, pod, sandbox_id, container_spec, history)
                continue
            state = latest.get("state")
            if state == CONTAINER_RUNNING:
                record.waiting.pop(name, None)
                running_hash = (latest.get("annotations") or {}).get(CONTAINER_HASH)
                # No annotation: started by an older agent; adopt it rather than restart.
                if running_hash and running_hash != container_hash(container_spec):
                    log.info("container %s of pod %s definition changed, will be restarted", name,
                             pod["metadata"]["name"])
                    await self._stop_container(latest["id"], pod, container_spec)
                    if self.prober is not None:
                        self.prober.forget_container(latest["id"])
                    # Upstream starts the replacement in the same sync, without back-off:
                    # the old container did not fail.
                    await self._start_container(record, pod, sandbox_id, container_spec, history)
                    continue
                if self.prober is not None:
                    self.prober.ensure(record.uid, pod, container_spec, latest["id"], lambda: self.wake(record.uid),
                                       lambda: record.pod_ip)
                if self.prober is not None and self.prober.liveness_failed(record.uid, name, latest["id"]):
                    log.info("container %s of pod %s failed liveness probe, will be restarted", name,
                             pod["metadata"]["name"])
                    await self._stop_container(latest["id"], pod, container_spec)
                    self.prober.forget_container(latest["id"])
                continue
            if state == CONTAINER_EXITED:
                failed = latest.get("exit_code", 0) != 0
                if restart_policy == "Never" or (restart_policy == "OnFailure" and not failed):
                    record.waiting.pop(name, None)
                    continue
                if not self._may_restart(record, pod, container_spec, latest):
                    continue
                await self._start_container(record, pod, sandbox_id, container_spec, history)
            elif state not in (CONTAINER_RUNNING, CONTAINER_EXITED):
                # Created but never started (agent died in between): start it now.
                try:
                    await self.cri.call("StartContainer", {"container_id": latest["id"]})
                except CRIError as error:
                    record.waiting[name] = {"reason": "RunContainerError", "message": error.details}

    def _event(self, pod: dict[str, Any] | None, event_type: str, reason: str, message: str,
               container: str = "") -> None:
        """Records an Event about the pod (upstream's kubelet events: Pulling, Pulled,
        Created, Started, Killing, BackOff, Failed) without holding up the sync."""
        if pod is None:
            return
        obj = dict(pod, kind="Pod", apiVersion="v1")
        field_path = f"spec.containers{{{container}}}" if container else ""
        try:
            self._events.put_nowait((obj, event_type, reason, message, field_path))
        except asyncio.QueueFull:
            log.debug("event queue full: dropped %s for pod %s", reason, pod["metadata"].get("name"))

    async def _write_events(self) -> None:
        """Upstream's event broadcaster: one writer, events in order. A burst of pods then
        costs the API server (and this agent) one connection for events, not one per event."""
        while True:
            event = await self._events.get()
            await self.recorder.event(*event)  # best effort: never raises

    def _may_restart(self, record: PodRecord, pod: dict[str, Any], container_spec: dict[str, Any],
                     latest: dict[str, Any]) -> bool:
        """Upstream's doBackOff: CrashLoopBackOff while within the back-off window."""
        name = container_spec["name"]
        key = f"{record.uid}/{name}"
        finished = latest.get("finished_at", 0) / 1e9 or time.time()
        now = time.time()
        if key not in self.crash_backoff.entries:
            self._restore_crash_backoff(key, latest)
        left = self.crash_backoff.in_backoff_since(key, finished, now)
        if left > 0:
            meta = pod["metadata"]
            record.waiting[name] = {
                "reason": "CrashLoopBackOff",
                "message": f"back-off {int(self.crash_backoff.delay(key))}s restarting failed container={name} "
                           f"pod={meta['name']}_{meta['namespace']}({meta['uid']})"}
            self._event(pod, "Warning", "BackOff", f"Back-off restarting failed container {name} in pod "
                                                   f"{meta['name']}_{meta['namespace']}({meta['uid']})", name)
            asyncio.get_running_loop().call_later(left + 0.05, self.wake, record.uid)
            return False
        self.crash_backoff.next(key, now)
        return True

    def _restore_crash_backoff(self, key: str, latest: dict[str, Any]) -> None:
        """After an agent restart the back-off entry comes back from the runtime: the delay
        in force when the latest container was started, updated at its creation time (when
        upstream's Backoff.Next ran for it)."""
        annotations = latest.get("annotations") or {}
        try:
            delay = float(annotations[CRASH_BACKOFF])
        except (KeyError, ValueError):
            return
        created = latest.get("created_at", 0) / 1e9
        if delay > 0 and created > 0:
            self.crash_backoff.entries[key] = (delay, created)

    async def _ensure_image(self, record: PodRecord, pod: dict[str, Any], container_spec: dict[str, Any]) -> str | None:
        image = container_spec.get("image", "")
        name = container_spec["name"]
        policy = container_spec.get("imagePullPolicy") or (
            "Always" if ":" not in image.rsplit("/", 1)[-1] or image.endswith(":latest") else "IfNotPresent")
        importing = self.pending_image_import(image)
        if importing is not None:
            # One of the node's own images, still being imported since the node started: the
            # pod shows ContainerCreating, as during a pull, and syncs again once it is in.
            record.waiting[name] = {"reason": "ContainerCreating"}
            importing.add_done_callback(lambda _: self.wake(record.uid))
            return None
        present = await self.cri.image_status(image)
        if present and policy != "Always":
            self._event(pod, "Normal", "Pulled", f'Container image "{image}" already present on machine', name)
            return present["id"]
        if policy == "Never":
            if present:
                return present["id"]
            record.waiting[name] = {"reason": "ErrImageNeverPull",
                                    "message": f'Container image "{image}" is not present with pull policy of Never'}
            return None
        key = f"{record.uid}/{image}"
        now = time.time()
        left = self.image_backoff.in_backoff_since(key, now, now)
        if left > 0 and key in self.image_backoff.entries:
            entry_delay, updated = self.image_backoff.entries[key]
            if now - updated < entry_delay:
                shown = min(entry_delay / 2, ERR_IMAGE_PULL_SHOWN)
                if (record.waiting.get(name) or {}).get("reason") == "ErrImagePull" and now - updated < shown:
                    # Our own status write woke this sync: upstream's next sync (and its
                    # ImagePullBackOff) comes later, so the pull error stays readable a while.
                    asyncio.get_running_loop().call_later(shown - (now - updated) + 0.05, self.wake, record.uid)
                    return None
                record.waiting[name] = {"reason": "ImagePullBackOff", "message": f'Back-off pulling image "{image}"'}
                self._event(pod, "Normal", "BackOff", f'Back-off pulling image "{image}"', name)
                self._event(pod, "Warning", "Failed", "Error: ImagePullBackOff", name)
                asyncio.get_running_loop().call_later(entry_delay - (now - updated) + 0.05, self.wake, record.uid)
                return None
        record.waiting[name] = {"reason": "ContainerCreating"}
        self._event(pod, "Normal", "Pulling", f'Pulling image "{image}"', name)
        pull_started = time.monotonic()
        try:
            reference = await self._pull_image(pod, image, record.sandbox_config)
        except CRIError as error:
            self.image_backoff.next(key, time.time())
            record.waiting[name] = {"reason": "ErrImagePull",
                                    # upstream's evalCRIPullErr: the CRI error as gRPC prints it
                                    "message": f"rpc error: code = {_grpc_code_name(error.code)} desc = {error.details}"}
            self._event(pod, "Warning", "Failed", f'Failed to pull image "{image}": {error.details}', name)
            self._event(pod, "Warning", "Failed", "Error: ErrImagePull", name)
            asyncio.get_running_loop().call_later(self.image_backoff.delay(key) + 0.05, self.wake, record.uid)
            return None
        self.image_backoff.forget_prefix(key)
        took = time.monotonic() - pull_started
        self._event(pod, "Normal", "Pulled", f'Successfully pulled image "{image}" in {took:.3f}s '
                                             f'({took:.3f}s including waiting)', name)
        return reference

    async def _container_env(self, record: PodRecord, pod: dict[str, Any],
                             container_spec: dict[str, Any]) -> list[tuple[str, str]] | None:
        """The container's environment (kubelet/envvars.py) with the ConfigMaps and Secrets it
        refers to read through the API; None after marking the container
        CreateContainerConfigError (and a retry soon) when a reference cannot be resolved."""
        meta, spec = pod["metadata"], pod["spec"]
        services: dict[str, str] = {}
        if spec.get("enableServiceLinks", True):
            services.update(service_env([s for s in self.services.list() if s["metadata"]["namespace"] == meta["namespace"]]))
        master = [s for s in self.services.list(namespace="default") if s["metadata"]["name"] == "kubernetes"]
        services.update(service_env(master))
        name = container_spec["name"]
        try:
            objects: envvars.ObjectData = {}
            for kind, object_name in envvars.referenced_objects(container_spec):
                try:
                    obj = await self.client.get(lookup("", "v1", kind), object_name, meta["namespace"])
                    objects[(kind, object_name)] = envvars.object_data(kind, obj)
                except errors.NotFound:
                    objects[(kind, object_name)] = None
            if self._allocatable is None:
                self._allocatable = envvars.node_allocatable(self.data_dir)
            host_network = bool(spec.get("hostNetwork"))
            pod_ip = self.node_ip if host_network else record.pod_ip
            return envvars.make_environment(
                pod, container_spec, objects=objects, service_env=services, pod_ips=[pod_ip] if pod_ip else [],
                host_ips=[self.node_ip], node_allocatable=self._allocatable,
                warn=lambda reason, message: self._event(pod, "Warning", reason, message))
        except envvars.EnvConfigError as error:
            record.waiting[name] = {"reason": "CreateContainerConfigError", "message": str(error)}
            self._event(pod, "Warning", "Failed", f"Error: {error}", name)
            asyncio.get_running_loop().call_later(CONFIG_ERROR_RETRY, self.wake, record.uid)
            return None

    async def _pull_secrets(self, pod: dict[str, Any]) -> list[dict[str, Any]]:
        """The pod's imagePullSecrets (ServiceAccount admission copied its account's in at
        create, as upstream; the Node authorizer lets a kubelet read no ServiceAccount);
        missing ones are skipped, as upstream."""
        namespace = pod["metadata"]["namespace"]
        names = [ref.get("name") for ref in pod["spec"].get("imagePullSecrets") or [] if ref.get("name")]
        secrets = []
        for secret_name in names:
            try:
                secrets.append(await self.client.get(lookup("", "v1", "secrets"), secret_name, namespace))
            except errors.NotFound:
                log.info("pull secret %s/%s of pod %s not found, the image pull may not succeed", namespace,
                         secret_name, pod["metadata"]["name"])
        return secrets

    async def _pull_image(self, pod: dict[str, Any], image: str, sandbox_config: dict[str, Any] | None) -> str:
        """CRI PullImage with each matching pull-secret credential in turn, anonymously when
        none matches (upstream's kuberuntime PullImage). Raises the last CRIError."""
        request: dict[str, Any] = {"image": {"image": image}, "sandbox_config": sandbox_config}
        keyring = credentials.keyring_from_secrets(await self._pull_secrets(pod))
        found = credentials.lookup(keyring, image)
        if not found:
            return (await self.cri.call("PullImage", request))["image_ref"]
        failure: CRIError | None = None
        for credential in found:
            try:
                return (await self.cri.call("PullImage", {**request, "auth": credential.auth_config()}))["image_ref"]
            except CRIError as error:
                failure = error
        raise failure

    def _container_config(self, pod: dict[str, Any], container_spec: dict[str, Any], image_ref: str,
                          restart_count: int, env: list[tuple[str, str]], init_container: bool) -> dict[str, Any]:
        meta, spec = pod["metadata"], pod["spec"]
        name = container_spec["name"]
        command, args = envvars.expand_command(container_spec, env)
        container_dir = self.pod_dir(meta["uid"]) / "containers" / name
        container_dir.mkdir(parents=True, exist_ok=True)
        termination_path = container_spec.get("terminationMessagePath", "/dev/termination-log")
        termination_file = container_dir / f"termination-{restart_count}"
        termination_file.write_bytes(b"")
        mounts = [{"container_path": "/etc/hosts", "host_path": str(self.pod_dir(meta["uid"]) / "etc-hosts")}]
        if spec.get("hostNetwork"):
            mounts = []
        if termination_path:
            mounts.append({"container_path": termination_path, "host_path": str(termination_file)})
        mounts += self.volumes.container_mounts(pod, container_spec, env)
        resources = container_spec.get("resources") or {}
        limits, requests = resources.get("limits") or {}, resources.get("requests") or {}
        linux_resources: dict[str, Any] = {}
        cpu_request = requests.get("cpu", limits.get("cpu"))
        linux_resources["cpu_shares"] = max(2, int(parse_quantity(cpu_request) * 1024)) if cpu_request else 2
        if limits.get("cpu"):
            linux_resources["cpu_period"] = 100000
            linux_resources["cpu_quota"] = max(1000, int(parse_quantity(limits["cpu"]) * 100000))
        if limits.get("memory"):
            linux_resources["memory_limit_in_bytes"] = int(parse_quantity(limits["memory"]))
        qos = pod_status.qos_class(pod)
        # Upstream's OOM score policy, which restrict_oom_score_adj clamps to what we may set.
        linux_resources["oom_score_adj"] = {"Guaranteed": -997, "BestEffort": 1000}.get(qos, 500)
        security = container_spec.get("securityContext") or {}
        pod_security = spec.get("securityContext") or {}
        security_context: dict[str, Any] = {
            "privileged": bool(security.get("privileged")),
            "readonly_rootfs": bool(security.get("readOnlyRootFilesystem")),
            "namespace_options": self._sandbox_config(pod, 0)["linux"]["security_context"]["namespace_options"],
        }
        run_as_user = security.get("runAsUser", pod_security.get("runAsUser"))
        run_as_group = security.get("runAsGroup", pod_security.get("runAsGroup"))
        if run_as_user is not None:
            security_context["run_as_user"] = {"value": int(run_as_user)}
        if run_as_group is not None:
            security_context["run_as_group"] = {"value": int(run_as_group)}
        if pod_security.get("supplementalGroups"):
            security_context["supplemental_groups"] = pod_security["supplementalGroups"]
        capabilities = security.get("capabilities") or {}
        if capabilities:
            security_context["capabilities"] = {
                "add_capabilities": [c if c.startswith("CAP_") or c == "ALL" else f"CAP_{c}" for c in capabilities.get("add") or []],
                "drop_capabilities": [c if c.startswith("CAP_") or c == "ALL" else f"CAP_{c}" for c in capabilities.get("drop") or []]}
        if security.get("allowPrivilegeEscalation") is False:
            security_context["no_new_privs"] = True
        if not security.get("privileged"):
            # containerd masks these for us only when the kubelet asks (upstream default set).
            security_context["masked_paths"] = ["/proc/acpi", "/proc/kcore", "/proc/keys", "/proc/latency_stats",
                                                "/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug",
                                                "/proc/scsi", "/sys/firmware"]
            security_context["readonly_paths"] = ["/proc/asound", "/proc/bus", "/proc/fs", "/proc/irq",
                                                  "/proc/sys", "/proc/sysrq-trigger"]
        annotations = {RESTART_COUNT: str(restart_count),
                       CONTAINER_HASH: container_hash(container_spec),
                       TERMINATION_MESSAGE_PATH: termination_path,
                       "pyk8s.io/termination-message-host-path": str(termination_file),
                       "pyk8s.io/termination-message-policy": container_spec.get("terminationMessagePolicy", "File"),
                       "io.kubernetes.pod.terminationGracePeriod": str(spec.get("terminationGracePeriodSeconds", 30))}
        if init_container:
            annotations[INIT_CONTAINER] = "true"
        return {
            "metadata": {"name": name, "attempt": restart_count},
            "image": {"image": image_ref, "user_specified_image": container_spec.get("image", "")},
            "command": command,
            "args": args,
            "working_dir": container_spec.get("workingDir", ""),
            "envs": [{"key": k, "value": v} for k, v in env],
            "mounts": mounts,
            "labels": {POD_NAME: meta["name"], POD_NAMESPACE: meta["namespace"], POD_UID: meta["uid"],
                       CONTAINER_NAME: name},
            "annotations": annotations,
            "log_path": f"{name}/{restart_count}.log",
            "stdin": bool(container_spec.get("stdin")),
            "stdin_once": bool(container_spec.get("stdinOnce")),
            "tty": bool(container_spec.get("tty")),
            "linux": {"resources": linux_resources, "security_context": security_context},
        }

    async def _start_container(self, record: PodRecord, pod: dict[str, Any], sandbox_id: str,
                               container_spec: dict[str, Any], history: list[dict[str, Any]], *,
                               init_container: bool = False) -> None:
        name = container_spec["name"]
        restart_count = 0
        if history:
            restart_count = int((history[0].get("annotations") or {}).get(RESTART_COUNT, "0")) + 1
        image_ref = await self._ensure_image(record, pod, container_spec)
        if image_ref is None:
            return
        env = await self._container_env(record, pod, container_spec)
        if env is None:
            return
        try:
            config = self._container_config(pod, container_spec, image_ref, restart_count, env, init_container)
        except ContainerMountError as error:  # a refused subPath (upstream's makeMounts)
            record.waiting[name] = {"reason": "CreateContainerConfigError", "message": str(error)}
            self._event(pod, "Warning", "Failed", f"Error: {error}", name)
            asyncio.get_running_loop().call_later(CONFIG_ERROR_RETRY, self.wake, record.uid)
            return
        backoff_entry = self.crash_backoff.entries.get(f"{record.uid}/{name}")
        if backoff_entry is not None:
            config["annotations"][CRASH_BACKOFF] = f"{backoff_entry[0]:g}"
        # Remove exited containers beyond the one kept for `lastState` / `logs --previous`.
        for old in history[1:]:
            try:
                await self.cri.call("RemoveContainer", {"container_id": old["id"]})
            except CRIError:
                pass
        try:
            container_id = (await self.cri.call("CreateContainer", {
                "pod_sandbox_id": sandbox_id, "config": config, "sandbox_config": record.sandbox_config}))["container_id"]
        except CRIError as error:
            record.waiting[name] = {"reason": "CreateContainerError", "message": error.details}
            self._event(pod, "Warning", "Failed", f"Error: {error.details}", name)
            return
        self._event(pod, "Normal", "Created", f"Created container: {name}", name)
        try:
            await self.cri.call("StartContainer", {"container_id": container_id})
        except CRIError as error:
            record.waiting[name] = {"reason": "RunContainerError", "message": error.details}
            self._event(pod, "Warning", "Failed", f"Error: {error.details}", name)
            return
        self._event(pod, "Normal", "Started", f"Started container {name}", name)
        record.waiting.pop(name, None)
        self._link_container_log(pod, name, restart_count, container_id)
        if self.prober is not None and not init_container:
            self.prober.add_container(record.uid, pod, container_spec, container_id, lambda: self.wake(record.uid),
                                      lambda: record.pod_ip)
        lifecycle = (container_spec.get("lifecycle") or {}).get("postStart") or {}
        if lifecycle.get("exec"):
            await self._exec_hook(container_id, lifecycle["exec"].get("command") or [], 30)

    def _link_container_log(self, pod: dict[str, Any], name: str, restart_count: int, container_id: str) -> None:
        """`/var/log/containers/<pod>_<ns>_<container>-<id>.log` -> the CRI log file."""
        meta = pod["metadata"]
        links = self.log_root / "containers"
        links.mkdir(parents=True, exist_ok=True)
        link = links / f"{meta['name']}_{meta['namespace']}_{name}-{container_id}.log"
        target = self.log_directory(pod) / name / f"{restart_count}.log"
        try:
            link.symlink_to(target)
        except FileExistsError:
            pass

    async def _exec_hook(self, container_id: str, command: list[str], timeout: int) -> None:
        try:
            await self.cri.call("ExecSync", {"container_id": container_id, "cmd": command, "timeout": timeout},
                                timeout=timeout + 5)
        except CRIError as error:
            log.info("lifecycle hook in %s failed: %s", container_id[:12], error)

    async def _stop_container(self, container_id: str, pod: dict[str, Any] | None,
                              container_spec: dict[str, Any] | None, grace: int | None = None) -> None:
        if grace is None:
            grace = int(((pod or {}).get("spec") or {}).get("terminationGracePeriodSeconds", 30))
        if container_spec is not None:
            self._event(pod, "Normal", "Killing", f"Stopping container {container_spec['name']}", container_spec["name"])
        pre_stop = ((container_spec or {}).get("lifecycle") or {}).get("preStop") or {}
        started = time.monotonic()
        if pre_stop.get("exec") and grace > 0:
            await self._exec_hook(container_id, pre_stop["exec"].get("command") or [], grace)
        elif pre_stop.get("sleep") and grace > 0:
            await asyncio.sleep(min(grace, int(pre_stop["sleep"].get("seconds", 0))))
        remaining = max(2 if grace > 0 else 0, int(grace - (time.monotonic() - started)))
        try:
            await self.cri.call("StopContainer", {"container_id": container_id, "timeout": remaining},
                                timeout=remaining + 30)
        except CRIError as error:
            if error.code != "NOT_FOUND":
                log.warning("stopping %s failed: %s", container_id[:12], error)

    # ---- termination -------------------------------------------------------------------
    async def _kill_runtime_pod(self, uid: str, *, grace: int, pod: dict[str, Any] | None = None) -> None:
        specs = {c["name"]: c for c in ((pod or {}).get("spec") or {}).get("containers") or []}
        running = [c for c in await self.cri.list_containers({POD_UID: uid}) if c.get("state") == CONTAINER_RUNNING]
        await asyncio.gather(*(self._stop_container(c["id"], pod, specs.get((c.get("labels") or {}).get(CONTAINER_NAME)),
                                                    grace) for c in running))
        for sandbox in await self.cri.list_sandboxes({POD_UID: uid}):
            try:
                await self.cri.call("StopPodSandbox", {"pod_sandbox_id": sandbox["id"]})
            except CRIError as error:
                log.warning("stopping sandbox %s failed: %s", sandbox["id"][:12], error)
        if self.prober is not None:
            for container in running:
                self.prober.forget_container(container["id"])

    async def _remove_runtime_pod(self, uid: str) -> None:
        for container in await self.cri.list_containers({POD_UID: uid}):
            try:
                await self.cri.call("RemoveContainer", {"container_id": container["id"]})
            except CRIError:
                pass
        for sandbox in await self.cri.list_sandboxes({POD_UID: uid}):
            try:
                await self.cri.call("RemovePodSandbox", {"pod_sandbox_id": sandbox["id"]})
            except CRIError as error:
                log.warning("removing sandbox %s failed: %s", sandbox["id"][:12], error)
        remove_pod_cgroups(uid)
        await self.volumes.tear_down(uid)  # unmounts tmpfs before the directory goes
        shutil.rmtree(self.pod_dir(uid), ignore_errors=True)

    async def _terminate(self, record: PodRecord) -> None:
        pod = record.pod
        uid = record.uid
        grace = 30
        if pod is not None:
            grace = int(pod["metadata"].get("deletionGracePeriodSeconds",
                                            pod["spec"].get("terminationGracePeriodSeconds", 30)))
        await self._kill_runtime_pod(uid, grace=grace, pod=pod)
        if pod is not None:
            containers = await self._containers_of(uid)
            await self._write_status(record, pod, containers, False, record.pod_ip)
        if self.prober is not None:
            self.prober.forget_pod(uid)
        # Keep log files of deleted pods out of the way, like upstream's container GC.
        await self._remove_runtime_pod(uid)
        if pod is not None:
            shutil.rmtree(self.log_directory(pod), ignore_errors=True)
            for link in (self.log_root / "containers").glob(f"{pod['metadata']['name']}_{pod['metadata']['namespace']}_*"):
                link.unlink(missing_ok=True)
            meta = pod["metadata"]
            try:
                await self.client.request(
                    "DELETE", f"/api/v1/namespaces/{meta['namespace']}/pods/{meta['name']}",
                    body={"kind": "DeleteOptions", "apiVersion": "v1", "gracePeriodSeconds": 0,
                          "preconditions": {"uid": uid}})
            except (errors.NotFound, errors.Conflict):
                pass
        self.crash_backoff.forget_prefix(uid + "/")
        self.image_backoff.forget_prefix(uid + "/")
        record.done = True
        self.records.pop(uid, None)

    async def remove_all(self) -> None:
        """Stop and remove every sandbox this runtime has (tests, `pyk8s reset`)."""
        for sandbox in await self.cri.list_sandboxes():
            uid = (sandbox.get("labels") or {}).get(POD_UID, "")
            await self._kill_runtime_pod(uid, grace=0)
            await self._remove_runtime_pod(uid)
        await self.volumes.remove_orphans(set())

    # ---- status ------------------------------------------------------------------------
    async def _write_status(self, record: PodRecord, pod: dict[str, Any], containers: list[dict[str, Any]],
                            sandbox_ready: bool, pod_ip: str) -> None:
        by_name: dict[str, list[dict[str, Any]]] = {}
        for container in containers:
            by_name.setdefault((container.get("labels") or {}).get(CONTAINER_NAME, ""), []).append(container)
        await self._refresh_image_names(containers)

        def statuses(specs: list[dict[str, Any]], init: bool) -> list[dict[str, Any]]:
            result = []
            for spec in specs:
                history = by_name.get(spec["name"], [])
                ready = started = None
                if self.prober is not None and history and not init:
                    ready, started = self.prober.readiness(history[0]["id"]), self.prober.started(history[0]["id"])
                if ready is None:
                    ready = True if not init else False
                result.append(pod_status.container_status(
                    spec, history, record.waiting.get(spec["name"]), ready=ready, started=started,
                    image_names=self._image_names))
            return result

        init_statuses = statuses(pod["spec"].get("initContainers") or [], True)
        container_statuses = statuses(pod["spec"].get("containers") or [], False)
        status = pod_status.generate_status(pod, init_statuses=init_statuses, statuses=container_statuses,
                                            sandbox_ready=sandbox_ready, pod_ip=pod_ip, host_ip=self.node_ip)
        if record.eviction is not None and status["phase"] not in ("Succeeded", "Failed"):
            status.update(phase="Failed", reason="Evicted", message=record.eviction)
        written = await self.writer.write(pod, status)
        if written is not None and record.pod is not None and \
                written["metadata"].get("resourceVersion") != record.pod["metadata"].get("resourceVersion"):
            # Our write is newer than what the informer delivered so far.
            if int(written["metadata"]["resourceVersion"]) > int(record.pod["metadata"]["resourceVersion"]):
                record.pod = written

    async def _refresh_image_names(self, containers: list[dict[str, Any]]) -> None:
        for container in containers:
            reference = container.get("image_ref", "")
            if reference and reference not in self._image_names:
                try:
                    image = await self.cri.image_status(reference)
                except CRIError:
                    image = None
                digests = (image or {}).get("repo_digests") or []
                self._image_names[reference] = digests[0] if digests else reference


def remove_pod_cgroups(uid: str) -> None:
    """containerd leaves pod cgroup parents behind: remove them in every v1 hierarchy."""
    root = Path("/sys/fs/cgroup")
    for parent in ("kubepods", "kubepods/burstable", "kubepods/besteffort"):
        for hierarchy in root.glob("*"):
            directory = hierarchy / parent / f"pod{uid}"
            if directory.is_dir():
                try:
                    directory.rmdir()
                except OSError:
                    pass
