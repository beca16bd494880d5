"""A corpus of tutorial-style manifests (tests/e2e/manifests/, one object per file, every
served kind) driven through the real kubectl as a learner would: apply → created, re-apply
→ unchanged with no PATCH on the wire, edit → configured, `get -o yaml` carries upstream's
defaults, describe shows each kind's main fields, delete -f → deleted; then the same set with
server-side apply, and a typo rejected with upstream's strict decoding message.

The tests of the client-side lifecycle share one applied copy of the corpus and run in file
order (apply, inspect, edit, delete), as a learner's session does.
"""
from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest
import yaml

from conftest import Kubectl

MANIFESTS = Path(__file__).with_name("manifests")
CORPUS_FILES = sorted(path.name for path in MANIFESTS.glob("*.yaml"))
TYPO_MANIFEST = MANIFESTS / "invalid" / "deployment-typo.yaml"

# Resource names as kubectl prints them (`kind.group`), per apiVersion.
GROUP_SUFFIX = {"v1": "", "apps/v1": ".apps", "batch/v1": ".batch", "storage.k8s.io/v1": ".storage.k8s.io",
                "discovery.k8s.io/v1": ".discovery.k8s.io", "coordination.k8s.io/v1": ".coordination.k8s.io"}


def load_manifest(name: str) -> dict:
    return yaml.safe_load((MANIFESTS / name).read_text())


def printed_name(manifest: dict) -> str:
    return f"{manifest['kind'].lower()}{GROUP_SUFFIX[manifest['apiVersion']]}/{manifest['metadata']['name']}"


def expected_lines(verb: str, files=CORPUS_FILES) -> set[str]:
    return {f"{printed_name(load_manifest(name))} {verb}" for name in files}


# Manifests upstream itself reports as `configured` on every client-side re-apply, because the
# three-way patch compares the file with a live object that can never equal it.
ALWAYS_CONFIGURED = {
    # stringData is write-only: merged into data, never stored, so always "missing" live.
    "secret-stringdata.yaml",
    # volumeClaimTemplates is an atomic list, and the server defaults status.phase and
    # volumeMode in each template: the list never compares equal.
    "statefulset.yaml",
    # ServiceAccount admission appends the kube-api-access volume (and its mounts) to a pod
    # that declares volumes/volumeMounts of its own: kubectl's three-way patch then finds the
    # live lists longer than the file's (strategicpatch isOrderSame) and sends
    # $setElementOrder directives, as it does against an upstream cluster.
    "pod-secured.yaml",
    "pod-web.yaml",
}


def lookup(obj, path: str):
    """Follows a dotted path where `[N]` indexes a list: `spec.containers[0].image`."""
    for part in re.findall(r"[^.\[\]]+|\[\d+\]", path):
        obj = obj[int(part[1:-1])] if part.startswith("[") else obj[part]
    return obj


def squeeze(text: str) -> str:
    """describe aligns columns with runs of spaces; compare with single spaces."""
    return re.sub(r"\s+", " ", text)


POD_TEMPLATE_DEFAULTS = {
    "restartPolicy": "Always",
    "dnsPolicy": "ClusterFirst",
    "terminationGracePeriodSeconds": 30,
    "schedulerName": "default-scheduler",
    "securityContext": {},
    "containers[0].terminationMessagePath": "/dev/termination-log",
    "containers[0].terminationMessagePolicy": "File",
    "containers[0].imagePullPolicy": "IfNotPresent",
}


def template_defaults(prefix: str, **overrides) -> dict:
    defaults = {f"{prefix}.{path}": value for path, value in POD_TEMPLATE_DEFAULTS.items()}
    defaults.update({f"{prefix}.{path}": value for path, value in overrides.items()})
    return defaults


