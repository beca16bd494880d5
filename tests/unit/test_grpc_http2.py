"""Our own gRPC-over-HTTP/2 client (grpcclient/http2.py) against grpcio's server:
unary calls, status codes and messages, large messages in both directions (flow control,
frame splitting), concurrency, deadlines, and a server that goes away between calls."""

from __future__ import annotations

import asyncio
import os
import tempfile

import grpc
import pytest

from pyk8s.grpcclient import hpack
from pyk8s.kubelet.cri.client import CRIClient, CRIError
from pyk8s.grpcclient.http2 import GrpcChannel, GrpcError


def _handler(method: str, behaviour):
    async def unary(request: bytes, context: grpc.aio.ServicerContext) -> bytes:
        return await behaviour(request, context)
    return grpc.method_handlers_generic_handler("test.Echo", {method: grpc.unary_unary_rpc_method_handler(
        unary, request_deserializer=lambda b: b, response_serializer=lambda b: b)})


async def _echo(request, context):
    return request


async def _double(request, context):
    return request * 2


async def _fail(request, context):
    await context.abort(grpc.StatusCode.NOT_FOUND, "no sandbox \"x\" 100% gone\nreally")


async def _slow(request, context):
    await asyncio.sleep(5)
    return b""


async def _metadata(request, context):
    return str(context.time_remaining()).encode()


async def _invocation_metadata(request, context):
    return repr(sorted((key, value) for key, value in context.invocation_metadata()
                       if key in ("hasleader", "user-agent"))).encode()


async def _chat(requests, context):
    """A streaming method: answers each request with it reversed, "end" ends the call with
    OK, "fail" with an error status after one more message."""
    async for request in requests:
        if request == b"end":
            return
        yield request[::-1]
        if request == b"fail":
            await context.abort(grpc.StatusCode.OUT_OF_RANGE, "required revision has been compacted")


def _stream_handler():
    return grpc.method_handlers_generic_handler("test.Echo", {"Chat": grpc.stream_stream_rpc_method_handler(
        _chat, request_deserializer=lambda b: b, response_serializer=lambda b: b)})


async def _server(path: str, *, tls: tuple[bytes, bytes] | None = None) -> grpc.aio.Server:
    server = grpc.aio.server(options=[("grpc.max_receive_message_length", 32 * 1024 * 1024),
                                      ("grpc.max_send_message_length", 32 * 1024 * 1024)])
    for name, behaviour in (("Echo", _echo), ("Double", _double), ("Fail", _fail), ("Slow", _slow),
                            ("Timeout", _metadata), ("Metadata", _invocation_metadata)):
        server.add_generic_rpc_handlers((_handler(name, behaviour),))
    server.add_generic_rpc_handlers((_stream_handler(),))
    if tls is None:
        server.add_insecure_port(f"unix://{path}")
    else:
        server.add_secure_port(path, grpc.ssl_server_credentials([(tls[1], tls[0])]))
    await server.start()
    return server


def run(coroutine_function):
    async def main():
        with tempfile.TemporaryDirectory() as directory:
            path = os.path.join(directory, "grpc.sock")
            server = await _server(path)
            try:
                await coroutine_function(path, server)
            finally:
                await server.stop(None)
    asyncio.run(main())


def test_unary_calls_small_empty_and_large():
    async def scenario(path, server):
        channel = GrpcChannel.unix(path, max_message=32 * 1024 * 1024)
        assert await channel.unary("/test.Echo/Echo", b"hello") == b"hello"
        assert await channel.unary("/test.Echo/Echo", b"") == b""
        big = os.urandom(3 * 1024 * 1024 + 17)  # beyond every initial window and frame size
        assert await channel.unary("/test.Echo/Double", big) == big * 2
        await channel.close()
    run(scenario)


def test_concurrent_calls_share_one_connection():
    async def scenario(path, server):
        channel = GrpcChannel.unix(path, max_message=32 * 1024 * 1024)
        payloads = [os.urandom(size) for size in (1, 100, 70000, 200000, 5, 1 << 20) * 5]
        replies = await asyncio.gather(*(channel.unary("/test.Echo/Echo", p) for p in payloads))
        assert replies == payloads
        assert channel._connection is not None and channel._connection.next_stream_id == 2 * len(payloads) + 1
        await channel.close()
    run(scenario)


