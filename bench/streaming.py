"""Streaming benchmark: `kubectl exec POD -- true` and `kubectl port-forward` throughput.

Starts a real single-node `pyk8s server` (embedded agent, containerd, a busybox pod) and
measures, in the same run:

- exec: median wall time of `kubectl exec POD -- true` (WebSocket v5 through the API
  server, kubelet and containerd), beside kubectl's own floor (`kubectl get pod POD -o name`
  against the same server: process start, kubeconfig, TLS, one request), a raw CRI
  `ExecSync` of `true` straight to containerd's socket and `runc exec` of `true` into the
  same container (the runtime's own costs).
  Goal (issue 6): exec / floor ≤ 1.5; the ExecSync and runc figures show how much of the
  gap is the runtime's, not ours.
- port-forward: MB/s of one HTTP download of a large file through `kubectl port-forward`
  (WebSocket tunnel, then plain SPDY): kubectl -> API server -> kubelet, which serves
  port-forward itself and dials the pod from inside its network namespace. Beside it: the
  kubelet's port-forward read directly (SPDY over TLS, a byte-counting client: the path
  without the API server and kubectl), containerd's own stream server (CRI PortForward, no
  longer on kubectl's path), the pod's IP directly and a plain loopback TCP copy, all read by
  the same client. Goal: ≥ 50 % of loopback.

    .venv/bin/python bench/streaming.py              # 20 execs, 256 MiB transfers
    .venv/bin/python bench/streaming.py --quick      # 8 execs, 64 MiB
    .venv/bin/python bench/streaming.py --quick --py-spy /tmp/venv-prof/bin/py-spy --profile-dir /tmp/prof
        # also records the server process (py-spy raw format) during each phase

Runs as root inside its own network namespace (entered before anything else starts); the
server is a child process stopped on every exit path.
"""

from __future__ import annotations

if __name__ == "__main__":
    # Network safety: a private network namespace before any thread or event loop exists.
    from pyk8s.cluster.localcluster import isolate_network

    isolate_network()

import argparse
import asyncio
import json
import os
import re
import select
import signal
import shutil
import socket
import ssl
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlsplit

from pyk8s.spdy import SpdySession
from pyk8s.cluster.localcluster import LocalServer, in_isolated_network
from pyk8s.kubelet.cri import CRIClient
from pyk8s.kubelet.cri.messages import SANDBOX_READY

KUBECTL = str(Path(sys.executable).with_name("kubectl"))
BUSYBOX = "pyk8s/busybox:1.35"


