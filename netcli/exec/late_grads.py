"""Param gradients formed after the pass, tile by tile (layers.base.PerSample.late_params): for a
large weight (CaffeNet's fc6: 151 MB) a partial gradient per share costs the weight's size per
share in flight, written and then summed. Instead, once every share's backward is done (the
tops' diffs and the bottoms of every row are in the blobs), each thread takes whole tiles of the
param's first axis; for one tile it forms every share's part from that share's rows into a small
buffer and sums them by the shares' own pairwise tree (ops.cpu.shares.combine_shares), node 0
being the param's diff as the pass found it. The sums are those of the per-share path: the same
additions in the same order, whichever thread takes a tile, so the bits do not depend on the
thread count; shares another process computes are zeros here, as their scratch rows would be.
"""
from __future__ import annotations

import numpy as np

from ..ops.cpu.shares import combine_shares


def late_tasks(net, idx):
    """[(layer i, param j, a0, a1)]: the tiles formed after a pass over layers idx."""
    out = []
    for i in idx:
        layer = net.layers[i]
        if net.need_backward[i]:
            out.extend((i, j, a0, a1) for j in getattr(layer, "late_params", ()) if layer.learns(j)
                       for a0, a1 in layer.late_tiles(j))
    return out


def without_late(grads, tasks):
    """grads (per share, per layer, per param) with None for the params of `tasks`: what
    backward_rows gets in a pass whose late tiles are formed after it."""
    late = {(i, j) for i, j, _, _ in tasks}
    return [[[None if (i, j) in late else g for j, g in enumerate(gs)] for i, gs in enumerate(share)]
            for share in grads]


def tile_elements(net, tasks):
    """The largest tile, in elements."""
    return max((net.layers[i].blobs[j].diff[a0:a1].size for i, j, a0, a1 in tasks), default=0)


def split_tasks(net, tasks, T):
    """[(first, stop)] of tasks per thread: contiguous blocks of about equal elements."""
    sizes = np.cumsum([0] + [net.layers[i].blobs[j].diff[a0:a1].size for i, j, a0, a1 in tasks])
    cuts = [0] + [int(np.searchsorted(sizes, sizes[-1] * t / T)) for t in range(1, T)] + [len(tasks)]
    return list(zip(cuts[:-1], cuts[1:]))


def _places(base, diffs):
    """[(offset, size)] in order: where the diffs lie in the flat gradient `base`, in numbers."""
    start = base.__array_interface__["data"][0]
    return sorted({((d.__array_interface__["data"][0] - start) // d.itemsize, d.size) for d in diffs})


def dense_ranges(base, tasks, net):
    """[(lo, hi)]: the element ranges of the flat gradient `base` outside the late params (the
    ones the share partials and their combination cover)."""
    late = _places(base, [net.layers[i].blobs[j].diff for i, j, _, _ in tasks])
    out, at = [], 0
    for lo, size in late:
        if lo > at:
            out.append((at, lo))
        at = max(at, lo + size)
    if at < base.size:
        out.append((at, base.size))
    return out


def clip(ranges, lo, hi):
    """The parts of `ranges` inside [lo, hi)."""
    return [(max(a, lo), min(b, hi)) for a, b in ranges if min(b, hi) > max(a, lo)]


def of_layers(ranges, base, net, idx):
    """The parts of `ranges` (of the flat gradient `base`) that the params of layers idx hold:
    what a run of those layers alone adds to the share partials (a layer timed alone: exec/cpu.py)."""
    held = _places(base, [b.diff for i in idx for b in net.layers[i].blobs])
    return sorted({part for lo, size in held for part in clip(ranges, lo, lo + size)})


def form_tile(layer, tops, bottoms, j, a0, a1, shares, own, buf):
    """Param j's gradient rows a0..a1 += the tree sum of every share's part (shares: their (lo,
    hi) rows; own: the (first, stop) shares this process computes; buf: a flat scratch of at
    least len(shares) tiles)."""
    target = layer.blobs[j].diff[a0:a1]
    flat = target.reshape(-1)
    assert np.shares_memory(flat, target)
    parts = buf[:len(shares) * flat.size].reshape(len(shares), flat.size)
    for s, (lo, hi) in enumerate(shares):
        if own[0] <= s < own[1]:
            layer.late_grad(tops, bottoms, lo, hi, j, a0, a1, parts[s].reshape(target.shape))
        else:
            parts[s] = 0
    flat += parts[0]
    combine_shares(flat, parts[1:], 0, flat.size)