def test_status_codes_and_percent_encoded_messages():
    async def scenario(path, server):
        channel = GrpcChannel.unix(path)
        with pytest.raises(GrpcError) as failure:
            await channel.unary("/test.Echo/Fail", b"")
        assert failure.value.code == "NOT_FOUND"
        assert failure.value.details == 'no sandbox "x" 100% gone\nreally'
        with pytest.raises(GrpcError) as failure:
            await channel.unary("/test.Echo/Missing", b"")
        assert failure.value.code == "UNIMPLEMENTED"
        assert await channel.unary("/test.Echo/Echo", b"still usable") == b"still usable"
        await channel.close()
    run(scenario)


def test_deadline_is_sent_and_enforced():
    async def scenario(path, server):
        channel = GrpcChannel.unix(path)
        remaining = float(await channel.unary("/test.Echo/Timeout", b"", timeout=30))
        assert 25 < remaining <= 30
        with pytest.raises(GrpcError) as failure:
            await channel.unary("/test.Echo/Slow", b"", timeout=0.3)
        assert failure.value.code == "DEADLINE_EXCEEDED"
        assert await channel.unary("/test.Echo/Echo", b"after") == b"after"
        await channel.close()
    run(scenario)


def test_response_over_the_size_limit_is_refused():
    async def scenario(path, server):
        channel = GrpcChannel.unix(path, max_message=1024)
        with pytest.raises(GrpcError) as failure:
            await channel.unary("/test.Echo/Double", b"x" * 1000)
        assert failure.value.code == "RESOURCE_EXHAUSTED"
        assert await channel.unary("/test.Echo/Echo", b"ok") == b"ok"
        await channel.close()
    run(scenario)


def test_reconnects_after_the_server_restarts():
    async def main():
        with tempfile.TemporaryDirectory() as directory:
            path = os.path.join(directory, "grpc.sock")
            channel = GrpcChannel.unix(path)
            with pytest.raises(GrpcError) as failure:
                await channel.unary("/test.Echo/Echo", b"nobody there")
            assert failure.value.code == "UNAVAILABLE"
            server = await _server(path)
            assert await channel.unary("/test.Echo/Echo", b"one") == b"one"
            await server.stop(None)
            with pytest.raises(GrpcError) as failure:
                await channel.unary("/test.Echo/Echo", b"down")
            assert failure.value.code == "UNAVAILABLE"
            server = await _server(path)
            assert await channel.unary("/test.Echo/Echo", b"two") == b"two"
            await channel.close()
            await server.stop(None)
    asyncio.run(main())


def test_cri_client_reports_errors_as_cri_errors():
    async def scenario(path, server):
        cri = CRIClient(path)
        with pytest.raises(CRIError) as failure:
            await cri.version()  # the test server has no runtime service
        assert failure.value.code == "UNIMPLEMENTED" and failure.value.method == "Version"
        await cri.close()
    run(scenario)


def test_hpack_decodes_huffman_and_the_dynamic_table():
    # RFC 7541 C.4: requests with Huffman coding, sharing one dynamic table.
    decoder = hpack.Decoder()
    assert decoder.decode(bytes.fromhex("828684418cf1e3c2e5f23a6ba0ab90f4ff")) == [
        (":method", "GET"), (":scheme", "http"), (":path", "/"), (":authority", "www.example.com")]
    assert decoder.decode(bytes.fromhex("828684be5886a8eb10649cbf")) == [
        (":method", "GET"), (":scheme", "http"), (":path", "/"), (":authority", "www.example.com"),
        ("cache-control", "no-cache")]
    assert decoder.decode(bytes.fromhex("828785bf408825a849e95ba97d7f8925a849e95bb8e8b4bf")) == [
        (":method", "GET"), (":scheme", "https"), (":path", "/index.html"), (":authority", "www.example.com"),
        ("custom-key", "custom-value")]
    assert decoder.size == 164
    with pytest.raises(hpack.HpackError):
        decoder.decode(bytes([0x80 | 127, 0x7F]))  # an index past both tables


