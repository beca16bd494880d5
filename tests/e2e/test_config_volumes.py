"""The book's chapter 4 volume exercises (ConfigMaps and Secrets as files) with the real
kubectl against a single-node cluster, the project's busybox image standing in for the
book's to-do app: the JSON config file, the `..data` symlink listing, the read-only write
failure, a live update seen by the same pod, a mount that hides the image's files (and the
rollout that keeps the old pod), a single key with items, a Secret as a 0400 file on tmpfs;
then what the book only mentions: a pod held by a missing ConfigMap, a ConfigMap deleted
under a running pod, subPath mounts that do not update, downward API and projected volumes,
immutable objects, tear down, and a node restart that keeps volumes updating."""

from __future__ import annotations

import json
import os
import re
import time
from pathlib import Path

import pytest

from conftest import Kubectl, eventually

pytestmark = pytest.mark.skipif(os.geteuid() != 0 or not Path("/usr/bin/containerd").exists(),
                                reason="needs root and containerd (scripts/install-node-deps.sh)")

CONFIG_DEV = """
apiVersion: v1
kind: ConfigMap
metadata:
  name: todo-web-config-dev
data:
  config.json: |-
    {
      "ConfigController": {
        "Enabled" : true
      }
    }
"""

CONFIG_DEV_WITH_LOGGING = CONFIG_DEV + """
  logging.json: |-
    {
      "Logging": {
        "LogLevel": {
          "ToDoList.Pages" : "Debug"
        }
      }
    }
"""


def web_deployment(mount_path: str = "/app/config", items: str = "") -> str:
    return f"""
apiVersion: apps/v1
kind: Deployment
metadata:
  name: todo-web
spec:
  selector:
    matchLabels: {{app: todo-web}}
  template:
    metadata:
      labels: {{app: todo-web}}
    spec:
      terminationGracePeriodSeconds: 1
      containers:
      - name: web
        image: pyk8s/busybox:1.35
        command: [sleep, "3600"]
        volumeMounts:
        - name: config
          mountPath: "{mount_path}"
          readOnly: true
      volumes:
      - name: config
        configMap:
          name: todo-web-config-dev
{items}"""


DB_SECRET = """
apiVersion: v1
kind: Secret
metadata:
  name: todo-db-secret-test
type: Opaque
stringData:
  POSTGRES_PASSWORD: "kiamol-2*2*"
"""

DB_DEPLOYMENT = """
apiVersion: apps/v1
kind: Deployment
metadata:
  name: todo-db
spec:
  selector:
    matchLabels: {app: todo-db}
  template:
    metadata:
      labels: {app: todo-db}
    spec:
      terminationGracePeriodSeconds: 1
      containers:
      - name: db
        image: pyk8s/busybox:1.35
        command: [sleep, "3600"]
        env:
        - name: POSTGRES_PASSWORD_FILE
          value: /secrets/postgres_password
        volumeMounts:
        - name: secret
          mountPath: "/secrets"
      volumes:
      - name: secret
        secret:
          secretName: todo-db-secret-test
          defaultMode: 0400
          items:
          - key: POSTGRES_PASSWORD
            path: postgres_password
"""


@pytest.fixture(scope="module")
def kubectl(cluster, tmp_path_factory):
    return Kubectl(cluster, tmp_path_factory.mktemp("kube-cache"))


@pytest.fixture(scope="module")
def agent_dir(cluster) -> Path:
    return cluster.data_dir / "agent"


def pods_of(kubectl, app: str) -> list[dict]:
    return json.loads(kubectl("get", "pods", "-l", f"app={app}", "-o", "json"))["items"]


def running(pod: dict) -> bool:
    return (not pod["metadata"].get("deletionTimestamp") and pod["status"].get("phase") == "Running"
            and all(s.get("ready") for s in pod["status"].get("containerStatuses") or [{}]))


def mounts_under(path: Path) -> list[str]:
    prefix = str(path.resolve())
    return [line.split()[1] for line in Path("/proc/self/mounts").read_text().splitlines()
            if line.split()[1].startswith(prefix)]


def apply(kubectl, manifest: str) -> str:
    return kubectl("apply", "-f", "-", input=manifest)


