"""The DNS service: informers keep a ClusterZone current; UDP and TCP listeners answer
from it; names outside the zone go to the upstream resolvers (with a cache).

    DNSServer(client, ...).start()  ->  lists+watches Services and EndpointSlices,
                                        binds UDP/TCP :53 and HTTP /ready /health /metrics
Flow of a UDP query: `records.answer` gives the reply (from the zone's reply templates,
packed when a Service changes or when a name is first asked; see records.py); None from
it means "not our zone": the Forwarder
asks the upstreams (their answers cached up to their TTL, at most 30 s, like k3s's
`cache 30`) or, with no upstream configured, the reply is REFUSED at once (what CoreDNS
answers for a zone no server block serves).
"""

from __future__ import annotations

import asyncio
import logging
import struct
import time
from typing import Any

from dnslib import QTYPE, RCODE, DNSRecord

from pyk8s.api.resources import lookup
from pyk8s.client.informer import Informer, object_key
from pyk8s.dns.records import (DEFAULT_ZONE, SERVICE_NAME_LABEL, ClusterZone, answer, error_reply,
                               service_records)

log = logging.getLogger("pyk8s.dns")
SERVICES = lookup("", "v1", "services")
ENDPOINT_SLICES = lookup("discovery.k8s.io", "v1", "endpointslices")
FORWARD_CACHE_LIMIT = 10_000
FORWARD_CACHE_MAX_TTL = 30.0
FORWARD_TIMEOUT = 2.0


def read_resolv_conf(path: str) -> list[str]:
    """Nameservers of a resolv.conf (what CoreDNS's `forward . /etc/resolv.conf` uses)."""
    servers = []
    try:
        with open(path) as handle:
            for line in handle:
                fields = line.split()
                if len(fields) >= 2 and fields[0] == "nameserver":
                    servers.append(fields[1])
    except OSError:
        pass
    return servers


def _address(server: str) -> tuple[str, int]:
    if server.startswith("["):
        host, _, port = server[1:].partition("]:")
        return host, int(port or 53)
    if server.count(":") == 1:
        host, port = server.split(":")
        return host, int(port)
    return server, 53


class _UpstreamProtocol(asyncio.DatagramProtocol):
    def __init__(self, reply: asyncio.Future):
        self.reply = reply

    def datagram_received(self, data: bytes, addr: Any) -> None:
        if not self.reply.done():
            self.reply.set_result(data)

    def error_received(self, exc: Exception) -> None:
        if not self.reply.done():
            self.reply.set_exception(exc)


class Forwarder:
    """Forwards queries for names outside the cluster to `upstreams`, first that answers."""

    def __init__(self, upstreams: list[str]):
        self.upstreams = [_address(server) for server in upstreams]
        self._cache: dict[bytes, tuple[bytes, float]] = {}
        self.forwarded = 0

    async def resolve(self, data: bytes, *, tcp: bool = False) -> bytes:
        if not self.upstreams:
            return error_reply(data, RCODE.REFUSED) or b""
        key = data[2:]
        cached = self._cache.get(key)
        now = time.monotonic()
        if cached is not None and cached[1] > now:
            return data[:2] + cached[0]
        self.forwarded += 1
        for host, port in self.upstreams:
            try:
                reply = await asyncio.wait_for(self._ask(host, port, data, tcp), FORWARD_TIMEOUT)
            except (OSError, asyncio.TimeoutError, EOFError) as error:
                log.debug("upstream %s:%d failed: %s", host, port, error)
                continue
            self._remember(key, reply, now)
            return reply
        return error_reply(data, RCODE.SERVFAIL) or b""

    async def _ask(self, host: str, port: int, data: bytes, tcp: bool) -> bytes:
        loop = asyncio.get_running_loop()
        if tcp:
            reader, writer = await asyncio.open_connection(host, port)
            try:
                writer.write(struct.pack("!H", len(data)) + data)
                length = struct.unpack("!H", await reader.readexactly(2))[0]
                return await reader.readexactly(length)
            finally:
                writer.close()
        reply: asyncio.Future = loop.create_future()
        transport, _ = await loop.create_datagram_endpoint(lambda: _UpstreamProtocol(reply), remote_addr=(host, port))
        try:
            transport.sendto(data)
            return await reply
        finally:
            transport.close()

    def _remember(self, key: bytes, reply: bytes, now: float) -> None:
        try:
            parsed = DNSRecord.parse(reply)
        except Exception:  # noqa: BLE001 - an upstream's odd reply is passed on, not cached
            return
        if parsed.header.tc or parsed.header.rcode not in (RCODE.NOERROR, RCODE.NXDOMAIN):
            return
        ttls = [rr.ttl for rr in parsed.rr] or [rr.ttl for rr in parsed.auth if rr.rtype == QTYPE.SOA]
        ttl = min([FORWARD_CACHE_MAX_TTL, *ttls])
        if ttl <= 0:
            return
        if len(self._cache) >= FORWARD_CACHE_LIMIT:
            self._cache.clear()
        self._cache[key] = (reply[2:], now + ttl)


class _UDPServer(asyncio.DatagramProtocol):
    def __init__(self, dns: "DNSServer"):
        self.dns = dns
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport) -> None:
        self.transport = transport

    def datagram_received(self, data: bytes, addr: Any) -> None:
        dns = self.dns
        dns.queries += 1
        reply = answer(dns.zone, data)
        if reply is None:
            task = asyncio.ensure_future(self._forward(data, addr))
            dns._tasks.add(task)
            task.add_done_callback(dns._tasks.discard)
            return
        self.transport.sendto(reply, addr)

    async def _forward(self, data: bytes, addr: Any) -> None:
        reply = await self.dns.forwarder.resolve(data)
        if reply and self.transport is not None and not self.transport.is_closing():
            self.transport.sendto(reply, addr)


