"""Server-side Table printing: columns and cells per kind, pod status rules, HumanDuration."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from pyk8s.api import tables
from pyk8s.api.resources import RESOURCES, Resource, by_kind
from pyk8s.api.tables import column_definitions, human_duration, row_cells

NOW_DATETIME = datetime(2026, 11, 27, 12, 0, 0, tzinfo=timezone.utc)
NOW = NOW_DATETIME.timestamp()


def ago(seconds: float = 0, *, minutes: float = 0, hours: float = 0, days: float = 0) -> str:
    moment = NOW_DATETIME - timedelta(seconds=seconds, minutes=minutes, hours=hours, days=days)
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def resource(group: str, kind: str) -> Resource:
    found = by_kind(group, kind)
    assert found is not None, (group, kind)
    return found


def cells_by_column(group: str, kind: str, obj: dict) -> dict:
    res = resource(group, kind)
    names = [c["name"] for c in column_definitions(res)]
    cells = row_cells(res, obj, NOW)
    assert len(cells) == len(names)
    return dict(zip(names, cells))


def meta(name: str, *, age_seconds: float = 3600, **extra) -> dict:
    return {"name": name, "namespace": "default", "creationTimestamp": ago(age_seconds), **extra}


# ------------------------------------------------------------------------------ human_duration

@pytest.mark.parametrize("seconds, expected", [
    (-5, "<invalid>"),
    (-2, "<invalid>"),
    (-1.5, "0s"),          # up to two seconds of clock skew counts as now
    (0, "0s"),
    (59.9, "59s"),
    (119, "119s"),
    (120, "2m"),
    (123, "2m3s"),
    (599, "9m59s"),
    (600, "10m"),
    (659, "10m"),
    (179 * 60 + 59, "179m"),
    (180 * 60, "3h"),
    (3 * 3600 + 4 * 60, "3h4m"),
    (8 * 3600 - 1, "7h59m"),
    (8 * 3600, "8h"),
    (47 * 3600 + 59 * 60, "47h"),
    (48 * 3600, "2d"),
    (2 * 86400 + 3 * 3600, "2d3h"),
    (8 * 86400 - 3600, "7d23h"),
    (8 * 86400, "8d"),
    (729 * 86400, "729d"),
    (730 * 86400, "2y"),
    (4 * 365 * 86400 + 12 * 86400, "4y12d"),
    (8 * 365 * 86400 - 86400, "7y364d"),
    (8 * 365 * 86400, "8y"),
    (9 * 365 * 86400 + 100 * 86400, "9y"),
])
def test_human_duration_follows_upstream_boundaries(seconds, expected):
    assert human_duration(seconds) == expected


def test_age_is_unknown_without_creation_timestamp():
    cells = cells_by_column("", "ConfigMap", {"metadata": {"name": "x"}, "data": {}})
    assert cells["Age"] == "<unknown>"


def test_age_reads_fractional_and_offset_timestamps():
    res = resource("", "ConfigMap")
    fractional = {"metadata": {"name": "x", "creationTimestamp": "2026-11-27T11:55:00.123456Z"}}
    offset = {"metadata": {"name": "x", "creationTimestamp": "2026-11-27T13:50:00+02:00"}}
    assert row_cells(res, fractional, NOW)[-1] == "4m59s"
    assert row_cells(res, offset, NOW)[-1] == "10m"


def test_unreadable_timestamp_is_unknown_not_an_error():
    cells = cells_by_column("", "ConfigMap", {"metadata": {"name": "x", "creationTimestamp": "yesterday"}})
    assert cells["Age"] == "<unknown>"


# ------------------------------------------------------------------------------ columns

def test_unknown_kind_gets_name_and_age_columns():
    widget = Resource("example.com", "v1", "widgets", "Widget", True)
    columns = column_definitions(widget)
    assert [(c["name"], c["type"], c["format"], c["priority"]) for c in columns] == [
        ("Name", "string", "name", 0), ("Age", "string", "", 0)]
    assert all(c["description"] for c in columns)
    assert row_cells(widget, {"metadata": {"name": "w", "creationTimestamp": ago(30)}}, NOW) == ["w", "30s"]


EXPECTED_COLUMNS = {
    ("", "Namespace"): (["Name", "Status", "Age"], []),
    ("", "Pod"): (["Name", "Ready", "Status", "Restarts", "Age"],
                  ["IP", "Node", "Nominated Node", "Readiness Gates"]),
    ("", "Service"): (["Name", "Type", "Cluster-IP", "External-IP", "Port(s)", "Age"], ["Selector"]),
    ("", "Endpoints"): (["Name", "Endpoints", "Age"], []),
    ("", "ConfigMap"): (["Name", "Data", "Age"], []),
    ("", "Secret"): (["Name", "Type", "Data", "Age"], []),
    ("", "Node"): (["Name", "Status", "Roles", "Age", "Version"],
                   ["Internal-IP", "External-IP", "OS-Image", "Kernel-Version", "Container-Runtime"]),
    ("", "Event"): (["Last Seen", "Type", "Reason", "Object", "Message"],
                    ["Subobject", "Source", "First Seen", "Count", "Name"]),
    ("", "ServiceAccount"): (["Name", "Secrets", "Age"], []),
    ("", "PersistentVolume"): (["Name", "Capacity", "Access Modes", "Reclaim Policy", "Status", "Claim",
                                "StorageClass", "VolumeAttributesClass", "Reason", "Age"], ["VolumeMode"]),
    ("", "PersistentVolumeClaim"): (["Name", "Status", "Volume", "Capacity", "Access Modes", "StorageClass",
                                     "VolumeAttributesClass", "Age"], ["VolumeMode"]),
    ("", "ReplicationController"): (["Name", "Desired", "Current", "Ready", "Age"],
                                    ["Containers", "Images", "Selector"]),
    ("apps", "Deployment"): (["Name", "Ready", "Up-to-date", "Available", "Age"],
                             ["Containers", "Images", "Selector"]),
    ("apps", "ReplicaSet"): (["Name", "Desired", "Current", "Ready", "Age"], ["Containers", "Images", "Selector"]),
    ("apps", "DaemonSet"): (["Name", "Desired", "Current", "Ready", "Up-to-date", "Available", "Node Selector",
                             "Age"], ["Containers", "Images", "Selector"]),
    ("apps", "StatefulSet"): (["Name", "Ready", "Age"], ["Containers", "Images"]),
    ("apps", "ControllerRevision"): (["Name", "Controller", "Revision", "Age"], []),
    ("batch", "Job"): (["Name", "Status", "Completions", "Duration", "Age"], ["Containers", "Images", "Selector"]),
    ("batch", "CronJob"): (["Name", "Schedule", "Timezone", "Suspend", "Active", "Last Schedule", "Age"],
                           ["Containers", "Images", "Selector"]),
    ("storage.k8s.io", "StorageClass"): (["Name", "Provisioner", "ReclaimPolicy", "VolumeBindingMode",
                                          "AllowVolumeExpansion", "Age"], []),
    ("discovery.k8s.io", "EndpointSlice"): (["Name", "AddressType", "Ports", "Endpoints", "Age"], []),
    ("coordination.k8s.io", "Lease"): (["Name", "Holder", "Age"], []),
    ("certificates.k8s.io", "CertificateSigningRequest"):
        (["Name", "Age", "SignerName", "Requestor", "RequestedDuration", "Condition"], []),
    ("rbac.authorization.k8s.io", "Role"): (["Name", "Created At"], []),
    ("rbac.authorization.k8s.io", "ClusterRole"): (["Name", "Created At"], []),
    ("rbac.authorization.k8s.io", "RoleBinding"): (["Name", "Role", "Age"], ["Users", "Groups", "ServiceAccounts"]),
    ("rbac.authorization.k8s.io", "ClusterRoleBinding"): (["Name", "Role", "Age"],
                                                          ["Users", "Groups", "ServiceAccounts"]),
    ("events.k8s.io", "Event"): (["Last Seen", "Type", "Reason", "Object", "Message"],
                                 ["Subobject", "Source", "First Seen", "Count", "Name"]),
    # the access reviews are never listed: upstream's default Name and Age
    ("authorization.k8s.io", "LocalSubjectAccessReview"): (["Name", "Age"], []),
    ("authorization.k8s.io", "SelfSubjectAccessReview"): (["Name", "Age"], []),
    ("authorization.k8s.io", "SelfSubjectRulesReview"): (["Name", "Age"], []),
    ("authorization.k8s.io", "SubjectAccessReview"): (["Name", "Age"], []),
    ("authentication.k8s.io", "SelfSubjectReview"): (["Name", "Age"], []),
}


def test_every_served_kind_has_an_expected_column_set():
    assert {(r.group, r.kind) for r in RESOURCES} == set(EXPECTED_COLUMNS)


@pytest.mark.parametrize("group, kind", sorted(EXPECTED_COLUMNS))
def test_columns_split_into_normal_and_wide_like_upstream(group, kind):
    columns = column_definitions(resource(group, kind))
    normal, wide = EXPECTED_COLUMNS[(group, kind)]
    assert [c["name"] for c in columns if c["priority"] == 0] == normal
    assert [c["name"] for c in columns if c["priority"] >= 1] == wide
    for column in columns:
        assert set(column) == {"name", "type", "format", "description", "priority"}
        assert column["description"]
        assert column["format"] == ("name" if column["name"] == "Name" else "")


def test_column_types_follow_upstream():
    def types(group, kind):
        return {c["name"]: c["type"] for c in column_definitions(resource(group, kind))}
    assert types("apps", "ReplicaSet")["Desired"] == "integer"
    assert types("apps", "DaemonSet")["Available"] == "integer"
    assert types("batch", "CronJob")["Suspend"] == "boolean"
    assert types("batch", "CronJob")["Active"] == "integer"
    assert types("", "Pod")["Restarts"] == "string"
    assert types("apps", "Deployment")["Up-to-date"] == "string"


def test_column_definitions_are_copies_callers_may_mutate():
    pods = resource("", "Pod")
    column_definitions(pods)[0]["name"] = "Mangled"
    assert column_definitions(pods)[0]["name"] == "Name"


HOSTILE_OBJECTS = [
    {},
    {"metadata": 5, "spec": "x", "status": [], "data": "x", "subsets": {"a": 1}, "secrets": 3,
     "ports": "p", "endpoints": None, "involvedObject": [], "regarding": "r", "series": "s"},
    {"metadata": {"name": 7, "labels": "x", "annotations": [], "ownerReferences": [None, 1, {"controller": True}],
                  "creationTimestamp": 12, "deletionTimestamp": "2026-01-01T00:00:00Z"},
     "spec": {"containers": "x", "initContainers": [1, None, {"restartPolicy": "Always"}], "ports": [None, "x", {}],
              "selector": {"matchExpressions": [None, {"operator": "In"}]}, "template": "t", "jobTemplate": [],
              "readinessGates": [None], "capacity": "c", "claimRef": "c", "replicas": "many", "completions": None},
     "status": {"containerStatuses": [None, {"state": "x", "lastState": 1}], "conditions": "x",
                "initContainerStatuses": [{"state": {"terminated": "x", "waiting": 3}}], "podIPs": [None],
                "loadBalancer": {"ingress": [None]}, "addresses": [None], "nodeInfo": "n", "active": {}}},
]


@pytest.mark.parametrize("res", RESOURCES, ids=lambda r: f"{r.group or 'core'}/{r.kind}")
@pytest.mark.parametrize("index", range(len(HOSTILE_OBJECTS)))
def test_partial_or_mistyped_objects_still_give_a_full_row(res, index):
    cells = row_cells(res, HOSTILE_OBJECTS[index], NOW)
    assert len(cells) == len(column_definitions(res))
    assert all(cell is None or isinstance(cell, (str, int, bool)) for cell in cells)


# ------------------------------------------------------------------------------ pods

def container_status(name="app", *, ready=True, state=None, restarts=0, last_finished=None, started=None):
    status = {"name": name, "ready": ready, "restartCount": restarts,
              "state": state if state is not None else {"running": {"startedAt": ago(minutes=30)}}}
    if last_finished is not None:
        status["lastState"] = {"terminated": {"exitCode": 1, "reason": "Error", "finishedAt": last_finished}}
    if started is not None:
        status["started"] = started
    return status


def pod(*, containers=("app",), init_containers=(), statuses=None, init_statuses=None, phase="Running",
        **extra) -> dict:
    status = {"phase": phase, "conditions": [], **extra.pop("status_extra", {})}
    if statuses is not None:
        status["containerStatuses"] = statuses
    if init_statuses is not None:
        status["initContainerStatuses"] = init_statuses
    spec = {"containers": [{"name": n, "image": "busybox"} for n in containers], **extra.pop("spec_extra", {})}
    if init_containers:
        spec["initContainers"] = list(init_containers)
    return {"metadata": meta("web-0", **extra.pop("meta_extra", {})), "spec": spec, "status": status}


def pod_cells(obj: dict) -> dict:
    return cells_by_column("", "Pod", obj)


def test_running_pod_row_matches_kubectl_get_pods_wide():
    obj = pod(containers=("app", "sidecar"),
              statuses=[container_status("app"), container_status("sidecar")],
              spec_extra={"nodeName": "node-1"},
              status_extra={"podIP": "10.42.0.7", "podIPs": [{"ip": "10.42.0.7"}, {"ip": "fd00::7"}]})
    assert row_cells(resource("", "Pod"), obj, NOW) == [
        "web-0", "2/2", "Running", "0", "60m", "10.42.0.7", "node-1", "<none>", "<none>"]


def test_pod_ip_falls_back_to_pod_ip_field_and_node_to_none():
    obj = pod(statuses=[container_status()], status_extra={"podIP": "10.42.0.9"})
    cells = pod_cells(obj)
    assert (cells["IP"], cells["Node"]) == ("10.42.0.9", "<none>")
    assert pod_cells(pod(statuses=[]))["IP"] == "<none>"


def test_pending_pod_without_statuses_shows_phase_and_zero_ready():
    cells = pod_cells(pod(phase="Pending", containers=("a", "b")))
    assert (cells["Ready"], cells["Status"], cells["Restarts"]) == ("0/2", "Pending", "0")


def test_unready_running_container_is_not_counted_ready():
    cells = pod_cells(pod(statuses=[container_status(ready=False)]))
    assert (cells["Ready"], cells["Status"]) == ("0/1", "Running")


@pytest.mark.parametrize("state, expected", [
    ({"waiting": {"reason": "ContainerCreating"}}, "ContainerCreating"),
    ({"waiting": {"reason": "CrashLoopBackOff", "message": "back-off"}}, "CrashLoopBackOff"),
    ({"waiting": {"reason": "ImagePullBackOff"}}, "ImagePullBackOff"),
    ({"waiting": {}}, "Running"),  # a waiting state without a reason leaves the phase
    ({"terminated": {"exitCode": 137, "reason": "OOMKilled"}}, "OOMKilled"),
    ({"terminated": {"exitCode": 1, "reason": "Error"}}, "Error"),
    ({"terminated": {"exitCode": 0, "reason": "Completed"}}, "Completed"),
    ({"terminated": {"exitCode": 3}}, "ExitCode:3"),
    ({"terminated": {"exitCode": 0, "signal": 15}}, "Signal:15"),
])
def test_container_state_reason_becomes_pod_status(state, expected):
    cells = pod_cells(pod(statuses=[container_status(ready=False, state=state)]))
    assert cells["Status"] == expected


def test_first_container_reason_wins_over_later_ones():
    statuses = [container_status("a", ready=False, state={"waiting": {"reason": "ErrImagePull"}}),
                container_status("b", ready=False, state={"terminated": {"exitCode": 1, "reason": "Error"}})]
    assert pod_cells(pod(containers=("a", "b"), statuses=statuses))["Status"] == "ErrImagePull"


def test_completed_container_next_to_running_one_shows_running_or_not_ready():
    statuses = [container_status("a", ready=False, state={"terminated": {"exitCode": 0, "reason": "Completed"}}),
                container_status("b")]
    ready = pod(containers=("a", "b"), statuses=statuses)
    ready["status"]["conditions"] = [{"type": "Ready", "status": "True"}]
    not_ready = pod(containers=("a", "b"), statuses=statuses)
    assert (pod_cells(ready)["Status"], pod_cells(ready)["Ready"]) == ("Running", "1/2")
    assert pod_cells(not_ready)["Status"] == "NotReady"


def test_succeeded_pod_shows_completed():
    obj = pod(phase="Succeeded",
              statuses=[container_status(ready=False, state={"terminated": {"exitCode": 0, "reason": "Completed"}})])
    assert pod_cells(obj)["Status"] == "Completed"


def test_status_reason_replaces_phase():
    obj = pod(phase="Failed", status_extra={"reason": "Evicted"})
    assert pod_cells(obj)["Status"] == "Evicted"


def test_pod_being_deleted_shows_terminating():
    obj = pod(statuses=[container_status()], meta_extra={"deletionTimestamp": ago(5)})
    assert pod_cells(obj)["Status"] == "Terminating"


def test_finished_pod_being_deleted_keeps_its_final_status():
    obj = pod(phase="Succeeded", meta_extra={"deletionTimestamp": ago(5)},
              statuses=[container_status(ready=False, state={"terminated": {"exitCode": 0, "reason": "Completed"}})])
    assert pod_cells(obj)["Status"] == "Completed"


def test_pod_on_lost_node_being_deleted_shows_unknown():
    obj = pod(statuses=[container_status()], meta_extra={"deletionTimestamp": ago(5)},
              status_extra={"reason": "NodeLost"})
    assert pod_cells(obj)["Status"] == "Unknown"
    not_deleted = pod(statuses=[container_status()], status_extra={"reason": "NodeLost"})
    assert pod_cells(not_deleted)["Status"] == "NodeLost"


def test_scheduling_gated_pod_says_so():
    obj = pod(phase="Pending")
    obj["status"]["conditions"] = [{"type": "PodScheduled", "status": "False", "reason": "SchedulingGated"}]
    assert pod_cells(obj)["Status"] == "SchedulingGated"


INIT_A = {"name": "init-a", "image": "busybox"}
INIT_B = {"name": "init-b", "image": "busybox"}
DONE = {"terminated": {"exitCode": 0, "reason": "Completed"}}


@pytest.mark.parametrize("init_states, expected", [
    ([{"running": {}}, {"waiting": {"reason": "PodInitializing"}}], "Init:0/2"),
    ([DONE, {"running": {}}], "Init:1/2"),
    ([DONE, {"waiting": {"reason": "PodInitializing"}}], "Init:1/2"),
    ([{"waiting": {"reason": "CrashLoopBackOff"}}, {"waiting": {}}], "Init:CrashLoopBackOff"),
    ([{"terminated": {"exitCode": 1, "reason": "Error"}}, {"waiting": {}}], "Init:Error"),
    ([{"terminated": {"exitCode": 2}}, {"waiting": {}}], "Init:ExitCode:2"),
    ([{"terminated": {"exitCode": 137, "signal": 9}}, {"waiting": {}}], "Init:Signal:9"),
    ([{"terminated": {"exitCode": 0, "signal": 9}}, {"running": {}}], "Init:1/2"),  # exit 0 is success
])
def test_init_container_progress_and_failures(init_states, expected):
    init_statuses = [container_status(n, ready=False, state=s) for n, s in zip(("init-a", "init-b"), init_states)]
    obj = pod(phase="Pending", init_containers=(INIT_A, INIT_B), init_statuses=init_statuses,
              statuses=[container_status(ready=False, state={"waiting": {"reason": "PodInitializing"}})])
    assert pod_cells(obj)["Status"] == expected


def test_finished_init_containers_hand_over_to_app_containers():
    init_statuses = [container_status("init-a", ready=False, state=DONE, restarts=2)]
    obj = pod(init_containers=(INIT_A,), init_statuses=init_statuses, statuses=[container_status(restarts=1)])
    cells = pod_cells(obj)
    # Restarts of ordinary init containers no longer count once the pod is initialised.
    assert (cells["Status"], cells["Ready"], cells["Restarts"]) == ("Running", "1/1", "1")


def test_restarts_while_initialising_count_init_container_restarts():
    init_statuses = [container_status("init-a", ready=False, restarts=4,
                                      state={"waiting": {"reason": "CrashLoopBackOff"}},
                                      last_finished=ago(minutes=5))]
    obj = pod(phase="Pending", init_containers=(INIT_A,), init_statuses=init_statuses)
    assert pod_cells(obj)["Restarts"] == "4 (5m ago)"


def test_restarts_show_how_long_ago_the_last_container_terminated():
    statuses = [container_status("a", restarts=3, last_finished=ago(minutes=20)),
                container_status("b", restarts=2, last_finished=ago(minutes=5))]
    assert pod_cells(pod(containers=("a", "b"), statuses=statuses))["Restarts"] == "5 (5m ago)"


def test_restarts_without_a_termination_time_are_a_plain_count():
    assert pod_cells(pod(statuses=[container_status(restarts=2)]))["Restarts"] == "2"


def test_sidecar_init_containers_count_as_pod_containers():
    sidecar = {"name": "proxy", "image": "busybox", "restartPolicy": "Always"}
    init_statuses = [container_status("proxy", ready=True, started=True, restarts=1, last_finished=ago(120),
                                      state={"running": {}})]
    obj = pod(init_containers=(sidecar,), init_statuses=init_statuses, statuses=[container_status()])
    obj["status"]["conditions"] = [{"type": "Initialized", "status": "True"}]
    cells = pod_cells(obj)
    assert (cells["Ready"], cells["Status"], cells["Restarts"]) == ("2/2", "Running", "1 (2m ago)")


def test_readiness_gates_count_true_conditions_and_nominated_node_shows():
    obj = pod(statuses=[container_status()],
              spec_extra={"readinessGates": [{"conditionType": "example.com/lb"},
                                             {"conditionType": "example.com/dns"}]},
              status_extra={"nominatedNodeName": "node-2"})
    obj["status"]["conditions"] = [{"type": "example.com/lb", "status": "True"},
                                   {"type": "example.com/dns", "status": "False"}]
    cells = pod_cells(obj)
    assert (cells["Readiness Gates"], cells["Nominated Node"]) == ("1/2", "node-2")


# ------------------------------------------------------------------------------ core kinds

def test_namespace_row_shows_phase():
    obj = {"metadata": meta("team-a", age_seconds=86400 * 3), "status": {"phase": "Active"}}
    assert row_cells(resource("", "Namespace"), obj, NOW) == ["team-a", "Active", "3d"]


def service(spec: dict, status: dict | None = None) -> dict:
    return {"metadata": meta("web", age_seconds=90), "spec": spec, "status": status or {}}


def test_cluster_ip_service_row():
    obj = service({"type": "ClusterIP", "clusterIP": "10.43.12.1", "clusterIPs": ["10.43.12.1"],
                   "ports": [{"port": 80, "targetPort": 8080, "protocol": "TCP"},
                             {"port": 53, "protocol": "UDP"}],
                   "selector": {"tier": "front", "app": "web"}})
    assert row_cells(resource("", "Service"), obj, NOW) == [
        "web", "ClusterIP", "10.43.12.1", "<none>", "80/TCP,53/UDP", "90s", "app=web,tier=front"]


def test_node_port_service_shows_node_ports_and_external_ips():
    obj = service({"type": "NodePort", "clusterIPs": ["10.43.0.20"], "externalIPs": ["192.0.2.1"],
                   "ports": [{"port": 80, "nodePort": 30080, "protocol": "TCP"}]})
    cells = cells_by_column("", "Service", obj)
    assert (cells["Port(s)"], cells["External-IP"], cells["Selector"]) == ("80:30080/TCP", "192.0.2.1", "<none>")


def test_load_balancer_service_is_pending_until_it_has_an_ingress():
    spec = {"type": "LoadBalancer", "clusterIP": "10.43.0.30", "ports": [{"port": 8080, "nodePort": 31000}]}
    assert cells_by_column("", "Service", service(spec))["External-IP"] == "<pending>"
    ingress = {"loadBalancer": {"ingress": [{"ip": "192.168.1.9"}, {"hostname": "lb.example"},
                                            {"ip": "192.168.1.9"}]}}
    spec_with_external = {**spec, "externalIPs": ["203.0.113.5"]}
    cells = cells_by_column("", "Service", service(spec_with_external, ingress))
    assert cells["External-IP"] == "192.168.1.9,lb.example,203.0.113.5"
    assert cells["Port(s)"] == "8080:31000/TCP"  # protocol defaults to TCP


def test_external_name_and_headless_services():
    external = cells_by_column("", "Service", service({"type": "ExternalName", "externalName": "db.example.com"}))
    assert (external["Cluster-IP"], external["External-IP"], external["Port(s)"]) == (
        "<none>", "db.example.com", "<none>")
    headless = cells_by_column("", "Service", service({"type": "ClusterIP", "clusterIP": "None",
                                                       "clusterIPs": ["None"]}))
    assert headless["Cluster-IP"] == "None"


def test_endpoints_list_three_addresses_then_count_the_rest():
    obj = {"metadata": meta("web"), "subsets": [
        {"addresses": [{"ip": "10.42.0.4"}, {"ip": "10.42.0.5"}],
         "ports": [{"name": "http", "port": 80}, {"name": "https", "port": 443}]},
        {"addresses": [{"ip": "fd00::9"}], "ports": [{"port": 8080}]}]}
    assert row_cells(resource("", "Endpoints"), obj, NOW) == [
        "web", "10.42.0.4:80,10.42.0.5:80,10.42.0.4:443 + 2 more...", "60m"]


def test_endpoints_without_subsets_or_ports():
    assert cells_by_column("", "Endpoints", {"metadata": meta("none")})["Endpoints"] == "<none>"
    headless = {"metadata": meta("db"), "subsets": [{"addresses": [{"ip": "fd00::1"}, {"ip": "10.42.0.3"}]}]}
    assert cells_by_column("", "Endpoints", headless)["Endpoints"] == "fd00::1,10.42.0.3"
    ipv6 = {"metadata": meta("v6"), "subsets": [{"addresses": [{"ip": "fd00::1"}], "ports": [{"port": 80}]}]}
    assert cells_by_column("", "Endpoints", ipv6)["Endpoints"] == "[fd00::1]:80"


def test_config_map_counts_text_and_binary_keys():
    obj = {"metadata": meta("settings", age_seconds=42), "data": {"a": "1", "b": "2"}, "binaryData": {"c": "AA=="}}
    assert row_cells(resource("", "ConfigMap"), obj, NOW) == ["settings", 3, "42s"]


def test_secret_row_shows_type_and_key_count():
    obj = {"metadata": meta("tls", age_seconds=7200), "type": "kubernetes.io/tls",
           "data": {"tls.crt": "eA==", "tls.key": "eQ=="}}
    assert row_cells(resource("", "Secret"), obj, NOW) == ["tls", "kubernetes.io/tls", 2, "120m"]


def node(**extra) -> dict:
    return {
        "metadata": {"name": "node-1", "creationTimestamp": ago(days=10),
                     "labels": {"node-role.kubernetes.io/control-plane": "", "node-role.kubernetes.io/master": "true",
                                "kubernetes.io/role": "worker", "kubernetes.io/hostname": "node-1"}},
        "spec": extra.pop("spec", {}),
        "status": {"conditions": [{"type": "MemoryPressure", "status": "False"},
                                  {"type": "Ready", "status": "True"}],
                   "addresses": [{"type": "Hostname", "address": "node-1"},
                                 {"type": "InternalIP", "address": "10.0.0.5"},
                                 {"type": "InternalIP", "address": "10.0.0.6"}],
                   "nodeInfo": {"kubeletVersion": "v1.32.4", "osImage": "Debian GNU/Linux 12 (bookworm)",
                                "kernelVersion": "6.1.0-18-amd64",
                                "containerRuntimeVersion": "containerd://1.6.20"}},
    }


def test_node_row_matches_kubectl_get_nodes_wide():
    assert row_cells(resource("", "Node"), node(), NOW) == [
        "node-1", "Ready", "control-plane,master,worker", "10d", "v1.32.4", "10.0.0.5", "<none>",
        "Debian GNU/Linux 12 (bookworm)", "6.1.0-18-amd64", "containerd://1.6.20"]


def test_cordoned_and_unready_nodes():
    cordoned = cells_by_column("", "Node", node(spec={"unschedulable": True}))
    assert cordoned["Status"] == "Ready,SchedulingDisabled"
    not_ready = node()
    not_ready["status"]["conditions"] = [{"type": "Ready", "status": "Unknown"}]
    assert cells_by_column("", "Node", not_ready)["Status"] == "NotReady"
    bare = {"metadata": {"name": "n", "labels": {"node-role.kubernetes.io/": ""}}}
    bare_cells = cells_by_column("", "Node", bare)
    assert (bare_cells["Status"], bare_cells["Roles"], bare_cells["OS-Image"]) == ("Unknown", "<none>", "<unknown>")


def core_event(**extra) -> dict:
    event = {
        "metadata": {"name": "web-0.17a2b3c4d5e6f7a8", "namespace": "default", "creationTimestamp": ago(300)},
        "involvedObject": {"kind": "Pod", "namespace": "default", "name": "web-0",
                           "fieldPath": "spec.containers{app}"},
        "reason": "Pulled", "message": "Container image \"busybox\" already present on machine\n",
        "source": {"component": "kubelet", "host": "node-1"},
        "firstTimestamp": ago(300), "lastTimestamp": ago(60), "count": 4, "type": "Normal",
    }
    event.update(extra)
    return event


def test_core_event_row_matches_kubectl_get_events_wide():
    assert row_cells(resource("", "Event"), core_event(), NOW) == [
        "60s", "Normal", "Pulled", "pod/web-0", "spec.containers{app}", "kubelet, node-1",
        "Container image \"busybox\" already present on machine", "5m", 4, "web-0.17a2b3c4d5e6f7a8"]


def test_event_times_fall_back_and_series_take_over():
    only_event_time = core_event(firstTimestamp=None, lastTimestamp=None, count=0,
                                 eventTime="2026-11-27T11:58:00.000000Z",
                                 source={}, reportingComponent="default-scheduler", reportingInstance="")
    cells = cells_by_column("", "Event", only_event_time)
    assert (cells["Last Seen"], cells["First Seen"], cells["Count"], cells["Source"]) == (
        "2m", "2m", 1, "default-scheduler")
    series = core_event(series={"count": 9, "lastObservedTime": "2026-11-27T11:59:30.000000Z"})
    series_cells = cells_by_column("", "Event", series)
    assert (series_cells["Last Seen"], series_cells["Count"]) == ("30s", 9)


def test_event_about_an_unnamed_object_shows_only_the_kind():
    obj = core_event(involvedObject={"kind": "Node"})
    assert cells_by_column("", "Event", obj)["Object"] == "node"


def test_events_v1_event_prints_like_a_core_event():
    obj = {
        "metadata": {"name": "web.1", "namespace": "default", "creationTimestamp": ago(100)},
        "eventTime": "2026-11-27T11:58:20.123456Z", "reportingController": "deployment-controller",
        "reportingInstance": "pyk8s-server", "action": "Scaling", "reason": "ScalingReplicaSet",
        "regarding": {"kind": "Deployment", "namespace": "default", "name": "web", "apiVersion": "apps/v1"},
        "note": "Scaled up replica set web-7d4b9c to 3", "type": "Normal",
    }
    assert row_cells(resource("events.k8s.io", "Event"), obj, NOW) == [
        "99s", "Normal", "ScalingReplicaSet", "deployment/web", "", "deployment-controller, pyk8s-server",
        "Scaled up replica set web-7d4b9c to 3", "99s", 1, "web.1"]


def test_service_account_counts_secrets():
    obj = {"metadata": meta("default", age_seconds=86400 * 400), "secrets": [{"name": "default-token"}]}
    assert row_cells(resource("", "ServiceAccount"), obj, NOW) == ["default", 1, "400d"]


def persistent_volume(**extra) -> dict:
    return {
        "metadata": {"name": "pvc-1234", "creationTimestamp": ago(600), **extra.pop("meta_extra", {})},
        "spec": {"capacity": {"storage": "1Gi"}, "accessModes": ["ReadWriteMany", "ReadWriteOnce"],
                 "persistentVolumeReclaimPolicy": "Delete", "storageClassName": "local-path",
                 "claimRef": {"kind": "PersistentVolumeClaim", "namespace": "default", "name": "data"},
                 "volumeMode": "Filesystem", "hostPath": {"path": "/var/lib/pyk8s/storage/pvc-1234"}},
        "status": {"phase": "Bound"},
    }


def test_bound_persistent_volume_row():
    assert row_cells(resource("", "PersistentVolume"), persistent_volume(), NOW) == [
        "pvc-1234", "1Gi", "RWO,RWX", "Delete", "Bound", "default/data", "local-path", "<unset>", "", "10m",
        "Filesystem"]


def test_persistent_volume_being_deleted_and_beta_class_annotation():
    obj = persistent_volume(meta_extra={"deletionTimestamp": ago(1),
                                        "annotations": {"volume.beta.kubernetes.io/storage-class": "slow"}})
    cells = cells_by_column("", "PersistentVolume", obj)
    assert (cells["Status"], cells["StorageClass"]) == ("Terminating", "slow")


def test_pending_claim_has_no_capacity_and_bound_claim_shows_the_volume():
    pending = {"metadata": meta("data", age_seconds=5),
               "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}},
                        "storageClassName": "local-path", "volumeMode": "Filesystem"},
               "status": {"phase": "Pending"}}
    assert row_cells(resource("", "PersistentVolumeClaim"), pending, NOW) == [
        "data", "Pending", "", "", "", "local-path", "<unset>", "5s", "Filesystem"]
    bound = {**pending, "spec": {**pending["spec"], "volumeName": "pvc-1234"},
             "status": {"phase": "Bound", "accessModes": ["ReadWriteOnce"], "capacity": {"storage": "1Gi"}}}
    cells = cells_by_column("", "PersistentVolumeClaim", bound)
    assert (cells["Status"], cells["Volume"], cells["Capacity"], cells["Access Modes"]) == (
        "Bound", "pvc-1234", "1Gi", "RWO")


def pod_template(*containers: tuple[str, str], labels=None) -> dict:
    return {"metadata": {"labels": labels or {"app": "web"}},
            "spec": {"containers": [{"name": n, "image": i} for n, i in containers]}}


def test_replication_controller_row():
    obj = {"metadata": meta("legacy"), "spec": {"replicas": 3, "selector": {"app": "legacy"},
                                                "template": pod_template(("app", "busybox:1.36"))},
           "status": {"replicas": 3, "readyReplicas": 2}}
    assert row_cells(resource("", "ReplicationController"), obj, NOW) == [
        "legacy", 3, 3, 2, "60m", "app", "busybox:1.36", "app=legacy"]


# ------------------------------------------------------------------------------ apps, batch

def test_deployment_row_with_set_based_selector():
    obj = {"metadata": meta("web", age_seconds=45),
           "spec": {"replicas": 3,
                    "selector": {"matchLabels": {"app": "web"},
                                 "matchExpressions": [{"key": "tier", "operator": "In", "values": ["front", "api"]},
                                                      {"key": "canary", "operator": "DoesNotExist"},
                                                      {"key": "env", "operator": "NotIn", "values": ["dev"]},
                                                      {"key": "zone", "operator": "Exists"}]},
                    "template": pod_template(("app", "nginx:1.27"), ("log", "busybox"))},
           "status": {"replicas": 3, "updatedReplicas": 3, "readyReplicas": 2, "availableReplicas": 2}}
    assert row_cells(resource("apps", "Deployment"), obj, NOW) == [
        "web", "2/3", 3, 2, "45s", "app,log", "nginx:1.27,busybox",
        "app=web,!canary,env notin (dev),tier in (api,front),zone"]


def test_deployment_selector_empty_or_invalid():
    empty = {"metadata": meta("a"), "spec": {"selector": {}}}
    assert cells_by_column("apps", "Deployment", empty)["Selector"] == ""
    invalid = {"metadata": meta("b"), "spec": {"selector": {"matchExpressions": [
        {"key": "tier", "operator": "Near", "values": ["x"]}]}}}
    assert cells_by_column("apps", "Deployment", invalid)["Selector"] == "<invalid>"


def test_replica_set_row_and_selector_edge_cases():
    obj = {"metadata": meta("web-7d4b9c"),
           "spec": {"replicas": 3, "selector": {"matchLabels": {"app": "web", "pod-template-hash": "7d4b9c"}},
                    "template": pod_template(("app", "nginx"))},
           "status": {"replicas": 3, "readyReplicas": 1}}
    assert row_cells(resource("apps", "ReplicaSet"), obj, NOW) == [
        "web-7d4b9c", 3, 3, 1, "60m", "app", "nginx", "app=web,pod-template-hash=7d4b9c"]
    no_selector = {"metadata": meta("x"), "spec": {"replicas": 0}}
    assert cells_by_column("apps", "ReplicaSet", no_selector)["Selector"] == "<none>"
    in_without_values = {"metadata": meta("y"), "spec": {"selector": {"matchExpressions": [
        {"key": "tier", "operator": "In", "values": []}]}}}
    assert cells_by_column("apps", "ReplicaSet", in_without_values)["Selector"] == "<error>"
    bad_key = {"metadata": meta("z"), "spec": {"selector": {"matchLabels": {"bad key": "v"}}}}
    assert cells_by_column("apps", "ReplicaSet", bad_key)["Selector"] == "<error>"


def test_daemon_set_row_shows_node_selector():
    obj = {"metadata": meta("fluentd", age_seconds=86400 + 3600 * 5),
           "spec": {"selector": {"matchLabels": {"name": "fluentd"}},
                    "template": {"spec": {"nodeSelector": {"kubernetes.io/os": "linux", "disk": "ssd"},
                                          "containers": [{"name": "fluentd", "image": "fluentd:v1"}]}}},
           "status": {"desiredNumberScheduled": 2, "currentNumberScheduled": 2, "numberReady": 1,
                      "updatedNumberScheduled": 2, "numberAvailable": 1}}
    assert row_cells(resource("apps", "DaemonSet"), obj, NOW) == [
        "fluentd", 2, 2, 1, 2, 1, "disk=ssd,kubernetes.io/os=linux", "29h", "fluentd", "fluentd:v1",
        "name=fluentd"]


def test_stateful_set_row_shows_ready_of_desired():
    obj = {"metadata": meta("db"), "spec": {"replicas": 2, "template": pod_template(("pg", "postgres:16"))},
           "status": {"replicas": 2, "readyReplicas": 1}}
    assert row_cells(resource("apps", "StatefulSet"), obj, NOW) == ["db", "1/2", "60m", "pg", "postgres:16"]


def test_controller_revision_names_its_controller_with_group():
    obj = {"metadata": meta("fluentd-6b5c7d8f9", ownerReferences=[
        {"apiVersion": "apps/v1", "kind": "DaemonSet", "name": "fluentd", "uid": "u", "controller": True}]),
        "revision": 2}
    assert row_cells(resource("apps", "ControllerRevision"), obj, NOW) == [
        "fluentd-6b5c7d8f9", "daemonset.apps/fluentd", 2, "60m"]
    core_owner = {"metadata": meta("r", ownerReferences=[
        {"apiVersion": "v1", "kind": "Pod", "name": "p", "controller": True}]), "revision": 1}
    assert cells_by_column("apps", "ControllerRevision", core_owner)["Controller"] == "pod/p"


def job(spec: dict, status: dict, **meta_extra) -> dict:
    return {"metadata": meta("pi", **meta_extra),
            "spec": {"template": pod_template(("pi", "perl:5.34")), "selector": {
                "matchLabels": {"batch.kubernetes.io/controller-uid": "abc"}}, **spec},
            "status": status}


def test_completed_job_row_shows_duration_between_start_and_completion():
    obj = job({"completions": 1, "parallelism": 1},
              {"succeeded": 1, "startTime": ago(minutes=10), "completionTime": ago(minutes=9, seconds=-5),
               "conditions": [{"type": "SuccessCriteriaMet", "status": "True"},
                              {"type": "Complete", "status": "True"}]})
    assert row_cells(resource("batch", "Job"), obj, NOW) == [
        "pi", "Complete", "1/1", "65s", "60m", "pi", "perl:5.34", "batch.kubernetes.io/controller-uid=abc"]


def test_running_job_duration_counts_to_now_and_parallel_completions():
    obj = job({"parallelism": 3}, {"active": 3, "startTime": ago(minutes=3, seconds=4)})
    cells = cells_by_column("batch", "Job", obj)
    assert (cells["Status"], cells["Completions"], cells["Duration"]) == ("Running", "0/1 of 3", "3m4s")
    not_started = cells_by_column("batch", "Job", job({"completions": 5}, {}))
    assert (not_started["Completions"], not_started["Duration"]) == ("0/5", "")


@pytest.mark.parametrize("conditions, deleting, expected", [
    ([{"type": "Failed", "status": "True"}], False, "Failed"),
    ([{"type": "Failed", "status": "True"}], True, "Failed"),
    ([], True, "Terminating"),
    ([{"type": "Suspended", "status": "True"}], False, "Suspended"),
    ([{"type": "FailureTarget", "status": "True"}], False, "FailureTarget"),
    ([{"type": "Complete", "status": "False"}], False, "Running"),
])
def test_job_status_precedence(conditions, deleting, expected):
    extra = {"deletionTimestamp": ago(1)} if deleting else {}
    obj = job({"completions": 1}, {"conditions": conditions}, **extra)
    assert cells_by_column("batch", "Job", obj)["Status"] == expected


def test_cron_job_row():
    obj = {"metadata": meta("backup", age_seconds=86400 * 2),
           "spec": {"schedule": "*/5 * * * *", "timeZone": "Etc/UTC", "suspend": False,
                    "jobTemplate": {"spec": {"template": pod_template(("backup", "busybox"))}}},
           "status": {"active": [{"kind": "Job", "name": "backup-1"}], "lastScheduleTime": ago(170)}}
    assert row_cells(resource("batch", "CronJob"), obj, NOW) == [
        "backup", "*/5 * * * *", "Etc/UTC", "False", 1, "2m50s", "2d", "backup", "busybox", "<none>"]
    never_run = {"metadata": meta("new"), "spec": {"schedule": "@daily"}}
    cells = cells_by_column("batch", "CronJob", never_run)
    assert (cells["Timezone"], cells["Suspend"], cells["Active"], cells["Last Schedule"]) == (
        "<none>", "<unset>", 0, "<none>")


# ------------------------------------------------------------------------------ other groups

def test_default_storage_class_is_marked_in_its_name():
    obj = {"metadata": {"name": "local-path", "creationTimestamp": ago(days=1),
                        "annotations": {"storageclass.kubernetes.io/is-default-class": "true"}},
           "provisioner": "rancher.io/local-path", "reclaimPolicy": "Delete",
           "volumeBindingMode": "WaitForFirstConsumer", "allowVolumeExpansion": True}
    assert row_cells(resource("storage.k8s.io", "StorageClass"), obj, NOW) == [
        "local-path (default)", "rancher.io/local-path", "Delete", "WaitForFirstConsumer", True, "24h"]
    plain = {"metadata": {"name": "fast", "annotations": {"storageclass.kubernetes.io/is-default-class": "false"}},
             "provisioner": "example.com/fast"}
    assert row_cells(resource("storage.k8s.io", "StorageClass"), plain, NOW)[:5] == [
        "fast", "example.com/fast", "Delete", "Immediate", False]


def test_endpoint_slice_row_lists_ports_and_addresses():
    obj = {"metadata": meta("web-abcde", age_seconds=10), "addressType": "IPv4",
           "endpoints": [{"addresses": ["10.42.0.4"], "conditions": {"ready": True}},
                         {"addresses": ["10.42.0.5"]}, {"addresses": ["10.42.0.6"]}, {"addresses": ["10.42.0.7"]}],
           "ports": [{"name": "http", "port": 80, "protocol": "TCP"}, {"name": "metrics"}, {}]}
    assert row_cells(resource("discovery.k8s.io", "EndpointSlice"), obj, NOW) == [
        "web-abcde", "IPv4", "80,metrics,*", "10.42.0.4,10.42.0.5,10.42.0.6 + 1 more...", "10s"]
    empty = {"metadata": meta("empty"), "addressType": "IPv4", "endpoints": None, "ports": []}
    cells = cells_by_column("discovery.k8s.io", "EndpointSlice", empty)
    assert (cells["Ports"], cells["Endpoints"]) == ("<unset>", "<unset>")


def test_lease_row_shows_holder():
    obj = {"metadata": meta("node-1", age_seconds=86400 * 9), "spec": {"holderIdentity": "node-1",
                                                                       "leaseDurationSeconds": 40}}
    assert row_cells(resource("coordination.k8s.io", "Lease"), obj, NOW) == ["node-1", "node-1", "9d"]
    assert cells_by_column("coordination.k8s.io", "Lease", {"metadata": meta("free")})["Holder"] == ""


def test_module_exports_exactly_the_public_api():
    assert sorted(tables.__all__) == ["column_definitions", "human_duration", "row_cells"]
