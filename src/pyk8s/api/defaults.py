"""Defaulting: fill absent fields the way upstream's SetDefaults_* functions do.

`apply_defaults(resource, obj)` mutates a JSON dict in place and is idempotent: it only
writes fields that are absent (or, where upstream treats it so, empty). Pod-spec defaults
are shared by Pods and every pod template (Deployment, ReplicaSet, DaemonSet, StatefulSet,
Job, CronJob, ReplicationController); the admission-plugin defaults (service account,
default tolerations, priority) and SetDefaults_Pod-only fields apply to Pods alone, as
upstream applies them only to `v1.Pod`.

Sources: pkg/apis/core/v1/defaults.go, pkg/apis/apps/v1/defaults.go,
pkg/apis/batch/v1/defaults.go, the ServiceAccount, DefaultTolerationSeconds and Priority
admission plugins, and the namespace/secret/job registry strategies.
"""

from __future__ import annotations

import base64
import collections
from typing import Any, Callable

import orjson

from pyk8s.api import base64bytes
from pyk8s.api.quantity import round_up_milli
from pyk8s.api.resources import Resource

DEFAULT_TERMINATION_GRACE_PERIOD_SECONDS = 30
DEFAULT_SCHEDULER_NAME = "default-scheduler"
DEFAULT_TOLERATION_SECONDS = 300  # DefaultTolerationSeconds admission plugin
FILE_MODE_0644 = 420  # upstream's default volume file mode (0644) as JSON shows it
DEFAULT_CLIENT_IP_AFFINITY_SECONDS = 10800

# Label keys the Job registry adds when it generates a selector (batch/v1 job strategy).
JOB_CONTROLLER_UID_LABEL = "batch.kubernetes.io/controller-uid"
JOB_NAME_LABEL = "batch.kubernetes.io/job-name"
LEGACY_JOB_CONTROLLER_UID_LABEL = "controller-uid"
LEGACY_JOB_NAME_LABEL = "job-name"


def apply_defaults(resource: Resource, obj: dict) -> None:
    """Default `obj` (a `resource` object as a JSON dict) in place."""
    defaulter = _DEFAULTERS.get((resource.group, resource.kind))
    if defaulter is not None:
        defaulter(obj)


# -- helpers ---------------------------------------------------------------

def _child(parent: dict, key: str) -> dict:
    """parent[key] as a dict, created when absent or null."""
    value = parent.get(key)
    if not isinstance(value, dict):
        value = {}
        parent[key] = value
    return value


def _dicts(value: Any) -> list[dict]:
    return [item for item in value if isinstance(item, dict)] if isinstance(value, list) else []


def _set_if_empty(target: dict, key: str, value: Any) -> None:
    """Upstream defaults string/int fields when they hold their zero value."""
    if target.get(key) in (None, "", 0) and not isinstance(target.get(key), bool):
        target[key] = value


def _set_if_absent(target: dict, key: str, value: Any) -> None:
    """Pointer fields in upstream: defaulted only when nil, so an explicit 0/false stays."""
    if target.get(key) is None:
        target[key] = value


# -- pod spec --------------------------------------------------------------

def image_pull_policy_for(image: str) -> str:
    """Always for `:latest` or an untagged image, IfNotPresent otherwise (digests included)."""
    name = image.split("@", 1)[0] if "@" in image else image
    has_digest = "@" in image
    last_component = name.rsplit("/", 1)[-1]
    tag = last_component.split(":", 1)[1] if ":" in last_component else ""
    if not tag and not has_digest:
        tag = "latest"
    return "Always" if tag == "latest" else "IfNotPresent"


def _default_probe(probe: Any) -> None:
    if not isinstance(probe, dict):
        return
    _set_if_empty(probe, "timeoutSeconds", 1)
    _set_if_empty(probe, "periodSeconds", 10)
    _set_if_empty(probe, "successThreshold", 1)
    _set_if_empty(probe, "failureThreshold", 3)
    _default_handler(probe)


