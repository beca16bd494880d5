"""Into the pod: kubectl exec (-i, -t), attach, run -it --rm, cp and port-forward through the
API server to the node's kubelet and containerd, with the real kubectl and real pods.

kubectl speaks WebSocket v5 (exec/attach) and the `SPDY/3.1+portforward.k8s.io` tunnel first;
the `*_WEBSOCKETS=false` variants check the plain SPDY path older clients use. Interactive
sessions run kubectl on a pseudo-terminal driven from the test.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import re
import select
import signal
import socket
import struct
import subprocess
import termios
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from conftest import KUBECTL, Kubectl

BUSYBOX = "pyk8s/busybox:1.35"
pytestmark = pytest.mark.skipif(os.geteuid() != 0 or not Path("/usr/bin/containerd").exists(),
                                reason="needs root and containerd")


@pytest.fixture(scope="module")
def kubectl(cluster, tmp_path_factory):
    kubectl = Kubectl(cluster, tmp_path_factory.mktemp("kube-cache"))
    kubectl("wait", "--for=condition=Ready", "node", "--all", "--timeout=90s")
    return kubectl


@pytest.fixture(scope="module")
def box(kubectl):
    """A long-running pod with two containers."""
    manifest = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "box", "labels": {"app": "box"}},
                "spec": {"terminationGracePeriodSeconds": 1, "containers": [
                    {"name": "main", "image": BUSYBOX, "command": ["sleep", "3600"]},
                    {"name": "side", "image": BUSYBOX, "command": ["sh", "-c", "echo side > /tmp/who; sleep 3600"]}]}}
    kubectl("apply", "-f", "-", input=json.dumps(manifest))
    kubectl("wait", "--for=condition=Ready", "pod/box", "--timeout=90s")
    yield "box"
    kubectl("delete", "pod", "box", "--wait=false")


@pytest.fixture(scope="module")
def web(kubectl):
    """A deployment serving a 4 MiB random file on two ports, behind a service."""
    script = ("mkdir -p /www && head -c 4194304 /dev/urandom > /www/blob && md5sum /www/blob > /www/blob.md5 && "
              "echo hello > /www/index.html && httpd -p 8081 -h /www && exec httpd -f -p 8080 -h /www")
    kubectl("create", "deployment", "web", f"--image={BUSYBOX}", "--port=8080", "--", "sh", "-c", script)
    kubectl("expose", "deployment", "web", "--port=80", "--target-port=8080")
    kubectl("rollout", "status", "deployment/web", "--timeout=90s")
    pod = json.loads(kubectl("get", "pods", "-l", "app=web", "-o", "json"))["items"][0]["metadata"]["name"]
    wait_for(lambda: kubectl.run("exec", pod, "--", "test", "-s", "/www/blob.md5", check=False).returncode == 0)
    yield pod
    kubectl("delete", "service", "web")
    kubectl("delete", "deployment", "web")


def wait_for(predicate, timeout: float = 60.0, interval: float = 0.1):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(interval)


def kubectl_command(kubectl: Kubectl, *args: str) -> list[str]:
    return [KUBECTL, "--kubeconfig", str(kubectl.server.kubeconfig), "--cache-dir", str(kubectl.cache_dir), *args]


def run_env(kubectl: Kubectl, env: dict[str, str], *args: str, input: bytes | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(kubectl_command(kubectl, *args), input=input, capture_output=True, timeout=60,
                          env={**os.environ, **env})


class Terminal:
    """kubectl on a pseudo-terminal: type lines, read until some text shows."""

    def __init__(self, command: list[str], rows: int = 30, columns: int = 100):
        self.master, slave = os.openpty()
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", rows, columns, 0, 0))
        self.process = subprocess.Popen(command, stdin=slave, stdout=slave, stderr=slave, start_new_session=True,
                                        preexec_fn=lambda: fcntl.ioctl(0, termios.TIOCSCTTY, 0))
        os.close(slave)
        self.output = b""

    def read_until(self, pattern: bytes, timeout: float = 30.0) -> bytes:
        deadline = time.monotonic() + timeout
        while pattern not in self.output:
            ready, _, _ = select.select([self.master], [], [], max(0.0, deadline - time.monotonic()))
            if not ready:
                raise AssertionError(f"no {pattern!r} on the terminal; it shows {self.output[-400:]!r}")
            try:
                chunk = os.read(self.master, 65536)
            except OSError:
                chunk = b""
            if not chunk:
                raise AssertionError(f"terminal closed before {pattern!r}; it showed {self.output[-400:]!r}")
            self.output += chunk
        return self.output

    def type(self, line: str) -> None:
        os.write(self.master, line.encode() + b"\r")

    def resize(self, rows: int, columns: int) -> None:
        fcntl.ioctl(self.master, termios.TIOCSWINSZ, struct.pack("HHHH", rows, columns, 0, 0))
        self.process.send_signal(signal.SIGWINCH)

    def wait(self, timeout: float = 30.0) -> int:
        """kubectl's exit status, after reading what it still printed."""
        deadline = time.monotonic() + timeout
        try:
            while time.monotonic() < deadline:
                ready, _, _ = select.select([self.master], [], [], max(0.0, deadline - time.monotonic()))
                try:
                    chunk = os.read(self.master, 65536) if ready else b""
                except OSError:  # EIO: kubectl closed the terminal
                    chunk = b""
                if not chunk:
                    break
                self.output += chunk
            return self.process.wait(timeout=max(1.0, deadline - time.monotonic()))
        finally:
            os.close(self.master)


