"""Service ClusterIP and NodePort allocation against a real server: concurrent creates get
distinct values, allocations survive a restart, explicit values are honoured or refused
with upstream's messages, deletes and type changes release, and `kubectl apply` twice
keeps what was allocated."""

from __future__ import annotations

import asyncio
import ipaddress
import json

import pytest

from pyk8s.api import errors
from pyk8s.api.resources import lookup
from pyk8s.client import Client
from pyk8s.cluster.localcluster import LocalServer

SERVICES = lookup("", "v1", "services")
SERVICE_CIDR = ipaddress.ip_network("10.43.0.0/16")


def _service(name: str, namespace: str = "default", **spec) -> dict:
    spec.setdefault("ports", [{"port": 80, "targetPort": 8080}])
    spec.setdefault("selector", {"app": name})
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name, "namespace": namespace}, "spec": spec}


def _run(coroutine):
    return asyncio.run(coroutine)


async def _create_many(server: LocalServer, names: list[str]) -> list[dict]:
    async with Client.from_kubeconfig(server.kubeconfig) as client:
        return await asyncio.gather(*(client.create(SERVICES, _service(name)) for name in names))


async def _delete_all(server: LocalServer, names: list[str]) -> None:
    async with Client.from_kubeconfig(server.kubeconfig) as client:
        await asyncio.gather(*(client.delete(SERVICES, name, "default") for name in names))


def _spec(kubectl, name: str) -> dict:
    return json.loads(kubectl("get", "service", name, "-o", "json"))["spec"]


def test_fifty_concurrent_creates_get_fifty_distinct_ips_from_the_dynamic_block(server):
    names = [f"concurrent-{index}" for index in range(50)]
    created = _run(_create_many(server, names))
    ips = [service["spec"]["clusterIP"] for service in created]
    assert len(set(ips)) == 50
    for ip, service in zip(ips, created):
        assert service["spec"]["clusterIPs"] == [ip]
        address = ipaddress.ip_address(ip)
        # Above the static block (10.43.0.1-10.43.1.0) kept for explicit requests.
        assert address in SERVICE_CIDR and address > ipaddress.ip_address("10.43.1.0")
    _run(_delete_all(server, names))


def test_explicit_cluster_ip_is_honoured_then_refused_while_taken_and_reusable_after_delete(server, kubectl):
    kubectl("create", "service", "clusterip", "fixed", "--tcp=80:8080", "--clusterip=10.43.0.42")
    assert _spec(kubectl, "fixed")["clusterIPs"] == ["10.43.0.42"]

    taken = kubectl.run("create", "service", "clusterip", "copy", "--tcp=80:8080", "--clusterip=10.43.0.42", check=False)
    assert taken.returncode != 0
    assert taken.stderr.strip() == (
        'error: failed to create ClusterIP service: Service "copy" is invalid: spec.clusterIPs: '
        'Invalid value: []string{"10.43.0.42"}: failed to allocate IP 10.43.0.42: provided IP is already allocated')

    outside = kubectl.run("create", "service", "clusterip", "outside", "--tcp=80:8080", "--clusterip=10.99.0.5", check=False)
    assert outside.returncode != 0
    assert outside.stderr.strip() == (
        'error: failed to create ClusterIP service: Service "outside" is invalid: spec.clusterIPs: '
        'Invalid value: []string{"10.99.0.5"}: failed to allocate IP 10.99.0.5: the provided IP (10.99.0.5) '
        'is not in the valid range. The range of valid IPs is 10.43.0.0/16')

    kubectl("delete", "service", "fixed")
    kubectl("create", "service", "clusterip", "copy", "--tcp=80:8080", "--clusterip=10.43.0.42")
    assert _spec(kubectl, "copy")["clusterIP"] == "10.43.0.42"
    kubectl("delete", "service", "copy")


def test_headless_service_gets_no_ip_and_holds_none(server, kubectl):
    kubectl("create", "service", "clusterip", "headless", "--clusterip=None")
    spec = _spec(kubectl, "headless")
    assert spec["clusterIP"] == "None" and spec["clusterIPs"] == ["None"]
    kubectl("delete", "service", "headless")


def test_node_port_duplicates_are_refused_and_released_on_delete(server, kubectl):
    kubectl("create", "service", "nodeport", "np-a", "--tcp=80:8080", "--node-port=30123")
    assert _spec(kubectl, "np-a")["ports"][0]["nodePort"] == 30123
    duplicate = kubectl.run("create", "service", "nodeport", "np-b", "--tcp=81:8080", "--node-port=30123", check=False)
    assert duplicate.returncode != 0
    assert duplicate.stderr.strip() == (
        'error: failed to create NodePort service: Service "np-b" is invalid: spec.ports[0].nodePort: '
        'Invalid value: 30123: provided port is already allocated')
    kubectl("delete", "service", "np-a")
    kubectl("create", "service", "nodeport", "np-b", "--tcp=81:8080", "--node-port=30123")
    kubectl("delete", "service", "np-b")


