"""Streaming readers: a source read record by record, only the samples the next batches need,
so memory is bounded by the prefetch depth, not by the dataset.

A reader is: len(r) samples of raw shape r.shape (C, H, W) and r.dtype (uint8 or float32),
r.labels ((N,) float32 when known without reading the records, else None), r.colors (channel
order), r.name, and r.read(indices) -> (images (n, C, H, W), labels (n,) float32) in the order
of `indices` (repeats allowed). Readers hold only paths and small indexes (keys, file names,
labels) and open their files lazily in each process, so they can be handed to decoding worker
processes (netcli/data/workers.py). Every record is checked against the first record's shape
before it is used; a bad record is one DataError line naming the file and the record."""
from __future__ import annotations

import os

import numpy as np

from ..config.paths import open_text
from .images import IMAGE_EXT, ImageError, decode
from .sources import DataError, Subset, read_image


class Reader:
    name = ""
    colors = "RGB"
    labels = None
    sample_shape = None              # HDF5 feature vectors (D,): the top is (B, D)
    one_process = False              # its files cannot be opened by several processes at once
    decodes = False                  # its records are encoded images (worth decoding workers)

    def __len__(self):
        raise NotImplementedError

    def read(self, indices):
        raise NotImplementedError

    def subset(self, indices, name):
        return Subset(self, np.asarray(indices, np.int64), name)

    def __getstate__(self):          # handles stay in the process that opened them
        return {k: v for k, v in self.__dict__.items() if not k.startswith("_h")}


class _Records(Reader):
    """A reader of records one at a time: `_record(i)` -> ((C, H, W) array, label); the first
    record fixes the shape, every other is checked against it (`_where(i)` names it)."""

    def _first(self):
        a, _ = self._record(0)
        if a.ndim != 3 or 0 in a.shape:
            raise DataError(f"{self._where(0)}: an empty sample ({'x'.join(map(str, a.shape))})")
        self.shape, self.dtype = a.shape, a.dtype

    def read(self, indices):
        indices = np.asarray(indices, np.int64)
        out = np.empty((len(indices),) + self.shape, self.dtype)
        labels = np.empty(len(indices), np.float32)
        for j, i in enumerate(indices):
            a, labels[j] = self._record(int(i))
            if a.shape != self.shape:
                hint = ("; transform_param force_color: true (or force_gray) decodes every image to one "
                        "channel count" if a.shape[0] != self.shape[0] and getattr(self, "mode", None) == "auto" else "")
                raise DataError(f"{self._where(int(i))}: shape {a.shape}, the first record's is {self.shape} "
                                f"(every record must have one shape{hint})")
            out[j] = a
        return out, labels


# -- image lists and folders ------------------------------------------------------------------
class ImageListReader(_Records):
    """Caffe's ImageData list: lines '<path> <label>', images decoded (BGR or grey) and resized
    to `size` (height, width; 0: keep) as each batch needs them. Needs Pillow."""
    colors = "BGR"
    decodes = True

    def __init__(self, listfile, root="", size=(0, 0), color=True):
        try:
            import PIL  # noqa: F401
        except ImportError:
            raise DataError(f"{listfile}: ImageData needs Pillow: pip install 'netcli[images]'") from None
        self.name, self.root, self.size, self.color = listfile, root, tuple(size), color
        try:
            with open_text(listfile) as f:
                lines = [(i + 1, line.strip()) for i, line in enumerate(f) if line.strip()]
        except (OSError, UnicodeDecodeError) as e:
            raise DataError(f"{listfile}: cannot read the image list: {getattr(e, 'strerror', None) or e}") from None
        if not lines:
            raise DataError(f"{listfile}: lists no images")
        self.paths, self.numbers, labels = [], np.empty(len(lines), np.int64), np.empty(len(lines), np.float32)
        for j, (number, line) in enumerate(lines):
            name, _, label = line.rpartition(" ")
            try:
                labels[j] = int(label)
            except ValueError:
                raise DataError(f"{listfile}:{number}: expected '<image path> <integer label>', got {line[:80]!r}") from None
            self.paths.append(root + name)
            self.numbers[j] = number
        self.labels = labels
        self._first()

    def __len__(self):
        return len(self.paths)

    def _where(self, i):
        return f"{self.name}:{self.numbers[i]}: image {self.paths[i]}"

    def _record(self, i):
        return read_image(self.paths[i], self.color, self.size, f"{self.name}:{self.numbers[i]}: "), self.labels[i]

    def read(self, indices):
        try:
            return super().read(indices)
        except DataError as e:
            if "the first record's" in str(e) and not (self.size[0] and self.size[1]):
                raise DataError(f"{e}; give new_height and new_width to resize them all") from None
            raise


