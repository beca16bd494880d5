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

from dnslib import (AAAA, CNAME, DNSBuffer, DNSHeader, DNSLabel, DNSQuestion, DNSRecord, EDNS0, NS, PTR, QTYPE,
                    RCODE, RR, SOA, SRV, TXT, A, DNSError)

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

    def signature(self) -> list[tuple[str, int, str]]:
        """What the records say, in order (two equal signatures answer every query alike)."""
        return [(name, rtype, rr.toZone()) for name, types in self.names.items()
                for rtype, rrs in types.items() for rr in rrs]


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
    """The records of every Service, indexed by owner name for answering, and the replies
    packed from them.

    `set_service` / `remove_service` replace one Service's contribution; `generation`
    grows with every change. Replies are packed by dnslib once per (name, type) and kept
    as templates (see `answer`): the names a Service owns are packed when the Service
    changes (the informer event pays, not the query); any other name when first asked.
    A change forgets the templates of every name it touches: the Service's old and new
    names, their ancestors (NXDOMAIN vs empty NOERROR), and the names whose replies
    include one of them (a CNAME chased into the zone, an SRV target's address)."""

    def __init__(self, zone: str = DEFAULT_ZONE, dns_ip: str = "", *, precompute: bool = True):
        self.zone = zone.lower().rstrip(".")
        self._dot_zone = "." + self.zone
        self.dns_ip = dns_ip
        self.generation = 0
        self.precompute = precompute
        self._by_service: dict[str, ServiceRecords] = {}
        self._index: dict[str, dict[int, list[RR]]] = {}
        # Names that exist without records (upstream: empty non-terminals answer NOERROR).
        self._interior: dict[str, int] = {}
        # name -> qtype -> reply templates (None: not ours to answer). `_templates` holds the
        # ones packed at Service changes, `_asked` the ones packed at a query (bounded).
        self._templates: dict[str, dict[int, Template | None]] = {}
        self._asked: dict[str, dict[int, Template | None]] = {}
        # name -> names whose templates include records of `name`.
        self._dependents: dict[str, set[str]] = {}
        self.soa = RR(self.zone, _SOA, ttl=TTL, rdata=SOA(
            f"ns.dns.{self.zone}.", f"hostmaster.{self.zone}.", (1, 7200, 1800, 86400, TTL)))
        for name in (self.zone, f"svc.{self.zone}", f"pod.{self.zone}"):
            self._interior[name] = 1

    # ---- updates ------------------------------------------------------------------------
    def set_service(self, key: str, records: ServiceRecords) -> None:
        old = self._by_service.get(key)
        if old is not None and old.signature() == records.signature():
            return  # e.g. an EndpointSlice change under a ClusterIP Service: same records
        self._unindex(key)
        self._by_service[key] = records
        for name, types in records.names.items():
            entry = self._index.setdefault(name, {})
            for rtype, rrs in types.items():
                entry.setdefault(rtype, []).extend(rrs)
            for parent in self._parents(name):
                self._interior[parent] = self._interior.get(parent, 0) + 1
        self.generation += 1
        self._forget(old, records)
        if self.precompute:
            for name, types in records.names.items():
                per_name = self._templates.setdefault(name, {})
                for qtype in _precomputed_types(types):
                    if qtype not in per_name:
                        per_name[qtype] = self._build(name, qtype)

    def remove_service(self, key: str) -> None:
        old = self._unindex(key)
        if old is not None:
            self.generation += 1
            self._forget(old, None)

    def _unindex(self, key: str) -> ServiceRecords | None:
        old = self._by_service.pop(key, None)
        if old is None:
            return None
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
        return old

    def _forget(self, old: ServiceRecords | None, new: ServiceRecords | None) -> None:
        """Drop the templates a change of one Service may have made wrong."""
        touched: set[str] = set()
        for records in (old, new):
            if records is not None:
                for name in records.names:
                    touched.add(name)
                    touched.update(self._parents(name))
        for name in touched:
            self._templates.pop(name, None)
            self._asked.pop(name, None)
            for dependent in self._dependents.pop(name, ()):
                self._templates.pop(dependent, None)
                self._asked.pop(dependent, None)

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

    # ---- reply templates -----------------------------------------------------------------
    def template(self, name: str, qtype: int) -> Template | None:
        """The packed replies for `name` (lower case, no trailing dot) and `qtype`, None
        when the name is not this zone's to answer."""
        per_name = self._templates.get(name)
        if per_name is not None:
            found = per_name.get(qtype, _MISSING)
            if found is not _MISSING:
                return found  # type: ignore[return-value]
        per_name = self._asked.get(name)
        if per_name is not None:
            found = per_name.get(qtype, _MISSING)
            if found is not _MISSING:
                return found  # type: ignore[return-value]
        elif len(self._asked) >= ASKED_TEMPLATE_LIMIT:
            self._asked.clear()  # many names asked once (search-path misses, random pod names)
        built = self._build(name, qtype)
        self._asked.setdefault(name, {})[qtype] = built
        return built

    def _build(self, name: str, qtype: int) -> Template | None:
        question = DNSQuestion(name, qtype)
        full = _reply(self, question, name, 0, 0, edns=False, truncated=False)
        if full is None:
            return None
        for target in self._included_names(name):
            self._dependents.setdefault(target, set()).add(name)
        return full, _with_opt(full)

    def truncated(self, name: str, qtype: int, edns: bool) -> bytes:
        """The truncated reply (TC, the question only) for a reply too big for UDP: rare
        (the client retries over TCP), so packed when needed."""
        return _reply(self, DNSQuestion(name, qtype), name, 0, 0, edns=edns, truncated=True) or b""

    def _included_names(self, name: str) -> list[str]:
        """Other names whose records a reply for `name` may carry (see `_fill`)."""
        records = self._index.get(name) or {}
        targets = [str(rr.rdata.label) for rr in records.get(_CNAME, [])]
        targets += [str(rr.rdata.target) for rr in records.get(_SRV, [])]
        return [target.lower().rstrip(".") for target in targets]

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


