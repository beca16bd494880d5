"""Validation rejects what upstream rejects, with upstream's field paths and wording."""

from __future__ import annotations

import base64
import copy

import pytest

from pyk8s.api import errors, resources
from pyk8s.api.defaults import apply_defaults
from pyk8s.api.validation import cron_schedule_error, validate_create, validate_update

SUBDOMAIN_MSG = ("a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', "
                 "and must start and end with an alphanumeric character (e.g. 'example.com', regex used for "
                 "validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')")
LABEL_MSG = ("a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start "
             "and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is "
             "'[a-z0-9]([-a-z0-9]*[a-z0-9])?')")
DNS1035_MSG = ("a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an alphabetic "
               "character, and end with an alphanumeric character (e.g. 'my-name',  or 'abc-123', regex used for "
               "validation is '[a-z]([-a-z0-9]*[a-z0-9])?')")


def _resource(group: str, kind: str):
    return resources.by_kind(group, kind)


def _defaulted(group: str, kind: str, obj: dict) -> dict:
    apply_defaults(_resource(group, kind), obj)
    return obj


def _create_error(group: str, kind: str, obj: dict, default: bool = True) -> errors.Invalid:
    if default:
        _defaulted(group, kind, obj)
    with pytest.raises(errors.Invalid) as caught:
        validate_create(_resource(group, kind), obj)
    return caught.value


def _update_error(group: str, kind: str, new: dict, old: dict) -> errors.Invalid:
    with pytest.raises(errors.Invalid) as caught:
        validate_update(_resource(group, kind), new, old)
    return caught.value


def _messages(error: errors.Invalid) -> list[str]:
    return [f"{c['field']}: {c['message']}" if c.get("field") else c["message"] for c in error.causes]


def _pod(name: str = "web", **spec) -> dict:
    body = {"containers": [{"name": "web", "image": "nginx"}]}
    body.update(spec)
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": "default"}, "spec": body}


def _workload(kind: str, group: str = "apps") -> dict:
    return {"apiVersion": f"{group}/v1", "kind": kind, "metadata": {"name": "web", "namespace": "default"},
            "spec": {"selector": {"matchLabels": {"app": "web"}},
                     "template": {"metadata": {"labels": {"app": "web"}},
                                  "spec": {"containers": [{"name": "web", "image": "nginx:1.25"}]}}}}


# -- metadata ------------------------------------------------------------------

def test_valid_pod_passes():
    validate_create(_resource("", "Pod"), _defaulted("", "Pod", _pod()))


def test_a_spec_seen_valid_still_checks_the_metadata_and_other_specs_beside_it():
    validate_create(_resource("", "Pod"), _defaulted("", "Pod", _pod("first")))
    # The same spec again (now remembered as valid): a bad name is still reported.
    assert _messages(_create_error("", "Pod", _pod("Bad_Name")))[0].startswith("metadata.name: Invalid value")
    # One character more in the spec is another spec: validated in full.
    bad = _pod("third")
    bad["spec"]["containers"][0]["name"] = "Web"
    assert any(m.startswith("spec.containers[0].name") for m in _messages(_create_error("", "Pod", bad)))
    # A spec that failed is never remembered as valid.
    again = _pod("fourth")
    again["spec"]["containers"][0]["name"] = "Web"
    assert any(m.startswith("spec.containers[0].name") for m in _messages(_create_error("", "Pod", again)))


def test_uppercase_pod_name_gets_upstreams_exact_message():
    error = _create_error("", "Pod", _pod("Foo"))
    assert error.message == f'Pod "Foo" is invalid: metadata.name: Invalid value: "Foo": {SUBDOMAIN_MSG}'
    assert error.status()["details"]["causes"][0] == {
        "reason": "FieldValueInvalid", "message": f'Invalid value: "Foo": {SUBDOMAIN_MSG}', "field": "metadata.name"}


def test_missing_name_is_required():
    pod = _pod()
    del pod["metadata"]["name"]
    assert _messages(_create_error("", "Pod", pod)) == ["metadata.name: Required value: name or generateName is required"]


