"""The control-plane process: storage, API server (and, with later issues, controllers,
scheduler and the embedded agent) started in order and stopped in reverse.

`run_server(config)` is what `pyk8s server` calls; it blocks until SIGTERM/SIGINT.
"""

from __future__ import annotations

import asyncio
import gc
import ipaddress
import logging
import os
import signal
import socket
from dataclasses import dataclass, field
from pathlib import Path

from pyk8s.hostnet import host_ipv4

log = logging.getLogger("pyk8s.server")


DEFAULT_DATA_DIR = Path("/var/lib/pyk8s")


@dataclass
class ServerConfig:
    data_dir: Path = DEFAULT_DATA_DIR
    bind_address: str = "0.0.0.0"
    https_port: int = 6443
    advertise_address: str = ""  # default: first non-loopback IPv4, else 127.0.0.1
    datastore: str = ""  # "" = sqlite:<data-dir>/server/state.db ; "sqlite:PATH" ; "etcd://H:P,H:P" (cluster/datastore.py)
    etcd_cafile: str = ""  # TLS to an external etcd (--datastore https://...), upstream's --etcd-cafile
    etcd_certfile: str = ""
    etcd_keyfile: str = ""
    service_cidr: str = "10.43.0.0/16"
    cluster_cidr: str = "10.42.0.0/16"
    disable_agent: bool = False
    disable_controllers: bool = False  # API only: no controllers, no scheduler (tests of the API alone)
    extra_sans: list[str] = field(default_factory=list)
    registry_mirrors: dict[str, str] = field(default_factory=dict)  # registry host -> mirror URL
    resolv_conf: str = ""  # k3s's --resolv-conf: upstream resolvers of pods and cluster DNS
    proxy_mode: str = "nftables"  # kube-proxy's --proxy-mode: nftables or iptables (pyk8s.proxy)
    secrets_encryption: bool = False  # k3s's flag: Secrets encrypted at rest (cluster/secretsencryption.py)
    audit_log: str = ""  # upstream's --audit-log-path (apiserver/audit.py); "" = no auditing
    audit_policy_file: str = ""  # "" = every request at Metadata level
    audit_log_maxsize: int = 0  # MB before rotation; 0 = never
    audit_log_maxbackup: int = 0  # rotated files kept; 0 = all
    node_name: str = ""  # the embedded agent's node (default: the hostname)
    node_ip: str = ""  # the embedded agent's address (default: this host's, see pyk8s.hostnet)
    flannel_backend: str = "vxlan"  # k3s's --flannel-backend: vxlan | host-gw | none
    controller_manager_args: list[str] = field(default_factory=list)  # k3s's --kube-controller-manager-arg
    # Several servers on embedded etcd (cluster/servercluster.py): k3s's flags.
    cluster_init: bool = False  # start an embedded etcd cluster (migrating SQLite state)
    join_server: str = ""  # --server URL of a server to join, with --token (its server-token)
    token: str = ""
    cluster_reset_restore_path: str = ""  # restore an etcd snapshot as a new one-member cluster

    @property
    def server_token_path(self) -> Path:
        """What another server joins with: `pyk8s server --server URL --token "$(cat it)"`."""
        return self.data_dir / "server-token"

    authorization_mode: str = "RBAC"  # upstream's --authorization-mode: "RBAC" or "AlwaysAllow" (apiserver/authz.py)

    @property
    def pod_log_root(self) -> Path:
        """Where pod logs go: /var/log/pods and /var/log/containers for the default data dir
        (DESIGN.md; what `hostPath: /var/log` shows in book 5.6), inside the data dir for any
        other (`--data-dir` moves every file the cluster writes)."""
        if self.data_dir.absolute() == DEFAULT_DATA_DIR:
            return Path("/var/log")
        return self.data_dir / "agent" / "logs"

    @property
    def kubeconfig_path(self) -> Path:
        return self.data_dir / "kubeconfig.yaml"

    @property
    def node_token_path(self) -> Path:
        """What another node joins with: `pyk8s agent --server URL --token "$(cat it)"`."""
        return self.data_dir / "node-token"

    @property
    def datastore_path(self) -> Path:
        from pyk8s.cluster.datastore import is_etcd_datastore
        if self.datastore.startswith("sqlite:"):
            return Path(self.datastore[len("sqlite:"):])
        if self.datastore and not is_etcd_datastore(self.datastore):
            raise ValueError(f"unsupported datastore {self.datastore!r} (expected sqlite:PATH or etcd://HOST:PORT[,...])")
        return self.data_dir / "server" / "state.db"

    def resolved_advertise_address(self) -> str:
        if self.advertise_address:
            return self.advertise_address
        if self.bind_address not in ("0.0.0.0", "::", ""):
            return self.bind_address
        return host_ipv4() or "127.0.0.1"

    def kubernetes_service_ip(self) -> str:
        """The first address of the service CIDR: the `kubernetes` Service (10.43.0.1)."""
        network = ipaddress.ip_network(self.service_cidr, strict=False)
        return str(network.network_address + 1)

    def cluster_dns_ip(self) -> str:
        """The tenth address of the service CIDR: the `kube-dns` Service (10.43.0.10, k3s's)."""
        network = ipaddress.ip_network(self.service_cidr, strict=False)
        return str(network.network_address + 10)

    def pod_gateway_ip(self) -> str:
        """The embedded node's side of its pod bridge (first /24 of the cluster CIDR, .1)."""
        network = ipaddress.ip_network(self.cluster_cidr, strict=False)
        return str(network.network_address + 1)


