"""Run logs: the JSONL record of every train, `netcli log --csv`, and the Caffe log format that
Caffe's own tools/extra/parse_log.py reads (a copy, with Caffe's licence, in tests/data/caffe)."""
import csv
import io
import json
import os
import sys
import types
import warnings

import pytest
from click.testing import CliRunner

from netcli import log
from netcli.cli import cli
from tinynet import make_tiny

CAFFE_TOOLS = os.path.join(os.path.dirname(os.path.dirname(__file__)), "data", "caffe", "tools", "extra")


def _train(solver, *flags):
    r = CliRunner().invoke(cli, ["train", "--solver", solver, "--quiet", *flags], obj={})
    log.set_format("netcli")
    assert r.exit_code == 0, r.output
    return r.stdout


def test_train_writes_a_jsonl_log_and_csv(tmp_path):
    solver = make_tiny(tmp_path, max_iter=40, test_interval=20, display=10)
    _train(solver)
    path = tmp_path / "snaps" / "tiny.log.jsonl"
    recs = [json.loads(line) for line in path.read_text().splitlines()]
    assert [r["event"] for r in recs] == ["start"] + ["test", "train", "train"] * 2 + ["test", "end"]
    train = [r for r in recs if r["event"] == "train"]
    test = [r for r in recs if r["event"] == "test"]
    assert [r["iter"] for r in train] == [0, 10, 20, 30] and [r["iter"] for r in test] == [0, 20, 40]
    assert all({"time", "seconds", "epoch", "lr", "loss", "outputs"} <= set(r) for r in train)
    assert set(test[-1]["outputs"]) == {"accuracy", "loss"} and 0 <= test[-1]["outputs"]["accuracy"] <= 1
    assert train[1]["epoch"] == pytest.approx(10 * 16 / 256)
    assert recs[-1]["event"] == "end" and recs[-1]["finished"] is True and recs[-1]["iter"] == 40
    r = CliRunner().invoke(cli, ["log", str(path), "--csv"], obj={})
    rows = list(csv.DictReader(io.StringIO(r.stdout)))
    assert len(rows) == 7 and rows[0]["event"] == "test" and "test/accuracy" in rows[0] and "train/loss" in rows[1]
    assert float(rows[-1]["test/accuracy"]) == pytest.approx(test[-1]["outputs"]["accuracy"])
    # a resumed run appends, and continues its run; a fresh one is a run of its own
    _train(solver, "--iterations", "50", "--resume")
    recs = [json.loads(line) for line in path.read_text().splitlines()]
    starts = [r for r in recs if r["event"] == "start"]
    assert len(starts) == 2 and starts[1]["iter"] == 40
    assert starts[0]["resumed_from"] is None and starts[1]["resumed_from"].endswith("tiny_iter_40.solverstate.npz")
    assert starts[0]["solver"] == os.path.abspath(solver) and starts[0]["run_id"] != starts[1]["run_id"]
    assert all(r["run_id"] == starts[1]["run_id"] for r in recs[recs.index(starts[1]):])
    _train(solver)
    r = CliRunner().invoke(cli, ["log", str(path), "--csv"], obj={})
    rows = list(csv.DictReader(io.StringIO(r.stdout)))
    one, two = [[int(x["iter"]) for x in rows if x["run"] == n] for n in ("1", "2")]
    assert one == sorted(one) and one[0] == 0 and one[-1] == 80 and two == sorted(two) and two[-1] == 40
    assert {x["run"] for x in rows} == {"1", "2"}
    r = CliRunner().invoke(cli, ["log", str(path), "--csv", "--run", "last"], obj={})
    assert {x["run"] for x in csv.DictReader(io.StringIO(r.stdout))} == {"2"}
    r = CliRunner().invoke(cli, ["log", str(path)], obj={})                 # no --csv: one line per run
    assert r.exit_code == 0 and "2 run(s)" in r.stdout, r.output
    table = r.stdout.splitlines()
    assert table[1].split()[:5] == ["run", "started", "iterations", "resumes", "seconds"] and "test accuracy" in table[1]
    assert table[2].split()[0] == "1" and table[2].split()[3:5] == ["0-90", "1"] and table[2].endswith("finished")
    assert table[3].split()[0] == "2" and table[3].split()[3:5] == ["0-40", "0"]
    assert table[2].split()[1] == starts[0]["time"][:10] and "WARNING" not in r.stderr
    assert f"run 1: solver {os.path.abspath(solver)}" in r.stdout


