"""The DNS fast path (pyk8s.dns.records.answer: a query scanned without dnslib, the reply a
template packed ahead with the ID, RD bit and question patched in) gives the same bytes as
the plain path (answer_plain: dnslib parses the query and packs the reply) for every record
type and query variant, and no template outlives the Service change that made it wrong."""

from __future__ import annotations

import random

import pytest
from dnslib import EDNS0, QTYPE, RCODE, DNSRecord, EDNSOption

from pyk8s.dns.records import ClusterZone, answer, answer_plain, scan_query, service_records
from test_dns_records import service

ZONE = "cluster.local"




def endpoint_slice(service_name, endpoints, namespace="default", address_type="IPv4"):
    return {"metadata": {"name": f"{service_name}-abc", "namespace": namespace,
                         "labels": {"kubernetes.io/service-name": service_name}},
            "addressType": address_type, "endpoints": endpoints,
            "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}, {"name": "dns", "port": 53, "protocol": "UDP"}]}


def ready(ip, hostname=None, is_ready=True):
    endpoint = {"addresses": [ip], "conditions": {"ready": is_ready}}
    if hostname:
        endpoint["hostname"] = hostname
    return endpoint


SERVICES = [
    (service("web"), []),
    (service("kube-dns", "kube-system", cluster_ip="10.43.0.10",
             ports=[{"name": "dns", "port": 53, "protocol": "UDP"}, {"name": "dns-tcp", "port": 53, "protocol": "TCP"},
                    {"port": 9153, "protocol": "TCP"}]), []),
    (service("dual", cluster_ip="10.43.0.30", clusterIPs=["10.43.0.30", "fd00:43::30"]), []),
    (service("v6only", cluster_ip="fd00:43::31", clusterIPs=["fd00:43::31"]), []),
    (service("db", cluster_ip="None"), [endpoint_slice("db", [
        ready("10.42.0.7", "db-0"), ready("10.42.0.8"), ready("10.42.0.9", "db-2", is_ready=False)])]),
    (service("peers", cluster_ip="None", publishNotReadyAddresses=True), [endpoint_slice("peers", [
        ready("10.42.1.7", "p-0", is_ready=False), ready("10.42.1.8")])]),
    # Forty endpoints: the A reply is bigger than 512 bytes (truncated over plain UDP).
    (service("big", cluster_ip="None"), [endpoint_slice("big", [ready(f"10.42.2.{i}") for i in range(1, 41)])]),
    (service("ext", kind="ExternalName", cluster_ip=None, externalName="example.com"), []),
    (service("alias", kind="ExternalName", cluster_ip=None, externalName="web.default.svc.cluster.local"), []),
    (service("pending", cluster_ip=None), []),
    (service("solo", "other", cluster_ip="10.43.5.5"), []),  # the only Service of its namespace
]

NAMES = [
    "web.default.svc.cluster.local", "kube-dns.kube-system.svc.cluster.local",
    "_dns._udp.kube-dns.kube-system.svc.cluster.local", "_dns-tcp._tcp.kube-dns.kube-system.svc.cluster.local",
    "dual.default.svc.cluster.local", "v6only.default.svc.cluster.local",
    "db.default.svc.cluster.local", "db-0.db.default.svc.cluster.local", "10-42-0-8.db.default.svc.cluster.local",
    "db-2.db.default.svc.cluster.local", "_http._tcp.db.default.svc.cluster.local",
    "_dns._udp.db.default.svc.cluster.local", "peers.default.svc.cluster.local", "p-0.peers.default.svc.cluster.local",
    "big.default.svc.cluster.local", "_http._tcp.big.default.svc.cluster.local",
    "ext.default.svc.cluster.local", "alias.default.svc.cluster.local", "pending.default.svc.cluster.local",
    "nothing.default.svc.cluster.local", "google.com.default.svc.cluster.local", "default.svc.cluster.local",
    "svc.cluster.local", "cluster.local", "pod.cluster.local", "default.pod.cluster.local",
    "10-42-0-5.default.pod.cluster.local", "fd00--5.default.pod.cluster.local", "not-an-ip.default.pod.cluster.local",
    "ns.dns.cluster.local", "dns-version.cluster.local", "*.default.svc.cluster.local",
    "20.0.43.10.in-addr.arpa", "10.0.43.10.in-addr.arpa", "7.0.42.10.in-addr.arpa", "8.0.42.10.in-addr.arpa",
    "0.43.10.in-addr.arpa", "4.3.2.1.in-addr.arpa",
    "1.3.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.3.4.0.0.0.0.d.f.ip6.arpa",
    "other.svc.cluster.local", "solo.other.svc.cluster.local", "5.5.43.10.in-addr.arpa", "5.43.10.in-addr.arpa",
    "_tcp.db.default.svc.cluster.local", "2.42.10.in-addr.arpa",
    "example.com", "web.default.svc.cluster.local.example.com",
]
QTYPES = ["A", "AAAA", "SRV", "PTR", "CNAME", "TXT", "SOA", "NS", "ANY", "MX"]
EDNS_VARIANTS = [None, 512, 1232, 4096, "cookie", "do"]


def build_zone(services=SERVICES, *, precompute=True) -> ClusterZone:
    zone = ClusterZone(ZONE, dns_ip="10.43.0.10", precompute=precompute)
    for svc, slices in services:
        zone.set_service(f"{svc['metadata']['namespace']}/{svc['metadata']['name']}",
                         service_records(svc, slices, ZONE))
    return zone


def spellings(name: str, rng: random.Random) -> list[str]:
    mixed = "".join(c.upper() if rng.random() < 0.5 else c for c in name)
    return [name, name.upper(), mixed]


def query(name: str, qtype: str, *, query_id: int, rd: int, edns) -> bytes:
    record = DNSRecord.question(name, qtype)
    record.header.id, record.header.rd = query_id, rd
    if edns == "cookie":
        record.add_ar(EDNS0(udp_len=1232, opts=[EDNSOption(10, b"\x01\x02\x03\x04\x05\x06\x07\x08")]))
    elif edns == "do":
        record.add_ar(EDNS0(udp_len=4096, flags="do"))
    elif edns is not None:
        record.add_ar(EDNS0(udp_len=edns))
    return record.pack()


def every_query(rng: random.Random):
    """Every name and type, each spelled three ways, with and without EDNS0 (every EDNS0
    variant comes up for every type)."""
    for name in NAMES:
        for index, qtype in enumerate(QTYPES):
            for spelling, spelled in enumerate(spellings(name, rng)):
                edns = EDNS_VARIANTS[(index + spelling) % len(EDNS_VARIANTS)]
                yield query(spelled, qtype, query_id=rng.randrange(65536), rd=rng.randrange(2), edns=edns)


@pytest.mark.parametrize("precompute", [True, False], ids=["packed-at-changes", "packed-when-asked"])
def test_fast_path_bytes_equal_the_plain_path_for_every_record_type_and_variant(precompute):
    zone = build_zone(precompute=precompute)
    rng = random.Random(7)
    compared = answered = 0
    for data in every_query(rng):
        assert scan_query(data) is not None, DNSRecord.parse(data)  # the fast path is the one taken
        for tcp in (False, True):
            # Twice: the first ask may pack the template, the second uses it.
            for _ in range(2):
                fast, plain = answer(zone, data, tcp=tcp), answer_plain(zone, data, tcp=tcp)
                assert fast == plain, (DNSRecord.parse(data), tcp)
            compared += 1
            answered += fast is not None
    assert compared == len(NAMES) * len(QTYPES) * 3 * 2
    assert 0 < answered < compared  # names outside the zone are left to the forwarder


def test_fast_path_replies_parse_as_the_answers_the_spec_gives():
    zone = build_zone()

    def ask(name, qtype="A", *, tcp=False, edns=None):
        data = query(name, qtype, query_id=4321, rd=1, edns=edns)
        assert scan_query(data) is not None
        parsed = DNSRecord.parse(answer(zone, data, tcp=tcp))
        assert parsed.header.id == 4321 and parsed.header.rd == 1 and parsed.header.qr == 1
        assert str(parsed.q.qname) == name + "." and parsed.q.qtype == getattr(QTYPE, qtype)  # 0x20: case kept
        return parsed

    def rdata(parsed, section="rr"):
        return sorted(str(rr.rdata) for rr in getattr(parsed, section))

    reply = ask("WeB.DEFAULT.svc.Cluster.Local")
    assert reply.header.aa == 1 and rdata(reply) == ["10.43.0.20"] and [rr.ttl for rr in reply.rr] == [5]
    nodata = ask("web.default.svc.cluster.local", "AAAA")
    assert nodata.header.rcode == RCODE.NOERROR and not nodata.rr and [QTYPE[r.rtype] for r in nodata.auth] == ["SOA"]
    assert rdata(ask("dual.default.svc.cluster.local", "AAAA")) == ["fd00:43::30"]
    srv = ask("_dns._udp.kube-dns.kube-system.svc.cluster.local", "SRV")
    assert rdata(srv) == ["0 100 53 kube-dns.kube-system.svc.cluster.local."] and rdata(srv, "ar") == ["10.43.0.10"]
    assert rdata(ask("20.0.43.10.in-addr.arpa", "PTR")) == ["web.default.svc.cluster.local."]
    cname = ask("alias.default.svc.cluster.local")
    assert [QTYPE[rr.rtype] for rr in cname.rr] == ["CNAME", "A"]
    assert rdata(ask("db.default.svc.cluster.local")) == ["10.42.0.7", "10.42.0.8"]
    assert rdata(ask("10-42-0-5.default.pod.cluster.local")) == ["10.42.0.5"]
    missing = ask("nothing.default.svc.cluster.local")
    assert missing.header.rcode == RCODE.NXDOMAIN and missing.header.aa == 1
    truncated = ask("big.default.svc.cluster.local")
    assert truncated.header.tc == 1 and not truncated.rr
    assert len(ask("big.default.svc.cluster.local", tcp=True).rr) == 40
    with_edns = ask("big.default.svc.cluster.local", edns=1232)
    assert with_edns.header.tc == 0 and len(with_edns.rr) == 40
    assert [QTYPE[rr.rtype] for rr in with_edns.ar] == ["OPT"] and with_edns.ar[0].rclass == 1232


def test_queries_of_other_shapes_take_the_plain_path_with_the_same_reply():
    zone = build_zone()
    plain = DNSRecord.question("web.default.svc.cluster.local").pack()
    compressed = bytes(plain[:12]) + b"\x03web\xc0\x0c" + plain[-4:]  # a pointer in the question
    two_questions = DNSRecord.question("web.default.svc.cluster.local")
    two_questions.add_question(*DNSRecord.question("db.default.svc.cluster.local").questions)
    chaos = DNSRecord.question("web.default.svc.cluster.local", "A", "CH").pack()
    notify = bytearray(plain)
    notify[2] |= 0x20  # opcode 4 (NOTIFY)
    response = bytearray(plain)
    response[2] |= 0x80
    odd_name = DNSRecord.question("we\\.b.default.svc.cluster.local").pack()
    with_edns = query("web.default.svc.cluster.local", "A", query_id=5, rd=1, edns=1232)
    # An OPT record whose option claims more bytes than its RDLENGTH gives.
    bad_option = with_edns[:-2] + b"\x00\x04" + b"\x00\x0a\x00\x08"
    others = [compressed, two_questions.pack(), chaos, bytes(notify), bytes(response), plain + b"\x00",
              odd_name, plain[:-1], b"\x12\x34\x01\x00\x00\x01" + b"\xff" * 6, with_edns + b"\x00", bad_option]
    for data in others:
        assert scan_query(data) is None, data
        assert answer(zone, data) == answer_plain(zone, data)
    assert DNSRecord.parse(answer(zone, bytes(notify))).header.rcode == RCODE.NOTIMP
    assert DNSRecord.parse(answer(zone, two_questions.pack())).header.rcode == RCODE.FORMERR


def test_no_template_outlives_the_service_change_that_made_it_wrong():
    """A zone whose templates were all used, changed at random, answers exactly as a zone
    built afresh from the same Services answers through the plain path."""
    rng = random.Random(11)
    pool = {f"{svc['metadata']['namespace']}/{svc['metadata']['name']}": (svc, slices) for svc, slices in SERVICES}
    # Variants of some Services: a moved ClusterIP, endpoints going away or changing readiness,
    # an ExternalName now pointing elsewhere, a Service named like another's CNAME target.
    variants = {
        "default/web": [(service("web", cluster_ip="10.43.0.99"), []), (service("web"), [])],
        "default/db": [(service("db", cluster_ip="None"), [endpoint_slice("db", [ready("10.42.0.7", "db-0")])]),
                       (service("db", cluster_ip="None"), [endpoint_slice("db", [ready("10.42.0.9", "db-2")])])],
        "default/alias": [(service("alias", kind="ExternalName", cluster_ip=None,
                                   externalName="db.default.svc.cluster.local"), [])],
        "default/pending": [(service("pending", cluster_ip="10.43.0.77"), [])],
    }
    live = dict(pool)
    zone = build_zone(list(live.values()))
    data = [query(name, qtype, query_id=1, rd=1, edns=None) for name in NAMES for qtype in ("A", "AAAA", "SRV", "PTR")]
    changes = 0
    for step in range(40):
        for packet in data:  # use (and pack) every template
            answer(zone, packet)
        key = rng.choice(sorted(pool))
        choice = rng.random()
        if choice < 0.3 and key in live:
            del live[key]
            zone.remove_service(key)
        else:
            svc, slices = rng.choice(variants.get(key, []) + [pool[key]])
            live[key] = (svc, slices)
            zone.set_service(key, service_records(svc, slices, ZONE))
        changes += 1
        fresh = build_zone(list(live.values()), precompute=False)
        for packet in data:
            assert answer(zone, packet) == answer_plain(fresh, packet), (step, key, DNSRecord.parse(packet).q)
    assert changes == 40


def test_an_endpoint_change_that_leaves_the_records_alone_keeps_the_generation():
    zone = build_zone()
    generation = zone.generation
    svc = service("web")
    zone.set_service("default/web", service_records(svc, [endpoint_slice("web", [ready("10.42.0.5")])], ZONE))
    assert zone.generation == generation  # a ClusterIP Service's records do not name its endpoints
    zone.set_service("default/web", service_records(service("web", cluster_ip="10.43.0.98"), [], ZONE))
    assert zone.generation == generation + 1
    reply = DNSRecord.parse(answer(zone, DNSRecord.question("web.default.svc.cluster.local").pack()))
    assert [str(rr.rdata) for rr in reply.rr] == ["10.43.0.98"]
