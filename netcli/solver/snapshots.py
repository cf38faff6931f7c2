"""Solver-state files: writing a snapshot pair, resuming from one (every entry validated), the
snapshot folder's start-up check and recovery, and the divergence message that names the last
good snapshot. Formats: README "Files"; crash safety: netcli/io/weights.py."""
from __future__ import annotations

import errno
import json
import os
import stat

import numpy as np

from ..io import files
from .. import log
from ..errors import NetcliError
from ..io.weights import read_npz, recover, save_files, weight_arrays
from ..update_rules import NAMES


def snap_name(prefix, it, kind):
    return f"{prefix}_iter_{it}.{kind}.npz"


def snapshot_folder(prefix):
    """The folder of `prefix`, created if absent, but only its last level: a parent that does
    not exist is one error (Caffe creates no folder at all; netcli creates the one it names)."""
    folder = os.path.dirname(os.path.abspath(prefix))
    if not os.path.isdir(folder):
        parent = os.path.dirname(folder)
        try:
            if not os.path.isdir(parent):
                raise FileNotFoundError(errno.ENOENT, f"its parent folder {parent} does not exist (netcli "
                                                      "creates only the last folder of snapshot_prefix)")
            os.mkdir(folder)
        except FileExistsError:
            if not os.path.isdir(folder):
                raise NetcliError(f"cannot write snapshots to '{folder}' (snapshot_prefix {prefix}): "
                                  "a file of that name is in the way") from None
        except OSError as e:
            raise NetcliError(f"cannot write snapshots to '{folder}' (snapshot_prefix {prefix}): "
                              f"{e.strerror}") from None
    return folder


def check_snapshot_folder(solver):
    """Fail now, not after hours of training, if snapshots cannot be written (as Caffe)."""
    folder = snapshot_folder(solver.prefix)
    try:       # a new '<prefix>_probe.npz.<random>.tmp' (O_EXCL, no symlink), which recover() removes if we die
        fd, probe = files.create_temp(f"{solver.prefix}_probe.npz")
        os.close(fd)
        os.unlink(probe)
    except OSError as e:
        raise NetcliError(f"cannot write snapshots to '{folder}' (snapshot_prefix {solver.prefix}): "
                          f"{e.strerror}") from None
    recover(solver.prefix)


def diverged_message(solver, loss):
    """The divergence message: which snapshot still holds weights that gave a finite loss."""
    good = [it for it in solver.snapshots_written if it < solver.iter]
    if solver.last_snapshot_iter is not None and not solver.snapshots_written:
        good = [solver.last_snapshot_iter] if solver.last_snapshot_iter < solver.iter else []
    last = (f"the last snapshot before it went bad is {snap_name(solver.prefix, good[-1], 'solverstate')}" if good
            else "no snapshot was written before it went bad")
    return f"Iteration {solver.iter}: loss is {loss}; training stopped ({last}). Try a lower base_lr."


def data_fingerprint(solver):
    """What the TRAIN data layers must keep for a resume to continue the same batches."""
    return {name: {"batch_size": l.B, "source": l.dp.source, "shuffle": l.dp.shuffle, "samples": len(l)}
            for name, l in zip(solver.net.layer_names, solver.net.layers) if l.reads_dataset}


def preprocessing(solver):
    """How the solver's inputs were prepared (the first test net's data layer, else the train net's;
    None without a data layer with a dataset): kept in the weights for predict."""
    from ..data.transform import Preprocessing
    for net in solver.test_nets + [solver.net]:
        layers = net.data_layers()
        if layers:
            return Preprocessing.of_data_layer(layers[0])
    return None


def write_snapshot(solver):
    """Write the pair <prefix>_iter_N.weights.npz and <prefix>_iter_N.solverstate.npz (naming
    the weights) crash-safely; non-finite weights are not written (returns None)."""
    if not np.isfinite(solver.net.param_data).all():
        log.warn(f"Iteration {solver.iter}: the weights are not finite; no snapshot written")
        return None
    wpath = snap_name(solver.prefix, solver.iter, "weights")
    spath = snap_name(solver.prefix, solver.iter, "solverstate")
    snapshot_folder(solver.prefix)
    written, drop = lineage(solver)
    log.info(f"Snapshotting to {wpath}")
    log.info(f"Snapshotting solver state to {spath}")
    state = {
        "iter": np.int64(solver.iter),
        "lr_step": np.int64(solver.policy.step),
        "type": np.array(solver.p.type),
        "learned_net": np.array(os.path.relpath(os.path.abspath(wpath), os.path.dirname(os.path.abspath(spath)))),
        "losses": np.asarray(solver.losses, np.float64),
        "net_state": np.array(json.dumps(solver.net.get_state())),
        "monitors": np.array(json.dumps({k: m.state() for k, m in solver.monitors.items()})),
        "data": np.array(json.dumps(data_fingerprint(solver))),
        "snapshots": np.array(written, np.int64),
    }
    for i, h in enumerate(solver.rule.history):
        state[f"history/{i}"] = h
    files = {wpath: weight_arrays(solver.net, preprocessing(solver)), spath: state}
    if solver.p.snapshot_format == "BINARYPROTO":      # Caffe's weights too, for Caffe and OpenCV
        from ..caffe.caffemodel import caffemodel_bytes
        cpath = wpath[:-len(".weights.npz")] + ".caffemodel"
        log.info(f"Snapshotting to binary proto file {cpath}")
        files = {cpath: caffemodel_bytes(solver.net), **files}
    save_files(files)
    solver.last_snapshot_iter = solver.iter
    solver.snapshots_written = written
    prune_snapshots(solver, drop)
    return wpath, spath


