"""Protocol buffers' wire format, the little of it Caffe's files use: reading a message into
(field number, wire type, value) triples, and writing fields back.

Values: a varint is an int, a length-delimited field a memoryview (a sub-message, a string, or a
packed array), fixed32/fixed64 the raw 4 or 8 bytes. Every read is bounded by the buffer: a
truncated or garbled file is a WireError, never an IndexError or a huge allocation.
"""
from __future__ import annotations

import struct

import numpy as np

VARINT, FIXED64, LENGTH, START_GROUP, END_GROUP, FIXED32 = 0, 1, 2, 3, 4, 5


class WireError(ValueError):
    pass


def read_varint(buf, pos):
    result = shift = 0
    n = len(buf)
    while True:
        if pos >= n:
            raise WireError("truncated varint")
        b = buf[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        if not b & 0x80:
            return result, pos
        shift += 7
        if shift > 63:
            raise WireError("varint longer than 10 bytes")


def fields(buf, runs=()):
    """Yield (number, wire type, value) for each field of one message in `buf`. A run of
    unpacked fixed32 values of a field in `runs` (a float written per field, as old Caffe
    files hold) comes as one item whose value is their float32 array: no Python object per value."""
    buf = memoryview(buf).cast("B") if not isinstance(buf, memoryview) else buf
    pos, n = 0, len(buf)
    while pos < n:
        start = pos
        key, pos = read_varint(buf, pos)
        number, wt = key >> 3, key & 7
        if number == 0:
            raise WireError("field number 0")
        if wt == FIXED32 and number in runs and pos == start + 1 and pos + 4 <= n:
            value, pos = _fixed32_run(buf, start)
        elif wt == VARINT:
            value, pos = read_varint(buf, pos)
        elif wt == LENGTH:
            size, pos = read_varint(buf, pos)
            if pos + size > n:
                raise WireError(f"field {number} runs past the end ({size} bytes, {n - pos} left)")
            value, pos = buf[pos:pos + size], pos + size
        elif wt == FIXED32:
            if pos + 4 > n:
                raise WireError("truncated fixed32")
            value, pos = buf[pos:pos + 4], pos + 4
        elif wt == FIXED64:
            if pos + 8 > n:
                raise WireError("truncated fixed64")
            value, pos = buf[pos:pos + 8], pos + 8
        else:
            raise WireError(f"wire type {wt} (groups are not used by Caffe's files)")
        yield number, wt, value


def _fixed32_run(buf, start):
    """The float32 values of consecutive 5-byte records (one key byte, 4 bytes of value) from
    `start`, and the position after them; chunks double in size, so a run costs its own length."""
    key, n, pos, parts, chunk = buf[start], len(buf), start, [], 16
    while pos + 5 <= n:
        k = min(chunk, (n - pos) // 5)
        block = np.frombuffer(buf, np.uint8, count=5 * k, offset=pos).reshape(k, 5)
        other = block[:, 0] != key
        m = int(other.argmax()) if other.any() else k
        parts.append(block[:m, 1:].copy().view("<f4").reshape(-1))
        pos += 5 * m
        if m < k:
            break
        chunk *= 2
    return (np.concatenate(parts) if len(parts) != 1 else parts[0]), pos


def signed(v, bits=64):
    """A varint read as a two's-complement int32/int64 (a negative int32 is written as 10 bytes,
    sign-extended to 64 bits: its low 32 bits are the value)."""
    v &= (1 << bits) - 1
    return v - (1 << bits) if v >= 1 << (bits - 1) else v


def floats(values):
    """Repeated float field values (packed runs and single fixed32 values) -> float32 array."""
    parts = [v if isinstance(v, np.ndarray) else np.frombuffer(v, "<f4") for v in values]
    return np.concatenate(parts) if len(parts) != 1 else parts[0].copy()


def doubles(values):
    parts = [np.frombuffer(v, "<f8") for v in values]
    return np.concatenate(parts) if len(parts) != 1 else parts[0].copy()


def varints(items):
    """Repeated integer field values: (wire type, value) pairs, packed or not."""
    out = []
    for wt, v in items:
        if wt == VARINT:
            out.append(signed(v))
        else:
            pos = 0
            while pos < len(v):
                x, pos = read_varint(v, pos)
                out.append(signed(x))
    return out


def text(v):
    try:
        return bytes(v).decode("utf-8")
    except UnicodeDecodeError:
        raise WireError("a string field is not UTF-8") from None


# -- writing ----------------------------------------------------------------------------------
def _varint(v):
    if v < 0:
        v += 1 << 64
    out = bytearray()
    while True:
        b = v & 0x7F
        v >>= 7
        if v:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def key(number, wt):
    return _varint(number << 3 | wt)


def put_varint(number, v):
    return key(number, VARINT) + _varint(int(v))


def put_bytes(number, data):
    return key(number, LENGTH) + _varint(len(data)) + bytes(data)


def put_string(number, s):
    return put_bytes(number, s.encode("utf-8"))


def put_float(number, v):
    return key(number, FIXED32) + struct.pack("<f", v)


def put_packed_floats(number, array):
    return put_bytes(number, np.ascontiguousarray(array, "<f4").tobytes())


def put_packed_varints(number, values):
    return put_bytes(number, b"".join(_varint(int(v)) for v in values))
