"""ClusterIP / NodePort allocation: the range arithmetic (pure), the type-change field rules
(pure), and the allocator over a real SQLite store in a temp dir (no server)."""

from __future__ import annotations

import asyncio
import random

import orjson
import pytest

from pyk8s.api import errors
from pyk8s.api.resources import lookup
from pyk8s.apiserver import strategies
from pyk8s.apiserver.registry import DeleteOptions, Registry
from pyk8s.apiserver.serviceallocation import (NODE_PORTS_PREFIX, SERVICE_IPS_PREFIX, IPRange, PortRange,
                                               ServiceAllocator, service_ips, service_node_ports)
from pyk8s.storage import SQLiteStore

NAMESPACES = lookup("", "v1", "namespaces")
SERVICES = lookup("", "v1", "services")


# -- ranges ----------------------------------------------------------------------------

def test_service_cidr_keeps_its_first_256_addresses_for_static_ips():
    ips = IPRange("10.43.0.0/16")
    assert ips.size == 65534 and ips.static_size == 256
    assert ips.value(0) == "10.43.0.1" and ips.value(255) == "10.43.1.0"
    first = next(ips.candidates(random.Random(1)))
    assert ipaddress_int(first) >= ipaddress_int("10.43.1.1")


def test_small_cidrs_get_upstreams_static_block_sizes():
    assert IPRange("10.0.0.0/28").static_size == 0   # 16 addresses: no static block
    assert IPRange("10.0.0.0/24").static_size == 16  # 256/16
    assert IPRange("10.0.0.0/20").static_size == 256


def test_node_port_range_keeps_86_static_ports():
    ports = PortRange(30000, 32767)
    assert ports.size == 2768 and ports.static_size == 86
    assert all(next(ports.candidates(random.Random(seed))) >= 30086 for seed in range(50))


def test_scan_order_visits_every_value_once_dynamic_block_first():
    ips = IPRange("10.1.0.0/24")
    order = list(ips.candidates(random.Random(7)))
    assert len(order) == len(set(order)) == 254
    static = {ips.value(offset) for offset in range(ips.static_size)}
    assert set(order[-16:]) == static and not static & set(order[:-16])


def test_network_and_broadcast_addresses_are_not_in_range():
    ips = IPRange("10.43.0.0/16")
    assert not ips.contains("10.43.0.0") and not ips.contains("10.43.255.255")
    assert ips.contains("10.43.0.1") and ips.contains("10.43.255.254")
    assert not ips.contains("10.44.0.1") and not ips.contains("fd00::1") and not ips.contains("nonsense")


def test_what_a_service_holds():
    assert service_ips({"clusterIP": "None", "clusterIPs": ["None"]}) == []
    assert service_ips({"type": "ExternalName", "clusterIP": "10.43.0.5"}) == []
    assert service_ips({"clusterIP": "10.43.0.5"}) == ["10.43.0.5"]
    spec = {"type": "LoadBalancer", "externalTrafficPolicy": "Local", "healthCheckNodePort": 31000,
            "ports": [{"port": 53, "nodePort": 30053}, {"port": 53, "protocol": "UDP", "nodePort": 30053}]}
    assert service_node_ports(spec) == [30053, 31000]
    assert service_node_ports({"type": "ClusterIP", "ports": [{"port": 80, "nodePort": 30080}]}) == []


# -- type changes (strategy) --------------------------------------------------------------

def _service(**spec):
    return {"metadata": {"name": "web", "namespace": "default", "uid": "u1"}, "spec": spec, "status": {"loadBalancer": {}}}


def test_change_to_external_name_drops_the_ip_fields_the_client_left_as_they_were():
    old = _service(type="ClusterIP", clusterIP="10.43.3.3", clusterIPs=["10.43.3.3"], ipFamilies=["IPv4"],
                   ipFamilyPolicy="SingleStack", internalTrafficPolicy="Cluster", ports=[{"port": 80}])
    new = orjson.loads(orjson.dumps(old))
    new["spec"].update(type="ExternalName", externalName="db.example.com")
    strategies.prepare_service_update(new, old)
    assert not {"clusterIP", "clusterIPs", "ipFamilies", "ipFamilyPolicy", "internalTrafficPolicy"} & set(new["spec"])


