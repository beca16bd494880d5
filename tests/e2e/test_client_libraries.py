"""Client libraries unchanged against the server: the official Python client's typed API
(create / read / patch / replace / delete with the generated models, one case per served
kind) and kr8s's object API."""
from __future__ import annotations

import datetime
import uuid
from dataclasses import dataclass
from typing import Any, Callable

import pytest
from kubernetes import client
from kubernetes.client.rest import ApiException

from conftest import eventually

NAMESPACE = "client-libraries"

# kr8s warns that it was not tested against the version the server reports (1.36).
pytestmark = pytest.mark.filterwarnings("ignore:Kubernetes version .* is not supported:UserWarning")


def meta(name: str, **labels: str) -> client.V1ObjectMeta:
    return client.V1ObjectMeta(name=name, labels=labels or None)


def busybox(name: str = "app", **extra: Any) -> client.V1Container:
    return client.V1Container(name=name, image="pyk8s/busybox:1.35", command=["sleep", "3600"], **extra)


def pod_template(app: str, restart_policy: str | None = None) -> client.V1PodTemplateSpec:
    return client.V1PodTemplateSpec(metadata=meta(None, app=app),
                                    spec=client.V1PodSpec(containers=[busybox()], restart_policy=restart_policy))


def selector(app: str) -> client.V1LabelSelector:
    return client.V1LabelSelector(match_labels={"app": app})


@dataclass
class KindCase:
    api: type
    resource: str  # the generated methods' suffix, e.g. "config_map" in create_namespaced_config_map
    model: type
    build: Callable[[str], Any]
    namespaced: bool = True
    check: Callable[[Any], None] = lambda obj: None  # what upstream defaulting put on the created object

    def call(self, api_client, verb: str, *args, **kwargs):
        api = self.api(api_client)
        scope = "namespaced_" if self.namespaced else ""
        method = getattr(api, f"{verb}_{scope}{self.resource}")
        if self.namespaced and verb != "create":
            return method(args[0], NAMESPACE, *args[1:], **kwargs)
        if self.namespaced:
            return method(NAMESPACE, *args, **kwargs)
        return method(*args, **kwargs)


def check_pod(pod: client.V1Pod) -> None:
    assert pod.spec.restart_policy == "Always"
    assert pod.spec.containers[0].termination_message_path == "/dev/termination-log"
    assert pod.status.phase == "Pending"


def check_deployment(deployment: client.V1Deployment) -> None:
    assert deployment.spec.strategy.rolling_update.max_surge == "25%"
    assert deployment.spec.progress_deadline_seconds == 600


def check_service(service: client.V1Service) -> None:
    assert service.spec.cluster_ip.startswith("10.43.")
    assert service.spec.ports[0].target_port == 80


def check_secret(secret: client.V1Secret) -> None:
    assert secret.type == "Opaque"
    assert secret.data == {"user": "YWRtaW4="}
    assert secret.string_data is None


