"""Every user mistake in a net file is one clear message: file, line, layer and field."""
import pytest

import netcli
from netcli.errors import ConfigError

HEAD = """\
name: t
layers:
  - {name: data, type: Input, top: [data, label], input_param: {shape: [{dim: [2, 1, 8, 8]}, {dim: [2]}]}}
"""


def load(tmp_path, body, phase="TRAIN"):
    p = tmp_path / "bad.yaml"
    p.write_text(HEAD + body)
    with pytest.raises(ConfigError) as e:
        netcli.Net(str(p), phase=phase)
    return str(e.value), str(p)


def test_unknown_layer_type_suggests(tmp_path):
    msg, path = load(tmp_path, """\
  - {name: conv1, type: Convolutoin, bottom: data, top: conv1}
""")
    assert msg == f"{path}:4: layer 'conv1': field 'type': unknown layer type 'Convolutoin' (did you mean 'Convolution'?)"


def test_unknown_field_suggests(tmp_path):
    msg, path = load(tmp_path, """\
  - name: conv1
    type: Convolution
    bottom: data
    top: conv1
    convolution_param:
      num_output: 4
      kernel_sise: 3
""")
    assert f"{path}:10: layer 'conv1' (Convolution): field 'convolution_param.kernel_sise'" in msg
    assert "did you mean 'kernel_size'?" in msg


def test_unknown_param_block_suggests(tmp_path):
    msg, path = load(tmp_path, """\
  - {name: pool1, type: Pooling, bottom: data, top: pool1, pool_param: {kernel_size: 2}}
""")
    assert "field 'pool_param'" in msg and "did you mean 'pooling_param'?" in msg and f"{path}:4" in msg


def test_wrong_value_type(tmp_path):
    msg, path = load(tmp_path, """\
  - name: conv1
    type: Convolution
    bottom: data
    top: conv1
    convolution_param: {num_output: twenty, kernel_size: 3}
""")
    assert msg == (f"{path}:8: layer 'conv1' (Convolution): field 'convolution_param.num_output': "
                   "expected an integer, got str 'twenty'")


def test_missing_required_field(tmp_path):
    msg, path = load(tmp_path, """\
  - {name: ip, type: InnerProduct, bottom: data, top: ip, inner_product_param: {bias_term: false}}
""")
    assert "layer 'ip' (InnerProduct): field 'inner_product_param.num_output': required field" in msg


def test_bottom_not_produced(tmp_path):
    msg, path = load(tmp_path, """\
  - {name: relu, type: ReLU, bottom: dta, top: r}
""")
    assert msg == (f"{path}:4: layer 'relu' (ReLU): field 'bottom': bottom 'dta' is not produced by any "
                   "earlier layer (did you mean 'data'?)")


def test_duplicate_top(tmp_path):
    msg, path = load(tmp_path, """\
  - {name: s1, type: Sigmoid, bottom: data, top: act}
  - {name: s2, type: TanH, bottom: data, top: act}
""")
    assert f"{path}:5: layer 's2' (TanH): field 'top': top 'act' is already produced by layer 's1'" in msg


def test_in_place_not_allowed(tmp_path):
    msg, _ = load(tmp_path, """\
  - {name: flat, type: Flatten, bottom: data, top: data}
""")
    assert "layer 'flat' (Flatten): field 'top': Flatten does not allow in-place computation" in msg


def test_shape_does_not_fit(tmp_path):
    msg, path = load(tmp_path, """\
  - {name: pool1, type: Pooling, bottom: data, top: pool1, pooling_param: {kernel_size: 3, stride: 3}}
  - name: conv2
    type: Convolution
    bottom: pool1
    top: conv2
    convolution_param:
      num_output: 4
      kernel_size: 5
""")
    assert msg == (f"{path}:11: layer 'conv2' (Convolution): field 'convolution_param.kernel_size': "
                   "kernel 5x5 larger than padded input 3x3 from pool1")


def test_cycle(tmp_path):
    msg, path = load(tmp_path, """\
  - {name: a, type: Eltwise, bottom: [data, b_out], top: a_out}
  - {name: b, type: Sigmoid, bottom: a_out, top: b_out}
""")
    assert f"{path}:4: layer 'a' (Eltwise): field 'bottom': cycle: a -> b -> a" in msg


def test_malformed_yaml_gives_line_and_column(tmp_path):
    p = tmp_path / "broken.yaml"
    p.write_text("name: x\nlayers:\n  - name: a\n    type: Input\n   top: x\n")
    with pytest.raises(ConfigError) as e:
        netcli.Net(str(p))
    assert str(e.value).startswith(f"{p}:5:4: YAML syntax error")


def test_all_errors_reported_at_once(tmp_path):
    msg, _ = load(tmp_path, """\
  - {name: c, type: Convolution, bottom: data, top: c, convolution_param: {num_output: -1, kernel_size: 3}}
  - {name: r, type: ReLU, bottom: nothere, top: r}
""")
    assert "num_output': must be > 0" in msg and "bottom 'nothere'" in msg


def test_label_count_mismatch(tmp_path):
    msg, _ = load(tmp_path, """\
  - {name: ip, type: InnerProduct, bottom: data, top: ip, inner_product_param: {num_output: 3}}
  - {name: f, type: Flatten, bottom: data, top: flat}
  - {name: loss, type: SoftmaxWithLoss, bottom: [ip, flat], top: loss}
""")
    assert "layer 'loss' (SoftmaxWithLoss)" in msg and "number of labels 128 from flat" in msg