def test_change_to_cluster_ip_drops_unchanged_node_ports_and_keeps_changed_ones():
    old = _service(type="NodePort", clusterIP="10.43.3.3", externalTrafficPolicy="Cluster",
                   ports=[{"port": 80, "protocol": "TCP", "nodePort": 30080}])
    new = orjson.loads(orjson.dumps(old))
    new["spec"]["type"] = "ClusterIP"
    strategies.prepare_service_update(new, old)
    assert "nodePort" not in new["spec"]["ports"][0] and "externalTrafficPolicy" not in new["spec"]
    assert new["spec"]["clusterIP"] == "10.43.3.3"
    changed = orjson.loads(orjson.dumps(old))
    changed["spec"]["type"] = "ClusterIP"
    changed["spec"]["ports"][0]["nodePort"] = 30081
    strategies.prepare_service_update(changed, old)
    assert changed["spec"]["ports"][0]["nodePort"] == 30081  # the client's: validation rejects it


def test_update_without_allocated_values_keeps_them():
    old = _service(type="LoadBalancer", clusterIP="10.43.3.3", clusterIPs=["10.43.3.3"], externalTrafficPolicy="Local",
                   healthCheckNodePort=31999, ports=[{"port": 80, "protocol": "TCP", "nodePort": 30080}])
    new = _service(type="LoadBalancer", externalTrafficPolicy="Local", ports=[{"port": 80, "protocol": "TCP"}])
    strategies.prepare_service_update(new, old)
    assert new["spec"]["clusterIP"] == "10.43.3.3" and new["spec"]["clusterIPs"] == ["10.43.3.3"]
    assert new["spec"]["ports"][0]["nodePort"] == 30080 and new["spec"]["healthCheckNodePort"] == 31999


# -- the allocator over a store ------------------------------------------------------------

def ipaddress_int(text: str) -> int:
    import ipaddress
    return int(ipaddress.ip_address(text))


def run_registry(tmp_path, scenario):
    async def main():
        store = SQLiteStore(str(tmp_path / "state.db"), compact_interval=0)
        await store.start()
        try:
            registry = Registry(store)
            if await store.get(NAMESPACES.storage_key(None, "default")) is None:
                await registry.create(NAMESPACES, None, {"metadata": {"name": "default"}})
            return await scenario(store, registry)
        finally:
            await store.close()
    return asyncio.run(main())


def svc(name: str, **spec) -> dict:
    spec.setdefault("ports", [{"port": 80}])
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name}, "spec": spec}


async def records(store, prefix: str) -> dict[str, str]:
    listed = await store.list(prefix)
    return {kv.key[len(prefix):]: orjson.loads(kv.value)["service"]["name"] for kv in listed.items}


def test_concurrent_creates_in_a_small_range_never_share_an_ip(tmp_path):
    async def scenario(store, registry):
        registry.service_allocator = ServiceAllocator(store, "10.50.0.0/26", rng=random.Random(3))
        results = await asyncio.gather(*(registry.create(SERVICES, "default", svc(f"s{i}")) for i in range(62)),
                                       return_exceptions=True)
        ips = [r["spec"]["clusterIP"] for r in results if isinstance(r, dict)]
        assert len(ips) == len(set(ips)) == 62  # the whole /26 but network and broadcast
        with pytest.raises(errors.InternalError, match="failed to allocate a serviceIP: range is full"):
            await registry.create(SERVICES, "default", svc("one-too-many"))
        assert len(await records(store, SERVICE_IPS_PREFIX)) == 62
    run_registry(tmp_path, scenario)


def test_failed_create_releases_what_it_allocated(tmp_path):
    async def scenario(store, registry):
        await registry.create(SERVICES, "default", svc("web"))
        before = await records(store, SERVICE_IPS_PREFIX)
        with pytest.raises(errors.AlreadyExists):
            await registry.create(SERVICES, "default", svc("web", type="NodePort"))
        assert await records(store, SERVICE_IPS_PREFIX) == before
        assert await records(store, NODE_PORTS_PREFIX) == {}
        # Dry run reserves nothing either.
        await registry.create(SERVICES, "default", svc("dry", clusterIP="10.43.0.77"), dry_run=True)
        assert "10.43.0.77" not in await records(store, SERVICE_IPS_PREFIX)
    run_registry(tmp_path, scenario)