def _default_handler(handler: Any) -> None:
    if not isinstance(handler, dict):
        return
    http_get = handler.get("httpGet")
    if isinstance(http_get, dict):
        _set_if_empty(http_get, "path", "/")
        _set_if_empty(http_get, "scheme", "HTTP")
    grpc = handler.get("grpc")
    if isinstance(grpc, dict):
        _set_if_absent(grpc, "service", "")


def _round_resource_list(resources: dict, key: str) -> None:
    resource_list = resources.get(key)
    if not isinstance(resource_list, dict):
        return
    for name, value in list(resource_list.items()):
        try:
            resource_list[name] = round_up_milli(value)
        except ValueError:
            pass  # left for validation to report with upstream's message


def _default_env_field_refs(container: dict) -> None:
    for env in _dicts(container.get("env")):
        value_from = env.get("valueFrom")
        if isinstance(value_from, dict) and isinstance(value_from.get("fieldRef"), dict):
            _set_if_empty(value_from["fieldRef"], "apiVersion", "v1")


def _default_container(container: dict) -> None:
    if not container.get("imagePullPolicy"):
        container["imagePullPolicy"] = image_pull_policy_for(str(container.get("image") or ""))
    _set_if_empty(container, "terminationMessagePath", "/dev/termination-log")
    _set_if_empty(container, "terminationMessagePolicy", "File")
    for port in _dicts(container.get("ports")):
        _set_if_empty(port, "protocol", "TCP")
    resources = _child(container, "resources")
    _round_resource_list(resources, "limits")
    _round_resource_list(resources, "requests")
    for probe_key in ("livenessProbe", "readinessProbe", "startupProbe"):
        _default_probe(container.get(probe_key))
    lifecycle = container.get("lifecycle")
    if isinstance(lifecycle, dict):
        _default_handler(lifecycle.get("postStart"))
        _default_handler(lifecycle.get("preStop"))
    _default_env_field_refs(container)


_VOLUME_SOURCE_KEYS = (
    "hostPath", "emptyDir", "gcePersistentDisk", "awsElasticBlockStore", "gitRepo", "secret", "nfs",
    "iscsi", "glusterfs", "persistentVolumeClaim", "rbd", "flexVolume", "cinder", "cephfs", "flocker",
    "downwardAPI", "fc", "azureFile", "configMap", "vsphereVolume", "quobyte", "azureDisk",
    "photonPersistentDisk", "projected", "portworxVolume", "scaleIO", "storageos", "csi", "ephemeral",
    "image",
)


def _default_volume(volume: dict) -> None:
    if not any(volume.get(key) is not None for key in _VOLUME_SOURCE_KEYS):
        volume["emptyDir"] = {}
    for key in ("secret", "configMap", "downwardAPI", "projected"):
        source = volume.get(key)
        if isinstance(source, dict):
            _set_if_absent(source, "defaultMode", FILE_MODE_0644)
    host_path = volume.get("hostPath")
    if isinstance(host_path, dict):
        _set_if_absent(host_path, "type", "")
    projected = volume.get("projected")
    if isinstance(projected, dict):
        for projection in _dicts(projected.get("sources")):
            token = projection.get("serviceAccountToken")
            if isinstance(token, dict):
                _set_if_absent(token, "expirationSeconds", 3600)
    downward = volume.get("downwardAPI")
    if isinstance(downward, dict):
        for item in _dicts(downward.get("items")):
            if isinstance(item.get("fieldRef"), dict):
                _set_if_empty(item["fieldRef"], "apiVersion", "v1")
    ephemeral = volume.get("ephemeral")
    if isinstance(ephemeral, dict) and isinstance(ephemeral.get("volumeClaimTemplate"), dict):
        _default_pvc_spec(_child(ephemeral["volumeClaimTemplate"], "spec"))


