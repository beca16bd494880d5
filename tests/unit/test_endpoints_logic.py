"""Pure logic of the Service controllers: which pods and ports become endpoints, how the
Endpoints controller groups them into subsets and caps them, how the EndpointSlice controller
packs slices, what the mirroring controller mirrors, and the LoadBalancer ingress."""

from __future__ import annotations

import datetime

from pyk8s.controllers import endpointutil as util
from pyk8s.controllers.endpoints import MAX_CAPACITY, desired_labels, desired_subsets, repack_subsets, truncate_subsets
from pyk8s.controllers.endpointslice import (MAX_ENDPOINTS_PER_SLICE, desired_endpoints, plan_slices,
                                             pod_to_endpoint, port_map_key)
from pyk8s.controllers.endpointslicemirroring import desired_mirror, plan_mirror
from pyk8s.controllers.kubernetesservice import service_needs_update
from pyk8s.controllers.servicelb import desired_ingress

READY_AT = "2026-01-01T11:00:00Z"


def service(name="web", *, ports=None, selector=None, publish_not_ready=False, cluster_ip="10.43.0.20",
            labels=None, uid="svc-uid"):
    spec = {"selector": selector if selector is not None else {"app": name}, "clusterIP": cluster_ip,
            "ports": ports if ports is not None else [{"name": "http", "port": 80, "protocol": "TCP", "targetPort": 8080}],
            "ipFamilies": ["IPv4"]}
    if publish_not_ready:
        spec["publishNotReadyAddresses"] = True
    return {"apiVersion": "v1", "kind": "Service",
            "metadata": {"name": name, "namespace": "ns", "uid": uid, "labels": labels or {},
                         "creationTimestamp": "2026-01-01T10:00:00Z"},
            "spec": spec}


def pod(name, ip, *, ready=True, node="n1", deleting=False, phase="Running", container_ports=None,
        hostname="", subdomain="", ready_at=READY_AT):
    spec = {"nodeName": node, "containers": [{"name": "c", "image": "i", "ports": container_ports or []}]}
    if hostname:
        spec["hostname"] = hostname
    if subdomain:
        spec["subdomain"] = subdomain
    meta = {"name": name, "namespace": "ns", "uid": f"uid-{name}", "labels": {"app": "web"}}
    if deleting:
        meta["deletionTimestamp"] = "2026-01-01T12:00:00Z"
    status = {"phase": phase, "conditions": [{"type": "Ready", "status": "True" if ready else "False",
                                              "lastTransitionTime": ready_at}]}
    if ip:
        status["podIP"] = ip
        status["podIPs"] = [{"ip": ip}]
    return {"metadata": meta, "spec": spec, "status": status}


def ips(addresses):
    return [a["ip"] for a in addresses or []]


# -- which pods, which ports ----------------------------------------------------------------

def test_ready_and_not_ready_pods_go_to_addresses_and_not_ready_addresses():
    subsets = desired_subsets(service(), [pod("a", "10.42.0.6"), pod("b", "10.42.0.5"), pod("c", "10.42.0.7", ready=False)])
    assert len(subsets) == 1
    assert ips(subsets[0]["addresses"]) == ["10.42.0.5", "10.42.0.6"]
    assert ips(subsets[0]["notReadyAddresses"]) == ["10.42.0.7"]
    assert subsets[0]["ports"] == [{"name": "http", "port": 8080, "protocol": "TCP"}]


def test_address_carries_node_and_target_ref():
    address = desired_subsets(service(), [pod("a", "10.42.0.5")])[0]["addresses"][0]
    assert address == {"ip": "10.42.0.5", "nodeName": "n1",
                       "targetRef": {"kind": "Pod", "namespace": "ns", "name": "a", "uid": "uid-a"}}


def test_pods_without_ip_terminal_or_terminating_are_left_out():
    pods = [pod("noip", ""), pod("done", "10.42.0.8", phase="Succeeded"), pod("going", "10.42.0.9", deleting=True),
            pod("ok", "10.42.0.5")]
    subsets = desired_subsets(service(), pods)
    assert ips(subsets[0]["addresses"]) == ["10.42.0.5"]
    assert "notReadyAddresses" not in subsets[0]


def test_publish_not_ready_addresses_puts_every_pod_in_addresses():
    pods = [pod("a", "10.42.0.5"), pod("b", "10.42.0.6", ready=False)]
    subsets = desired_subsets(service(publish_not_ready=True), pods)
    assert ips(subsets[0]["addresses"]) == ["10.42.0.5", "10.42.0.6"]
    assert "notReadyAddresses" not in subsets[0]


