"""The kubelet's storage volumes without a cluster: emptyDir (disk and memory, fsGroup,
sizeLimit eviction), hostPath with every type and upstream's messages, claims mounted from
their bound PersistentVolume, and the container mounts made from them (subPath and
subPathExpr with upstream's checks, readOnly, mount propagation), on a temp dir."""

from __future__ import annotations

import asyncio
import os
import socket
import stat
from pathlib import Path

import pytest

from pyk8s.kubelet.volumes.base import MountError, VolumeContext
from pyk8s.kubelet.volumes.emptydir import disk_usage, memory_volume_size, pod_memory_limit, size_limit
from pyk8s.kubelet.volumes.hostpath import check_type
from pyk8s.kubelet.volumes.manager import ContainerMountError, VolumeManager, expand_sub_path_expr

ALLOCATABLE = {"cpu": 2, "memory": 4 * 1024 ** 3}


def run(coroutine):
    return asyncio.run(coroutine)


class FakeManager(VolumeManager):
    """A manager whose API objects come from a dict, recording events and evictions."""

    def __init__(self, root: Path, store: dict | None = None):
        self.events: list[tuple] = []
        self.woken: list[str] = []
        self.evicted: list[tuple[str, str]] = []
        super().__init__(None, root, wake=self.woken.append, event=lambda *a: self.events.append(a),
                         evict=lambda uid, message: self.evicted.append((uid, message)))
        self.store = store if store is not None else {}

        async def get(kind, namespace, name):
            return self.store.get((kind, namespace, name))
        self.context = VolumeContext(get, lambda: ALLOCATABLE)


def pod_with(volumes, mounts, *, fs_group=None, env=None, uid="uid-1"):
    pod = {"metadata": {"name": "p", "namespace": "ns", "uid": uid},
           "spec": {"volumes": volumes, "containers": [{"name": "c", "volumeMounts": mounts, "env": env or []}]}}
    if fs_group is not None:
        pod["spec"]["securityContext"] = {"fsGroup": fs_group}
    return pod


def mounts_of(manager, pod, env=None):
    return manager.container_mounts(pod, pod["spec"]["containers"][0], env)


# -- emptyDir -----------------------------------------------------------------------------

def test_empty_dir_is_a_writable_pod_directory_kept_across_syncs_and_removed_at_tear_down(tmp_path):
    manager = FakeManager(tmp_path / "pods")
    pod = pod_with([{"name": "data", "emptyDir": {}}], [{"name": "data", "mountPath": "/data"}])
    assert run(manager.set_up(pod)) is True
    volume = tmp_path / "pods/uid-1/volumes/kubernetes.io~empty-dir/data"
    assert volume.is_dir() and stat.S_IMODE(volume.stat().st_mode) == 0o777
    assert mounts_of(manager, pod) == [{"container_path": "/data", "host_path": str(volume), "readonly": False}]
    (volume / "file.txt").write_text("ch05")
    assert run(manager.set_up(pod)) is True  # a container restart's sync keeps the contents
    assert (volume / "file.txt").read_text() == "ch05"
    run(manager.tear_down("uid-1"))
    assert not volume.exists() and not (tmp_path / "pods/uid-1/volumes").exists()


def test_empty_dir_after_an_agent_restart_keeps_its_files(tmp_path):
    pod = pod_with([{"name": "data", "emptyDir": {}}], [{"name": "data", "mountPath": "/data"}])
    first = FakeManager(tmp_path)
    run(first.set_up(pod))
    volume = tmp_path / "uid-1/volumes/kubernetes.io~empty-dir/data"
    (volume / "kept").write_text("x")
    second = FakeManager(tmp_path)
    assert run(second.set_up(pod)) is True
    assert (volume / "kept").read_text() == "x"


def test_empty_dir_with_fs_group_belongs_to_the_group_with_setgid(tmp_path):
    manager = FakeManager(tmp_path)
    pod = pod_with([{"name": "data", "emptyDir": {}}], [], fs_group=3456)
    assert run(manager.set_up(pod))
    volume = tmp_path / "uid-1/volumes/kubernetes.io~empty-dir/data"
    info = volume.stat()
    assert info.st_gid == 3456 and stat.S_IMODE(info.st_mode) == 0o2777


