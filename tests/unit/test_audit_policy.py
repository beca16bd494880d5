"""Audit policy matching, event shape and log rotation (apiserver/audit.py)."""

from __future__ import annotations

import json

import pytest

from pyk8s.apiserver import audit

POLICY = {
    "apiVersion": "audit.k8s.io/v1", "kind": "Policy", "omitStages": ["RequestReceived"],
    "rules": [
        {"level": "None", "users": ["system:kube-proxy"], "verbs": ["watch"]},
        {"level": "None", "nonResourceURLs": ["/healthz*", "/version"]},
        {"level": "RequestResponse", "resources": [{"group": "", "resources": ["configmaps"], "resourceNames": ["important"]}]},
        {"level": "Request", "resources": [{"group": "", "resources": ["pods/status", "pods/log"]}], "namespaces": ["kube-system"]},
        {"level": "Metadata", "userGroups": ["system:authenticated"], "omitStages": ["ResponseStarted"]},
    ],
}


def decide(policy, method, path, user="alice", groups=("system:authenticated",), query=None):
    return policy.decide(user, groups, audit.request_info(method, path, query or {}))


def test_request_info_follows_upstreams_request_info_factory():
    info = audit.request_info("GET", "/api/v1/namespaces/default/pods", {"watch": "true"})
    assert (info.verb, info.resource, info.namespace, info.resource_request) == ("watch", "pods", "default", True)
    info = audit.request_info("PATCH", "/apis/apps/v1/namespaces/x/deployments/web/scale", {})
    assert (info.verb, info.api_group, info.resource, info.name, info.subresource) == ("patch", "apps", "deployments", "web", "scale")
    assert audit.request_info("DELETE", "/api/v1/namespaces/x/pods", {}).verb == "deletecollection"
    assert audit.request_info("GET", "/healthz", {}).resource_request is False


def test_first_matching_rule_decides_the_level():
    policy = audit.parse_policy(POLICY)
    assert decide(policy, "GET", "/api/v1/services", user="system:kube-proxy", query={"watch": "1"}).level == "None"
    assert decide(policy, "GET", "/healthz/ready").level == "None"
    assert decide(policy, "PUT", "/api/v1/namespaces/a/configmaps/important").level == "RequestResponse"
    assert decide(policy, "PUT", "/api/v1/namespaces/a/configmaps/other").level == "Metadata"
    assert decide(policy, "PUT", "/api/v1/namespaces/kube-system/pods/p/status").level == "Request"
    assert decide(policy, "PUT", "/api/v1/namespaces/default/pods/p/status").level == "Metadata"
    assert decide(policy, "GET", "/api/v1/pods", groups=()).level == "None"  # no rule matched
    assert decide(policy, "GET", "/api/v1/pods").omit_stages == {"RequestReceived", "ResponseStarted"}


def test_without_a_policy_file_everything_is_metadata():
    assert decide(audit.log_everything_policy(), "GET", "/version", groups=()).level == "Metadata"


@pytest.mark.parametrize("broken, message", [
    ({"kind": "Policy", "apiVersion": "audit.k8s.io/v1", "rules": [{"level": "Everything"}]}, r"rules\[0\]\.level"),
    ({"kind": "Policy", "apiVersion": "audit.k8s.io/v1", "rules": [{"level": "None", "omitStages": ["Later"]}]}, "omitStages"),
    ({"kind": "Policy", "apiVersion": "audit.k8s.io/v1", "rules": [
        {"level": "None", "nonResourceURLs": ["/x"], "resources": [{"group": ""}]}]}, "both regular resources"),
    ({"kind": "ConfigMap", "apiVersion": "v1"}, "kind: Policy"),
])
def test_invalid_policies_are_refused(broken, message):
    with pytest.raises(audit.PolicyError, match=message):
        audit.parse_policy(broken)


def test_events_have_upstreams_shape_and_levels(tmp_path):
    auditor = audit.Auditor(audit.parse_policy(POLICY), audit.AuditLog(audit.RotatingWriter(tmp_path / "audit.log")))
    context = auditor.begin(method="PUT", path="/api/v1/namespaces/a/configmaps/important", query={},
                            request_uri="/api/v1/namespaces/a/configmaps/important?fieldManager=x", user_name="alice",
                            groups=("system:authenticated",), source_ips=["10.0.0.1"], user_agent="kubectl/v1.36")
    context.set_request_object({"metadata": {"name": "important", "managedFields": [{}]}, "data": {"k": "v"}})
    context.set_response_object({"metadata": {"name": "important"}, "data": {"k": "v"}})
    context.annotate("authorization.k8s.io/decision", "allow")
    context.annotate("authorization.k8s.io/reason", "")
    context.complete(200)
    assert auditor.begin(method="GET", path="/version", query={}, request_uri="/version", user_name="alice",
                         groups=(), source_ips=[], user_agent="") is None
    auditor.close()
    [event] = [json.loads(line) for line in (tmp_path / "audit.log").read_text().splitlines()]
    assert list(event)[:9] == ["kind", "apiVersion", "level", "auditID", "stage", "requestURI", "verb", "user", "sourceIPs"]
    assert event["stage"] == "ResponseComplete" and event["level"] == "RequestResponse"
    assert event["objectRef"] == {"resource": "configmaps", "namespace": "a", "name": "important", "apiVersion": "v1"}
    assert event["requestObject"]["data"] == {"k": "v"} and event["responseObject"]["data"] == {"k": "v"}
    assert event["responseStatus"] == {"metadata": {}, "code": 200}
    assert event["annotations"] == {"authorization.k8s.io/decision": "allow", "authorization.k8s.io/reason": ""}
    assert event["requestReceivedTimestamp"].endswith("Z") and len(event["stageTimestamp"]) == 27


def test_omit_managed_fields(tmp_path):
    policy = audit.parse_policy({"apiVersion": "audit.k8s.io/v1", "kind": "Policy", "omitManagedFields": True,
                                 "rules": [{"level": "Request"}]})
    auditor = audit.Auditor(policy, audit.AuditLog(audit.RotatingWriter(tmp_path / "a.log")))
    context = auditor.begin(method="POST", path="/api/v1/namespaces/a/configmaps", query={}, request_uri="/x",
                            user_name="u", groups=(), source_ips=[], user_agent="")
    context.set_request_object({"metadata": {"name": "c", "managedFields": [{"manager": "m"}]}})
    context.complete(201)
    auditor.close()
    events = [json.loads(line) for line in (tmp_path / "a.log").read_text().splitlines()]
    assert [e["stage"] for e in events] == ["RequestReceived", "ResponseComplete"]
    assert events[1]["requestObject"] == {"metadata": {"name": "c"}}


def test_log_rotates_by_size_and_keeps_max_backups(tmp_path):
    writer = audit.RotatingWriter(tmp_path / "audit.log", max_bytes=100, max_backups=2)
    for index in range(10):
        writer.write(b"x" * 40 + b"%02d\n" % index)
    writer.close()
    backups = writer.backups()
    assert len(backups) == 2
    assert all(path.name.startswith("audit-") and path.suffix == ".log" for path in backups)
    assert (tmp_path / "audit.log").stat().st_size <= 100
    assert (tmp_path / "audit.log").read_bytes().endswith(b"09\n")
