"""Strategic merge patch: upstream's documented cases, the patches kubectl sends for real
kinds, error wording, and round-trip properties of the two- and three-way diffs."""

from __future__ import annotations

import copy

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pyk8s.api import errors, resources
from pyk8s.api.strategicpatch import (
    StrategicMergePatchFailed,
    StrategicMergePatchInvalid,
    apply,
    create_three_way_merge_patch,
    create_two_way_merge_patch,
)

DEPLOYMENT = resources.by_kind("apps", "Deployment")
POD = resources.by_kind("", "Pod")
SERVICE = resources.by_kind("", "Service")


def _merge_item_schema() -> dict:
    """The schema of upstream's test type `MergeItem`, written as OpenAPI."""
    item: dict = {"type": "object", "properties": {}}
    merging_list = {"type": "array", "items": item, "x-kubernetes-patch-strategy": "merge",
                    "x-kubernetes-patch-merge-key": "name"}
    retain_keys_item = {"type": "object", "properties": {
        "name": {"type": "string"}, "value": {"type": "string"}, "other": {"type": "string"},
        "simpleMap": {"type": "object", "additionalProperties": {"type": "string"}},
        "mergingIntList": {"type": "array", "items": {"type": "integer"}, "x-kubernetes-patch-strategy": "merge"},
        "mergingList": merging_list,
        "nonMergingList": {"type": "array", "items": item},
    }}
    item["properties"].update({
        "name": {"type": "string"}, "value": {"type": "string"}, "other": {"type": "string"},
        "mergingList": merging_list,
        "nonMergingList": {"type": "array", "items": item},
        "mergingIntList": {"type": "array", "items": {"type": "integer"}, "x-kubernetes-patch-strategy": "merge"},
        "nonMergingIntList": {"type": "array", "items": {"type": "integer"}},
        "simpleMap": {"type": "object", "additionalProperties": {"type": "string"}},
        "replacingItem": {"type": "object", "x-kubernetes-patch-strategy": "replace"},
        "retainKeysMap": dict(retain_keys_item, **{"x-kubernetes-patch-strategy": "retainKeys"}),
        "retainKeysMergingList": {"type": "array", "items": item, "x-kubernetes-patch-merge-key": "name",
                                  "x-kubernetes-patch-strategy": "merge,retainKeys"},
    })
    return item


MERGE_ITEM = _merge_item_schema()

