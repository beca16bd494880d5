"""Rule generation of the service proxy: Services + EndpointSlices → iptables-restore text
(pyk8s.proxy.rules, a pure function)."""

from __future__ import annotations

import re

import pytest

from pyk8s.proxy import iptables, rules

NODE = "node-a"
CIDR = "10.42.0.0/16"


def service(name="web", *, cluster_ip="10.43.0.20", ports=None, type_="ClusterIP", **spec):
    ports = ports or [{"name": "http", "port": 80, "protocol": "TCP", "targetPort": 8080}]
    return {"metadata": {"namespace": "default", "name": name},
            "spec": {"type": type_, "clusterIP": cluster_ip, "ports": ports, **spec}}


def endpoint_slice(service_name="web", ips=("10.42.0.5",), *, port=8080, name="http", protocol="TCP",
                   node=NODE, **conditions):
    return {"metadata": {"namespace": "default", "name": f"{service_name}-abc",
                         "labels": {"kubernetes.io/service-name": service_name}},
            "addressType": "IPv4", "ports": [{"name": name, "port": port, "protocol": protocol}],
            "endpoints": [{"addresses": [ip], "conditions": {"ready": True, **conditions}, "nodeName": node}
                          for ip in ips]}


def render(*pairs, **kwargs):
    states = {f"default/{svc['metadata']['name']}": rules.build_state(svc, slices) for svc, slices in pairs}
    return rules.render(states, node_name=NODE, cluster_cidr=CIDR, **kwargs)


def rules_of(text: str, chain: str) -> list[str]:
    return [line for line in text.splitlines() if line.startswith(f"-A {chain} ")]


def table(text: str, name: str) -> str:
    return text.split(f"*{name}\n", 1)[1].split("COMMIT", 1)[0]


def test_cluster_ip_jumps_to_a_service_chain_that_dnats_to_the_endpoint():
    port = rules.service_ports(service())[0]
    text = render((service(), [endpoint_slice()])).text
    svc, sep = rules.svc_chain(port), rules.sep_chain(port, rules.Endpoint("10.42.0.5", 8080))
    assert re.fullmatch(r"KUBE-SVC-[A-Z2-7]{16}", svc) and re.fullmatch(r"KUBE-SEP-[A-Z2-7]{16}", sep)
    nat = table(text, "nat")
    assert (f'-A KUBE-SERVICES -m comment --comment "default/web:http cluster IP" -m tcp -p tcp '
            f"-d 10.43.0.20 --dport 80 -j {svc}") in nat
    assert rules_of(nat, svc) == [
        f'-A {svc} -m comment --comment "default/web:http cluster IP" -m tcp -p tcp -d 10.43.0.20 --dport 80 '
        f"! -s {CIDR} -j KUBE-MARK-MASQ",
        f'-A {svc} -m comment --comment "default/web:http -> 10.42.0.5:8080" -j {sep}']
    assert rules_of(nat, sep) == [
        f'-A {sep} -m comment --comment "default/web:http" -s 10.42.0.5 -j KUBE-MARK-MASQ',  # hairpin
        f'-A {sep} -m comment --comment "default/web:http" -m tcp -p tcp -j DNAT --to-destination 10.42.0.5:8080']
    # Nodeports last, and the masquerade machinery with the 0x4000 mark.
    assert rules_of(nat, "KUBE-SERVICES")[-1].endswith("-m addrtype --dst-type LOCAL -j KUBE-NODEPORTS")
    assert "-A KUBE-MARK-MASQ -j MARK --or-mark 0x4000" in nat
    assert "-A KUBE-POSTROUTING -m mark ! --mark 0x4000/0x4000 -j RETURN" in nat
    assert "REJECT" not in table(text, "filter")


def test_chain_names_follow_upstreams_hash_of_port_name_and_protocol():
    port = rules.service_ports(service())[0]
    import base64
    import hashlib
    expected = base64.b32encode(hashlib.sha256(b"default/web:httptcp").digest()).decode()[:16]
    assert rules.svc_chain(port) == "KUBE-SVC-" + expected


