"""Unknown and duplicate fields, and the fieldValidation directive, as upstream reports them."""
from __future__ import annotations

import copy

import orjson
import pytest
import yaml

from pyk8s.api import errors
from pyk8s.api.fieldvalidation import (check_directive, duplicate_fields, field_errors_for,
                                       prune_unknown_fields, unknown_fields, warning_header)
from pyk8s.api.resources import lookup

DEPLOYMENTS = lookup("apps", "v1", "deployments")
PODS = lookup("", "v1", "pods")
SERVICES = lookup("", "v1", "services")
CONFIGMAPS = lookup("", "v1", "configmaps")

# Manifests in the style of the book's exercises (chapters 2-6).
BOOK_DEPLOYMENT = yaml.safe_load("""
apiVersion: apps/v1
kind: Deployment
metadata:
  name: numbers-web
  labels:
    kiamol: ch03
spec:
  replicas: 2
  strategy:
    type: RollingUpdate
    rollingUpdate:
      maxSurge: 1
      maxUnavailable: 25%
  selector:
    matchLabels:
      app: numbers-web
  template:
    metadata:
      labels:
        app: numbers-web
      annotations:
        kiamol.net/note: demo
    spec:
      containers:
        - name: web
          image: kiamol/ch03-numbers-web
          imagePullPolicy: IfNotPresent
          ports:
            - containerPort: 80
              name: http
          env:
            - name: RngApi__Url
              valueFrom:
                configMapKeyRef:
                  name: numbers-config
                  key: url
          envFrom:
            - configMapRef:
                name: numbers-env
          resources:
            limits:
              cpu: 250m
              memory: 50Mi
          readinessProbe:
            httpGet:
              path: /healthz
              port: 80
            periodSeconds: 5
          volumeMounts:
            - name: config
              mountPath: /config
              readOnly: true
      volumes:
        - name: config
          configMap:
            name: numbers-config
            items:
              - key: settings.json
                path: settings.json
        - name: data
          emptyDir: {}
""")

BOOK_SERVICE = yaml.safe_load("""
apiVersion: v1
kind: Service
metadata:
  name: numbers-web
spec:
  ports:
    - port: 8080
      targetPort: 80
      nodePort: 30080
  selector:
    app: numbers-web
  type: LoadBalancer
""")

BOOK_POD = yaml.safe_load("""
apiVersion: v1
kind: Pod
metadata:
  name: hello-kiamol-3
  ownerReferences: []
  managedFields:
    - manager: kubectl
      operation: Update
      fieldsType: FieldsV1
      fieldsV1: {"f:metadata": {"f:labels": {".": {}, "f:app": {}}}}
spec:
  containers:
    - name: web
      image: kiamol/ch02-hello-kiamol
      command: ["sh", "-c", "sleep 1d"]
      securityContext:
        capabilities:
          add: ["NET_ADMIN"]
  nodeSelector:
    kubernetes.io/os: linux
""")


@pytest.mark.parametrize("resource, manifest", [(DEPLOYMENTS, BOOK_DEPLOYMENT), (SERVICES, BOOK_SERVICE), (PODS, BOOK_POD)],
                         ids=["deployment", "service", "pod"])
def test_valid_book_manifests_have_no_unknown_fields(resource, manifest):
    assert unknown_fields(resource, manifest) == []


def test_configmap_data_keys_are_map_keys_not_fields():
    configmap = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"},
                 "data": {"anything.goes": "x", "replica": "2"}, "binaryData": {"b": "eA=="}}
    assert unknown_fields(CONFIGMAPS, configmap) == []


def test_typo_in_spec_is_found():
    deployment = copy.deepcopy(BOOK_DEPLOYMENT)
    deployment["spec"]["replica"] = deployment["spec"].pop("replicas")
    assert unknown_fields(DEPLOYMENTS, deployment) == ["spec.replica"]