# ---- answering ------------------------------------------------------------------------------
# A reply is packed by dnslib for the lower-cased question, and the client's question is
# put back in its place (same length: only the case differs), so a DNS 0x20 client sees
# its own case while every spelling of a name gets the same bytes otherwise. Two paths give
# the same bytes (tests/unit/test_dns_fast_path.py compares them over every variant):
# - `answer_plain`: dnslib parses the query, the reply is built and packed for it;
# - `answer`: a query of the usual shape (one question of class IN, no other records but
#   an OPT) is recognised by `scan_query`, and the reply is the zone's template for
#   (name, type) with the query's ID, RD bit and question patched in (and EDNS0's OPT
#   record, or the truncated form, picked by the query). Any other query takes the plain path.

Template = tuple[bytes, bytes]  # the reply, and the reply with our EDNS0 OPT record
_MISSING = object()
ASKED_TEMPLATE_LIMIT = 20_000
_OPT_RECORD = DNSRecord(DNSHeader(id=0), ar=[EDNS0(udp_len=EDNS_UDP_SIZE)]).pack()[12:]
_HEADER_COUNTS = b"\x00\x01\x00\x00\x00\x00\x00\x00"  # one question, nothing else
_HEADER_COUNTS_EDNS = b"\x00\x01\x00\x00\x00\x00\x00\x01"  # one question, one additional (OPT)
_NAME_CHARACTERS = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_*"
_FLAG_BYTES = [bytes((value,)) for value in range(256)]


def _with_opt(packet: bytes) -> bytes:
    """`packet` with our EDNS0 OPT record appended as its last additional record."""
    additional = int.from_bytes(packet[10:12], "big") + 1
    return packet[:10] + additional.to_bytes(2, "big") + packet[12:] + _OPT_RECORD


def _precomputed_types(types: dict[int, list[RR]]) -> list[int]:
    """The query types packed ahead for a name with records of `types`: its own, and A and
    AAAA for an address or alias (resolvers ask both for every name)."""
    wanted = [rtype for rtype in types if rtype in (_A, _AAAA, _SRV, _PTR, _CNAME)]
    if _A in types or _AAAA in types or _CNAME in types:
        wanted += [rtype for rtype in (_A, _AAAA) if rtype not in wanted]
    return wanted


