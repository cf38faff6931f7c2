"""A kernel as a share's thread calls it: on that thread, or as a team job where the thread leads
a team with helpers (exec/team.py; ops/cpu/team_jobs.py runs the job)."""
import numpy as np

from ...exec.team import current, with_helpers
from .copy_team import copy_job
from .team_jobs import run_job

# A pass over memory (a ReLU, a copy: relu_passes.py, copy_rows) goes to the team from PASS_NUMBERS
# numbers on; a smaller one stays on the calling thread, where a helper costs more than it takes.
# Its input hot in the lead's cache, one helper, vCPUs ~110 ns apart (AMD EPYC Zen 5), ReLU / copy
# alone -> with the helper, us: 32K numbers 2.1 -> 4.8 / 2.3 -> 3.6, 64K 3.1 -> 5.8 / 3.4 -> 4.5,
# 96K 6.8 -> 7.8 / 6.9 -> 6.0, 128K 9.5 -> 9.2 / 7.1 -> 7.4, 192K 14.6 -> 11.6 / 12.2 -> 10.3,
# 256K 19.5 -> 14.8 / 16.9 -> 13.0, 1M 68 -> 47 / 65 -> 45.
PASS_NUMBERS = 3 << 16


def team_call(job, kernel, *args):
    """kernel(*args) on the calling thread; or, where it leads a team with helpers and every array
    of args is one block of memory (exec/team.with_helpers), job(record, *args) run as a team job
    (the same kernel in tiles: the same bits)."""
    if current().size == 1:          # (no helpers: no Python on the way)
        kernel(*args)
        return
    arrays = [a for a in args if isinstance(a, np.ndarray)]
    team = with_helpers(*arrays)
    if team is None:
        kernel(*args)
        return
    job(team.record, *args)
    run_job(team, next(a for a in arrays if a.dtype.kind == "f").reshape(-1)[:0])


def has_helpers():
    """Whether the calling thread leads a team with helpers (a share's thread in a team run)."""
    return current().size > 1


def copy_rows(src, dst, rows, length, src_step, dst_step):
    """dst[r * dst_step + j] = src[r * src_step + j] for r < rows, j < length (flat arrays, steps
    in numbers) as a team job (copy_team.py), where the calling thread leads a team with helpers,
    both are one block of memory in one floating dtype and there are two rows or more (its tiles
    are rows) and PASS_NUMBERS numbers or more; whether it ran so (else the caller copies, as it
    always did)."""
    if rows < 2 or rows * length < PASS_NUMBERS or src.dtype != dst.dtype or src.dtype.kind != "f":
        return False
    team = with_helpers(src, dst)
    if team is None:
        return False
    copy_job(team.record, src, dst, rows, length, src_step, dst_step)
    run_job(team, src[:0])
    return True
