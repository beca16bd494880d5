"""Services + EndpointSlices → iptables-restore text: a pure function, no I/O.

The chains have upstream kube-proxy's (iptables mode) names and shapes, so `iptables-save`
reads like on any Kubernetes node:

nat table
    PREROUTING, OUTPUT   -j KUBE-SERVICES
    POSTROUTING          -j KUBE-POSTROUTING (MASQUERADE what carries the 0x4000 mark)
    KUBE-MARK-MASQ       sets the 0x4000 mark
    KUBE-SERVICES        one rule per cluster IP, external IP and load-balancer IP of each
                         service port (→ KUBE-SVC / KUBE-SVL / KUBE-EXT), last a jump to
                         KUBE-NODEPORTS for traffic to any local address
    KUBE-NODEPORTS       one rule per node port (→ KUBE-EXT)
    KUBE-SVC-<hash>      per service port: mark traffic from outside the cluster CIDR for
                         masquerade, then spread over the endpoints with
                         `-m statistic --mode random --probability 1/(n-i)` (ClientIP
                         affinity first checks `-m recent` lists, one per endpoint)
    KUBE-SVL-<hash>      the same over this node's endpoints only (traffic policy Local)
    KUBE-EXT-<hash>      external traffic (node ports, external and LB IPs): masquerade, or
                         for externalTrafficPolicy Local keep the client's address and use
                         KUBE-SVL, except traffic from pods and from the node itself
    KUBE-SEP-<hash>      per endpoint: masquerade hairpin traffic (the endpoint reaching
                         itself through its service), then DNAT

filter table
    INPUT   -m conntrack --ctstate NEW -j KUBE-EXTERNAL-SERVICES ; -j KUBE-FIREWALL
    FORWARD -m conntrack --ctstate NEW -j KUBE-SERVICES / KUBE-EXTERNAL-SERVICES ; -j KUBE-FORWARD
    OUTPUT  -m conntrack --ctstate NEW -j KUBE-SERVICES ; -j KUBE-FIREWALL
    KUBE-SERVICES / KUBE-EXTERNAL-SERVICES  REJECT (icmp-port-unreachable) for service ports
                         without endpoints, so a connection fails at once instead of hanging;
                         DROP when a traffic policy Local finds no endpoint on this node
    KUBE-FIREWALL        drops packets to 127.0.0.0/8 from elsewhere (route_localnet is on
                         for node ports on 127.0.0.1)
    KUBE-FORWARD         accepts marked and established traffic when FORWARD's policy drops

`render` writes every chain (a full sync) or, given the services that changed, only the
top-level chains plus the changed services' own chains (a partial sync); chains that are
no longer used are flushed and deleted in the same transaction (`iptables-restore
--noflush` applies it atomically, so traffic never sees a half-written table).
"""

from __future__ import annotations

import base64
import hashlib
import socket
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, Iterable

MASQ_MARK = "0x4000"
SERVICE_NAME_LABEL = "kubernetes.io/service-name"
DEFAULT_AFFINITY_SECONDS = 10800  # upstream's sessionAffinityConfig.clientIP.timeoutSeconds default

# Chains this proxy owns; everything it writes starts with KUBE-.
NAT_TOP_CHAINS = ("KUBE-SERVICES", "KUBE-NODEPORTS", "KUBE-POSTROUTING", "KUBE-MARK-MASQ")
FILTER_CHAINS = ("KUBE-SERVICES", "KUBE-EXTERNAL-SERVICES", "KUBE-FORWARD", "KUBE-FIREWALL")
SERVICE_CHAIN_PREFIXES = ("KUBE-SVC-", "KUBE-SVL-", "KUBE-EXT-", "KUBE-SEP-", "KUBE-FW-")