# Cases restated from upstream's strategicpatch tests (MergeItem): apply the two-way patch to
# `original` and get `modified`.
APPLY_CASES = yaml.safe_load("""
- description: unique scalars when merging lists
  original: {mergingIntList: [1, 2]}
  patch: {mergingIntList: [2, 3]}
  result: {mergingIntList: [1, 2, 3]}
- description: delete map from nested map
  original: {simpleMap: {key1: "1", key2: "1"}}
  patch: {simpleMap: {$patch: delete}}
  result: {simpleMap: {}}
- description: delete all items from merging list
  original: {mergingList: [{name: 1}, {name: 2}]}
  patch: {mergingList: [{$patch: replace}]}
  result: {mergingList: []}
- description: delete all keys from map
  original: {name: 1, value: 1}
  patch: {$patch: replace}
  result: {}
- description: add key and delete all keys from map
  original: {name: 1, value: 1}
  patch: {other: a, $patch: replace}
  result: {other: a}
- description: delete all duplicate entries in a merging list
  original: {mergingList: [{name: 1}, {name: 1}, {name: 2, value: a}, {name: 3}, {name: 3}]}
  patch: {mergingList: [{name: 1, $patch: delete}, {name: 3, $patch: delete}]}
  result: {mergingList: [{name: 2, value: a}]}
- description: retainKeys map can add a field when no retainKeys directive present
  original: {retainKeysMap: {name: foo}}
  patch: {retainKeysMap: {value: bar}}
  result: {retainKeysMap: {name: foo, value: bar}}
- description: preserve the order from the patch in a merging list
  original: {mergingList: [{name: 1}, {name: 2, value: b}, {name: 3}]}
  patch: {mergingList: [{name: 3, value: c}, {name: 1, value: a}, {name: 2, other: x}]}
  result: {mergingList: [{name: 3, value: c}, {name: 1, value: a}, {name: 2, value: b, other: x}]}
- description: server-only items keep their live place among the patch's items
  original: {mergingList: [{name: 1}, {name: 2, value: b}, {name: 3}]}
  patch: {mergingList: [{name: 3, value: c}, {name: 1, value: a}]}
  result: {mergingList: [{name: 2, value: b}, {name: 3, value: c}, {name: 1, value: a}]}
- description: preserve the order from the patch in a merging int list
  original: {mergingIntList: [1, 2, 3]}
  patch: {mergingIntList: [3, 1]}
  result: {mergingIntList: [2, 3, 1]}
- description: setElementOrder names an item absent from the list
  original: {mergingList: [{name: 1}, {name: 3}]}
  patch: {$setElementOrder/mergingList: [{name: 3}, {name: 2}, {name: 1}],
          mergingList: [{name: 3, value: "3"}, {name: 1, value: "1"}]}
  result: {mergingList: [{name: 3, value: "3"}, {name: 1, value: "1"}]}
- description: setElementOrder alone reorders an int list
  original: {mergingIntList: [1, 3]}
  patch: {$setElementOrder/mergingIntList: [3, 2, 1]}
  result: {mergingIntList: [3, 1]}
- description: deleteFromPrimitiveList of an absent item adds nothing
  original: {mergingIntList: [1, 2]}
  patch: {$deleteFromPrimitiveList/mergingIntList: [3]}
  result: {mergingIntList: [1, 2]}
- description: deleteFromPrimitiveList on a missing list adds no list
  original: {foo: [bar]}
  patch: {$deleteFromPrimitiveList/mergingIntList: [3]}
  result: {foo: [bar]}
- description: deleteFromPrimitiveList deletes from a list without merge strategy too
  original: {nonMergingIntList: [1, 2, 3]}
  patch: {$deleteFromPrimitiveList/nonMergingIntList: [2]}
  result: {nonMergingIntList: [1, 3]}
- description: replace strategy replaces a whole map
  original: {replacingItem: {a: 1, b: 2}}
  patch: {replacingItem: {c: 3}}
  result: {replacingItem: {c: 3}}
- description: non merging list is replaced
  original: {nonMergingList: [{name: 1}, {name: 2}]}
  patch: {nonMergingList: [{name: 3}]}
  result: {nonMergingList: [{name: 3}]}
- description: retainKeys directive clears the fields it does not name
  original: {retainKeysMap: {name: foo, value: a, other: b}}
  patch: {retainKeysMap: {$retainKeys: [name, other], other: c}}
  result: {retainKeysMap: {name: foo, other: c}}
- description: unknown fields merge maps and replace lists
  original: {unknown: {a: 1, list: [{name: x, v: 1}]}}
  patch: {unknown: {b: 2, list: [{name: x, w: 2}]}}
  result: {unknown: {a: 1, b: 2, list: [{name: x, w: 2}]}}
- description: a delete directive on an absent map leaves no key
  original: {name: x}
  patch: {simpleMap: {$patch: delete}, mergingList: [{name: a, $patch: delete}]}
  result: {name: x, mergingList: []}
""")


@pytest.mark.parametrize("case", APPLY_CASES, ids=[case["description"] for case in APPLY_CASES])
def test_upstream_apply_cases(case):
    assert apply(MERGE_ITEM, case["original"], case["patch"]) == case["result"]


