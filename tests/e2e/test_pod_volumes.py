"""The book's chapter 5 pod-volume exercises with the real kubectl against a single-node
cluster, the project's busybox image standing in for the book's sleep and nginx images:
a file lost with the container's writable layer when the container is replaced, the same
file kept in an emptyDir, a cache kept in a hostPath across pod replacement, the node's
logs through `hostPath: /` and subPaths; then the failure cases: a hostPath of the wrong
type (upstream's FailedMount event), a subPath escaping its volume through a symlink
(CreateContainerConfigError), an emptyDir over its sizeLimit (Evicted); and subPathExpr,
memory emptyDirs, fsGroup, a claim mounted from its bound PersistentVolume and mount
propagation (HostToContainer and Bidirectional) on a shared mount the test makes.

hostPaths point into the test's temp directories; the only real directory of the machine
a pod sees is `/`, mounted read-only."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from conftest import Kubectl, eventually

pytestmark = pytest.mark.skipif(os.geteuid() != 0 or not Path("/usr/bin/containerd").exists(),
                                reason="needs root and containerd (scripts/install-node-deps.sh)")

# The container ends when its process is signalled from inside (`kill 1`): the shell as PID 1
# has a handler, which is what lets a signal from inside the container's PID namespace in.
SLEEP_COMMAND = """command: [sh, -c, 'trap "exit 0" TERM; sleep 100000 & wait']"""


def sleep_deployment(volumes: str = "", mounts: str = "", name: str = "sleep") -> str:
    spec = f"""
apiVersion: apps/v1
kind: Deployment
metadata:
  name: {name}
spec:
  selector:
    matchLabels: {{app: {name}}}
  template:
    metadata:
      labels: {{app: {name}}}
    spec:
      terminationGracePeriodSeconds: 1
      containers:
      - name: sleep
        image: pyk8s/busybox:1.35
        {SLEEP_COMMAND}
"""
    if mounts:
        spec += f"        volumeMounts: {mounts}\n"
    if volumes:
        spec += f"      volumes: {volumes}\n"
    return spec


@pytest.fixture(scope="module")
def kubectl(cluster, tmp_path_factory):
    return Kubectl(cluster, tmp_path_factory.mktemp("kube-cache"))


def apply(kubectl, manifest: str) -> str:
    return kubectl("apply", "-f", "-", input=manifest)


def pods_of(kubectl, app: str) -> list[dict]:
    return json.loads(kubectl("get", "pods", "-l", f"app={app}", "-o", "json"))["items"]


def container_id(kubectl, app: str) -> str:
    return kubectl("get", "pod", "-l", f"app={app}", "-o",
                   "jsonpath={.items[0].status.containerStatuses[0].containerID}")


def events_of(kubectl, pod: str, reason: str) -> list[dict]:
    events = json.loads(kubectl("get", "events", "--field-selector", f"involvedObject.name={pod}",
                                "-o", "json"))["items"]
    return [e for e in events if e["reason"] == reason]


def restart_container(kubectl, app: str) -> None:
    """The book's `kubectl exec deploy/sleep -- killall5`, and wait for the replacement."""
    before = container_id(kubectl, app)
    kubectl.run("exec", f"deploy/{app}", "--", "kill", "1", check=False)

    def replaced():
        pods = pods_of(kubectl, app)
        if len(pods) != 1:
            return None
        status = (pods[0]["status"].get("containerStatuses") or [{}])[0]
        return status.get("containerID") not in (None, "", before) and "running" in status.get("state", {})
    eventually(replaced, 60, what="a replacement container")
    assert pods_of(kubectl, app)[0]["status"]["containerStatuses"][0]["restartCount"] >= 1


def rolled_out(kubectl, deployment: str) -> None:
    kubectl("rollout", "status", f"deployment/{deployment}", "--timeout=90s")


def delete_deployment(kubectl, name: str) -> None:
    kubectl("delete", "deployment", name, "--wait=false", check=False)
    eventually(lambda: not pods_of(kubectl, name), 60, what=f"the pods of {name} to go")


