"""The `netcli` command: a thin shell over the Python API. Imports stay lazy so that
`netcli --help` loads neither NumPy nor Numba."""
from __future__ import annotations

import json
import os
import re

import click

from . import __version__
from .cli_tools import GPU, device_query, extract_features, resolve_gpu

# Numba colours its error messages with colorama when that is installed, whose exit hook then
# writes an escape sequence to stdout if stdout is a terminal -- and under mpiexec it is a pty, so
# every rank appended one to `netcli test --json`'s output. The CLI shows no Numba errors anyway.
os.environ.setdefault("NUMBA_DISABLE_ERROR_MESSAGE_HIGHLIGHTING", "1")


class Group(click.Group):
    """User mistakes (NetcliError) exit 1 with a message, without a traceback unless --debug."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except KeyboardInterrupt:
            if ctx.obj.get("debug"):
                raise
            _echo("netcli: interrupted", err=True)
            ctx.exit(130)
        except click.exceptions.Exit:
            raise
        except Exception as e:
            from .errors import NetcliError
            if isinstance(e, NetcliError):
                line = f"error: {e}"
            elif isinstance(e, MemoryError):
                line = "error: out of memory (a smaller batch_size or net may fit)"
            else:        # a bug: one line here, the traceback with --debug
                line = (f"internal error: {type(e).__name__}: {e} (a bug in netcli; run "
                        "'netcli --debug ...' for the traceback and please report it)")
            _end_other_ranks(line, ctx.obj.get("debug") or isinstance(e, click.ClickException))
            if ctx.obj.get("debug") or isinstance(e, click.ClickException):
                raise
            _echo(f"netcli: {line}", err=True)
            ctx.exit(1)


def _echo(message="", err=False, nl=True):
    """click.echo for everything the CLI prints: names from files come with their control
    characters escaped (netcli.text.safe_text), never as terminal escape sequences."""
    from .text import safe_text
    click.echo(safe_text(message), err=err, nl=nl)


def _end_other_ranks(line, traceback):
    """In a run of several processes, a failing one ends the whole job (the others would wait in
    a collective forever): one line naming the rank, then MPI_Abort. Rank 0 goes first; another
    rank waits a moment, so an error every rank meets (a bad config) is reported once."""
    from .distributed import current
    g = current()
    if g is None:
        return
    if traceback:
        import traceback as tb
        tb.print_exc()
    if g.rank:
        import time as clock
        clock.sleep(1.0)
    g.abort(line)


ENVIRONMENT = """\b
Environment variables:
  NETCLI_THREADS  threads for kernels and BLAS (default: all cores; --threads wins)
  NETCLI_DATA     where named datasets are kept (default: ~/.cache/netcli)
  NETCLI_OFFLINE  1: never download; use what is in NETCLI_DATA, else the embedded data
  NETCLI_ALLOW_PYTHON  1: run nets' Python layers (as --allow-python-layers)"""


@click.group(cls=Group, context_settings={"help_option_names": ["-h", "--help"]}, epilog=ENVIRONMENT)
@click.option("--debug", is_flag=True, help="Show tracebacks for errors.")
@click.option("--threads", type=click.IntRange(min=1), default=None,
              help="Threads for kernels and BLAS (default: $NETCLI_THREADS, else all cores). Results are the "
              "same for any count.")
@click.option("--allow-python-layers", is_flag=True, help="Run the code of nets' Python layers (python_param.module, "
              "imported from the net file's folder or PYTHONPATH); without it such nets are refused.")
@click.version_option(version=__version__, prog_name="netcli")
@click.pass_context
def cli(ctx, debug, threads, allow_python_layers):
    """netcli: train, test and time Caffe-style nets written in YAML."""
    ctx.ensure_object(dict)
    ctx.obj["debug"] = debug
    ctx.obj["threads"] = threads
    from .data.datasets import offline
    from .exec.threads import env_threads, set_threads
    env_threads()               # the environment is checked up front, whatever the command
    offline()
    set_threads(threads)
    import sys
    if allow_python_layers or "netcli.layers.python" in sys.modules:    # per invocation (tests run several)
        from .layers.python import allow_python_layers as allow
        allow(allow_python_layers)


