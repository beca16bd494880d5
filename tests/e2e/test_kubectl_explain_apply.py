"""kubectl explain, create -f and apply against the server's OpenAPI v3 documents and its
field validation (unknown and duplicate fields)."""
from __future__ import annotations

import textwrap

import pytest

DEPLOYMENT = textwrap.dedent("""\
    apiVersion: apps/v1
    kind: Deployment
    metadata:
      name: {name}
      labels:
        app: {name}
    spec:
      {replicas_field}: 2
      selector:
        matchLabels:
          app: {name}
      template:
        metadata:
          labels:
            app: {name}
        spec:
          containers:
          - name: web
            image: busybox:latest
            ports:
            - containerPort: 8080
    """)


def write_deployment(tmp_path, name: str, replicas_field: str = "replicas"):
    path = tmp_path / f"{name}.yaml"
    path.write_text(DEPLOYMENT.format(name=name, replicas_field=replicas_field))
    return path


def test_explain_pod_prints_kind_version_description_and_fields(kubectl):
    out = kubectl("explain", "pod")
    assert out.startswith("KIND:       Pod\nVERSION:    v1\n\nDESCRIPTION:\n")
    assert "Pod is a collection of containers that can run on a host." in out
    # apiVersion is described right away: no `enum: v1` line (upstream's schemas have no enum there).
    assert "\nFIELDS:\n  apiVersion\t<string>\n    APIVersion defines the versioned schema" in out
    assert "\n  spec\t<PodSpec>\n" in out
    assert "\n  status\t<PodStatus>\n" in out


def test_explain_deployment_strategy_prints_field_of_nested_type(kubectl):
    out = kubectl("explain", "deployment.spec.strategy")
    assert out.startswith("GROUP:      apps\nKIND:       Deployment\nVERSION:    v1\n\nFIELD: strategy <DeploymentStrategy>\n")
    assert "The deployment strategy to use to replace existing pods with new ones." in out
    assert "\n  rollingUpdate\t<RollingUpdateDeployment>\n" in out
    assert "\n  type\t<string>\n" in out


def test_explain_containers_recursive_lists_nested_fields(kubectl):
    out = kubectl("explain", "pods.spec.containers", "--recursive")
    assert out.startswith("KIND:       Pod\nVERSION:    v1\n\nFIELD: containers <[]Container>\n")
    assert "\n  image\t<string>\n" in out
    assert "\n  livenessProbe\t<Probe>\n    exec\t<ExecAction>\n      command\t<[]string>\n" in out
    assert "\n  name\t<string> -required-\n" in out


def test_create_from_file_succeeds_with_default_client_validation(kubectl, tmp_path):
    manifest = write_deployment(tmp_path, "explain-ok")
    result = kubectl.run("create", "-f", str(manifest))
    assert result.stdout.strip() == "deployment.apps/explain-ok created"
    assert "Warning" not in result.stderr
    kubectl("delete", "-f", str(manifest), "--wait=false")


def test_create_with_unknown_field_is_rejected_by_strict_server_validation(kubectl, tmp_path):
    manifest = write_deployment(tmp_path, "explain-typo", replicas_field="replica")
    result = kubectl.run("create", "-f", str(manifest), check=False)
    assert result.returncode != 0
    assert result.stderr.strip() == (
        f'Error from server (BadRequest): error when creating "{manifest}": Deployment in version "v1" '
        'cannot be handled as a Deployment: strict decoding error: unknown field "spec.replica"')
    assert kubectl.run("get", "deployment", "explain-typo", check=False).returncode != 0


def test_create_with_unknown_field_and_validate_false_succeeds_and_drops_it(kubectl, tmp_path):
    manifest = write_deployment(tmp_path, "explain-lenient", replicas_field="replica")
    result = kubectl.run("create", "--validate=false", "-f", str(manifest))
    assert result.stdout.strip() == "deployment.apps/explain-lenient created"
    stored = kubectl("get", "deployment", "explain-lenient", "-o", "jsonpath={.spec}")
    assert '"replica"' not in stored
    kubectl("delete", "-f", str(manifest), "--wait=false")


def test_create_with_validate_warn_prints_unknown_field_warning(kubectl, tmp_path):
    manifest = write_deployment(tmp_path, "explain-warn", replicas_field="replica")
    result = kubectl.run("create", "--validate=warn", "-f", str(manifest))
    assert result.stdout.strip() == "deployment.apps/explain-warn created"
    assert 'Warning: unknown field "spec.replica"' in result.stderr
    kubectl("delete", "-f", str(manifest), "--wait=false")


def test_apply_twice_reports_created_then_unchanged_then_configured(kubectl, tmp_path):
    manifest = write_deployment(tmp_path, "explain-apply")
    assert kubectl("apply", "-f", str(manifest)).strip() == "deployment.apps/explain-apply created"
    assert kubectl("apply", "-f", str(manifest)).strip() == "deployment.apps/explain-apply unchanged"
    manifest.write_text(manifest.read_text().replace("containerPort: 8080", "containerPort: 9090"))
    assert kubectl("apply", "-f", str(manifest)).strip() == "deployment.apps/explain-apply configured"
    ports = kubectl("get", "deployment", "explain-apply", "-o", "jsonpath={.spec.template.spec.containers[0].ports[*].containerPort}")
    assert ports.split() == ["9090"]
    kubectl("delete", "-f", str(manifest), "--wait=false")


def test_apply_of_existing_object_with_unknown_field_is_rejected(kubectl, tmp_path):
    manifest = write_deployment(tmp_path, "explain-apply-typo")
    kubectl("apply", "-f", str(manifest))
    manifest.write_text(manifest.read_text().replace("  replicas: 2", "  replicas: 3\n  replica: 3"))
    result = kubectl.run("apply", "-f", str(manifest), check=False)
    assert result.returncode != 0
    assert 'strict decoding error: unknown field "spec.replica"' in result.stderr
    kubectl("delete", "-f", str(manifest), "--wait=false")


def test_merge_patch_with_unknown_field_warns_and_changes_nothing(kubectl, tmp_path):
    # kubectl patch sends no fieldValidation: the server's default is Warn.
    manifest = write_deployment(tmp_path, "explain-patch-typo")
    kubectl("create", "-f", str(manifest))
    result = kubectl.run("patch", "deployment", "explain-patch-typo", "--type=merge", "-p", '{"spec":{"replica":3}}')
    assert result.stdout.strip() == "deployment.apps/explain-patch-typo patched (no change)"
    assert result.stderr.strip() == 'Warning: unknown field "spec.replica"'
    kubectl("delete", "-f", str(manifest), "--wait=false")
