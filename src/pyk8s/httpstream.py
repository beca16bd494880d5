"""Taking over an HTTP connection after an upgrade (SPDY, or any protocol aiohttp does not
speak), shared by the API server and the kubelet — the role upstream's
apimachinery/pkg/util/httpstream plays for both.

aiohttp parses only WebSocket upgrades itself: for the others, `RawUpgradeReader` becomes
the connection's payload parser and hands every incoming byte to an asyncio.StreamReader
(which pauses the transport when its buffer fills), and `UpgradedResponse` is what the
handler returns once it has written the 101 and the stream to the transport directly.
"""

from __future__ import annotations

import asyncio

from aiohttp import web

COPY_CHUNK = 256 * 1024


class RawUpgradeReader:
    def __init__(self, request: web.BaseRequest, limit: int = 4 * COPY_CHUNK):
        self.reader = asyncio.StreamReader(limit=limit)
        self.reader.set_transport(request.transport)
        request.protocol.set_parser(self)

    def feed_data(self, data: bytes) -> tuple[bool, bytes]:
        self.reader.feed_data(data)
        return False, b""

    def feed_eof(self) -> None:
        self.reader.feed_eof()


class UpgradedResponse(web.StreamResponse):
    def __init__(self):
        super().__init__(status=101)
        self.force_close()

    async def prepare(self, request):  # the 101 head was written already
        return None

    async def write_eof(self, data: bytes = b"") -> None:
        return None