def _phase(ctx, param, value):
    return value.upper() if value else value


@cli.command()
@click.option("--solver", "solver_path", required=True, type=click.Path(dir_okay=False),
              help="The solver file (YAML or Caffe prototxt).")
@click.option("--snapshot", type=click.Path(dir_okay=False), help="Resume from this .solverstate.npz.")
@click.option("--weights", help="Fine-tune from these weights (comma-separated .weights.npz or .caffemodel files).")
@click.option("--iterations", type=click.IntRange(min=0), help="Train this many iterations (overrides max_iter); "
              "when resuming, this many more than the snapshot's.")
@click.option("--sigint-effect", type=click.Choice(["snapshot", "stop", "none"]), default="snapshot",
              show_default=True, help="On Ctrl-C (SIGINT): snapshot and stop, stop, or ignore it.")
@click.option("--sigterm-effect", type=click.Choice(["snapshot", "stop", "none"]), default="snapshot",
              show_default=True, help="On SIGTERM (kill, batch schedulers) and SIGUSR1 (what Open MPI's mpiexec passes on to "
                   "its ranks): snapshot and stop, stop, or ignore it.")
@click.option("--sighup-effect", type=click.Choice(["snapshot", "stop", "none"]), default="snapshot",
              show_default=True, help="On SIGHUP (terminal closed): snapshot and stop, stop, or ignore it.")
@click.option("--quiet", is_flag=True, help="No progress bar.")
@click.option("--reduction", type=click.Choice(["exact", "mpi"]), default="exact", show_default=True,
              help="Under mpiexec/srun: how the processes' gradients are summed: exact (a fixed order, "
              "the same weights as one process) or mpi (MPI_Allreduce, the library's order).")
@click.option("--shares", type=click.IntRange(min=1), default=None,
              help="Cut each TRAIN batch into this many shares (a power of two) instead of the default "
              "~32 samples each: more processes can then split it; the same --shares gives the same "
              "weights with any number of processes and threads.")
@click.option("--gpu", type=GPU, default=None, callback=resolve_gpu,
              help="Train on this CUDA device (pip install 'netcli[gpu]'; LeNet's layer types run on the device "
              "so far, others on the host); -1: the CPU; all: the machine's GPU (one per process for now). "
              "Default: the solver's solver_mode and device_id.")
@click.option("--resume", is_flag=True, help="Resume from the complete snapshot pair of the solver's "
              "snapshot_prefix written last (none yet: start from iteration 0).")
@click.option("--log", "log_path", type=click.Path(dir_okay=False),
              help="The JSONL run log to append to (default: <snapshot_prefix>.log.jsonl).")
@click.option("--log-format", type=click.Choice(["netcli", "caffe"]), default="netcli", show_default=True,
              help="caffe: glog prefixes on the text log, for Caffe's parse_log.py and plot_training_log.py.")
@click.pass_context
def train(ctx, solver_path, snapshot, weights, iterations, sigint_effect, sigterm_effect, sighup_effect, quiet,
          reduction, shares, gpu, resume, log_path, log_format):
    """Train (or fine-tune, or resume) a net as the solver file says; under mpiexec or srun, one
    batch split across the processes."""
    if snapshot and weights:
        raise click.UsageError("give --snapshot to resume or --weights to fine-tune, not both")
    if resume and (snapshot or weights):
        raise click.UsageError("--resume finds the snapshot itself: give it without --snapshot or --weights")
    from . import log
    from .solver import Solver
    from .solver.snapshots import newest_pair
    from .exec.threads import describe
    from time import perf_counter               # (`time` here is the command)
    log.set_format(log_format)
    g = _distributed(ctx, reduction)
    s = Solver(solver_path, weights=weights, max_iter=iterations, quiet=quiet, group=g, shares=shares,
               log_path=log_path, gpu=gpu)
    s.signal_effects.update(SIGINT=sigint_effect, SIGTERM=sigterm_effect, SIGHUP=sighup_effect)
    if resume:
        snapshot = newest_pair(s.prefix)
        if not snapshot:        # a found one is said by the restore ("Resuming from ...")
            log.info(f"--resume: no snapshot of {s.prefix} yet; starting from iteration 0")
    if snapshot and iterations is not None:
        from .solver.snapshots import snapshot_iteration
        s.set_max_iter(snapshot_iteration(snapshot) + iterations)
    if s.root:
        log.info((f"Threads, in each of {g.size} processes: " if g else "Threads: ") + describe())
    t0 = perf_counter()
    finished = s.solve(resume_file=snapshot)
    if s.root:
        from .solver.summary import summary_line
        log.info(summary_line(s, perf_counter() - t0, finished))


