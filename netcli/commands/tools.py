"""What `netcli test`, `time` and `check` do, as functions a notebook can call too."""
from __future__ import annotations

import os
import sys
import math
import time

import numpy as np

from ..errors import ConfigError, NetcliError
from ..net import Net


def _noop(*a, **k):
    pass


def _classifier_blobs(net):
    """(scores, labels) blobs of the first metric (Accuracy), else loss (SoftmaxWithLoss), reading
    class scores and labels, or None."""
    for metric in (True, False):
        for layer, bottoms in zip(net.layers, net.bottom_vecs):
            if layer.class_scores == "bottom" and layer.metric == metric:
                return bottoms[0], bottoms[1], layer.axis
    return None


def score(model, weights, iterations=None, phase="TEST", echo=None, metrics=False, group=None, stages=(), level=0,
          gpu=None):
    """Run the net over its data and average every output, as `caffe test`: `iterations` batches,
    or (None) the whole data set once, each sample counted exactly once (netcli.evaluate).
    Returns {"outputs": {name: mean}, "loss": mean loss, "iterations": batches, "samples": n}
    (+ "metrics" if asked: confusion matrix, per-class precision/recall/F1 over the same samples)."""
    from ..evaluate import evaluate
    from ..exec import device_of
    from ..metrics import classification_metrics, confusion, format_metrics
    echo = echo or _noop
    net = Net(model, phase=phase, stages=stages, level=level, device=device_of(gpu, group))
    if net.inputs and not net.data_layers():
        raise NetcliError(f"{model}: the {phase} net's data comes from Input layers ({', '.join(net.inputs)}), which "
                          "netcli test would score as zeros; test a train/test net (with a data layer), or classify "
                          "files with netcli predict")
    net.load_all(weights)
    from ..solver.hooks import best_note
    for w in str(weights).split(","):
        note = best_note(w.strip())
        if note:
            echo(f"{w}: {note}")
    if net.device != "cpu":                         # the full batches on the device (netcli/exec/cuda.py)
        echo(f"Testing on GPU {gpu} ({net.executor.device})")
    if iterations is None and not net.data_size():
        raise NetcliError(f"{model}: no Data layer in the {phase} net; give --iterations")
    if metrics and _classifier_blobs(net) is None:
        raise NetcliError(f"{model}: --metrics needs a classification net (an Accuracy or SoftmaxWithLoss layer)")
    cm = [None]

    def on_batch(i, run, rows):
        if metrics:
            scores, labels, axis = _classifier_blobs(run)
            s = np.moveaxis(scores.data, axis, -1)
            pred, lab = s.argmax(axis=-1), labels.data.reshape(s.shape[:-1])
            cm[0] = confusion(pred, lab, s.shape[-1], cm[0])
        if group is None:
            for name in run.outputs:
                for x in np.reshape(run.blobs[name].data, -1):
                    echo(f"Batch {i}, {name} = {x:.6g}")

    planned = iterations if iterations is not None else math.ceil(net.data_size() / net.batch_size())
    if group is not None:
        if group.rank:
            echo = _noop
        planned_line = f" split across {group.size} processes"
    else:
        planned_line = ""
    echo(f"Running for {planned} iterations{planned_line}.")
    from ..kernels.compiles import KernelCompiles
    bar = None
    if sys.stderr.isatty() and (group is None or group.rank == 0):
        from tqdm import tqdm
        bar = tqdm(total=planned, file=sys.stderr, unit="batch", desc="testing", dynamic_ncols=True, leave=False)

    def batch_done(i, run, rows):
        on_batch(i, run, rows)
        if bar is not None:
            bar.update(1)
    try:
        with KernelCompiles(echo):
            result = evaluate(net, iterations, batch_done, group=group)
    finally:
        if bar is not None:
            bar.close()
    if group is not None:          # every batch's lines, in batch order, from rank 0
        for i, (_, out, _) in enumerate(result["per_batch"]):
            for name, v in out.items():
                for x in np.reshape(v, -1):
                    echo(f"Batch {i}, {name} = {x:.6g}")
        if metrics:
            parts = [c for c in group.allgather(cm[0]) if c is not None]
            cm[0] = sum(parts[1:], parts[0]) if parts else None
    weights_of = {t.name: w for t, w in net.loss_tops}
    echo(f"Loss: {result['loss']:.6g}")
    for name, v in result["outputs"].items():
        w = weights_of.get(name, 0.0)
        for x in np.reshape(v, -1):
            echo(f"{name} = {x:.6g}" + (f" (* {w:g} = {w * x:.6g} loss)" if w else ""))
    outputs = {k: float(v) if np.ndim(v) == 0 else np.asarray(v).tolist() for k, v in result["outputs"].items()}
    out = {"outputs": outputs, "loss": result["loss"], "iterations": result["batches"], "samples": result["samples"]}
    if cm[0] is not None:
        out["metrics"] = classification_metrics(cm[0])
        format_metrics(out["metrics"], echo)
    return out