@pytest.fixture(scope="module")
def todo_web(kubectl):
    """Listing 4.6 and 4.7: the JSON ConfigMap and the Deployment that mounts it."""
    assert apply(kubectl, CONFIG_DEV).strip() == "configmap/todo-web-config-dev created"
    assert apply(kubectl, web_deployment()).strip() == "deployment.apps/todo-web created"
    kubectl("rollout", "status", "deployment/todo-web", "--timeout=90s")
    yield "todo-web"
    kubectl("delete", "deployment", "todo-web", "--wait=false", check=False)


# -- the book's exercises ------------------------------------------------------------------

def test_config_map_file_is_a_link_into_the_data_directory(kubectl, todo_web):
    listing = kubectl("exec", "deploy/todo-web", "--", "sh", "-c", "ls -l /app/config/*.json")
    assert re.fullmatch(r"lrwxrwxrwx\s+1 root\s+root\s+18 .+ /app/config/config\.json -> \.\.data/config\.json\n",
                        listing), listing
    resolved = kubectl("exec", "deploy/todo-web", "--", "sh", "-c", "readlink -f /app/config/config.json").strip()
    assert re.fullmatch(r"/app/config/\.\.\d{4}_\d\d_\d\d_\d\d_\d\d_\d\d\.\d+/config\.json", resolved), resolved
    content = json.loads(kubectl("exec", "deploy/todo-web", "--", "cat", "/app/config/config.json"))
    assert content == {"ConfigController": {"Enabled": True}}


def test_config_volume_is_read_only_even_for_root(kubectl, todo_web):
    result = kubectl.run("exec", "deploy/todo-web", "--", "sh", "-c", "echo ch04 >> /app/config/config.json",
                         check=False)
    assert result.returncode != 0
    assert "Read-only file system" in result.stderr, result.stderr
    assert "command terminated with exit code" in result.stderr


def test_updated_config_map_reaches_the_same_pod_without_a_restart(kubectl, todo_web):
    [before] = [p for p in pods_of(kubectl, "todo-web") if running(p)]
    apply(kubectl, CONFIG_DEV_WITH_LOGGING)
    written = time.monotonic()
    eventually(lambda: "logging.json" in kubectl("exec", "deploy/todo-web", "--", "ls", "/app/config"), 10,
               what="logging.json in the pod")
    assert time.monotonic() - written < 5  # the goal is 2 s (bench/config.py measures it)
    [after] = [p for p in pods_of(kubectl, "todo-web") if running(p)]
    assert after["metadata"]["uid"] == before["metadata"]["uid"]
    assert after["status"]["containerStatuses"][0]["restartCount"] == 0
    listing = kubectl("exec", "deploy/todo-web", "--", "sh", "-c", "ls -l /app/config/*.json")
    assert "logging.json -> ..data/logging.json" in listing
    # and a key that leaves the ConfigMap leaves the directory
    apply(kubectl, CONFIG_DEV)
    eventually(lambda: kubectl("exec", "deploy/todo-web", "--", "ls", "/app/config").split() == ["config.json"], 10,
               what="logging.json gone")


def test_mount_over_a_directory_hides_the_image_files_and_the_old_pod_keeps_running(kubectl, todo_web):
    # Listing 4.9: the ConfigMap mounted over the app's directory; the image's programs are
    # gone, the new pod cannot start, and the rollout keeps the old pod serving.
    apply(kubectl, CONFIG_DEV_WITH_LOGGING)
    [old] = [p for p in pods_of(kubectl, "todo-web") if running(p)]
    apply(kubectl, web_deployment(mount_path="/bin"))

    def new_pod_failing():
        pods = pods_of(kubectl, "todo-web")
        new = [p for p in pods if p["metadata"]["uid"] != old["metadata"]["uid"]]
        waiting = [(s.get("state") or {}).get("waiting", {}).get("reason") for p in new
                   for s in p["status"].get("containerStatuses") or []]
        return any(reason in ("CrashLoopBackOff", "RunContainerError", "StartError", "CreateContainerError")
                   for reason in waiting) and pods
    pods = eventually(new_pod_failing, 60, what="the broken pod failing")
    assert any(p["metadata"]["uid"] == old["metadata"]["uid"] and running(p) for p in pods)
    # Listing 4.10: mount fixed, one item only.
    apply(kubectl, web_deployment(items="          items:\n          - key: config.json\n            path: config.json\n"))
    kubectl("rollout", "status", "deployment/todo-web", "--timeout=90s")
    eventually(lambda: len(pods_of(kubectl, "todo-web")) == 1, 60, what="old pods gone")
    assert kubectl("exec", "deploy/todo-web", "--", "sh", "-c", "ls /app/config").split() == ["config.json"]