def simple_pod(name: str, body: str) -> str:
    return f"""
apiVersion: v1
kind: Pod
metadata:
  name: {name}
spec:
  terminationGracePeriodSeconds: 1
{body}"""


# -- 5.1: the container's writable layer and an emptyDir -------------------------------------

def test_file_in_the_writable_layer_is_lost_when_the_container_is_replaced(kubectl):
    apply(kubectl, sleep_deployment())
    try:
        rolled_out(kubectl, "sleep")
        assert kubectl("exec", "deploy/sleep", "--", "sh", "-c", "echo ch05 > /file.txt; ls /*.txt") == "/file.txt\n"
        assert container_id(kubectl, "sleep").startswith("containerd://")
        restart_container(kubectl, "sleep")
        gone = kubectl.run("exec", "deploy/sleep", "--", "sh", "-c", "ls /*.txt", check=False)
        assert gone.returncode != 0 and "No such file or directory" in gone.stderr + gone.stdout
    finally:
        delete_deployment(kubectl, "sleep")


def test_file_in_an_empty_dir_survives_the_container_being_replaced(kubectl, cluster):
    apply(kubectl, sleep_deployment("[{name: data, emptyDir: {}}]", "[{name: data, mountPath: /data}]"))
    try:
        rolled_out(kubectl, "sleep")
        assert kubectl("exec", "deploy/sleep", "--", "ls", "/data") == ""
        assert kubectl("exec", "deploy/sleep", "--", "sh", "-c", "echo ch05 > /data/file.txt; ls /data") == "file.txt\n"
        uid = pods_of(kubectl, "sleep")[0]["metadata"]["uid"]
        on_node = cluster.data_dir / "agent/pods" / uid / "volumes/kubernetes.io~empty-dir/data"
        assert (on_node / "file.txt").read_text() == "ch05\n"
        restart_container(kubectl, "sleep")
        assert kubectl("exec", "deploy/sleep", "--", "cat", "/data/file.txt") == "ch05\n"
    finally:
        delete_deployment(kubectl, "sleep")
    eventually(lambda: not on_node.exists(), 30, what="the emptyDir to be removed with the pod")


# -- 5.2: a cache in a hostPath outlives the pod ----------------------------------------------

def test_cache_in_a_host_path_is_kept_across_pod_replacement(kubectl, tmp_path):
    cache = tmp_path / "volumes/nginx/cache"
    apply(kubectl, sleep_deployment(
        f"[{{name: cache-volume, hostPath: {{path: {cache}, type: DirectoryOrCreate}}}}]",
        "[{name: cache-volume, mountPath: /data/nginx/cache}]", name="pi-proxy"))
    try:
        rolled_out(kubectl, "pi-proxy")
        assert cache.is_dir()  # DirectoryOrCreate made it
        kubectl("exec", "deploy/pi-proxy", "--", "sh", "-c", "mkdir -p /data/nginx/cache/5 && "
                                                             "echo pi > /data/nginx/cache/5/response")
        first = pods_of(kubectl, "pi-proxy")[0]["metadata"]["name"]
        kubectl("delete", "pod", "-l", "app=pi-proxy", "--wait=false")

        def replacement():
            pods = [p for p in pods_of(kubectl, "pi-proxy") if p["metadata"]["name"] != first]
            return pods and pods[0]["status"].get("phase") == "Running"
        eventually(replacement, 60, what="the replacement proxy pod")
        eventually(lambda: [p for p in pods_of(kubectl, "pi-proxy") if p["metadata"]["name"] == first] == [], 30,
                   what="the old pod to go")
        listing = kubectl("exec", "deploy/pi-proxy", "--", "ls", "-l", "/data/nginx/cache")
        assert listing.startswith("total") and listing.split()[-1] == "5"
        assert kubectl("exec", "deploy/pi-proxy", "--", "cat", "/data/nginx/cache/5/response") == "pi\n"
    finally:
        delete_deployment(kubectl, "pi-proxy")
    assert (cache / "5/response").read_text() == "pi\n"  # never deleted with a pod


