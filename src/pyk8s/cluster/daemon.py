"""Running `pyk8s server` in the background: start it detached, know whether it runs, wait
until it is ready, stop it.

Everything lives in the data directory, so several clusters with different `--data-dir`s
can coexist and any later `pyk8s` command finds the one it is asked about:
- `server.pid`  the server's process id (kept for tools that expect a pid file);
- `server.json` pid, the URL kubectl uses, the network namespace (isolated mode), the pid
  of the loopback relay into that namespace (cluster/relay.py) and the data dir: what
  `down`, `status` and `kubectl` read;
- `server.log`  the server's stdout and stderr, appended across runs;
- `netns-created` present when `up --isolated` created the namespace, so `reset` deletes
  only a namespace that pyk8s made.
The server itself writes `kubeconfig.yaml` once its API is listening; readiness is
`GET /readyz` answering 200 to the admin certificate from that kubeconfig.
"""

from __future__ import annotations

import http.client
import json
import os
import signal
import ssl
import subprocess
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from pyk8s.cluster.kubeconfig import server_url_and_ssl_context
from pyk8s.cluster.netns import connect_in_netns, nsenter_prefix
from pyk8s.cluster.files import write_file_atomic
from pyk8s.cluster.server import ServerConfig

PID_FILE = "server.pid"
STATE_FILE = "server.json"
LOG_FILE = "server.log"
NETNS_MARKER = "netns-created"
KUBECONFIG_FILE = "kubeconfig.yaml"


class ServerExited(Exception):
    """The server process ended before it became ready."""

    def __init__(self, returncode: int | None, log_tail: str):
        super().__init__(f"server exited with status {returncode}")
        self.returncode = returncode
        self.log_tail = log_tail


@dataclass
class ServerState:
    pid: int
    url: str
    data_dir: str
    netns: str | None = None
    started_at: float = 0.0
    relay_pid: int | None = None  # isolated mode: host 127.0.0.1:<port> -> the namespace's

    @property
    def kubeconfig(self) -> Path:
        return Path(self.data_dir) / KUBECONFIG_FILE


def local_api_url(config: ServerConfig) -> str:
    """The URL at which the server is reachable from its own host (or namespace); matches the
    one the server writes into its kubeconfig."""
    host = "127.0.0.1" if config.bind_address in ("0.0.0.0", "::", "") else config.bind_address
    if ":" in host:
        host = f"[{host}]"
    return f"https://{host}:{config.https_port}"


def read_state(data_dir: Path) -> ServerState | None:
    try:
        raw = json.loads((Path(data_dir) / STATE_FILE).read_text())
        return ServerState(pid=int(raw["pid"]), url=raw["url"], data_dir=raw["data_dir"],
                           netns=raw.get("netns"), started_at=float(raw.get("started_at", 0)),
                           relay_pid=raw.get("relay_pid"))
    except (FileNotFoundError, ValueError, KeyError, TypeError):
        pass
    # A pid file without state (e.g. written by an older pyk8s or by hand).
    try:
        pid = int((Path(data_dir) / PID_FILE).read_text().strip())
    except (FileNotFoundError, ValueError):
        return None
    return ServerState(pid=pid, url="", data_dir=str(data_dir))


def write_state(state: ServerState) -> None:
    data_dir = Path(state.data_dir)
    write_file_atomic(data_dir / PID_FILE, f"{state.pid}\n".encode(), 0o644)
    write_file_atomic(data_dir / STATE_FILE, json.dumps(asdict(state), indent=2).encode() + b"\n", 0o644)


def clear_state(data_dir: Path) -> None:
    for name in (PID_FILE, STATE_FILE):
        try:
            (Path(data_dir) / name).unlink()
        except FileNotFoundError:
            pass


def process_is_running(pid: int) -> bool:
    """Whether `pid` is a live (not zombie) pyk8s process. Checking the command line guards
    against a stale pid file whose pid now belongs to something else."""
    if pid <= 0:
        return False
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except (FileNotFoundError, ProcessLookupError):
        return False
    # A zombie has exited (its parent, maybe this very process, has not reaped it yet).
    process_state = stat.rpartition(")")[2].split()[0]
    if process_state in ("Z", "X"):
        return False
    # An exiting process has released its memory, hence its command line, before it
    # becomes a zombie: it is still "running" until then.
    return not cmdline or b"pyk8s" in cmdline


def running_server(data_dir: Path) -> ServerState | None:
    """The recorded server of `data_dir` if it is still running."""
    state = read_state(data_dir)
    if state is not None and process_is_running(state.pid):
        return state
    return None


