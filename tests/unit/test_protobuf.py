"""Decoding the protobuf bodies `kubectl create <subcommand>` POSTs.

The fixtures under fixtures/protobuf/ are real kubectl 1.36 traffic captured by
tools/capture_protobuf_fixtures.py: <name>.bin is the POST body and <name>.json is
`kubectl <same command> --dry-run=client -o json`, Go's own JSON for the same object.
Synthetic bodies below (built with a tiny encoder) cover what kubectl create never sends.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest

from pyk8s.api.errors import BadRequest
from pyk8s.api.protobuf import PROTOBUF_CONTENT_TYPE, decode_request

FIXTURES = Path(__file__).parent / "fixtures" / "protobuf"
COMMANDS = json.loads((FIXTURES / "commands.json").read_text())["commands"]


def decoded(name: str) -> dict:
    return decode_request((FIXTURES / f"{name}.bin").read_bytes())


def without_empty(value):
    """Go's JSON minus keys that only hold null/{}/[] (the decoder leaves unset keys out)."""
    if isinstance(value, dict):
        kept = {}
        for key, item in value.items():
            item = without_empty(item)
            if item is not None and item != {} and item != []:
                kept[key] = item
        return kept
    if isinstance(value, list):
        return [without_empty(item) for item in value]
    return value


def b64(text: str | bytes) -> str:
    return base64.b64encode(text.encode() if isinstance(text, str) else text).decode()


# --- a minimal encoder for synthetic bodies ------------------------------------------------

def varint(value: int) -> bytes:
    value &= (1 << 64) - 1
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def field_varint(number: int, value: int) -> bytes:
    return varint(number << 3) + varint(value)


def field_bytes(number: int, payload: bytes | str) -> bytes:
    payload = payload.encode() if isinstance(payload, str) else payload
    return varint(number << 3 | 2) + varint(len(payload)) + payload


def envelope(api_version: str, kind: str, raw: bytes) -> bytes:
    type_meta = field_bytes(1, api_version) + field_bytes(2, kind)
    unknown = field_bytes(1, type_meta) + field_bytes(2, raw) + field_bytes(3, "") + field_bytes(4, "")
    return b"k8s\x00" + unknown


def pod_body(spec: bytes = b"", metadata: bytes = b"") -> bytes:
    metadata = field_bytes(1, "p") + metadata
    return envelope("v1", "Pod", field_bytes(1, metadata) + field_bytes(2, spec) + field_bytes(3, b""))


# --- every captured body against Go's JSON ---------------------------------------------------

def test_content_type_is_the_kubernetes_protobuf_media_type():
    assert PROTOBUF_CONTENT_TYPE == "application/vnd.kubernetes.protobuf"


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_captured_body_decodes_to_what_go_renders_for_the_same_command(name):
    go_json = json.loads((FIXTURES / f"{name}.json").read_text())
    result = decoded(name)
    # Compared as text so key order (Go's declaration order) counts too.
    assert json.dumps(result) == json.dumps(without_empty(go_json))


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_captured_body_keeps_kubectl_wire_facts(name):
    assert COMMANDS[name]["content_type"] == PROTOBUF_CONTENT_TYPE
    result = decoded(name)
    assert list(result)[:2] == ["kind", "apiVersion"]
    assert "creationTimestamp" not in result["metadata"]


# --- what each command line asked for -------------------------------------------------------

def test_deployment_carries_name_image_replicas_and_port():
    deployment = decoded("deployment_web")
    assert deployment["apiVersion"] == "apps/v1" and deployment["kind"] == "Deployment"
    assert deployment["metadata"] == {"name": "web", "labels": {"app": "web"}}
    assert deployment["spec"]["replicas"] == 3
    assert deployment["spec"]["selector"] == {"matchLabels": {"app": "web"}}
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    assert container == {"name": "nginx", "image": "nginx:1.27", "ports": [{"containerPort": 80}]}
    # Zero-valued non-pointer parts of the body are unset, left for defaulting.
    assert "status" not in deployment and "strategy" not in deployment["spec"]
    assert "resources" not in container


def test_deployment_replicas_zero_is_kept_because_it_is_a_pointer():
    assert decoded("deployment_zero_replicas")["spec"]["replicas"] == 0


def test_deployment_with_two_images_gets_two_containers():
    containers = decoded("deployment_two_images")["spec"]["template"]["spec"]["containers"]
    assert [(c["name"], c["image"]) for c in containers] == [("busybox", "busybox:1.36"), ("nginx", "nginx")]


def test_deployment_command_and_namespace():
    deployment = decoded("deployment_command")
    assert deployment["metadata"]["namespace"] == "team-a"
    assert deployment["spec"]["template"]["spec"]["containers"][0]["command"] == ["sleep", "3600"]
    assert COMMANDS["deployment_command"]["path"] == "/apis/apps/v1/namespaces/team-a/deployments"


