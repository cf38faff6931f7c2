"""The parameter table: every learnable param of a net in one flat float32 data buffer and one
flat diff buffer (an update, a snapshot or an allreduce is one call over them), each param blob a
view into them; params shared by name are one blob; per-param lr and decay multipliers."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .blob import aligned_zeros
from .errors import ConfigError
from .fillers import fill


@dataclass
class ParamTable:
    blobs: list = field(default_factory=list)       # owner blobs, in net order
    keys: list = field(default_factory=list)        # "<layer>/<i>" of each owner
    by_layer: dict = field(default_factory=dict)    # layer name -> its param blobs (shared ones too)
    lr_by_layer: dict = field(default_factory=dict) # layer name -> lr_mult of each of its params, as it declares them
    data: np.ndarray = None
    diff: np.ndarray = None
    offsets: np.ndarray = None                      # owner k is data[offsets[k]:offsets[k + 1]]
    lr_mults: np.ndarray = None
    decay_mults: np.ndarray = None


def build_param_table(layers, configs, layer_names, dtype, rng, problems):
    """Owner params live in one flat data buffer and one flat diff buffer (so an update or an
    allreduce is one call); layers sharing a param by name get the owner's Blob. Mistakes go to
    `problems`; returns a ParamTable."""
    owners: dict[str, tuple] = {}     # share name -> (layer index, param index)
    t = ParamTable()
    lr, decay, fills, views = [], [], [], []
    for li, (layer, c) in enumerate(zip(layers, configs)):
        if not layer.blobs:
            continue
        specs = c.p.param
        label = f"layer '{c.name}' ({c.type})"
        for pi, blob in enumerate(layer.blobs):
            shape = blob.data
            spec = specs[pi] if pi < len(specs) else None
            share = spec.name if spec is not None and spec.name else None
            forced = getattr(layer, "fixed_lr_mult", None)
            lm = spec.lr_mult if spec is not None else 1.0
            if forced is not None:
                if spec is not None and spec.has("lr_mult") and spec.lr_mult != forced:
                    problems.add(c.p.loc("param", c.loc), f"{c.type} params cannot be learned: "
                                 f"lr_mult must be {forced}", label, f"param[{pi}].lr_mult")
                lm = forced
            t.lr_by_layer.setdefault(c.name, []).append(lm)
            dm = spec.decay_mult if spec is not None else 1.0
            if share and share in owners:
                oli, opi = owners[share]
                owner = layers[oli].blobs[opi]
                oshape = owner.data       # still a shape: allocation comes below
                ok = (oshape == shape if spec.share_mode == "STRICT"
                      else int(np.prod(oshape)) == int(np.prod(shape)))
                if not ok:
                    problems.add(c.p.loc("param", c.loc), f"shared param '{share}' has shape {shape} "
                                 f"here but {oshape} in its owner '{layer_names[oli]}'",
                                 label, f"param[{pi}].name")
                    continue
                ospec = configs[oli].p.param[opi]
                for attr in ("lr_mult", "decay_mult"):
                    if spec.has(attr) and ospec.has(attr) and getattr(spec, attr) != getattr(ospec, attr):
                        problems.add(c.p.loc("param", c.loc), f"shared param '{share}' has mismatched "
                                     f"{attr}", label, f"param[{pi}].{attr}")
                if oshape == shape:
                    layer.blobs[pi] = owner
                else:
                    views.append((blob, owner, shape))   # PERMISSIVE: bound after allocation
                continue
            if share:
                owners[share] = (li, pi)
            blob.name = f"{c.name}/{pi}"
            t.blobs.append(blob)
            t.keys.append(blob.name)
            lr.append(lm)
            decay.append(dm)
            fills.append(layer.fillers[pi])
    sizes = [int(np.prod(b.data)) for b in t.blobs]
    total = int(sum(sizes))
    t.data = aligned_zeros(total, dtype)
    t.diff = aligned_zeros(total, dtype)
    t.lr_mults = np.asarray(lr, np.float32)
    t.decay_mults = np.asarray(decay, np.float32)
    t.offsets = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
    for b, a, z in zip(t.blobs, t.offsets[:-1], t.offsets[1:]):
        shape = b.data
        b.data = t.data[a:z].reshape(shape)
        b.diff = t.diff[a:z].reshape(shape)
    for blob, owner, shape in views:
        blob.share(owner, shape)
    for b, fp in zip(t.blobs, fills):
        if fp is not None:
            fill(fp, b.data, rng)
    for name, layer in zip(layer_names, layers):
        if layer.blobs:
            t.by_layer[name] = layer.blobs
    return t



def share_params(mine: dict, theirs: dict, their_phase):
    """Point the blobs of `mine` ({layer: blobs}) at the memory of `theirs`, by layer name."""
    for name, blobs in mine.items():
        src = theirs.get(name)
        if src is None:
            continue
        for a, b in zip(blobs, src):
            if a.shape != b.shape:
                raise ConfigError(f"cannot share weights of layer '{name}': shape {a.shape} "
                                  f"here, {b.shape} in the {their_phase} net")
            a.data, a.diff = b.data, b.diff
