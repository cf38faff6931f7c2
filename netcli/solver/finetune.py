"""What fine-tuning copied: Caffe's per-layer lines, a warning naming the params a weights file
left at their fillers, and an error when it matched none (as a strict load in PyTorch would:
a file for another net is a mistake, not a fine-tune)."""
from __future__ import annotations

from .. import log
from ..errors import NetcliError


def report(path, net, loaded, unused):
    """After net.load(path, strict=False) returned (loaded, unused)."""
    missing = [k for k in net.param_owner_keys if k not in loaded]
    if missing and not loaded:
        file_layers = sorted({k.rsplit("/", 1)[0] for k in unused})
        net_layers = list(dict.fromkeys(k.rsplit("/", 1)[0] for k in missing))
        raise NetcliError(f"{path}: no layer of net '{net.name}' matched the weights file (its layers: "
                          f"{_names(file_layers)}; the net's: {_names(net_layers)}); weights are copied by "
                          "layer name")
    layers = set(net.layer_names)
    for k in unused:
        if k.rsplit("/", 1)[0] in layers:      # the others: "Ignoring source layer" (io/weights.py)
            log.info(f"Ignoring source param {k}")
    for k in missing:
        log.info(f"Param {k} not in {path}: keeps its filler initialisation")
    if missing:
        log.warn(f"{path}: {len(loaded)} of {len(loaded) + len(missing)} params copied; not in the file, "
                 f"left at their fillers: {_names(missing)}")


def _names(names, at_most=8):
    shown = ", ".join(names[:at_most]) or "none"
    return shown + (f" and {len(names) - at_most} more" if len(names) > at_most else "")
