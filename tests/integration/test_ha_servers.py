"""Several servers on embedded etcd: three `pyk8s server`s in the test's network namespace,
on 127.0.0.2-4 (all loopback), each with its own data dir and etcd member, no agent.

Covers joining with the server token, the bootstrap endpoint's authentication, the
`kubernetes` endpoints following the live servers, leader election of the controller
manager and the scheduler with a kill -9 of the leader (failover time printed), quorum loss
and recovery through the API, member removal by Node deletion and by `pyk8s etcd-member
remove` (a stopped server's member, which then cannot start again and rejoins with its etcd
data wiped; a running one's with --force, which stops that server), snapshot save and restore into a new cluster, and moving a SQLite cluster to etcd.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import ssl
import stat
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from pyk8s.client.kubeconfig import server_url_and_ssl_context
from conftest import KUBECTL, eventually

pytestmark = pytest.mark.skipif(shutil.which("etcd") is None, reason="Debian's etcd-server is not installed")

PORT = 6443


class Server:
    """One `pyk8s server` on its own loopback address."""

    def __init__(self, data_dir: Path, address: str):
        self.data_dir = Path(data_dir)
        self.address = address
        self.process: subprocess.Popen | None = None
        self.args: list[str] = []

    @property
    def url(self) -> str:
        return f"https://{self.address}:{PORT}"

    @property
    def kubeconfig(self) -> Path:
        return self.data_dir / "kubeconfig.yaml"

    def start(self, *args: str, timeout: float = 60.0, wait: bool = True) -> "Server":
        self.args = list(args) or self.args
        self.data_dir.mkdir(parents=True, exist_ok=True)
        with open(self.data_dir / "server.log", "ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "pyk8s", "server", "--data-dir", str(self.data_dir), "--bind-address",
                 self.address, "--advertise-address", self.address, "--https-port", str(PORT), "--disable-agent",
                 *self.args], stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        if wait:
            self.wait_ready(timeout)
        return self

    def wait_ready(self, timeout: float = 60.0) -> None:
        def ready():
            if self.process.poll() is not None:
                raise AssertionError(f"server {self.address} exited {self.process.returncode}:\n{self.log_tail()}")
            if not self.kubeconfig.exists():
                return False
            try:
                return self.request("GET", "/readyz", raw=True) == b"ok"
            except (OSError, urllib.error.URLError, ssl.SSLError):
                return False
        eventually(ready, timeout, what=f"server {self.address} ready", interval=0.1, context=self.log_tail)

    def ssl_context(self) -> ssl.SSLContext:
        return server_url_and_ssl_context(self.kubeconfig)[1]

    def request(self, method: str, path: str, body=None, *, raw: bool = False, timeout: float = 10.0):
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(self.url + path, data=data, method=method,
                                         headers={"Content-Type": "application/json", "Accept": "application/json"})
        with urllib.request.urlopen(request, context=self.ssl_context(), timeout=timeout) as reply:
            payload = reply.read()
        return payload if raw else json.loads(payload)

    def kill(self) -> None:
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(10)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def log_tail(self, lines: int = 30) -> str:
        try:
            text = (self.data_dir / "server.log").read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def etcdctl(self, *args: str) -> str:
        tls = self.data_dir / "server" / "tls" / "etcd"
        return subprocess.run(
            ["etcdctl", "--endpoints", f"https://{self.address}:2379", "--cacert", str(tls / "server-ca.crt"),
             "--cert", str(tls / "client.crt"), "--key", str(tls / "client.key"), *args],
            capture_output=True, text=True, check=True, env=dict(os.environ, ETCDCTL_API="3"), timeout=20).stdout

    def member_names(self) -> set[str]:
        return {m.get("name") for m in json.loads(self.etcdctl("member", "list", "-w", "json"))["members"]}

    def member_name(self) -> str:
        return (self.data_dir / "server" / "db" / "etcd" / "name").read_text().strip()

    def member_ids(self) -> dict[str, str]:
        """name -> hex ID, from etcdctl."""
        members = json.loads(self.etcdctl("member", "list", "-w", "json"))["members"]
        return {m.get("name", ""): f"{m['ID']:x}" for m in members}


def etcd_member(server: Server, *args: str) -> subprocess.CompletedProcess:
    """`pyk8s etcd-member ARGS --data-dir <server's>`."""
    return subprocess.run([sys.executable, "-m", "pyk8s", "etcd-member", *args, "--data-dir", str(server.data_dir)],
                          capture_output=True, text=True, timeout=60)


def member_rows(output: str) -> dict[str, dict[str, str]]:
    """`etcd-member list` output -> {name: {column: value}} (the columns are split on the
    header's offsets: the header has names with spaces)."""
    header, *lines = output.splitlines()
    columns = ["NAME", "ID", "STATUS", "HEALTH", "PEER URLS", "CLIENT URLS", "LOCAL"]
    starts = [header.index(column) for column in columns]
    rows = {}
    for line in lines:
        cells = [line[start:end].strip() for start, end in zip(starts, starts[1:] + [None])]
        rows[cells[0]] = dict(zip(columns, cells))
    return rows


def configmap(name: str, value: str = "v") -> dict:
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}, "data": {"k": value}}