def json_safe(value, path="", nonfinite=None, digits=None):
    """`value` with every NaN/inf replaced by None (JSON has no such numbers); the dotted paths
    of those values are appended to `nonfinite`. `digits`: floats rounded to that many significant
    digits (float32 results printed without float noise: 0.95, not 0.9500000059604645)."""
    if isinstance(value, dict):
        return {k: json_safe(v, f"{path}.{k}" if path else str(k), nonfinite, digits) for k, v in value.items()}
    if isinstance(value, (list, tuple, np.ndarray)):
        return [json_safe(v, f"{path}[{i}]", nonfinite, digits) for i, v in enumerate(value)]
    if isinstance(value, (float, np.floating)):
        if not math.isfinite(value):
            if nonfinite is not None:
                nonfinite.append(path)
            return None
        return float(f"{float(value):.{digits}g}") if digits else float(value)
    if isinstance(value, np.integer):
        return int(value)
    return value


def benchmark(model, iterations=50, phase="TRAIN", echo=None, group=None, stages=(), level=0, gpu=None):
    """Per-layer forward/backward times in ms, as `caffe time` (one warm-up pass first, so JIT
    compilation is reported apart). With a process group (mpiexec), the batch is split as in
    training, every process times its part, and rank 0 reports the slowest process's times and
    the gradient reduction's (communication) time per iteration. On a GPU (`gpu`): per-layer
    times between CUDA events, kernel launches per layer, and host<->device copies."""
    from ..exec import device_of
    from ..exec.threads import describe
    echo = echo if group is None or group.rank == 0 else None
    echo = echo or _noop
    t0 = time.perf_counter()
    if group is not None and phase != "TRAIN":
        raise NetcliError("netcli time under mpiexec times the TRAIN phase (the split of training)")
    net = Net(model, phase=phase, stages=stages, level=level, device=device_of(gpu, group))
    if group is not None:
        net.executor.distribute(group)
    device = net.device != "cpu"
    setup_s = time.perf_counter() - t0
    echo(f"GPU {gpu}: {net.executor.device}" if device else f"Threads: {describe()}")
    echo("Performing Forward")
    t0 = time.perf_counter()
    net.forward()
    echo(f"Initial loss: {net.loss:.6g}")
    echo("Performing Backward")
    net.clear_param_diffs()
    net.backward()
    warm_s = time.perf_counter() - t0
    echo(f"First forward-backward (includes kernel compilation or cache load): {warm_s * 1000:.1f} ms.")
    echo("*** Benchmark begins ***")
    echo(f"Testing for {iterations} iterations.")
    fwd, bwd, total, counts = time_layers(net, iterations, echo)
    echo("Average time per layer: ")
    for i, name in enumerate(net.layer_names):
        for word, ms, k in (("forward", fwd, 0), ("backward", bwd, 1)):
            extra = (f" ({counts[k][i][0]:.3g} launches, {counts[k][i][1]:.3g} copies)" if device else "")
            echo(f"{name:>10}\t{word}: {ms[i]:.5g} ms.{extra}")
    compute = comm = 0.0
    if device:
        counts0 = net.executor.counters()
    for _ in range(iterations):
        t0 = time.perf_counter()
        net.clear_param_diffs()
        net.forward_backward()
        net.executor.synchronize()
        t1 = time.perf_counter()
        if group is not None:
            group.reduce_grads(net.param_diff)
        compute, comm = compute + t1 - t0, comm + time.perf_counter() - t1
    as_trained = compute / iterations * 1000
    if group is not None:        # the slowest process sets the pace
        as_trained, comm = (max(v) for v in zip(*group.allgather((as_trained, comm / iterations * 1000))))
        fwd, bwd = (np.max(group.allgather(a), axis=0) for a in (fwd, bwd))
        total = max(group.allgather(total))
    result = {
        "as_trained_ms": as_trained,
        "layers": [{"name": n, "type": l.type, "forward_ms": float(f), "backward_ms": float(b)}
                   for n, l, f, b in zip(net.layer_names, net.layers, fwd, bwd)],
        "forward_ms": float(fwd.sum()), "backward_ms": float(bwd.sum()),
        "forward_backward_ms": total / iterations * 1000, "total_ms": total * 1000,
        "iterations": iterations, "setup_s": setup_s, "first_pass_s": warm_s, "threads": describe(),
    }
    if device:
        ex = net.executor
        launches, copies, copy_s = ((a - b) / iterations for a, b in zip(ex.counters(), counts0))
        copy_ms = copy_s * 1000
        result["layers"] = [dict(r, forward_launches=counts[0][i][0], backward_launches=counts[1][i][0],
                                 forward_copies=counts[0][i][1], backward_copies=counts[1][i][1])
                            for i, r in enumerate(result["layers"])]
        result.update(gpu=gpu, device=ex.device, launches_per_iteration=launches + 1,
                      copies_per_iteration=copies, copy_ms=copy_ms, threads=None,
                      timing="wall clock of the CUDA simulator (not a GPU's times)" if "simulated" in ex.device
                      else "CUDA events")
        echo(f"Kernel launches per training iteration: {launches + 1:.4g} (forward, backward, clearing the "
             "gradients, and the update rule's 1)")
        echo(f"Host<->device copies per iteration: {copies:.3g}, {copy_ms:.4g} ms (the inputs, the loss, and "
             "the layers on the host)")
        echo(f"Layer times: {result['timing']}")
    echo(f"Average Forward pass: {result['forward_ms']:.5g} ms.")
    echo(f"Average Backward pass: {result['backward_ms']:.5g} ms.")
    echo(f"Average Forward-Backward: {result['forward_backward_ms']:.5g} ms.")
    echo(f"Total Time: {result['total_ms']:.5g} ms.")
    how = ("the same passes, timed from the host" if device else
           f"training runs per-sample layers in stretches, {len(net.executor.stretches)} step(s)")
    echo(f"Average Forward-Backward as in training (layers one at a time above; {how}): {as_trained:.5g} ms.")
    if group is not None:
        result.update(processes=group.size, reduction=group.reduction, communication_ms=comm,
                      gradient_mb=net.param_diff.nbytes / 2 ** 20)
        echo(f"Processes: {group.size}, each computing its part of the batch of {net.batch_size() or '?'}: "
             f"compute {as_trained:.5g} ms, gradient reduction ({group.reduction}, "
             f"{net.param_diff.nbytes / 2 ** 20:.3g} MB) {comm:.5g} ms per iteration (slowest process).")
    for line in net.executor.plan():
        echo(f"Parallel plan: {line}")
    echo("*** Benchmark ends ***")
    return result


