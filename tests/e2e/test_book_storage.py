"""The book's chapter 5 PersistentVolume exercises (5.3, 5.4 and the clean-up) with the real
kubectl against a single-node cluster, the project's busybox standing in for Postgres:
a local PV pinned by a node label and bound to a 40Mi claim, data kept across pod
replacement, a too-big claim left Pending, dynamic provisioning through the default class
(and the directory removed with the claim), the book's StorageClass clone used by a new
claim, and clean-up leaving the Retain volume Released; then a provisioning that fails on
the node (ProvisioningFailed, retried with back-off until the directory can be made).

The book creates the PV's directory `/volumes/pv01` on the node through a hostPath pod; here
the directory lives under the test cluster's data dir and the test makes it, so no test
writes outside its temp dir."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from conftest import Kubectl, eventually

pytestmark = pytest.mark.skipif(os.geteuid() != 0 or not Path("/usr/bin/containerd").exists(),
                                reason="needs root and containerd (scripts/install-node-deps.sh)")

CLAIM = """
apiVersion: v1
kind: PersistentVolumeClaim
metadata:
  name: {name}
spec:
  accessModes:
    - ReadWriteOnce
  resources:
    requests:
      storage: {storage}
{class_line}"""


def claim(name: str, storage: str, class_line: str = "") -> str:
    return CLAIM.format(name=name, storage=storage, class_line=class_line)


def todo_db(claim_name: str) -> str:
    return f"""
apiVersion: apps/v1
kind: Deployment
metadata:
  name: todo-db
spec:
  selector:
    matchLabels: {{app: todo-db}}
  template:
    metadata:
      labels: {{app: todo-db}}
    spec:
      terminationGracePeriodSeconds: 1
      containers:
      - name: db
        image: pyk8s/busybox:1.35
        command: [sh, -c, "touch /var/lib/postgresql/data/pg_wal.$HOSTNAME; sleep 3600"]
        volumeMounts:
        - name: data
          mountPath: /var/lib/postgresql/data
      volumes:
      - name: data
        persistentVolumeClaim:
          claimName: {claim_name}
"""


@pytest.fixture(scope="module")
def kubectl(cluster, tmp_path_factory):
    return Kubectl(cluster, tmp_path_factory.mktemp("kube-cache"))


def apply(kubectl, text: str) -> str:
    return kubectl("apply", "-f", "-", input=text)


def get_json(kubectl, *args):
    result = kubectl.run("get", *args, "-o", "json", check=False)
    return json.loads(result.stdout) if result.returncode == 0 else None


def phase(kubectl, kind, name):
    obj = get_json(kubectl, kind, name)
    return obj and obj["status"].get("phase")


def running_db_pod(kubectl, previous: str = ""):
    pods = get_json(kubectl, "pods", "-l", "app=todo-db")["items"]
    for pod in pods:
        if pod["metadata"]["name"] != previous and pod["status"].get("phase") == "Running" \
                and not pod["metadata"].get("deletionTimestamp"):
            return pod["metadata"]["name"]
    return None


def test_book_persistent_volumes_claims_and_storage_classes(cluster, kubectl):
    storage_dir = cluster.data_dir / "agent" / "storage"
    node = kubectl("get", "nodes", "-o", "jsonpath={.items[0].metadata.name}")
    kubectl("label", "node", node, "kiamol=ch05", "--overwrite")
    assert node in kubectl("get", "nodes", "-l", "kiamol=ch05")
    pv_path = cluster.data_dir / "volumes" / "pv01"
    pv_path.mkdir(parents=True, exist_ok=True)
    try:
        # 5.3: a local PV on the labelled node
        out = apply(kubectl, f"""
apiVersion: v1
kind: PersistentVolume
metadata:
  name: pv01
spec:
  capacity:
    storage: 50Mi
  accessModes:
    - ReadWriteOnce
  local:
    path: {pv_path}
  nodeAffinity:
    required:
      nodeSelectorTerms:
        - matchExpressions:
          - key: kiamol
            operator: In
            values:
              - ch05
