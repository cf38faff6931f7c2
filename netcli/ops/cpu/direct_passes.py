"""The direct convolution (direct.py) as a share's thread calls it (ops/cpu/conv2d.py): on that
thread, image by image; where it leads a team with helpers (exec/team.py), in tiles of images as a
team job (direct_team.py); one image in tiles of positions where conv2d.py tiles it (batch-1
inference, exec/threads.py). The same bits every way: the choice is the thread count's, never the
numbers'."""
from __future__ import annotations

import numpy as np

from ...exec.team import with_helpers
from . import direct_team
from .direct_vectors import LANES
from .direct import (direct_backward_tile, direct_forward_images, direct_pad, direct_positions_tile,
                     direct_slots, direct_weight_sum)
from .im2col import sum_bias
from .team_jobs import run_job

GROUP = 8                 # images per forward call: `after` runs on them while they are in cache


def _whole_vectors(K):
    """direct_fits' output channels: whole vectors (the kernels write LANES channels at a time,
    past the arrays' ends otherwise)."""
    if K % LANES:
        raise ValueError(f"direct: {K} output channels, not in vectors of {LANES} (direct_fits)")


def direct_forward(out, inp, weight, bias, ws, SH, SW, PH, PW, after, tiled=None):
    """conv2d_forward of "direct": with helpers (exec/team.py), a team job in tiles of images;
    else groups of GROUP images, after(a, b) on each; one image in `tiled` tiles of positions
    where given (conv2d.py)."""
    n, K = out.shape[:2]
    _whole_vectors(K)
    wt = ws["wt"]
    np.copyto(wt, weight.transpose(2, 3, 1, 0))
    b = ws["zeros"][:K] if bias is None else bias
    if bias is None:
        b[...] = 0.0
    xp, yt = ws["xp"], ws["yt"]
    if n == 1 and tiled is not None:
        direct_pad(inp, xp, PH, PW)
        tiled(lambda p0, p1: direct_positions_tile(out, xp, yt, wt, b, SH, SW, p0, p1), out.shape[2] * out.shape[3])
        after(0, 1)
        return
    team = with_helpers(out, inp, wt, b, xp, yt)
    if team is not None:
        direct_team.forward_job(team.record, out, inp, wt, b, xp, yt, SH, SW, PH, PW)
        run_job(team, out.reshape(-1)[:0])
        after(0, n)
        return
    for a in range(0, n, GROUP):
        z = min(n, a + GROUP)
        direct_forward_images(out[a:z], inp[a:z], wt, b, xp[:1], yt[:1], SH, SW, PH, PW)
        after(a, z)


def direct_backward(dinp, dweight, dbias, dout, inp, weight, ws, SH, SW, PH, PW, fresh):
    """conv2d_backward of "direct": dinp written, dweight and dbias = (fresh) or += (each may be
    None: not computed). The weight gradient: each tile of images' sums, then the tiles' in
    order (the same bits with or without helpers)."""
    n, K, C = dout.shape[0], weight.shape[0], weight.shape[1]
    _whole_vectors(K)
    if dbias is not None:
        if fresh:
            dbias[...] = 0.0
        sum_bias(dout.reshape(n, K, -1), dbias)
    if dinp is None and dweight is None:
        return
    wf, dw, zeros = ws["wf"], ws["dw"], ws["zeros"]
    if dinp is not None:
        wf[..., C:] = 0.0
        np.copyto(wf[..., :C], weight.transpose(2, 3, 0, 1))
        zeros[...] = 0.0
    tiles, data = direct_slots(n), dinp is not None
    args = (inp if dinp is None else dinp, dw, dout, inp, wf, ws["xp"], ws["dyp"], ws["dxt"], zeros[:wf.shape[3]],
            SH, SW, PH, PW, data, dweight is not None)
    team = with_helpers(*(a for a in args if isinstance(a, np.ndarray)))
    if team is not None:
        direct_team.backward_job(team.record, *args)
        run_job(team, dout.reshape(-1)[:0])
    else:
        for t in range(tiles):
            direct_backward_tile(t, tiles, *args, 0)
    if dweight is not None:
        direct_weight_sum(dw, tiles, dweight, fresh)