def test_type_changes_allocate_and_release(server, kubectl):
    kubectl("create", "service", "clusterip", "shifty", "--tcp=80:8080")
    cluster_ip = _spec(kubectl, "shifty")["clusterIP"]

    kubectl("patch", "service", "shifty", "-p", '{"spec":{"type":"NodePort"}}')
    spec = _spec(kubectl, "shifty")
    node_port = spec["ports"][0]["nodePort"]
    assert spec["clusterIP"] == cluster_ip and 30000 <= node_port <= 32767

    kubectl("patch", "service", "shifty", "-p", '{"spec":{"type":"ClusterIP"}}')
    spec = _spec(kubectl, "shifty")
    assert "nodePort" not in spec["ports"][0] and spec["clusterIP"] == cluster_ip
    # The released port can be taken by another Service.
    kubectl("create", "service", "nodeport", "taker", "--tcp=80:8080", f"--node-port={node_port}")

    kubectl("patch", "service", "shifty", "-p", '{"spec":{"type":"ExternalName","externalName":"db.example.com"}}')
    spec = _spec(kubectl, "shifty")
    assert "clusterIP" not in spec and "clusterIPs" not in spec and "ipFamilies" not in spec
    kubectl("create", "service", "clusterip", "ip-taker", "--tcp=80:8080", f"--clusterip={cluster_ip}")

    kubectl("patch", "service", "shifty", "-p", '{"spec":{"type":"ClusterIP"}}')
    spec = _spec(kubectl, "shifty")
    assert spec["clusterIP"] not in ("", None, cluster_ip) and spec["clusterIPs"] == [spec["clusterIP"]]
    assert spec["ipFamilies"] == ["IPv4"] and spec["ipFamilyPolicy"] == "SingleStack"
    kubectl("delete", "service", "shifty", "taker", "ip-taker")


def test_changing_the_cluster_ip_of_a_service_is_refused(server, kubectl):
    kubectl("create", "service", "clusterip", "steady", "--tcp=80:8080")
    cluster_ip = _spec(kubectl, "steady")["clusterIP"]
    moved = kubectl.run("patch", "service", "steady", "-p",
                        '{"spec":{"clusterIP":"10.43.0.77","clusterIPs":["10.43.0.77"]}}', check=False)
    assert moved.returncode != 0
    assert 'spec.clusterIPs[0]: Invalid value: []string{"10.43.0.77"}: may not change once set' in moved.stderr
    assert _spec(kubectl, "steady")["clusterIP"] == cluster_ip
    kubectl("delete", "service", "steady")


APPLIED = """
apiVersion: v1
kind: Service
metadata:
  name: applied
spec:
  type: NodePort
  selector: {app: web}
  ports:
  - {name: http, port: 80, targetPort: 8080}
  - {name: dns, port: 53, protocol: UDP}
"""


@pytest.mark.parametrize("server_side", [False, True], ids=["client-side", "server-side"])
def test_apply_twice_keeps_the_cluster_ip_and_node_ports(server, kubectl, server_side):
    flags = ["--server-side"] if server_side else []
    kubectl("apply", *flags, "-f", "-", input=APPLIED)
    first = _spec(kubectl, "applied")
    kubectl("apply", *flags, "-f", "-", input=APPLIED.replace("targetPort: 8080", "targetPort: 8081"))
    second = _spec(kubectl, "applied")
    assert second["clusterIP"] == first["clusterIP"]
    assert [port["nodePort"] for port in second["ports"]] == [port["nodePort"] for port in first["ports"]]
    assert second["ports"][0]["targetPort"] == 8081
    kubectl("delete", "service", "applied")


def test_validation_messages_for_type_specific_fields(server, kubectl):
    manifest = json.dumps(_service("lb-headless", type="NodePort", clusterIP="None"))
    refused = kubectl.run("create", "-f", "-", input=manifest, check=False)
    assert 'spec.clusterIPs[0]: Invalid value: "None": may not be set to \'None\' for NodePort services' in refused.stderr
    manifest = json.dumps(_service("external-ip", type="ExternalName", externalName="db.example.com",
                                   clusterIP="10.43.0.55"))
    refused = kubectl.run("create", "-f", "-", input=manifest, check=False)
    assert "spec.clusterIPs: Forbidden: may not be set for ExternalName services" in refused.stderr


def test_allocations_survive_a_restart_and_are_never_handed_out_twice(tmp_path):
    local = LocalServer(tmp_path / "data", extra_args=["--disable-agent"]).start()
    try:
        names = [f"before-{index}" for index in range(20)]
        before = {s["spec"]["clusterIP"] for s in _run(_create_many(local, names))}
        local.stop()
        local.start()
        after = _run(_create_many(local, [f"after-{index}" for index in range(40)]))
        after_ips = {s["spec"]["clusterIP"] for s in after}
        assert len(after_ips) == 40 and not before & after_ips

        async def explicit_taken() -> str:
            async with Client.from_kubeconfig(local.kubeconfig) as client:
                ip = sorted(before)[0]
                try:
                    await client.create(SERVICES, _service("copy", clusterIP=ip))
                except errors.Invalid as exc:
                    return exc.message
                return "created"
        assert "provided IP is already allocated" in _run(explicit_taken())
        # The kubernetes Service kept 10.43.0.1 through the restart.
        async def kubernetes_ip() -> str:
            async with Client.from_kubeconfig(local.kubeconfig) as client:
                return (await client.get(SERVICES, "kubernetes", "default"))["spec"]["clusterIP"]
        assert _run(kubernetes_ip()) == "10.43.0.1"
    finally:
        local.stop()
