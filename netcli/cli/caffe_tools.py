"""Commands for Caffe's tools (a thin shell over netcli/commands/device_query.py and netcli/commands/extract.py),
and the --gpu option's type (a device number, or `all` as Caffe's -gpu all). Registered on the
`netcli` group by netcli/cli/__init__.py."""
from __future__ import annotations

import click

from ..text import safe_text


def _echo(message=""):
    click.echo(safe_text(message))      # names from model files come escaped (netcli/text.py)


class GpuType(click.ParamType):
    """A CUDA device number, or `all` (every GPU: netcli/commands/device_query.py resolve_gpu)."""
    name = "N|all"

    def convert(self, value, param, ctx):
        if isinstance(value, int) or value == "all":
            return value
        try:
            return int(value)
        except ValueError:
            self.fail(f"{value!r} is not a device number or 'all'", param, ctx)


GPU = GpuType()


def resolve_gpu(ctx, param, value):
    """The --gpu callback: `all` becomes a device number (or one clear line), as Caffe's -gpu all."""
    if value != "all":
        return value
    from ..commands.device_query import resolve_gpu as resolve
    return resolve(value)               # or a NetcliError: one line, exit 1


@click.command("device-query")
@click.option("--gpu", type=GPU, default=None, help="Show only this CUDA device (default, or 'all': every one).")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object instead.")
def device_query(gpu, as_json):
    """What netcli can compute on here, as `caffe device_query`: the CPU (model, cores, SIMD,
    threads) and the CUDA GPUs (pip install 'netcli[gpu]'), or why there are none."""
    import json
    from ..commands.device_query import query
    result = query(gpu, echo=(lambda line: None) if as_json else _echo)
    if as_json:
        click.echo(json.dumps(result))


@click.command("extract-features")
@click.option("--model", required=True, type=click.Path(dir_okay=False), help="The net file (YAML or Caffe prototxt).")
@click.option("--weights", required=True, help="Its trained weights (.weights.npz or .caffemodel).")
@click.option("--blobs", required=True, help="The blobs to extract, comma-separated (e.g. ip1,prob).")
@click.option("--iterations", type=click.IntRange(min=1), help="Batches to run (default: the whole data set once).")
@click.option("-o", "--output", required=True, help="An .npz (one array per blob, the batches concatenated), or "
              "LMDB folders ending in .lmdb, comma-separated, one per blob (pip install 'netcli[lmdb]').")
@click.option("--phase", default="TEST", type=click.Choice(["TRAIN", "TEST"], case_sensitive=False),
              show_default=True, help="Which phase's data layer to run over (either case).")
@click.option("--stage", "stages", multiple=True, help="A stage of the net (repeat for several), as Caffe's -stage.")
@click.option("--level", default=0, show_default=True, type=int, help="The net's level, as Caffe's -level.")
def extract_features(model, weights, blobs, iterations, output, phase, stages, level):
    """The named blobs of a net over its data source, as Caffe's extract_features: into an .npz
    or into LMDBs of Datum records (float_data, keys the sample's index, 10 digits)."""
    from ..commands.extract import extract_features as run
    features = run(model, weights, blobs, output, iterations, phase.upper(), stages, level)
    shapes = ", ".join(f"{b} {'x'.join(map(str, a.shape))}" for b, a in features.items())
    _echo(f"Wrote {output}: {shapes}")
