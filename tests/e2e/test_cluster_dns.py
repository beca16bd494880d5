"""Cluster DNS end to end: the `coredns` Deployment the server applies runs pyk8s.dns in
kube-system from the node-built image, busybox's nslookup gets authoritative answers from
it, and pods get resolv.conf and /etc/hosts as their dnsPolicy and hostAliases say."""

from __future__ import annotations

import importlib.util
import json
import socket
import struct

import pytest
from dnslib import DNSRecord

from conftest import Kubectl, eventually

CLIENT_POD = """
apiVersion: v1
kind: Pod
metadata: {name: dns-client}
spec:
  terminationGracePeriodSeconds: 1
  hostAliases:
  - ip: 127.0.0.1
    hostnames: [foo.local, bar.local]
  containers:
  - name: main
    image: pyk8s/busybox:1.35
    command: [sleep, "3600"]
"""


@pytest.fixture(scope="module")
def kubectl(cluster, tmp_path_factory):
    return Kubectl(cluster, tmp_path_factory.mktemp("kube-cache"))


@pytest.fixture(scope="module")
def dns_pod_ips(kubectl):
    def ready_ips():
        pods = json.loads(kubectl("get", "pods", "-n", "kube-system", "-l", "k8s-app=kube-dns", "-o", "json"))["items"]
        ready = [p["status"]["podIP"] for p in pods
                 if any(c["type"] == "Ready" and c["status"] == "True" for c in p["status"].get("conditions") or [])]
        return ready if len(ready) == 2 else None
    return eventually(ready_ips, 120, what="2 ready coredns pods",
                      context=lambda: kubectl("get", "pods", "-A", "-o", "wide") + kubectl(
                          "describe", "pods", "-n", "kube-system", check=False))


@pytest.fixture(scope="module")
def client_pod(kubectl):
    kubectl("apply", "-f", "-", input=CLIENT_POD)
    kubectl("wait", "--for=condition=Ready", "pod/dns-client", "--timeout=60s")
    yield "dns-client"
    kubectl("delete", "pod", "dns-client", "--wait=false", check=False)


def test_dns_runs_as_the_coredns_deployment_behind_kube_dns(kubectl, dns_pod_ips):
    deployment = json.loads(kubectl("get", "deployment", "coredns", "-n", "kube-system", "-o", "json"))
    assert deployment["spec"]["template"]["spec"]["serviceAccountName"] == "coredns"
    assert deployment["spec"]["template"]["spec"]["containers"][0]["image"].startswith("docker.io/pyk8s/dns:")
    service = json.loads(kubectl("get", "service", "kube-dns", "-n", "kube-system", "-o", "json"))
    assert service["spec"]["clusterIP"] == "10.43.0.10"
    assert {(p["name"], p["port"], p["protocol"]) for p in service["spec"]["ports"]} == {
        ("dns", 53, "UDP"), ("dns-tcp", 53, "TCP"), ("metrics", 9153, "TCP")}
    assert kubectl("get", "serviceaccount", "coredns", "-n", "kube-system", "-o", "name").strip()


def test_nslookup_of_kube_dns_is_authoritative(kubectl, dns_pod_ips, client_pod):
    output = kubectl("exec", client_pod, "--", "nslookup", "kube-dns.kube-system.svc.cluster.local", dns_pod_ips[0])
    assert "Address: 10.43.0.10" in output, output
    assert "Non-authoritative" not in output, output


def test_service_name_and_nxdomain_answered_by_a_dns_pod(kubectl, dns_pod_ips, client_pod):
    kubectl("create", "service", "clusterip", "dns-web", "--tcp=80:8080")
    try:
        cluster_ip = kubectl("get", "service", "dns-web", "-o", "jsonpath={.spec.clusterIP}").strip()

        def lookup():
            result = kubectl.run("exec", client_pod, "--", "nslookup", "dns-web.default.svc.cluster.local",
                                 dns_pod_ips[1], check=False)
            return result.stdout + result.stderr
        eventually(lambda: cluster_ip in lookup(), 20, what="dns-web resolved", context=lookup)
        missing = kubectl.run("exec", client_pod, "--", "nslookup", "no-such-service.default.svc.cluster.local",
                              dns_pod_ips[0], check=False)
        assert "NXDOMAIN" in missing.stdout + missing.stderr
    finally:
        kubectl("delete", "service", "dns-web", check=False)