def test_namespace_names_are_dns_labels():
    error = _create_error("", "Namespace", {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "a.b"}})
    assert _messages(error) == ['metadata.name: Invalid value: "a.b": must not contain dots']
    error = _create_error("", "Namespace", {"metadata": {"name": "Team"}})
    assert _messages(error) == [f'metadata.name: Invalid value: "Team": {LABEL_MSG}']


def test_service_names_are_dns1035_labels():
    service = {"metadata": {"name": "1web", "namespace": "default"}, "spec": {"ports": [{"port": 80}]}}
    assert _messages(_create_error("", "Service", service)) == [f'metadata.name: Invalid value: "1web": {DNS1035_MSG}']


def test_persistent_volume_names_are_path_segments():
    pv = {"metadata": {"name": "a/b"}, "spec": {"capacity": {"storage": "1Gi"}, "accessModes": ["ReadWriteOnce"],
                                                  "hostPath": {"path": "/d"}}}
    assert _messages(_create_error("", "PersistentVolume", pv)) == ["metadata.name: Invalid value: \"a/b\": may not contain '/'"]


def test_cluster_scoped_kinds_reject_a_namespace():
    node = {"metadata": {"name": "n1", "namespace": "default"}}
    assert _messages(_create_error("", "Node", node)) == ["metadata.namespace: Forbidden: not allowed on this type"]


def test_bad_label_key_and_value_are_both_reported():
    pod = _pod()
    pod["metadata"]["labels"] = {"-bad": "ok", "good": "not ok!"}
    messages = _messages(_create_error("", "Pod", pod))
    assert messages[0] == (
        'metadata.labels: Invalid value: "-bad": name part must consist of alphanumeric characters, \'-\', \'_\' or '
        "'.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', "
        "regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')")
    assert messages[1].startswith('metadata.labels: Invalid value: "not ok!": a valid label must be an empty string')
    assert len(messages) == 2


def test_annotations_over_256_kib_are_too_long():
    pod = _pod()
    pod["metadata"]["annotations"] = {"big": "x" * (256 * 1024)}
    assert _messages(_create_error("", "Pod", pod)) == ["metadata.annotations: Too long: must have at most 262144 bytes"]


def test_generate_name_prefix_may_end_with_a_dash():
    pod = _pod()
    pod["metadata"] = {"generateName": "web-", "name": "web-x7k2p", "namespace": "default"}
    validate_create(_resource("", "Pod"), _defaulted("", "Pod", pod))


# -- pods ----------------------------------------------------------------------

def test_pod_without_containers():
    pod = _pod()
    pod["spec"]["containers"] = []
    assert _messages(_create_error("", "Pod", pod)) == ["spec.containers: Required value"]


def test_container_name_image_and_duplicates():
    pod = _pod(containers=[{"name": "web", "image": "nginx"}, {"name": "web"}, {"name": "Side", "image": "x"}])
    assert _messages(_create_error("", "Pod", pod)) == [
        'spec.containers[1].name: Duplicate value: "web"',
        "spec.containers[1].image: Required value",
        f'spec.containers[2].name: Invalid value: "Side": {LABEL_MSG}',
    ]


def test_container_port_range_and_protocol():
    pod = _pod()
    pod["spec"]["containers"][0]["ports"] = [{"containerPort": 70000, "protocol": "HTTP"}]
    assert _messages(_create_error("", "Pod", pod)) == [
        "spec.containers[0].ports[0].containerPort: Invalid value: 70000: must be between 1 and 65535, inclusive",
        'spec.containers[0].ports[0].protocol: Unsupported value: "HTTP": supported values: "SCTP", "TCP", "UDP"',
    ]


def test_restart_and_dns_policies_must_be_supported():
    pod = _pod(restartPolicy="Sometimes", dnsPolicy="Google")
    assert _messages(_create_error("", "Pod", pod)) == [
        'spec.restartPolicy: Unsupported value: "Sometimes": supported values: "Always", "OnFailure", "Never"',
        'spec.dnsPolicy: Unsupported value: "Google": supported values: "ClusterFirst", "ClusterFirstWithHostNet", "Default", "None"',
    ]


