"""The kernels that may run in place (ops/cpu/inplace.py): each path (in place, apart; with and
without the optional outputs) against NumPy on random inputs, and in place giving the bits of
apart."""
import numpy as np
import pytest

from netcli.ops.cpu.channels import (batch_norm_backward, batch_norm_forward, channel_affine, scale_backward,
                                     scale_forward)
from netcli.ops.cpu.dropout import dropout_backward, dropout_forward
from netcli.ops.cpu.inplace import same
from netcli.ops.cpu.norm_scale_relu import (norm_scale_relu_backward, norm_scale_relu_forward,
                                             norm_scale_relu_grad_sums)
from numba import njit

SHAPE = (3, 5, 37)          # (images, channels, positions): odd sizes
LARGE = (3, 3, 131)         # norm_scale_relu's per-channel loops (SMALL_PLANE positions and more)


def _arrays(seed, dtype=np.float32, shape=SHAPE):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(shape).astype(dtype)
    per_channel = [rng.uniform(0.5, 2, shape[1]).astype(dtype) * rng.choice([-1, 1], shape[1]).astype(dtype)
                   for _ in range(4)]
    return rng, x, per_channel


def _both(run, x):
    """run(src, dst) apart and in place on copies of x: (the apart result, the in-place one)."""
    apart, inplace = np.full_like(x, np.nan), x.copy()
    run(x.copy(), apart)
    run(inplace, inplace)
    return apart, inplace


@njit
def _same(a, b):
    return same(a, b)


def test_same_tells_one_array_from_two():
    x = np.zeros((4, 3), np.float32)
    assert _same(x, x) and _same(x[1:], x[1:]) and not _same(x, x.copy()) and not _same(x[1:], x[2:])


def test_channel_affine():
    _, x, (a, b, _, _) = _arrays(1)
    apart, inplace = _both(lambda src, dst: channel_affine(src, a, b, dst), x)
    np.testing.assert_array_equal(apart, x * a[:, None] + b[:, None])
    np.testing.assert_array_equal(inplace, apart)


def test_batch_norm_forward_and_backward():
    rng, x, (a, b, m1, m2) = _arrays(2)
    xhats = []

    def fwd(src, dst):
        xhats.append(np.full_like(x, np.nan))
        batch_norm_forward(src, a, b, dst, xhats[-1])
    apart, inplace = _both(fwd, x)
    np.testing.assert_array_equal(apart, x * a[:, None] + b[:, None])
    np.testing.assert_array_equal(inplace, apart)
    assert all(np.array_equal(h, apart) for h in xhats)

    dy = rng.standard_normal(SHAPE).astype(np.float32)
    inv = np.abs(a)
    dx, dx_inplace = _both(lambda src, dst: batch_norm_backward(src, apart, m1, m2, inv, dst), dy)
    np.testing.assert_array_equal(dx, (dy - m1[:, None] - apart * m2[:, None]) * inv[:, None])
    np.testing.assert_array_equal(dx_inplace, dx)


@pytest.mark.parametrize("keep", [False, True])
@pytest.mark.parametrize("bias", [False, True])
def test_scale_forward_and_backward(keep, bias):
    rng, x, (g, beta, _, _) = _arrays(3 + 2 * keep + bias)
    beta = beta if bias else np.zeros(0, np.float32)
    saved = []

    def fwd(src, dst):
        saved.append(np.full_like(x, np.nan) if keep else np.zeros((0, 1, 1), np.float32))
        scale_forward(src, g, beta, dst, saved[-1])
    apart, inplace = _both(fwd, x)
    want = x * g[:, None] + (beta[:, None] if bias else np.float32(0))
    np.testing.assert_allclose(apart, want, rtol=1e-6, atol=1e-6)
    np.testing.assert_array_equal(inplace, apart)
    if keep:
        assert all(np.array_equal(s, x) for s in saved)

    dy = rng.standard_normal(SHAPE).astype(np.float32)
    grads = []

    def bwd(src, dst):
        grads.append((np.zeros(5), np.zeros(5 if bias else 0)))
        scale_backward(src, x, g, *grads[-1], dst, True)
    dx, dx_inplace = _both(bwd, dy)
    np.testing.assert_array_equal(dx, dy * g[:, None])
    np.testing.assert_array_equal(dx_inplace, dx)
    np.testing.assert_allclose(grads[0][0], (dy.astype(np.float64) * x).sum(axis=(0, 2)), rtol=1e-5, atol=1e-5)
    assert np.array_equal(grads[0][0], grads[1][0]) and np.array_equal(grads[0][1], grads[1][1])