# ---------------------------------------------------------------- exec

def test_exec_returns_stdout_stderr_and_the_exit_code(kubectl, box):
    result = kubectl.run("exec", box, "--", "sh", "-c", "echo to-out; echo to-err >&2; exit 3", check=False)
    assert result.returncode == 3
    assert result.stdout == "to-out\n"
    assert "to-err\n" in result.stderr
    assert "command terminated with exit code 3" in result.stderr
    assert kubectl.run("exec", box, "--", "true").returncode == 0


def test_kubectl_negotiates_websocket_v5_without_falling_back(kubectl, box):
    result = kubectl.run("exec", box, "-v=6", "--", "true")
    assert 'Subprotocol negotiated" protocol="v5.channel.k8s.io"' in result.stderr
    assert "fallback" not in result.stderr.lower()


def test_exec_stdin_is_delivered_whole_and_its_eof_ends_the_command(kubectl, box):
    payload = os.urandom(3 * 1024 * 1024)
    result = run_env(kubectl, {}, "exec", "-i", box, "--", "sh", "-c", "cat > /tmp/in; md5sum /tmp/in", input=payload)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split()[0].decode() == hashlib.md5(payload).hexdigest()


def test_exec_large_output_arrives_intact(kubectl, box):
    kubectl("exec", box, "--", "sh", "-c", "head -c 8000000 /dev/urandom > /tmp/out")
    expected = kubectl("exec", box, "--", "md5sum", "/tmp/out").split()[0]
    result = run_env(kubectl, {}, "exec", box, "--", "cat", "/tmp/out")
    assert len(result.stdout) == 8000000
    assert hashlib.md5(result.stdout).hexdigest() == expected


def test_exec_chooses_the_container_with_c_and_resolves_deploy_and_svc_targets(kubectl, box, web):
    assert kubectl("exec", box, "-c", "side", "--", "cat", "/tmp/who") == "side\n"
    assert kubectl.run("exec", box, "--", "cat", "/tmp/who", check=False).returncode != 0  # main has no file
    assert kubectl("exec", "deploy/web", "--", "cat", "/www/index.html") == "hello\n"
    assert kubectl("exec", "svc/web", "--", "cat", "/www/index.html") == "hello\n"


def test_exec_errors_read_as_upstream(kubectl, box):
    unknown = kubectl.run("exec", box, "-c", "nope", "--", "true", check=False)
    assert unknown.returncode != 0
    assert "container nope is not valid for pod box" in unknown.stderr
    kubectl("run", "done", f"--image={BUSYBOX}", "--restart=Never", "--", "true")
    wait_for(lambda: kubectl("get", "pod", "done", "-o", "jsonpath={.status.phase}") == "Succeeded")
    completed = kubectl.run("exec", "done", "--", "true", check=False)
    assert completed.returncode != 0
    assert "cannot exec into a container in a completed pod; current phase is Succeeded" in completed.stderr
    kubectl("delete", "pod", "done", "--wait=false")


def test_many_concurrent_execs_each_get_their_own_output(kubectl, box):
    def one(index: int) -> tuple[int, str]:
        result = kubectl.run("exec", box, "--", "sh", "-c", f"echo {index}; exit {index % 4}", check=False)
        return result.returncode, result.stdout
    with ThreadPoolExecutor(16) as pool:
        results = list(pool.map(one, range(32)))
    assert results == [(index % 4, f"{index}\n") for index in range(32)]