def time_layers(net: Net, iterations, echo=None):
    """Average forward and backward ms of every layer (arrays in net order), the total seconds,
    and per layer the average (launches, copies) on a GPU (zeros on the CPU)."""
    L = len(net.layers)
    ms = np.zeros((2, L))
    counts = np.zeros((2, L, 2))        # [forward/backward][layer] -> (launches, copies): the GPU's
    clock = time.perf_counter
    total0 = clock()

    def run(i, k):
        s = clock()
        r = net.executor.time_layer(i, forward=k == 0)
        ms[k, i] += (clock() - s) * 1000 if r is None else r[0]
        if r is not None:
            counts[k, i] += r[1:]
    for j in range(iterations):
        it0 = clock()
        for i in range(L):
            run(i, 0)
        net.clear_param_diffs()
        for i in reversed(range(L)):
            if net.need_backward[i]:
                run(i, 1)
        if echo:
            echo(f"Iteration: {j + 1} forward-backward time: {(clock() - it0) * 1000:.4g} ms.")
    total = clock() - total0
    return ms[0] / iterations, ms[1] / iterations, total, counts / iterations


def describe_net(net: Net, echo):
    """Layer table: top shapes, params, FLOPs per image, activation memory; then totals."""
    echo(f"Net '{net.name}' ({net.phase}): {len(net.layers)} layers")
    rows = []
    tot_p = tot_f = tot_m = 0
    seen = set()
    for layer, c, b, t in zip(net.layers, net.configs, net.bottom_vecs, net.top_vecs):
        params = sum(x.count for x in layer.blobs)
        flops = layer.flops(b, t)
        mem = sum(x.data.nbytes + x.diff.nbytes for x in t if id(x.data) not in seen)
        seen.update(id(x.data) for x in t)
        shapes = ", ".join("x".join(map(str, x.shape)) or "scalar" for x in t) or "-"
        rows.append((c.name, c.type, shapes, f"{params:,}", f"{flops / 1e6:.3f}", f"{mem / 2 ** 20:.2f}"))
        tot_p, tot_f, tot_m = tot_p + params, tot_f + flops, tot_m + mem
    head = ("layer", "type", "top shape", "params", "MFLOP/img", "act. MB")
    # columns as wide as their longest entry, so long names never run into the next column
    widths = [max(len(r[i]) for r in rows + [head]) for i in range(len(head))]
    for r in [head] + rows:
        echo("  ".join(v.ljust(w) if i < 3 else v.rjust(w) for i, (v, w) in enumerate(zip(r, widths))).rstrip())
    for line in net.executor.plan():
        echo(f"Parallel plan: {line}")
    learn = net.param_data.size
    echo(f"Total: {learn:,} learnable params ({learn * 4 / 2 ** 20:.2f} MB), {tot_f / 1e6:.3f} MFLOP forward per "
         f"image, {tot_m / 2 ** 20:.2f} MB of activations (data + diff) at the configured batch")
    return {"params": learn, "flops_per_image": tot_f, "activation_bytes": tot_m}