async def serve(config: ServerConfig, stop: asyncio.Event) -> None:
    """Start every control-plane component, wait for `stop`, stop them in reverse order."""
    from pyk8s.apiserver.bootstrap import ensure_cluster_info, ensure_node_join_token
    from pyk8s.apiserver.server import APIServer
    from pyk8s.client import Client
    from pyk8s.client.nodetoken import format_node_token
    from pyk8s.cluster.kubeconfig import write_kubeconfig
    from pyk8s.cluster.files import write_file_atomic
    from pyk8s.cluster.pki import client_ssl_context, ensure_pki, issue_client_cert
    from pyk8s.controllers.manager import ControllerManager
    from pyk8s.storage.sqlite import SQLiteStore

    config.data_dir.mkdir(parents=True, exist_ok=True)
    os.chmod(config.data_dir, 0o700)
    advertise = config.resolved_advertise_address()
    hosts = ["127.0.0.1", "localhost", advertise, config.kubernetes_service_ip(),
             "kubernetes", "kubernetes.default", "kubernetes.default.svc",
             "kubernetes.default.svc.cluster.local", socket.gethostname(), *config.extra_sans]
    if config.bind_address not in ("0.0.0.0", "::", ""):
        hosts.append(config.bind_address)
    pods_use_relay = ipaddress.ip_address(advertise).is_loopback and not config.disable_agent
    if pods_use_relay:
        hosts.append(config.pod_gateway_ip())  # how pods reach a loopback-only API (the relay below)
    from pyk8s.cluster.servercluster import start_embedded_datastore
    # A joining server fetches the cluster's CA before its certificates are made.
    etcd_member, etcd_store = await start_embedded_datastore(config, advertise, hosts)
    if etcd_member is not None:
        etcd_member.on_removed = stop.set  # removed from the cluster while running: nothing left to serve
    from pyk8s.cluster.datastore import is_etcd_datastore
    shared_store = etcd_member is not None or is_etcd_datastore(config.datastore)
    pki = ensure_pki(config.data_dir / "server" / "tls", hosts)

    config.datastore_path.parent.mkdir(parents=True, exist_ok=True)
    from pyk8s.cluster.secretsencryption import wrap_store
    from pyk8s.cluster.datastore import describe, open_datastore
    store = wrap_store(etcd_store or open_datastore(config), config.data_dir, config.secrets_encryption)
    await store.start()
    log.info("storage started: %s (revision %d)", describe(etcd_store or store, config), store.revision)
    from pyk8s.controllers.kubernetesservice import apiserver_lease_name
    from pyk8s.storage.keylayout import move_legacy_keys
    # Beneath Secrets encryption: values as stored.
    own_address = config.pod_gateway_ip() if pods_use_relay else advertise  # as the identity Lease names it below
    await move_legacy_keys(getattr(store, "inner", store), own_lease=apiserver_lease_name(own_address, config.https_port))

    apiserver = APIServer(store, pki, config)
    if etcd_member is not None:
        from pyk8s.cluster.serverjoin import BOOTSTRAP_PATH, bootstrap_handler, ensure_server_token
        server_token = ensure_server_token(config.data_dir, pki.ca_cert.read_bytes())
        apiserver.extra_routes[BOOTSTRAP_PATH] = bootstrap_handler(
            config.data_dir, lambda: server_token,
            lambda: [url for member in etcd_member.members() for url in member.client_urls])
        log.info("server token: %s (join a server: pyk8s server --server https://%s:%d --token \"$(cat %s)\")",
                 config.server_token_path, _url_host(advertise), config.https_port, config.server_token_path)
    await apiserver.start()
    log.info("apiserver started: https://%s:%d", config.bind_address, config.https_port)

    # What other nodes join with (kubeadm init's cluster-info and bootstrap token, in the
    # k3s node-token shape), before the kubeconfig that says the server is ready.
    ca_pem = pki.ca_cert.read_bytes()
    advertise_url = f"https://{_url_host(advertise)}:{config.https_port}"
    await ensure_cluster_info(apiserver.registry, advertise_url, ca_pem)
    credential = await ensure_node_join_token(apiserver.registry)
    write_file_atomic(config.node_token_path, (format_node_token(ca_pem, credential) + "\n").encode(), 0o600)
    log.info("node token: %s (join a node: pyk8s agent --server %s --token \"$(cat %s)\")",
             config.node_token_path, advertise_url, config.node_token_path)

    local = "127.0.0.1" if config.bind_address in ("0.0.0.0", "::", "") else config.bind_address
    api_url = f"https://{_url_host(local)}:{config.https_port}"

    # Every other component is a client of the API like any other, with its own identity.
    clients = []

    def component_client(common_name: str, organizations: list[str]) -> Client:
        cert, key = issue_client_cert(pki, common_name, organizations, config.data_dir / "server" / "tls")
        client = Client(api_url, client_ssl_context(pki, cert, key), field_manager=common_name.rpartition(":")[2])
        clients.append(client)
        return client

    components = []
    # The address pods reach the API at (the `kubernetes` Service's endpoint, the DNS pods'
    # API URL): the advertise address, or, when the API listens on loopback only (isolated
    # namespaces, tests), the node's pod gateway relayed to it (cluster/addons.py).
    pod_facing_address = advertise
    if pods_use_relay:
        from pyk8s.cluster.addons import LoopbackRelay

        pod_facing_address = config.pod_gateway_ip()
        relay = LoopbackRelay(pod_facing_address, config.https_port, config.https_port, target_host=local)
        await relay.start()
        components.append(relay)
    if not config.disable_controllers:
        controller_client = component_client("system:kube-controller-manager", [])
        from pyk8s.controllers.manager import controller_options
        def new_manager():
            return ControllerManager(controller_client,
                                     options=controller_options(config.cluster_cidr, config.controller_manager_args))
        manager = _leader_elected(shared_store, controller_client, "kube-controller-manager", new_manager)
        await manager.start()
        components.append(manager)
        # Upstream's API server keeps the `kubernetes` Service; it needs our address and port.
        from pyk8s.controllers.kubernetesservice import KubernetesServiceController
        # It runs on every server, with the API server's own identity (it writes the
        # servers' endpoint leases, as upstream's API server does).
        apiserver_client = component_client("system:apiserver", ["system:masters"])
        if etcd_member is not None:
            from pyk8s.cluster.servercluster import MemberRemover
            remover = MemberRemover(apiserver_client, etcd_member)
            await remover.start()
            components.append(remover)
        keeper = KubernetesServiceController(apiserver_client, cluster_ip=config.kubernetes_service_ip(),
                                             address=pod_facing_address, secure_port=config.https_port)
        await keeper.start()
        components.append(keeper)
        # Node client certificates: CSRs approved for bootstrap tokens and renewing nodes,
        # signed with the cluster CA (controllers/certificates.py).
        from pyk8s.controllers.certificates import CSRApprovingController, CSRSigningController
        for csr_controller in (CSRApprovingController(controller_client),
                               CSRSigningController(controller_client, ca_pem, pki.ca_key.read_bytes())):
            await csr_controller.start()
            components.append(csr_controller)
        # kube-root-ca.crt in every namespace and legacy token Secrets: they need the CA and
        # the service-account signing key, which only the control plane holds.
        from pyk8s.controllers.serviceaccounttokens import LegacyTokenController, RootCACertPublisher
        for credentials_controller in (
                RootCACertPublisher(controller_client, ca_pem),
                LegacyTokenController(controller_client, sign=apiserver.service_account_keys.sign, ca_pem=ca_pem)):
            await credentials_controller.start()
            components.append(credentials_controller)
        scheduler_client = component_client("system:kube-scheduler", [])
        scheduler = _leader_elected(shared_store, scheduler_client, "kube-scheduler",
                                    lambda: _optional_scheduler(scheduler_client))
        if scheduler is not None:
            await scheduler.start()
            log.info("scheduler started")
            components.append(scheduler)

    if not config.disable_agent:
        from pyk8s.kubelet.agent import Agent

        from pyk8s.kubelet.node import first_pod_cidr

        node_name = (config.node_name or socket.gethostname()).lower()
        agent = Agent(component_client(f"system:node:{node_name}", ["system:nodes"]),
                      node_name=node_name, data_dir=config.data_dir / "agent", node_ip=config.node_ip,
                      flannel_backend=config.flannel_backend,
                      # without the controller manager no node IPAM hands out pod CIDRs
                      pod_cidr=first_pod_cidr(config.cluster_cidr) if config.disable_controllers else "", log_root=config.pod_log_root,
                      cluster_cidr=config.cluster_cidr, client_ca=pki.ca_cert, registry_mirrors=config.registry_mirrors,
                      cluster_dns=config.cluster_dns_ip(), resolv_conf=config.resolv_conf,
                      proxy_mode=config.proxy_mode)
        await agent.start()
        log.info("agent started: node %s", node_name)
        components.append(agent)
        # NodeRestriction keeps a kubelet from setting node-role labels on itself: the
        # control plane marks its own node, as kubeadm does with its admin credentials.
        await _label_control_plane_node(Client(api_url, client_ssl_context(pki)), node_name)
        if etcd_member is not None:
            from pyk8s.cluster.servercluster import annotate_node_member
            await annotate_node_member(component_client("system:apiserver", ["system:masters"]), node_name,
                                       etcd_member.name)
        if not config.disable_controllers:
            await _start_dns_addon(config, component_client)

    write_kubeconfig(config.kubeconfig_path, api_url, pki)
    log.info("kubeconfig written: %s", config.kubeconfig_path)
    apiserver.mark_ready()

    try:
        await stop.wait()
    finally:
        log.info("stopping")
        for component in reversed(components):
            await component.stop()
        for client in clients:
            await client.close()
        await apiserver.stop()
        await store.close()
        if etcd_member is not None:
            await etcd_member.stop()
        log.info("stopped")
    if etcd_member is not None and etcd_member.removed is not None:
        raise SystemExit(f"pyk8s server: {etcd_member.removed}")


