"""The kubelet's volume package without a cluster: the atomic writer's layout and swap,
payloads (items, modes, optional, binary data), projected merging, downward API rendering,
and the manager's set-up / hold / refresh / subPath / tear-down on a temp dir."""

from __future__ import annotations

import asyncio
import base64
import os
import stat
from pathlib import Path

import pytest

from pyk8s.kubelet.volumes.atomic_writer import AtomicWriter, FileProjection, PayloadError, set_volume_ownership
from pyk8s.kubelet.volumes.base import MountError, VolumeContext
from pyk8s.kubelet.volumes.configmap import config_map_payload
from pyk8s.kubelet.volumes.downwardapi import downward_payload, format_map, go_quote, resource_value
from pyk8s.kubelet.volumes.manager import VolumeManager, sub_path
from pyk8s.kubelet.volumes.projected import ProjectedPlugin
from pyk8s.kubelet.volumes.secret import secret_payload

ALLOCATABLE = {"cpu": 2, "memory": 4 * 1024 ** 3}


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


# -- atomic writer ----------------------------------------------------------------------

def test_first_write_makes_timestamped_dir_data_link_and_one_link_per_key(tmp_path):
    writer = AtomicWriter(tmp_path)
    assert writer.write({"config.json": FileProjection(b'{"a": 1}', 0o644)})
    names = sorted(os.listdir(tmp_path))
    stamped = [n for n in names if n.startswith("..2")]
    assert len(stamped) == 1 and names == sorted(["..data", "config.json", stamped[0]])
    assert os.readlink(tmp_path / "..data") == stamped[0]
    assert os.readlink(tmp_path / "config.json") == "..data/config.json"
    assert (tmp_path / "config.json").read_bytes() == b'{"a": 1}'
    # ..2024_05_01_12_00_00.<digits>, and 0755 whatever the umask
    assert len(stamped[0].split(".")[2].split("_")) == 6 and stamped[0].rsplit(".", 1)[1].isdigit()
    assert stat.S_IMODE(os.stat(tmp_path / stamped[0]).st_mode) == 0o755


def test_update_swaps_data_link_and_removes_old_dir_and_gone_keys(tmp_path):
    writer = AtomicWriter(tmp_path)
    writer.write({"a": FileProjection(b"1"), "b": FileProjection(b"2")})
    first = os.readlink(tmp_path / "..data")
    assert writer.write({"a": FileProjection(b"one"), "c": FileProjection(b"3")})
    second = os.readlink(tmp_path / "..data")
    assert second != first and not (tmp_path / first).exists()
    assert sorted(n for n in os.listdir(tmp_path) if not n.startswith("..")) == ["a", "c"]
    assert (tmp_path / "a").read_bytes() == b"one" and (tmp_path / "c").read_bytes() == b"3"
    assert not (tmp_path / "..data_tmp").exists()


def test_unchanged_payload_is_not_rewritten(tmp_path):
    writer = AtomicWriter(tmp_path)
    writer.write({"a": FileProjection(b"1")})
    before = os.readlink(tmp_path / "..data")
    assert writer.write({"a": FileProjection(b"1")}) is False
    assert os.readlink(tmp_path / "..data") == before


def test_nested_paths_get_one_link_for_their_top_directory(tmp_path):
    AtomicWriter(tmp_path).write({"conf/app/settings.ini": FileProjection(b"x=1")})
    assert os.readlink(tmp_path / "conf") == "..data/conf"
    assert (tmp_path / "conf/app/settings.ini").read_bytes() == b"x=1"


@pytest.mark.parametrize("path", ["/etc/passwd", "../escape", "a/../../b", "..hidden"])
def test_paths_that_escape_or_collide_are_refused(tmp_path, path):
    with pytest.raises(PayloadError):
        AtomicWriter(tmp_path).write({path: FileProjection(b"")})


def test_file_modes_are_set_exactly(tmp_path):
    AtomicWriter(tmp_path).write({"secret": FileProjection(b"s", 0o400), "tool": FileProjection(b"t", 0o755)})
    assert stat.filemode(os.stat(tmp_path / "secret").st_mode) == "-r--------"
    assert stat.S_IMODE(os.stat(tmp_path / "tool").st_mode) == 0o755


def test_fs_group_owns_files_with_group_read(tmp_path):
    writer = AtomicWriter(tmp_path)
    writer.write({"key": FileProjection(b"v", 0o400)}, lambda d: set_volume_ownership(d, 2000))
    info = os.stat(tmp_path / "key")
    assert info.st_gid == 2000 and stat.S_IMODE(info.st_mode) == 0o440
    current = writer.current_dir()
    assert os.stat(current).st_gid == 2000 and os.stat(current).st_mode & stat.S_ISGID


