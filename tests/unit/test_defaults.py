"""Defaulting matches upstream's SetDefaults_* and the defaulting admission plugins."""

from __future__ import annotations

import base64
import copy

import pytest

from pyk8s.api import resources
from pyk8s.api.defaults import apply_defaults, image_pull_policy_for
from pyk8s.api.quantity import canonical_quantity, parse_quantity


def _defaulted(group: str, kind: str, obj: dict) -> dict:
    apply_defaults(resources.by_kind(group, kind), obj)
    return obj


def _pod(**spec) -> dict:
    body = {"containers": [{"name": "web", "image": "nginx"}]}
    body.update(spec)
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "namespace": "default"}, "spec": body}


def _deployment() -> dict:
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "d", "namespace": "default"},
            "spec": {"selector": {"matchLabels": {"app": "d"}},
                     "template": {"metadata": {"labels": {"app": "d"}},
                                  "spec": {"containers": [{"name": "web", "image": "nginx:1.25"}]}}}}


# -- quantities ----------------------------------------------------------------

@pytest.mark.parametrize("text, canonical", [
    ("0.5", "500m"), ("1000m", "1"), ("1Gi", "1Gi"), ("1.5Gi", "1536Mi"), ("1000", "1k"),
    ("1500", "1500"), ("1e3", "1e3"), ("100m", "100m"), (2, "2"), ("512", "512"), ("0.1Gi", "107374182400m"),
    ("-0.5", "-500m"), ("0", "0"),
])
def test_quantity_prints_in_upstreams_canonical_form(text, canonical):
    assert canonical_quantity(text) == canonical


def test_quantity_comparison_is_exact_across_suffixes():
    assert parse_quantity("1Gi") == parse_quantity("1073741824")
    assert parse_quantity("500m") == parse_quantity("0.5")
    assert parse_quantity("1Ki") > parse_quantity("1k")


@pytest.mark.parametrize("bad", ["abc", "1Gb", "", "1 Gi", "--1", "."])
def test_quantity_with_bad_syntax_raises_upstreams_message(bad):
    with pytest.raises(ValueError, match="quantities must match the regular expression"):
        parse_quantity(bad)


def test_quantity_with_unknown_suffix_is_a_suffix_error():
    with pytest.raises(ValueError, match="unable to parse quantity's suffix"):
        parse_quantity("1Mii")


# -- pods ----------------------------------------------------------------------

