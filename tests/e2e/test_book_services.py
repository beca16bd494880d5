"""The book's chapter 3 try-it-nows (Services and DNS), run in order with the real kubectl
against a single-node cluster, with the project's images standing in for the book's:
`pyk8s/busybox:1.35` for the sleep pods (ping, nslookup, wget) and `pyk8s/whoami:1` (a web
server on port 80 answering with its pod's name) for the numbers API and website.

Addresses the book shows from a real network (the ExternalName target, the selector-less
Service's endpoint) are replaced by addresses inside the test's own network namespace.
"""

from __future__ import annotations

import json
import re
import subprocess
import urllib.request

import pytest
import yaml

from conftest import Kubectl, eventually

BUSYBOX = "pyk8s/busybox:1.35"
WHOAMI = "pyk8s/whoami:1"


@pytest.fixture(scope="module")
def kubectl(cluster, tmp_path_factory):
    kubectl = Kubectl(cluster, tmp_path_factory.mktemp("kube-cache"))
    kubectl("wait", "--for=condition=Ready", "node", "--all", "--timeout=90s")
    return kubectl


def deployment(name: str, image: str, *, replicas: int = 1, command: list[str] | None = None,
               labels: dict[str, str] | None = None) -> dict:
    labels = labels or {"app": name}
    container: dict = {"name": "app", "image": image}
    if command:
        container["command"] = command
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name},
            "spec": {"replicas": replicas, "selector": {"matchLabels": labels},
                     "template": {"metadata": {"labels": labels}, "spec": {"containers": [container]}}}}


def service(name: str, ports: list[dict], selector: dict | None = None, **spec) -> dict:
    body: dict = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name},
                  "spec": {"ports": ports, **spec}}
    if selector is not None:
        body["spec"]["selector"] = selector
    return body


def apply(kubectl: Kubectl, *objects: dict) -> str:
    return kubectl("apply", "-f", "-", input=yaml.safe_dump_all(objects))


def rows(output: str) -> list[list[str]]:
    return [re.split(r"\s{2,}", line.strip()) for line in output.splitlines()[1:] if line.strip()]


def pod_ip(kubectl: Kubectl, selector: str) -> str:
    return kubectl("get", "pod", "-l", selector, "--output", "jsonpath={.items[0].status.podIP}")


def sleep_exec(kubectl: Kubectl, *command: str, check: bool = True) -> subprocess.CompletedProcess:
    return kubectl.run("exec", "deploy/sleep-1", "--", *command, check=check)


@pytest.fixture(scope="module")
def sleep_pods(kubectl):
    sleep = ["sleep", "100000"]
    apply(kubectl, deployment("sleep-1", BUSYBOX, command=sleep), deployment("sleep-2", BUSYBOX, command=sleep))
    kubectl("wait", "--for=condition=Ready", "pod", "-l", "app=sleep-1", "--timeout=90s")
    kubectl("wait", "--for=condition=Ready", "pod", "-l", "app=sleep-2", "--timeout=90s")
    return kubectl


def wait_ready(kubectl: Kubectl, selector: str) -> None:
    """Every pod matching `selector` Ready, none terminating (so items[0] is a live pod)."""
    def ready() -> bool:
        pods = json.loads(kubectl("get", "pods", "-l", selector, "-o", "json"))["items"]
        return bool(pods) and all(
            not pod["metadata"].get("deletionTimestamp")
            and any(c["type"] == "Ready" and c["status"] == "True" for c in pod["status"].get("conditions") or [])
            for pod in pods)
    eventually(ready, 90, what=f"pods {selector} ready", interval=0.3)


# 3.1 -------------------------------------------------------------------------------------

def test_3_1_pods_ping_each_other_by_ip_and_a_replacement_gets_a_new_ip(sleep_pods):
    kubectl = sleep_pods
    address = pod_ip(kubectl, "app=sleep-2")
    assert address.startswith("10.42.")
    ping = sleep_exec(kubectl, "ping", "-c", "2", address)
    assert "2 packets transmitted, 2 packets received, 0% packet loss" in ping.stdout

    kubectl("delete", "pods", "-l", "app=sleep-2")
    wait_ready(kubectl, "app=sleep-2")
    replacement = pod_ip(kubectl, "app=sleep-2")
    assert replacement.startswith("10.42.") and replacement != address


def test_3_1_a_service_name_resolves_but_its_cluster_ip_never_answers_ping(sleep_pods):
    kubectl = sleep_pods
    apply(kubectl, service("sleep-2", [{"port": 80}], {"app": "sleep-2"}))
    [row] = rows(kubectl("get", "svc", "sleep-2"))
    assert row[:2] == ["sleep-2", "ClusterIP"] and row[2].startswith("10.43.") and row[3:5] == ["<none>", "80/TCP"]
    ping = sleep_exec(kubectl, "ping", "-c", "1", "-W", "2", "sleep-2", check=False)
    assert ping.returncode == 1
    assert f"PING sleep-2 ({row[2]})" in ping.stdout
    assert "0 packets received" in ping.stdout


