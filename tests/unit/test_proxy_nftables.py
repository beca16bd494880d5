"""The nftables mode's transactions (pyk8s.proxy.nftables): the rules' shapes, and partial
syncs (only the changed services rewritten) leaving the table exactly as a fresh full sync
of the same services would — checked with a small model of the `nft -f` commands used,
which also refuses what the kernel refuses (deleting a missing element, deleting a chain
something still jumps to, adding an element over a different verdict)."""

from __future__ import annotations

import random
import re

import pytest

from pyk8s.proxy import nftables, rules

NODE = "node-a"
CIDR = "10.42.0.0/16"


def service(name: str, ip: str, *, type_: str = "ClusterIP", ports=None, **spec) -> dict:
    return {"metadata": {"namespace": "ns", "name": name},
            "spec": {"type": type_, "clusterIP": ip,
                     "ports": ports or [{"name": "http", "port": 80, "protocol": "TCP", "targetPort": 8080}], **spec}}


def slice_(name: str, addresses: list[tuple[str, str]], *, port: int = 8080, protocol: str = "TCP",
           port_name: str = "http", ready: bool = True) -> dict:
    return {"metadata": {"namespace": "ns", "name": f"{name}-x", "labels": {rules.SERVICE_NAME_LABEL: name}},
            "addressType": "IPv4", "ports": [{"name": port_name, "port": port, "protocol": protocol}],
            "endpoints": [{"addresses": [ip], "conditions": {"ready": ready}, "nodeName": node}
                          for ip, node in addresses]}


def render_all(states: dict) -> nftables.Transaction:
    return nftables.render(states, node_name=NODE, cluster_cidr=CIDR, previous=None)


class Table:
    """The `ip kube-proxy` table as the commands nftables.render writes leave it."""

    def __init__(self) -> None:
        self.exists = False
        self.chains: dict[str, list[str]] = {}
        self.maps: dict[str, dict[str, str]] = {}
        self.sets: dict[str, set[str]] = {}

    def apply(self, text: str) -> None:
        for line in text.splitlines():
            if line:
                self.command(line)

    def _referenced(self, chain: str) -> bool:
        pattern = re.compile(rf"(goto|jump) {re.escape(chain)}(\s|,|$)")
        return (any(pattern.search(rule) for rules_ in self.chains.values() for rule in rules_)
                or any(pattern.search(value) for m in self.maps.values() for value in m.values()))

    def command(self, line: str) -> None:
        T = nftables.T
        if line == f"add table {T}" or line.startswith(f"add table {T} {{"):
            self.exists = True
            return
        assert self.exists, line
        if line == f"delete table {T}":
            self.__init__()
            return
        verb, kind, rest = re.match(rf"(add|delete|flush) (chain|rule|map|set|element) {T} (.*)$", line).groups()
        name, _, body = rest.partition(" ")
        if kind == "chain":
            if verb == "add":
                self.chains.setdefault(name, [])
            elif verb == "flush":
                assert name in self.chains, line
                self.chains[name] = []
            else:
                assert name in self.chains and not self.chains[name], line
                assert not self._referenced(name), f"{line}: still referenced"
                del self.chains[name]
        elif kind == "rule":
            assert name in self.chains, line
            for target in re.findall(r"(?:goto|jump) ([^\s,}]+)", body):
                assert target in self.chains, f"{line}: no chain {target}"
            for used in re.findall(r"@([^\s,}]+)", body):
                assert used in self.sets or used in self.maps, f"{line}: no set {used}"
            self.chains[name].append(body)
        elif kind == "map":
            if verb == "add":
                self.maps.setdefault(name, {})
            else:
                self.maps[name] = {}
        elif kind == "set":
            if verb == "add":
                self.sets.setdefault(name, set())
            elif verb == "flush":
                self.sets[name] = set()
            else:
                assert name in self.sets, line
                assert not any(f"@{name}" in r for rs in self.chains.values() for r in rs), f"{line}: still used"
                del self.sets[name]
        else:
            elements = [e.strip() for e in body.strip().strip("{}").split(",")]
            if name in self.maps:
                target = self.maps[name]
                for element in elements:
                    key, _, value = element.partition(" : ")
                    if verb == "add":
                        assert target.get(key, value) == value, f"{line}: {key} has another verdict"
                        for chain in re.findall(r"goto (\S+)", value):
                            assert chain in self.chains, f"{line}: no chain {chain}"
                        target[key] = value
                    else:
                        assert key in target, f"{line}: no element {key}"
                        del target[key]
            else:
                target_set = self.sets[name]
                for element in elements:
                    if verb == "add":
                        target_set.add(element)
                    else:
                        assert element in target_set, f"{line}: no element {element}"
                        target_set.discard(element)

    def snapshot(self) -> tuple:
        return ({name: list(r) for name, r in self.chains.items()}, self.maps, self.sets)


