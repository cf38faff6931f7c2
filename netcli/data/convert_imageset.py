"""Caffe's convert_imageset: a list file of `<path> <label>` lines (paths relative to a root
folder) into an LMDB or LevelDB of Datum records, keyed `%08d_<path>` by the line's position
(after the optional shuffle), as Caffe itself writes and reads them:

- raw (the default): channels, height, width and the pixels as uint8 in Caffe's order (BGR,
  channel-major, as cv::imread gives them), optionally resized (bilinear) or made grey;
- `encoded`: the file's own bytes (Datum.encoded), or, when the image is resized, made grey or
  stored as another format (`encode_type`), the image encoded anew in that format.

The database is built in a temporary folder next to its name and renamed when complete: a bad
line or image is one error naming the list file and line, and nothing is left behind. Needs
Pillow ([images]) and lmdb ([lmdb]) or plyvel ([leveldb])."""
from __future__ import annotations

import io
import os

import numpy as np

from ..caffe.datum import datum_bytes, encoded_datum_bytes
from .caffe_db import write_db
from .sources import DataError

ENCODE_TYPES = {"png": "PNG", "jpg": "JPEG", "jpeg": "JPEG", "bmp": "BMP"}   # Pillow's names
JPEG_QUALITY = 95                 # OpenCV's cv::imencode default, which Caffe re-encodes with
INT32 = 2 ** 31


def read_list(listfile):
    """[(path, label, line number)] of a list file: each non-blank line is a path, a space (or
    tab) and an integer label, as Caffe splits it at the last space. Linear in the file's size."""
    from ..config.paths import open_text
    try:
        with open_text(listfile) as f:
            text = f.read()
    except (OSError, UnicodeDecodeError) as e:
        raise DataError(f"{listfile}: cannot read the image list: {getattr(e, 'strerror', None) or e}") from None
    out = []
    for number, line in enumerate(text.splitlines(), 1):
        line = line.replace("\t", " ").strip()
        if not line:
            continue
        name, _, label = line.rpartition(" ")
        name = name.rstrip()
        digits = label[1:] if label[:1] == "-" else label
        if not name or not (digits.isascii() and digits.isdigit()) or not -INT32 <= int(label) < INT32:
            raise DataError(f"{listfile}:{number}: expected '<image path> <integer label>', got {line[:80]!r}")
        out.append((name, int(label), number))
    if not out:
        raise DataError(f"{listfile}: lists no images")
    return out


def _encode_format(encode_type, name):
    """Pillow's format name for --encode_type, or (none given) for the file's extension as Caffe guesses it."""
    kind = (encode_type or os.path.splitext(name)[1][1:]).lower()
    if kind not in ENCODE_TYPES:
        given = f"--encode_type {encode_type}" if encode_type else f"the extension of {name}"
        raise DataError(f"{given}: netcli encodes {', '.join(sorted(ENCODE_TYPES))}")
    return ENCODE_TYPES[kind]


def _image(path, gray, size, where):
    """(Pillow image, was grey) of `path`: as L or RGB, resized to `size` (height, width) when
    both are given."""
    from PIL import Image
    from .images import ImageError, decode
    if not os.path.isfile(path):
        raise DataError(f"{where}{path}: no such image file")
    try:
        im = decode(path, "auto")
    except (OSError, ImageError) as e:
        raise DataError(f"{where}cannot read image {path}: {e}") from None
    grey = im.mode == "L"
    if grey != gray:
        im = im.convert("L" if gray else "RGB")
    if size[0] and size[1]:
        im = im.resize((size[1], size[0]), Image.BILINEAR)
    return im, grey


def _file_bytes(path, where):
    from ..blob import memory_budget
    from .images import open_regular
    try:
        with open_regular(path) as f:
            raw = f.read(memory_budget() + 1)
    except OSError as e:
        raise DataError(f"{where}cannot read image {path}: {e.strerror or e}") from None
    return raw


def _record(path, label, where, gray, size, encoded, encode_type):
    """(Datum bytes, decoded shape (C, H, W)) of one image."""
    im, grey = _image(path, gray, size, where)
    shape = (1 if gray else 3, im.height, im.width)
    if not encoded:
        a = np.asarray(im)
        a = a[None] if gray else a[:, :, ::-1].transpose(2, 0, 1)
        return datum_bytes(a, label), shape
    ext = os.path.splitext(path)[1][1:].lower()
    own = ENCODE_TYPES.get(ext, ext)
    same = not encode_type or ENCODE_TYPES.get(encode_type.lower()) == own     # Caffe goes by the extension
    if not (size[0] and size[1]) and grey == gray and same:
        return encoded_datum_bytes(_file_bytes(path, where), label), shape     # the file as it is
    target = _encode_format(encode_type, path)
    buf = io.BytesIO()
    im.save(buf, format=target, **({"quality": JPEG_QUALITY} if target == "JPEG" else {}))
    return encoded_datum_bytes(buf.getvalue(), label), shape


def convert_imageset(root, listfile, db, resize=(0, 0), shuffle=False, seed=0, gray=False, encoded=False,
                     encode_type="", backend="lmdb", check_size=False, overwrite=False, echo=None):
    """Write the images of `listfile` (paths relative to `root`) into a new database `db`.
    `resize` (height, width): both non-zero to resize; `shuffle` with `seed`: the lines in a
    random order, the same for the same seed. Returns the number of records written."""
    try:
        import PIL  # noqa: F401
    except ImportError:
        raise DataError("convert-imageset needs Pillow: pip install 'netcli[images]'") from None
    if encode_type and not encoded:
        raise DataError("--encode_type is for --encoded databases (raw Datums hold pixels)")
    if encode_type:
        _encode_format(encode_type, "")
    if (resize[0] > 0) != (resize[1] > 0):
        raise DataError("give both --resize_height and --resize_width (or neither), as Caffe resizes only with both")
    lines = read_list(listfile)
    order = np.random.default_rng(seed).permutation(len(lines)) if shuffle else range(len(lines))

    def items():
        first = None
        for i, k in enumerate(order):
            name, label, number = lines[k]
            where = f"{listfile}:{number}: "
            value, shape = _record(os.path.join(root, name), label, where, gray, tuple(resize), encoded, encode_type)
            if first is None:
                first = shape
            elif check_size and shape != first:
                raise DataError(f"{where}image {name} is {shape[1]}x{shape[2]}x{shape[0]}, the first is "
                                f"{first[1]}x{first[2]}x{first[0]} (--check_size; --resize_height/--resize_width "
                                "make them one size)")
            yield f"{i:08d}_{name}".encode("utf-8", "surrogateescape"), value
            if echo and (i + 1) % 1000 == 0:
                echo(f"Processed {i + 1} files.")

    write_db(db, backend, items(), overwrite)
    if echo and len(lines) % 1000:
        echo(f"Processed {len(lines)} files.")
    return len(lines)
