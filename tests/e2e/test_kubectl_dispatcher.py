"""The machine's /usr/bin/kubectl (a dispatcher that asks the server's /version and runs the
installed kubectl 1.27-1.33 of that minor, else 1.32) against the server: which real kubectl
it picks, and a small command matrix through it, asserting upstream's output."""
from __future__ import annotations

import json
import re
import subprocess
import textwrap
from pathlib import Path

import pytest

DISPATCHER = Path("/usr/bin/kubectl")

pytestmark = pytest.mark.skipif(not DISPATCHER.exists(),
                                reason="no /usr/bin/kubectl dispatcher on this machine (only the venv's kubectl 1.36)")

# Our server reports minor 36; the dispatcher has no 1.36 and falls back to 1.32.
EXPECTED_CLIENT_MINOR = "32"


class Dispatcher:
    def __init__(self, server, cache_dir: Path):
        self.server = server
        self.cache_dir = cache_dir

    def run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        command = [str(DISPATCHER), "--kubeconfig", str(self.server.kubeconfig), "--cache-dir", str(self.cache_dir), *args]
        result = subprocess.run(command, capture_output=True, text=True, timeout=60)
        if check and result.returncode != 0:
            raise AssertionError(f"/usr/bin/kubectl {' '.join(args)} failed ({result.returncode}):\n{result.stderr}{result.stdout}")
        return result

    def __call__(self, *args: str) -> str:
        return self.run(*args).stdout


@pytest.fixture(scope="module")
def dispatcher(server, tmp_path_factory):
    return Dispatcher(server, tmp_path_factory.mktemp("dispatcher-cache"))


def test_dispatcher_falls_back_to_kubectl_1_32_for_a_1_36_server(dispatcher):
    versions = json.loads(dispatcher("version", "-o", "json"))
    assert versions["serverVersion"]["major"] == "1"
    assert versions["serverVersion"]["minor"] == "36"
    # The dispatcher's builds say so in their version: v1.32.4-dispatcher, minor "32+".
    assert versions["clientVersion"]["minor"].rstrip("+") == EXPECTED_CLIENT_MINOR, versions["clientVersion"]["gitVersion"]
    assert versions["clientVersion"]["gitVersion"].startswith(f"v1.{EXPECTED_CLIENT_MINOR}.")


def test_version_prints_client_and_server_versions(dispatcher):
    out = dispatcher("version")
    assert re.match(r"Client Version: v1\.32\.\d+\S*\nKustomize Version: v\S+\nServer Version: v1\.36\.\d+\S*\n$", out), out


def test_get_namespaces_prints_the_server_side_table(dispatcher):
    out = dispatcher("get", "namespaces")
    assert out.splitlines()[0].split() == ["NAME", "STATUS", "AGE"]
    assert re.search(r"^default\s+Active\s+\d+[smhd]", out, re.M)
    assert re.search(r"^kube-system\s+Active\s+", out, re.M)


def test_deployment_lifecycle_through_the_dispatcher(dispatcher, tmp_path):
    # create deployment sends a protobuf body (no JSON fallback).
    assert dispatcher("create", "deployment", "disp-web", "--image=pyk8s/busybox:1.35", "--replicas=1") == \
        "deployment.apps/disp-web created\n"
    assert dispatcher("label", "deployment", "disp-web", "tier=web") == "deployment.apps/disp-web labeled\n"
    assert dispatcher("scale", "deployment", "disp-web", "--replicas=3") == "deployment.apps/disp-web scaled\n"
    deployment = json.loads(dispatcher("get", "deployment", "disp-web", "-o", "json"))
    assert deployment["spec"]["replicas"] == 3
    assert deployment["metadata"]["labels"] == {"app": "disp-web", "tier": "web"}

    described = re.sub(r"\s+", " ", dispatcher("describe", "deployment", "disp-web"))
    for line in ("Name: disp-web", "Namespace: default", "Labels: app=disp-web tier=web", "Selector: app=disp-web",
                 "Replicas: 3 desired", "StrategyType: RollingUpdate",
                 "RollingUpdateStrategy: 25% max unavailable, 25% max surge", "Image: pyk8s/busybox:1.35"):
        assert line in described, line

    assert dispatcher("delete", "deployment", "disp-web") == 'deployment.apps "disp-web" deleted\n'
    assert dispatcher.run("get", "deployment", "disp-web", check=False).stderr.strip() == \
        'Error from server (NotFound): deployments.apps "disp-web" not found'


def test_apply_creates_then_reports_unchanged_and_configured(dispatcher, tmp_path):
    manifest = tmp_path / "cm.yaml"
    body = textwrap.dedent("""\
        apiVersion: v1
        kind: ConfigMap
        metadata:
          name: disp-config
        data:
          level: {level}
        """)
    manifest.write_text(body.format(level="debug"))
    assert dispatcher("apply", "-f", str(manifest)) == "configmap/disp-config created\n"
    assert dispatcher("apply", "-f", str(manifest)) == "configmap/disp-config unchanged\n"
    manifest.write_text(body.format(level="info"))
    assert dispatcher("apply", "-f", str(manifest)) == "configmap/disp-config configured\n"
    assert dispatcher("get", "configmap", "disp-config", "-o", "jsonpath={.data.level}") == "info"
    # kubectl 1.32 prints no "from <namespace> namespace" suffix (1.36 does).
    assert dispatcher("delete", "-f", str(manifest)) == 'configmap "disp-config" deleted\n'


def test_create_configmap_and_service_send_protobuf_bodies(dispatcher):
    assert dispatcher("create", "configmap", "disp-cm", "--from-literal=a=1") == "configmap/disp-cm created\n"
    assert dispatcher("create", "service", "clusterip", "disp-svc", "--tcp=80:8080") == "service/disp-svc created\n"
    service = json.loads(dispatcher("get", "service", "disp-svc", "-o", "json"))
    assert service["spec"]["ports"][0]["targetPort"] == 8080
    assert service["spec"]["clusterIP"].startswith("10.43.")
    dispatcher("delete", "configmap/disp-cm", "service/disp-svc")
