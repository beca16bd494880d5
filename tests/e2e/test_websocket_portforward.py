"""Port-forward over channel WebSockets, as the official Python client
(`kubernetes.stream.portforward`) and other non-kubectl clients speak it: through the API
server to the kubelet, which dials the pod's ports itself.

Two channels per port (data 2i, error 2i+1), each opened by the port number (2 bytes, little
endian); errors in upstream's words on the error channel; the connection closes once every
port's forward has ended. Also the raw protocol: base64 channels, v5's close signal
(half-close reaching the pod) and a refused subprotocol.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import struct
import time
from pathlib import Path

import pytest

from conftest import Kubectl

BUSYBOX = "pyk8s/busybox:1.35"
pytestmark = pytest.mark.skipif(os.geteuid() != 0 or not Path("/usr/bin/containerd").exists(),
                                reason="needs root and containerd")


@pytest.fixture(scope="module")
def kubectl(cluster, tmp_path_factory):
    kubectl = Kubectl(cluster, tmp_path_factory.mktemp("kube-cache"))
    kubectl("wait", "--for=condition=Ready", "node", "--all", "--timeout=90s")
    return kubectl


@pytest.fixture(scope="module")
def web(kubectl):
    """A pod serving a 4 MiB random file over HTTP on 8080 and 8081, and on 7000 the md5 of
    what a connection sent once it is half-closed (busybox nc runs md5sum on it)."""
    script = ("mkdir -p /www && head -c 4194304 /dev/urandom > /www/blob && md5sum /www/blob > /www/blob.md5 && "
              "echo hello > /www/index.html && echo second > /www/other.html && httpd -p 8081 -h /www && "
              'printf "#!/bin/sh\\nexec md5sum\\n" > /md5 && chmod +x /md5 && (nc -ll -p 7000 -e /md5 &) && '
              "exec httpd -f -p 8080 -h /www")
    kubectl("run", "wsweb", f"--image={BUSYBOX}", "--restart=Never",
            "--overrides", json.dumps({"spec": {"terminationGracePeriodSeconds": 1}}), "--", "sh", "-c", script)
    kubectl("wait", "--for=condition=Ready", "pod/wsweb", "--timeout=90s")
    deadline = time.monotonic() + 60
    while kubectl.run("exec", "wsweb", "--", "test", "-s", "/www/blob.md5", check=False).returncode != 0:
        assert time.monotonic() < deadline, "the web pod did not write its files"
        time.sleep(0.2)
    yield "wsweb"
    kubectl("delete", "pod", "wsweb", "--wait=false")


@pytest.fixture(scope="module")
def configuration(cluster):
    from kubernetes import client, config

    configuration = client.Configuration()
    config.load_kube_config(config_file=str(cluster.kubeconfig), client_configuration=configuration)
    return configuration


@pytest.fixture(scope="module")
def core(configuration):
    from kubernetes import client

    with client.ApiClient(configuration) as api:
        yield client.CoreV1Api(api)


def forward(core, pod: str, ports: str):
    from kubernetes.stream import portforward

    return portforward(core.connect_get_namespaced_pod_portforward, pod, "default", ports=ports)


def read_to_end(sock, timeout: float = 60.0) -> bytes:
    sock.settimeout(timeout)
    received = bytearray()
    while chunk := sock.recv(1 << 20):
        received += chunk
    return bytes(received)


def http_get(sock, path: str) -> bytes:
    """The body of GET path on a forwarded socket; the pod's side closes after it."""
    sock.setblocking(True)
    sock.sendall(f"GET {path} HTTP/1.0\r\nHost: pod\r\n\r\n".encode())
    response = read_to_end(sock)
    head, _, body = response.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.") and b" 200 " in head.split(b"\r\n")[0], head
    return body


def test_python_client_fetches_through_two_ports_of_one_session(core, web):
    session = forward(core, web, "8080,8081")
    try:
        first, second = session.socket(8080), session.socket(8081)
        first.setblocking(True)
        second.setblocking(True)
        # Both requests before either answer is read: the two forwards run side by side.
        first.sendall(b"GET /index.html HTTP/1.0\r\n\r\n")
        second.sendall(b"GET /other.html HTTP/1.0\r\n\r\n")
        assert read_to_end(first).endswith(b"\r\n\r\nhello\n")
        assert read_to_end(second).endswith(b"\r\n\r\nsecond\n")
        assert session.error(8080) is None and session.error(8081) is None
    finally:
        session.close()


def test_python_client_large_transfer_arrives_intact(core, kubectl, web):
    checksum = kubectl("exec", web, "--", "cat", "/www/blob.md5").split()[0]
    session = forward(core, web, "8080")
    try:
        body = http_get(session.socket(8080), "/blob")
    finally:
        session.close()
    assert len(body) == 4 * 1024 * 1024
    assert hashlib.md5(body).hexdigest() == checksum


