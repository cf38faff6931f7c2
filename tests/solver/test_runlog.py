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
    # a resumed run appends
    _train(solver, "--iterations", "50", "--resume")
    recs = [json.loads(line) for line in path.read_text().splitlines()]
    starts = [r for r in recs if r["event"] == "start"]
    assert len(starts) == 2 and starts[1]["iter"] == 40


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
    (tmp_path / "cut.jsonl").write_text('{"event": "train", "iter": 1, "outputs": {"loss": 1}}\n{"event": "te')
    r = CliRunner().invoke(cli, ["log", str(tmp_path / "cut.jsonl"), "--csv"], obj={})
    assert r.exit_code == 0 and r.stdout.count("\n") == 2           # a run killed mid-line keeps the rest


def test_resume_continues_the_newest_pair_exactly(tmp_path):
    import numpy as np
    from netcli.snapshot import read_weights
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
