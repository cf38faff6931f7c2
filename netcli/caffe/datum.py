"""Caffe's Datum record (an LMDB value): channels, height, width, raw uint8 `data` or
`float_data`, an int label, or an `encoded` image (PNG/JPEG bytes, decoded by Pillow into BGR,
the channel order Caffe's OpenCV decoding gives)."""
from __future__ import annotations

import numpy as np

from . import wire

CHANNELS, HEIGHT, WIDTH, DATA, LABEL, FLOAT_DATA, ENCODED = 1, 2, 3, 4, 5, 6, 7


def parse_datum(buf, mode="auto"):
    """-> (array (C, H, W) uint8 or float32, label int). `mode` decodes an encoded image as it
    is ("auto"), as colour ("RGB": transform_param.force_color) or grey ("L": force_gray)."""
    dims, data, floats, label, encoded = [0, 0, 0], None, [], 0, False
    for number, wt, v in wire.fields(buf):
        if number in (CHANNELS, HEIGHT, WIDTH) and wt == wire.VARINT:
            dims[number - 1] = wire.signed(v, 32)
        elif number == DATA and wt == wire.LENGTH:
            data = v
        elif number == LABEL and wt == wire.VARINT:
            label = wire.signed(v, 32)
        elif number == FLOAT_DATA and wt in (wire.LENGTH, wire.FIXED32):
            floats.append(v)
        elif number == ENCODED and wt == wire.VARINT:
            encoded = bool(v)
    if encoded:
        return decode_image(bytes(data or b""), mode), label
    c, h, w = dims
    if data is not None and len(data):
        if len(data) != c * h * w:
            raise wire.WireError(f"Datum of {c}x{h}x{w} holds {len(data)} bytes")
        return np.frombuffer(data, np.uint8).reshape(c, h, w), label
    values = wire.floats(floats) if floats else np.zeros(0, np.float32)
    if len(values) != c * h * w:
        raise wire.WireError(f"Datum of {c}x{h}x{w} holds {len(values)} float values")
    return values.reshape(c, h, w), label


def decode_image(raw, mode="auto"):
    """PNG/JPEG bytes -> (C, H, W) uint8, colour as BGR (Caffe's order), grey as one channel
    (`mode` "RGB" or "L": always colour, always grey)."""
    from ..data.images import decode
    a = np.asarray(decode(raw, mode))         # only the formats netcli reads; the bomb limit is an error
    return a[None] if a.ndim == 2 else a[:, :, ::-1].transpose(2, 0, 1).copy()


def datum_bytes(array, label):
    """A Datum of raw uint8 (C, H, W) pixels (as Caffe's convert_imageset writes unencoded)."""
    c, h, w = array.shape
    return (wire.put_varint(CHANNELS, c) + wire.put_varint(HEIGHT, h) + wire.put_varint(WIDTH, w) +
            wire.put_bytes(DATA, np.ascontiguousarray(array, np.uint8).tobytes()) + wire.put_varint(LABEL, label))


def encoded_datum_bytes(raw, label):
    """A Datum of an encoded image file's bytes (as Caffe's ReadFileToDatum: data, label, encoded)."""
    return wire.put_bytes(DATA, raw) + wire.put_varint(LABEL, label) + wire.put_varint(ENCODED, 1)
