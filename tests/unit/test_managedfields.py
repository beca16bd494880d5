"""managedFields on updates and server-side apply (merge, prune, conflicts, upgrade from
client-side apply), following upstream's field manager."""
from __future__ import annotations

import copy
import json

import pytest

from pyk8s.api import errors, managedfields
from pyk8s.api.resources import lookup

DEPLOYMENTS = lookup("apps", "v1", "deployments")
CONFIGMAPS = lookup("", "v1", "configmaps")


def deployment(replicas: int = 2, image: str = "nginx") -> dict:
    return {"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "web", "namespace": "default", "labels": {"app": "web"}},
            "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": "web"}},
                     "template": {"metadata": {"labels": {"app": "web"}},
                                  "spec": {"containers": [{"name": "web", "image": image}]}}}}


def managers(obj: dict) -> list[tuple[str, str, str]]:
    return [(e["manager"], e["operation"], e.get("subresource", "")) for e in obj["metadata"].get("managedFields") or []]


def fields_of(obj: dict, manager: str, operation: str) -> dict:
    return next(e["fieldsV1"] for e in obj["metadata"]["managedFields"] if e["manager"] == manager and e["operation"] == operation)


def test_manager_name_is_the_user_agent_prefix_unless_given():
    assert managedfields.manager_name(None, "kubectl/v1.36.4 (linux/amd64) kubernetes/bb826b1") == "kubectl"
    assert managedfields.manager_name("kubectl-edit", "kubectl/v1.36.4") == "kubectl-edit"
    assert managedfields.manager_name(None, "OpenAPI-Generator/36.0.0/python") == "OpenAPI-Generator"


def test_create_records_an_update_entry_like_upstream():
    obj = deployment()
    managedfields.update(DEPLOYMENTS, None, obj, "kubectl-create", now="2024-01-01T00:00:00Z")
    [entry] = obj["metadata"]["managedFields"]
    assert entry == {"manager": "kubectl-create", "operation": "Update", "apiVersion": "apps/v1",
                     "time": "2024-01-01T00:00:00Z", "fieldsType": "FieldsV1", "fieldsV1": {
                         "f:metadata": {"f:labels": {".": {}, "f:app": {}}},
                         "f:spec": {"f:replicas": {}, "f:selector": {}, "f:template": {
                             "f:metadata": {"f:labels": {".": {}, "f:app": {}}},
                             "f:spec": {"f:containers": {'k:{"name":"web"}': {".": {}, "f:image": {}, "f:name": {}}}}}}}}


def test_update_moves_changed_fields_to_the_writer_and_keeps_the_rest():
    old = deployment()
    managedfields.update(DEPLOYMENTS, None, old, "creator")
    new = copy.deepcopy(old)
    new["spec"]["replicas"] = 5
    managedfields.update(DEPLOYMENTS, old, new, "scaler")
    assert fields_of(new, "scaler", "Update") == {"f:spec": {"f:replicas": {}}}
    assert "f:replicas" not in fields_of(new, "creator", "Update")["f:spec"]


def test_unchanged_update_keeps_managed_fields_and_times():
    old = deployment()
    managedfields.update(DEPLOYMENTS, None, old, "creator", now="2024-01-01T00:00:00Z")
    new = copy.deepcopy(old)
    new["metadata"].pop("managedFields")  # clients that do not send them keep them
    managedfields.update(DEPLOYMENTS, old, new, "someone-else", now="2025-01-01T00:00:00Z")
    assert new["metadata"]["managedFields"] == old["metadata"]["managedFields"]


def test_status_is_not_owned_through_the_main_resource_but_through_status():
    old = deployment()
    managedfields.update(DEPLOYMENTS, None, old, "creator")
    new = copy.deepcopy(old)
    new["status"] = {"replicas": 2}
    managedfields.update(DEPLOYMENTS, old, new, "intruder")
    assert managers(new) == [("creator", "Update", "")]
    managedfields.update(DEPLOYMENTS, old, new, "kube-controller-manager", subresource="status")
    assert ("kube-controller-manager", "Update", "status") in managers(new)


def test_empty_managed_fields_in_a_request_reset_them():
    old = deployment()
    managedfields.update(DEPLOYMENTS, None, old, "creator")
    new = copy.deepcopy(old)
    new["metadata"]["managedFields"] = []
    managedfields.update(DEPLOYMENTS, old, new, "resetter")
    assert "managedFields" not in new["metadata"]


def test_apply_creates_with_one_apply_entry_owning_the_configuration():
    created = managedfields.apply(DEPLOYMENTS, None, deployment(), "kubectl")
    assert managers(created) == [("kubectl", "Apply", "")]
    assert fields_of(created, "kubectl", "Apply")["f:spec"]["f:template"]["f:spec"]["f:containers"] == {
        'k:{"name":"web"}': {".": {}, "f:image": {}, "f:name": {}}}


def test_reapplying_the_same_configuration_changes_nothing():
    created = managedfields.apply(DEPLOYMENTS, None, deployment(), "kubectl", now="2024-01-01T00:00:00Z")
    again = managedfields.apply(DEPLOYMENTS, created, deployment(), "kubectl", now="2025-01-01T00:00:00Z")
    assert again == created


