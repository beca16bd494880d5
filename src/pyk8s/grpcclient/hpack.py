"""HPACK (RFC 7541), the header compression of HTTP/2, as far as a gRPC client needs it.

`Decoder` reads every header block the server sends: indexed fields, literals with and
without indexing, dynamic table size updates and Huffman-coded strings. It keeps the
connection's dynamic table, so every block must go through the same decoder in the order
received, including blocks of streams we no longer care about. `encode()` writes request
headers as literals without indexing and without Huffman coding: always valid, and our
requests carry a handful of short headers, so there is nothing worth compressing.
"""

from __future__ import annotations


class HpackError(Exception):
    """A header block that does not decode: the connection cannot continue (COMPRESSION_ERROR)."""


_STATIC_NAMES = (
    ":authority :method :method :path :path :scheme :scheme :status :status :status :status :status :status "
    ":status accept-charset accept-encoding accept-language accept-ranges accept access-control-allow-origin age "
    "allow authorization cache-control content-disposition content-encoding content-language content-length "
    "content-location content-range content-type cookie date etag expect expires from host if-match "
    "if-modified-since if-none-match if-range if-unmodified-since last-modified link location max-forwards "
    "proxy-authenticate proxy-authorization range referer refresh retry-after server set-cookie "
    "strict-transport-security transfer-encoding user-agent vary via www-authenticate").split()
_STATIC_VALUES = {2: "GET", 3: "POST", 4: "/", 5: "/index.html", 6: "http", 7: "https", 8: "200", 9: "204",
                  10: "206", 11: "304", 12: "400", 13: "404", 14: "500", 16: "gzip, deflate"}
# RFC 7541 Appendix A: index 1..61.
STATIC_TABLE = tuple((name, _STATIC_VALUES.get(index, "")) for index, name in enumerate(_STATIC_NAMES, 1))

# RFC 7541 Appendix B as code lengths of symbols 0..256 (256 = EOS), one character each
# (length = ord(c) - 48). The code is canonical: codes of one length are consecutive in
# symbol order, each length continuing from the last code of the one before.
_HUFFMAN_LENGTHS = (
    "=GLLLLLLLHNLLNLLLLLLLLNLLLLLLLLL6::<=68;::8;8666555666666678?6<:=67777777777777777777777878=C=>6?56565666"
    "577666567655677777?;>=LDFDDFFFGFGGGGGHGHHFGHGGGGEFGFGGHFEDFFGGEGFFHEFGGEEFEGFGGDFFFGFFGJJDCFGFIJJJKKJHICE"
    "JKKJKHEEJJLKKKDHDEFEEGFFIIHHJGJKJJKKKKKLKKKKKJN"
)


def _huffman_decoding_table() -> tuple[list[int], list[int], list[list[int]]]:
    """Per code length: the first code, and the symbols in code order (canonical decoding)."""
    lengths = [ord(c) - 48 for c in _HUFFMAN_LENGTHS]
    assert len(lengths) == 257
    symbols_by_length: list[list[int]] = [[] for _ in range(31)]
    for symbol, length in enumerate(lengths):
        symbols_by_length[length].append(symbol)
    first_code = [0] * 31
    code = 0
    for length in range(1, 31):
        first_code[length] = code
        code = (code + len(symbols_by_length[length])) << 1
    return first_code, [len(symbols) for symbols in symbols_by_length], symbols_by_length


_FIRST_CODE, _COUNT, _SYMBOLS = _huffman_decoding_table()


def huffman_decode(data: bytes) -> bytes:
    out = bytearray()
    code = length = 0
    for byte in data:
        for shift in range(7, -1, -1):
            code = (code << 1) | ((byte >> shift) & 1)
            length += 1
            offset = code - _FIRST_CODE[length]
            if offset < _COUNT[length]:
                symbol = _SYMBOLS[length][offset]
                if symbol == 256:
                    raise HpackError("EOS symbol in a Huffman-coded string")
                out.append(symbol)
                code = length = 0
            elif length == 30:
                raise HpackError("invalid Huffman code")
    # What is left must be padding: fewer than 8 bits, all ones (a prefix of EOS).
    if length > 7 or code != (1 << length) - 1:
        raise HpackError("invalid Huffman padding")
    return bytes(out)


