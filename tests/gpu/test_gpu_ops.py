"""The CUDA ops with the CPU's names and signatures (netcli/ops/cuda/conv2d.py, inner_product.py,
softmax.py, dropout.py) against the CPU ops, called with the same arguments, on small random
inputs (the simulator runs each CUDA thread in Python: shapes stay tiny)."""
import numpy as np
import pytest

from netcli.ops import cuda as gk
from netcli.ops.cpu import conv2d as cpu_conv, dropout as cpu_dropout, inner_product as cpu_ip, softmax as cpu_softmax
from netcli.ops.cpu.conv2d_rule import conv2d_algorithm

RNG = np.random.default_rng(3)


def rand(*shape):
    return RNG.standard_normal(shape).astype(np.float32)


def _host_ws(spec):
    return {k: np.zeros(shape, dt) for k, (shape, dt) in spec.items()}


def _device_ws(spec):
    return {k: gk.cuda.device_array(shape, dt) for k, (shape, dt) in spec.items()}


# (N, C, H, W, K, KH, KW, SH, SW, PH, PW, DH, DW, group)
CONV = [(2, 3, 5, 7, 4, 3, 3, 1, 1, 1, 1, 1, 1, 1),          # odd sizes, padding
        (3, 4, 7, 6, 6, 3, 2, 2, 1, 1, 0, 1, 2, 2),          # stride, dilation, groups
        (2, 6, 6, 5, 3, 2, 3, 1, 2, 0, 2, 2, 1, 3),
        (2, 16, 4, 3, 5, 1, 1, 1, 1, 0, 0, 1, 1, 1),         # the CPU's 1x1 on channels-last
        (2, 8, 9, 9, 6, 1, 1, 1, 1, 0, 0, 1, 1, 1),          # the CPU's 1x1 on the input
        (2, 4, 7, 6, 4, 3, 3, 2, 1, 1, 1, 1, 1, 4),          # the CPU's depthwise
        (2, 16, 8, 9, 4, 3, 3, 1, 1, 1, 1, 1, 1, 1)]         # the CPU's Winograd


# every geometry with and without a bias, whole and chunked; the Winograd one (the simulator's
# slowest: 10-19 s a case) once, as the other cases cover the bias and the chunks
CASES = [(geom, bias, chunked) for geom in CONV[:-1] for bias in (True, False) for chunked in (False, True)] + \
    [(CONV[-1], True, False)]