# Upstream's create cases: two-way patch, three-way patch and the three-way result.
DIFF_CASES = yaml.safe_load("""
- description: nil original
  modified: {name: 1, value: 1}
  current: {name: 1, other: a}
  twoWay: {name: 1, value: 1}
  threeWay: {value: 1}
  result: {name: 1, value: 1, other: a}
- description: add field and delete field from map with conflict
  original: {name: 1}
  modified: {value: 1}
  current: {name: a, other: a}
  twoWay: {name: null, value: 1}
  threeWay: {name: null, value: 1}
  result: {value: 1, other: a}
- description: delete field from nested map with conflict
  original: {simpleMap: {key1: "1", key2: "1"}}
  modified: {simpleMap: {key1: "1"}}
  current: {simpleMap: {key1: a, key2: "1", other: a}}
  twoWay: {simpleMap: {key2: null}}
  threeWay: {simpleMap: {key1: "1", key2: null}}
  result: {simpleMap: {key1: "1", other: a}}
- description: delete all maps from merging list with conflict
  original: {mergingList: [{name: 1}, {name: 2}]}
  modified: {mergingList: []}
  current: {mergingList: [{name: 1, other: a}, {name: 2, other: b}]}
  twoWay: {mergingList: [{name: 1, $patch: delete}, {name: 2, $patch: delete}]}
  threeWay: {mergingList: [{name: 1, $patch: delete}, {name: 2, $patch: delete}]}
  result: {mergingList: []}
- description: merge empty merging lists
  original: {mergingList: []}
  modified: {mergingList: []}
  current: {mergingList: []}
  twoWay: {}
  threeWay: {}
  result: {mergingList: []}
- description: retainKeys map with no change should not be present
  original: {name: a, retainKeysMap: {name: foo}}
  modified: {name: a, value: b, retainKeysMap: {name: foo}}
  current: {name: a, other: c, retainKeysMap: {name: foo}}
  twoWay: {value: b}
  threeWay: {value: b}
  result: {name: a, value: b, other: c, retainKeysMap: {name: foo}}
- description: delete items in lists of scalars
  original: {mergingIntList: [1, 2, 3]}
  modified: {mergingIntList: [1, 2]}
  current: {mergingIntList: [1, 2, 3, 4]}
  twoWay: {$setElementOrder/mergingIntList: [1, 2], $deleteFromPrimitiveList/mergingIntList: [3]}
  threeWay: {$setElementOrder/mergingIntList: [1, 2], $deleteFromPrimitiveList/mergingIntList: [3]}
  result: {mergingIntList: [1, 2, 4]}
- description: add and delete items in lists of scalars
  original: {mergingIntList: [1, 2, 3]}
  modified: {mergingIntList: [1, 2, 4]}
  current: {mergingIntList: [1, 2, 3, 4]}
  twoWay: {$setElementOrder/mergingIntList: [1, 2, 4], $deleteFromPrimitiveList/mergingIntList: [3],
           mergingIntList: [4]}
  threeWay: {$setElementOrder/mergingIntList: [1, 2, 4], $deleteFromPrimitiveList/mergingIntList: [3]}
  result: {mergingIntList: [1, 2, 4]}
- description: merge lists of maps
  original: {mergingList: [{name: 1}, {name: 2, value: "2"}]}
  modified: {mergingList: [{name: 4, value: "4"}, {name: 1}, {name: 2, value: "2"}, {name: 3, value: "3"}]}
  current: {mergingList: [{name: 1, other: a}, {name: 2, value: "2", other: b}]}
  twoWay: {$setElementOrder/mergingList: [{name: 4}, {name: 1}, {name: 2}, {name: 3}],
           mergingList: [{name: 4, value: "4"}, {name: 3, value: "3"}]}
  threeWay: {$setElementOrder/mergingList: [{name: 4}, {name: 1}, {name: 2}, {name: 3}],
             mergingList: [{name: 4, value: "4"}, {name: 3, value: "3"}]}
  result: {mergingList: [{name: 4, value: "4"}, {name: 1, other: a}, {name: 2, value: "2", other: b},
                         {name: 3, value: "3"}]}
- description: add field to map in merging list with conflict
  original: {mergingList: [{name: 1}, {name: 2, value: "2"}]}
  modified: {mergingList: [{name: 1, value: "1"}, {name: 2, value: "2"}]}
  current: {mergingList: [{name: 1, other: a}, {name: 3, value: "2", other: b}]}
  twoWay: {$setElementOrder/mergingList: [{name: 1}, {name: 2}], mergingList: [{name: 1, value: "1"}]}
  threeWay: {$setElementOrder/mergingList: [{name: 1}, {name: 2}],
             mergingList: [{name: 1, value: "1"}, {name: 2, value: "2"}]}
  result: {mergingList: [{name: 1, value: "1", other: a}, {name: 2, value: "2"}, {name: 3, value: "2", other: b}]}
- description: add map and delete map from merging list
  original: {mergingList: [{name: 1}, {name: 2}]}
  modified: {mergingList: [{name: 2}, {name: 3}]}
  current: {mergingList: [{name: 1}, {name: 2, other: b}, {name: 4, other: c}]}
  twoWay: {$setElementOrder/mergingList: [{name: 2}, {name: 3}],
           mergingList: [{name: 3}, {name: 1, $patch: delete}]}
  threeWay: {$setElementOrder/mergingList: [{name: 2}, {name: 3}],
             mergingList: [{name: 3}, {name: 1, $patch: delete}]}
  result: {mergingList: [{name: 2, other: b}, {name: 4, other: c}, {name: 3}]}
- description: delete missing map from merging list with conflict
  original: {mergingList: [{name: 1}, {name: 2}]}
  modified: {mergingList: [{name: 2}]}
  current: {mergingList: [{name: 3, other: a}]}
  twoWay: {$setElementOrder/mergingList: [{name: 2}], mergingList: [{name: 1, $patch: delete}]}
  threeWay: {$setElementOrder/mergingList: [{name: 2}], mergingList: [{name: 2}, {name: 1, $patch: delete}]}
  result: {mergingList: [{name: 2}, {name: 3, other: a}]}
- description: nested patch merge with empty list
  original: {name: hi}
  modified: {name: hi, mergingList: [{name: hello}, {$patch: delete, name: doesntexist}]}
  current: {name: hi, mergingList: [{name: hello2}]}
  twoWay: {mergingList: [{name: hello}, {$patch: delete, name: doesntexist}]}
  threeWay: {$setElementOrder/mergingList: [{name: hello}, {name: doesntexist}],
             mergingList: [{name: hello}, {$patch: delete, name: doesntexist}]}
  result: {name: hi, mergingList: [{name: hello}, {name: hello2}]}
""")