def test_dropout_forward_and_backward():
    rng = np.random.default_rng(4)
    x = rng.standard_normal((6, 41)).astype(np.float32)
    keeps = []
    scale = np.float32(1 / (1 - 0.3))

    def fwd(src, dst):
        keeps.append(np.zeros(x.shape, np.bool_))
        dropout_forward(src, dst, keeps[-1], 77, 2, 5, 0.3, scale)
    apart, inplace = _both(fwd, x)
    assert np.array_equal(keeps[0], keeps[1]) and 0 < keeps[0].mean() < 1
    np.testing.assert_array_equal(apart, np.where(keeps[0], x * scale, 0))
    np.testing.assert_array_equal(inplace, apart)
    dy = rng.standard_normal(x.shape).astype(np.float32)
    dx, dx_inplace = _both(lambda src, dst: dropout_backward(src, keeps[0], dst, scale), dy)
    np.testing.assert_array_equal(dx, np.where(keeps[0], dy * scale, 0))
    np.testing.assert_array_equal(dx_inplace, dx)


@pytest.mark.parametrize("shape", [SHAPE, LARGE, (2, 300, 4)])
@pytest.mark.parametrize("keep", [False, True])
@pytest.mark.parametrize("mask", [False, True])
@pytest.mark.parametrize("relu,slope", [(True, 0.0), (True, 0.2), (False, 0.0)])
def test_norm_scale_relu_every_path(keep, mask, relu, slope, shape):
    """Small planes go in blocks of channels (300 channels of 4: blocks of 256 and 44), larger ones
    channel by channel (37 positions: the forward keeping xhat and the backward channel by channel,
    the forward keeping nothing in blocks; 131: all of them): NumPy's bits either way, and the gradient sums in their fixed order
    (lanes per position over the images, then the lanes in order)."""
    rng, x, (a, b, g, beta) = _arrays(10 + 4 * keep + 2 * mask + int(relu) + int(slope * 10), shape=shape)
    k = np.array([slope, 0, 1], np.float32)
    outs = []

    def fwd(src, dst):
        xhat = np.full_like(x, np.nan) if keep else np.zeros((0, 1, 1), np.float32)
        pos = np.zeros(x.shape, np.bool_) if mask else np.zeros((0, 1, 1), np.bool_)
        outs.append((xhat, pos))
        norm_scale_relu_forward(src, a, b, g, beta, k, relu, dst, xhat, pos)
    apart, inplace = _both(fwd, x)
    xhat = x * a[:, None] + b[:, None]
    w = xhat * g[:, None] + beta[:, None]
    want = np.where(w > 0, w, w * np.float32(slope)) if relu else w
    np.testing.assert_array_equal(apart, want)
    np.testing.assert_array_equal(inplace, apart)
    for xh, pos in outs:
        if keep:
            np.testing.assert_array_equal(xh, xhat)
        if mask:
            np.testing.assert_array_equal(pos, w > 0)

    dy = rng.standard_normal(shape).astype(np.float32)
    m1, m2 = rng.standard_normal((2, shape[1])).astype(np.float32)
    inv = np.abs(a)
    dx, dx_inplace = _both(lambda src, dst: norm_scale_relu_backward(src, xhat, g, beta, m1, m2, inv, k, relu, dst), dy)
    dz = dy * np.where(apart > 0, np.float32(1), np.float32(slope)) if relu else dy     # the mask y > 0 gave
    np.testing.assert_array_equal(dx, (dz * g[:, None] - m1[:, None] - xhat * m2[:, None]) * inv[:, None])
    np.testing.assert_array_equal(dx_inplace, dx)

    sums = [np.zeros(shape[1]) for _ in range(4)]
    norm_scale_relu_grad_sums(dy, xhat, g, beta, k, relu, *sums)
    dxhat = dz * g[:, None]
    for got, terms in zip(sums, (dz * xhat, dz, dxhat, dxhat * xhat)):
        lanes = np.zeros(shape[1:])
        for n in range(shape[0]):                 # in order over the images, in float64
            lanes += terms[n].astype(np.float64)
        np.testing.assert_array_equal(got, np.cumsum(lanes, axis=1)[:, -1])     # then the positions in order
