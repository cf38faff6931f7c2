"""Running a trained net: `netcli test` (score: the net over its data, with its metrics) and
`netcli predict` (new inputs classified), as functions a notebook can call too."""
from __future__ import annotations

import sys
import math

import numpy as np

from ..errors import NetcliError
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
    net = Net(model, phase=phase, stages=stages, level=level, device=device_of(gpu, group), inference=True,
              release_rows=not metrics and "auto")         # (--metrics reads the classifier's scores)
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
    from ..ops.compiles import KernelCompiles
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


def predict(model, weights, inputs, top_k=5, labels=None, as_json=False, stages=(), level=0, scale=None,
            mean=None, colors=None, echo=None, gpu=None, images_dim=None, center_only=False):
    """Print each input's top-k classes (netcli predict): one line per input, or one JSON list."""
    import json
    from .. import log
    from ..predict import predict as classify
    rows, clf = classify(model, weights, inputs, top_k, labels, stages, level, scale, mean, colors, gpu,
                         images_dim, center_only)
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
