"""Debian's etcd for tests: one member or a cluster of several, on free loopback ports of the
test's network namespace, data in a temp dir, killed at teardown. Election timings are
shortened so a fresh member is ready in ~0.2 s and a lost leader is noticed in ~0.1 s."""

from __future__ import annotations

import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

ETCD = shutil.which("etcd") or "/usr/bin/etcd"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class EtcdMember:
    def __init__(self, name: str, data_dir: Path):
        self.name = name
        self.data_dir = data_dir
        self.client_port = free_port()
        self.peer_port = free_port()
        self.process: subprocess.Popen | None = None

    @property
    def client_url(self) -> str:
        return f"http://127.0.0.1:{self.client_port}"

    @property
    def peer_url(self) -> str:
        return f"http://127.0.0.1:{self.peer_port}"


class EtcdCluster:
    def __init__(self, directory: Path, members: int = 1, *, progress_interval: str = "1s"):
        self.directory = directory
        self.members = [EtcdMember(f"m{i}", directory / f"m{i}") for i in range(members)]
        self.progress_interval = progress_interval
        self.initial_cluster = ",".join(f"{m.name}={m.peer_url}" for m in self.members)

    @property
    def endpoints(self) -> str:
        """The --datastore value: etcd://H:P,H:P."""
        return "etcd://" + ",".join(f"127.0.0.1:{m.client_port}" for m in self.members)

    def start(self, timeout: float = 20.0) -> "EtcdCluster":
        for member in self.members:
            self.start_member(member)
        self.wait_healthy(timeout)
        return self

    def start_member(self, member: EtcdMember) -> None:
        member.data_dir.mkdir(parents=True, exist_ok=True)
        log = open(self.directory / f"{member.name}.log", "ab")
        member.process = subprocess.Popen(
            [ETCD, "--name", member.name, "--data-dir", str(member.data_dir),
             "--listen-client-urls", member.client_url, "--advertise-client-urls", member.client_url,
             "--listen-peer-urls", member.peer_url, "--initial-advertise-peer-urls", member.peer_url,
             "--initial-cluster", self.initial_cluster, "--initial-cluster-state", "new",
             "--heartbeat-interval", "10", "--election-timeout", "100",
             "--experimental-watch-progress-notify-interval", self.progress_interval,
             "--logger", "zap", "--log-level", "warn"],
            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        log.close()

    def wait_healthy(self, timeout: float = 20.0, members: list[EtcdMember] | None = None) -> None:
        deadline = time.monotonic() + timeout
        for member in members or [m for m in self.members if m.process is not None]:
            while True:
                result = subprocess.run(
                    ["etcdctl", "--endpoints", member.client_url, "--command-timeout", "1s", "endpoint", "health"],
                    capture_output=True, env={"ETCDCTL_API": "3", "PATH": "/usr/bin:/bin"})
                if result.returncode == 0:
                    break
                if member.process.poll() is not None:
                    raise RuntimeError(f"etcd {member.name} exited: {self.log_tail(member)}")
                if time.monotonic() > deadline:
                    raise TimeoutError(f"etcd {member.name} not healthy: {self.log_tail(member)}")
                time.sleep(0.02)

    def log_tail(self, member: EtcdMember) -> str:
        path = self.directory / f"{member.name}.log"
        return path.read_text(errors="replace")[-2000:] if path.exists() else ""

    def kill_member(self, member: EtcdMember) -> None:
        if member.process is not None and member.process.poll() is None:
            member.process.send_signal(signal.SIGKILL)
            member.process.wait()
        member.process = None

    def stop(self) -> None:
        for member in self.members:
            self.kill_member(member)
