"""The service proxy on a real node: ClusterIP, NodePort and LoadBalancer traffic from pods
and from the node reaches real pods (pyk8s/whoami answers its pod name), spread over them,
sticky with ClientIP affinity, hairpin back to the calling pod, refused at once without
endpoints, and the rules go away with cleanup.

The whole module shares one cluster; the node's network namespace is the test process's
own (conftest isolates it), so the test reaches node ports on 127.0.0.1 directly.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time

import pytest

from conftest import Kubectl, eventually

WHOAMI_REPLICAS = 3


def _manifest(kubectl: Kubectl, objects: list[dict]) -> None:
    for obj in objects:
        kubectl("apply", "-f", "-", input=json.dumps(obj))


def _service(name: str, selector: dict, *, port: int = 80, target: int = 80, type_: str = "ClusterIP",
             **spec) -> dict:
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name},
            "spec": {"type": type_, "selector": selector,
                     "ports": [{"name": "http", "port": port, "targetPort": target, "protocol": "TCP"}], **spec}}


def _pods(kubectl: Kubectl, selector: str) -> list[dict]:
    return json.loads(kubectl("get", "pods", "-l", selector, "-o", "json"))["items"]


def _ensure_endpoints(kubectl: Kubectl, service: str, selector: str, port: int, count: int) -> None:
    """Wait for the EndpointSlice controller's slice; write one by hand if there is none."""
    def ready_addresses() -> int:
        slices = json.loads(kubectl("get", "endpointslices", "-l", f"kubernetes.io/service-name={service}",
                                    "-o", "json"))["items"]
        return sum(1 for s in slices for e in s.get("endpoints") or () if (e.get("conditions") or {}).get("ready"))
    try:
        eventually(lambda: ready_addresses() >= count, 20, what=f"{count} endpoints of {service}")
        return
    except AssertionError:
        if ready_addresses():
            raise
    pods = [p for p in _pods(kubectl, selector) if p["status"].get("podIP")]
    _manifest(kubectl, [{
        "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
        "metadata": {"name": f"{service}-manual", "labels": {"kubernetes.io/service-name": service}},
        "addressType": "IPv4", "ports": [{"name": "http", "port": port, "protocol": "TCP"}],
        "endpoints": [{"addresses": [p["status"]["podIP"]], "conditions": {"ready": True},
                       "nodeName": p["spec"]["nodeName"], "targetRef": {"kind": "Pod", "name": p["metadata"]["name"]}}
                      for p in pods]}])


@pytest.fixture(scope="module")
def kubectl(cluster, tmp_path_factory):
    return Kubectl(cluster, tmp_path_factory.mktemp("kube-cache"))


@pytest.fixture(scope="module")
def workloads(kubectl):
    """3 whoami pods behind `whoami`, a busybox client pod, and a pod serving itself (`selfie`)."""
    kubectl("create", "deployment", "whoami", "--image=pyk8s/whoami:1", f"--replicas={WHOAMI_REPLICAS}")
    kubectl("run", "client", "--image=pyk8s/busybox:1.35", "--", "sleep", "3600")
    kubectl("run", "selfie", "--image=pyk8s/busybox:1.35", "--labels=app=selfie", "--", "sh", "-c",
            "mkdir /www && hostname > /www/index.html && exec httpd -f -p 8080 -h /www")
    kubectl("rollout", "status", "deployment/whoami", "--timeout=120s", timeout=130)
    kubectl("wait", "--for=condition=Ready", "pod/client", "pod/selfie", "--timeout=120s", timeout=130)
    _manifest(kubectl, [_service("whoami", {"app": "whoami"}),
                        _service("selfie", {"app": "selfie"}, target=8080)])
    _ensure_endpoints(kubectl, "whoami", "app=whoami", 80, WHOAMI_REPLICAS)
    _ensure_endpoints(kubectl, "selfie", "app=selfie", 8080, 1)
    names = {p["metadata"]["name"] for p in _pods(kubectl, "app=whoami")}
    yield names
    kubectl("delete", "service", "whoami", "selfie", "--wait=false", check=False)


