"""Pure part of the pod network: Node objects → what the kernel should hold → the commands
that get it there from what it holds now. No I/O (unit-tested on its own)."""

from __future__ import annotations

import ipaddress
import json
from dataclasses import dataclass, field
from typing import Any, Iterable

ANNOTATION_PREFIX = "flannel.alpha.coreos.com/"
BACKEND_TYPE = ANNOTATION_PREFIX + "backend-type"
BACKEND_DATA = ANNOTATION_PREFIX + "backend-data"
PUBLIC_IP = ANNOTATION_PREFIX + "public-ip"
SUBNET_MANAGER = ANNOTATION_PREFIX + "kube-subnet-manager"

VXLAN_DEVICE = "flannel.1"
VXLAN_VNI = 1
VXLAN_PORT = 8472  # flannel's (the Linux kernel's old default), not IANA's 4789
VXLAN_OVERHEAD = 50  # outer Ethernet 14 + IP 20 + UDP 8 + VXLAN 8
MASQ_CHAIN = "FLANNEL-POSTRTG"
FORWARD_CHAIN = "FLANNEL-FWD"
KUBE_MASQ_MARK = "0x4000/0x4000"  # kube-proxy's: that traffic is masqueraded by KUBE-POSTROUTING


@dataclass(frozen=True)
class Peer:
    """What another node publishes about reaching its pods."""
    name: str
    pod_cidr: str
    public_ip: str
    backend_type: str
    vtep_mac: str = ""

    @property
    def vtep_ip(self) -> str:
        """The address of its flannel.1 (the network address of its pod CIDR, flannel's layout)."""
        return str(ipaddress.ip_network(self.pod_cidr, strict=False).network_address)


def own_annotations(backend: str, public_ip: str, vtep_mac: str = "") -> dict[str, str]:
    """The annotations this node writes on its Node (flannel's exact keys and JSON)."""
    data = json.dumps({"VNI": VXLAN_VNI, "VtepMAC": vtep_mac}, separators=(",", ":")) if backend == "vxlan" else "null"
    return {BACKEND_TYPE: backend, BACKEND_DATA: data, PUBLIC_IP: public_ip, SUBNET_MANAGER: "true"}


def peer_of(node: dict[str, Any]) -> Peer | None:
    """The Peer a Node describes, or None while it lacks a pod CIDR or its annotations."""
    annotations = node["metadata"].get("annotations") or {}
    spec = node.get("spec") or {}
    pod_cidr = spec.get("podCIDR") or next(iter(spec.get("podCIDRs") or []), "")
    public_ip = annotations.get(PUBLIC_IP, "")
    backend_type = annotations.get(BACKEND_TYPE, "")
    if not pod_cidr or not public_ip or not backend_type:
        return None
    vtep_mac = ""
    if backend_type == "vxlan":
        try:
            vtep_mac = (json.loads(annotations.get(BACKEND_DATA) or "null") or {}).get("VtepMAC") or ""
        except (ValueError, AttributeError):
            vtep_mac = ""
        if not vtep_mac:
            return None
    return Peer(node["metadata"]["name"], pod_cidr, public_ip, backend_type, vtep_mac.lower())


def peers(own_name: str, nodes: Iterable[dict[str, Any]]) -> list[Peer]:
    found = [peer_of(node) for node in nodes if node["metadata"]["name"] != own_name]
    return sorted((peer for peer in found if peer is not None), key=lambda peer: peer.name)


@dataclass
class VxlanState:
    """What flannel.1 holds: routes (pod CIDR → gateway), neighbours (IP → MAC), FDB (MAC → underlay IP)."""
    routes: dict[str, str] = field(default_factory=dict)
    neighbours: dict[str, str] = field(default_factory=dict)
    fdb: dict[str, str] = field(default_factory=dict)


def vxlan_desired(peer_list: Iterable[Peer]) -> VxlanState:
    state = VxlanState()
    for peer in peer_list:
        if peer.backend_type != "vxlan" or not peer.vtep_mac:
            continue
        state.routes[peer.pod_cidr] = peer.vtep_ip
        state.neighbours[peer.vtep_ip] = peer.vtep_mac
        state.fdb[peer.vtep_mac] = peer.public_ip
    return state


def vxlan_current(routes: list[dict], neighbours: list[dict], fdb: list[dict]) -> VxlanState:
    """VxlanState from `ip -j route show dev flannel.1`, `ip -j neigh show dev flannel.1` and
    `bridge -j fdb show dev flannel.1`."""
    state = VxlanState()
    for route in routes:
        dst = route.get("dst", "")
        if dst and dst != "default" and route.get("gateway"):
            state.routes[str(ipaddress.ip_network(dst, strict=False))] = route["gateway"]
    for neighbour in neighbours:
        if neighbour.get("dst") and neighbour.get("lladdr"):
            state.neighbours[neighbour["dst"]] = neighbour["lladdr"].lower()
    for entry in fdb:
        if entry.get("mac") and entry.get("dst") and entry.get("mac") != "00:00:00:00:00:00":
            state.fdb[entry["mac"].lower()] = entry["dst"]
    return state