def _run_choice(ctx, param, value):
    if value in ("all", "last") or (value.isdigit() and int(value) >= 1):
        return value
    raise click.BadParameter(f"{value!r}: give all, last or a run's number (1 is the first)")


_RUN_HELP = ("Which runs of each log (a log holds every train and resume with its snapshot_prefix): "
             "all, last, or a run's number as `netcli log` lists them.")


@cli.command()
@click.argument("logs", nargs=-1, required=True, type=click.Path(dir_okay=False))
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False), help="The picture: .png, .svg or .pdf.")
@click.option("--x", "x_axis", type=click.Choice(["iter", "epoch", "seconds"]), default="iter", show_default=True,
              help="What the horizontal axis counts.")
@click.option("--smooth", type=click.IntRange(min=1), default=1, show_default=True,
              help="Average the train loss over this many displays.")
@click.option("--run", "which", default="all", show_default=True, callback=_run_choice, help=_RUN_HELP)
@click.option("--watch", type=click.FloatRange(min=0.01), default=None, metavar="SECONDS",
              help="Redraw whenever the logs grow, looking every SECONDS, until the run ends or Ctrl-C.")
@click.option("--max-refreshes", type=click.IntRange(min=0), default=None, help="With --watch: look this many times at most.")
def plot(logs, output, x_axis, smooth, which, watch, max_refreshes):
    """Learning curves from run logs (<snapshot_prefix>.log.jsonl): the train loss and every test
    output, one line per run (a resumed run continues its own). Needs pip install 'netcli[plot]'."""
    from .viz.plot import curves, log_curves, watch as watch_logs
    warned = set()

    def render():
        runs, ended = log_curves(logs, which, warned)
        panels = curves(runs, output, x_axis, smooth)
        _echo(f"Wrote {output}: {', '.join(panels)} against {x_axis}, {len(runs)} run(s)")
        return ended
    if watch is None:
        render()
    else:
        watch_logs(render, logs, watch, max_refreshes)


@cli.command()
@click.argument("model", type=click.Path(dir_okay=False))
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False),
              help="The drawing: .svg (no Graphviz needed), .dot (Graphviz source) or .png (netcli[plot]).")
@click.option("--phase", default="TRAIN", type=click.Choice(["TRAIN", "TEST"], case_sensitive=False),
              callback=_phase, show_default=True, help="Which phase of the net to draw (either case).")
@click.option("--stage", "stages", multiple=True, help="A stage of the net (repeat for several), as Caffe's -stage.")
@click.option("--rankdir", type=click.Choice(["TB", "LR"]), default="TB", show_default=True,
              help="Top to bottom, or left to right (Caffe's draw_net.py default).")
def draw(model, output, phase, stages, rankdir):
    """Draw the net as Caffe's draw_net.py does: layers, blobs with their shapes, and edges."""
    from .viz.draw import draw as draw_net
    from .net import Net
    g = draw_net(Net(model, phase=phase, stages=stages), output, rankdir)
    layers = sum(1 for n in g.nodes.values() if n["kind"] == "layer")
    _echo(f"Wrote {output}: {layers} layers, {len(g.nodes) - layers} blobs")


@cli.command("log")
@click.argument("path", type=click.Path(dir_okay=False))
@click.option("--csv", "as_csv", is_flag=True, help="The train and test records as CSV, one row each, with a run column.")
@click.option("--event", "events", type=click.Choice(["train", "test"]), multiple=True,
              help="With --csv: only these records (default: both).")
