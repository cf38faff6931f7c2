"""IDX and .npz sources as a Dataset: `images` (N, C, H, W) uint8 or float32 (memory-mapped from
an uncompressed file, read as indexed; in memory from a .gz) and `labels` (N,) float32; the Dataset is also a
reader (netcli/data/readers.py: shape, dtype, read). Reading single images (Caffe's cv::imread)."""
from __future__ import annotations

import math
import os
import zlib
from dataclasses import dataclass

import numpy as np

from ..blob import memory_budget
from ..errors import NetcliError
from .images import ImageError, decode


@dataclass
class Dataset:
    images: np.ndarray
    labels: np.ndarray
    name: str = ""
    colors: str = "RGB"          # channel order of 3-channel images: BGR from Caffe's readers (cv::imread)
    sample_shape: tuple | None = None      # feature vectors (D,): the top is (B, D)
    one_process = False
    decodes = False

    def __len__(self):
        return len(self.labels)

    @property
    def shape(self):
        return self.images.shape[1:]

    @property
    def dtype(self):
        return np.dtype(np.uint8) if self.images.dtype == np.uint8 else np.dtype(np.float32)

    def read(self, indices):
        """(images, labels) of samples `indices`; a memory-mapped file's numbers become float32
        here, checked finite (the first that is not: one line naming its sample)."""
        x = self.images[indices]
        if x.dtype != np.uint8 and x.dtype != np.float32:
            x = x.astype(np.float32)
            bad = ~np.isfinite(x).reshape(len(x), -1).all(axis=1)
            if bad.any():
                raise DataError(f"{self.name}: sample {int(np.asarray(indices)[np.flatnonzero(bad)[0]])} holds a value "
                                "that is not finite (NaN or inf, maybe beyond float32)")
        return x, self.labels[indices]

    def subset(self, idx, name):
        if isinstance(self.images, FileRows):          # a part of a file stays in the file
            return Subset(self, np.asarray(idx, np.int64), name)
        return Dataset(self.images[idx], self.labels[idx], name, self.colors, self.sample_shape)


class DataError(NetcliError):
    pass


class Subset:
    """The samples `indices` of `base`, renumbered 0..len-1 (validation_split's parts)."""

    def __init__(self, base, indices, name):
        self.base, self.indices, self.name = base, indices, name
        self.shape, self.dtype, self.colors = base.shape, base.dtype, base.colors
        self.sample_shape, self.one_process, self.decodes = base.sample_shape, base.one_process, base.decodes
        self.labels = None if base.labels is None else base.labels[indices]

    def __len__(self):
        return len(self.indices)

    @property
    def images(self):                # all of them, in memory (tests, small sets)
        return self.read(np.arange(len(self)))[0]

    def read(self, indices):
        return self.base.read(self.indices[np.asarray(indices, np.int64)])

    def subset(self, indices, name):
        return Subset(self.base, self.indices[np.asarray(indices, np.int64)], name)


class FileRows:
    """The rows of a C-order array of `dtype` and `shape` stored in the file `path` at `offset`,
    read with positioned reads as they are indexed (rows[indices] -> an array): memory as the
    batch, not the file, and a file that shrinks later is one line naming it (under a memory map
    it would be a SIGBUS). Opened lazily in each process (decoding workers)."""

    def __init__(self, path, offset, dtype, shape):
        self.path, self.offset, self.dtype, self.shape = path, int(offset), np.dtype(dtype), tuple(shape)
        self.ndim = len(self.shape)
        self.row = math.prod(int(d) for d in self.shape[1:]) * self.dtype.itemsize

    def __len__(self):
        return self.shape[0]

    def __getstate__(self):
        return {k: v for k, v in self.__dict__.items() if k != "_h"}

    def __array__(self, dtype=None, copy=None):
        a = self[np.arange(len(self))]
        return a if dtype is None else a.astype(dtype)

    def __getitem__(self, idx):
        if isinstance(idx, tuple) and idx == (slice(None), None):         # (N, H, W) -> (N, 1, H, W)
            return FileRows(self.path, self.offset, self.dtype, self.shape[:1] + (1,) + self.shape[1:])
        if isinstance(idx, (int, np.integer)):
            return self[[idx]][0]
        if not isinstance(idx, (list, np.ndarray)) or np.asarray(idx).dtype.kind not in "iu":
            return np.asarray(self)[idx]                 # slices and the rest: all of it, then indexed
        idx = np.asarray(idx, np.int64).reshape(-1)
        u, back = np.unique(idx, return_inverse=True)
        out = np.empty((len(u),) + self.shape[1:], self.dtype)
        flat = out.reshape(-1).view(np.uint8)
        h = getattr(self, "_h", None)
        if h is None or h[0] != os.getpid():
            try:
                h = self._h = (os.getpid(), open(self.path, "rb", buffering=0))
            except OSError as e:
                raise DataError(f"{self.path}: cannot read: {e.strerror or e}") from None
        first = 0
        for stop in list(np.flatnonzero(np.diff(u) != 1) + 1) + [len(u)]:       # runs of consecutive rows
            want = (stop - first) * self.row
            try:
                got = os.pread(h[1].fileno(), want, self.offset + int(u[first]) * self.row)
            except OSError as e:
                raise DataError(f"{self.path}: cannot read: {e.strerror or e}") from None
            if len(got) != want:
                raise DataError(f"{self.path}: ends before sample {int(u[first]) + len(got) // max(self.row, 1)}: "
                                "the file was truncated or changed after it was opened")
            flat[first * self.row:stop * self.row] = np.frombuffer(got, np.uint8)
            first = stop
        return out[back]


