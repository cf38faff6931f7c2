"""A kernel as a share's thread calls it: on that thread, or as a team job where the thread leads
a team with helpers (exec/team.py; ops/cpu/team_jobs.py runs the job)."""
import numpy as np

from ...exec.team import current, with_helpers
from .team_jobs import run_job


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
