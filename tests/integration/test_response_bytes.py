"""Response bodies byte for byte as kube-apiserver writes them: Status fields in upstream's
order, and every JSON object, list, Table and Status ending with the newline of upstream's
json.Encoder (the official client's create_from_yaml tests and kr8s compare these bytes).
Also Secrets whose base64 data is wrapped over lines, as the Kubernetes docs' TLS Secret is."""

from __future__ import annotations

import base64
import json
import textwrap
import urllib.error
import urllib.request
import uuid

import pytest
from kubernetes import client
from kubernetes.client.rest import ApiException


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:6]}"


def fetch(server, method: str, path: str, body=None, accept: str = "application/json") -> tuple[int, dict, bytes]:
    """One HTTPS request; urllib reads exactly Content-Length bytes (a short count raises)."""
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(server.url + path, data=data, method=method,
                                     headers={"Content-Type": "application/json", "Accept": accept})
    try:
        with urllib.request.urlopen(request, context=server.ssl_context(), timeout=20) as reply:
            return reply.status, dict(reply.headers), reply.read()
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), error.read()


def deployment(name: str) -> dict:
    labels = {"app": name}
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name},
            "spec": {"replicas": 1, "selector": {"matchLabels": labels},
                     "template": {"metadata": {"labels": labels},
                                  "spec": {"containers": [{"name": "nginx", "image": "nginx:1.27"}]}}}}


@pytest.fixture
def namespace(server):
    name = unique("bytes")
    status, _, _ = fetch(server, "POST", "/api/v1/namespaces", {"metadata": {"name": name}})
    assert status == 201
    yield name
    fetch(server, "DELETE", f"/api/v1/namespaces/{name}")


def test_creating_a_deployment_twice_answers_upstreams_409_bytes(api_client, namespace):
    apps = client.AppsV1Api(api_client)
    apps.create_namespaced_deployment(namespace, deployment("nginx"))
    with pytest.raises(ApiException) as raised:
        apps.create_namespaced_deployment(namespace, deployment("nginx"))
    body = raised.value.body
    body = body.encode() if isinstance(body, str) else body
    assert raised.value.status == 409
    assert body == (b'{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure",'
                    b'"message":"deployments.apps \\"nginx\\" already exists","reason":"AlreadyExists",'
                    b'"details":{"name":"nginx","group":"apps","kind":"deployments"},"code":409}\n')


def test_not_found_and_invalid_bodies_over_raw_https(server, namespace):
    status, headers, body = fetch(server, "GET", f"/api/v1/namespaces/{namespace}/configmaps/missing")
    assert status == 404
    assert body == (b'{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure",'
                    b'"message":"configmaps \\"missing\\" not found","reason":"NotFound",'
                    b'"details":{"name":"missing","kind":"configmaps"},"code":404}\n')
    assert int(headers["Content-Length"]) == len(body)
    status, _, body = fetch(server, "POST", f"/api/v1/namespaces/{namespace}/secrets",
                            {"metadata": {"name": "bad"}, "data": {"a": "not base64!"}})
    assert status == 422
    assert body == (b'{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure",'
                    b'"message":"Secret \\"bad\\" is invalid: data[a]: Invalid value: \\"\\u003csecret contents redacted\\u003e\\": '
                    b'must be base64 encoded","reason":"Invalid","details":{"name":"bad","kind":"Secret","causes":['
                    b'{"reason":"FieldValueInvalid","message":"Invalid value: \\"\\u003csecret contents redacted\\u003e\\": '
                    b'must be base64 encoded","field":"data[a]"}]},"code":422}\n')