def test_typo_inside_list_items_carries_the_index():
    deployment = copy.deepcopy(BOOK_DEPLOYMENT)
    deployment["spec"]["template"]["spec"]["containers"][0]["imagePullPolicyy"] = "Always"
    deployment["spec"]["template"]["spec"]["volumes"][1]["emptyDir"]["sizelimit"] = "1Gi"
    assert unknown_fields(DEPLOYMENTS, deployment) == [
        "spec.template.spec.containers[0].imagePullPolicyy",
        "spec.template.spec.volumes[1].emptyDir.sizelimit",
    ]


def test_typo_in_metadata_is_found_but_label_keys_are_free():
    pod = copy.deepcopy(BOOK_POD)
    pod["metadata"]["lables"] = {"app": "x"}
    pod["metadata"]["annotations"] = {"replica": "not a field"}
    assert unknown_fields(PODS, pod) == ["metadata.lables"]


def test_typo_below_a_map_value_and_in_nested_template_metadata_is_found():
    deployment = copy.deepcopy(BOOK_DEPLOYMENT)
    deployment["spec"]["template"]["metadata"]["label"] = {"a": "b"}
    deployment["spec"]["template"]["spec"]["containers"][0]["env"][0]["valueFrom"]["configMapKeyRef"]["optinal"] = True
    assert unknown_fields(DEPLOYMENTS, deployment) == [
        "spec.template.metadata.label",
        "spec.template.spec.containers[0].env[0].valueFrom.configMapKeyRef.optinal",
    ]


def test_raw_json_fields_accept_anything():
    pod = copy.deepcopy(BOOK_POD)
    pod["metadata"]["managedFields"][0]["fieldsV1"] = {"f:spec": {"f:whatever": {}}}
    assert unknown_fields(PODS, pod) == []


def test_prune_removes_only_unknown_fields():
    deployment = copy.deepcopy(BOOK_DEPLOYMENT)
    deployment["spec"]["replica"] = 3
    deployment["spec"]["template"]["spec"]["containers"][0]["imagePullPolicyy"] = "Always"
    prune_unknown_fields(DEPLOYMENTS, deployment)
    assert deployment == BOOK_DEPLOYMENT


def test_no_duplicates_in_a_plain_body():
    assert duplicate_fields(orjson.dumps(BOOK_DEPLOYMENT)) == []


def test_duplicates_are_found_with_their_paths():
    raw = b'{"spec":{"replicas":1,"replicas":2,"template":{"spec":{"containers":[{"name":"a","image":"x","image":"y"}]}}},' \
          b'"metadata":{"labels":{"app":"a","app":"b"}}}'
    assert duplicate_fields(raw) == ["spec.replicas", "spec.template.spec.containers[0].image", "metadata.labels.app"]


def test_a_repeated_key_is_found_even_when_the_caller_passes_the_decoded_body():
    raw = b'{"apiVersion":"apps/v1","kind":"Deployment","metadata":{"name":"web"},"spec":{"replicas":1,"replicas":2}}'
    decoded = orjson.loads(raw)
    _, error = field_errors_for(DEPLOYMENTS, decoded, raw, "application/json", "Strict", decoded=decoded)
    assert error is not None and 'duplicate field "spec.replicas"' in error.message
    # The same document spelled once: the re-encoding shortcut says there is nothing to report.
    clean = orjson.dumps(decoded)
    assert field_errors_for(DEPLOYMENTS, orjson.loads(clean), clean, "application/json", "Strict",
                            decoded=orjson.loads(clean)) == ([], None)


def test_duplicate_fields_of_non_json_is_empty():
    assert duplicate_fields(b"apiVersion: v1\nkind: Pod\n") == []