# -- 5.2: the node's filesystem through hostPath: / ----------------------------------------------

def test_node_root_and_log_sub_paths(kubectl, cluster):
    """Listings 5.3 and 5.4. The test cluster's pod logs live under its data dir (the node's
    /var/log/pods and /var/log/containers of the book), so the subPaths name those."""
    log_root = (cluster.data_dir / "agent/logs").resolve()
    relative = str(log_root).lstrip("/")
    apply(kubectl, sleep_deployment("[{name: node-root, hostPath: {path: /, type: Directory}}]",
                                    "[{name: node-root, mountPath: /node-root, readOnly: true}]"))
    try:
        rolled_out(kubectl, "sleep")
        assert kubectl("exec", "deploy/sleep", "--", "whoami") == "root\n"
        pod = pods_of(kubectl, "sleep")[0]
        node_listing = kubectl("exec", "deploy/sleep", "--", "ls", "-l", f"/node-root/{relative}")
        assert "pods" in node_listing and "containers" in node_listing
        assert f"default_{pod['metadata']['name']}_{pod['metadata']['uid']}" in kubectl(
            "exec", "deploy/sleep", "--", "ls", f"/node-root/{relative}/pods")
        denied = kubectl.run("exec", "deploy/sleep", "--", "touch", f"/node-root/{relative}/x", check=False)
        assert denied.returncode != 0 and "Read-only file system" in denied.stderr + denied.stdout

        apply(kubectl, sleep_deployment("[{name: node-root, hostPath: {path: /, type: Directory}}]",
                                        f"[{{name: node-root, mountPath: /pod-logs, subPath: {relative}/pods, "
                                        f"readOnly: true}}, {{name: node-root, mountPath: /container-logs, "
                                        f"subPath: {relative}/containers, readOnly: true}}]"))
        rolled_out(kubectl, "sleep")
        [pod] = [p for p in pods_of(kubectl, "sleep") if not p["metadata"].get("deletionTimestamp")]
        name = pod["metadata"]["name"]
        pod_logs = kubectl("exec", name, "--", "sh", "-c", "ls /pod-logs | grep _sleep-")
        assert f"default_{name}_{pod['metadata']['uid']}" in pod_logs.split()
        container_logs = kubectl("exec", name, "--", "sh", "-c", "ls /container-logs | grep sleep")
        assert any(line.startswith(f"{name}_default_sleep-") and line.endswith(".log")
                   for line in container_logs.split())
        outside = kubectl.run("exec", name, "--", "ls", "/node-root", check=False)
        assert outside.returncode != 0  # only the sub-paths are there
    finally:
        delete_deployment(kubectl, "sleep")


# -- failure cases ---------------------------------------------------------------------------------

def test_host_path_of_the_wrong_type_holds_the_pod_with_upstreams_event(kubectl, tmp_path):
    not_a_directory = tmp_path / "cache"
    not_a_directory.write_text("a file")
    apply(kubectl, simple_pod("wrong-type", f"""  containers:
  - name: app
    image: pyk8s/busybox:1.35
    command: [sleep, "3600"]
    volumeMounts: [{{name: cache, mountPath: /cache}}]
  volumes: [{{name: cache, hostPath: {{path: {not_a_directory}, type: Directory}}}}]
"""))
    try:
        [event, *_] = eventually(lambda: events_of(kubectl, "wrong-type", "FailedMount"), 30,
                                 what="a FailedMount event")
        assert event["type"] == "Warning"
        assert event["message"] == (f'MountVolume.SetUp failed for volume "cache" : hostPath type check failed: '
                                    f'{not_a_directory} is not a directory')
        pod = json.loads(kubectl("get", "pod", "wrong-type", "-o", "json"))
        assert pod["status"]["phase"] == "Pending"
        assert pod["status"]["containerStatuses"][0]["state"] == {"waiting": {"reason": "ContainerCreating"}}
        assert not_a_directory.read_text() == "a file"
    finally:
        kubectl("delete", "pod", "wrong-type", "--wait=false", check=False)