async def _start_dns_addon(config: ServerConfig, component_client) -> None:
    """Apply the cluster DNS add-on (cluster/addons.py): its pods reach the API in-cluster,
    with their ServiceAccount token, through the `kubernetes` Service."""
    from pyk8s.cluster.addons import apply_objects, delete_old_credentials, dns_objects
    from pyk8s.kubelet.images.python import dns_image_name

    try:
        # Add-on manifests carry RBAC objects (the DNS's ClusterRole and binding): applying
        # them needs every right they grant, so the applier is an admin, as k3s's deploy
        # controller is.
        client = component_client("system:pyk8s:addons", ["system:masters"])
        await apply_objects(client, dns_objects(
            image=await asyncio.to_thread(dns_image_name), dns_ip=config.cluster_dns_ip(), zone="cluster.local"))
        await delete_old_credentials(client)
    except Exception:  # noqa: BLE001 - a cluster without DNS still serves its API
        log.exception("applying the cluster DNS add-on failed")


def _leader_elected(shared_store: bool, client, lease_name: str, factory):
    """On etcd (embedded or external), where other servers may share the store: the component
    runs only while this server holds Lease kube-system/<lease_name>
    (client/leaderelection.py); alone on SQLite, always."""
    if not shared_store:
        return factory()
    from pyk8s.client.leaderelection import LeaderElected
    return LeaderElected(client, lease_name, factory)


async def _label_control_plane_node(client, node_name: str) -> None:
    from pyk8s.api.resources import lookup

    try:
        await client.patch(lookup("", "v1", "nodes"), node_name,
                           {"metadata": {"labels": {"node-role.kubernetes.io/control-plane": "true"}}})
    except Exception:  # noqa: BLE001 - a missing role label is cosmetic
        log.exception("labelling node %s as control plane failed", node_name)
    finally:
        await client.close()


def _optional_scheduler(client):
    try:
        from pyk8s.scheduler import Scheduler
    except ImportError:
        log.warning("scheduler is not available yet")
        return None
    return Scheduler(client)


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host


def run_server(config: ServerConfig) -> None:
    """Blocking entry point for `pyk8s server`: runs until SIGTERM or SIGINT."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    # The server allocates many short-lived dicts (decoded objects): collect the young
    # generation less often than CPython's default of every 700 allocations.
    gc.set_threshold(20_000, 20, 20)

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stop.set)
        await serve(config, stop)

    asyncio.run(main())
