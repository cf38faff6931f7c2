"""`netcli train` ends with one summary line: where the run got to, its time, the last test's
scores, where the weights and the run log are."""
import re

from click.testing import CliRunner

from netcli.cli import cli
from tinynet import make_tiny


def last_line(output):
    return output.strip().splitlines()[-1]


def test_train_ends_with_a_summary_line(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    solver = make_tiny(tmp_path, max_iter=30, snapshot=0)
    r = CliRunner().invoke(cli, ["train", "--solver", solver, "--quiet"], obj={})
    assert r.exit_code == 0, r.output
    line = last_line(r.output)
    assert line.startswith("Done: iteration 30 of 30 (30 trained in "), line
    assert re.search(r"test at iteration 20: accuracy = [0-9.]+, loss = [0-9.]+", line), line
    assert "weights: " in line and "tiny_iter_30.weights.npz (+ .solverstate.npz)" in line, line
    assert "run log: " in line and line.endswith(".log.jsonl"), line


def test_summary_after_a_resume_counts_this_runs_iterations(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    solver = make_tiny(tmp_path, max_iter=20, snapshot=10, test_interval=10)
    assert CliRunner().invoke(cli, ["train", "--solver", solver, "--quiet"], obj={}).exit_code == 0
    state = next(tmp_path.rglob("tiny_iter_10.solverstate.npz"))
    r = CliRunner().invoke(cli, ["train", "--solver", solver, "--quiet", "--snapshot", str(state)], obj={})
    assert r.exit_code == 0, r.output
    line = last_line(r.output)
    assert line.startswith("Done: iteration 20 of 20 (10 trained in "), line
    assert "test at iteration 20: " in line and "tiny_iter_20.weights.npz" in line, line


def test_a_stopped_run_and_an_early_stopped_one_say_so():
    from types import SimpleNamespace
    from netcli.solver.summary import summary_line
    s = SimpleNamespace(iter=7, max_iter=40, trained=7, early_stopped=False, last_test=None, final_test=None,
                        prefix="snaps/x", last_snapshot_iter=7, log_path="snaps/x.log.jsonl")
    line = summary_line(s, 2.0, finished=False)
    assert line.startswith("Stopped: iteration 7 of 40 (7 trained in 2.0 s, 3.5 iter/s); no test ran; "
                           "weights: snaps/x_iter_7.weights.npz"), line
    s.early_stopped, s.early_stopping = True, SimpleNamespace(m=SimpleNamespace(best_iter=5))
    s.last_test, s.last_test_iter = {"accuracy": 0.5, "per_class": [1, 2]}, 7
    line = summary_line(s, 2.0, finished=True)
    assert line.startswith("Stopped early (no improvement): iteration 7 of 40"), line
    assert "test at iteration 7: accuracy = 0.5; best weights: snaps/x_iter_5.weights.npz" in line, line