@pytest.mark.parametrize("case", DIFF_CASES, ids=[case["description"] for case in DIFF_CASES])
def test_upstream_diff_cases(case):
    original = case.get("original")
    two_way = create_two_way_merge_patch(MERGE_ITEM, original or {}, case["modified"])
    assert two_way == case["twoWay"]
    three_way = create_three_way_merge_patch(MERGE_ITEM, original, case["modified"], case["current"])
    assert three_way == case["threeWay"]
    assert apply(MERGE_ITEM, case["current"], three_way) == case["result"]


# --------------------------------------------------------------------------------------
# Real kinds
# --------------------------------------------------------------------------------------

def _deployment() -> dict:
    return {
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "default", "labels": {"app": "web"},
                     "finalizers": ["a.example/one", "b.example/two"]},
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": {"app": "web"}},
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {
                    "containers": [
                        {"name": "app", "image": "app:1",
                         "env": [{"name": "MODE", "value": "prod"}, {"name": "LEVEL", "value": "info"}],
                         "ports": [{"containerPort": 80, "protocol": "TCP"}, {"containerPort": 443, "protocol": "TCP"}],
                         "volumeMounts": [{"name": "data", "mountPath": "/data"}]},
                        {"name": "sidecar", "image": "proxy:1"},
                    ],
                    "volumes": [{"name": "data", "emptyDir": {}}],
                    "tolerations": [{"key": "a", "operator": "Exists"}],
                },
            },
        },
    }


def _containers(obj: dict) -> list:
    return obj["spec"]["template"]["spec"]["containers"]


def test_set_image_patch_changes_only_that_container():
    live = _deployment()
    patched = apply(DEPLOYMENT, live, {"spec": {"template": {"spec": {"containers": [{"image": "app:2", "name": "app"}]}}}})
    expected = _deployment()
    _containers(expected)[0]["image"] = "app:2"
    assert patched == expected


def test_rollout_restart_annotation_is_added_to_the_template():
    patch = {"spec": {"template": {"metadata": {"annotations": {"kubectl.kubernetes.io/restartedAt": "2025-01-01T00:00:00Z"}}}}}
    patched = apply(DEPLOYMENT, _deployment(), patch)
    assert patched["spec"]["template"]["metadata"] == {
        "labels": {"app": "web"}, "annotations": {"kubectl.kubernetes.io/restartedAt": "2025-01-01T00:00:00Z"}}