def write_best_weights(solver, it):
    """Early stopping's final model: the weights of iteration `it` (restored in memory), written
    as <prefix>_iter_<it>.weights.npz, without a solver state (it would not match them)."""
    wpath = snap_name(solver.prefix, it, "weights")
    log.info(f"Snapshotting the best weights (iteration {it}) to {wpath}")
    save_files({wpath: weight_arrays(solver.net, preprocessing(solver))})
    return wpath


def snapshot_pairs(prefix):
    """[(iteration, solverstate path)] of the complete pairs of `prefix` (a .solverstate.npz whose
    .weights.npz exists), oldest first."""
    folder, base = os.path.split(os.path.abspath(prefix))
    head, tail = base + "_iter_", ".solverstate.npz"
    try:
        names = os.listdir(folder)
    except OSError:
        return []
    pairs = []
    for n in names:
        if n.startswith(head) and n.endswith(tail) and n[len(head):-len(tail)].isdigit():
            it = int(n[len(head):-len(tail)])
            if os.path.exists(snap_name(prefix, it, "weights")):
                pairs.append((it, snap_name(prefix, it, "solverstate")))
    return sorted(pairs)


def lineage(solver):
    """(kept, dropped): the iterations of the pairs this run wrote (and the runs it resumed wrote),
    oldest first, with the one being written now; snapshot_keep keeps the newest N of them. Pairs
    of another run with the same prefix are never counted, so never removed."""
    written = [it for it in solver.snapshots_written if it != solver.iter] + [solver.iter]
    keep = solver.p.snapshot_keep
    if not keep or len(written) <= keep:
        return written, []
    return written[-keep:], written[:-keep]


def prune_snapshots(solver, drop):
    """snapshot_keep: remove the pairs of iterations `drop` (from lineage) of this prefix, by their
    exact names (and their .caffemodel when this run writes them); a symlink is removed, never
    its target."""
    for it in drop:
        paths = [snap_name(solver.prefix, it, "solverstate"), snap_name(solver.prefix, it, "weights")]
        if solver.p.snapshot_format == "BINARYPROTO":
            paths.append(f"{solver.prefix}_iter_{it}.caffemodel")
        for path in paths:
            try:
                os.unlink(path)
            except FileNotFoundError:
                pass
            except OSError as e:
                log.warn(f"snapshot_keep: cannot remove {path}: {e.strerror}")


def newest_pair(prefix):
    """The solver state of the pair of `prefix` written last (by time, then iteration), or None:
    what --resume continues, also when an older, longer run left higher iterations."""
    def written_at(pair):
        try:
            return os.stat(pair[1]).st_mtime_ns, pair[0]
        except OSError:
            return -1, pair[0]
    pairs = snapshot_pairs(prefix)
    return max(pairs, key=written_at)[1] if pairs else None


def snapshot_iteration(path):
    """The iteration a .solverstate.npz was written at."""
    return _count(read_npz(path, "solver state", names=["iter"]), "iter", path)


