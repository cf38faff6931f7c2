"""Test helpers: build one layer in float64 and check its gradients by finite differences,
as Caffe's GradientChecker does."""
from __future__ import annotations

import numpy as np

from netcli.blob import Blob
from netcli.config.schema import Problems
from netcli.config.yamlload import LDict
from netcli.layers import REGISTRY
from netcli.config.compile import layer_message


def make_layer(type_, params=None, bottom_shapes=(), n_tops=1, phase="TRAIN", seed=0,
               dtype=np.float64, bottoms_data=None):
    cls = REGISTRY[type_]
    problems = Problems()
    raw = LDict(name="L", type=type_, **(params or {}))
    p = layer_message(cls).parse(raw, problems, "L", "")
    problems.raise_if_any()
    rng = np.random.default_rng(seed)
    bottoms = []
    for i, s in enumerate(bottom_shapes):
        b = Blob(f"b{i}", s, dtype)
        b.data[...] = rng.standard_normal(s) if bottoms_data is None or bottoms_data[i] is None else bottoms_data[i]
        bottoms.append(b)
    tops = [Blob(f"t{i}") for i in range(n_tops)]
    layer = cls("L", p, phase, [b.name for b in bottoms], [t.name for t in tops], rng)
    layer.setup(bottoms, tops)
    for b in layer.blobs:
        shape = b.data
        b.data = rng.standard_normal(shape).astype(dtype)
        b.diff = np.zeros(shape, dtype)
    return layer, bottoms, tops


def _objective(layer, bottoms, tops, weights):
    layer.forward(bottoms, tops)
    return sum(float(np.sum(t.data * w)) for t, w in zip(tops, weights))


def check_gradient(layer, bottoms, tops, check_bottoms=None, check_params=True, eps=1e-5,
                   tol=1e-5, max_checks=40, seed=1, top_weights=None, reset=None):
    """Compare backward's bottom and param gradients with central differences of
    L = sum_k <top_k, R_k> for fixed random R_k. `reset` re-runs before each forward
    (for layers with randomness, e.g. re-seeding)."""
    rng = np.random.default_rng(seed)
    if check_bottoms is None:
        check_bottoms = [i for i in range(len(bottoms)) if i not in layer.no_grad_bottoms]
    layer.forward(bottoms, tops)
    weights = top_weights or [rng.standard_normal(t.data.shape) for t in tops]

    def run():
        if reset:
            reset()
        return _objective(layer, bottoms, tops, weights)

    run()
    for t, w in zip(tops, weights):
        t.diff[...] = w
    for b in layer.blobs:
        b.diff[...] = 0
    pd = [i in check_bottoms for i in range(len(bottoms))]
    layer.backward(tops, pd, bottoms)
    analytic = [(f"bottom{i}", bottoms[i].data, bottoms[i].diff.copy()) for i in check_bottoms]
    if check_params:
        analytic += [(f"param{i}", b.data, b.diff.copy()) for i, b in enumerate(layer.blobs)]
    checked = 0
    for what, data, grad in analytic:
        flat = data.reshape(-1)
        idx = rng.choice(flat.size, size=min(max_checks, flat.size), replace=False)
        for j in idx:
            old = flat[j]
            flat[j] = old + eps
            lp = run()
            flat[j] = old - eps
            lm = run()
            flat[j] = old
            num = (lp - lm) / (2 * eps)
            a = grad.reshape(-1)[j]
            scale = max(1.0, abs(a), abs(num))
            assert abs(a - num) <= tol * scale, (
                f"{layer.type} {what}[{np.unravel_index(j, data.shape)}]: analytic {a:.8g} "
                f"vs numeric {num:.8g}")
            checked += 1
    run()
    return checked


# A loss layer in pycaffe's interface (our own, written for the tests): 0.5 / N * sum (a - b)^2,
# as EuclideanLoss; it subclasses caffe.Layer as Caffe's examples do, so `import caffe` must find
# netcli's stand-in. Format with the class name.
PY_EUCLIDEAN_LOSS = """
import numpy as np
import caffe


class {name}(caffe.Layer):
    def setup(self, bottom, top):
        if len(bottom) != 2:
            raise Exception("Need two inputs")

    def reshape(self, bottom, top):
        self.d = np.zeros_like(bottom[0].data)
        top[0].reshape(1)

    def forward(self, bottom, top):
        self.d[...] = bottom[0].data - bottom[1].data
        top[0].data[...] = np.sum(self.d ** 2) / bottom[0].num / 2.0

    def backward(self, top, propagate_down, bottom):
        for i, sign in ((0, 1), (1, -1)):
            if propagate_down[i]:
                bottom[i].diff[...] = sign * top[0].diff[0] * self.d / bottom[i].num
"""


def fresh_kernel(module):
    """A Numba function never compiled before (x + 1), named as if from `module`: its first call
    compiles whatever the on-disk cache holds (ops/compiles.py's notice)."""
    from numba import njit

    def add_one(x):
        return x + 1
    add_one.__module__ = module
    return njit(add_one)


def with_a_helper(dtype, fn, seconds=20.0):
    """fn() run by the lead of a team (netcli/exec/team.py) whose one helper thread takes tiles of
    its jobs of `dtype` (the helpers' loop compiled first, and the lead starts once the helper's
    thread runs); fn's result, once the helper has gone, and how many tiles it took. Run again
    where the helper took none, until it took some or `seconds` have passed: on a loaded machine
    (another process busy on the cores) its thread may not run before the lead ends, three tries
    in a row (2 vCPUs, one busy loop beside the tests: 1-6 of 44 such tests failed a run)."""
    import threading
    import time
    from netcli.exec import team
    from netcli.exec.claims import FLAGS, RECORD
    from netcli.ops.cpu.team_jobs import serve
    assert serve(np.zeros(FLAGS, np.int64), np.zeros(RECORD, np.int64), 0, np.zeros(0, dtype)) == 0
    deadline = time.monotonic() + seconds
    while True:
        crew = team.Team(dtype)
        crew.run, crew.size = 1, 2
        running = threading.Event()

        def helps(crew=crew, running=running):
            running.set()
            team.help_lead(crew)
        helper = threading.Thread(target=helps)
        helper.start()
        running.wait()
        time.sleep(0.002)
        got = team.lead(crew, fn)
        helper.join(10)
        assert not helper.is_alive()
        if crew.helped or time.monotonic() > deadline:
            return got, crew.helped


def assert_a_helper_keeps_every_bit(dtype, cases, passes):
    """passes(case, dtype, seed, crew) -> the arrays it wrote: alone (crew None), then three
    times over every case as a team's jobs with one helper (with_a_helper); the same bits, every
    float finite, and the helper took tiles."""
    from netcli.exec import team
    alone = [passes(case, dtype, i, None) for i, case in enumerate(cases)]
    together, helped = with_a_helper(dtype, lambda: [passes(case, dtype, i % len(cases), team.current())
                                                     for i, case in enumerate(cases * 3)])
    assert helped > 0
    for i, got in enumerate(together):
        for g, w in zip(got, alone[i % len(cases)]):
            assert np.array_equal(g, w) and (g.dtype.kind != "f" or np.isfinite(g).all()), cases[i % len(cases)]