def test_env_merges_by_name_and_ports_by_container_port():
    patch = {"spec": {"template": {"spec": {"containers": [{
        "name": "app",
        "env": [{"name": "LEVEL", "value": "debug"}, {"name": "NEW", "value": "1"}],
        "ports": [{"containerPort": 443, "name": "https"}],
    }]}}}}
    app = _containers(apply(DEPLOYMENT, _deployment(), patch))[0]
    assert app["env"] == [{"name": "MODE", "value": "prod"}, {"name": "LEVEL", "value": "debug"}, {"name": "NEW", "value": "1"}]
    assert app["ports"] == [{"containerPort": 80, "protocol": "TCP"}, {"containerPort": 443, "protocol": "TCP", "name": "https"}]


def test_delete_directive_removes_a_container_by_name():
    patch = {"spec": {"template": {"spec": {"containers": [{"name": "sidecar", "$patch": "delete"}]}}}}
    assert [c["name"] for c in _containers(apply(DEPLOYMENT, _deployment(), patch))] == ["app"]


def test_replace_directive_in_a_list_replaces_the_containers():
    patch = {"spec": {"template": {"spec": {"containers": [{"$patch": "replace"}, {"name": "only", "image": "x:1"}]}}}}
    assert _containers(apply(DEPLOYMENT, _deployment(), patch)) == [{"name": "only", "image": "x:1"}]


def test_replace_directive_in_a_map_replaces_the_labels():
    patch = {"metadata": {"labels": {"$patch": "replace", "tier": "front"}}}
    assert apply(DEPLOYMENT, _deployment(), patch)["metadata"]["labels"] == {"tier": "front"}


def test_set_element_order_reorders_containers():
    patch = {"spec": {"template": {"spec": {"$setElementOrder/containers": [{"name": "sidecar"}, {"name": "app"}]}}}}
    assert [c["name"] for c in _containers(apply(DEPLOYMENT, _deployment(), patch))] == ["sidecar", "app"]


def test_retain_keys_switches_strategy_from_rolling_update_to_recreate():
    patch = {"spec": {"strategy": {"$retainKeys": ["type"], "type": "Recreate"}}}
    assert apply(DEPLOYMENT, _deployment(), patch)["spec"]["strategy"] == {"type": "Recreate"}


def test_without_retain_keys_the_rolling_update_block_stays():
    patch = {"spec": {"strategy": {"type": "Recreate"}}}
    assert apply(DEPLOYMENT, _deployment(), patch)["spec"]["strategy"]["rollingUpdate"] == {
        "maxSurge": "25%", "maxUnavailable": "25%"}


def test_two_way_patch_of_a_strategy_switch_carries_retain_keys():
    modified = _deployment()
    modified["spec"]["strategy"] = {"type": "Recreate"}
    patch = create_two_way_merge_patch(DEPLOYMENT, _deployment(), modified)
    assert patch == {"spec": {"strategy": {"$retainKeys": ["type"], "rollingUpdate": None, "type": "Recreate"}}}
    assert apply(DEPLOYMENT, _deployment(), patch) == modified


def test_volume_source_switch_clears_the_old_source():
    modified = _deployment()
    modified["spec"]["template"]["spec"]["volumes"] = [{"name": "data", "hostPath": {"path": "/srv"}}]
    patch = create_two_way_merge_patch(DEPLOYMENT, _deployment(), modified)
    volume_patch = patch["spec"]["template"]["spec"]["volumes"][0]
    assert volume_patch["$retainKeys"] == ["hostPath", "name"]
    assert apply(DEPLOYMENT, _deployment(), patch)["spec"]["template"]["spec"]["volumes"] == [
        {"name": "data", "hostPath": {"path": "/srv"}}]


def test_null_deletes_a_key():
    patched = apply(DEPLOYMENT, _deployment(), {"metadata": {"labels": {"app": None}}, "spec": {"strategy": None}})
    assert patched["metadata"]["labels"] == {}
    assert "strategy" not in patched["spec"]


def test_finalizers_merge_as_a_union_and_delete_from_primitive_list_removes():
    patched = apply(DEPLOYMENT, _deployment(), {"metadata": {"finalizers": ["b.example/two", "c.example/three"]}})
    assert sorted(patched["metadata"]["finalizers"]) == ["a.example/one", "b.example/two", "c.example/three"]
    patched = apply(DEPLOYMENT, _deployment(), {"metadata": {"$deleteFromPrimitiveList/finalizers": ["a.example/one"]}})
    assert patched["metadata"]["finalizers"] == ["b.example/two"]


