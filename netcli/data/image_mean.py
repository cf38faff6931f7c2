"""Caffe's compute_image_mean: the per-pixel mean image (the float mean of each C x H x W
position over all images) of a source, record by record (memory: one image and the float64
sum), written as Caffe's mean.binaryproto (a BlobProto of shape 1 x C x H x W) or an .npy.

A source is an LMDB or LevelDB of Datums (raw or encoded), an image list (`<path> <label>`
lines; paths relative to `root`; BGR as Caffe's ImageData reads them), or a named dataset
(`cifar10:train`). `<name>:mean` (for the datasets that name one, e.g. cifar10:mean) is the mean of
its training split, computed once into the data directory, as Caffe's create_cifar10.sh does."""
from __future__ import annotations

import io
import os

import numpy as np

from ..caffe import wire
from ..caffe.caffemodel import BLOB_CHANNELS, BLOB_DATA, BLOB_HEIGHT, BLOB_NUM, BLOB_WIDTH
from ..io.files import write_atomic
from . import datasets
from .caffe_db import backend_of, records
from .sources import DataError

MEAN_FILE = "mean.binaryproto"       # a named mean's file in the dataset's folder


def _named(source):
    return ":" in source and source.split(":")[0] in datasets.DATASETS


def _db_images(path, backend):
    from ..caffe.datum import parse_datum
    gen = records(path, backend)
    next(gen)
    try:
        for i, (key, value) in enumerate(gen):
            try:
                a, _ = parse_datum(value)
            except (wire.WireError, ValueError, OSError, SyntaxError) as e:
                raise DataError(f"{path}: record {i} (key {bytes(key)[:40]!r}) is not a valid Datum: {e}") from None
            yield a, f"{path}: record {i} (key {bytes(key)[:40]!r})"
    finally:
        gen.close()


def _list_images(listfile, root):
    from .convert_imageset import _image, read_list
    for name, _, number in read_list(listfile):
        where = f"{listfile}:{number}: "
        im, _ = _image(os.path.join(root, name), False, (0, 0), where)
        yield np.asarray(im)[:, :, ::-1].transpose(2, 0, 1), f"{where}image {name}"


def images_of(source, root="", backend=None):
    """(image (C, H, W), where) of each image of `source`, one at a time."""
    if _named(source):
        ds = datasets.load_named(source)
        return ((a, f"{source}: image {i}") for i, a in enumerate(ds.images))
    if os.path.isdir(source):
        backend = backend or backend_of(source)
        if backend is None:
            raise DataError(f"{source}: not an LMDB or LevelDB database (no data.mdb or CURRENT in the folder)")
        return _db_images(source, backend)
    if os.path.isfile(source):
        return _list_images(source, root)
    raise DataError(f"{source}: no such database, image list or named dataset")


def compute_mean(source, root="", backend=None):
    """(mean (C, H, W) float32, number of images) of `source` (see the module doc)."""
    total, n, first = None, 0, None
    for a, where in images_of(source, root, backend):
        if total is None:
            if a.ndim != 3 or 0 in a.shape:
                raise DataError(f"{where}: an empty image ({'x'.join(map(str, a.shape))})")
            first = a.shape
            total = np.zeros(first, np.float64)
        elif a.shape != first:
            raise DataError(f"{where} is {'x'.join(map(str, a.shape))}, the first is {'x'.join(map(str, first))} "
                            "(the mean needs images of one size)")
        total += a
        n += 1
    if n == 0:
        raise DataError(f"{source}: holds no images")
    return (total / n).astype(np.float32), n


def mean_bytes(mean):
    """A (C, H, W) mean as Caffe's compute_image_mean writes it: num 1, channels, height, width, data."""
    c, h, w = mean.shape
    head = b"".join(wire.put_varint(k, v) for k, v in ((BLOB_NUM, 1), (BLOB_CHANNELS, c), (BLOB_HEIGHT, h), (BLOB_WIDTH, w)))
    return head + wire.put_packed_floats(BLOB_DATA, mean.reshape(-1))


def write_mean(path, mean):
    """`path` ending in .binaryproto (Caffe's) or .npy, written atomically."""
    if path.endswith(".binaryproto"):
        content = mean_bytes(mean)
    elif path.endswith(".npy"):
        buf = io.BytesIO()
        np.save(buf, mean.astype(np.float32))
        content = buf.getvalue()
    else:
        raise DataError(f"{path}: the mean file's name must end in .binaryproto (Caffe's) or .npy")
    write_atomic(path, content, "mean file")


def named_mean(name):
    """The mean file of `<dataset>:mean` (computed and written on first use), or None when `name`
    names none."""
    dataset, _, what = name.partition(":")
    ds = datasets.DATASETS.get(dataset)
    if what != "mean" or ds is None:
        return None
    if ds.mean is None:
        raise DataError(f"{dataset} names no mean image (named means: "
                        f"{', '.join(n + ':mean' for n, d in datasets.DATASETS.items() if d.mean)})")
    path = os.path.join(datasets.data_dir(), dataset, MEAN_FILE)
    if not os.path.isfile(path):
        mean, _ = compute_mean(f"{dataset}:{ds.mean}")
        write_mean(path, mean)
    return path