@pytest.mark.parametrize("geom,bias,chunked", CASES)
def test_conv2d_matches_the_cpu(geom, bias, chunked, monkeypatch):
    """Forward, then backward twice (fresh into zeros, then added onto the first) with the same
    arguments on both devices; chunked: one image per chunk of columns."""
    N, C, H, W, K, KH, KW, SH, SW, PH, PW, DH, DW, G = geom
    OH = (H + 2 * PH - DH * (KH - 1) - 1) // SH + 1
    OW = (W + 2 * PW - DW * (KW - 1) - 1) // SW + 1
    if chunked:
        from netcli.ops.cuda import conv2d
        monkeypatch.setattr(conv2d, "COLS_LIMIT", C * KH * KW * OH * OW)
    rows = conv2d_algorithm(C, H, W, K, KH, KW, SH, SW, PH, PW, DH, DW, G)
    x, w, b = rand(N, C, H, W), rand(K, C // G, KH, KW), rand(K) if bias else None
    geometry = (KH, KW, SH, SW, PH, PW, DH, DW, G, rows)
    shape = (N, C, H, W, K, KH, KW, OH, OW, G, rows, np.float32)
    ws = _device_ws(gk.conv2d_workspace(*shape))
    cws = _host_ws({**cpu_conv.conv2d_workspace(*shape), **cpu_conv.conv2d_scratch(*shape)})
    y, yc = np.empty((N, K, OH, OW), np.float32), np.empty((N, K, OH, OW), np.float32)
    gk.conv2d_forward(y, x, w, b, ws, *geometry)
    cpu_conv.conv2d_forward(yc, x, w, b, cws, *geometry)
    # the CPU's F(4x4, 3x3) sums with coefficients up to 8 (winograd_transforms.py): a few units
    # in float32's 6th digit, as the CPU tests bound it
    tol = 1e-4 if rows == "winograd4" else 1e-5
    np.testing.assert_allclose(y, yc, rtol=tol, atol=tol)
    dy = rand(*y.shape)
    grads, cgrads = [], []
    for out, op, scratch in ((grads, gk.conv2d_backward, ws), (cgrads, cpu_conv.conv2d_backward, cws)):
        dx, dw, db = np.empty_like(x), np.zeros_like(w), np.zeros(K, np.float32) if bias else None
        for fresh in (True, False):
            op(dx, dw, db, dy, x, w, scratch, *geometry, fresh)
        out += [dx, dw] + ([db] if bias else [])
    for g, c in zip(grads, cgrads):
        np.testing.assert_allclose(g, c, rtol=1e-4, atol=1e-4)
    assert np.abs(cgrads[1]).sum() > 0


def test_conv2d_forward_relu_is_the_forward_then_a_relu():
    x, w, b = rand(2, 3, 5, 5), rand(4, 3, 3, 3), rand(4)
    geometry = (3, 3, 1, 1, 1, 1, 1, 1, 1, "im2col")
    y, yr = np.empty((2, 4, 5, 5), np.float32), np.empty((2, 4, 5, 5), np.float32)
    gk.conv2d_forward(y, x, w, b, _device_ws(gk.conv2d_workspace(2, 3, 5, 5, 4, 3, 3, 5, 5, 1, "im2col", np.float32)),
                      *geometry)
    gk.conv2d_forward_relu(yr, x, w, b, _device_ws(gk.conv2d_workspace(2, 3, 5, 5, 4, 3, 3, 5, 5, 1, "im2col",
                                                                       np.float32)), *geometry, slope=0.1)
    np.testing.assert_allclose(yr, np.where(y > 0, y, 0.1 * y), rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("transpose", [False, True])
@pytest.mark.parametrize("bias", [True, False])
def test_inner_product_matches_the_cpu(transpose, bias):
    M, K, N = 5, 7, 3
    x, w, b = rand(M, K), rand(K, N) if transpose else rand(N, K), rand(N) if bias else None
    y, yc = np.empty((M, N), np.float32), np.empty((M, N), np.float32)
    gk.inner_product_forward(y, x, w, b, None, transpose)
    cpu_ip.inner_product_forward(yc, x, w, b, np.empty((N, M), np.float32), transpose)
    np.testing.assert_allclose(y, yc, rtol=1e-5, atol=1e-6)
    yr = np.empty_like(y)
    gk.inner_product_forward_relu(yr, x, w, b, None, transpose, 0.0)
    np.testing.assert_allclose(yr, np.maximum(yc, 0), rtol=1e-5, atol=1e-6)
    dy = rand(M, N)
    results = []
    for op, scratch in ((gk.inner_product_backward, None), (cpu_ip.inner_product_backward, np.empty_like(w))):
        dx, dw, db = np.empty_like(x), np.zeros_like(w), np.zeros(N, np.float32) if bias else None
        for fresh in (True, False):
            op(dx, dw, db, dy, x, w, scratch, transpose, fresh)
        results.append([dx, dw] + ([db] if bias else []))
    for g, c in zip(*results):
        np.testing.assert_allclose(g, c, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("ignore,has_ignore", [(-1, False), (2, True), (255, True)])
def test_softmax_loss_matches_the_cpu(ignore, has_ignore):
    """(R, C, I) scores, labels with the ignored value among them: the same probabilities, the
    CPU's four results from the device's rows, the same gradient (zero where ignored)."""
    R, C, I = 3, 5, 4
    x = rand(R, C, I) * 3
    lab = RNG.integers(0, C, (R, I)).astype(np.float32)
    lab[0, 1] = lab[2, 3] = ignore if has_ignore else 1
    prob, pc = np.empty_like(x), np.empty_like(x)
    parts = gk.softmax_loss_forward(x, lab, prob, ignore, has_ignore)
    want = cpu_softmax.softmax_loss_forward(x, lab, pc, ignore, has_ignore)
    np.testing.assert_allclose(prob, pc, rtol=1e-6, atol=1e-7)
    total, count, bad, found = gk.softmax_loss_results(parts.copy_to_host())
    assert (count, bad, found) == want[1:]
    assert count == (int((lab != ignore).sum()) if has_ignore else R * I) and (count < R * I) == has_ignore
    assert total == pytest.approx(want[0], rel=1e-6)
    dx, dxc = np.empty_like(x), np.empty_like(x)
    gk.softmax_loss_backward(prob, lab, dx, 0.125, ignore, has_ignore)
    cpu_softmax.softmax_loss_backward(pc, lab, dxc, 0.125, ignore, has_ignore)
    np.testing.assert_allclose(dx, dxc, rtol=1e-6, atol=1e-7)
    if has_ignore:
        assert not dx[0, :, 1].any() and not dx[2, :, 3].any()


def test_softmax_loss_reports_the_first_label_that_is_not_a_class():
    x, lab = rand(4, 3, 1), np.array([[0], [7], [np.nan], [1]], np.float32)
    parts = gk.softmax_loss_forward(x, lab, np.empty_like(x), -1, False)
    assert gk.softmax_loss_results(parts.copy_to_host())[2:] == (7.0, True)
    dx = np.empty_like(x)
    gk.softmax_loss_backward(np.empty_like(x), lab, dx, 1.0, -1, False)    # no crash on NaN


@pytest.mark.parametrize("in_place", [False, True])
def test_dropout_masks_are_the_cpus_bit_for_bit(in_place):
    n, E, key, ratio = 5, 13, 0x7A3F_1234_5678_9ABC, 0.3
    x = rand(n, E)
    for pass_, first in ((0, 0), (3, 2), (2 ** 40 + 1, 7)):
        y, keep = (x.copy() if in_place else np.empty_like(x)), np.empty((n, E), bool)
        yc, keepc = np.empty_like(x), np.empty((n, E), bool)
        gk.dropout_forward(y if in_place else x, y, keep, key, pass_, first, ratio, 1 / (1 - ratio))
        cpu_dropout.dropout_forward(x, yc, keepc, key, pass_, first, ratio, 1 / (1 - ratio))
        np.testing.assert_array_equal(keep, keepc)
        np.testing.assert_array_equal(y, yc)
        assert 0 < keep.sum() < keep.size
        dy, dx, dxc = rand(n, E), np.empty_like(x), np.empty_like(x)
        gk.dropout_backward(dy, keep, dx, 1 / (1 - ratio))
        cpu_dropout.dropout_backward(dy, keepc, dxc, 1 / (1 - ratio))
        np.testing.assert_array_equal(dx, dxc)


def test_softmax_loss_rows_are_kept_per_prob_and_go_with_it():
    """One device allocation per prob array (not per call), freed with it (a reshaped net's old
    workspaces leave nothing behind)."""
    import gc
    from netcli.ops.cuda import softmax
    x, lab = rand(2, 3, 1), np.zeros((2, 1), np.float32)
    prob = np.empty_like(x)
    rows = gk.softmax_loss_forward(x, lab, prob, -1, False)
    assert gk.softmax_loss_forward(x, lab, prob, -1, False) is rows
    key = id(prob)
    del prob
    gc.collect()
    assert key not in softmax._PARTS