def default_pod_spec(spec: dict) -> None:
    """SetDefaults_PodSpec plus the nested container/volume/probe defaults."""
    _set_if_empty(spec, "dnsPolicy", "ClusterFirst")
    _set_if_empty(spec, "restartPolicy", "Always")
    _set_if_absent(spec, "securityContext", {})
    _set_if_absent(spec, "terminationGracePeriodSeconds", DEFAULT_TERMINATION_GRACE_PERIOD_SECONDS)
    _set_if_empty(spec, "schedulerName", DEFAULT_SCHEDULER_NAME)
    for key in ("containers", "initContainers", "ephemeralContainers"):
        for container in _dicts(spec.get(key)):
            _default_container(container)
    for volume in _dicts(spec.get("volumes")):
        _default_volume(volume)


def _default_template(owner_spec: dict) -> None:
    template = owner_spec.get("template")
    if isinstance(template, dict):
        default_pod_spec(_child(template, "spec"))


def _requests_from_limits(container: dict) -> None:
    resources = container.get("resources")
    if not isinstance(resources, dict) or not isinstance(resources.get("limits"), dict):
        return
    requests = _child(resources, "requests")
    for name, value in resources["limits"].items():
        requests.setdefault(name, value)


_NOT_READY_TAINT = "node.kubernetes.io/not-ready"
_UNREACHABLE_TAINT = "node.kubernetes.io/unreachable"


def _default_tolerations(spec: dict) -> None:
    """DefaultTolerationSeconds admission: tolerate not-ready/unreachable for 300 s unless the
    pod already tolerates those taints (or all NoExecute taints)."""
    tolerations = spec.get("tolerations")
    if not isinstance(tolerations, list):
        tolerations = []
    existing = _dicts(tolerations)

    def tolerates(key: str) -> bool:
        for toleration in existing:
            effect = toleration.get("effect") or ""
            if effect not in ("", "NoExecute"):
                continue
            if toleration.get("operator") == "Exists" and not toleration.get("key"):
                return True
            if toleration.get("key") == key:
                return True
        return False

    added = False
    for key in (_NOT_READY_TAINT, _UNREACHABLE_TAINT):
        if not tolerates(key):
            tolerations.append({"key": key, "operator": "Exists", "effect": "NoExecute",
                                "tolerationSeconds": DEFAULT_TOLERATION_SECONDS})
            added = True
    if added or "tolerations" in spec:
        spec["tolerations"] = tolerations


# Defaulted pod specs by the spec they came from: the pods of one template (a ReplicaSet's)
# repeat it, and a pod's defaults depend on its spec alone.
_DEFAULTED_POD_SPECS: collections.OrderedDict[bytes, bytes] = collections.OrderedDict()
_DEFAULTED_POD_SPECS_MAX = 256


def _default_pod(pod: dict) -> None:
    spec = _child(pod, "spec")
    try:
        key = orjson.dumps(spec)
    except TypeError:
        _default_pod_spec_in_place(spec)
        return
    cached = _DEFAULTED_POD_SPECS.get(key)
    if cached is not None:
        _DEFAULTED_POD_SPECS.move_to_end(key)
        pod["spec"] = orjson.loads(cached)
        return
    _default_pod_spec_in_place(spec)
    _DEFAULTED_POD_SPECS[key] = orjson.dumps(spec)
    if len(_DEFAULTED_POD_SPECS) > _DEFAULTED_POD_SPECS_MAX:
        _DEFAULTED_POD_SPECS.popitem(last=False)


def _default_pod_spec_in_place(spec: dict) -> None:
    default_pod_spec(spec)
    # SetDefaults_Pod: only Pods (not templates) get these.
    for key in ("containers", "initContainers"):
        for container in _dicts(spec.get(key)):
            _requests_from_limits(container)
    _set_if_absent(spec, "enableServiceLinks", True)
    if spec.get("hostNetwork") is True:
        for key in ("containers", "initContainers"):
            for container in _dicts(spec.get(key)):
                for port in _dicts(container.get("ports")):
                    if not port.get("hostPort"):
                        port["hostPort"] = port.get("containerPort")
    # ServiceAccount admission: serviceAccount is the deprecated alias kept in sync.
    account = spec.get("serviceAccountName") or spec.get("serviceAccount") or "default"
    spec["serviceAccountName"] = account
    spec["serviceAccount"] = account
    # Priority admission (no PriorityClass given: the global default priority 0).
    _set_if_absent(spec, "priority", 0)
    _set_if_empty(spec, "preemptionPolicy", "PreemptLowerPriority")
    _default_tolerations(spec)


