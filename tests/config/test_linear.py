"""The readers and the graph checks are linear in their input: each is timed on an input and on
one ten times larger, and the ratio must stay far below the hundredfold of a quadratic one.
Only ratios are compared, never absolute times, and the collector is off while timing."""
import gc
import time

import pytest

from netcli import Net
from netcli.config.compile import compile_net
from netcli.config.prototxt import is_prototxt, load_prototxt
from netcli.errors import ConfigError

LINEAR = 30       # a linear reader grows about 10x on a 10x input, a quadratic one about 100x


def _seconds(run, arg, reps):
    best = float("inf")
    for _ in range(3):
        t = time.perf_counter()
        for _ in range(reps):
            run(arg)
        best = min(best, time.perf_counter() - t)
    return best


def growth(run, make, n):
    """Time of run(make(10 n)) over run(make(n)), each repeated so that the small one takes
    at least 10 ms (the same count for both), best of 3."""
    small, large = make(n), make(10 * n)
    was = gc.isenabled()
    gc.disable()
    try:
        reps, t = 1, _seconds(run, small, 1)
        while t < 0.01:
            reps *= 2
            t = _seconds(run, small, reps)
        return _seconds(run, large, reps) / t
    finally:
        if was:
            gc.enable()


def _raises(fn, *args):
    try:
        fn(*args)
    except ConfigError:
        return
    raise AssertionError("expected a ConfigError")


def test_tokenizer_is_linear_in_a_run_of_digits():
    with pytest.raises(ConfigError, match=r"^x.prototxt:2: prototxt syntax error: '1111111111111111111111111111"
                                          r"11\.\.\. \(5001 characters\)' is neither a number nor a name$"):
        load_prototxt("x.prototxt", "\na: " + "1" * 5000 + "x\n")
    assert growth(lambda text: _raises(load_prototxt, "x.prototxt", text),
                  lambda n: "a: " + "1" * n + "x\n", 1000) < LINEAR


@pytest.mark.parametrize("make", [
    lambda n: "a: 1\n" + "\n" * n + "b: 2\n",           # blank lines (YAML after all)
    lambda n: "a" + " " * n + "x\n",                     # blanks within a line
    lambda n: "layer\n" + " \n" * n + "x\n",             # a name followed by blank lines
])
def test_format_sniff_is_linear(make):
    assert growth(lambda text: is_prototxt("net.cfg", text), make, 2000) < LINEAR


def test_sniff_still_tells_the_formats_apart():
    assert is_prototxt("net.cfg", "name: 'x'\nlayer {\n  name: 'a'\n}\n")
    assert is_prototxt("net.cfg", "layer\n\n  {  # a block\n}\n")
    assert not is_prototxt("net.cfg", "layers:\n  - {name: a}\n")
    assert not is_prototxt("net.cfg", "a: 1\n" + "\n" * 50 + "b: {c: 1}\n")


def _relus(n, name=lambda i: f"r{i}", bottom=lambda i: "data", top=lambda i: f"t{i}"):
    layers = [{"name": "data", "type": "Input", "top": "data", "input_param": {"shape": {"dim": [1, 3]}}}]
    return {"layers": layers + [{"name": name(i), "type": "ReLU", "bottom": bottom(i), "top": top(i)}
                                for i in range(n)]}


def test_duplicate_layer_names_are_renamed_in_linear_time():
    spec = compile_net(_relus(5, name=lambda i: "r"))
    assert [x.name for x in spec.layers if x.type == "ReLU"] == ["r", "r#2", "r#3", "r#4", "r#5"]
    assert growth(compile_net, lambda n: _relus(n, name=lambda i: "r"), 1000) < LINEAR


def test_duplicate_names_skip_names_already_taken():
    tree = _relus(4, name=lambda i: ["r", "r#2", "r", "r"][i])
    assert [x.name for x in compile_net(tree).layers if x.type == "ReLU"] == ["r", "r#2", "r#3", "r#4"]


def test_in_place_layers_are_checked_in_linear_time():
    assert growth(compile_net, lambda n: _relus(n, top=lambda i: "data"), 1000) < LINEAR
    assert growth(lambda tree: Net(tree, phase="TRAIN"), lambda n: _relus(n, top=lambda i: "data"), 200) < LINEAR


def test_many_missing_bottoms_are_reported_in_linear_time():
    tree = _relus(3, bottom=lambda i: f"dta{i}")
    with pytest.raises(ConfigError, match="bottom 'dta0' is not produced by any earlier layer"):
        compile_net(tree)
    assert growth(lambda tree: _raises(compile_net, tree), lambda n: _relus(n, bottom=lambda i: f"missing{i}"),
                  300) < LINEAR