def test_a_mount_hides_what_the_image_has_in_that_directory(kubectl, todo_web):
    pod = """
apiVersion: v1
kind: Pod
metadata: {name: hidden}
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: main
    image: pyk8s/busybox:1.35
    command: [sleep, "3600"]
    volumeMounts: [{name: config, mountPath: /usr/bin}]
  volumes:
  - {name: config, configMap: {name: todo-web-config-dev}}
"""
    apply(kubectl, pod)
    try:
        kubectl("wait", "--for=condition=Ready", "pod/hidden", "--timeout=60s")
        assert kubectl("exec", "hidden", "--", "ls", "/usr/bin").split() == ["config.json", "logging.json"]
        assert "wget" in kubectl("exec", "deploy/todo-web", "--", "ls", "/usr/bin").split()
    finally:
        kubectl("delete", "pod", "hidden", "--wait=false", check=False)


def test_secret_as_a_0400_file_on_tmpfs(kubectl, agent_dir):
    assert apply(kubectl, DB_SECRET).strip() == "secret/todo-db-secret-test created"
    apply(kubectl, DB_DEPLOYMENT)
    try:
        kubectl("rollout", "status", "deployment/todo-db", "--timeout=90s")
        listing = kubectl("exec", "deploy/todo-db", "--", "sh", "-c", "ls -l $(readlink -f /secrets/postgres_password)")
        assert re.fullmatch(r"-r--------\s+1 root\s+root\s+11 .+ /secrets/\.\.\d{4}_[\d_]+\.\d+/postgres_password\n",
                            listing), listing
        assert kubectl("exec", "deploy/todo-db", "--", "cat", "/secrets/postgres_password") == "kiamol-2*2*"
        [pod] = [p for p in pods_of(kubectl, "todo-db") if running(p)]
        volume = agent_dir / "pods" / pod["metadata"]["uid"] / "volumes" / "kubernetes.io~secret" / "secret"
        tmpfs = [line for line in Path("/proc/self/mounts").read_text().splitlines()
                 if line.split()[1] == str(volume.resolve())]
        assert tmpfs and tmpfs[0].split()[2] == "tmpfs"
    finally:
        kubectl("delete", "deployment", "todo-db", "--wait=false", check=False)
    # tear down: the pod's tmpfs is unmounted and its volume directory removed
    eventually(lambda: not mounts_under(volume) and not volume.exists(), 60, what="secret volume torn down")


# -- beyond the book ---------------------------------------------------------------------

def simple_pod(name: str, volumes: str, mounts: str, labels: str = "{}") -> str:
    return f"""
apiVersion: v1
kind: Pod
metadata: {{name: {name}, labels: {labels}}}
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: main
    image: pyk8s/busybox:1.35
    command: [sleep, "3600"]
    volumeMounts: {mounts}
  volumes: {volumes}
"""


def test_missing_config_map_holds_the_pod_until_it_is_created(kubectl):
    apply(kubectl, simple_pod("waiter", "[{name: config, configMap: {name: late-config}}]",
                              "[{name: config, mountPath: /config}]"))
    try:
        def failed_mount():
            events = json.loads(kubectl("get", "events", "--field-selector", "involvedObject.name=waiter",
                                        "-o", "json"))["items"]
            return [e for e in events if e["reason"] == "FailedMount"]
        [event] = eventually(failed_mount, 30, what="a FailedMount event")
        assert event["type"] == "Warning"
        assert event["message"] == 'MountVolume.SetUp failed for volume "config" : configmap "late-config" not found'
        pod = json.loads(kubectl("get", "pod", "waiter", "-o", "json"))
        assert pod["status"]["phase"] == "Pending"
        assert pod["status"]["containerStatuses"][0]["state"] == {"waiting": {"reason": "ContainerCreating"}}
        assert "ContainerCreating" in kubectl("get", "pod", "waiter")
        kubectl("create", "configmap", "late-config", "--from-literal=greeting=hello")
        kubectl("wait", "--for=condition=Ready", "pod/waiter", "--timeout=30s")
        assert kubectl("exec", "waiter", "--", "cat", "/config/greeting") == "hello"
    finally:
        kubectl("delete", "pod", "waiter", "--wait=false", check=False)