def print_config(model=None, solver=None, echo=None):
    """Write a net or solver file back as netcli reads it: only the fields given, canonical enum
    spellings, every layer of every phase. Loading the output gives the same net (or solver)."""
    import yaml
    from ..config.compile import config_to_dict
    if solver:
        from ..config.compile import solver_to_dict
        tree = solver_to_dict(solver)
    else:
        tree = config_to_dict(model)
    text = yaml.safe_dump(tree, sort_keys=False, default_flow_style=None, width=110)
    (echo or _noop)(text.rstrip("\n"))
    return text


def check(model=None, solver=None, phase=None, echo=None, stages=(), level=0):
    """Build the solver's nets, or the net in `phase` (None: TRAIN and TEST, as training and
    testing will), and print their tables; any mistake raises."""
    echo = echo or _noop
    if solver:
        from ..solver import Solver
        s = Solver(solver, progress=False, log_path=False)
        echo(f"Solver {solver}: {s.p.type} with lr_policy {s.p.lr_policy}, {s.max_iter} iterations, "
             f"test every {s.test_interval or 'never'} x {s.test_iter} batches, snapshots to {s.prefix}_iter_N")
        for net in [s.net] + s.test_nets:
            describe_net(net, echo)
    else:
        from .absent_data import check_without_data
        unchecked = False
        for ph in ([phase] if phase else ["TRAIN", "TEST"]):
            try:
                net = Net(model, phase=ph, stages=stages, level=level)
            except ConfigError as e:          # data not here: say which shapes went unchecked
                check_without_data(e, model, ph, stages, level, echo)
                unchecked = True
                continue
            describe_net(net, echo)
        if unchecked:
            echo("OK, but for the shapes named above (their data is not here)")
            return
    echo("OK")


