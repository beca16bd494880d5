"""Isolated mode: `pyk8s up --isolated` / `--netns NAME` runs the server in its own network
namespace and a relay on this namespace's loopback lets plain `kubectl` (the merged user
kubeconfig) reach it; `down` stops the relay with the server, `reset` deletes the namespace.
`pyk8s server --netns NAME` runs the server itself inside NAME.

Each test uses a unique namespace name and a free port (never `pyk8s` / 6443, which a
user's own cluster may use), a private HOME (so the user's ~/.kube/config is never touched)
and no agent (the relay is what is tested; the node has its own tests).
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import uuid

import pytest

from pyk8s.cluster import daemon
from pyk8s.cluster.localcluster import free_port
from pyk8s.cluster.netns import delete_netns, netns_exists, netns_path

from conftest import KUBECTL


def _pyk8s(*args: str, env: dict, timeout: float = 90) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pyk8s", *args], capture_output=True, text=True, env=env,
                          timeout=timeout)


def _same_netns(pid: int, name: str) -> bool:
    inner, theirs = os.stat(netns_path(name)), os.stat(f"/proc/{pid}/ns/net")
    return (inner.st_dev, inner.st_ino) == (theirs.st_dev, theirs.st_ino)


def _refused(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
        return False
    except ConnectionRefusedError:
        return True


@pytest.fixture
def isolated_env(tmp_path):
    """A private HOME and a unique namespace name; whatever a test leaves is stopped and wiped."""
    netns = f"pyk8s-test-{uuid.uuid4().hex[:8]}"
    home = tmp_path / "home"
    home.mkdir()
    env = {key: value for key, value in os.environ.items() if key != "KUBECONFIG"}
    env["HOME"] = str(home)
    data_dir = tmp_path / "data"
    yield netns, data_dir, env
    _pyk8s("reset", "--yes", "--data-dir", str(data_dir), env=env)
    delete_netns(netns)


def test_up_isolated_serves_plain_kubectl_through_a_loopback_relay_until_down(isolated_env):
    netns, data_dir, env = isolated_env
    port = free_port()
    started = _pyk8s("up", "--netns", netns, "--https-port", str(port), "--data-dir", str(data_dir),
                     "--disable-agent", "--timeout", "60", env=env)
    assert started.returncode == 0, started.stderr + started.stdout

    state = json.loads((data_dir / daemon.STATE_FILE).read_text())
    assert state["netns"] == netns and state["relay_pid"]
    assert _same_netns(state["pid"], netns), "the server must run inside the namespace"
    assert not _same_netns(state["relay_pid"], netns), "the relay must listen in the host's namespace"

    # Plain kubectl: no --kubeconfig, the context `up` merged into $HOME/.kube/config.
    kubectl = [KUBECTL, "--cache-dir", str(data_dir / "kubectl-cache")]
    ready = subprocess.run([*kubectl, "get", "--raw", "/readyz"], capture_output=True, text=True, env=env, timeout=30)
    assert (ready.returncode, ready.stdout.strip()) == (0, "ok"), ready.stderr
    context = subprocess.run([*kubectl, "config", "current-context"], capture_output=True, text=True, env=env)
    assert context.stdout.strip() == "pyk8s"
    namespaces = subprocess.run([*kubectl, "get", "namespace", "default", "-o", "name"], capture_output=True,
                                text=True, env=env, timeout=30)
    assert namespaces.stdout.strip() == "namespace/default", namespaces.stderr

    stopped = _pyk8s("down", "--data-dir", str(data_dir), env=env)
    assert stopped.returncode == 0, stopped.stderr
    assert not daemon.process_is_running(state["relay_pid"])
    assert _refused(port), "after down nothing listens on the relay's port"

    wiped = _pyk8s("reset", "--yes", "--data-dir", str(data_dir), env=env)
    assert wiped.returncode == 0, wiped.stderr
    assert not netns_exists(netns)
    contexts = subprocess.run([*kubectl, "config", "get-contexts", "-o", "name"], capture_output=True, text=True,
                              env=env)
    assert "pyk8s" not in contexts.stdout.split()


def test_up_isolated_fails_clearly_when_the_relay_port_is_taken(isolated_env):
    netns, data_dir, env = isolated_env
    with socket.socket() as occupant:
        occupant.bind(("127.0.0.1", 0))
        occupant.listen()
        port = occupant.getsockname()[1]
        started = _pyk8s("up", "--netns", netns, "--https-port", str(port), "--data-dir", str(data_dir),
                         "--disable-agent", "--disable-controllers", "--timeout", "60", env=env)
    assert started.returncode == 1
    assert "relay" in started.stderr and "address already in use" in started.stderr.lower()


def test_server_with_netns_runs_inside_that_namespace_and_creates_it(tmp_path):
    netns = f"pyk8s-test-{uuid.uuid4().hex[:8]}"
    data_dir = tmp_path / "data"
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "pyk8s", "server", "--netns", netns, "--data-dir", str(data_dir),
         "--https-port", str(port), "--disable-agent", "--disable-controllers"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL)
    try:
        state = daemon.ServerState(pid=process.pid, url=f"https://127.0.0.1:{port}", data_dir=str(data_dir),
                                   netns=netns)
        deadline = time.monotonic() + 30
        while not (state.kubeconfig.exists() and daemon.probe_ready(state)):
            assert process.poll() is None, f"server exited with {process.returncode}"
            assert time.monotonic() < deadline, "server in the namespace not ready within 30 s"
            time.sleep(0.1)
        # nsenter execs the server: this very pid runs inside the namespace, bound to its loopback.
        assert _same_netns(process.pid, netns)
        assert _refused(port), "the server must not listen in the caller's namespace"
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        delete_netns(netns)