CONFIGMAPS = "/api/v1/namespaces/default/configmaps"


@pytest.fixture(scope="module")
def servers(tmp_path_factory):
    base = tmp_path_factory.mktemp("ha")
    started = time.monotonic()
    first = Server(base / "s1", "127.0.0.2").start("--cluster-init")
    token = (first.data_dir / "server-token").read_text().strip()
    others = [Server(base / f"s{i}", f"127.0.0.{i + 1}") for i in (2, 3)]
    for server in others:
        server.start("--server", first.url, "--token", token)
    startup = time.monotonic() - started
    print(f"\n3-server start-up (etcd cluster-init + 2 joins, each ready): {startup:.1f}s")
    group = [first, *others]
    yield group
    for server in group:  # together: one by one, the last ones would wait for a lost quorum
        if server.running():
            server.process.send_signal(signal.SIGTERM)
    for server in group:
        server.stop()


def test_servers_join_with_the_server_token_as_etcd_members(servers):
    first, second, third = servers
    token_path = first.data_dir / "server-token"
    assert stat.S_IMODE(token_path.stat().st_mode) == 0o600
    token = token_path.read_text().strip()
    assert re.fullmatch(r"K10[0-9a-f]{64}::server:[0-9a-f]{32}", token)
    assert token != (first.data_dir / "node-token").read_text().strip()
    # Every server keeps the token (so it can let others join), and shares the cluster CA.
    assert (third.data_dir / "server-token").read_text().strip() == token
    assert (third.data_dir / "server" / "tls" / "ca.crt").read_bytes() == \
        (first.data_dir / "server" / "tls" / "ca.crt").read_bytes()
    assert first.member_names() == {s.member_name() for s in servers}
    # Active-active: a write through one server is read through the others.
    first.request("POST", CONFIGMAPS, configmap("written-on-first"))
    for server in (second, third):
        assert server.request("GET", f"{CONFIGMAPS}/written-on-first")["data"] == {"k": "v"}


def test_etcd_member_list_shows_every_member_and_marks_this_data_dirs(servers):
    second = servers[1]
    listed = etcd_member(second, "list")
    assert listed.returncode == 0, listed.stderr
    rows = member_rows(listed.stdout)
    assert rows.keys() == {s.member_name() for s in servers}
    ids = second.member_ids()
    for server in servers:
        row = rows[server.member_name()]
        assert row["ID"] == ids[server.member_name()]
        assert row["PEER URLS"] == f"https://{server.address}:2380"
        assert row["CLIENT URLS"] == f"https://{server.address}:2379"
        assert (row["STATUS"], row["HEALTH"]) == ("started", "healthy")
        assert row["LOCAL"] == ("yes" if server is second else "no")


def test_etcd_member_remove_of_an_unknown_name_fails_and_changes_nothing(servers):
    first = servers[0]
    before = first.member_ids()
    refused = etcd_member(first, "remove", "no-such-member")
    assert refused.returncode == 1 and refused.stdout == ""
    assert "no member named 'no-such-member'" in refused.stderr
    assert all(name in refused.stderr for name in before)  # the known ones are listed
    assert first.member_ids() == before


def test_etcd_member_remove_of_a_running_servers_member_is_refused(servers):
    first, second, _ = servers
    before = first.member_ids()
    own = etcd_member(second, "remove", second.member_name())
    assert own.returncode == 1 and own.stdout == ""
    assert "stop that server first" in own.stderr and str(second.data_dir) in own.stderr
    # Another server's member, while that server runs: refused too without --force.
    other = etcd_member(first, "remove", second.member_name())
    assert other.returncode == 1 and "still answers" in other.stderr
    assert first.member_ids() == before
    assert second.request("GET", "/readyz", raw=True) == b"ok"