def _cluster_ip(kubectl: Kubectl, service: str) -> str:
    return kubectl("get", "service", service, "-o", "jsonpath={.spec.clusterIP}").strip()


def _wget_from(kubectl: Kubectl, pod: str, url: str, times: int = 1, timeout: int = 5) -> subprocess.CompletedProcess:
    # Not wget -T: this busybox's wget segfaults with it (exit 139); busybox timeout instead.
    script = f"for i in $(seq {times}); do timeout {timeout} wget -qO- {url} || echo FAILED; done"
    return kubectl.run("exec", pod, "--", "sh", "-c", script, check=False, timeout=60 + times * timeout)


def _answers(kubectl: Kubectl, pod: str, url: str, times: int = 1) -> list[str]:
    result = _wget_from(kubectl, pod, url, times)
    return [line.replace("You've hit ", "").strip() for line in result.stdout.splitlines() if line.strip()]


def _http_get(host: str, port: int, timeout: float = 5.0) -> str:
    with socket.create_connection((host, port), timeout=timeout) as sock:
        sock.sendall(b"GET / HTTP/1.0\r\nHost: x\r\n\r\n")
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    return data.split(b"\r\n\r\n", 1)[-1].decode().replace("You've hit ", "").strip()


def test_cluster_ip_reaches_a_pod_from_another_pod(kubectl, workloads):
    ip = _cluster_ip(kubectl, "whoami")
    answers = eventually(lambda: [a for a in _answers(kubectl, "client", f"http://{ip}") if a in workloads], 20,
                         what="an answer through the cluster IP")
    assert answers[0] in workloads


def test_cluster_ip_spreads_connections_over_the_pods(kubectl, workloads):
    answers = _answers(kubectl, "client", f"http://{_cluster_ip(kubectl, 'whoami')}", times=20)
    assert len(answers) == 20 and set(answers) <= workloads, answers
    assert len(set(answers)) >= 2, answers


def test_a_pod_reaches_itself_through_its_own_service(kubectl, workloads):
    ip = _cluster_ip(kubectl, "selfie")
    assert eventually(lambda: _answers(kubectl, "selfie", f"http://{ip}") == ["selfie"], 20,
                      what="the hairpin answer")


def test_client_ip_affinity_sends_every_request_to_the_same_pod(kubectl, workloads):
    _manifest(kubectl, [_service("sticky", {"app": "whoami"}, sessionAffinity="ClientIP")])
    try:
        _ensure_endpoints(kubectl, "sticky", "app=whoami", 80, WHOAMI_REPLICAS)
        ip = _cluster_ip(kubectl, "sticky")
        eventually(lambda: _answers(kubectl, "client", f"http://{ip}"), 20, what="a first answer")
        answers = _answers(kubectl, "client", f"http://{ip}", times=10)
        assert len(answers) == 10 and len(set(answers)) == 1 and answers[0] in workloads, answers
    finally:
        kubectl("delete", "service", "sticky", "--wait=false", check=False)


def test_a_service_without_endpoints_refuses_connections_at_once(kubectl, workloads):
    _manifest(kubectl, [_service("nobody", {"app": "nobody-has-this-label"})])
    try:
        ip = _cluster_ip(kubectl, "nobody")

        def refused_quickly() -> tuple[str, float] | None:
            started = time.monotonic()
            result = _wget_from(kubectl, "client", f"http://{ip}", timeout=5)
            took = time.monotonic() - started
            output = result.stdout + result.stderr
            return (output, took) if "can't connect" in output else None
        output, took = eventually(refused_quickly, 20, what="a failed connection")
        print(output)
        # REJECT answers icmp-port-unreachable: "Connection refused". (On a node with no
        # route for the service CIDR the kernel answers first: "Network is unreachable".)
        assert "refused" in output or "unreachable" in output, output
        assert took < 3, f"the failure took {took:.1f}s: {output}"
    finally:
        kubectl("delete", "service", "nobody", "--wait=false", check=False)