def vxlan_commands(desired: VxlanState, current: VxlanState,
                   device: str = VXLAN_DEVICE) -> tuple[list[str], list[str]]:
    """(`ip -batch` lines, `bridge -batch` lines) turning `current` into `desired`. FDB and
    neighbour entries go in before the route that uses them, and out after it."""
    ip_lines: list[str] = []
    bridge_lines: list[str] = []
    for mac, underlay in sorted(desired.fdb.items()):
        if current.fdb.get(mac) != underlay:
            bridge_lines.append(f"fdb replace {mac} dev {device} dst {underlay} self permanent")
    for address, mac in sorted(desired.neighbours.items()):
        if current.neighbours.get(address) != mac:
            ip_lines.append(f"neigh replace {address} lladdr {mac} dev {device} nud permanent")
    for cidr, gateway in sorted(desired.routes.items()):
        if current.routes.get(cidr) != gateway:
            ip_lines.append(f"route replace {cidr} via {gateway} dev {device} onlink")
    for cidr in sorted(set(current.routes) - set(desired.routes)):
        ip_lines.append(f"route del {cidr} dev {device}")
    for address in sorted(set(current.neighbours) - set(desired.neighbours)):
        ip_lines.append(f"neigh del {address} dev {device}")
    for mac in sorted(set(current.fdb) - set(desired.fdb)):
        bridge_lines.append(f"fdb del {mac} dev {device} dst {current.fdb[mac]} self")
    return ip_lines, bridge_lines


def host_gw_desired(peer_list: Iterable[Peer]) -> dict[str, str]:
    """pod CIDR → the node address it is routed via."""
    return {peer.pod_cidr: peer.public_ip for peer in peer_list}


def host_gw_current(routes: list[dict], cluster_cidr: str, own_pod_cidr: str) -> dict[str, str]:
    """Our routes in `ip -j route show` (main table): gateway routes to subnets of the
    cluster CIDR that are not the node's own (that one is the pod bridge's) nor flannel.1's."""
    cluster = ipaddress.ip_network(cluster_cidr, strict=False)
    own = ipaddress.ip_network(own_pod_cidr, strict=False) if own_pod_cidr else None
    found = {}
    for route in routes:
        dst = route.get("dst", "")
        if not dst or dst == "default" or not route.get("gateway") or route.get("dev") == VXLAN_DEVICE:
            continue
        try:
            network = ipaddress.ip_network(dst, strict=False)
        except ValueError:
            continue
        if network.version == cluster.version and network.subnet_of(cluster) and network != own:
            found[str(network)] = route["gateway"]
    return found


def host_gw_commands(desired: dict[str, str], current: dict[str, str]) -> list[str]:
    lines = [f"route replace {cidr} via {gateway}" for cidr, gateway in sorted(desired.items())
             if current.get(cidr) != gateway]
    lines += [f"route del {cidr} via {current[cidr]}" for cidr in sorted(set(current) - set(desired))]
    return lines


def masquerade_rules(cluster_cidr: str, pod_cidr: str) -> str:
    """iptables-restore --noflush input for flannel's masquerading (its MasqRules) and its
    forward-accept rules, each chain rewritten whole."""
    return "\n".join([
        "*nat",
        f":{MASQ_CHAIN} - [0:0]",
        f"-A {MASQ_CHAIN} -m comment --comment \"flanneld masq\" -m mark --mark {KUBE_MASQ_MARK} -j RETURN",
        # pod to pod (this node's and others'): keep the addresses
        f"-A {MASQ_CHAIN} -m comment --comment \"flanneld masq\" -s {pod_cidr} -d {cluster_cidr} -j RETURN",
        f"-A {MASQ_CHAIN} -m comment --comment \"flanneld masq\" -s {cluster_cidr} -d {pod_cidr} -j RETURN",
        # from outside the pod network to this node's pods (no masquerade of incoming traffic)
        f"-A {MASQ_CHAIN} -m comment --comment \"flanneld masq\" ! -s {cluster_cidr} -d {pod_cidr} -j RETURN",
        # pods leaving the pod network: masquerade (not multicast)
        f"-A {MASQ_CHAIN} -m comment --comment \"flanneld masq\" -s {cluster_cidr} ! -d 224.0.0.0/4 "
        "-j MASQUERADE --random-fully",
        # the node itself reaching other nodes' pods over flannel.1 (source: its flannel.1 address)
        f"-A {MASQ_CHAIN} -m comment --comment \"flanneld masq\" ! -s {cluster_cidr} -d {cluster_cidr} "
        "-j MASQUERADE --random-fully",
        "COMMIT",
        "*filter",
        f":{FORWARD_CHAIN} - [0:0]",
        f"-A {FORWARD_CHAIN} -m comment --comment \"flanneld forward\" -s {cluster_cidr} -j ACCEPT",
        f"-A {FORWARD_CHAIN} -m comment --comment \"flanneld forward\" -d {cluster_cidr} -j ACCEPT",
        "COMMIT",
        "",
    ])


JUMPS = (("nat", "POSTROUTING", MASQ_CHAIN, "flanneld masq"), ("filter", "FORWARD", FORWARD_CHAIN, "flanneld forward"))