# -- payloads ---------------------------------------------------------------------------

def test_config_map_payload_has_every_key_and_binary_data_byte_for_byte():
    config_map = {"data": {"config.json": "{}"}, "binaryData": {"logo.bin": b64(b"\x00\xff\xfe")}}
    payload = config_map_payload(config_map, None, 0o644, False)
    assert payload["config.json"].data == b"{}" and payload["logo.bin"].data == b"\x00\xff\xfe"


def test_items_pick_keys_to_paths_with_per_item_modes():
    config_map = {"data": {"config.json": "{}", "logging.json": "{}"}}
    payload = config_map_payload(config_map, [{"key": "config.json", "path": "app/config.json", "mode": 0o600}],
                                 0o644, False)
    assert list(payload) == ["app/config.json"] and payload["app/config.json"].mode == 0o600


def test_missing_item_key_fails_unless_optional():
    with pytest.raises(MountError, match="configmap references non-existent config key: nope"):
        config_map_payload({"data": {}}, [{"key": "nope", "path": "p"}], 0o644, False)
    assert config_map_payload({"data": {}}, [{"key": "nope", "path": "p"}], 0o644, True) == {}
    with pytest.raises(MountError, match="references non-existent secret key: nope"):
        secret_payload({"data": {}}, [{"key": "nope", "path": "p"}], 0o644, False)


def test_secret_values_that_are_not_utf8_are_written_as_they_are():
    payload = secret_payload({"data": {"key": b64(b"\x80\x81binary")}}, None, 0o400, False)
    assert payload["key"] == FileProjection(b"\x80\x81binary", 0o400)


# -- downward API -----------------------------------------------------------------------

POD = {"metadata": {"name": "web", "namespace": "ns", "uid": "u-1", "labels": {"app": "web", "tier": "front"},
                    "annotations": {"note": 'say "hi"\n'}},
       "spec": {"containers": [{"name": "main", "resources": {"limits": {"memory": "64Mi", "cpu": "250m"},
                                                               "requests": {"cpu": "100m"}}}]}}


def test_labels_and_annotations_render_as_sorted_go_quoted_lines():
    assert format_map(POD["metadata"]["labels"]) == 'app="web"\ntier="front"'
    assert format_map(POD["metadata"]["annotations"]) == 'note="say \\"hi\\"\\n"'
    assert go_quote("tab\there\x01") == '"tab\\there\\x01"'


def test_downward_items_render_metadata_and_resources():
    items = [{"path": "name", "fieldRef": {"fieldPath": "metadata.name"}},
             {"path": "ns", "fieldRef": {"fieldPath": "metadata.namespace"}},
             {"path": "uid", "fieldRef": {"fieldPath": "metadata.uid"}},
             {"path": "labels", "fieldRef": {"fieldPath": "metadata.labels"}},
             {"path": "app", "fieldRef": {"fieldPath": "metadata.labels['app']"}},
             {"path": "mem", "resourceFieldRef": {"containerName": "main", "resource": "limits.memory",
                                                  "divisor": "1Mi"}, "mode": 0o400}]
    payload = downward_payload(POD, items, 0o644, ALLOCATABLE)
    assert {path: p.data for path, p in payload.items()} == {
        "name": b"web", "ns": b"ns", "uid": b"u-1", "labels": b'app="web"\ntier="front"', "app": b"web",
        "mem": b"64"}
    assert payload["mem"].mode == 0o400 and payload["name"].mode == 0o644


def test_resource_field_refs_round_up_and_fall_back_to_node_allocatable():
    def value(resource, divisor="1"):
        return resource_value(POD, {"containerName": "main", "resource": resource, "divisor": divisor}, ALLOCATABLE)
    assert value("limits.cpu") == "1"            # 250m rounds up to a whole core
    assert value("limits.cpu", "1m") == "250"
    assert value("requests.cpu", "1m") == "100"
    assert value("requests.memory") == "0"
    pod = {"metadata": POD["metadata"], "spec": {"containers": [{"name": "main"}]}}
    assert resource_value(pod, {"containerName": "main", "resource": "limits.cpu"}, ALLOCATABLE) == "2"


def test_unsupported_field_path_fails():
    with pytest.raises(MountError, match="unsupported fieldPath: spec.nodeName"):
        downward_payload(POD, [{"path": "n", "fieldRef": {"fieldPath": "spec.nodeName"}}], 0o644, ALLOCATABLE)


