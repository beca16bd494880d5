"""SPDY/3.1 framing shared by the API server and the kubelet (pyk8s.spdy): frames split and
joined across arbitrary reads, header blocks through one zlib context per direction, and
Go's view of the same bytes (spdystream's frame layout)."""

from __future__ import annotations

import os
import struct
import zlib

from pyk8s import spdy


def test_frames_are_cut_the_same_whatever_the_read_boundaries():
    stream = (spdy.data_frames(1, b"hello")
              + spdy.control_frame(spdy.PING, 0, struct.pack(">I", 7))
              + spdy.data_frames(3, os.urandom(70000), fin=True)
              + spdy.data_frames(1, b"", fin=True))
    whole = spdy.FrameParser().feed(stream)
    assert [(first, flags, len(payload)) for first, flags, payload in whole] == [
        (1, 0, 5), (0x80030006, 0, 4), (3, spdy.FLAG_FIN, 70000), (1, spdy.FLAG_FIN, 0)]
    for piece_size in (1, 3, 7, 8, 9, 4096, 65536):
        parser, frames = spdy.FrameParser(), []
        for start in range(0, len(stream), piece_size):
            frames += parser.feed(stream[start:start + piece_size])
        assert frames == whole, piece_size


def test_a_frame_split_over_many_reads_is_joined_once_complete():
    parser = spdy.FrameParser()
    frame = spdy.data_frames(5, b"x" * 100000)
    assert parser.feed(frame[:4]) == []
    assert parser.feed(frame[4:50000]) == []
    [(stream_id, flags, payload)] = parser.feed(frame[50000:] + frame[:8])
    assert (stream_id, flags, payload) == (5, 0, b"x" * 100000)
    assert parser.feed(frame[8:]) == [(5, 0, b"x" * 100000)]


def test_data_over_sixteen_mib_becomes_several_frames_with_fin_on_the_last():
    data = bytes(range(256)) * (70000)  # 17.9 MB
    frames = spdy.FrameParser().feed(spdy.data_frames(9, data, fin=True))
    assert [len(payload) for _, _, payload in frames] == [spdy.MAX_FRAME_LENGTH, len(data) - spdy.MAX_FRAME_LENGTH]
    assert [flags for _, flags, _ in frames] == [0, spdy.FLAG_FIN]
    assert b"".join(payload for _, _, payload in frames) == data


def test_header_blocks_share_one_zlib_context_per_direction():
    sender, receiver = spdy.HeaderCodec(), spdy.HeaderCodec()
    blocks = [sender.encode({"streamtype": "error", "port": "8080", "requestid": str(n)}) for n in range(3)]
    # later blocks refer back to earlier ones: decoded in order they are whole again
    assert len(blocks[2]) < len(blocks[0])
    assert [receiver.decode(block) for block in blocks] == [
        {"streamtype": "error", "port": "8080", "requestid": str(n)} for n in range(3)]


def test_header_block_layout_is_what_spdystream_writes():
    """Go's framer: a 32-bit count, then 32-bit length-prefixed lower-case names and values,
    deflated with the SPDY/3 dictionary and a sync flush."""
    raw = struct.pack(">I", 2)
    for name, value in (("Port", "80"), ("streamType", "data\0extra")):
        raw += struct.pack(">I", len(name)) + name.encode() + struct.pack(">I", len(value)) + value.encode()
    deflate = zlib.compressobj(zdict=spdy.SPDY3_DICTIONARY)
    block = deflate.compress(raw) + deflate.flush(zlib.Z_SYNC_FLUSH)
    assert spdy.HeaderCodec().decode(block) == {"port": "80", "streamtype": "data"}


def test_control_frame_heads_carry_version_type_flags_and_length():
    syn_reply = spdy.control_frame(spdy.SYN_REPLY, spdy.FLAG_FIN, b"\0\0\0\x03abc")
    assert syn_reply[:8] == bytes([0x80, 0x03, 0x00, 0x02, 0x01, 0x00, 0x00, 0x07])
    [(first, flags, payload)] = spdy.FrameParser().feed(syn_reply)
    assert spdy.is_control(first) and spdy.frame_type(first) == spdy.SYN_REPLY
    assert flags == spdy.FLAG_FIN and spdy.stream_id_of(payload) == 3
    assert spdy.reset_frame(5, spdy.CANCEL) == spdy.control_frame(spdy.RST_STREAM, 0, struct.pack(">II", 5, 5))
    assert spdy.data_frame_head(0x7FFFFFFF, 3, fin=True) == b"\x7f\xff\xff\xff\x01\x00\x00\x03"
