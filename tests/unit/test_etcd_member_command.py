"""`pyk8s etcd-member`: which removals are refused (cluster/etcdmembers.py) and the command's
output, against a stand-in etcd (the listing, health and removal etcdctl would give)."""

from __future__ import annotations

import json

import pytest

from pyk8s.cli import main as cli
from pyk8s.cluster import embeddedetcd, etcdmembers
from pyk8s.cluster.embeddedetcd import Member


class FakeEtcd:
    """What etcdctl would answer: members, which of them answer, and the removals asked."""

    def __init__(self, monkeypatch, members: list[Member], healthy: set[str]):
        self.members = members
        self.healthy = healthy
        self.removed: list[str] = []
        self.list_endpoints: list[list[str]] = []
        monkeypatch.setattr(etcdmembers, "list_members", self.list_members)
        monkeypatch.setattr(etcdmembers, "member_health", self.member_health)
        monkeypatch.setattr(etcdmembers, "etcdctl", self.etcdctl)
        monkeypatch.setattr(etcdmembers.daemon, "running_server", lambda data_dir: None)

    def list_members(self, files, endpoints):
        self.list_endpoints.append(list(endpoints))
        return list(self.members)

    def member_health(self, files, members):
        return {m.id: m.name in self.healthy for m in members if m.started}

    def etcdctl(self, files, endpoints, *args, **kwargs):
        assert args[:2] == ("member", "remove")
        self.removed.append(args[2])
        return ""


def member(name: str, number: int) -> Member:
    return Member(id=0xA0 + number, name=name, peer_urls=[f"https://127.0.0.{number}:2380"],
                  client_urls=[f"https://127.0.0.{number}:2379"] if name else [])


@pytest.fixture
def data_dir(tmp_path):
    """The data dir of server s1 (member 127.0.0.1), having recorded the other members."""
    files = embeddedetcd.EtcdFiles(tmp_path)
    files.etcd_dir.mkdir(parents=True)
    files.config_file.write_text(json.dumps({
        "name": "s1", "advertiseAddress": "127.0.0.1", "clientURLs": ["https://127.0.0.1:2379"],
        "peerURL": "https://127.0.0.1:2380",
        "clusterClientURLs": ["https://127.0.0.1:2379", "https://127.0.0.2:2379", "https://127.0.0.3:2379"]}))
    return tmp_path


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = cli.main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_list_asks_this_member_first_then_the_recorded_others_and_marks_this_data_dirs(
        data_dir, monkeypatch, capsys):
    etcd = FakeEtcd(monkeypatch, [member("s1", 1), member("s2", 2), member("", 3)], healthy={"s2"})
    code, out, _ = run(capsys, "etcd-member", "list", "--data-dir", str(data_dir))
    assert code == 0
    assert etcd.list_endpoints == [["https://127.0.0.1:2379", "https://127.0.0.2:2379", "https://127.0.0.3:2379"]]
    header, *rows = out.splitlines()
    assert header.split() == ["NAME", "ID", "STATUS", "HEALTH", "PEER", "URLS", "CLIENT", "URLS", "LOCAL"]
    assert [row.split() for row in rows] == [
        ["s1", "a1", "started", "unhealthy", "https://127.0.0.1:2380", "https://127.0.0.1:2379", "yes"],
        ["s2", "a2", "started", "healthy", "https://127.0.0.2:2380", "https://127.0.0.2:2379", "no"],
        ["<none>", "a3", "unstarted", "<unknown>", "https://127.0.0.3:2380", "<none>", "no"]]
    # Aligned: every column starts at the same offset on every line.
    assert len({line.index(" a") for line in out.splitlines()[1:]}) == 1
    assert header.index("ID") == rows[0].index("a1")


def test_removing_a_stopped_member_prints_it_and_asks_only_answering_members(data_dir, monkeypatch, capsys):
    etcd = FakeEtcd(monkeypatch, [member("s1", 1), member("s2", 2), member("s3", 3)], healthy={"s1", "s2"})
    code, out, err = run(capsys, "etcd-member", "remove", "s3", "--data-dir", str(data_dir))
    assert (code, err) == (0, "")
    assert out == "member s3 (a3) removed\n"
    assert etcd.removed == ["a3"]


def test_unknown_member_is_refused_with_the_known_names(data_dir, monkeypatch, capsys):
    etcd = FakeEtcd(monkeypatch, [member("s1", 1), member("s2", 2), member("", 3)], healthy={"s1", "s2"})
    code, out, err = run(capsys, "etcd-member", "remove", "nope", "--data-dir", str(data_dir))
    assert (code, out) == (1, "")
    assert "no member named 'nope'" in err and "s1, s2, a3 (unstarted)" in err
    assert etcd.removed == []


def test_unstarted_member_is_removed_by_its_hex_id(data_dir, monkeypatch, capsys):
    etcd = FakeEtcd(monkeypatch, [member("s1", 1), member("s2", 2), member("", 3)], healthy={"s1", "s2"})
    code, out, _ = run(capsys, "etcd-member", "remove", "a3", "--data-dir", str(data_dir))
    assert code == 0 and out == "member <unstarted> (a3) removed\n"
    assert etcd.removed == ["a3"]


