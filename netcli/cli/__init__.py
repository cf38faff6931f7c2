"""The `netcli` command: a thin shell over the Python API. Imports stay lazy so that
`netcli --help` loads neither NumPy nor Numba."""
from __future__ import annotations

import os
import re

import click

from .. import __version__
from .common import echo, process_group
from .log_commands import draw, log_command, plot
from .net_commands import check, convert, export, layers, predict, test, time
from .caffe_tools import GPU, device_query, extract_features, resolve_gpu
from .data_commands import CAFFE_TOOLS, compute_mean, convert_imageset

# Numba colours its error messages with colorama when that is installed, whose exit hook then
# writes an escape sequence to stdout if stdout is a terminal -- and under mpiexec it is a pty, so
# every rank appended one to `netcli test --json`'s output. The CLI shows no Numba errors anyway.
os.environ.setdefault("NUMBA_DISABLE_ERROR_MESSAGE_HIGHLIGHTING", "1")


class Group(click.Group):
    """User mistakes (NetcliError) exit 1 with a message, without a traceback unless --debug.
    Caffe's tool names (CAFFE_TOOLS: `netcli convert_imageset ...`) run netcli's commands."""

    def get_command(self, ctx, name):
        command = super().get_command(ctx, name)
        if command is None and name in CAFFE_TOOLS:
            group, sub = CAFFE_TOOLS[name]
            command = super().get_command(ctx, group).get_command(ctx, sub)
        return command

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except KeyboardInterrupt:
            if ctx.obj.get("debug"):
                raise
            echo("netcli: interrupted", err=True)
            ctx.exit(130)
        except click.exceptions.Exit:
            raise
        except Exception as e:
            from ..errors import NetcliError
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
            echo(f"netcli: {line}", err=True)
            ctx.exit(1)



def _end_other_ranks(line, traceback):
    """In a run of several processes, a failing one ends the whole job (the others would wait in
    a collective forever): one line naming the rank, then MPI_Abort. Rank 0 goes first; another
    rank waits a moment, so an error every rank meets (a bad config) is reported once."""
    from ..distributed import current
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
    from ..data.datasets import offline
    from ..exec.threads import env_threads, set_threads
    env_threads()               # the environment is checked up front, whatever the command
    offline()
    set_threads(threads)
    import sys
    if allow_python_layers or "netcli.layers.python" in sys.modules:    # per invocation (tests run several)
        from ..layers.python import allow_python_layers as allow
        allow(allow_python_layers)


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
    from .. import log
    from ..solver import Solver
    from ..solver.snapshots import newest_pair
    from ..exec.threads import describe
    from time import perf_counter               # (`time` here is the command)
    log.set_format(log_format)
    g = process_group(ctx, reduction)
    s = Solver(solver_path, weights=weights, max_iter=iterations, quiet=quiet, group=g, shares=shares,
               log_path=log_path, gpu=gpu)
    s.signal_effects.update(SIGINT=sigint_effect, SIGTERM=sigterm_effect, SIGHUP=sighup_effect)
    if resume:
        snapshot = newest_pair(s.prefix)
        if not snapshot:        # a found one is said by the restore ("Resuming from ...")
            log.info(f"--resume: no snapshot of {s.prefix} yet; starting from iteration 0")
    if snapshot and iterations is not None:
        from ..solver.snapshots import snapshot_iteration
        s.set_max_iter(snapshot_iteration(snapshot) + iterations)
    if s.root:
        log.info((f"Threads, in each of {g.size} processes: " if g else "Threads: ") + describe())
    t0 = perf_counter()
    finished = s.solve(resume_file=snapshot)
    if s.root:
        from ..solver.summary import summary_line
        log.info(summary_line(s, perf_counter() - t0, finished))


@cli.group()
def data():
    """Datasets: fetch named ones, convert image lists to LMDB, compute mean images."""


@data.command("fetch")
@click.argument("name")
@click.option("--dir", "folder", type=click.Path(file_okay=False), help="Where to put the files "
              "(default: $NETCLI_DATA/<name>, $NETCLI_DATA defaulting to ~/.cache/netcli).")
def data_fetch(name, folder):
    """Download a named dataset (mnist, fashion-mnist, cifar10, cifar100), verifying checksums;
    then `<name>:train` and `<name>:test` are Data layer sources (and cifar10:mean, cifar100:mean
    mean files, computed here as Caffe's create_cifar10.sh does)."""
    from ..data.datasets import DATASETS, fetch
    where = fetch(name, folder, progress=None)
    echo(f"{name}: files in {where}")
    if folder is None and DATASETS[name].mean:
        from ..data.image_mean import named_mean
        echo(f"{name}:mean: {named_mean(name + ':mean')}")


for _command in (convert_imageset, compute_mean):
    data.add_command(_command)


for _command in (test, time, check, convert, predict, export, layers, log_command, plot, draw,
                 device_query, extract_features):
    cli.add_command(_command)


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