def restore(solver, path):
    """Resume from a .solverstate.npz: weights, history, iteration, lr position, data and RNG.
    Every damaged or mismatched entry is one NetcliError naming the file."""
    path = os.fspath(path)
    if path.endswith(".weights.npz"):
        raise NetcliError(f"{path} is a weights file: --snapshot takes a .solverstate.npz "
                          "(use --weights to fine-tune from weights)")
    st = read_npz(path, "solver state", shapes=_state_shapes(solver))
    need = ["iter", "lr_step", "type", "learned_net", "net_state"]
    missing = [k for k in need if k not in st]
    if missing:
        raise NetcliError(f"{path}: not a netcli solver state (missing {', '.join(missing)})")
    it, lr_step = _count(st, "iter", path), _count(st, "lr_step", path)
    kind, learned = _text(st, "type", path), _text(st, "learned_net", path)
    if kind != solver.p.type:
        raise NetcliError(f"{path}: state of a {NAMES.get(kind, kind)} solver, but this "
                          f"solver is {NAMES[solver.p.type]}")
    hist = [st[f"history/{i}"] for i in range(len(solver.rule.history)) if f"history/{i}" in st]
    if len(hist) != len(solver.rule.history) or any(h.shape != r.shape or h.dtype.kind != "f"
                                                  for h, r in zip(hist, solver.rule.history)):
        raise NetcliError(f"{path}: the saved history does not fit this net ({len(hist)} blobs of "
                          f"{hist[0].shape if hist else '?'}; expected {len(solver.rule.history)} of "
                          f"{solver.rule.history[0].shape})")
    losses = st.get("losses", np.zeros(0))
    if losses.dtype.kind not in "fiu" or losses.ndim != 1:
        raise NetcliError(f"{path}: entry 'losses' is damaged (expected a list of numbers)")
    net_state, monitors = _json(st, "net_state", path), _json(st, "monitors", path, {})
    if not isinstance(net_state, dict) or not isinstance(monitors, dict):
        raise NetcliError(f"{path}: entries 'net_state' and 'monitors' must be JSON objects")
    warn_if_inexact(solver, path, _json(st, "data", path, None), net_state)
    wpath = learned_net_path(path, learned)
    log.info(f"Resuming from {path}")
    solver.net.load(wpath)
    try:
        solver.net.set_state(net_state)
    except (KeyError, TypeError, ValueError, AttributeError) as e:
        raise NetcliError(f"{path}: entry 'net_state' (RNG and data positions) is damaged: "
                          f"{type(e).__name__} {e}") from None
    for h, saved in zip(solver.rule.history, hist):
        h[...] = saved
    solver.iter, solver.policy.step = it, lr_step
    solver.losses = [float(x) for x in losses]
    for k, saved in monitors.items():
        if k in solver.monitors and isinstance(saved, dict):
            solver.monitors[k].set_state(saved)
    solver.last_snapshot_iter = solver.iter
    solver.snapshots_written = _lineage(st, it, path)


def _state_shapes(solver):
    """The shapes a solver state's entries may declare (None: any length): the history exactly as
    this net's; an entry not named here, or declaring another shape, is not read (npzfile.Declared)."""
    shapes = {k: () for k in ("iter", "lr_step", "type", "learned_net", "net_state", "monitors", "data")}
    shapes.update(losses=(None,), snapshots=(None,))
    shapes.update({f"history/{i}": h.shape for i, h in enumerate(solver.rule.history)})
    return shapes


def learned_net_path(path, learned):
    """The weights file a solver state names: a plain file in the solver state's own folder,
    nothing else (no folder part, no '..', no symlink, no FIFO or device)."""
    if (not learned or learned in (".", "..") or os.path.basename(learned) != learned
            or (os.altsep and os.altsep in learned) or os.path.isabs(learned)):
        raise NetcliError(f"{path}: entry 'learned_net' {learned!r} must name a weights file in the solver "
                          "state's own folder")
    wpath = os.path.join(os.path.dirname(os.fspath(path)), learned)
    try:
        mode = os.lstat(wpath).st_mode
    except OSError:
        raise NetcliError(f"{path}: no such weights file {wpath} (a snapshot pair is a .solverstate.npz "
                          "and the .weights.npz it names, in the same folder)") from None
    if not stat.S_ISREG(mode):
        raise NetcliError(f"{path}: its weights file {wpath} is not a regular file")
    return wpath


def _lineage(st, it, path):
    """The 'snapshots' entry: iterations of the pairs this run's lineage wrote (older states: just
    the one resumed from)."""
    if "snapshots" not in st:
        return [it]
    a = st["snapshots"]
    if a.ndim != 1 or a.dtype.kind not in "iu" or len(a) > 10_000_000:
        raise NetcliError(f"{path}: entry 'snapshots' is damaged (expected a list of iterations)")
    return [int(x) for x in a if 0 <= x < it] + [it]


def warn_if_inexact(solver, path, saved, net_state):
    """One WARNING line when the TRAIN data layers changed since the snapshot."""
    now = data_fingerprint(solver)
    diffs = []
    for name, cur in now.items():
        old = (saved or {}).get(name)
        if old is None:
            if saved is not None or name not in net_state:
                diffs.append(f"data layer '{name}' is not in the snapshot (renamed?)")
            continue
        diffs += [f"data layer '{name}' {k} {old.get(k)!r} in the snapshot, {v!r} now"
                  for k, v in cur.items() if k in old and old.get(k) != v]
    if diffs:
        log.warn(f"resuming from {path} is not an exact continuation: {'; '.join(diffs)}")


def _count(st, key, path):
    a = st[key]
    if a.shape != () or a.dtype.kind not in "iu" or int(a) < 0:
        raise NetcliError(f"{path}: entry '{key}' is damaged (expected a count, got {a.dtype} of shape {a.shape})")
    return int(a)


def _text(st, key, path):
    a = st[key]
    if a.shape != () or a.dtype.kind != "U":
        raise NetcliError(f"{path}: entry '{key}' is damaged (expected text)")
    return str(a)


def _json(st, key, path, default=...):
    if key not in st:
        if default is ...:
            raise NetcliError(f"{path}: entry '{key}' is missing")
        return default
    try:
        return json.loads(_text(st, key, path))
    except (json.JSONDecodeError, RecursionError):
        raise NetcliError(f"{path}: entry '{key}' is damaged (not JSON)") from None