KINDS = {
    "pod": KindCase(client.CoreV1Api, "pod", client.V1Pod,
                    lambda name: client.V1Pod(metadata=meta(name), spec=client.V1PodSpec(containers=[busybox(
                        ports=[client.V1ContainerPort(container_port=80)],
                        resources=client.V1ResourceRequirements(requests={"cpu": "100m", "memory": "32Mi"}))])),
                    check=check_pod),
    "service": KindCase(client.CoreV1Api, "service", client.V1Service,
                        lambda name: client.V1Service(metadata=meta(name), spec=client.V1ServiceSpec(
                            selector={"app": name}, ports=[client.V1ServicePort(port=80)])),
                        check=check_service),
    "configmap": KindCase(client.CoreV1Api, "config_map", client.V1ConfigMap,
                          lambda name: client.V1ConfigMap(metadata=meta(name), data={"level": "debug"})),
    "secret": KindCase(client.CoreV1Api, "secret", client.V1Secret,
                       lambda name: client.V1Secret(metadata=meta(name), string_data={"user": "admin"}),
                       check=check_secret),
    "serviceaccount": KindCase(client.CoreV1Api, "service_account", client.V1ServiceAccount,
                               lambda name: client.V1ServiceAccount(metadata=meta(name))),
    "persistentvolumeclaim": KindCase(
        client.CoreV1Api, "persistent_volume_claim", client.V1PersistentVolumeClaim,
        lambda name: client.V1PersistentVolumeClaim(metadata=meta(name), spec=client.V1PersistentVolumeClaimSpec(
            access_modes=["ReadWriteOnce"], resources=client.V1VolumeResourceRequirements(requests={"storage": "10Mi"}))),
        check=lambda pvc: pvc.spec.volume_mode == "Filesystem" or pytest.fail("volumeMode not defaulted")),
    "endpoints": KindCase(client.CoreV1Api, "endpoints", client.V1Endpoints,
                          lambda name: client.V1Endpoints(metadata=meta(name), subsets=[client.V1EndpointSubset(
                              addresses=[client.V1EndpointAddress(ip="10.42.0.9")],
                              ports=[client.CoreV1EndpointPort(port=80)])])),
    "replicationcontroller": KindCase(
        client.CoreV1Api, "replication_controller", client.V1ReplicationController,
        lambda name: client.V1ReplicationController(metadata=meta(name), spec=client.V1ReplicationControllerSpec(
            replicas=0, selector={"app": name}, template=pod_template(name)))),
    "event": KindCase(client.CoreV1Api, "event", client.CoreV1Event,
                      lambda name: client.CoreV1Event(metadata=meta(name), reason="Testing", message="typed client",
                                                      involved_object=client.V1ObjectReference(kind="Pod", name="x", namespace=NAMESPACE))),
    "namespace": KindCase(client.CoreV1Api, "namespace", client.V1Namespace,
                          lambda name: client.V1Namespace(metadata=meta(name)), namespaced=False),
    "persistentvolume": KindCase(
        client.CoreV1Api, "persistent_volume", client.V1PersistentVolume,
        lambda name: client.V1PersistentVolume(metadata=meta(name), spec=client.V1PersistentVolumeSpec(
            capacity={"storage": "10Mi"}, access_modes=["ReadWriteOnce"],
            host_path=client.V1HostPathVolumeSource(path="/tmp/" + name))),
        namespaced=False,
        check=lambda pv: pv.spec.persistent_volume_reclaim_policy == "Retain" or pytest.fail("reclaim policy")),
    "node": KindCase(client.CoreV1Api, "node", client.V1Node,
                     lambda name: client.V1Node(metadata=meta(name), spec=client.V1NodeSpec(unschedulable=True)),
                     namespaced=False),
    "deployment": KindCase(client.AppsV1Api, "deployment", client.V1Deployment,
                           lambda name: client.V1Deployment(metadata=meta(name), spec=client.V1DeploymentSpec(
                               replicas=0, selector=selector(name), template=pod_template(name))),
                           check=check_deployment),
    "replicaset": KindCase(client.AppsV1Api, "replica_set", client.V1ReplicaSet,
                           lambda name: client.V1ReplicaSet(metadata=meta(name), spec=client.V1ReplicaSetSpec(
                               replicas=0, selector=selector(name), template=pod_template(name)))),
    "daemonset": KindCase(client.AppsV1Api, "daemon_set", client.V1DaemonSet,
                          lambda name: client.V1DaemonSet(metadata=meta(name), spec=client.V1DaemonSetSpec(
                              selector=selector(name), template=pod_template(name))),
                          check=lambda ds: ds.spec.update_strategy.type == "RollingUpdate" or pytest.fail("strategy")),
    "statefulset": KindCase(client.AppsV1Api, "stateful_set", client.V1StatefulSet,
                            lambda name: client.V1StatefulSet(metadata=meta(name), spec=client.V1StatefulSetSpec(
                                replicas=0, service_name=name, selector=selector(name), template=pod_template(name))),
                            check=lambda sts: sts.spec.pod_management_policy == "OrderedReady" or pytest.fail("policy")),
    "job": KindCase(client.BatchV1Api, "job", client.V1Job,
                    lambda name: client.V1Job(metadata=meta(name), spec=client.V1JobSpec(
                        suspend=True, template=pod_template(name, restart_policy="Never"))),
                    check=lambda job: job.spec.completion_mode == "NonIndexed" or pytest.fail("completionMode")),
    "cronjob": KindCase(client.BatchV1Api, "cron_job", client.V1CronJob,
                        lambda name: client.V1CronJob(metadata=meta(name), spec=client.V1CronJobSpec(
                            schedule="0 * * * *", job_template=client.V1JobTemplateSpec(spec=client.V1JobSpec(
                                template=pod_template(name, restart_policy="OnFailure"))))),
                        check=lambda cron: cron.spec.concurrency_policy == "Allow" or pytest.fail("concurrencyPolicy")),
    "storageclass": KindCase(client.StorageV1Api, "storage_class", client.V1StorageClass,
                             lambda name: client.V1StorageClass(metadata=meta(name), provisioner="example.com/none"),
                             namespaced=False,
                             check=lambda sc: sc.reclaim_policy == "Delete" or pytest.fail("reclaimPolicy")),
    "endpointslice": KindCase(client.DiscoveryV1Api, "endpoint_slice", client.V1EndpointSlice,
                              lambda name: client.V1EndpointSlice(
                                  metadata=meta(name, **{"kubernetes.io/service-name": "svc"}), address_type="IPv4",
                                  endpoints=[client.V1Endpoint(addresses=["10.42.0.7"])],
                                  ports=[client.DiscoveryV1EndpointPort(port=80)])),
    "lease": KindCase(client.CoordinationV1Api, "lease", client.V1Lease,
                      lambda name: client.V1Lease(metadata=meta(name), spec=client.V1LeaseSpec(
                          holder_identity="typed-client", lease_duration_seconds=15))),
    "events.k8s.io event": KindCase(client.EventsV1Api, "event", client.EventsV1Event,
                                    lambda name: client.EventsV1Event(
                                        metadata=meta(name), event_time=_now(), reporting_controller="pyk8s.io/tests",
                                        reporting_instance="tests", action="Testing", reason="Testing", type="Normal",
                                        regarding=client.V1ObjectReference(kind="Pod", name="x", namespace=NAMESPACE))),
}


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.timezone.utc)


