"""The pod network's pure part (flannel/plan.py): Nodes → routes, neighbours, FDB entries
and the commands that change the kernel's to them."""

import json

from pyk8s.flannel import plan


def node(name, cidr, ip, backend="vxlan", mac="0a:00:00:00:00:01"):
    return {"metadata": {"name": name, "annotations": plan.own_annotations(backend, ip, mac)},
            "spec": {"podCIDR": cidr, "podCIDRs": [cidr]}}


def test_annotations_are_flannels():
    annotations = plan.own_annotations("vxlan", "10.45.0.10", "aa:bb:cc:dd:ee:ff")
    assert annotations == {"flannel.alpha.coreos.com/backend-type": "vxlan",
                           "flannel.alpha.coreos.com/backend-data": '{"VNI":1,"VtepMAC":"aa:bb:cc:dd:ee:ff"}',
                           "flannel.alpha.coreos.com/public-ip": "10.45.0.10",
                           "flannel.alpha.coreos.com/kube-subnet-manager": "true"}
    assert plan.own_annotations("host-gw", "10.45.0.10")["flannel.alpha.coreos.com/backend-data"] == "null"


def test_peers_skip_self_and_nodes_not_yet_published():
    nodes = [node("me", "10.42.0.0/24", "10.45.0.10"), node("b", "10.42.1.0/24", "10.45.0.100", mac="0A:00:00:00:00:02"),
             {"metadata": {"name": "new"}, "spec": {}},
             {"metadata": {"name": "nocidr", "annotations": plan.own_annotations("vxlan", "10.45.0.9", "0a:0:0:0:0:9")}}]
    peers = plan.peers("me", nodes)
    assert peers == [plan.Peer("b", "10.42.1.0/24", "10.45.0.100", "vxlan", "0a:00:00:00:00:02")]
    assert peers[0].vtep_ip == "10.42.1.0"


def test_vxlan_desired_is_flannels_layout():
    state = plan.vxlan_desired(plan.peers("me", [node("b", "10.42.1.0/24", "10.45.0.100", mac="0a:00:00:00:00:02"),
                                                 node("c", "10.42.2.0/24", "10.45.0.101", mac="0a:00:00:00:00:03")]))
    assert state.routes == {"10.42.1.0/24": "10.42.1.0", "10.42.2.0/24": "10.42.2.0"}
    assert state.neighbours == {"10.42.1.0": "0a:00:00:00:00:02", "10.42.2.0": "0a:00:00:00:00:03"}
    assert state.fdb == {"0a:00:00:00:00:02": "10.45.0.100", "0a:00:00:00:00:03": "10.45.0.101"}


def test_vxlan_commands_add_new_replace_changed_and_delete_gone_nodes():
    desired = plan.VxlanState(routes={"10.42.1.0/24": "10.42.1.0"}, neighbours={"10.42.1.0": "0a:00:00:00:00:22"},
                              fdb={"0a:00:00:00:00:22": "10.45.0.100"})
    # what `ip -j` / `bridge -j` print: node b's MAC changed (its device was recreated), c left
    current = plan.vxlan_current(
        routes=[{"dst": "10.42.1.0/24", "gateway": "10.42.1.0", "dev": "flannel.1", "flags": ["onlink"]},
                {"dst": "10.42.2.0/24", "gateway": "10.42.2.0", "dev": "flannel.1", "flags": ["onlink"]}],
        neighbours=[{"dst": "10.42.1.0", "lladdr": "0a:00:00:00:00:02", "state": ["PERMANENT"]},
                    {"dst": "10.42.2.0", "lladdr": "0a:00:00:00:00:03", "state": ["PERMANENT"]}],
        fdb=[{"mac": "0a:00:00:00:00:02", "dst": "10.45.0.100", "flags": ["self"], "state": "permanent"},
             {"mac": "0a:00:00:00:00:03", "dst": "10.45.0.101", "flags": ["self"], "state": "permanent"}])
    ip_lines, bridge_lines = plan.vxlan_commands(desired, current)
    assert bridge_lines == ["fdb replace 0a:00:00:00:00:22 dev flannel.1 dst 10.45.0.100 self permanent",
                            "fdb del 0a:00:00:00:00:02 dev flannel.1 dst 10.45.0.100 self",
                            "fdb del 0a:00:00:00:00:03 dev flannel.1 dst 10.45.0.101 self"]
    assert ip_lines == ["neigh replace 10.42.1.0 lladdr 0a:00:00:00:00:22 dev flannel.1 nud permanent",
                        "route del 10.42.2.0/24 dev flannel.1",
                        "neigh del 10.42.2.0 dev flannel.1"]
    assert plan.vxlan_commands(desired, desired) == ([], [])


def test_host_gw_routes_via_node_addresses_and_only_ours_are_removed():
    peers = plan.peers("me", [node("b", "10.42.1.0/24", "10.45.0.100", backend="host-gw", mac="")])
    desired = plan.host_gw_desired(peers)
    assert desired == {"10.42.1.0/24": "10.45.0.100"}
    current = plan.host_gw_current([
        {"dst": "10.42.0.0/24", "dev": "pyk8s1234", "protocol": "kernel", "scope": "link"},  # own bridge
        {"dst": "10.42.7.0/24", "gateway": "10.45.0.107", "dev": "eth0"},  # a node that left
        {"dst": "10.42.8.0/24", "gateway": "10.42.8.0", "dev": "flannel.1"},  # vxlan's, not ours
        {"dst": "10.45.0.0/24", "dev": "eth0", "protocol": "kernel"},
        {"dst": "default", "gateway": "10.45.0.1", "dev": "eth0"}], "10.42.0.0/16", "10.42.0.0/24")
    assert current == {"10.42.7.0/24": "10.45.0.107"}
    assert plan.host_gw_commands(desired, current) == ["route replace 10.42.1.0/24 via 10.45.0.100",
                                                       "route del 10.42.7.0/24 via 10.45.0.107"]


def test_masquerade_keeps_pod_to_pod_and_masquerades_what_leaves_the_cluster_cidr():
    text = plan.masquerade_rules("10.42.0.0/16", "10.42.1.0/24")
    lines = [line for line in text.splitlines() if line.startswith("-A FLANNEL-POSTRTG")]
    assert "--mark 0x4000/0x4000 -j RETURN" in lines[0]
    assert "-s 10.42.1.0/24 -d 10.42.0.0/16 -j RETURN" in lines[1]
    assert "-s 10.42.0.0/16 ! -d 224.0.0.0/4 -j MASQUERADE --random-fully" in lines[4]
    assert text.count("COMMIT") == 2 and text.endswith("\n")
    json.dumps(text)