def test_node_port_answers_on_the_node_addresses(kubectl, workloads):
    _manifest(kubectl, [_service("whoami-np", {"app": "whoami"}, type_="NodePort")])
    try:
        _ensure_endpoints(kubectl, "whoami-np", "app=whoami", 80, WHOAMI_REPLICAS)
        node_port = int(kubectl("get", "service", "whoami-np", "-o", "jsonpath={.spec.ports[0].nodePort}"))
        node = json.loads(kubectl("get", "nodes", "-o", "json"))["items"][0]
        node_ip = next(a["address"] for a in node["status"]["addresses"] if a["type"] == "InternalIP")
        # From the node itself (its InternalIP; 127.0.0.1 works through route_localnet as upstream)...
        for host in {node_ip, "127.0.0.1"}:
            assert eventually(lambda: _try_get(host, node_port) in workloads, 20, what=f"{host}:{node_port}")
        # ...and from a pod, to the node's address on the pod bridge.
        pod_ip = kubectl("get", "pod", "client", "-o", "jsonpath={.status.podIP}").strip()
        gateway = pod_ip.rsplit(".", 1)[0] + ".1"  # the node's address on the pod bridge (CNI isGateway)
        assert eventually(lambda: set(_answers(kubectl, "client", f"http://{gateway}:{node_port}")) <= workloads
                          and _answers(kubectl, "client", f"http://{gateway}:{node_port}"), 20,
                          what="the node port from a pod")
    finally:
        kubectl("delete", "service", "whoami-np", "--wait=false", check=False)


def test_load_balancer_answers_on_its_ingress_address_and_node_port(kubectl, workloads):
    _manifest(kubectl, [_service("whoami-lb", {"app": "whoami"}, type_="LoadBalancer", port=8088)])
    try:
        _ensure_endpoints(kubectl, "whoami-lb", "app=whoami", 80, WHOAMI_REPLICAS)
        node_port = int(kubectl("get", "service", "whoami-lb", "-o", "jsonpath={.spec.ports[0].nodePort}"))
        assert eventually(lambda: _try_get("127.0.0.1", node_port) in workloads, 20, what="the LB node port")
        ingress = eventually(lambda: kubectl("get", "service", "whoami-lb", "-o",
                                             "jsonpath={.status.loadBalancer.ingress[*].ip}").split(), 20,
                             what="a load-balancer ingress IP (servicelb controller)")
        for ip in ingress:
            assert eventually(lambda: _try_get(ip, 8088) in workloads, 20, what=f"the LB address {ip}:8088")
    finally:
        kubectl("delete", "service", "whoami-lb", "--wait=false", check=False)


def _try_get(host: str, port: int) -> str:
    try:
        return _http_get(host, port)
    except OSError as error:
        return f"error: {error}"


# The project's Python image (the cluster DNS's) runs both ends of a UDP flow: a server that
# answers every datagram with its pod name, and a client that sends from ONE socket (one
# source port, so one conntrack entry) every 0.2 s and prints each answer, "-" for none.
UDP_SERVER = ("import socket\n"
              "s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n"
              "s.bind(('0.0.0.0', 5353))\n"
              "while True:\n"
              "    data, peer = s.recvfrom(512)\n"
              "    s.sendto(socket.gethostname().encode(), peer)\n")
UDP_CLIENT = ("import socket, sys, time\n"
              "s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n"
              "s.settimeout(0.2)\n"
              "while True:\n"
              "    s.sendto(b'who?', (sys.argv[1], 53))\n"
              "    try:\n"
              "        print(s.recvfrom(512)[0].decode(), flush=True)\n"
              "    except OSError:\n"  # a timeout, or the ICMP error of REJECT while there is no endpoint
              "        print('-', flush=True)\n"
              "    time.sleep(0.2)\n")


def _python_image(kubectl: Kubectl) -> str:
    """The DNS image the node imported at start (its name fingerprints the sources: computed
    now it could name an image built from files changed since)."""
    return kubectl("get", "deployment", "coredns", "-n", "kube-system", "-o",
                   "jsonpath={.spec.template.spec.containers[0].image}", check=False).strip()


