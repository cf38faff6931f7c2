"""The depthwise convolution kernels (netcli/ops/cpu/depthwise.py) against the plain NumPy
reference convolution (tests/reference.py) with group == channels, on random inputs of odd
sizes with padding, stride and dilation, in float32 and float64."""
import numpy as np
import pytest

from netcli.ops.cpu.depthwise import depthwise_backward_data, depthwise_backward_weight, depthwise_forward
from reference import conv2d

CASES = [  # N, C, H, W, KH, KW, SH, SW, PH, PW, DH, DW
    (3, 5, 7, 9, 3, 3, 1, 1, 1, 1, 1, 1),
    (2, 3, 11, 6, 3, 3, 2, 2, 1, 1, 1, 1),
    (4, 2, 9, 10, 5, 3, 1, 2, 2, 0, 1, 2),
    (1, 6, 5, 5, 3, 3, 1, 1, 3, 2, 2, 1),          # padding wider than the reach: border outputs
    (2, 4, 8, 7, 2, 4, 3, 1, 0, 2, 1, 1),
    (2, 3, 9, 11, 3, 3, 2, 2, 1, 1, 1, 1),         # stride 2 on odd widths: the column pairs and the one left
    (1, 2, 7, 7, 3, 3, 2, 2, 0, 0, 1, 1),
]


def _outputs(H, W, KH, KW, SH, SW, PH, PW, DH, DW):
    return (H + 2 * PH - DH * (KH - 1) - 1) // SH + 1, (W + 2 * PW - DW * (KW - 1) - 1) // SW + 1


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("case", CASES)
def test_depthwise_against_reference(case, dtype):
    N, C, H, W, KH, KW, SH, SW, PH, PW, DH, DW = case
    geometry = (KH, KW, SH, SW, PH, PW, DH, DW)
    rng = np.random.default_rng(sum(case))
    x = rng.standard_normal((N, C, H, W))
    w = rng.standard_normal((C, 1, KH, KW))
    b = rng.standard_normal(C)
    OH, OW = _outputs(H, W, *geometry)
    tol = dict(rtol=1e-5, atol=1e-5) if dtype == np.float32 else dict(rtol=1e-12, atol=1e-12)

    def ref(x, w):
        return conv2d(x, w, None, (SH, SW), (PH, PW), (DH, DW), group=C)
    y = np.full((N, C, OH, OW), np.nan, dtype)
    depthwise_forward(y, x.astype(dtype), w.astype(dtype), b.astype(dtype), *geometry)
    np.testing.assert_allclose(y, ref(x, w) + b[None, :, None, None], **tol)
    depthwise_forward(y, x.astype(dtype), w.astype(dtype), np.zeros(0, dtype), *geometry)    # no bias
    np.testing.assert_allclose(y, ref(x, w), **tol)

    dy = rng.standard_normal(y.shape)
    dx = np.full(x.shape, np.nan, dtype)        # written
    depthwise_backward_data(dx, dy.astype(dtype), w.astype(dtype), *geometry)
    dw = np.full(w.shape, 0.5, dtype)           # added to
    depthwise_backward_weight(dw, dy.astype(dtype), x.astype(dtype), *geometry)
    # the adjoints, from the reference: <ref(x, w), dy> is linear in x and in w
    ref_dx = np.array([np.sum(ref(e.reshape(x.shape), w) * dy) for e in np.eye(x.size)]).reshape(x.shape)
    ref_dw = np.array([np.sum(ref(x, e.reshape(w.shape)) * dy) for e in np.eye(w.size)]).reshape(w.shape)
    np.testing.assert_allclose(dx, ref_dx, **tol)
    np.testing.assert_allclose(dw, ref_dw + 0.5, **(tol if dtype == np.float64 else dict(rtol=1e-4, atol=1e-4)))


NHWC_CASES = [  # N, C, H, W, KH, KW, SH, SW, PH, PW: small planes, odd sizes, stride, padding
    (3, 7, 4, 5, 3, 3, 1, 1, 1, 1),
    (2, 9, 8, 7, 3, 3, 2, 2, 1, 1),
    (2, 5, 5, 6, 5, 3, 1, 2, 2, 0),
    (4, 3, 2, 2, 3, 3, 1, 1, 1, 1),
    (1, 16, 3, 3, 3, 3, 1, 1, 0, 2),
    (2, 6, 9, 10, 3, 3, 1, 1, 1, 1),               # rows of 8 positions and more: through a buffer
    (2, 5, 16, 17, 3, 3, 2, 2, 1, 1),
    (1, 300, 5, 4, 3, 3, 1, 1, 1, 1),               # 3x3 in one pass: two blocks of channels
]