def start_server(server_argv: list[str], data_dir: Path, url: str, netns: str | None) -> tuple[subprocess.Popen, int]:
    """Start `server_argv` detached (own session, so it outlives the terminal and ignores its
    Ctrl-C), inside network namespace `netns` if given, with output appended to server.log.
    Records its state and returns the process and the log offset where this run begins."""
    data_dir = Path(data_dir)
    data_dir.mkdir(parents=True, exist_ok=True)
    os.chmod(data_dir, 0o700)
    log_path = data_dir / LOG_FILE
    command = (nsenter_prefix(netns) if netns else []) + server_argv
    environment = dict(os.environ, PYTHONUNBUFFERED="1")
    with open(log_path, "ab") as log:
        log.write(f"--- pyk8s server starting at {time.strftime('%Y-%m-%d %H:%M:%S')}: "
                  f"{' '.join(command)}\n".encode())
        log.flush()
        log_offset = log.tell()
        process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                   start_new_session=True, close_fds=True, env=environment)
    # nsenter execs the server, so this pid is the server's own.
    write_state(ServerState(pid=process.pid, url=url, data_dir=str(data_dir), netns=netns,
                            started_at=time.time()))
    return process, log_offset


def probe_ready(state: ServerState, timeout: float = 2.0) -> bool:
    """Whether the server answers `GET /readyz` with 200, authenticated with the admin
    certificate of its kubeconfig, connecting from inside its network namespace if any."""
    try:
        kubeconfig_url, ssl_context = server_url_and_ssl_context(state.kubeconfig)
        url = state.url or kubeconfig_url
        return _get_status(url, "/readyz", ssl_context, state.netns, timeout) == 200
    except (OSError, ssl.SSLError, http.client.HTTPException, KeyError, ValueError):
        return False


def wait_until_ready(process: subprocess.Popen | None, state: ServerState, timeout: float,
                     log_offset: int = 0, poll_interval: float = 0.2) -> bool:
    """Poll readiness until `timeout` seconds pass. Raises ServerExited (with the end of this
    run's log) if the process ends first. A stale kubeconfig from an earlier run must be
    removed by the caller, so that a ready answer cannot come from old credentials only."""
    deadline = time.monotonic() + timeout
    while True:
        exited = process.poll() is not None if process is not None else not process_is_running(state.pid)
        if exited:
            raise ServerExited(process.returncode if process is not None else None,
                               log_tail(Path(state.data_dir) / LOG_FILE, log_offset))
        if state.kubeconfig.exists() and probe_ready(state, timeout=min(2.0, max(0.1, deadline - time.monotonic()))):
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(poll_interval)


def stop_server(data_dir: Path, timeout: float = 30.0) -> int | None:
    """SIGTERM the recorded server and wait for it to exit, SIGKILL after `timeout` seconds.
    Clears the recorded state. Returns the pid that was stopped, None if nothing ran."""
    state = read_state(data_dir)
    if state is not None and state.relay_pid:
        from pyk8s.cluster.relay import stop_relay

        stop_relay(state.relay_pid)
    if state is None or not process_is_running(state.pid):
        clear_state(data_dir)
        return None
    _signal(state.pid, signal.SIGTERM)
    if not _wait_for_exit(state.pid, timeout):
        _signal(state.pid, signal.SIGKILL)
        _wait_for_exit(state.pid, 10.0)
    clear_state(data_dir)
    return state.pid


def log_tail(path: Path, offset: int = 0, lines: int = 40) -> str:
    """The last `lines` lines of `path` written after byte `offset`."""
    try:
        with open(path, "rb") as log:
            log.seek(offset)
            content = log.read()
    except FileNotFoundError:
        return ""
    return b"\n".join(content.splitlines()[-lines:]).decode(errors="replace")


# --- internals -------------------------------------------------------------------------

def _signal(pid: int, signum: int) -> None:
    try:
        os.kill(pid, signum)
    except ProcessLookupError:
        pass


def _wait_for_exit(pid: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while process_is_running(pid):
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.1)
    return True


def _get_status(url: str, path: str, ssl_context: ssl.SSLContext, netns: str | None, timeout: float) -> int:
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 443

    class NamespacedHTTPSConnection(http.client.HTTPSConnection):
        def connect(self) -> None:
            raw = connect_in_netns(netns, host, port, timeout)
            self.sock = ssl_context.wrap_socket(raw, server_hostname=host)

    connection = NamespacedHTTPSConnection(host, port, timeout=timeout, context=ssl_context)
    try:
        connection.request("GET", path, headers={"Accept": "text/plain"})
        response = connection.getresponse()
        response.read()
        return response.status
    finally:
        connection.close()