class ImageFolderReader(_Records):
    """An ImageFolder-style tree: one sub-folder per class (sorted names: labels 0, 1, ...),
    images in RGB (or grey) as decoded."""
    decodes = True

    def __init__(self, root):
        try:
            import PIL  # noqa: F401
        except ImportError:
            raise DataError(f"{root}: the images backend needs Pillow: pip install 'netcli[images]'") from None
        if not os.path.isdir(root):
            raise DataError(f"{root}: not a folder of class sub-folders")
        self.name = root
        self.classes = sorted(d for d in os.listdir(root) if os.path.isdir(os.path.join(root, d)))
        if not self.classes:
            raise DataError(f"{root}: no class sub-folders found")
        self.paths, labels = [], []
        for ci, c in enumerate(self.classes):
            for fn in sorted(os.listdir(os.path.join(root, c))):
                if fn.lower().endswith(IMAGE_EXT):
                    self.paths.append(os.path.join(root, c, fn))
                    labels.append(ci)
        if not self.paths:
            raise DataError(f"{root}: no images ({', '.join(IMAGE_EXT)}) in the class folders")
        self.labels = np.asarray(labels, np.float32)
        self._first()

    def __len__(self):
        return len(self.paths)

    def _where(self, i):
        return f"{self.paths[i]}: image"

    def _record(self, i):
        try:
            a = np.asarray(decode(self.paths[i]))
        except (OSError, ImageError) as e:
            raise DataError(f"{self.paths[i]}: cannot read image: {e}") from None
        return (a[None] if a.ndim == 2 else a.transpose(2, 0, 1)), self.labels[i]


_OPEN_DBS: dict = {}            # (process, backend, real path) -> [the open LMDB environment or LevelDB, readers using it]


# -- LMDB and LevelDB of Caffe Datums -------------------------------------------------------------
class DBReader(_Records):
    """Caffe's Datum records of an LMDB or LevelDB database, by index into the key list (built
    once, in key order: index i is the record Caffe's cursor reads i-th)."""
    colors = "BGR"

    def __init__(self, path, backend="LMDB", mode="auto"):
        """mode: how encoded images decode ("auto", "RGB" or "L": parse_datum's)."""
        self.name, self.backend, self.mode = path, backend, mode
        self.one_process = backend != "LMDB"          # LevelDB locks its folder for one process
        if backend == "LMDB":
            try:
                import lmdb  # noqa: F401
            except ImportError:
                raise DataError(f"{path}: LMDB sources need the lmdb package: pip install 'netcli[lmdb]'") from None
            if not os.path.isfile(os.path.join(path, "data.mdb")):
                raise DataError(f"{path}: not an LMDB database (no data.mdb in the folder)")
            with self._handle().begin() as txn:
                self.keys = [bytes(k) for k in txn.cursor().iternext(keys=True, values=False)]
        else:
            try:
                import plyvel  # noqa: F401
            except ImportError:
                raise DataError(f"{path}: LevelDB sources need the plyvel package: pip install 'netcli[leveldb]'") from None
            if not os.path.isfile(os.path.join(path, "CURRENT")):
                raise DataError(f"{path}: not a LevelDB database (no CURRENT file in the folder)")
            self.keys = [bytes(k) for k in self._handle().iterator(include_value=False)]
        if not self.keys:
            raise DataError(f"{path}: the {backend} database is empty")
        self.decodes = True
        self._first()

    def _handle(self):
        """The open database, one per database and process (lmdb refuses a second environment,
        LevelDB a second open: its LOCK), shared by the readers of that process and closed when
        the last of them goes (so that the user's own code may open it afterwards)."""
        key = (os.getpid(), self.backend, os.path.realpath(self.name))
        entry = _OPEN_DBS.get(key)
        if entry is not None:
            if self.__dict__.get("_hkey") != key:
                entry[1] += 1
                self._hkey = key
            return entry[0]
        if self.backend == "LMDB":
            import lmdb
            try:
                db = lmdb.open(self.name, readonly=True, lock=False, readahead=False, subdir=True, max_readers=512)
            except lmdb.Error as e:
                raise DataError(f"{self.name}: cannot open the LMDB database: {e}") from None
        else:
            import plyvel
            try:
                db = plyvel.DB(self.name, create_if_missing=False)
            except plyvel.Error as e:
                raise DataError(f"{self.name}: cannot open the LevelDB database: {' '.join(str(e).split())[:160]}") from None
        _OPEN_DBS[key] = [db, 1]
        self._hkey = key
        return db

    def __del__(self):
        try:
            key = self.__dict__.get("_hkey")
            entry = _OPEN_DBS.get(key) if key is not None else None
            if entry is None:
                return
            entry[1] -= 1
            if entry[1] <= 0:
                del _OPEN_DBS[key]
                entry[0].close()
        except Exception:                # at interpreter exit the module's globals may be gone
            pass

    def __len__(self):
        return len(self.keys)

    def _where(self, i):
        return f"{self.name}: record {i} (key {self.keys[i][:40]!r})"

    def _value(self, i):
        db = self._handle()
        if self.backend == "LMDB":
            with db.begin(buffers=False) as txn:
                return txn.get(self.keys[i])
        return db.get(self.keys[i])

    def _record(self, i):
        from ..caffe.datum import parse_datum
        from ..caffe.wire import WireError
        value = self._value(i)
        if value is None:
            raise DataError(f"{self._where(i)}: the record is gone (the database changed while training)")
        try:
            a, label = parse_datum(value, self.mode)
        except (WireError, OSError, ValueError, SyntaxError) as e:
            raise DataError(f"{self._where(i)} is not a valid Datum: {e}") from None
        return a, label



