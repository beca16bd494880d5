"""Node IPAM (controllers/nodeipam.py): the pure CIDR set and the repair from Node objects."""

import pytest

from pyk8s.controllers.nodeipam import CIDRRangeFull, CIDRSet, node_pod_cidrs, occupy_existing


def node(name, cidr=None, created="2024-01-01T00:00:00Z"):
    spec = {"podCIDR": cidr, "podCIDRs": [cidr]} if cidr else {}
    return {"metadata": {"name": name, "creationTimestamp": created}, "spec": spec}


def test_allocates_consecutive_slash24s_of_the_cluster_cidr():
    cidrs = CIDRSet("10.42.0.0/16")
    assert [cidrs.allocate_next() for _ in range(3)] == ["10.42.0.0/24", "10.42.1.0/24", "10.42.2.0/24"]
    assert cidrs.size == 256 and cidrs.used == 3


def test_released_cidr_is_reused_only_after_the_others():
    cidrs = CIDRSet("10.42.0.0/22")
    first, second = cidrs.allocate_next(), cidrs.allocate_next()
    cidrs.release(first)
    assert cidrs.allocate_next() == "10.42.2.0/24"
    assert cidrs.allocate_next() == "10.42.3.0/24"
    assert cidrs.allocate_next() == first  # wrapped around to the freed one
    with pytest.raises(CIDRRangeFull):
        cidrs.allocate_next()
    assert second == "10.42.1.0/24"


def test_repair_marks_existing_node_cidrs_used_and_skips_foreign_or_duplicate_ones():
    cidrs = CIDRSet("10.42.0.0/16")
    nodes = [node("b", "10.42.0.0/24", "2024-01-02T00:00:00Z"), node("a", "10.42.0.0/24"),
             node("c", "10.42.5.0/24"), node("d", "192.168.0.0/24"), node("e")]
    held = occupy_existing(cidrs, nodes)
    assert held == {"a": "10.42.0.0/24", "c": "10.42.5.0/24"}  # the older node keeps a shared CIDR
    assert cidrs.allocate_next() == "10.42.1.0/24"
    assert not cidrs.contains("192.168.0.0/24") and not cidrs.contains("10.42.0.0/25")


def test_other_mask_sizes_and_podcidr_without_podcidrs():
    cidrs = CIDRSet("10.42.0.0/16", 26)
    assert [cidrs.allocate_next() for _ in range(2)] == ["10.42.0.0/26", "10.42.0.64/26"]
    with pytest.raises(ValueError):
        CIDRSet("10.42.0.0/16", 8)
    assert node_pod_cidrs({"spec": {"podCIDR": "10.42.3.0/24"}}) == ["10.42.3.0/24"]
    assert node_pod_cidrs({"spec": {}}) == []
