"""The commands on a net and its weights: `netcli test`, `time`, `check`, `convert`, `predict`,
`export` and `layers` (registered on the `netcli` group by netcli/cli/__init__.py); each is a thin shell
over netcli/commands/."""
from __future__ import annotations

import json

import click

from .common import echo, process_group, upper_phase
from .caffe_tools import GPU, resolve_gpu


@click.command()
@click.option("--model", required=True, type=click.Path(dir_okay=False), help="The net file (YAML or Caffe prototxt).")
@click.option("--weights", required=True, help="Weights to score (.weights.npz or .caffemodel).")
@click.option("--iterations", type=click.IntRange(min=1), help="Batches to run (default: the whole data set once).")
@click.option("--phase", default="TEST", type=click.Choice(["TRAIN", "TEST"], case_sensitive=False),
              callback=upper_phase, show_default=True, help="Which phase's data layer to score on (either case).")
@click.option("--stage", "stages", multiple=True, help="A stage of the net (repeat for several), as Caffe's -stage.")
@click.option("--level", default=0, show_default=True, type=int, help="The net's level, as Caffe's -level.")
@click.option("--metrics", is_flag=True, help="Also a confusion matrix and per-class precision, recall and F1.")
@click.option("--plot", "plot_path", type=click.Path(dir_okay=False),
              help="Draw the confusion matrix to this .png/.svg/.pdf (implies --metrics; pip install 'netcli[plot]').")
@click.option("--labels", type=click.Path(dir_okay=False), help="Class names, one per line, for --plot.")
@click.option("--gpu", type=GPU, default=None, callback=resolve_gpu,
              help="Run on this CUDA device (pip install 'netcli[gpu]'); -1 or absent: the CPU; all: the "
              "machine's GPU (one per process for now).")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object: the averaged outputs, the total loss, "
              "iterations and samples (and the metrics).")
@click.pass_context
def test(ctx, model, weights, iterations, phase, stages, level, metrics, plot_path, labels, gpu, as_json):
    """Score a trained net: per-batch outputs, then their averages; under mpiexec or srun the
    batches are split across the processes."""
    from ..commands.score import json_safe, score
    g = process_group(ctx)
    metrics = metrics or bool(plot_path)
    names = None
    if labels:
        from ..predict import read_labels
        names = read_labels(labels)
    if plot_path:
        from ..viz.plot import _pyplot
        _pyplot()                   # a missing matplotlib is said before the test runs, not after
    result = score(model, weights, iterations, phase, echo=None if as_json else echo, metrics=metrics,
                   group=g, stages=stages, level=level, gpu=gpu)
    if g is not None and g.rank:
        return
    if plot_path:
        from ..viz.plot import confusion_matrix
        confusion_matrix(result["metrics"]["confusion_matrix"], plot_path, names)
        echo(f"Wrote {plot_path}", err=as_json)
    if as_json:       # what the text prints: the averaged outputs, the total loss, batches and samples
        out = {"outputs": result["outputs"], "loss": result["loss"], "iterations": result["iterations"],
               "samples": result["samples"]}
        if metrics:
            out["metrics"] = result["metrics"]
        nonfinite = []
        out = json_safe(out, nonfinite=nonfinite, digits=7)
        if nonfinite:       # JSON has no NaN or inf: such values are null, and named here
            out["nonfinite"] = nonfinite
        echo(json.dumps(out, allow_nan=False))


@click.command()
@click.option("--model", required=True, type=click.Path(dir_okay=False), help="The net file (YAML or Caffe prototxt).")
@click.option("--iterations", default=50, show_default=True, type=click.IntRange(min=1),
              help="Forward-backward passes to average over (after one warm-up pass).")
@click.option("--phase", default="TRAIN", type=click.Choice(["TRAIN", "TEST"], case_sensitive=False),
              callback=upper_phase, show_default=True, help="Which phase of the net to time (either case).")
