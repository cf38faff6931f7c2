"""Dataset readers. Each returns a Dataset: `images` (N, C, H, W) uint8 or float32 and
`labels` (N,) float32, held in memory (MNIST- and CIFAR-sized sets fit easily)."""
from __future__ import annotations

import gzip
import os
from dataclasses import dataclass

import numpy as np

from ..errors import NetcliError


@dataclass
class Dataset:
    images: np.ndarray
    labels: np.ndarray
    name: str = ""

    def __len__(self):
        return len(self.labels)

    def subset(self, idx, name):
        return Dataset(self.images[idx], self.labels[idx], name)


class DataError(NetcliError):
    pass


# -- IDX (the MNIST format) ---------------------------------------------------------------------
IDX_TYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def _open_maybe_gz(path):
    for p in (path, path + ".gz"):
        if os.path.exists(p):
            with open(p, "rb") as f:
                raw = f.read()
            if p.endswith(".gz") or raw[:2] == b"\x1f\x8b":
                try:
                    raw = gzip.decompress(raw)
                except (OSError, EOFError) as e:
                    raise DataError(f"{p}: not a valid gzip file: {e}") from None
            return p, raw
    raise DataError(f"{path}: no such file (nor {os.path.basename(path)}.gz)")


def read_idx(path, ndim=None):
    """Parse an IDX file (plain or .gz): 2 zero bytes, a type code, the number of dims, the dims
    as big-endian int32, then the data."""
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
    need = int(np.prod(dims)) * dtype.itemsize
    if len(raw) - head < need:
        raise DataError(f"{shown}: truncated data: header says {dims} ({need} bytes), file has {len(raw) - head}")
    return np.frombuffer(raw, dtype, int(np.prod(dims)), head).reshape(dims)


def load_idx(prefix):
    images = read_idx(prefix + "-images-idx3-ubyte", 3)
    labels = read_idx(prefix + "-labels-idx1-ubyte", 1)
    if len(images) != len(labels):
        raise DataError(f"{prefix}: {len(images)} images but {len(labels)} labels")
    return Dataset(images[:, None, :, :], labels.astype(np.float32), prefix)


# -- npz ------------------------------------------------------------------------------------------
def load_npz(path):
    try:
        with np.load(path, allow_pickle=False) as z:
            missing = [k for k in ("data", "label") if k not in z.files]
            if missing:
                raise DataError(f"{path}: missing array(s) {', '.join(missing)} (found {', '.join(z.files) or 'none'})")
            data, label = z["data"], z["label"]
    except FileNotFoundError:
        raise DataError(f"{path}: no such file") from None
    except (OSError, ValueError) as e:
        raise DataError(f"{path}: not a readable .npz file: {e}") from None
    return Dataset(_nchw(data, path), _labels(label, len(data), path), path)


def _nchw(data, where):
    if data.ndim == 3:
        data = data[:, None]
    if data.ndim != 4:
        raise DataError(f"{where}: data must be (N, C, H, W) or (N, H, W), got shape {data.shape}")
    if data.dtype != np.uint8:
        data = data.astype(np.float32)
    return data


def _labels(label, n, where):
    label = np.asarray(label).reshape(-1)
    if len(label) != n:
        raise DataError(f"{where}: {n} samples but {len(label)} labels")
    return label.astype(np.float32)


# -- HDF5 (Caffe's HDF5Data: a text file listing .h5 files) ------------------------------------
def load_hdf5(listfile):
    try:
        import h5py
    except ImportError:
        raise DataError(f"{listfile}: the hdf5 backend needs h5py: pip install h5py") from None
    try:
        with open(listfile) as f:
            files = [line.strip() for line in f if line.strip()]
    except OSError as e:
        raise DataError(f"{listfile}: cannot read the list of .h5 files: {e.strerror}") from None
    if not files:
        raise DataError(f"{listfile}: lists no .h5 files")
    base = os.path.dirname(listfile)
    datas, labels = [], []
    for name in files:
        path = name if os.path.isabs(name) else os.path.join(base, name)
        try:
            with h5py.File(path, "r") as h:
                for key in ("data", "label"):
                    if key not in h:
                        raise DataError(f"{path}: no dataset '{key}'")
                datas.append(_nchw(np.asarray(h["data"]), path))
                labels.append(_labels(np.asarray(h["label"]), len(datas[-1]), path))
        except OSError as e:
            raise DataError(f"{path}: cannot open HDF5 file: {e}") from None
    return Dataset(np.concatenate(datas), np.concatenate(labels), listfile)


# -- image folders (ImageFolder style) --------------------------------------------------------
IMAGE_EXT = (".png", ".jpg", ".jpeg", ".bmp", ".gif")


def load_images(root):
    try:
        from PIL import Image
    except ImportError:
        raise DataError(f"{root}: the images backend needs Pillow: pip install Pillow") from None
    if not os.path.isdir(root):
        raise DataError(f"{root}: not a folder of class sub-folders")
    classes = sorted(d for d in os.listdir(root) if os.path.isdir(os.path.join(root, d)))
    if not classes:
        raise DataError(f"{root}: no class sub-folders found")
    images, labels, shape = [], [], None
    for ci, c in enumerate(classes):
        for fn in sorted(os.listdir(os.path.join(root, c))):
            if not fn.lower().endswith(IMAGE_EXT):
                continue
            path = os.path.join(root, c, fn)
            try:
                with Image.open(path) as im:
                    a = np.asarray(im.convert("L" if im.mode in ("1", "L", "I", "I;16") else "RGB"))
            except OSError as e:
                raise DataError(f"{path}: cannot read image: {e}") from None
            a = a[None] if a.ndim == 2 else a.transpose(2, 0, 1)
            if shape is None:
                shape = a.shape
            elif a.shape != shape:
                raise DataError(f"{path}: image shape {a.shape} differs from {shape} of the first image "
                                "(all images must have one size)")
            images.append(a)
            labels.append(ci)
    if not images:
        raise DataError(f"{root}: no images ({', '.join(IMAGE_EXT)}) in the class folders")
    ds = Dataset(np.stack(images).astype(np.uint8), np.asarray(labels, np.float32), root)
    ds.classes = classes
    return ds
