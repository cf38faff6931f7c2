"""An Eltwise SUM with its ReLU, and a ReLU alone, as team jobs (netcli/ops/cpu/eltwise_team.py):
with a helper thread taking blocks of numbers, the forward and the backward (both bottoms'
gradients, either, neither; the ReLU's in place and not) write the kernels' own bits, on sizes
that do and do not divide, in both dtypes."""
import numpy as np
import pytest

from helpers import assert_a_helper_keeps_every_bit
from netcli.exec import threads
from netcli.ops.cpu import eltwise_team
from netcli.ops.cpu.eltwise import weighted_sum_relu, weighted_sum_relu_backward
from netcli.ops.cpu.relu import relu_backward, relu_forward
from netcli.ops.cpu.team_jobs import run_job

CASES = [(40_001, 1.0, 1.0, 0.0, "ab"), (9_999, 0.5, -2.0, 0.1, "a"), (65_536, 1.0, 1.0, 0.0, "b"),
         (3, 1.0, 1.0, 0.2, "")]


def _passes(case, dtype, seed, crew):
    size, ca, cb, slope, grads = case
    rng = np.random.default_rng(seed)
    a, b, dy0 = (rng.standard_normal(size).astype(dtype) for _ in range(3))
    k = np.array([ca, cb, slope], dtype)
    y, dy = np.full(size, np.nan, dtype), dy0.copy()
    da, db = (np.full(size, np.nan, dtype) if g in grads else dy[:0] for g in "ab")
    if crew is None:
        weighted_sum_relu(a, k[0], b, k[1], k[2], y)
        weighted_sum_relu_backward(y, dy, k[2], k[0], da, k[1], db)
    else:
        eltwise_team.forward_job(crew.record, a, b, y, k)
        run_job(crew, y[:0])
        eltwise_team.backward_job(crew.record, y, dy, da, db, k)
        run_job(crew, y[:0])
    return y, dy, da, db


@pytest.mark.skipif(threads.usable_cores() < 2, reason="a helper needs a core of its own")
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_a_helper_takes_tiles_and_every_bit_stays(dtype):
    assert_a_helper_keeps_every_bit(dtype, CASES, _passes)


RELU_CASES = [(40_001, 0.0, False), (9_999, 0.1, True), (65_536, 0.25, False), (3, 0.0, True)]


def _relu_passes(case, dtype, seed, crew):
    size, slope, in_place = case
    rng = np.random.default_rng(seed)
    x, dy0, y0 = (rng.standard_normal(size).astype(dtype) for _ in range(3))
    k = np.array([slope], dtype)
    y = x.copy() if in_place else np.full(size, np.nan, dtype)
    dy = dy0.copy()
    dx = dy if in_place else np.full(size, np.nan, dtype)
    if crew is None:
        relu_forward(y if in_place else x, y, k[0])
        relu_backward(y0, dy, dx, k[0])
    else:
        eltwise_team.relu_forward_job(crew.record, y if in_place else x, y, k)
        run_job(crew, y[:0])
        eltwise_team.relu_backward_job(crew.record, y0, dy, dx, k)
        run_job(crew, y[:0])
    return y, dx


@pytest.mark.skipif(threads.usable_cores() < 2, reason="a helper needs a core of its own")
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_a_relus_tiles_keep_every_bit(dtype):
    assert_a_helper_keeps_every_bit(dtype, RELU_CASES, _relu_passes)