# Jumps from the built-in chains: (table, chain, rule after "-A CHAIN ").
JUMPS = (
    ("nat", "PREROUTING", '-m comment --comment "kubernetes service portals" -j KUBE-SERVICES'),
    ("nat", "OUTPUT", '-m comment --comment "kubernetes service portals" -j KUBE-SERVICES'),
    ("nat", "POSTROUTING", '-m comment --comment "kubernetes postrouting rules" -j KUBE-POSTROUTING'),
    ("filter", "INPUT", '-m conntrack --ctstate NEW -m comment --comment "kubernetes externally-visible service portals" -j KUBE-EXTERNAL-SERVICES'),
    ("filter", "INPUT", "-j KUBE-FIREWALL"),
    ("filter", "FORWARD", '-m conntrack --ctstate NEW -m comment --comment "kubernetes service portals" -j KUBE-SERVICES'),
    ("filter", "FORWARD", '-m conntrack --ctstate NEW -m comment --comment "kubernetes externally-visible service portals" -j KUBE-EXTERNAL-SERVICES'),
    ("filter", "FORWARD", '-m comment --comment "kubernetes forwarding rules" -j KUBE-FORWARD'),
    ("filter", "OUTPUT", '-m conntrack --ctstate NEW -m comment --comment "kubernetes service portals" -j KUBE-SERVICES'),
    ("filter", "OUTPUT", "-j KUBE-FIREWALL"),
)


@dataclass(frozen=True)
class Endpoint:
    ip: str
    port: int
    ready: bool = True
    serving: bool = True
    terminating: bool = False
    node_name: str = ""
    address: str = field(default="", compare=False, repr=False)  # "ip:port", filled in

    def __post_init__(self) -> None:
        object.__setattr__(self, "address", f"{self.ip}:{self.port}")


@dataclass(frozen=True)
class ServicePort:
    """One port of one Service, as the proxy needs it (upstream's ServicePortName + info)."""
    namespace: str
    name: str
    port_name: str
    protocol: str  # TCP / UDP / SCTP
    cluster_ip: str
    port: int
    node_port: int = 0
    external_ips: tuple[str, ...] = ()
    load_balancer_ips: tuple[str, ...] = ()
    affinity_seconds: int = 0  # 0: no session affinity
    external_local: bool = False
    internal_local: bool = False
    # Upstream's ServicePortName string: ns/name:port (ns/name for an unnamed port); filled in.
    display: str = field(default="", compare=False, repr=False)

    def __post_init__(self) -> None:
        key = f"{self.namespace}/{self.name}"
        object.__setattr__(self, "display", f"{key}:{self.port_name}" if self.port_name else key)

    @property
    def service_key(self) -> str:
        return f"{self.namespace}/{self.name}"

    @property
    def proto(self) -> str:
        return self.protocol.lower()

    @property
    def has_external(self) -> bool:
        return bool(self.node_port or self.external_ips or self.load_balancer_ips)


# --- from API objects ----------------------------------------------------------------------

def service_ports(service: dict[str, Any]) -> list[ServicePort]:
    """The proxied ports of a Service: none for headless (clusterIP None) and ExternalName."""
    spec = service.get("spec") or {}
    cluster_ip = spec.get("clusterIP") or ""
    if spec.get("type") == "ExternalName" or cluster_ip in ("", "None") or ":" in cluster_ip:
        return []
    meta = service["metadata"]
    service_type = spec.get("type") or "ClusterIP"
    affinity = 0
    if spec.get("sessionAffinity") == "ClientIP":
        config = ((spec.get("sessionAffinityConfig") or {}).get("clientIP") or {})
        affinity = int(config.get("timeoutSeconds") or DEFAULT_AFFINITY_SECONDS)
    external_ips = tuple(ip for ip in spec.get("externalIPs") or () if ":" not in ip)
    lb_ips: tuple[str, ...] = ()
    if service_type == "LoadBalancer":
        ingress = ((service.get("status") or {}).get("loadBalancer") or {}).get("ingress") or ()
        lb_ips = tuple(entry["ip"] for entry in ingress if entry.get("ip") and ":" not in entry["ip"])
    externally_visible = service_type in ("NodePort", "LoadBalancer") or bool(external_ips)
    ports = []
    for port in spec.get("ports") or ():
        node_port = int(port.get("nodePort") or 0) if service_type in ("NodePort", "LoadBalancer") else 0
        ports.append(ServicePort(
            namespace=meta.get("namespace", "default"), name=meta["name"], port_name=port.get("name") or "",
            protocol=port.get("protocol") or "TCP", cluster_ip=cluster_ip, port=int(port["port"]),
            node_port=node_port, external_ips=external_ips, load_balancer_ips=lb_ips, affinity_seconds=affinity,
            external_local=externally_visible and spec.get("externalTrafficPolicy") == "Local",
            internal_local=spec.get("internalTrafficPolicy") == "Local"))
    return ports


