"""LRN across channels as team jobs (netcli/ops/cpu/lrn_team.py): with a helper thread taking
tiles of images, the forward and the backward write the kernels' own bits, on random shapes
(odd counts, windows of 1, 3 and 5 channels, Caffe's beta 0.75 and another), in both dtypes."""
import numpy as np
import pytest

from helpers import assert_a_helper_keeps_every_bit
from netcli.exec import threads
from netcli.ops.cpu import lrn_team
from netcli.ops.cpu.lrn import lrn_backward, lrn_forward
from netcli.ops.cpu.team_jobs import run_job

CASES = [(9, 7, 13, 5, 1e-4, 0.75, 1.0), (4, 16, 36, 3, 2e-3, 0.6, 2.0), (11, 3, 5, 1, 1e-3, 0.75, 1.0)]


def _passes(case, dtype, seed, crew):
    R, C, P, n, alpha, beta, k = case
    rng = np.random.default_rng(seed)
    x, dy = (rng.standard_normal((R, C, P)).astype(dtype) for _ in range(2))
    scale, y, dx = (np.full((R, C, P), np.nan, dtype) for _ in range(3))
    constants = np.array([alpha, beta, k])
    if crew is None:
        lrn_forward(x, scale, y, n, alpha, beta, k)
        lrn_backward(x, y, dy, scale, dx, np.empty((C, P), dtype), n, alpha, beta)
    else:
        lrn_team.forward_job(crew.record, x, scale, y, n, constants)
        run_job(crew, y.reshape(-1)[:0])
        lrn_team.backward_job(crew.record, x, y, dy, scale, dx, n, constants)
        run_job(crew, y.reshape(-1)[:0])
    return scale, y, dx


@pytest.mark.skipif(threads.usable_cores() < 2, reason="a helper needs a core of its own")
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_a_helper_takes_tiles_and_every_bit_stays(dtype):
    assert_a_helper_keeps_every_bit(dtype, CASES, _passes)
