"""Reading run logs (netcli/solver/runlog.py writes them) and splitting them into runs.

The file is untrusted: each line is read with bounded length, nesting and integer size (linear in
the file), and each record's fields are checked before use. A line that is not JSON is an error
naming file and line (is this a run log at all?), but for the last line, which a run killed while
writing leaves cut; a record over the limits or with fields of the wrong type is skipped, with one
warning line per file naming the first one.

A run is what `netcli train` started: the records of one process (one `start`), followed by those
of every `--resume` of it. A resumed run continues its parent's curve from the iteration it
resumed at (the parent's records after it are replaced), and its seconds go on from there.
Logs written before records carried a `run_id` are split at each `start` and wherever the
iteration goes backwards.
"""
from __future__ import annotations

import json
import math
import re

from .. import log
from ..errors import NetcliError
from ..text import printable

MAX_LINE = 1 << 20          # bytes in one record
MAX_DEPTH = 8               # of [ and { in one record
MAX_DIGITS = 40             # in one integer
MAX_ITER = 1 << 53
_ESCAPE = re.compile(r"\\.", re.S)
_STRING = re.compile(r'"[^"]*"')          # once escapes are gone: linear (it can fail only at the last quote)
_NUMBER_FIELDS = ("epoch", "seconds", "lr", "loss")
_NON_FINITE = {"nan": math.nan, "inf": math.inf, "-inf": -math.inf}   # how the writer spells them


class _Unreadable(Exception):
    """A line that is not JSON (fatal unless it is the last one)."""


class _BadRecord(Exception):
    """A record to skip (over the limits, or fields of the wrong type)."""


def _int(text):
    if len(text.lstrip("-")) > MAX_DIGITS:
        raise _BadRecord(f"an integer of more than {MAX_DIGITS} digits")
    return int(text)


def _check_depth(data):
    """_BadRecord if [ and { nest deeper than MAX_DEPTH (strings taken out); in blocks that stay in
    the cache, so the time is linear in the line's length."""
    import numpy as np
    step = np.zeros(256, np.int8)
    step[[ord("["), ord("{")]], step[[ord("]"), ord("}")]] = 1, -1
    depth, block = 0, 1 << 15
    for i in range(0, len(data), block):
        run = np.cumsum(step[np.frombuffer(data[i:i + block], np.uint8)], dtype=np.int32) + depth
        if run.max() > MAX_DEPTH:
            raise _BadRecord(f"nested deeper than {MAX_DEPTH}")
        depth = int(run[-1])


def _parse(raw):
    """One line (bytes, newline included) -> the JSON object, within the limits."""
    if len(raw) > MAX_LINE:
        raise _BadRecord(f"longer than {MAX_LINE} bytes")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise _Unreadable("not UTF-8") from None
    bare = _STRING.sub('""', _ESCAPE.sub("", text))
    if bare.count("[") + bare.count("{") > MAX_DEPTH:
        _check_depth(bare.encode("utf-8"))
    try:
        return json.loads(text, parse_int=_int)
    except json.JSONDecodeError as e:
        raise _Unreadable(e.msg) from None
    except (ValueError, RecursionError) as e:       # parse_int's limit is a _BadRecord, not these
        raise _Unreadable(type(e).__name__) from None


def _number(rec, key):
    v = rec.get(key)
    if v is None:
        return None
    if isinstance(v, str) and v in _NON_FINITE:
        return _NON_FINITE[v]
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise _BadRecord(f"'{key}' is not a number")
    return float(v)


def _output(name, v, inner=False):
    if isinstance(v, str) and v in _NON_FINITE:
        return _NON_FINITE[v]
    if isinstance(v, list) and not inner:
        return [_output(name, x, inner=True) for x in v]
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise _BadRecord(f"output '{printable(name, 40)}' is not a number or a list of numbers")
    return float(v)


def _check(rec):
    """The record with its fields checked and numbers as floats (a copy), or _BadRecord."""
    if not isinstance(rec, dict) or not isinstance(rec.get("event"), str):
        raise _Unreadable("no 'event'")
    out = dict(rec)
    it = rec.get("iter")
    if it is not None and (isinstance(it, bool) or not isinstance(it, int) or not 0 <= it <= MAX_ITER):
        raise _BadRecord("'iter' is not an iteration number")
    if it is None and rec["event"] in ("train", "test"):
        raise _BadRecord("no 'iter'")
    for key in _NUMBER_FIELDS:
        out[key] = _number(rec, key)
    outputs = rec.get("outputs", {})
    if not isinstance(outputs, dict):
        raise _BadRecord("'outputs' is not an object")
    out["outputs"] = {k: _output(k, v) for k, v in outputs.items()}
    if rec["event"] in ("train", "test"):              # (a start's net is the net's name)
        net = rec.get("net", 0 if rec["event"] == "test" else None)
        if net is not None and (isinstance(net, bool) or not isinstance(net, int) or not 0 <= net < 1000):
            raise _BadRecord("'net' is not a test net number")
        out["net"] = net
    for key in ("run_id", "time", "solver", "resumed_from", "error"):
        if rec.get(key) is not None and not isinstance(rec[key], str):
            raise _BadRecord(f"'{key}' is not a string")
    return out