@click.option("--stage", "stages", multiple=True, help="A stage of the net (repeat for several), as Caffe's -stage.")
@click.option("--level", default=0, show_default=True, type=int, help="The net's level, as Caffe's -level.")
@click.option("--json", "as_json", is_flag=True, help="Print the timings as one JSON object.")
@click.option("--reduction", type=click.Choice(["exact", "mpi"]), default="exact", show_default=True,
              help="Under mpiexec/srun: the gradient reduction to time (see train).")
@click.option("--gpu", type=GPU, default=None, callback=resolve_gpu,
              help="Time on this CUDA device (pip install 'netcli[gpu]'): CUDA event times, kernel launches and "
              "host<->device copies per layer; -1 or absent: the CPU; all: the machine's GPU (one for now).")
@click.pass_context
def time(ctx, model, iterations, phase, stages, level, as_json, reduction, gpu):
    """Per-layer forward and backward times, as `caffe time`; under mpiexec or srun, each
    process's part of the batch, and the gradient reduction's time."""
    from ..commands.timing import benchmark
    from ..commands.score import json_safe
    g = process_group(ctx, reduction)
    result = benchmark(model, iterations, phase, echo=None if as_json else echo, group=g, stages=stages,
                       level=level, gpu=gpu)
    if g is not None and g.rank:
        return
    if as_json:
        echo(json.dumps(json_safe(result, digits=5), allow_nan=False))


@click.command()
@click.option("--model", type=click.Path(dir_okay=False), help="A net YAML file.")
@click.option("--solver", "solver_path", type=click.Path(dir_okay=False), help="A solver YAML file (checks its nets too).")
@click.option("--phase", default=None, type=click.Choice(["TRAIN", "TEST"], case_sensitive=False),
              callback=upper_phase, help="Check only this phase of --model (default: TRAIN and TEST).")
@click.option("--stage", "stages", multiple=True, help="A stage of the net (repeat for several), as Caffe's -stage.")
@click.option("--level", default=0, show_default=True, type=int, help="The net's level, as Caffe's -level.")
@click.option("--print-config", is_flag=True, help="Print the file as netcli reads it (given fields, canonical "
              "spellings); loading the output gives the same net.")
def check(model, solver_path, phase, stages, level, print_config):
    """Validate without training: shapes, params, FLOPs and memory per layer."""
    if bool(model) == bool(solver_path):
        raise click.UsageError("give --model or --solver")
    from ..commands.check import check as run_check, print_config as write_config
    if print_config:
        write_config(model, solver_path, echo=echo)
        return
    run_check(model, solver_path, phase, echo=echo, stages=stages, level=level)


@click.command()
@click.argument("source", type=click.Path(dir_okay=False))
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False),
              help="The file to write; its extension says what: .yaml, .prototxt, .npz or .caffemodel.")
@click.option("--model", type=click.Path(dir_okay=False), help="For weights: the net they belong to.")
def convert(source, output, model):
    """Convert a net or solver between YAML and Caffe's prototxt, or weights between .npz and
    Caffe's .caffemodel."""
    from ..commands.convert import convert as run_convert
    run_convert(source, output, model, echo=echo)


@click.command()
@click.option("--model", required=True, type=click.Path(dir_okay=False),
              help="A deploy net, or a train/test net (its TEST data layer says how to prepare inputs).")
@click.option("--weights", required=True, help="Trained weights (.weights.npz or .caffemodel).")
@click.argument("inputs", nargs=-1, required=True, type=click.Path())
@click.option("--top-k", default=5, show_default=True, type=click.IntRange(min=1), help="Classes to show per input.")
@click.option("--labels", type=click.Path(dir_okay=False), help="Class names, one per line.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON list: input, then its top-k classes.")
@click.option("--stage", "stages", multiple=True, help="A stage of the net (repeat for several), as Caffe's -stage.")
@click.option("--level", default=0, show_default=True, type=int, help="The net's level, as Caffe's -level.")
@click.option("--scale", type=float, help="Multiply pixels (0..255, less the mean) by this (replaces the known one).")
@click.option("--mean-value", "mean_values", type=float, multiple=True,
              help="Per-channel mean to subtract (repeat once per channel).")