def kubectl(server: LocalServer, cache: Path, *args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([KUBECTL, "--kubeconfig", str(server.kubeconfig), "--cache-dir", str(cache), *args],
                          capture_output=True, timeout=120, check=True, env={**os.environ, **(env or {})})


def median_wall(runs: int, action) -> float:
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        action()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def http_download(host: str, port: int, path: str) -> int:
    """Bytes of one HTTP/1.0 GET, read in large chunks (the same client for every figure)."""
    with socket.create_connection((host, port), timeout=60) as connection:
        connection.sendall(f"GET {path} HTTP/1.0\r\nHost: {host}\r\n\r\n".encode())
        received = 0
        while chunk := connection.recv(1 << 20):
            received += len(chunk)
        return received


def loopback_sender(size: int) -> tuple[int, threading.Thread]:
    """A plain TCP sender on 127.0.0.1 answering one request with `size` bytes."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    block = os.urandom(1 << 20)

    def serve() -> None:
        connection, _ = listener.accept()
        with connection, listener:
            connection.recv(65536)
            connection.sendall(b"HTTP/1.0 200 OK\r\n\r\n")
            remaining = size
            while remaining > 0:
                piece = block[:min(len(block), remaining)]
                connection.sendall(piece)
                remaining -= len(piece)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    return listener.getsockname()[1], thread


@contextmanager
def profiled(py_spy: str | None, profile_dir: str | None, pid: int, label: str):
    """Record the server process with py-spy while the block runs (when asked to)."""
    if not (py_spy and profile_dir):
        yield
        return
    Path(profile_dir).mkdir(parents=True, exist_ok=True)
    recorder = subprocess.Popen([py_spy, "record", "-p", str(pid), "-f", "raw", "-r", "250", "--nonblocking",
                                 "-o", str(Path(profile_dir) / f"{label}.txt")],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(1.0)  # let py-spy attach before the measured work starts
    try:
        yield
    finally:
        recorder.send_signal(signal.SIGINT)  # py-spy writes its output on SIGINT
        recorder.wait(timeout=60)


def cpu_seconds(pid: int) -> float:
    """User + system CPU time a process has used so far (from /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def machine_cpu_seconds() -> tuple[float, float]:
    """(busy, total) CPU seconds of the whole machine so far, summed over its CPUs."""
    ticks = [int(v) for v in Path("/proc/stat").read_text().split("\n")[0].split()[1:]]
    idle = ticks[3] + ticks[4]  # idle + iowait
    return (sum(ticks) - idle) / os.sysconf("SC_CLK_TCK"), sum(ticks) / os.sysconf("SC_CLK_TCK")


def throughput(size_bytes: int, action) -> float:
    started = time.perf_counter()
    received = action()
    elapsed = time.perf_counter() - started
    assert received >= size_bytes, f"short transfer: {received} of {size_bytes}"
    return received / elapsed / 1e6


async def cri_exec_sync(socket_path: str, pod: str, runs: int) -> float:
    cri = CRIClient(socket_path)
    try:
        containers = await cri.list_containers({"io.kubernetes.pod.name": pod})
        container_id = [c for c in containers if c.get("state") == 1][0]["id"]
        times = []
        for _ in range(runs):
            started = time.perf_counter()
            reply = await cri.call("ExecSync", {"container_id": container_id, "cmd": ["true"], "timeout": 10})
            times.append(time.perf_counter() - started)
            assert reply.get("exit_code") == 0
        return statistics.median(times)
    finally:
        await cri.close()


RUNC_ROOT = Path("/run/containerd/runc/k8s.io")  # the runc v2 shim's default root for CRI's namespace


def runc_exec(container_id: str, runs: int) -> float | None:
    """Median wall time of `runc exec CONTAINER true`: what every exec costs in the runtime
    before containerd, the shim or anything of ours is involved."""
    runc = shutil.which("runc")
    if runc is None or not (RUNC_ROOT / container_id).exists():
        return None
    return median_wall(runs, lambda: subprocess.run([runc, "--root", str(RUNC_ROOT), "exec", container_id, "true"],
                                                    check=True, timeout=30))


def start_port_forward(server: LocalServer, cache: Path, env: dict) -> tuple[subprocess.Popen, int]:
    """`kubectl port-forward pod/bench :8080` in the background; returns it and its local port."""
    forward = subprocess.Popen([KUBECTL, "--kubeconfig", str(server.kubeconfig), "--cache-dir", str(cache),
                                "port-forward", "--address=127.0.0.1", "pod/bench", ":8080"],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, env={**os.environ, **env})
    printed = b""
    while not re.search(rb"127\.0\.0\.1:(\d+) ->", printed):
        ready, _, _ = select.select([forward.stdout], [], [], 30)
        assert ready, "port-forward did not start"
        printed += os.read(forward.stdout.fileno(), 4096)
    return forward, int(re.search(rb"127\.0\.0\.1:(\d+) ->", printed).group(1))


def stop_port_forward(forward: subprocess.Popen) -> None:
    if forward.poll() is None:
        forward.terminate()
    forward.wait(timeout=10)


async def runtime_port_forward(socket_path: str, pod: str, port: int, size_bytes: int) -> float:
    """MB/s of one download straight from containerd's stream server (CRI PortForward, SPDY),
    read by a client that only counts bytes (what kubectl's path went through before the
    kubelet served port-forward itself)."""
    cri = CRIClient(socket_path)
    try:
        sandboxes = [s for s in await cri.list_sandboxes({"io.kubernetes.pod.name": pod})
                     if s.get("state") == SANDBOX_READY]
        reply = await cri.call("PortForward", {"pod_sandbox_id": sandboxes[0]["id"], "port": [port]})
    finally:
        await cri.close()
    url = urlsplit(reply["url"])
    return await spdy_port_forward_download(url.hostname, url.port, None, url.path, port, size_bytes)


async def spdy_port_forward_download(host: str, port: int, ssl_context: ssl.SSLContext | None, path: str,
                                     pod_port: int, size_bytes: int) -> float:
    """MB/s of one download through a SPDY portforward.k8s.io upgrade at host:port/path, read
    by a client that only counts bytes (SPDY frame heads included)."""
    reader, writer = await asyncio.open_connection(host, port, ssl=ssl_context, limit=4 << 20)
    try:
        writer.write(f"POST {path} HTTP/1.1\r\nHost: {host}:{port}\r\nConnection: Upgrade\r\n"
                     f"Upgrade: SPDY/3.1\r\nX-Stream-Protocol-Version: portforward.k8s.io\r\n\r\n".encode())
        assert b" 101 " in await reader.readuntil(b"\r\n\r\n"), "the stream server refused the upgrade"
        session = SpdySession(reader, writer)
        session.open_stream({"streamtype": "error", "port": str(pod_port), "requestid": "0"})
        data_stream = session.open_stream({"streamtype": "data", "port": str(pod_port), "requestid": "0"})
        session.send_data(data_stream, b"GET /blob HTTP/1.0\r\n\r\n")
        received, started = 0, time.perf_counter()
        while received < size_bytes and (chunk := await reader.read(1 << 20)):
            received += len(chunk)
        assert received >= size_bytes, f"short transfer: {received} of {size_bytes}"
        return received / (time.perf_counter() - started) / 1e6
    finally:
        writer.close()


def kubelet_client_context(data_dir: Path) -> ssl.SSLContext:
    """TLS as the API server talks to the kubelet: a cluster client certificate (the admin's),
    the kubelet's self-signed serving certificate taken as it is."""
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    tls = data_dir / "cluster" / "server" / "tls"
    context.load_cert_chain(str(tls / "admin.crt"), str(tls / "admin.key"))
    return context


def measure_forward(server_pid: int, forward: subprocess.Popen, local_port: int, size: int) -> tuple[float, str]:
    """MB/s of one download through kubectl port-forward, and where the CPU went meanwhile."""
    cpu_before = cpu_seconds(server_pid), cpu_seconds(forward.pid)
    machine_before = machine_cpu_seconds()
    wall_before = time.perf_counter()
    mbps = throughput(size, lambda: http_download("127.0.0.1", local_port, "/blob"))
    wall = time.perf_counter() - wall_before
    server_cpu = (cpu_seconds(server_pid) - cpu_before[0]) / wall
    kubectl_cpu = (cpu_seconds(forward.pid) - cpu_before[1]) / wall
    machine_after = machine_cpu_seconds()
    machine_busy = (machine_after[0] - machine_before[0]) / (machine_after[1] - machine_before[1])
    return mbps, (f"server process {server_cpu:.0%} of a core, kubectl port-forward {kubectl_cpu:.0%}, "
                  f"machine {machine_busy:.0%} busy ({os.cpu_count()} CPUs)")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--runs", type=int, default=0)
    parser.add_argument("--mib", type=int, default=0)
    parser.add_argument("--py-spy", help="path of py-spy, to profile the server process")
    parser.add_argument("--profile-dir", help="where py-spy's raw profiles go (exec.txt, portforward.txt)")
    args = parser.parse_args()
    assert in_isolated_network(), "refusing to run outside a private network namespace"
    runs = args.runs or (8 if args.quick else 20)
    size = (args.mib or (64 if args.quick else 256)) * 1024 * 1024

    with tempfile.TemporaryDirectory(prefix="pyk8s-bench-streaming-") as data_dir:
        cache = Path(data_dir) / "kube-cache"
        server = LocalServer(Path(data_dir) / "cluster")
        server.start(timeout=120)
        forward = None
        try:
            kubectl(server, cache, "wait", "--for=condition=Ready", "node", "--all", "--timeout=90s")
            script = f"mkdir -p /www && head -c {size} /dev/zero > /www/blob && exec httpd -f -p 8080 -h /www"
            kubectl(server, cache, "run", "bench", f"--image={BUSYBOX}", "--restart=Never", "--", "sh", "-c", script)
            kubectl(server, cache, "wait", "--for=condition=Ready", "pod/bench", "--timeout=90s")
            deadline = time.monotonic() + 60
            while subprocess.run([KUBECTL, "--kubeconfig", str(server.kubeconfig), "--cache-dir", str(cache), "exec",
                                  "bench", "--", "wget", "-q", "--spider", "http://127.0.0.1:8080/blob"],
                                 capture_output=True).returncode != 0:
                # httpd starts once the whole file is written
                assert time.monotonic() < deadline, "the pod never served its file"
                time.sleep(0.2)
            pod = json.loads(kubectl(server, cache, "get", "pod", "bench", "-o", "json").stdout)
            pod_ip = pod["status"]["podIP"]

            # exec
            kubectl(server, cache, "exec", "bench", "--", "true")  # warm discovery cache and connections
            server_pid = server.process.pid
            with profiled(args.py_spy, args.profile_dir, server_pid, "exec"):
                exec_seconds = median_wall(runs, lambda: kubectl(server, cache, "exec", "bench", "--", "true"))
            spdy_seconds = median_wall(runs, lambda: kubectl(server, cache, "exec", "bench", "--", "true",
                                                             env={"KUBECTL_REMOTE_COMMAND_WEBSOCKETS": "false"}))
            floor_seconds = median_wall(runs, lambda: kubectl(server, cache, "get", "pod", "bench", "-o", "name"))
            sockets = list((Path(data_dir) / "cluster").rglob("containerd.sock")) or list(Path("/run/pyk8s").rglob("containerd.sock"))
            cri_seconds = asyncio.run(cri_exec_sync(str(sockets[0]), "bench", runs))

            container_id = pod["status"]["containerStatuses"][0]["containerID"].split("://")[-1]
            runc_seconds = runc_exec(container_id, runs)

            # port-forward: the WebSocket tunnel kubectl uses by default, then plain SPDY
            forward, local_port = start_port_forward(server, cache, {})
            http_download("127.0.0.1", local_port, "/")  # warm-up: the first connection sets up the tunnel
            with profiled(args.py_spy, args.profile_dir, server_pid, "portforward"):
                forward_mbps, forward_cpu = measure_forward(server_pid, forward, local_port, size)
            stop_port_forward(forward)
            forward, local_port = start_port_forward(server, cache, {"KUBECTL_PORT_FORWARD_WEBSOCKETS": "false"})
            http_download("127.0.0.1", local_port, "/")
            spdy_forward_mbps, spdy_forward_cpu = measure_forward(server_pid, forward, local_port, size)
            node = json.loads(kubectl(server, cache, "get", "node", "-o", "json").stdout)["items"][0]
            kubelet_port = node["status"]["daemonEndpoints"]["kubeletEndpoint"]["Port"]
            kubelet_mbps = asyncio.run(spdy_port_forward_download(
                "127.0.0.1", kubelet_port, kubelet_client_context(Path(data_dir)),
                "/portForward/default/bench?port=8080", 8080, size))
            pod_mbps = throughput(size, lambda: http_download(pod_ip, 8080, "/blob"))
            runtime_mbps = asyncio.run(runtime_port_forward(str(sockets[0]), "bench", 8080, size))
            port, _ = loopback_sender(size)
            loopback_mbps = throughput(size, lambda: http_download("127.0.0.1", port, "/"))
        except BaseException:
            print(server.log_tail())
            if forward is not None:
                forward.terminate()
                print("kubectl port-forward:", forward.communicate(timeout=10)[1].decode(errors="replace"))
            raise
        finally:
            if forward is not None:
                stop_port_forward(forward)
            # The agent leaves running pods behind on stop; remove ours so its mounts go too.
            subprocess.run([KUBECTL, "--kubeconfig", str(server.kubeconfig), "--cache-dir", str(cache), "delete",
                            "pod", "bench", "--grace-period=1", "--ignore-not-found", "--timeout=60s"],
                           capture_output=True, timeout=90)
            server.stop(timeout=60, remove_pods=True)

    print(f"kubectl exec POD -- true (WebSocket v5): {exec_seconds * 1000:7.1f} ms median of {runs}")
    print(f"kubectl exec POD -- true (SPDY):         {spdy_seconds * 1000:7.1f} ms")
    print(f"kubectl get pod POD (kubectl's floor):   {floor_seconds * 1000:7.1f} ms")
    print(f"raw CRI ExecSync true:                   {cri_seconds * 1000:7.1f} ms")
    if runc_seconds is not None:
        print(f"runc exec true (no containerd):          {runc_seconds * 1000:7.1f} ms")
    print(f"exec / floor: {exec_seconds / floor_seconds:.2f}x (goal <= 1.5x); "
          f"exec - floor - ExecSync: {(exec_seconds - floor_seconds - cri_seconds) * 1000:.1f} ms of streaming overhead")
    print(f"port-forward download:   {forward_mbps:8.1f} MB/s ({size >> 20} MiB)")
    print(f"  CPU during it: {forward_cpu}")
    print(f"port-forward download (SPDY): {spdy_forward_mbps:4.1f} MB/s")
    print(f"  CPU during it: {spdy_forward_cpu}")
    print(f"kubelet port-forward direct (SPDY over TLS, byte-counting client): {kubelet_mbps:.1f} MB/s")
    print(f"containerd stream server direct (CRI PortForward, byte-counting client): "
          f"{runtime_mbps:.1f} MB/s")
    print(f"pod IP direct download:  {pod_mbps:8.1f} MB/s")
    print(f"plain loopback copy:     {loopback_mbps:8.1f} MB/s")
    print(f"port-forward / loopback: {forward_mbps / loopback_mbps:.0%} (goal >= 50%)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