def test_lists_without_merge_strategy_are_replaced():
    patch = {"spec": {"template": {"spec": {"tolerations": [{"key": "b", "operator": "Exists"}]}}}}
    patched = apply(DEPLOYMENT, _deployment(), patch)
    assert patched["spec"]["template"]["spec"]["tolerations"] == [{"key": "b", "operator": "Exists"}]


def test_service_ports_merge_by_port_and_int_or_string_is_atomic():
    service = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "s"},
               "spec": {"ports": [{"port": 80, "targetPort": 8080}, {"port": 443, "targetPort": "https"}]}}
    patched = apply(SERVICE, service, {"spec": {"ports": [{"port": 80, "targetPort": "http"}]}})
    assert patched["spec"]["ports"] == [{"port": 80, "targetPort": "http"}, {"port": 443, "targetPort": "https"}]


def test_node_selector_merges_per_key():
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"},
           "spec": {"nodeSelector": {"disk": "ssd"}, "containers": [{"name": "c", "image": "i"}]}}
    patched = apply(POD, pod, {"spec": {"nodeSelector": {"zone": "a"}}})
    assert patched["spec"]["nodeSelector"] == {"disk": "ssd", "zone": "a"}


def test_resource_quantities_are_replaced_per_resource_name():
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}, "spec": {"containers": [
        {"name": "c", "image": "i", "resources": {"limits": {"cpu": "1", "memory": "1Gi"}}}]}}
    patch = {"spec": {"containers": [{"name": "c", "resources": {"limits": {"cpu": "500m"}}}]}}
    assert apply(POD, pod, patch)["spec"]["containers"][0]["resources"] == {"limits": {"cpu": "500m", "memory": "1Gi"}}


def test_directives_never_reach_the_stored_object():
    patch = {"spec": {"template": {"spec": {"containers": [{
        "name": "new", "image": "n:1", "command": None,
        "env": [{"name": "A", "value": "1"}], "$setElementOrder/env": [{"name": "A"}]}]}}}}
    new = {c["name"]: c for c in _containers(apply(DEPLOYMENT, _deployment(), patch))}["new"]
    assert new == {"name": "new", "image": "n:1", "env": [{"name": "A", "value": "1"}]}


def test_new_list_items_without_set_element_order_go_before_the_live_ones():
    patch = {"spec": {"template": {"spec": {"containers": [{"name": "new", "image": "n:1"}]}}}}
    assert [c["name"] for c in _containers(apply(DEPLOYMENT, _deployment(), patch))] == ["new", "app", "sidecar"]


def test_apply_never_mutates_its_inputs():
    live, patch = _deployment(), {"spec": {"template": {"spec": {"containers": [
        {"name": "app", "env": [{"name": "MODE", "$patch": "delete"}]}]}}}, "metadata": {"labels": None}}
    live_before, patch_before = copy.deepcopy(live), copy.deepcopy(patch)
    result = apply(DEPLOYMENT, live, patch)
    assert live == live_before and patch == patch_before
    _containers(result)[0]["image"] = "changed"
    assert _containers(live)[0]["image"] == "app:1"


def test_reapplying_the_same_file_gives_an_empty_three_way_patch():
    file = _deployment()
    live = copy.deepcopy(file)
    live["status"] = {"replicas": 2}
    live["metadata"]["uid"] = "u-1"
    assert create_three_way_merge_patch(DEPLOYMENT, file, file, live) == {}


def test_three_way_patch_deletes_what_the_last_applied_owned_and_keeps_the_rest():
    last_applied = _deployment()
    live = _deployment()
    live["metadata"]["labels"]["added-by-someone"] = "yes"
    _containers(live)[0]["terminationMessagePath"] = "/dev/termination-log"
    file = _deployment()
    del file["metadata"]["labels"]["app"]
    _containers(file)[0]["env"] = [{"name": "MODE", "value": "dev"}]
    patch = create_three_way_merge_patch(DEPLOYMENT, last_applied, file, live)
    result = apply(DEPLOYMENT, live, patch)
    assert result["metadata"]["labels"] == {"added-by-someone": "yes"}
    assert _containers(result)[0]["env"] == [{"name": "MODE", "value": "dev"}]
    assert _containers(result)[0]["terminationMessagePath"] == "/dev/termination-log"