def test_pod_gets_pod_spec_and_admission_defaults():
    spec = _defaulted("", "Pod", _pod())["spec"]
    assert spec["restartPolicy"] == "Always"
    assert spec["dnsPolicy"] == "ClusterFirst"
    assert spec["terminationGracePeriodSeconds"] == 30
    assert spec["schedulerName"] == "default-scheduler"
    assert spec["securityContext"] == {}
    assert spec["serviceAccountName"] == "default" and spec["serviceAccount"] == "default"
    assert spec["enableServiceLinks"] is True
    assert spec["priority"] == 0
    assert spec["preemptionPolicy"] == "PreemptLowerPriority"
    assert spec["tolerations"] == [
        {"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300},
        {"key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300},
    ]


def test_container_defaults_fill_pull_policy_message_path_and_resources():
    container = _defaulted("", "Pod", _pod())["spec"]["containers"][0]
    assert container == {"name": "web", "image": "nginx", "imagePullPolicy": "Always",
                         "terminationMessagePath": "/dev/termination-log",
                         "terminationMessagePolicy": "File", "resources": {}}


@pytest.mark.parametrize("image, policy", [
    ("nginx", "Always"), ("nginx:latest", "Always"), ("nginx:1.25", "IfNotPresent"),
    ("localhost:5000/app", "Always"), ("localhost:5000/app:v1", "IfNotPresent"),
    ("nginx@sha256:" + "a" * 64, "IfNotPresent"),
])
def test_image_pull_policy_follows_the_tag(image, policy):
    assert image_pull_policy_for(image) == policy


def test_explicit_values_are_kept():
    pod = _pod(restartPolicy="Never", terminationGracePeriodSeconds=0, serviceAccountName="robot",
               enableServiceLinks=False)
    pod["spec"]["containers"][0]["imagePullPolicy"] = "Never"
    spec = _defaulted("", "Pod", pod)["spec"]
    assert spec["restartPolicy"] == "Never"
    assert spec["terminationGracePeriodSeconds"] == 0
    assert spec["serviceAccountName"] == "robot" and spec["serviceAccount"] == "robot"
    assert spec["enableServiceLinks"] is False
    assert spec["containers"][0]["imagePullPolicy"] == "Never"


def test_defaulting_twice_changes_nothing():
    once = _defaulted("", "Pod", _pod(volumes=[{"name": "v"}]))
    twice = _defaulted("", "Pod", copy.deepcopy(once))
    assert once == twice
    deployment = _defaulted("apps", "Deployment", _deployment())
    assert _defaulted("apps", "Deployment", copy.deepcopy(deployment)) == deployment


def test_existing_not_ready_toleration_is_not_duplicated():
    pod = _pod(tolerations=[{"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoExecute"}])
    keys = [t["key"] for t in _defaulted("", "Pod", pod)["spec"]["tolerations"]]
    assert keys == ["node.kubernetes.io/not-ready", "node.kubernetes.io/unreachable"]


def test_pod_requests_default_to_limits_and_quantities_are_canonical():
    pod = _pod()
    pod["spec"]["containers"][0]["resources"] = {"limits": {"cpu": "0.5", "memory": "128Mi"}, "requests": {"cpu": "0.1"}}
    resources_ = _defaulted("", "Pod", pod)["spec"]["containers"][0]["resources"]
    assert resources_ == {"limits": {"cpu": "500m", "memory": "128Mi"}, "requests": {"cpu": "100m", "memory": "128Mi"}}


def test_ports_probes_and_volumes_get_their_defaults():
    pod = _pod(volumes=[{"name": "scratch"}, {"name": "cfg", "configMap": {"name": "c"}},
                        {"name": "s", "secret": {"secretName": "s"}}, {"name": "h", "hostPath": {"path": "/x"}}])
    container = pod["spec"]["containers"][0]
    container["ports"] = [{"containerPort": 80}]
    container["livenessProbe"] = {"httpGet": {"port": 80}}
    spec = _defaulted("", "Pod", pod)["spec"]
    container = spec["containers"][0]
    assert container["ports"] == [{"containerPort": 80, "protocol": "TCP"}]
    assert container["livenessProbe"] == {"httpGet": {"port": 80, "path": "/", "scheme": "HTTP"}, "timeoutSeconds": 1,
                                          "periodSeconds": 10, "successThreshold": 1, "failureThreshold": 3}
    assert spec["volumes"] == [
        {"name": "scratch", "emptyDir": {}},
        {"name": "cfg", "configMap": {"name": "c", "defaultMode": 420}},
        {"name": "s", "secret": {"secretName": "s", "defaultMode": 420}},
        {"name": "h", "hostPath": {"path": "/x", "type": ""}},
    ]


def test_init_containers_get_container_defaults():
    spec = _defaulted("", "Pod", _pod(initContainers=[{"name": "init", "image": "busybox:1.36"}]))["spec"]
    assert spec["initContainers"][0]["imagePullPolicy"] == "IfNotPresent"
    assert spec["initContainers"][0]["terminationMessagePolicy"] == "File"


# -- workloads -----------------------------------------------------------------

def test_deployment_defaults_and_template_gets_pod_spec_but_not_admission_defaults():
    deployment = _defaulted("apps", "Deployment", _deployment())
    spec = deployment["spec"]
    assert spec["replicas"] == 1
    assert spec["strategy"] == {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": "25%", "maxSurge": "25%"}}
    assert spec["revisionHistoryLimit"] == 10
    assert spec["progressDeadlineSeconds"] == 600
    template_spec = spec["template"]["spec"]
    assert template_spec["restartPolicy"] == "Always"
    assert template_spec["containers"][0]["imagePullPolicy"] == "IfNotPresent"
    for admission_only in ("serviceAccountName", "tolerations", "priority", "enableServiceLinks"):
        assert admission_only not in template_spec


def test_recreate_deployment_gets_no_rolling_update_parameters():
    deployment = _deployment()
    deployment["spec"]["strategy"] = {"type": "Recreate"}
    assert _defaulted("apps", "Deployment", deployment)["spec"]["strategy"] == {"type": "Recreate"}


def test_replicaset_daemonset_and_statefulset_defaults():
    rs = _deployment() | {"kind": "ReplicaSet"}
    assert _defaulted("apps", "ReplicaSet", rs)["spec"]["replicas"] == 1
    ds_spec = _defaulted("apps", "DaemonSet", _deployment() | {"kind": "DaemonSet"})["spec"]
    assert ds_spec["updateStrategy"] == {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 1, "maxSurge": 0}}
    assert ds_spec["revisionHistoryLimit"] == 10
    sts = _deployment() | {"kind": "StatefulSet"}
    sts["spec"]["volumeClaimTemplates"] = [{"metadata": {"name": "data"}, "spec": {"accessModes": ["ReadWriteOnce"]}}]
    sts_spec = _defaulted("apps", "StatefulSet", sts)["spec"]
    assert sts_spec["replicas"] == 1
    assert sts_spec["podManagementPolicy"] == "OrderedReady"
    assert sts_spec["updateStrategy"] == {"type": "RollingUpdate", "rollingUpdate": {"partition": 0}}
    assert sts_spec["revisionHistoryLimit"] == 10
    assert sts_spec["persistentVolumeClaimRetentionPolicy"] == {"whenDeleted": "Retain", "whenScaled": "Retain"}
    assert sts_spec["volumeClaimTemplates"][0]["spec"]["volumeMode"] == "Filesystem"


def test_replication_controller_takes_selector_and_labels_from_template():
    rc = {"apiVersion": "v1", "kind": "ReplicationController", "metadata": {"name": "rc", "namespace": "default"},
          "spec": {"template": {"metadata": {"labels": {"app": "x"}},
                                "spec": {"containers": [{"name": "c", "image": "nginx"}]}}}}
    rc = _defaulted("", "ReplicationController", rc)
    assert rc["spec"]["selector"] == {"app": "x"}
    assert rc["metadata"]["labels"] == {"app": "x"}
    assert rc["spec"]["replicas"] == 1


def _job(uid: str | None = None) -> dict:
    metadata = {"name": "pi", "namespace": "default"}
    if uid:
        metadata["uid"] = uid
    return {"apiVersion": "batch/v1", "kind": "Job", "metadata": metadata,
            "spec": {"template": {"spec": {"restartPolicy": "Never", "containers": [{"name": "pi", "image": "perl"}]}}}}


def test_job_defaults():
    spec = _defaulted("batch", "Job", _job())["spec"]
    assert (spec["completions"], spec["parallelism"], spec["backoffLimit"]) == (1, 1, 6)
    assert spec["completionMode"] == "NonIndexed"
    assert spec["suspend"] is False
    assert spec["podReplacementPolicy"] == "TerminatingOrFailed"
    assert "manualSelector" not in spec
    assert spec["template"]["spec"]["restartPolicy"] == "Never"


def test_job_with_only_parallelism_keeps_completions_unset():
    job = _job()
    job["spec"]["parallelism"] = 3
    spec = _defaulted("batch", "Job", job)["spec"]
    assert spec["parallelism"] == 3 and "completions" not in spec


def test_job_with_uid_gets_generated_selector_and_template_labels():
    job = _defaulted("batch", "Job", _job(uid="u-1"))
    assert job["spec"]["selector"] == {"matchLabels": {"batch.kubernetes.io/controller-uid": "u-1"}}
    labels = job["spec"]["template"]["metadata"]["labels"]
    assert labels == {"batch.kubernetes.io/controller-uid": "u-1", "batch.kubernetes.io/job-name": "pi",
                      "controller-uid": "u-1", "job-name": "pi"}
    assert job["metadata"]["labels"] == labels


def test_cronjob_defaults_and_job_template_pod_spec():
    cronjob = {"apiVersion": "batch/v1", "kind": "CronJob", "metadata": {"name": "c", "namespace": "default"},
               "spec": {"schedule": "* * * * *", "jobTemplate": {"spec": {"template": {"spec": {
                   "restartPolicy": "OnFailure", "containers": [{"name": "c", "image": "busybox"}]}}}}}}
    spec = _defaulted("batch", "CronJob", cronjob)["spec"]
    assert spec["concurrencyPolicy"] == "Allow"
    assert spec["suspend"] is False
    assert spec["successfulJobsHistoryLimit"] == 3
    assert spec["failedJobsHistoryLimit"] == 1
    assert spec["jobTemplate"]["spec"]["template"]["spec"]["dnsPolicy"] == "ClusterFirst"
    assert "backoffLimit" not in spec["jobTemplate"]["spec"]


# -- core objects --------------------------------------------------------------

def test_service_defaults():
    service = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "s", "namespace": "default"},
               "spec": {"selector": {"app": "x"}, "ports": [{"port": 80}, {"port": 8443, "targetPort": "https"}]}}
    spec = _defaulted("", "Service", service)["spec"]
    assert spec["type"] == "ClusterIP"
    assert spec["sessionAffinity"] == "None"
    assert spec["ports"] == [{"port": 80, "protocol": "TCP", "targetPort": 80},
                             {"port": 8443, "targetPort": "https", "protocol": "TCP"}]
    assert spec["internalTrafficPolicy"] == "Cluster"
    assert spec["ipFamilyPolicy"] == "SingleStack" and spec["ipFamilies"] == ["IPv4"]
    assert "externalTrafficPolicy" not in spec


