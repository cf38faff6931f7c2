"""Dataset readers. Each returns a Dataset: `images` (N, C, H, W) uint8 or float32 and
`labels` (N,) float32, held in memory (MNIST- and CIFAR-sized sets fit easily)."""
from __future__ import annotations

import os
import zlib
from dataclasses import dataclass

import numpy as np

from ..blob import memory_budget
from ..errors import NetcliError
from ..config.paths import open_text
from .images import IMAGE_EXT, ImageError, decode


@dataclass
class Dataset:
    images: np.ndarray
    labels: np.ndarray
    name: str = ""
    colors: str = "RGB"          # channel order of 3-channel images: BGR from Caffe's readers (cv::imread)

    def __len__(self):
        return len(self.labels)

    def subset(self, idx, name):
        return Dataset(self.images[idx], self.labels[idx], name, self.colors)


class DataError(NetcliError):
    pass


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


def read_idx(path, ndim=None):
    """Parse an IDX file (plain or .gz): 2 zero bytes, a type code, the number of dims, the dims
    as big-endian int32, then the data. The header is checked against the file's size."""
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


def load_idx(prefix):
    images = read_idx(prefix + "-images-idx3-ubyte", 3)
    labels = read_idx(prefix + "-labels-idx1-ubyte", 1)
    if len(images) != len(labels):
        raise DataError(f"{prefix}: {len(images)} images but {len(labels)} labels")
    return Dataset(_nchw(images, prefix), _labels(labels, len(images), prefix), prefix)


# -- npz ------------------------------------------------------------------------------------------
def load_npz(path):
    from ..io.npzfile import read_npz
    try:
        arrays = read_npz(path, "dataset", names=("data", "label"))
    except NetcliError as e:
        raise DataError(str(e)) from None
    data = arrays["data"]
    return Dataset(_nchw(data, path), _labels(arrays["label"], len(data), path), path)


def _nchw(data, where):
    """Samples as (N, C, H, W), uint8 kept, other numbers as float32; every size positive."""
    data = np.asarray(data)
    if data.dtype.kind not in "uifb":
        raise DataError(f"{where}: data must be numbers, got {data.dtype}")
    if data.ndim == 3:
        data = data[:, None]
    if data.ndim != 4:
        raise DataError(f"{where}: data must be (N, C, H, W) or (N, H, W), got shape {data.shape}")
    if 0 in data.shape:
        raise DataError(f"{where}: data of shape {data.shape} holds no samples or empty images")
    if data.dtype != np.uint8:
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


def check_class_labels(ds, classes, ignore, who):
    """Labels read as class indices must be whole numbers in [0, classes) (or `ignore`): the
    first that is not is an error naming its sample."""
    lab = ds.labels
    bad = (lab != np.floor(lab)) | (lab < 0) | (lab >= classes)
    if ignore is not None:
        bad &= lab != ignore
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        kind = "not a whole number" if lab[i] != np.floor(lab[i]) else f"outside [0, {classes})"
        raise DataError(f"{ds.name}: label {lab[i]:g} of sample {i} is {kind}, but {who} reads labels as "
                        f"class indices 0..{classes - 1}")


# -- HDF5 (Caffe's HDF5Data: a text file listing .h5 files) ------------------------------------
def load_hdf5(listfile):
    try:
        import h5py
    except ImportError:
        raise DataError(f"{listfile}: the hdf5 backend needs h5py: pip install 'netcli[hdf5]'") from None
    try:
        with open_text(listfile) as f:
            files = [line.strip() for line in f if line.strip()]
    except (OSError, UnicodeDecodeError) as e:
        raise DataError(f"{listfile}: cannot read the list of .h5 files: {getattr(e, 'strerror', None) or e}") from None
    if not files:
        raise DataError(f"{listfile}: lists no .h5 files")
    base = os.path.dirname(listfile)
    datas, labels = [], []
    for name in files:
        path = name if os.path.isabs(name) else os.path.join(base, name)
        try:
            with h5py.File(path, "r") as h:
                for key in ("data", "label"):
                    if key not in h or not isinstance(h[key], h5py.Dataset):
                        raise DataError(f"{path}: no dataset '{key}'")
                    if 2 * h[key].size * max(h[key].dtype.itemsize, 4) > memory_budget():
                        raise DataError(f"{path}: dataset '{key}' of shape {h[key].shape} does not fit in memory")
                raw = np.asarray(h["data"])
                sample = raw.shape[1:] if raw.ndim == 2 else None       # feature vectors (N, D)
                datas.append(_nchw(raw.reshape(raw.shape + (1, 1)) if sample else raw, path))
                labels.append(_labels(np.asarray(h["label"]), len(datas[-1]), path))
        except (OSError, ValueError, TypeError, KeyError) as e:
            raise DataError(f"{path}: cannot read HDF5 file: {' '.join(str(e).split())[:160]}") from None
        if datas[-1].shape[1:] != datas[0].shape[1:]:
            raise DataError(f"{path}: samples of shape {datas[-1].shape[1:]}, but {files[0]} has "
                            f"{datas[0].shape[1:]} (every file must hold one sample shape)")
    ds = Dataset(np.concatenate(datas), np.concatenate(labels), listfile)
    ds.sample_shape = sample
    return ds