def _integer(data: bytes, position: int, prefix_bits: int) -> tuple[int, int]:
    limit = (1 << prefix_bits) - 1
    value = data[position] & limit
    position += 1
    if value < limit:
        return value, position
    shift = 0
    while True:
        if position >= len(data):
            raise HpackError("truncated integer")
        byte = data[position]
        position += 1
        value += (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            return value, position
        if shift > 28:
            raise HpackError("integer too large")


def _string(data: bytes, position: int) -> tuple[str, int]:
    if position >= len(data):
        raise HpackError("truncated string")
    huffman = data[position] & 0x80
    length, position = _integer(data, position, 7)
    end = position + length
    if end > len(data):
        raise HpackError("truncated string")
    raw = data[position:end]
    # Latin-1 keeps one character per octet: the table's sizes are counted in octets.
    return (huffman_decode(raw) if huffman else raw).decode("latin-1"), end


class Decoder:
    def __init__(self, max_table_size: int = 4096):
        self.max_allowed = max_table_size  # what our SETTINGS_HEADER_TABLE_SIZE allows
        self.max_size = max_table_size
        self.size = 0
        self.dynamic: list[tuple[str, str]] = []  # newest first: index 62, 63, ...

    def _entry(self, index: int) -> tuple[str, str]:
        if 1 <= index <= len(STATIC_TABLE):
            return STATIC_TABLE[index - 1]
        position = index - len(STATIC_TABLE) - 1
        if 0 <= position < len(self.dynamic):
            return self.dynamic[position]
        raise HpackError(f"header index {index} out of range")

    def _add(self, name: str, value: str) -> None:
        self.dynamic.insert(0, (name, value))
        self.size += len(name) + len(value) + 32
        self._evict()

    def _evict(self) -> None:
        while self.size > self.max_size and self.dynamic:
            name, value = self.dynamic.pop()
            self.size -= len(name) + len(value) + 32

    def decode(self, block: bytes) -> list[tuple[str, str]]:
        headers: list[tuple[str, str]] = []
        position = 0
        while position < len(block):
            first = block[position]
            if first & 0x80:  # indexed header field
                index, position = _integer(block, position, 7)
                headers.append(self._entry(index))
            elif first & 0x40:  # literal with incremental indexing
                index, position = _integer(block, position, 6)
                name, position = (self._entry(index)[0], position) if index else _string(block, position)
                value, position = _string(block, position)
                headers.append((name, value))
                self._add(name, value)
            elif first & 0x20:  # dynamic table size update
                size, position = _integer(block, position, 5)
                if size > self.max_allowed:
                    raise HpackError(f"table size {size} above the allowed {self.max_allowed}")
                self.max_size = size
                self._evict()
            else:  # literal without indexing (0000) or never indexed (0001)
                index, position = _integer(block, position, 4)
                name, position = (self._entry(index)[0], position) if index else _string(block, position)
                value, position = _string(block, position)
                headers.append((name, value))
        return headers


def _encode_integer(value: int, prefix_bits: int, first_byte_flags: int = 0) -> bytes:
    limit = (1 << prefix_bits) - 1
    if value < limit:
        return bytes([first_byte_flags | value])
    out = bytearray([first_byte_flags | limit])
    value -= limit
    while value >= 0x80:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def encode(headers: list[tuple[str, str]]) -> bytes:
    """A header block of literals without indexing (new names, no Huffman); names and
    values are ASCII (gRPC percent-encodes anything else)."""
    out = bytearray()
    for name, value in headers:
        name_bytes, value_bytes = name.encode("latin-1"), value.encode("latin-1")
        out.append(0x00)
        out += _encode_integer(len(name_bytes), 7) + name_bytes
        out += _encode_integer(len(value_bytes), 7) + value_bytes
    return bytes(out)
