"""The commands over run logs and nets as pictures: `netcli log`, `netcli plot`, `netcli draw`
(registered on the `netcli` group by netcli/cli/__init__.py)."""
from __future__ import annotations

import click

from .common import echo, upper_phase


def _run_choice(ctx, param, value):
    if value in ("all", "last") or (value.isdigit() and int(value) >= 1):
        return value
    raise click.BadParameter(f"{value!r}: give all, last or a run's number (1 is the first)")


_RUN_HELP = ("Which runs of each log (a log holds every train and resume with its snapshot_prefix): "
             "all, last, or a run's number as `netcli log` lists them.")


@click.command()
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
    from ..viz.plot import curves, log_curves, watch as watch_logs
    warned = set()

    def render():
        runs, ended = log_curves(logs, which, warned)
        panels = curves(runs, output, x_axis, smooth)
        echo(f"Wrote {output}: {', '.join(panels)} against {x_axis}, {len(runs)} run(s)")
        return ended
    if watch is None:
        render()
    else:
        watch_logs(render, logs, watch, max_refreshes)


@click.command()
@click.argument("model", type=click.Path(dir_okay=False))
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False),
              help="The drawing: .svg (no Graphviz needed), .dot (Graphviz source) or .png (netcli[plot]).")
@click.option("--phase", default="TRAIN", type=click.Choice(["TRAIN", "TEST"], case_sensitive=False),
              callback=upper_phase, show_default=True, help="Which phase of the net to draw (either case).")
@click.option("--stage", "stages", multiple=True, help="A stage of the net (repeat for several), as Caffe's -stage.")
@click.option("--rankdir", type=click.Choice(["TB", "LR"]), default="TB", show_default=True,
              help="Top to bottom, or left to right (Caffe's draw_net.py default).")
def draw(model, output, phase, stages, rankdir):
    """Draw the net as Caffe's draw_net.py does: layers, blobs with their shapes, and edges."""
    from ..viz.draw import draw as draw_net
    from ..net import Net
    g = draw_net(Net(model, phase=phase, stages=stages), output, rankdir)
    layers = sum(1 for n in g.nodes.values() if n["kind"] == "layer")
    echo(f"Wrote {output}: {layers} layers, {len(g.nodes) - layers} blobs")


@click.command("log")
@click.argument("path", type=click.Path(dir_okay=False))
@click.option("--csv", "as_csv", is_flag=True, help="The train and test records as CSV, one row each, with a run column.")
@click.option("--event", "events", type=click.Choice(["train", "test"]), multiple=True,
              help="With --csv: only these records (default: both).")
@click.option("--run", "which", default="all", show_default=True, callback=_run_choice, help=_RUN_HELP)
def log_command(path, as_csv, events, which):
    """A run log (<snapshot_prefix>.log.jsonl, written by every train): one line per run (start,
    iterations, resumes, seconds, last train loss and test scores, how it ended), or with --csv
    one row per display and per test, with run, iteration, epoch, seconds, lr and every output."""
    from ..solver.runs import read_run_log, select, split_runs, summary, to_csv
    runs = select(split_runs(read_run_log(path)), which, path)
    if as_csv:
        echo(to_csv(runs, tuple(events) or ("train", "test")), nl=False)
    else:
        echo(summary(runs, path), nl=False)