# -- image folders (ImageFolder style) --------------------------------------------------------
def load_images(root):
    try:
        import PIL  # noqa: F401
    except ImportError:
        raise DataError(f"{root}: the images backend needs Pillow: pip install 'netcli[images]'") from None
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
                a = np.asarray(decode(path))
            except (OSError, ImageError) as e:
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


# -- LMDB and LevelDB (Caffe's convert_imageset / convert_mnist_data output) -----------------------
def _lmdb_records(path):
    try:
        import lmdb
    except ImportError:
        raise DataError(f"{path}: LMDB sources need the lmdb package: pip install 'netcli[lmdb]'") from None
    if not os.path.isfile(os.path.join(path, "data.mdb")):
        raise DataError(f"{path}: not an LMDB database (no data.mdb in the folder)")
    try:
        env = lmdb.open(path, readonly=True, lock=False, readahead=False, subdir=True)
    except lmdb.Error as e:
        raise DataError(f"{path}: cannot open the LMDB database: {e}") from None
    try:
        with env.begin() as txn:
            yield txn.stat()["entries"]
            yield from txn.cursor()
    finally:
        env.close()


def _leveldb_records(path):
    try:
        import plyvel
    except ImportError:
        raise DataError(f"{path}: LevelDB sources need the plyvel package: pip install 'netcli[leveldb]'") from None
    if not os.path.isfile(os.path.join(path, "CURRENT")):
        raise DataError(f"{path}: not a LevelDB database (no CURRENT file in the folder)")
    try:
        db = plyvel.DB(path, create_if_missing=False)
    except plyvel.Error as e:
        raise DataError(f"{path}: cannot open the LevelDB database: {' '.join(str(e).split())[:160]}") from None
    try:
        yield sum(1 for _ in db.iterator(include_value=False))
        yield from db.iterator()
    finally:
        db.close()


def load_db(path, backend="LMDB"):
    """Every Datum of an LMDB or LevelDB database, in key order (as Caffe's cursor reads them)."""
    from ..caffe.datum import parse_datum
    from ..caffe.wire import WireError
    records = _lmdb_records(path) if backend == "LMDB" else _leveldb_records(path)
    n = next(records)
    if n == 0:
        records.close()
        raise DataError(f"{path}: the {backend} database is empty")
    images = labels = None
    try:
        for i, (key, value) in enumerate(records):
            if i >= n:
                break
            try:
                a, label = parse_datum(value)
            except (WireError, OSError, ValueError, SyntaxError) as e:
                raise DataError(f"{path}: record {i} (key {bytes(key)[:40]!r}) is not a valid Datum: {e}") from None
            if images is None:
                need = n * a.nbytes
                if need > memory_budget():
                    raise DataError(f"{path}: {n:,} records of {a.shape} need {need / 2 ** 30:.3g} GB, more "
                                    f"than this machine can hold (netcli keeps datasets in memory)")
                images = np.empty((n,) + a.shape, a.dtype)
                labels = np.empty(n, np.float32)
            elif a.shape != images.shape[1:]:
                raise DataError(f"{path}: record {i} has shape {a.shape}, the first has {images.shape[1:]}")
            images[i], labels[i] = a, label
    finally:
        records.close()
    return Dataset(images, labels, path, "BGR")


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


def load_image_list(listfile, root="", size=(0, 0), color=True):
    """Every image of a list file, resized to `size` (height, width; 0: keep) with bilinear
    interpolation as Caffe's cv::resize, in BGR order (Caffe's) or grey."""
    try:
        from PIL import Image
    except ImportError:
        raise DataError(f"{listfile}: ImageData needs Pillow: pip install 'netcli[images]'") from None
    try:
        with open_text(listfile) as f:
            lines = [(i + 1, line.strip()) for i, line in enumerate(f) if line.strip()]
    except (OSError, UnicodeDecodeError) as e:
        raise DataError(f"{listfile}: cannot read the image list: {getattr(e, 'strerror', None) or e}") from None
    if not lines:
        raise DataError(f"{listfile}: lists no images")
    images, labels, shape = [], [], None
    for number, line in lines:
        name, _, label = line.rpartition(" ")
        try:
            label = int(label)
        except ValueError:
            raise DataError(f"{listfile}:{number}: expected '<image path> <integer label>', got {line[:80]!r}") from None
        path = root + name
        a = read_image(path, color, size, f"{listfile}:{number}: ")
        if shape is None:
            shape = a.shape
            if len(lines) * a.nbytes > memory_budget():
                raise DataError(f"{listfile}: {len(lines):,} images of {a.shape} do not fit in memory")
        elif a.shape != shape:
            raise DataError(f"{listfile}:{number}: image {path} is {a.shape[1]}x{a.shape[2]}, the first is "
                            f"{shape[1]}x{shape[2]}; give new_height and new_width to resize them all")
        images.append(a)
        labels.append(label)
    return Dataset(np.stack(images), np.asarray(labels, np.float32), listfile, "BGR")
