"""Pooling as team jobs (netcli/ops/cpu/pool_team.py): with a helper thread taking tiles of
images, every kernel variant's forward and backward write the kernel's own bits, on random
shapes (odd sizes, padding, stride, windows that clip), in both dtypes."""
import numpy as np
import pytest

from helpers import assert_a_helper_keeps_every_bit
from netcli.exec import threads
from netcli.ops.cpu import pool, pool_team
from netcli.ops.cpu.team_jobs import run_job

CASES = [  # N, C, H, W, K, S, P: every variant runs where its shape allows
    (9, 3, 12, 10, 2, 2, 0),
    (5, 4, 11, 9, 3, 2, 1),
    (12, 2, 7, 7, 3, 1, 1),
    (3, 5, 9, 8, 4, 3, 2),
]


def _variants(K, S, P, H, W):
    forwards = ["ave", "max"] + (["ave3x3", "max3x3"] if K == 3 else [])
    if (K, S, P) == (2, 2, 0) and H % 2 == 0 and W % 2 == 0:
        forwards.append("max2x2")
    return forwards


def _alone(name, x, y, m, K, S, P):
    g = (K, K, S, S, P, P)
    {"ave3x3": lambda: pool.avepool3x3_forward(x, y, S, S, P, P), "ave": lambda: pool.avepool_forward(x, y, *g),
     "max2x2": lambda: pool.maxpool2x2_forward(x, y, m), "max3x3": lambda: pool.maxpool3x3_forward(x, y, m, S, S, P, P),
     "max": lambda: pool.maxpool_forward(x, y, m, *g)}[name]()


def _back_alone(name, dy, m, dx, K, S, P):
    {"max": lambda: pool.maxpool_backward(dy, m, dx), "ave3x3": lambda: pool.avepool3x3_backward(dy, dx, S, S, P, P),
     "ave": lambda: pool.avepool_backward(dy, dx, K, K, S, S, P, P)}[name]()


def _passes(case, dtype, seed, crew):
    """Every variant's forward and backward on one case, alone (crew None) or as the team's jobs."""
    N, C, H, W, K, S, P = case
    rng = np.random.default_rng(seed)
    OH, OW = (H + 2 * P - K) // S + 1, (W + 2 * P - K) // S + 1
    x, dy = rng.standard_normal((N, C, H, W)).astype(dtype), rng.standard_normal((N, C, OH, OW)).astype(dtype)
    out = []
    for name in _variants(K, S, P, H, W):
        y = np.full((N, C, OH, OW), np.nan, dtype)
        m = np.full(y.shape, -7, np.int32) if name.startswith("max") else np.zeros((0, 1, 1, 1), np.int32)
        if crew is None:
            _alone(name, x, y, m, K, S, P)
        else:
            pool_team.forward_job(crew.record, pool_team.FORWARDS.index(name), x, y, m, K, K, S, S, P, P)
            run_job(crew, y.reshape(-1)[:0])
        back = "max" if name.startswith("max") else name
        dx = np.full(x.shape, np.nan, dtype)
        if crew is None:
            _back_alone(back, dy, m, dx, K, S, P)
        else:
            pool_team.backward_job(crew.record, pool_team.BACKWARDS.index(back), dy, m, dx, K, K, S, S, P, P)
            run_job(crew, dy.reshape(-1)[:0])
        out += [y, m, dx]
    return out


@pytest.mark.skipif(threads.usable_cores() < 2, reason="a helper needs a core of its own")
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_a_helper_takes_tiles_and_every_bit_stays(dtype):
    assert_a_helper_keeps_every_bit(dtype, CASES, _passes)
