"""Early stopping, the plateau policy and the VALIDATION split (issue 6)."""
import os

import numpy as np
import pytest

import netcli
from netcli import ConfigError
from tinynet import make_tiny


def scripted(solver, values):
    """Make every test return the next value of the monitored output."""
    seq = iter(values)

    def fake_test(k=0):
        v = next(seq)
        solver.last_test = {"accuracy": v, "loss": 1 - v}
        return solver.last_test
    solver.test = fake_test


def test_early_stopping_stops_at_the_right_test_and_keeps_best(tmp_path):
    path = make_tiny(tmp_path, max_iter=1000, test_interval=10, snapshot=0,
                     extra="early_stopping: {monitor: accuracy, patience: 3, min_delta: 0.01}\n")
    s = netcli.Solver(path, progress=False)
    weights_at = {}
    # tests at iterations 0, 10, 20, ...: best 0.8 at iteration 20; 0.805 is within min_delta
    scripted(s, [0.5, 0.7, 0.8, 0.805, 0.79, 0.6, 0.9])
    fake = s.test

    def test_and_remember(k=0):
        weights_at[s.iter] = s.net.param_data.copy()
        return fake(k)
    s.test = test_and_remember
    assert s.solve() is True
    assert s.early_stopped and s.iter == 50          # three tests without improvement: 30, 40, 50
    snaps = tmp_path / "snaps"
    best = netcli.Net(str(tmp_path / "net.yaml"), phase="TEST", weights=str(snaps / "tiny_best.weights.npz"))
    np.testing.assert_array_equal(best.param_data, weights_at[20])
    np.testing.assert_array_equal(s.net.param_data, weights_at[20])     # training ends on the best weights
    # the final snapshot is named for the iteration its weights are from, and has no solver state
    # (it would not match them); before, tiny_iter_50.* held iteration 20's weights
    final = netcli.Net(str(tmp_path / "net.yaml"), phase="TEST", weights=str(snaps / "tiny_iter_20.weights.npz"))
    np.testing.assert_array_equal(final.param_data, weights_at[20])
    assert not any(f.startswith("tiny_iter_50") for f in os.listdir(snaps))


def test_snapshot_best_without_early_stopping(tmp_path):
    path = make_tiny(tmp_path, max_iter=60, test_interval=10, snapshot=0,
                     extra="snapshot_best: {monitor: loss}\n")
    s = netcli.Solver(path, progress=False)
    weights_at = {}
    scripted(s, [0.5, 0.7, 0.6, 0.9, 0.8, 0.85, 0.7])      # loss = 1 - value: best at iteration 30
    fake = s.test

    def test_and_remember(k=0):
        weights_at[s.iter] = s.net.param_data.copy()
        return fake(k)
    s.test = test_and_remember
    assert s.solve() is True and s.iter == 60 and not s.early_stopped
    best = netcli.Net(str(tmp_path / "net.yaml"), phase="TEST",
                      weights=str(tmp_path / "snaps" / "tiny_best.weights.npz"))
    np.testing.assert_array_equal(best.param_data, weights_at[30])
    assert os.path.exists(tmp_path / "snaps" / "tiny_iter_60.solverstate.npz")


def test_snapshot_keep_keeps_the_newest_pairs(tmp_path):
    path = make_tiny(tmp_path, max_iter=50, test_interval=0, snapshot=10, extra="snapshot_keep: 2\n")
    netcli.Solver(path, progress=False).solve()
    left = sorted(f for f in os.listdir(tmp_path / "snaps") if "_iter_" in f)
    assert left == ["tiny_iter_40.solverstate.npz", "tiny_iter_40.weights.npz",
                    "tiny_iter_50.solverstate.npz", "tiny_iter_50.weights.npz"]