# -- HDF5 lists ---------------------------------------------------------------------------------
class HDF5Reader(Reader):
    """Caffe's HDF5Data: a text file listing .h5 files, each with datasets 'data' and 'label';
    the labels are read at once (small), the data row by row as batches need them."""

    def __init__(self, listfile):
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
        from .sources import _labels
        base = os.path.dirname(listfile)
        self.name, self.paths, labels, counts = listfile, [], [], []
        for name in files:
            path = name if os.path.isabs(name) else os.path.join(base, name)
            try:
                with h5py.File(path, "r") as h:
                    for key in ("data", "label"):
                        if key not in h or not isinstance(h[key], h5py.Dataset):
                            raise DataError(f"{path}: no dataset '{key}'")
                    d = h["data"]
                    if d.dtype.kind not in "uifb":
                        raise DataError(f"{path}: data must be numbers, got {d.dtype}")
                    if d.ndim not in (2, 3, 4) or 0 in d.shape:
                        raise DataError(f"{path}: data must be (N, C, H, W), (N, H, W) or (N, D), got shape {d.shape}")
                    shape = d.shape[1:] + (1, 1) if d.ndim == 2 else (1,) + d.shape[1:] if d.ndim == 3 else d.shape[1:]
                    lab = h["label"]
                    if lab.size != d.shape[0]:        # checked before it is read: a header may claim anything
                        raise DataError(f"{path}: 'label' holds {lab.size:,} values for {d.shape[0]:,} samples")
                    labels.append(_labels(np.asarray(lab), d.shape[0], path))
                    sample = d.shape[1:] if d.ndim == 2 else None
            except (OSError, ValueError, TypeError, KeyError) as e:
                raise DataError(f"{path}: cannot read HDF5 file: {' '.join(str(e).split())[:160]}") from None
            if self.paths and shape != self.shape:
                raise DataError(f"{path}: samples of shape {shape}, but {files[0]} has "
                                f"{self.shape} (every file must hold one sample shape)")
            self.paths.append(path)
            self.shape, self.sample_shape = shape, sample
            counts.append(len(labels[-1]))
        self.dtype = np.dtype(np.float32)
        self.labels = np.concatenate(labels)
        self.starts = np.concatenate([[0], np.cumsum(counts)])

    def __len__(self):
        return len(self.labels)

    def _file(self, f):
        import h5py
        h = getattr(self, "_h", None)
        if h is None or h[0] != os.getpid():
            h = self._h = (os.getpid(), {})
        if f not in h[1]:
            h[1][f] = h5py.File(self.paths[f], "r")
        return h[1][f]["data"]

    def read(self, indices):
        indices = np.asarray(indices, np.int64)
        out = np.empty((len(indices),) + self.shape, np.float32)
        files = np.searchsorted(self.starts, indices, side="right") - 1
        for f in np.unique(files):
            m = files == f
            local = indices[m] - self.starts[f]
            rows, back = np.unique(local, return_inverse=True)       # h5py reads increasing rows
            try:
                x = np.asarray(self._file(int(f))[rows], np.float32).reshape((len(rows),) + self.shape)
            except (OSError, ValueError, TypeError, KeyError) as e:
                raise DataError(f"{self.paths[f]}: cannot read HDF5 file: {' '.join(str(e).split())[:160]}") from None
            bad = ~np.isfinite(x).reshape(len(rows), -1).all(axis=1)
            if bad.any():
                raise DataError(f"{self.paths[f]}: sample {int(rows[np.flatnonzero(bad)[0]])} holds a value that "
                                "is not finite (NaN or inf, maybe beyond float32)")
            out[m] = x[back]
        return out, self.labels[indices]


# -- whole sources in memory (small sets, tools, tests) ---------------------------------------
def in_memory(reader):
    """Every sample of `reader` as a Dataset in memory, refused where it passes the memory budget."""
    from ..blob import memory_budget
    from .sources import Dataset
    need = len(reader) * int(np.prod(reader.shape)) * reader.dtype.itemsize
    if need > memory_budget():
        raise DataError(f"{reader.name}: {len(reader):,} samples of {reader.shape} need {need / 2 ** 30:.3g} GB, "
                        "more than this machine can hold in memory")
    images, labels = reader.read(np.arange(len(reader)))
    return Dataset(images, labels, reader.name, reader.colors, reader.sample_shape)


def load_image_list(listfile, root="", size=(0, 0), color=True):
    return in_memory(ImageListReader(listfile, root, size, color))


def load_images(root):
    ds = in_memory(ImageFolderReader(root))
    ds.classes = sorted(d for d in os.listdir(root) if os.path.isdir(os.path.join(root, d)))
    return ds


def load_db(path, backend="LMDB"):
    return in_memory(DBReader(path, backend))


def load_hdf5(listfile):
    return in_memory(HDF5Reader(listfile))