@pytest.mark.skipif(os.geteuid() != 0, reason="mounts a tmpfs")
def test_memory_empty_dir_is_a_tmpfs_sized_by_its_limit_and_unmounted_at_tear_down(tmp_path):
    manager = FakeManager(tmp_path)
    pod = pod_with([{"name": "cache", "emptyDir": {"medium": "Memory", "sizeLimit": "8Mi"}}], [])
    volume = tmp_path / "uid-1/volumes/kubernetes.io~empty-dir/cache"
    try:
        assert run(manager.set_up(pod))
        assert os.path.ismount(volume)
        fs = os.statvfs(volume)
        assert fs.f_blocks * fs.f_frsize == 8 * 1024 * 1024
        assert stat.S_IMODE(volume.stat().st_mode) == 0o777
    finally:
        run(manager.tear_down("uid-1"))
    assert not os.path.ismount(volume) and not volume.exists()


def _tmpfs_size(tmp_path, pod) -> int:
    manager = FakeManager(tmp_path)
    volume = tmp_path / f"{pod['metadata']['uid']}/volumes/kubernetes.io~empty-dir/cache"
    try:
        assert run(manager.set_up(pod))
        fs = os.statvfs(volume)
        return fs.f_blocks * fs.f_frsize
    finally:
        run(manager.tear_down(pod["metadata"]["uid"]))


def test_memory_empty_dir_without_size_limit_is_sized_by_the_pods_memory_limit_or_the_node(tmp_path):
    """upstream calculateEmptyDirMemorySize: node allocatable memory, the pod's limit when
    every container has one, sizeLimit when smaller than both."""
    def limited(pod, memory):
        pod["spec"]["containers"][0]["resources"] = {"limits": {"memory": memory}}
        return pod
    pod = limited(pod_with([{"name": "cache", "emptyDir": {"medium": "Memory"}}], [], uid="u-limit"), "16Mi")
    assert _tmpfs_size(tmp_path, pod) == 16 * 1024 ** 2
    pod = pod_with([{"name": "cache", "emptyDir": {"medium": "Memory"}}], [], uid="u-node")
    assert _tmpfs_size(tmp_path, pod) == ALLOCATABLE["memory"]
    pod = limited(pod_with([{"name": "cache", "emptyDir": {"medium": "Memory", "sizeLimit": "64Mi"}}], [],
                           uid="u-bigger"), "16Mi")
    assert _tmpfs_size(tmp_path, pod) == 16 * 1024 ** 2
    pod = limited(pod_with([{"name": "cache", "emptyDir": {"medium": "Memory", "sizeLimit": "8Mi"}}], [],
                           uid="u-smaller"), "16Mi")
    assert _tmpfs_size(tmp_path, pod) == 8 * 1024 ** 2


def test_pod_memory_limit_combines_containers_as_upstreams_pod_limits():
    def container(name, memory=None, restart=None):
        c = {"name": name}
        if memory:
            c["resources"] = {"limits": {"memory": memory}}
        if restart:
            c["restartPolicy"] = restart
        return c
    mi = 1024 ** 2
    assert pod_memory_limit({"spec": {"containers": [container("a", "10Mi"), container("b", "20Mi")]}}) == 30 * mi
    assert pod_memory_limit({"spec": {"containers": [container("a", "10Mi"), container("b")]}}) is None
    # a plain init container bigger than the app containers sets the pod's limit
    assert pod_memory_limit({"spec": {"containers": [container("a", "10Mi")],
                                      "initContainers": [container("init", "50Mi")]}}) == 50 * mi
    assert pod_memory_limit({"spec": {"containers": [container("a", "10Mi")],
                                      "initContainers": [container("init")]}}) is None
    # a sidecar adds to the app containers and to the init containers after it
    assert pod_memory_limit({"spec": {"containers": [container("a", "10Mi")],
                                      "initContainers": [container("side", "5Mi", "Always"),
                                                         container("init", "12Mi")]}}) == 17 * mi
    assert pod_memory_limit({"spec": {"containers": [container("a", "10Mi")], "overhead": {"memory": "1Mi"},
                                      "initContainers": [container("side", "5Mi", "Always")]}}) == 16 * mi
    # the pod-level limit wins
    assert pod_memory_limit({"spec": {"resources": {"limits": {"memory": "40Mi"}},
                                      "containers": [container("a")]}}) == 40 * mi
    volume = {"emptyDir": {"medium": "Memory"}}
    assert memory_volume_size({"spec": {"containers": [container("a")]}}, volume, 0) == 0
    assert memory_volume_size({"spec": {"containers": [container("a", "1Gi")]}}, volume, 512 * mi) == 512 * mi