@click.option("--mean-file", type=click.Path(dir_okay=False), help="Mean image (.binaryproto or .npy) to subtract.")
@click.option("--colors", type=click.Choice(["RGB", "BGR"], case_sensitive=False),
              help="Channel order of 3-channel inputs (Caffe's models: BGR).")
@click.option("--gpu", type=GPU, default=None, callback=resolve_gpu,
              help="Run on this CUDA device (pip install 'netcli[gpu]'); -1 or absent: the CPU; all: the "
              "machine's GPU (one per process for now).")
@click.option("--images-dim", "images_dim", callback=lambda ctx, p, v: _dims(v),
              help="H,W: resize images to this before cutting them to the net's input, as Caffe's classify.py "
              "(default: the size the data layer or the weights keep; for a deploy net with Caffe's weights, "
              "classify.py's 256,256 where the input fits).")
@click.option("--center-only", is_flag=True, help="Classify the centre crop alone, instead of averaging the 10 "
              "crops of classify.py (4 corners, centre, and their mirrors) of images larger than the input.")
def predict(model, weights, inputs, top_k, labels, as_json, stages, level, scale, mean_values, mean_file, colors,
            gpu, images_dim, center_only):
    """Classify INPUTS (image files, folders of images, .npz files of samples) with a trained
    net: the top-k classes and their probabilities, per input. Images are resized to the net's
    input and prepared as its training data was."""
    from ..commands.score import predict as run_predict
    if mean_values and mean_file:
        raise click.UsageError("give --mean-value or --mean-file, not both")
    mean = mean_file or (list(mean_values) if mean_values else None)
    run_predict(model, weights, inputs, top_k, labels, as_json, stages, level, scale, mean, colors, echo=echo,
                gpu=gpu, images_dim=images_dim, center_only=center_only)


def _dims(value):
    """--images-dim 'H,W' (or one number for both) -> (H, W)."""
    if value is None:
        return None
    try:
        dims = tuple(int(s) for s in value.replace("x", ",").split(","))
    except ValueError:
        dims = ()
    if len(dims) == 1:
        dims *= 2
    if len(dims) != 2 or min(dims) < 1 or max(dims) > 65535:
        raise click.BadParameter(f"expected H,W (two positive integers), got {value!r}")
    return dims


@click.command()
@click.option("--onnx", "onnx_path", required=True, type=click.Path(dir_okay=False), help="The .onnx file to write.")
@click.option("--model", required=True, type=click.Path(dir_okay=False), help="The net file (YAML or Caffe prototxt).")
@click.option("--weights", help="Its trained weights (.weights.npz or .caffemodel).")
@click.option("--stage", "stages", multiple=True, help="A stage of the net (repeat for several), as Caffe's -stage.")
@click.option("--level", default=0, show_default=True, type=int, help="The net's level, as Caffe's -level.")
@click.option("--raw-input", is_flag=True, help="The model takes raw pixels (0..255) and subtracts the mean and "
              "multiplies by the scale itself (default: it takes the prepared input; its metadata says how).")
def export(onnx_path, model, weights, stages, level, raw_input):
    """Export the net's inference graph (its TEST phase; data layers become inputs, labels and
    losses are left out) with its weights to ONNX, for ONNX Runtime and other runtimes. Needs
    pip install 'netcli[onnx]'."""
    from ..commands.convert import export as run_export
    run_export(model, weights, onnx_path, stages, level, echo=echo, raw_input=raw_input)


@click.command()
@click.argument("type_", metavar="[TYPE]", required=False)
def layers(type_):
    """List every layer type with its parameters, defaults and meanings."""
    from ..commands.check import list_layers
    list_layers(type_, echo=echo)
