"""Embedded etcd, k3s's way: `pyk8s server --cluster-init` runs and supervises a real etcd
member (Debian's `etcd` 3.4 binary) as a child process, and the API server keeps its state
in it; servers that join add a member of their own.

Files (k3s's layout):
- `<data-dir>/server/db/etcd/`     etcd's data dir (`member/` inside), plus `name`: this
  member's name, `<hostname>-<8 hex>` (k3s's shape; unique even when several servers of one
  machine share a hostname), and `config`: its URLs, for `pyk8s etcd-snapshot`, and the
  client URLs of every member, refreshed while the server runs, so that `pyk8s etcd-member`
  reaches the cluster through another member when this one is stopped;
- `<data-dir>/server/db/etcd.log`  the member's log, appended across runs;
- `<data-dir>/server/db/snapshots/` `pyk8s etcd-snapshot save` output;
- `<data-dir>/server/tls/etcd/`    `server-ca` (signs the member's serving certificate and
  every client certificate: the API server's `client`), `peer-ca` (signs the members'
  `peer-server-client` certificates). Both CAs are apart from the cluster CA, so no API
  client certificate is an etcd credential; joining servers receive their keys over the
  server-token-authenticated bootstrap endpoint (cluster/serverjoin.py).

Ports: clients on 2379, peers on 2380, on the advertise address (and on 127.0.0.1 when the
advertise address is not loopback, so local tools reach it as they do on k3s). etcd runs
with a 200 ms heartbeat and a 2 s election timeout, and client and peer TLS with
certificate authentication both ways. It dies with the server (PR_SET_PDEATHSIG): a server
killed with -9 takes its member with it, as k3s's in-process etcd does. An etcd that exits
while the server runs is restarted with back-off.

Membership is done with `etcdctl` (member add/remove/list, snapshot save/restore, endpoint
health) using the API server's client certificate. A member removed from the cluster
(`pyk8s etcd-member remove`, or its Node deleted) cannot start again from its data: etcd
exits saying so, and the server then stops with MemberRemoved, which says how to rejoin,
instead of restarting it forever (at start, or while it runs: `on_removed`).
"""

from __future__ import annotations

import asyncio
import ctypes
import ipaddress
import json
import logging
import os
import secrets
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from pyk8s.cluster.files import write_file_atomic
from pyk8s.cluster.pki import ensure_ca, ensure_leaf_cert

log = logging.getLogger("pyk8s.etcd")

CLIENT_PORT = 2379
PEER_PORT = 2380
# Milliseconds. etcd's recommended 1:10 ratio, shorter than k3s's 500/5000 so that a dead
# etcd leader stalls writes for about 2 s, within the API store's 5 s request deadline.
HEARTBEAT_INTERVAL_MS = 200
ELECTION_TIMEOUT_MS = 2000
ETCD_BINARY = "etcd"
ETCDCTL_BINARY = "etcdctl"
_PR_SET_PDEATHSIG = 1


class EtcdError(Exception):
    """etcd or etcdctl failed; the message carries etcdctl's own words."""


class MemberRemoved(EtcdError):
    """This data dir's member was removed from its cluster; its data can never start again."""

    def __init__(self, name: str, files: "EtcdFiles"):
        super().__init__(
            f"etcd member {name} was removed from its cluster (pyk8s etcd-member remove, or its Node deleted), "
            f"so its data in {files.etcd_dir} can no longer start. To join this server to the cluster again, "
            f"delete {files.etcd_dir} and start it with --server https://<a running server>:6443 "
            f"--token <that server's <data-dir>/server-token>")


# What etcd logs (3.4, as the error of its raft loop) when its peers say it was removed.
_REMOVED_MESSAGE = b"the member has been permanently removed from the cluster"


@dataclass
class Member:
    id: int
    name: str
    peer_urls: list[str] = field(default_factory=list)
    client_urls: list[str] = field(default_factory=list)
    is_learner: bool = False

    @property
    def hex_id(self) -> str:
        return f"{self.id:x}"

    @property
    def started(self) -> bool:
        """An added member that has never run has no name and no client URLs yet."""
        return bool(self.name)


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host