@pytest.fixture(scope="module", autouse=True)
def namespace(api_client):
    core = client.CoreV1Api(api_client)
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=NAMESPACE)))
    yield NAMESPACE
    core.delete_namespace(NAMESPACE)


def replace_with_label(api_client, case: KindCase, name: str, key: str, value: str):
    """Read-modify-replace as clients do it: controllers may write in between, so a
    conflict means read again and retry."""
    for _ in range(5):
        current = case.call(api_client, "read", name)
        current.metadata.labels = {**(current.metadata.labels or {}), key: value}
        try:
            return case.call(api_client, "replace", name, current)
        except ApiException as error:
            if error.status != 409:
                raise
    raise AssertionError(f"replace of {name} kept conflicting")


@pytest.mark.parametrize("kind", list(KINDS))
def test_typed_api_creates_reads_patches_replaces_and_deletes(api_client, kind):
    case = KINDS[kind]
    name = f"typed-{kind.split()[0].replace('.', '')}-{uuid.uuid4().hex[:6]}"
    created = case.call(api_client, "create", case.build(name))
    assert isinstance(created, case.model)
    assert created.metadata.name == name and created.metadata.uid
    case.check(created)

    read = case.call(api_client, "read", name)
    assert isinstance(read, case.model) and read.metadata.uid == created.metadata.uid

    patched = case.call(api_client, "patch", name, {"metadata": {"labels": {"patched": "yes"}}})
    assert patched.metadata.labels["patched"] == "yes"
    assert isinstance(patched, case.model)
    assert int(patched.metadata.resource_version) > int(created.metadata.resource_version)

    replaced = replace_with_label(api_client, case, name, "replaced", "yes")
    assert {"patched": "yes", "replaced": "yes"}.items() <= replaced.metadata.labels.items()
    # Replacing with a resourceVersion that was superseded is a conflict.
    created.metadata.labels = {"stale": "yes"}
    with pytest.raises(ApiException) as stale:
        case.call(api_client, "replace", name, created)
    assert stale.value.status == 409

    case.call(api_client, "delete", name)
    try:
        gone = case.call(api_client, "read", name)
    except ApiException as error:
        assert error.status == 404
    else:  # a namespace lingers as Terminating while the namespace controller empties it
        if kind in ("persistentvolumeclaim", "persistentvolume"):
            # StorageObjectInUseProtection (upstream): the kubernetes.io/pvc-protection and
            # pv-protection finalizers keep the object, marked for deletion, until the
            # protection controller sees it unused and removes them.
            assert gone.metadata.deletion_timestamp and gone.metadata.finalizers
            eventually(lambda: _gone(case, api_client, name), what=f"{kind} {name} deleted")
        else:
            assert kind == "namespace" and gone.status.phase == "Terminating"