def test_named_target_port_is_resolved_per_pod_and_pods_grouped_by_ports():
    svc = service(ports=[{"name": "http", "port": 80, "protocol": "TCP", "targetPort": "web"}])
    pods = [pod("a", "10.42.0.5", container_ports=[{"name": "web", "containerPort": 8080, "protocol": "TCP"}]),
            pod("b", "10.42.0.6", container_ports=[{"name": "web", "containerPort": 9090, "protocol": "TCP"}]),
            pod("c", "10.42.0.7", container_ports=[{"name": "web", "containerPort": 8080, "protocol": "TCP"}]),
            pod("d", "10.42.0.8", container_ports=[{"name": "other", "containerPort": 80, "protocol": "TCP"}])]
    subsets = desired_subsets(svc, pods)
    by_port = {s["ports"][0]["port"]: ips(s["addresses"]) for s in subsets}
    assert by_port == {8080: ["10.42.0.5", "10.42.0.7"], 9090: ["10.42.0.6"]}


def test_named_port_of_another_protocol_does_not_match():
    svc = service(ports=[{"name": "dns", "port": 53, "protocol": "UDP", "targetPort": "dns"}])
    tcp_only = pod("a", "10.42.0.5", container_ports=[{"name": "dns", "containerPort": 5353, "protocol": "TCP"}])
    assert util.find_port(tcp_only, svc["spec"]["ports"][0]) is None
    udp = pod("b", "10.42.0.6", container_ports=[{"name": "dns", "containerPort": 5353, "protocol": "UDP"}])
    assert util.find_port(udp, svc["spec"]["ports"][0]) == 5353


def test_addresses_sharing_all_ports_share_one_subset():
    svc = service(ports=[{"name": "http", "port": 80, "protocol": "TCP", "targetPort": 8080},
                         {"name": "metrics", "port": 9100, "protocol": "TCP", "targetPort": 9100}])
    subsets = desired_subsets(svc, [pod("a", "10.42.0.5"), pod("b", "10.42.0.6", ready=False)])
    assert len(subsets) == 1
    assert [p["name"] for p in subsets[0]["ports"]] == ["http", "metrics"]
    assert ips(subsets[0]["addresses"]) == ["10.42.0.5"] and ips(subsets[0]["notReadyAddresses"]) == ["10.42.0.6"]


def test_repack_merges_an_address_ready_for_one_port_as_ready():
    address = {"ip": "10.42.0.5", "targetRef": {"uid": "u"}}
    port = {"name": "", "port": 80, "protocol": "TCP"}
    subsets = repack_subsets([{"notReadyAddresses": [address], "ports": [port]}, {"addresses": [address], "ports": [port]}])
    assert subsets == [{"addresses": [address], "ports": [port]}]


def test_hostname_only_when_subdomain_names_the_service():
    subsets = desired_subsets(service(), [pod("a", "10.42.0.5", hostname="a-host", subdomain="web"),
                                          pod("b", "10.42.0.6", hostname="b-host", subdomain="other")])
    addresses = {a["ip"]: a for a in subsets[0]["addresses"]}
    assert addresses["10.42.0.5"]["hostname"] == "a-host"
    assert "hostname" not in addresses["10.42.0.6"]


def test_headless_service_without_ports_lists_addresses_alone():
    svc = service(ports=[], cluster_ip="None")
    assert desired_subsets(svc, [pod("a", "10.42.0.5")]) == [
        {"addresses": [{"ip": "10.42.0.5", "nodeName": "n1",
                        "targetRef": {"kind": "Pod", "namespace": "ns", "name": "a", "uid": "uid-a"}}]}]
    assert desired_labels(svc)[util.LABEL_HEADLESS] == ""


def test_endpoints_labels_are_the_services_plus_skip_mirror():
    assert desired_labels(service(labels={"team": "a"})) == {"team": "a", util.LABEL_SKIP_MIRROR: "true"}


# -- the 1 000-address cap -------------------------------------------------------------------------

def _addresses(prefix, count):
    return [{"ip": f"10.{prefix}.{i // 250}.{i % 250}"} for i in range(count)]


def test_under_capacity_nothing_is_cut():
    subsets = [{"addresses": _addresses(1, 1000)}]
    assert truncate_subsets(subsets) is False
    assert len(subsets[0]["addresses"]) == MAX_CAPACITY


