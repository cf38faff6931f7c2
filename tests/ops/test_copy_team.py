"""Copies of rows (Concat's and Slice's: netcli/ops/cpu/copy_team.py, through team_call.copy_rows
and layers/utility.py's _copy_part) as team jobs: with a helper thread taking tiles of rows,
every number lands where NumPy's slice assignment puts it, into a part of a larger array
(Concat) and out of one (Slice), along every axis, rows that do and do not divide among the
tiles, in both dtypes; and the calls that stay with the caller."""
import numpy as np
import pytest

from helpers import assert_a_helper_keeps_every_bit, with_a_helper
from netcli.exec import threads
from netcli.layers.utility import _copy_part
from netcli.ops.cpu import team_call
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
def test_small_copies_one_row_other_dtypes_and_threads_without_helpers_stay_with_the_caller():
    big, small = np.ones(PASS_NUMBERS, np.float32), np.ones(PASS_NUMBERS - 2, np.float32)
    half, little = big.size // 2, small.size // 2
    assert not copy_rows(big, big.copy(), 2, half, half, half)                          # no team
    (ran, ints, tiny, mixed, one_row), _ = with_a_helper(np.float32, lambda: (
        copy_rows(big, big.copy(), 2, half, half, half),
        copy_rows(big.astype(np.int32), big.astype(np.int32), 2, half, half, half),
        copy_rows(small, small.copy(), 2, little, little, little),
        copy_rows(big, big.astype(np.float64), 2, half, half, half),
        copy_rows(big, big.copy(), 1, big.size, big.size, big.size)))
    assert ran and not (ints or tiny or mixed or one_row)


@pytest.mark.skipif(threads.usable_cores() < 2, reason="a helper needs a core of its own")
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_concat_and_slice_parts_along_every_axis(monkeypatch, dtype):
    """_copy_part's rows, steps and offsets: a part of (4, 6, 40, 50) along each axis, into the
    whole and out of it, against NumPy's slices; each a team job but for one row (axis 0: the
    caller copies)."""
    monkeypatch.setattr(team_call, "PASS_NUMBERS", 16)
    rng = np.random.default_rng(3)
    shape, cases = (4, 6, 40, 50), []
    for axis in range(4):
        for start, size in ((0, 1), (1, 2), (shape[axis] - 2, 2)):
            for into_whole in (True, False):
                cases.append((axis, start, size, into_whole))

    def run():
        out = []
        for axis, start, size, into_whole in cases:
            whole = rng.standard_normal(shape).astype(dtype)
            part = rng.standard_normal(shape[:axis] + (size,) + shape[axis + 1:]).astype(dtype)
            cut = (slice(None),) * axis + (slice(start, start + size),)
            want_whole, want_part = whole.copy(), part.copy()
            if into_whole:
                want_whole[cut] = part
            else:
                want_part[...] = whole[cut]
            ran = _copy_part(whole, part, axis, start, into_whole)
            if not ran and into_whole:       # (as Concat and Slice do then)
                whole[cut] = part
            elif not ran:
                part[...] = whole[cut]
            out.append((ran, np.array_equal(whole, want_whole) and np.array_equal(part, want_part)))
        return out
    got, helped = with_a_helper(dtype, run)
    assert helped > 0 and all(same for _, same in got)
    assert [ran for ran, _ in got] == [axis > 0 for axis, _, _, _ in cases]       # axis 0: one row
    assert all(same and not ran for ran, same in run())                          # no team: NumPy's copy