def _lines(f):
    """(line number, bytes) of each line, a line over MAX_LINE cut to MAX_LINE + 1 bytes (the rest
    is read and dropped, so memory stays bounded)."""
    n = 0
    while True:
        raw = f.readline(MAX_LINE + 1)
        if not raw:
            return
        n += 1
        if len(raw) > MAX_LINE and not raw.endswith(b"\n"):
            while True:
                rest = f.readline(MAX_LINE)
                if not rest or rest.endswith(b"\n"):
                    break
        yield n, raw


def read_run_log(path, warned=None):
    """The checked records of a JSONL run log. Bad records are warned about once per read, or, with
    a set `warned` kept across reads (plot --watch), once per line."""
    records, skipped, pending = [], [], None
    try:
        with open(path, "rb") as f:
            for n, raw in _lines(f):
                if not raw.strip():
                    continue
                if pending is not None:
                    raise NetcliError(f"{path}:{pending[0]}: not a JSON object ({pending[1]}); is this a netcli "
                                      "run log (.log.jsonl)?")
                try:
                    rec = _check(_parse(raw))
                except _Unreadable as e:
                    pending = (n, str(e))      # an error unless it is the last line
                    continue
                except _BadRecord as e:
                    skipped.append((n, str(e)))
                    continue
                rec["line"] = n
                records.append(rec)
    except OSError as e:
        raise NetcliError(f"{path}: cannot read the run log: {e.strerror or e}") from None
    if skipped:
        n, why = skipped[0]
        more = f" (and {len(skipped) - 1} more bad records)" if len(skipped) > 1 else ""
        if warned is None or (str(path), n) not in warned:
            log.warn(f"{path}:{n}: skipped a bad run-log record: {why}{more}")
        if warned is not None:
            warned.add((str(path), n))
    return records


class Segment:
    """The records of one `netcli train` process."""

    def __init__(self):
        self.start = self.end = None
        self.records = []
        self.lo = self.hi = None

    def add(self, rec):
        if rec["event"] == "start":
            self.start = rec
        elif rec["event"] == "end":
            self.end = rec
        elif rec["event"] in ("train", "test"):
            self.records.append(rec)
        it = rec.get("iter")
        if it is not None:
            self.lo = it if self.lo is None else min(self.lo, it)
            self.hi = it if self.hi is None else max(self.hi, it)

    @property
    def resume_iter(self):
        """The iteration this process resumed at, or None for a run from its start."""
        if self.start is not None:
            it = self.start.get("iter") or 0
            if "resumed_from" in self.start:
                return it if self.start["resumed_from"] is not None else None
            return it or None                        # an older log: only a resume starts after 0
        return self.lo or None

    @property
    def seconds(self):
        ends = [r["seconds"] for r in self.records + [self.end] if r is not None and r.get("seconds") is not None]
        return max(ends, default=0.0)


def _segments(records):
    segments, by_id, legacy = [], {}, None
    for rec in records:
        rid = rec.get("run_id")
        if rid is not None:
            seg = by_id.get(rid)
            if seg is None:
                seg = by_id[rid] = Segment()
                segments.append(seg)
        else:
            it = rec.get("iter")
            if (legacy is None or rec["event"] == "start" or legacy.end is not None
                    or (it is not None and legacy.hi is not None and it < legacy.hi)):
                legacy = Segment()
                segments.append(legacy)
            seg = legacy
        seg.add(rec)
    return segments


class Run:
    """One training and its resumes; `records` are its train and test records as one curve."""

    def __init__(self, number, segment):
        self.number = number
        self.segments = [segment]
        self.records = list(segment.records)

    @property
    def lo(self):
        return self.segments[0].lo

    @property
    def hi(self):
        return max((s.hi for s in self.segments if s.hi is not None), default=None)

    def resume(self, seg, at):
        """Continue the curve with a process that resumed at iteration `at`: records after `at`
        are replaced, those at `at` when the resumed one records them again."""
        again = {(r["event"], r["net"]) for r in seg.records if r["iter"] == at}
        kept = [r for r in self.records if r["iter"] < at or (r["iter"] == at and (r["event"], r["net"]) not in again)]
        offset = max((r["seconds"] for r in self.records if r["iter"] <= at and r.get("seconds") is not None),
                     default=0.0)
        moved = [dict(r, seconds=r["seconds"] + offset) if r.get("seconds") is not None else r for r in seg.records]
        self.records = kept + moved
        self.segments.append(seg)