# -- IDX (the MNIST format) ---------------------------------------------------------------------
IDX_TYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def _open_maybe_gz(path):
    for p in (path, path + ".gz"):
        if os.path.isfile(p):
            try:
                with open(p, "rb") as f:
                    raw = f.read()
            except OSError as e:
                raise DataError(f"{p}: cannot read: {e.strerror or e}") from None
            if p.endswith(".gz") or raw[:2] == b"\x1f\x8b":
                raw = _gunzip(raw, p)
            return p, raw
    raise DataError(f"{path}: no such file (nor {os.path.basename(path)}.gz)")


def _gunzip(raw, where):
    """Decompress a gzip file, refusing more than half this machine's memory of output."""
    cap = memory_budget()
    out, d = [], zlib.decompressobj(16 + zlib.MAX_WBITS)
    size = 0
    try:
        while raw:
            chunk = d.decompress(raw, 1 << 24)
            size += len(chunk)
            if size > cap:
                raise DataError(f"{where}: decompresses to more than {cap / 2 ** 30:.3g} GB (half this machine's memory)")
            out.append(chunk)
            raw = d.unconsumed_tail
            if d.eof:
                break
        if not d.eof:
            raise DataError(f"{where}: truncated gzip file")
    except zlib.error as e:
        raise DataError(f"{where}: not a valid gzip file: {e}") from None
    return b"".join(out)


def read_idx(path, ndim=None, rows=False):
    """Parse an IDX file (plain or .gz): 2 zero bytes, a type code, the number of dims, the dims
    as big-endian int32, then the data. The header is checked against the file's size. `rows`:
    an uncompressed file comes back as FileRows (read as batches need it), not read."""
    mapped = _idx_rows(path, ndim) if rows else None
    if mapped is not None:
        return mapped
    shown, raw = _open_maybe_gz(path)
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in IDX_TYPES:
        magic = raw[:4].hex() if len(raw) >= 4 else raw.hex()
        raise DataError(f"{shown}: bad magic number 0x{magic} (not an IDX file)")
    dtype, nd = np.dtype(IDX_TYPES[raw[2]]), raw[3]
    if ndim is not None and nd != ndim:
        raise DataError(f"{shown}: expected an IDX file of {ndim} dimensions, got {nd}")
    head = 4 + 4 * nd
    if len(raw) < head:
        raise DataError(f"{shown}: truncated header")
    dims = tuple(int(d) for d in np.frombuffer(raw, ">i4", nd, 4))
    if any(d <= 0 for d in dims):
        raise DataError(f"{shown}: the header's dimensions {dims} must all be positive")
    count = 1
    for d in dims:
        count *= d
    need = count * dtype.itemsize
    if len(raw) - head != need:
        raise DataError(f"{shown}: the header says {dims} ({need:,} bytes of data), the file holds "
                        f"{len(raw) - head:,}: truncated or damaged")
    return np.frombuffer(raw, dtype, count, head).reshape(dims)


def _idx_rows(path, ndim):
    """The data of the uncompressed IDX file `path` as FileRows (read as indexed), once its header is
    checked against its size (by read_idx's own checks on the header alone); None for a .gz."""
    try:
        with open(path, "rb") as f:
            head = f.read(4)
            if len(head) < 4 or head[:2] == b"\x1f\x8b" or head[0] or head[1] or head[2] not in IDX_TYPES:
                return None                       # gzip or damaged: read_idx says what it is
            head += f.read(4 * head[3])
            size = os.fstat(f.fileno()).st_size
    except OSError:
        return None
    dtype, nd = np.dtype(IDX_TYPES[head[2]]), head[3]
    if len(head) < 4 + 4 * nd or (ndim is not None and nd != ndim):
        return None
    dims = tuple(int(d) for d in np.frombuffer(head, ">i4", nd, 4))
    if any(d <= 0 for d in dims) or size - len(head) != math.prod(int(d) for d in dims) * dtype.itemsize:
        return None
    return FileRows(path, len(head), dtype, dims)


def load_idx(prefix):
    images = read_idx(prefix + "-images-idx3-ubyte", 3, rows=True)
    labels = read_idx(prefix + "-labels-idx1-ubyte", 1)
    if len(images) != len(labels):
        raise DataError(f"{prefix}: {len(images)} images but {len(labels)} labels")
    return Dataset(_nchw(images, prefix), _labels(labels, len(images), prefix), prefix)