class EtcdFiles:
    """Where one server's member keeps everything (see the module docstring)."""

    def __init__(self, data_dir: Path):
        self.data_dir = Path(data_dir)
        self.db_dir = self.data_dir / "server" / "db"
        self.etcd_dir = self.db_dir / "etcd"
        self.name_file = self.etcd_dir / "name"
        self.config_file = self.etcd_dir / "config"
        self.log_file = self.db_dir / "etcd.log"
        self.snapshot_dir = self.db_dir / "snapshots"
        tls = self.data_dir / "server" / "tls" / "etcd"
        self.tls_dir = tls
        self.server_ca_cert, self.server_ca_key = tls / "server-ca.crt", tls / "server-ca.key"
        self.peer_ca_cert, self.peer_ca_key = tls / "peer-ca.crt", tls / "peer-ca.key"
        self.server_cert, self.server_key = tls / "server-client.crt", tls / "server-client.key"
        self.peer_cert, self.peer_key = tls / "peer-server-client.crt", tls / "peer-server-client.key"
        self.client_cert, self.client_key = tls / "client.crt", tls / "client.key"

    def has_member_data(self) -> bool:
        return (self.etcd_dir / "member").is_dir()

    def member_name(self, node_name: str = "") -> str:
        """This server's member name, made once and kept: k3s's `<node name>-<8 hex>` (the
        node name defaults to the hostname)."""
        try:
            name = self.name_file.read_text().strip()
            if name:
                return name
        except FileNotFoundError:
            pass
        name = f"{(node_name or socket.gethostname()).lower()}-{secrets.token_hex(4)}"
        self.etcd_dir.mkdir(parents=True, exist_ok=True)
        os.chmod(self.etcd_dir, 0o700)
        write_file_atomic(self.name_file, (name + "\n").encode(), 0o600)
        return name

    def ensure_cas(self) -> None:
        ensure_ca(self.server_ca_cert, self.server_ca_key, "etcd-server-ca")
        ensure_ca(self.peer_ca_cert, self.peer_ca_key, "etcd-peer-ca")

    def ensure_certs(self, hosts: list[str]) -> None:
        """The member's serving and peer certificates and the API server's client one."""
        self.ensure_cas()
        ensure_leaf_cert(self.server_ca_cert, self.server_ca_key, self.server_cert, self.server_key,
                         common_name="etcd-server", server=True, client=True, hosts=hosts)
        ensure_leaf_cert(self.peer_ca_cert, self.peer_ca_key, self.peer_cert, self.peer_key,
                         common_name="etcd-peer", server=True, client=True, hosts=hosts)
        ensure_leaf_cert(self.server_ca_cert, self.server_ca_key, self.client_cert, self.client_key,
                         common_name="etcd-client", server=False, client=True)


def etcdctl(files: EtcdFiles, endpoints: list[str], *args: str, timeout: float = 15.0,
            command_timeout: str = "5s", check: bool = True) -> str:
    """Run etcdctl (API v3) against `endpoints` with the API server's client certificate;
    its stdout, or EtcdError with its stderr (with check=False, its stdout whatever its
    exit status: `endpoint health` exits 1 when any endpoint is unhealthy)."""
    command = [ETCDCTL_BINARY, "--endpoints", ",".join(endpoints), "--cacert", str(files.server_ca_cert),
               "--cert", str(files.client_cert), "--key", str(files.client_key),
               "--command-timeout", command_timeout, *args]
    try:
        result = subprocess.run(command, capture_output=True, text=True, timeout=timeout,
                                env=dict(os.environ, ETCDCTL_API="3"))
    except subprocess.TimeoutExpired:
        raise EtcdError(f"etcdctl {' '.join(args)}: no answer from {','.join(endpoints)} within {timeout:g}s")
    if result.returncode != 0 and check:
        raise EtcdError(f"etcdctl {' '.join(args)}: {(result.stderr or result.stdout).strip()}")
    return result.stdout


