"""The Data layer: batches from a dataset, transformed, prepared ahead in the background
(netcli/data/prefetch.py); HDF5Data and ImageData on the same machinery (DummyData and
MemoryData: memory_data.py).

Batch k is a pure function of (seed, k): sample positions k*B .. k*B+B-1 (plus rand_skip)
walk through epochs, epoch e visiting the samples in the order of a permutation drawn from
(seed, e), and crops/mirrors of batch k come from (seed, k). So the state is just (seed, k):
saved in solver snapshots, a resumed run continues the exact batch sequence."""
from __future__ import annotations

import os
import time

import numpy as np

from ..config.schema import Field, Message, REQUIRED, non_negative, positive
from ..data.sources import DataError, check_class_labels
from ..data.prefetch import Prefetcher, ring_plan
from ..data.workers import DecodePool, default_workers
from ..data.transform import TRANSFORM, mean_value_count, Transformer
from ..errors import NetcliError
from .base import Layer, LayerError, register


DATA = Message("DataParameter", [
    Field("source", "str", REQUIRED, "dataset: a named one (mnist:train, mnist:test), an IDX prefix, "
          "an .npz file, a list of .h5 files, or an image folder", number=1),
    Field("backend", ("IDX", "NPZ", "HDF5", "IMAGES", "LMDB", "LEVELDB"), None,
          "reader; default: from the source (name: -> IDX, .npz -> NPZ, .txt -> HDF5, folder with data.mdb -> "
          "LMDB, with CURRENT -> LEVELDB, other folder -> IMAGES); LMDB and LEVELDB hold Caffe's Datum "
          "records (pip install 'netcli[lmdb]' or 'netcli[leveldb]')", number=8,
          proto={"enum": "DB", "default": "LEVELDB", "values": {"LEVELDB": 0, "LMDB": 1, "IDX": 10001, "NPZ": 10002, "HDF5": 10003,
                                                  "IMAGES": 10004}}),
    Field("batch_size", "int", REQUIRED, "samples per batch", check=positive, number=4),
    Field("shuffle", "bool", False, "visit samples in a new random order every epoch", number=10001),
    Field("rand_skip", "int", 0, "skip a random number (up to this) of samples at the start", check=non_negative, number=7),
    Field("prefetch", "int", 4, "batches prepared ahead in the background", range=(1, 64), number=10),
    Field("threads", "int", None, "worker processes decoding and transforming batches (0: on the prefetch "
          "thread; default: the cores the compute threads leave, at most 8, for encoded images)",
          range=(0, 256), number=10003),
    Field("validation_fraction", "float", 0.0, "hold out this fraction of the source (a fixed random split) for "
          "the VALIDATION phase, which the solver then tests on; TRAIN uses the rest",
          check=lambda v: None if 0 <= v < 1 else f"must be in [0, 1), got {v}", number=10002),
], doc="Where a Data layer reads from.", number=107)

_CACHE: dict = {}


def _stamp(path):
    """Size and modification time, so a cached dataset is read again when its file changes."""
    try:
        st = os.stat(path if os.path.exists(path) else path + "-images-idx3-ubyte")
        return st.st_size, st.st_mtime_ns
    except OSError:
        return None


def _idx_exists(prefix):
    return any(os.path.isfile(prefix + "-images-idx3-ubyte" + gz) for gz in ("", ".gz"))


