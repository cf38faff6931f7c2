"""BatchNorm's passes as team jobs (netcli/ops/cpu/channel_passes.py, channels_team.py): with a
helper thread taking tiles (the sums' channels, the element-wise passes' images), every output
is the kernel's own, bit for bit, on random shapes (odd counts, planes below and above
norm_scale_relu.SMALL_PLANE and TRAINING_SMALL_PLANE, in place and apart, with and without the ReLU, what the forward keeps);
and without helpers, the kernels themselves run."""
import numpy as np
import pytest

from helpers import with_a_helper
from netcli.exec import team, threads
from netcli.ops.cpu import channel_passes, channels, norm_scale_relu as nsr

SHAPES = [(7, 5, 33), (16, 24, 4), (3, 13, 200), (9, 1, 130), (2, 11, 1)]      # N, C, S


def _inputs(shape, dtype, seed):
    rng = np.random.default_rng(seed)
    N, C, S = shape
    arr = lambda *s: rng.standard_normal(s).astype(dtype)                 # noqa: E731
    return {"x": arr(N, C, S), "dy": arr(N, C, S), "xhat": arr(N, C, S),
            "v": [arr(C) for _ in range(7)], "k": np.array([0.1, 0, 1], dtype)}


def _passes(mod, shape, dtype, relu, keep, inplace, seed):
    """Every pass of `mod` (channel_passes or the kernels) on fresh copies of one seed's inputs;
    all that they wrote."""
    d = _inputs(shape, dtype, seed)
    N, C, S = shape
    a, b, gamma, beta, m1, m2, inv_std = d["v"]
    out = []
    count, mean, var = np.zeros(1), np.zeros(C), np.zeros(C)
    (mod if mod is channel_passes else channels).channel_moments(d["x"], count, mean, var)
    out += [count, mean, var]
    x = d["x"].copy()
    y = x if inplace else np.full_like(x, np.nan)
    xhat = np.full_like(x, np.nan) if keep else x[:0]
    pos = np.zeros(x.shape, np.bool_) if keep else np.zeros((0, 1, 1), np.bool_)
    mod.norm_scale_relu_forward(x, a, b, gamma, beta, d["k"], relu, y, xhat, pos)
    out += [y, xhat, pos]
    sums = [np.full(C, np.nan) for _ in range(4)]
    mod.norm_scale_relu_grad_sums(d["dy"], d["xhat"], gamma, beta, d["k"], relu, *sums)
    out += sums
    dy = d["dy"].copy()
    dx = dy if inplace else np.full_like(dy, np.nan)
    mod.norm_scale_relu_backward(dy, d["xhat"], gamma, beta, m1, m2, inv_std, d["k"], relu, dx)
    out.append(dx)
    return out


CASES = [(shape, dtype, relu, keep, inplace)
         for i, shape in enumerate(SHAPES) for dtype in (np.float32, np.float64)
         for relu, keep, inplace in [(True, True, False), (False, False, True), (True, False, i % 2 == 0)]]


@pytest.mark.skipif(threads.usable_cores() < 2, reason="a helper needs a core of its own")
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_a_helper_takes_tiles_and_every_bit_stays(dtype):
    cases = [c for c in CASES if c[1] is dtype]
    alone = [_passes(nsr, *case, seed=i) for i, case in enumerate(cases)]
    together, helped = with_a_helper(dtype, lambda: [_passes(channel_passes, *case, seed=i % len(cases))
                                                     for i, case in enumerate(cases * 3)])
    assert helped > 0
    for i, got in enumerate(together):
        for j, (g, w) in enumerate(zip(got, alone[i % len(cases)])):
            assert np.array_equal(g, w, equal_nan=True), (cases[i % len(cases)], j)
            assert g.dtype == np.bool_ or g.size == 0 or np.isfinite(g).all()


def test_alone_the_kernels_run(monkeypatch):
    """A thread without helpers posts no job: the kernels themselves run (the tiles' `_part`
    loops, over every channel, give their bits too: tests/ops/test_norm_scale_relu.py)."""
    monkeypatch.setattr(channel_passes.channels_team, "moments_job", None)
    monkeypatch.setattr(channel_passes.channels_team, "forward_job", None)
    assert team.current().size == 1
    for i, case in enumerate(CASES[:6]):
        got, want = _passes(channel_passes, *case, seed=i), _passes(nsr, *case, seed=i)
        assert all(np.array_equal(g, w, equal_nan=True) for g, w in zip(got, want))
