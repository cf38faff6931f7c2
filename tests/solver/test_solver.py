"""Learning-rate policies, update rules, iter_size, exact resume, atomic snapshots, NaN stop."""
import math
import os

import numpy as np
import pytest

import netcli
from netcli.io import weights as snapmod
from netcli.config.schema import Problems
from netcli.config.yamlload import LDict
from netcli.errors import ConfigError, NetcliError
from netcli.solver import lr_policy
from netcli.solver.spec import SOLVER
from netcli.update_rules import RULES
from tinynet import make_tiny


def params(**kw):
    return SOLVER.parse(LDict(kw), Problems(), None, "")


@pytest.mark.parametrize("policy,kw,formula", [
    ("fixed", {}, lambda it: 0.01),
    ("step", {"gamma": 0.5, "stepsize": 30}, lambda it: 0.01 * 0.5 ** (it // 30)),
    ("exp", {"gamma": 0.99}, lambda it: 0.01 * 0.99 ** it),
    ("inv", {"gamma": 1e-4, "power": 0.75}, lambda it: 0.01 * (1 + 1e-4 * it) ** -0.75),
    ("multistep", {"gamma": 0.1, "stepvalue": [10, 25, 60]},
     lambda it: 0.01 * 0.1 ** sum(it >= s for s in (10, 25, 60))),
    ("poly", {"power": 2.0}, lambda it: 0.01 * (1 - it / 100) ** 2),
    ("sigmoid", {"gamma": 0.1, "stepsize": 50}, lambda it: 0.01 / (1 + math.exp(-0.1 * (it - 50)))),
])
def test_lr_policies_match_caffe(policy, kw, formula):
    p = params(base_lr=0.01, lr_policy=policy, **kw)
    step = 0
    for it in range(100):          # step through every iteration: multistep advances as it goes
        rate, step = lr_policy.learning_rate(p, it, step, 100)
        if it in (0, 1, 9, 10, 24, 25, 49, 50, 61, 99):
            assert rate == pytest.approx(formula(it), rel=1e-12), it
    assert lr_policy.learning_rate(params(base_lr=0.01, lr_policy="inv", gamma=1e-4, power=0.75), 100, 0, 1)[0] \
        == pytest.approx(0.00992565, abs=1e-8)


@pytest.mark.parametrize("kind,kw", [
    ("SGD", {"momentum": 0.9}), ("NESTEROV", {"momentum": 0.95}), ("ADAGRAD", {}),
    ("RMSPROP", {"rms_decay": 0.98}), ("ADADELTA", {"momentum": 0.95, "delta": 1e-6}),
    ("ADAM", {"momentum": 0.9, "momentum2": 0.999}),
])
@pytest.mark.parametrize("reg", ["L2", "L1"])
def test_update_rules_two_steps(kind, kw, reg):
    """Two steps on random params: lr_mult per element, weight decay, and 1/iter_size scaling."""
    n = 70000   # above the size where the fused rules split the work over threads
    p = params(type=kind, weight_decay=0.01, regularization_type=reg, **kw)
    rng = np.random.default_rng(0)
    w0 = rng.standard_normal(n).astype(np.float32)
    grads = [rng.standard_normal(n).astype(np.float32) for _ in range(2)]
    lr_mult = rng.choice([0.0, 1.0, 2.0], n).astype(np.float32)
    decay = (0.01 * rng.choice([0.0, 1.0], n)).astype(np.float32)
    rule = RULES[kind](p, lr_mult, decay)
    w = w0.copy()
    for t, g in enumerate(grads):
        rule.step(w, g.copy(), 0.05, t, scale=0.5)
    # reference: the same two steps in float64, prepared gradient, per-element rate
    w_ref = w0.astype(np.float64).copy()
    states = _RefState(kind, p, n)
    for t, g in enumerate(grads):
        reg_term = np.sign(w_ref) if reg == "L1" else w_ref
        gp = 0.5 * g.astype(np.float64) + decay * reg_term
        w_ref = states.step(w_ref, gp, 0.05 * lr_mult, t)
    np.testing.assert_allclose(w, w_ref, rtol=2e-5, atol=2e-6)


class _RefState:
    def __init__(self, kind, p, n):
        self.kind, self.p = kind, p
        self.h, self.h2 = np.zeros(n), np.zeros(n)

    def step(self, w, g, rate, t):
        kind, p = self.kind, self.p
        if kind == "SGD":
            self.h = p.momentum * self.h + rate * g
            return w - self.h
        if kind == "NESTEROV":
            prev = self.h.copy()
            self.h = p.momentum * self.h + rate * g
            return w - ((1 + p.momentum) * self.h - p.momentum * prev)
        if kind == "ADAGRAD":
            self.h += g * g
            return w - rate * g / (np.sqrt(self.h) + p.delta)
        if kind == "RMSPROP":
            self.h = p.rms_decay * self.h + (1 - p.rms_decay) * g * g
            return w - rate * g / (np.sqrt(self.h) + p.delta)
        if kind == "ADADELTA":
            self.h = p.momentum * self.h + (1 - p.momentum) * g * g
            dx = g * np.sqrt((self.h2 + p.delta) / (self.h + p.delta))
            self.h2 = p.momentum * self.h2 + (1 - p.momentum) * dx * dx
            return w - rate * dx
        self.h = p.momentum * self.h + (1 - p.momentum) * g
        self.h2 = p.momentum2 * self.h2 + (1 - p.momentum2) * g * g
        corr = math.sqrt(1 - p.momentum2 ** (t + 1)) / (1 - p.momentum ** (t + 1))
        return w - rate * corr * self.h / (np.sqrt(self.h2) + p.delta)


def _trained(tmp_path, name, iters, **kw):
    d = tmp_path / name
    d.mkdir()
    s = netcli.Solver(make_tiny(d, **kw), progress=False)
    s.step(iters)
    return s


def test_iter_size_matches_larger_batch(tmp_path):
    kw = dict(drop=0.0, mirror="false", momentum=0.0)
    a = netcli.Solver(make_tiny(_mk(tmp_path, "a"), batch=64, iter_size=1, **kw), progress=False)
    b = netcli.Solver(make_tiny(_mk(tmp_path, "b"), batch=32, iter_size=2, **kw), progress=False)
    np.testing.assert_array_equal(a.net.param_data, b.net.param_data)
    for s in (a, b):
        s.test_interval = 0
        s.step(3)
    np.testing.assert_allclose(a.net.param_data, b.net.param_data, rtol=1e-5, atol=1e-7)


def test_the_test_nets_are_made_for_inference(tmp_path):
    """netcli.Solver's test nets run forward only (netcli.Net's inference): they keep nothing for
    a backward pass."""
    s = netcli.Solver(make_tiny(_mk(tmp_path, "a")), progress=False)
    assert s.test_nets and all(t.inference and not any(t.need_backward) for t in s.test_nets)
    assert not s.net.inference and any(s.net.need_backward)


def _mk(tmp_path, name):
    d = tmp_path / name
    d.mkdir()
    return d


@pytest.mark.parametrize("kind", ["SGD", "ADAM"])
def test_resume_is_bit_exact(tmp_path, kind):
    lr = 0.05 if kind == "SGD" else 0.01
    straight = netcli.Solver(make_tiny(_mk(tmp_path, "straight"), type=kind, lr=lr, max_iter=40), progress=False)
    straight.solve()
    first = netcli.Solver(make_tiny(_mk(tmp_path, "first"), type=kind, lr=lr, max_iter=40), progress=False)
    first.step(17)                  # stop mid-epoch (16 batches per epoch), between tests
    _, state = first.snapshot()
    resumed = netcli.Solver(make_tiny(_mk(tmp_path, "second"), type=kind, lr=lr, max_iter=40), progress=False)
    resumed.solve(resume_file=state)
    assert resumed.iter == straight.iter == 40
    np.testing.assert_array_equal(resumed.net.param_data, straight.net.param_data)
    for a, b in zip(resumed.rule.history, straight.rule.history):
        np.testing.assert_array_equal(a, b)


def test_snapshot_files_and_moved_folder_resume(tmp_path):
    s = netcli.Solver(make_tiny(tmp_path, max_iter=10, snapshot=5), progress=False)
    s.solve()
    names = sorted(os.listdir(tmp_path / "snaps"))
    assert names == ["tiny.log.jsonl", "tiny_iter_10.solverstate.npz", "tiny_iter_10.weights.npz",
                     "tiny_iter_5.solverstate.npz", "tiny_iter_5.weights.npz"]
    os.rename(tmp_path / "snaps", tmp_path / "moved")
    r = netcli.Solver(str(tmp_path / "solver.yaml"), progress=False)
    r.restore(tmp_path / "moved" / "tiny_iter_10.solverstate.npz")
    np.testing.assert_array_equal(r.net.param_data, s.net.param_data)
    with pytest.raises(NetcliError, match="is a weights file"):
        r.restore(tmp_path / "moved" / "tiny_iter_10.weights.npz")


def test_crash_during_snapshot_leaves_previous_snapshot(tmp_path, monkeypatch):
    s = netcli.Solver(make_tiny(tmp_path, max_iter=20, snapshot=10), progress=False)
    s.step(10)
    saved = s.net.param_data.copy()

    def crash(tmp, path):
        raise OSError(28, "No space left on device")
    monkeypatch.setattr(snapmod, "_replace", crash)
    with pytest.raises(NetcliError, match="cannot write .*tiny_iter_20.weights.npz.*: the disk is full"):
        s.step(10)
    files = sorted(os.listdir(tmp_path / "snaps"))
    assert files == ["tiny_iter_10.solverstate.npz", "tiny_iter_10.weights.npz"]   # no temp files left
    monkeypatch.undo()
    r = netcli.Solver(str(tmp_path / "solver.yaml"), progress=False)
    r.restore(tmp_path / "snaps" / "tiny_iter_10.solverstate.npz")
    np.testing.assert_array_equal(r.net.param_data, saved)
    assert r.iter == 10


def test_nan_loss_stops_with_iteration(tmp_path):
    s = netcli.Solver(make_tiny(tmp_path, lr=1e9, momentum=0.9, max_iter=100), progress=False)
    with pytest.raises(NetcliError, match=r"Iteration \d+: loss is (nan|inf)"):
        s.solve()


def test_epochs_and_whole_test_set(tmp_path):
    path = make_tiny(tmp_path)
    text = open(path).read().replace("max_iter: 40", "max_epochs: 2.5").replace("test_interval: 20",
                                                                               "test_interval_epochs: 1")
    open(path, "w").write(text)
    s = netcli.Solver(path, progress=False)
    assert s.iters_per_epoch == 16 and s.max_iter == 40 and s.test_interval == 16
    assert s.test_iter == 2       # 64 TEST samples / batch 32


def test_solver_errors_name_file_line_field(tmp_path):
    path = make_tiny(tmp_path)
    open(path, "a").write("momentun: 0.9\n")
    with pytest.raises(ConfigError, match=r"solver.yaml:16: field 'momentun': unknown field .*did you mean 'momentum'"):
        netcli.Solver(path)
    path = make_tiny(tmp_path, type="AdaGrad", momentum=0.9)
    with pytest.raises(ConfigError, match=r"solver.yaml:4: field 'momentum': momentum cannot be used with AdaGrad"):
        netcli.Solver(path)
    path = make_tiny(tmp_path)
    open(path, "a").write("base_lr: fast\n")
    with pytest.raises(ConfigError, match="appears twice"):
        netcli.Solver(path)


def test_clip_gradients_scales_to_the_global_norm(tmp_path):
    path = make_tiny(tmp_path, momentum=0.0, drop=0.0, mirror="false", extra="clip_gradients: 0.01\n")
    s = netcli.Solver(path, progress=False)
    net = s.net
    w0 = net.param_data.copy()
    net.clear_param_diffs()
    net.forward_backward()
    g = net.param_diff.astype(np.float64).copy()
    norm = np.sqrt((g * g).sum())
    assert norm > 0.01
    rate = s.learning_rate()
    s._apply_update(False)
    lr = np.repeat(net.lr_mults, np.diff(net.param_offsets))
    decay = np.repeat(net.decay_mults, np.diff(net.param_offsets)) * 0.0005
    expected = w0 - rate * lr * (g * 0.01 / norm + decay * w0)     # clipped first, then weight decay
    np.testing.assert_allclose(net.param_data, expected, rtol=1e-5, atol=1e-8)


def test_unwritable_snapshot_folder_fails_before_training(tmp_path):
    s = netcli.Solver(make_tiny(tmp_path), progress=False)
    (tmp_path / "blocker").write_text("a file, not a folder")
    s.prefix = str(tmp_path / "blocker" / "sub" / "snap")
    with pytest.raises(NetcliError, match="cannot write snapshots to"):
        s.solve()
    assert s.iter == 0


@pytest.mark.parametrize("kind", ["SGD", "NESTEROV", "ADAGRAD", "RMSPROP", "ADADELTA", "ADAM"])
def test_updates_flush_subnormals_to_zero(kind):
    p = params(type=kind, momentum=0.0 if kind in ("ADAGRAD", "RMSPROP") else 0.9)
    n = 4
    rule = RULES[kind](p, np.ones(n, np.float32), np.zeros(n, np.float32))
    w = np.array([1e-39, -2e-40, 0.5, 1e-20], np.float32)     # two subnormal weights
    g = np.array([0.0, 0.0, 0.1, 0.0], np.float32)
    rule.step(w, g, 0.01, 0)
    tiny = np.finfo(np.float32).tiny
    for a in [w] + rule.history:
        assert not np.any((a != 0) & (np.abs(a) < tiny)), a
    assert w[0] == 0 and w[1] == 0 and w[2] != 0.5 and w[3] != 0


@pytest.mark.parametrize("kind", ["SGD", "NESTEROV", "ADAGRAD", "RMSPROP", "ADADELTA", "ADAM", "ADAMW"])
def test_a_nan_gradient_leaves_nan_weights_not_zeros(kind):
    """The flush to zero takes subnormals only: a nan (or inf) the update makes stays, so that the
    next loss shows the divergence, instead of weights silently set to 0."""
    p = params(type=kind, momentum=0.0 if kind in ("ADAGRAD", "RMSPROP") else 0.9)
    rule = RULES[kind](p, np.ones(3, np.float32), np.zeros(3, np.float32))
    w = np.array([0.5, -0.25, 2.0], np.float32)
    rule.step(w, np.array([np.nan, 0.1, np.inf], np.float32), 0.01, 0)
    assert np.isnan(w[0]) and not np.isfinite(w[2]) and np.isfinite(w[1]) and w[1] != -0.25
    assert np.isnan(rule.history[0][0])


# -- snapshots and faults (issue 10) -----------------------------------------------------------------
def test_interrupted_pair_is_completed_and_temporaries_removed(tmp_path):
    s = netcli.Solver(make_tiny(tmp_path, max_iter=20, snapshot=10), progress=False)
    s.prefix = str(tmp_path / "snaps" / "tiny")
    s.step(10)
    s.snapshot()
    snaps = tmp_path / "snaps"
    # a run killed between the two renames: weights final, solver state still temporary
    os.replace(snaps / "tiny_iter_10.solverstate.npz", snaps / "tiny_iter_10.solverstate.npz.tmp")
    (snaps / "tiny_iter_20.weights.npz.tmp").write_bytes(b"half")            # killed while writing
    (snaps / "tiny_iter_20.weights.npz.abc123.tmp").write_bytes(b"")         # the older temp name
    (snaps / "other_iter_5.weights.npz.tmp").write_bytes(b"not ours")
    finished, removed = snapmod.recover(s.prefix)
    assert [os.path.basename(f) for f in finished] == ["tiny_iter_10.solverstate.npz"]
    assert sorted(os.listdir(snaps)) == ["other_iter_5.weights.npz.tmp", "tiny_iter_10.solverstate.npz",
                                         "tiny_iter_10.weights.npz"]
    r = netcli.Solver(str(tmp_path / "solver.yaml"), progress=False)
    r.restore(snaps / "tiny_iter_10.solverstate.npz")
    np.testing.assert_array_equal(r.net.param_data, s.net.param_data)


def test_snapshots_honour_the_umask(tmp_path):
    old = os.umask(0o022)
    try:
        s = netcli.Solver(make_tiny(tmp_path, max_iter=2), progress=False)
        s.step(1)
        w, st = s.snapshot()
    finally:
        os.umask(old)
    assert os.stat(w).st_mode & 0o777 == 0o644 and os.stat(st).st_mode & 0o777 == 0o644


def test_disk_full_keeps_the_previous_pair_and_leaves_nothing(tmp_path, monkeypatch):
    s = netcli.Solver(make_tiny(tmp_path, max_iter=20, snapshot=10), progress=False)
    s.step(10)
    before = {f: (tmp_path / "snaps" / f).read_bytes() for f in os.listdir(tmp_path / "snaps")}
    real = np.savez
    calls = []

    def full(f, **arrays):        # the second file of the pair hits a full disk half-way
        calls.append(1)
        if len(calls) == 2:
            f.write(b"partial")
            raise OSError(28, "No space left on device")
        real(f, **arrays)
    monkeypatch.setattr(snapmod.np, "savez", full)
    with pytest.raises(NetcliError, match="the disk is full .*earlier snapshots are intact"):
        s.step(10)
    after = {f: (tmp_path / "snaps" / f).read_bytes() for f in os.listdir(tmp_path / "snaps")}
    assert after == before


@pytest.mark.parametrize("damage,expected", [
    (lambda st: st.update(iter=np.float64(np.nan)), "entry 'iter' is damaged"),
    (lambda st: st.update(net_state=np.array("{not json")), "entry 'net_state' is damaged \\(not JSON\\)"),
    (lambda st: st.update(net_state=np.array('{"data": {"seed": 1}}')), "entry 'net_state' .* is damaged"),
    (lambda st: st.pop("lr_step"), "not a netcli solver state \\(missing lr_step\\)"),
    (lambda st: st.update(type=np.int64(3)), "entry 'type' is damaged"),
    (lambda st: st.update(learned_net=np.array("nowhere.npz")), "no such weights file"),
])
def test_damaged_solver_states_are_one_error(tmp_path, damage, expected):
    s = netcli.Solver(make_tiny(tmp_path, max_iter=4), progress=False)
    s.step(2)
    _, spath = s.snapshot()
    st = dict(np.load(spath))
    damage(st)
    np.savez(spath, **st)
    r = netcli.Solver(str(tmp_path / "solver.yaml"), progress=False)
    with pytest.raises(NetcliError, match=expected):
        r.restore(spath)


def test_state_without_rng_or_batch_is_one_error(tmp_path):
    import json
    s = netcli.Solver(make_tiny(tmp_path, max_iter=4), progress=False)
    s.step(2)
    _, spath = s.snapshot()
    for drop in ("rng", "batch"):
        st = dict(np.load(spath))
        state = json.loads(str(st["net_state"]))
        if drop == "rng":
            del state["rng"]
        else:
            del state["data"]["batch"]
        st["net_state"] = np.array(json.dumps(state))
        np.savez(spath, **st)
        r = netcli.Solver(str(tmp_path / "solver.yaml"), progress=False)
        with pytest.raises(NetcliError, match="entry 'net_state' .* is damaged"):
            r.restore(spath)


def test_weights_that_are_not_weights(tmp_path):
    s = netcli.Solver(make_tiny(tmp_path, max_iter=4), progress=False)
    np.save(tmp_path / "w.npy", np.zeros(3))
    with pytest.raises(NetcliError, match="a single .npy array, not an .npz archive"):
        s.net.load(str(tmp_path / "w.npy"))
    (tmp_path / "w.yaml").write_text("a: 1\n")
    with pytest.raises(NetcliError, match="w.yaml is a net or solver file; weights are"):
        s.net.load(str(tmp_path / "w.yaml"))
    (tmp_path / "w.txt").write_text("a: 1\n")
    with pytest.raises(NetcliError, match="not an .npz archive"):
        s.net.load(str(tmp_path / "w.txt"))


@pytest.mark.parametrize("old,new,expected", [
    ("batch_size: 16", "batch_size: 8", "not an exact continuation: data layer 'data' batch_size 16 in the "
                                        "snapshot, 8 now"),
    ("{name: data, type: Data", "{name: mnist, type: Data", "data layer 'mnist' is not in the snapshot (renamed?)"),
])
def test_resume_with_changed_data_layer_warns_once(tmp_path, capsys, old, new, expected):
    s = netcli.Solver(make_tiny(tmp_path, max_iter=4), progress=False)
    s.step(2)
    _, spath = s.snapshot()
    (tmp_path / "net.yaml").write_text((tmp_path / "net.yaml").read_text().replace(old, new))
    r = netcli.Solver(str(tmp_path / "solver.yaml"), progress=False)
    capsys.readouterr()
    r.restore(spath)
    err = capsys.readouterr().err
    assert err.count("WARNING") == 1 and expected in err, err


def test_divergence_writes_no_nonfinite_snapshot_and_names_the_last_good_one(tmp_path):
    s = netcli.Solver(make_tiny(tmp_path, lr=30.0, momentum=0.99, max_iter=400, snapshot=1,
                                test_interval=0), progress=False)
    with pytest.raises(NetcliError, match=r"Iteration (\d+): loss is (nan|inf); .*the last snapshot before it "
                                          r"went bad is .*tiny_iter_(\d+).solverstate.npz") as e:
        s.solve()
    import re
    bad, good = re.search(r"Iteration (\d+).*tiny_iter_(\d+)", str(e.value)).groups()
    assert int(good) < int(bad)
    for f in os.listdir(tmp_path / "snaps"):
        if f.endswith(".weights.npz"):
            assert all(np.isfinite(a).all() for a in snapmod.read_weights(tmp_path / "snaps" / f).values()), f


def test_whole_set_test_counts_each_sample_once(tmp_path):
    """150 test samples, batch 100: the second batch holds 50 real samples, not 50 + 50 repeated."""
    from tinynet import make_data
    path = make_tiny(tmp_path, test_interval=10)
    make_data(tmp_path / "test.npz", 150, 1)
    text = (tmp_path / "net.yaml").read_text().replace("batch_size: 32", "batch_size: 100")
    (tmp_path / "net.yaml").write_text(text)
    s = netcli.Solver(path, progress=False)
    s.step(5)
    result = s.test()
    # independent reference: the same weights, one sample at a time
    ref = netcli.Net(str(tmp_path / "net.yaml"), phase="TEST", batch_size=1)
    ref.share_weights(s.net)
    accs = [ref.forward()["accuracy"].item() for _ in range(150)]
    assert result["accuracy"] == pytest.approx(np.mean(accs), abs=1e-6)     # float32 batch means


def test_bit_flipped_snapshot_files_are_clean_errors(tmp_path):
    import random
    s = netcli.Solver(make_tiny(tmp_path, max_iter=4), progress=False)
    s.step(2)
    files = s.snapshot()
    originals = [open(f, "rb").read() for f in files]
    rnd = random.Random(1)
    for k in range(40):
        which = k % 2
        raw = bytearray(originals[which])
        for _ in range(rnd.randrange(1, 6)):
            i = rnd.randrange(len(raw))
            raw[i] ^= 1 << rnd.randrange(8)
        open(files[which], "wb").write(bytes(raw))
        r = netcli.Solver(str(tmp_path / "solver.yaml"), progress=False)
        try:
            r.restore(files[1])
        except NetcliError:
            pass
        open(files[which], "wb").write(originals[which])


def test_netcli_test_counts_each_sample_once(tmp_path):
    from tinynet import make_data
    from netcli.commands.score import score
    make_tiny(tmp_path)
    make_data(tmp_path / "test.npz", 150, 1)
    net_path = str(tmp_path / "net.yaml")
    (tmp_path / "net.yaml").write_text(open(net_path).read().replace("batch_size: 32", "batch_size: 100"))
    net = netcli.Net(net_path, phase="TEST", seed=3)
    net.save(str(tmp_path / "w.npz"))
    res = score(net_path, str(tmp_path / "w.npz"))
    ref = netcli.Net(net_path, phase="TEST", batch_size=1, weights=str(tmp_path / "w.npz"))
    accs = [ref.forward()["accuracy"].item() for _ in range(150)]
    assert res["samples"] == 150 and res["iterations"] == 2
    assert res["outputs"]["accuracy"] == pytest.approx(np.mean(accs), abs=1e-6)


def test_lenet_weights_bit_identical_for_any_thread_count(tmp_path):
    """20 LeNet iterations (shuffled data, momentum, weight decay) with 1, 2, 3 and 4 threads:
    the same bits (netcli/exec/cpu.py: fixed shares, one fixed combination order; a different
    order shows in the last bits after one update)."""
    from netcli import log
    from netcli.exec import threads
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    old = threads.count()
    weights = []
    log.set_quiet(True)
    try:
        for n in (1, 2, 3, 4):
            threads.set_threads(n)
            s = netcli.Solver(os.path.join(root, "configs", "lenet_solver.yaml"), max_iter=20, progress=False)
            s.test_interval = 0
            s.step(20)
            weights.append(s.net.param_data.copy())
    finally:
        threads.set_threads(old)
        log.set_quiet(False)
    for w in weights[1:]:
        assert np.array_equal(w, weights[0])


def test_solver_mistakes_are_reported_together_with_lines(tmp_path):
    make_tiny(tmp_path)
    p = tmp_path / "bad_solver.yaml"
    p.write_text("net: net.yaml\ntype: RMSProp\nmomentum: 0.9\nlr_policy: step\nmax_iter: 5\nmax_epochs: 1\n")
    with pytest.raises(ConfigError) as e:
        netcli.Solver(str(p))
    assert e.value.problems == [
        f"{p}:4: field 'stepsize': lr_policy step needs stepsize > 0",
        f"{p}:3: field 'momentum': momentum cannot be used with RMSProp",
        f"{p}:6: field 'max_epochs': give max_iter or max_epochs, not both"]