def test_configmap_keeps_text_data_and_base64_binary_data():
    configmap = decoded("configmap")
    assert configmap["data"] == {"a": "1", "greeting": "hello world"}
    blob = base64.b64decode(configmap["binaryData"]["blob"])
    assert blob == bytes(range(0xF0, 0x100)) + b"\x00\x01binary"


def test_generic_secret_values_are_base64_including_the_empty_one():
    secret = decoded("secret_generic")
    assert secret["data"] == {"a": b64("b"), "empty": "", "pw": b64("p@ss:w0rd")}
    assert "type" not in secret  # kubectl sends "" and the apiserver defaults it to Opaque


def test_tls_secret_holds_pem_certificate_and_key():
    secret = decoded("secret_tls")
    assert secret["type"] == "kubernetes.io/tls"
    assert base64.b64decode(secret["data"]["tls.crt"]).startswith(b"-----BEGIN CERTIFICATE-----")
    assert b"PRIVATE KEY" in base64.b64decode(secret["data"]["tls.key"])


def test_docker_registry_secret_holds_docker_config_json():
    secret = decoded("secret_docker_registry")
    assert secret["type"] == "kubernetes.io/dockerconfigjson"
    config = json.loads(base64.b64decode(secret["data"][".dockerconfigjson"]))
    entry = config["auths"]["registry.example.com"]
    assert (entry["username"], entry["password"], entry["email"]) == ("u", "p", "u@example.com")
    assert base64.b64decode(entry["auth"]) == b"u:p"


def test_namespace_with_only_zero_spec_and_status_is_just_a_name():
    assert decoded("namespace") == {"kind": "Namespace", "apiVersion": "v1", "metadata": {"name": "ns1"}}


def test_clusterip_service_target_ports_are_int_or_string_by_type():
    service = decoded("service_clusterip")
    assert service["spec"]["type"] == "ClusterIP"
    assert service["spec"]["ports"] == [
        {"name": "80-8080", "protocol": "TCP", "port": 80, "targetPort": 8080},
        {"name": "443-https", "protocol": "TCP", "port": 443, "targetPort": "https"},
    ]
    assert service["spec"]["selector"] == {"app": "svc1"}


def test_headless_service_keeps_cluster_ip_none():
    assert decoded("service_headless")["spec"]["clusterIP"] == "None"


def test_nodeport_service_carries_node_port():
    spec = decoded("service_nodeport")["spec"]
    assert spec["type"] == "NodePort"
    assert spec["ports"][0]["nodePort"] == 30080
    assert (spec["ports"][0]["port"], spec["ports"][0]["targetPort"]) == (80, 8080)


def test_loadbalancer_and_externalname_services():
    loadbalancer = decoded("service_loadbalancer")["spec"]
    assert loadbalancer["type"] == "LoadBalancer"
    assert (loadbalancer["ports"][0]["port"], loadbalancer["ports"][0]["targetPort"]) == (5678, 8080)
    external = decoded("service_externalname")["spec"]
    assert (external["type"], external["externalName"]) == ("ExternalName", "example.com")


def test_job_command_keeps_argument_with_space():
    pod_spec = decoded("job")["spec"]["template"]["spec"]
    assert pod_spec["containers"][0]["command"] == ["echo", "hello world"]
    assert pod_spec["restartPolicy"] == "Never"