def test_apply_conflicts_with_another_managers_value_with_upstreams_message():
    live = managedfields.apply(DEPLOYMENTS, None, deployment(replicas=2), "kubectl")
    scaled = copy.deepcopy(live)
    scaled["spec"]["replicas"] = 4
    managedfields.update(DEPLOYMENTS, live, scaled, "kubectl-client-side-apply")
    with pytest.raises(errors.Conflict) as raised:
        managedfields.apply(DEPLOYMENTS, scaled, deployment(replicas=3), "ci")
    status = raised.value.status()
    assert status["code"] == 409 and status["reason"] == "Conflict"
    assert status["message"] == 'Apply failed with 1 conflict: conflict with "kubectl-client-side-apply" using apps/v1: .spec.replicas'
    assert status["details"] == {"causes": [{"reason": "FieldManagerConflict",
                                             "message": 'conflict with "kubectl-client-side-apply" using apps/v1',
                                             "field": ".spec.replicas"}]}


def test_several_conflicts_are_grouped_by_manager():
    live = managedfields.apply(DEPLOYMENTS, None, deployment(), "first")
    with pytest.raises(errors.Conflict) as raised:
        managedfields.apply(DEPLOYMENTS, live, deployment(replicas=9, image="httpd"), "second")
    assert raised.value.message == ('Apply failed with 2 conflicts: conflicts with "first":\n- .spec.replicas\n'
                                    '- .spec.template.spec.containers[name="web"].image')


def test_same_value_is_shared_ownership_not_a_conflict():
    live = managedfields.apply(DEPLOYMENTS, None, deployment(), "first")
    shared = managedfields.apply(DEPLOYMENTS, live, deployment(), "second")
    assert {m for m, _, _ in managers(shared)} == {"first", "second"}


def test_force_takes_ownership_from_the_other_manager():
    live = managedfields.apply(DEPLOYMENTS, None, deployment(replicas=2), "first")
    forced = managedfields.apply(DEPLOYMENTS, live, deployment(replicas=7), "second", force=True)
    assert forced["spec"]["replicas"] == 7
    assert "f:replicas" not in fields_of(forced, "first", "Apply")["f:spec"]
    assert "f:replicas" in fields_of(forced, "second", "Apply")["f:spec"]


def test_field_omitted_by_its_applier_is_removed_unless_someone_else_owns_it():
    config = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "data": {"a": "1", "b": "2"}}
    live = managedfields.apply(CONFIGMAPS, None, config, "me")
    live = managedfields.apply(CONFIGMAPS, live, dict(config, data={"a": "1", "b": "2", "c": "3"}), "other")
    pruned = managedfields.apply(CONFIGMAPS, live, dict(config, data={"a": "1"}), "me")
    assert pruned["data"] == {"a": "1", "b": "2", "c": "3"}  # "other" applied b and c too
    alone = managedfields.apply(CONFIGMAPS, managedfields.apply(CONFIGMAPS, None, config, "me"),
                                dict(config, data={"a": "1"}), "me")
    assert alone["data"] == {"a": "1"}


def test_kubectl_takes_over_fields_a_client_side_apply_set_to_the_same_values():
    config = deployment(replicas=2)
    live = copy.deepcopy(config)
    live["metadata"]["annotations"] = {managedfields.LAST_APPLIED_ANNOTATION: json.dumps(config)}
    managedfields.update(DEPLOYMENTS, None, live, "kubectl-client-side-apply")
    upgraded = managedfields.apply(DEPLOYMENTS, live, deployment(replicas=3), "kubectl")
    assert upgraded["spec"]["replicas"] == 3
    annotation = json.loads(upgraded["metadata"]["annotations"][managedfields.LAST_APPLIED_ANNOTATION])
    assert annotation["spec"]["replicas"] == 3  # kept in step for a later client-side apply
    with pytest.raises(errors.Conflict):
        managedfields.apply(DEPLOYMENTS, live, deployment(replicas=3), "not-kubectl")


def test_apply_rejects_managed_fields_and_wrong_version():
    with pytest.raises(errors.BadRequest, match="metadata.managedFields must be nil"):
        managedfields.apply(DEPLOYMENTS, None, dict(deployment(), metadata={"name": "web", "managedFields": []}), "m")
    with pytest.raises(errors.BadRequest, match="Incorrect version specified in apply patch"):
        managedfields.apply(DEPLOYMENTS, None, dict(deployment(), apiVersion="apps/v1beta1"), "m")


def test_apply_patch_options_require_a_field_manager():
    with pytest.raises(errors.Invalid) as raised:
        managedfields.validate_patch_options(apply=True, field_manager=None, force="false")
    assert raised.value.message == 'PatchOptions.meta.k8s.io "" is invalid: fieldManager: Required value: is required for apply patch'


def test_create_field_cache_never_mixes_objects_of_different_shape():
    from pyk8s.api import managedfields as mf
    from pyk8s.api.resources import lookup

    configmaps = lookup("", "v1", "configmaps")

    def created(name, labels, data):
        obj = {"apiVersion": "v1", "kind": "ConfigMap",
               "metadata": {"name": name, "namespace": "default", "labels": labels}, "data": data}
        mf.update(configmaps, None, obj, "kubectl")
        return obj["metadata"]["managedFields"][0]["fieldsV1"]

    mf._CREATE_FIELDS.clear()
    first = created("a", {"app": "x"}, {"k": "1"})
    # Same shape, other values: served from the cache, same field set.
    assert created("b", {"app": "y"}, {"k": "2"}) == first
    # Another label key or data key is another shape.
    assert created("c", {"tier": "x"}, {"k": "1"}) != first
    assert "f:other" in created("d", {"app": "x"}, {"other": "1"})["f:data"]
    # A cached result is a copy: changing what a caller got does not change the cache.
    again = created("e", {"app": "x"}, {"k": "1"})
    again["f:data"].clear()
    assert created("f", {"app": "x"}, {"k": "1"}) == first
