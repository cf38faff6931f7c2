"""How the CPU executor cuts a net into stretches (exec/cpu.py's docstring says why), and the
lines `netcli check` and `netcli time` print about that plan."""
from __future__ import annotations


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