""")
        assert out.strip() == "persistentvolume/pv01 created"
        eventually(lambda: phase(kubectl, "pv", "pv01") == "Available", what="pv01 Available")
        row = kubectl("get", "pv").splitlines()[1].split()
        assert row[:5] == ["pv01", "50Mi", "RWO", "Retain", "Available"]

        # the claim binds to it
        assert apply(kubectl, claim("postgres-pvc", "40Mi", '  storageClassName: ""')).strip() == \
            "persistentvolumeclaim/postgres-pvc created"
        eventually(lambda: phase(kubectl, "pvc", "postgres-pvc") == "Bound", what="postgres-pvc Bound")
        row = next(line for line in kubectl("get", "pvc").splitlines() if line.startswith("postgres-pvc"))
        assert row.split()[1:5] == ["Bound", "pv01", "50Mi", "RWO"]
        row = next(line for line in kubectl("get", "pv").splitlines() if line.startswith("pv01"))
        assert row.split()[4:6] == ["Bound", "default/postgres-pvc"]

        # a claim no PV fits stays Pending
        apply(kubectl, claim("postgres-pvc-toobig", "100Mi", '  storageClassName: ""'))
        eventually(lambda: "no persistent volumes available for this claim and no storage class is set"
                   in kubectl("describe", "pvc", "postgres-pvc-toobig"), what="FailedBinding event")
        assert phase(kubectl, "pvc", "postgres-pvc-toobig") == "Pending"

        # the database writes into the volume; its data outlives the pod
        apply(kubectl, todo_db("postgres-pvc"))
        first = eventually(lambda: running_db_pod(kubectl), timeout=90, what="todo-db Running",
                           context=cluster.log_tail)
        eventually(lambda: (pv_path / f"pg_wal.{first}").exists(), what="file written into the PV's directory")
        assert f"Used By:       {first}" in kubectl("describe", "pvc", "postgres-pvc")
        kubectl("delete", "pod", first)
        second = eventually(lambda: running_db_pod(kubectl, first), timeout=90, what="replacement Running")
        listing = eventually(lambda: (r := kubectl.run("exec", "deploy/todo-db", "--", "ls", "/var/lib/postgresql/data",
                                                       check=False)).returncode == 0 and f"pg_wal.{second}" in r.stdout
                             and r.stdout)
        assert f"pg_wal.{first}" in listing  # the first pod's file is still there

        # 5.4: dynamic provisioning through the default class
        sc = kubectl("get", "storageclass").splitlines()
        assert sc[1].split()[:3] == ["local-path", "(default)", "pyk8s.io/local-path"]
        apply(kubectl, claim("postgres-pvc-dynamic", "100Mi"))
        assert get_json(kubectl, "pvc", "postgres-pvc-dynamic")["spec"]["storageClassName"] == "local-path"
        eventually(lambda: "waiting for first consumer to be created before binding"
                   in kubectl("describe", "pvc", "postgres-pvc-dynamic"), what="WaitForFirstConsumer")
        apply(kubectl, todo_db("postgres-pvc-dynamic"))
        eventually(lambda: phase(kubectl, "pvc", "postgres-pvc-dynamic") == "Bound", timeout=60,
                   what="dynamic claim Bound", context=cluster.log_tail)
        dynamic = get_json(kubectl, "pvc", "postgres-pvc-dynamic")
        volume_name = dynamic["spec"]["volumeName"]
        assert volume_name == f"pvc-{dynamic['metadata']['uid']}"
        assert dynamic["metadata"]["annotations"]["volume.kubernetes.io/selected-node"] == node
        volume = get_json(kubectl, "pv", volume_name)
        assert volume["spec"]["persistentVolumeReclaimPolicy"] == "Delete"
        assert "external-provisioner.volume.kubernetes.io/finalizer" in volume["metadata"]["finalizers"]
        directory = Path(volume["spec"]["hostPath"]["path"])
        assert directory == storage_dir / f"{volume_name}_default_postgres-pvc-dynamic" and directory.is_dir()
        described = kubectl("describe", "pvc", "postgres-pvc-dynamic")
        for reason in ("ExternalProvisioning", "Provisioning", "ProvisioningSucceeded"):
            assert reason in described
        row = next(line for line in kubectl("get", "pv").splitlines() if line.startswith(volume_name))
        assert row.split()[1:7] == ["100Mi", "RWO", "Delete", "Bound", "default/postgres-pvc-dynamic", "local-path"]
        eventually(lambda: running_db_pod(kubectl), timeout=90, what="todo-db on the dynamic claim")
        # back to the static claim, then the dynamic claim and its volume go
        apply(kubectl, todo_db("postgres-pvc"))
        eventually(lambda: all(p["spec"]["volumes"][0]["persistentVolumeClaim"]["claimName"] == "postgres-pvc"
                               for p in get_json(kubectl, "pods", "-l", "app=todo-db")["items"]), timeout=90,
                   what="old pods gone")
        kubectl("delete", "pvc", "postgres-pvc-dynamic", timeout=90)
        eventually(lambda: get_json(kubectl, "pv", volume_name) is None, timeout=30, what="dynamic PV deleted")
        assert not directory.exists()

        # the book's clone script: the default class, found by its annotation, renamed
        default_name = kubectl("get", "storageclass", "-o", "jsonpath={range .items[?(@.metadata.annotations."
                               "storageclass\\.kubernetes\\.io/is-default-class == 'true')]}{.metadata.name}")
        assert default_name == "local-path"
        clone = json.loads(kubectl("get", "sc", default_name, "-o", "json"))
        clone["metadata"] = {"name": "kiamol"}
        assert apply(kubectl, json.dumps(clone)).strip() == "storageclass.storage.k8s.io/kiamol created"
        rows = kubectl("get", "sc").splitlines()
        assert next(r for r in rows if r.startswith("kiamol")).split()[:2] == ["kiamol", "pyk8s.io/local-path"]
        apply(kubectl, claim("postgres-pvc-kiamol", "100Mi", "  storageClassName: kiamol"))
        apply(kubectl, todo_db("postgres-pvc-kiamol"))
        eventually(lambda: phase(kubectl, "pvc", "postgres-pvc-kiamol") == "Bound", timeout=60,
                   what="kiamol claim Bound")
        row = next(line for line in kubectl("get", "pvc").splitlines() if line.startswith("postgres-pvc-kiamol"))
        assert row.split()[1] == "Bound" and row.split()[5] == "kiamol"
        eventually(lambda: running_db_pod(kubectl), timeout=90, what="todo-db on the kiamol claim")
    finally:
        # the clean-up: everything goes but the Retain volume, which is Released
        kubectl.run("delete", "deployment", "todo-db", "--ignore-not-found", check=False, timeout=90)
        eventually(lambda: not get_json(kubectl, "pods", "-l", "app=todo-db")["items"], timeout=60,
                   what="todo-db pods gone")
        kubectl.run("delete", "pvc", "postgres-pvc", "postgres-pvc-toobig", "postgres-pvc-dynamic",
                    "postgres-pvc-kiamol", "--ignore-not-found", check=False, timeout=90)
        kubectl.run("delete", "sc", "kiamol", "--ignore-not-found", check=False)
        kubectl.run("label", "node", node, "kiamol-", check=False)
    eventually(lambda: phase(kubectl, "pv", "pv01") == "Released", what="pv01 Released")
    rows = kubectl("get", "pv").splitlines()
    assert [r.split()[0] for r in rows[1:]] == ["pv01"]  # the provisioned volumes were deleted
    kubectl("delete", "pv", "pv01")
    assert not list(storage_dir.iterdir())


def test_failed_provisioning_is_retried_on_the_node_until_it_succeeds(cluster, kubectl):
    """The node's provisioner cannot make the claim's directory (a file is in the way): the
    claim gets upstream's ProvisioningFailed warning, again on each retry. The provisioner
    runs as the node, which NodeRestriction keeps from changing a claim's metadata, so it
    cannot hand the claim back to the scheduler and retries on its own node with back-off;
    once the file is gone, the next attempt makes the directory and the pod starts."""
    storage_dir = cluster.data_dir / "agent" / "storage"
    apply(kubectl, claim("blocked-data", "10Mi"))
    created = get_json(kubectl, "pvc", "blocked-data")
    blocker = storage_dir / f"pvc-{created['metadata']['uid']}_default_blocked-data"
    storage_dir.mkdir(parents=True, exist_ok=True)
    blocker.write_text("in the way\n")
    apply(kubectl, """
