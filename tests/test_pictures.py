"""netcli draw (SVG without Graphviz, DOT, PNG), netcli plot (learning curves from run logs) and
test --plot (confusion matrix): files that parse, hold what they should, and nodes that do not
overlap."""
import itertools
import xml.etree.ElementTree as ET

import numpy as np
import pytest
from click.testing import CliRunner

import netcli
from netcli.cli import cli
from netcli.viz.draw import Graph
from netcli.viz.plot import smooth
from tinynet import make_tiny

SVG = "{http://www.w3.org/2000/svg}"


def run(*args):
    return CliRunner().invoke(cli, list(args), obj={})


def _boxes(g):
    return {k: (n["x"] - n["w"] / 2, n["y"] - n["h"] / 2, n["x"] + n["w"] / 2, n["y"] + n["h"] / 2)
            for k, n in g.nodes.items()}


@pytest.mark.parametrize("rankdir", ["TB", "LR"])
@pytest.mark.parametrize("model,phase", [("configs/lenet_train_test.yaml", "TEST"),
                                         ("tests/data/caffe/models/bvlc_googlenet/deploy.prototxt", "TEST")])
def test_layout_has_no_overlaps_and_lanes_cross_no_node(model, phase, rankdir):
    g = Graph(netcli.Net(model, phase=phase), rankdir)
    g.layout()
    boxes = _boxes(g)
    for (a, ba), (b, bb) in itertools.combinations(boxes.items(), 2):
        assert ba[2] <= bb[0] or bb[2] <= ba[0] or ba[3] <= bb[1] or bb[3] <= ba[1], (a, b)
    right = max(x1 for _, _, x1, _ in boxes.values())
    for (a, b), pts in g.routes.items():
        assert 2 <= len(pts) <= 6
        assert all(abs(p[0] - q[0]) + abs(p[1] - q[1]) > 0.5 for p, q in zip(pts, pts[1:]))   # arrows have length
        if g.nodes[b]["rank"] - g.nodes[a]["rank"] > 1:      # the lane: beside every node
            far = max(p[0] for p in pts) if rankdir == "TB" else max(p[1] for p in pts)
            assert far > (right if rankdir == "TB" else max(y1 for _, _, _, y1 in boxes.values()))
        for x, y in pts:
            assert 0 <= x <= g.size[0] and 0 <= y <= g.size[1]
        # no edge runs through a node other than its two ends
        for (x0, y0), (x1, y1) in zip(pts, pts[1:]):
            for t in np.linspace(0, 1, 60):
                x, y = x0 + t * (x1 - x0), y0 + t * (y1 - y0)
                inside = [k for k, (l, tp, r, bt) in boxes.items() if l + 1 < x < r - 1 and tp + 1 < y < bt - 1]
                assert set(inside) <= {a, b}, ((a, b), inside)


def test_draw_svg_dot_png(tmp_path):
    make_tiny(tmp_path)
    net_file = str(tmp_path / "net.yaml")
    r = run("draw", net_file, "-o", str(tmp_path / "n.svg"))
    assert r.exit_code == 0, r.output
    root = ET.parse(tmp_path / "n.svg").getroot()
    texts = [t.text for t in root.iter(f"{SVG}text")]
    net = netcli.Net(net_file, phase="TRAIN")
    for name in ("conv", "pool", "ip", "loss", "data", "label"):
        assert name in texts
    assert "16x4x6x6" in texts                          # the conv top's shape
    layers = [c for c in net.configs if not c.inserted]
    assert len(root.findall(f"{SVG}rect")) == len(layers) + 1      # + the background
    assert "-> pool (in place)" in texts                # relu and dropout folded into their layer
    r = run("draw", net_file, "-o", str(tmp_path / "n.dot"), "--rankdir", "LR")
    dot = (tmp_path / "n.dot").read_text()
    assert dot.startswith('digraph "tiny" {') and "rankdir=LR;" in dot and dot.count(" -> ") == len(Graph(net).edges)
    pytest.importorskip("matplotlib")
    r = run("draw", net_file, "-o", str(tmp_path / "n.png"))
    assert r.exit_code == 0, r.output
    from PIL import Image
    with Image.open(tmp_path / "n.png") as im:
        assert im.format == "PNG" and im.size[0] > 100 and im.size[1] > im.size[0]
    r = run("draw", net_file, "-o", str(tmp_path / "n.jpg"))
    assert r.exit_code == 1 and "the extension says the format: .svg, .dot, .png" in r.output