def list_members(files: EtcdFiles, endpoints: list[str]) -> list[Member]:
    answer = json.loads(etcdctl(files, endpoints, "member", "list", "-w", "json"))
    return [Member(id=int(m["ID"]), name=m.get("name", ""), peer_urls=list(m.get("peerURLs") or []),
                   client_urls=list(m.get("clientURLs") or []), is_learner=bool(m.get("isLearner")))
            for m in answer.get("members") or []]


def member_health(files: EtcdFiles, members: list[Member]) -> dict[int, bool]:
    """member id -> whether it answers a linearizable read (etcdctl endpoint health, all at
    once), for the started members; a stopped member costs the 2 s command timeout."""
    asked = {member.client_urls[0]: member.id for member in members if member.started and member.client_urls}
    if not asked:
        return {}
    answer = etcdctl(files, list(asked), "endpoint", "health", "-w", "json", timeout=10, command_timeout="2s",
                     check=False)
    health = {member_id: False for member_id in asked.values()}
    try:
        for entry in json.loads(answer or "[]"):
            if entry.get("endpoint") in asked:
                health[asked[entry["endpoint"]]] = bool(entry.get("health"))
    except (ValueError, AttributeError, TypeError):
        pass  # no JSON at all: nothing answered
    return health


def remove_member(files: EtcdFiles, endpoints: list[str], name: str) -> bool:
    """Remove the member called `name` (etcdctl member remove); False if there is none."""
    for member in list_members(files, endpoints):
        if member.name == name:
            etcdctl(files, endpoints, "member", "remove", member.hex_id)
            log.info("removed etcd member %s (%s)", name, member.hex_id)
            return True
    return False


def _die_with_parent() -> None:
    # Runs in the child between fork and exec: SIGKILL when the server that started it dies.
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    os.setsid()


