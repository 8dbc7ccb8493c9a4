"""Byte-level building blocks of the batch data format (batch.py): varints, zigzag,
length-prefixed columns, the compressors, and the decode error with its stable codes.

Varints are unsigned LEB128 (7 bits per byte, least significant group first, high bit =
"more"), at most 10 bytes (values below 2**70; the format never needs more than 2**64).
Signed values are zigzag-mapped first: 0, −1, 1, −2, … → 0, 1, 2, 3, …
"""

from __future__ import annotations

import lzma
import zlib
from enum import IntEnum

MAX_VARINT_BYTES = 10


class BatchErrorCode(IntEnum):
    """Why batch data could not be decoded (or encoded). Stable: 6xxx is the commitment
    layer's range (domain 1xxx–3xxx, engine 4xxx–5xxx, chain 7xxx)."""

    TOO_SHORT = 6001
    BAD_MAGIC = 6002
    UNSUPPORTED_VERSION = 6003
    UNKNOWN_COMPRESSION = 6004
    DECOMPRESSION_FAILED = 6005
    TOO_LARGE = 6006
    CHECKSUM_MISMATCH = 6007
    TRUNCATED = 6008
    TRAILING_BYTES = 6009
    INVALID_VALUE = 6010
    INVALID_COMMAND = 6011
    # encoding
    NOT_CONSECUTIVE = 6101
    AUTHORISATION_MISMATCH = 6102
    UNENCODABLE = 6103


class BatchDecodeError(ValueError):
    """The bytes are not valid batch data. ``code`` (BatchErrorCode) says why; the data
    decodes to nothing (no partial result is ever returned)."""

    def __init__(self, code: BatchErrorCode, message: str) -> None:
        super().__init__(f"{code.name} ({int(code)}): {message}")
        self.code = code
        self.message = message


class BatchEncodeError(ValueError):
    """The commands cannot be encoded as one batch (``code``: BatchErrorCode 61xx)."""

    def __init__(self, code: BatchErrorCode, message: str) -> None:
        super().__init__(f"{code.name} ({int(code)}): {message}")
        self.code = code
        self.message = message


def zigzag(value: int) -> int:
    """Signed → unsigned: 0→0, −1→1, 1→2, −2→3 … (exact for any int)."""
    return value * 2 if value >= 0 else -value * 2 - 1


def unzigzag(value: int) -> int:
    """Inverse of :func:`zigzag`."""
    return value >> 1 if not value & 1 else -((value + 1) >> 1)


class Writer:
    """Appends varints and raw bytes to a bytearray."""

    __slots__ = ("buf",)

    def __init__(self) -> None:
        self.buf = bytearray()

    def uint(self, value: int) -> None:
        """Unsigned LEB128. ``ValueError`` if negative or ≥ 2**70."""
        if value < 0 or value >= 1 << (7 * MAX_VARINT_BYTES):
            raise ValueError(f"varint out of range: {value}")
        buf = self.buf
        while value >= 0x80:
            buf.append((value & 0x7F) | 0x80)
            value >>= 7
        buf.append(value)

    def sint(self, value: int) -> None:
        """Zigzag, then LEB128."""
        self.uint(zigzag(value))

    def byte(self, value: int) -> None:
        self.buf.append(value)

    def raw(self, data: bytes) -> None:
        self.buf += data

    def blob(self, data: bytes) -> None:
        """Length (varint) then the bytes."""
        self.uint(len(data))
        self.buf += data

    def getvalue(self) -> bytes:
        return bytes(self.buf)


