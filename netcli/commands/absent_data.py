"""`netcli check` on a net whose data is not on this machine (Caffe's nets name LMDBs inside Caffe's
folder): a Data layer's sample shape comes from its data, so without the data the shapes of the
layers it feeds cannot be known. The check then says which layers' shapes it did not check and
checks everything else (every field, and how the layers connect), instead of failing."""
from __future__ import annotations

import glob
import os

from ..config.compile import compile_net
from ..errors import ConfigError
from ..layers import REGISTRY
from ..text import printable


def _named(source):
    from ..data.datasets import DATASETS
    return ":" in source and source.split(":")[0] in DATASETS


def _here(source, base_dir):
    """A source file, folder or IDX prefix exists next to the net file or in the working directory."""
    for d in (base_dir, ""):
        path = os.path.join(d, source)
        if os.path.exists(path) or glob.glob(glob.escape(path) + "-*"):
            return True
    return False


def absent_sources(spec):
    """[(layer, source)]: the layers of `spec` that read a dataset whose source is not here."""
    out = []
    for c in spec.layers:
        cls = REGISTRY[c.type]
        if not getattr(cls, "reads_dataset", False):
            continue
        source = getattr(getattr(c.p, cls.param_key), "source", None)
        if source and not _named(source) and not _here(source, spec.base_dir):
            out.append((c, source))
    return out


def fed_by(spec, layers):
    """The names of the layers whose inputs come, directly or not, from `layers`."""
    blobs = {t for c in layers for t in c.top}
    names = []
    for c in spec.layers:
        if c in layers or any(b in blobs for b in c.bottom):
            blobs.update(c.top)
            if not c.inserted:             # the Splits netcli inserts are not the user's layers
                names.append(c.name)
    return names


def check_without_data(error, model, phase, stages=(), level=0, echo=print):
    """After `error` (building the net in `phase` failed): if the only problems are data sources
    that are not here, say which shapes were not checked and return; otherwise raise."""
    spec = compile_net(model, phase, level, stages)
    absent = absent_sources(spec)
    marks = [f"layer '{c.name}' ({c.type}): field '{REGISTRY[c.type].param_key}.source'" for c, _ in absent]
    rest = [p for p in error.problems if not any(m in p for m in marks)]
    if not absent or rest:
        raise ConfigError(rest) if absent else error
    for c, source in absent:
        echo(f"{phase}: layer '{printable(c.name)}' ({c.type}): {printable(source)} is not here, so its "
             "sample shape is unknown")
    unchecked = [printable(n) for n in fed_by(spec, [c for c, _ in absent])]
    total = sum(not c.inserted for c in spec.layers)
    echo(f"{phase}: fields and connections checked; shapes not checked for {len(unchecked)} of {total} "
         f"layers: {', '.join(unchecked)}")