TOLERATE_NOT_READY_AND_UNREACHABLE = [
    {"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300},
    {"key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300},
]

# What upstream's defaulting (and admission, for pods) adds to each manifest, field by field.
UPSTREAM_DEFAULTS: dict[str, dict[str, object]] = {
    "pod-web.yaml": {
        **template_defaults("spec"),
        "spec.serviceAccountName": "default",
        "spec.enableServiceLinks": True,
        "spec.priority": 0,
        "spec.preemptionPolicy": "PreemptLowerPriority",
        "spec.tolerations": TOLERATE_NOT_READY_AND_UNREACHABLE,
        "spec.containers[0].ports[0].protocol": "TCP",
        "spec.containers[0].readinessProbe.httpGet.scheme": "HTTP",
        "spec.containers[0].readinessProbe.timeoutSeconds": 1,
        "spec.containers[0].readinessProbe.successThreshold": 1,
        "spec.containers[0].readinessProbe.failureThreshold": 3,
        "spec.containers[0].livenessProbe.periodSeconds": 10,
        "spec.containers[0].startupProbe.periodSeconds": 10,
        "spec.containers[0].resources.requests": {"cpu": "100m", "memory": "64Mi"},
        "spec.volumes[0].emptyDir": {},
        "spec.volumes[1].configMap.defaultMode": 0o644,
        "spec.volumes[2].secret.defaultMode": 0o400,
        "spec.volumes[3].hostPath.type": "Directory",
        "status.phase": "Pending",
        "status.qosClass": "Burstable",
    },
    "pod-secured.yaml": {
        **template_defaults("spec", securityContext={"runAsUser": 1000, "runAsGroup": 3000, "fsGroup": 2000}),
        "spec.initContainers[0].imagePullPolicy": "IfNotPresent",
        "spec.initContainers[0].terminationMessagePath": "/dev/termination-log",
        "status.qosClass": "BestEffort",
    },
    "deployment.yaml": {
        **template_defaults("spec.template.spec"),
        "spec.strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"}},
        "spec.revisionHistoryLimit": 10,
        "spec.progressDeadlineSeconds": 600,
        "spec.template.spec.containers[0].ports[0].protocol": "TCP",
    },
    "deployment-recreate.yaml": {
        **template_defaults("spec.template.spec", **{"containers[0].imagePullPolicy": "Always"}),
        "spec.strategy": {"type": "Recreate"},
        "spec.revisionHistoryLimit": 10,
        "spec.progressDeadlineSeconds": 600,
    },
    "replicaset.yaml": {
        **template_defaults("spec.template.spec"),
    },
    "replicationcontroller.yaml": {
        **template_defaults("spec.template.spec"),
        # An RC without labels takes its template's (upstream SetDefaults_ReplicationController).
        "metadata.labels": {"app": "corpus-rc"},
    },
    "daemonset.yaml": {
        **template_defaults("spec.template.spec"),
        "spec.updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 1, "maxSurge": 0}},
        "spec.revisionHistoryLimit": 10,
        "spec.template.spec.volumes[0].hostPath.type": "DirectoryOrCreate",
    },
    "statefulset.yaml": {
        **template_defaults("spec.template.spec"),
        "spec.podManagementPolicy": "OrderedReady",
        "spec.updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"partition": 0}},
        "spec.revisionHistoryLimit": 10,
        "spec.persistentVolumeClaimRetentionPolicy": {"whenDeleted": "Retain", "whenScaled": "Retain"},
        "spec.volumeClaimTemplates[0].spec.volumeMode": "Filesystem",
        "spec.volumeClaimTemplates[0].status.phase": "Pending",
    },
    "service-clusterip.yaml": {
        "spec.type": "ClusterIP",
        "spec.sessionAffinity": "None",
        "spec.ipFamilies": ["IPv4"],
        "spec.ipFamilyPolicy": "SingleStack",
        "spec.internalTrafficPolicy": "Cluster",
        "spec.ports": [{"port": 8080, "protocol": "TCP", "targetPort": 8080}],
    },
    "service-nodeport.yaml": {
        "spec.sessionAffinity": "None",
        "spec.externalTrafficPolicy": "Cluster",
        "spec.ports": [{"name": "http", "port": 8080, "protocol": "TCP", "targetPort": "http", "nodePort": 30081}],
    },
    "service-loadbalancer.yaml": {
        "spec.sessionAffinity": "None",
        "spec.externalTrafficPolicy": "Cluster",
        "spec.allocateLoadBalancerNodePorts": True,
        "spec.ipFamilies": ["IPv4"],
    },
    "service-externalname.yaml": {
        "spec.type": "ExternalName",
        "spec.sessionAffinity": "None",
        "spec.externalName": "api.example.com",
    },
    "service-headless.yaml": {
        "spec.type": "ClusterIP",
        "spec.clusterIP": "None",
        "spec.clusterIPs": ["None"],
        "spec.ipFamilies": ["IPv4"],
        "spec.ipFamilyPolicy": "SingleStack",
        "spec.ports": [{"name": "db", "port": 5432, "protocol": "TCP", "targetPort": 5432}],
    },
    "service-manual.yaml": {
        "spec.type": "ClusterIP",
        "spec.ports": [{"port": 80, "protocol": "TCP", "targetPort": 80}],
    },
    "secret-data.yaml": {"type": "Opaque", "data": {"password": "czNjcjN0"}},
    "secret-stringdata.yaml": {
        "type": "Opaque",
        "data": {"username": "YWRtaW4=", "config.json": "eyJkZWJ1ZyI6IHRydWV9"},
    },
    "persistentvolume.yaml": {
        "spec.persistentVolumeReclaimPolicy": "Retain",
        "spec.volumeMode": "Filesystem",
        "spec.hostPath": {"path": "/tmp/corpus-pv", "type": ""},
    },
    # Bound: the PV binder matches corpus-pv (same class, selector, size) as upstream's does;
    # corpus-sc (WaitForFirstConsumer) is applied after the claim, so binding is not delayed.
    "persistentvolumeclaim.yaml": {"spec.volumeMode": "Filesystem", "status.phase": "Bound"},
    "storageclass.yaml": {"reclaimPolicy": "Delete"},
    "job.yaml": {
        **template_defaults("spec.template.spec", restartPolicy="Never"),
        "spec.completionMode": "NonIndexed",
        "spec.suspend": False,
    },
    "cronjob.yaml": {
        **template_defaults("spec.jobTemplate.spec.template.spec", restartPolicy="OnFailure"),
        "spec.suspend": False,
        "spec.successfulJobsHistoryLimit": 3,
        "spec.failedJobsHistoryLimit": 1,
    },
    "namespace.yaml": {
        "metadata.labels": {"team": "corpus", "kubernetes.io/metadata.name": "corpus-ns"},
        "spec.finalizers": ["kubernetes"],
        "status.phase": "Active",
    },
    "endpoints.yaml": {"subsets[0].ports[0].protocol": "TCP"},
    "endpointslice.yaml": {"ports[0].protocol": "TCP", "endpoints[0].conditions.ready": True},
    "lease.yaml": {"spec.holderIdentity": "corpus-holder"},
    "event.yaml": {"type": "Normal", "involvedObject.kind": "Pod"},
    "serviceaccount.yaml": {"automountServiceAccountToken": False},
    "node.yaml": {"spec.unschedulable": True},
    "configmap.yaml": {"data.level": "debug"},
}

