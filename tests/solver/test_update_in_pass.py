"""The update a training pass applies itself (update_rules.base.Step; exec/cpu.py's run, each
thread the params whose shares' gradients it summed): the same bits as the Solver's own update,
on 1 and 2 threads, for a rule with one history and one with two; never where something comes
between the gradients and the update; never after a loss that is not finite."""
import numpy as np
import pytest

import netcli
from netcli.solver import TrainingDiverged
from netcli.solver.callbacks import Callback
from tinynet import make_tiny


class ReadsGradients(Callback):
    """A hook on the gradients (pycaffe's on_gradients, the sum over processes): the Solver then
    applies the update itself, after it."""

    def on_gradients(self, solver):
        self.seen = True


def trained(path, iterations, own_update):
    s = netcli.Solver(path, progress=False, quiet=True)
    separate, real = [], s.net.executor.update
    s.net.executor.update = lambda *args: (separate.append(s.iter), real(*args))
    if own_update:
        s.callbacks.items.append(ReadsGradients())
    s.step(iterations)
    return s, separate


@pytest.mark.parametrize("rule", ["SGD", "Adam"])
def test_the_update_in_the_pass_gives_the_bits_of_the_solvers_own(tmp_path, thread_count, rule):
    path = make_tiny(tmp_path, batch=64, type=rule, lr=0.01 if rule == "Adam" else 0.05, test_interval=0)
    got = []
    for threads in (1, 2):
        thread_count(threads)
        for own in (False, True):
            s, separate = trained(path, 12, own)
            assert separate == (list(range(12)) if own else [])
            got.append((s.net.param_data.copy(), s.net.param_diff.copy(), [h.copy() for h in s.rule.history],
                        s.losses))
    first = got[0]
    assert not np.array_equal(first[0], netcli.Solver(path, progress=False, quiet=True).net.param_data)
    for w, g, hist, losses in got[1:]:
        assert np.array_equal(w, first[0]) and np.array_equal(g, first[1]) and losses == first[3]
        assert all(np.array_equal(a, b) for a, b in zip(hist, first[2]))


def test_one_share_on_one_thread_updates_in_the_pass_and_on_two_apart(tmp_path, thread_count):
    """A batch of one share: the pass runs on one thread, so on two the update keeps its own run
    over both; the same bits either way."""
    path = make_tiny(tmp_path, batch=16, test_interval=0)
    got = []
    for threads in (1, 2):
        thread_count(threads)
        s, separate = trained(path, 5, False)
        assert separate == ([] if threads == 1 else list(range(5)))
        got.append(s.net.param_data.copy())
    assert np.array_equal(got[0], got[1])


@pytest.mark.parametrize("own", [False, True])
def test_a_loss_that_is_not_finite_leaves_the_weights_as_they_were(tmp_path, thread_count, own):
    """The Solver stops at a nan loss with the weights that gave it (the update not applied),
    whether the pass or the Solver would have applied it."""
    thread_count(2)
    path = make_tiny(tmp_path, batch=64, test_interval=0)
    s, separate = trained(path, 3, own)
    s.net.layers[s.net.layer_names.index("ip")].blobs[0].data[0, 0] = np.nan
    before = s.net.param_data.copy()
    with pytest.raises(TrainingDiverged, match="Iteration 3: loss is nan"):
        s.step(1)
    assert np.array_equal(s.net.param_data, before, equal_nan=True) and s.iter == 3