def test_cronjob_carries_schedule_and_job_template():
    cronjob = decoded("cronjob")
    assert cronjob["spec"]["schedule"] == "*/1 * * * *"
    pod_spec = cronjob["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    assert pod_spec["containers"][0] == {"name": "c", "image": "busybox", "command": ["echo", "hi"]}
    assert pod_spec["restartPolicy"] == "OnFailure"


def test_serviceaccount_is_just_a_name():
    assert decoded("serviceaccount") == {"kind": "ServiceAccount", "apiVersion": "v1",
                                         "metadata": {"name": "sa1"}}


def test_quota_hard_quantities_are_canonical_strings():
    spec = decoded("quota")["spec"]
    assert spec["hard"] == {"cpu": "1", "limits.cpu": "2", "memory": "1Gi", "pods": "2",
                            "requests.storage": "512Mi"}
    scoped = decoded("quota_scoped")["spec"]
    assert scoped == {"hard": {"pods": "5"}, "scopes": ["BestEffort"]}


def test_priorityclass_value_description_and_policy():
    priority_class = decoded("priorityclass")
    assert priority_class["value"] == 1000
    assert priority_class["description"] == "d"
    assert priority_class["preemptionPolicy"] == "Never"


def test_priorityclass_negative_value_and_global_default():
    priority_class = decoded("priorityclass_negative")
    assert priority_class["value"] == -10
    assert priority_class["globalDefault"] is True


def test_priorityclass_zero_value_is_kept_because_go_always_renders_it():
    assert decoded("priorityclass_zero")["value"] == 0


def test_pdb_min_available_and_selector():
    spec = decoded("pdb_min_available")["spec"]
    assert spec == {"minAvailable": 1, "selector": {"matchLabels": {"app": "x"}}}


def test_pdb_min_available_zero_is_kept_because_it_is_a_pointer():
    assert decoded("pdb_min_available_zero")["spec"]["minAvailable"] == 0


def test_pdb_max_unavailable_percentage_and_set_selector():
    spec = decoded("pdb_max_unavailable")["spec"]
    assert spec["maxUnavailable"] == "30%"
    assert "minAvailable" not in spec
    assert spec["selector"]["matchExpressions"] == [{"key": "tier", "operator": "In", "values": ["be", "fe"]}]


def test_role_and_rolebinding():
    rules = decoded("role")["rules"]
    assert {"apiGroups": [""], "resources": ["pods", "pods/log"], "verbs": ["get", "list", "watch"]} in rules
    binding = decoded("rolebinding")
    assert binding["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "r1"}
    assert {"kind": "User", "apiGroup": "rbac.authorization.k8s.io", "name": "alice"} in binding["subjects"]
    assert {"kind": "ServiceAccount", "name": "sa1", "namespace": "default"} in binding["subjects"]


def test_ingress_rule_value_is_flattened_into_the_rule():
    spec = decoded("ingress")["spec"]
    assert spec["ingressClassName"] == "nginx"
    rule = spec["rules"][0]
    assert rule["host"] == "foo.com"
    assert rule["http"]["paths"][0]["backend"]["service"] == {"name": "svc1", "port": {"number": 8080}}
    assert spec["tls"] == [{"hosts": ["foo.com"], "secretName": "my-cert"}]
    assert spec["defaultBackend"]["service"] == {"name": "defsvc", "port": {"number": 80}}


# --- synthetic bodies: what kubectl create does not send ----------------------------------

def test_inline_volume_source_and_local_object_reference_are_flattened():
    config_map_source = field_bytes(1, field_bytes(1, "app-config")) + field_varint(3, 0o644)
    volume = field_bytes(1, "cfg") + field_bytes(2, field_bytes(19, config_map_source))
    empty_dir_volume = field_bytes(1, "scratch") + field_bytes(2, field_bytes(2, b""))
    pod = decode_request(pod_body(field_bytes(1, volume) + field_bytes(1, empty_dir_volume)))
    assert pod["spec"]["volumes"] == [
        {"name": "cfg", "configMap": {"name": "app-config", "defaultMode": 0o644}},
        # A present pointer to an empty message stays: emptyDir: {} means "use emptyDir".
        {"name": "scratch", "emptyDir": {}},
    ]


def test_probe_handler_is_flattened_and_int_or_string_port_decoded():
    port = field_varint(1, 1) + field_varint(2, 0) + field_bytes(3, "http")
    http_get = field_bytes(1, "/healthz") + field_bytes(2, port)
    probe = field_bytes(1, field_bytes(2, http_get)) + field_varint(4, 5)
    container = field_bytes(1, "c") + field_bytes(2, "img") + field_bytes(10, probe)
    pod = decode_request(pod_body(field_bytes(2, container)))
    assert pod["spec"]["containers"][0]["livenessProbe"] == {
        "httpGet": {"path": "/healthz", "port": "http"}, "periodSeconds": 5}


def test_times_render_as_utc_seconds_and_fields_v1_as_an_object():
    managed = (field_bytes(1, "kubectl") + field_bytes(2, "Update") + field_bytes(3, "v1")
               + field_bytes(4, field_varint(1, 1700000000)) + field_bytes(6, "FieldsV1")
               + field_bytes(7, field_bytes(1, '{"f:metadata":{"f:labels":{}}}')))
    metadata = field_bytes(8, field_varint(1, 1700000000)) + field_bytes(17, managed)
    pod = decode_request(pod_body(metadata=metadata))
    assert pod["metadata"]["creationTimestamp"] == "2023-11-14T22:13:20Z"
    assert pod["metadata"]["managedFields"] == [{
        "manager": "kubectl", "operation": "Update", "apiVersion": "v1",
        "time": "2023-11-14T22:13:20Z", "fieldsType": "FieldsV1",
        "fieldsV1": {"f:metadata": {"f:labels": {}}}}]


def test_packed_and_unpacked_repeated_varints_are_both_accepted():
    packed = field_bytes(4, varint(1000) + varint(2000))
    unpacked = field_varint(4, 3000)
    pod = decode_request(pod_body(field_bytes(14, packed + unpacked)))
    assert pod["spec"]["securityContext"]["supplementalGroups"] == [1000, 2000, 3000]


def test_repeated_single_message_merges_and_last_scalar_wins():
    spec = field_bytes(3, "Always") + field_bytes(3, "Never")
    spec += field_bytes(14, field_varint(2, 1000)) + field_bytes(14, field_varint(5, 2000))
    pod = decode_request(pod_body(spec))
    assert pod["spec"]["restartPolicy"] == "Never"
    assert pod["spec"]["securityContext"] == {"runAsUser": 1000, "fsGroup": 2000}


def test_map_entry_without_value_means_empty_value():
    metadata = field_bytes(11, field_bytes(1, "empty")) + field_bytes(11, field_bytes(1, "k") + field_bytes(2, "v"))
    pod = decode_request(pod_body(metadata=metadata))
    assert pod["metadata"]["labels"] == {"empty": "", "k": "v"}


def test_pointer_zero_int64_is_kept_and_non_pointer_zero_dropped():
    spec = field_varint(4, 0) + field_varint(11, 0) + field_bytes(8, "")
    pod = decode_request(pod_body(spec))
    assert pod["spec"] == {"terminationGracePeriodSeconds": 0}


# --- malformed bodies ------------------------------------------------------------------------

def test_body_without_magic_prefix_is_rejected():
    with pytest.raises(BadRequest, match="magic"):
        decode_request(b'{"kind":"Pod"}')


def test_unknown_kind_is_rejected_by_name():
    with pytest.raises(BadRequest, match="'Widget'"):
        decode_request(envelope("example.com/v1", "Widget", b""))


def test_unknown_field_number_names_the_message_and_number():
    body = pod_body(field_bytes(99, "surprise"))
    with pytest.raises(BadRequest, match=r"field 99 in message core/v1\.PodSpec"):
        decode_request(body)


def test_wrong_wire_type_for_a_known_field_is_rejected():
    # PriorityClass value is a varint even though its struct tag says bytes.
    body = envelope("scheduling.k8s.io/v1", "PriorityClass", field_bytes(1, field_bytes(1, "p")) + field_bytes(2, "x"))
    with pytest.raises(BadRequest, match=r"field 2 \(value\) in message scheduling/v1\.PriorityClass"):
        decode_request(body)


def test_envelope_without_an_object_is_rejected():
    type_meta = field_bytes(1, "v1") + field_bytes(2, "Namespace")
    with pytest.raises(BadRequest, match="no object"):
        decode_request(b"k8s\x00" + field_bytes(1, type_meta))


def test_content_encoding_is_not_supported():
    type_meta = field_bytes(1, "v1") + field_bytes(2, "Namespace")
    body = b"k8s\x00" + field_bytes(1, type_meta) + field_bytes(2, b"") + field_bytes(3, "gzip")
    with pytest.raises(BadRequest, match="contentEncoding"):
        decode_request(body)


@pytest.mark.parametrize("name", ["deployment_web", "service_nodeport", "quota", "secret_generic"])
def test_every_truncation_of_a_real_body_is_a_bad_request(name):
    body = (FIXTURES / f"{name}.bin").read_bytes()
    # kubectl ends the envelope with empty contentEncoding/contentType; cutting those off
    # still leaves a complete message, so every cut up to the end of raw must fail.
    assert body.endswith(b"\x1a\x00\x22\x00")
    for length in range(len(b"k8s\x00"), len(body) - 4):
        with pytest.raises(BadRequest):
            decode_request(body[:length])


@pytest.mark.parametrize("name", ["deployment_web", "cronjob", "ingress"])
def test_garbled_bytes_give_bad_request_or_a_dict_never_a_crash(name):
    body = (FIXTURES / f"{name}.bin").read_bytes()
    for position in range(4, len(body)):
        for garbage in (0xFF, 0x00, body[position] ^ 0x08):
            mutated = body[:position] + bytes([garbage]) + body[position + 1:]
            try:
                assert isinstance(decode_request(mutated), dict)
            except BadRequest:
                pass


REFERENCE = Path("/work/shared/reference/protobuf-fields.md")


@pytest.mark.skipif(not REFERENCE.exists(), reason="protobuf field reference not on this machine")
def test_committed_schema_module_matches_the_generator_output(tmp_path):
    import importlib.util

    generator_path = Path(__file__).parents[2] / "tools" / "gen_protobuf_schema.py"
    spec = importlib.util.spec_from_file_location("gen_protobuf_schema", generator_path)
    generator = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(generator)
    output = tmp_path / "protobuf_schema.py"
    generator.main(["gen", str(REFERENCE), str(output)])
    committed = Path(__file__).parents[2] / "src" / "pyk8s" / "api" / "protobuf_schema.py"
    assert output.read_text() == committed.read_text()
