"""The Service controllers against a real pyk8s server with no node: Endpoints,
EndpointSlices, mirroring of hand-written Endpoints, the `kubernetes` Service keeper and the
LoadBalancer ingress, driven through the API and checked with the real kubectl.

There is no kubelet: each test creates a Node object itself, puts its pods on it
(spec.nodeName) and plays the kubelet by writing their IP and Ready condition through the
status subresource.
"""

from __future__ import annotations

import json
import re
import time
import uuid
from functools import partial

import pytest

from conftest import eventually


class Api:
    """Raw JSON requests through the official client's connection (dicts in, dicts out)."""

    def __init__(self, api_client):
        self.api_client = api_client

    def request(self, method: str, path: str, body=None, content_type: str = "application/json", query=None):
        reply = self.api_client.call_api(
            path, method, query_params=list((query or {}).items()),
            header_params={"Accept": "application/json", "Content-Type": content_type},
            body=body, auth_settings=["BearerToken"], _preload_content=False, _return_http_data_only=True)
        return json.loads(reply.data) if reply.data else None

    def get(self, path, **query):
        return self.request("GET", path, query=query)

    def maybe(self, path):
        from kubernetes.client.exceptions import ApiException
        try:
            return self.get(path)
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise

    def post(self, path, body):
        return self.request("POST", path, body)

    def put(self, path, body):
        return self.request("PUT", path, body)

    def patch(self, path, body, content_type="application/merge-patch+json"):
        return self.request("PATCH", path, body, content_type)

    def delete(self, path, body=None):
        return self.request("DELETE", path, body)


@pytest.fixture(scope="module")
def api(api_client):
    return Api(api_client)


@pytest.fixture
def ns(api):
    name = f"svc-{uuid.uuid4().hex[:6]}"
    api.post("/api/v1/namespaces", {"metadata": {"name": name}})
    yield name
    api.delete(f"/api/v1/namespaces/{name}")


def ready_node(name: str, ip: str, zone: str = "") -> dict:
    labels = {"kubernetes.io/hostname": name}
    if zone:
        labels["topology.kubernetes.io/zone"] = zone
    now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    return {"apiVersion": "v1", "kind": "Node", "metadata": {"name": name, "labels": labels},
            "status": {"conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady",
                                       "lastHeartbeatTime": now, "lastTransitionTime": now}],
                       "addresses": [{"type": "InternalIP", "address": ip}, {"type": "Hostname", "address": name}]}}


@pytest.fixture
def node(api):
    """A Node object that looks Ready (each test gets its own, well inside the node
    lifecycle controller's 40 s grace period)."""
    name = f"node-{uuid.uuid4().hex[:6]}"
    api.post("/api/v1/nodes", ready_node(name, "10.0.0.7", zone="zone-a"))
    yield name
    api.delete(f"/api/v1/nodes/{name}")


wait_for = partial(eventually, timeout=15.0, interval=0.05)


def make_pod(api, ns, name, node, *, app="web", ports=None, hostname="", subdomain=""):
    spec = {"nodeName": node, "terminationGracePeriodSeconds": 30,
            "containers": [{"name": "c", "image": "busybox", "ports": ports or []}]}
    if hostname:
        spec["hostname"] = hostname
    if subdomain:
        spec["subdomain"] = subdomain
    return api.post(f"/api/v1/namespaces/{ns}/pods", {"metadata": {"name": name, "labels": {"app": app}}, "spec": spec})


def set_pod_status(api, ns, name, ip, ready: bool):
    now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    status = "True" if ready else "False"
    api.patch(f"/api/v1/namespaces/{ns}/pods/{name}/status", {"status": {
        "phase": "Running", "podIP": ip, "podIPs": [{"ip": ip}],
        "conditions": [{"type": "Ready", "status": status, "lastTransitionTime": now},
                       {"type": "ContainersReady", "status": status, "lastTransitionTime": now}]}})


def make_service(api, ns, name="web", *, selector=None, ports=None, **spec):
    body = {"metadata": {"name": name},
            "spec": {"ports": ports or [{"name": "http", "port": 80, "targetPort": 8080}], **spec}}
    if selector is not False:
        body["spec"]["selector"] = selector or {"app": name}
    return api.post(f"/api/v1/namespaces/{ns}/services", body)


def endpoints(api, ns, name="web"):
    return api.maybe(f"/api/v1/namespaces/{ns}/endpoints/{name}")