def test_interactive_shell_on_a_tty_runs_commands_and_sees_window_resizes(kubectl, box):
    terminal = Terminal(kubectl_command(kubectl, "exec", "-it", box, "--", "sh"), rows=30, columns=100)
    terminal.read_until(b"# ")
    terminal.type("stty size; echo $((6*7))")
    terminal.read_until(b"42\r\n")
    assert b"30 100" in terminal.output
    terminal.resize(40, 120)

    def resized() -> bool:
        terminal.output = b""
        terminal.type("stty size")
        terminal.read_until(b"# ")
        return b"40 120" in terminal.output
    wait_for(resized, timeout=20)
    terminal.type("exit 5")
    assert terminal.wait() == 5


def test_exec_over_spdy_for_clients_without_websockets(kubectl, box):
    env = {"KUBECTL_REMOTE_COMMAND_WEBSOCKETS": "false"}
    result = run_env(kubectl, env, "exec", "-i", box, "-v=6", "--", "sh", "-c", "cat; exit 7", input=b"via spdy\n")
    assert result.returncode == 7
    assert result.stdout == b"via spdy\n"
    assert b"command terminated with exit code 7" in result.stderr
    assert b"v5.channel.k8s.io" not in result.stderr


def test_python_client_stream_exec_over_websocket(cluster, box):
    from kubernetes import client, config
    from kubernetes.stream import stream

    configuration = client.Configuration()
    config.load_kube_config(config_file=str(cluster.kubeconfig), client_configuration=configuration)
    with client.ApiClient(configuration) as api:
        core = client.CoreV1Api(api)
        out = stream(core.connect_get_namespaced_pod_exec, box, "default", command=["sh", "-c", "echo from-python"],
                     stdout=True, stderr=True, stdin=False, tty=False)
        assert out == "from-python\n"
        session = stream(core.connect_get_namespaced_pod_exec, box, "default", command=["sh", "-c", "exit 9"],
                         stdout=True, stderr=True, stdin=False, tty=False, _preload_content=False)
        session.run_forever(timeout=30)
        assert session.returncode == 9


# ---------------------------------------------------------------- cp

def test_cp_copies_files_and_directories_both_ways(kubectl, box, tmp_path):
    source = tmp_path / "tree"
    (source / "sub").mkdir(parents=True)
    (source / "a.txt").write_text("alpha\n")
    blob = os.urandom(2 * 1024 * 1024)
    (source / "sub" / "blob.bin").write_bytes(blob)
    kubectl("cp", str(source), f"{box}:/tmp/tree")
    assert kubectl("exec", box, "--", "cat", "/tmp/tree/a.txt") == "alpha\n"
    assert kubectl("exec", box, "--", "md5sum", "/tmp/tree/sub/blob.bin").split()[0] == hashlib.md5(blob).hexdigest()

    back = tmp_path / "back"
    kubectl("cp", f"{box}:/tmp/tree", str(back))
    assert (back / "a.txt").read_text() == "alpha\n"
    assert (back / "sub" / "blob.bin").read_bytes() == blob

    kubectl("cp", f"{box}:/tmp/tree/a.txt", str(tmp_path / "single.txt"))
    assert (tmp_path / "single.txt").read_text() == "alpha\n"
    kubectl("cp", str(tmp_path / "single.txt"), f"{box}:/tmp/single.txt", "-c", "side")
    assert kubectl("exec", box, "-c", "side", "--", "cat", "/tmp/single.txt") == "alpha\n"


# ---------------------------------------------------------------- port-forward