def test_endpoints_share_traffic_with_probabilities_one_over_the_remaining():
    ips = ("10.42.0.5", "10.42.0.6", "10.42.0.7")
    rendered = render((service(), [endpoint_slice(ips=ips)]))
    svc = rules.svc_chain(rules.service_ports(service())[0])
    jumps = rules_of(rendered.text, svc)[1:]
    assert [re.search(r"--probability (\S+)", line) and re.search(r"--probability (\S+)", line).group(1)
            for line in jumps] == ["0.3333333333", "0.5000000000", None]
    assert [line.split("-> ")[1].split('"')[0] for line in jumps] == [f"{ip}:8080" for ip in ips]


def test_a_service_without_endpoints_is_rejected_in_filter_and_has_no_nat_jump():
    text = render((service(), [])).text
    assert ('-A KUBE-SERVICES -m comment --comment "default/web:http has no endpoints" -m tcp -p tcp '
            "-d 10.43.0.20 --dport 80 -j REJECT --reject-with icmp-port-unreachable") in table(text, "filter")
    assert "cluster IP" not in "\n".join(rules_of(table(text, "nat"), "KUBE-SERVICES"))


def test_not_ready_endpoints_are_skipped_and_terminating_serving_ones_are_the_fallback():
    ready = endpoint_slice(ips=("10.42.0.5",))
    terminating = endpoint_slice(ips=("10.42.0.9",), ready=False, serving=True, terminating=True)
    terminating["metadata"]["name"] = "web-def"
    unready = endpoint_slice(ips=("10.42.0.8",), ready=False)
    unready["metadata"]["name"] = "web-ghi"
    both = render((service(), [ready, terminating, unready])).text
    assert "10.42.0.5:8080" in both and "10.42.0.9" not in both and "10.42.0.8" not in both
    only_terminating = render((service(), [terminating, unready])).text
    assert "DNAT --to-destination 10.42.0.9:8080" in only_terminating and "REJECT" not in only_terminating
    assert "REJECT" in render((service(), [unready])).text


def test_node_port_and_load_balancer_go_through_an_external_chain_that_masquerades():
    svc_obj = service(type_="LoadBalancer", ports=[{"name": "http", "port": 8080, "protocol": "TCP",
                                                    "nodePort": 30080}])
    svc_obj["status"] = {"loadBalancer": {"ingress": [{"ip": "172.18.0.2"}]}}
    port = rules.service_ports(svc_obj)[0]
    nat = table(render((svc_obj, [endpoint_slice()])).text, "nat")
    ext, svc = rules.ext_chain(port), rules.svc_chain(port)
    assert (f'-A KUBE-NODEPORTS -m comment --comment "default/web:http" -m tcp -p tcp --dport 30080 -j {ext}'
            in nat)
    assert (f'-A KUBE-SERVICES -m comment --comment "default/web:http loadbalancer IP" -m tcp -p tcp '
            f"-d 172.18.0.2 --dport 8080 -j {ext}") in nat
    assert rules_of(nat, ext) == [
        f'-A {ext} -m comment --comment "masquerade traffic for default/web:http external destinations" '
        "-j KUBE-MARK-MASQ", f"-A {ext} -j {svc}"]


def test_node_port_without_endpoints_is_rejected_for_local_destinations():
    svc_obj = service(type_="NodePort", ports=[{"port": 80, "protocol": "TCP", "nodePort": 30081}])
    filter_ = table(render((svc_obj, [])).text, "filter")
    assert ('-A KUBE-EXTERNAL-SERVICES -m comment --comment "default/web has no endpoints" -m addrtype '
            "--dst-type LOCAL -m tcp -p tcp --dport 30081 -j REJECT --reject-with icmp-port-unreachable") in filter_


def test_client_ip_affinity_checks_recent_lists_before_choosing_at_random():
    svc_obj = service(sessionAffinity="ClientIP", sessionAffinityConfig={"clientIP": {"timeoutSeconds": 60}})
    port = rules.service_ports(svc_obj)[0]
    nat = table(render((svc_obj, [endpoint_slice(ips=("10.42.0.5", "10.42.0.6"))])).text, "nat")
    svc = rules.svc_chain(port)
    sep = rules.sep_chain(port, rules.Endpoint("10.42.0.5", 8080))
    chain = rules_of(nat, svc)
    assert (f"-m recent --name {sep} --rcheck --seconds 60 --reap --mask 255.255.255.255 --rsource -j {sep}"
            in chain[1])
    assert "statistic" in chain[3]
    assert (f"-m recent --name {sep} --mask 255.255.255.255 --set --rsource -m tcp -p tcp -j DNAT "
            "--to-destination 10.42.0.5:8080") in rules_of(nat, sep)[1]
    assert rules.service_ports(service(sessionAffinity="ClientIP"))[0].affinity_seconds == 10800


