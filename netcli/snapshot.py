"""Weights and solver-state files, both .npz.

Writing is crash-safe. A file is written to `<name>.tmp` in the same folder (created with the
user's umask), flushed and fsynced, then renamed over `<name>`, and the folder is fsynced. A
snapshot *pair* (weights + solver state) writes both temporary files before renaming either, so
after a crash at any moment the folder holds either the previous pairs only, or a new weights file
whose complete solver state still waits as `.tmp`: `recover(prefix)`, run when training starts,
finishes that rename and removes every other temporary file of the prefix. A failed write (a full
disk) removes its temporary files and is one NetcliError; the earlier files are never touched.

Weights: one float32 array per owner param, key '<layer name>/<param index>', in Caffe's shapes.
"""
from __future__ import annotations

import errno
import glob
import os

import numpy as np

from . import log
from .errors import NetcliError
from .npzfile import read_npz

TMP = ".tmp"


def _write_tmp(tmp, arrays):
    """np.savez of a dict (or the bytes as they are) into `tmp`, fsynced."""
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o666)    # 0o666 & ~umask, as open()
    with os.fdopen(fd, "wb") as f:
        if isinstance(arrays, (bytes, bytearray)):
            f.write(arrays)
        else:
            np.savez(f, **arrays)
        f.flush()
        os.fsync(f.fileno())


def _fsync_dir(folder):
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:          # not possible on every platform: the rename is still atomic
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _replace(tmp, path):  # a seam for tests that simulate a crash before the rename
    os.replace(tmp, path)


def save_files(files):
    """Write {path: arrays} all-or-nothing as far as a crash allows (see the module doc): every
    temporary file first, then the renames in the given order, then one folder fsync."""
    tmps = []
    try:
        for path, arrays in files.items():
            os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
            tmps.append(os.fspath(path) + TMP)
            _write_tmp(tmps[-1], arrays)
        for tmp, path in zip(tmps, files):
            _replace(tmp, os.fspath(path))
    except BaseException as e:
        for tmp in tmps:
            try:
                os.unlink(tmp)
            except OSError:
                pass
        if isinstance(e, OSError):
            what = " and ".join(os.fspath(p) for p in files)
            reason = "the disk is full" if e.errno in (errno.ENOSPC, errno.EDQUOT) else (e.strerror or str(e))
            raise NetcliError(f"cannot write {what}: {reason} (nothing was left half-written; earlier "
                              "snapshots are intact)") from None
        raise
    for folder in {os.path.dirname(os.path.abspath(p)) for p in files}:
        _fsync_dir(folder)


def atomic_savez(path, arrays: dict):
    """np.savez to `path`, crash-safe (see the module doc)."""
    save_files({os.fspath(path): arrays})


def recover(prefix):
    """Before training with this snapshot prefix: finish a pair whose solver state was complete
    but not yet renamed when an earlier run died, and remove every other temporary file of the
    prefix (ours only: '<prefix>_*.npz.tmp' and the older '<prefix>_*.npz.*.tmp')."""
    folder, stem = os.path.split(os.path.abspath(prefix))
    pattern = os.path.join(glob.escape(folder), glob.escape(stem) + "_*.npz")
    leftovers = sorted(set(glob.glob(pattern + TMP) + glob.glob(pattern + ".*" + TMP)))
    finished, removed = [], []
    for tmp in leftovers:
        final = tmp[:-len(TMP)]
        weights = final.replace(".solverstate.npz", ".weights.npz")
        if final.endswith(".solverstate.npz") and os.path.exists(weights) and not os.path.exists(final):
            try:
                read_npz(tmp, "solver state")
                os.replace(tmp, final)
                finished.append(final)
                continue
            except (NetcliError, OSError):
                pass
        try:
            os.unlink(tmp)
            removed.append(tmp)
        except OSError:
            pass
    if finished or removed:
        _fsync_dir(folder)
        log.warn(f"an earlier run stopped while writing snapshots of {prefix}: "
                 + ", ".join(([f"completed {os.path.basename(f)}" for f in finished]) +
                             ([f"removed {len(removed)} unfinished temporary file(s)"] if removed else [])))
    return finished, removed


def weight_arrays(net, preprocessing=None):
    """{'<layer>/<i>': float32 array} of every owner param: a weights file's content; with the
    preprocessing its inputs had in training (netcli.data.transform.Preprocessing) when known."""
    arrays = {k: np.asarray(b.data, np.float32) for k, b in zip(net.param_owner_keys, net.learnable_params)}
    if preprocessing is not None:
        arrays.update(preprocessing.to_arrays())
    return arrays


META = "netcli:"     # entries of a weights file that are not params (Preprocessing's)


def read_preprocessing(path):
    """The Preprocessing kept in a netcli weights file, or None (a caffemodel, an older file)."""
    from .data.transform import Preprocessing
    if is_caffemodel(path):
        return None
    return Preprocessing.from_arrays(read_npz(path, select=lambda name: name.startswith(META)))


def is_caffemodel(path):
    """Caffe's binary weights: by extension, or a file that is not a zip (an .npz) but starts
    like a NetParameter (field 1, 2 or 100, length-delimited; a zip starts with 'PK')."""
    path = os.fspath(path)
    if path.endswith(".caffemodel"):
        return True
    if path.endswith(".npz"):
        return False
    try:
        with open(path, "rb") as f:
            head = f.read(2)
    except OSError:
        return False
    return head[:1] in (b"\x0a", b"\x12", b"\xa2")


def save_weights(net, path):
    """Weights as .npz, or as a .caffemodel when the name says so."""
    if os.fspath(path).endswith(".caffemodel"):
        from .caffe.caffemodel import caffemodel_bytes
        save_files({os.fspath(path): caffemodel_bytes(net)})
    else:
        atomic_savez(path, weight_arrays(net))


def read_weights(path, shapes=None):
    """{'<layer>/<i>': array} of a weights file (.npz or .caffemodel); a caffemodel's legacy 4-D
    shapes are fitted to `shapes` ({key: shape}) where Caffe would accept them."""
    if os.fspath(path).lower().endswith((".yaml", ".yml", ".prototxt", ".pbtxt")):
        raise NetcliError(f"{path} is a net or solver file; weights are a .weights.npz or a .caffemodel")
    if not is_caffemodel(path):
        # the net's param shapes bound what is read: an array of another name or shape is not inflated
        return {k: v for k, v in read_npz(path, shapes=shapes).items()
                if not k.startswith(META)}
    from .caffe.caffemodel import caffemodel_arrays, fit_legacy
    arrays, legacy = caffemodel_arrays(path, shapes)
    for key in legacy:
        if shapes and key in shapes:
            arrays[key] = fit_legacy(arrays[key], shapes[key])
    return arrays


def load_weights(net, path, strict=True):
    expected = dict(zip(net.param_owner_keys, net.learnable_params))
    arrays = read_weights(path, {k: b.shape for k, b in expected.items()})
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
        if arrays[key].dtype.kind not in "fiu":
            raise NetcliError(f"{path}: array '{key}' holds {arrays[key].dtype}, not numbers")
    for key in loaded:
        expected[key].data[...] = arrays[key]
    return loaded, unused