# Lines (whitespace squeezed) that upstream's `kubectl describe` prints for each manifest.
DESCRIBE_SHOWS: dict[str, list[str]] = {
    "pod-web.yaml": [
        "Name: corpus-web", "Namespace: default", "Status: Pending", "Containers: web: Image: pyk8s/busybox:1.35",
        "Port: 8080/TCP (http)", "Limits: cpu: 500m memory: 128Mi", "Requests: cpu: 100m memory: 64Mi",
        "Liveness: tcp-socket :8080 delay=10s timeout=1s period=10s #success=1 #failure=3",
        "Readiness: http-get http://:http/ delay=0s timeout=1s period=5s #success=1 #failure=3",
        "Startup: exec [sh -c true] delay=0s timeout=1s period=10s #success=1 #failure=30",
        "GREETING: hello", "/cache from cache (rw)", "/etc/corpus from config (ro)",
        "Type: EmptyDir (a temporary directory that shares a pod's lifetime)",
        "Type: ConfigMap (a volume populated by a ConfigMap)",
        "Type: Secret (a volume populated by a Secret)",
        "Type: HostPath (bare host directory volume)",
        "QoS Class: Burstable",
    ],
    "pod-secured.yaml": ["Name: corpus-secured", "Init Containers: prepare:", "Containers: sleeper:",
                         "Medium: Memory", "QoS Class: BestEffort"],
    "deployment.yaml": ["Name: corpus-deploy", "Selector: app=corpus-deploy", "StrategyType: RollingUpdate",
                        "RollingUpdateStrategy: 25% max unavailable, 25% max surge", "Pod Template: Labels: app=corpus-deploy"],
    "deployment-recreate.yaml": ["Name: corpus-recreate", "StrategyType: Recreate", "Selector: app in (corpus-recreate)"],
    "replicaset.yaml": ["Name: corpus-rs", "Selector: app=corpus-rs", "Pods Status:", "Pod Template:"],
    "replicationcontroller.yaml": ["Name: corpus-rc", "Selector: app=corpus-rc", "Pods Status:"],
    "daemonset.yaml": ["Name: corpus-ds", "Selector: app=corpus-ds", "Node-Selector: kubernetes.io/os=linux",
                       "Desired Number of Nodes Scheduled:", "Type: HostPath (bare host directory volume)"],
    "statefulset.yaml": ["Name: corpus-sts", "Selector: app=corpus-sts", "Replicas: 2 desired",
                         "Update Strategy: RollingUpdate", "Volume Claims: Name: data StorageClass: corpus-sc"],
    "service-clusterip.yaml": ["Name: corpus-svc", "Selector: app=corpus-deploy", "Type: ClusterIP",
                               "IP Family Policy: SingleStack", "IP Families: IPv4", "Port: <unset> 8080/TCP",
                               "TargetPort: 8080/TCP", "Session Affinity: None"],
    "service-nodeport.yaml": ["Type: NodePort", "Port: http 8080/TCP", "TargetPort: http/TCP",
                              "NodePort: http 30081/TCP", "External Traffic Policy: Cluster"],
    "service-loadbalancer.yaml": ["Type: LoadBalancer", "Port: <unset> 8088/TCP", "TargetPort: 8080/TCP"],
    "service-externalname.yaml": ["Type: ExternalName", "External Name: api.example.com"],
    "service-headless.yaml": ["Name: corpus-headless", "IP: None", "Port: db 5432/TCP"],
    "service-manual.yaml": ["Name: corpus-manual", "Selector: <none>", "Port: <unset> 80/TCP"],
    "configmap.yaml": ["Name: corpus-config", "Data ====", "level: ---- debug", "app.properties: ----"],
    "secret-data.yaml": ["Name: corpus-secret", "Type: Opaque", "password: 6 bytes"],
    "secret-stringdata.yaml": ["Name: corpus-string-secret", "Type: Opaque", "username: 5 bytes"],
    "persistentvolume.yaml": ["Name: corpus-pv", "StorageClass: corpus-sc", "Reclaim Policy: Retain",
                              "Access Modes: RWO", "VolumeMode: Filesystem", "Capacity: 100Mi",
                              "Type: HostPath (bare host directory volume) Path: /tmp/corpus-pv"],
    # Bound to corpus-pv by the PV binder, as upstream's (see UPSTREAM_DEFAULTS).
    "persistentvolumeclaim.yaml": ["Name: corpus-pvc", "StorageClass: corpus-sc", "Status: Bound",
                                   "VolumeMode: Filesystem"],
    "storageclass.yaml": ["Name: corpus-sc", "IsDefaultClass: No", "Provisioner: kubernetes.io/no-provisioner",
                          "ReclaimPolicy: Delete", "VolumeBindingMode: WaitForFirstConsumer"],
    "job.yaml": ["Name: corpus-job", "Parallelism: 1", "Completions: 3", "Completion Mode: NonIndexed"],
    "cronjob.yaml": ["Name: corpus-cron", "Schedule: */5 * * * *", "Concurrency Policy: Forbid", "Suspend: False"],
    "namespace.yaml": ["Name: corpus-ns", "team=corpus", "Status: Active", "Status: Active"],
    "serviceaccount.yaml": ["Name: corpus-sa", "Image pull secrets: <none>"],
    "endpointslice.yaml": ["Name: corpus-external-1", "AddressType: IPv4", "Ports: Name Port Protocol ---- ---- -------- http 80 TCP",
                           "Endpoints: - Addresses: 10.42.0.50 Conditions: Ready: true"],
    "endpoints.yaml": ["Name: corpus-manual", "Subsets: Addresses: 10.42.0.50"],
    "lease.yaml": ["Name: corpus-lease", "Holder Identity: corpus-holder", "Lease Duration Seconds: 15"],
    "event.yaml": ["Name: corpus-web.manual", "Reason: Corpus", "Message: written by the manifest corpus"],
    "node.yaml": ["Name: corpus-node", "corpus=true", "Unschedulable: true"],
}


