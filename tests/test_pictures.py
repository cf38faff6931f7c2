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
from netcli.draw import Graph
from netcli.plot import smooth
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
