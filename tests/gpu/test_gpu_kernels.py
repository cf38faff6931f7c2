"""Every CUDA kernel against the CPU kernel (or NumPy) it stands in for, on small random inputs
(the simulator runs each thread in Python: shapes stay tiny)."""
import numpy as np
import pytest

from netcli.ops.cpu import im2col, pool
from netcli.ops import cuda as gk

RNG = np.random.default_rng(0)


def rand(*shape):
    return RNG.standard_normal(shape).astype(np.float32)


@pytest.mark.parametrize("kernel", ["tiled", "simple"])
@pytest.mark.parametrize("ta,tb,shape", [(False, False, (5, 7, 20)), (True, False, (9, 4, 17)),
                                         (False, True, (18, 3, 6)), (True, True, (4, 19, 5))])
def test_gemm(ta, tb, shape, kernel):
    M, N, K = shape
    A = rand(K, M) if ta else rand(M, K)
    B = rand(N, K) if tb else rand(K, N)
    C0 = rand(M, N)
    C = C0.copy()
    gk.gemm(A, B, C, ta, tb, alpha=0.5, beta=2.0, kernel=kernel)
    ref = 0.5 * (A.T if ta else A).astype(np.float64) @ (B.T if tb else B) + 2.0 * C0
    np.testing.assert_allclose(C, ref, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("geom", [(3, 3, 1, 1, 0, 0), (3, 3, 2, 2, 1, 1), (2, 3, 1, 2, 1, 0)])
def test_im2col_and_col2im_match_the_cpu(geom):
    KH, KW, SH, SW, PH, PW = geom
    x = rand(2, 2, 6, 5)
    OH, OW = (6 + 2 * PH - KH) // SH + 1, (5 + 2 * PW - KW) // SW + 1
    cols = np.empty((2 * KH * KW, 2 * OH * OW), np.float32)
    want = np.empty_like(cols)
    gk.im2col(x, cols, KH, KW, SH, SW, PH, PW, 1, 1, OH, OW)
    im2col.im2col(x, want, KH, KW, SH, SW, PH, PW, 1, 1, OH, OW)
    np.testing.assert_array_equal(cols, want)
    d = rand(*cols.shape)
    dx, dx_cpu = np.empty_like(x), np.empty_like(x)
    gk.col2im(d, dx, KH, KW, SH, SW, PH, PW, 1, 1, OH, OW)
    im2col.col2im(d, dx_cpu, KH, KW, SH, SW, PH, PW, 1, 1, OH, OW)
    np.testing.assert_allclose(dx, dx_cpu, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("relu", [False, True])
def test_bias_and_relu(relu):
    y, b = rand(2, 3, 4, 2), rand(3)
    want = y + b.reshape(1, 3, 1, 1)
    want = np.where(want > 0, want, 0.2 * want) if relu else want
    gk.bias_act(y, b, relu, 0.2)
    np.testing.assert_allclose(y, want, rtol=1e-6)
    y2 = rand(4, 5)
    want = np.where(y2 > 0, y2, 0.0)
    gk.bias_act(y2, None, True)
    np.testing.assert_array_equal(y2, want)
    dy, db = rand(2, 3, 8), rand(3)
    want = db + dy.sum(axis=(0, 2))
    gk.sum_bias(dy, db)
    np.testing.assert_allclose(db, want, rtol=1e-5, atol=1e-6)
    x, out = rand(3, 5), np.empty((3, 5), np.float32)
    gk.relu_forward(x, out, 0.1)
    np.testing.assert_allclose(out, np.where(x > 0, x, 0.1 * x), rtol=1e-6)   # a GPU: 0.1 * x to 1 ulp
    g, dx = rand(3, 5), np.empty((3, 5), np.float32)
    gk.relu_backward(x, g, dx, 0.1)
    np.testing.assert_allclose(dx, np.where(x > 0, g, 0.1 * g), rtol=1e-6)


@pytest.mark.parametrize("bias,relu", [(True, True), (False, False)])
def test_convolution_layouts(bias, relu):
    """The GEMM's (K, N*P) result into NCHW with the bias and ReLU (as the CPU's im2col.add_bias
    and a ReLU), and back for the gradient; the row sums (the bias gradient) in float64 agree."""
    z, b = rand(3, 2 * 5), rand(3)
    y = np.empty((2, 3, 5), np.float32)
    gk.cols_to_nchw(z, y, b if bias else None, relu, 0.0)
    want = z.reshape(3, 2, 5).transpose(1, 0, 2).copy()
    if bias:
        im2col.add_bias(want, b)
    np.testing.assert_allclose(y, np.maximum(want, 0) if relu else want, rtol=1e-6)
    dy, back = rand(2, 3, 5), np.empty((3, 10), np.float32)
    gk.nchw_to_cols(dy, back)
    np.testing.assert_array_equal(back, dy.transpose(1, 0, 2).reshape(3, 10))
    a, out = rand(4, 300), rand(4)
    want = out.astype(np.float64) + a.astype(np.float64).sum(axis=1)
    gk.sum_rows(a, out)
    np.testing.assert_allclose(out, want, rtol=1e-5, atol=1e-5)


def test_fill_and_sum_of_squares():
    g = rand(1000)
    parts = gk.cuda.device_array(3, np.float32)        # 3 blocks: the simulator runs each thread
    assert gk.sumsq(g, parts) == pytest.approx(float(np.dot(g.astype(np.float64), g)), rel=1e-5)
    gk.fill(g, 0.0)
    assert not g.any()


@pytest.mark.parametrize("geom", [(2, 2, 2, 2, 0, 0), (3, 3, 2, 2, 1, 1), (3, 2, 1, 2, 0, 1)])
def test_maxpool_matches_the_cpu(geom):
    KH, KW, SH, SW, PH, PW = geom
    x = rand(2, 2, 6, 7)
    OH = -(-(6 + 2 * PH - KH) // SH) + 1
    OW = -(-(7 + 2 * PW - KW) // SW) + 1
    if PH and (OH - 1) * SH >= 6 + PH:
        OH -= 1
    if PW and (OW - 1) * SW >= 7 + PW:
        OW -= 1
    y, m = np.empty((2, 2, OH, OW), np.float32), np.empty((2, 2, OH, OW), np.int32)
    yc, mc = np.empty_like(y), np.empty_like(m)
    gk.maxpool_forward(x, y, m, KH, KW, SH, SW, PH, PW)
    pool.maxpool_forward(x, yc, mc, KH, KW, SH, SW, PH, PW)
    np.testing.assert_array_equal(y, yc)
    np.testing.assert_array_equal(m, mc)
    dy = rand(*y.shape)
    dx, dxc = np.empty_like(x), np.empty_like(x)
    gk.maxpool_backward(dy, m, dx)
    pool.maxpool_backward(dy, mc, dxc)
    np.testing.assert_array_equal(dx, dxc)          # the CPU's sums, in the CPU's order


@pytest.mark.parametrize("geom", [(2, 2, 2, 2, 0, 0), (3, 3, 2, 2, 1, 1), (3, 2, 1, 2, 1, 0)])
def test_avepool_matches_the_cpu(geom):
    KH, KW, SH, SW, PH, PW = geom
    x = rand(2, 2, 6, 7)
    OH = min(-(-(6 + 2 * PH - KH) // SH) + 1, (6 + PH - 1) // SH + 1)
    OW = min(-(-(7 + 2 * PW - KW) // SW) + 1, (7 + PW - 1) // SW + 1)
    y, yc = np.empty((2, 2, OH, OW), np.float32), np.empty((2, 2, OH, OW), np.float32)
    gk.avepool_forward(x, y, KH, KW, SH, SW, PH, PW)
    pool.avepool_forward(x, yc, KH, KW, SH, SW, PH, PW)
    np.testing.assert_allclose(y, yc, rtol=1e-6, atol=1e-7)
    dy = rand(*y.shape)
    dx, dxc = np.empty_like(x), np.empty_like(x)
    gk.avepool_backward(dy, dx, KH, KW, SH, SW, PH, PW)
    pool.avepool_backward(dy, dxc, KH, KW, SH, SW, PH, PW)
    np.testing.assert_allclose(dx, dxc, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("kind", ["TANH", "SIGMOID"])
def test_tanh_and_sigmoid(kind):
    x, dy = rand(3, 4, 5) * 3, rand(3, 4, 5)
    y, dx = np.empty_like(x), np.empty_like(x)
    gk.squash_forward(x, y, getattr(gk, kind))
    want = np.tanh(x) if kind == "TANH" else 1 / (1 + np.exp(-x.astype(np.float64)))
    np.testing.assert_allclose(y, want, rtol=1e-5, atol=1e-6)
    gk.squash_backward(y, dy, dx, getattr(gk, kind))
    np.testing.assert_allclose(dx, dy * (1 - y * y if kind == "TANH" else y * (1 - y)), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("axis", [1, 2])
def test_softmax_matches_the_cpu(axis):
    from netcli.layers.common import softmax_forward
    x, dy = rand(2, 3, 4) * 3, rand(2, 3, 4)
    y, yc, dx = np.empty_like(x), np.empty_like(x), np.empty_like(x)
    gk.softmax_forward(x, y, axis)
    softmax_forward(x, yc, axis)
    np.testing.assert_allclose(y, yc, rtol=1e-5, atol=1e-7)
    gk.softmax_backward(y, dy, dx, axis)
    np.testing.assert_allclose(dx, (dy - (dy * y).sum(axis=axis, keepdims=True)) * y, rtol=1e-5, atol=1e-6)


KW = {"SGD": {"momentum": 0.9}, "NESTEROV": {"momentum": 0.9}, "ADAM": {"momentum": 0.9},
      "ADAGRAD": {}, "RMSPROP": {"rms_decay": 0.98}, "ADADELTA": {"momentum": 0.95, "delta": 1e-6}}


@pytest.mark.parametrize("kind", sorted(KW))
@pytest.mark.parametrize("l1", [False, True])
def test_update_rules_match_the_cpu(kind, l1):
    """Each rule's CUDA kernel (compiled from the same formula) against its CPU loop."""
    check_rule_on_device(kind, dict(KW[kind], regularization_type="L1" if l1 else "L2"))


def check_rule_on_device(kind, kw, n=50, steps=2):
    """`steps` updates of rule `kind` on the device and on the CPU agree (float rounding)."""
    from netcli.config.schema import Problems
    from netcli.config.yamlload import LDict
    from netcli.solver.spec import SOLVER
    from netcli.update_rules import RULES
    p = SOLVER.parse(LDict(dict(type=kind, weight_decay=5e-4, **kw)), Problems(), None, "")
    lr, decay = RNG.uniform(0, 2, n).astype(np.float32), np.full(n, 5e-4, np.float32)
    cpu, dev = RULES[kind](p, lr, decay), RULES[kind](p, lr, decay)
    for h, h2 in zip(cpu.history, dev.history):
        h[...] = h2[...] = np.abs(rand(n))                       # squared averages are >= 0
    w = rand(n)
    w2 = w.copy()
    for it in range(steps):
        g = rand(n)
        gk.elementwise(dev.compiled("cuda"), n, *dev.arguments(w, g, dev.history, lr, decay, 0.01, it, 0.5))
        cpu.step(w2, g, 0.01, it, 0.5)
    np.testing.assert_allclose(w, w2, rtol=1e-5, atol=1e-7)     # the simulator rounds as float64
    for h, h2 in zip(dev.history, cpu.history):
        np.testing.assert_allclose(h, h2, rtol=1e-5, atol=1e-7)


def test_device_errors_are_one_line(monkeypatch):
    from netcli.errors import NetcliError
    from netcli.gpu import device
    name = device.select(0)
    assert ("simulated" in name) == device.simulated() and name
    count = 1 if device.simulated() else len(device.cuda_module().gpus)
    with pytest.raises(NetcliError, match=f"GPU {count + 2}: this machine has {count} CUDA device"):
        device.select(count + 2)
    import sys
    monkeypatch.setitem(sys.modules, "numba_cuda", None)
    with pytest.raises(NetcliError, match=r"pip install 'netcli\[gpu\]'"):
        device.cuda_module()
