"""Cluster DNS records and answers (pyk8s.dns.records): query packets built with dnslib,
answered by the pure answering function, replies parsed back."""

from __future__ import annotations

from dnslib import EDNS0, QTYPE, RCODE, DNSRecord

from pyk8s.dns.records import ClusterZone, answer, service_records


def service(name, namespace="default", *, cluster_ip="10.43.0.20", ports=None, kind="ClusterIP", **spec):
    body = {"type": kind, "ports": ports if ports is not None else [{"name": "http", "port": 80, "protocol": "TCP"}]}
    if cluster_ip is not None:
        body["clusterIP"] = cluster_ip
    body.update(spec)
    return {"metadata": {"name": name, "namespace": namespace}, "spec": body}


def endpoint_slice(service_name, endpoints, namespace="default", ports=None, address_type="IPv4"):
    return {"metadata": {"name": f"{service_name}-abc", "namespace": namespace,
                         "labels": {"kubernetes.io/service-name": service_name}},
            "addressType": address_type, "endpoints": endpoints,
            "ports": ports if ports is not None else [{"name": "http", "port": 8080, "protocol": "TCP"}]}


def zone_with(*pairs) -> ClusterZone:
    zone = ClusterZone("cluster.local", dns_ip="10.43.0.10")
    for svc, slices in pairs:
        zone.set_service(f"{svc['metadata']['namespace']}/{svc['metadata']['name']}",
                         service_records(svc, slices, "cluster.local"))
    return zone


def ask(zone, name, qtype="A", *, tcp=False, edns=None) -> DNSRecord:
    query = DNSRecord.question(name, qtype)
    if edns is not None:
        query.add_ar(EDNS0(udp_len=edns))
    reply = answer(zone, query.pack(), tcp=tcp)
    assert reply is not None, f"{name} was not answered"
    parsed = DNSRecord.parse(reply)
    assert parsed.header.id == query.header.id
    return parsed


def rdata(reply: DNSRecord, section="rr") -> list[str]:
    return sorted(str(rr.rdata) for rr in getattr(reply, section))


def test_cluster_ip_service_has_an_authoritative_a_record_with_ttl_5():
    zone = zone_with((service("kube-dns", "kube-system", cluster_ip="10.43.0.10"), []))
    reply = ask(zone, "kube-dns.kube-system.svc.cluster.local")
    assert reply.header.rcode == RCODE.NOERROR and reply.header.aa == 1
    assert rdata(reply) == ["10.43.0.10"]
    assert [rr.ttl for rr in reply.rr] == [5]


def test_names_are_case_insensitive_and_the_question_case_is_kept():
    zone = zone_with((service("web"), []))
    reply = ask(zone, "WEB.Default.SVC.cluster.LOCAL")
    assert rdata(reply) == ["10.43.0.20"]
    assert str(reply.q.qname) == "WEB.Default.SVC.cluster.LOCAL."


def test_unknown_name_in_the_zone_is_nxdomain_with_the_soa():
    zone = zone_with((service("web"), []))
    reply = ask(zone, "nothing.default.svc.cluster.local")
    assert reply.header.rcode == RCODE.NXDOMAIN and reply.header.aa == 1
    assert not reply.rr
    assert [QTYPE[rr.rtype] for rr in reply.auth] == ["SOA"]


def test_known_name_without_the_type_is_nodata_with_the_soa():
    zone = zone_with((service("web"), []))
    reply = ask(zone, "web.default.svc.cluster.local", "AAAA")
    assert reply.header.rcode == RCODE.NOERROR and not reply.rr
    assert [QTYPE[rr.rtype] for rr in reply.auth] == ["SOA"]


def test_namespace_and_zone_interior_names_exist_empty():
    zone = zone_with((service("web"), []))
    for name in ("default.svc.cluster.local", "svc.cluster.local", "cluster.local"):
        assert ask(zone, name).header.rcode == RCODE.NOERROR, name
    assert rdata(ask(zone, "cluster.local", "SOA"))[0].startswith("ns.dns.cluster.local.")


def test_names_outside_the_zone_are_left_to_the_forwarder():
    zone = zone_with((service("web"), []))
    assert answer(zone, DNSRecord.question("example.com").pack()) is None
    assert answer(zone, DNSRecord.question("4.3.2.1.in-addr.arpa", "PTR").pack()) is None


def test_named_port_has_an_srv_record_with_the_service_address_as_additional():
    zone = zone_with((service("web", ports=[{"name": "http", "port": 80, "protocol": "TCP"},
                                            {"port": 81, "protocol": "TCP"}]), []))
    reply = ask(zone, "_http._tcp.web.default.svc.cluster.local", "SRV")
    assert rdata(reply) == ["0 100 80 web.default.svc.cluster.local."]
    assert rdata(reply, "ar") == ["10.43.0.20"]
    assert ask(zone, "_http._udp.web.default.svc.cluster.local", "SRV").header.rcode == RCODE.NXDOMAIN