# ---- a scripted HTTP/2 server for what grpcio's server never sends ------------------------

def _raw_frame(frame_type: int, flags: int, stream_id: int, payload: bytes = b"") -> bytes:
    return len(payload).to_bytes(3, "big") + bytes((frame_type, flags)) + stream_id.to_bytes(4, "big") + payload


class ScriptedServer:
    """Reads the client's frames; `respond(connection_number, stream_id, request, write)`
    answers each complete request."""

    def __init__(self, respond, settings: bytes = b""):
        self.respond, self.settings = respond, settings
        self.connections = 0
        self.received: list[tuple[int, int, int, bytes]] = []

    async def handle(self, reader, writer):
        self.connections += 1
        number = self.connections
        preface = await reader.readexactly(24)
        assert preface == b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
        writer.write(_raw_frame(4, 0, 0, self.settings))
        bodies: dict[int, bytes] = {}
        try:
            while True:
                head = await reader.readexactly(9)
                length, frame_type, flags = int.from_bytes(head[:3], "big"), head[3], head[4]
                stream_id = int.from_bytes(head[5:], "big")
                payload = await reader.readexactly(length)
                self.received.append((number, frame_type, flags, payload))
                if frame_type == 0:
                    bodies[stream_id] = bodies.get(stream_id, b"") + payload
                    if flags & 1:
                        await self.respond(number, stream_id, bodies.pop(stream_id)[5:], writer)
                elif frame_type == 1:
                    bodies.setdefault(stream_id, b"")
        except (asyncio.IncompleteReadError, asyncio.CancelledError, ConnectionError):
            pass
        writer.close()


def _message(data: bytes) -> bytes:
    return b"\x00" + len(data).to_bytes(4, "big") + data


def run_scripted(server: ScriptedServer, scenario):
    async def main():
        with tempfile.TemporaryDirectory() as directory:
            path = os.path.join(directory, "h2.sock")
            listener = await asyncio.start_unix_server(server.handle, path)
            try:
                channel = GrpcChannel.unix(path)
                await scenario(channel)
                await channel.close()
            finally:
                listener.close()
    asyncio.run(main())


def test_continuation_padding_ping_and_split_data():
    async def respond(number, stream_id, request, writer):
        headers = hpack.encode([(":status", "200"), ("content-type", "application/grpc"), ("x-long", "v" * 50)])
        writer.write(_raw_frame(6, 0, 0, b"12345678"))  # PING: must be answered
        writer.write(_raw_frame(1, 0x8, stream_id, bytes([3]) + headers[:10] + b"\x00\x00\x00"))  # padded, no END_HEADERS
        writer.write(_raw_frame(9, 0, stream_id, headers[10:20]))
        writer.write(_raw_frame(9, 0x4, stream_id, headers[20:]))
        body = _message(request[::-1])
        writer.write(_raw_frame(0, 0x8, stream_id, bytes([2]) + body[:3] + b"\x00\x00"))  # padded DATA
        writer.write(_raw_frame(0, 0, stream_id, body[3:]))
        writer.write(_raw_frame(1, 0x5, stream_id, hpack.encode([("grpc-status", "0")])))

    server = ScriptedServer(respond)

    async def scenario(channel):
        assert await channel.unary("/s/M", b"abcdef") == b"fedcba"
        for _ in range(100):  # the PING ACK is on its way to the server
            pongs = [payload for _, frame_type, flags, payload in server.received if frame_type == 6 and flags & 1]
            if pongs:
                break
            await asyncio.sleep(0.01)
        assert pongs == [b"12345678"]
    run_scripted(server, scenario)