# --------------------------------------------------------------------------------------
# Errors
# --------------------------------------------------------------------------------------

def test_missing_merge_key_is_an_unclassified_server_error_with_upstream_wording():
    with pytest.raises(StrategicMergePatchFailed) as raised:
        apply(DEPLOYMENT, _deployment(), {"spec": {"template": {"spec": {"containers": [{"image": "nginx"}]}}}})
    assert raised.value.message == "map: map[image:nginx] does not contain declared merge key: name"
    status = raised.value.status()
    assert status["code"] == 500 and "reason" not in status


def test_unknown_patch_directive_names_the_map():
    with pytest.raises(StrategicMergePatchFailed) as raised:
        apply(DEPLOYMENT, _deployment(), {"metadata": {"labels": {"$patch": "explode"}}})
    assert raised.value.message == "unknown patch type: explode in map: map[$patch:explode]"


def test_merge_directive_in_a_list_is_rejected():
    with pytest.raises(StrategicMergePatchFailed, match="merging lists cannot yet be specified in the patch"):
        apply(DEPLOYMENT, _deployment(), {"spec": {"template": {"spec": {"containers": [{"$patch": "merge"}]}}}})


@pytest.mark.parametrize("patch, message", [
    ({"metadata": {"$deleteFromPrimitiveList": ["x"]}}, "invalid patch format of primitive list"),
    ({"spec": {"strategy": {"$retainKeys": "type"}}}, "invalid patch format of retainKeys"),
    ({"spec": {"strategy": {"$retainKeys": ["type"], "rollingUpdate": {}}}}, "invalid patch format of retainKeys"),
    ({"spec": {"template": {"spec": {"$setElementOrderX/containers": []}}}}, "invalid patch format of setElementOrder list"),
])
def test_malformed_directives_are_bad_requests(patch, message):
    with pytest.raises(errors.BadRequest) as raised:
        apply(DEPLOYMENT, _deployment(), patch)
    assert raised.value.message == message


def test_set_element_order_contradicting_the_patch_list_is_rejected():
    original = {"mergingList": [{"name": 1}, {"name": 3}, {"name": 2}]}
    patch = {"$setElementOrder/mergingList": [{"name": 1}, {"name": 2}, {"name": 3}],
             "mergingList": [{"name": 3, "value": "3"}, {"name": 1, "value": "1"}]}
    with pytest.raises(StrategicMergePatchFailed, match="doesn't match"):
        apply(MERGE_ITEM, original, patch)


def test_list_of_lists_is_a_422_with_the_generic_message():
    with pytest.raises(StrategicMergePatchInvalid) as raised:
        apply(MERGE_ITEM, {"mergingIntList": [[1]]}, {"mergingIntList": [[2]]})
    assert raised.value.detail == "lists of lists are not supported"
    assert raised.value.status()["message"] == "the server rejected our request due to an error in our request"


# --------------------------------------------------------------------------------------
# Properties
# --------------------------------------------------------------------------------------

_short = st.sampled_from(["a", "b", "c", "d", "e"])
_label_maps = st.dictionaries(st.sampled_from(["app", "tier", "team", "env"]), _short, max_size=4)
_env = st.lists(st.fixed_dictionaries({"name": st.sampled_from(["A", "B", "C", "D"]), "value": _short}),
                max_size=4, unique_by=lambda item: item["name"])
_ports = st.lists(st.fixed_dictionaries({"containerPort": st.sampled_from([80, 443, 8080, 9090])},
                                        optional={"protocol": st.sampled_from(["TCP", "UDP"]), "name": _short}),
                  max_size=3, unique_by=lambda item: item["containerPort"])
_container = st.fixed_dictionaries(
    {"name": st.sampled_from(["app", "side", "init", "log"]), "image": st.sampled_from(["i:1", "i:2", "j:1"])},
    optional={"env": _env, "ports": _ports, "args": st.lists(_short, max_size=3)})