def test_smooth_is_a_trailing_mean():
    v = np.random.default_rng(0).random(20)
    s = smooth(v, 4)
    ref = [v[max(0, i - 3):i + 1].mean() for i in range(20)]
    np.testing.assert_allclose(s, ref)


def test_plot_curves_and_confusion_matrix(tmp_path):
    pytest.importorskip("matplotlib")
    from PIL import Image
    for name, lr in (("a", "0.05"), ("b", "0.01")):
        d = tmp_path / name
        d.mkdir()
        solver = make_tiny(d, max_iter=40, test_interval=10, display=5, lr=float(lr))
        assert run("train", "--solver", solver, "--quiet").exit_code == 0
    logs = [str(tmp_path / n / "snaps" / "tiny.log.jsonl") for n in ("a", "b")]
    r = run("plot", *logs, "-o", str(tmp_path / "curves.png"), "--smooth", "3", "--x", "seconds")
    assert r.exit_code == 0, r.output
    assert "train loss, test accuracy, test loss against seconds, 2 run(s)" in r.output
    with Image.open(tmp_path / "curves.png") as im:
        assert im.format == "PNG" and im.size[0] > 2 * im.size[1]          # three panels side by side
    (tmp_path / "names.txt").write_text("plain\nsquare\n")
    r = run("test", "--model", str(tmp_path / "a" / "net.yaml"), "--weights",
            str(tmp_path / "a" / "snaps" / "tiny_iter_40.weights.npz"), "--plot", str(tmp_path / "cm.png"),
            "--labels", str(tmp_path / "names.txt"))
    assert r.exit_code == 0, r.output
    assert "Confusion matrix" in r.output and (tmp_path / "cm.png").exists()       # --plot implies --metrics
    r = run("plot", logs[0], "-o", str(tmp_path / "curves.txt"))
    assert r.exit_code == 1 and "write .png, .svg or .pdf" in r.output


def test_plotting_without_matplotlib_says_what_to_install(tmp_path, monkeypatch):
    import sys
    make_tiny(tmp_path)
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    r = run("draw", str(tmp_path / "net.yaml"), "-o", str(tmp_path / "n.png"))
    assert r.exit_code == 1 and "pip install 'netcli[plot]'" in r.output
    r = run("draw", str(tmp_path / "net.yaml"), "-o", str(tmp_path / "n.svg"))     # SVG needs nothing
    assert r.exit_code == 0


def _log(path, *runs):
    """A run log of the given runs: (run_id, resumed_from, [iterations], ended)."""
    lines = []
    for rid, resumed, iters, ended in runs:
        lines.append({"event": "start", "run_id": rid, "iter": iters[0], "resumed_from": resumed, "net": "tiny"})
        for it in iters:
            lines.append({"event": "train", "run_id": rid, "iter": it, "loss": 1.0 / (it + 1),
                          "seconds": (it - iters[0]) / 10})
            lines.append({"event": "test", "run_id": rid, "iter": it, "outputs": {"accuracy": it / 100}})
        if ended:
            lines.append({"event": "end", "run_id": rid, "iter": iters[-1], "finished": True})
    import json
    path.write_text("".join(json.dumps(r) + "\n" for r in lines))
    return str(path)