def test_goaway_and_refused_streams_are_retried_once_on_a_new_connection():
    async def respond(number, stream_id, request, writer):
        if number == 1:
            writer.write(_raw_frame(7, 0, 0, (0).to_bytes(4, "big") + (0).to_bytes(4, "big")))  # GOAWAY, nothing processed
            return
        if number == 2 and stream_id == 1:
            writer.write(_raw_frame(3, 0, stream_id, (7).to_bytes(4, "big")))  # RST_STREAM REFUSED_STREAM
            return
        writer.write(_raw_frame(1, 0x4, stream_id, hpack.encode([(":status", "200")])))
        writer.write(_raw_frame(0, 0, stream_id, _message(f"{number}/{stream_id}".encode())))
        writer.write(_raw_frame(1, 0x5, stream_id, hpack.encode([("grpc-status", "0")])))

    server = ScriptedServer(respond)

    async def scenario(channel):
        with pytest.raises(GrpcError) as failure:  # GOAWAY, then refused: one retry only
            await channel.unary("/s/M", b"x")
        assert failure.value.code == "UNAVAILABLE" and server.connections == 2
        assert await channel.unary("/s/M", b"x") == b"2/3"  # the refusing connection stays usable
    run_scripted(server, scenario)


def test_sending_waits_for_the_servers_window():
    sent_before_update = []

    async def respond(number, stream_id, request, writer):
        writer.write(_raw_frame(1, 0x4, stream_id, hpack.encode([(":status", "200")])))
        writer.write(_raw_frame(0, 0, stream_id, _message(len(request).to_bytes(4, "big"))))
        writer.write(_raw_frame(1, 0x5, stream_id, hpack.encode([("grpc-status", "0")])))

    # INITIAL_WINDOW_SIZE 10: the client may send 10 bytes until the server opens the window.
    server = ScriptedServer(respond, settings=(4).to_bytes(2, "big") + (10).to_bytes(4, "big"))

    async def scenario(channel):
        assert int.from_bytes(await channel.unary("/s/M", b""), "big") == 0  # the client now has the SETTINGS
        call = asyncio.ensure_future(channel.unary("/s/M", b"y" * 100))
        await asyncio.sleep(0.2)
        data = [p for _, frame_type, _, p in server.received if frame_type == 0]
        sent_before_update.append(sum(len(p) for p in data) - 5)
        assert not call.done()
        connection = channel._connection
        for stream_id in connection.streams:  # the server opens the stream's window
            connection._on_window_update(stream_id, (1000).to_bytes(4, "big"))
        assert int.from_bytes(await call, "big") == 100
        assert sent_before_update == [10]
    run_scripted(server, scenario)


def test_grpc_probe_checks_health_over_tcp():
    from pyk8s.kubelet.probes import ProbeWorker

    async def check(request: bytes, context) -> bytes:
        return b"\x08\x01" if request in (b"", b"\x0a\x02ok") else b"\x08\x02"  # SERVING / NOT_SERVING

    async def main():
        server = grpc.aio.server()
        server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler("grpc.health.v1.Health", {
            "Check": grpc.unary_unary_rpc_method_handler(check, request_deserializer=lambda b: b,
                                                         response_serializer=lambda b: b)}),))
        port = server.add_insecure_port("127.0.0.1:0")
        await server.start()
        try:
            def worker(service: str, probe_port: int) -> ProbeWorker:
                probe = {"grpc": {"port": probe_port, "service": service}}
                return ProbeWorker(None, "liveness", probe, {}, "c1", lambda: None, lambda: "127.0.0.1")
            assert await worker("", port).execute() is True
            assert await worker("ok", port).execute() is True
            assert await worker("sick", port).execute() is False
            await server.stop(None)
            assert await worker("", port).execute() is False  # nobody listening
        finally:
            await server.stop(None)
    asyncio.run(main())


