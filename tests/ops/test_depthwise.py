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
