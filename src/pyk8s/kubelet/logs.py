"""Container logs: reading CRI log files and serving them like the kubelet's HTTPS API.

containerd writes each container's stdout/stderr to
`<log-root>/pods/<ns>_<pod>_<uid>/<container>/<restart>.log`, one line per record:
`<RFC3339Nano> <stdout|stderr> <P|F> <text>` (P = partial line continued by the next
record). `read_log()` turns that back into the container's exact output with upstream's
options (tailLines, sinceSeconds/sinceTime, timestamps, limitBytes, follow).

`KubeletServer` serves `GET /containerLogs/{namespace}/{pod}/{container}` (the endpoint the
API server's `pods/log` subresource proxies to, upstream's kubelet server path), the
streaming endpoints of `streaming.py` (exec, attach, portForward) and `/healthz`, over HTTPS
with a self-signed certificate.
"""

from __future__ import annotations

import asyncio
import datetime
import logging
import ssl
from pathlib import Path
from typing import Any, AsyncIterator, Awaitable, Callable

from aiohttp import web

log = logging.getLogger("pyk8s.kubelet.logs")


def parse_line(line: bytes) -> tuple[str, str, bool, bytes] | None:
    """(timestamp, stream, full, content) of one CRI log record."""
    parts = line.rstrip(b"\n").split(b" ", 3)
    if len(parts) < 3:
        return None
    timestamp, stream, tag = parts[0].decode(), parts[1].decode(), parts[2]
    content = parts[3] if len(parts) == 4 else b""
    return timestamp, stream, tag != b"P", content


def parse_timestamp(text: str) -> datetime.datetime:
    text = text.rstrip("Z")
    if "." in text:
        head, fraction = text.split(".", 1)
        text = f"{head}.{fraction[:6]}"
        return datetime.datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%f").replace(tzinfo=datetime.timezone.utc)
    return datetime.datetime.strptime(text, "%Y-%m-%dT%H:%M:%S").replace(tzinfo=datetime.timezone.utc)


def records(data: bytes) -> list[tuple[str, bytes]]:
    """Whole output lines (partials joined) as (first timestamp, bytes with newline)."""
    out: list[tuple[str, bytes]] = []
    pending: list[bytes] = []
    pending_time = ""
    for line in data.splitlines():
        parsed = parse_line(line)
        if parsed is None:
            continue
        timestamp, _, full, content = parsed
        if not pending:
            pending_time = timestamp
        pending.append(content)
        if full:
            out.append((pending_time, b"".join(pending) + b"\n"))
            pending = []
    if pending:
        out.append((pending_time, b"".join(pending)))
    return out


def tail_messages(path: str, *, lines: int, max_bytes: int) -> str:
    try:
        data = Path(path).read_bytes()
    except OSError:
        return ""
    text = b"".join(content for _, content in records(data)[-lines:])
    return text[-max_bytes:].decode(errors="replace")


def _format(timestamp: str, content: bytes, with_timestamps: bool) -> bytes:
    if with_timestamps:
        return timestamp.encode() + b" " + content
    return content


async def read_log(path: Path, options: dict[str, str], still_running: Callable[[], Awaitable[bool]]) -> AsyncIterator[bytes]:
    """The log of one container with kubectl's options; with follow, until it stops."""
    with_timestamps = options.get("timestamps") in ("true", "1")
    since: datetime.datetime | None = None
    if options.get("sinceSeconds"):
        since = datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(seconds=int(options["sinceSeconds"]))
    elif options.get("sinceTime"):
        since = datetime.datetime.fromisoformat(options["sinceTime"].replace("Z", "+00:00"))
    limit = int(options["limitBytes"]) if options.get("limitBytes") else None
    sent = 0
    try:
        data = path.read_bytes()
    except OSError:
        data = b""
    # Only whole records: a trailing partial write waits for the next read.
    consumed = data.rfind(b"\n") + 1
    items = records(data[:consumed])
    if since is not None:
        items = [item for item in items if parse_timestamp(item[0]) >= since]
    if options.get("tailLines"):
        tail = int(options["tailLines"])
        items = items[-tail:] if tail > 0 else []
    for timestamp, content in items:
        chunk = _format(timestamp, content, with_timestamps)
        if limit is not None:
            chunk = chunk[:max(0, limit - sent)]
        if chunk:
            sent += len(chunk)
            yield chunk
        if limit is not None and sent >= limit:
            return
    if options.get("follow") not in ("true", "1"):
        return
    position = consumed
    while True:
        running = await still_running()
        try:
            with open(path, "rb") as handle:
                handle.seek(position)
                fresh = handle.read()
        except OSError:
            fresh = b""
        complete = fresh.rfind(b"\n") + 1
        if complete:
            position += complete
            for timestamp, content in records(fresh[:complete]):
                chunk = _format(timestamp, content, with_timestamps)
                if limit is not None:
                    chunk = chunk[:max(0, limit - sent)]
                if chunk:
                    sent += len(chunk)
                    yield chunk
                if limit is not None and sent >= limit:
                    return
        elif not running:
            return
        else:
            await asyncio.sleep(0.1)


