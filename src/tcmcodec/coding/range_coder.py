"""Range coding of integer symbols with table-indexed distributions, memory-safe.

The coder is ``constriction``'s range coder (Bamler, 2022; Rust, bounds-checked: invalid
data gives an error or wrong symbols, never a read outside its buffer). Each symbol has a
value and the index of the :class:`~tcmcodec.coding.tables.TableSet` row that models it.

Order. Within one :meth:`SymbolEncoder.encode` call the symbols are coded grouped by table
index (ascending; original order inside a group), so each group is one vectorised call
with one model; the decoder knows all the indexes of a call beforehand (they come from
earlier data), so it rebuilds the same order.

Escapes. A value outside its table's range is coded as the escape symbol, followed (after
its group) by the value itself: sign, bit length (1..31) and the bits below the leading
one, with uniform models. Values must fit in 31 bits plus sign.

Check. Both sides keep a CRC-32 of the values in call order (each call's values as int32
little-endian, in the order given, not the coding order); the file stores the encoder's,
so a decoder that drifted for any reason is detected instead of showing a wrong image.
"""

from __future__ import annotations

import hashlib
import zlib

import constriction
import numpy as np

from tcmcodec.coding.tables import TableSet

#: largest bit length of an escaped magnitude
MAX_ESCAPE_BITS = 31
#: bits per uniform chunk of an escaped magnitude (constriction's uniform models hold < 2**24)
ESCAPE_CHUNK_BITS = 16

_model = constriction.stream.model


class CorruptStream(ValueError):
    """The coded data cannot be decoded (truncated, damaged or not from this model)."""


class CodingModels:
    """The range coder's models for a :class:`TableSet` (built once per model and table)."""

    def __init__(self, tables: TableSet) -> None:
        self.tables = tables
        self.models = [_model.Categorical(pmf, perfect=False) for pmf in tables.pmfs]

    def __reduce__(self) -> tuple:
        """Copies and pickles rebuild the coder's models from the tables."""
        return (CodingModels, (self.tables,))


_UNIFORM_SIGN = _model.Uniform(2)
_UNIFORM_LENGTH = _model.Uniform(MAX_ESCAPE_BITS + 1)


def _groups(indexes: np.ndarray, count: int) -> tuple[np.ndarray, list[tuple[int, int, int]]]:
    """Coding order (stable sort by table index) and its (table, start, stop) runs."""
    if indexes.size and (indexes.min() < 0 or indexes.max() >= count):
        raise CorruptStream(f"table index out of range 0..{count - 1}")
    order = np.argsort(indexes, kind="stable")
    ordered = indexes[order]
    starts = np.flatnonzero(np.diff(ordered)) + 1
    bounds = [0, *starts.tolist(), ordered.size]
    return order, [(int(ordered[a]), a, b) for a, b in zip(bounds, bounds[1:]) if b > a]


class SymbolEncoder:
    """Collects symbols into one range-coded string."""

    def __init__(self) -> None:
        self._coder = constriction.stream.queue.RangeEncoder()
        self._check = 0
        self._digest = hashlib.sha256()

    def encode(self, values: np.ndarray, indexes: np.ndarray, models: CodingModels) -> None:
        """Code ``values`` (int, 1-D) with the tables ``indexes`` (same length) of ``models``."""
        values = np.ascontiguousarray(values, dtype=np.int64).reshape(-1)
        indexes = np.ascontiguousarray(indexes, dtype=np.int64).reshape(-1)
        if values.shape != indexes.shape:
            raise ValueError("one table index per value is needed")
        if values.size and np.abs(values).max() >= 2**MAX_ESCAPE_BITS:
            raise ValueError("a symbol is too large to code: the latents are broken")
        raw = values.astype("<i4").tobytes()
        self._check = zlib.crc32(raw, self._check)
        self._digest.update(raw)
        tables = models.tables
        order, runs = _groups(indexes, len(tables))
        for table, start, stop in runs:
            chunk = values[order[start:stop]]
            symbols = chunk + tables.offsets[table]
            size = int(tables.sizes[table])
            outside = (symbols < 0) | (symbols >= size)
            symbols[outside] = size
            self._coder.encode(symbols.astype(np.int32), models.models[table])
            for value in chunk[outside].tolist():
                self._encode_escape(value)

    def _encode_escape(self, value: int) -> None:
        magnitude = abs(value)
        length = magnitude.bit_length()
        self._coder.encode(int(value < 0), _UNIFORM_SIGN)
        self._coder.encode(length, _UNIFORM_LENGTH)
        remaining = length - 1
        while remaining > 0:
            bits = min(ESCAPE_CHUNK_BITS, remaining)
            remaining -= bits
            self._coder.encode((magnitude >> remaining) & ((1 << bits) - 1), _model.Uniform(1 << bits))

    @property
    def check(self) -> int:
        """CRC-32 of the values coded so far."""
        return self._check

    @property
    def digest(self) -> str:
        """SHA-256 (hex) of the values coded so far, in the order of :attr:`check`."""
        return self._digest.hexdigest()

    def finish(self) -> bytes:
        """The coded string (little-endian 32-bit words)."""
        return self._coder.get_compressed().astype("<u4").tobytes()


class SymbolDecoder:
    """Reads symbols back from a string made by :class:`SymbolEncoder`."""

    def __init__(self, data: bytes) -> None:
        if len(data) % 4:
            raise CorruptStream("coded string length is not a multiple of 4 bytes")
        self._coder = constriction.stream.queue.RangeDecoder(np.frombuffer(data, dtype="<u4").astype(np.uint32))
        self._check = 0
        self._digest = hashlib.sha256()

    def decode(self, indexes: np.ndarray, models: CodingModels) -> np.ndarray:
        """The values (int64, 1-D) coded with the tables ``indexes``."""
        indexes = np.ascontiguousarray(indexes, dtype=np.int64).reshape(-1)
        tables = models.tables
        order, runs = _groups(indexes, len(tables))
        values = np.empty(indexes.size, dtype=np.int64)
        try:
            for table, start, stop in runs:
                size = int(tables.sizes[table])
                symbols = self._coder.decode(models.models[table], stop - start).astype(np.int64)
                chunk = symbols - tables.offsets[table]
                escaped = np.flatnonzero(symbols == size)
                for position in escaped.tolist():
                    chunk[position] = self._decode_escape()
                values[order[start:stop]] = chunk
        except CorruptStream:
            raise
        except Exception as exc:  # constriction reports invalid data as ValueError / AssertionError
            raise CorruptStream(f"the coded data is invalid ({exc})") from None
        raw = values.astype("<i4").tobytes()
        self._check = zlib.crc32(raw, self._check)
        self._digest.update(raw)
        return values

    def _decode_escape(self) -> int:
        negative = int(self._coder.decode(_UNIFORM_SIGN))
        length = int(self._coder.decode(_UNIFORM_LENGTH))
        if not 1 <= length <= MAX_ESCAPE_BITS:
            raise CorruptStream(f"escaped value of {length} bits")
        magnitude = 1
        remaining = length - 1
        while remaining > 0:
            bits = min(ESCAPE_CHUNK_BITS, remaining)
            remaining -= bits
            magnitude = (magnitude << bits) | int(self._coder.decode(_model.Uniform(1 << bits)))
        return -magnitude if negative else magnitude

    @property
    def check(self) -> int:
        """CRC-32 of the values decoded so far (compare with the encoder's)."""
        return self._check

    @property
    def digest(self) -> str:
        """SHA-256 (hex) of the values decoded so far."""
        return self._digest.hexdigest()