def test_every_corpus_manifest_has_default_and_describe_expectations():
    assert set(CORPUS_FILES) == set(UPSTREAM_DEFAULTS) == set(DESCRIBE_SHOWS)


@pytest.fixture(scope="module")
def corpus_kubectl(server, tmp_path_factory):
    """One discovery cache for the whole module: a learner's kubectl keeps its cache too."""
    return Kubectl(server, tmp_path_factory.mktemp("corpus-cache"))


@pytest.fixture(scope="module")
def corpus_dir(tmp_path_factory):
    """A copy of the corpus the edit step can change."""
    target = tmp_path_factory.mktemp("corpus") / "manifests"
    shutil.copytree(MANIFESTS, target, ignore=shutil.ignore_patterns("invalid"))
    return target


@pytest.fixture(scope="module")
def first_apply(corpus_kubectl, corpus_dir):
    return corpus_kubectl.run("apply", "-f", str(corpus_dir))


@pytest.fixture(scope="module")
def live_objects(corpus_kubectl, corpus_dir, first_apply):
    """`kubectl get -f DIR -o yaml` right after the first apply, by manifest file."""
    listed = yaml.safe_load(corpus_kubectl("get", "-f", str(corpus_dir), "-o", "yaml"))
    by_kind_and_name = {(item["kind"], item["metadata"]["name"]): item for item in listed["items"]}
    return {name: by_kind_and_name[(manifest["kind"], manifest["metadata"]["name"])]
            for name, manifest in ((name, load_manifest(name)) for name in CORPUS_FILES)}