def test_external_traffic_policy_local_keeps_the_client_address_and_uses_local_endpoints():
    svc_obj = service(type_="NodePort", externalTrafficPolicy="Local",
                      ports=[{"name": "http", "port": 80, "protocol": "TCP", "nodePort": 30082}])
    here = endpoint_slice(ips=("10.42.0.5",))
    there = endpoint_slice(ips=("10.42.1.5",), node="node-b")
    there["metadata"]["name"] = "web-other"
    port = rules.service_ports(svc_obj)[0]
    nat = table(render((svc_obj, [here, there])).text, "nat")
    ext, svl, svc = rules.ext_chain(port), rules.svl_chain(port), rules.svc_chain(port)
    ext_rules = rules_of(nat, ext)
    assert ext_rules[0].endswith(f"-s {CIDR} -j {svc}")
    assert ext_rules[-1] == f"-A {ext} -j {svl}"
    assert "KUBE-MARK-MASQ" not in "\n".join(rules_of(nat, svl))
    assert [line.split("-> ")[1].split('"')[0] for line in rules_of(nat, svl)] == ["10.42.0.5:8080"]
    # No endpoint on this node: external traffic is dropped, not sent elsewhere.
    filter_ = table(render((svc_obj, [there])).text, "filter")
    assert "has no local endpoints" in filter_ and "--dport 30082 -j DROP" in filter_


def test_internal_traffic_policy_local_sends_cluster_ip_traffic_to_this_nodes_endpoints_only():
    svc_obj = service(internalTrafficPolicy="Local")
    port = rules.service_ports(svc_obj)[0]
    here = endpoint_slice(ips=("10.42.0.5",))
    there = endpoint_slice(ips=("10.42.1.5",), node="node-b")
    there["metadata"]["name"] = "web-other"
    nat = table(render((svc_obj, [here, there])).text, "nat")
    assert f"--dport 80 -j {rules.svl_chain(port)}" in nat
    assert "10.42.1.5" not in "\n".join(rules_of(nat, rules.svl_chain(port)))
    assert "-j DROP" in table(render((svc_obj, [there])).text, "filter")


def test_headless_and_external_name_services_get_no_rules():
    assert rules.service_ports(service(cluster_ip="None")) == []
    assert rules.service_ports(service(type_="ExternalName", cluster_ip="")) == []


def test_a_partial_sync_rewrites_only_dirty_services_and_deletes_their_unused_chains():
    first = render((service("a", cluster_ip="10.43.0.21"), [endpoint_slice("a", ("10.42.0.5", "10.42.0.6"))]),
                   (service("b", cluster_ip="10.43.0.22"), [endpoint_slice("b", ("10.42.0.7",))]))
    old_chains = first.chains["default/a"]
    second = render((service("a", cluster_ip="10.43.0.21"), [endpoint_slice("a", ("10.42.0.5",))]),
                    (service("b", cluster_ip="10.43.0.22"), [endpoint_slice("b", ("10.42.0.7",))]),
                    dirty={"default/a"}, maybe_stale=old_chains)
    nat = table(second.text, "nat")
    port_b = rules.service_ports(service("b"))[0]
    assert f":{rules.svc_chain(port_b)} " not in nat  # b's chains are left as they are
    assert "-d 10.43.0.22 --dport 80" in nat  # but KUBE-SERVICES still lists b
    gone = rules.sep_chain(rules.service_ports(service("a"))[0], rules.Endpoint("10.42.0.6", 8080))
    assert f":{gone} - [0:0]" in nat and f"-X {gone}" in nat
    assert old_chains - second.chains["default/a"] == {gone}


def test_udp_ports_use_udp_matches_and_match_slice_ports_by_name_and_protocol():
    svc_obj = service("dns", ports=[{"name": "dns", "port": 53, "protocol": "UDP"},
                                    {"name": "dns-tcp", "port": 53, "protocol": "TCP"}])
    udp_slice = endpoint_slice("dns", port=53, name="dns", protocol="UDP")
    nat = table(render((svc_obj, [udp_slice])).text, "nat")
    assert "-m udp -p udp -d 10.43.0.20 --dport 53" in nat
    assert "has no endpoints" in render((svc_obj, [udp_slice])).text  # the TCP port has none