@pytest.mark.skipif(importlib.util.find_spec("pyk8s.proxy") is None, reason="no service proxy yet")
def test_service_resolves_by_short_name_through_the_search_path(kubectl, dns_pod_ips, client_pod):
    """The libc resolver (busybox ping) with the pod's resolv.conf: search list, 10.43.0.10."""
    kubectl("create", "service", "clusterip", "dns-short", "--tcp=80:8080")
    try:
        cluster_ip = kubectl("get", "service", "dns-short", "-o", "jsonpath={.spec.clusterIP}").strip()

        def ping():
            result = kubectl.run("exec", client_pod, "--", "ping", "-c", "1", "-W", "1", "dns-short", check=False)
            return result.stdout + result.stderr
        eventually(lambda: f"({cluster_ip})" in ping(), 30, what="dns-short resolved by libc", context=ping)
    finally:
        kubectl("delete", "service", "dns-short", check=False)


def test_cluster_first_pod_gets_the_cluster_resolv_conf(kubectl, client_pod):
    lines = kubectl("exec", client_pod, "--", "cat", "/etc/resolv.conf").splitlines()
    assert "nameserver 10.43.0.10" in lines
    search = next(line for line in lines if line.startswith("search "))
    assert search.split()[1:4] == ["default.svc.cluster.local", "svc.cluster.local", "cluster.local"]
    assert "options ndots:5" in lines


def test_host_aliases_are_in_the_kubelet_managed_hosts_file(kubectl, client_pod):
    hosts = kubectl("exec", client_pod, "--", "cat", "/etc/hosts")
    assert hosts.startswith("# Kubernetes-managed hosts file.\n")
    assert "\n\n# Entries added by HostAliases.\n127.0.0.1\tfoo.local\tbar.local\n" in hosts


@pytest.mark.skipif(importlib.util.find_spec("pyk8s.proxy") is None, reason="no service proxy yet")
def test_nslookup_through_the_kube_dns_service_ip(kubectl, dns_pod_ips, client_pod):
    output = eventually(lambda: (out := kubectl("exec", client_pod, "--", "nslookup",
                                                "kube-dns.kube-system.svc.cluster.local", check=False))
                        and "Address: 10.43.0.10" in out.split("Name:", 1)[-1] and out, 30,
                        what="an answer through 10.43.0.10")
    assert "Server:\t\t10.43.0.10" in output or "10.43.0.10" in output.split("\n", 1)[0]
    assert "Non-authoritative" not in output


def dns_over_tcp(address: str, name: str) -> DNSRecord:
    query = DNSRecord.question(name).pack()
    with socket.create_connection((address, 53), timeout=2) as sock:
        sock.sendall(struct.pack("!H", len(query)) + query)
        data = b""
        while len(data) < 2 or len(data) < 2 + struct.unpack("!H", data[:2])[0]:
            chunk = sock.recv(4096)
            if not chunk:
                raise ConnectionError("closed before the whole reply")
            data += chunk
    return DNSRecord.parse(data[2:])


@pytest.mark.skipif(importlib.util.find_spec("pyk8s.proxy") is None, reason="no service proxy yet")
def test_the_node_reaches_cluster_ips_and_one_without_endpoints_refuses_at_once(kubectl, dns_pod_ips):
    """This test process is in the node's network namespace (the harness's, no default
    route: only the service CIDR's route pyk8s adds). A ClusterIP with endpoints (kube-dns,
    53/TCP) answers; one without endpoints is refused by the proxy's REJECT rule at once."""
    def answered():
        try:
            reply = dns_over_tcp("10.43.0.10", "kubernetes.default.svc.cluster.local")
        except OSError as error:
            if error.errno == 101:  # ENETUNREACH: no route, the proxy's rules are never reached
                return f"{error}"
            return None
        return [str(rr.rdata) for rr in reply.rr]
    assert eventually(answered, 30, what="a DNS answer from 10.43.0.10:53/TCP") == ["10.43.0.1"]
    kubectl("create", "service", "clusterip", "node-no-endpoints", "--tcp=80:8080")
    try:
        cluster_ip = kubectl("get", "service", "node-no-endpoints", "-o", "jsonpath={.spec.clusterIP}").strip()

        def refused():
            try:
                socket.create_connection((cluster_ip, 80), timeout=1).close()
            except ConnectionRefusedError:
                return "refused"
            except OSError as error:
                return None if isinstance(error, TimeoutError) else f"{error}"  # a timeout: no rule yet
            return "connected"
        assert eventually(refused, 30, what=f"{cluster_ip}:80 refused") == "refused"
    finally:
        kubectl("delete", "service", "node-no-endpoints", check=False)
