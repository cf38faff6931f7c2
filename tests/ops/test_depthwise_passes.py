"""Depthwise convolutions as team jobs (netcli/ops/cpu/depthwise_passes.py, depthwise_team.py):
with a helper thread taking tiles (images of the forward and the input gradient, channels of the
weight gradient), every output is the kernels' own, bit for bit, on random shapes (odd sizes,
padding, stride, 3x3 and 5x5 and 3x5, with and without a bias, each gradient alone and both), in
both layouts and dtypes; a channels-last forward with a one-image buffer (inference) too."""
import numpy as np
import pytest

from helpers import with_a_helper
from netcli.exec import team, threads
from netcli.ops.cpu import depthwise, depthwise_nhwc, depthwise_passes
from netcli.ops.cpu.depthwise_nhwc import depthwise_nhwc_fits, depthwise_nhwc_scratch, depthwise_nhwc_workspace

CASES = [  # N, C, H, W, KH, KW, S, P, bias, gradients ("x": the input's, "w": the weights')
    (9, 7, 9, 11, 3, 3, 1, 1, True, "xw"),
    (4, 16, 8, 8, 3, 3, 2, 1, False, "xw"),
    (11, 5, 6, 7, 5, 5, 1, 2, True, "w"),
    (3, 9, 10, 5, 3, 5, 2, 0, False, "x"),
    (16, 32, 4, 4, 3, 3, 1, 1, False, "xw"),
]


class Kernels:
    """The calls depthwise_passes makes, on the kernels alone (no team)."""

    @staticmethod
    def depthwise_forward(*args):
        depthwise.depthwise_forward(*args)

    @staticmethod
    def depthwise_backward(dinp, dweight, dout, inp, weight, *geometry):
        if dweight is not None:
            depthwise.depthwise_backward_weight(dweight, dout, inp, *geometry)
        if dinp is not None:
            depthwise.depthwise_backward_data(dinp, dout, weight, *geometry)

    @staticmethod
    def depthwise_nhwc_forward(*args):
        depthwise_nhwc.depthwise_nhwc_forward(*args)

    @staticmethod
    def depthwise_nhwc_backward(dinp, dweight, dout, weight, xp, yt, dxp, wt, part, H, W, *geometry):
        if dinp is not None:
            depthwise_nhwc.depthwise_nhwc_backward_data(dinp, dout, weight, yt, dxp, wt, *geometry)
        if dweight is not None:
            KH, KW, SH, SW, PH, PW, DH, DW = geometry
            depthwise_nhwc.depthwise_nhwc_backward_weight(dweight, dout, xp, yt, part, KH, KW, SH, SW, DH, DW,
                                                          dinp is None)


def _run(calls, case, dtype, seed):
    """Both layouts' forward and backward through `calls`, from NaN-filled buffers (the weight
    gradients from random values: the kernels add); everything they wrote."""
    N, C, H, W, KH, KW, S, P, has_bias, grads = case
    rng = np.random.default_rng(seed)
    OH, OW = (H + 2 * P - KH) // S + 1, (W + 2 * P - KW) // S + 1
    x, w = rng.standard_normal((N, C, H, W)).astype(dtype), rng.standard_normal((C, 1, KH, KW)).astype(dtype)
    bias = rng.standard_normal(C).astype(dtype) if has_bias else np.zeros(0, dtype)
    dy = rng.standard_normal((N, C, OH, OW)).astype(dtype)
    geometry = (KH, KW, S, S, P, P, 1, 1)
    out = []
    y = np.full((N, C, OH, OW), np.nan, dtype)
    calls.depthwise_forward(y, x, w, bias, *geometry)
    dx = np.full(x.shape, np.nan, dtype) if "x" in grads else None
    dw = rng.standard_normal(w.shape).astype(dtype) if "w" in grads else None
    calls.depthwise_backward(dx, dw, dy, x, w, *geometry)
    out += [y, dx, dw]
    if depthwise_nhwc_fits(KH, KW, P, P, 1, 1):
        ws = {k: np.full(s, np.nan, d) for k, (s, d) in {**depthwise_nhwc_workspace(N, C, H, W, KH, KW, dtype),
                                                         **depthwise_nhwc_scratch(N, C, H, W, KH, KW, OH, OW,
                                                                                  dtype)}.items()}
        y2 = np.full_like(y, np.nan)
        calls.depthwise_nhwc_forward(y2, x, w, bias, ws["xp"], ws["yt"], ws["wt"], *geometry)
        dx2 = None if dx is None else np.full_like(dx, np.nan)
        dw2 = None if dw is None else rng.standard_normal(w.shape).astype(dtype)
        calls.depthwise_nhwc_backward(dx2, dw2, dy, w, ws["xp"], ws["yt"], ws["dxp"], ws["wt"], ws["part"], H, W,
                                      *geometry)
        one = np.full(depthwise_nhwc_workspace(1, C, H, W, KH, KW, dtype)["xp"][0], np.nan, dtype)
        y3 = np.full_like(y, np.nan)            # a forward that keeps nothing: one image's buffer
        calls.depthwise_nhwc_forward(y3, x, w, bias, one, ws["yt"], ws["wt"], *geometry)
        out += [y2, dx2, dw2, y3]
    return out


@pytest.mark.skipif(threads.usable_cores() < 2, reason="a helper needs a core of its own")
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_a_helper_takes_tiles_and_every_bit_stays(dtype):
    alone = [_run(Kernels, case, dtype, i) for i, case in enumerate(CASES)]
    together, helped = with_a_helper(dtype, lambda: [_run(depthwise_passes, case, dtype, i % len(CASES))
                                                     for i, case in enumerate(CASES * 3)])
    assert helped > 0
    for i, got in enumerate(together):
        for j, (g, w) in enumerate(zip(got, alone[i % len(CASES)])):
            assert (g is None) == (w is None), (CASES[i % len(CASES)], j)
            if g is not None:
                assert np.isfinite(g).all() and np.array_equal(g, w), (CASES[i % len(CASES)], j)


def test_alone_the_kernels_run(monkeypatch):
    """A thread without helpers posts no job: the kernels themselves run."""
    for name in ("dw_forward_job", "dw_backward_job", "nhwc_forward_job", "nhwc_backward_job"):
        monkeypatch.setattr(depthwise_passes.depthwise_team, name, None)
    assert team.current().size == 1
    for i, case in enumerate(CASES):
        got, want = _run(depthwise_passes, case, np.float32, i), _run(Kernels, case, np.float32, i)
        assert all((g is None and w is None) or np.array_equal(g, w) for g, w in zip(got, want))
