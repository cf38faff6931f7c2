"""The ReLU kernels (netcli/ops/cpu/relu.py) against NumPy on random inputs (with NaNs and zeros
of both signs), float32 and float64, out of place and in place; and a ReLU whose top a later
layer rewrites in place keeps its mask (net_plan.relu_masks)."""
import numpy as np
import pytest

import netcli
from netcli.ops.cpu.relu import relu_backward, relu_forward


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("slope", [0.0, 0.1, 2.5])
def test_relu_matches_numpy(dtype, slope):
    rng = np.random.default_rng(int(slope * 10))
    x = rng.standard_normal(1001).astype(dtype)
    x[:3] = (0.0, -0.0, np.nan)
    dy = rng.standard_normal(1001).astype(dtype)
    y = np.empty_like(x)
    slope = dtype(slope)                      # as the layer passes it: the arrays' dtype
    relu_forward(x, y, slope)
    want = np.where(x > 0, x, slope * x) if slope else np.maximum(x, 0)
    np.testing.assert_array_equal(y, want)
    dx = np.empty_like(x)
    relu_backward(y, dy, dx, slope)
    np.testing.assert_array_equal(dx, dy * np.where(x > 0, 1.0, slope).astype(dtype))
    relu_forward(x, x, slope)                      # in place
    np.testing.assert_array_equal(x, want)
    relu_backward(y, dy, dy, slope)
    np.testing.assert_array_equal(dy, dx)


NET = """
name: rewritten
force_backward: true
layers:
  - {name: x, type: Input, top: x, input_param: {shape: [{dim: [4, 6]}]}}
  - {name: relu, type: ReLU, bottom: x, top: x}
  - {name: neg, type: Power, bottom: x, top: x, power_param: {scale: -1.0}}
  - {name: loss, type: Reduction, bottom: x, top: loss, loss_weight: 1}
"""


def test_a_relu_whose_top_is_rewritten_in_place_keeps_its_mask(tmp_path):
    (tmp_path / "net.yaml").write_text(NET)
    net = netcli.Net(str(tmp_path / "net.yaml"), phase="TRAIN")
    relu = net.layers[net.layer_names.index("relu")]
    assert relu.keep_mask                  # y = -relu(x) after the Power: y > 0 no longer says x > 0
    x = np.random.default_rng(0).standard_normal((4, 6)).astype(np.float32)
    net.blobs["x"].data[...] = x
    net.forward()
    net.backward()
    np.testing.assert_array_equal(net.blobs["x"].diff, np.where(x > 0, -1.0, 0.0).astype(np.float32))