def _fmt_default(f):
    from ..config.schema import REQUIRED, Message
    if f.default is REQUIRED:
        return "required"
    if isinstance(f.kind, Message):
        return ""
    if f.repeated:
        return "default []" if not f.default else f"default {list(f.default)}"
    return "no default" if f.default is None else f"default {f.default!r}"


def _fmt_fields(msg, prefix, echo, depth=0):
    from ..config.schema import Message
    for f in msg.fields:
        d = _fmt_default(f)
        echo(f"    {prefix}{f.name} ({f.type_name}{', ' + d if d else ''}): {f.doc}")
        if isinstance(f.kind, Message) and depth < 1 and f.kind.name != "FillerParameter":
            _fmt_fields(f.kind, f"{prefix}{f.name}.", echo, depth + 1)


def list_layers(type_=None, echo=None):
    """Every registered layer type with its parameters, defaults and meanings, generated from the
    specs that validate configs. Returns the listed type names."""
    from ..config.net_spec import LAYER_COMMON
    from ..config.schema import Message
    from ..fillers import FILLER
    from ..layers import REGISTRY
    from ..config.schema import did_you_mean
    echo = echo or _noop
    if type_ is not None and type_ not in REGISTRY:
        raise NetcliError(f"unknown layer type '{type_}'{did_you_mean(type_, REGISTRY)}")
    names = [type_] if type_ else sorted(REGISTRY)
    if not type_:
        echo("Fields of every layer:")
        _fmt_fields(Message("Layer", LAYER_COMMON), "", echo)
        echo("Fillers (weight_filler, bias_filler, filler):")
        _fmt_fields(FILLER, "", echo)
        echo("")
    for name in names:
        cls = REGISTRY[name]
        lo, hi = cls.bottoms
        tops_lo, tops_hi = cls.tops
        io = (f"bottoms {lo}" + ("" if hi == lo else f"-{hi if hi is not None else 'n'}") +
              f", tops {tops_lo}" + ("" if tops_hi == tops_lo else f"-{tops_hi if tops_hi is not None else 'n'}"))
        flags = [io] + (["in-place ok"] if cls.in_place_ok else []) + (["loss"] if cls.loss else []) + \
            ([] if cls.has_backward else ["no backward"])
        echo(f"{name} ({'; '.join(flags)}): {cls.doc}")
        for key, spec in cls.params.items():
            echo(f"  {key}:")
            _fmt_fields(spec, "", echo)
    return names


WEIGHT_EXT = (".npz", ".caffemodel")
CONFIG_EXT = (".yaml", ".yml", ".prototxt", ".pbtxt")


def is_solver_file(path):
    """A solver file names a net and training fields; a net file has layers."""
    from ..config.load import load_config
    tree = load_config(path, net=False)
    return not ({"layer", "layers"} & set(tree)) and bool({"net", "net_param", "train_net", "train_net_param",
                                                             "base_lr", "max_iter", "lr_policy"} & set(tree))