def test_config_map_deleted_under_a_running_pod_leaves_its_files(kubectl):
    kubectl("create", "configmap", "short-lived", "--from-literal=key=value")
    apply(kubectl, simple_pod("keeper", "[{name: config, configMap: {name: short-lived}}]",
                              "[{name: config, mountPath: /config}]"))
    try:
        kubectl("wait", "--for=condition=Ready", "pod/keeper", "--timeout=60s")
        kubectl("delete", "configmap", "short-lived")
        time.sleep(1.5)  # past the 2 s update window: nothing may change
        assert kubectl("exec", "keeper", "--", "cat", "/config/key") == "value"
        assert running(json.loads(kubectl("get", "pod", "keeper", "-o", "json")))
    finally:
        kubectl("delete", "pod", "keeper", "--wait=false", check=False)


def test_sub_path_mount_does_not_follow_updates(kubectl):
    kubectl("create", "configmap", "sub", "--from-literal=app.conf=v1")
    apply(kubectl, simple_pod("subpath", "[{name: config, configMap: {name: sub}}]",
                              "[{name: config, mountPath: /etc/app.conf, subPath: app.conf}, "
                              "{name: config, mountPath: /config}]"))
    try:
        kubectl("wait", "--for=condition=Ready", "pod/subpath", "--timeout=60s")
        assert kubectl("exec", "subpath", "--", "cat", "/etc/app.conf") == "v1"
        kubectl("patch", "configmap", "sub", "-p", '{"data": {"app.conf": "v2"}}')
        eventually(lambda: kubectl("exec", "subpath", "--", "cat", "/config/app.conf") == "v2", 10,
                   what="the directory mount updated")
        assert kubectl("exec", "subpath", "--", "cat", "/etc/app.conf") == "v1"
    finally:
        kubectl("delete", "pod", "subpath", "--wait=false", check=False)


def test_downward_api_and_projected_volumes(kubectl):
    kubectl("create", "configmap", "proj-cm", "--from-literal=setting=on")
    kubectl("create", "secret", "generic", "proj-secret", "--from-literal=token=s3cr3t")
    volumes = """
  - name: info
    downwardAPI:
      items:
      - {path: labels, fieldRef: {fieldPath: metadata.labels}}
      - {path: name, fieldRef: {fieldPath: metadata.name}}
      - {path: mem, resourceFieldRef: {containerName: main, resource: limits.memory, divisor: 1Mi}}
  - name: all
    projected:
      sources:
      - configMap: {name: proj-cm}
      - secret: {name: proj-secret, items: [{key: token, path: auth/token, mode: 0400}]}
      - downwardAPI: {items: [{path: namespace, fieldRef: {fieldPath: metadata.namespace}}]}"""
    manifest = simple_pod("downward", volumes, "[{name: info, mountPath: /etc/podinfo}, {name: all, mountPath: /all}]",
                          "{app: downward}")
    manifest = manifest.replace("  volumes: \n", "  volumes:\n").replace(
        'command: [sleep, "3600"]', 'command: [sleep, "3600"]\n    resources: {limits: {memory: 64Mi}}')
    apply(kubectl, manifest)
    try:
        kubectl("wait", "--for=condition=Ready", "pod/downward", "--timeout=60s")
        assert kubectl("exec", "downward", "--", "cat", "/etc/podinfo/labels") == 'app="downward"'
        assert kubectl("exec", "downward", "--", "cat", "/etc/podinfo/name") == "downward"
        assert kubectl("exec", "downward", "--", "cat", "/etc/podinfo/mem") == "64"
        assert kubectl("exec", "downward", "--", "cat", "/all/setting") == "on"
        assert kubectl("exec", "downward", "--", "cat", "/all/auth/token") == "s3cr3t"
        assert kubectl("exec", "downward", "--", "cat", "/all/namespace") == "default"
        assert kubectl("exec", "downward", "--", "stat", "-c", "%A", "/all/auth/token").strip() == "-r--------"
        kubectl("label", "pod", "downward", "tier=front")
        eventually(lambda: kubectl("exec", "downward", "--", "cat", "/etc/podinfo/labels")
                   == 'app="downward"\ntier="front"', 10, what="labels file updated")
        kubectl("patch", "secret", "proj-secret", "-p", '{"stringData": {"token": "rotated"}}')
        eventually(lambda: kubectl("exec", "downward", "--", "cat", "/all/auth/token") == "rotated", 10,
                   what="projected secret updated")
    finally:
        kubectl("delete", "pod", "downward", "--wait=false", check=False)