def open_dataset(source, backend, base_dir="", mode="auto"):
    """The reader of the dataset a Data layer reads (netcli/data/readers.py; cached per resolved
    path): a relative source is looked up next to the net file, then in the working directory
    (netcli.config.paths). IDX and .npz files are memory-mapped, the others read record by record.
    `mode`: how a database's encoded images decode (transform_param's force_color/force_gray)."""
    from ..data import datasets, readers, sources
    from ..config.paths import resolve
    named = ":" in source and source.split(":")[0] in datasets.DATASETS
    if backend is None:
        if named:
            backend = "NAMED"
        elif source.endswith(".npz"):
            backend = "NPZ"
        elif source.endswith(".txt"):
            backend = "HDF5"
        elif any(os.path.isfile(os.path.join(d, source, "data.mdb")) for d in (base_dir, "")) or \
                source.rstrip("/").lower().endswith("lmdb"):
            backend = "LMDB"
        elif any(os.path.isfile(os.path.join(d, source, "CURRENT")) for d in (base_dir, "")) or \
                source.rstrip("/").lower().endswith("leveldb"):
            backend = "LEVELDB"
        elif os.path.isdir(os.path.join(base_dir, source)) or os.path.isdir(source):
            backend = "IMAGES"
        else:
            backend = "IDX"
    if backend == "IDX" and named:
        backend = "NAMED"
    path = source
    if backend != "NAMED":
        try:
            if backend == "IDX":
                path = resolve(source, base_dir, "IDX dataset (<prefix>-images-idx3-ubyte[.gz])", _idx_exists)
            else:
                what = {"LMDB": "LMDB database", "LEVELDB": "LevelDB database"}.get(backend, "dataset")
                path = resolve(source, base_dir, what,
                               os.path.isdir if backend in ("IMAGES", "LMDB", "LEVELDB") else os.path.exists)
        except NetcliError as e:
            raise DataError(str(e)) from None
    key = (backend, path) if backend == "NAMED" else (backend, os.path.abspath(path), _stamp(path), mode)
    if key not in _CACHE:
        loader = {"NAMED": datasets.load_named, "IDX": sources.load_idx, "NPZ": sources.load_npz,
                  "HDF5": readers.HDF5Reader, "IMAGES": readers.ImageFolderReader,
                  "LMDB": lambda p: readers.DBReader(p, "LMDB", mode),
                  "LEVELDB": lambda p: readers.DBReader(p, "LEVELDB", mode)}[backend]
        _CACHE[key] = loader(path)
    return _CACHE[key]