# -- workloads ---------------------------------------------------------------

def _default_deployment(obj: dict) -> None:
    spec = _child(obj, "spec")
    _set_if_absent(spec, "replicas", 1)
    strategy = _child(spec, "strategy")
    _set_if_empty(strategy, "type", "RollingUpdate")
    if strategy["type"] == "RollingUpdate":
        rolling = _child(strategy, "rollingUpdate")
        _set_if_absent(rolling, "maxUnavailable", "25%")
        _set_if_absent(rolling, "maxSurge", "25%")
    _set_if_absent(spec, "revisionHistoryLimit", 10)
    _set_if_absent(spec, "progressDeadlineSeconds", 600)
    _default_template(spec)


def _default_replicaset(obj: dict) -> None:
    spec = _child(obj, "spec")
    _set_if_absent(spec, "replicas", 1)
    _default_template(spec)


def _default_daemonset(obj: dict) -> None:
    spec = _child(obj, "spec")
    strategy = _child(spec, "updateStrategy")
    _set_if_empty(strategy, "type", "RollingUpdate")
    if strategy["type"] == "RollingUpdate":
        rolling = _child(strategy, "rollingUpdate")
        _set_if_absent(rolling, "maxUnavailable", 1)
        _set_if_absent(rolling, "maxSurge", 0)
    _set_if_absent(spec, "revisionHistoryLimit", 10)
    _default_template(spec)


def _default_statefulset(obj: dict) -> None:
    spec = _child(obj, "spec")
    _set_if_empty(spec, "podManagementPolicy", "OrderedReady")
    strategy = _child(spec, "updateStrategy")
    _set_if_empty(strategy, "type", "RollingUpdate")
    if strategy["type"] == "RollingUpdate":
        _set_if_absent(_child(strategy, "rollingUpdate"), "partition", 0)
    retention = _child(spec, "persistentVolumeClaimRetentionPolicy")
    _set_if_empty(retention, "whenDeleted", "Retain")
    _set_if_empty(retention, "whenScaled", "Retain")
    _set_if_absent(spec, "replicas", 1)
    _set_if_absent(spec, "revisionHistoryLimit", 10)
    for claim in _dicts(spec.get("volumeClaimTemplates")):
        _default_pvc_spec(_child(claim, "spec"))
        _set_if_empty(_child(claim, "status"), "phase", "Pending")
    _default_template(spec)


def _default_replication_controller(obj: dict) -> None:
    spec = _child(obj, "spec")
    template = spec.get("template")
    template_labels = None
    if isinstance(template, dict) and isinstance(template.get("metadata"), dict):
        template_labels = template["metadata"].get("labels")
    if isinstance(template_labels, dict):
        if not spec.get("selector"):
            spec["selector"] = dict(template_labels)
        metadata = _child(obj, "metadata")
        if not metadata.get("labels"):
            metadata["labels"] = dict(template_labels)
    _set_if_absent(spec, "replicas", 1)
    _default_template(spec)


def generate_job_selector(job: dict) -> None:
    """The Job registry's generated selector (manualSelector unset): select on the job's uid
    and label the template to match. Needs metadata.uid, so the server calls apply_defaults
    after assigning it; without a uid this does nothing."""
    spec = _child(job, "spec")
    metadata = job.get("metadata") or {}
    uid = metadata.get("uid")
    if spec.get("manualSelector") is True or not uid:
        return
    name = metadata.get("name", "")
    template = spec.get("template")
    if not isinstance(template, dict):
        return
    labels = _child(_child(template, "metadata"), "labels")
    labels.setdefault(JOB_CONTROLLER_UID_LABEL, uid)
    labels.setdefault(JOB_NAME_LABEL, name)
    labels.setdefault(LEGACY_JOB_CONTROLLER_UID_LABEL, uid)
    labels.setdefault(LEGACY_JOB_NAME_LABEL, name)
    # A user selector keeps its terms and gains the uid term, so a foreign uid fails validation.
    selector = _child(spec, "selector")
    _child(selector, "matchLabels").setdefault(JOB_CONTROLLER_UID_LABEL, uid)


