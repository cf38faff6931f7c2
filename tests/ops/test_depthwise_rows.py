"""The 3x3 depthwise forward in vectors along the rows (netcli/ops/cpu/depthwise_rows.py) against
the plain NumPy reference convolution (tests/reference.py), on random inputs: odd sizes, rows of
one vector, several and a short tail, stride 1 and 2 each way, padding 0, 1 and 2, planes of 4
and 8 columns several rows to a vector, with and without a bias, float32 and float64; and the same bits as the channels-last kernels' sums
(depthwise_vectors.forward3x3), whose order it keeps. The stride-1 input gradient as such a forward
(the kernel turned 180 degrees) against the reference's adjoint."""
import numpy as np
import pytest

from netcli.ops.cpu.depthwise_nhwc import _channels_last, _padded, _to_channels_first, _to_channels_last
from netcli.ops.cpu.depthwise_rows import ROWS_FROM, depthwise_rows_forward, packed_fit, rows_fit
from netcli.ops.cpu.depthwise_vectors import forward3x3
from reference import conv2d

CASES = [  # N, C, H, W, SH, SW, PH, PW
    (2, 3, 16, 16, 1, 1, 1, 1),      # one wide vector a row
    (1, 4, 9, 8, 1, 1, 1, 1),        # one narrow vector
    (2, 2, 7, 13, 1, 1, 1, 1),       # a narrow vector and a tail of 5
    (1, 3, 11, 37, 1, 1, 1, 1),      # two wide vectors and a tail
    (2, 2, 33, 33, 2, 2, 1, 1),      # stride 2: 17 outputs, one wide vector and one
    (1, 3, 19, 22, 2, 2, 0, 0),      # no padding: 10 columns
    (1, 2, 12, 20, 1, 2, 2, 2),      # padding 2, strides that differ
    (2, 2, 21, 10, 2, 1, 0, 1),
    (1, 5, 6, 50, 1, 1, 0, 1),       # three wide vectors, a tail of 2
    (2, 7, 4, 4, 1, 1, 1, 1),        # packed: a plane a vector, planes in blocks of 4 and 3 alone
    (1, 6, 8, 8, 1, 1, 1, 1),        # packed: two rows a vector
    (2, 5, 12, 4, 1, 1, 1, 1),       # packed: taller than wide
    (1, 9, 2, 8, 1, 1, 1, 1),        # packed: one vector a plane
]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("case", CASES)
def test_rows_against_reference(case, dtype):
    N, C, H, W, SH, SW, PH, PW = case
    OH, OW = (H + 2 * PH - 3) // SH + 1, (W + 2 * PW - 3) // SW + 1
    assert rows_fit(3, 3, SH, SW, PH, PW, 1, 1, H, W, OW)
    rng = np.random.default_rng(sum(case))
    x, w, b = rng.standard_normal((N, C, H, W)), rng.standard_normal((C, 1, 3, 3)), rng.standard_normal(C)
    ref = conv2d(x, w, None, (SH, SW), (PH, PW), (1, 1), group=C)
    tol = dict(rtol=1e-5, atol=1e-5) if dtype == np.float32 else dict(rtol=1e-12, atol=1e-12)
    for bias, want in ((b, ref + b[None, :, None, None]), (np.zeros(0), ref)):
        y = np.full((N, C, OH, OW), np.nan, dtype)
        depthwise_rows_forward(y, x.astype(dtype), w.astype(dtype), bias.astype(dtype), SH, SW, PH, PW)
        np.testing.assert_allclose(y, want, **tol)


@pytest.mark.parametrize("case", [c for c in CASES if c[6] <= 2 and c[7] <= 2])
def test_rows_give_the_channels_last_sums_bits(case):
    N, C, H, W, SH, SW, PH, PW = case
    OH, OW = (H + 2 * PH - 3) // SH + 1, (W + 2 * PW - 3) // SW + 1
    rng = np.random.default_rng(sum(case) + 1)
    f = np.float32
    x, w, b = (rng.standard_normal(s).astype(f) for s in ((N, C, H, W), (C, 1, 3, 3), (C,)))
    xp = np.zeros((N, *_padded(H, W, 3, 3), C), f)
    _to_channels_last(x, xp, PH, PW)
    wt, yt = np.empty((3, 3, C), f), np.empty((N, OH, OW, C), f)
    _channels_last(w, wt)
    forward3x3(xp, yt, wt, b, SH, SW, 1, 1)
    y1, y2 = np.empty((N, C, OH, OW), f), np.empty((N, C, OH, OW), f)
    _to_channels_first(yt, y1, 0, 0)
    depthwise_rows_forward(y2, x, w, b, SH, SW, PH, PW)
    assert np.array_equal(y1, y2)


def test_what_the_rows_take():
    """3x3 without dilation: stride 1 or 2 and ROWS_FROM output columns or more; or planes of 4
    or 8 columns that fill vectors, kept by stride 1 and padding 1 (packed)."""
    def fits(S, P, H, W, D=1, K=3):
        return rows_fit(K, K, S, S, P, P, D, D, H, W, (W + 2 * P - D * (K - 1) - 1) // S + 1)
    assert fits(1, 1, ROWS_FROM, ROWS_FROM) and fits(2, 1, 40, 40) and fits(1, 0, 9, ROWS_FROM + 2)
    assert not fits(1, 0, 9, ROWS_FROM + 1) and not fits(2, 1, 8, 8)
    assert not fits(1, 1, 16, 16, K=5) and not fits(3, 1, 40, 40) and not fits(1, 2, 16, 16, D=2)
    assert fits(1, 1, 4, 4) and fits(1, 1, 2, 8) and packed_fit(1, 1, 1, 1, 12, 4)
    assert not fits(1, 1, 5, 4) and not fits(1, 1, 2, 2) and not fits(1, 0, 6, 6) and not packed_fit(1, 1, 0, 1, 4, 4)


BACKWARD_CASES = [  # N, C, H, W, PH, PW: stride 1, the input gradient as a forward with padding 2 - P
    (2, 3, 9, 13, 1, 1),
    (1, 2, 10, 10, 0, 0),            # padding 2 there: 10 columns
    (1, 3, 6, 18, 2, 2),             # padding 0 there
    (2, 5, 4, 4, 1, 1),              # packed
    (1, 6, 8, 8, 1, 1),
    (1, 2, 9, 9, 2, 0),
]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("case", BACKWARD_CASES)
def test_rows_input_gradient_against_reference(case, dtype):
    """The adjoint of the reference convolution's input term: <conv(x, w), dy> is linear in x."""
    from netcli.ops.cpu.depthwise_rows import depthwise_rows_backward_data, rows_backward_fit
    N, C, H, W, PH, PW = case
    OH, OW = H + 2 * PH - 2, W + 2 * PW - 2
    assert rows_backward_fit(3, 3, 1, 1, PH, PW, 1, 1, H, W, OH, OW)
    rng = np.random.default_rng(sum(case))
    x, w, dy = rng.standard_normal((N, C, H, W)), rng.standard_normal((C, 1, 3, 3)), rng.standard_normal((N, C, OH, OW))
    want = np.array([np.sum(conv2d(e.reshape(x.shape), w, None, (1, 1), (PH, PW), (1, 1), group=C) * dy)
                     for e in np.eye(x.size)]).reshape(x.shape)
    dx = np.full(x.shape, np.nan, dtype)
    depthwise_rows_backward_data(dx, dy.astype(dtype), w.astype(dtype), PH, PW)
    tol = dict(rtol=1e-5, atol=1e-5) if dtype == np.float32 else dict(rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(dx, want, **tol)