# Upstream's integration test body (test/integration/apiserver/field_validation_test.go): the
# errors come in document order, and a key both unknown and repeated is reported once.
UPSTREAM_INVALID_BODY = b"""{
  "apiVersion": "apps/v1", "kind": "Deployment",
  "metadata": {"name": "deployment", "labels": {"app": "nginx"}},
  "spec": {
    "unknown1": "val1", "unknownDupe": "valDupe", "unknownDupe": "valDupe2",
    "paused": true, "paused": false,
    "selector": {"matchLabels": {"app": "nginx"}},
    "template": {"metadata": {"labels": {"app": "nginx"}},
      "spec": {"containers": [{"name": "nginx", "image": "nginx:latest", "unknownNested": "val1",
                               "imagePullPolicy": "Always", "imagePullPolicy": "Never"}]}}
  }
}"""
UPSTREAM_STRICT_ERRORS = [
    'unknown field "spec.unknown1"',
    'unknown field "spec.unknownDupe"',
    'duplicate field "spec.paused"',
    'unknown field "spec.template.spec.containers[0].unknownNested"',
    'duplicate field "spec.template.spec.containers[0].imagePullPolicy"',
]


def test_strict_create_fails_with_upstream_message():
    obj = orjson.loads(UPSTREAM_INVALID_BODY)
    warnings, error = field_errors_for(DEPLOYMENTS, obj, UPSTREAM_INVALID_BODY, "application/json", "Strict")
    assert warnings == []
    assert isinstance(error, errors.BadRequest)
    assert error.message == ('Deployment in version "v1" cannot be handled as a Deployment: strict decoding error: '
                             + ", ".join(UPSTREAM_STRICT_ERRORS))


def test_warn_is_the_default_and_drops_unknown_fields():
    obj = orjson.loads(UPSTREAM_INVALID_BODY)
    warnings, error = field_errors_for(DEPLOYMENTS, obj, UPSTREAM_INVALID_BODY, "application/json", None)
    assert error is None
    assert warnings == UPSTREAM_STRICT_ERRORS
    assert "unknown1" not in obj["spec"]
    assert obj["spec"]["paused"] is False  # the last duplicate wins, as in Go's decoder
    assert "unknownNested" not in obj["spec"]["template"]["spec"]["containers"][0]


def test_ignore_reports_nothing_but_still_drops_unknown_fields():
    obj = orjson.loads(UPSTREAM_INVALID_BODY)
    assert field_errors_for(DEPLOYMENTS, obj, UPSTREAM_INVALID_BODY, "application/json", "Ignore") == ([], None)
    assert "unknown1" not in obj["spec"]


def test_valid_body_passes_strict():
    raw = orjson.dumps(BOOK_DEPLOYMENT)
    obj = orjson.loads(raw)
    assert field_errors_for(DEPLOYMENTS, obj, raw, "application/json", "Strict") == ([], None)
    assert obj == BOOK_DEPLOYMENT


def test_protobuf_bodies_are_not_checked():
    obj = {"apiVersion": "apps/v1", "kind": "Deployment", "spec": {"replica": 1}}
    assert field_errors_for(DEPLOYMENTS, obj, b"k8s\x00...", "application/vnd.kubernetes.protobuf", "Strict") == ([], None)


def test_yaml_body_unknown_fields_are_reported():
    obj = {"apiVersion": "v1", "kind": "Pod", "spec": {"containers": [{"name": "a", "imagee": "x"}]}}
    warnings, error = field_errors_for(PODS, obj, b"ignored", "application/yaml", "Strict")
    assert error.message == ('Pod in version "v1" cannot be handled as a Pod: strict decoding error: '
                             'unknown field "spec.containers[0].imagee"')


def test_strict_merge_patch_fails_as_invalid_patch_showing_patched_object():
    patched = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "d"}, "spec": {"replica": 3}}
    warnings, error = field_errors_for(DEPLOYMENTS, patched, b'{"spec":{"replica":3}}',
                                       "application/merge-patch+json", "Strict")
    assert isinstance(error, errors.Invalid)
    assert error.message == (' "" is invalid: patch: Invalid value: '
                             '"{\\"apiVersion\\":\\"apps/v1\\",\\"kind\\":\\"Deployment\\",\\"metadata\\":{\\"name\\":\\"d\\"},'
                             '\\"spec\\":{\\"replica\\":3}}": strict decoding error: unknown field "spec.replica"')