class PortForward:
    """`kubectl port-forward TARGET :PORT ...` with its local ports read from its output."""

    def __init__(self, kubectl: Kubectl, target: str, *remote_ports: int, env: dict[str, str] | None = None):
        args = ["port-forward", "--address=127.0.0.1", target, *(f":{port}" for port in remote_ports)]
        self.process = subprocess.Popen(kubectl_command(kubectl, *args), stdout=subprocess.PIPE,
                                        stderr=subprocess.PIPE, env={**os.environ, **(env or {})})
        printed = ""
        deadline = time.monotonic() + 30
        # One line per requested port, in order (a svc port shows its target port).
        pattern = re.compile(r"Forwarding from 127\.0\.0\.1:(\d+) -> \d+")
        while len(pattern.findall(printed)) < len(remote_ports):
            ready, _, _ = select.select([self.process.stdout], [], [], max(0.0, deadline - time.monotonic()))
            chunk = os.read(self.process.stdout.fileno(), 4096) if ready else b""
            if not chunk:
                stderr = self.stop()
                raise AssertionError(f"port-forward did not start: {printed}{stderr}")
            printed += chunk.decode()
        local_ports = [int(port) for port in pattern.findall(printed)]
        self.local = dict(zip(remote_ports, local_ports))

    def get(self, remote_port: int, path: str) -> bytes:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.local[remote_port]}{path}", timeout=30) as reply:
            return reply.read()

    def stop(self) -> str:
        self.process.terminate()
        try:
            _, stderr = self.process.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            _, stderr = self.process.communicate()
        return stderr.decode()


def expected_blob_md5(kubectl: Kubectl, pod: str) -> str:
    return kubectl("exec", pod, "--", "cat", "/www/blob.md5").split()[0]


def test_port_forward_to_pod_deploy_and_svc_carries_long_transfers_intact(kubectl, web):
    checksum = expected_blob_md5(kubectl, web)
    for target, port in ((f"pod/{web}", 8080), ("deploy/web", 8080), ("svc/web", 80)):
        forward = PortForward(kubectl, target, port)  # svc port 80 maps to the pod's 8080
        try:
            assert forward.get(port, "/index.html") == b"hello\n"
            assert hashlib.md5(forward.get(port, "/blob")).hexdigest() == checksum
        finally:
            forward.stop()


def test_port_forward_serves_several_ports_and_many_connections(kubectl, web):
    forward = PortForward(kubectl, f"pod/{web}", 8080, 8081)
    try:
        with ThreadPoolExecutor(12) as pool:
            pages = list(pool.map(lambda i: forward.get(8080 + i % 2, "/index.html"), range(40)))
        assert pages == [b"hello\n"] * 40
    finally:
        forward.stop()


def test_port_forward_to_a_port_without_listener_reports_the_refusal(kubectl, web):
    forward = PortForward(kubectl, f"pod/{web}", 9999)
    with pytest.raises(OSError):
        forward.get(9999, "/")
    stderr = forward.stop()
    assert "error forwarding port 9999" in stderr and "connection refused" in stderr


def test_port_forward_over_plain_spdy(kubectl, web):
    checksum = expected_blob_md5(kubectl, web)
    forward = PortForward(kubectl, f"pod/{web}", 8080, env={"KUBECTL_PORT_FORWARD_WEBSOCKETS": "false"})
    try:
        assert hashlib.md5(forward.get(8080, "/blob")).hexdigest() == checksum
    finally:
        forward.stop()


class Forwarded:
    """One TCP connection to a local port kubectl forwards."""

    def __init__(self, local_port: int):
        self.sock = socket.create_connection(("127.0.0.1", local_port), timeout=60)

    def exchange(self, payload: bytes) -> bytes:
        """Send everything, half-close, read until the pod's side ends."""
        with self.sock:
            self.sock.sendall(payload)
            self.sock.shutdown(socket.SHUT_WR)
            reply = b""
            while chunk := self.sock.recv(1 << 20):
                reply += chunk
            return reply


@pytest.fixture(scope="module")
def md5_server(kubectl):
    """A pod answering each connection on port 7000 with the md5 of what it received, once
    the client has half-closed (busybox nc runs md5sum on the connection)."""
    script = 'printf "#!/bin/sh\\nexec md5sum\\n" > /md5; chmod +x /md5; exec nc -ll -p 7000 -e /md5'
    kubectl("run", "md5", f"--image={BUSYBOX}", "--restart=Never",
            "--overrides", json.dumps({"spec": {"terminationGracePeriodSeconds": 1}}), "--", "sh", "-c", script)
    kubectl("wait", "--for=condition=Ready", "pod/md5", "--timeout=90s")
    yield "md5"
    kubectl("delete", "pod", "md5", "--wait=false")


