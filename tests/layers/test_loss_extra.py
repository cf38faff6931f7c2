"""The losses of issue 6: forward against NumPy formulas and gradient checks."""
import numpy as np
import pytest

from helpers import check_gradient, make_layer


def rng(seed=0):
    return np.random.default_rng(seed)


@pytest.mark.parametrize("norm", [None, "VALID", "FULL"])
def test_sigmoid_cross_entropy(norm):
    x = rng().standard_normal((4, 3)) * 3
    t = rng(1).random((4, 3))
    t[0, 0] = -1
    params = {"loss_param": {"ignore_label": -1, **({"normalization": norm} if norm else {})}}
    layer, bottoms, tops = make_layer("SigmoidCrossEntropyLoss", params, [x.shape, t.shape], bottoms_data=[x, t])
    layer.forward(bottoms, tops)
    p = 1 / (1 + np.exp(-x))
    valid = t != -1
    ce = -(t * np.log(p) + (1 - t) * np.log(1 - p)) * valid
    n = {None: 4, "VALID": valid.sum(), "FULL": 12}[norm]
    np.testing.assert_allclose(tops[0].data, ce.sum() / n)
    assert check_gradient(layer, bottoms, tops) > 0


def test_l1_and_smooth_l1():
    a, b = rng().standard_normal((5, 3)), rng(1).standard_normal((5, 3))
    layer, bottoms, tops = make_layer("L1Loss", {}, [a.shape, b.shape], bottoms_data=[a, b])
    layer.forward(bottoms, tops)
    np.testing.assert_allclose(tops[0].data, np.abs(a - b).sum() / 5)
    assert check_gradient(layer, bottoms, tops, check_bottoms=[0, 1]) > 0
    layer, bottoms, tops = make_layer("SmoothL1Loss", {"smooth_l1_loss_param": {"sigma": 2.0}}, [a.shape, b.shape],
                                      bottoms_data=[a, b])
    layer.forward(bottoms, tops)
    d = a - b
    ref = np.where(np.abs(d) < 0.25, 0.5 * 4 * d * d, np.abs(d) - 0.125).sum() / 5
    np.testing.assert_allclose(tops[0].data, ref)
    assert check_gradient(layer, bottoms, tops, check_bottoms=[0, 1], eps=1e-7) > 0


@pytest.mark.parametrize("norm", ["L1", "L2"])
def test_hinge(norm):
    s = rng().standard_normal((6, 4))
    lab = rng(2).integers(0, 4, 6).astype(float)
    layer, bottoms, tops = make_layer("HingeLoss", {"hinge_loss_param": {"norm": norm}}, [s.shape, lab.shape],
                                      bottoms_data=[s, lab])
    layer.forward(bottoms, tops)
    y = -np.ones((6, 4))
    y[np.arange(6), lab.astype(int)] = 1
    m = np.maximum(0, 1 - y * s)
    np.testing.assert_allclose(tops[0].data, (m if norm == "L1" else m ** 2).sum() / 6)
    assert check_gradient(layer, bottoms, tops, eps=1e-7) > 0


def test_infogain(tmp_path):
    s = rng().standard_normal((5, 3))
    lab = rng(3).integers(0, 3, 5).astype(float)
    H = rng(4).random((3, 3))
    np.save(tmp_path / "H.npy", H)
    layer, bottoms, tops = make_layer("InfogainLoss", {"infogain_loss_param": {"source": str(tmp_path / "H.npy")}},
                                      [s.shape, lab.shape], bottoms_data=[s, lab])
    layer.forward(bottoms, tops)
    p = np.exp(s) / np.exp(s).sum(1, keepdims=True)
    ref = -(H[lab.astype(int)] * np.log(p)).sum() / 5
    np.testing.assert_allclose(tops[0].data, ref)
    assert check_gradient(layer, bottoms, tops) > 0
    # identity H is the softmax cross-entropy
    l2, b2, t2 = make_layer("InfogainLoss", {}, [s.shape, lab.shape], bottoms_data=[s, lab])
    l2.forward(b2, t2)
    np.testing.assert_allclose(t2[0].data, -np.log(p[np.arange(5), lab.astype(int)]).mean())


@pytest.mark.parametrize("legacy", [False, True])
def test_contrastive(legacy):
    a, b = rng().standard_normal((6, 3)) * 0.4, rng(1).standard_normal((6, 3)) * 0.4
    y = np.array([1, 0, 1, 0, 0, 1], float)
    params = {"contrastive_loss_param": {"margin": 1.5, "legacy_version": legacy}}
    layer, bottoms, tops = make_layer("ContrastiveLoss", params, [a.shape, b.shape, y.shape], bottoms_data=[a, b, y])
    layer.forward(bottoms, tops)
    d2 = ((a - b) ** 2).sum(1)
    dis = np.maximum(1.5 - d2, 0) if legacy else np.maximum(1.5 - np.sqrt(d2), 0) ** 2
    np.testing.assert_allclose(tops[0].data, (y * d2 + (1 - y) * dis).sum() / 12)
    assert check_gradient(layer, bottoms, tops, check_bottoms=[0, 1]) > 0