def test_size_limit_parses_quantities():
    assert size_limit({"emptyDir": {"sizeLimit": "1Mi"}}) == 1024 * 1024
    assert size_limit({"emptyDir": {"sizeLimit": "1500k"}}) == 1_500_000
    assert size_limit({"emptyDir": {}}) is None


def test_disk_usage_counts_allocated_blocks(tmp_path):
    (tmp_path / "a").write_bytes(os.urandom(300_000))
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub/b").write_bytes(os.urandom(100_000))
    os.link(tmp_path / "a", tmp_path / "a-again")  # counted once
    assert 400_000 <= disk_usage(tmp_path) < 500_000


def test_empty_dir_over_its_size_limit_has_the_pod_evicted_with_upstreams_message(tmp_path):
    manager = FakeManager(tmp_path)
    pod = pod_with([{"name": "data", "emptyDir": {"sizeLimit": "1Mi"}}, {"name": "free", "emptyDir": {}}], [])

    async def scenario():
        assert await manager.set_up(pod)
        assert await manager.check_size_limits() is True
        assert manager.evicted == []
        volume = tmp_path / "uid-1/volumes/kubernetes.io~empty-dir/data"
        (volume / "big").write_bytes(os.urandom(2 * 1024 * 1024))
        await manager.check_size_limits()
        await manager.tear_down("uid-1")
        assert await manager.check_size_limits() is False  # nothing left to watch
        await manager.stop()
    run(scenario())
    assert manager.evicted == [("uid-1", 'Usage of EmptyDir volume "data" exceeds the limit "1Mi". ')]


# -- hostPath -------------------------------------------------------------------------------

def test_host_path_types_pass_on_the_right_kind_of_file(tmp_path):
    directory, regular = tmp_path / "dir", tmp_path / "file"
    directory.mkdir()
    regular.write_text("x")
    server = socket.socket(socket.AF_UNIX)
    server.bind(str(tmp_path / "sock"))
    try:
        for path, kind in ((directory, "Directory"), (directory, "DirectoryOrCreate"), (regular, "File"),
                           (regular, "FileOrCreate"), (tmp_path / "sock", "Socket"), ("/dev/null", "CharDevice"),
                           (tmp_path / "anything", ""), (tmp_path / "anything", None)):
            check_type(str(path), kind)
    finally:
        server.close()


@pytest.mark.parametrize("kind, words", [("Directory", "a directory"), ("File", "a file"),
                                         ("Socket", "a socket file"), ("CharDevice", "a character device"),
                                         ("BlockDevice", "a block device")])
def test_host_path_of_the_wrong_type_fails_in_upstreams_words(tmp_path, kind, words):
    wrong = tmp_path / "wrong"
    if kind == "Directory":
        wrong.write_text("a file")
    else:
        wrong.mkdir()
    with pytest.raises(MountError) as failure:
        check_type(str(wrong), kind)
    assert str(failure.value) == f"hostPath type check failed: {wrong} is not {words}"
    with pytest.raises(MountError) as missing:
        check_type(str(tmp_path / "missing"), kind)
    assert str(missing.value) == f"hostPath type check failed: {tmp_path / 'missing'} is not {words}"


def test_host_path_or_create_types_make_what_is_missing(tmp_path):
    check_type(str(tmp_path / "a/b/cache"), "DirectoryOrCreate")
    assert stat.S_IMODE((tmp_path / "a/b/cache").stat().st_mode) == 0o755 & ~_umask()
    check_type(str(tmp_path / "new.txt"), "FileOrCreate")
    assert (tmp_path / "new.txt").is_file() and (tmp_path / "new.txt").read_bytes() == b""
    with pytest.raises(MountError):
        check_type(str(tmp_path / "a/b/cache"), "FileOrCreate")  # exists, but a directory
    with pytest.raises(MountError) as invalid:
        check_type(str(tmp_path), "Fifo")
    assert str(invalid.value) == "Fifo is an invalid volume type"


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def test_host_path_of_the_wrong_type_holds_the_pod_with_upstreams_event(tmp_path):
    manager = FakeManager(tmp_path / "pods")
    target = tmp_path / "node/cache"
    target.parent.mkdir()
    target.write_text("not a directory")
    pod = pod_with([{"name": "cache", "hostPath": {"path": str(target), "type": "Directory"}}],
                   [{"name": "cache", "mountPath": "/cache"}])
    assert run(manager.set_up(pod)) is False
    assert manager.events[-1][1:] == ("Warning", "FailedMount", f'MountVolume.SetUp failed for volume "cache" : '
                                      f'hostPath type check failed: {target} is not a directory')
    target.unlink()
    target.mkdir()
    assert run(manager.set_up(pod)) is True