@register
class Data(Layer):
    type = "Data"
    makes_data = True
    draw_kind = "data"
    doc = "Batches of (data, label) from a dataset, with Caffe's transform_param, prepared ahead."
    params = {"data_param": DATA, "transform_param": TRANSFORM}
    param_key = "data_param"          # the message with source, batch_size, shuffle (subclasses: their own)
    bottoms = (0, 0)
    tops = (1, 2)
    has_backward = False
    reads_dataset = True

    @property
    def dp(self):
        return getattr(self.p, self.param_key)

    def open(self, p):
        """The Dataset this layer reads (subclasses: their own readers)."""
        t = getattr(self.p, "transform_param", None) or TRANSFORM.defaults()
        if t.force_color and t.force_gray:
            raise LayerError(f"force_color and force_gray both set {self.where()}", "transform_param.force_gray")
        return open_dataset(p.source, p.backend, self.base_dir,
                            "RGB" if t.force_color else "L" if t.force_gray else "auto")

    def setup(self, bottoms, tops):
        p = self.dp
        t = getattr(self.p, "transform_param", None) or TRANSFORM.defaults()
        try:
            self.dataset = self.open(p)
        except DataError as e:
            raise LayerError(str(e), f"{self.param_key}.source") from None
        if getattr(p, "validation_fraction", 0):
            self.dataset = validation_split(self.dataset, p.validation_fraction, self.phase == "VALIDATION")
            if len(self.dataset) == 0:
                raise LayerError(f"validation_fraction {p.validation_fraction} leaves no samples", "data_param.validation_fraction")
        C, H, W = self.dataset.shape
        if t.crop_size and (t.crop_size > H or t.crop_size > W):
            raise LayerError(f"crop_size {t.crop_size} is larger than the images ({H}x{W})", "transform_param.crop_size")
        mean = None
        if t.mean_file:
            if t.mean_value:
                raise LayerError("give mean_file or mean_value, not both", "transform_param.mean_value")
            from ..config.paths import resolve
            from ..data.image_mean import named_mean
            try:
                mf = named_mean(t.mean_file) or resolve(t.mean_file, self.base_dir, "mean_file")   # cifar10:mean
            except NetcliError as e:
                raise LayerError(str(e), "transform_param.mean_file") from None
            mean = _load_mean(mf, (C, H, W))
        if t.mean_value and mean_value_count(len(t.mean_value), C):
            raise LayerError(mean_value_count(len(t.mean_value), C), "transform_param.mean_value")
        self.transformer = Transformer(t, self.phase, (C, H, W), mean)
        B = self.B = p.batch_size
        sample = getattr(self.dataset, "sample_shape", None)
        shape = sample if sample and not t.crop_size else self.transformer.out_shape
        self.ahead, self.buffer_bytes = check_ring(self, shape, getattr(p, "prefetch", 4))
        tops[0].reshape((B,) + shape)
        if len(tops) > 1:
            tops[1].reshape((B,))
        self.seed = int(self.rng.integers(2 ** 62))
        rand_skip = getattr(p, "rand_skip", 0)
        self.skip = int(self.rng.integers(0, rand_skip + 1)) if rand_skip else 0
        self.next_batch = 0
        self.rows = None                 # (lo, hi): the rows this process fills (distributed runs)
        self.label_check = None          # (classes, ignore, who): labels in the records, checked as read
        threads = getattr(p, "threads", None)
        self.workers = default_workers(self.dataset) if threads is None else threads
        if self.dataset.one_process:
            self.workers = 0             # LevelDB: one process may open it
        self.pool = None                 # DecodePool, started with the first prefetcher
        self.wait_s = 0.0                # seconds forward() waited for batches
        self.prefetcher = None
        self._perm_cache = {}

    def __len__(self):
        return len(self.dataset)

    # -- batches -----------------------------------------------------------------------------------
    def _perm(self, epoch):
        perm = self._perm_cache.get(epoch)
        if perm is None:
            n = len(self.dataset)
            perm = (np.random.default_rng([self.seed, epoch]).permutation(n) if self.dp.shuffle
                    else np.arange(n))
            self._perm_cache = {epoch: perm, **{k: v for k, v in self._perm_cache.items() if k == epoch - 1}}
        return perm

    def indices(self, k):
        n = len(self.dataset)
        g = self.skip + k * self.B + np.arange(self.B)
        epochs, pos = np.divmod(g, n)
        out = np.empty(self.B, np.int64)
        for e in np.unique(epochs):
            m = epochs == e
            out[m] = self._perm(int(e))[pos[m]]
        return out

    def make_batch(self, k, data, label):
        """Batch k into data and label; in a distributed run only this process's rows are read
        (the crops and mirrors are those the whole batch would draw)."""
        lo, hi = self.rows or (0, self.B)
        idx = self.indices(k)[lo:hi]
        if self.pool is not None and data.ctypes.data in self.pool.names:
            self.pool.fill(data, label, k, lo, hi, idx, self.seed)
            labels = label[lo:hi]
        else:
            images, labels = self.dataset.read(idx)
            self.transformer(images, data[lo:hi], np.random.default_rng([self.seed, 1 << 40, k]), rows=(lo, self.B))
            label[lo:hi] = labels
        if self.label_check is not None:
            check_class_labels(self.dataset, *self.label_check, lab=labels, samples=idx)

    def new_slot(self, i, shape):
        """Prefetch ring slot i in shared memory when workers fill it (else None: the prefetcher's own)."""
        return None if self.pool is None else self.pool.slot(i, shape, self.B)

    def forward(self, bottoms, tops):
        if self.prefetcher is None:
            if self.workers and self.pool is None:
                self.pool = DecodePool(self.workers, self.dataset, self.transformer, self.name)
            self.prefetcher = Prefetcher(self, self.next_batch)
        t0 = time.perf_counter()
        data, label = self.prefetcher.get(self.next_batch)
        self.wait_s += time.perf_counter() - t0
        lo, hi = self.rows or (0, self.B)
        tops[0].data.reshape(data.shape)[lo:hi] = data[lo:hi]
        if len(tops) > 1:
            tops[1].data[lo:hi] = label[lo:hi]
        self.next_batch += 1

    def backward(self, tops, propagate_down, bottoms):
        pass

    def get_state(self):
        return {"seed": self.seed, "skip": self.skip, "batch": self.next_batch}

    def set_state(self, state):
        if self.prefetcher is not None:
            self.prefetcher.stop()
            if self.pool is not None and self.prefetcher.thread.is_alive():   # still in a batch: the next
                self.pool.stop()                                               # prefetcher gets its own pool
                self.pool = None
            self.prefetcher = None
        self.seed, self.skip, self.next_batch = int(state["seed"]), int(state["skip"]), int(state["batch"])
        self._perm_cache = {}

    def rewind(self):
        """Start again from the first batch (the solver does this before each test pass)."""
        self.set_state({**self.get_state(), "batch": 0})

    def __del__(self):
        if getattr(self, "prefetcher", None) is not None:
            self.prefetcher.stop()
        if getattr(self, "pool", None) is not None:
            self.pool.stop()