def test_requests_above_limits_are_rejected():
    pod = _pod()
    pod["spec"]["containers"][0]["resources"] = {"limits": {"cpu": "1"}, "requests": {"cpu": "2"}}
    assert _messages(_create_error("", "Pod", pod)) == [
        'spec.containers[0].resources.requests: Invalid value: "2": must be less than or equal to cpu limit of 1']


def test_unparseable_quantity_is_reported_at_its_field():
    pod = _pod()
    pod["spec"]["containers"][0]["resources"] = {"limits": {"memory": "lots"}}
    messages = _messages(_create_error("", "Pod", pod))
    assert messages[0].startswith('spec.containers[0].resources.limits[memory]: Invalid value: "lots": quantities must match')


def test_volume_names_unique_and_mounts_must_reference_volumes():
    pod = _pod(volumes=[{"name": "data"}, {"name": "data"}])
    pod["spec"]["containers"][0]["volumeMounts"] = [{"name": "missing", "mountPath": "/m"}]
    assert _messages(_create_error("", "Pod", pod)) == [
        'spec.volumes[1].name: Duplicate value: "data"',
        'spec.containers[0].volumeMounts[0].name: Not found: "missing"',
    ]


def test_pod_update_may_change_image_but_not_other_spec_fields():
    old = _defaulted("", "Pod", _pod())
    new = copy.deepcopy(old)
    new["spec"]["containers"][0]["image"] = "nginx:1.26"
    validate_update(_resource("", "Pod"), new, old)
    new["spec"]["containers"][0]["ports"] = [{"containerPort": 80, "protocol": "TCP"}]
    error = _update_error("", "Pod", new, old)
    assert len(error.causes) == 1
    assert error.causes[0]["field"] == "spec"
    assert error.causes[0]["message"].startswith(
        "Forbidden: pod updates may not change fields other than `spec.containers[*].image`,"
        "`spec.initContainers[*].image`,`spec.activeDeadlineSeconds`,`spec.tolerations` (only additions to existing "
        "tolerations),`spec.terminationGracePeriodSeconds` (allow it to be set to 1 if it was previously negative)\n")


def test_pod_update_may_add_tolerations_but_not_remove_them():
    old = _defaulted("", "Pod", _pod())
    added = copy.deepcopy(old)
    added["spec"]["tolerations"].append({"key": "k", "operator": "Exists", "effect": "NoSchedule"})
    validate_update(_resource("", "Pod"), added, old)
    removed = copy.deepcopy(old)
    removed["spec"]["tolerations"].pop()
    assert _update_error("", "Pod", removed, old).causes[0]["field"] == "spec"


def test_pod_name_and_uid_are_immutable_but_omitted_uid_is_fine():
    old = _defaulted("", "Pod", _pod())
    old["metadata"]["uid"] = "u-1"
    omitted = copy.deepcopy(old)
    del omitted["metadata"]["uid"]
    validate_update(_resource("", "Pod"), omitted, old)
    changed = copy.deepcopy(old)
    changed["metadata"]["uid"] = "u-2"
    assert _messages(_update_error("", "Pod", changed, old)) == ['metadata.uid: Invalid value: "u-2": field is immutable']


# -- workloads -----------------------------------------------------------------

def test_valid_workloads_pass():
    for kind in ("Deployment", "ReplicaSet", "DaemonSet", "StatefulSet"):
        validate_create(_resource("apps", kind), _defaulted("apps", kind, _workload(kind)))


def test_selector_not_matching_template_labels_gets_upstreams_message():
    deployment = _workload("Deployment")
    deployment["spec"]["template"]["metadata"]["labels"] = {"tier": "nginx", "app": "other"}
    error = _create_error("apps", "Deployment", deployment)
    assert error.message == ('Deployment.apps "web" is invalid: spec.template.metadata.labels: Invalid value: '
                             'map[string]string{"app":"other", "tier":"nginx"}: `selector` does not match template `labels`')