def addresses(eps, field="addresses"):
    return sorted(a["ip"] for s in (eps or {}).get("subsets") or [] for a in s.get(field) or [])


def slices(api, ns, service="web", managed_by="endpointslice-controller.k8s.io"):
    selector = f"kubernetes.io/service-name={service},endpointslice.kubernetes.io/managed-by={managed_by}"
    return api.get(f"/apis/discovery.k8s.io/v1/namespaces/{ns}/endpointslices", labelSelector=selector)["items"]


def slice_endpoints(api, ns, service="web", **kwargs):
    return {e["addresses"][0]: e for s in slices(api, ns, service, **kwargs) for e in s.get("endpoints") or []}


# ---------------------------------------------------------------- Endpoints


def test_endpoints_follow_pod_readiness_and_deletion(api, ns, node, kubectl):
    service = make_service(api, ns)
    for index in range(3):
        make_pod(api, ns, f"web-{index}", node)
    # No pod has an IP yet: the Endpoints exist, empty.
    eps = wait_for(lambda: endpoints(api, ns), what="endpoints")
    assert eps.get("subsets") in (None, [])
    assert eps["metadata"]["labels"]["endpointslice.kubernetes.io/skip-mirror"] == "true"

    set_pod_status(api, ns, "web-0", "10.42.0.5", True)
    set_pod_status(api, ns, "web-1", "10.42.0.6", False)
    eps = wait_for(lambda: (e := endpoints(api, ns)) and addresses(e, "notReadyAddresses") and e,
                   what="not-ready address")
    assert addresses(eps) == ["10.42.0.5"]
    assert addresses(eps, "notReadyAddresses") == ["10.42.0.6"]
    (subset,) = eps["subsets"]
    assert subset["ports"] == [{"name": "http", "port": 8080, "protocol": "TCP"}]
    ready = subset["addresses"][0]
    assert ready["nodeName"] == node
    assert ready["targetRef"]["kind"] == "Pod" and ready["targetRef"]["name"] == "web-0"
    trigger = eps["metadata"]["annotations"]["endpoints.kubernetes.io/last-change-trigger-time"]
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z", trigger)
    assert trigger >= service["metadata"]["creationTimestamp"]

    # Readiness flips move addresses between the lists.
    set_pod_status(api, ns, "web-1", "10.42.0.6", True)
    set_pod_status(api, ns, "web-2", "10.42.0.7", True)
    wait_for(lambda: addresses(endpoints(api, ns)) == ["10.42.0.5", "10.42.0.6", "10.42.0.7"], what="3 ready")
    set_pod_status(api, ns, "web-0", "10.42.0.5", False)
    eps = wait_for(lambda: (e := endpoints(api, ns)) and addresses(e, "notReadyAddresses") == ["10.42.0.5"] and e)
    assert addresses(eps) == ["10.42.0.6", "10.42.0.7"]

    # A pod being deleted (graceful: no kubelet finishes it) leaves at once.
    api.delete(f"/api/v1/namespaces/{ns}/pods/web-2")
    wait_for(lambda: addresses(endpoints(api, ns)) == ["10.42.0.6"], what="terminating pod gone")
    api.delete(f"/api/v1/namespaces/{ns}/pods/web-1", {"gracePeriodSeconds": 0})
    wait_for(lambda: addresses(endpoints(api, ns)) == [], what="deleted pod gone")

    # The Endpoints go with the Service.
    api.delete(f"/api/v1/namespaces/{ns}/services/web")
    wait_for(lambda: endpoints(api, ns) is None, what="endpoints deleted")


def test_kubectl_prints_endpoints_like_upstream(api, ns, node, kubectl):
    make_service(api, ns)
    for index in range(4):
        make_pod(api, ns, f"web-{index}", node)
        set_pod_status(api, ns, f"web-{index}", f"10.42.0.{5 + index}", True)
    wait_for(lambda: len(addresses(endpoints(api, ns))) == 4, what="4 addresses")
    output = kubectl("get", "endpoints", "web", "-n", ns)
    header, row = output.splitlines()
    assert header.split() == ["NAME", "ENDPOINTS", "AGE"]
    assert row.split()[:5] == ["web", "10.42.0.5:8080,10.42.0.6:8080,10.42.0.7:8080", "+", "1", "more..."]
    assert " 10.42.0.5:8080,10.42.0.6:8080,10.42.0.7:8080 + 1 more... " in output

    # describe reads the EndpointSlices.
    wait_for(lambda: len(slice_endpoints(api, ns)) == 4, what="4 slice endpoints")
    described = kubectl("describe", "svc", "web", "-n", ns)
    assert re.search(r"^Endpoints:\s+10\.42\.0\.5:8080,10\.42\.0\.6:8080,10\.42\.0\.7:8080 \+ 1 more\.\.\.$",
                     described, re.M), described
    slices_output = kubectl("get", "endpointslices", "-n", ns)
    assert re.search(r"^web-\w{5}\s+IPv4\s+8080\s+10\.42\.0\.5,10\.42\.0\.6,10\.42\.0\.7 \+ 1 more\.\.\.", slices_output, re.M), \
        slices_output