def check_ring(layer, shape, prefetch):
    """(batches prepared ahead, bytes of their ring) for a data layer whose tops are a batch of
    `shape` samples and labels; LayerError on batch_size where they pass the memory budget."""
    from ..blob import describe_budget, memory_budget
    per_batch = 4 * layer.B * (float(np.prod([float(s) for s in shape])) + 1)   # float32 samples and labels
    ahead, ring = ring_plan(per_batch, prefetch)
    if ring + 2 * per_batch > memory_budget():
        raise LayerError(f"a batch of {layer.B:,} samples of {'x'.join(map(str, shape))} needs "
                         f"{(ring + 2 * per_batch) / 2 ** 30:.3g} GB: its tops (data and diff) and {ahead + 2} "
                         f"prefetch buffers; {describe_budget()}", f"{layer.param_key}.batch_size")
    return ahead, ring


def check_label_sources(net, problems):
    """A layer that reads class indices from a Data layer's labels (through Splits) checks the
    whole dataset once, here, so a bad label is reported by sample before training starts."""
    producer = {id(t): i for i, tv in enumerate(net.top_vecs) for t in tv}
    for i, layer in enumerate(net.layers):
        if layer.class_labels is None:
            continue
        k, classes, ignore = layer.class_labels
        blob = net.bottom_vecs[i][k]
        j = producer.get(id(blob))
        while j is not None and net.layers[j].type == "Split":
            blob = net.bottom_vecs[j][0]
            j = producer.get(id(blob))
        if j is None or not net.layers[j].reads_dataset or net.top_vecs[j][1:2] != [blob]:
            continue
        who = f"layer '{layer.name}' ({layer.type})"
        if net.layers[j].dataset.labels is None:
            net.layers[j].label_check = (classes, ignore, who)
        try:
            check_class_labels(net.layers[j].dataset, classes, ignore, who)
        except NetcliError as e:
            problems.add(net.configs[j].loc, str(e), f"layer '{net.layer_names[j]}' ({net.layers[j].type})",
                         f"{net.layers[j].param_key}.source")


def validation_split(ds, fraction, held_out):
    """A fixed random split (the same for every run and seed, so the held-out samples never leak
    into training): `held_out` selects the validation part."""
    n = len(ds)
    perm = np.random.default_rng(0x5EED).permutation(n)
    k = int(round(fraction * n))
    idx = np.sort(perm[:k] if held_out else perm[k:])
    return ds.subset(idx, f"{ds.name} ({'validation' if held_out else 'training'} part)")