_containers_strategy = st.lists(_container, min_size=1, max_size=3, unique_by=lambda item: item["name"])
_strategy = st.one_of(st.just({"type": "Recreate"}),
                      st.builds(lambda surge: {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": surge}},
                                st.sampled_from(["25%", 1, "50%"])))


@st.composite
def deployments(draw):
    metadata = {"name": "web"}
    if draw(st.booleans()):
        metadata["labels"] = draw(_label_maps)
    if draw(st.booleans()):
        metadata["annotations"] = draw(st.dictionaries(st.sampled_from(["x/a", "x/b", "y"]), _short, max_size=3))
    if draw(st.booleans()):
        metadata["finalizers"] = draw(st.lists(st.sampled_from(["f/1", "f/2", "f/3"]), unique=True, max_size=3))
    spec = {"replicas": draw(st.integers(0, 3)),
            "template": {"metadata": {"labels": draw(_label_maps)}, "spec": {"containers": draw(_containers_strategy)}}}
    if draw(st.booleans()):
        spec["strategy"] = draw(_strategy)
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": metadata, "spec": spec}


_PROPERTY_SETTINGS = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@_PROPERTY_SETTINGS
@given(deployments(), deployments())
def test_two_way_patch_turns_original_into_modified(original, modified):
    patch = create_two_way_merge_patch(DEPLOYMENT, original, modified)
    assert apply(DEPLOYMENT, original, patch) == modified


@_PROPERTY_SETTINGS
@given(deployments())
def test_two_way_patch_of_identical_objects_is_empty(obj):
    assert create_two_way_merge_patch(DEPLOYMENT, obj, copy.deepcopy(obj)) == {}


_MERGE_KEYS = {"containers": "name", "env": "name", "ports": "containerPort"}


def _assert_has_values_of(result, wanted, field=""):
    """Every value `wanted` sets is in `result`; merged lists are matched by merge key."""
    if isinstance(wanted, dict):
        assert isinstance(result, dict), field
        for key, value in wanted.items():
            assert key in result, f"{field}.{key}"
            _assert_has_values_of(result[key], value, key)
    elif isinstance(wanted, list) and field in _MERGE_KEYS:
        key = _MERGE_KEYS[field]
        by_key = {item[key]: item for item in result}
        for item in wanted:
            _assert_has_values_of(by_key[item[key]], item, field + "[]")
    elif isinstance(wanted, list) and field == "finalizers":
        assert set(wanted) <= set(result)
    else:
        assert result == wanted, field


@_PROPERTY_SETTINGS
@given(deployments(), deployments(), _label_maps, st.sampled_from(["/dev/termination-log", "/tmp/x"]))
def test_three_way_patch_sets_the_file_and_keeps_what_others_added(last_applied, file, extra_labels, message_path):
    live = copy.deepcopy(last_applied)
    # What controllers and other users add on the server: unowned label keys, status, and
    # defaulted container fields.
    others = {f"other-{key}": value for key, value in extra_labels.items()}
    live["metadata"].setdefault("labels", {}).update(others)
    live["status"] = {"observedGeneration": 1}
    for container in _containers(live):
        container["terminationMessagePath"] = message_path

    patch = create_three_way_merge_patch(DEPLOYMENT, last_applied, file, live)
    result = apply(DEPLOYMENT, live, patch)

    _assert_has_values_of(result, file)
    assert result["status"] == {"observedGeneration": 1}
    # Labels others added survive unless the file dropped the whole map the last apply set.
    if "labels" in file["metadata"] or "labels" not in last_applied["metadata"]:
        for key, value in others.items():
            assert result["metadata"]["labels"][key] == value
    file_containers = {c["name"] for c in _containers(file)}
    for container in _containers(result):
        if container["name"] in {c["name"] for c in _containers(last_applied)} & file_containers:
            assert container["terminationMessagePath"] == message_path
    # What the last-applied configuration owned and the file dropped is gone.
    dropped_labels = set((last_applied["metadata"].get("labels") or {})) - set(file["metadata"].get("labels") or {})
    assert not dropped_labels & set(result["metadata"].get("labels") or {})
    assert {c["name"] for c in _containers(result)} == file_containers