def test_bootstrap_endpoint_needs_the_server_token(servers):
    first = servers[0]
    context = ssl.create_default_context(cafile=str(first.data_dir / "server" / "tls" / "ca.crt"))
    for header in (None, "Basic " + __import__("base64").b64encode(b"server:wrong").decode()):
        request = urllib.request.Request(first.url + "/v1-pyk8s/server-bootstrap")
        if header:
            request.add_header("Authorization", header)
        with pytest.raises(urllib.error.HTTPError) as failure:
            urllib.request.urlopen(request, context=context, timeout=5)
        assert failure.value.code == 401
        assert b"ca.key" not in failure.value.read()


def endpoint_addresses(server: Server) -> list[str]:
    endpoints = server.request("GET", "/api/v1/namespaces/default/endpoints/kubernetes")
    return sorted(a["ip"] for subset in endpoints.get("subsets") or [] for a in subset.get("addresses") or [])


def test_kubernetes_endpoints_are_the_live_servers(servers):
    addresses = sorted(s.address for s in servers)
    eventually(lambda: endpoint_addresses(servers[0]) == addresses, 30, what="every server in the endpoints")
    slice_ = servers[1].request("GET", "/apis/discovery.k8s.io/v1/namespaces/default/endpointslices/kubernetes")
    assert sorted(e["addresses"][0] for e in slice_["endpoints"]) == addresses
    leases = servers[2].request("GET", "/apis/coordination.k8s.io/v1/namespaces/kube-system/leases"
                                       "?labelSelector=apiserver.kubernetes.io/identity%3Dkube-apiserver")
    assert len(leases["items"]) == 3


def lease_holder(server: Server, name: str) -> str:
    lease = server.request("GET", f"/apis/coordination.k8s.io/v1/namespaces/kube-system/leases/{name}", timeout=5)
    return (lease.get("spec") or {}).get("holderIdentity") or ""


def logged_by(servers: list[Server], identity: str) -> bool:
    return any(identity in (server.data_dir / "server.log").read_text(errors="replace") for server in servers)


def leader_of(servers: list[Server], identity: str) -> Server:
    for server in servers:
        if identity in (server.data_dir / "server.log").read_text(errors="replace"):
            return server
    raise AssertionError(f"no server logged identity {identity}")


def replicaset(name: str) -> dict:
    labels = {"app": name}
    return {"apiVersion": "apps/v1", "kind": "ReplicaSet", "metadata": {"name": name},
            "spec": {"replicas": 2, "selector": {"matchLabels": labels},
                     "template": {"metadata": {"labels": labels},
                                  "spec": {"containers": [{"name": "c", "image": "pyk8s/busybox:1.35"}]}}}}


def pods_of(server: Server, app: str) -> int:
    try:
        return len(server.request("GET", f"/api/v1/namespaces/default/pods?labelSelector=app%3D{app}",
                                  timeout=5)["items"])
    except (OSError, urllib.error.URLError):
        return 0