def test_host_path_is_mounted_in_place_and_never_removed(tmp_path):
    manager = FakeManager(tmp_path / "pods")
    cache = tmp_path / "node/volumes/nginx/cache"
    pod = pod_with([{"name": "cache", "hostPath": {"path": str(cache), "type": "DirectoryOrCreate"}}],
                   [{"name": "cache", "mountPath": "/data/nginx/cache"},
                    {"name": "cache", "mountPath": "/ro", "readOnly": True}])
    assert run(manager.set_up(pod)) is True
    assert mounts_of(manager, pod) == [
        {"container_path": "/data/nginx/cache", "host_path": str(cache), "readonly": False},
        {"container_path": "/ro", "host_path": str(cache), "readonly": True}]
    (cache / "entry").write_text("cached")
    run(manager.tear_down("uid-1"))
    assert (cache / "entry").read_text() == "cached"


def test_host_path_set_up_once_does_not_hold_a_running_pod_when_it_goes(tmp_path):
    manager = FakeManager(tmp_path / "pods")
    target = tmp_path / "shared"
    target.mkdir()
    pod = pod_with([{"name": "v", "hostPath": {"path": str(target), "type": "Directory"}}], [])
    assert run(manager.set_up(pod))
    target.rmdir()
    assert run(manager.set_up(pod)) is True  # upstream does not check a mounted hostPath again


def test_host_path_with_backsteps_is_refused(tmp_path):
    manager = FakeManager(tmp_path)
    pod = pod_with([{"name": "v", "hostPath": {"path": "/tmp/../etc"}}], [])
    assert run(manager.set_up(pod)) is False
    assert manager.events[-1][3] == "MountVolume.SetUp failed for volume \"v\" : invalid HostPath `/tmp/../etc`: " \
                                    "must not contain '..'"


def test_node_root_with_sub_paths_shows_only_those_directories(tmp_path):
    manager = FakeManager(tmp_path / "pods")
    logs = tmp_path / "node-logs/pods"
    logs.mkdir(parents=True)
    relative = str(logs).lstrip("/")
    pod = pod_with([{"name": "node-root", "hostPath": {"path": "/", "type": "Directory"}}],
                   [{"name": "node-root", "mountPath": "/pod-logs", "subPath": relative},
                    {"name": "node-root", "mountPath": "/node-root", "readOnly": True}])
    assert run(manager.set_up(pod)) is True
    assert mounts_of(manager, pod) == [
        {"container_path": "/pod-logs", "host_path": str(logs.resolve()), "readonly": False},
        {"container_path": "/node-root", "host_path": "/", "readonly": True}]


def test_mount_propagation_maps_to_cri(tmp_path):
    manager = FakeManager(tmp_path / "pods")
    pod = pod_with([{"name": "v", "hostPath": {"path": str(tmp_path)}}],
                   [{"name": "v", "mountPath": "/a", "mountPropagation": "None"},
                    {"name": "v", "mountPath": "/b", "mountPropagation": "HostToContainer"},
                    {"name": "v", "mountPath": "/c", "mountPropagation": "Bidirectional"}])
    assert run(manager.set_up(pod))
    assert [m.get("propagation", 0) for m in mounts_of(manager, pod)] == [0, 1, 2]


# -- subPath and subPathExpr --------------------------------------------------------------------

def test_sub_path_escaping_its_volume_through_a_symlink_is_refused(tmp_path):
    manager = FakeManager(tmp_path / "pods")
    pod = pod_with([{"name": "data", "emptyDir": {}}], [{"name": "data", "mountPath": "/x", "subPath": "escape"}])
    assert run(manager.set_up(pod))
    volume = tmp_path / "pods/uid-1/volumes/kubernetes.io~empty-dir/data"
    os.symlink("/etc", volume / "escape")
    with pytest.raises(ContainerMountError) as failure:
        mounts_of(manager, pod)
    assert str(failure.value) == 'failed to prepare subPath for volumeMount "data" of container "c"'
    os.unlink(volume / "escape")
    os.symlink("../../../../..", volume / "escape")  # relative links count too
    with pytest.raises(ContainerMountError):
        mounts_of(manager, pod)