# -- npz ------------------------------------------------------------------------------------------
def load_npz(path):
    from ..io.npzfile import read_npz
    data = npz_rows(path, "data")
    try:
        arrays = read_npz(path, "dataset", names=("label",) if data is not None else ("data", "label"))
    except NetcliError as e:
        raise DataError(str(e)) from None
    data = arrays["data"] if data is None else data
    return Dataset(_nchw(data, path), _labels(arrays["label"], len(data), path), path)


# -- uncompressed .npz members, memory-mapped -------------------------------------------------
def npz_rows(path, name):
    """Member `name` of the .npz at `path` as FileRows (read as indexed) when it is stored
    uncompressed (np.savez), else None. Its header is checked against the member's size."""
    import struct
    import zipfile
    try:
        with zipfile.ZipFile(path) as z:
            info = z.getinfo(name + ".npy")
        if info.compress_type != zipfile.ZIP_STORED:
            return None
        with open(path, "rb") as f:
            f.seek(info.header_offset)
            head = f.read(30)
            if len(head) != 30 or head[:4] != b"PK\x03\x04":
                return None
            start = info.header_offset + 30 + sum(struct.unpack("<HH", head[26:30]))
            f.seek(start)
            version = np.lib.format.read_magic(f)
            read = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
            shape, fortran, dtype = read(f)
            offset = f.tell()
    except Exception:                # noqa: BLE001 -- damaged (even the header's tokens): read_npz says what is wrong
        return None
    count = math.prod(int(d) for d in shape)
    if fortran or dtype.hasobject or offset - start + count * dtype.itemsize != info.file_size or count == 0:
        return None
    return FileRows(path, offset, dtype, shape)


def _nchw(data, where):
    """Samples as (N, C, H, W), uint8 kept, other numbers as float32; every size positive."""
    data = data if isinstance(data, FileRows) else np.asarray(data)
    if data.dtype.kind not in "uifb":
        raise DataError(f"{where}: data must be numbers, got {data.dtype}")
    if data.ndim == 3:
        data = data[:, None]
    if data.ndim != 4:
        raise DataError(f"{where}: data must be (N, C, H, W) or (N, H, W), got shape {data.shape}")
    if 0 in data.shape:
        raise DataError(f"{where}: data of shape {data.shape} holds no samples or empty images")
    if data.dtype != np.uint8 and not isinstance(data, FileRows):    # a file: as read (Dataset.read)
        data = data.astype(np.float32)
        if not np.isfinite(data).all():
            i = int(np.flatnonzero(~np.isfinite(data).reshape(len(data), -1).all(axis=1))[0])
            raise DataError(f"{where}: sample {i} holds a value that is not finite (NaN or inf, maybe beyond float32)")
    return data


def _labels(label, n, where):
    label = np.asarray(label)
    if label.dtype.kind not in "uifb":
        raise DataError(f"{where}: labels must be numbers, got {label.dtype}")
    label = label.reshape(-1)
    if len(label) != n:
        raise DataError(f"{where}: {n} samples but {len(label)} labels")
    label = label.astype(np.float32)
    bad = ~np.isfinite(label)
    if bad.any():
        raise DataError(f"{where}: label of sample {int(np.flatnonzero(bad)[0])} is not a finite number")
    return label


def check_class_labels(ds, classes, ignore, who, lab=None, samples=None):
    """Labels read as class indices must be whole numbers in [0, classes) (or `ignore`): the
    first that is not is an error naming its sample. `lab`: labels just read, of `samples`
    (a source whose labels are in its records, checked batch by batch); else all of ds.labels."""
    lab = ds.labels if lab is None else lab
    if lab is None:                  # in the records (a Datum database): checked as they are read
        return
    bad = (lab != np.floor(lab)) | (lab < 0) | (lab >= classes)
    if ignore is not None:
        bad &= lab != ignore
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        kind = "not a whole number" if lab[i] != np.floor(lab[i]) else f"outside [0, {classes})"
        raise DataError(f"{ds.name}: label {lab[i]:g} of sample {i if samples is None else int(samples[i])} is {kind}, but {who} reads labels as "
                        f"class indices 0..{classes - 1}")


# -- image lists (Caffe's ImageData: lines '<path> <label>') ------------------------------------
def read_image(path, color=True, size=(0, 0), where=""):
    """One image file as Caffe's cv::imread gives it: (3, H, W) uint8 in BGR order, or (1, H, W)
    grey; resized to `size` (height, width; 0: keep) with bilinear interpolation. Needs Pillow."""
    from PIL import Image
    try:
        im = decode(path, "RGB" if color else "L")
    except (OSError, ImageError) as e:
        raise DataError(f"{where}cannot read image {path}: {e}") from None
    if size[0] and size[1]:
        im = im.resize((size[1], size[0]), Image.BILINEAR)
    a = np.asarray(im)
    return a[None] if a.ndim == 2 else a[:, :, ::-1].transpose(2, 0, 1)