def test_cluster_ip_with_endpoints_maps_to_a_service_chain_whose_dnat_picks_an_endpoint():
    state = rules.build_state(service("web", "10.43.0.5"), [slice_("web", [("10.42.0.7", NODE), ("10.42.1.8", "b")])])
    table = Table()
    table.apply(render_all({"ns/web": state}).text)
    svc = nftables.service_chain(state.ports[0])
    assert re.fullmatch(r"service-[A-Z2-7]{8}-ns/web/tcp/http", svc)
    assert table.maps["service-ips"] == {"10.43.0.5 . tcp . 80": f"goto {svc}"}
    assert table.maps["no-endpoint-services"] == {}
    assert table.chains[svc] == [
        f"ip daddr 10.43.0.5 tcp dport 80 ip saddr != {CIDR} jump mark-for-masquerade",
        "meta l4proto tcp dnat ip addr . port to numgen random mod 2 map { 0 : 10.42.0.7 . 8080, 1 : 10.42.1.8 . 8080 }"]
    assert not [chain for chain in table.chains if chain.startswith("endpoint-")]  # only affinity needs them
    assert table.sets["hairpin-endpoints"] == {"10.42.0.7 . 10.42.0.7", "10.42.1.8 . 10.42.1.8"}
    assert "ct status dnat ip saddr . ip daddr @hairpin-endpoints jump mark-for-masquerade" in \
        table.chains["nat-postrouting"]


def test_a_service_without_ready_endpoints_is_rejected_not_mapped():
    state = rules.build_state(service("idle", "10.43.0.6"), [slice_("idle", [("10.42.0.9", NODE)], ready=False)])
    table = Table()
    table.apply(render_all({"ns/idle": state}).text)
    assert table.maps["service-ips"] == {}
    assert table.maps["no-endpoint-services"] == {"10.43.0.6 . tcp . 80": "goto reject-chain"}
    assert table.chains["reject-chain"] == ["reject"]


def test_node_port_with_local_policy_and_no_local_endpoint_is_dropped_but_still_mapped():
    svc = service("np", "10.43.0.7", type_="NodePort", externalTrafficPolicy="Local", externalIPs=["192.0.2.4"],
                  ports=[{"name": "dns", "port": 53, "protocol": "UDP", "nodePort": 30053}])
    state = rules.build_state(svc, [slice_("np", [("10.42.1.3", "other-node")], port=5353, protocol="UDP",
                                           port_name="dns")])
    table = Table()
    table.apply(render_all({"ns/np": state}).text)
    port = state.ports[0]
    ext, loc, svc_chain = (nftables.external_chain(port), nftables.local_chain(port), nftables.service_chain(port))
    assert table.maps["service-nodeports"] == {"udp . 30053": f"goto {ext}"}
    assert table.maps["no-endpoint-nodeports"] == {"udp . 30053": "drop"}
    assert table.maps["service-ips"]["192.0.2.4 . udp . 53"] == f"goto {ext}"
    assert table.maps["no-endpoint-services"] == {"192.0.2.4 . udp . 53": "drop"}
    assert table.chains[ext] == [f"ip saddr {CIDR} goto {svc_chain}", "fib saddr type local jump mark-for-masquerade",
                                 f"fib saddr type local goto {svc_chain}", f"goto {loc}"]
    assert table.chains[loc] == []  # no endpoint here: falls through, the filter drop answers