def test_missing_and_empty_selectors():
    deployment = _workload("Deployment")
    del deployment["spec"]["selector"]
    assert _messages(_create_error("apps", "Deployment", deployment)) == ["spec.selector: Required value"]
    daemonset = _workload("DaemonSet")
    daemonset["spec"]["selector"] = {}
    assert _messages(_create_error("apps", "DaemonSet", daemonset)) == [
        "spec.selector: Invalid value: {}: empty selector is invalid for daemonset"]


def test_negative_replicas_and_non_always_restart_policy():
    replicaset = _workload("ReplicaSet")
    replicaset["spec"]["replicas"] = -1
    replicaset["spec"]["template"]["spec"]["restartPolicy"] = "Never"
    assert _messages(_create_error("apps", "ReplicaSet", replicaset)) == [
        "spec.replicas: Invalid value: -1: must be greater than or equal to 0",
        'spec.template.spec.restartPolicy: Unsupported value: "Never": supported values: "Always"',
    ]


def test_match_expressions_select_template_labels():
    deployment = _workload("Deployment")
    deployment["spec"]["selector"] = {"matchExpressions": [{"key": "app", "operator": "In", "values": ["web"]}]}
    validate_create(_resource("apps", "Deployment"), _defaulted("apps", "Deployment", deployment))
    deployment["spec"]["selector"]["matchExpressions"][0]["values"] = []
    assert "spec.selector.matchExpressions[0].values: Required value: must be specified when `operator` is 'In' or 'NotIn'" \
        in _messages(_create_error("apps", "Deployment", deployment))


def test_deployment_selector_is_immutable():
    old = _defaulted("apps", "Deployment", _workload("Deployment"))
    new = copy.deepcopy(old)
    new["spec"]["selector"] = {"matchLabels": {"app": "web2"}}
    new["spec"]["template"]["metadata"]["labels"] = {"app": "web2"}
    assert _messages(_update_error("apps", "Deployment", new, old)) == [
        'spec.selector: Invalid value: v1.LabelSelector{MatchLabels:map[string]string{"app":"web2"}, '
        'MatchExpressions:[]v1.LabelSelectorRequirement(nil)}: field is immutable']


def test_deployment_scale_and_image_updates_are_allowed():
    old = _defaulted("apps", "Deployment", _workload("Deployment"))
    new = copy.deepcopy(old)
    new["spec"]["replicas"] = 5
    new["spec"]["template"]["spec"]["containers"][0]["image"] = "nginx:1.26"
    validate_update(_resource("apps", "Deployment"), new, old)


def test_rolling_update_may_not_have_zero_surge_and_zero_unavailable():
    deployment = _workload("Deployment")
    deployment["spec"]["strategy"] = {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 0, "maxUnavailable": "0%"}}
    assert _messages(_create_error("apps", "Deployment", deployment)) == [
        'spec.strategy.rollingUpdate.maxUnavailable: Invalid value: "0%": may not be 0 when `maxSurge` is 0']


def test_statefulset_may_only_update_allowed_fields():
    old = _defaulted("apps", "StatefulSet", _workload("StatefulSet"))
    new = copy.deepcopy(old)
    new["spec"]["podManagementPolicy"] = "Parallel"
    messages = _messages(_update_error("apps", "StatefulSet", new, old))
    assert messages == ["spec: Forbidden: updates to statefulset spec for fields other than 'replicas', 'ordinals', "
                        "'template', 'updateStrategy', 'revisionHistoryLimit', 'persistentVolumeClaimRetentionPolicy' "
                        "and 'minReadySeconds' are forbidden"]


def test_replication_controller_selector_must_match_template():
    rc = _workload("ReplicationController", group="")
    rc["apiVersion"] = "v1"
    rc["spec"]["selector"] = {"app": "other"}
    assert _messages(_create_error("", "ReplicationController", rc)) == [
        'spec.template.metadata.labels: Invalid value: map[string]string{"app":"web"}: `selector` does not match template `labels`']


# -- batch ---------------------------------------------------------------------

def _job(restart_policy: str = "Never") -> dict:
    return {"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "pi", "namespace": "default", "uid": "u-1"},
            "spec": {"template": {"spec": {"restartPolicy": restart_policy,
                                           "containers": [{"name": "pi", "image": "perl"}]}}}}