@click.option("--run", "which", default="all", show_default=True, callback=_run_choice, help=_RUN_HELP)
def log_command(path, as_csv, events, which):
    """A run log (<snapshot_prefix>.log.jsonl, written by every train): one line per run (start,
    iterations, resumes, seconds, last train loss and test scores, how it ended), or with --csv
    one row per display and per test, with run, iteration, epoch, seconds, lr and every output."""
    from .solver.runs import read_run_log, select, split_runs, summary, to_csv
    runs = select(split_runs(read_run_log(path)), which, path)
    if as_csv:
        _echo(to_csv(runs, tuple(events) or ("train", "test")), nl=False)
    else:
        _echo(summary(runs, path), nl=False)


def _distributed(ctx, reduction="exact"):
    """The job's process group under mpiexec/srun (None alone); without --threads or
    $NETCLI_THREADS, the cores of a host are divided among its processes."""
    from .distributed import group
    g = group(reduction)
    if g is not None and ctx.obj.get("threads") is None and not os.environ.get("NETCLI_THREADS"):
        from .exec.threads import set_threads, usable_cores
        set_threads(max(1, min(usable_cores(), (os.cpu_count() or 1) // g.local_size)))
    return g


@cli.command()
@click.option("--model", required=True, type=click.Path(dir_okay=False), help="The net file (YAML or Caffe prototxt).")
@click.option("--weights", required=True, help="Weights to score (.weights.npz or .caffemodel).")
@click.option("--iterations", type=click.IntRange(min=1), help="Batches to run (default: the whole data set once).")
@click.option("--phase", default="TEST", type=click.Choice(["TRAIN", "TEST"], case_sensitive=False),
              callback=_phase, show_default=True, help="Which phase's data layer to score on (either case).")
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
    from .commands.score import json_safe, score
    g = _distributed(ctx)
    metrics = metrics or bool(plot_path)
    names = None
    if labels:
        from .predict import read_labels
        names = read_labels(labels)
    if plot_path:
        from .viz.plot import _pyplot
        _pyplot()                   # a missing matplotlib is said before the test runs, not after
    result = score(model, weights, iterations, phase, echo=None if as_json else _echo, metrics=metrics,
                   group=g, stages=stages, level=level, gpu=gpu)
    if g is not None and g.rank:
        return
    if plot_path:
        from .viz.plot import confusion_matrix
        confusion_matrix(result["metrics"]["confusion_matrix"], plot_path, names)
        _echo(f"Wrote {plot_path}", err=as_json)
    if as_json:       # what the text prints: the averaged outputs, the total loss, batches and samples
        out = {"outputs": result["outputs"], "loss": result["loss"], "iterations": result["iterations"],
               "samples": result["samples"]}
        if metrics:
            out["metrics"] = result["metrics"]
        nonfinite = []
        out = json_safe(out, nonfinite=nonfinite, digits=7)
        if nonfinite:       # JSON has no NaN or inf: such values are null, and named here
            out["nonfinite"] = nonfinite
        _echo(json.dumps(out, allow_nan=False))


@cli.command()
@click.option("--model", required=True, type=click.Path(dir_okay=False), help="The net file (YAML or Caffe prototxt).")
@click.option("--iterations", default=50, show_default=True, type=click.IntRange(min=1),
              help="Forward-backward passes to average over (after one warm-up pass).")
@click.option("--phase", default="TRAIN", type=click.Choice(["TRAIN", "TEST"], case_sensitive=False),
              callback=_phase, show_default=True, help="Which phase of the net to time (either case).")
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
    from .commands.timing import benchmark
    from .commands.score import json_safe
    g = _distributed(ctx, reduction)
    result = benchmark(model, iterations, phase, echo=None if as_json else _echo, group=g, stages=stages,
                       level=level, gpu=gpu)
    if g is not None and g.rank:
        return
    if as_json:
        _echo(json.dumps(json_safe(result, digits=5), allow_nan=False))


@cli.command()
@click.option("--model", type=click.Path(dir_okay=False), help="A net YAML file.")
@click.option("--solver", "solver_path", type=click.Path(dir_okay=False), help="A solver YAML file (checks its nets too).")
@click.option("--phase", default=None, type=click.Choice(["TRAIN", "TEST"], case_sensitive=False),
              callback=_phase, help="Check only this phase of --model (default: TRAIN and TEST).")
@click.option("--stage", "stages", multiple=True, help="A stage of the net (repeat for several), as Caffe's -stage.")
@click.option("--level", default=0, show_default=True, type=int, help="The net's level, as Caffe's -level.")
@click.option("--print-config", is_flag=True, help="Print the file as netcli reads it (given fields, canonical "
              "spellings); loading the output gives the same net.")
def check(model, solver_path, phase, stages, level, print_config):
    """Validate without training: shapes, params, FLOPs and memory per layer."""
    if bool(model) == bool(solver_path):
        raise click.UsageError("give --model or --solver")
    from .commands.check import check as run_check, print_config as write_config
    if print_config:
        write_config(model, solver_path, echo=_echo)
        return
    run_check(model, solver_path, phase, echo=_echo, stages=stages, level=level)


@cli.command()
@click.argument("source", type=click.Path(dir_okay=False))
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False),
              help="The file to write; its extension says what: .yaml, .prototxt, .npz or .caffemodel.")
@click.option("--model", type=click.Path(dir_okay=False), help="For weights: the net they belong to.")
def convert(source, output, model):
    """Convert a net or solver between YAML and Caffe's prototxt, or weights between .npz and
    Caffe's .caffemodel."""
    from .commands.convert import convert as run_convert
    run_convert(source, output, model, echo=_echo)


@cli.command()
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
def predict(model, weights, inputs, top_k, labels, as_json, stages, level, scale, mean_values, mean_file, colors,
            gpu):
    """Classify INPUTS (image files, folders of images, .npz files of samples) with a trained
    net: the top-k classes and their probabilities, per input. Images are resized to the net's
    input and prepared as its training data was."""
    from .commands.score import predict as run_predict
    if mean_values and mean_file:
        raise click.UsageError("give --mean-value or --mean-file, not both")
    mean = mean_file or (list(mean_values) if mean_values else None)
    run_predict(model, weights, inputs, top_k, labels, as_json, stages, level, scale, mean, colors, echo=_echo,
                gpu=gpu)


@cli.command()
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
    from .commands.convert import export as run_export
    run_export(model, weights, onnx_path, stages, level, echo=_echo, raw_input=raw_input)


@cli.command()
@click.argument("type_", metavar="[TYPE]", required=False)
def layers(type_):
    """List every layer type with its parameters, defaults and meanings."""
    from .commands.check import list_layers
    list_layers(type_, echo=_echo)


@cli.group()
def data():
    """Datasets: fetch named ones into the data directory."""


@data.command("fetch")
@click.argument("name")
@click.option("--dir", "folder", type=click.Path(file_okay=False), help="Where to put the files "
              "(default: $NETCLI_DATA/<name>, $NETCLI_DATA defaulting to ~/.cache/netcli).")
def data_fetch(name, folder):
    """Download a named dataset (e.g. mnist), verifying checksums."""
    from .data.datasets import fetch
    where = fetch(name, folder, progress=None)
    _echo(f"{name}: files in {where}")


cli.add_command(device_query)
cli.add_command(extract_features)


def caffe_flags(argv):
    """Caffe's single-dash long flags (`train -solver x.prototxt`, `-weights=w`) as click's
    `--solver`; short flags (-h, -o) stay as they are."""
    out = []
    for a in argv:
        m = re.match(r"-([a-z][a-z_]+)(=.*)?$", a)
        out.append(f"-{a}" if m else a)
    return out


def main(argv=None):
    import sys
    cli.main(args=caffe_flags(sys.argv[1:] if argv is None else list(argv)), prog_name="netcli", obj={})


if __name__ == "__main__":  # pragma: no cover
    main()
