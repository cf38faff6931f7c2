"""The machine-readable record of a training run: one JSON object per line (JSONL), appended to
`<snapshot_prefix>.log.jsonl` (or the path given), flushed per line so a crashed run keeps
everything up to its last event.

    {"event": "start", "time": "...", "net": "LeNet", "solver": "...", "iter": 0, "max_iter": 10000}
    {"event": "train", "time": "...", "seconds": 1.9, "iter": 100, "epoch": 1.6, "lr": 0.0093, "loss": 0.25,
     "outputs": {"loss": 0.21}}
    {"event": "test", "time": "...", "seconds": 2.4, "iter": 500, "epoch": 8.0, "lr": 0.0073, "net": 0,
     "outputs": {"accuracy": 0.98, "loss": 0.06}}
    {"event": "end", "time": "...", "seconds": 95.1, "iter": 10000, "finished": true}

`time` is the wall clock (ISO 8601, local time with offset); `seconds` counts from this run's
start (a resumed run starts its own count; `iter` goes on). `netcli log LOG --csv` flattens it.
"""
from __future__ import annotations

import csv
import datetime
import io
import json
import math
import os
import time

from ..errors import NetcliError
from ..files import open_append


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
        try:
            os.makedirs(os.path.dirname(os.path.abspath(self.path)), exist_ok=True)
            self.f = open_append(self.path, "run log")
        except OSError as e:
            raise NetcliError(f"{self.path}: cannot write the run log: {e.strerror or e}") from None

    def record(self, event, **fields):
        now = datetime.datetime.now().astimezone()
        rec = {"event": event, "time": now.isoformat(timespec="milliseconds"),
               "seconds": round(time.perf_counter() - self.t0, 3), **_clean(fields)}
        self.f.write(json.dumps(rec) + "\n")
        self.f.flush()

    def close(self):
        self.f.close()


def read_run_log(path):
    """The records of a JSONL run log; a broken line is one error naming file and line."""
    try:
        with open(path, encoding="utf-8") as f:
            lines = f.readlines()
    except (OSError, UnicodeDecodeError) as e:
        raise NetcliError(f"{path}: cannot read the run log: {getattr(e, 'strerror', None) or e}") from None
    records = []
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
        except json.JSONDecodeError as e:
            if n == len(lines):           # the last line of a run killed while writing it
                break
            raise NetcliError(f"{path}:{n}: not a JSON object ({e.msg}); is this a netcli run log (.log.jsonl)?") from None
        if not isinstance(rec, dict) or "event" not in rec:
            raise NetcliError(f"{path}:{n}: not a run-log record (no 'event'); is this a netcli run log?")
        records.append(rec)
    return records


def to_csv(records, events=("train", "test")):
    """One CSV table: event, iter, epoch, seconds, lr, loss, net, then every output (vector
    outputs as name[i]) in order of first appearance."""
    base = ["event", "iter", "epoch", "seconds", "lr", "loss", "net"]
    rows, outputs = [], []
    for rec in records:
        if rec.get("event") not in events:
            continue
        row = {k: rec.get(k, "") for k in base}
        for name, v in (rec.get("outputs") or {}).items():
            items = [(name, v)] if not isinstance(v, list) else [(f"{name}[{i}]", x) for i, x in enumerate(v)]
            for k, x in items:
                col = f"{rec['event']}/{k}"
                if col not in outputs:
                    outputs.append(col)
                row[col] = x
        rows.append(row)
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=base + outputs, restval="", lineterminator="\n")
    w.writeheader()
    w.writerows(rows)
    return buf.getvalue()
