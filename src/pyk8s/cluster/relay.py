"""A TCP relay from this network namespace's loopback into another network namespace.

`pyk8s up --isolated` runs the cluster in a namespace with no route out; kubectl on the host
still reaches its API because this relay listens on host 127.0.0.1:<https-port> and, per
accepted connection, opens a connection to 127.0.0.1:<port> from inside the namespace
(`connect_in_netns`: one short-lived thread setns(2)s into it just to create the socket).
Bytes are copied unchanged both ways, TLS included: the relay never sees plaintext, and the
server's certificate (valid for 127.0.0.1) verifies as if kubectl were inside the namespace.

Only loopback is ever listened on and connected to, so nothing leaves either namespace.

    python -m pyk8s.cluster.relay --listen 127.0.0.1:6443 --netns pyk8s --target 127.0.0.1:6443

With `--services KUBECONFIG` it also publishes the cluster's LoadBalancer Services on host
loopback, as a single-node cluster's load balancer is reachable on localhost: it watches
Services through the API (through its own listener) and, for each TCP port of a
LoadBalancer Service, listens on host 127.0.0.1:<port> and connects inside the namespace to
127.0.0.1:<nodePort>, where the service proxy's rules take it to an endpoint (to
127.0.0.1:<port>, the load-balancer address, when the port has no nodePort). A port
that is taken on the host is skipped with a warning.

`start_relay` runs that detached (its own session, log appended to the data dir's relay.log)
and waits for the `listening` line it prints on stdout once bound (a connect probe would be
fooled by another process holding the port); the caller records the pid (server.json).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import select
import subprocess
import sys
import time
from pathlib import Path

from pyk8s.cluster.netns import connect_in_netns

log = logging.getLogger("pyk8s.relay")
LOG_FILE = "relay.log"
_CHUNK = 256 * 1024


class RelayFailed(Exception):
    """The relay process exited before it listened (typically: the port is taken)."""


def _host_port(value: str) -> tuple[str, int]:
    host, _, port = value.rpartition(":")
    return host.strip("[]") or "127.0.0.1", int(port)


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while chunk := await reader.read(_CHUNK):
            writer.write(chunk)
            await writer.drain()
        # Half-close: the other side still may answer (HTTP/1.1 and TLS close_notify).
        if writer.can_write_eof():
            writer.write_eof()
    except (ConnectionError, OSError):
        writer.close()


def _handler(netns: str | None, target: tuple[str, int] | list[tuple[str, int]]):
    # Several targets (the servers of a multi-node cluster): the first that accepts, so the
    # relay keeps working while any server lives; one that failed is tried last next time.
    targets = list(target) if isinstance(target, list) else [target]

    async def handle(client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        inner = None
        for candidate in list(targets):
            try:
                inner = await asyncio.to_thread(connect_in_netns, netns, candidate[0], candidate[1], 3.0)
                break
            except OSError as error:
                log.warning("cannot reach %s:%d in network namespace %s: %s", *candidate, netns, error)
                if len(targets) > 1:
                    targets.remove(candidate)
                    targets.append(candidate)
        if inner is None:
            client_writer.close()
            return
        inner.settimeout(None)
        inner.setblocking(False)
        server_reader, server_writer = await asyncio.open_connection(sock=inner)
        try:
            await asyncio.gather(_pipe(client_reader, server_writer), _pipe(server_reader, client_writer))
        finally:
            for writer in (client_writer, server_writer):
                writer.close()
    return handle


async def relay(listen: tuple[str, int], netns: str | None, target: tuple[str, int] | list[tuple[str, int]], ready: asyncio.Event | None = None,
                stop: asyncio.Event | None = None) -> None:
    """Serve until `stop` is set (forever without one)."""
    server = await asyncio.start_server(_handler(netns, target), listen[0], listen[1], reuse_address=True)
    log.info("relaying %s:%d to %s in network namespace %s", *listen,
             ", ".join(f"{host}:{port}" for host, port in (target if isinstance(target, list) else [target])), netns)
    if ready is not None:
        ready.set()
    async with server:
        if stop is None:
            await server.serve_forever()
        else:
            await stop.wait()


def load_balancer_targets(service: dict) -> dict[int, int]:
    """Host loopback port → port to connect to inside the namespace, for each TCP port of
    a LoadBalancer Service."""
    spec = service.get("spec") or {}
    if spec.get("type") != "LoadBalancer":
        return {}
    return {int(port["port"]): int(port.get("nodePort") or port["port"])
            for port in spec.get("ports") or () if (port.get("protocol") or "TCP") == "TCP"}


async def publish_load_balancers(kubeconfig: Path, netns: str | None, stop: asyncio.Event) -> None:
    """Keep one loopback listener per LoadBalancer Service port until `stop` is set."""
    from pyk8s.api.resources import lookup
    from pyk8s.client import Client
    from pyk8s.client.informer import Informer

    listeners: dict[int, tuple[int, asyncio.base_events.Server]] = {}  # host port -> (target, server)
    changed = asyncio.Event()
    async with Client.from_kubeconfig(kubeconfig) as client:
        informer = Informer(client, lookup("", "v1", "services"))
        informer.add_handlers(on_add=lambda _: changed.set(), on_update=lambda *_: changed.set(),
                              on_delete=lambda _: changed.set())
        watching = asyncio.create_task(informer.run())
        stopping = asyncio.create_task(stop.wait())
        try:
            while not stop.is_set():
                await asyncio.wait([stopping, asyncio.create_task(changed.wait())],
                                   return_when=asyncio.FIRST_COMPLETED)
                changed.clear()
                wanted: dict[int, int] = {}
                for service in informer.list():
                    wanted.update(load_balancer_targets(service))
                for port in [p for p, (target, _) in listeners.items() if wanted.get(p) != target]:
                    listeners.pop(port)[1].close()
                    log.info("stopped publishing 127.0.0.1:%d", port)
                for port, target in wanted.items():
                    if port in listeners or stop.is_set():
                        continue
                    try:
                        server = await asyncio.start_server(_handler(netns, ("127.0.0.1", target)), "127.0.0.1", port,
                                                            reuse_address=True)
                    except OSError as error:
                        log.warning("cannot publish LoadBalancer port %d on 127.0.0.1: %s", port, error)
                        continue
                    listeners[port] = (target, server)
                    log.info("publishing LoadBalancer port 127.0.0.1:%d (127.0.0.1:%d in network namespace %s)",
                             port, target, netns)
        finally:
            for _, server in listeners.values():
                server.close()
            for task in (watching, stopping):
                task.cancel()
            await asyncio.gather(watching, stopping, return_exceptions=True)


def run(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pyk8s.cluster.relay", description=__doc__.split("\n\n")[0])
    parser.add_argument("--listen", required=True, help="HOST:PORT to listen on, in this namespace")
    parser.add_argument("--netns", default=None, help="network namespace to connect from (default: this one)")
    parser.add_argument("--target", required=True, action="append",
                        help="HOST:PORT to connect to inside --netns (repeatable: the first that answers)")
    parser.add_argument("--services", type=Path, default=None, metavar="KUBECONFIG",
                        help="also publish LoadBalancer Service ports on 127.0.0.1 (watched with this kubeconfig)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stop.set)
        ready = asyncio.Event()
        targets = [_host_port(target) for target in args.target]
        serving = asyncio.create_task(relay(_host_port(args.listen), args.netns, targets if len(targets) > 1 else targets[0],
                                            ready=ready, stop=stop))
        await asyncio.wait([serving, asyncio.create_task(ready.wait())], return_when=asyncio.FIRST_COMPLETED)
        if ready.is_set():
            _announce_listening()
        publishing = None
        if args.services is not None and ready.is_set():
            publishing = asyncio.create_task(publish_load_balancers(args.services, args.netns, stop))
        await serving
        if publishing is not None:
            await asyncio.gather(publishing, return_exceptions=True)

    try:
        asyncio.run(main())
    except OSError as error:  # listening failed: say why, as the CLI shows this log
        print(f"relay: {error}", file=sys.stderr)
        return 1
    return 0


def _announce_listening() -> None:
    # One line for start_relay, then stdout goes nowhere: the reader closes its end.
    sys.stdout.write("listening\n")
    sys.stdout.flush()
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 1)
    os.close(devnull)


def start_relay(data_dir: Path, listen_port: int, netns: str, target_port: int, timeout: float = 10.0,
                services_kubeconfig: Path | None = None, target_hosts: list[str] | None = None) -> int:
    """Start the relay detached and wait until it accepts connections; returns its pid.
    Raises RelayFailed (with its log) if it exits first or never listens."""
    log_path = Path(data_dir) / LOG_FILE
    command = [sys.executable, "-m", "pyk8s.cluster.relay", "--listen", f"127.0.0.1:{listen_port}", "--netns", netns]
    for host in target_hosts or ["127.0.0.1"]:
        command += ["--target", f"{host}:{target_port}"]
    if services_kubeconfig is not None:
        command += ["--services", str(services_kubeconfig)]
    with open(log_path, "ab") as log_file:
        offset = log_file.tell()
        process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=log_file,
                                   start_new_session=True, close_fds=True)
    try:
        readable, _, _ = select.select([process.stdout], [], [], timeout)
        # EOF (the relay exited) also makes the pipe readable: then the line is empty.
        if readable and process.stdout.readline().strip() == b"listening":
            return process.pid
    finally:
        process.stdout.close()
    if process.poll() is not None or _exited_within(process, 1.0):
        raise RelayFailed(_read_from(log_path, offset))
    process.kill()
    process.wait()
    raise RelayFailed(f"relay did not listen on 127.0.0.1:{listen_port} within {timeout:g}s\n"
                      + _read_from(log_path, offset))


def stop_relay(pid: int, timeout: float = 5.0) -> bool:
    """SIGTERM the relay `pid` (SIGKILL after `timeout`); returns whether it was running.
    The command line is checked first, so a stale pid of another process is left alone."""
    try:
        if b"pyk8s.cluster.relay" not in Path(f"/proc/{pid}/cmdline").read_bytes():
            return False
        os.kill(pid, signal.SIGTERM)
    except (FileNotFoundError, ProcessLookupError):
        return False
    deadline = time.monotonic() + timeout
    while _alive(pid):
        if time.monotonic() >= deadline:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            break
        time.sleep(0.05)
    return True


def _alive(pid: int) -> bool:
    try:
        # Our own child stays a zombie until reaped; reap it if it is ours.
        if os.waitpid(pid, os.WNOHANG)[0] == pid:
            return False
    except ChildProcessError:
        pass
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0]
    except FileNotFoundError:
        return False
    return state not in ("Z", "X")


def _exited_within(process: subprocess.Popen, seconds: float) -> bool:
    try:
        process.wait(seconds)
        return True
    except subprocess.TimeoutExpired:
        return False


def _read_from(path: Path, offset: int) -> str:
    try:
        with open(path, "rb") as handle:
            handle.seek(offset)
            return handle.read().decode(errors="replace")
    except FileNotFoundError:
        return ""


if __name__ == "__main__":
    raise SystemExit(run())