def test_job_restart_policy_must_be_on_failure_or_never():
    validate_create(_resource("batch", "Job"), _defaulted("batch", "Job", _job()))
    assert _messages(_create_error("batch", "Job", _job("Always"))) == [
        'spec.template.spec.restartPolicy: Unsupported value: "Always": supported values: "OnFailure", "Never"']


def test_job_selector_and_template_are_immutable():
    old = _defaulted("batch", "Job", _job())
    new = copy.deepcopy(old)
    new["spec"]["template"]["spec"]["containers"][0]["image"] = "perl:5"
    messages = _messages(_update_error("batch", "Job", new, old))
    assert len(messages) == 1 and messages[0].startswith("spec.template: Invalid value: ")
    assert messages[0].endswith(": field is immutable")


def test_job_negative_backoff_limit():
    job = _job()
    job["spec"]["backoffLimit"] = -1
    assert _messages(_create_error("batch", "Job", job)) == [
        "spec.backoffLimit: Invalid value: -1: must be greater than or equal to 0"]


def _cronjob(schedule: str | None) -> dict:
    spec = {"jobTemplate": {"spec": {"template": {"spec": {"restartPolicy": "OnFailure",
                                                           "containers": [{"name": "c", "image": "busybox"}]}}}}}
    if schedule is not None:
        spec["schedule"] = schedule
    return {"apiVersion": "batch/v1", "kind": "CronJob", "metadata": {"name": "tick", "namespace": "default"}, "spec": spec}


def test_cronjob_schedule_required_and_parsed():
    validate_create(_resource("batch", "CronJob"), _defaulted("batch", "CronJob", _cronjob("*/5 * * * 1-5")))
    assert _messages(_create_error("batch", "CronJob", _cronjob(None))) == ["spec.schedule: Required value"]
    assert _messages(_create_error("batch", "CronJob", _cronjob("every minute"))) == [
        'spec.schedule: Invalid value: "every minute": expected exactly 5 fields, found 2: [every minute]']


@pytest.mark.parametrize("schedule, error", [
    ("0 0 * * *", None), ("@hourly", None), ("@every 1h30m", None), ("0 9 * jan-mar mon", None),
    ("60 * * * *", "end of range (60) above maximum (59): 60"),
    ("* * 0 * *", "beginning of range (0) below minimum (1): 0"),
    ("*/0 * * * *", "step of range should be a positive number: */0"),
    ("@sometimes", "unrecognized descriptor: @sometimes"),
    ("x * * * *", 'failed to parse int from x: strconv.Atoi: parsing "x": invalid syntax'),
])
def test_cron_schedule_errors_follow_robfig_cron(schedule, error):
    assert cron_schedule_error(schedule) == error


def test_cronjob_names_are_limited_to_52_characters():
    cronjob = _cronjob("* * * * *")
    cronjob["metadata"]["name"] = "a" * 53
    assert _messages(_create_error("batch", "CronJob", cronjob)) == [
        f'metadata.name: Invalid value: "{"a" * 53}": must be no more than 52 characters']


# -- services ------------------------------------------------------------------

def _service(**spec) -> dict:
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web", "namespace": "default"},
            "spec": {"selector": {"app": "web"}, **spec}}


def test_service_ports_required_unless_headless_or_external_name():
    assert _messages(_create_error("", "Service", _service())) == ["spec.ports: Required value"]
    validate_create(_resource("", "Service"), _defaulted("", "Service", _service(clusterIP="None")))
    validate_create(_resource("", "Service"), _defaulted("", "Service", _service(type="ExternalName", externalName="db.example.com")))


def test_multiple_service_ports_need_unique_names():
    service = _service(ports=[{"name": "http", "port": 80}, {"port": 443}, {"name": "http", "port": 8080}])
    assert _messages(_create_error("", "Service", service)) == [
        "spec.ports[1].name: Required value", 'spec.ports[2].name: Duplicate value: "http"']