@pytest.mark.parametrize("members, healthy, target, refusal", [
    ([("s1", 1)], set(), "s1", "only member"),
    # This data dir's member while its etcd answers (a foreground server has no pid file).
    ([("s1", 1), ("s2", 2), ("s3", 3)], {"s1", "s2", "s3"}, "s1", "stop that server first"),
    # Another server that runs, without --force.
    ([("s1", 1), ("s2", 2), ("s3", 3)], {"s1", "s2", "s3"}, "s2", "still answers"),
    # 5 members, 2 stopped: removing one leaves 4 of which 2 answer, short of 3.
    ([("s1", 1), ("s2", 2), ("s3", 3), ("s4", 4), ("s5", 5)], {"s1", "s2"}, "s5", "fewer than the 3"),
    # 2 members, one stopped: no quorum, etcd cannot commit anything.
    ([("s1", 1), ("s2", 2)], set(), "s2", "no quorum"),
])
def test_removals_that_would_break_the_cluster_or_a_running_server_are_refused(
        data_dir, monkeypatch, capsys, members, healthy, target, refusal):
    etcd = FakeEtcd(monkeypatch, [member(name, number) for name, number in members], healthy=healthy)
    code, out, err = run(capsys, "etcd-member", "remove", target, "--data-dir", str(data_dir))
    assert (code, out) == (1, "")
    assert err.startswith("pyk8s etcd-member: error: ") and refusal in err, err
    assert etcd.removed == []


def test_this_data_dirs_member_is_refused_while_its_recorded_server_runs(data_dir, monkeypatch, capsys):
    etcd = FakeEtcd(monkeypatch, [member("s1", 1), member("s2", 2), member("s3", 3)], healthy={"s2", "s3"})
    monkeypatch.setattr(etcdmembers.daemon, "running_server",
                        lambda d: cli.daemon.ServerState(pid=4242, url="", data_dir=str(d)))
    code, _, err = run(capsys, "etcd-member", "remove", "s1", "--data-dir", str(data_dir))
    assert code == 1 and "pid 4242" in err and "stop that server first" in err
    assert etcd.removed == []


def test_this_data_dirs_stopped_member_is_removed_with_how_to_rejoin(data_dir, monkeypatch, capsys):
    etcd = FakeEtcd(monkeypatch, [member("s1", 1), member("s2", 2), member("s3", 3)], healthy={"s2", "s3"})
    code, out, _ = run(capsys, "etcd-member", "remove", "s1", "--data-dir", str(data_dir))
    assert code == 0 and etcd.removed == ["a1"]
    first, hint = out.splitlines()
    assert first == "member s1 (a1) removed"
    assert str(data_dir / "server" / "db" / "etcd") in hint and "--server" in hint


def test_force_removes_a_running_member_of_another_server_but_never_the_local_running_one(
        data_dir, monkeypatch, capsys):
    etcd = FakeEtcd(monkeypatch, [member("s1", 1), member("s2", 2)], healthy={"s1", "s2"})
    assert run(capsys, "etcd-member", "remove", "s1", "--force", "--data-dir", str(data_dir))[0] == 1
    assert run(capsys, "etcd-member", "remove", "s2", "--force", "--data-dir", str(data_dir))[0] == 0
    assert etcd.removed == ["a2"]


def test_remove_without_a_name_is_a_usage_error(data_dir, capsys):
    assert run(capsys, "etcd-member", "remove", "--data-dir", str(data_dir))[0] == 2


def test_a_data_dir_without_embedded_etcd_is_an_error(tmp_path, capsys):
    code, out, err = run(capsys, "etcd-member", "list", "--data-dir", str(tmp_path))
    assert (code, out) == (1, "")
    assert "no embedded etcd" in err


def test_removed_member_message_says_how_to_rejoin(tmp_path):
    message = str(embeddedetcd.MemberRemoved("s1", embeddedetcd.EtcdFiles(tmp_path)))
    assert "s1 was removed" in message
    assert f"delete {tmp_path / 'server' / 'db' / 'etcd'}" in message and "--server" in message


def test_removal_waits_out_etcds_unhealthy_cluster_right_after_a_join_but_not_other_errors(
        data_dir, monkeypatch, capsys):
    etcd = FakeEtcd(monkeypatch, [member("s1", 1), member("s2", 2), member("s3", 3)], healthy={"s1", "s2"})
    answers = [embeddedetcd.EtcdError("etcdctl member remove a3: Error: etcdserver: unhealthy cluster"), None]

    def etcdctl(files, endpoints, *args, **kwargs):
        answer = answers.pop(0)
        if answer is not None:
            raise answer
        etcd.removed.append(args[2])
        return ""
    monkeypatch.setattr(etcdmembers, "etcdctl", etcdctl)
    monkeypatch.setattr(etcdmembers.time, "sleep", lambda seconds: None)
    assert run(capsys, "etcd-member", "remove", "s3", "--data-dir", str(data_dir))[0] == 0
    assert etcd.removed == ["a3"] and answers == []

    answers[:] = [embeddedetcd.EtcdError("etcdctl member remove a3: Error: etcdserver: member not found"), None]
    code, _, err = run(capsys, "etcd-member", "remove", "s3", "--data-dir", str(data_dir))
    assert code == 1 and "member not found" in err
    assert etcd.removed == ["a3"] and len(answers) == 1