def _python_pod(image: str, name: str, script: str, *args: str, labels: dict | None = None) -> dict:
    from pathlib import Path

    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "labels": labels or {}},
            "spec": {"terminationGracePeriodSeconds": 0,
                     "containers": [{"name": "main", "image": image, "imagePullPolicy": "IfNotPresent",
                                     "command": [str(Path(sys.executable).resolve()), "-c", script, *args]}]}}


def test_a_udp_flow_moves_to_the_new_pod_when_its_backend_is_replaced(kubectl):
    """Upstream's stale-conntrack cleanup: a client that keeps sending from one socket keeps
    one conntrack entry alive (DNAT to the first pod) for as long as it sends; when that pod
    goes away the proxy deletes the entry, so the next datagram is balanced anew and the
    replacement pod answers (DNS over UDP to a deleted pod would otherwise stay unanswered)."""
    service = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "udp-echo"},
               "spec": {"selector": {"app": "udp-echo"},
                        "ports": [{"name": "dns", "port": 53, "targetPort": 5353, "protocol": "UDP"}]}}
    image = eventually(lambda: _python_image(kubectl), 60, what="the cluster DNS pod's image")
    _manifest(kubectl, [service, _python_pod(image, "udp-first", UDP_SERVER, labels={"app": "udp-echo"})])
    try:
        ip = _cluster_ip(kubectl, "udp-echo")
        _manifest(kubectl, [_python_pod(image, "udp-client", UDP_CLIENT, ip)])
        result = kubectl.run("wait", "--for=condition=Ready", "pod/udp-first", "pod/udp-client", "--timeout=120s",
                             timeout=130, check=False)
        assert result.returncode == 0, kubectl("describe", "pod", "udp-first", "udp-client", check=False)

        def answers() -> list[str]:
            return kubectl("logs", "udp-client").split()
        eventually(lambda: "udp-first" in answers(), 30, what="an answer from udp-first",
                   context=lambda: f"answers: {answers()[-20:]}")
        kubectl("delete", "pod", "udp-first", "--grace-period=0", "--force", "--wait=false")
        before = len(answers())
        _manifest(kubectl, [_python_pod(image, "udp-second", UDP_SERVER, labels={"app": "udp-echo"})])
        eventually(lambda: "udp-second" in answers()[before:], 60, what="an answer from udp-second on the same flow",
                   interval=0.5, context=lambda: f"answers: {answers()[before:][-30:]}")
        # And the flow stays with it: every answer since is udp-second's ("-" is a datagram
        # whose reply took over 0.2 s on a busy machine, not another pod).
        time.sleep(1.0)
        since = answers()[before:]
        since = since[since.index("udp-second"):]
        assert {answer for answer in since if answer != "-"} == {"udp-second"}, since[-30:]
    finally:
        kubectl("delete", "service", "udp-echo", "--wait=false", check=False)
        kubectl("delete", "pod", "udp-first", "udp-second", "udp-client", "--grace-period=0", "--force",
                "--wait=false", check=False)


def _proxy_lines() -> list[str]:
    lines = []
    for save in ("iptables-legacy-save", "iptables-nft-save"):
        result = subprocess.run([save], capture_output=True, text=True)
        lines += [line for line in result.stdout.splitlines() if "KUBE-" in line]
    # The nftables mode's table (`--proxy-mode nftables`, PYK8S_PROXY_MODE=nftables).
    result = subprocess.run(["nft", "list", "table", "ip", "kube-proxy"], capture_output=True, text=True)
    lines += [line.strip() for line in result.stdout.splitlines() if "chain service-" in line]
    return lines


def test_cleanup_removes_every_proxy_rule(kubectl, workloads):
    assert any(line.startswith((":KUBE-SVC-", "chain service-")) for line in _proxy_lines())
    result = subprocess.run([sys.executable, "-m", "pyk8s.proxy.cleanup"], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert _proxy_lines() == []