def test_repair_frees_leaked_records_and_records_unrecorded_services(tmp_path):
    async def first(store, registry):
        web = await registry.create(SERVICES, "default", svc("web", type="NodePort"))
        return web["spec"]["clusterIP"], web["spec"]["ports"][0]["nodePort"]
    ip, port = run_registry(tmp_path, first)

    async def tamper(store, registry):
        # A crash between a record and its Service, and a store from before records existed.
        await store.create(SERVICE_IPS_PREFIX + "10.43.9.9", orjson.dumps({"service": {"name": "ghost", "uid": "x"}}))
        await store.delete(SERVICE_IPS_PREFIX + ip)
        await store.delete(NODE_PORTS_PREFIX + str(port))
    run_registry(tmp_path, tamper)

    async def after_restart(store, registry):
        assert await registry.service_allocator.repair() == {"released": 1, "recorded": 2}
        assert await records(store, SERVICE_IPS_PREFIX) == {ip: "web"}
        assert await records(store, NODE_PORTS_PREFIX) == {str(port): "web"}
        with pytest.raises(errors.Invalid, match="provided IP is already allocated"):
            await registry.create(SERVICES, "default", svc("copy", clusterIP=ip))
        await registry.create(SERVICES, "default", svc("reuse", clusterIP="10.43.9.9"))
    run_registry(tmp_path, after_restart)


def test_node_ports_are_one_number_space_and_shared_by_one_service_port_number(tmp_path):
    async def scenario(store, registry):
        dns = await registry.create(SERVICES, "default", svc("dns", type="NodePort", ports=[
            {"name": "tcp", "port": 53, "protocol": "TCP"}, {"name": "udp", "port": 53, "protocol": "UDP"}]))
        tcp, udp = (port["nodePort"] for port in dns["spec"]["ports"])
        assert tcp == udp and 30086 <= tcp <= 32767
        with pytest.raises(errors.Invalid) as caught:
            await registry.create(SERVICES, "default", svc("other", type="NodePort", ports=[
                {"port": 80, "protocol": "UDP", "nodePort": tcp}]))
        assert caught.value.message == (f'Service "other" is invalid: spec.ports[0].nodePort: '
                                        f'Invalid value: {tcp}: provided port is already allocated')
        await registry.delete(SERVICES, "default", "dns", DeleteOptions())
        assert await records(store, NODE_PORTS_PREFIX) == {}
    run_registry(tmp_path, scenario)


def test_load_balancer_with_local_policy_gets_a_health_check_node_port(tmp_path):
    async def scenario(store, registry):
        lb = await registry.create(SERVICES, "default", svc("lb", type="LoadBalancer", externalTrafficPolicy="Local"))
        spec = lb["spec"]
        assert spec["allocateLoadBalancerNodePorts"] is True
        assert spec["healthCheckNodePort"] != spec["ports"][0]["nodePort"]
        assert set(await records(store, NODE_PORTS_PREFIX)) == {str(spec["healthCheckNodePort"]), str(spec["ports"][0]["nodePort"])}

        def to_cluster_policy(current):
            current["spec"]["externalTrafficPolicy"] = "Cluster"
            return current
        updated = await registry.modify(SERVICES, "default", "lb", to_cluster_policy)
        assert "healthCheckNodePort" not in updated["spec"]
        assert set(await records(store, NODE_PORTS_PREFIX)) == {str(spec["ports"][0]["nodePort"])}
    run_registry(tmp_path, scenario)


def test_deleting_the_kubernetes_service_frees_its_static_ip_for_recreation(tmp_path):
    async def scenario(store, registry):
        kubernetes = svc("kubernetes", clusterIP="10.43.0.1", ports=[{"name": "https", "port": 443, "targetPort": 6443}])
        await registry.create(SERVICES, "default", orjson.loads(orjson.dumps(kubernetes)))
        # Dynamic allocation never hands out the static block while the dynamic one has room.
        others = await asyncio.gather(*(registry.create(SERVICES, "default", svc(f"s{i}")) for i in range(20)))
        assert all(ipaddress_int(o["spec"]["clusterIP"]) > ipaddress_int("10.43.1.0") for o in others)
        await registry.delete(SERVICES, "default", "kubernetes", DeleteOptions())
        assert "10.43.0.1" not in await records(store, SERVICE_IPS_PREFIX)
        again = await registry.create(SERVICES, "default", kubernetes)
        assert again["spec"]["clusterIP"] == "10.43.0.1"
    run_registry(tmp_path, scenario)