# 3.2 -------------------------------------------------------------------------------------

def test_3_2_the_web_pod_reaches_the_api_through_its_service_and_again_after_replacement(sleep_pods):
    kubectl = sleep_pods
    apply(kubectl, deployment("numbers-api", WHOAMI))
    wait_ready(kubectl, "app=numbers-api")
    # No Service yet: the name does not resolve.
    missing = sleep_exec(kubectl, "timeout", "5", "wget", "-qO-", "http://numbers-api", check=False)
    assert missing.returncode != 0 and "bad address" in missing.stderr

    apply(kubectl, service("numbers-api", [{"port": 80}], {"app": "numbers-api"}, type="ClusterIP"))
    first_pod = kubectl("get", "pod", "-l", "app=numbers-api", "-o", "jsonpath={.items[0].metadata.name}")
    answer = eventually(lambda: sleep_exec(kubectl, "timeout", "5", "wget", "-qO-", "http://numbers-api", check=False).stdout,
                        30, what="the API through its Service")
    assert answer.strip() == f"You've hit {first_pod}"

    kubectl("delete", "pod", "-l", "app=numbers-api")
    wait_ready(kubectl, "app=numbers-api")
    second_pod = kubectl("get", "pod", "-l", "app=numbers-api", "-o", "jsonpath={.items[0].metadata.name}")
    assert second_pod != first_pod
    answer = eventually(lambda: sleep_exec(kubectl, "timeout", "5", "wget", "-qO-", "http://numbers-api", check=False).stdout,
                        30, what="the replacement API through the same Service")
    assert answer.strip() == f"You've hit {second_pod}"


# 3.3 -------------------------------------------------------------------------------------

def test_3_3_a_load_balancer_service_answers_on_the_node_address(sleep_pods):
    kubectl = sleep_pods
    apply(kubectl, deployment("numbers-web", WHOAMI),
          service("numbers-web", [{"port": 8080, "targetPort": 80}], {"app": "numbers-web"}, type="LoadBalancer"))
    wait_ready(kubectl, "app=numbers-web")
    url = eventually(lambda: kubectl("get", "svc", "numbers-web", "-o",
                                     "jsonpath=http://{.status.loadBalancer.ingress[0].*}:8080"),
                     30, what="the load balancer's address")
    assert re.fullmatch(r"http://\d+\.\d+\.\d+\.\d+:8080", url), url
    [row] = rows(kubectl("get", "svc", "numbers-web"))
    assert row[1] == "LoadBalancer" and re.fullmatch(r"8080:3\d{4}/TCP", row[4]), row
    assert url == f"http://{row[3]}:8080"
    pod = kubectl("get", "pod", "-l", "app=numbers-web", "-o", "jsonpath={.items[0].metadata.name}")

    def fetch():
        try:
            with urllib.request.urlopen(url, timeout=3) as reply:
                return reply.read().decode()
        except OSError:
            return ""
    assert eventually(fetch, 30, what=f"{url} from the node").strip() == f"You've hit {pod}"


def test_3_3_a_node_port_service_answers_on_the_node_port(sleep_pods):
    kubectl = sleep_pods
    apply(kubectl, service("numbers-web-node", [{"port": 8080, "targetPort": 80, "nodePort": 30080}],
                           {"app": "numbers-web"}, type="NodePort"))
    [row] = rows(kubectl("get", "svc", "numbers-web-node"))
    assert row[1] == "NodePort" and row[4] == "8080:30080/TCP"
    node = json.loads(kubectl("get", "nodes", "-o", "json"))["items"][0]
    address = next(a["address"] for a in node["status"]["addresses"] if a["type"] == "InternalIP")

    def fetch():
        try:
            with urllib.request.urlopen(f"http://{address}:30080", timeout=3) as reply:
                return reply.read().decode()
        except OSError:
            return ""
    assert eventually(fetch, 30, what="the NodePort").startswith("You've hit numbers-web-")


# 3.4 -------------------------------------------------------------------------------------

def test_3_4_an_external_name_service_is_a_cname(sleep_pods):
    kubectl = sleep_pods
    kubectl("delete", "svc", "numbers-api")
    apply(kubectl, service("numbers-api", None, type="ExternalName", externalName="raw.githubusercontent.com"))
    [row] = rows(kubectl("get", "svc", "numbers-api"))
    assert row[:4] == ["numbers-api", "ExternalName", "<none>", "raw.githubusercontent.com"]
    # The test namespace has no upstream resolver, so the CNAME's target does not resolve and
    # busybox goes on through the search list; the alias itself is the book's line.
    lookup = sleep_exec(kubectl, "nslookup", "numbers-api", check=False)
    assert "numbers-api.default.svc.cluster.local\tcanonical name = raw.githubusercontent.com" in lookup.stdout, \
        lookup.stdout