def test_service_port_range_type_and_node_port_range():
    # targetPort defaults to port, so upstream reports both.
    assert _messages(_create_error("", "Service", _service(ports=[{"port": 0}]))) == [
        "spec.ports[0].port: Invalid value: 0: must be between 1 and 65535, inclusive",
        "spec.ports[0].targetPort: Invalid value: 0: must be between 1 and 65535, inclusive"]
    assert _messages(_create_error("", "Service", _service(type="Balanced", ports=[{"port": 80}]))) == [
        'spec.type: Unsupported value: "Balanced": supported values: "ClusterIP", "ExternalName", "LoadBalancer", "NodePort"']
    node_port = _service(type="NodePort", ports=[{"port": 80, "nodePort": 80}])
    assert _messages(_create_error("", "Service", node_port)) == [
        "spec.ports[0].nodePort: Invalid value: 80: provided port is not in the valid range. The range of valid ports is 30000-32767"]
    cluster_ip = _service(ports=[{"port": 80, "nodePort": 30080}])
    assert _messages(_create_error("", "Service", cluster_ip)) == [
        "spec.ports[0].nodePort: Forbidden: may not be used when `type` is 'ClusterIP'"]


def test_service_cluster_ip_may_not_change():
    old = _defaulted("", "Service", _service(ports=[{"port": 80}], clusterIP="10.43.0.5", clusterIPs=["10.43.0.5"]))
    new = copy.deepcopy(old)
    new["spec"]["clusterIP"] = "10.43.0.6"
    new["spec"]["clusterIPs"] = ["10.43.0.6"]
    assert _messages(_update_error("", "Service", new, old)) == [
        'spec.clusterIPs[0]: Invalid value: []string{"10.43.0.6"}: may not change once set']


# -- config --------------------------------------------------------------------

def test_config_map_keys_must_be_valid():
    config_map = {"metadata": {"name": "cfg", "namespace": "default"}, "data": {"bad key": "v", "ok.key": "v"}}
    assert _messages(_create_error("", "ConfigMap", config_map)) == [
        "data[bad key]: Invalid value: \"bad key\": a valid config key must consist of alphanumeric characters, '-', "
        "'_' or '.' (e.g. 'key.name',  or 'KEY_NAME',  or 'key-name', regex used for validation is '[-._a-zA-Z0-9]+')"]


def test_config_map_over_one_mebibyte_is_too_long():
    config_map = {"metadata": {"name": "cfg", "namespace": "default"}, "data": {"big": "x" * (1024 * 1024 + 1)}}
    assert _messages(_create_error("", "ConfigMap", config_map)) == ["Too long: must have at most 1048576 bytes"]


def test_immutable_config_map_rejects_data_changes():
    old = {"metadata": {"name": "cfg", "namespace": "default"}, "data": {"a": "1"}, "immutable": True}
    new = copy.deepcopy(old)
    new["data"]["a"] = "2"
    assert _messages(_update_error("", "ConfigMap", new, old)) == [
        "data: Forbidden: field is immutable when `immutable` is set"]


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def test_secret_over_one_mebibyte_is_too_long():
    secret = {"metadata": {"name": "s", "namespace": "default"},
              "data": {"big": base64.b64encode(b"x" * (1024 * 1024 + 1)).decode()}}
    assert _messages(_create_error("", "Secret", secret)) == ["data: Too long: must have at most 1048576 bytes"]


def test_immutable_secret_rejects_data_changes_and_cannot_become_mutable():
    old = {"metadata": {"name": "s", "namespace": "default"}, "data": {"a": _b64("1")}, "immutable": True}
    new = copy.deepcopy(old)
    new["data"]["a"] = _b64("2")
    new["immutable"] = False
    assert _messages(_update_error("", "Secret", new, old)) == [
        "immutable: Forbidden: field is immutable when `immutable` is set",
        "data: Forbidden: field is immutable when `immutable` is set"]


def test_tls_secret_needs_cert_and_key():
    secret = {"metadata": {"name": "tls", "namespace": "default"}, "type": "kubernetes.io/tls",
              "data": {"tls.crt": _b64("cert")}}
    assert _messages(_create_error("", "Secret", secret)) == ["data[tls.key]: Required value"]


