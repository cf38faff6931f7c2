"""Copies of rows (Concat's and Slice's: netcli/ops/cpu/copy_team.py, through team_call.copy_rows)
as team jobs: with a helper thread taking tiles of rows, every number lands where NumPy's slice
assignment puts it, into a part of a larger array (Concat) and out of one (Slice), rows that do
and do not divide among the tiles, in both dtypes; and the calls that stay with the caller."""
import numpy as np
import pytest

from helpers import assert_a_helper_keeps_every_bit, with_a_helper
from netcli.exec import threads
from netcli.ops.cpu.team_call import PASS_NUMBERS, copy_rows

# (rows, channels of the part, channels of the whole, where the part starts, numbers a channel,
# into the whole)
CASES = [(16, 24, 64, 8, 520, True), (9, 16, 40, 24, 1400, False), (2, 32, 32, 0, 3100, True),
         (5, 10, 11, 1, 4000, False)]


def _passes(case, dtype, seed, crew):
    rows, part_c, whole_c, start, inner, into_whole = case
    rng = np.random.default_rng(seed)
    whole = rng.standard_normal((rows, whole_c, inner)).astype(dtype)
    part = rng.standard_normal((rows, part_c, inner)).astype(dtype)
    if crew is None:
        if into_whole:
            whole[:, start:start + part_c] = part
        else:
            part[...] = whole[:, start:start + part_c]
        return whole, part
    length, step = part_c * inner, whole_c * inner
    w, p = whole.reshape(-1)[start * inner:], part.reshape(-1)
    ran = copy_rows(p, w, rows, length, length, step) if into_whole else copy_rows(w, p, rows, length, step, length)
    assert ran
    return whole, part


@pytest.mark.skipif(threads.usable_cores() < 2, reason="a helper needs a core of its own")
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_a_helper_takes_rows_and_every_number_lands(dtype):
    assert all(r * p * n >= PASS_NUMBERS for r, p, _, _, n, _ in CASES)
    assert_a_helper_keeps_every_bit(dtype, CASES, _passes)


@pytest.mark.skipif(threads.usable_cores() < 2, reason="a helper needs a core of its own")
def test_small_copies_other_dtypes_and_threads_without_helpers_stay_with_the_caller():
    big, small = np.ones(PASS_NUMBERS, np.float32), np.ones(PASS_NUMBERS - 1, np.float32)
    assert not copy_rows(big, big.copy(), 1, big.size, big.size, big.size)            # no team
    (ran, ints, tiny, mixed), _ = with_a_helper(np.float32, lambda: (
        copy_rows(big, big.copy(), 1, big.size, big.size, big.size),
        copy_rows(big.astype(np.int32), big.astype(np.int32), 1, big.size, big.size, big.size),
        copy_rows(small, small.copy(), 1, small.size, small.size, small.size),
        copy_rows(big, big.astype(np.float64), 1, big.size, big.size, big.size)))
    assert ran and not (ints or tiny or mixed)
