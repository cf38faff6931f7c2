"""Metrics of `netcli test --metrics`, checked against numbers worked out by hand."""
import json

import numpy as np
import pytest
from click.testing import CliRunner

from netcli.cli import cli
from netcli.metrics import classification_metrics, confusion
from tinynet import make_tiny


def test_metrics_on_a_small_known_example():
    # 3 classes, 10 samples
    true = [0, 0, 0, 0, 1, 1, 1, 2, 2, 2]
    pred = [0, 0, 1, 2, 1, 1, 0, 2, 2, 1]
    cm = confusion(np.array(pred), np.array(true), 3)
    assert cm.tolist() == [[2, 1, 1], [1, 2, 0], [0, 1, 2]]
    m = classification_metrics(cm)
    # precision: class 0: 2/3, class 1: 2/4, class 2: 2/3; recall: 2/4, 2/3, 2/3
    assert m["precision"] == pytest.approx([2 / 3, 1 / 2, 2 / 3])
    assert m["recall"] == pytest.approx([1 / 2, 2 / 3, 2 / 3])
    f1 = [2 * (2 / 3) * (1 / 2) / (2 / 3 + 1 / 2), 2 * (1 / 2) * (2 / 3) / (1 / 2 + 2 / 3), 2 / 3]
    assert m["f1"] == pytest.approx(f1)          # 4/7, 4/7, 2/3
    assert m["support"] == [4, 3, 3]
    assert m["macro_precision"] == pytest.approx((2 / 3 + 1 / 2 + 2 / 3) / 3)
    assert m["macro_recall"] == pytest.approx((1 / 2 + 2 / 3 + 2 / 3) / 3)
    assert m["macro_f1"] == pytest.approx(sum(f1) / 3)
    assert m["accuracy"] == pytest.approx(0.6)


def test_empty_class_counts_zero():
    m = classification_metrics(confusion(np.array([0, 0]), np.array([0, 1]), 3))
    assert m["precision"] == [0.5, 0.0, 0.0] and m["recall"] == [1.0, 0.0, 0.0] and m["f1"][2] == 0.0


def test_cli_metrics_json_counts_every_test_sample_once(tmp_path):
    solver = make_tiny(tmp_path, max_iter=20)
    r = CliRunner().invoke(cli, ["train", "--solver", solver, "--quiet"], obj={})
    assert r.exit_code == 0, r.output
    w = str(tmp_path / "snaps" / "tiny_iter_20.weights.npz")
    r = CliRunner().invoke(cli, ["test", "--model", str(tmp_path / "net.yaml"), "--weights", w, "--metrics",
                                 "--json"], obj={})
    assert r.exit_code == 0, r.output
    out = json.loads(r.output)
    m = out["metrics"]
    assert np.sum(m["confusion_matrix"]) == 64 and sum(m["support"]) == 64
    assert m["accuracy"] == pytest.approx(out["outputs"]["accuracy"])       # 64 = 2 full batches of 32
    r = CliRunner().invoke(cli, ["test", "--model", str(tmp_path / "net.yaml"), "--weights", w, "--metrics"], obj={})
    assert "Confusion matrix (rows: true class, columns: predicted class):" in r.output
    assert "class 1: precision = " in r.output and "macro average: precision = " in r.output


def test_layers_lists_every_registered_type():
    from netcli.layers import REGISTRY
    r = CliRunner().invoke(cli, ["layers"], obj={})
    assert r.exit_code == 0
    listed = [line.split(" (")[0] for line in r.output.splitlines() if " (bottoms " in line.split(":")[0]]
    assert sorted(listed) == sorted(REGISTRY)
    assert "    num_output (int, required): number of output channels" in r.output
    r = CliRunner().invoke(cli, ["layers", "BatchNorm"], obj={})
    assert "moving_average_fraction (float, default 0.999)" in r.output