def sockets_in_other_network_namespaces(pid: int) -> set[str]:
    """The process's open sockets that are not in its own network namespace (those it holds
    in pods' namespaces): every socket inode in /proc/PID/fd minus those its namespace lists."""
    own = set()
    for table in ("tcp", "tcp6", "udp", "udp6", "raw", "raw6", "unix", "netlink", "packet"):
        try:
            lines = Path(f"/proc/{pid}/net/{table}").read_text().splitlines()[1:]
        except OSError:
            continue
        column = {"unix": 6, "netlink": -1, "packet": -1}.get(table, 9)
        own.update(line.split()[column] for line in lines if line.split())
    held = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target.startswith("socket:["):
            held.add(target[len("socket:["):-1])
    return held - own


@pytest.mark.parametrize("websockets", ["true", "false"], ids=["websocket-tunnel", "spdy"])
def test_port_forward_uploads_arrive_whole_and_a_half_close_reaches_the_pod(kubectl, md5_server, websockets):
    forward = PortForward(kubectl, f"pod/{md5_server}", 7000, env={"KUBECTL_PORT_FORWARD_WEBSOCKETS": websockets})
    try:
        for size in (0, 1, 24 * 1024 * 1024 + 7):
            payload = os.urandom(size)
            reply = Forwarded(forward.local[7000]).exchange(payload)
            assert reply.split()[0].decode() == hashlib.md5(payload).hexdigest(), size
    finally:
        forward.stop()


def test_port_forward_carries_concurrent_long_transfers_both_ways_on_one_session(kubectl, web, md5_server):
    checksum = expected_blob_md5(kubectl, web)
    downloads = PortForward(kubectl, f"pod/{web}", 8080)
    uploads = PortForward(kubectl, f"pod/{md5_server}", 7000)
    try:
        def download(_) -> str:
            return hashlib.md5(downloads.get(8080, "/blob")).hexdigest()

        def upload(index: int) -> bool:
            payload = os.urandom(3 * 1024 * 1024 + index)
            reply = Forwarded(uploads.local[7000]).exchange(payload)
            return reply.split()[0].decode() == hashlib.md5(payload).hexdigest()
        with ThreadPoolExecutor(12) as pool:
            got = list(pool.map(download, range(8)))
            sent = list(pool.map(upload, range(8)))
        assert got == [checksum] * 8
        assert sent == [True] * 8
    finally:
        downloads.stop()
        uploads.stop()


def test_port_forward_streams_without_a_port_are_reset_and_pairs_match_by_request_id(cluster, web):
    """The SPDY session itself, as client-go's portforward drives it: error and data streams
    of several requests interleaved, a stream kubectl would never open, a ping."""
    import asyncio
    import ssl as ssl_module

    from pyk8s.spdy import CANCEL, PING, SpdySession, control_frame

    async def session() -> None:
        context = cluster.ssl_context()
        context.verify_mode, context.check_hostname = ssl_module.CERT_REQUIRED, False
        reader, writer = await asyncio.open_connection("127.0.0.1", cluster.port, ssl=context)
        writer.write(f"POST /api/v1/namespaces/default/pods/{web}/portforward HTTP/1.1\r\nHost: x\r\n"
                     "Connection: Upgrade\r\nUpgrade: SPDY/3.1\r\nX-Stream-Protocol-Version: portforward.k8s.io\r\n\r\n"
                     .encode())
        head = await reader.readuntil(b"\r\n\r\n")
        assert b" 101 " in head and b"portforward.k8s.io" in head
        spdy = SpdySession(reader, writer)
        nameless = spdy.open_stream({"streamtype": "data", "requestid": "9"})  # no port
        errors = {rid: spdy.open_stream({"streamtype": "error", "port": port, "requestid": rid})
                  for rid, port in (("a", "8080"), ("b", "8081"))}
        data = {rid: spdy.open_stream({"streamtype": "data", "port": port, "requestid": rid})
                for rid, port in (("b", "8081"), ("a", "8080"))}
        for rid in ("a", "b"):
            spdy.send_data(data[rid], f"GET /index.html?{rid} HTTP/1.0\r\n\r\n".encode(), fin=True)
        writer.write(control_frame(PING, 0, (7).to_bytes(4, "big")))
        replies, bodies, finished, events = set(), {rid: b"" for rid in data}, set(), []
        by_stream = {stream: rid for rid, stream in data.items()}
        async for kind, stream, payload, fin in spdy.frames():
            events.append((kind, stream))
            if kind == "reply":
                replies.add(stream)
            elif kind == "data" and stream in by_stream:
                bodies[by_stream[stream]] += payload
            elif kind == "reset":
                assert (stream, payload) == (nameless, CANCEL)
            if fin:
                finished.add(stream)
            if finished >= set(data.values()) | set(errors.values()) and ("ping", 0) in events:
                break
        writer.close()
        assert ("reset", nameless) in events and nameless not in replies
        assert replies == set(data.values()) | set(errors.values())
        for rid in ("a", "b"):
            assert bodies[rid].startswith(b"HTTP/1.") and bodies[rid].endswith(b"\r\n\r\nhello\n"), bodies[rid]

    asyncio.run(asyncio.wait_for(session(), 60))