def test_leader_killed_controllers_and_scheduler_move_within_the_lease(servers):
    holder = eventually(lambda: lease_holder(servers[0], "kube-controller-manager"), 30, what="a controller leader")
    assert re.fullmatch(r"[a-z0-9.-]+_[0-9a-f-]{36}", holder), holder
    eventually(lambda: lease_holder(servers[0], "kube-scheduler"), 30, what="a scheduler leader")
    leader = leader_of(servers, holder)
    survivors = [s for s in servers if s is not leader]
    # Acknowledged just before the kill: must survive it.
    acknowledged = [survivors[0].request("POST", CONFIGMAPS, configmap(f"before-kill-{i}"))["metadata"]["uid"]
                    for i in range(5)]
    acknowledged.append(leader.request("POST", CONFIGMAPS, configmap("on-the-leader"))["metadata"]["uid"])

    leader.kill()
    killed_at = time.monotonic()
    # Work only a live controller manager does: created after the kill, on a survivor (if the
    # killed server's member led etcd, writes wait for etcd's election: retried).
    eventually(lambda: _created(survivors[0], "after-kill", "/apis/apps/v1/namespaces/default/replicasets",
                                replicaset("after-kill")), 20, what="a write after the kill", interval=0.3)
    new_holder = eventually(lambda: (h := lease_holder(survivors[0], "kube-controller-manager")) not in ("", holder)
                            and h, 40, what="another controller-manager leader", interval=0.2)
    eventually(lambda: pods_of(survivors[1], "after-kill") == 2, 20, what="the ReplicaSet's pods", interval=0.2)
    failover = time.monotonic() - killed_at
    # Each component has its own identity: until the scheduler's lease moves (it may lag the
    # controller manager's by a retry period), it names the killed server's scheduler.
    scheduler_holder = eventually(lambda: (h := lease_holder(survivors[1], "kube-scheduler")) and
                                  logged_by(survivors, h) and h, 40,
                                  what="a scheduler leader among the survivors", interval=0.2)
    print(f"\nfailover: leader killed -> controllers active on another server in {failover:.1f}s "
          f"(lease 15 s, retry 2 s); new holders {new_holder}, {scheduler_holder}")
    assert leader_of(survivors, new_holder) in survivors
    assert failover < 15 + 2 * 2 + 8  # the lease, two retry periods, the controller's start

    # No acknowledged write lost; kubectl against the survivors keeps working.
    names = [f"before-kill-{i}" for i in range(5)] + ["on-the-leader"]
    for name, uid in zip(names, acknowledged):
        assert survivors[1].request("GET", f"{CONFIGMAPS}/{name}")["metadata"]["uid"] == uid
    for server in survivors:
        out = subprocess.run([KUBECTL, "--kubeconfig", str(server.kubeconfig), "get", "configmap", "on-the-leader",
                              "-o", "name"], capture_output=True, text=True, timeout=30)
        assert out.stdout.strip() == "configmap/on-the-leader", out.stderr

    # The killed server restarts and rejoins (its member comes back with its data).
    leader.start(timeout=60)
    assert leader.request("GET", "/api/v1/namespaces/default/pods?labelSelector=app%3Dafter-kill")["items"]
    eventually(lambda: endpoint_addresses(survivors[0]) == sorted(s.address for s in servers), 40,
               what="the restarted server back in the endpoints")


def test_quorum_lost_writes_fail_clearly_and_recover(servers):
    alive, *down = servers
    for server in down:
        server.kill()
    started = time.monotonic()
    with pytest.raises(urllib.error.HTTPError) as failure:
        alive.request("POST", CONFIGMAPS, configmap("without-quorum"), timeout=30)
    elapsed = time.monotonic() - started
    status = json.loads(failure.value.read())
    print(f"\nwrite without quorum: HTTP {failure.value.code} after {elapsed:.1f}s: {status.get('message')}")
    assert failure.value.code in (500, 503, 504)
    assert elapsed < 15
    down[0].start(wait=False)  # one member back: quorum again
    eventually(lambda: _created(alive, "after-quorum"), 60, what="writes again with two of three members",
               interval=0.5, context=down[0].log_tail)
    down[0].wait_ready(60)
    down[1].start(timeout=60)


def _created(server: Server, name: str, path: str = CONFIGMAPS, body: dict | None = None) -> bool:
    try:
        server.request("POST", path, body or configmap(name), timeout=10)
        return True
    except urllib.error.HTTPError as error:
        if error.code == 409:
            return True
        return False
    except OSError:
        return False


def test_stopped_servers_member_removed_with_etcd_member_then_it_rejoins_wiped(servers):
    first, second, third = servers
    member = second.member_name()
    second.stop()
    # From the stopped server's own data dir: the cluster answers through the other members.
    listed = etcd_member(second, "list")
    assert listed.returncode == 0, listed.stderr
    rows = member_rows(listed.stdout)
    assert (rows[member]["LOCAL"], rows[member]["HEALTH"]) == ("yes", "unhealthy")
    assert rows[first.member_name()]["HEALTH"] == "healthy"

    removed = etcd_member(first, "remove", member)
    assert removed.returncode == 0, removed.stderr
    assert removed.stdout.strip() == f"member {member} ({rows[member]['ID']}) removed"
    assert set(first.member_ids()) == {first.member_name(), third.member_name()}
    first.request("POST", CONFIGMAPS, configmap("after-etcd-member-remove"))
    assert third.request("GET", f"{CONFIGMAPS}/after-etcd-member-remove")["data"] == {"k": "v"}

    # Its data can never start again: the server stops, saying so and how to rejoin.
    second.start(wait=False)
    second.process.wait(60)
    assert second.process.returncode != 0
    tail = second.log_tail(10)
    assert f"etcd member {member} was removed from its cluster" in tail and "--server" in tail, tail
    assert set(first.member_ids()) == {first.member_name(), third.member_name()}

    # As told: its etcd data wiped, it joins again (its flags have --server and --token).
    shutil.rmtree(second.data_dir / "server" / "db" / "etcd")
    second.start(timeout=60)
    assert second.member_name() != member
    assert set(first.member_ids()) == {s.member_name() for s in servers}
    assert second.request("GET", f"{CONFIGMAPS}/after-etcd-member-remove")["data"] == {"k": "v"}