def test_over_capacity_not_ready_addresses_go_first():
    subsets = [{"addresses": _addresses(1, 900), "notReadyAddresses": _addresses(2, 200)}]
    assert truncate_subsets(subsets) is True
    assert len(subsets[0]["addresses"]) == 900 and len(subsets[0]["notReadyAddresses"]) == 100


def test_over_capacity_ready_addresses_are_spread_in_proportion():
    subsets = [{"addresses": _addresses(1, 1200), "notReadyAddresses": _addresses(2, 5)},
               {"addresses": _addresses(3, 300)}]
    assert truncate_subsets(subsets) is True
    assert len(subsets[0]["addresses"]) == 800 and "notReadyAddresses" not in subsets[0]
    assert len(subsets[1]["addresses"]) == 200


def test_cap_with_small_capacity():
    subsets = [{"addresses": _addresses(1, 3)}, {"addresses": _addresses(2, 3)}]
    assert truncate_subsets(subsets, capacity=4) is True
    assert [len(s.get("addresses") or []) for s in subsets] == [2, 2]


# -- trigger time --------------------------------------------------------------------------------

def test_trigger_time_is_service_creation_first_then_earliest_changed_pod():
    tracker = util.TriggerTimeTracker()
    svc = service()
    first = tracker.compute("ns/web", svc, [pod("a", "10.42.0.5")])
    assert util.format_trigger_time(first) == "2026-01-01T10:00:00Z"
    assert tracker.compute("ns/web", svc, [pod("a", "10.42.0.5")]) is None
    later = tracker.compute("ns/web", svc, [pod("a", "10.42.0.5"), pod("b", "10.42.0.6", ready_at="2026-01-01T11:30:00Z")])
    assert util.format_trigger_time(later) == "2026-01-01T11:30:00Z"


def test_trigger_time_format_keeps_fractions_like_go():
    moment = datetime.datetime(2026, 1, 1, 12, 0, 0, 250000, tzinfo=datetime.timezone.utc)
    assert util.format_trigger_time(moment) == "2026-01-01T12:00:00.25Z"


# -- EndpointSlices ----------------------------------------------------------------------------

NODES = {"n1": {"metadata": {"name": "n1", "labels": {util.LABEL_ZONE: "zone-a"}}}}


def test_slice_endpoint_conditions_node_zone_and_ref():
    svc = service()
    assert pod_to_endpoint(pod("a", "10.42.0.5"), NODES["n1"], svc, "IPv4") == {
        "addresses": ["10.42.0.5"], "conditions": {"ready": True, "serving": True, "terminating": False},
        "targetRef": {"kind": "Pod", "namespace": "ns", "name": "a", "uid": "uid-a"},
        "nodeName": "n1", "zone": "zone-a"}
    terminating = pod_to_endpoint(pod("b", "10.42.0.6", deleting=True), NODES["n1"], svc, "IPv4")
    assert terminating["conditions"] == {"ready": False, "serving": True, "terminating": True}
    not_ready = pod_to_endpoint(pod("c", "10.42.0.7", ready=False), None, svc, "IPv4")
    assert not_ready["conditions"] == {"ready": False, "serving": False, "terminating": False}
    assert "zone" not in not_ready


def test_slices_keep_terminating_pods_and_skip_pods_on_unknown_nodes():
    desired, missing = desired_endpoints(service(), [pod("a", "10.42.0.5"), pod("b", "10.42.0.6", deleting=True),
                                                     pod("c", "10.42.0.7", node="ghost")], NODES.get, "IPv4")
    (ports, endpoints), = desired.values()
    assert ports == [{"name": "http", "port": 8080, "protocol": "TCP"}]
    assert [e["addresses"][0] for e in endpoints] == ["10.42.0.5", "10.42.0.6"]
    assert missing == ["c"]


def _slice_endpoints(count, start=0):
    return [{"addresses": [f"10.42.{(start + i) // 250}.{(start + i) % 250 + 1}"], "conditions": {"ready": True},
             "targetRef": {"kind": "Pod", "namespace": "ns", "name": f"p{start + i}"}} for i in range(count)]


PORTS = [{"name": "http", "port": 8080, "protocol": "TCP"}]