def test_service_ip_has_a_ptr_record():
    zone = zone_with((service("web"), []))
    reply = ask(zone, "20.0.43.10.in-addr.arpa", "PTR")
    assert rdata(reply) == ["web.default.svc.cluster.local."] and reply.header.aa == 1


def test_headless_service_answers_ready_endpoints_and_their_hostnames():
    headless = service("db", cluster_ip="None")
    slices = [endpoint_slice("db", [
        {"addresses": ["10.42.0.7"], "hostname": "db-0", "conditions": {"ready": True}},
        {"addresses": ["10.42.0.8"], "conditions": {"ready": True}},
        {"addresses": ["10.42.0.9"], "hostname": "db-2", "conditions": {"ready": False}},
    ])]
    zone = zone_with((headless, slices))
    assert rdata(ask(zone, "db.default.svc.cluster.local")) == ["10.42.0.7", "10.42.0.8"]
    assert rdata(ask(zone, "db-0.db.default.svc.cluster.local")) == ["10.42.0.7"]
    assert rdata(ask(zone, "10-42-0-8.db.default.svc.cluster.local")) == ["10.42.0.8"]
    assert ask(zone, "db-2.db.default.svc.cluster.local").header.rcode == RCODE.NXDOMAIN
    srv = ask(zone, "_http._tcp.db.default.svc.cluster.local", "SRV")
    assert rdata(srv) == ["0 50 8080 10-42-0-8.db.default.svc.cluster.local.",
                          "0 50 8080 db-0.db.default.svc.cluster.local."]
    assert rdata(srv, "ar") == ["10.42.0.7", "10.42.0.8"]
    assert rdata(ask(zone, "7.0.42.10.in-addr.arpa", "PTR")) == ["db-0.db.default.svc.cluster.local."]


def test_headless_service_publishes_not_ready_addresses_when_asked():
    headless = service("db", cluster_ip="None", publishNotReadyAddresses=True)
    zone = zone_with((headless, [endpoint_slice("db", [{"addresses": ["10.42.0.9"], "conditions": {"ready": False}}])]))
    assert rdata(ask(zone, "db.default.svc.cluster.local")) == ["10.42.0.9"]


def test_external_name_service_is_a_cname_chased_inside_the_zone():
    zone = zone_with((service("ext", kind="ExternalName", cluster_ip=None, externalName="example.com"), []),
                     (service("alias", kind="ExternalName", cluster_ip=None,
                              externalName="web.default.svc.cluster.local"), []),
                     (service("web"), []))
    reply = ask(zone, "ext.default.svc.cluster.local")
    assert [QTYPE[rr.rtype] for rr in reply.rr] == ["CNAME"] and rdata(reply) == ["example.com."]
    chased = ask(zone, "alias.default.svc.cluster.local")
    assert [QTYPE[rr.rtype] for rr in chased.rr] == ["CNAME", "A"]


def test_pod_names_answer_their_dashed_address():
    zone = zone_with()
    assert rdata(ask(zone, "10-42-0-5.default.pod.cluster.local")) == ["10.42.0.5"]
    assert ask(zone, "not-an-ip.default.pod.cluster.local").header.rcode == RCODE.NXDOMAIN


def test_removing_a_service_removes_its_records_and_changes_the_generation():
    zone = zone_with((service("web"), []), (service("api", cluster_ip="10.43.0.21"), []))
    generation = zone.generation
    zone.remove_service("default/web")
    assert zone.generation > generation
    assert ask(zone, "web.default.svc.cluster.local").header.rcode == RCODE.NXDOMAIN
    assert rdata(ask(zone, "api.default.svc.cluster.local")) == ["10.43.0.21"]
    zone.remove_service("default/api")
    assert ask(zone, "default.svc.cluster.local").header.rcode == RCODE.NXDOMAIN


def test_big_reply_is_truncated_over_udp_and_whole_over_tcp_or_with_edns():
    endpoints = [{"addresses": [f"10.42.1.{i}"], "conditions": {"ready": True}} for i in range(1, 60)]
    zone = zone_with((service("many", cluster_ip="None"), [endpoint_slice("many", endpoints)]))
    udp = ask(zone, "many.default.svc.cluster.local")
    assert udp.header.tc == 1 and not udp.rr
    assert len(ask(zone, "many.default.svc.cluster.local", tcp=True).rr) == 59
    edns = ask(zone, "many.default.svc.cluster.local", edns=4096)
    assert edns.header.tc == 0 and len(edns.rr) == 59
    assert [QTYPE[rr.rtype] for rr in edns.ar] == ["OPT"]


def test_dns_version_record():
    assert rdata(ask(zone_with(), "dns-version.cluster.local", "TXT")) == ['"1.1.0"']


def test_malformed_query_is_formerr():
    reply = answer(zone_with(), b"\x12\x34" + b"\x01\x00\x00\x01" + b"\xff" * 6)
    assert reply is not None and DNSRecord.parse(reply).header.rcode == RCODE.FORMERR
