"""What making a Solver takes before its loop: reading and checking the solver file, finding its
nets (Caffe's rules), building them (the test nets sharing the TRAIN net's weights), placing them
on a device, and turning epochs into iterations."""
from __future__ import annotations

import math
import os

from ..config.load import load_config
from ..config.schema import Problems
from ..errors import ConfigError, NetcliError
from ..net import Net
from . import lr_policy
from .spec import SOLVER
from ..update_rules import RULES


def read_solver(path):
    """Parse and check the solver file; returns (params, where, train net, test nets, train
    state): where(params, field) is 'file:line' of a field, a test net is (net, stages, level)."""
    tree = load_config(path, net=False)
    problems = Problems()
    p = SOLVER.parse(tree, problems, None, "")
    problems.raise_if_any()
    where = lambda params, f: f"{path}:{(params.loc(f) or tree.loc).line}"     # noqa: E731
    at = lambda f: p.loc(f.split(".")[0]) or tree.loc          # noqa: E731 - the line of a field
    train, tests = net_sources(p, path, where)
    lr_policy.check(p, problems, at)
    RULES[p.type].check(p, problems, at)
    for a, b in (("max_iter", "max_epochs"), ("test_interval", "test_interval_epochs"),
                 ("snapshot", "snapshot_epochs")):
        if p.has(a) and p.has(b):
            problems.add(at(b), f"give {a} or {b}, not both", None, b)
    problems.raise_if_any()
    train_state = (tuple(p.train_state.stage), p.train_state.level) if p.has("train_state") else ((), 0)
    return p, where, train, tests, train_state


def net_sources(p, path, where):
    """Caffe's rules for where the nets come from: the TRAIN net from one of net, net_param,
    train_net, train_net_param; the test nets from test_net_param, then test_net, then as many
    more from net/net_param as test_iter (or test_state) has values left, each with its
    test_state. Returns (train net, [(test net, stages, level)])."""
    from ..config.paths import resolve

    def file(field, name):
        try:
            return resolve(name, os.path.dirname(path), "net file", os.path.isfile)
        except NetcliError as e:
            raise ConfigError(f"{where(p, field)}: field '{field}': {e}") from None

    given = [f for f in ("net", "net_param", "train_net", "train_net_param") if p.has(f)]
    if len(given) != 1:
        what = "the solver needs a net file" if not given else f"give one of {', '.join(given)}, not several"
        raise ConfigError(f"{where(p, given[-1] if given else 'net')}: field '{given[-1] if given else 'net'}': "
                          f"{what} (net, net_param, train_net or train_net_param)")
    source = given[0]
    train = file(source, p.net if source == "net" else p.train_net) if source in ("net", "train_net") else \
        getattr(p, source)
    tests = [(t, (), 0) for t in p.test_net_param] + [(file("test_net", t), (), 0) for t in p.test_net]
    if source in ("net", "net_param"):          # the rest of the test nets are built from it
        count = max(len(p.test_iter), len(p.test_state), 1 if not tests else 0) - len(tests)
        tests += [(train, (), 0)] * max(count, 0)
    if p.test_state and len(p.test_state) != len(tests):
        raise ConfigError(f"{where(p, 'test_state')}: field 'test_state': {len(p.test_state)} given for "
                          f"{len(tests)} test net(s); give one per test net or none")
    states = p.test_state or [None] * len(tests)
    tests = [(t, tuple(st.stage) if st else (), st.level if st else 0) for (t, _, _), st in zip(tests, states)]
    if p.test_iter and len(p.test_iter) != len(tests):
        raise ConfigError(f"{where(p, 'test_iter')}: field 'test_iter': {len(p.test_iter)} value(s) for "
                          f"{len(tests)} test net(s); give one per test net")
    return train, tests