# -- projected --------------------------------------------------------------------------

def objects(store: dict):
    async def get(kind, namespace, name):
        return store.get((kind, namespace, name))
    return VolumeContext(get, lambda: ALLOCATABLE)


def run(coroutine):
    return asyncio.run(coroutine)


def test_projected_merges_sources_in_order_later_wins():
    store = {("configmaps", "ns", "cm"): {"data": {"a": "from-cm", "shared": "cm"}},
             ("secrets", "ns", "s"): {"data": {"b": b64(b"from-secret"), "shared": b64(b"secret")}}}
    volume = {"name": "all", "projected": {"defaultMode": 0o440, "sources": [
        {"configMap": {"name": "cm"}},
        {"secret": {"name": "s", "items": [{"key": "b", "path": "b"}, {"key": "shared", "path": "shared"}]}},
        {"downwardAPI": {"items": [{"path": "podname", "fieldRef": {"fieldPath": "metadata.name"}}]}}]}}
    plugin = ProjectedPlugin()
    assert plugin.references(volume) == {("configmaps", "cm"), ("secrets", "s")}
    payload = run(plugin.payload(objects(store), POD, volume))
    assert {k: v.data for k, v in payload.items()} == {"a": b"from-cm", "shared": b"secret", "b": b"from-secret",
                                                       "podname": b"web"}
    assert all(p.mode == 0o440 for p in payload.values())


def test_projected_missing_sources_aggregate_their_errors():
    volume = {"name": "all", "projected": {"sources": [{"configMap": {"name": "gone"}},
                                                       {"secret": {"name": "gone-too"}},
                                                       {"configMap": {"name": "maybe", "optional": True}}]}}
    with pytest.raises(MountError) as failure:
        run(ProjectedPlugin().payload(objects({}), POD, volume))
    assert str(failure.value) == '[configmap "gone" not found, secret "gone-too" not found]'


# -- the manager on a temp dir ----------------------------------------------------------

class FakeManager(VolumeManager):
    """A manager whose objects come from a dict instead of watches."""

    def __init__(self, root: Path, store: dict):
        self.events: list[tuple] = []
        self.woken: list[str] = []
        super().__init__(None, root, wake=self.woken.append, event=lambda *a: self.events.append(a))
        self.store = store

        async def get(kind, namespace, name):
            return store.get((kind, namespace, name))
        self.context = VolumeContext(get, lambda: ALLOCATABLE)


def pod_with(volumes, mounts):
    return {"metadata": {"name": "p", "namespace": "ns", "uid": "uid-1", "labels": {"a": "1"}},
            "spec": {"volumes": volumes, "containers": [{"name": "c", "volumeMounts": mounts}]}}


def test_missing_config_map_holds_the_pod_with_upstreams_event_then_sets_up(tmp_path):
    store: dict = {}
    manager = FakeManager(tmp_path, store)
    pod = pod_with([{"name": "config", "configMap": {"name": "todo-web-config-dev"}}],
                   [{"name": "config", "mountPath": "/app/config"}])
    assert run(manager.set_up(pod)) is False
    assert manager.events[-1][1:] == ("Warning", "FailedMount", 'MountVolume.SetUp failed for volume "config" : '
                                      'configmap "todo-web-config-dev" not found')
    store[("configmaps", "ns", "todo-web-config-dev")] = {"data": {"config.json": "{}"}}
    assert run(manager.set_up(pod)) is True
    volume = tmp_path / "uid-1/volumes/kubernetes.io~configmap/config"
    assert (volume / "config.json").read_text() == "{}"
    assert manager.container_mounts(pod, pod["spec"]["containers"][0]) == [
        {"container_path": "/app/config", "host_path": str(volume), "readonly": True}]


def test_deleted_config_map_keeps_files_of_a_set_up_volume(tmp_path):
    store = {("configmaps", "ns", "cm"): {"data": {"k": "v"}}}
    manager = FakeManager(tmp_path, store)
    pod = pod_with([{"name": "v", "configMap": {"name": "cm"}}], [])
    assert run(manager.set_up(pod))
    store.clear()
    assert run(manager.set_up(pod)) is True
    assert (tmp_path / "uid-1/volumes/kubernetes.io~configmap/v/k").read_text() == "v"


def test_sub_path_mount_holds_the_current_file_not_the_link(tmp_path):
    AtomicWriter(tmp_path).write({"config.json": FileProjection(b"{}")})
    resolved = sub_path(tmp_path, "config.json")
    assert resolved.parent.name.startswith("..2") and resolved.read_bytes() == b"{}"
    assert sub_path(tmp_path, "../../etc") is None