def self_signed_context(directory: Path, hosts: list[str]) -> ssl.SSLContext:
    """A serving certificate for the kubelet endpoint (upstream self-signs by default).
    Made by the openssl command, once: loading a crypto library into the agent for one
    certificate would cost it more memory than the rest of its work."""
    import ipaddress
    import subprocess

    directory.mkdir(parents=True, exist_ok=True)
    cert_path, key_path = directory / "kubelet.crt", directory / "kubelet.key"
    if not cert_path.exists() or not key_path.exists():
        sans = []
        for host in hosts:
            try:
                ipaddress.ip_address(host)
                sans.append(f"IP:{host}")
            except ValueError:
                sans.append(f"DNS:{host}")
        subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                        "-nodes", "-keyout", str(key_path), "-out", str(cert_path), "-days", "365",
                        "-subj", f"/CN={hosts[0]}@pyk8s-kubelet", "-addext", "subjectAltName=" + ",".join(sans)],
                       check=True, capture_output=True)
        key_path.chmod(0o600)
    # Not create_default_context: that would also trust the system's CAs for client
    # certificates, and only the cluster CA's clients may reach logs and exec.
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(cert_path, key_path)
    return context


class KubeletServer:
    """The kubelet's HTTPS endpoint. `find_log(namespace, pod, container, previous)` returns
    (log path, still_running) or raises LookupError with the message for the client."""

    def __init__(self, find_log: Callable[..., Awaitable[tuple[Path, Callable[[], Awaitable[bool]]]]], *,
                 address: str, port: int, tls_dir: Path, client_ca: Path | None = None):
        self.find_log = find_log
        self.address = address
        self.port = port
        self.tls_dir = tls_dir
        self.client_ca = client_ca
        self._runner: web.AppRunner | None = None

    async def start(self) -> int:
        app = web.Application()
        app.router.add_get("/healthz", lambda request: web.Response(text="ok"))
        app.router.add_get("/containerLogs/{namespace}/{pod}/{container}", self._logs)
        from pyk8s.kubelet.streaming import StreamingRoutes, runtime_of
        StreamingRoutes(runtime_of(self.find_log)).register(app)  # exec, attach, portForward
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False, shutdown_timeout=1.0)
        await self._runner.setup()
        context = self_signed_context(self.tls_dir, [self.address, "localhost", "127.0.0.1"])
        if self.client_ca is not None:
            # Like upstream with --client-ca-file: only the API server (a cluster client
            # certificate) may read logs.
            context.load_verify_locations(self.client_ca)
            context.verify_mode = ssl.CERT_REQUIRED
        site = web.TCPSite(self._runner, self.address, self.port, ssl_context=context, reuse_address=True)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # the real port when 0 was asked
        return self.port

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def _logs(self, request: web.Request) -> web.StreamResponse:
        info = request.match_info
        options = dict(request.query)
        try:
            path, still_running = await self.find_log(info["namespace"], info["pod"], info["container"],
                                                      options.get("previous") in ("true", "1"))
        except LookupError as error:
            return web.Response(status=400, text=str(error))
        response = web.StreamResponse(headers={"Content-Type": "text/plain"})
        await response.prepare(request)
        async for chunk in read_log(path, options, still_running):
            await response.write(chunk)
        await response.write_eof()
        return response
