"""The agent's API load balancer (client/loadbalancer.py): fails over to the next server
when the preferred one cannot be dialled, and follows the live servers' list."""

from __future__ import annotations

import asyncio

from pyk8s.client.loadbalancer import LoadBalancer, endpoint_addresses, parse_server_urls
from pyk8s.cluster.localcluster import free_port


async def _named_server(name: bytes):
    async def answer(reader, writer):
        await reader.read(1)
        writer.write(name)
        await writer.drain()
        writer.close()
    return await asyncio.start_server(answer, "127.0.0.1", 0)


async def _ask(balancer: LoadBalancer) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", balancer.listen_port)
    writer.write(b"?")
    await writer.drain()
    answer = await reader.read()
    writer.close()
    return answer


def test_fails_over_to_a_live_server_and_keeps_it_preferred():
    async def scenario():
        first, second = await _named_server(b"first"), await _named_server(b"second")
        dead = ("127.0.0.1", free_port())
        first_address = ("127.0.0.1", first.sockets[0].getsockname()[1])
        second_address = ("127.0.0.1", second.sockets[0].getsockname()[1])
        balancer = LoadBalancer([dead, first_address, second_address], dial_timeout=1)
        await balancer.start()
        try:
            assert await _ask(balancer) == b"first"
            assert balancer.servers[0] == first_address  # the live one is now preferred
            first.close()
            await first.wait_closed()
            assert await _ask(balancer) == b"second"
            # The live list from the endpoints: configured servers stay as fallbacks, after.
            balancer.update_servers([second_address])
            assert balancer.servers[0] == second_address and dead in balancer.servers
        finally:
            await balancer.stop()
            second.close()
    asyncio.run(scenario())


def test_server_urls_and_endpoint_addresses():
    assert parse_server_urls("https://10.0.0.1:6443, https://10.0.0.2:6443") == [("10.0.0.1", 6443), ("10.0.0.2", 6443)]
    endpoints = {"subsets": [{"addresses": [{"ip": "10.0.0.1"}, {"ip": "10.0.0.2"}], "ports": [{"port": 6443}]}]}
    assert endpoint_addresses(endpoints) == [("10.0.0.1", 6443), ("10.0.0.2", 6443)]