def test_new_service_endpoints_are_packed_100_per_slice():
    svc = service()
    create, update, delete = plan_slices(svc, {port_map_key(PORTS): (PORTS, _slice_endpoints(250))}, [])
    assert sorted(len(s["endpoints"]) for s in create) == [50, 100, 100]
    assert not update and not delete
    first = create[0]
    assert first["metadata"]["generateName"] == "web-"
    assert first["metadata"]["labels"] == {util.LABEL_SERVICE_NAME: "web", util.LABEL_MANAGED_BY: "endpointslice-controller.k8s.io"}
    assert first["metadata"]["ownerReferences"] == [{"apiVersion": "v1", "kind": "Service", "name": "web", "uid": "svc-uid",
                                                     "controller": True, "blockOwnerDeletion": True}]
    assert first["addressType"] == "IPv4" and first["ports"] == PORTS


def _existing(name, endpoints, svc, ports=PORTS):
    created = plan_slices(svc, {port_map_key(ports): (ports, endpoints)}, [])[0][0]
    created["metadata"].pop("generateName")
    created["metadata"].update(name=name, resourceVersion="5")
    return created


def test_unchanged_slices_are_left_alone():
    svc = service()
    existing = _existing("web-aaaaa", _slice_endpoints(3), svc)
    assert plan_slices(svc, {port_map_key(PORTS): (PORTS, _slice_endpoints(3))}, [existing]) == ([], [], [])


def test_new_endpoints_fill_the_fullest_untouched_slice_that_fits():
    svc = service()
    full = _existing("web-full", _slice_endpoints(100), svc)
    half = _existing("web-half", _slice_endpoints(60, start=100), svc)
    desired = _slice_endpoints(165)  # five more
    create, update, delete = plan_slices(svc, {port_map_key(PORTS): (PORTS, desired)}, [full, half])
    assert not create and not delete
    assert [(s["metadata"]["name"], len(s["endpoints"])) for s in update] == [("web-half", 65)]


def test_removed_endpoints_leave_their_slice_and_the_slice_takes_new_ones():
    svc = service()
    existing = _existing("web-aaaaa", _slice_endpoints(100), svc)
    desired = _slice_endpoints(99) + _slice_endpoints(2, start=500)  # p99 goes, two come
    create, update, delete = plan_slices(svc, {port_map_key(PORTS): (PORTS, desired)}, [existing])
    assert [len(s["endpoints"]) for s in update] == [100]
    assert [len(s["endpoints"]) for s in create] == [1]
    assert not delete


def test_a_changed_condition_updates_the_slice_in_place():
    svc = service()
    existing = _existing("web-aaaaa", _slice_endpoints(2), svc)
    desired = _slice_endpoints(2)
    desired[1]["conditions"] = {"ready": False}
    create, update, delete = plan_slices(svc, {port_map_key(PORTS): (PORTS, desired)}, [existing])
    assert not create and not delete
    assert update[0]["metadata"]["name"] == "web-aaaaa" and update[0]["endpoints"][1]["conditions"] == {"ready": False}


def test_service_without_endpoints_keeps_one_placeholder_slice():
    svc = service()
    create, update, delete = plan_slices(svc, {}, [])
    assert [(s["endpoints"], s["ports"]) for s in create] == [([], [])]
    placeholder = create[0]
    placeholder["metadata"].update(name="web-ppppp", resourceVersion="3")
    placeholder["metadata"].pop("generateName")
    assert plan_slices(svc, {}, [placeholder]) == ([], [], [])


def test_emptied_slice_is_recycled_as_placeholder():
    svc = service()
    existing = _existing("web-aaaaa", _slice_endpoints(2), svc)
    create, update, delete = plan_slices(svc, {}, [existing])
    assert not create and not delete
    assert update[0]["metadata"]["name"] == "web-aaaaa" and update[0]["endpoints"] == [] and update[0]["ports"] == []


def test_new_port_map_replaces_the_old_slice_by_update():
    svc = service()
    existing = _existing("web-aaaaa", _slice_endpoints(2), svc)
    ports = [{"name": "http", "port": 9090, "protocol": "TCP"}]
    create, update, delete = plan_slices(svc, {port_map_key(ports): (ports, _slice_endpoints(2))}, [existing])
    assert not create and not delete
    assert update[0]["metadata"]["name"] == "web-aaaaa" and update[0]["ports"] == ports


def test_slices_of_another_service_uid_are_deleted():
    old = _existing("web-old", _slice_endpoints(2), service(uid="old-uid"))
    create, update, delete = plan_slices(service(), {port_map_key(PORTS): (PORTS, _slice_endpoints(2))}, [old])
    assert [s["metadata"]["name"] for s in delete] == ["web-old"]
    assert len(create) == 1