def test_immutable_config_map_rejects_changes_with_upstreams_message(kubectl):
    apply(kubectl, "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: frozen}\nimmutable: true\ndata: {a: '1'}\n")
    result = kubectl.run("patch", "configmap", "frozen", "-p", '{"data": {"a": "2"}}', check=False)
    assert result.returncode != 0
    assert ('The ConfigMap "frozen" is invalid: data: Forbidden: field is immutable when `immutable` is set'
            in result.stderr), result.stderr


def test_objects_over_one_mebibyte_are_rejected(kubectl, tmp_path):
    big = tmp_path / "big.bin"
    big.write_bytes(b"x" * (1024 * 1024 + 1))
    result = kubectl.run("create", "secret", "generic", "big", f"--from-file=blob={big}", check=False)
    assert result.returncode != 0
    assert "Too long: must have at most 1048576 bytes" in result.stderr, result.stderr


def test_binary_data_is_written_byte_for_byte(kubectl, tmp_path):
    blob = bytes(range(256))
    (tmp_path / "blob.bin").write_bytes(blob)
    kubectl("create", "configmap", "binary", f"--from-file=blob.bin={tmp_path / 'blob.bin'}")
    kubectl("create", "secret", "generic", "binary", f"--from-file=blob.bin={tmp_path / 'blob.bin'}")
    apply(kubectl, simple_pod("binary", "[{name: c, configMap: {name: binary}}, {name: s, secret: {secretName: binary}}]",
                              "[{name: c, mountPath: /c}, {name: s, mountPath: /s}]"))
    try:
        kubectl("wait", "--for=condition=Ready", "pod/binary", "--timeout=60s")
        for path in ("/c/blob.bin", "/s/blob.bin"):
            digest = kubectl("exec", "binary", "--", "md5sum", path).split()[0]
            import hashlib
            assert digest == hashlib.md5(blob).hexdigest(), path
    finally:
        kubectl("delete", "pod", "binary", "--wait=false", check=False)


def test_node_restart_keeps_volumes_and_resumes_updates(cluster, kubectl, agent_dir):
    kubectl("create", "configmap", "survivor", "--from-literal=v=1")
    kubectl("create", "secret", "generic", "survivor", "--from-literal=s=1")
    apply(kubectl, simple_pod("survivor", "[{name: c, configMap: {name: survivor}}, {name: s, secret: {secretName: survivor}}]",
                              "[{name: c, mountPath: /c}, {name: s, mountPath: /s}]"))
    try:
        kubectl("wait", "--for=condition=Ready", "pod/survivor", "--timeout=60s")
        uid = json.loads(kubectl("get", "pod", "survivor", "-o", "json"))["metadata"]["uid"]
        cluster.stop(timeout=60)
        cluster.start(timeout=120)
        pod = eventually(lambda: (p := json.loads(kubectl("get", "pod", "survivor", "-o", "json"))) and running(p) and p,
                         60, what="the pod running after the restart")
        assert pod["metadata"]["uid"] == uid and pod["status"]["containerStatuses"][0]["restartCount"] == 0
        assert kubectl("exec", "survivor", "--", "cat", "/s/s") == "1"
        kubectl("patch", "configmap", "survivor", "-p", '{"data": {"v": "2"}}')
        kubectl("patch", "secret", "survivor", "-p", '{"stringData": {"s": "2"}}')
        eventually(lambda: kubectl("exec", "survivor", "--", "cat", "/c/v") == "2"
                   and kubectl("exec", "survivor", "--", "cat", "/s/s") == "2", 10, what="updates after the restart")
        # one tmpfs each for the secret and the kube-api-access projected volume, none stacked by the new agent
        volume = agent_dir / "pods" / uid / "volumes"
        assert len(mounts_under(volume)) == 2
    finally:
        kubectl("delete", "pod", "survivor", "--wait=false", check=False)
    eventually(lambda: not mounts_under(agent_dir / "pods" / uid), 60, what="volumes torn down")