def test_publish_not_ready_addresses_lists_every_pod_as_ready(api, ns, node):
    make_service(api, ns, publishNotReadyAddresses=True)
    make_pod(api, ns, "web-0", node)
    make_pod(api, ns, "web-1", node)
    set_pod_status(api, ns, "web-0", "10.42.0.5", True)
    set_pod_status(api, ns, "web-1", "10.42.0.6", False)
    eps = wait_for(lambda: (e := endpoints(api, ns)) and len(addresses(e)) == 2 and e, what="2 addresses")
    assert addresses(eps, "notReadyAddresses") == []
    found = wait_for(lambda: len(s := slice_endpoints(api, ns)) == 2 and s, what="2 slice endpoints")
    assert found["10.42.0.6"]["conditions"] == {"ready": True, "serving": False, "terminating": False}


def test_named_target_port_resolves_per_pod(api, ns, node):
    make_service(api, ns, ports=[{"name": "http", "port": 80, "targetPort": "web"}])
    make_pod(api, ns, "web-0", node, ports=[{"name": "web", "containerPort": 8080}])
    make_pod(api, ns, "web-1", node, ports=[{"name": "web", "containerPort": 9090}])
    make_pod(api, ns, "web-2", node, ports=[{"name": "other", "containerPort": 80}])
    for index in range(3):
        set_pod_status(api, ns, f"web-{index}", f"10.42.0.{5 + index}", True)
    eps = wait_for(lambda: (e := endpoints(api, ns)) and len(e.get("subsets") or []) == 2 and e, what="2 subsets")
    by_port = {s["ports"][0]["port"]: [a["ip"] for a in s["addresses"]] for s in eps["subsets"]}
    assert by_port == {8080: ["10.42.0.5"], 9090: ["10.42.0.6"]}
    # One slice per port map: 8080, 9090, and (as upstream) no ports at all for the pod
    # without the named port.
    found = wait_for(lambda: len(s := slices(api, ns)) == 3 and all(x.get("endpoints") for x in s) and s,
                     what="3 slices")
    by_port = {(s.get("ports") or [{}])[0].get("port"): [e["addresses"][0] for e in s["endpoints"]] for s in found}
    assert by_port == {8080: ["10.42.0.5"], 9090: ["10.42.0.6"], None: ["10.42.0.7"]}
    assert all(s["ports"][0]["name"] == "http" for s in found if s.get("ports"))


def test_hostname_published_when_subdomain_names_the_service(api, ns, node):
    make_service(api, ns, clusterIP="None")
    make_pod(api, ns, "web-0", node, hostname="db-0", subdomain="web")
    set_pod_status(api, ns, "web-0", "10.42.0.5", True)
    eps = wait_for(lambda: (e := endpoints(api, ns)) and addresses(e) and e, what="address")
    assert eps["subsets"][0]["addresses"][0]["hostname"] == "db-0"
    assert eps["metadata"]["labels"]["service.kubernetes.io/headless"] == ""
    found = wait_for(lambda: (s := slice_endpoints(api, ns)) and s, what="slice endpoint")
    assert found["10.42.0.5"]["hostname"] == "db-0"


def test_over_capacity_annotation_only_when_truncated(api, ns, node):
    """The 1 000-address cap itself is unit-tested (test_endpoints_logic); here: a wrong
    over-capacity annotation on a small Endpoints is taken off again."""
    make_service(api, ns)
    make_pod(api, ns, "web-0", node)
    set_pod_status(api, ns, "web-0", "10.42.0.5", True)
    eps = wait_for(lambda: (e := endpoints(api, ns)) and addresses(e) and e, what="address")
    annotations = dict(eps["metadata"].get("annotations") or {}, **{"endpoints.kubernetes.io/over-capacity": "truncated"})
    api.patch(f"/api/v1/namespaces/{ns}/endpoints/web", {"metadata": {"annotations": annotations}})
    # Any change to the Service makes the controller look again.
    api.patch(f"/api/v1/namespaces/{ns}/services/web", {"metadata": {"labels": {"poke": "1"}}})
    eps = wait_for(lambda: (e := endpoints(api, ns)) and "endpoints.kubernetes.io/over-capacity"
                   not in (e["metadata"].get("annotations") or {}) and e, what="annotation removed")
    assert eps["metadata"]["labels"]["poke"] == "1"