def test_secret_type_is_immutable_and_immutable_secret_keeps_data():
    old = _defaulted("", "Secret", {"metadata": {"name": "s", "namespace": "default"}, "data": {"a": _b64("1")},
                                    "immutable": True})
    new = copy.deepcopy(old)
    new["type"] = "kubernetes.io/basic-auth"
    new["data"] = {"username": _b64("u")}
    assert _messages(_update_error("", "Secret", new, old)) == [
        'type: Invalid value: "kubernetes.io/basic-auth": field is immutable',
        "data: Forbidden: field is immutable when `immutable` is set",
    ]


def test_secret_data_must_be_base64():
    secret = {"metadata": {"name": "s", "namespace": "default"}, "data": {"a": "not base64!"}}
    assert _messages(_create_error("", "Secret", secret))[0].startswith("data[a]: Invalid value:")


# -- storage ---------------------------------------------------------------------

def _pvc() -> dict:
    return {"metadata": {"name": "data", "namespace": "default"},
            "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}}


def test_pvc_needs_access_modes_and_storage():
    validate_create(_resource("", "PersistentVolumeClaim"), _defaulted("", "PersistentVolumeClaim", _pvc()))
    pvc = _pvc()
    pvc["spec"] = {}
    assert _messages(_create_error("", "PersistentVolumeClaim", pvc)) == [
        "spec.accessModes: Required value: at least 1 access mode is required", "spec.resources[storage]: Required value"]


def test_pvc_spec_is_immutable_except_storage_growth():
    old = _defaulted("", "PersistentVolumeClaim", _pvc())
    grown = copy.deepcopy(old)
    grown["spec"]["resources"]["requests"]["storage"] = "2Gi"
    validate_update(_resource("", "PersistentVolumeClaim"), grown, old)
    changed = copy.deepcopy(old)
    changed["spec"]["accessModes"] = ["ReadWriteMany"]
    error = _update_error("", "PersistentVolumeClaim", changed, old)
    assert error.causes[0]["field"] == "spec" and error.causes[0]["message"].startswith("Forbidden: spec is immutable")


def test_pvc_class_may_be_set_once_when_it_had_none():
    """upstream validateStorageClassUpgradeFromNil (retroactive default StorageClass)."""
    old = _defaulted("", "PersistentVolumeClaim", _pvc())
    assert "storageClassName" not in old["spec"]
    given = copy.deepcopy(old)
    given["spec"]["storageClassName"] = "fast"
    validate_update(_resource("", "PersistentVolumeClaim"), given, old)
    changed = copy.deepcopy(given)
    changed["spec"]["storageClassName"] = "slow"
    assert _update_error("", "PersistentVolumeClaim", changed, given).causes[0]["field"] == "spec"
    chosen_none = copy.deepcopy(old)
    chosen_none["spec"]["storageClassName"] = ""
    assert _update_error("", "PersistentVolumeClaim", given, chosen_none).causes[0]["field"] == "spec"
    annotated = copy.deepcopy(old)
    annotated["metadata"]["annotations"] = {"volume.beta.kubernetes.io/storage-class": "slow"}
    given_other = copy.deepcopy(annotated)
    given_other["spec"]["storageClassName"] = "fast"
    assert _update_error("", "PersistentVolumeClaim", given_other, annotated).causes[0]["field"] == "spec"
    given_same = copy.deepcopy(annotated)
    given_same["spec"]["storageClassName"] = "slow"
    validate_update(_resource("", "PersistentVolumeClaim"), given_same, annotated)


def test_namespace_finalizers_must_be_standard_or_qualified():
    namespace = {"metadata": {"name": "ns"}, "spec": {"finalizers": ["custom"]}}
    assert _messages(_create_error("", "Namespace", namespace)) == [
        'spec.finalizers: Invalid value: "custom": name is neither a standard finalizer name nor is it fully qualified']


def test_job_without_uid_yet_needs_no_selector_but_manual_selector_does():
    job = _job()
    del job["metadata"]["uid"]
    validate_create(_resource("batch", "Job"), _defaulted("batch", "Job", job))
    manual = _job()
    del manual["metadata"]["uid"]
    manual["spec"]["manualSelector"] = True
    assert _messages(_create_error("batch", "Job", manual)) == ["spec.selector: Required value"]
