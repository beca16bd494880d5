"""The cluster's DNS records, kept from Services and EndpointSlices, and the answering
function: a query packet in, a reply packet out (no I/O; unit-tested on its own).

Records follow upstream's DNS specification (kubernetes/dns docs/specification.md) as
CoreDNS's `kubernetes` plugin serves them, zone `cluster.local` by default:
- ClusterIP Service: A/AAAA `<svc>.<ns>.svc.<zone>` -> its cluster IPs; SRV
  `_<port>._<proto>.<svc>.<ns>.svc.<zone>` -> `0 100 <port> <svc>.<ns>.svc.<zone>` for
  named ports; PTR for each cluster IP.
- Headless Service (clusterIP None): A/AAAA `<svc>.<ns>.svc.<zone>` -> every ready
  endpoint address (all of them with publishNotReadyAddresses); per endpoint an A record
  `<hostname>.<svc>.<ns>.svc.<zone>` (the slice's `hostname`, else the dashed IP
  `a-b-c-d`), SRV per endpoint and named port targeting that name, PTR for it.
- ExternalName Service: CNAME `<svc>.<ns>.svc.<zone>` -> spec.externalName (chased when
  the target is itself in the zone).
- Pods: `a-b-c-d.<ns>.pod.<zone>` -> a.b.c.d for any such name ("pods insecure", what
  k3s's Corefile configures: no pod is looked up).
- `dns-version.<zone>` TXT "1.1.0"; SOA and NS at the zone apex.
Answers in the zone are authoritative (AA). A name the zone does not have is NXDOMAIN; a
name it has without the asked type is NOERROR with no answer; both carry the SOA in the
authority section (negative caching, RFC 2308). TTL 5 s. A reply too big for the
client's UDP size (512, or its EDNS0 size) goes out truncated (TC) so the client retries
over TCP. Names outside the zone, and reverse names of addresses the cluster does not
know, are not answered here: `answer()` returns None and the server forwards them.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from typing import Any, Iterable

from dnslib import (AAAA, CNAME, DNSHeader, DNSRecord, EDNS0, NS, PTR, QTYPE, RCODE, RR, SOA, SRV, TXT, A,
                    DNSError)

TTL = 5
DEFAULT_ZONE = "cluster.local"
MIN_UDP_SIZE = 512
# What we advertise in EDNS0 replies: the DNS flag day 2020 size, which never fragments.
EDNS_UDP_SIZE = 1232
SERVICE_NAME_LABEL = "kubernetes.io/service-name"
SPEC_VERSION = "1.1.0"

_A, _AAAA, _SRV, _PTR, _CNAME, _TXT, _SOA, _NS, _ANY = (QTYPE.A, QTYPE.AAAA, QTYPE.SRV, QTYPE.PTR, QTYPE.CNAME,
                                                        QTYPE.TXT, QTYPE.SOA, QTYPE.NS, QTYPE.ANY)


def dashed(ip: str) -> str:
    """10.42.0.5 -> 10-42-0-5; fd00::5 -> fd00--5 (upstream's endpoint and pod names)."""
    return ip.replace(".", "-").replace(":", "-")


def reverse_name(ip: str) -> str:
    return ipaddress.ip_address(ip).reverse_pointer


def _address_record(name: str, ip: str) -> RR:
    if ":" in ip:
        return RR(name, _AAAA, ttl=TTL, rdata=AAAA(ip))
    return RR(name, _A, ttl=TTL, rdata=A(ip))


def _ready(endpoint: dict[str, Any]) -> bool:
    # Upstream: a nil `ready` means unknown, which consumers treat as ready.
    return (endpoint.get("conditions") or {}).get("ready") is not False


@dataclass
class ServiceRecords:
    """The records one Service contributes: owner name -> qtype -> records."""
    names: dict[str, dict[int, list[RR]]] = field(default_factory=dict)

    def add(self, record: RR) -> None:
        name = str(record.rname).lower().rstrip(".")
        self.names.setdefault(name, {}).setdefault(record.rtype, []).append(record)


def service_records(service: dict[str, Any], slices: Iterable[dict[str, Any]], zone: str) -> ServiceRecords:
    """Everything a Service (with its EndpointSlices) publishes in the zone."""
    meta, spec = service["metadata"], service.get("spec") or {}
    base = f"{meta['name']}.{meta['namespace']}.svc.{zone}"
    records = ServiceRecords()
    kind = spec.get("type", "ClusterIP")
    if kind == "ExternalName":
        target = (spec.get("externalName") or "").rstrip(".")
        if target:
            records.add(RR(base, _CNAME, ttl=TTL, rdata=CNAME(target + ".")))
        return records
    cluster_ips = [ip for ip in (spec.get("clusterIPs") or [spec.get("clusterIP")]) if ip and ip != "None"]
    if cluster_ips:
        for ip in cluster_ips:
            records.add(_address_record(base, ip))
            records.add(RR(reverse_name(ip), _PTR, ttl=TTL, rdata=PTR(base + ".")))
        for port in spec.get("ports") or []:
            if port.get("name"):
                srv = SRV(priority=0, weight=100, port=int(port["port"]), target=base + ".")
                owner = f"_{port['name']}._{port.get('protocol', 'TCP').lower()}.{base}"
                records.add(RR(owner, _SRV, ttl=TTL, rdata=srv))
        return records
    if spec.get("clusterIP") != "None":
        return records  # no address allocated yet
    publish_not_ready = bool(spec.get("publishNotReadyAddresses"))
    endpoints: list[tuple[str, str, list[dict[str, Any]]]] = []  # (name, ip, ports)
    seen: set[tuple[str, str]] = set()
    for endpoint_slice in slices:
        if endpoint_slice.get("addressType") not in ("IPv4", "IPv6"):
            continue
        ports = endpoint_slice.get("ports") or []
        for endpoint in endpoint_slice.get("endpoints") or []:
            if not publish_not_ready and not _ready(endpoint):
                continue
            for ip in endpoint.get("addresses") or []:
                label = endpoint.get("hostname") or dashed(ip)
                if (label, ip) in seen:
                    continue
                seen.add((label, ip))
                endpoints.append((f"{label}.{base}", ip, ports))
    endpoints.sort(key=lambda item: (ipaddress.ip_address(item[1]), item[0]))
    for name, ip, ports in endpoints:
        records.add(_address_record(base, ip))
        records.add(_address_record(name, ip))
        records.add(RR(reverse_name(ip), _PTR, ttl=TTL, rdata=PTR(name + ".")))
    by_port: dict[str, list[RR]] = {}
    for name, ip, ports in endpoints:
        for port in ports:
            if port.get("name") and port.get("port") is not None:
                owner = f"_{port['name']}._{port.get('protocol', 'TCP').lower()}.{base}"
                by_port.setdefault(owner, []).append(
                    RR(owner, _SRV, ttl=TTL, rdata=SRV(priority=0, weight=0, port=int(port["port"]), target=name + ".")))
    for owner, srvs in by_port.items():
        weight = max(1, 100 // len(srvs))  # CoreDNS shares the weight 100 among equal targets
        for srv in srvs:
            srv.rdata.weight = weight
            records.add(srv)
    return records


class ClusterZone:
    """The records of every Service, indexed by owner name for answering.

    `set_service` / `remove_service` replace one Service's contribution; `generation`
    grows with every change (the server's reply cache is valid for one generation)."""

    def __init__(self, zone: str = DEFAULT_ZONE, dns_ip: str = ""):
        self.zone = zone.lower().rstrip(".")
        self.dns_ip = dns_ip
        self.generation = 0
        self._by_service: dict[str, ServiceRecords] = {}
        self._index: dict[str, dict[int, list[RR]]] = {}
        # Names that exist without records (upstream: empty non-terminals answer NOERROR).
        self._interior: dict[str, int] = {}
        self.soa = RR(self.zone, _SOA, ttl=TTL, rdata=SOA(
            f"ns.dns.{self.zone}.", f"hostmaster.{self.zone}.", (1, 7200, 1800, 86400, TTL)))
        for name in (self.zone, f"svc.{self.zone}", f"pod.{self.zone}"):
            self._interior[name] = 1

    # ---- updates ------------------------------------------------------------------------
    def set_service(self, key: str, records: ServiceRecords) -> None:
        self.remove_service(key)
        self._by_service[key] = records
        for name, types in records.names.items():
            entry = self._index.setdefault(name, {})
            for rtype, rrs in types.items():
                entry.setdefault(rtype, []).extend(rrs)
            for parent in self._parents(name):
                self._interior[parent] = self._interior.get(parent, 0) + 1
        self.generation += 1

    def remove_service(self, key: str) -> None:
        old = self._by_service.pop(key, None)
        if old is None:
            return
        for name, types in old.names.items():
            entry = self._index.get(name)
            if entry is not None:
                for rtype, rrs in types.items():
                    remaining = [rr for rr in entry.get(rtype, []) if not any(rr is o for o in rrs)]
                    if remaining:
                        entry[rtype] = remaining
                    else:
                        entry.pop(rtype, None)
                if not entry:
                    del self._index[name]
            for parent in self._parents(name):
                count = self._interior.get(parent, 0) - 1
                if count > 0 or parent in (self.zone, f"svc.{self.zone}", f"pod.{self.zone}"):
                    self._interior[parent] = max(count, 1)
                else:
                    self._interior.pop(parent, None)
        self.generation += 1

    def _parents(self, name: str) -> list[str]:
        """Ancestors of `name` below the zone apex or a reverse zone (they exist, empty)."""
        labels = name.split(".")
        parents = []
        for index in range(1, len(labels)):
            parent = ".".join(labels[index:])
            if parent == self.zone or parent in ("in-addr.arpa", "ip6.arpa") or len(parent) < len(self.zone):
                break
            parents.append(parent)
        return parents

    # ---- lookups ------------------------------------------------------------------------
    def in_zone(self, name: str) -> bool:
        return name == self.zone or name.endswith("." + self.zone)

    def lookup(self, name: str) -> dict[int, list[RR]] | None:
        """Records of `name` by type, {} for a name that exists without records, None for
        a name this zone does not have."""
        found = self._index.get(name)
        if found is not None:
            return found
        zone = self.zone
        if name == zone:
            apex: dict[int, list[RR]] = {_SOA: [self.soa]}
            apex[_NS] = [RR(zone, _NS, ttl=TTL, rdata=NS(f"ns.dns.{zone}."))]
            return apex
        if self.dns_ip and name == f"ns.dns.{zone}":
            return {_A: [_address_record(name, self.dns_ip)]}
        if name == f"dns-version.{zone}":
            return {_TXT: [RR(name, _TXT, ttl=TTL, rdata=TXT(SPEC_VERSION))]}
        pod = self._pod_record(name)
        if pod is not None:
            return pod
        if name in self._interior:
            return {}
        return None

    def _pod_record(self, name: str) -> dict[int, list[RR]] | None:
        suffix = f".pod.{self.zone}"
        if not name.endswith(suffix):
            return None
        labels = name[:-len(suffix)].split(".")
        if len(labels) == 1:
            return {}  # <ns>.pod.<zone>
        if len(labels) != 2:
            return None
        text = labels[0]
        try:
            if text.count("-") == 3:
                ip = str(ipaddress.IPv4Address(text.replace("-", ".")))
            else:
                ip = str(ipaddress.IPv6Address(text.replace("-", ":")))
        except ValueError:
            return None
        return {(_AAAA if ":" in ip else _A): [_address_record(name, ip)]}


def _udp_limit(request: DNSRecord) -> int:
    for record in request.ar:
        if record.rtype == QTYPE.OPT:
            return max(MIN_UDP_SIZE, min(int(record.rclass), 65535))
    return MIN_UDP_SIZE


def _has_edns(request: DNSRecord) -> bool:
    return any(record.rtype == QTYPE.OPT for record in request.ar)


def error_reply(data: bytes, rcode: int) -> bytes | None:
    """A reply with only `rcode` (FORMERR, SERVFAIL, REFUSED) to whatever `data` is, None
    when not even the header can be read."""
    try:
        request = DNSRecord.parse(data)
    except (DNSError, Exception):  # noqa: BLE001 - any malformed packet
        if len(data) < 12:
            return None
        header = DNSHeader(id=int.from_bytes(data[:2], "big"), qr=1, rcode=RCODE.FORMERR)
        return DNSRecord(header).pack()
    reply = DNSRecord(DNSHeader(id=request.header.id, qr=1, rd=request.header.rd, ra=1, rcode=rcode), q=request.q)
    if _has_edns(request):
        reply.add_ar(EDNS0(udp_len=EDNS_UDP_SIZE))
    return reply.pack()


def answer(zone: ClusterZone, data: bytes, *, tcp: bool = False) -> bytes | None:
    """The reply packet for query `data`, or None when the name is not ours to answer
    (the caller forwards it). Malformed queries get FORMERR."""
    try:
        request = DNSRecord.parse(data)
    except (DNSError, Exception):  # noqa: BLE001 - dnslib raises several types on bad input
        return error_reply(data, RCODE.FORMERR)
    return answer_record(zone, request, tcp=tcp)


def answer_record(zone: ClusterZone, request: DNSRecord, *, tcp: bool = False) -> bytes | None:
    header = request.header
    if header.opcode != 0 or len(request.questions) != 1:
        reply = DNSRecord(DNSHeader(id=header.id, qr=1, rd=header.rd, ra=1,
                                    rcode=RCODE.NOTIMP if header.opcode != 0 else RCODE.FORMERR), q=request.q)
        return reply.pack()
    question = request.q
    name = str(question.qname).lower().rstrip(".")
    qtype = question.qtype
    ours = zone.in_zone(name)
    if not ours and not name.endswith(("in-addr.arpa", "ip6.arpa")):
        return None
    records = zone.lookup(name)
    if records is None and not ours:
        return None  # a reverse name of an address outside the cluster
    reply = DNSRecord(DNSHeader(id=header.id, qr=1, aa=1, rd=header.rd, ra=1), q=question)
    if records is None:
        reply.header.rcode = RCODE.NXDOMAIN
        reply.add_auth(zone.soa)
    else:
        _fill(zone, reply, name, qtype, records)
    if _has_edns(request):
        reply.add_ar(EDNS0(udp_len=EDNS_UDP_SIZE))
    packed = reply.pack()
    if not tcp and len(packed) > _udp_limit(request):
        truncated = DNSRecord(DNSHeader(id=header.id, qr=1, aa=1, tc=1, rd=header.rd, ra=1), q=question)
        if _has_edns(request):
            truncated.add_ar(EDNS0(udp_len=EDNS_UDP_SIZE))
        packed = truncated.pack()
    return packed


def _fill(zone: ClusterZone, reply: DNSRecord, name: str, qtype: int, records: dict[int, list[RR]]) -> None:
    cname = records.get(_CNAME)
    if cname and qtype != _CNAME:
        reply.add_answer(*cname)
        target = str(cname[0].rdata.label).lower().rstrip(".")
        chased = zone.lookup(target) if zone.in_zone(target) else None
        if chased:
            for rtype in ((_A, _AAAA) if qtype == _ANY else (qtype,)):
                reply.add_answer(*chased.get(rtype, []))
        return
    if qtype == _ANY:
        found = [rr for rtype, rrs in records.items() if rtype != _SOA for rr in rrs]
    else:
        found = records.get(qtype, [])
    if not found:
        reply.add_auth(zone.soa)  # NODATA
        return
    reply.add_answer(*found)
    if qtype == _SRV:
        for srv in found:
            target = str(srv.rdata.target).lower().rstrip(".")
            extra = zone.lookup(target) or {}
            for rtype in (_A, _AAAA):
                seen = {str(rr.rdata) for rr in reply.ar if rr.rname == srv.rdata.target}
                for rr in extra.get(rtype, []):
                    if str(rr.rdata) not in seen:
                        reply.add_ar(RR(srv.rdata.target, rtype, ttl=TTL, rdata=rr.rdata))
