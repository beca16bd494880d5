"""Status bodies byte for byte as kube-apiserver writes them: meta/v1 Status, StatusDetails and
StatusCause fields in their Go struct order, empty fields left out (omitempty), Go's
json.Encoder escapes and its trailing newline. Clients (the official Python client's
create_from_yaml tests, kr8s) compare these bytes."""

from __future__ import annotations

from pyk8s.api import errors
from pyk8s.api.patch import JsonPatchFailed
from pyk8s.api.strategicpatch import StrategicMergePatchFailed


def body(error: errors.ApiError) -> bytes:
    return errors.encode_status(error.status())


def test_already_exists_in_a_group_names_name_group_kind_in_upstreams_order():
    assert body(errors.AlreadyExists.of("apps", "deployments", "nginx")) == (
        b'{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure",'
        b'"message":"deployments.apps \\"nginx\\" already exists","reason":"AlreadyExists",'
        b'"details":{"name":"nginx","group":"apps","kind":"deployments"},"code":409}\n')


def test_not_found_in_the_core_group_leaves_the_empty_group_out():
    assert body(errors.NotFound.of("", "pods", "web-0")) == (
        b'{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure",'
        b'"message":"pods \\"web-0\\" not found","reason":"NotFound",'
        b'"details":{"name":"web-0","kind":"pods"},"code":404}\n')


def test_conflict_on_a_stale_resource_version():
    error = errors.Conflict.of("apps", "deployments", "web", errors.OBJECT_MODIFIED)
    assert body(error) == (
        b'{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure",'
        b'"message":"Operation cannot be fulfilled on deployments.apps \\"web\\": the object has been modified; '
        b'please apply your changes to the latest version and try again","reason":"Conflict",'
        b'"details":{"name":"web","group":"apps","kind":"deployments"},"code":409}\n')


def test_invalid_lists_causes_as_reason_message_field_and_escapes_html_like_go():
    error = errors.Invalid("Secret", "tls", [
        errors.invalid("data[tls.crt]", "<secret contents redacted>", "must be base64 encoded"),
        errors.required("data[tls.key]"),
    ])
    assert body(error) == (
        b'{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure",'
        b'"message":"Secret \\"tls\\" is invalid: [data[tls.crt]: Invalid value: \\"\\u003csecret contents redacted\\u003e\\": '
        b'must be base64 encoded, data[tls.key]: Required value]","reason":"Invalid",'
        b'"details":{"name":"tls","kind":"Secret","causes":['
        b'{"reason":"FieldValueInvalid","message":"Invalid value: \\"\\u003csecret contents redacted\\u003e\\": must be base64 encoded","field":"data[tls.crt]"},'
        b'{"reason":"FieldValueRequired","message":"Required value","field":"data[tls.key]"}]},"code":422}\n')


def test_invalid_in_a_group_puts_group_between_name_and_kind():
    error = errors.Invalid("Deployment", "web", [errors.invalid("spec.replicas", -1, "must be greater than or equal to 0")],
                           group="apps")
    assert body(error) == (
        b'{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure",'
        b'"message":"Deployment.apps \\"web\\" is invalid: spec.replicas: Invalid value: -1: must be greater than or equal to 0",'
        b'"reason":"Invalid","details":{"name":"web","group":"apps","kind":"Deployment","causes":['
        b'{"reason":"FieldValueInvalid","message":"Invalid value: -1: must be greater than or equal to 0","field":"spec.replicas"}]},'
        b'"code":422}\n')


def test_details_given_in_any_order_come_out_in_struct_order_without_empty_fields():
    error = errors.ServiceUnavailable("later", details={"retryAfterSeconds": 1, "causes": [
        {"field": "", "message": "Too large resource version", "reason": "ResourceVersionTooLarge"}],
        "uid": "", "kind": "pods", "name": "x"})
    assert body(error) == (
        b'{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"later",'
        b'"reason":"ServiceUnavailable","details":{"name":"x","kind":"pods","causes":['
        b'{"reason":"ResourceVersionTooLarge","message":"Too large resource version"}],"retryAfterSeconds":1},'
        b'"code":503}\n')


def test_errors_without_details_leave_details_out():
    assert body(errors.BadRequest("the body of the request was empty")) == (
        b'{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure",'
        b'"message":"the body of the request was empty","reason":"BadRequest","code":400}\n')


def test_generic_server_responses_send_empty_details():
    assert body(JsonPatchFailed("test failed")) == (
        b'{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure",'
        b'"message":"the server rejected our request due to an error in our request","reason":"Invalid",'
        b'"details":{},"code":422}\n')


def test_an_unclassified_error_has_no_reason():
    assert body(StrategicMergePatchFailed("boom")) == (
        b'{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"boom","code":500}\n')


def test_internal_error_carries_its_cause_like_new_internal_error():
    assert body(errors.InternalError.of("disk full")) == (
        b'{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure",'
        b'"message":"Internal error occurred: disk full","reason":"InternalError",'
        b'"details":{"causes":[{"message":"disk full"}]},"code":500}\n')


def test_success_statuses_of_delete_and_binding():
    deleted = errors.status_body("Success", details={"uid": "u-1", "kind": "configmaps", "group": "", "name": "cm"})
    assert errors.encode_status(deleted) == (
        b'{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Success",'
        b'"details":{"name":"cm","kind":"configmaps","uid":"u-1"}}\n')
    assert errors.encode_status(errors.status_body("Success", code=201)) == (
        b'{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Success","code":201}\n')


def test_go_escapes_ampersand_and_line_separators():
    error = errors.BadRequest("a & b\u2028c\u2029")
    assert body(error) == (
        b'{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure",'
        b'"message":"a \\u0026 b\\u2028c\\u2029","reason":"BadRequest","code":400}\n')
