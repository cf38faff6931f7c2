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


# -- hostile or broken files (issue 10): each is one ConfigError naming the file and line ----------
def raw(tmp_path, data: bytes, name="bad.yaml"):
    p = tmp_path / name
    p.write_bytes(data)
    with pytest.raises(ConfigError) as e:
        netcli.Net(str(p), phase="TRAIN")
    return str(e.value), str(p)


@pytest.mark.parametrize("data,expected", [
    (b"name: caf\xe9\nlayers: []\n", r":1: not UTF-8 text \(byte 0xe9\)"),
    (b"name: t\nlayers: &l [*l]\n", r":2: a recursive alias"),
    (b"name: t\nlayers: " + b"[" * 1000 + b"]" * 1000 + b"\n", r":2: nested more than 64 levels deep"),
    (b"base_lr: !!float abc\n", r":1: cannot read 'abc' as !!float"),
    (b"snapshot_after_train: !!bool maybe\n", r":1: cannot read 'maybe' as !!bool"),
    (b"<<: 5\n", r":1: merge keys \('<<'\) are not supported"),
    (b"a: &a {x: 1}\nb: {<<: *a}\n", r":2: merge keys"),
    (b"x: !!python/object/apply:os.system [true]\n", r"YAML tag '!!python/object/apply:os.system' is not accepted"),
    (b"x: !!binary aGk=\n", r"YAML tag '!!binary' is not accepted"),
    (b"~\n", r":1: the file must hold a mapping of fields"),
    (b"", r": the file is empty"),
    (b"--- 1\n--- 2\n", r"YAML syntax error"),
])
def test_yaml_hostile_input_is_one_error(tmp_path, data, expected):
    import re
    msg, path = raw(tmp_path, data)
    assert msg.startswith(path) and re.search(expected, msg), msg


def test_alias_bomb_refused_quickly(tmp_path):
    import time
    levels = [b"a0: &a0 [x,x,x,x,x,x,x,x,x]"]
    for i in range(1, 9):
        levels.append(f"a{i}: &a{i} [".encode() + b",".join([f"*a{i - 1}".encode()] * 9) + b"]")
    t0 = time.perf_counter()
    msg, _ = raw(tmp_path, b"\n".join(levels) + b"\n")
    assert "expands to more than 200,000 values" in msg and time.perf_counter() - t0 < 10


def test_file_size_limit(tmp_path, monkeypatch):
    from netcli.config import yamlload
    monkeypatch.setattr(yamlload, "MAX_BYTES", 100)
    msg, path = raw(tmp_path, b"name: t\n" + b"# padding\n" * 20)
    assert "too large for a config file (netcli reads up to" in msg


@pytest.mark.parametrize("field,value,expected", [
    ("base_lr", "1" * 400, r"field 'base_lr': an integer of about 400 digits is out of range|field 'base_lr': expected a finite number"),
    ("snapshot_epochs", ".inf", r"field 'snapshot_epochs': expected a finite number"),
    ("base_lr", ".nan", r"field 'base_lr': expected a finite number"),
    ("max_iter", "1e21", r"field 'max_iter': 1000000000000000000000 is out of range \[-2147483648, 2147483647\]"),
    ("display", "-3", r"field 'display': must be >= 0"),
])
def test_solver_numbers_out_of_range(tmp_path, field, value, expected):
    import re
    net = tmp_path / "net.yaml"
    net.write_text(HEAD)
    p = tmp_path / "solver.yaml"
    p.write_text(f"net: net.yaml\n{field}: {value}\n")
    with pytest.raises(ConfigError) as e:
        netcli.Solver(str(p))
    assert re.search(expected, str(e.value)) and str(e.value).startswith(f"{p}:2:"), str(e.value)


def test_batch_size_beyond_int32_and_memory(tmp_path):
    msg, path = load(tmp_path, """\
  - {name: d, type: Data, top: [x, y], data_param: {source: "mnist:train", batch_size: 1e21}}
""")
    assert f"{path}:4: layer 'd' (Data): field 'data_param.batch_size': 1000000000000000000000 is out of range" in msg
    msg, path = load(tmp_path, """\
  - {name: ip, type: InnerProduct, bottom: data, top: ip, inner_product_param: {num_output: 2000000000}}
""")
    assert "needs" in msg and "GB" in msg and "netcli allows" in msg and "half of this machine" in msg


def test_absent_param_blocks_report_their_required_fields(tmp_path):
    msg, path = load(tmp_path, """\
  - {name: d, type: Data, top: [x, y]}
  - {name: ip, type: InnerProduct, bottom: data, top: ip}
""")
    assert f"{path}:4: layer 'd' (Data): field 'data_param.source': required field 'source' is missing" in msg
    assert "field 'data_param.batch_size': required field" in msg
    assert f"{path}:5: layer 'ip' (InnerProduct): field 'inner_product_param.num_output': required field" in msg


def test_nameless_layers_in_a_cycle(tmp_path):
    msg, path = load(tmp_path, """\
  - {type: ReLU, bottom: b, top: a}
  - {type: ReLU, bottom: a, top: b}
""")
    assert "required field 'name' is missing" in msg


def test_solver_file_of_only_null(tmp_path):
    p = tmp_path / "s.yaml"
    p.write_text("~\n")
    with pytest.raises(ConfigError, match=r"s.yaml:1: the file must hold a mapping"):
        netcli.Solver(str(p))


def test_cycle_search_is_linear(tmp_path):
    """A chain of 40 diamonds and one layer written out of order: the old search walked every
    path (2^40); breadth-first it is instant."""
    import time
    lines, prev = [], "data"
    for i in range(40):
        lines += [f"  - {{name: s{i}, type: Split, bottom: {prev}, top: [l{i}, r{i}]}}",
                  f"  - {{name: e{i}, type: Eltwise, bottom: [l{i}, r{i}], top: m{i}}}"]
        prev = f"m{i}"
    lines.insert(0, f"  - {{name: late, type: ReLU, bottom: {prev}, top: z}}")   # needs the last output
    lines.insert(1, "  - {name: first, type: ReLU, bottom: z, top: z2}")
    lines[2] = lines[2].replace("bottom: data", "bottom: z2")                     # ... which needs it: a cycle
    t0 = time.perf_counter()
    msg, path = load(tmp_path, "\n".join(lines) + "\n")
    assert "cycle: " in msg and time.perf_counter() - t0 < 10, msg