def test_streams_carry_messages_both_ways_beside_unary_calls():
    async def scenario(path, server):
        channel = GrpcChannel.unix(path, max_message=4 * 1024 * 1024)
        stream = await channel.open_stream("/test.Echo/Chat")
        await stream.send(b"abc")
        assert await stream.read() == b"cba"
        big = os.urandom(2 * 1024 * 1024 + 3)  # split over many frames and window updates, both ways
        await stream.send(big)
        assert await channel.unary("/test.Echo/Echo", b"meanwhile") == b"meanwhile"
        assert await stream.read() == big[::-1]
        for word in (b"one", b"two", b"three"):
            await stream.send(word)
        assert [await stream.read() for _ in range(3)] == [b"eno", b"owt", b"eerht"]
        await stream.send(b"end")
        assert await stream.read() is None  # ended with OK
        failing = await channel.open_stream("/test.Echo/Chat")
        await failing.send(b"fail")
        assert await failing.read() == b"liaf"
        with pytest.raises(GrpcError) as failure:
            await failing.read()
        assert failure.value.code == "OUT_OF_RANGE" and "compacted" in failure.value.details
        cancelled = await channel.open_stream("/test.Echo/Chat")
        await cancelled.send(b"x")
        assert await cancelled.read() == b"x"
        cancelled.cancel()
        with pytest.raises(GrpcError) as failure:
            await cancelled.read()
        assert failure.value.code == "CANCELLED"
        assert await channel.unary("/test.Echo/Echo", b"after") == b"after"
        assert channel._connection.streams == {}  # every stream forgotten
        await channel.close()
    run(scenario)


def test_metadata_is_sent_with_every_call():
    async def scenario(path, server):
        channel = GrpcChannel.unix(path, metadata=(("hasleader", "true"),), user_agent="pyk8s-test")
        for _ in range(2):  # the second call reuses the cached header block
            sent = await channel.unary("/test.Echo/Metadata", b"", timeout=5)
            assert b"('hasleader', 'true')" in sent and b"pyk8s-test" in sent
        await channel.close()
    run(scenario)


def test_tls_with_alpn_h2_and_a_verified_server_name(tmp_path):
    from pyk8s.cluster.pki import ensure_ca, ensure_leaf_cert

    ensure_ca(tmp_path / "ca.crt", tmp_path / "ca.key", "test-ca")
    ensure_leaf_cert(tmp_path / "ca.crt", tmp_path / "ca.key", tmp_path / "server.crt", tmp_path / "server.key",
                     common_name="server", server=True, client=False, hosts=["127.0.0.1"])

    async def main():
        import ssl

        from pyk8s.cluster.localcluster import free_port

        port = free_port()
        server = await _server(f"127.0.0.1:{port}", tls=((tmp_path / "server.crt").read_bytes(),
                                                          (tmp_path / "server.key").read_bytes()))
        try:
            context = ssl.create_default_context(cafile=str(tmp_path / "ca.crt"))
            channel = GrpcChannel.tcp("127.0.0.1", port, ssl=context)
            assert await channel.unary("/test.Echo/Echo", b"secret", timeout=5) == b"secret"
            stream = await channel.open_stream("/test.Echo/Chat")
            await stream.send(b"tls")
            assert await stream.read() == b"slt"
            stream.cancel()
            await channel.close()
            untrusted = GrpcChannel.tcp("127.0.0.1", port, ssl=ssl.create_default_context())
            with pytest.raises(GrpcError) as failure:
                await untrusted.unary("/test.Echo/Echo", b"x", timeout=5)
            assert failure.value.code == "UNAVAILABLE" and "CERTIFICATE_VERIFY_FAILED" in failure.value.details
            await untrusted.close()
        finally:
            await server.stop(None)
    asyncio.run(main())


def test_keepalive_ends_a_connection_whose_peer_stopped_answering():
    async def never_answer(number, stream_id, request, writer):
        pass  # and ignores PINGs: like a peer behind a dropped link

    server = ScriptedServer(never_answer)

    async def scenario(channel):
        channel.keepalive, channel.keepalive_timeout = 0.2, 0.3
        stream = await channel.open_stream("/test.Echo/Chat")
        await stream.send(b"hello")
        started = asyncio.get_running_loop().time()
        with pytest.raises(GrpcError) as failure:
            await asyncio.wait_for(stream.read(), 10)
        assert failure.value.code == "UNAVAILABLE" and "keepalive" in failure.value.details
        assert asyncio.get_running_loop().time() - started < 3
        assert any(frame_type == 6 and not flags & 1 for _, frame_type, flags, _ in server.received)  # it pinged

    run_scripted(server, scenario)
