"""The CLI through click's runner, plus real subprocesses for signals and startup."""
import json
import os
import signal
import subprocess
import sys
import time

import numpy as np

from click.testing import CliRunner

from netcli.cli import cli
from tinynet import make_tiny

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run(*args):
    r = CliRunner().invoke(cli, list(args), obj={})
    return r


def test_train_then_test_and_time_json(tmp_path):
    solver = make_tiny(tmp_path, max_iter=30, snapshot=0)
    r = run("train", "--solver", solver, "--quiet")
    assert r.exit_code == 0, r.output
    out = r.output
    assert "Iteration 10 (" in out and "iter/s" in out and ", loss = " in out
    assert "    Train net output #0: loss = " in out and "(* 1 = " in out
    assert "Iteration 10, lr = " in out
    assert "Iteration 20, Testing net (#0)" in out and "    Test net output #0: accuracy = " in out
    assert "Snapshotting to " in out and "Optimization Done." in out
    weights = str(tmp_path / "snaps" / "tiny_iter_30.weights.npz")
    r = run("test", "--model", str(tmp_path / "net.yaml"), "--weights", weights)
    assert r.exit_code == 0, r.output
    assert "Batch 0, accuracy = " in r.output and "\naccuracy = " in r.output
    assert "loss = " in r.output and "(* 1 = " in r.output
    r = run("test", "--model", str(tmp_path / "net.yaml"), "--weights", weights, "--json")
    assert r.exit_code == 0, r.output
    res = json.loads(r.output)
    assert set(res) == {"outputs", "loss", "iterations", "samples"} and set(res["outputs"]) == {"accuracy", "loss"}
    assert 0.5 < res["outputs"]["accuracy"] <= 1 and res["iterations"] == 2 and res["samples"] == 64
    assert res["loss"] == res["outputs"]["loss"]                  # loss_weight 1: the total is that output
    assert all(len(repr(v)) <= 10 for v in res["outputs"].values())   # 7 digits, no float32 noise
    r = run("time", "--model", str(tmp_path / "net.yaml"), "--iterations", "3", "--json")
    assert r.exit_code == 0, r.output
    t = json.loads(r.output)
    assert [x["name"] for x in t["layers"]][:2] == ["data", "conv"] and t["iterations"] == 3
    r = run("time", "--model", str(tmp_path / "net.yaml"), "--iterations", "2")
    assert "      conv\tforward: " in r.output and "Average Forward-Backward: " in r.output
    assert "Total Time: " in r.output


def test_finetune_reports_skipped(tmp_path):
    solver = make_tiny(tmp_path, max_iter=5)
    assert run("train", "--solver", solver, "--quiet").exit_code == 0
    w = str(tmp_path / "snaps" / "tiny_iter_5.weights.npz")
    r = run("train", "--solver", solver, "--weights", w, "--iterations", "2", "--quiet")
    assert r.exit_code == 0, r.output
    assert f"Finetuning from {w}" in r.output
    r = run("train", "--solver", solver, "--weights", w, "--snapshot", w)
    assert r.exit_code == 2 and "not both" in r.output


def test_check_and_user_errors(tmp_path):
    solver = make_tiny(tmp_path)
    r = run("check", "--solver", solver)
    assert r.exit_code == 0, r.output
    assert "conv" in r.output and "MFLOP/img" in r.output and r.output.rstrip().endswith("OK")
    bad = tmp_path / "bad.yaml"
    bad.write_text("layers:\n  - {name: x, type: Convolutoin, top: y}\n")
    r = run("check", "--model", str(bad))
    assert r.exit_code == 1
    assert "bad.yaml:2: layer 'x': field 'type': unknown layer type 'Convolutoin'" in r.output
    assert "Traceback" not in r.output
    r = run("test", "--model", str(tmp_path / "net.yaml"), "--weights", str(tmp_path / "nope.npz"))
    assert r.exit_code == 1 and "no such weights file" in r.output


def test_nan_exits_nonzero(tmp_path):
    solver = make_tiny(tmp_path, lr=1e9, max_iter=50)
    r = run("train", "--solver", solver, "--quiet")
    assert r.exit_code == 1
    assert "loss is" in r.output and "Iteration" in r.output


def test_sigint_snapshots_and_exits_zero(tmp_path):
    solver = make_tiny(tmp_path, max_iter=10 ** 6, display=1, test_interval=0)
    env = dict(os.environ, PYTHONPATH=ROOT, PYTHONUNBUFFERED="1")
    p = subprocess.Popen([sys.executable, "-m", "netcli.cli", "train", "--solver", solver, "--quiet"],
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env, cwd=str(tmp_path))
    lines = []
    deadline = time.time() + 120
    for line in p.stdout:
        lines.append(line)
        if line.startswith("Iteration 5 ("):
            p.send_signal(signal.SIGINT)
            break
        assert time.time() < deadline, "".join(lines)
    out, _ = p.communicate(timeout=120)
    text = "".join(lines) + out
    assert p.returncode == 0, text
    assert "Caught SIGINT" in text and "Optimization stopped early." in text
    snaps = sorted(os.listdir(tmp_path / "snaps"))
    assert any(s.endswith(".solverstate.npz") for s in snaps), snaps