def test_nodeport_service_gets_external_traffic_policy_and_external_name_gets_no_ip_fields():
    node_port = {"metadata": {"name": "s"}, "spec": {"type": "NodePort", "ports": [{"port": 80}]}}
    assert _defaulted("", "Service", node_port)["spec"]["externalTrafficPolicy"] == "Cluster"
    external = {"metadata": {"name": "s"}, "spec": {"type": "ExternalName", "externalName": "example.com"}}
    spec = _defaulted("", "Service", external)["spec"]
    assert "ipFamilies" not in spec and "internalTrafficPolicy" not in spec


def test_client_ip_affinity_gets_default_timeout():
    service = {"metadata": {"name": "s"}, "spec": {"sessionAffinity": "ClientIP", "ports": [{"port": 80}]}}
    spec = _defaulted("", "Service", service)["spec"]
    assert spec["sessionAffinityConfig"] == {"clientIP": {"timeoutSeconds": 10800}}


def test_secret_string_data_is_merged_into_data_and_removed():
    secret = {"metadata": {"name": "s"}, "data": {"a": base64.b64encode(b"old").decode()},
              "stringData": {"a": "new", "b": "two"}}
    secret = _defaulted("", "Secret", secret)
    assert secret["type"] == "Opaque"
    assert "stringData" not in secret
    assert {k: base64.b64decode(v).decode() for k, v in secret["data"].items()} == {"a": "new", "b": "two"}