def test_strict_strategic_merge_patch_shows_the_patch_as_go_map_and_duplicates_first():
    raw = b'{"spec":{"paused":true,"paused":false,"replica":3}}'
    patched = {"apiVersion": "apps/v1", "kind": "Deployment", "spec": {"paused": False, "replica": 3}}
    _, error = field_errors_for(DEPLOYMENTS, patched, raw, "application/strategic-merge-patch+json", "Strict")
    assert error.status()["details"]["causes"] == [{
        "reason": "FieldValueInvalid", "field": "patch",
        "message": 'Invalid value: "map[spec:map[paused:false replica:3]]": strict decoding error: '
                   'duplicate field "spec.paused", unknown field "spec.replica"'}]


def test_warned_patch_returns_warnings_and_prunes_the_patched_object():
    patched = {"apiVersion": "apps/v1", "kind": "Deployment", "spec": {"replicas": 1, "replica": 3}}
    warnings, error = field_errors_for(DEPLOYMENTS, patched, b'[{"op":"add"}]', "application/json-patch+json", "Warn")
    assert (warnings, error) == (['unknown field "spec.replica"'], None)
    assert patched["spec"] == {"replicas": 1}


def test_server_side_apply_rejects_unknown_fields_whatever_the_directive():
    applied = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web", "namespace": "default"},
               "spec": {"bogus": 1, "template": {"spec": {"containers": [{"name": "web", "imagee": "x"}]}}}}
    _, error = field_errors_for(DEPLOYMENTS, applied, b"", "application/apply-patch+yaml", "Ignore")
    assert error.code == 500
    assert error.message == (
        "failed to create typed patch object (default/web; apps/v1, Kind=Deployment): errors:\n"
        "  .spec.bogus: field not declared in schema\n"
        '  .spec.template.spec.containers[name="web"].imagee: field not declared in schema')


@pytest.mark.parametrize("verb, options_kind", [("create", "CreateOptions"), ("update", "UpdateOptions"), ("patch", "PatchOptions")])
def test_unknown_directive_is_invalid_options(verb, options_kind):
    error = check_directive("strict", verb)
    assert error.code == 422
    assert error.message == (f'{options_kind}.meta.k8s.io "" is invalid: fieldValidation: Unsupported value: "strict": '
                             'supported values: "", "Ignore", "Strict", "Warn"')


@pytest.mark.parametrize("directive", [None, "", "Ignore", "Warn", "Strict"])
def test_known_directives_are_accepted(directive):
    assert check_directive(directive) is None


def test_warning_header_quotes_like_upstream():
    assert warning_header('unknown field "spec.replica"') == '299 - "unknown field \\"spec.replica\\""'


def _containers_of(obj):
    return obj["spec"]["template"]["spec"]["containers"]


@pytest.mark.parametrize("plant", [
    lambda d: d.__setitem__("extra", 1),
    lambda d: d["metadata"].__setitem__("labelz", {}),
    lambda d: d["spec"]["template"]["spec"].__setitem__("hostNetwerk", True),
    lambda d: _containers_of(d)[0].__setitem__("imagePullPolicyy", "Always"),
    lambda d: _containers_of(d).append({"name": "b", "image": "x", "portz": []}),
    lambda d: _containers_of(d)[0].setdefault("resources", {}).__setitem__("limitz", {"cpu": "1"}),
    lambda d: _containers_of(d)[0].setdefault("env", []).append({"name": "A", "valueFrom": {"fieldRef": {"fieldPat": "x"}}}),
])
def test_the_quick_all_known_check_agrees_with_the_full_walk(plant):
    deployment = copy.deepcopy(BOOK_DEPLOYMENT)
    raw = orjson.dumps(deployment)
    assert field_errors_for(DEPLOYMENTS, deployment, raw, "application/json", "Strict", decoded=deployment) == ([], None)
    plant(deployment)
    raw = orjson.dumps(deployment)
    _, error = field_errors_for(DEPLOYMENTS, deployment, raw, "application/json", "Strict", decoded=deployment)
    assert error is not None and "unknown field" in error.message