@pytest.mark.parametrize("case", NHWC_CASES)
def test_depthwise_nhwc_gives_the_plane_kernels_bits(case):
    """netcli/ops/cpu/depthwise_nhwc.py sums what depthwise.py sums, in the same order: the same
    float32 output, input gradient and weight gradient (those are checked against the reference
    above and, for the nhwc algorithm, in test_kernel_boundary.py)."""
    from netcli.ops.cpu.depthwise_nhwc import (depthwise_nhwc_backward_data, depthwise_nhwc_backward_weight,
                                               depthwise_nhwc_fits, depthwise_nhwc_forward, depthwise_nhwc_scratch,
                                               depthwise_nhwc_workspace)
    N, C, H, W, KH, KW, SH, SW, PH, PW = case
    assert depthwise_nhwc_fits(KH, KW, PH, PW, 1, 1)
    geometry = (KH, KW, SH, SW, PH, PW, 1, 1)
    OH, OW = _outputs(H, W, *geometry)
    rng = np.random.default_rng(sum(case))
    f = np.float32
    x, w, b = (rng.standard_normal(s).astype(f) for s in ((N, C, H, W), (C, 1, KH, KW), (C,)))
    ws = {k: np.full(s, np.nan, d) for k, (s, d) in {**depthwise_nhwc_workspace(N, C, H, W, KH, KW, f),
                                                     **depthwise_nhwc_scratch(N, C, H, W, KH, KW, OH, OW, f)}.items()}
    y1, y2 = np.empty((N, C, OH, OW), f), np.empty((N, C, OH, OW), f)
    depthwise_forward(y1, x, w, b, *geometry)
    depthwise_nhwc_forward(y2, x, w, b, ws["xp"], ws["yt"], ws["wt"], *geometry)
    assert np.array_equal(y1, y2)
    # a forward that keeps nothing pads one image at a time in an xp of one image (conv2d_scratch)
    one = {k: np.full(s, np.nan, d) for k, (s, d) in depthwise_nhwc_workspace(1, C, H, W, KH, KW, f).items()}
    for bias in (b, np.zeros(0, f)):
        y3 = np.full_like(y2, np.nan)
        depthwise_nhwc_forward(y3, x, w, bias, one["xp"], ws["yt"], ws["wt"], *geometry)
        depthwise_forward(y1, x, w, bias, *geometry)
        assert np.array_equal(y1, y3)
    depthwise_forward(y1, x, w, b, *geometry)
    dy = rng.standard_normal(y1.shape).astype(f)
    dx1, dx2 = np.empty_like(x), np.empty_like(x)
    dw1, dw2 = np.full_like(w, 0.5), np.full_like(w, 0.5)
    depthwise_backward_data(dx1, dy, w, *geometry)
    depthwise_backward_weight(dw1, dy, x, *geometry)
    depthwise_nhwc_backward_weight(dw2, dy, ws["xp"], ws["yt"], ws["part"], KH, KW, SH, SW, 1, 1, True)
    depthwise_nhwc_backward_data(dx2, dy, w, ws["yt"], ws["dxp"], ws["wt"], *geometry)
    assert np.array_equal(dx1, dx2) and np.array_equal(dw1, dw2)