class EmbeddedEtcd:
    """One supervised etcd member of this server."""

    def __init__(self, data_dir: Path, advertise_address: str, *, client_port: int = CLIENT_PORT,
                 peer_port: int = PEER_PORT, node_name: str = ""):
        self.files = EtcdFiles(data_dir)
        self.advertise_address = advertise_address
        self.node_name = node_name
        self.client_port = client_port
        self.peer_port = peer_port
        self.name = ""
        self._process: subprocess.Popen | None = None
        self._supervisor: asyncio.Task | None = None
        self._stopping = False
        self._argv: list[str] = []
        self._log_offset = 0  # where the running etcd's output starts in the log
        self._cluster_client_urls: list[str] = []
        self.removed: MemberRemoved | None = None
        self.on_removed = lambda: None  # called once the cluster has removed this member while it ran

    # -- addresses --------------------------------------------------------------------

    def _listen_hosts(self) -> list[str]:
        hosts = [self.advertise_address]
        if not ipaddress.ip_address(self.advertise_address).is_loopback:
            hosts.insert(0, "127.0.0.1")
        return hosts

    @property
    def client_urls(self) -> list[str]:
        return [f"https://{_url_host(host)}:{self.client_port}" for host in self._listen_hosts()]

    @property
    def advertise_client_url(self) -> str:
        return f"https://{_url_host(self.advertise_address)}:{self.client_port}"

    @property
    def peer_url(self) -> str:
        return f"https://{_url_host(self.advertise_address)}:{self.peer_port}"

    @property
    def local_endpoint(self) -> str:
        """The endpoint this server's API server and tools use: its own member."""
        return self.client_urls[0]

    def datastore_settings(self) -> dict[str, str]:
        """What the API server's etcd store is given (as `--datastore etcd://...` and the
        --etcd-cafile/certfile/keyfile flags)."""
        host = self.local_endpoint.split("://", 1)[1]
        return {"datastore": f"etcd://{host}", "etcd_cafile": str(self.files.server_ca_cert),
                "etcd_certfile": str(self.files.client_cert), "etcd_keyfile": str(self.files.client_key)}

    def prepare(self, extra_hosts: list[str] = ()) -> None:
        """Certificates and the member name; creates the etcd CAs on a first server."""
        self.name = self.files.member_name(self.node_name)
        hosts = sorted({"127.0.0.1", "localhost", self.advertise_address, socket.gethostname().lower(),
                        *extra_hosts})
        self.files.ensure_certs(hosts)

    # -- membership -------------------------------------------------------------------

    def add_self_to(self, endpoints: list[str]) -> str:
        """MemberAdd this server to the cluster reached at `endpoints` (or find its earlier,
        unstarted add); returns the --initial-cluster value to start with."""
        members = list_members(self.files, endpoints)
        for member in members:
            if self.peer_url in member.peer_urls and member.name not in ("", self.name):
                # An old member that had this address (a server re-installed): replace it.
                log.info("removing stale etcd member %s at %s", member.name, self.peer_url)
                etcdctl(self.files, endpoints, "member", "remove", member.hex_id)
        members = list_members(self.files, endpoints)
        if not any(self.peer_url in member.peer_urls for member in members):
            # etcd refuses a voting member while a member joined less than 5 s ago
            # ("unhealthy cluster": its health interval): servers joining one after another retry.
            deadline = time.monotonic() + 60
            while True:
                try:
                    etcdctl(self.files, endpoints, "member", "add", self.name, f"--peer-urls={self.peer_url}")
                    break
                except EtcdError as error:
                    if "unhealthy cluster" not in str(error) or time.monotonic() > deadline:
                        raise
                    time.sleep(1.0)
            log.info("added etcd member %s (%s)", self.name, self.peer_url)
            members = list_members(self.files, endpoints)
        parts = []
        for member in members:
            name = member.name or (self.name if self.peer_url in member.peer_urls else "")
            for url in member.peer_urls:
                parts.append(f"{name}={url}")
        return ",".join(parts)

    def members(self) -> list[Member]:
        return list_members(self.files, [self.local_endpoint])

    # -- process ----------------------------------------------------------------------

    def _command(self, initial_cluster: str, state: str) -> list[str]:
        f = self.files
        return [
            ETCD_BINARY, "--name", self.name, "--data-dir", str(f.etcd_dir),
            "--listen-client-urls", ",".join(self.client_urls),
            "--advertise-client-urls", self.advertise_client_url,
            "--listen-peer-urls", self.peer_url,
            "--initial-advertise-peer-urls", self.peer_url,
            "--initial-cluster", initial_cluster, "--initial-cluster-state", state,
            "--initial-cluster-token", "pyk8s-etcd",
            "--heartbeat-interval", str(HEARTBEAT_INTERVAL_MS), "--election-timeout", str(ELECTION_TIMEOUT_MS),
            "--client-cert-auth", "--trusted-ca-file", str(f.server_ca_cert),
            "--cert-file", str(f.server_cert), "--key-file", str(f.server_key),
            "--peer-client-cert-auth", "--peer-trusted-ca-file", str(f.peer_ca_cert),
            "--peer-cert-file", str(f.peer_cert), "--peer-key-file", str(f.peer_key),
            "--logger", "zap", "--log-outputs", "stderr",
            "--snapshot-count", "10000",
        ]

    async def start(self, *, join_endpoints: list[str] | None = None, timeout: float = 60.0) -> None:
        """Start the member: a new one-member cluster, or (join_endpoints) a new member of
        an existing cluster, or, when its data dir has a member already, that member again.
        Returns once it answers a linearizable health check."""
        if not self.name:
            self.prepare()
        if self.files.has_member_data():
            initial, state = f"{self.name}={self.peer_url}", "existing"  # ignored by etcd: data wins
        elif join_endpoints:
            initial = await asyncio.to_thread(self.add_self_to, join_endpoints)
            state = "existing"
        else:
            initial, state = f"{self.name}={self.peer_url}", "new"
        self._argv = self._command(initial, state)
        recorded = _recorded(self.files.data_dir).get("clusterClientURLs")
        self._cluster_client_urls = list(join_endpoints or recorded or [])
        self._write_config()
        self._spawn()
        self._supervisor = asyncio.create_task(self._supervise(), name="etcd-supervisor")
        await self.wait_healthy(timeout)
        await asyncio.to_thread(self.record_cluster)
        log.info("etcd member %s ready: clients %s, peers %s", self.name, ",".join(self.client_urls), self.peer_url)

    def _write_config(self) -> None:
        write_file_atomic(self.files.config_file, json.dumps({
            "name": self.name, "advertiseAddress": self.advertise_address, "clientURLs": self.client_urls,
            "peerURL": self.peer_url, "clusterClientURLs": self._cluster_client_urls}, indent=2).encode() + b"\n",
            0o600)

    def record_cluster(self) -> None:
        """Record the client URLs of every member (see the module docstring); quiet when
        etcd does not answer (it is then recorded at the next try)."""
        try:
            urls = sorted({url for member in self.members() for url in member.client_urls})
        except EtcdError as error:
            log.debug("listing etcd members to record them: %s", error)
            return
        if urls and urls != self._cluster_client_urls:
            self._cluster_client_urls = urls
            self._write_config()

    def _removed_from_cluster(self) -> bool:
        try:
            with open(self.files.log_file, "rb") as output:
                output.seek(self._log_offset)
                return _REMOVED_MESSAGE in output.read()
        except FileNotFoundError:
            return False

    def _spawn(self) -> None:
        self.files.db_dir.mkdir(parents=True, exist_ok=True)
        with open(self.files.log_file, "ab") as output:
            output.write(f"--- etcd starting at {time.strftime('%Y-%m-%d %H:%M:%S')}\n".encode())
            output.flush()
            self._log_offset = output.tell()
            self._process = subprocess.Popen(self._argv, stdin=subprocess.DEVNULL, stdout=output,
                                             stderr=subprocess.STDOUT, preexec_fn=_die_with_parent, close_fds=True)
        log.info("etcd started (pid %d): %s", self._process.pid, self.files.log_file)

    async def _supervise(self) -> None:
        backoff = 1.0
        recorded_at = time.monotonic()
        while not self._stopping:
            await asyncio.sleep(0.5)
            process = self._process
            if process is not None and process.poll() is None and time.monotonic() - recorded_at > 30:
                recorded_at = time.monotonic()
                await asyncio.to_thread(self.record_cluster)
            if process is None or process.poll() is None or self._stopping:
                continue
            if self._removed_from_cluster():
                # Restarting cannot help: the cluster refuses this member for good.
                self.removed = MemberRemoved(self.name, self.files)
                log.error("%s", self.removed)
                self.on_removed()
                return
            log.error("etcd exited with status %s (log %s); restarting in %.0fs", process.returncode,
                      self.files.log_file, backoff)
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, 30.0)
            if not self._stopping:
                self._spawn()

    def healthy(self) -> bool:
        try:
            etcdctl(self.files, [self.local_endpoint], "endpoint", "health", timeout=5, command_timeout="2s")
            return True
        except EtcdError:
            return False

    async def wait_healthy(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while True:
            if self.removed is not None:
                raise self.removed
            if self._process is not None and self._process.poll() is not None and self._supervisor is None:
                raise EtcdError(f"etcd exited with status {self._process.returncode}; see {self.files.log_file}")
            if await asyncio.to_thread(self.healthy):
                return
            if time.monotonic() >= deadline:
                raise EtcdError(f"etcd member {self.name} not healthy after {timeout:g}s; see {self.files.log_file}")
            await asyncio.sleep(0.2)

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    async def stop(self, timeout: float = 10.0) -> None:
        self._stopping = True
        if self._supervisor is not None:
            self._supervisor.cancel()
            await asyncio.gather(self._supervisor, return_exceptions=True)
        process = self._process
        if process is not None and process.poll() is None:
            process.terminate()
            try:
                await asyncio.to_thread(process.wait, timeout)
            except subprocess.TimeoutExpired:
                process.kill()
                await asyncio.to_thread(process.wait)
        log.info("etcd member %s stopped", self.name)


def _recorded(data_dir: Path) -> dict:
    try:
        return json.loads(EtcdFiles(data_dir).config_file.read_text())
    except (FileNotFoundError, ValueError):
        return {}


def local_client_endpoint(data_dir: Path) -> str:
    """The client URL of this data dir's member, as its server last started it."""
    urls = _recorded(data_dir).get("clientURLs") or []
    if not urls:
        raise EtcdError(f"no embedded etcd in {data_dir} (start the server with --cluster-init or --server)")
    return urls[0]


def cluster_client_endpoints(data_dir: Path) -> list[str]:
    """This data dir's member first, then the other members its server last recorded: the
    cluster answers through them while this server is stopped."""
    endpoints = [local_client_endpoint(data_dir)]
    recorded = _recorded(data_dir)
    for url in recorded.get("clusterClientURLs") or []:
        if url not in endpoints and url not in (recorded.get("clientURLs") or []):
            endpoints.append(url)
    return endpoints


def recorded_member_name(data_dir: Path) -> str:
    """The name of this data dir's member (without making one up, unlike member_name)."""
    return _recorded(data_dir).get("name", "")


def recorded_advertise_address(data_dir: Path) -> str:
    return _recorded(data_dir).get("advertiseAddress", "")


# --- snapshots -------------------------------------------------------------------------

def save_snapshot(data_dir: Path, endpoint: str, name: str = "") -> Path:
    """`etcdctl snapshot save` from `endpoint` into <data-dir>/server/db/snapshots/
    (k3s's `<name>-<node>-<unix time>`); returns the file."""
    files = EtcdFiles(data_dir)
    files.snapshot_dir.mkdir(parents=True, exist_ok=True)
    os.chmod(files.snapshot_dir, 0o700)
    stem = name or "on-demand"
    target = files.snapshot_dir / f"{stem}-{socket.gethostname().lower()}-{int(time.time())}"
    partial = target.with_name(target.name + ".part")
    etcdctl(files, [endpoint], "snapshot", "save", str(partial), timeout=120, command_timeout="60s")
    os.chmod(partial, 0o600)
    os.replace(partial, target)
    return target


def restore_snapshot(data_dir: Path, snapshot: Path, advertise_address: str, *, peer_port: int = PEER_PORT) -> Path:
    """k3s's --cluster-reset-restore-path: this server's member data replaced by the
    snapshot as a new one-member cluster (others join it again). The old data is moved to
    `server/db/etcd-old-<unix time>`; returns that path (or the restored dir if none)."""
    files = EtcdFiles(data_dir)
    snapshot = Path(snapshot)
    if not snapshot.is_file():
        raise EtcdError(f"no snapshot file at {snapshot}")
    name = files.member_name()
    peer_url = f"https://{_url_host(advertise_address)}:{peer_port}"
    files.db_dir.mkdir(parents=True, exist_ok=True)
    staging = files.db_dir / f"etcd-restore-{os.getpid()}"
    shutil.rmtree(staging, ignore_errors=True)
    command = [ETCDCTL_BINARY, "snapshot", "restore", str(snapshot), "--name", name, "--data-dir", str(staging),
               "--initial-cluster", f"{name}={peer_url}", "--initial-advertise-peer-urls", peer_url,
               "--initial-cluster-token", "pyk8s-etcd"]
    result = subprocess.run(command, capture_output=True, text=True, env=dict(os.environ, ETCDCTL_API="3"))
    if result.returncode != 0:
        shutil.rmtree(staging, ignore_errors=True)
        raise EtcdError(f"etcdctl snapshot restore: {(result.stderr or result.stdout).strip()}")
    moved_aside = files.etcd_dir
    if files.has_member_data():
        moved_aside = files.db_dir / f"etcd-old-{int(time.time())}"
        shutil.move(str(files.etcd_dir / "member"), str(moved_aside))
    files.etcd_dir.mkdir(parents=True, exist_ok=True)
    shutil.move(str(staging / "member"), str(files.etcd_dir / "member"))
    shutil.rmtree(staging, ignore_errors=True)
    os.chmod(files.etcd_dir, 0o700)
    return moved_aside