def test_max_endpoints_per_slice_is_100():
    assert MAX_ENDPOINTS_PER_SLICE == 100


# -- mirroring -----------------------------------------------------------------------------------

def hand_written_endpoints():
    return {"apiVersion": "v1", "kind": "Endpoints",
            "metadata": {"name": "external-db", "namespace": "ns", "uid": "ep-uid", "labels": {"team": "db"},
                         "annotations": {util.LAST_APPLIED: "{}", "note": "x"}},
            "subsets": [{"addresses": [{"ip": "192.168.0.10"}, {"ip": "not-an-ip"}],
                         "notReadyAddresses": [{"ip": "192.168.0.11"}],
                         "ports": [{"port": 5432}]}]}


def test_hand_written_endpoints_are_mirrored_into_one_slice():
    endpoints = hand_written_endpoints()
    desired, invalid, skipped = desired_mirror(endpoints)
    assert invalid == 1 and skipped == 1
    create, update, delete = plan_mirror(endpoints, [])
    assert not update and not delete
    (mirrored,) = create
    assert mirrored["metadata"]["generateName"] == "external-db-"
    assert mirrored["metadata"]["labels"] == {"team": "db", util.LABEL_SERVICE_NAME: "external-db",
                                              util.LABEL_MANAGED_BY: "endpointslicemirroring-controller.k8s.io"}
    assert mirrored["metadata"]["annotations"] == {"note": "x"}
    assert mirrored["metadata"]["ownerReferences"][0]["kind"] == "Endpoints"
    assert mirrored["ports"] == [{"name": "", "port": 5432, "protocol": "TCP"}]
    assert mirrored["endpoints"] == [{"addresses": ["192.168.0.10"], "conditions": {"ready": True}},
                                     {"addresses": ["192.168.0.11"], "conditions": {"ready": False}}]
    mirrored["metadata"].pop("generateName")
    mirrored["metadata"]["name"] = "external-db-abcde"
    assert plan_mirror(endpoints, [mirrored]) == ([], [], [])


def test_mirror_cap_per_subset():
    endpoints = {"metadata": {"name": "e", "namespace": "ns", "uid": "u"},
                 "subsets": [{"addresses": _addresses(1, 5), "ports": [{"port": 1}]}]}
    desired, invalid, skipped = desired_mirror(endpoints, max_per_subset=3)
    assert skipped == 2 and invalid == 0
    assert len(next(iter(desired.values()))[1]) == 3


# -- the kubernetes Service and LoadBalancer ingress ------------------------------------------------

def test_kubernetes_service_ports_are_put_back():
    svc = {"metadata": {"name": "kubernetes"}, "spec": {"type": "ClusterIP", "ports": [
        {"name": "https", "port": 443, "protocol": "TCP", "targetPort": 6443}]}}
    assert service_needs_update(svc, 6443) is None
    svc["spec"]["ports"][0]["targetPort"] = 1234
    assert service_needs_update(svc, 6443)["spec"]["ports"][0]["targetPort"] == 6443


def node(name, ip, ready=True, labels=None):
    return {"metadata": {"name": name, "labels": labels or {}},
            "status": {"conditions": [{"type": "Ready", "status": "True" if ready else "False"}],
                       "addresses": [{"type": "InternalIP", "address": ip}, {"type": "Hostname", "address": name}]}}


def test_load_balancer_ingress_is_ready_node_internal_ips():
    svc = {"spec": {"type": "LoadBalancer", "ipFamilies": ["IPv4"]}}
    nodes = [node("b", "10.0.0.9"), node("a", "10.0.0.10"), node("c", "10.0.0.11", ready=False),
             node("d", "10.0.0.12", labels={"node.kubernetes.io/exclude-from-external-load-balancers": ""})]
    assert desired_ingress(svc, nodes) == [{"ip": "10.0.0.9"}, {"ip": "10.0.0.10"}]


def test_other_load_balancer_class_is_left_alone_and_other_types_cleared():
    assert desired_ingress({"spec": {"type": "LoadBalancer", "loadBalancerClass": "example.com/lb"}}, [node("a", "10.0.0.1")]) is None
    assert desired_ingress({"spec": {"type": "ClusterIP"}}, [node("a", "10.0.0.1")]) == []