def test_a_depthwise_runs_channels_last_up_to_256_outputs():
    """conv2d_rule: "depthwise-nhwc" (the same bits, test above) for outputs of at most
    NHWC_POSITIONS positions, with a stride or without (MobileNet-on-CIFAR's conv2_dw, 64 channels
    32x32 stride 2, and conv3_dw, 128 channels 16x16); "depthwise" for larger planes and dilation."""
    from netcli.ops.cpu.conv2d_rule import NHWC_POSITIONS, conv2d_algorithm

    def rule(C, H, S, D=1):
        return conv2d_algorithm(C, H, H, C, 3, 3, S, S, D, D, D, D, C)
    assert NHWC_POSITIONS == 256
    assert rule(64, 32, 2) == rule(128, 32, 2) == rule(256, 16, 2) == "depthwise-nhwc"     # 16x16, 8x8 out
    assert rule(32, 64, 2) == rule(64, 112, 2) == "depthwise"                               # 32x32, 56x56 out
    assert rule(256, 8, 1) == rule(512, 4, 1) == rule(128, 16, 1) == "depthwise-nhwc"      # 64, 16, 256 out
    assert rule(32, 32, 1) == rule(64, 17, 1) == rule(128, 8, 1, D=2) == "depthwise"        # 1024, 289 out; dilated


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("C, H, W, S, D", [(5, 4, 5, 1, 1), (13, 6, 3, 2, 1), (37, 5, 5, 1, 2), (64, 4, 4, 1, 1),
                                           (72, 3, 7, 2, 2), (24, 2, 2, 1, 1), (8, 9, 8, 2, 1)])
def test_vectors_of_channels_give_the_loops_bits(C, H, W, S, D, dtype):
    """depthwise_vectors.forward3x3 (vectors of 32 channels, then 8, then one by one) sums what
    depthwise_nhwc's one-pass-per-tap loops sum, in the same order: the same bits, on a padded
    buffer wider than the taps reach and views of images (a team's tile)."""
    from netcli.ops.cpu.depthwise_nhwc import _forward_taps
    from netcli.ops.cpu.depthwise_vectors import forward3x3
    rng = np.random.default_rng(C * H + W)
    OH, OW = (H - 1) // S + 1, (W - 1) // S + 1
    xp = rng.standard_normal((3, (OH - 1) * S + 2 * D + 3, (OW - 1) * S + 2 * D + 2, C)).astype(dtype)
    wt, b = rng.standard_normal((3, 3, C)).astype(dtype), rng.standard_normal(C).astype(dtype)
    want, got = np.empty((3, OH, OW, C), dtype), np.full((3, OH, OW, C), np.nan, dtype)
    _forward_taps(xp, want, wt, b, S, S, D, D)
    forward3x3(xp[1:], got[1:], wt, b, S, S, D, D)
    forward3x3(xp[:1], got[:1], wt, b, S, S, D, D)
    assert np.array_equal(got, want)
    ref = sum(wt[i, j] * xp[:, i * D:i * D + (OH - 1) * S + 1:S, j * D:j * D + (OW - 1) * S + 1:S] for i in range(3)
              for j in range(3)) + b
    np.testing.assert_allclose(got, ref, rtol=1e-5 if dtype == np.float32 else 1e-12, atol=1e-5)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("N, C, H, S, D, K, taps", [(11, 13, 9, 1, 1, 3, (0, 9)), (20, 72, 16, 2, 1, 3, (0, 9)),
                                                    (3, 40, 8, 1, 2, 3, (0, 9)), (9, 8, 4, 1, 1, 5, (0, 25)),
                                                    (5, 24, 8, 1, 1, 3, (2, 7)), (4, 40, 2, 1, 1, 3, (0, 9))])
def test_weight_gradient_vectors_sum_each_tap_over_the_images_in_order(N, C, H, S, D, K, taps, dtype):
    """depthwise_vectors.weight_grad_taps (a 3x3 kernel's nine taps at once in vectors of 16, then
    8 channels, over groups of images; the rest in loops) adds to each tap's per-position partial
    the images' terms in order: the bits of a plain NumPy loop over the images."""
    from netcli.ops.cpu.depthwise_vectors import weight_grad_taps
    rng = np.random.default_rng(N * C + H)
    OH = (H - 1) // S + 1
    xp = rng.standard_normal((N, H + 2 * D * (K - 1), H + 2 * D * (K - 1), C)).astype(dtype)
    yt = rng.standard_normal((N, OH, OH, C)).astype(dtype)
    want = rng.standard_normal((K * K, OH, OH, C)).astype(dtype)
    got = want.copy()
    for n in range(N):
        for t in range(*taps):
            i, j = t // K, t % K
            want[t] += yt[n] * xp[n, i * D:i * D + (OH - 1) * S + 1:S, j * D:j * D + (OH - 1) * S + 1:S]
    weight_grad_taps(xp, yt, got, K, S, S, D, D, *taps)
    assert np.array_equal(got, want)