def slice_endpoints(endpoint_slice: dict[str, Any]) -> dict[tuple[str, str], list[Endpoint]]:
    """(port name, protocol) → endpoints of one EndpointSlice (IPv4 slices only)."""
    if endpoint_slice.get("addressType", "IPv4") != "IPv4":
        return {}
    found: dict[tuple[str, str], list[Endpoint]] = {}
    entries = endpoint_slice.get("endpoints") or ()
    for port in endpoint_slice.get("ports") or ():
        number = port.get("port")
        if not number:
            continue
        endpoints = found.setdefault((port.get("name") or "", port.get("protocol") or "TCP"), [])
        for entry in entries:
            conditions = entry.get("conditions") or {}
            # Upstream: a nil ready means ready; nil serving means what ready says.
            ready = conditions.get("ready") is not False
            serving = conditions.get("serving")
            serving = ready if serving is None else bool(serving)
            terminating = bool(conditions.get("terminating"))
            for ip in (entry.get("addresses") or ())[:1]:
                endpoints.append(Endpoint(ip=ip, port=int(number), ready=ready and not terminating,
                                          serving=serving, terminating=terminating,
                                          node_name=entry.get("nodeName") or ""))
    return found


def service_of_slice(endpoint_slice: dict[str, Any]) -> str | None:
    name = ((endpoint_slice.get("metadata") or {}).get("labels") or {}).get(SERVICE_NAME_LABEL)
    if not name:
        return None
    return f"{endpoint_slice['metadata'].get('namespace', 'default')}/{name}"


@dataclass
class ServiceState:
    """One Service's ports and, per port, its endpoints merged over all its slices."""
    ports: list[ServicePort]
    endpoints: dict[tuple[str, str], list[Endpoint]] = field(default_factory=dict)

    def endpoints_of(self, port: ServicePort) -> list[Endpoint]:
        return self.endpoints.get((port.port_name, port.protocol), [])


def build_state(service: dict[str, Any], slices: Iterable[dict[str, Any]]) -> ServiceState:
    merged: dict[tuple[str, str], dict[str, Endpoint]] = {}
    for endpoint_slice in slices:
        for key, endpoints in slice_endpoints(endpoint_slice).items():
            bucket = merged.setdefault(key, {})
            for endpoint in endpoints:
                bucket.setdefault(endpoint.address, endpoint)  # the same address in two slices counts once
    return ServiceState(ports=service_ports(service),
                        endpoints={key: sorted(bucket.values(), key=_address_order) for key, bucket in merged.items()})


def _address_order(endpoint: Endpoint) -> tuple:
    return socket.inet_aton(endpoint.ip), endpoint.port


# --- endpoint choice (upstream's topology.CategorizeEndpoints, without topology hints) -----

def usable(endpoints: list[Endpoint]) -> list[Endpoint]:
    """Ready endpoints; when there are none, the serving ones that are terminating (so a
    rolling update that terminates the last ready pod still has somewhere to go)."""
    ready = [e for e in endpoints if e.ready]
    return ready or [e for e in endpoints if e.serving and e.terminating]


def local_usable(endpoints: list[Endpoint], node_name: str) -> list[Endpoint]:
    return usable([e for e in endpoints if e.node_name == node_name])


# --- names ---------------------------------------------------------------------------------

@lru_cache(maxsize=65536)
def _hashed(prefix: str, text: str) -> str:
    # Upstream: base32 of the sha256 of "ns/name:port" + protocol (+ endpoint), 16 chars.
    # (The first 10 bytes make exactly those 16 base32 characters.)
    return prefix + base64.b32encode(hashlib.sha256(text.encode()).digest()[:10]).decode()


def svc_chain(port: ServicePort) -> str:
    return _hashed("KUBE-SVC-", port.display + port.protocol.lower())


def svl_chain(port: ServicePort) -> str:
    return _hashed("KUBE-SVL-", port.display + port.protocol.lower())