class Reader:
    """Reads what :class:`Writer` wrote; every overrun raises BatchDecodeError."""

    __slots__ = ("data", "pos", "what")

    def __init__(self, data: bytes, what: str = "batch") -> None:
        self.data = data
        self.pos = 0
        self.what = what

    def uint(self) -> int:
        data, pos = self.data, self.pos
        value = shift = 0
        for i in range(MAX_VARINT_BYTES):
            if pos + i >= len(data):
                raise BatchDecodeError(BatchErrorCode.TRUNCATED, f"{self.what}: varint runs past the end")
            b = data[pos + i]
            value |= (b & 0x7F) << shift
            if not b & 0x80:
                if b == 0 and i:
                    raise BatchDecodeError(BatchErrorCode.INVALID_VALUE, f"{self.what}: non-minimal varint")
                self.pos = pos + i + 1
                return value
            shift += 7
        raise BatchDecodeError(BatchErrorCode.INVALID_VALUE, f"{self.what}: varint longer than 10 bytes")

    def sint(self) -> int:
        return unzigzag(self.uint())

    def byte(self) -> int:
        if self.pos >= len(self.data):
            raise BatchDecodeError(BatchErrorCode.TRUNCATED, f"{self.what}: byte past the end")
        self.pos += 1
        return self.data[self.pos - 1]

    def raw(self, n: int) -> bytes:
        if n < 0 or self.pos + n > len(self.data):
            raise BatchDecodeError(BatchErrorCode.TRUNCATED, f"{self.what}: {n} bytes past the end")
        self.pos += n
        return bytes(self.data[self.pos - n:self.pos])

    def blob(self) -> bytes:
        return self.raw(self.uint())

    def remaining(self) -> int:
        return len(self.data) - self.pos

    def expect_end(self) -> None:
        if self.pos != len(self.data):
            raise BatchDecodeError(BatchErrorCode.TRAILING_BYTES,
                                   f"{self.what}: {len(self.data) - self.pos} unread bytes")


# ------------------------------------------------------------------------------ compression


class Compression(IntEnum):
    """Compression of the batch body (one byte in the header)."""

    NONE = 0
    DEFLATE = 1  # raw DEFLATE (RFC 1951), zlib wbits = −15, level 9
    LZMA2 = 2  # raw LZMA2 stream (xz's filter 0x21), dictionary 1 MiB, preset 9e


_LZMA_FILTERS = [{"id": lzma.FILTER_LZMA2, "preset": 9 | lzma.PRESET_EXTREME, "dict_size": 1 << 20}]
_LZMA_DECODE_FILTERS = [{"id": lzma.FILTER_LZMA2, "dict_size": 1 << 20}]


def compress(body: bytes, method: Compression) -> bytes:
    """Compress ``body`` with ``method`` (deterministic for a given library version; only
    decoding is part of the format)."""
    if method == Compression.NONE:
        return body
    if method == Compression.DEFLATE:
        c = zlib.compressobj(9, zlib.DEFLATED, -15, 9, zlib.Z_DEFAULT_STRATEGY)
        return c.compress(body) + c.flush()
    if method == Compression.LZMA2:
        return lzma.compress(body, format=lzma.FORMAT_RAW, filters=_LZMA_FILTERS)
    raise ValueError(f"unknown compression {method!r}")


def decompress(payload: bytes, method: int, limit: int) -> bytes:
    """Inverse of :func:`compress`, refusing more than ``limit`` output bytes.

    Raises BatchDecodeError: UNKNOWN_COMPRESSION, DECOMPRESSION_FAILED (corrupt or
    incomplete stream, or bytes after its end), TOO_LARGE.
    """
    if method == Compression.NONE:
        if len(payload) > limit:
            raise BatchDecodeError(BatchErrorCode.TOO_LARGE, f"body larger than {limit} bytes")
        return payload
    try:
        if method == Compression.DEFLATE:
            d = zlib.decompressobj(-15)
            out = d.decompress(payload, limit + 1)
            complete = d.eof and not d.unused_data and not d.unconsumed_tail
        elif method == Compression.LZMA2:
            d = lzma.LZMADecompressor(format=lzma.FORMAT_RAW, filters=_LZMA_DECODE_FILTERS)
            out = d.decompress(payload, limit + 1)
            complete = d.eof and not d.unused_data
        else:
            raise BatchDecodeError(BatchErrorCode.UNKNOWN_COMPRESSION, f"compression method {method}")
    except (zlib.error, lzma.LZMAError) as exc:
        raise BatchDecodeError(BatchErrorCode.DECOMPRESSION_FAILED, str(exc)) from None
    if len(out) > limit:
        raise BatchDecodeError(BatchErrorCode.TOO_LARGE, f"body larger than {limit} bytes")
    if not complete:
        raise BatchDecodeError(BatchErrorCode.DECOMPRESSION_FAILED, "incomplete stream or bytes after its end")
    return out