def test_hand_written_endpoints_of_selectorless_service_are_left_alone(api, ns):
    make_service(api, ns, "external", selector=False, ports=[{"port": 5432}])
    api.post(f"/api/v1/namespaces/{ns}/endpoints", {
        "metadata": {"name": "external", "labels": {"team": "db"}},
        "subsets": [{"addresses": [{"ip": "192.168.1.10"}, {"ip": "192.168.1.11"}], "ports": [{"port": 5432}]}]})
    # Mirrored into a slice by the mirroring controller.
    mirrored = wait_for(lambda: (s := slices(api, ns, "external", managed_by="endpointslicemirroring-controller.k8s.io"))
                        and s, what="mirrored slice")
    (mirror,) = mirrored
    assert mirror["metadata"]["generateName"] == "external-"
    assert mirror["metadata"]["labels"]["team"] == "db"
    assert mirror["metadata"]["ownerReferences"][0]["kind"] == "Endpoints"
    assert sorted(e["addresses"][0] for e in mirror["endpoints"]) == ["192.168.1.10", "192.168.1.11"]
    assert mirror["ports"] == [{"name": "", "port": 5432, "protocol": "TCP"}]
    eps = endpoints(api, ns, "external")
    assert "endpointslice.kubernetes.io/skip-mirror" not in eps["metadata"]["labels"]

    # An edit of the Endpoints is mirrored; the Endpoints themselves stay as written.
    eps["subsets"][0]["addresses"] = [{"ip": "192.168.1.12"}]
    api.put(f"/api/v1/namespaces/{ns}/endpoints/external", eps)
    wait_for(lambda: [e["addresses"][0] for s in slices(api, ns, "external",
                      managed_by="endpointslicemirroring-controller.k8s.io") for e in s["endpoints"]] == ["192.168.1.12"],
             what="mirror updated")
    assert addresses(endpoints(api, ns, "external")) == ["192.168.1.12"]
    assert slices(api, ns, "external") == []


def test_slices_carry_conditions_zone_and_owner(api, ns, node):
    service = make_service(api, ns)
    # No endpoints yet: one placeholder slice.
    (placeholder,) = wait_for(lambda: slices(api, ns), what="placeholder slice")
    assert placeholder.get("endpoints") in (None, []) and placeholder["addressType"] == "IPv4"
    assert placeholder["metadata"]["ownerReferences"] == [{
        "apiVersion": "v1", "kind": "Service", "name": "web", "uid": service["metadata"]["uid"],
        "controller": True, "blockOwnerDeletion": True}]

    make_pod(api, ns, "web-0", node)
    make_pod(api, ns, "web-1", node)
    set_pod_status(api, ns, "web-0", "10.42.0.5", True)
    set_pod_status(api, ns, "web-1", "10.42.0.6", False)
    found = wait_for(lambda: len(s := slice_endpoints(api, ns)) == 2 and s, what="2 endpoints")
    assert found["10.42.0.5"]["conditions"] == {"ready": True, "serving": True, "terminating": False}
    assert found["10.42.0.6"]["conditions"] == {"ready": False, "serving": False, "terminating": False}
    assert found["10.42.0.5"]["nodeName"] == node and found["10.42.0.5"]["zone"] == "zone-a"
    assert found["10.42.0.5"]["targetRef"]["name"] == "web-0"
    (endpoint_slice,) = slices(api, ns)
    assert endpoint_slice["metadata"]["name"] == placeholder["metadata"]["name"]  # the placeholder was reused
    assert endpoint_slice["ports"] == [{"name": "http", "port": 8080, "protocol": "TCP"}]
    assert "endpoints.kubernetes.io/last-change-trigger-time" in endpoint_slice["metadata"]["annotations"]

    # A terminating pod stays, not ready but still serving.
    api.delete(f"/api/v1/namespaces/{ns}/pods/web-0")
    wait_for(lambda: slice_endpoints(api, ns)["10.42.0.5"]["conditions"]
             == {"ready": False, "serving": True, "terminating": True}, what="terminating endpoint")
    api.delete(f"/api/v1/namespaces/{ns}/pods/web-0", {"gracePeriodSeconds": 0})
    wait_for(lambda: list(slice_endpoints(api, ns)) == ["10.42.0.6"], what="pod gone from slice")

    # The slices go with the Service (garbage collector).
    api.delete(f"/api/v1/namespaces/{ns}/services/web")
    wait_for(lambda: slices(api, ns) == [], what="slices collected")