def test_port_forward_connections_end_when_the_pod_is_deleted(kubectl, cluster):
    """The pod's end closes what was forwarded to it and leaves no socket in its (gone)
    network namespace; a later connection gets upstream's error and kubectl gives up."""
    script = ('printf "#!/bin/sh\\nwhile true; do head -c 65536 /dev/zero; sleep 0.05; done\\n" > /s; chmod +x /s; '
              'exec nc -ll -p 7001 -e /s')
    kubectl("run", "ephemeral", f"--image={BUSYBOX}", "--restart=Never",
            "--overrides", json.dumps({"spec": {"terminationGracePeriodSeconds": 1}}), "--", "sh", "-c", script)
    kubectl("wait", "--for=condition=Ready", "pod/ephemeral", "--timeout=90s")
    server_pid = cluster.process.pid
    assert not sockets_in_other_network_namespaces(server_pid)
    forward = PortForward(kubectl, "pod/ephemeral", 7001)
    try:
        streaming = socket.create_connection(("127.0.0.1", forward.local[7001]), timeout=60)
        received = 0
        while received < 256 * 1024:
            received += len(streaming.recv(65536))
        assert len(sockets_in_other_network_namespaces(server_pid)) == 1  # the kubelet's connection in the pod
        kubectl("delete", "pod", "ephemeral", "--wait=false")
        deadline = time.monotonic() + 60
        with streaming:
            try:
                while streaming.recv(65536):
                    assert time.monotonic() < deadline, "the forwarded connection outlived its pod"
            except ConnectionResetError:
                pass
        wait_for(lambda: not sockets_in_other_network_namespaces(server_pid), timeout=30)
        with socket.create_connection(("127.0.0.1", forward.local[7001]), timeout=30) as late:
            assert late.recv(65536) == b""
        assert forward.process.wait(timeout=30) != 0
    finally:
        stderr = forward.stop()
        kubectl("delete", "pod", "ephemeral", "--ignore-not-found", "--wait=false")
    assert "error forwarding port 7001" in stderr and "lost connection to pod" in stderr


# ---------------------------------------------------------------- attach and run -it --rm

def test_attach_reaches_the_main_process_of_a_tty_container(kubectl):
    manifest = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "shell"},
                "spec": {"terminationGracePeriodSeconds": 1, "containers": [
                    {"name": "shell", "image": BUSYBOX, "command": ["sh"], "stdin": True, "tty": True}]}}
    kubectl("apply", "-f", "-", input=json.dumps(manifest))
    kubectl("wait", "--for=condition=Ready", "pod/shell", "--timeout=90s")
    try:
        terminal = Terminal(kubectl_command(kubectl, "attach", "-it", "shell"))
        terminal.type("")
        terminal.read_until(b"# ")
        terminal.type("echo attached-$((2*21))")
        terminal.read_until(b"attached-42")
        terminal.process.terminate()  # leaving attach keeps the container running
        terminal.wait()
        assert kubectl("get", "pod", "shell", "-o", "jsonpath={.status.phase}") == "Running"
    finally:
        kubectl("delete", "pod", "shell", "--wait=false")


def test_run_it_rm_gives_a_shell_and_deletes_the_pod_afterwards(kubectl):
    terminal = Terminal(kubectl_command(kubectl, "run", "oneoff", "-it", "--rm", "--restart=Never",
                                        f"--image={BUSYBOX}", "--", "sh"))
    terminal.read_until(b"# ", timeout=90)
    terminal.type("echo $((6*7))")
    terminal.read_until(b"42\r\n")
    terminal.type("exit")
    assert terminal.wait(timeout=60) == 0
    assert b'pod "oneoff" deleted' in terminal.output
    assert "NotFound" in kubectl.run("get", "pod", "oneoff", check=False).stderr