def test_3_4_a_selector_less_service_routes_to_hand_written_endpoints(sleep_pods):
    kubectl = sleep_pods
    kubectl("delete", "svc", "numbers-api")
    # The book's fake 192.168.123.234 stays inside the test: an unused address of the pod range.
    unused = "10.42.0.250"
    out = apply(kubectl, service("numbers-api", [{"port": 80}], type="ClusterIP"),
                {"apiVersion": "v1", "kind": "Endpoints", "metadata": {"name": "numbers-api"},
                 "subsets": [{"addresses": [{"ip": unused}], "ports": [{"port": 80}]}]})
    assert "service/numbers-api created" in out and "endpoints/numbers-api created" in out
    [svc] = rows(kubectl("get", "svc", "numbers-api"))
    assert svc[1] == "ClusterIP" and svc[2].startswith("10.43.")
    [endpoints] = rows(kubectl("get", "endpoints", "numbers-api"))
    assert endpoints[:2] == ["numbers-api", f"{unused}:80"]
    lookup = sleep_exec(kubectl, "sh", "-c", 'nslookup numbers-api | grep "^[^*]"')
    assert "Name:\tnumbers-api.default.svc.cluster.local" in lookup.stdout
    assert f"Address: {svc[2]}" in lookup.stdout
    # The address does not exist: the request fails (the book's broken app).
    failed = sleep_exec(kubectl, "timeout", "5", "wget", "-qO-", "http://numbers-api", check=False)
    assert failed.returncode != 0
    # The mirroring controller made an EndpointSlice for it.
    slices = json.loads(kubectl("get", "endpointslices", "-l", "kubernetes.io/service-name=numbers-api", "-o", "json"))
    assert [e["addresses"] for s in slices["items"] for e in s.get("endpoints") or []] == [[unused]]


# 3.5 -------------------------------------------------------------------------------------

def test_3_5_endpoints_follow_pod_changes(sleep_pods):
    kubectl = sleep_pods
    ip = pod_ip(kubectl, "app=sleep-2")
    eventually(lambda: rows(kubectl("get", "endpoints", "sleep-2"))[0][1] == f"{ip}:80", 20, what="endpoints")
    kubectl("delete", "pods", "-l", "app=sleep-2")
    wait_ready(kubectl, "app=sleep-2")
    new_ip = pod_ip(kubectl, "app=sleep-2")
    eventually(lambda: rows(kubectl("get", "endpoints", "sleep-2"))[0][1] == f"{new_ip}:80", 20,
               what="endpoints of the replacement")
    kubectl("delete", "deploy", "sleep-2")
    eventually(lambda: rows(kubectl("get", "endpoints", "sleep-2"))[0][1] == "<none>", 30, what="empty endpoints")


def test_3_5_the_dns_service_is_in_kube_system_and_answers_with_authority(sleep_pods):
    kubectl = sleep_pods
    [dns] = rows(kubectl("get", "svc", "-n", "kube-system"))
    assert dns[:5] == ["kube-dns", "ClusterIP", "10.43.0.10", "<none>", "53/UDP,53/TCP,9153/TCP"]
    pods = rows(kubectl("get", "pods", "-n", "kube-system", "-l", "k8s-app=kube-dns"))
    assert pods and all(row[1:3] == ["1/1", "Running"] for row in pods), pods
    lookup = sleep_exec(kubectl, "sh", "-c", "nslookup kube-dns.kube-system.svc.cluster.local")
    assert "Server:\t\t10.43.0.10" in lookup.stdout
    assert "Name:\tkube-dns.kube-system.svc.cluster.local\nAddress: 10.43.0.10" in lookup.stdout
    assert "Non-authoritative" not in lookup.stdout
    resolv = sleep_exec(kubectl, "cat", "/etc/resolv.conf").stdout
    assert "nameserver 10.43.0.10" in resolv
    assert "search default.svc.cluster.local svc.cluster.local cluster.local" in resolv
    assert "options ndots:5" in resolv


def test_3_5_pods_reach_the_api_server_through_the_kubernetes_service(sleep_pods):
    kubectl = sleep_pods
    [row] = rows(kubectl("get", "svc", "kubernetes"))
    assert row[:5] == ["kubernetes", "ClusterIP", "10.43.0.1", "<none>", "443/TCP"]
    connect = sleep_exec(kubectl, "sh", "-c", "nc -w 3 kubernetes.default 443 </dev/null", check=False)
    assert connect.returncode == 0, connect.stderr


def test_3_5_deleting_every_service_brings_the_kubernetes_service_back(sleep_pods):
    kubectl = sleep_pods
    kubectl("delete", "deploy", "--all")
    deleted = kubectl("delete", "svc", "--all")
    assert 'service "kubernetes" deleted' in deleted
    def services() -> list[list[str]]:
        return [row for row in rows(kubectl("get", "all")) if row[0].startswith("service/")]
    again = eventually(services, 30, what="the kubernetes Service back")
    assert [row[:3] for row in again] == [["service/kubernetes", "ClusterIP", "10.43.0.1"]], again