def test_server_netns_comes_from_up_isolated_state_or_marker_or_the_multinode_cluster(tmp_path):
    from pyk8s.cluster import daemon, multinode

    single = tmp_path / "single"
    single.mkdir()
    assert etcdmembers.server_netns(single) is None
    (single / daemon.NETNS_MARKER).write_text("made-by-up\n")  # a stopped `up --isolated` server
    assert etcdmembers.server_netns(single) == "made-by-up"
    daemon.write_state(daemon.ServerState(pid=1, url="", data_dir=str(single), netns="recorded"))
    assert etcdmembers.server_netns(single) == "recorded"

    cluster = tmp_path / "cluster"
    node_dir = cluster / "nodes" / "pyk8s-server-1"
    node_dir.mkdir(parents=True)
    multinode.ClusterState(name="pyk8s", data_dir=str(cluster), network_netns="pyk8s-net", subnet="10.45.0.0/24",
                           https_port=6443, nodes=[
                               multinode.NodeInfo(name=name, role="server", netns=f"{name}-ns", address="10.45.0.10",
                                                  data_dir=str(cluster / "nodes" / name), veth="veth-s0")
                               for name in ("pyk8s-server-0", "pyk8s-server-1")]).save()
    assert etcdmembers.server_netns(node_dir) == "pyk8s-server-1-ns"
    assert etcdmembers.server_netns(cluster) is None


def _exec_captured(data_dir, monkeypatch) -> list[list[str]]:
    """Make `data_dir`'s server live in namespace "iso" (this process outside it) and record
    the command the CLI would exec there instead of execing it."""
    from pyk8s.cluster import netns

    (data_dir / "netns-created").write_text("iso\n")
    monkeypatch.setattr(netns, "netns_exists", lambda name: name == "iso")
    monkeypatch.setattr(etcdmembers, "inside_netns", lambda name: False)
    executed = []

    def execvp(program, command):
        executed.append(command)
        raise SystemExit(0)
    monkeypatch.setattr("os.execvp", execvp)
    return executed


def test_command_runs_itself_inside_the_servers_netns(data_dir, monkeypatch):
    executed = _exec_captured(data_dir, monkeypatch)
    with pytest.raises(SystemExit):
        cli.main(["etcd-member", "remove", "s2", "--force", "--data-dir", str(data_dir)])
    prefix, rest = executed[0][:2], executed[0][2:]
    assert prefix == ["nsenter", "--net=/var/run/netns/iso"]
    assert rest[1:] == ["-m", "pyk8s", "etcd-member", "remove", "s2", "--force", "--data-dir", str(data_dir)]


def test_snapshot_save_also_runs_inside_the_servers_netns(data_dir, monkeypatch):
    executed = _exec_captured(data_dir, monkeypatch)
    with pytest.raises(SystemExit):
        cli.main(["etcd-snapshot", "save", "--name", "before-upgrade", "--data-dir", str(data_dir)])
    assert executed[0][:2] == ["nsenter", "--net=/var/run/netns/iso"]
    assert executed[0][3:] == ["-m", "pyk8s", "etcd-snapshot", "save", "--name", "before-upgrade",
                               "--data-dir", str(data_dir)]


def test_this_process_is_inside_its_own_netns_only(tmp_path, monkeypatch):
    from pyk8s.cluster import netns

    monkeypatch.setattr(netns, "NETNS_DIR", tmp_path)
    (tmp_path / "self").symlink_to("/proc/self/ns/net")
    (tmp_path / "other").write_text("")  # any other inode
    assert etcdmembers.inside_netns("self")
    assert not etcdmembers.inside_netns("other")


def test_no_member_answering_is_one_clear_line(data_dir, monkeypatch, capsys):
    def list_members(files, endpoints):
        raise embeddedetcd.EtcdError('etcdctl member list -w json: {"level":"warn","msg":"retrying"}\n'
                                     'Error: context deadline exceeded')
    monkeypatch.setattr(etcdmembers, "list_members", list_members)
    code, out, err = run(capsys, "etcd-member", "list", "--data-dir", str(data_dir))
    assert (code, out) == (1, "")
    assert err == ("pyk8s etcd-member: error: no etcd member answers at https://127.0.0.1:2379, "
                   "https://127.0.0.2:2379, https://127.0.0.3:2379 (does a server of this cluster run?): "
                   "Error: context deadline exceeded\n")