def test_client_ip_affinity_uses_a_timed_set_per_endpoint():
    svc = service("sticky", "10.43.0.8", sessionAffinity="ClientIP",
                  sessionAffinityConfig={"clientIP": {"timeoutSeconds": 600}})
    state = rules.build_state(svc, [slice_("sticky", [("10.42.0.4", NODE)])])
    text = render_all({"ns/sticky": state}).text
    port, [endpoint] = state.ports[0], state.endpoints_of(state.ports[0])
    affinity, chain = nftables.affinity_set(port, endpoint), nftables.endpoint_chain(port, endpoint)
    assert f"add set {nftables.T} {affinity} {{ type ipv4_addr ; flags dynamic,timeout ; timeout 600s ; }}" in text
    table = Table()
    table.apply(text)
    assert table.chains[nftables.service_chain(port)][1:] == [
        f"ip saddr @{affinity} goto {chain}", f"numgen random mod 1 vmap {{ 0 : goto {chain} }}"]
    assert table.chains[chain] == [f"update @{affinity} {{ ip saddr }}", "meta l4proto tcp dnat to 10.42.0.4:8080"]


def _random_state(rng: random.Random, index: int) -> rules.ServiceState | None:
    """One of the shapes a service can take, endpoints drawn from a small pool (so endpoint
    IPs are shared between services, as a pod behind two Services is)."""
    shape = rng.choice(["gone", "plain", "plain", "none", "nodeport", "local", "affinity", "udp"])
    if shape == "gone":
        return None
    name, ip = f"s{index}", f"10.43.0.{index + 1}"
    extra: dict = {}
    protocol, port_name = "TCP", "http"
    if shape == "nodeport":
        extra = {"type_": "NodePort", "ports": [{"name": "http", "port": 80, "protocol": "TCP", "nodePort": 30000 + index}],
                 "externalIPs": ["192.0.2.1"] if index == 1 else []}
    elif shape == "local":
        extra = {"type_": "LoadBalancer", "externalTrafficPolicy": "Local", "internalTrafficPolicy": "Local",
                 "ports": [{"name": "http", "port": 80, "protocol": "TCP", "nodePort": 31000 + index}]}
    elif shape == "affinity":
        extra = {"sessionAffinity": "ClientIP"}
    elif shape == "udp":
        protocol, port_name = "UDP", "dns"
        extra = {"ports": [{"name": "dns", "port": 53, "protocol": "UDP"}]}
    count = 0 if shape == "none" else rng.randint(0, 4)
    addresses = [(f"10.42.0.{rng.randint(2, 9)}", rng.choice([NODE, "other"])) for _ in range(count)]
    return rules.build_state(service(name, ip, **extra),
                             [slice_(name, addresses, protocol=protocol, port_name=port_name)])


@pytest.mark.parametrize("seed", range(12))
def test_partial_syncs_leave_the_table_a_full_sync_would_write(seed):
    rng = random.Random(seed)
    states = {f"ns/s{i}": s for i in range(6) if (s := _random_state(rng, i)) is not None}
    table = Table()
    transaction = render_all(states)
    table.apply(transaction.text)
    for round_ in range(25):
        dirty = {f"ns/s{i}" for i in rng.sample(range(6), rng.randint(1, 3))}
        for key in dirty:
            state = _random_state(rng, int(key[4:]))
            if state is None:
                states.pop(key, None)
            else:
                states[key] = state
        full = rng.random() < 0.2  # now and then a periodic full sync over what was written
        transaction = nftables.render(states, node_name=NODE, cluster_cidr=CIDR, previous=transaction.written,
                                      dirty=None if full else dirty, flushed_before=transaction.flushed)
        table.apply(transaction.text)
        fresh = Table()
        fresh.apply(render_all(states).text)
        got_chains, got_maps, got_sets = table.snapshot()
        want_chains, want_maps, want_sets = fresh.snapshot()
        # Chains emptied by this sync are deleted by the next one; everything else is equal.
        leftover = {name for name in set(got_chains) - set(want_chains)}
        assert leftover <= transaction.flushed and all(not got_chains[name] for name in leftover), (seed, round_)
        assert {k: v for k, v in got_chains.items() if k not in leftover} == want_chains, (seed, round_)
        assert got_maps == want_maps, (seed, round_)
        assert {k: v for k, v in got_sets.items() if k not in transaction.flushed} == want_sets, (seed, round_)
