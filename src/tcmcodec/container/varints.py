"""Canonical LEB128 varints (below 2**32, at most 5 bytes) and a bounds-checked cursor
over a header."""

from __future__ import annotations

from tcmcodec.errors import FormatError
from tcmcodec.container.stream import _MAX_VARINT_BYTES


def _varint(v: int) -> bytes:
    if v < 0 or v >= 2**32:
        raise FormatError(f"value {v} does not fit a .tcm varint")
    out = bytearray()
    while True:
        b = v & 0x7F
        v >>= 7
        if v:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


class _Truncated(Exception):
    pass


class _Malformed(Exception):
    pass


class _Reader:
    """Cursor over the header; raises _Truncated when it runs out of bytes."""

    def __init__(self, data: bytes, pos: int, end: int) -> None:
        self.data = data
        self.pos = pos
        self.end = end  # bytes past here belong to the CRC / are absent

    def u8(self) -> int:
        if self.pos >= self.end:
            raise _Truncated
        v = self.data[self.pos]
        self.pos += 1
        return v

    def take(self, n: int) -> bytes:
        if self.pos + n > self.end:
            raise _Truncated
        v = self.data[self.pos : self.pos + n]
        self.pos += n
        return v

    def varint(self) -> int:
        value = 0
        for i in range(_MAX_VARINT_BYTES):
            b = self.u8()
            value |= (b & 0x7F) << (7 * i)
            if not b & 0x80:
                if i > 0 and b == 0:
                    raise _Malformed("non-canonical varint in header")
                if value >= 2**32:
                    raise _Malformed("varint out of range in header")
                return value
        raise _Malformed("varint longer than 5 bytes in header")