def _load_mean(path, shape):
    """The (C, H, W) mean image from Caffe's .binaryproto, an .npy file or the first array of an .npz;
    `shape` (C, H, W) as expected, or (C, None, None) for any size."""
    from ..io.npzfile import read_array
    try:
        if path.endswith(".binaryproto"):
            from ..caffe.caffemodel import read_binaryproto
            m = read_binaryproto(path, shape)
        else:                    # the declared shape is checked before anything is allocated
            m = read_array(path, "mean image", shape)
    except NetcliError as e:
        raise LayerError(f"mean_file: {e}", "transform_param.mean_file") from None
    except (OSError, ValueError, EOFError) as e:
        raise LayerError(f"cannot read mean_file {path} (.npy or .npz of the (C, H, W) mean image): "
                         f"{' '.join(str(e).split())[:160]}", "transform_param.mean_file") from None
    if m.shape != shape and not (shape[1] is None and m.ndim == 3 and m.shape[0] == shape[0]):
        raise LayerError(f"mean_file {path} has shape {m.shape}, the images are {shape}", "transform_param.mean_file")
    if m.dtype.kind not in "uifb" or not np.isfinite(m.astype(np.float64)).all():
        raise LayerError(f"mean_file {path} must hold finite numbers", "transform_param.mean_file")
    return m


# -- Caffe's other data layers ----------------------------------------------------------------
HDF5_DATA = Message("HDF5DataParameter", [
    Field("source", "str", REQUIRED, "a text file listing .h5 files (each with datasets 'data' and 'label')", number=1),
    Field("batch_size", "int", REQUIRED, "samples per batch", check=positive, number=2),
    Field("shuffle", "bool", False, "visit samples in a new random order every epoch", number=3),
], doc="Where an HDF5Data layer reads from.", number=112)


@register
class HDF5Data(Data):
    type = "HDF5Data"
    doc = "Batches of (data, label) from .h5 files listed in a text file (Caffe's HDF5Data; needs h5py)."
    params = {"hdf5_data_param": HDF5_DATA}
    param_key = "hdf5_data_param"

    def open(self, p):
        return open_dataset(p.source, "HDF5", self.base_dir)


IMAGE_DATA = Message("ImageDataParameter", [
    Field("source", "str", REQUIRED, "a text file of lines '<image path> <label>'", number=1),
    Field("root_folder", "str", "", "prefix of every image path", number=12),
    Field("batch_size", "int", 1, "samples per batch", check=positive, number=4),
    Field("shuffle", "bool", False, "visit samples in a new random order every epoch", number=8),
    Field("rand_skip", "int", 0, "skip a random number (up to this) of samples at the start", check=non_negative, number=7),
    Field("new_height", "int", 0, "resize every image to this height (0: keep)", check=non_negative, number=9),
    Field("new_width", "int", 0, "resize every image to this width (0: keep)", check=non_negative, number=10),
    Field("is_color", "bool", True, "3 channels in Caffe's BGR order (false: one grey channel)", number=11),
    Field("threads", "int", None, "worker processes decoding and transforming batches (0: on the prefetch "
          "thread; default: the cores the compute threads leave, at most 8, for encoded images)",
          range=(0, 256), number=10001),
], doc="Where an ImageData layer reads from.", number=115)


@register
class ImageData(Data):
    type = "ImageData"
    doc = ("Batches of (image, label) from a list of image files (Caffe's ImageData: BGR, resized to "
           "new_height x new_width; needs Pillow).")
    params = {"image_data_param": IMAGE_DATA, "transform_param": TRANSFORM}
    param_key = "image_data_param"

    def open(self, p):
        from ..data.readers import ImageListReader
        from ..config.paths import resolve
        try:
            listfile = resolve(p.source, self.base_dir, "image list")
        except NetcliError as e:
            raise DataError(str(e)) from None
        key = ("IMAGE_LIST", os.path.abspath(listfile), _stamp(listfile), p.root_folder, p.new_height,
               p.new_width, p.is_color)
        if key not in _CACHE:
            _CACHE[key] = ImageListReader(listfile, p.root_folder, (p.new_height, p.new_width), p.is_color)
        return _CACHE[key]