def ext_chain(port: ServicePort) -> str:
    return _hashed("KUBE-EXT-", port.display + port.protocol.lower())


def sep_chain(port: ServicePort, endpoint: Endpoint) -> str:
    return _hashed("KUBE-SEP-", port.display + port.protocol.lower() + endpoint.address)


# --- rendering -----------------------------------------------------------------------------

@dataclass
class Rendered:
    text: str
    chains: dict[str, set[str]]  # service key → the nat chains its ports use now
    has_endpoints: dict[str, bool]  # ServicePort.display → whether it has usable endpoints


def render(services: dict[str, ServiceState], *, node_name: str, cluster_cidr: str,
           dirty: set[str] | None = None, maybe_stale: Iterable[str] = (),
           missing_jumps: Iterable[tuple[str, str, str]] = ()) -> Rendered:
    """iptables-restore input (filter then nat) for `services` (key "ns/name" → state).

    `dirty` None writes every service's chains (full sync); otherwise only the chains of the
    services in `dirty` are rewritten and every other service chain is left as it is.
    Of `maybe_stale` (the service chains the table has, or had for the dirty services),
    those no service uses any more are flushed and deleted. `missing_jumps` are the jumps
    from built-in chains that the tables do not have yet."""
    filter_rules: list[str] = []
    nat_chains: list[str] = list(NAT_TOP_CHAINS)
    nat_rules: list[str] = []
    services_rules: list[str] = []
    nodeports_rules: list[str] = []
    chains: dict[str, set[str]] = {}
    has_endpoints: dict[str, bool] = {}
    external_filter: list[str] = []

    for key in sorted(services):
        state = services[key]
        write_chains = dirty is None or key in dirty
        used: set[str] = set()
        for port in state.ports:
            endpoints = state.endpoints_of(port)
            cluster_eps = usable(endpoints)
            local_eps = local_usable(endpoints, node_name) if (port.internal_local or port.external_local) else []
            has_endpoints[port.display] = bool(cluster_eps)
            svc, svl, ext = svc_chain(port), svl_chain(port), ext_chain(port)
            proto = f"-m {port.proto} -p {port.proto}"
            name = port.display
            internal_eps = local_eps if port.internal_local else cluster_eps
            internal_chain = svl if port.internal_local else svc
            external_eps = local_eps if port.external_local else cluster_eps

            # Top level: KUBE-SERVICES / KUBE-NODEPORTS in nat, REJECT/DROP in filter.
            if internal_eps:
                services_rules.append(f'-A KUBE-SERVICES -m comment --comment "{name} cluster IP" {proto} '
                                      f"-d {port.cluster_ip} --dport {port.port} -j {internal_chain}")
            else:
                target, why = (("DROP", "has no local endpoints") if cluster_eps else ("REJECT", "has no endpoints"))
                filter_rules.append(f'-A KUBE-SERVICES -m comment --comment "{name} {why}" {proto} '
                                    f"-d {port.cluster_ip} --dport {port.port} -j {_filter_target(target)}")
            if port.has_external:
                if cluster_eps:
                    for ip in port.external_ips:
                        services_rules.append(f'-A KUBE-SERVICES -m comment --comment "{name} external IP" {proto} '
                                              f"-d {ip} --dport {port.port} -j {ext}")
                    for ip in port.load_balancer_ips:
                        services_rules.append(f'-A KUBE-SERVICES -m comment --comment "{name} loadbalancer IP" '
                                              f"{proto} -d {ip} --dport {port.port} -j {ext}")
                    if port.node_port:
                        nodeports_rules.append(f'-A KUBE-NODEPORTS -m comment --comment "{name}" {proto} '
                                               f"--dport {port.node_port} -j {ext}")
                if not external_eps:
                    target, why = (("DROP", "has no local endpoints") if cluster_eps else ("REJECT", "has no endpoints"))
                    target = _filter_target(target)
                    for ip in (*port.external_ips, *port.load_balancer_ips):
                        external_filter.append(f'-A KUBE-EXTERNAL-SERVICES -m comment --comment "{name} {why}" '
                                               f"{proto} -d {ip} --dport {port.port} -j {target}")
                    if port.node_port:
                        external_filter.append(f'-A KUBE-EXTERNAL-SERVICES -m comment --comment "{name} {why}" '
                                               f"-m addrtype --dst-type LOCAL {proto} --dport {port.node_port} "
                                               f"-j {target}")

            # The service's own chains.
            used.add(svc)
            wanted_seps = cluster_eps + [e for e in local_eps if e not in cluster_eps] if local_eps else cluster_eps
            if write_chains:
                nat_chains.append(svc)
                if cluster_eps:
                    nat_rules.append(f'-A {svc} -m comment --comment "{name} cluster IP" {proto} -d {port.cluster_ip} '
                                     f"--dport {port.port} ! -s {cluster_cidr} -j KUBE-MARK-MASQ")
                    _balance(nat_rules, svc, port, cluster_eps)
            if port.internal_local or port.external_local:
                used.add(svl)
                if write_chains:
                    nat_chains.append(svl)
                    if local_eps and port.internal_local:
                        nat_rules.append(f'-A {svl} -m comment --comment "{name} cluster IP" {proto} '
                                         f"-d {port.cluster_ip} --dport {port.port} ! -s {cluster_cidr} -j KUBE-MARK-MASQ")
                    _balance(nat_rules, svl, port, local_eps)
            if port.has_external:
                used.add(ext)
                if write_chains:
                    nat_chains.append(ext)
                    if port.external_local:
                        # Keep the client's address (no masquerade), so only this node's endpoints
                        # can answer; pods and the node itself may still use every endpoint.
                        nat_rules.append(f'-A {ext} -m comment --comment "pod traffic for {name} external '
                                         f'destinations" -s {cluster_cidr} -j {svc}')
                        nat_rules.append(f'-A {ext} -m comment --comment "masquerade LOCAL traffic for {name} '
                                         f'external destinations" -m addrtype --src-type LOCAL -j KUBE-MARK-MASQ')
                        nat_rules.append(f'-A {ext} -m comment --comment "route LOCAL traffic for {name} external '
                                         f'destinations" -m addrtype --src-type LOCAL -j {svc}')
                        nat_rules.append(f"-A {ext} -j {svl}")
                    else:
                        nat_rules.append(f'-A {ext} -m comment --comment "masquerade traffic for {name} external '
                                         f'destinations" -j KUBE-MARK-MASQ')
                        nat_rules.append(f"-A {ext} -j {svc}")
            for endpoint in wanted_seps:
                sep = sep_chain(port, endpoint)
                used.add(sep)
                if write_chains:
                    nat_chains.append(sep)
                    nat_rules.append(f'-A {sep} -m comment --comment "{name}" -s {endpoint.ip} -j KUBE-MARK-MASQ')
                    affinity = (f"-m recent --name {sep} --mask 255.255.255.255 --set --rsource "
                                if port.affinity_seconds else "")
                    nat_rules.append(f'-A {sep} -m comment --comment "{name}" {affinity}{proto} '
                                     f"-j DNAT --to-destination {endpoint.address}")
        chains[key] = used

    in_use = set().union(*chains.values()) if chains else set()
    stale = sorted(chain for chain in set(maybe_stale) - in_use if chain.startswith(SERVICE_CHAIN_PREFIXES))
    filter_text = ["*filter", *(f":{chain} - [0:0]" for chain in FILTER_CHAINS)]
    filter_text += filter_rules
    filter_text += external_filter
    filter_text += [
        '-A KUBE-FORWARD -m conntrack --ctstate INVALID -j DROP',
        f'-A KUBE-FORWARD -m comment --comment "kubernetes forwarding rules" -m mark --mark {MASQ_MARK}/{MASQ_MARK} '
        "-j ACCEPT",
        '-A KUBE-FORWARD -m comment --comment "kubernetes forwarding conntrack rule" -m conntrack '
        "--ctstate RELATED,ESTABLISHED -j ACCEPT",
        '-A KUBE-FIREWALL -m comment --comment "block incoming localnet connections" -d 127.0.0.0/8 '
        "! -s 127.0.0.0/8 -m conntrack ! --ctstate RELATED,ESTABLISHED,DNAT -j DROP",
    ]
    jumps = list(missing_jumps)
    filter_text += [f"-I {chain} {rule}" for table, chain, rule in jumps if table == "filter"]
    filter_text.append("COMMIT")

    nat_text = ["*nat", *(f":{chain} - [0:0]" for chain in nat_chains), *(f":{chain} - [0:0]" for chain in stale)]
    nat_text += [
        f"-A KUBE-POSTROUTING -m mark ! --mark {MASQ_MARK}/{MASQ_MARK} -j RETURN",
        # The mark would stay on the packet if it were re-sent through here: clear it.
        f"-A KUBE-POSTROUTING -j MARK --xor-mark {MASQ_MARK}",
        '-A KUBE-POSTROUTING -m comment --comment "kubernetes service traffic requiring SNAT" -j MASQUERADE '
        "--random-fully",
        f"-A KUBE-MARK-MASQ -j MARK --or-mark {MASQ_MARK}",
    ]
    nat_text += services_rules
    nat_text.append('-A KUBE-SERVICES -m comment --comment "kubernetes service nodeports; NOTE: this must be the '
                    'last rule in this chain" -m addrtype --dst-type LOCAL -j KUBE-NODEPORTS')
    nat_text += nodeports_rules
    nat_text += nat_rules
    nat_text += [f"-X {chain}" for chain in stale]
    nat_text += [f"-I {chain} {rule}" for table, chain, rule in jumps if table == "nat"]
    nat_text.append("COMMIT")
    return Rendered(text="\n".join(filter_text + nat_text) + "\n", chains=chains, has_endpoints=has_endpoints)