def test_plot_draws_each_run_as_its_own_line(tmp_path, monkeypatch):
    pytest.importorskip("matplotlib")
    import netcli.viz.plot
    drawn = []

    def keep(fig, path):
        drawn.append([(line.get_label(), list(line.get_xdata())) for line in fig.axes[0].get_lines()])
    monkeypatch.setattr(netcli.viz.plot, "_save", keep)
    log = _log(tmp_path / "lenet.log.jsonl", ("a", None, [0, 10, 20, 30], False),
               ("b", None, [0, 10], True), ("c", "/s/lenet_iter_20.solverstate.npz", [20, 30, 40], True))
    r = run("plot", log, "-o", str(tmp_path / "c.png"))
    assert r.exit_code == 0 and "2 run(s)" in r.output, r.output
    # the resume (c) continues run 1 from iteration 20: no line back to 0
    assert drawn[-1] == [("lenet run 1", [0, 10, 20, 30, 40]), ("lenet run 2", [0, 10])]
    r = run("plot", log, "-o", str(tmp_path / "c.png"), "--run", "last", "--x", "seconds")
    assert r.exit_code == 0 and "1 run(s)" in r.output
    assert drawn[-1] == [("lenet run 2", [0.0, 1.0])]
    r = run("plot", log, "-o", str(tmp_path / "c.png"), "--run", "1", "--x", "seconds")
    assert drawn[-1] == [("lenet run 1", [0.0, 1.0, 2.0, 3.0, 4.0])]     # a resume's seconds go on
    one = _log(tmp_path / "one.log.jsonl", ("a", None, [0, 10], True))
    r = run("plot", one, log, "-o", str(tmp_path / "c.png"), "--run", "last")
    assert drawn[-1] == [("one", [0, 10]), ("lenet run 2", [0, 10])]


def test_plot_watch_redraws_until_the_run_ends(tmp_path):
    import json
    from netcli.viz.plot import watch
    log = _log(tmp_path / "live.log.jsonl", ("a", None, [0, 10], False))
    renders, more = [], [{"event": "train", "run_id": "a", "iter": 20, "loss": 0.1},
                         {"event": "end", "run_id": "a", "iter": 30, "finished": True}]

    def render():
        text = open(log).read()
        renders.append(text.count("\n"))
        return '"end"' in text

    def sleep(s):                        # the run goes on while plot waits
        if more:
            with open(log, "a") as f:
                f.write(json.dumps(more.pop(0)) + "\n")
    assert watch(render, [log], 0.01, refreshes=10, sleep=sleep) == 2
    assert renders == [5, 6, 7]                  # redrawn as the log grew; stopped when the run ended
    renders.clear()
    assert watch(render, [log], 0.01, refreshes=3, sleep=lambda s: None) == 3     # nothing going on: waits
    assert renders == [7]                        # for a new run, and draws only when the log changes


def test_plot_watch_from_the_command_line(tmp_path):
    pytest.importorskip("matplotlib")
    log = _log(tmp_path / "live.log.jsonl", ("a", None, [0, 10], False))
    r = run("plot", log, "-o", str(tmp_path / "c.png"), "--watch", "0.01", "--max-refreshes", "2")
    assert r.exit_code == 0 and r.output.count("Wrote") == 1 and (tmp_path / "c.png").exists(), r.output
    r = run("plot", log, "-o", str(tmp_path / "c.png"), "--watch", "0")
    assert r.exit_code == 2


def test_plot_draws_any_numbers_and_names_a_log_holds(tmp_path):
    pytest.importorskip("matplotlib")
    lines = ['{"event": "train", "iter": 0, "loss": "inf", "seconds": 1e999, "epoch": "nan"}',
             '{"event": "train", "iter": 9007199254740992, "loss": 1e-320, "seconds": -1e308, "epoch": 1e308}',
             '{"event": "test", "iter": 3, "outputs": {"a": -1e308, "b": [1, 2]}, "seconds": "-inf"}',
             '{"event": "test", "iter": 4, "outputs": {"a": 1e308, "$\\\\frac{": 1, "\\u001b]0;x\\u0007": 2}}']
    (tmp_path / "$x.log.jsonl").write_text("\n".join(lines) + "\n")
    for x in ("iter", "epoch", "seconds"):
        r = run("plot", str(tmp_path / "$x.log.jsonl"), str(tmp_path / "$x.log.jsonl"), "-o", str(tmp_path / "c.png"),
                "--x", x, "--smooth", "3")
        assert r.exit_code == 0 and "Warning" not in r.stderr, r.output
        assert "test \\x1b]0;x\\x07" in r.stdout and "\x1b" not in r.output
