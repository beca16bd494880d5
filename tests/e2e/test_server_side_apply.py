"""Server-side apply with the real kubectl: create, unchanged/configured re-applies,
conflicts with other field managers as upstream words them, --force-conflicts, the upgrade
from client-side apply, and managedFields as `--show-managed-fields` prints them."""
from __future__ import annotations

import json
import textwrap

DEPLOYMENT = textwrap.dedent("""\
    apiVersion: apps/v1
    kind: Deployment
    metadata:
      name: {name}
      labels:
        app: {name}
    spec:
      replicas: {replicas}
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
            image: {image}
    """)


def manifest(tmp_path, name: str, replicas: int = 2, image: str = "busybox:1.36"):
    path = tmp_path / f"{name}.yaml"
    path.write_text(DEPLOYMENT.format(name=name, replicas=replicas, image=image))
    return str(path)


def managed_fields(kubectl, name: str) -> list[dict]:
    """The entries of managers other than the deployment controller (which records its
    revision annotation and status as upstream's does)."""
    obj = json.loads(kubectl("get", "deployment", name, "-o", "json", "--show-managed-fields"))
    return [entry for entry in obj["metadata"].get("managedFields") or [] if entry["manager"] != "kube-controller-manager"]


def controller_entries(kubectl, name: str) -> list[dict]:
    obj = json.loads(kubectl("get", "deployment", name, "-o", "json", "--show-managed-fields"))
    return [entry for entry in obj["metadata"].get("managedFields") or [] if entry["manager"] == "kube-controller-manager"]


def test_server_side_apply_creates_then_reports_unchanged_and_configured(kubectl, tmp_path):
    path = manifest(tmp_path, "ssa-create")
    try:
        assert kubectl("apply", "--server-side", "-f", path).strip() == "deployment.apps/ssa-create serverside-applied"
        entries = managed_fields(kubectl, "ssa-create")
        assert [(e["manager"], e["operation"]) for e in entries] == [("kubectl", "Apply")]
        assert entries[0]["fieldsType"] == "FieldsV1" and entries[0]["apiVersion"] == "apps/v1"
        spec_fields = entries[0]["fieldsV1"]["f:spec"]
        assert "f:replicas" in spec_fields
        assert spec_fields["f:template"]["f:spec"]["f:containers"]['k:{"name":"web"}'] == {".": {}, "f:image": {}, "f:name": {}}
        first_version = kubectl("get", "deployment", "ssa-create", "-o", "jsonpath={.metadata.resourceVersion}")
        assert kubectl("apply", "--server-side", "-f", path).strip() == "deployment.apps/ssa-create serverside-applied"
        assert kubectl("get", "deployment", "ssa-create", "-o", "jsonpath={.metadata.resourceVersion}") == first_version
        kubectl("apply", "--server-side", "-f", manifest(tmp_path, "ssa-create", image="busybox:1.37"))
        assert kubectl("get", "deployment", "ssa-create", "-o",
                       "jsonpath={.spec.template.spec.containers[0].image}") == "busybox:1.37"
    finally:
        kubectl("delete", "deployment", "ssa-create", "--ignore-not-found")


def test_apply_after_scale_conflicts_until_forced(kubectl, tmp_path):
    path = manifest(tmp_path, "ssa-conflict", replicas=2)
    try:
        kubectl("apply", "--server-side", "-f", path)
        kubectl("scale", "deployment", "ssa-conflict", "--replicas=4")
        scale_entry = [e for e in managed_fields(kubectl, "ssa-conflict") if e["operation"] == "Update"]
        assert len(scale_entry) == 1 and scale_entry[0]["fieldsV1"] == {"f:spec": {"f:replicas": {}}}
        manager, subresource = scale_entry[0]["manager"], scale_entry[0].get("subresource")
        changed = manifest(tmp_path, "ssa-conflict", replicas=3)
        result = kubectl.run("apply", "--server-side", "-f", changed, check=False)
        assert result.returncode != 0
        who = f'"{manager}"' + (f' with subresource "{subresource}"' if subresource else "")
        assert f"Apply failed with 1 conflict: conflict with {who} using apps/v1: .spec.replicas" in result.stderr
        kubectl("apply", "--server-side", "--force-conflicts", "-f", changed)
        assert kubectl("get", "deployment", "ssa-conflict", "-o", "jsonpath={.spec.replicas}") == "3"
        assert [(e["manager"], e["operation"]) for e in managed_fields(kubectl, "ssa-conflict")] == [("kubectl", "Apply")]
    finally:
        kubectl("delete", "deployment", "ssa-conflict", "--ignore-not-found")