def test_downward_api_volume_follows_relabelling(tmp_path):
    manager = FakeManager(tmp_path, {})
    pod = pod_with([{"name": "info", "downwardAPI": {"items": [{"path": "labels",
                                                                "fieldRef": {"fieldPath": "metadata.labels"}}]}}], [])
    try:
        assert run(manager.set_up(pod))
        volume = tmp_path / "uid-1/volumes/kubernetes.io~downward-api/info"
        assert os.path.ismount(volume)  # tmpfs
        assert (volume / "labels").read_text() == 'a="1"'
        pod["metadata"]["labels"] = {"a": "2", "b": "x"}
        assert run(manager.set_up(pod))
        assert (volume / "labels").read_text() == 'a="2"\nb="x"'
    finally:
        run(manager.tear_down("uid-1"))
    assert not (tmp_path / "uid-1/volumes").exists() and not os.path.ismount(volume)


def test_secret_volume_is_a_tmpfs_removed_at_tear_down(tmp_path):
    store = {("secrets", "ns", "db"): {"data": {"POSTGRES_PASSWORD": b64(b"kiamol-2*2*")}}}
    manager = FakeManager(tmp_path, store)
    pod = pod_with([{"name": "secret", "secret": {"secretName": "db", "defaultMode": 0o400, "items": [
        {"key": "POSTGRES_PASSWORD", "path": "postgres_password"}]}}], [])
    volume = tmp_path / "uid-1/volumes/kubernetes.io~secret/secret"
    try:
        assert run(manager.set_up(pod))
        assert os.path.ismount(volume)
        assert stat.filemode(os.stat(volume / "postgres_password").st_mode) == "-r--------"
    finally:
        run(manager.remove_orphans(set()))
    assert not os.path.ismount(volume) and not volume.exists()


def test_node_cleanup_unmounts_secret_tmpfs_left_by_a_dead_agent(tmp_path):
    from pyk8s.kubelet.cleanup import unmount_under
    from pyk8s.kubelet.volumes.base import mount_tmpfs

    volume = tmp_path / "pods/uid-9/volumes/kubernetes.io~secret/s"
    volume.mkdir(parents=True)
    mount_tmpfs(volume)
    assert os.path.ismount(volume)
    unmount_under(tmp_path)
    assert not os.path.ismount(volume)


# -- the watched objects ----------------------------------------------------------------

class FakeClient:
    """list answers from a dict; watch blocks until cancelled."""

    def __init__(self, items):
        self.items = items
        self.watches = 0

    async def list(self, resource, namespace=None, **params):
        return {"metadata": {"resourceVersion": "1"},
                "items": [dict(obj) for obj in self.items if obj["metadata"]["namespace"] == namespace]}

    async def watch(self, *args, **kwargs):
        self.watches += 1
        await asyncio.Event().wait()
        yield {}


def test_immutable_objects_are_read_once_and_not_watched():
    from pyk8s.kubelet.volumes.objects import ReferencedObjects

    async def scenario():
        client = FakeClient([{"metadata": {"name": "frozen", "namespace": "ns", "resourceVersion": "1"},
                              "immutable": True, "data": {"a": "1"}},
                             {"metadata": {"name": "live", "namespace": "other", "resourceVersion": "1"},
                              "data": {"a": "1"}}])
        changes = []
        objects = ReferencedObjects(client, lambda *key: changes.append(key))
        objects.use("pod-1", {("configmaps", "ns", "frozen"), ("configmaps", "other", "live")})
        assert (await objects.get("configmaps", "ns", "frozen"))["data"] == {"a": "1"}
        assert (await objects.get("configmaps", "other", "live"))["data"] == {"a": "1"}
        assert set(objects.informers) == {("configmaps", "other", "live")}  # the immutable one's watch stopped
        assert (await objects.get("configmaps", "ns", "frozen"))["data"] == {"a": "1"}
        informer = objects.informers[("configmaps", "other", "live")][0]
        # One object per watch: the Node authorizer lets a kubelet read named objects only.
        assert informer.field_selector == "metadata.name=live"
        changes.clear()  # the initial lists announce what they found
        informer._apply({"type": "MODIFIED", "object": {"metadata": {"name": "live", "namespace": "other",
                                                                     "resourceVersion": "2"}, "data": {"a": "2"}}})
        assert changes == [("configmaps", "other", "live")]
        objects.release("pod-1")
        assert objects.informers == {} and objects.users == {} and objects.frozen == {}
        await objects.stop()
    run(scenario())
