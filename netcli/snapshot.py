"""Weights and solver-state files. Both are .npz; both are written to a temporary file in the
same directory, flushed to disk and renamed, so a crash never leaves a half-written file.

Weights: one float32 array per owner param, key '<layer name>/<param index>', in Caffe's shapes.
"""
from __future__ import annotations

import os
import tempfile
import zipfile

import numpy as np

from .errors import NetcliError
from .npzfile import read_npz


def atomic_savez(path, arrays: dict):
    """np.savez to `path` through a temporary file and os.replace."""
    path = os.fspath(path)
    d = os.path.dirname(os.path.abspath(path))
    os.makedirs(d, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=os.path.basename(path) + ".", suffix=".tmp", dir=d)
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez(f, **arrays)
            f.flush()
            os.fsync(f.fileno())
        _replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def _replace(tmp, path):  # a seam for tests that simulate a crash before the rename
    os.replace(tmp, path)


def save_weights(net, path):
    atomic_savez(path, {k: np.asarray(b.data, np.float32)
                        for k, b in zip(net.param_owner_keys, net.learnable_params)})


def load_weights(net, path, strict=True):
    arrays = read_npz(path)
    expected = dict(zip(net.param_owner_keys, net.learnable_params))
    problems, loaded = [], []
    for key, blob in expected.items():
        if key not in arrays:
            if strict:
                problems.append(f"  {key}: missing from the file (expected shape {blob.shape})")
            continue
        a = arrays[key]
        if a.shape != blob.shape:
            problems.append(f"  {key}: shape {a.shape} in the file, {blob.shape} in the net")
            continue
        loaded.append(key)
    unused = sorted(k for k in arrays if k not in expected)
    if strict and unused:
        problems += [f"  {k}: in the file but not in the net" for k in unused]
    if problems:
        hint = "" if strict else ("\n(to learn a layer from scratch rather than copy it, rename the layer)")
        raise NetcliError(f"{path}: weights do not match net '{net.name}':\n" + "\n".join(problems) + hint)
    for key in loaded:
        expected[key].data[...] = arrays[key]
    return loaded, unused