# ---------------------------------------------------------------- the kubernetes Service


def test_kubernetes_service_comes_back_with_the_same_ip(api, kubectl):
    before = api.get("/api/v1/namespaces/default/services/kubernetes")
    assert before["spec"]["clusterIP"] == "10.43.0.1"
    assert before["spec"]["ports"][0]["name"] == "https" and before["spec"]["ports"][0]["port"] == 443
    kubectl("delete", "svc", "kubernetes")
    after = wait_for(lambda: api.maybe("/api/v1/namespaces/default/services/kubernetes"), what="service back")
    assert after["metadata"]["uid"] != before["metadata"]["uid"]
    assert after["spec"]["clusterIP"] == "10.43.0.1"
    assert after["spec"]["ports"][0]["targetPort"] == before["spec"]["ports"][0]["targetPort"]
    eps = wait_for(lambda: (e := api.maybe("/api/v1/namespaces/default/endpoints/kubernetes")) and e.get("subsets") and e,
                   what="endpoints")
    assert eps["subsets"][0]["ports"] == [{"name": "https", "port": after["spec"]["ports"][0]["targetPort"], "protocol": "TCP"}]
    output = kubectl("get", "svc", "kubernetes")
    assert re.search(r"^kubernetes\s+ClusterIP\s+10\.43\.0\.1\s+<none>\s+443/TCP\s+", output, re.M), output
    # Deleting its Endpoints or slice brings them back too.
    api.delete("/apis/discovery.k8s.io/v1/namespaces/default/endpointslices/kubernetes")
    restored = wait_for(lambda: api.maybe("/apis/discovery.k8s.io/v1/namespaces/default/endpointslices/kubernetes"),
                        what="slice back")
    assert restored["endpoints"][0]["conditions"] == {"ready": True}
    described = kubectl("describe", "svc", "kubernetes")
    assert re.search(r"^Endpoints:\s+\S+:\d+$", described, re.M), described


# ---------------------------------------------------------------- LoadBalancer


def test_load_balancer_ingress_is_the_nodes_addresses(api, ns, node, kubectl):
    make_service(api, ns, "lb", type="LoadBalancer")
    service = wait_for(lambda: (s := api.get(f"/api/v1/namespaces/{ns}/services/lb"))
                       and (s["status"].get("loadBalancer") or {}).get("ingress") and s, what="ingress")
    ingress = service["status"]["loadBalancer"]["ingress"]
    assert {"ip": "10.0.0.7"} in ingress
    assert all(list(entry) == ["ip"] for entry in ingress)

    # A second node's address is added.
    second = f"node-{uuid.uuid4().hex[:6]}"
    api.post("/api/v1/nodes", ready_node(second, "10.0.0.8"))
    try:
        wait_for(lambda: {"ip": "10.0.0.8"} in (api.get(f"/api/v1/namespaces/{ns}/services/lb")["status"]
                                                .get("loadBalancer") or {}).get("ingress", []), what="second node")
        output = kubectl("get", "svc", "lb", "-n", ns)
        assert "10.0.0.7" in output and "10.0.0.8" in output
    finally:
        api.delete(f"/api/v1/nodes/{second}")
    wait_for(lambda: {"ip": "10.0.0.8"} not in (api.get(f"/api/v1/namespaces/{ns}/services/lb")["status"]
                                                .get("loadBalancer") or {}).get("ingress", []), what="node removed")

    # Another class is someone else's; a type change clears the ingress.
    make_service(api, ns, "other", type="LoadBalancer", loadBalancerClass="example.com/lb")
    api.patch(f"/api/v1/namespaces/{ns}/services/lb", {"spec": {"type": "ClusterIP"}})
    wait_for(lambda: not (api.get(f"/api/v1/namespaces/{ns}/services/lb")["status"].get("loadBalancer") or {})
             .get("ingress"), what="ingress cleared")
    assert not (api.get(f"/api/v1/namespaces/{ns}/services/other")["status"].get("loadBalancer") or {}).get("ingress")