class DNSServer:
    """Cluster DNS over UDP and TCP on (host, port), health and metrics over HTTP."""

    def __init__(self, client, *, zone: str = DEFAULT_ZONE, dns_ip: str = "", host: str = "0.0.0.0",
                 port: int = 53, upstreams: list[str] | None = None, http_ports: tuple[int, ...] = ()):
        self.client = client
        self.zone = ClusterZone(zone, dns_ip)
        self.host, self.port = host, port
        self.http_ports = http_ports
        self.forwarder = Forwarder(upstreams or [])
        self.services = Informer(client, SERVICES)
        self.slices = Informer(client, ENDPOINT_SLICES)
        self.queries = 0
        self.ready = False
        self._tasks: set[asyncio.Task] = set()
        self._informer_tasks: list[asyncio.Task] = []
        self._udp: asyncio.DatagramTransport | None = None
        self._servers: list[asyncio.AbstractServer] = []
        self.services.add_handlers(on_add=self._service_changed, on_update=lambda old, new: self._service_changed(new),
                                   on_delete=self._service_deleted)
        self.slices.add_handlers(on_add=self._slice_changed, on_update=self._slice_updated,
                                 on_delete=self._slice_changed)

    # ---- the zone from the informers --------------------------------------------------------
    def _rebuild(self, namespace: str, name: str) -> None:
        key = f"{namespace}/{name}"
        service = self.services.get(key)
        if service is None:
            self.zone.remove_service(key)
            return
        slices = [s for s in self.slices.list(namespace)
                  if (s["metadata"].get("labels") or {}).get(SERVICE_NAME_LABEL) == name]
        self.zone.set_service(key, service_records(service, slices, self.zone.zone))

    def _service_changed(self, service: dict[str, Any]) -> None:
        self._rebuild(service["metadata"]["namespace"], service["metadata"]["name"])

    def _service_deleted(self, service: dict[str, Any]) -> None:
        self.zone.remove_service(object_key(service))

    def _slice_changed(self, endpoint_slice: dict[str, Any]) -> None:
        name = (endpoint_slice["metadata"].get("labels") or {}).get(SERVICE_NAME_LABEL)
        if name:
            self._rebuild(endpoint_slice["metadata"]["namespace"], name)

    def _slice_updated(self, old: dict[str, Any], new: dict[str, Any]) -> None:
        self._slice_changed(old)
        self._slice_changed(new)

    # ---- lifecycle ------------------------------------------------------------------------
    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        for port in self.http_ports:  # /health answers while the informers sync
            self._servers.append(await asyncio.start_server(self._http, self.host, port))
        self._informer_tasks = [asyncio.create_task(self.services.run(), name="dns-services"),
                                asyncio.create_task(self.slices.run(), name="dns-endpointslices")]
        await self.services.synced.wait()
        await self.slices.synced.wait()
        self._udp, _ = await loop.create_datagram_endpoint(lambda: _UDPServer(self), local_addr=(self.host, self.port))
        self.port = self._udp.get_extra_info("sockname")[1]
        self._servers.append(await asyncio.start_server(self._tcp, self.host, self.port))
        self.ready = True
        log.info("cluster DNS for %s answering on %s:%d (upstreams: %s)", self.zone.zone, self.host, self.port,
                 ", ".join(f"{h}:{p}" for h, p in self.forwarder.upstreams) or "none")

    async def stop(self) -> None:
        self.ready = False
        if self._udp is not None:
            self._udp.close()
        for server in self._servers:
            server.close()
        for task in [*self._informer_tasks, *self._tasks]:
            task.cancel()
        await asyncio.gather(*self._informer_tasks, *self._tasks, return_exceptions=True)
        self._servers = []

    # ---- TCP ------------------------------------------------------------------------------
    async def _tcp(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                try:
                    length = struct.unpack("!H", await asyncio.wait_for(reader.readexactly(2), 10))[0]
                    data = await reader.readexactly(length)
                except (asyncio.IncompleteReadError, asyncio.TimeoutError, ConnectionError):
                    return
                self.queries += 1
                reply = answer(self.zone, data, tcp=True)
                if reply is None:
                    reply = await self.forwarder.resolve(data, tcp=True)
                if reply:
                    writer.write(struct.pack("!H", len(reply)) + reply)
                    await writer.drain()
        finally:
            writer.close()

    # ---- HTTP: /health (liveness), /ready (CoreDNS's ready plugin), /metrics ------------------
    async def _http(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            request = await asyncio.wait_for(reader.readline(), 5)
            while (await asyncio.wait_for(reader.readline(), 5)) not in (b"\r\n", b"\n", b""):
                pass
            path = request.split()[1].decode() if len(request.split()) > 1 else "/"
            status, body = "200 OK", "OK\n"
            if path.startswith("/ready") and not self.ready:
                status, body = "503 Service Unavailable", "informers not synced\n"
            elif path.startswith("/metrics"):
                body = (f"# TYPE pyk8s_dns_requests_total counter\npyk8s_dns_requests_total {self.queries}\n"
                        f"# TYPE pyk8s_dns_forward_requests_total counter\n"
                        f"pyk8s_dns_forward_requests_total {self.forwarder.forwarded}\n")
            elif not path.startswith(("/health", "/ready")):
                status, body = "404 Not Found", "not found\n"
            writer.write(f"HTTP/1.1 {status}\r\nContent-Type: text/plain\r\nContent-Length: {len(body)}\r\n"
                         f"Connection: close\r\n\r\n{body}".encode())
            await writer.drain()
        except (asyncio.TimeoutError, ConnectionError, IndexError):
            pass
        finally:
            writer.close()
