"""Caffe's tools/extract_features: the named blobs of a net over its data source, written to an
.npz (one array per blob, the batches concatenated) or to LMDBs of Datum records, as Caffe
writes them (float_data, channels/height/width from the blob's shape, key: the sample's index
zero-padded to 10 digits), one LMDB per blob. Every file is written under a temporary name in
its folder and renamed when complete: nothing half-written is left."""
from __future__ import annotations

import os
import tempfile

import numpy as np

from ..errors import NetcliError
from ..net import Net


def extract_features(model, weights, blobs, output, iterations=None, phase="TEST", stages=(), level=0):
    """Run `model` with `weights` over `iterations` batches of its data (None: the whole data set
    once) and write `blobs` (names, or one comma-separated string) to `output`: an .npz file, or
    LMDB folders (a name ending in .lmdb, or an existing folder; comma-separated, one per blob).
    Returns {blob: array} of what was written."""
    from ..evaluate import evaluate
    names = [b.strip() for b in blobs.split(",")] if isinstance(blobs, str) else list(blobs)
    net = Net(model, phase=phase, stages=stages, level=level, inference=True)
    unknown = [b for b in names if b not in net.blobs]
    if unknown or not names:
        raise NetcliError(f"{', '.join(unknown) or 'no blob'}: not a blob of net '{net.name}' ({phase}); its blobs: "
                          f"{', '.join(net.blobs)}")
    if not net.data_layers():
        raise NetcliError(f"{model}: the {phase} net has no data layer: nothing to extract features over")
    targets = _lmdb_targets(output, names)
    net.load_all(weights)
    parts = {b: [] for b in names}

    def keep(i, run, rows):
        for b in names:
            data = run.blobs[b].data
            parts[b].append(np.array(data[:rows] if data.ndim else data[None], np.float32))
    evaluate(net, iterations, on_batch=keep)
    features = {b: np.concatenate(p) for b, p in parts.items()}
    if targets is None:
        write_npz(output, features)
    else:
        for b, path in zip(names, targets):
            if net.blobs[b].data.ndim == 0:
                raise NetcliError(f"blob '{b}' is one value per batch, not per sample: an LMDB holds samples "
                                  "(write it to an .npz)")
        for b, path in zip(names, targets):
            write_lmdb(path, features[b])
    return features


def _lmdb_targets(output, names):
    """The LMDB folders to write (one per blob), or None for an .npz output."""
    out = os.fspath(output)
    paths = [p.strip() for p in out.split(",")]
    if not any(p.endswith(".lmdb") or os.path.isdir(p) for p in paths):
        if not out.endswith(".npz"):
            raise NetcliError(f"{out}: the output is an .npz file, or LMDB folders (ending in .lmdb, one per blob)")
        return None
    if len(paths) != len(names):
        raise NetcliError(f"{out}: {len(names)} blobs need {len(names)} LMDB outputs, comma-separated, one per "
                          f"blob (as Caffe's extract_features); got {len(paths)}")
    try:
        import lmdb  # noqa: F401
    except ImportError:
        raise NetcliError(f"{out}: LMDB outputs need the lmdb package: pip install 'netcli[lmdb]'") from None
    for p in paths:
        if os.path.lexists(p) and not (os.path.isdir(p) and not os.path.islink(p) and not os.listdir(p)):
            raise NetcliError(f"{p}: already exists (an LMDB is written into a new or empty folder)")
    return paths


def write_npz(path, arrays):
    """np.savez to `path`, atomically (netcli/io/files.py)."""
    from ..io.files import write_atomic
    write_atomic(path, lambda f: np.savez(f, **arrays), what="features file")


def datum_float_bytes(sample):
    """A Datum of float_data as Caffe's extract_features writes it: channels, height, width from
    the sample's (C, H, W) shape (missing axes 1; more than three: C holds them all), then each
    value as its own float_data field (proto2's unpacked repeated float)."""
    from ..caffe import datum, wire
    shape = list(sample.shape) + [1] * (3 - sample.ndim) if sample.ndim <= 3 else [sample.size, 1, 1]
    values = np.empty(sample.size, [("key", "u1"), ("value", "<f4")])
    values["key"] = wire.key(datum.FLOAT_DATA, wire.FIXED32)[0]
    values["value"] = sample.reshape(-1)
    head = b"".join(wire.put_varint(n, d) for n, d in zip((datum.CHANNELS, datum.HEIGHT, datum.WIDTH), shape))
    return head + values.tobytes()


def write_lmdb(path, features):
    """features (N, ...) as an LMDB of N float Datums keyed '%010d', built in a temporary folder
    next to `path` and renamed to it when complete."""
    import lmdb
    path = os.fspath(path).rstrip(os.sep)
    parent = os.path.dirname(os.path.abspath(path))
    tmp = tempfile.mkdtemp(prefix=f".{os.path.basename(path)}.", suffix=".tmp", dir=parent)
    try:
        record = len(datum_float_bytes(features[0])) if len(features) else 0
        pages = (record + 64) // 4096 + 2           # a record's pages, overflow pages and B-tree share
        env = lmdb.open(tmp, map_size=len(features) * pages * 4096 + (1 << 20), subdir=True)
        try:
            with env.begin(write=True) as txn:
                for i, sample in enumerate(features):
                    txn.put(f"{i:010d}".encode(), datum_float_bytes(sample))
            env.sync(True)
        finally:
            env.close()
        if os.path.isdir(path) and not os.path.islink(path):
            os.rmdir(path)              # empty (checked before): the database takes its place
        os.rename(tmp, path)
    except BaseException as e:
        import shutil
        shutil.rmtree(tmp, ignore_errors=True)
        if isinstance(e, (OSError, lmdb.Error)):
            raise NetcliError(f"{path}: cannot write the LMDB: {e}") from None
        raise
