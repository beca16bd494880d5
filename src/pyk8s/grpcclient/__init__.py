"""gRPC clients over our own HTTP/2 (RFC 9113) and HPACK (RFC 7541), in asyncio: the
kubelet's calls to containerd and gRPC health probes, and the etcd store's calls.

Why not grpcio there: grpcio's core, its threads and their allocations cost a process about
13 MB of RSS, and a unary call through grpc.aio costs the caller more CPU than the rest of an
etcd round trip (bench/api.py --datastore etcd). See http2.py for what is supported.
"""
