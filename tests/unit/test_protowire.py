"""The shared protobuf wire primitives, against values from the protobuf encoding guide."""

from pyk8s.api.protowire import key, length_delimited, varint


def test_varints_as_the_encoding_guide_shows():
    assert varint(0) == b"\x00"
    assert varint(1) == b"\x01"
    assert varint(127) == b"\x7f"
    assert varint(128) == b"\x80\x01"
    assert varint(150) == b"\x96\x01"
    assert varint(300) == b"\xac\x02"
    assert varint(2**63 - 1) == b"\xff" * 8 + b"\x7f"


def test_negative_integers_are_ten_byte_twos_complement():
    assert varint(-1) == b"\xff" * 9 + b"\x01"
    assert len(varint(-2**63)) == 10


def test_keys_and_length_delimited_fields():
    assert key(1, 0) == b"\x08"
    assert key(2, 2) == b"\x12"
    assert key(16, 0) == b"\x80\x01"
    assert length_delimited(2, b"testing") == b"\x12\x07testing"
    assert length_delimited(3, b"") == b"\x1a\x00"
