"""How the CPU executor cuts a net into stretches and a batch into shares (exec/cpu.py's
docstring says why), the steps each share runs through (`share_steps`) and how a share runs them
(`run_steps`), and the lines `netcli check` and `netcli time` print about that plan."""
from __future__ import annotations

from functools import lru_cache

from .fusion import follows_conv

SHARE_ROWS = 32
MIN_ROWS = 16
MAX_SHARES = 16
# A net for inference (not TRAIN) cuts a batch under 2 * MIN_ROWS into shares of at least this
# many samples: a batch of 8 runs on 2 cores (ResNet-50 on a 2-core AMD EPYC: 644 -> 335 ms,
# SqueezeNet 1.1: 73 -> 38 ms), as training's shares of 16 would leave them to one.
INFER_ROWS = 4


@lru_cache(maxsize=256)
def blocks(count, parts):
    """Split range(count) into at most `parts` contiguous blocks (a thread's shares, its params)."""
    parts = max(1, min(parts, count))
    return [(count * i // parts, count * (i + 1) // parts) for i in range(parts)]


def shares(n, count=None, inference=False):
    """The fixed split of n samples into contiguous (lo, hi) shares; depends on n only: the largest
    power of two with at least SHARE_ROWS samples per share (so 2 or 4 threads get equal work and
    the combination tree is balanced), at most MAX_SHARES, and 2 from 2 * MIN_ROWS samples on
    (for `inference`, below that, shares of at least INFER_ROWS). `count` imposes the number of
    shares instead."""
    if count is not None:
        s = min(count, max(n, 1))
    else:
        s = 1
        while s * 2 <= MAX_SHARES and n / (s * 2) >= SHARE_ROWS:
            s *= 2
        if s == 1 and n >= 2 * MIN_ROWS:
            s = 2
        if inference and s == 1:
            while s * 2 <= MAX_SHARES and n / (s * 2) >= INFER_ROWS:
                s *= 2
    bounds = [n * i // s for i in range(s + 1)]
    return list(zip(bounds[:-1], bounds[1:]))


def plan_stretches(net):
    """(batch size or None, [layer indices]) in net order: runs of per-sample layers whose
    bottoms and tops (but reduced tops) share one batch size, and single other layers."""
    out = []
    for i, layer in enumerate(net.layers):
        blobs = net.bottom_vecs[i] + [t for k, t in enumerate(net.top_vecs[i]) if k not in layer.reduced_tops]
        n = blobs[0].shape[0] if layer.per_sample and blobs and blobs[0].data.ndim else None
        if n is not None and any(b.data.ndim == 0 or b.shape[0] != n for b in blobs):
            n = None
        if n is not None and out and out[-1][0] == n:
            out[-1][1].append(i)
        else:
            out.append((n, [i]))
    return out


def plan_lines(net, stretches, shares, chains):
    """The stretches with their shares, the chains run as one pass (exec/fusion.py), and the
    layers that split stretches."""
    names = net.layer_names
    lines, splitters = [], []
    for n, idx in stretches:
        if n is not None:
            k = len(shares[n])
            lines.append(f"per-sample stretch ({k} share{'s' if k > 1 else ''} of the batch of {n}): "
                         + ", ".join(names[i] for i in idx))
        elif not (net.layers[idx[0]].reads_dataset or net.layers[idx[0]].is_input):
            splitters.append(f"{names[idx[0]]} ({net.layers[idx[0]].type})")
    if splitters and len(lines) > 1:
        lines.append("not per-sample, so they split stretches and run on the whole batch in one "
                     "thread: " + ", ".join(splitters))
    if chains:
        shown = ", ".join("+".join(c.names) for c in list(chains.values())[:3])
        more = f" and {len(chains) - 3} more" if len(chains) > 3 else ""
        lines.append(f"fused (one pass over the blob, the same results): {shown}{more}")
    return lines


def share_steps(net, idx, forward, backward, chains, combiner):
    """The per-share work of one run over layers idx: [(steps, combine)], cut after each step that
    gathers statistics over the whole batch; steps are (kind, layer index), combine what runs once
    every share got there (combiner(the layer's combination of its shares' statistics, layer
    index, the statistics' keys); None at the end). `chains`: exec/fusion.py's, run as one pass
    (by their head; inside the convolution before them where follows_conv)."""
    out, steps = [], []
    fused = {h for h, c in chains.items() if set(c.indices) <= set(idx)}
    inside = {j for h in fused for j in chains[h].indices[1:]}    # run by their chain's head
    inside_back = {j for h in fused if chains[h].backward for j in chains[h].indices[1:]}
    if forward:
        folded = {i + 1 for i in idx if i + 1 in fused and follows_conv(net, i, chains[i + 1])}
        for i in idx:
            layer = net.layers[i]
            if i in inside or i in folded:
                continue
            if layer.batch_stats:
                steps.append(("stats", i))
                out.append((steps, combiner(layer.combine_stats, i, layer.stats_keys)))
                steps = []
            kind = "conv_fused_forward" if i + 1 in folded else chains[i].forward_kind if i in fused else "forward"
            steps.append((kind, i))
    if backward:
        for i in reversed(idx):
            layer = net.layers[i]
            if not net.need_backward[i] or i in inside_back:
                continue
            whole = i in fused and chains[i].backward
            if layer.batch_stats:
                steps.append(("fused_grad_stats" if whole else "grad_stats", i))
                out.append((steps, combiner(layer.combine_grad_stats, i, layer.grad_stats_keys)))
                steps = []
            steps.append((chains[i].backward_kind if whole else "backward", i))
    out.append((steps, None))
    return out


def run_steps(steps, layers, bv, tv, ch, pdown, lo, hi, ws, s, grads, g, sole, fresh):
    """Share s's steps (share_steps's) over its rows lo..hi: bv, tv, ch the bottoms, tops and
    chains by layer index, ws[i][s] layer i's workspace for the share, grads[g][i] its param-gradient
    targets for the share; a layer with `sole` gradients may write them where `fresh` (zeros)."""
    for kind, i in steps:
        if kind == "forward":
            layers[i].forward_rows(bv[i], tv[i], lo, hi, ws[i][s])
        elif kind == "backward":
            layers[i].backward_rows(tv[i], pdown[i], bv[i], lo, hi, ws[i][s], grads[g][i], sole[i] and fresh)
        elif kind == "stats":
            layers[i].stats_rows(bv[i], lo, hi, ws[i][s])
        elif kind == "grad_stats":
            layers[i].grad_stats_rows(tv[i], lo, hi, ws[i][s])
        elif kind == "fused_forward":
            ch[i].forward_rows(lo, hi, ws[i][s], ws[ch[i].scale_index][s])
        elif kind == "conv_fused_forward":      # the chain at i + 1 on each finished block
            c, wn, wc = ch[i + 1], ws[i + 1][s], ws[ch[i + 1].scale_index][s]
            c.before_conv(wn)
            tile = None if c.keeps else (lambda a, t, c=c, wn=wn, wc=wc, lo=lo:
                                         c.forward_rows(a, a + 1, wn, wc, lo, t))
            layers[i].forward_rows(bv[i], tv[i], lo, hi, ws[i][s],
                                   lambda a, b, c=c, wn=wn, wc=wc, lo=lo: c.forward_rows(a, b, wn, wc, lo),
                                   tile)
        elif kind == "fused_grad_stats":
            ch[i].grad_stats_rows(lo, hi, ws[i][s])
        elif kind == "fused_sum_forward":
            ch[i].forward_rows(bv[i], tv[i], lo, hi)
        elif kind == "fused_sum_backward":
            ch[i].backward_rows(tv[i], pdown[i], bv[i], lo, hi)
        else:
            j = ch[i].scale_index
            ch[i].backward_rows(lo, hi, ws[i][s], grads[g][j], sole[j] and fresh)