def _default_job(obj: dict) -> None:
    spec = _child(obj, "spec")
    generate_job_selector(obj)
    if spec.get("completions") is None and spec.get("parallelism") is None:
        spec["completions"] = 1
        spec["parallelism"] = 1
    _set_if_absent(spec, "parallelism", 1)
    if spec.get("backoffLimit") is None:
        spec["backoffLimit"] = 2**31 - 1 if spec.get("backoffLimitPerIndex") is not None else 6
    template = spec.get("template")
    if isinstance(template, dict) and isinstance(template.get("metadata"), dict):
        template_labels = template["metadata"].get("labels")
        metadata = _child(obj, "metadata")
        if template_labels and not metadata.get("labels"):
            metadata["labels"] = dict(template_labels)
    _set_if_empty(spec, "completionMode", "NonIndexed")
    _set_if_absent(spec, "suspend", False)
    if spec.get("podReplacementPolicy") is None:
        spec["podReplacementPolicy"] = "Failed" if spec.get("podFailurePolicy") else "TerminatingOrFailed"
    _default_template(spec)


def _default_cronjob(obj: dict) -> None:
    spec = _child(obj, "spec")
    _set_if_empty(spec, "concurrencyPolicy", "Allow")
    _set_if_absent(spec, "suspend", False)
    _set_if_absent(spec, "successfulJobsHistoryLimit", 3)
    _set_if_absent(spec, "failedJobsHistoryLimit", 1)
    # Upstream does not run Job defaults on a job template, only pod-template defaults.
    job_spec = _child(_child(spec, "jobTemplate"), "spec")
    _default_template(job_spec)


# -- core objects ------------------------------------------------------------

def _default_service(obj: dict) -> None:
    spec = _child(obj, "spec")
    _set_if_empty(spec, "sessionAffinity", "None")
    if spec["sessionAffinity"] == "None":
        spec.pop("sessionAffinityConfig", None)
    elif spec["sessionAffinity"] == "ClientIP":
        config = spec.get("sessionAffinityConfig")
        client_ip = config.get("clientIP") if isinstance(config, dict) else None
        if not isinstance(client_ip, dict) or client_ip.get("timeoutSeconds") is None:
            spec["sessionAffinityConfig"] = {"clientIP": {"timeoutSeconds": DEFAULT_CLIENT_IP_AFFINITY_SECONDS}}
    _set_if_empty(spec, "type", "ClusterIP")
    service_type = spec["type"]
    for port in _dicts(spec.get("ports")):
        _set_if_empty(port, "protocol", "TCP")
        if port.get("targetPort") in (None, 0, ""):
            port["targetPort"] = port.get("port")
    if service_type in ("NodePort", "LoadBalancer"):
        _set_if_empty(spec, "externalTrafficPolicy", "Cluster")
    # v1 conversion: a lone clusterIP is also clusterIPs[0].
    if spec.get("clusterIP") and not spec.get("clusterIPs"):
        spec["clusterIPs"] = [spec["clusterIP"]]
    if service_type in ("ClusterIP", "NodePort", "LoadBalancer"):
        _set_if_absent(spec, "internalTrafficPolicy", "Cluster")
        # IP family fields are filled by upstream's registry (initIPFamilyFields) for a
        # single-stack IPv4 cluster: SingleStack [IPv4], except that a headless Service
        # without selector is RequireDualStack with both families.
        headless_selectorless = spec.get("clusterIP") == "None" and not spec.get("selector")
        _set_if_absent(spec, "ipFamilyPolicy", "RequireDualStack" if headless_selectorless else "SingleStack")
        if not spec.get("ipFamilies"):
            spec["ipFamilies"] = ["IPv4"]
        if headless_selectorless and spec["ipFamilyPolicy"] != "SingleStack" and len(spec["ipFamilies"]) == 1:
            spec["ipFamilies"].append("IPv6" if spec["ipFamilies"][0] == "IPv4" else "IPv4")
    if service_type == "LoadBalancer":
        _set_if_absent(spec, "allocateLoadBalancerNodePorts", True)
    _child(obj, "status").setdefault("loadBalancer", {})


