"""The machine-readable record of a training run: one JSON object per line (JSONL), appended to
`<snapshot_prefix>.log.jsonl` (or the path given), flushed per line so a crashed run keeps
everything up to its last event.

    {"event": "start", "time": "...", "seconds": 0.0, "run_id": "3f9c2a7b1e04", "net": "LeNet",
     "solver": "/abs/lenet_solver.yaml", "resumed_from": null, "iter": 0, "max_iter": 10000}
    {"event": "train", "time": "...", "seconds": 1.9, "run_id": "3f9c2a7b1e04", "iter": 100, "epoch": 1.6,
     "lr": 0.0093, "loss": 0.25, "outputs": {"loss": 0.21}}
    {"event": "test", "time": "...", "seconds": 2.4, "run_id": "3f9c2a7b1e04", "iter": 500, "epoch": 8.0,
     "lr": 0.0073, "net": 0, "outputs": {"accuracy": 0.98, "loss": 0.06}}
    {"event": "end", "time": "...", "seconds": 95.1, "run_id": "3f9c2a7b1e04", "iter": 10000, "finished": true}

Every record carries the `run_id` of the process that wrote it (one per `netcli train`), so the
runs appended to one log stay apart; `start` says which solver file, and `resumed_from` which
snapshot the run resumed from (null for a fresh run) at iteration `iter`. `time` is the wall clock
(ISO 8601, local time with offset); `seconds` counts from this process's start (a resumed run
starts its own count; `iter` goes on). netcli/solver/runs.py reads logs and splits them into runs
(`netcli log`, `netcli plot`).
"""
from __future__ import annotations

import datetime
import json
import math
import os
import secrets
import time

from ..errors import NetcliError
from ..io.files import open_append
from .callbacks import Callback


def _clean(v):
    """JSON-safe numbers: rounded to 7 significant digits, non-finite ones as strings."""
    if isinstance(v, dict):
        return {k: _clean(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_clean(x) for x in v]
    if hasattr(v, "tolist"):
        return _clean(v.tolist())
    if isinstance(v, float):
        return float(f"{v:.7g}") if math.isfinite(v) else str(v)
    return v


class RunLog:
    def __init__(self, path):
        self.path = os.fspath(path)
        self.t0 = time.perf_counter()
        self.run_id = secrets.token_hex(6)
        try:
            os.makedirs(os.path.dirname(os.path.abspath(self.path)), exist_ok=True)
            self.f = open_append(self.path, "run log")
        except OSError as e:
            raise NetcliError(f"{self.path}: cannot write the run log: {e.strerror or e}") from None

    def record(self, event, **fields):
        now = datetime.datetime.now().astimezone()
        rec = {"event": event, "time": now.isoformat(timespec="milliseconds"),
               "seconds": round(time.perf_counter() - self.t0, 3),
               "run_id": self.run_id, **_clean(fields)}
        self.f.write(json.dumps(rec) + "\n")
        self.f.flush()

    def close(self):
        self.f.close()


class RunRecord(Callback):
    """The Solver's run log: opened by the root process when solve() starts (solver.log_path;
    False: none), a start and an end record; the loop's own records go through solver.record()."""

    def on_start(self, s):
        if s.log_path is not False:
            s.processes.on_root(lambda: self._open(s))

    def _open(self, s):
        s.runlog = RunLog(s.log_path)
        s.runlog.record("start", net=s.net.name, solver=os.path.abspath(s.path), resumed_from=s.resumed_from,
                        iter=s.iter, max_iter=s.max_iter)

    def on_end(self, s, finished, error):
        if s.runlog is not None:
            extra = {"error": error} if error else {}
            s.runlog.record("end", iter=s.iter, finished=finished, **extra)
            s.runlog.close()
            s.runlog = None
