"""The kubelet's WebSocket framing and channel codecs (pyk8s.kubelet.wsstream): client frames
cut anywhere, masks, fragments, the three channel protocols, and the frames the official
Python client's websocket library reads back."""

from __future__ import annotations

import base64
import os
import struct

import pytest
from websocket import ABNF

from pyk8s.kubelet import wsstream
from pyk8s.kubelet.wsportforward import ports_from_query


def client_frame(opcode: int, payload: bytes, *, fin: bool = True) -> bytes:
    """A masked frame as a client sends it (websocket-client's own encoder)."""
    frame = ABNF(fin=int(fin), opcode=opcode, data=payload)
    frame.get_mask_key = os.urandom
    return frame.format()


def test_accept_key_is_rfc_6455s_example():
    assert wsstream.accept_key("dGhlIHNhbXBsZSBub25jZQ==") == "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="


def test_messages_are_cut_the_same_whatever_the_read_boundaries():
    big = os.urandom(70000)
    stream = (client_frame(ABNF.OPCODE_BINARY, b"\x00hello")
              + client_frame(ABNF.OPCODE_PING, b"ping")
              + client_frame(ABNF.OPCODE_BINARY, b"\x02" + big)
              + client_frame(ABNF.OPCODE_BINARY, b"\x00" + bytes(300))
              + client_frame(ABNF.OPCODE_CLOSE, struct.pack(">H", 1000)))
    whole = wsstream.FrameParser().feed(stream)
    assert whole == [(wsstream.OP_BINARY, b"\x00hello"), (wsstream.OP_PING, b"ping"),
                     (wsstream.OP_BINARY, b"\x02" + big), (wsstream.OP_BINARY, b"\x00" + bytes(300)),
                     (wsstream.OP_CLOSE, struct.pack(">H", 1000))]
    for piece_size in (1, 2, 3, 5, 11, 4096, 65536):
        parser, messages = wsstream.FrameParser(), []
        for start in range(0, len(stream), piece_size):
            messages += parser.feed(stream[start:start + piece_size])
        assert messages == whole, piece_size


def test_fragments_are_joined_and_control_frames_may_come_between_them():
    stream = (client_frame(ABNF.OPCODE_BINARY, b"\x00ab", fin=False)
              + client_frame(ABNF.OPCODE_PING, b"")
              + client_frame(ABNF.OPCODE_CONT, b"cd", fin=False)
              + client_frame(ABNF.OPCODE_CONT, b"ef"))
    assert wsstream.FrameParser().feed(stream) == [(wsstream.OP_PING, b""), (wsstream.OP_BINARY, b"\x00abcdef")]


@pytest.mark.parametrize("stream", [
    bytes((0x80 | wsstream.OP_CONTINUATION, 0x80)) + bytes(4),  # nothing to continue
    bytes((0xC2, 0x80)) + bytes(4),  # a reserved bit (compression was never negotiated)
    bytes((0x09, 0x80)) + bytes(4),  # a fragmented ping
    bytes((0x83, 0x80)) + bytes(4),  # an opcode RFC 6455 reserves
])
def test_broken_framing_is_a_protocol_error(stream):
    with pytest.raises(wsstream.ProtocolError) as raised:
        wsstream.FrameParser().feed(stream)
    assert raised.value.code == wsstream.CLOSE_PROTOCOL_ERROR


def test_a_message_over_the_limit_is_refused_before_it_is_buffered():
    parser = wsstream.FrameParser(max_message=1000)
    with pytest.raises(wsstream.ProtocolError) as raised:
        parser.feed(client_frame(ABNF.OPCODE_BINARY, bytes(1001))[:20])
    assert raised.value.code == wsstream.CLOSE_TOO_BIG


def test_subprotocol_is_the_clients_first_supported_offer():
    assert wsstream.negotiate(["v5.channel.k8s.io", "v4.channel.k8s.io"]) == "v5.channel.k8s.io"
    assert wsstream.negotiate(["channel.k8s.io", "v4.base64.channel.k8s.io"]) == "v4.base64.channel.k8s.io"
    assert wsstream.negotiate([]) == ""  # no offer: binary channels
    assert wsstream.negotiate(["SPDY/3.1+portforward.k8s.io"]) is None
    assert wsstream.offered_protocols(["a, b", "c"]) == ["a", "b", "c"]


def server_frames(data: bytes) -> list[tuple[int, bytes]]:
    """Frames from the server, as websocket-client decodes them."""
    frames, offset = [], 0
    while offset < len(data):
        first, second = data[offset], data[offset + 1]
        length, head = second & 0x7F, 2
        if length == 126:
            length, head = int.from_bytes(data[offset + 2:offset + 4], "big"), 4
        elif length == 127:
            length, head = int.from_bytes(data[offset + 2:offset + 10], "big"), 10
        assert first & 0x80 and not second & 0x80  # final, unmasked
        frames.append((first & 0x0F, data[offset + head:offset + head + length]))
        offset += head + length
    return frames


@pytest.mark.parametrize("length", [0, 1, 124, 125, 126, 65535, 65536, 256 * 1024])
def test_binary_channel_frames_are_built_in_place_in_front_of_the_data(length):
    codec = wsstream.ChannelCodec("v4.channel.k8s.io")
    room = wsstream.MAX_HEAD + 1
    data = os.urandom(length)
    buffer = bytearray(room) + data
    in_place = bytes(codec.encode_in_place(buffer, room, 4, length))
    assert in_place == codec.encode(4, data)
    assert server_frames(in_place) == [(wsstream.OP_BINARY, b"\x04" + data)]


def test_base64_channels_are_text_with_a_digit_for_the_channel_both_ways():
    codec = wsstream.ChannelCodec("v4.base64.channel.k8s.io")
    assert server_frames(codec.encode(1, b"\x50\x00")) == [(wsstream.OP_TEXT, b"1" + base64.b64encode(b"\x50\x00"))]
    room = wsstream.MAX_HEAD + 1
    assert bytes(codec.encode_in_place(bytearray(room) + b"hi", room, 2, 2)) == codec.encode(2, b"hi")
    assert codec.decode(b"2" + base64.b64encode(b"payload")) == ("data", 2, b"payload")
    assert codec.decode(b"0not base64!") is None  # dropped, as upstream drops it


def test_only_v5_has_the_close_signal_and_it_names_one_channel():
    v5, v4 = wsstream.ChannelCodec("v5.channel.k8s.io"), wsstream.ChannelCodec("v4.channel.k8s.io")
    assert v5.decode(bytes((255, 2))) == ("close", 2, b"")
    assert v4.decode(bytes((255, 2))) == ("data", 255, b"\x02")  # just a channel v4 does not have
    assert v5.decode(b"\x00data") == ("data", 0, b"data")
    assert v5.decode(b"") is None
    with pytest.raises(wsstream.ProtocolError):
        v5.decode(bytes((255, 2, 4)))


def test_ports_are_read_as_upstreams_kubelet_reads_them():
    assert ports_from_query(["80", "8080,9090"]) == [80, 8080, 9090]
    for values, message in (([], 'query parameter "port" is required'),
                            ([""], 'query parameter "port" cannot be empty'),
                            (["80,x"], 'unable to parse "80,x" as a port: strconv.ParseUint: parsing "x": '
                                       "invalid syntax"),
                            (["70000"], 'unable to parse "70000" as a port: strconv.ParseUint: parsing "70000": '
                                        "value out of range"),
                            (["0"], 'port "0" must be > 0')):
        with pytest.raises(ValueError) as raised:
            ports_from_query(values)
        assert str(raised.value) == message