def test_missing_jumps_are_inserted_and_cleanup_removes_everything():
    text = render((service(), [endpoint_slice()]), missing_jumps=rules.JUMPS).text
    assert '-I PREROUTING -m comment --comment "kubernetes service portals" -j KUBE-SERVICES' in text
    assert "-I INPUT -j KUBE-FIREWALL" in text
    saved = ("*filter\n:INPUT ACCEPT [0:0]\n:KUBE-SERVICES - [0:0]\n:KUBE-FIREWALL - [0:0]\n"
             "-A INPUT -j KUBE-FIREWALL\n-A INPUT -m comment --comment \"kubernetes externally-visible service "
             "portals\" -m conntrack --ctstate NEW -j KUBE-EXTERNAL-SERVICES\nCOMMIT\n"
             "*nat\n:KUBE-SERVICES - [0:0]\n:KUBE-SVC-AAAA - [0:0]\n:CNI-HOSTPORT-DNAT - [0:0]\n"
             "-A PREROUTING -m comment --comment \"kubernetes service portals\" -j KUBE-SERVICES\nCOMMIT\n")
    chains, jumps = iptables.parse_save(saved)
    assert ("nat", "PREROUTING", rules.JUMPS[0][2]) in jumps and ("filter", "INPUT", "-j KUBE-FIREWALL") in jumps
    cleanup = rules.cleanup_text(chains, jumps)
    assert "-X KUBE-SVC-AAAA" in cleanup and "-D INPUT -j KUBE-FIREWALL" in cleanup
    assert "CNI-HOSTPORT" not in cleanup


def test_iptables_mode_reads_the_tables_only_at_start_and_after_a_failure(monkeypatch):
    """IptablesBackend (what ServiceProxy.sync runs in iptables mode) skips iptables-save on
    periodic full syncs: it knows the chains it wrote. Its restore texts must be exactly what
    the plain path (reading the tables every time) writes."""
    import asyncio

    from pyk8s.proxy.proxier import IptablesBackend

    saves, restored = [], []
    kernel_chains: set[str] = set()

    async def current():
        saves.append(1)
        return {"nat": set(kernel_chains)}, set(rules.JUMPS)

    async def restore(text):
        if "FAIL" in text:
            raise iptables.RestoreFailed("refused")
        restored.append(text)
        for line in text.splitlines():  # what the nat table holds afterwards
            if line.startswith(":KUBE-"):
                kernel_chains.add(line[1:].split()[0])
            elif line.startswith("-X "):
                kernel_chains.discard(line.split()[1])

    monkeypatch.setattr(iptables, "current", current)
    monkeypatch.setattr(iptables, "restore", restore)
    backend = IptablesBackend(node_name=NODE, cluster_cidr=CIDR)
    web = rules.build_state(service("web"), [endpoint_slice("web", ("10.42.0.5", "10.42.0.6"))])
    api = rules.build_state(service("api", cluster_ip="10.43.0.21"), [endpoint_slice("api", ("10.42.0.7",))])
    api_moved = rules.build_state(service("api", cluster_ip="10.43.0.21"), [endpoint_slice("api", ("10.42.0.8",))])

    def plain(states):
        return rules.render(states, node_name=NODE, cluster_cidr=CIDR, maybe_stale=set(kernel_chains)).text

    steps = [({"default/web": web, "default/api": api}, None), ({"default/web": web, "default/api": api_moved}, {"default/api"}),
             ({"default/web": web}, None), ({"default/web": web, "default/api": api}, {"default/api"}),
             ({"default/api": api_moved}, None)]
    for number, (states, dirty) in enumerate(steps):
        want = plain(states) if dirty is None else None
        asyncio.run(backend.sync(states, dirty))
        if want is not None:
            assert restored[-1] == want, number
    assert len(saves) == 1  # only before the first sync
    broken = {"default/FAIL": rules.build_state(service("FAIL", cluster_ip="10.43.0.30"), [])}
    with pytest.raises(iptables.RestoreFailed):
        asyncio.run(backend.sync(broken, None))
    asyncio.run(backend.sync({"default/web": web}, None))
    assert len(saves) == 2  # a failed sync: the next one reads the tables again