def predict(model, weights, inputs, top_k=5, labels=None, as_json=False, stages=(), level=0, scale=None,
            mean=None, colors=None, echo=None, gpu=None):
    """Print each input's top-k classes (netcli predict): one line per input, or one JSON list."""
    import json
    from .. import log
    from ..predict import predict as classify
    rows, clf = classify(model, weights, inputs, top_k, labels, stages, level, scale, mean, colors, gpu)
    if not clf.known:
        log.warn(f"nothing says how {model}'s inputs were prepared (no data layer, and {weights} keeps no "
                 "preprocessing): images go in resized, as 0..255 pixels, 3 channels as BGR; give --scale, "
                 "--mean-value or --mean-file, --colors, or a train/test net as --model")
    echo = echo or _noop
    if as_json:
        echo(json.dumps([{"input": name, "top_k": top} for name, top in rows]))
        return rows
    for name, top in rows:
        echo(f"{name}: " + "  ".join(f"{t['class']}{' ' + t['label'] if 'label' in t else ''} ({t['prob']:.4f})"
                                      for t in top))
    return rows


def export(model, weights, onnx_path, stages=(), level=0, echo=None, raw_input=False):
    """The TEST-phase inference graph of `model` with `weights` (None: as initialised, with a
    warning) as an ONNX file (netcli/io/onnx_export.py); how its input is prepared goes into its
    metadata, or with raw_input into the graph (netcli/io/onnx_preprocess.py)."""
    from ..io.onnx_export import export_onnx
    from ..io.onnx_preprocess import find_preprocessing
    net = Net(model, phase="TEST", weights=weights, stages=stages, level=level)
    if not weights:
        (echo or _noop)("Warning: no --weights given: the model holds the initial (untrained) weights")
    inputs, outputs = export_onnx(net, onnx_path, find_preprocessing(net, weights), raw_input)
    (echo or _noop)(f"Wrote {onnx_path}: net '{net.name}', inputs {', '.join(inputs)} -> outputs {', '.join(outputs)} "
                    "(batch axis free)")
    return inputs, outputs


def convert(source, output, model=None, echo=None):
    """A net or solver file between YAML and prototxt, or weights between .npz and .caffemodel
    (`model` gives the net they belong to); the output's extension says which. Written
    atomically: nothing half-written is left on an error."""
    from ..io.files import write_atomic
    from ..io.weights import is_caffemodel
    out = os.fspath(output)
    if not out.lower().endswith(WEIGHT_EXT + CONFIG_EXT):
        raise NetcliError(f"{out}: the output's extension says what to write: one of {', '.join(WEIGHT_EXT + CONFIG_EXT)}")
    if out.lower().endswith(WEIGHT_EXT):
        if not (os.fspath(source).endswith(".npz") or is_caffemodel(source)):
            raise NetcliError(f"{source}: weights are converted from a .npz or a .caffemodel")
        if not model:
            raise NetcliError("converting weights needs --model, the net they belong to (its layer names and shapes)")
        net = Net(model, phase="TEST")
        net.load(source)
        net.save(out)
        (echo or _noop)(f"Wrote {out}: {len(net.param_owner_keys)} param blobs of net '{net.name}'")
        return out
    if os.fspath(source).lower().endswith(WEIGHT_EXT):
        raise NetcliError(f"{source}: weights convert to .npz or .caffemodel, not to {os.path.splitext(out)[1]}")
    solver = is_solver_file(source)
    if out.lower().endswith((".prototxt", ".pbtxt")):
        from ..config.prototxt_write import net_to_prototxt, solver_to_prototxt
        text = solver_to_prototxt(source) if solver else net_to_prototxt(source)
    else:
        text = print_config(None if solver else source, source if solver else None) + "\n"
    write_atomic(out, text.encode("utf-8"), "converted file")
    (echo or _noop)(f"Wrote {out}: the {'solver' if solver else 'net'} of {source}")
    return out