def test_namespace_defaults():
    namespace = _defaulted("", "Namespace", {"metadata": {"name": "team-a"}})
    assert namespace["metadata"]["labels"] == {"kubernetes.io/metadata.name": "team-a"}
    assert namespace["spec"] == {"finalizers": ["kubernetes"]}
    assert namespace["status"] == {"phase": "Active"}


def test_storage_defaults():
    pvc = _defaulted("", "PersistentVolumeClaim", {"metadata": {"name": "c"}, "spec": {}})
    assert pvc["spec"]["volumeMode"] == "Filesystem" and pvc["status"]["phase"] == "Pending"
    pv = _defaulted("", "PersistentVolume", {"metadata": {"name": "v"}, "spec": {"hostPath": {"path": "/d"}}})
    assert pv["spec"]["persistentVolumeReclaimPolicy"] == "Retain"
    assert pv["spec"]["volumeMode"] == "Filesystem"
    assert pv["status"]["phase"] == "Pending"
    sc = _defaulted("storage.k8s.io", "StorageClass", {"metadata": {"name": "local-path"}, "provisioner": "x.io/p"})
    assert sc["reclaimPolicy"] == "Delete" and sc["volumeBindingMode"] == "Immediate"


def test_endpoint_ports_default_to_tcp_and_node_allocatable_to_capacity():
    endpoints = _defaulted("", "Endpoints", {"metadata": {"name": "e"}, "subsets": [{"ports": [{"port": 80}]}]})
    assert endpoints["subsets"][0]["ports"][0]["protocol"] == "TCP"
    slice_ = _defaulted("discovery.k8s.io", "EndpointSlice", {"metadata": {"name": "e"}, "ports": [{"port": 80}]})
    assert slice_["ports"] == [{"port": 80, "name": "", "protocol": "TCP"}]
    node = _defaulted("", "Node", {"metadata": {"name": "n"}, "status": {"capacity": {"cpu": "2"}}})
    assert node["status"]["allocatable"] == {"cpu": "2"}