def _filter_target(target: str) -> str:
    return "REJECT --reject-with icmp-port-unreachable" if target == "REJECT" else target


def _balance(rules: list[str], chain: str, port: ServicePort, endpoints: list[Endpoint]) -> None:
    """Affinity checks first (one `recent` list per endpoint), then a random choice: the
    i-th of n rules takes 1/(n-i) of what reaches it, so each endpoint gets 1/n."""
    name = port.display
    if port.affinity_seconds:
        for endpoint in endpoints:
            sep = sep_chain(port, endpoint)
            rules.append(f'-A {chain} -m comment --comment "{name} -> {endpoint.address}" -m recent --name {sep} '
                         f"--rcheck --seconds {port.affinity_seconds} --reap --mask 255.255.255.255 --rsource "
                         f"-j {sep}")
    count = len(endpoints)
    for index, endpoint in enumerate(endpoints):
        sep = sep_chain(port, endpoint)
        if index < count - 1:
            rules.append(f'-A {chain} -m comment --comment "{name} -> {endpoint.address}" -m statistic --mode random '
                         f"--probability {1.0 / (count - index):0.10f} -j {sep}")
        else:
            rules.append(f'-A {chain} -m comment --comment "{name} -> {endpoint.address}" -j {sep}')


def cleanup_text(existing: dict[str, set[str]], jumps_present: Iterable[tuple[str, str, str]]) -> str:
    """iptables-restore input that removes every rule and chain this proxy made:
    `existing` is table → the KUBE- chains it has, `jumps_present` the jumps from built-in
    chains that exist (deleted with -D first, so the chains are unreferenced)."""
    lines = []
    for table in ("filter", "nat"):
        owned = sorted(chain for chain in existing.get(table, ()) if _owned(table, chain))
        jumps = [(chain, rule) for t, chain, rule in jumps_present if t == table]
        if not owned and not jumps:
            continue
        lines.append(f"*{table}")
        lines += [f":{chain} - [0:0]" for chain in owned]
        lines += [f"-D {chain} {rule}" for chain, rule in jumps]
        lines += [f"-X {chain}" for chain in owned]
        lines.append("COMMIT")
    return "\n".join(lines) + "\n" if lines else ""


def _owned(table: str, chain: str) -> bool:
    if table == "filter":
        return chain in FILTER_CHAINS or chain == "KUBE-NODEPORTS" or chain == "KUBE-PROXY-FIREWALL"
    return chain in NAT_TOP_CHAINS or chain.startswith(SERVICE_CHAIN_PREFIXES) or chain == "KUBE-MARK-DROP"