def split_runs(records):
    """The runs of a log's records, in the order they started (numbered from 1)."""
    runs = []
    for seg in _segments(records):
        at = seg.resume_iter
        parent = None
        if at is not None:
            parent = next((r for r in reversed(runs) if r.lo is not None and r.lo <= at <= r.hi), None)
        if parent is not None:
            parent.resume(seg, at)
        elif seg.start is not None or seg.records:
            runs.append(Run(len(runs) + 1, seg))
    return runs


def select(runs, which, path):
    """`--run`: "all", "last" or a run's number."""
    if which == "all":
        return runs
    if not runs:
        raise NetcliError(f"{path}: no runs in this run log")
    if which == "last":
        return runs[-1:]
    n = int(which)
    if not 1 <= n <= len(runs):
        raise NetcliError(f"{path}: no run {n}; this log holds {len(runs)} run(s)")
    return [runs[n - 1]]


def _cell(v):
    if v is None:
        return ""
    if isinstance(v, float):
        return f"{v:.7g}"
    return v


def to_csv(runs, events=("train", "test")):
    """One CSV table: run, event, iter, epoch, seconds, lr, loss, net, then every output (vector
    outputs as name[i]) in order of first appearance."""
    import csv
    import io
    base = ["run", "event", "iter", "epoch", "seconds", "lr", "loss", "net"]
    rows, outputs = [], []
    for run in runs:
        for rec in run.records:
            if rec["event"] not in events:
                continue
            row = {k: _cell(rec.get(k)) for k in base[1:]}
            row["run"] = run.number
            for name, v in rec["outputs"].items():
                items = [(name, v)] if not isinstance(v, list) else [(f"{name}[{i}]", x) for i, x in enumerate(v)]
                for k, x in items:
                    col = f"{rec['event']}/{k}"
                    if col not in row:
                        if col not in outputs:
                            outputs.append(col)
                        row[col] = _cell(x)
            rows.append(row)
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=base + outputs, restval="", lineterminator="\n")
    w.writeheader()
    w.writerows(rows)
    return buf.getvalue()


def _status(run):
    end = run.segments[-1].end
    if end is None:
        return "no end record (running, or killed)"
    if end.get("error"):
        return f"failed: {printable(end['error'], 80)}"
    return "finished" if end.get("finished") is True else "stopped"


def summary(runs, path):
    """`netcli log PATH`: one line per run (when it started, its iterations, resumes, seconds, the
    last train loss and the last scores of test net 0), then how each ended."""
    heads = ["run", "started", "iterations", "resumes", "seconds", "train loss"]
    tests = []
    rows = []
    for run in runs:
        train = [r for r in run.records if r["event"] == "train"]
        test = [r for r in run.records if r["event"] == "test" and r["net"] == 0]
        start = next((s.start for s in run.segments if s.start is not None), None)
        when = (start or {}).get("time") or ""
        row = {"run": str(run.number), "started": printable(when[:19].replace("T", " "), 80) or "-",
               "iterations": f"{run.lo}-{run.hi}" if run.lo is not None else "-",
               "resumes": str(len(run.segments) - 1),
               "seconds": f"{sum(s.seconds for s in run.segments):.1f}",
               "train loss": f"{train[-1]['loss']:.4g}" if train else "-"}
        for name, v in (test[-1]["outputs"] if test else {}).items():
            if not isinstance(v, list):
                col = f"test {printable(name, 30)}"
                if col not in tests:
                    tests.append(col)
                row[col] = f"{v:.4g}"
        rows.append(row)
    cols = heads + tests
    width = {c: max([len(c)] + [len(r.get(c, "-")) for r in rows]) for c in cols}
    lines = [f"{printable(path, 200)}: {len(runs)} run(s)",
             "  ".join(c.ljust(width[c]) for c in cols) + "  end"]
    for run, row in zip(runs, rows):
        lines.append("  ".join(row.get(c, "-").ljust(width[c]) for c in cols) + "  " + _status(run))
    for run in runs:
        start = next((s.start for s in run.segments if s.start is not None), None)
        if start is not None and start.get("solver"):
            lines.append(f"run {run.number}: solver {printable(start['solver'], 200)}")
    return "\n".join(lines) + "\n"