def test_sub_path_symlink_inside_the_volume_is_followed(tmp_path):
    manager = FakeManager(tmp_path / "pods")
    pod = pod_with([{"name": "data", "emptyDir": {}}], [{"name": "data", "mountPath": "/x", "subPath": "link"}])
    assert run(manager.set_up(pod))
    volume = tmp_path / "pods/uid-1/volumes/kubernetes.io~empty-dir/data"
    (volume / "real").mkdir()
    os.symlink("real", volume / "link")
    assert mounts_of(manager, pod)[0]["host_path"] == str(volume / "real")


def test_absolute_and_backstep_sub_paths_are_refused_in_upstreams_words(tmp_path):
    manager = FakeManager(tmp_path / "pods")
    pod = pod_with([{"name": "data", "emptyDir": {}}], [{"name": "data", "mountPath": "/x", "subPath": "/etc"}])
    assert run(manager.set_up(pod))
    with pytest.raises(ContainerMountError) as absolute:
        mounts_of(manager, pod)
    assert str(absolute.value) == "error SubPath `/etc` must not be an absolute path"
    pod["spec"]["containers"][0]["volumeMounts"][0]["subPath"] = "a/../../b"
    with pytest.raises(ContainerMountError) as backsteps:
        mounts_of(manager, pod)
    assert str(backsteps.value) == "unable to provision SubPath `a/../../b`: must not contain '..'"


def test_missing_sub_path_is_created_with_the_volumes_mode(tmp_path):
    manager = FakeManager(tmp_path / "pods")
    pod = pod_with([{"name": "data", "emptyDir": {}}], [{"name": "data", "mountPath": "/x", "subPath": "a/b"}])
    assert run(manager.set_up(pod))
    volume = tmp_path / "pods/uid-1/volumes/kubernetes.io~empty-dir/data"
    assert mounts_of(manager, pod)[0]["host_path"] == str(volume / "a/b")
    assert stat.S_IMODE((volume / "a").stat().st_mode) == 0o777
    assert stat.S_IMODE((volume / "a/b").stat().st_mode) == 0o777


def test_sub_path_expr_expands_the_containers_environment(tmp_path):
    manager = FakeManager(tmp_path / "pods")
    pod = pod_with([{"name": "logs", "emptyDir": {}}],
                   [{"name": "logs", "mountPath": "/logs", "subPathExpr": "$(POD_NAME)/$$(kept)"}])
    assert run(manager.set_up(pod))
    volume = tmp_path / "pods/uid-1/volumes/kubernetes.io~empty-dir/logs"
    assert mounts_of(manager, pod, [("POD_NAME", "web-1")])[0]["host_path"] == str(volume / "web-1/$(kept)")
    with pytest.raises(ContainerMountError) as missing:
        mounts_of(manager, pod, [("POD_NAME", "")])
    assert str(missing.value) == "missing value for POD_NAME"


def test_sub_path_expr_names_every_missing_variable_sorted():
    with pytest.raises(ContainerMountError) as missing:
        expand_sub_path_expr("$(B)/$(A)/$(C)", [("C", "c")])
    assert str(missing.value) == "missing value for A, B"
    assert expand_sub_path_expr("plain", []) == "plain"


# -- persistentVolumeClaim ----------------------------------------------------------------------

def claim(phase="Bound", volume="pv-1", uid="claim-uid", deleting=False):
    obj = {"metadata": {"name": "data", "namespace": "ns", "uid": uid},
           "spec": {"volumeName": volume} if volume else {}, "status": {"phase": phase}}
    if deleting:
        obj["metadata"]["deletionTimestamp"] = "2024-01-01T00:00:00Z"
    return obj


def pv(path, kind="hostPath", claim_uid="claim-uid"):
    return {"metadata": {"name": "pv-1"},
            "spec": {kind: {"path": str(path)}, "claimRef": {"name": "data", "namespace": "ns", "uid": claim_uid}}}


def claim_pod(read_only=False, mount_read_only=False):
    source = {"claimName": "data"}
    if read_only:
        source["readOnly"] = True
    return pod_with([{"name": "data", "persistentVolumeClaim": source}],
                    [{"name": "data", "mountPath": "/data", "readOnly": mount_read_only}])