def test_a_port_without_listener_gets_upstreams_error_on_its_error_channel(core, web):
    session = forward(core, web, "9999,8080")
    try:
        refused = session.socket(9999)
        refused.setblocking(True)
        assert read_to_end(refused) == b""  # the client closes the port's socket on an error
        error = session.error(9999)
        assert error is not None
        assert error.startswith("error forwarding port 9999 to pod "), error
        assert "uid : " in error and "connection refused" in error, error
        # the session's other port is unaffected
        assert http_get(session.socket(8080), "/index.html") == b"hello\n"
        assert session.error(8080) is None
    finally:
        session.close()


# ---------------------------------------------------------------- the raw protocol

def open_websocket(configuration, pod: str, query: str, protocol: str):
    from kubernetes.stream.ws_client import create_websocket

    url = configuration.host.replace("https://", "wss://") + \
        f"/api/v1/namespaces/default/pods/{pod}/portforward?{query}"
    return create_websocket(configuration, url, headers={"sec-websocket-protocol": protocol})


def channel_messages(ws) -> list[tuple[int, bytes]]:
    """(opcode, payload) of every message until the server closes the connection."""
    from websocket import ABNF

    ws.settimeout(60)
    messages = []
    while True:
        opcode, frame = ws.recv_data_frame(True)
        if opcode == ABNF.OPCODE_CLOSE:
            assert struct.unpack(">H", frame.data[:2])[0] == 1000
            return messages
        if opcode in (ABNF.OPCODE_BINARY, ABNF.OPCODE_TEXT):
            messages.append((opcode, frame.data))


def test_v5_close_signal_half_closes_the_port_and_the_pod_sees_eof(configuration, web):
    from websocket import ABNF

    ws = open_websocket(configuration, web, "ports=7000", "v5.channel.k8s.io")
    try:
        assert ws.getheaders().get("sec-websocket-protocol") == "v5.channel.k8s.io"
        payload = os.urandom(3 * 1024 * 1024 + 5)
        for start in range(0, len(payload), 1 << 20):
            ws.send(b"\x00" + payload[start:start + (1 << 20)], ABNF.OPCODE_BINARY)
        ws.send(bytes((255, 0)), ABNF.OPCODE_BINARY)  # v5: close channel 0 (our side of port 7000)
        messages = channel_messages(ws)
    finally:
        ws.close()
    port = struct.pack("<H", 7000)
    assert messages[:2] == [(ABNF.OPCODE_BINARY, b"\x00" + port), (ABNF.OPCODE_BINARY, b"\x01" + port)]
    data = b"".join(payload[1:] for _, payload in messages[2:] if payload[0] == 0)
    assert not [payload for _, payload in messages[2:] if payload[0] != 0]  # nothing on the error channel
    assert data.split()[0].decode() == hashlib.md5(payload).hexdigest()


def test_base64_channels_carry_text_messages_both_ways(configuration, web):
    from websocket import ABNF

    ws = open_websocket(configuration, web, "ports=8081", "v4.base64.channel.k8s.io")
    try:
        assert ws.getheaders().get("sec-websocket-protocol") == "v4.base64.channel.k8s.io"
        ws.send("0" + base64.b64encode(b"GET /index.html HTTP/1.0\r\n\r\n").decode(), ABNF.OPCODE_TEXT)
        messages = channel_messages(ws)
    finally:
        ws.close()
    assert all(opcode == ABNF.OPCODE_TEXT for opcode, _ in messages)
    port = base64.b64encode(struct.pack("<H", 8081))
    assert [payload for _, payload in messages[:2]] == [b"0" + port, b"1" + port]
    response = b"".join(base64.b64decode(payload[1:]) for _, payload in messages[2:] if payload[:1] == b"0")
    assert response.startswith(b"HTTP/1.") and response.endswith(b"\r\n\r\nhello\n")


def test_unsupported_subprotocols_and_missing_ports_are_refused(configuration, web):
    from websocket import WebSocketBadStatusException

    with pytest.raises(WebSocketBadStatusException) as refused:
        open_websocket(configuration, web, "ports=8080", "channel.k8s.io")
    assert refused.value.status_code == 403
    assert b"requested protocol(s) are not supported: [channel.k8s.io]" in refused.value.resp_body
    with pytest.raises(WebSocketBadStatusException) as refused:
        open_websocket(configuration, web, "", "v4.channel.k8s.io")
    assert refused.value.status_code == 400
    assert b'query parameter \\"port\\" is required' in refused.value.resp_body

