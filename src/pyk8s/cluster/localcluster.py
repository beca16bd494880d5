"""Running throw-away servers for tests and benchmarks.

`isolate_network()` moves the calling process (and every child it starts later) into a
new, empty network namespace with only loopback up (and the route for the service CIDR
every namespace pyk8s creates gets: see cluster/netns.py): nothing it starts can reach the
machine's real interfaces, and the namespace disappears with its last process, so there
is nothing to clean up. `LocalServer` starts `pyk8s server` as a child process on a
temporary data dir and waits until it answers /readyz.
"""

from __future__ import annotations

import ctypes
import os
import signal
import socket
import ssl
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from pyk8s.client.kubeconfig import server_url_and_ssl_context
from pyk8s.cluster.netns import DEFAULT_SERVICE_CIDR, SERVICE_ROUTE_DEVICE, SERVICE_ROUTE_PEER, add_service_route

CLONE_NEWNET = 0x40000000


def isolate_network(service_cidr: str = DEFAULT_SERVICE_CIDR) -> None:
    """unshare(CLONE_NEWNET) for this process, then bring loopback up and route the service
    CIDR. Call it before any thread is started (a namespace change applies to the calling
    thread only)."""
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.unshare(CLONE_NEWNET) != 0:
        errno = ctypes.get_errno()
        raise OSError(errno, f"unshare(CLONE_NEWNET) failed: {os.strerror(errno)}")
    subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
    add_service_route(service_cidr)


def in_isolated_network() -> bool:
    """True when the only interfaces are loopback and the service route's veth pair (what
    isolate_network() leaves)."""
    names = sorted(name for _, name in socket.if_nameindex())
    return names == ["lo"] or names == sorted(["lo", SERVICE_ROUTE_DEVICE, SERVICE_ROUTE_PEER])


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class LocalServer:
    """A `pyk8s server` child process bound to 127.0.0.1 on a free port."""

    def __init__(self, data_dir: Path, *, port: int | None = None, extra_args: list[str] | None = None):
        self.data_dir = Path(data_dir)
        self.port = port or free_port()
        self.extra_args = extra_args or []
        self.process: subprocess.Popen | None = None
        self.log_path = self.data_dir / "server.log"

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    @property
    def kubeconfig(self) -> Path:
        return self.data_dir / "kubeconfig.yaml"

    def start(self, timeout: float = 30.0) -> "LocalServer":
        self.data_dir.mkdir(parents=True, exist_ok=True)
        log = open(self.log_path, "ab")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "pyk8s", "server", "--data-dir", str(self.data_dir),
             "--bind-address", "127.0.0.1", "--https-port", str(self.port), *self.extra_args],
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        log.close()
        self.wait_ready(timeout)
        return self

    def ssl_context(self) -> ssl.SSLContext:
        return server_url_and_ssl_context(self.kubeconfig)[1]

    def wait_ready(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        last_error: Exception | None = None
        while time.monotonic() < deadline:
            if self.process is not None and self.process.poll() is not None:
                raise RuntimeError(f"pyk8s server exited with {self.process.returncode}:\n{self.log_tail()}")
            if self.kubeconfig.exists():
                try:
                    with urllib.request.urlopen(f"{self.url}/readyz", context=self.ssl_context(), timeout=2) as reply:
                        if reply.status == 200:
                            return
                except Exception as exc:  # not up yet
                    last_error = exc
            time.sleep(0.05)
        raise TimeoutError(f"pyk8s server not ready after {timeout}s ({last_error}):\n{self.log_tail()}")

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def stop(self, *, kill: bool = False, timeout: float = 15.0, remove_pods: bool = False) -> int | None:
        """SIGTERM (or SIGKILL) the server. Pods outlive it, as they outlive a kubelet
        restart; `remove_pods` then ends them and everything their node left behind."""
        if self.process is None:
            if remove_pods:
                self.remove_pods()
            return None
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL if kill else signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        code = self.process.returncode
        self.process = None
        if remove_pods:
            self.remove_pods()
        return code

    def remove_pods(self) -> None:
        subprocess.run([sys.executable, "-m", "pyk8s.kubelet.cleanup", str(self.data_dir / "agent")],
                       check=False, capture_output=True, timeout=180)

    def __enter__(self) -> "LocalServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