def scan_query(data: bytes) -> tuple[str, int, int, bool, int] | None:
    """(lower-case name, qtype, end of the question, EDNS0?, UDP size limit) of a query
    of the usual shape, None for anything else (the plain path parses it)."""
    if len(data) < 17 or data[2] & 0xF8:  # a response, or an opcode other than QUERY
        return None
    counts = data[4:12]
    if counts == _HEADER_COUNTS:
        edns = False
    elif counts == _HEADER_COUNTS_EDNS:
        edns = True
    else:
        return None
    end = len(data)
    offset = 12
    labels = []
    while True:
        if offset >= end:
            return None
        length = data[offset]
        if length == 0:
            break
        if length > 63:  # a compression pointer, or an extended label type
            return None
        label = data[offset + 1:offset + 1 + length]
        if len(label) != length or label.translate(None, _NAME_CHARACTERS):
            return None
        labels.append(label)
        offset += 1 + length
    if offset - 12 > 254:  # longer than a name may be
        return None
    question_end = offset + 5
    if question_end > end or data[offset + 3:question_end] != b"\x00\x01":  # class IN only
        return None
    qtype = int.from_bytes(data[offset + 1:offset + 3], "big")
    limit = MIN_UDP_SIZE
    if edns:
        # The OPT record: root name, type 41, class = UDP size, TTL, RDLENGTH, options.
        opt = question_end
        if end < opt + 11 or data[opt] != 0 or data[opt + 1:opt + 3] != b"\x00\x29":
            return None
        limit = max(MIN_UDP_SIZE, int.from_bytes(data[opt + 3:opt + 5], "big"))
        options_end = opt + 11 + int.from_bytes(data[opt + 9:opt + 11], "big")
        position = opt + 11
        while position + 4 <= options_end:
            position += 4 + int.from_bytes(data[position + 2:position + 4], "big")
        if position != options_end or options_end != end:
            return None
    elif question_end != end:
        return None
    return b".".join(labels).lower().decode("ascii"), qtype, question_end, edns, limit


def answer(zone: ClusterZone, data: bytes, *, tcp: bool = False) -> bytes | None:
    """The reply packet for query `data`, or None when the name is not ours to answer
    (the caller forwards it). Malformed queries get FORMERR."""
    scanned = scan_query(data)
    if scanned is None:
        return answer_plain(zone, data, tcp=tcp)
    name, qtype, question_end, edns, limit = scanned
    if not (name == zone.zone or name.endswith(zone._dot_zone) or name.endswith(("in-addr.arpa", "ip6.arpa"))):
        return None
    template = zone.template(name, qtype)
    if template is None:
        return None
    packet = template[edns]
    if not tcp and len(packet) > limit:
        packet = zone.truncated(name, qtype, edns)
    return (data[:2] + _FLAG_BYTES[packet[2] | (data[2] & 1)] + packet[3:12] + data[12:question_end]
            + packet[question_end:])


def answer_plain(zone: ClusterZone, data: bytes, *, tcp: bool = False) -> bytes | None:
    """`answer` with dnslib parsing the query and packing the reply."""
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
    lowered = DNSQuestion(DNSLabel([label.lower() for label in question.qname.label]), question.qtype,
                          question.qclass)
    edns = _has_edns(request)
    packet = _reply(zone, lowered, name, header.id, header.rd, edns=edns, truncated=False)
    if packet is None:
        return None
    if not tcp and len(packet) > _udp_limit(request):
        packet = _reply(zone, lowered, name, header.id, header.rd, edns=edns, truncated=True)
    buffer = DNSBuffer()
    question.pack(buffer)
    asked = bytes(buffer.data)
    return packet[:12] + asked + packet[12 + len(asked):]


def _reply(zone: ClusterZone, question: DNSQuestion, name: str, query_id: int, rd: int, *, edns: bool,
           truncated: bool) -> bytes | None:
    """The packed reply to `question` (for `name`, lower case), None if not ours."""
    qtype = question.qtype
    ours = zone.in_zone(name)
    if not ours and not name.endswith(("in-addr.arpa", "ip6.arpa")):
        return None
    records = zone.lookup(name)
    if records is None and not ours:
        return None  # a reverse name of an address outside the cluster
    if truncated:
        reply = DNSRecord(DNSHeader(id=query_id, qr=1, aa=1, tc=1, rd=rd, ra=1), q=question)
    else:
        reply = DNSRecord(DNSHeader(id=query_id, qr=1, aa=1, rd=rd, ra=1), q=question)
        if records is None:
            reply.header.rcode = RCODE.NXDOMAIN
            reply.add_auth(zone.soa)
        else:
            _fill(zone, reply, name, qtype, records)
    if edns:
        reply.add_ar(EDNS0(udp_len=EDNS_UDP_SIZE))
    return reply.pack()


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