def test_unbound_claim_holds_the_pod_until_it_is_bound(tmp_path):
    store = {("persistentvolumeclaims", "ns", "data"): claim(phase="Pending", volume="")}
    manager = FakeManager(tmp_path / "pods", store)
    pod = claim_pod()
    assert run(manager.set_up(pod)) is False
    assert manager.events[-1][1:] == (
        "Warning", "FailedMount", "Unable to attach or mount volumes: unmounted volumes=[data], failed to process "
                                  "volumes=[data]: error processing PVC ns/data: PVC is not bound")
    data = tmp_path / "pv-data"
    data.mkdir()
    store[("persistentvolumeclaims", "ns", "data")] = claim()
    store[("persistentvolumes", "", "pv-1")] = pv(data)
    assert run(manager.set_up(pod)) is True
    assert mounts_of(manager, pod) == [{"container_path": "/data", "host_path": str(data), "readonly": False}]
    run(manager.tear_down("uid-1"))
    assert data.is_dir()  # the volume's data is the PV's, not the pod's


def test_missing_or_deleted_claim_holds_the_pod(tmp_path):
    store: dict = {}
    manager = FakeManager(tmp_path, store)
    assert run(manager.set_up(claim_pod())) is False
    assert manager.events[-1][3].endswith('error processing PVC ns/data: failed to fetch PVC from API server: '
                                          'persistentvolumeclaims "data" not found')
    store[("persistentvolumeclaims", "ns", "data")] = claim(deleting=True)
    assert run(manager.set_up(claim_pod())) is False
    assert manager.events[-1][3].endswith("can't start pod because PVC ns/data is being deleted")


def test_claim_bound_to_a_volume_of_another_claim_is_not_mounted(tmp_path):
    store = {("persistentvolumeclaims", "ns", "data"): claim(),
             ("persistentvolumes", "", "pv-1"): pv(tmp_path, claim_uid="someone-else")}
    manager = FakeManager(tmp_path / "pods", store)
    assert run(manager.set_up(claim_pod())) is False


def test_read_only_claim_and_read_only_mount_are_read_only_and_local_volumes_mount(tmp_path):
    store = {("persistentvolumeclaims", "ns", "data"): claim(), ("persistentvolumes", "", "pv-1"): pv(tmp_path, "local")}
    for read_only, mount_read_only in ((True, False), (False, True)):
        manager = FakeManager(tmp_path / "pods", store)
        pod = claim_pod(read_only, mount_read_only)
        assert run(manager.set_up(pod))
        assert mounts_of(manager, pod) == [{"container_path": "/data", "host_path": str(tmp_path), "readonly": True}]


def test_local_volume_path_must_be_a_directory(tmp_path):
    (tmp_path / "file").write_text("x")
    store = {("persistentvolumeclaims", "ns", "data"): claim(),
             ("persistentvolumes", "", "pv-1"): pv(tmp_path / "file", "local")}
    manager = FakeManager(tmp_path / "pods", store)
    assert run(manager.set_up(claim_pod())) is False
    assert manager.events[-1][3] == (f'MountVolume.SetUp failed for volume "data" : hostPath type check failed: '
                                     f'{tmp_path / "file"} is not a directory')


def test_claim_binding_wakes_a_waiting_pod():
    from pyk8s.kubelet.volumes.objects import ReferencedObjects

    class Client:
        async def list(self, resource, namespace=None, **params):
            return {"metadata": {"resourceVersion": "1"}, "items": [claim(phase="Pending", volume="")]}

        async def watch(self, *args, **kwargs):
            await asyncio.Event().wait()
            yield {}

    async def scenario():
        changes = []
        objects = ReferencedObjects(Client(), lambda *key: changes.append(key))
        objects.use("pod-1", {("persistentvolumeclaims", "ns", "data")})
        assert (await objects.get("persistentvolumeclaims", "ns", "data"))["status"]["phase"] == "Pending"
        informer = objects.informers[("persistentvolumeclaims", "ns", "data")][0]
        changes.clear()
        bound = claim()
        bound["metadata"]["resourceVersion"] = "2"
        informer._apply({"type": "MODIFIED", "object": bound})
        assert changes == [("persistentvolumeclaims", "ns", "data")]
        await objects.stop()
    run(scenario())


@pytest.mark.skipif(os.geteuid() != 0, reason="mounts a tmpfs")
def test_node_cleanup_unmounts_a_memory_empty_dir_left_by_a_dead_agent(tmp_path):
    from pyk8s.kubelet.cleanup import unmount_under

    manager = FakeManager(tmp_path / "pods")
    pod = pod_with([{"name": "cache", "emptyDir": {"medium": "Memory"}}], [])
    assert run(manager.set_up(pod))
    volume = tmp_path / "pods/uid-1/volumes/kubernetes.io~empty-dir/cache"
    assert os.path.ismount(volume)
    unmount_under(tmp_path)  # what `python -m pyk8s.kubelet.cleanup` does after the agent died
    assert not os.path.ismount(volume)