def test_sub_path_escaping_its_volume_is_refused(kubectl):
    """An init container (volumeMounts work there too) plants a symlink to /etc in an
    emptyDir; the app container's subPath through it would be the node's /etc."""
    apply(kubectl, simple_pod("escape", """  initContainers:
  - name: plant
    image: pyk8s/busybox:1.35
    command: [sh, -c, "ln -s /etc /data/escape && mkdir /data/inside"]
    volumeMounts: [{name: data, mountPath: /data}]
  containers:
  - name: app
    image: pyk8s/busybox:1.35
    command: [sleep, "3600"]
    volumeMounts: [{name: data, mountPath: /host-etc, subPath: escape}]
  volumes: [{name: data, emptyDir: {}}]
"""))
    try:
        def refused():
            pod = json.loads(kubectl("get", "pod", "escape", "-o", "json"))
            state = ((pod["status"].get("containerStatuses") or [{}])[0]).get("state") or {}
            return state.get("waiting", {}).get("reason") == "CreateContainerConfigError" and state["waiting"]
        waiting = eventually(refused, 60, what="CreateContainerConfigError")
        assert waiting["message"] == 'failed to prepare subPath for volumeMount "data" of container "app"'
        assert "CreateContainerConfigError" in kubectl("get", "pod", "escape")
        [event, *_] = eventually(lambda: [e for e in events_of(kubectl, "escape", "Failed")
                                          if "subPath" in e["message"]], 20, what="the Failed event")
        assert event["message"] == 'Error: failed to prepare subPath for volumeMount "data" of container "app"'
        init = json.loads(kubectl("get", "pod", "escape", "-o", "json"))["status"]["initContainerStatuses"][0]
        assert init["state"]["terminated"]["exitCode"] == 0
    finally:
        kubectl("delete", "pod", "escape", "--wait=false", check=False)


def test_empty_dir_over_its_size_limit_gets_the_pod_evicted(kubectl):
    apply(kubectl, simple_pod("filler", """  containers:
  - name: app
    image: pyk8s/busybox:1.35
    command: [sh, -c, "dd if=/dev/zero of=/scratch/fill bs=1048576 count=3 && sleep 3600"]
    volumeMounts: [{name: scratch, mountPath: /scratch}]
  volumes: [{name: scratch, emptyDir: {sizeLimit: 1Mi}}]
"""))
    try:
        def evicted():
            pod = json.loads(kubectl("get", "pod", "filler", "-o", "json"))
            return pod["status"].get("phase") == "Failed" and pod["status"]
        status = eventually(evicted, 60, what="the pod to be evicted")
        assert status["reason"] == "Evicted"
        assert status["message"] == 'Usage of EmptyDir volume "scratch" exceeds the limit "1Mi". '
        # upstream's local-storage evictions (emptyDir sizeLimit, ephemeral-storage limits)
        # pass no DisruptionTarget condition; only node-pressure evictions do
        assert "DisruptionTarget" not in [c["type"] for c in status.get("conditions") or []]
        [event, *_] = eventually(lambda: events_of(kubectl, "filler", "Evicted"), 20, what="the Evicted event")
        assert event["type"] == "Warning" and event["message"] == status["message"]
        # upstream's printer shows the killed container's reason, as for evicted pods since 1.2x
        assert kubectl("get", "pod", "filler").splitlines()[1].split()[2] == "Error"
        described = kubectl("describe", "pod", "filler")
        assert "Evicted" in described and "exceeds the limit" in described
        assert json.loads(kubectl("get", "pod", "filler", "-o", "json"))["status"]["phase"] == "Failed"
    finally:
        kubectl("delete", "pod", "filler", "--wait=false", check=False)


# -- beyond the book: subPathExpr, memory emptyDir, fsGroup, claims ---------------------------------