def _parse_log_module():
    """Caffe's parse_log.py as it is, but for its one Python 2 line (a print statement)."""
    sys.path.insert(0, CAFFE_TOOLS)                     # for its `import extract_seconds`
    try:
        src = open(os.path.join(CAFFE_TOOLS, "parse_log.py")).read()
        src = src.replace("print 'Wrote %s' % output_filename", "print('Wrote %s' % output_filename)")
        mod = types.ModuleType("parse_log")
        with warnings.catch_warnings():                 # its regexes' '\d' in plain strings
            warnings.simplefilter("ignore", DeprecationWarning)
            exec(compile(src, "parse_log.py", "exec"), mod.__dict__)
        return mod
    finally:
        sys.path.remove(CAFFE_TOOLS)


def test_caffe_parse_log_reads_the_caffe_format(tmp_path):
    solver = make_tiny(tmp_path, max_iter=40, test_interval=20, display=10)
    out = _train(solver, "--log-format", "caffe")
    logfile = tmp_path / "caffe.log"
    logfile.write_text(out)
    assert all(line[0] == "I" and "] " in line for line in out.splitlines())
    train, test = _parse_log_module().parse_log(str(logfile))
    recs = [json.loads(line) for line in (tmp_path / "snaps" / "tiny.log.jsonl").read_text().splitlines()]
    jtrain = [r for r in recs if r["event"] == "train"]
    jtest = [r for r in recs if r["event"] == "test"]
    assert [r["NumIters"] for r in train] == [r["iter"] for r in jtrain]
    assert [r["NumIters"] for r in test] == [r["iter"] for r in jtest]
    for row, rec in zip(test, jtest):
        assert row["accuracy"] == pytest.approx(rec["outputs"]["accuracy"], rel=1e-5)
        assert row["loss"] == pytest.approx(rec["outputs"]["loss"], rel=1e-5)
    # Caffe prints "Iteration N, lr = ..." after that iteration's outputs, so parse_log gives each
    # row the rate of the display before it
    for row, before in zip(train[1:], jtrain):
        assert row["LearningRate"] == pytest.approx(before["lr"], rel=1e-5)
    assert all(r["Seconds"] >= 0 for r in train + test)


def test_run_log_errors(tmp_path):
    (tmp_path / "bad.jsonl").write_text('{"event": "train"}\nnot json\n{"event": "end"}\n')
    r = CliRunner().invoke(cli, ["log", str(tmp_path / "bad.jsonl"), "--csv"], obj={})
    assert r.exit_code == 1 and "bad.jsonl:2: not a JSON object" in r.output
    assert "internal error" not in r.output
    (tmp_path / "cut.jsonl").write_text('{"event": "train", "iter": 1, "outputs": {"loss": 1}}\n{"event": "te')
    r = CliRunner().invoke(cli, ["log", str(tmp_path / "cut.jsonl"), "--csv"], obj={})
    assert r.exit_code == 0 and r.stdout.count("\n") == 2           # a run killed mid-line keeps the rest


