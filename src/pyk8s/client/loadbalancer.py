"""The agent's client-side load balancer of API servers (k3s's agent loadbalancer).

A TCP proxy on the agent's loopback (k3s: 127.0.0.1:6444) through which the kubelet and
the node's other components reach the API: each new connection goes to the preferred
server; when it cannot be dialled, the next one is tried and becomes the preferred one
(k3s's "failing over"). TLS stays end to end (every server's certificate has 127.0.0.1 in
its SANs), so the proxy sees only bytes and holds no credential. Open connections to a
server that dies break; clients reconnect (watches resume from their resourceVersion) and
land on a live server.

The list starts with the `--server` URL(s) and then follows the live servers: `watch_servers`
keeps it equal to the `kubernetes` Endpoints (every live API server, see
controllers/kubernetesservice.py), always keeping the configured ones as fallback, so an
agent given one server's address keeps working when that server goes away.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any
from urllib.parse import urlsplit

log = logging.getLogger("pyk8s.loadbalancer")

DIAL_TIMEOUT = 3.0
_BUFFER = 64 * 1024


def parse_server_urls(value: str) -> list[tuple[str, int]]:
    """`https://a:6443,https://b:6443` → [(a, 6443), (b, 6443)]."""
    servers = []
    for url in value.split(","):
        url = url.strip()
        if not url:
            continue
        parts = urlsplit(url if "://" in url else f"https://{url}")
        servers.append((parts.hostname or "127.0.0.1", parts.port or 443))
    return servers


class LoadBalancer:
    def __init__(self, servers: list[tuple[str, int]], *, listen_host: str = "127.0.0.1", listen_port: int = 0,
                 dial_timeout: float = DIAL_TIMEOUT):
        if not servers:
            raise ValueError("the load balancer needs at least one server")
        self.default_servers = list(dict.fromkeys(servers))
        self.servers = list(self.default_servers)
        self.listen_host = listen_host
        self.listen_port = listen_port
        self.dial_timeout = dial_timeout
        self._server: asyncio.base_events.Server | None = None
        self._connections: set[asyncio.Task] = set()
        self._watcher: asyncio.Task | None = None

    @property
    def url(self) -> str:
        host = f"[{self.listen_host}]" if ":" in self.listen_host else self.listen_host
        return f"https://{host}:{self.listen_port}"

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._accept, self.listen_host, self.listen_port)
        self.listen_port = self._server.sockets[0].getsockname()[1]
        log.info("API load balancer on %s:%d -> %s", self.listen_host, self.listen_port, self._describe())

    async def stop(self) -> None:
        if self._watcher is not None:
            self._watcher.cancel()
            await asyncio.gather(self._watcher, return_exceptions=True)
        if self._server is not None:
            self._server.close()
        for task in list(self._connections):
            task.cancel()
        await asyncio.gather(*self._connections, return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()

    def _describe(self) -> str:
        return ",".join(f"{host}:{port}" for host, port in self.servers)

    def update_servers(self, servers: list[tuple[str, int]]) -> None:
        """The live servers (the configured ones stay as fallback, after them); the
        preferred server stays first while it is still listed."""
        wanted = list(dict.fromkeys([*servers, *self.default_servers]))
        current = self.servers[0] if self.servers else None
        if current in wanted:
            wanted.remove(current)
            wanted.insert(0, current)
        if wanted != self.servers:
            self.servers = wanted
            log.info("API servers: %s", self._describe())

    async def _dial(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        errors = []
        for server in list(self.servers):
            try:
                reader, writer = await asyncio.wait_for(asyncio.open_connection(*server), self.dial_timeout)
            except (OSError, asyncio.TimeoutError) as error:
                errors.append(f"{server[0]}:{server[1]}: {error or error.__class__.__name__}")
                continue
            if self.servers and self.servers[0] != server:
                log.warning("API server %s:%d unreachable; failing over to %s:%d", *self.servers[0], *server)
                self.servers.remove(server)
                self.servers.insert(0, server)
            return reader, writer
        raise OSError("no API server reachable: " + "; ".join(errors))

    async def _accept(self, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        self._connections.add(task)
        try:
            try:
                server_reader, server_writer = await self._dial()
            except OSError as error:
                log.error("%s", error)
                return
            try:
                await asyncio.gather(_pipe(client_reader, server_writer), _pipe(server_reader, client_writer))
            finally:
                server_writer.close()
        except asyncio.CancelledError:
            pass
        finally:
            client_writer.close()
            self._connections.discard(task)

    # -- following the live servers ------------------------------------------------------

    def watch_servers(self, client) -> None:
        """Keep the list equal to the `kubernetes` Endpoints, read through `client` (which
        itself goes through this balancer)."""
        self._watcher = asyncio.create_task(self._follow_endpoints(client), name="loadbalancer-endpoints")

    async def _follow_endpoints(self, client) -> None:
        from pyk8s.api.resources import lookup

        endpoints_resource = lookup("", "v1", "endpoints")
        while True:
            try:
                current = await client.get(endpoints_resource, "kubernetes", "default")
                self.update_servers(endpoint_addresses(current))
                version = current["metadata"].get("resourceVersion", "")
                async for event in client.watch(endpoints_resource, "default", resource_version=version,
                                                fieldSelector="metadata.name=kubernetes", timeout_seconds=300):
                    if event.get("type") in ("ADDED", "MODIFIED"):
                        self.update_servers(endpoint_addresses(event["object"]))
            except asyncio.CancelledError:
                raise
            except Exception as error:  # noqa: BLE001 - server gone: retry through another one
                log.debug("following the kubernetes endpoints: %s", error)
            await asyncio.sleep(2.0)


def endpoint_addresses(endpoints: dict[str, Any]) -> list[tuple[str, int]]:
    servers = []
    for subset in endpoints.get("subsets") or []:
        ports = [p.get("port") for p in subset.get("ports") or [] if p.get("port")]
        for address in subset.get("addresses") or []:
            for port in ports[:1]:
                servers.append((address["ip"], int(port)))
    return servers


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while True:
            data = await reader.read(_BUFFER)
            if not data:
                break
            writer.write(data)
            await writer.drain()
    except (ConnectionError, OSError):
        pass
    finally:
        try:
            if writer.can_write_eof():
                writer.write_eof()
        except (OSError, RuntimeError):
            pass