def test_sub_path_expr_memory_empty_dir_and_fs_group(kubectl):
    apply(kubectl, simple_pod("expr", """  securityContext: {fsGroup: 2345}
  containers:
  - name: app
    image: pyk8s/busybox:1.35
    command: [sleep, "3600"]
    env:
    - name: POD_NAME
      valueFrom: {fieldRef: {fieldPath: metadata.name}}
    resources: {limits: {memory: 48Mi}}
    volumeMounts:
    - {name: shared, mountPath: /shared}
    - {name: shared, mountPath: /mine, subPathExpr: $(POD_NAME)}
    - {name: cache, mountPath: /cache}
    - {name: ram, mountPath: /ram}
    - {name: shared, mountPath: /read-only, readOnly: true}
  volumes:
  - {name: shared, emptyDir: {}}
  - {name: cache, emptyDir: {medium: Memory, sizeLimit: 4Mi}}
  - {name: ram, emptyDir: {medium: Memory}}
"""))
    try:
        kubectl("wait", "--for=condition=Ready", "pod/expr", "--timeout=60s")
        kubectl("exec", "expr", "--", "sh", "-c", "echo mine > /mine/file")
        assert kubectl("exec", "expr", "--", "cat", "/shared/expr/file") == "mine\n"
        assert kubectl("exec", "expr", "--", "stat", "-c", "%g %a", "/shared") == "2345 2777\n"
        filesystem = kubectl("exec", "expr", "--", "sh", "-c", "grep ' /cache ' /proc/mounts").split()
        assert filesystem[2] == "tmpfs" and "size=4096k" in filesystem[3]
        # no sizeLimit: as big as the pod's memory limit (upstream's SizeMemoryBackedVolumes)
        filesystem = kubectl("exec", "expr", "--", "sh", "-c", "grep ' /ram ' /proc/mounts").split()
        assert filesystem[2] == "tmpfs" and "size=49152k" in filesystem[3]
        denied = kubectl.run("exec", "expr", "--", "touch", "/read-only/x", check=False)
        assert denied.returncode != 0 and "Read-only file system" in denied.stderr + denied.stdout
    finally:
        kubectl("delete", "pod", "expr", "--wait=false", check=False)


def test_claim_is_mounted_from_its_bound_persistent_volume(kubectl, tmp_path):
    """A PersistentVolume pre-bound to a claim: the pod waits until the claim is Bound (the
    PV controller's job), then mounts the PV's directory, and
    the data outlives the pod."""
    data = tmp_path / "pv-data"
    data.mkdir()
    (data / "existing").write_text("from the node\n")
    apply(kubectl, f"""
apiVersion: v1
kind: PersistentVolume
metadata:
  name: pod-volumes-pv
spec:
  capacity: {{storage: 10Mi}}
  accessModes: [ReadWriteOnce]
  storageClassName: ""
  persistentVolumeReclaimPolicy: Retain
  hostPath: {{path: {data}, type: Directory}}
  claimRef: {{namespace: default, name: pod-volumes-claim}}
---
apiVersion: v1
kind: PersistentVolumeClaim
metadata:
  name: pod-volumes-claim
spec:
  accessModes: [ReadWriteOnce]
  storageClassName: ""
  volumeName: pod-volumes-pv
  resources: {{requests: {{storage: 10Mi}}}}
""")
    apply(kubectl, simple_pod("claimer", """  containers:
  - name: app
    image: pyk8s/busybox:1.35
    command: [sleep, "3600"]
    volumeMounts: [{name: data, mountPath: /data}]
  volumes: [{name: data, persistentVolumeClaim: {claimName: pod-volumes-claim}}]
"""))
    try:
        def bound():
            claim = json.loads(kubectl("get", "pvc", "pod-volumes-claim", "-o", "json"))
            return claim.get("status", {}).get("phase") == "Bound"
        eventually(bound, 30, what="the claim bound by the PV controller")
        kubectl("wait", "--for=condition=Ready", "pod/claimer", "--timeout=60s")
        assert kubectl("exec", "claimer", "--", "cat", "/data/existing") == "from the node\n"
        kubectl("exec", "claimer", "--", "sh", "-c", "echo from the pod > /data/written")
    finally:
        kubectl("delete", "pod", "claimer", "--wait=false", check=False)
        eventually(lambda: kubectl.run("get", "pod", "claimer", check=False).returncode != 0, 60,
                   what="the pod to go")
        kubectl("delete", "pvc", "pod-volumes-claim", "--wait=false", check=False)
        kubectl("delete", "pv", "pod-volumes-pv", "--wait=false", check=False)
    assert (data / "written").read_text() == "from the pod\n"


