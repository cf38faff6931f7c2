"""`netcli data convert-imageset` and `netcli data compute-mean`: Caffe's convert_imageset and
compute_image_mean (a thin shell over netcli/data/convert_imageset.py and netcli/data/image_mean.py).
Registered on the `data` group by netcli/cli/__init__.py; Caffe's own names for them are in CAFFE_TOOLS."""
from __future__ import annotations

import click

from .common import echo

# Caffe's tool names -> (group, command) here, found by `netcli <caffe name>` with Caffe's flags
CAFFE_TOOLS = {"convert_imageset": ("data", "convert-imageset"), "compute_image_mean": ("data", "compute-mean")}


@click.command("convert-imageset")
@click.argument("root", type=click.Path(file_okay=False))
@click.argument("listfile", type=click.Path(dir_okay=False))
@click.argument("db", type=click.Path())
@click.option("--resize_height", "--resize-height", "resize_height", type=click.IntRange(min=0), default=0,
              show_default=True, help="Resize every image to this height (with --resize_width; 0: keep).")
@click.option("--resize_width", "--resize-width", "resize_width", type=click.IntRange(min=0), default=0,
              show_default=True, help="Resize every image to this width (with --resize_height; 0: keep).")
@click.option("--shuffle", is_flag=True, help="Write the lines in a random order (the same for the same --seed).")
@click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True, help="The --shuffle order's seed.")
@click.option("--gray", is_flag=True, help="One grey channel instead of three (BGR).")
@click.option("--encoded", is_flag=True, help="Store each image encoded (the file's bytes when it needs no "
              "change), as Caffe's --encoded; the Data layer decodes it.")
@click.option("--encode_type", "--encode-type", "encode_type", default="",
              help="With --encoded: png, jpg or bmp (default: each file's own format).")
@click.option("--backend", type=click.Choice(["lmdb", "leveldb"], case_sensitive=False), default="lmdb",
              show_default=True, help="The database kind (pip install 'netcli[lmdb]' or 'netcli[leveldb]').")
@click.option("--check_size", "--check-size", "check_size", is_flag=True,
              help="Refuse images whose size differs from the first's.")
@click.option("--overwrite", is_flag=True, help="Replace DB if it is an existing database of that backend.")
def convert_imageset(root, listfile, db, resize_height, resize_width, shuffle, seed, gray, encoded, encode_type,
                     backend, check_size, overwrite):
    """Images listed in LISTFILE (lines '<path> <label>', paths relative to ROOT) into a new
    LMDB or LevelDB of Caffe Datums at DB, as Caffe's convert_imageset (keys '%08d_<path>'): the
    database Caffe's and netcli's Data layers read. Built aside and renamed when complete."""
    from ..data.convert_imageset import convert_imageset as run
    n = run(root, listfile, db, (resize_height, resize_width), shuffle, seed, gray, encoded, encode_type,
            backend.lower(), check_size, overwrite, echo=echo)
    echo(f"Wrote {db}: {n} images ({backend.upper()}{', encoded' if encoded else ''})")


@click.command("compute-mean")
@click.argument("source")
@click.argument("output", required=False)
@click.option("-o", "--output", "out", help="The mean file: .binaryproto (Caffe's) or .npy (as OUTPUT).")
@click.option("--root", default="", help="For an image list: the folder its paths are relative to.")
@click.option("--backend", type=click.Choice(["lmdb", "leveldb"], case_sensitive=False), default=None,
              help="The database kind (default: from the folder's files).")
def compute_mean(source, output, out, root, backend):
    """The per-pixel mean image of SOURCE (an LMDB or LevelDB of Datums, an image list, or a named
    dataset such as cifar10:train), as Caffe's compute_image_mean: read record by record, written
    to -o (or OUTPUT) as .binaryproto or .npy, and each channel's mean printed."""
    if output and out:
        raise click.UsageError("give the output file once: as OUTPUT or with -o")
    out = out or output
    import numpy as np
    from ..data.image_mean import compute_mean as run, write_mean
    if out and not out.endswith((".binaryproto", ".npy")):
        raise click.UsageError(f"{out}: the mean file's name must end in .binaryproto or .npy")
    mean, n = run(source, root, backend and backend.lower())
    echo(f"Number of images: {n}; number of channels: {mean.shape[0]}")
    for c, v in enumerate(mean.reshape(len(mean), -1).mean(axis=1, dtype=np.float64)):
        echo(f"mean_value channel [{c}]: {v:.6g}")
    if out:
        write_mean(out, mean)
        echo(f"Wrote {out}: the mean of {n} images of {'x'.join(map(str, mean.shape))}")