def test_resume_continues_the_newest_pair_exactly(tmp_path):
    import numpy as np
    from netcli.io.weights import read_weights
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir(), b.mkdir()
    straight = make_tiny(a, max_iter=40, test_interval=0, snapshot=10)
    _train(straight)
    resumed = make_tiny(b, max_iter=40, test_interval=0, snapshot=10)
    out = _train(resumed, "--resume")                     # nothing to resume yet: from iteration 0
    assert "no snapshot of" in out and "starting from iteration 0" in out
    for f in os.listdir(b / "snaps"):                     # as if stopped after iteration 20
        if any(f.startswith(f"tiny_iter_{i}.") for i in (30, 40)):
            os.unlink(b / "snaps" / f)
    out = _train(resumed, "--resume")
    assert f"Resuming from {b / 'snaps' / 'tiny_iter_20.solverstate.npz'}" in out
    wa, wb = read_weights(a / "snaps" / "tiny_iter_40.weights.npz"), read_weights(b / "snaps" / "tiny_iter_40.weights.npz")
    assert all(np.array_equal(wa[k], wb[k]) for k in wa)
    r = CliRunner().invoke(cli, ["train", "--solver", resumed, "--resume", "--weights", "x.npz"], obj={})
    assert r.exit_code == 2 and "--resume finds the snapshot itself" in r.output


def _rec(event, it, run_id=None, **fields):
    rec = {"event": event, "iter": it, **fields}
    if event == "train":
        rec.setdefault("loss", 1.0 / (it + 1))
    if run_id:
        rec["run_id"] = run_id
    return json.dumps(rec)


def _iters(path, which="all"):
    from netcli.solver.runs import read_run_log, select, split_runs
    return [[(r["event"], r["iter"]) for r in run.records] for run in select(split_runs(read_run_log(path)), which, path)]


def test_a_resume_continues_its_parent_from_the_resume_iteration(tmp_path):
    lines = [_rec("start", 0, "a", resumed_from=None), _rec("test", 0, "a"), _rec("train", 0, "a"),
             _rec("train", 10, "a"), _rec("test", 20, "a"), _rec("train", 20, "a"), _rec("train", 30, "a"),
             _rec("start", 0, "b", resumed_from=None), _rec("train", 0, "b"), _rec("end", 10, "b", finished=True),
             # resumed at 20 from a's snapshot: a's records after 20 go, its test at 20 stays
             _rec("start", 20, "c", resumed_from="/s/x_iter_20.solverstate.npz"), _rec("train", 20, "c"),
             _rec("train", 30, "c"), _rec("end", 30, "c", finished=True)]
    (tmp_path / "x.log.jsonl").write_text("\n".join(lines) + "\n")
    runs = _iters(tmp_path / "x.log.jsonl")
    assert runs == [[("test", 0), ("train", 0), ("train", 10), ("test", 20), ("train", 20), ("train", 30)],
                    [("train", 0)]]
    assert _iters(tmp_path / "x.log.jsonl", "last") == runs[1:] and _iters(tmp_path / "x.log.jsonl", "1") == runs[:1]


def test_old_logs_split_at_each_start_and_where_the_iteration_goes_back(tmp_path):
    lines = [_rec("start", 0), _rec("train", 0), _rec("train", 10), _rec("train", 20),
             _rec("start", 10), _rec("train", 10), _rec("train", 30),      # an old resume: starts after 0
             _rec("end", 30, finished=True),
             _rec("start", 0), _rec("train", 0), _rec("train", 10),
             _rec("train", 0), _rec("train", 5)]                            # no start: split on going back
    (tmp_path / "old.log.jsonl").write_text("\n".join(lines) + "\n")
    assert [[it for _, it in run] for run in _iters(tmp_path / "old.log.jsonl")] == [[0, 10, 30], [0, 10], [0, 5]]
    r = CliRunner().invoke(cli, ["log", str(tmp_path / "old.log.jsonl"), "--run", "4"], obj={})
    assert r.exit_code == 1 and "no run 4; this log holds 3 run(s)" in r.output
    r = CliRunner().invoke(cli, ["log", str(tmp_path / "old.log.jsonl"), "--run", "first"], obj={})
    assert r.exit_code == 2 and "give all, last or a run's number" in r.output