def test_object_list_and_table_bodies_end_with_the_encoders_newline(server, namespace):
    # Lists past a MiB go out in several chunks; Content-Length must count the newline too.
    filler = "x" * (300 * 1024)
    for index in range(4):
        status, _, body = fetch(server, "POST", f"/api/v1/namespaces/{namespace}/configmaps",
                                {"metadata": {"name": f"cm-{index}"}, "data": {"filler": filler}})
        assert status == 201 and body.endswith(b"}\n") and json.loads(body)["metadata"]["name"] == f"cm-{index}"

    status, headers, body = fetch(server, "GET", f"/api/v1/namespaces/{namespace}/configmaps/cm-0")
    assert status == 200 and body.endswith(b"}\n") and not body.endswith(b"\n\n")
    assert int(headers["Content-Length"]) == len(body)
    assert json.loads(body)["data"]["filler"] == filler

    status, headers, body = fetch(server, "GET", f"/api/v1/namespaces/{namespace}/configmaps")
    assert status == 200 and body.endswith(b"]}\n")
    assert int(headers["Content-Length"]) == len(body) > 4 * 300 * 1024
    # kube-root-ca.crt is published into every namespace, as upstream
    assert [item["metadata"]["name"] for item in json.loads(body)["items"]
            if item["metadata"]["name"] != "kube-root-ca.crt"] == [f"cm-{i}" for i in range(4)]

    status, headers, body = fetch(server, "GET", f"/api/v1/namespaces/{namespace}/configmaps",
                                  accept="application/json;as=Table;v=v1;g=meta.k8s.io")
    assert status == 200 and body.endswith(b"]}\n")
    assert [row["cells"][0] for row in json.loads(body)["rows"]
            if row["cells"][0] != "kube-root-ca.crt"] == [f"cm-{i}" for i in range(4)]

    status, _, body = fetch(server, "GET", f"/api/v1/namespaces/{namespace}/configmaps/cm-1",
                            accept="application/json;as=Table;v=v1;g=meta.k8s.io")
    assert status == 200 and body.endswith(b"}\n") and json.loads(body)["kind"] == "Table"

    status, _, body = fetch(server, "DELETE", f"/api/v1/namespaces/{namespace}/configmaps/cm-1")
    assert status == 200
    uid = json.loads(body)["details"]["uid"]
    assert body == (b'{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Success",'
                    b'"details":{"name":"cm-1","kind":"configmaps","uid":"' + uid.encode() + b'"}}\n')

    for path in ("/api", "/apis", "/api/v1", "/apis/apps/v1"):
        status, _, body = fetch(server, "GET", path)
        assert status == 200 and body.endswith(b"}\n"), path
        json.loads(body)
    # /version is written around the serializer upstream (WriteRawJSON): indented, no newline.
    status, _, body = fetch(server, "GET", "/version")
    assert status == 200 and body.startswith(b'{\n  "major": "1",') and body.endswith(b"\n}")


def test_secret_with_base64_wrapped_over_lines_applies_and_reads_back_unwrapped(kubectl, namespace):
    pem = ("-----BEGIN CERTIFICATE-----\n" + "MIIB" * 60 + "\n-----END CERTIFICATE-----\n").encode()
    one_line = base64.b64encode(pem).decode()
    wrapped = "\n".join(one_line[i:i + 76] for i in range(0, len(one_line), 76))
    key = base64.b64encode(b"private key").decode()
    manifest = textwrap.dedent("""\
        apiVersion: v1
        kind: Secret
        metadata:
          name: secret-tls
        type: kubernetes.io/tls
        data:
          tls.crt: |
        {crt}
          tls.key: |
            {key}
        ---
        apiVersion: v1
        kind: ConfigMap
        metadata:
          name: binary
        binaryData:
          blob: |
        {crt}
        """).format(crt=textwrap.indent(wrapped, "    "), key=key)
    assert manifest.count("\n    ") > 4  # the certificate really is wrapped over lines

    output = kubectl("apply", "-n", namespace, "-f", "-", input=manifest)
    assert "secret/secret-tls created" in output and "configmap/binary created" in output
    assert kubectl("get", "secret", "secret-tls", "-n", namespace, "-o", r"jsonpath={.data.tls\.crt}") == one_line
    assert kubectl("get", "secret", "secret-tls", "-n", namespace, "-o", r"jsonpath={.data.tls\.key}") == key
    assert kubectl("get", "configmap", "binary", "-n", namespace, "-o", "jsonpath={.binaryData.blob}") == one_line
    # Applying the same manifest again is accepted (and stays one line).
    kubectl("apply", "-n", namespace, "-f", "-", input=manifest)
    assert kubectl("get", "secret", "secret-tls", "-n", namespace, "-o", r"jsonpath={.data.tls\.crt}") == one_line
