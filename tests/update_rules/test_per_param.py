"""The solver's lr and decay multipliers as runs per param (update_rules.base.PerParam), not one
float per element: every rule's step gives the same bits as with per-element vectors, on 1 and
3 threads, and the multipliers take a few bytes instead of twice the params' memory."""
import numpy as np
import pytest

from netcli.config.schema import Problems
from netcli.config.yamlload import LDict
from netcli.exec import threads
from netcli.solver.spec import SOLVER
from netcli.update_rules import RULES
from netcli.update_rules.base import PerParam


@pytest.mark.parametrize("name", sorted(RULES))
def test_per_param_runs_give_the_bits_of_per_element_vectors(name):
    p = SOLVER.parse(LDict(dict(type=RULES[name].name, momentum=0.9, weight_decay=0.01)), Problems(), None, "")
    rng = np.random.default_rng(3)
    sizes = [50000, 7, 30000, 1, 20000, 20000]           # above the size where the rule splits over threads
    offsets = np.concatenate([[0], np.cumsum(sizes)])
    lr_mults, decay = [1.0, 2.0, 0.0, 1.0, 1.0, 1.0], [0.01, 0.0, 0.01, 0.02, 0.01, 0.01]
    per_element = [np.concatenate([np.full(n, v, np.float32) for n, v in zip(sizes, vals)])
                   for vals in (lr_mults, decay)]
    runs = [PerParam(vals, offsets) for vals in (lr_mults, decay)]
    assert np.array_equal(np.asarray(runs[0]), per_element[0]) and np.array_equal(np.asarray(runs[1]), per_element[1])
    assert runs[0].nbytes + runs[1].nbytes < 1000
    w0 = rng.standard_normal(offsets[-1]).astype(np.float32)
    grads = [rng.standard_normal(offsets[-1]).astype(np.float32) for _ in range(3)]
    old = threads.count()
    got = []
    try:
        for T, (lr, d) in ((1, per_element), (1, runs), (3, runs)):
            threads.set_threads(T)
            rule = RULES[name](p, lr, d)
            w = w0.copy()
            for it, g in enumerate(grads):
                rule.step(w, g.copy(), 0.01, it)
            got.append((w, [h.copy() for h in rule.history]))
    finally:
        threads.set_threads(old)
    for w, hist in got[1:]:
        assert np.array_equal(w, got[0][0]) and all(np.array_equal(a, b) for a, b in zip(hist, got[0][1]))
    assert not np.array_equal(got[0][0], w0)


@pytest.mark.parametrize("seed", range(4))
def test_runs_of_a_per_element_vector_give_it_back(seed):
    """PerParam.of: the runs of equal values of a per-element vector (what a rule given one keeps)."""
    rng = np.random.default_rng(seed)
    values = np.repeat(rng.choice([0.0, 0.5, 1.0, 2.0], 9).astype(np.float32), rng.integers(1, 5, 9))
    runs = PerParam.of(values)
    assert np.array_equal(np.asarray(runs), values) and runs.size == values.size
    assert all(a[2] != b[2] for a, b in zip(runs.runs, runs.runs[1:]))      # neighbours differ
    assert all(runs.value(lo, hi) == v and type(runs.value(lo, hi)) is np.float32 for lo, hi, v in runs.runs)
    assert PerParam.of(runs) is runs and PerParam.of(np.zeros(0, np.float32)).size == 0


@pytest.mark.parametrize("name", sorted(RULES))
def test_an_update_in_blocks_gives_the_bits_of_one_over_every_param(name):
    """Rule.cpu_step's block(lo, hi) (a training pass applies the update block by block, each
    thread its own: exec/cpu.py): blocks that cut through the runs of lr and decay multipliers
    give the bits of the update in one call, and of Rule.step."""
    p = SOLVER.parse(LDict(dict(type=RULES[name].name, momentum=0.9, weight_decay=0.01)), Problems(), None, "")
    rng = np.random.default_rng(5)
    sizes = [300, 7, 1, 500, 93]
    offsets = np.concatenate([[0], np.cumsum(sizes)])
    lr, decay = PerParam([1.0, 2.0, 0.0, 1.0, 3.0], offsets), PerParam([0.01, 0.0, 0.01, 0.02, 0.0], offsets)
    w0 = rng.standard_normal(offsets[-1]).astype(np.float32)
    grads = [rng.standard_normal(offsets[-1]).astype(np.float32) for _ in range(3)]
    cuts = [0, 150, 301, 302, 303, 700, offsets[-1]]
    got = []
    for how in ("step", "one", "blocks"):
        rule, w = RULES[name](p, lr, decay), w0.copy()
        for it, g in enumerate(grads):
            if how == "step":
                rule.step(w, g, 0.01, it)
            else:
                block = rule.cpu_step(w, g, 0.01, it)
                for lo, hi in ([(0, offsets[-1])] if how == "one" else zip(cuts[:-1], cuts[1:])):
                    block(lo, hi)
        got.append((w, rule.history))
    for w, hist in got[1:]:
        assert np.array_equal(w, got[0][0]) and all(np.array_equal(a, b) for a, b in zip(hist, got[0][1]))
    assert not np.array_equal(got[0][0], w0)
