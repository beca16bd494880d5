"""Test-wide setup: the whole test run lives in its own network namespace.

Before any test runs, the pytest process unshares into a fresh network namespace with only
loopback up, so every server, kubectl and client the tests start can reach nothing but
127.0.0.0/8 inside it. The namespace dies with the process: nothing to clean up.
"""

from __future__ import annotations

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