def _gone(case, api_client, name) -> bool:
    try:
        case.call(api_client, "read", name)
    except ApiException as error:
        return error.status == 404
    return False


def test_deployment_scale_subresource_through_typed_api(api_client):
    apps = client.AppsV1Api(api_client)
    apps.create_namespaced_deployment(NAMESPACE, KINDS["deployment"].build("typed-scale"))
    scale = apps.patch_namespaced_deployment_scale("typed-scale", NAMESPACE, {"spec": {"replicas": 3}})
    assert isinstance(scale, client.V1Scale) and scale.spec.replicas == 3
    assert apps.read_namespaced_deployment("typed-scale", NAMESPACE).spec.replicas == 3
    apps.delete_namespaced_deployment("typed-scale", NAMESPACE)


def test_typed_list_returns_typed_items(api_client):
    core = client.CoreV1Api(api_client)
    core.create_namespaced_config_map(NAMESPACE, client.V1ConfigMap(metadata=meta("typed-list", suite="list")))
    listed = core.list_namespaced_config_map(NAMESPACE, label_selector="suite=list")
    assert isinstance(listed, client.V1ConfigMapList)
    assert [item.metadata.name for item in listed.items] == ["typed-list"]
    core.delete_namespaced_config_map("typed-list", NAMESPACE)


# --- kr8s -----------------------------------------------------------------------------------

try:
    import kr8s
except ImportError:  # the typed-client tests above still run
    kr8s = None

needs_kr8s = pytest.mark.skipif(kr8s is None, reason="kr8s is not installed (it is pinned in pyproject's test extras)")


@pytest.fixture(scope="module")
def kr8s_api(server, namespace):
    return kr8s.api(kubeconfig=str(server.kubeconfig), namespace=NAMESPACE)


@needs_kr8s
def test_kr8s_deployment_create_scale_patch_get_delete(kr8s_api):
    from kr8s.objects import Deployment

    deployment = Deployment({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "kr8s-web", "namespace": NAMESPACE},
        "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "kr8s-web"}},
                 "template": {"metadata": {"labels": {"app": "kr8s-web"}},
                              "spec": {"containers": [{"name": "web", "image": "pyk8s/busybox:1.35"}]}}},
    }, api=kr8s_api)
    deployment.create()
    assert deployment.exists()
    assert deployment.spec.revisionHistoryLimit == 10  # the server's reply, defaults included

    deployment.scale(3)
    assert Deployment.get("kr8s-web", namespace=NAMESPACE, api=kr8s_api).spec.replicas == 3

    deployment.patch({"metadata": {"labels": {"tier": "web"}}})
    assert deployment.labels["tier"] == "web"
    listed = kr8s_api.get("deployments", namespace=NAMESPACE, label_selector={"tier": "web"})
    assert [item.name for item in listed] == ["kr8s-web"]

    deployment.delete()
    with pytest.raises(kr8s.NotFoundError):
        Deployment.get("kr8s-web", namespace=NAMESPACE, api=kr8s_api)


@needs_kr8s
def test_kr8s_pod_get_and_list_by_namespace(kr8s_api):
    from kr8s.objects import Pod

    pod = Pod({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "kr8s-pod", "namespace": NAMESPACE,
                                                               "labels": {"from": "kr8s"}},
               "spec": {"containers": [{"name": "c", "image": "pyk8s/busybox:1.35", "command": ["sleep", "60"]}]}},
              api=kr8s_api)
    pod.create()
    fetched = Pod.get("kr8s-pod", namespace=NAMESPACE, api=kr8s_api)
    assert fetched.status.phase == "Pending"  # no node in this cluster
    assert fetched.spec.dnsPolicy == "ClusterFirst"
    names = [p.name for p in kr8s.get("pods", namespace=NAMESPACE, label_selector="from=kr8s", api=kr8s_api)]
    assert names == ["kr8s-pod"]
    pod.delete()
    pod.wait("delete", timeout=30)
    assert not pod.exists()


@needs_kr8s
def test_kr8s_reads_kubeconfig_from_environment(server, monkeypatch):
    monkeypatch.setenv("KUBECONFIG", str(server.kubeconfig))
    api = kr8s.api(namespace="default")  # a new client built from $KUBECONFIG alone
    assert api.version()["major"] == "1"
    assert "default" in [ns.name for ns in api.get("namespaces")]