def test_field_dropped_from_applied_configuration_is_removed(kubectl, tmp_path):
    path = tmp_path / "cm.yaml"
    path.write_text("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: ssa-prune\ndata:\n  a: '1'\n  b: '2'\n")
    try:
        kubectl("apply", "--server-side", "-f", str(path))
        kubectl("label", "configmap", "ssa-prune", "team=x")
        path.write_text("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: ssa-prune\ndata:\n  a: '1'\n")
        kubectl("apply", "--server-side", "-f", str(path))
        obj = json.loads(kubectl("get", "configmap", "ssa-prune", "-o", "json", "--show-managed-fields"))
        assert obj["data"] == {"a": "1"}
        assert obj["metadata"]["labels"] == {"team": "x"}  # owned by kubectl-label, so kept
        managers = {(e["manager"], e["operation"]) for e in obj["metadata"]["managedFields"]}
        assert managers == {("kubectl", "Apply"), ("kubectl-label", "Update")}
    finally:
        kubectl("delete", "configmap", "ssa-prune", "--ignore-not-found")


def test_client_side_apply_then_server_side_apply_migrates_without_conflict(kubectl, tmp_path):
    path = manifest(tmp_path, "ssa-migrate", replicas=2)
    try:
        kubectl("apply", "-f", path)
        entries = managed_fields(kubectl, "ssa-migrate")
        assert [(e["manager"], e["operation"]) for e in entries] == [("kubectl-client-side-apply", "Update")]
        changed = manifest(tmp_path, "ssa-migrate", replicas=3)
        out = kubectl("apply", "--server-side", "-f", changed)
        assert out.strip() == "deployment.apps/ssa-migrate serverside-applied"
        assert kubectl("get", "deployment", "ssa-migrate", "-o", "jsonpath={.spec.replicas}") == "3"
        entries = managed_fields(kubectl, "ssa-migrate")
        # kubectl upgraded the client-side apply entry (csaupgrade): the annotation goes to
        # "kubectl-last-applied", the applied fields to "kubectl"; no Update entry is left.
        by_manager = {e["manager"]: e for e in entries}
        assert {(e["manager"], e["operation"]) for e in entries} == {("kubectl", "Apply"), ("kubectl-last-applied", "Apply")}
        assert by_manager["kubectl-last-applied"]["fieldsV1"] == {
            "f:metadata": {"f:annotations": {"f:kubectl.kubernetes.io/last-applied-configuration": {}}}}
        assert "f:replicas" in by_manager["kubectl"]["fieldsV1"]["f:spec"]
    finally:
        kubectl("delete", "deployment", "ssa-migrate", "--ignore-not-found")


def test_client_side_apply_owner_conflicts_with_another_applier(kubectl, tmp_path):
    path = manifest(tmp_path, "ssa-other", replicas=2)
    try:
        kubectl("apply", "-f", path)
        changed = manifest(tmp_path, "ssa-other", replicas=5)
        result = kubectl.run("apply", "--server-side", "--field-manager=ci", "-f", changed, check=False)
        assert result.returncode != 0
        assert ('Apply failed with 1 conflict: conflict with "kubectl-client-side-apply" using apps/v1: .spec.replicas'
                in result.stderr)
    finally:
        kubectl("delete", "deployment", "ssa-other", "--ignore-not-found")


def test_show_managed_fields_lists_apply_and_update_managers(kubectl, tmp_path):
    path = manifest(tmp_path, "ssa-show")
    try:
        kubectl("apply", "--server-side", "-f", path)
        kubectl("label", "deployment", "ssa-show", "tier=web")
        out = kubectl("get", "deployment", "ssa-show", "-o", "yaml", "--show-managed-fields")
        assert "managedFields:" in out
        assert "manager: kubectl\n    operation: Apply" in out
        assert "manager: kubectl-label\n    operation: Update" in out
        assert "fieldsType: FieldsV1" in out
        assert "managedFields" not in kubectl("get", "deployment", "ssa-show", "-o", "yaml")
    finally:
        kubectl("delete", "deployment", "ssa-show", "--ignore-not-found")