# -- mount propagation ------------------------------------------------------------------------

def _mount(*args: str) -> None:
    subprocess.run(["mount", *args], check=True, capture_output=True, text=True)


def _unmount_everything_under(path: Path) -> None:
    """Lazily unmount `path` and every mount below it, deepest first."""
    mounted = [line.split()[4] for line in Path("/proc/self/mountinfo").read_text().splitlines()]
    for point in sorted((m for m in mounted if m == str(path) or m.startswith(f"{path}/")), key=len, reverse=True):
        subprocess.run(["umount", "-l", point], capture_output=True)


def test_mount_propagation_between_the_node_and_a_container(kubectl, tmp_path):
    """A hostPath on a shared mount (the test bind-mounts a temp dir on itself and makes it
    rshared, since / is private here and containerd refuses propagation from a private
    mount): with HostToContainer a mount the node makes after the container started shows
    inside it; with Bidirectional (privileged) a mount the container makes shows on the
    node. Every mount is removed at the end."""
    shared = tmp_path / "shared"
    shared.mkdir()
    _mount("--bind", str(shared), str(shared))
    try:
        _mount("--make-rshared", str(shared))
        apply(kubectl, simple_pod("propagation", f"""  containers:
  - name: watcher
    image: pyk8s/busybox:1.35
    command: [sleep, "3600"]
    volumeMounts: [{{name: shared, mountPath: /node, mountPropagation: HostToContainer}}]
  - name: mounter
    image: pyk8s/busybox:1.35
    command: [sleep, "3600"]
    securityContext: {{privileged: true}}
    volumeMounts: [{{name: shared, mountPath: /node, mountPropagation: Bidirectional}}]
  volumes: [{{name: shared, hostPath: {{path: {shared}, type: Directory}}}}]
"""))
        try:
            kubectl("wait", "--for=condition=Ready", "pod/propagation", "--timeout=60s")
            # the node mounts a tmpfs after the containers started
            (shared / "from-node").mkdir()
            _mount("-t", "tmpfs", "-o", "size=1m", "tmpfs", str(shared / "from-node"))
            (shared / "from-node" / "hello").write_text("from the node\n")
            assert kubectl("exec", "propagation", "-c", "watcher", "--", "cat", "/node/from-node/hello") == \
                "from the node\n"
            # the privileged container mounts one: the node and the other container see it
            kubectl("exec", "propagation", "-c", "mounter", "--", "sh", "-c",
                    "mkdir -p /node/from-pod && mount -t tmpfs -o size=1m tmpfs /node/from-pod"
                    " && echo from the pod > /node/from-pod/hello")
            eventually(lambda: os.path.ismount(shared / "from-pod"), 10, what="the container's mount on the node")
            assert (shared / "from-pod" / "hello").read_text() == "from the pod\n"
            assert kubectl("exec", "propagation", "-c", "watcher", "--", "cat", "/node/from-pod/hello") == \
                "from the pod\n"
        finally:
            kubectl("delete", "pod", "propagation", "--wait=false", check=False)
            eventually(lambda: kubectl.run("get", "pod", "propagation", check=False).returncode != 0, 60,
                       what="the pod to go")
    finally:
        _unmount_everything_under(shared)
    assert not os.path.ismount(shared)