BAD = {"outputs not an object": '{"event": "train", "iter": 5, "loss": 1, "outputs": [1, 2]}',
       "a huge integer": '{"event": "train", "iter": 5, "loss": 1%s}' % ("0" * 5000),
       "a huge iteration": '{"event": "train", "iter": 1%s, "loss": 1}' % ("0" * 30),
       "deep nesting": '{"event": "train", "iter": 5, "loss": 1, "outputs": {"x": %s1%s}}' % ("[" * 50000, "]" * 50000),
       "a string loss": '{"event": "train", "iter": 5, "loss": "low"}',
       "a list loss": '{"event": "train", "iter": 5, "loss": [1]}',
       "a bool iteration": '{"event": "test", "iter": true, "outputs": {}}',
       "nested outputs": '{"event": "test", "iter": 5, "outputs": {"a": [[1]]}}',
       "a long line": '{"event": "test", "iter": 5, "outputs": {"a": "%s"}}' % ("x" * (1 << 20))}


@pytest.mark.parametrize("last", [False, True], ids=["middle", "last line"])
@pytest.mark.parametrize("bad", BAD, ids=list(BAD))
def test_bad_records_are_skipped_with_one_warning(tmp_path, bad, last):
    pytest.importorskip("matplotlib")
    good = [_rec("train", 0), _rec("test", 0, outputs={"accuracy": 0.5}), _rec("train", 10)]
    lines = good + [BAD[bad]] if last else good[:1] + [BAD[bad], BAD[bad]] + good[1:]
    (tmp_path / "b.log.jsonl").write_text("\n".join(lines) + "\n")
    plot = [] if last else [["plot", "-o", str(tmp_path / "c.png")]]          # the reader is the same
    for args in [["log"], ["log", "--csv"]] + plot:
        r = CliRunner().invoke(cli, [args[0], str(tmp_path / "b.log.jsonl"), *args[1:]], obj={})
        assert r.exit_code == 0 and "internal error" not in r.output, r.output
        warnings = [line for line in r.stderr.splitlines() if line.startswith("WARNING")]
        n = 4 if last else 2
        assert len(warnings) == 1 and f"b.log.jsonl:{n}: skipped a bad run-log record" in warnings[0], r.stderr
        if not last:
            assert "(and 1 more bad records)" in warnings[0]
    r = CliRunner().invoke(cli, ["log", str(tmp_path / "b.log.jsonl"), "--csv"], obj={})
    assert [(x["event"], x["iter"]) for x in csv.DictReader(io.StringIO(r.stdout))] == [
        ("train", "0"), ("test", "0"), ("train", "10")]


def test_a_cut_last_line_of_any_kind_is_dropped(tmp_path):
    for cut in ('{"event": "tr', "[" * 100000, '{"event": "train", "iter": 1, "loss": 1e5'):
        (tmp_path / "c.log.jsonl").write_text(_rec("train", 0) + "\n" + cut)
        r = CliRunner().invoke(cli, ["log", str(tmp_path / "c.log.jsonl"), "--csv"], obj={})
        assert r.exit_code == 0 and r.stdout.count("\n") == 2, r.output


@pytest.mark.parametrize("unit", ['"\\"', "[]", "9", '"ab', '{"a": "\\u00e9"}, '], ids=["quotes", "brackets", "digits",
                                                                               "strings", "objects"])
def test_reading_a_run_log_is_linear(tmp_path, unit):
    """A line of many quotes, escapes, brackets or digits: 10x the line takes far less than 100x."""
    import time
    from netcli.solver.runs import MAX_LINE, read_run_log

    def seconds(size):
        path = tmp_path / f"{size}.log.jsonl"
        path.write_text(_rec("train", 0) + "\n" + '{"event": "test", "iter": 1, "x": [' + unit * (size // len(unit))
                        + "\n" + _rec("train", 2) + "\n")
        best = float("inf")
        for _ in range(3):
            t = time.perf_counter()
            try:
                read_run_log(path)
            except Exception:
                pass
            best = min(best, time.perf_counter() - t)
        return best

    def ratio():
        return seconds(MAX_LINE - 100) / max(seconds(MAX_LINE // 10), 1e-4)
    r = ratio()
    r = r if r < 40 else min(r, ratio())            # a busy machine gets a second try
    assert r < 40, r                                # quadratic: 100