def test_running_servers_member_removed_with_force_stops_that_server(servers):
    first, second, third = servers
    member = third.member_name()
    forced = etcd_member(first, "remove", member, "--force")
    assert forced.returncode == 0, forced.stderr
    # Its etcd is refused by the others: the server stops, saying how to rejoin (no restart loop).
    third.process.wait(60)
    assert third.process.returncode != 0
    tail = third.log_tail(10)
    assert f"etcd member {member} was removed from its cluster" in tail, tail
    assert set(first.member_ids()) == {first.member_name(), second.member_name()}
    first.request("POST", CONFIGMAPS, configmap("after-forced-remove"))
    shutil.rmtree(third.data_dir / "server" / "db" / "etcd")
    third.start(timeout=60)
    assert set(first.member_ids()) == {s.member_name() for s in servers}


def test_deleting_a_servers_node_removes_its_etcd_member(servers):
    first, _, third = servers
    member = third.member_name()
    third.stop()
    node = {"apiVersion": "v1", "kind": "Node",
            "metadata": {"name": "leaving-server", "annotations": {"etcd.pyk8s.io/member-name": member}}}
    first.request("POST", "/api/v1/nodes", node)
    first.request("DELETE", "/api/v1/nodes/leaving-server")
    eventually(lambda: member not in first.member_names(), 30, what="the member removed")
    assert len(first.member_names()) == 2
    # Writes keep working with the two members left.
    first.request("POST", CONFIGMAPS, configmap("after-removal"))


def test_snapshot_save_and_restore_into_a_new_cluster(servers, tmp_path):
    first = servers[0]
    first.request("POST", CONFIGMAPS, configmap("in-snapshot"))
    saved = subprocess.run([sys.executable, "-m", "pyk8s", "etcd-snapshot", "save", "--data-dir", str(first.data_dir)],
                           capture_output=True, text=True, timeout=60)
    assert saved.returncode == 0, saved.stderr
    path = Path(saved.stdout.strip())
    assert path.parent == first.data_dir / "server" / "db" / "snapshots" and path.stat().st_size > 0
    first.request("POST", CONFIGMAPS, configmap("after-snapshot"))

    restored = Server(tmp_path / "restored", "127.0.0.5").start("--cluster-init", "--cluster-reset-restore-path",
                                                                str(path))
    try:
        assert restored.request("GET", f"{CONFIGMAPS}/in-snapshot")["data"] == {"k": "v"}
        with pytest.raises(urllib.error.HTTPError) as missing:
            restored.request("GET", f"{CONFIGMAPS}/after-snapshot")
        assert missing.value.code == 404
        assert len(restored.member_names()) == 1  # a new one-member cluster
    finally:
        restored.stop()


def test_sqlite_cluster_moves_to_etcd_with_every_object(tmp_path):
    server = Server(tmp_path / "single", "127.0.0.6").start()
    try:
        uids = {}
        server.request("POST", "/api/v1/namespaces", {"apiVersion": "v1", "kind": "Namespace",
                                                      "metadata": {"name": "moving"}})
        for i in range(20):
            created = server.request("POST", "/api/v1/namespaces/moving/configmaps", configmap(f"cm-{i}", str(i)))
            uids[f"cm-{i}"] = created["metadata"]["uid"]
        before = {item["metadata"]["name"] for item in server.request("GET", "/api/v1/namespaces")["items"]}
    finally:
        server.stop()
    server.start("--cluster-init")
    try:
        assert not (server.data_dir / "server" / "state.db").exists()
        assert (server.data_dir / "server" / "state.db.migrated").exists()
        listed = server.request("GET", "/api/v1/namespaces/moving/configmaps")["items"]
        listed = [item for item in listed if item["metadata"]["name"].startswith("cm-")]
        assert {item["metadata"]["name"]: item["metadata"]["uid"] for item in listed} == uids
        assert all(item["data"] == {"k": item["metadata"]["name"][3:]} for item in listed)
        after = {item["metadata"]["name"] for item in server.request("GET", "/api/v1/namespaces")["items"]}
        assert before <= after
        assert server.member_names() == {server.member_name()}
    finally:
        server.stop()
