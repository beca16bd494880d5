"""`kubectl create configmap` / `create secret generic|tls|docker-registry` and `describe`
of ConfigMaps and Secrets print as upstream's (Secrets show sizes, never values), against a
server without a node."""

from __future__ import annotations

import base64
import datetime
import json
import re

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID


def test_create_configmap_from_files_env_files_and_literals(kubectl, tmp_path):
    (tmp_path / "config.json").write_text('{"Logging": {"LogLevel": {"Default": "Debug"}}}\n')
    (tmp_path / "app.env").write_text("# comment\nA=1\n\nB=two words\n")
    assert kubectl("create", "configmap", "mixed", f"--from-file={tmp_path / 'config.json'}",
                   f"--from-file=renamed.txt={tmp_path / 'app.env'}", "--from-literal=x=y") == "configmap/mixed created\n"
    data = json.loads(kubectl("get", "cm", "mixed", "-o", "json"))["data"]
    assert data == {"config.json": '{"Logging": {"LogLevel": {"Default": "Debug"}}}\n',
                    "renamed.txt": "# comment\nA=1\n\nB=two words\n", "x": "y"}
    assert kubectl("create", "configmap", "from-env", f"--from-env-file={tmp_path / 'app.env'}") == \
        "configmap/from-env created\n"
    assert json.loads(kubectl("get", "cm", "from-env", "-o", "json"))["data"] == {"A": "1", "B": "two words"}
    rows = kubectl("get", "cm", "mixed", "from-env").splitlines()
    assert [re.split(r"\s{2,}", row)[:2] for row in rows] == [["NAME", "DATA"], ["mixed", "3"], ["from-env", "2"]]
    described = kubectl("describe", "configmap", "mixed")
    assert described.startswith("Name:         mixed\nNamespace:    default\nLabels:       <none>\n"
                                "Annotations:  <none>\n\nData\n====\n"), described
    assert "config.json:\n----\n{\"Logging\": {\"LogLevel\": {\"Default\": \"Debug\"}}}\n" in described
    assert "\nBinaryData\n====\n\nEvents:  <none>\n" in described


def _certificate() -> tuple[bytes, bytes]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "web.example")])
    now = datetime.datetime.now(datetime.timezone.utc)
    certificate = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
                   .serial_number(x509.random_serial_number()).not_valid_before(now)
                   .not_valid_after(now + datetime.timedelta(days=1)).sign(key, hashes.SHA256()))
    return (certificate.public_bytes(serialization.Encoding.PEM),
            key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                              serialization.NoEncryption()))


def test_create_secrets_of_every_kubectl_kind_and_describe_shows_sizes(kubectl, tmp_path):
    assert kubectl("create", "secret", "generic", "sleep-secret-literal", "--from-literal=secret=shh...") == \
        "secret/sleep-secret-literal created\n"
    described = kubectl("describe", "secret", "sleep-secret-literal")
    assert described == ("Name:         sleep-secret-literal\nNamespace:    default\nLabels:       <none>\n"
                         "Annotations:  <none>\n\nType:  Opaque\n\nData\n====\nsecret:  6 bytes\n"), described

    certificate, key = _certificate()
    (tmp_path / "tls.crt").write_bytes(certificate)
    (tmp_path / "tls.key").write_bytes(key)
    assert kubectl("create", "secret", "tls", "web-tls", f"--cert={tmp_path / 'tls.crt'}",
                   f"--key={tmp_path / 'tls.key'}") == "secret/web-tls created\n"
    secret = json.loads(kubectl("get", "secret", "web-tls", "-o", "json"))
    assert secret["type"] == "kubernetes.io/tls"
    assert base64.b64decode(secret["data"]["tls.crt"]) == certificate
    described = kubectl("describe", "secret", "web-tls")
    assert f"Type:  kubernetes.io/tls\n\nData\n====\ntls.crt:  {len(certificate)} bytes\ntls.key:  {len(key)} bytes\n" \
        in described, described
    assert "BEGIN" not in described

    assert kubectl("create", "secret", "docker-registry", "regcred", "--docker-server=127.0.0.1:5000",
                   "--docker-username=puller", "--docker-password=pw", "--docker-email=p@example.com") == \
        "secret/regcred created\n"
    secret = json.loads(kubectl("get", "secret", "regcred", "-o", "json"))
    assert secret["type"] == "kubernetes.io/dockerconfigjson"
    config = json.loads(base64.b64decode(secret["data"][".dockerconfigjson"]))
    assert config["auths"]["127.0.0.1:5000"]["username"] == "puller"
    assert re.search(r"Type:  kubernetes\.io/dockerconfigjson\n\nData\n====\n\.dockerconfigjson:  \d+ bytes\n",
                     kubectl("describe", "secret", "regcred"))

    rows = [re.split(r"\s{2,}", row) for row in kubectl("get", "secrets", "sleep-secret-literal", "web-tls",
                                                          "regcred").splitlines()]
    assert [row[:3] for row in rows] == [["NAME", "TYPE", "DATA"], ["sleep-secret-literal", "Opaque", "1"],
                                         ["web-tls", "kubernetes.io/tls", "2"],
                                         ["regcred", "kubernetes.io/dockerconfigjson", "1"]]

    # A typed Secret missing its required key: upstream's validation message.
    broken = kubectl.run("create", "-f", "-", check=False, input=json.dumps(
        {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "half-tls"}, "type": "kubernetes.io/tls",
         "data": {"tls.crt": base64.b64encode(certificate).decode()}}))
    assert broken.returncode == 1
    assert 'The Secret "half-tls" is invalid: data[tls.key]: Required value' in broken.stderr
