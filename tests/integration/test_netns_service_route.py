"""The network namespaces pyk8s creates (`pyk8s up --isolated`, multi-node nodes, the test
harness's own) route the service CIDR, so a connection from the node to a ClusterIP meets
the proxy's OUTPUT rules as on a host instead of failing with "Network is unreachable";
deleting the namespace removes what was added. No cluster: a plain iptables REJECT rule
stands in for the proxy's rule for a Service without endpoints."""

from __future__ import annotations

import os
import socket
import subprocess

import pytest

from pyk8s.cluster.netns import (SERVICE_ROUTE_DEVICE, SERVICE_ROUTE_PEER, connect_in_netns, create_netns,
                                 delete_netns, netns_exists, nsenter_prefix)


def route_device(destination: str, netns: str | None = None) -> str:
    command = [*(["ip", "-n", netns] if netns else ["ip"]), "-o", "route", "get", destination]
    words = subprocess.run(command, capture_output=True, text=True, check=True).stdout.split()
    return words[words.index("dev") + 1]


@pytest.fixture
def namespace():
    name = f"pyk8s-route-test-{os.getpid()}"
    assert create_netns(name, "10.96.0.0/12")
    yield name
    delete_netns(name)


def test_the_test_harness_namespace_routes_the_default_service_cidr():
    assert route_device("10.43.0.10") == SERVICE_ROUTE_DEVICE
    names = {name for _, name in socket.if_nameindex()}
    assert {SERVICE_ROUTE_DEVICE, SERVICE_ROUTE_PEER} <= names


def test_a_created_namespace_routes_its_service_cidr_and_a_reject_rule_refuses_at_once(namespace):
    assert route_device("10.96.0.20", namespace) == SERVICE_ROUTE_DEVICE
    # Outside the service CIDR there is still no route: nothing else was added.
    unreachable = subprocess.run(["ip", "-n", namespace, "route", "get", "192.0.2.1"], capture_output=True, text=True)
    assert unreachable.returncode != 0 and "unreachable" in unreachable.stderr
    subprocess.run([*nsenter_prefix(namespace), "iptables", "-A", "OUTPUT", "-d", "10.96.0.20", "-p", "tcp",
                    "--dport", "80", "-j", "REJECT", "--reject-with", "icmp-port-unreachable"], check=True)
    with pytest.raises(ConnectionRefusedError):
        connect_in_netns(namespace, "10.96.0.20", 80, timeout=5)
    # A port no rule takes: the packet goes into the dead-end veth and is dropped, as a
    # host's gateway drops it (no ARP on the way: a failed lookup would end the connect
    # with "No route to host" instead).
    link = subprocess.run(["ip", "-n", namespace, "-o", "link", "show", SERVICE_ROUTE_DEVICE], capture_output=True,
                          text=True, check=True).stdout
    assert "NOARP" in link.split(">")[0]
    with pytest.raises(socket.timeout):
        connect_in_netns(namespace, "10.96.0.20", 81, timeout=0.5)


def test_an_existing_namespace_is_left_as_it_is(namespace):
    subprocess.run(["ip", "-n", namespace, "link", "delete", SERVICE_ROUTE_DEVICE], check=True)
    assert not create_netns(namespace, "10.96.0.0/12")
    missing = subprocess.run(["ip", "-n", namespace, "link", "show", SERVICE_ROUTE_DEVICE], capture_output=True)
    assert missing.returncode != 0


def test_the_pair_lives_inside_the_namespace_and_goes_with_it(namespace):
    for device in (SERVICE_ROUTE_DEVICE, SERVICE_ROUTE_PEER):
        subprocess.run(["ip", "-n", namespace, "link", "show", device], check=True, capture_output=True)
    assert delete_netns(namespace)
    assert not netns_exists(namespace)
    # The host's namespace (pid 1's) never had any of it: looked at, not touched.
    for device in (SERVICE_ROUTE_DEVICE, SERVICE_ROUTE_PEER):
        in_host = subprocess.run(["nsenter", "--net=/proc/1/ns/net", "ip", "link", "show", device], capture_output=True)
        assert in_host.returncode != 0, device
