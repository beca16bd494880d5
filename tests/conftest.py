"""Test-wide setup: the whole test run lives in its own network namespace.

Before any test runs, the pytest process unshares into a fresh network namespace with only
loopback up, so every server, kubectl and client the tests start can reach nothing but
127.0.0.0/8 inside it. The namespace dies with the process: nothing to clean up.
"""

from __future__ import annotations

import asyncio
import inspect
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from pyk8s.cluster.localcluster import LocalServer, in_isolated_network, isolate_network

REPO = Path(__file__).resolve().parents[1]
KUBECTL = str(Path(sys.executable).with_name("kubectl"))


def pytest_configure(config):
    if not in_isolated_network():
        if os.geteuid() != 0:
            raise pytest.UsageError("the test suite needs root to create its network namespace")
        isolate_network()


class Kubectl:
    """Runs the real kubectl against one server with its own discovery cache."""

    def __init__(self, server: LocalServer, cache_dir: Path):
        self.server = server
        self.cache_dir = cache_dir

    def run(self, *args: str, input: str | None = None, check: bool = True, timeout: float = 60) -> subprocess.CompletedProcess:
        command = [KUBECTL, "--kubeconfig", str(self.server.kubeconfig), "--cache-dir", str(self.cache_dir), *args]
        result = subprocess.run(command, input=input, capture_output=True, text=True, timeout=timeout)
        if check and result.returncode != 0:
            raise AssertionError(f"kubectl {' '.join(args)} failed ({result.returncode}):\n{result.stderr}{result.stdout}")
        return result

    def __call__(self, *args: str, **kwargs) -> str:
        return self.run(*args, **kwargs).stdout


def eventually(check, timeout: float = 20.0, *, what: str = "condition", interval: float = 0.1, context=None):
    """Calls `check()` every `interval` seconds and returns its first truthy value.

    `check()` runs at least once, and once more after `timeout` has passed, before the wait
    fails with an AssertionError naming `what`, the timeout, the last value and, when given,
    what `context()` returns (a log tail, say). An exception from `check()` ends the wait.
    """
    done = _until(timeout, what, context)
    while not done(last := check()):
        time.sleep(interval)
    return last


async def eventually_async(check, timeout: float = 20.0, *, what: str = "condition", interval: float = 0.1,
                           context=None):
    """`eventually` inside an event loop: what `check()` returns is awaited when it is
    awaitable, and the loop keeps running between calls (asyncio.sleep)."""
    done = _until(timeout, what, context)
    while not done(last := await _resolved(check())):
        await asyncio.sleep(interval)
    return last


def _until(timeout: float, what: str, context):
    """`done(value)`: True for a truthy value, False before the deadline, an AssertionError after it."""
    deadline = time.monotonic() + timeout

    def done(value) -> bool:
        if value:
            return True
        if time.monotonic() < deadline:
            return False
        message = f"timed out after {timeout}s waiting for {what}; last value: {value!r}"
        raise AssertionError(f"{message}\n{context()}" if context is not None else message)
    return done


async def _resolved(value):
    return await value if inspect.isawaitable(value) else value


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """A pyk8s control plane (SQLite in a temp dir, controllers, scheduler) with no node,
    for one test module: pods are scheduled nowhere and stay Pending."""
    data_dir = tmp_path_factory.mktemp("server")
    local = LocalServer(data_dir, extra_args=["--disable-agent"])
    local.start()
    yield local
    local.stop()


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """A single-node cluster as `pyk8s server` runs it: control plane plus the embedded
    agent (containerd, real pods), for one test module."""
    data_dir = tmp_path_factory.mktemp("cluster")
    local = LocalServer(data_dir)
    local.start(timeout=120)
    yield local
    remove_every_pod(local, data_dir / "teardown-cache")
    # Whatever a test left behind (a pod stuck terminating, a crashed agent) ends too.
    local.stop(timeout=60, remove_pods=True)


def remove_every_pod(server: LocalServer, cache_dir: Path) -> None:
    """Pods outlive `pyk8s server` (as they outlive a kubelet restart), so a test cluster
    removes them before it stops: no container, shim or mount is left behind."""
    kubectl = Kubectl(server, cache_dir)
    kubectl.run("delete", "deployments,replicasets,daemonsets,statefulsets,jobs,cronjobs,replicationcontrollers",
                "--all", "-A", "--wait=false", check=False)
    # Not --force: a graceful delete is finished by the kubelet, after it has stopped the
    # containers and removed the sandbox.
    kubectl.run("delete", "pods", "--all", "-A", "--grace-period=1", "--wait=false", check=False)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if not kubectl.run("get", "pods", "-A", "-o", "name", check=False).stdout.split():
            return
        time.sleep(0.3)


@pytest.fixture
def kubectl(server, tmp_path):
    return Kubectl(server, tmp_path / "kube-cache")


@pytest.fixture(scope="module")
def api_client(server):
    """The official `kubernetes` Python client configured from the server's kubeconfig."""
    from kubernetes import client, config

    configuration = client.Configuration()
    config.load_kube_config(config_file=str(server.kubeconfig), client_configuration=configuration)
    with client.ApiClient(configuration) as api:
        yield api


def kubelet_get(node: dict, path: str, cert: tuple[Path, Path] | None) -> str:
    """GET `path` from the kubelet of a Node object (its InternalIP and kubelet port), with
    the client certificate `cert` (cert, key) or none. The kubelet's serving certificate is
    self-signed, so it is not verified."""
    import ssl
    import urllib.request

    status = node["status"]
    address = next(a["address"] for a in status["addresses"] if a["type"] == "InternalIP")
    port = status["daemonEndpoints"]["kubeletEndpoint"]["Port"]
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    if cert is not None:
        context.load_cert_chain(str(cert[0]), str(cert[1]))
    with urllib.request.urlopen(f"https://{address}:{port}{path}", context=context, timeout=10) as reply:
        return reply.read().decode()