def test_first_apply_creates_every_manifest(first_apply):
    assert set(first_apply.stdout.splitlines()) == expected_lines("created")
    assert "Warning" not in first_apply.stderr


def test_reapplying_unchanged_manifests_reports_unchanged_and_sends_no_patch(corpus_kubectl, corpus_dir, first_apply):
    # -v=6 logs every request kubectl sends ("PATCH https://... 200 OK").
    stable = [name for name in CORPUS_FILES if name not in ALWAYS_CONFIGURED]
    result = corpus_kubectl.run("apply", *[arg for name in stable for arg in ("-f", str(corpus_dir / name))], "-v=6")
    assert set(result.stdout.splitlines()) == expected_lines("unchanged", stable)
    requests = [line for line in result.stderr.splitlines() if "https://" in line]
    assert requests and not [line for line in requests if re.search(r"\b(PATCH|PUT|POST)\b", line)]


def test_reapplying_manifests_upstream_cannot_compare_reports_configured(corpus_kubectl, corpus_dir, first_apply):
    result = corpus_kubectl.run("apply", *[arg for name in sorted(ALWAYS_CONFIGURED) for arg in ("-f", str(corpus_dir / name))])
    assert set(result.stdout.splitlines()) == expected_lines("configured", sorted(ALWAYS_CONFIGURED))


@pytest.mark.parametrize("name", CORPUS_FILES)
def test_applied_object_carries_upstream_defaults(live_objects, name):
    live = live_objects[name]
    for path, expected in UPSTREAM_DEFAULTS[name].items():
        assert lookup(live, path) == expected, f"{name}: {path}"
    # Every object keeps what was applied, byte for byte, in the last-applied annotation.
    applied = json.loads(live["metadata"]["annotations"]["kubectl.kubernetes.io/last-applied-configuration"])
    assert applied["metadata"]["name"] == load_manifest(name)["metadata"]["name"]


def test_secret_string_data_is_merged_into_data_and_not_stored(live_objects):
    assert "stringData" not in live_objects["secret-stringdata.yaml"]