def test_help_does_not_import_numpy_or_numba():
    code = ("import sys; from netcli.cli import main\n"
            "try:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
            "assert 'numba' not in sys.modules and 'numpy' not in sys.modules, 'heavy import'")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                       env=dict(os.environ, PYTHONPATH=ROOT))
    assert r.returncode == 0, r.stderr


# -- signals, JSON and numerics (issue 10) -------------------------------------------------------
def start_training(tmp_path, solver, *flags):
    env = dict(os.environ, PYTHONPATH=ROOT, PYTHONUNBUFFERED="1")
    return subprocess.Popen([sys.executable, "-m", "netcli.cli", "train", "--solver", solver, "--quiet", *flags],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env, cwd=str(tmp_path))


def signal_when(p, prefix, sig, timeout=120):
    """Send `sig` once a line starting with `prefix` appears; returns (output, seconds after the signal)."""
    lines, deadline = [], time.time() + timeout
    for line in p.stdout:
        lines.append(line)
        if line.startswith(prefix):
            p.send_signal(sig)
            break
        assert time.time() < deadline, "".join(lines)
    t0 = time.time()
    out, _ = p.communicate(timeout=timeout)
    return "".join(lines) + out, time.time() - t0


def test_sigterm_and_sighup_snapshot_and_stop(tmp_path):
    for sig, name in ((signal.SIGTERM, "SIGTERM"), (signal.SIGHUP, "SIGHUP")):
        solver = make_tiny(tmp_path, max_iter=10 ** 6, display=1, test_interval=0)
        p = start_training(tmp_path, solver)
        text, _ = signal_when(p, "Iteration 5 (", sig)
        assert p.returncode == 0, text
        assert f"Caught {name}: snapshotting and stopping" in text and "Traceback" not in text
        snaps = os.listdir(tmp_path / "snaps")
        assert any(f.endswith(".solverstate.npz") for f in snaps) and not any(f.endswith(".tmp") for f in snaps)


def test_sigint_effect_none_ignores(tmp_path):
    solver = make_tiny(tmp_path, max_iter=60, display=1, test_interval=0)
    p = start_training(tmp_path, solver, "--sigint-effect", "none")
    text, _ = signal_when(p, "Iteration 5 (", signal.SIGINT)
    assert p.returncode == 0, text
    assert "Caught SIGINT: ignored" in text and "Optimization Done." in text


def test_interrupt_inside_a_long_test_pass_takes_effect_at_once(tmp_path):
    """A test of 10^6 batches, interrupted as it starts: the run stops within seconds, even with
    early stopping waiting for that first test's result."""
    solver = make_tiny(tmp_path, max_iter=100, test_interval=50,
                       extra="test_iter: 1000000\nearly_stopping: {monitor: accuracy, patience: 2}\n")
    p = start_training(tmp_path, solver)
    text, secs = signal_when(p, "Iteration 0, Testing net", signal.SIGINT)
    assert p.returncode == 0 and secs < 30, text
    assert "Test interrupted." in text and "Traceback" not in text and "AttributeError" not in text


def test_json_is_valid_with_nan_weights(tmp_path):
    solver = make_tiny(tmp_path, max_iter=2)
    assert run("train", "--solver", solver, "--quiet").exit_code == 0
    w = tmp_path / "snaps" / "tiny_iter_2.weights.npz"
    arrays = dict(np.load(w))
    arrays = {k: np.full_like(v, np.nan) for k, v in arrays.items()}
    np.savez(tmp_path / "nan.weights.npz", **arrays)
    r = run("test", "--model", str(tmp_path / "net.yaml"), "--weights", str(tmp_path / "nan.weights.npz"), "--json")
    assert r.exit_code == 0, r.output
    res = json.loads(r.output)                      # strict JSON: no NaN tokens
    assert res["outputs"]["accuracy"] == 0.0        # NaN scores are never correct
    assert res["outputs"]["loss"] is None and res["loss"] is None
    assert res["nonfinite"] == ["outputs.loss", "loss"]


def test_user_errors_are_one_line_never_a_traceback(tmp_path):
    solver = make_tiny(tmp_path, max_iter=2)
    (tmp_path / "empty.npz").write_bytes(b"")
    r = run("test", "--model", str(tmp_path / "net.yaml"), "--weights", str(tmp_path / "empty.npz"))
    assert r.exit_code == 1 and r.output.startswith("netcli: error: ") and "empty" in r.output
    assert "Aborted" not in r.output and "Traceback" not in r.output
    (tmp_path / "test.npz").write_bytes(b"")
    r = run("train", "--solver", solver, "--quiet")
    assert r.exit_code == 1 and "the dataset file is empty" in r.output and "Aborted" not in r.output