def _default_secret(obj: dict) -> None:
    _set_if_empty(obj, "type", "Opaque")
    # data is []byte upstream: decoded with the request (line breaks skipped), stored re-encoded.
    base64bytes.canonicalize_map(obj, "data")
    # stringData is write-only: merged into data (it wins on conflicts) and dropped.
    string_data = obj.pop("stringData", None)
    if isinstance(string_data, dict) and string_data:
        data = _child(obj, "data")
        for key, value in string_data.items():
            data[key] = base64.b64encode(str(value).encode()).decode()


def _default_config_map(obj: dict) -> None:
    base64bytes.canonicalize_map(obj, "binaryData")  # []byte upstream, as Secret data


def _default_pvc_spec(spec: dict) -> None:
    _set_if_absent(spec, "volumeMode", "Filesystem")


def _default_pvc(obj: dict) -> None:
    _default_pvc_spec(_child(obj, "spec"))
    _set_if_empty(_child(obj, "status"), "phase", "Pending")


def _default_pv(obj: dict) -> None:
    spec = _child(obj, "spec")
    _set_if_empty(spec, "persistentVolumeReclaimPolicy", "Retain")
    _set_if_absent(spec, "volumeMode", "Filesystem")
    host_path = spec.get("hostPath")
    if isinstance(host_path, dict):
        _set_if_absent(host_path, "type", "")
    _set_if_empty(_child(obj, "status"), "phase", "Pending")


def _default_namespace(obj: dict) -> None:
    metadata = _child(obj, "metadata")
    name = metadata.get("name")
    if name:
        _child(metadata, "labels")["kubernetes.io/metadata.name"] = name
    spec = _child(obj, "spec")
    if spec.get("finalizers") is None:
        spec["finalizers"] = ["kubernetes"]
    _set_if_empty(_child(obj, "status"), "phase", "Active")


def _default_node(obj: dict) -> None:
    status = obj.get("status")
    if isinstance(status, dict) and status.get("allocatable") is None and isinstance(status.get("capacity"), dict):
        status["allocatable"] = dict(status["capacity"])


def _default_endpoints(obj: dict) -> None:
    for subset in _dicts(obj.get("subsets")):
        for port in _dicts(subset.get("ports")):
            _set_if_empty(port, "protocol", "TCP")


def _default_endpoint_slice(obj: dict) -> None:
    for port in _dicts(obj.get("ports")):
        _set_if_absent(port, "name", "")
        _set_if_empty(port, "protocol", "TCP")


def _default_storage_class(obj: dict) -> None:
    _set_if_empty(obj, "reclaimPolicy", "Delete")
    _set_if_empty(obj, "volumeBindingMode", "Immediate")


_DEFAULTERS: dict[tuple[str, str], Callable[[dict], None]] = {
    ("", "Pod"): _default_pod,
    ("", "Service"): _default_service,
    ("", "Secret"): _default_secret,
    ("", "ConfigMap"): _default_config_map,
    ("", "PersistentVolumeClaim"): _default_pvc,
    ("", "PersistentVolume"): _default_pv,
    ("", "Namespace"): _default_namespace,
    ("", "Node"): _default_node,
    ("", "Endpoints"): _default_endpoints,
    ("", "ReplicationController"): _default_replication_controller,
    ("apps", "Deployment"): _default_deployment,
    ("apps", "ReplicaSet"): _default_replicaset,
    ("apps", "DaemonSet"): _default_daemonset,
    ("apps", "StatefulSet"): _default_statefulset,
    ("batch", "Job"): _default_job,
    ("batch", "CronJob"): _default_cronjob,
    ("storage.k8s.io", "StorageClass"): _default_storage_class,
    ("discovery.k8s.io", "EndpointSlice"): _default_endpoint_slice,
}