def test_plateau_lowers_rate_at_the_right_iteration(tmp_path):
    path = make_tiny(tmp_path, max_iter=70, test_interval=10,
                     extra="plateau: {monitor: loss, patience: 2}\n")
    text = open(path).read().replace("lr_policy: inv", "lr_policy: plateau").replace("gamma: 0.0001", "gamma: 0.5")
    open(path, "w").write(text)
    s = netcli.Solver(path, progress=False)
    rates = {}
    real = s._apply_update

    def record(display, step=None):
        rates[s.iter] = s.learning_rate()
        real(display, step)
    s._apply_update = record
    # loss = 1 - accuracy: tests at 0..70; improvements at 0, 10; stalls at 20, 30 -> reduce at 30;
    # improvement at 40; stalls at 50, 60 -> reduce at 60
    scripted(s, [0.1, 0.2, 0.2, 0.15, 0.3, 0.3, 0.25, 0.3])
    s.solve()
    assert rates[29] == pytest.approx(0.05) and rates[30] == pytest.approx(0.025)
    assert rates[59] == pytest.approx(0.025) and rates[60] == pytest.approx(0.0125)


def test_monitor_must_be_a_test_output(tmp_path):
    path = make_tiny(tmp_path, extra="early_stopping: {monitor: acuracy}\n")
    with pytest.raises(ConfigError, match=r"solver.yaml:16: field 'early_stopping.monitor': 'acuracy' is not an "
                                          r"output of the test net \(outputs: accuracy"):
        netcli.Solver(path)


def test_validation_split_tests_on_held_out_train_data(tmp_path):
    path = make_tiny(tmp_path, max_iter=20, test_interval=10)
    net = (tmp_path / "net.yaml").read_text().replace("shuffle: true}", "shuffle: true, validation_fraction: 0.25}")
    (tmp_path / "net.yaml").write_text(net)
    s = netcli.Solver(path, progress=False)
    assert len(s.test_nets) == 2
    val, test = s.test_nets
    assert s.net.data_size() == 192 and val.data_size() == 64 and test.data_size() == 64
    assert val.phase == "VALIDATION" and [l.name for l in val.layers] == [l.name for l in test.layers]
    train_set = s.net.data_layers()[0].dataset
    val_set = val.data_layers()[0].dataset
    both = np.concatenate([train_set.images, val_set.images]).reshape(256, -1)
    assert len({row.tobytes() for row in both}) == len(np.unique(both, axis=0))   # disjoint parts of one source
    assert not val.data_layers()[0].transformer.train                               # no random crop/mirror
    s.solve()
    assert 0 <= s.final_test["accuracy"] <= 1 and set(s.last_test) == {"accuracy", "loss"}


def test_best_weights_say_which_iteration_and_score_they_hold(tmp_path, capsys):
    """Issue 24: <prefix>_best.weights.npz keeps its iteration and score; saving says them and
    `netcli test` prints them."""
    from click.testing import CliRunner
    from netcli.cli import cli
    from netcli.solver.hooks import best_note
    path = make_tiny(tmp_path, max_iter=40, test_interval=10, snapshot=0, extra="snapshot_best: {monitor: loss}\n")
    s = netcli.Solver(path, progress=False)
    scripted(s, [0.5, 0.7, 0.9, 0.8, 0.6])                 # loss = 1 - value: best at iteration 20
    s.solve()
    assert "Best loss so far (0.1, iteration 20): saving " in capsys.readouterr().out
    best = str(tmp_path / "snaps" / "tiny_best.weights.npz")
    assert best_note(best).startswith("the best loss (0.1") and best_note(best).endswith(", MIN) of iteration 20")
    r = CliRunner().invoke(cli, ["test", "--model", str(tmp_path / "net.yaml"), "--weights", best,
                                 "--iterations", "1"], obj={})
    assert r.exit_code == 0, r.output
    assert f"{best}: the best loss (0.1" in r.output and "of iteration 20" in r.output
    assert best_note(str(tmp_path / "snaps" / "tiny_iter_40.weights.npz")) is None