def test_cluster_ip_services_get_an_address_from_the_service_range(live_objects):
    for name in ("service-clusterip.yaml", "service-nodeport.yaml", "service-loadbalancer.yaml", "service-manual.yaml"):
        spec = live_objects[name]["spec"]
        assert spec["clusterIP"].startswith("10.43."), name
        assert spec["clusterIPs"] == [spec["clusterIP"]], name
    assert "clusterIP" not in live_objects["service-externalname.yaml"]["spec"]
    lb_port = live_objects["service-loadbalancer.yaml"]["spec"]["ports"][0]
    assert 30000 <= lb_port["nodePort"] <= 32767


@pytest.mark.parametrize("name", CORPUS_FILES)
def test_describe_shows_the_kinds_main_fields(corpus_kubectl, corpus_dir, first_apply, name):
    out = squeeze(corpus_kubectl("describe", "-f", str(corpus_dir / name)))
    for expected in DESCRIBE_SHOWS[name]:
        assert expected in out, f"{name}: {expected!r} not in:\n{out}"


def test_editing_one_field_of_each_manifest_reports_configured(corpus_kubectl, corpus_dir, first_apply):
    for name in CORPUS_FILES:
        manifest = load_manifest(name)
        manifest["metadata"].setdefault("labels", {})["corpus-edit"] = "one"
        (corpus_dir / name).write_text(yaml.safe_dump(manifest))
    result = corpus_kubectl.run("apply", "-f", str(corpus_dir))
    assert set(result.stdout.splitlines()) == expected_lines("configured")
    deployment = json.loads(corpus_kubectl("get", "deployment", "corpus-deploy", "-o", "json"))
    assert deployment["metadata"]["labels"] == {"app": "corpus-deploy", "corpus-edit": "one"}


def test_delete_f_deletes_every_manifest(corpus_kubectl, corpus_dir, first_apply):
    result = corpus_kubectl.run("delete", "-f", str(corpus_dir), timeout=90)
    assert set(result.stdout.splitlines()) == deleted_lines()
    missing = corpus_kubectl.run("get", "-f", str(corpus_dir), check=False)
    assert missing.stdout == ""
    assert missing.stderr.count("NotFound") == len(CORPUS_FILES)


CLUSTER_SCOPED_KINDS = {"Namespace", "Node", "PersistentVolume", "StorageClass"}


def deleted_lines() -> set[str]:
    # kubectl 1.36 prints `kind.group "name" deleted`, plus `from NS namespace` when namespaced.
    lines = set()
    for name in CORPUS_FILES:
        manifest = load_manifest(name)
        kind, _, object_name = printed_name(manifest).partition("/")
        where = "" if manifest["kind"] in CLUSTER_SCOPED_KINDS else " from default namespace"
        lines.add(f'{kind} "{object_name}" deleted{where}')
    return lines


def test_server_side_apply_of_the_corpus_creates_and_reapplies(corpus_kubectl, tmp_path):
    target = tmp_path / "manifests"
    shutil.copytree(MANIFESTS, target, ignore=shutil.ignore_patterns("invalid"))
    created = corpus_kubectl.run("apply", "--server-side", "-f", str(target))
    assert set(created.stdout.splitlines()) == expected_lines("serverside-applied")
    again = corpus_kubectl.run("apply", "--server-side", "-f", str(target))
    assert set(again.stdout.splitlines()) == expected_lines("serverside-applied")
    deployment = json.loads(corpus_kubectl("get", "deployment", "corpus-deploy", "-o", "json", "--show-managed-fields"))
    managers = {(entry["manager"], entry["operation"]) for entry in deployment["metadata"]["managedFields"]}
    assert ("kubectl", "Apply") in managers
    assert deployment["spec"]["revisionHistoryLimit"] == 10
    corpus_kubectl("delete", "-f", str(target), timeout=90)


def test_manifest_with_a_typo_fails_with_upstream_strict_decoding_message(corpus_kubectl):
    result = corpus_kubectl.run("apply", "-f", str(TYPO_MANIFEST), check=False)
    assert result.returncode == 1
    assert result.stdout == ""
    assert result.stderr.strip() == (
        f'Error from server (BadRequest): error when creating "{TYPO_MANIFEST}": Deployment in version "v1" '
        'cannot be handled as a Deployment: strict decoding error: unknown field "spec.replica"')
