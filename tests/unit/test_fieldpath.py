"""FieldsV1 sets: typed construction from objects, set algebra, serialisation order, paths."""
from __future__ import annotations

import json

from pyk8s.api import fieldpath
from pyk8s.api.resources import lookup

DEPLOYMENTS = lookup("apps", "v1", "deployments")
DEPLOYMENT_TYPE = fieldpath.type_for(DEPLOYMENTS)


def test_containers_are_keyed_by_name_and_ports_by_port_and_defaulted_protocol():
    spec = {"template": {"spec": {"containers": [{"name": "web", "image": "nginx", "ports": [{"containerPort": 80}]}]}}}
    fields = fieldpath.to_field_set(DEPLOYMENT_TYPE, {"spec": spec})
    container = fields["f:spec"]["f:template"]["f:spec"]["f:containers"]['k:{"name":"web"}']
    assert container["."] == {} and container["f:image"] == {}
    assert 'k:{"containerPort":80,"protocol":"TCP"}' in container["f:ports"]


def test_atomic_selector_and_granular_labels_as_upstream_encodes_them():
    obj = {"metadata": {"labels": {"app": "web"}}, "spec": {"selector": {"matchLabels": {"app": "web"}}}}
    assert fieldpath.to_field_set(DEPLOYMENT_TYPE, obj) == {
        "f:metadata": {"f:labels": {"f:app": {}}}, "f:spec": {"f:selector": {}}}


def test_set_lists_use_value_elements():
    obj = {"metadata": {"finalizers": ["example.com/a"]}}
    assert fieldpath.to_field_set(DEPLOYMENT_TYPE, obj) == {"f:metadata": {"f:finalizers": {"v:\"example.com/a\"": {}}}}


def test_union_marks_a_leaf_that_gains_children_as_member_first():
    left = {"f:spec": {}}
    right = {"f:spec": {"f:replicas": {}}}
    merged = fieldpath.union(left, right)
    assert json.dumps(merged) == '{"f:spec": {".": {}, "f:replicas": {}}}'


def test_union_orders_fields_before_keys_and_sorts_names():
    merged = fieldpath.union({"k:{\"name\":\"b\"}": {}, "f:z": {}}, {"f:a": {}, "k:{\"name\":\"a\"}": {}})
    assert list(merged) == ["f:a", "f:z", 'k:{"name":"a"}', 'k:{"name":"b"}']


def test_difference_keeps_a_prefix_that_still_holds_members():
    owned = {"f:spec": {"f:replicas": {}, "f:paused": {}}}
    assert fieldpath.difference(owned, {"f:spec": {"f:replicas": {}}}) == {"f:spec": {"f:paused": {}}}
    assert fieldpath.difference(owned, owned) == {}


def test_difference_of_a_member_node_keeps_its_children():
    owned = {"f:labels": {".": {}, "f:app": {}}}
    assert fieldpath.difference(owned, {"f:labels": {}}) == {"f:labels": {"f:app": {}}}


def test_intersection_is_per_path():
    left = {"f:spec": {"f:replicas": {}, "f:paused": {}}, "f:data": {}}
    right = {"f:spec": {"f:replicas": {}}, "f:other": {}}
    assert fieldpath.intersection(left, right) == {"f:spec": {"f:replicas": {}}}


def test_recursive_difference_removes_everything_under_a_member():
    left = {"f:status": {"f:replicas": {}}, "f:spec": {"f:replicas": {}}}
    assert fieldpath.recursive_difference(left, {"f:status": {}}) == {"f:spec": {"f:replicas": {}}}


def test_path_string_prints_fields_keys_and_values_as_upstream():
    path = ("f:spec", "f:template", "f:spec", "f:containers", 'k:{"name":"web"}', "f:image")
    assert fieldpath.path_string(path) == '.spec.template.spec.containers[name="web"].image'
    assert fieldpath.path_string(("f:metadata", "f:finalizers", 'v:"a"')) == '.metadata.finalizers[="a"]'


def test_member_paths_lists_a_levels_members_before_descending():
    fields = {"f:spec": {"f:template": {"f:x": {}}, "f:replicas": {}}, "f:data": {}}
    assert list(fieldpath.member_paths(fields)) == [("f:data",), ("f:spec", "f:replicas"), ("f:spec", "f:template", "f:x")]


def test_compare_reports_added_modified_and_removed_paths():
    old = {"spec": {"replicas": 1, "paused": True, "template": {"spec": {"containers": [{"name": "a", "image": "x"}]}}}}
    new = {"spec": {"replicas": 2, "minReadySeconds": 5, "template": {"spec": {"containers": [{"name": "a", "image": "y"}]}}}}
    comparison = fieldpath.compare(DEPLOYMENT_TYPE, old, new)
    assert comparison.modified == {"f:spec": {"f:replicas": {}, "f:template": {"f:spec": {"f:containers": {'k:{"name":"a"}': {"f:image": {}}}}}}}
    assert comparison.added == {"f:spec": {"f:minReadySeconds": {}}}
    assert comparison.removed == {"f:spec": {"f:paused": {}}}


def test_merge_keeps_live_only_list_items_and_replaces_atomic_values():
    live = {"spec": {"selector": {"matchLabels": {"a": "1", "b": "2"}},
                     "template": {"spec": {"containers": [{"name": "a", "image": "x"}, {"name": "side", "image": "s"}]}}}}
    config = {"spec": {"selector": {"matchLabels": {"a": "1"}},
                       "template": {"spec": {"containers": [{"name": "a", "image": "y"}]}}}}
    merged = fieldpath.merge(DEPLOYMENT_TYPE, live, config)
    assert merged["spec"]["selector"] == {"matchLabels": {"a": "1"}}
    assert merged["spec"]["template"]["spec"]["containers"] == [{"name": "a", "image": "y"}, {"name": "side", "image": "s"}]
    assert live["spec"]["template"]["spec"]["containers"][0]["image"] == "x"


def test_remove_items_drops_members_with_their_contents():
    value = {"spec": {"replicas": 3, "template": {"spec": {"containers": [{"name": "a"}, {"name": "b"}]}}}}
    removal = {"f:spec": {"f:replicas": {}, "f:template": {"f:spec": {"f:containers": {'k:{"name":"b"}': {}}}}}}
    assert fieldpath.remove_items(DEPLOYMENT_TYPE, value, removal) == {"spec": {"template": {"spec": {"containers": [{"name": "a"}]}}}}


def test_unknown_kinds_are_deduced_maps_granular_lists_atomic():
    fields = fieldpath.to_field_set(fieldpath.UNTYPED, {"spec": {"items": [1, 2], "size": 3}})
    assert fields == {"f:spec": {".": {}, "f:items": {}, "f:size": {}}}
