"""A node joins with the server's node token, as a second machine would: `pyk8s agent
--server URL --token "$(cat <data-dir>/node-token)"` and no kubeconfig.

One control plane (controllers and scheduler, no embedded agent) and one separate agent
process per module, both inside the test's network namespace. Checked: the node exchanges
the token for its own certificate through an auto-approved CSR, registers and becomes
Ready, the scheduler places a pod on it, `kubectl logs` reaches its kubelet (which answers
only clients with a certificate of the cluster CA), and a token whose CA pin
does not match makes the agent exit non-zero before it registers anything.
"""

from __future__ import annotations

import json
import os
import signal
import ssl
import subprocess
import sys
import urllib.error
from pathlib import Path

import pytest

from pyk8s.cluster.localcluster import LocalServer

from conftest import eventually, kubelet_get

KUBECTL = str(Path(sys.executable).with_name("kubectl"))
NODE = "joined-node"
POD_CIDR = "10.42.1.0/24"
pytestmark = pytest.mark.skipif(os.geteuid() != 0 or not Path("/usr/bin/containerd").exists(),
                                reason="needs root and containerd (scripts/install-node-deps.sh)")


class JoinedCluster:
    def __init__(self, server: LocalServer, base: Path):
        self.server = server
        self.agent_dir = base / "agent"
        self.agent_log = base / "agent.log"
        self.cache = base / "kube-cache"
        self.agent: subprocess.Popen | None = None

    def node_token(self) -> str:
        return (self.server.data_dir / "node-token").read_text().strip()

    def start_agent(self) -> None:
        log = open(self.agent_log, "ab")
        self.agent = subprocess.Popen(
            [sys.executable, "-m", "pyk8s", "agent", "--server", self.server.url, "--token", self.node_token(),
             "--data-dir", str(self.agent_dir), "--node-name", NODE, "--pod-cidr", POD_CIDR,
             "--kubelet-port", "0", "--remove-pods-on-exit"],
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        log.close()

    def stop_agent(self) -> None:
        if self.agent is not None:
            if self.agent.poll() is None:
                self.agent.send_signal(signal.SIGTERM)
                try:
                    self.agent.wait(60)
                except subprocess.TimeoutExpired:
                    self.agent.kill()
                    self.agent.wait()
            self.agent = None
        # Whatever the agent did not remove on its way out (containers, shims, containerd).
        subprocess.run([sys.executable, "-m", "pyk8s.kubelet.cleanup", str(self.agent_dir)],
                       check=False, capture_output=True, timeout=180)

    def kubectl(self, *args: str, check: bool = True, input: str | None = None) -> subprocess.CompletedProcess:
        result = subprocess.run([KUBECTL, "--kubeconfig", str(self.server.kubeconfig), "--cache-dir", str(self.cache),
                                 *args], capture_output=True, text=True, timeout=60, input=input)
        if check and result.returncode:
            raise AssertionError(f"kubectl {' '.join(args)}: {result.stderr}{result.stdout}")
        return result

    def get(self, kind: str, name: str, namespace: str = "default") -> dict | None:
        out = self.kubectl("get", kind, name, "-n", namespace, "-o", "json", "--ignore-not-found").stdout
        return json.loads(out) if out.strip() else None

    def wait_for(self, what, timeout: float = 90.0, interval: float = 0.2):
        """`eventually(what)`, but failing at once if the agent exits meanwhile."""
        return eventually(lambda: self.agent_running() and what(), timeout, interval=interval, context=self.log_tail)

    def agent_running(self) -> bool:
        """True, unless the agent was started and has exited: then an AssertionError with its log."""
        if self.agent is not None and self.agent.poll() is not None:
            raise AssertionError(f"the agent exited with {self.agent.returncode}:\n{self.log_tail()}")
        return True

    def log_tail(self) -> str:
        text = self.agent_log.read_text(errors="replace") if self.agent_log.exists() else ""
        return "\n".join(text.splitlines()[-30:])

    def node_ready(self) -> bool:
        node = self.get("node", NODE, namespace="")
        conditions = {c["type"]: c["status"] for c in (node or {}).get("status", {}).get("conditions", [])}
        return conditions.get("Ready") == "True"


@pytest.fixture(scope="module")
def joined(tmp_path_factory):
    base = tmp_path_factory.mktemp("token-join")
    server = LocalServer(base / "server", extra_args=["--disable-agent"])
    server.start()
    cluster = JoinedCluster(server, base)
    try:
        cluster.start_agent()
        cluster.wait_for(cluster.node_ready)
        yield cluster
    finally:
        try:
            cluster.kubectl("delete", "pods", "--all", "--grace-period=1", "--wait=false", check=False)
            if cluster.agent is not None and cluster.agent.poll() is None:
                cluster.wait_for(lambda: not json.loads(cluster.kubectl("get", "pods", "-o", "json").stdout)["items"],
                                 timeout=60)
        finally:
            cluster.stop_agent()
            server.stop()


def test_node_joined_with_the_token_runs_a_scheduled_pod_and_serves_its_logs(joined):
    node = joined.get("node", NODE, namespace="")
    assert node["spec"]["podCIDR"] == POD_CIDR
    body = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "joined-talker"},
            "spec": {"terminationGracePeriodSeconds": 1,
                     "containers": [{"name": "main", "image": "pyk8s/busybox:1.35",
                                     "command": ["sh", "-c", "echo hello from the joined node; sleep 3600"]}]}}
    joined.kubectl("create", "-f", "-", input=json.dumps(body))
    pod = joined.wait_for(lambda: (lambda p: p if (p or {}).get("status", {}).get("phase") == "Running" else None)(
        joined.get("pod", "joined-talker")))
    assert pod["spec"]["nodeName"] == NODE  # placed by the scheduler
    assert pod["status"]["podIP"].startswith("10.42.1.")
    logs = joined.wait_for(lambda: joined.kubectl("logs", "joined-talker", check=False).stdout)
    assert logs == "hello from the joined node\n"
    joined.kubectl("delete", "pod", "joined-talker", "--grace-period=1")


