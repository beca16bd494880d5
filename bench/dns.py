"""Cluster DNS throughput and latency: queries for service names answered per second by
pyk8s.dns's UDP server in this process (one core), and p99 latency, against a trivial
UDP echo server measured in the same run (the floor asyncio UDP sets).

    .venv/bin/python bench/dns.py [--services 1000] [--queries 40000]

The load generator is a separate process (so the server has its core to itself); it
keeps a window of queries in flight and times each one. Passes:
- "plain path": every query parsed and every reply packed by dnslib (records.answer_plain,
  what the server did per query before reply templates), names in random case (DNS 0x20),
  the baseline for the next two;
- "repeated names": the same query bytes again and again;
- "every query different": the case of every name randomised (DNS 0x20), so no two
  queries are the same bytes; the server scans each one and patches the name's reply
  template (packed when the Service was added).
Also timed: building the zone for the Services (what the informer events pay), with the
templates packed ahead and without."""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import os
import socket
import statistics
import time

from dnslib import DNSRecord

import pyk8s.dns.server
from pyk8s.dns.records import ClusterZone, answer, answer_plain, service_records
from pyk8s.dns.server import DNSServer, _UDPServer


def make_zone(count: int, precompute: bool = True) -> ClusterZone:
    zone = ClusterZone("cluster.local", "10.43.0.10", precompute=precompute)
    for index in range(count):
        svc = {"metadata": {"name": f"svc-{index}", "namespace": "default"},
               "spec": {"clusterIP": f"10.43.{index // 250 + 1}.{index % 250 + 1}",
                        "ports": [{"name": "http", "port": 80, "protocol": "TCP"}]}}
        zone.set_service(f"default/svc-{index}", service_records(svc, [], "cluster.local"))
    return zone


def load(port: int, queries: list[bytes], window: int, result) -> None:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.connect(("127.0.0.1", port))
    sock.settimeout(2)
    latencies, sent_at = [], {}
    started = time.perf_counter()
    next_index = 0
    in_flight = 0
    while next_index < len(queries) or in_flight:
        while in_flight < window and next_index < len(queries):
            packet = queries[next_index]
            sent_at[packet[:2]] = time.perf_counter()
            sock.send(packet)
            next_index += 1
            in_flight += 1
        try:
            reply = sock.recv(4096)
        except socket.timeout:
            break
        latencies.append(time.perf_counter() - sent_at.pop(reply[:2]))
        in_flight -= 1
    elapsed = time.perf_counter() - started
    latencies.sort()
    result.put((len(latencies) / elapsed, latencies[int(len(latencies) * 0.99)] * 1000,
                statistics.median(latencies) * 1000, len(latencies)))


class Echo(asyncio.DatagramProtocol):
    def connection_made(self, transport):
        self.transport = transport

    def datagram_received(self, data, addr):
        self.transport.sendto(data, addr)


async def serve_and_measure(kind: str, zone: ClusterZone, queries: list[bytes], window: int):
    loop = asyncio.get_running_loop()
    if kind == "echo":
        transport, _ = await loop.create_datagram_endpoint(Echo, local_addr=("127.0.0.1", 0))
        port = transport.get_extra_info("sockname")[1]
        dns = None
    else:
        dns = DNSServer(client=None, host="127.0.0.1", port=0)
        dns.zone = zone
        pyk8s.dns.server.answer = answer_plain if kind == "plain" else answer
        transport, _ = await loop.create_datagram_endpoint(lambda: _UDPServer(dns), local_addr=("127.0.0.1", 0))
        port = transport.get_extra_info("sockname")[1]
    result = multiprocessing.Queue()
    process = multiprocessing.Process(target=load, args=(port, queries, window, result))
    process.start()
    figures = await loop.run_in_executor(None, result.get)
    process.join()
    transport.close()
    return figures


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--services", type=int, default=1000)
    parser.add_argument("--queries", type=int, default=40000)
    parser.add_argument("--window", type=int, default=8)
    args = parser.parse_args()
    started = time.perf_counter()
    make_zone(args.services, precompute=False)
    records_only = time.perf_counter() - started
    started = time.perf_counter()
    zone = make_zone(args.services)
    with_templates = time.perf_counter() - started
    import random
    random.seed(1)

    def packets(randomise_case: bool) -> list[bytes]:
        out = []
        for index in range(args.queries):
            name = f"svc-{index % args.services}.default.svc.cluster.local"
            if randomise_case:  # DNS 0x20 case randomisation: every query differs
                name = "".join(c.upper() if random.random() < 0.5 else c for c in name)
            query = DNSRecord.question(name, "A")
            query.header.id = index % 65536
            out.append(bytes(query.pack()))
        return out
    repeated, different = packets(False), packets(True)
    print(f"{args.services} services, {args.queries} A queries, {args.window} in flight, UDP on loopback, "
          f"server on one core (pid {os.getpid()})")
    print(f"zone from {args.services} Services: {records_only * 1000:.0f} ms records only, "
          f"{with_templates * 1000:.0f} ms with reply templates packed")
    labels = {"echo": "baseline: UDP echo", "plain": "baseline: plain path (dnslib)",
              "hot": "pyk8s.dns repeated names", "cold": "pyk8s.dns every query different"}
    for kind in ("echo", "plain", "hot", "cold"):
        queries = repeated if kind == "hot" else different
        qps, p99, median, answered = asyncio.run(serve_and_measure(kind, zone, queries, args.window))
        print(f"{labels[kind]:33s} {qps:9.0f} q/s   p50 {median:.3f} ms   p99 {p99:.3f} ms   ({answered} answered)")
    print("goal (issue 10): >= 10000 q/s and p99 <= 2 ms; CoreDNS not measured (no binary from the package "
          "registries here)")


if __name__ == "__main__":
    main()