def build_nets(train, tests, seed, train_state, allow_python, device="cpu", release_rows="auto", test_backward=False):
    """The TRAIN net, and the test nets sharing its weights (a file or a tree each, with stages
    and level). With one test net and a TRAIN data layer holding out a validation_fraction,
    a VALIDATION net goes first: periodic tests use it, the TEST net runs at the end.
    All on `device` ("cpu" or "cuda:N"); release_rows: every net's (Net's argument: the TRAIN net's
    training iterations, the test nets' forward); the test nets are made for inference (Net's
    argument) unless `test_backward`. Returns
    (train net, test nets, validation)."""
    stages, level = train_state
    net = Net(train, phase="TRAIN", seed=seed, stages=stages, level=level, allow_python=allow_python, device=device,
              release_rows=release_rows)
    test_nets = [Net(t, phase="TEST", seed=seed + 1 + k, stages=s, level=lv, allow_python=allow_python,
                     device=device, inference=not test_backward, release_rows=release_rows)
                 for k, (t, s, lv) in enumerate(tests)]
    validation = len(tests) == 1 and any(getattr(l.dp, "validation_fraction", 0) for l in net.data_layers())
    if validation:
        t, s, lv = tests[0]
        test_nets.insert(0, Net(t, phase="VALIDATION", seed=seed + 2, stages=s, level=lv, allow_python=allow_python,
                                device=device, inference=not test_backward, release_rows=release_rows))
    for t in test_nets:
        t.share_weights(net)
    return net, test_nets, validation


def choose_device(p, gpu, group):
    """Where the nets run ("cpu" or "cuda:N", netcli/exec/): --gpu, else solver_mode and device_id.
    Returns (device, why GPU mode fell back to the CPU or None): solver_mode GPU without a usable
    GPU trains on the CPU (said in solve()); an explicit --gpu that cannot be had is an error."""
    from ..exec import device_of
    from ..gpu import device
    if gpu is not None:
        return device_of(gpu, group), None
    try:
        chosen = device_of(p.device_id if p.solver_mode == "GPU" else -1, group)
        if chosen != "cpu":
            device.select(p.device_id)
        return chosen, None
    except NetcliError as e:
        return "cpu", getattr(e, "reason", str(e))


def lengths(p, net, test_nets, validation, max_iter, where):
    """max_iter, test and snapshot intervals in iterations (epochs converted), test lengths: a
    dict of the Solver's attributes iters_per_epoch, max_iter, test_interval, snapshot_interval,
    test_iters and test_whole."""
    n_train, b_train = net.data_size(), net.batch_size()
    per_epoch = n_train / (b_train * p.iter_size) if n_train else None

    def from_epochs(field, value):
        if per_epoch is None:
            raise ConfigError(f"{where(p, field)}: field '{field}': epochs need a Data layer in "
                              "the TRAIN net to know the data size")
        return max(1, math.ceil(value * per_epoch))

    whole = [math.ceil(t.data_size() / t.batch_size()) if t.data_size() else 0 for t in test_nets]
    given = list(p.test_iter) + [None] if validation else list(p.test_iter)
    given += [None] * (len(whole) - len(given))
    out = dict(
        iters_per_epoch=per_epoch,
        max_iter=(max_iter if max_iter is not None else
                  from_epochs("max_epochs", p.max_epochs) if p.max_epochs else p.max_iter or 0),
        test_interval=(from_epochs("test_interval_epochs", p.test_interval_epochs)
                       if p.test_interval_epochs else p.test_interval),
        snapshot_interval=from_epochs("snapshot_epochs", p.snapshot_epochs) if p.snapshot_epochs else p.snapshot,
        test_iters=[g or w for g, w in zip(given, whole)],
        # without test_iter a test covers its whole data set once, each sample exactly once
        test_whole=[g is None and w > 0 for g, w in zip(given, whole)])
    if out["test_interval"] and not out["test_iters"][0]:
        raise ConfigError(f"{where(p, 'test_interval')}: field 'test_iter': the TEST net has no Data "
                          "layer, so test_iter must be given")
    return out


def prefix(p, path):
    """The snapshot prefix: snapshot_prefix (a folder: <folder>/<solver name>), else snapshots/<solver name>."""
    name = os.path.splitext(os.path.basename(path))[0]
    given = p.snapshot_prefix or os.path.join("snapshots", name)
    return os.path.join(given, name) if os.path.isdir(given) else given
