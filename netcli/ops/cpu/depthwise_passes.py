"""Depthwise convolutions as a share's thread calls them (ops/cpu/conv2d.py): the kernels
themselves (depthwise.py, depthwise_nhwc.py), or, where that thread leads a team with helpers
(exec/team.py), the same kernels in fixed tiles as a team job (depthwise_team.py). The same bits
either way: the choice is the thread count's, never the numbers'."""
from ...exec.team import with_helpers
from . import depthwise, depthwise_nhwc, depthwise_team
from .team_call import has_helpers, team_call
from .team_jobs import run_job


# Images per forward call: as many as fill GROUP_BYTES of output (at least one), `after` running
# on them while they are in cache. MobileNet at batch 100 (inference, 2 threads, Intel Xeon model
# 207), its depthwise layers' time with their BatchNorm + Scale + ReLU: groups of 8 images, 4x4
# planes and 2x2 1.58-1.85 -> 1.88 ms against the whole share in one call (Python's calls).
GROUP_BYTES = 1 << 20


def _group(out):
    """Images per call: GROUP_BYTES of out's images, at least one."""
    C, OH, OW = out.shape[1:]
    return max(1, GROUP_BYTES // (C * OH * OW * out.itemsize))


def _nothing(a, b):
    pass


def depthwise_forward(out, inp, weight, bias, KH, KW, SH, SW, PH, PW, DH, DW, after=None):
    """depthwise.depthwise_forward, its images in tiles where there are helpers (then after(0,
    n)), else in groups of images (GROUP_BYTES), after(a, b) on each (where given)."""
    n, after = out.shape[0], after or _nothing
    if has_helpers():
        team_call(depthwise_team.dw_forward_job, depthwise.depthwise_forward, out, inp, weight, bias, KH, KW, SH,
                  SW, PH, PW, DH, DW)
        after(0, n)
        return
    group = _group(out)
    for a in range(0, n, group):
        z = min(n, a + group)
        depthwise.depthwise_forward(out[a:z], inp[a:z], weight, bias, KH, KW, SH, SW, PH, PW, DH, DW)
        after(a, z)


def depthwise_backward(dinp, dweight, dout, inp, weight, KH, KW, SH, SW, PH, PW, DH, DW):
    """depthwise.depthwise_backward_weight (dweight: None to skip) and then
    depthwise_backward_data (dinp: None to skip), the images and the channels in tiles where
    there are helpers."""
    if dinp is None and dweight is None:
        return
    team = with_helpers(dout, inp, weight, *(a for a in (dinp, dweight) if a is not None))
    if team is None:
        if dweight is not None:
            depthwise.depthwise_backward_weight(dweight, dout, inp, KH, KW, SH, SW, PH, PW, DH, DW)
        if dinp is not None:
            depthwise.depthwise_backward_data(dinp, dout, weight, KH, KW, SH, SW, PH, PW, DH, DW)
        return
    depthwise_team.dw_backward_job(team.record, inp[:0] if dinp is None else dinp,
                                   weight[:0] if dweight is None else dweight, dout, inp, weight,
                                   KH, KW, SH, SW, PH, PW, DH, DW)
    run_job(team, dout.reshape(-1)[:0])


def depthwise_nhwc_forward(out, inp, weight, bias, xp, yt, wt, KH, KW, SH, SW, PH, PW, DH, DW, after=None):
    """depthwise_nhwc.depthwise_nhwc_forward, its images in tiles where there are helpers (then
    after(0, n)), else in groups of images (GROUP_BYTES), after(a, b) on each (where given)."""
    n, after = out.shape[0], after or _nothing
    if has_helpers():
        team_call(depthwise_team.nhwc_forward_job, depthwise_nhwc.depthwise_nhwc_forward, out, inp, weight, bias, xp,
                  yt, wt, KH, KW, SH, SW, PH, PW, DH, DW)
        after(0, n)
        return
    every = xp.shape[0] >= n
    group = _group(out)
    for a in range(0, n, group):
        z = min(n, a + group)
        depthwise_nhwc.depthwise_nhwc_forward(out[a:z], inp[a:z], weight, bias, xp[a:z] if every else xp, yt, wt, KH,
                                              KW, SH, SW, PH, PW, DH, DW)
        after(a, z)


def depthwise_nhwc_backward(dinp, dweight, dout, weight, xp, yt, dxp, wt, part, H, W, KH, KW, SH, SW, PH, PW, DH,
                            DW):
    """depthwise_nhwc.depthwise_nhwc_backward_data (dinp: None to skip; it leaves dout
    channels-last in yt) and then depthwise_nhwc_backward_weight (dweight: None to skip), the
    images and the channels in tiles where there are helpers; H, W: the input's plane."""
    team = with_helpers(dout, weight, xp, yt, dxp, wt, part, *(a for a in (dinp, dweight) if a is not None))
    if team is None:
        if dinp is not None:
            depthwise_nhwc.depthwise_nhwc_backward_data(dinp, dout, weight, yt, dxp, wt, KH, KW, SH, SW, PH, PW, DH,
                                                        DW)
        if dweight is not None:
            depthwise_nhwc.depthwise_nhwc_backward_weight(dweight, dout, xp, yt, part, KH, KW, SH, SW, DH, DW,
                                                          dinp is None)
        return
    depthwise_team.nhwc_backward_job(team.record, dout[:0] if dinp is None else dinp,
                                     weight[:0] if dweight is None else dweight, dout, weight, xp, yt, dxp, wt, part,
                                     H, W, KH, KW, SH, SW, PH, PW, DH, DW)
    run_job(team, dout.reshape(-1)[:0])
