import numpy as np
import pytest

from helpers import check_gradient, make_layer
from reference import softmax


def _labels(n, c, seed=3):
    return np.random.default_rng(seed).integers(0, c, n).astype(np.float64)


@pytest.mark.parametrize("norm", ["VALID", "BATCH_SIZE", "FULL", "NONE"])
def test_softmax_with_loss(norm):
    N, C, H = 4, 5, 3
    lab = np.random.default_rng(0).integers(0, C, (N, H)).astype(float)
    lab[0, 0] = 2
    params = {"loss_param": {"normalization": norm, "ignore_label": 2}}
    layer, bottoms, tops = make_layer("SoftmaxWithLoss", params, [(N, C, H), (N, H)], bottoms_data=[None, lab])
    layer.forward(bottoms, tops)
    p = softmax(bottoms[0].data, 1)
    valid = lab != 2
    picked = np.take_along_axis(p, lab.astype(int)[:, None, :], 1)[:, 0, :]
    n = {"VALID": valid.sum(), "BATCH_SIZE": N, "FULL": N * H, "NONE": 1}[norm]
    np.testing.assert_allclose(tops[0].data, -(np.log(picked) * valid).sum() / n)
    assert check_gradient(layer, bottoms, tops) > 0


@pytest.mark.parametrize("params,parallel", [({}, True), ({"softmax_param": {"axis": 2}}, True),
                                             ({"loss_param": {"ignore_label": 1}}, True),
                                             ({"loss_param": {"ignore_label": 1, "normalize": False}}, True)])
def test_softmax_with_loss_rows_and_whole_batch(params, parallel):
    """Per-sample (row-parallel) along any class axis but the batch's, also when the normalizer
    counts valid labels (the pieces' counts are added); both paths agree with the NumPy
    reference, with the optional probability top."""
    N, C, H = 5, 4, 3
    axis = params.get("softmax_param", {}).get("axis", 1)
    shape = (N, C, H) if axis == 1 else (N, H, C)
    lab = np.random.default_rng(1).integers(0, C, (N, H)).astype(float)
    layer, bottoms, tops = make_layer("SoftmaxWithLoss", params, [shape, (N, H)], bottoms_data=[None, lab],
                                      n_tops=2)
    assert layer.per_sample == parallel
    layer.forward(bottoms, tops)
    p = softmax(bottoms[0].data, axis)
    scores = p if axis == 1 else p.transpose(0, 2, 1)
    picked = np.take_along_axis(scores, lab.astype(int)[:, None, :], 1)[:, 0, :]
    ignore = params.get("loss_param", {}).get("ignore_label")
    valid = lab != ignore if ignore is not None else np.ones(lab.shape, bool)
    n = N if params.get("loss_param", {}).get("normalize") is False else valid.sum()
    np.testing.assert_allclose(tops[0].data, -(np.log(picked) * valid).sum() / n, rtol=1e-10)
    np.testing.assert_allclose(tops[1].data, p, rtol=1e-10)
    layer, bottoms, tops = make_layer("SoftmaxWithLoss", params, [shape, (N, H)], bottoms_data=[None, lab])
    assert check_gradient(layer, bottoms, tops) > 0      # (the probability top takes no gradient)


def test_softmax_with_loss_rejects_bad_label():
    from netcli.errors import NetcliError
    layer, bottoms, tops = make_layer("SoftmaxWithLoss", {}, [(2, 3), (2,)], bottoms_data=[None, np.array([0.0, 3.0])])
    with pytest.raises(NetcliError, match="label 3 in row 1 of the batch .* is outside"):
        layer.forward(bottoms, tops)


def test_euclidean_loss():
    layer, bottoms, tops = make_layer("EuclideanLoss", {}, [(4, 3), (4, 3)])
    layer.forward(bottoms, tops)
    d = bottoms[0].data - bottoms[1].data
    np.testing.assert_allclose(tops[0].data, (d ** 2).sum() / 8)
    assert check_gradient(layer, bottoms, tops, check_bottoms=[0, 1]) > 0


def test_accuracy_top_k_and_ignore():
    scores = np.array([[0.1, 0.5, 0.4], [0.3, 0.3, 0.4], [0.9, 0.05, 0.05], [0.2, 0.3, 0.5]])
    lab = np.array([1.0, 0.0, 0.0, 2.0])
    layer, bottoms, tops = make_layer("Accuracy", {}, [(4, 3), (4,)], n_tops=2, bottoms_data=[scores, lab])
    layer.forward(bottoms, tops)
    assert tops[0].data == pytest.approx(3 / 4)    # sample 1: label 0 loses to class 2
    np.testing.assert_allclose(tops[1].data, [0.5, 1.0, 1.0])
    layer, bottoms, tops = make_layer("Accuracy", {"accuracy_param": {"top_k": 2}}, [(4, 3), (4,)],
                                      bottoms_data=[scores, lab])
    layer.forward(bottoms, tops)
    # sample 1: class 0 ties class 1 (0.3 >= 0.3 counts against), so 3 classes score >= it
    assert tops[0].data == pytest.approx(3 / 4)
    layer, bottoms, tops = make_layer("Accuracy", {"accuracy_param": {"ignore_label": 0}}, [(4, 3), (4,)],
                                      bottoms_data=[scores, lab])
    layer.forward(bottoms, tops)
    assert tops[0].data == pytest.approx(1.0)