def test_joined_agent_runs_on_a_csr_issued_node_certificate(joined):
    """The token bought the node its own certificate: a CSR from the bootstrap user,
    auto-approved and issued, stored in the agent's data dir for restarts."""
    from cryptography import x509
    from cryptography.x509.oid import NameOID

    csrs = json.loads(joined.kubectl("get", "csr", "-o", "json").stdout)["items"]
    mine = [c for c in csrs if c["spec"]["signerName"] == "kubernetes.io/kube-apiserver-client-kubelet"
            and c["spec"]["username"].startswith("system:bootstrap:")]
    assert mine, csrs
    row = next(line for line in joined.kubectl("get", "csr").stdout.splitlines()
               if line.startswith(mine[0]["metadata"]["name"] + " "))
    assert row.split()[-1] == "Approved,Issued"
    stored = joined.agent_dir / "kubelet" / "pki" / "kubelet-client-current.pem"
    assert stored.stat().st_mode & 0o777 == 0o600
    certificate = x509.load_pem_x509_certificate(stored.read_bytes())
    assert certificate.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == f"system:node:{NODE}"
    assert [o.value for o in certificate.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)] == ["system:nodes"]
    # The node's Lease is held by the node identity, which NodeRestriction lets touch only its own.
    lease = joined.get("lease", NODE, namespace="kube-node-lease")
    assert lease["spec"]["holderIdentity"] == NODE


def test_joined_kubelet_answers_only_clients_with_a_cluster_certificate(joined):
    tls = joined.server.data_dir / "server" / "tls"
    assert kubelet_get(joined.get("node", NODE, namespace=""), "/healthz", (tls / "admin.crt", tls / "admin.key")) == "ok"
    with pytest.raises((ssl.SSLError, urllib.error.URLError, ConnectionError)):
        kubelet_get(joined.get("node", NODE, namespace=""), "/healthz", None)


def test_token_with_a_wrong_ca_hash_makes_the_agent_exit_without_registering(joined, tmp_path):
    credential = joined.node_token().split("::", 1)[1]
    wrong_pin = "K10" + "0" * 64 + "::" + credential
    intruder_dir = tmp_path / "intruder"
    result = subprocess.run(
        [sys.executable, "-m", "pyk8s", "agent", "--server", joined.server.url, "--token", wrong_pin,
         "--data-dir", str(intruder_dir), "--node-name", "intruder", "--kubelet-port", "0"],
        capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)
    assert result.returncode != 0
    assert "does not match the node token" in result.stderr
    assert credential not in result.stderr + result.stdout
    assert joined.get("node", "intruder", namespace="") is None
    assert not (intruder_dir / "containerd").exists()  # stopped before starting anything