apiVersion: v1
kind: Pod
metadata:
  name: blocked-user
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: app
    image: pyk8s/busybox:1.35
    command: [sleep, "3600"]
    volumeMounts: [{name: data, mountPath: /data}]
  volumes: [{name: data, persistentVolumeClaim: {claimName: blocked-data}}]
""")
    try:
        def failures():
            events = get_json(kubectl, "events", "--field-selector", "involvedObject.name=blocked-data")["items"]
            return [e for e in events if e["reason"] == "ProvisioningFailed"]
        eventually(lambda: sum(e.get("count", 1) for e in failures()) >= 2, 30, what="two failed attempts",
                   context=cluster.log_tail)
        failed = failures()[0]
        assert failed["type"] == "Warning"
        assert failed["message"] == ('failed to provision volume with StorageClass "local-path": '
                                     f"mkdir {blocker}: file exists")
        assert phase(kubectl, "pvc", "blocked-data") == "Pending"
        assert phase(kubectl, "pod", "blocked-user") == "Pending"
        blocker.unlink()
        kubectl("wait", "--for=condition=Ready", "pod/blocked-user", "--timeout=60s")
        bound = get_json(kubectl, "pvc", "blocked-data")
        assert bound["status"]["phase"] == "Bound"
        assert (storage_dir / f"{bound['spec']['volumeName']}_default_blocked-data").is_dir()
        assert "ProvisioningSucceeded" in kubectl("describe", "pvc", "blocked-data")
    finally:
        if blocker.is_file():
            blocker.unlink()
        kubectl.run("delete", "pod", "blocked-user", "--ignore-not-found", check=False, timeout=90)
        kubectl.run("delete", "pvc", "blocked-data", "--ignore-not-found", check=False, timeout=90)
    eventually(lambda: not get_json(kubectl, "pv")["items"], 30, what="the provisioned PV deleted")
    assert not list(storage_dir.iterdir())
