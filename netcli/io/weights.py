"""Weights and solver-state files, both .npz.

Writing is crash-safe, through netcli/io/files.py: each file is written to a new temporary file
`<name>.<random>.tmp` in the same folder (O_EXCL | O_NOFOLLOW, the user's umask), fsynced, then
renamed over `<name>`, and the folder is fsynced. A snapshot *pair* (weights + solver state)
writes both temporary files before renaming either, so after a crash at any moment the folder
holds either the previous pairs only, or a new weights file whose complete solver state still
waits as a temporary file: `recover(prefix)`, run when training starts, finishes that rename and
removes every other temporary file netcli writes for the prefix (exact names only, see
`own_temporary`). A failed write (a full disk) removes its temporary files and is one
NetcliError; the earlier files are never touched.

Weights: one float32 array per owner param, key '<layer name>/<param index>', in Caffe's shapes.
"""
from __future__ import annotations

import os
import re

import numpy as np

from . import files as _files
from .. import log
from ..errors import NetcliError
from .npzfile import read_npz

TMP = _files.TMP


def _replace(tmp, path):  # a seam for tests that simulate a crash before the rename
    os.replace(tmp, path)


def _content(arrays):
    """What files.write_files writes: the bytes as they are, or np.savez of a dict."""
    if isinstance(arrays, (bytes, bytearray)):
        return arrays
    return lambda f: np.savez(f, **arrays)


def save_files(files):
    """Write {path: arrays or bytes} all-or-nothing as far as a crash allows (see the module doc):
    every temporary file first, then the renames in the given order, then one folder fsync. The
    folders must exist."""
    try:
        _files.write_files({os.fspath(p): _content(a) for p, a in files.items()},
                           replace=lambda tmp, path: _replace(tmp, path))
    except OSError as e:
        what = " and ".join(os.fspath(p) for p in files)
        raise NetcliError(f"cannot write {what}: {_files.reason(e)} (nothing was left half-written; earlier "
                          "snapshots are intact)") from None


def atomic_savez(path, arrays: dict):
    """np.savez to `path`, crash-safe (see the module doc)."""
    save_files({os.fspath(path): arrays})


def own_temporary(stem):
    """The regular expression of the temporary files netcli writes for snapshot prefix `stem`
    (its last part): '<stem>_iter_<N>.weights.npz', '.solverstate.npz', '.caffemodel',
    '<stem>_best.weights.npz' or '<stem>_probe.npz', then '.tmp' (older netcli) or
    '.<letters and digits>.tmp'. Group 1: the final name."""
    finals = r"_iter_[0-9]+\.(?:weights\.npz|solverstate\.npz|caffemodel)|_best\.weights\.npz|_probe\.npz"
    return re.compile(f"({re.escape(stem)}(?:{finals}))" + r"(?:\.[A-Za-z0-9_]{1,32})?\.tmp", re.ASCII)


def recover(prefix):
    """Before training with this snapshot prefix: finish a pair whose solver state was complete
    but not yet renamed when an earlier run died, and remove every other temporary file of the
    prefix (ours only: the exact names of own_temporary, regular files, never a symlink's target)."""
    folder, stem = os.path.split(os.path.abspath(prefix))
    pattern = own_temporary(stem)
    try:
        names = sorted(os.listdir(folder))
    except OSError:
        return [], []
    finished, removed = [], []
    for name in names:
        m = pattern.fullmatch(name)
        if not m:
            continue
        tmp, final = os.path.join(folder, name), os.path.join(folder, m.group(1))
        weights = final.replace(".solverstate.npz", ".weights.npz")
        if (final.endswith(".solverstate.npz") and os.path.isfile(weights) and not os.path.lexists(final)
                and not os.path.islink(tmp)):
            try:
                read_npz(tmp, "solver state")
                os.replace(tmp, final)
                finished.append(final)
                continue
            except (NetcliError, OSError):
                pass
        try:
            os.unlink(tmp)           # a symlink is removed itself, its target never touched
            removed.append(tmp)
        except OSError:
            pass
    if finished or removed:
        _files.fsync_folder(folder)
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
    from ..data.transform import Preprocessing
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
        from ..caffe.caffemodel import caffemodel_bytes
        _files.write_atomic(path, caffemodel_bytes(net), "weights file")
    else:
        _files.write_atomic(path, _content(weight_arrays(net)), "weights file")


def read_weights(path, shapes=None):
    """{'<layer>/<i>': array} of a weights file (.npz or .caffemodel); a caffemodel's legacy 4-D
    shapes are fitted to `shapes` ({key: shape}) where Caffe would accept them."""
    if os.fspath(path).lower().endswith((".yaml", ".yml", ".prototxt", ".pbtxt")):
        raise NetcliError(f"{path} is a net or solver file; weights are a .weights.npz or a .caffemodel")
    if not is_caffemodel(path):
        # the net's param shapes bound what is read: an array of another name or shape is not inflated
        return {k: v for k, v in read_npz(path, shapes=shapes).items()
                if not k.startswith(META)}
    from ..caffe.caffemodel import caffemodel_arrays, fit_legacy
    arrays, legacy = caffemodel_arrays(path, shapes)
    for key in legacy:
        if shapes and key in shapes:
            arrays[key] = fit_legacy(arrays[key], shapes[key])
    return arrays


def load_weights(net, path, strict=True):
    """Copy a weights file's arrays into `net`'s params by name; (loaded keys, unused keys). The
    arrays of layers the net does not have are ignored with one "Ignoring source layer X" line each,
    as Caffe's CopyTrainedLayersFrom does; every other mismatch is an error when `strict` (a param
    missing from the file, an array of another shape or index of a layer the net has)."""
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
    layers = set(net.layer_names)
    for name in dict.fromkeys(k.rsplit("/", 1)[0] for k in arrays if k not in expected):
        if name not in layers:
            log.warn(f"Ignoring source layer {name} ({path}: net '{net.name}' has no layer of that name)")
    if strict:
        problems += [f"  {k}: in the file but not in the net" for k in unused if k.rsplit("/", 1)[0] in layers]
    if problems:
        hint = "" if strict else ("\n(to learn a layer from scratch rather than copy it, rename the layer)")
        raise NetcliError(f"{path}: weights do not match net '{net.name}':\n" + "\n".join(problems) + hint)
    for key in loaded:
        if arrays[key].dtype.kind not in "fiu":
            raise NetcliError(f"{path}: array '{key}' holds {arrays[key].dtype}, not numbers")
    for key in loaded:
        expected[key].data[...] = arrays[key]
    return loaded, unused
