"""Caffe's text format: the reader against hand-written trees, errors with their lines, the V1 and
net-input upgrades, and every net of Caffe's own examples/ and models/ compiled."""
import math

import numpy as np
import pytest

from netcli import Net
from netcli.config.compile import compile_net
from netcli.config.prototxt import is_prototxt, load_prototxt
from netcli.config.prototxt_upgrade import upgrade_net
from netcli.config.prototxt_write import dump_prototxt
from netcli.errors import ConfigError


def test_reader_values_and_repeats():
    text = """
    # a comment
    name: "a \\"quoted\\" name"   # trailing comment
    layer { name: 'x' top: "a" top: "b" include: { phase: TRAIN } }
    layer < name: "y" param { lr_mult: 1 } param { lr_mult: 2e0 } >
    value: -3 hexed: 0x1F f: 1.5f neg_inf: -inf flag: true other: False
    dims: [1, 2, 3]
    joined: "ab" "cd"; enum: MAX
    """
    t = load_prototxt("x.prototxt", text)
    assert t["name"] == 'a "quoted" name'
    assert [l["name"] for l in t["layer"]] == ["x", "y"]
    assert t["layer"][0]["top"] == ["a", "b"] and t["layer"][0]["include"] == {"phase": "TRAIN"}
    assert t["layer"][1]["param"] == [{"lr_mult": 1}, {"lr_mult": 2.0}]
    assert t["value"] == -3 and t["hexed"] == 31 and t["f"] == 1.5 and t["neg_inf"] == -math.inf
    assert t["flag"] is True and t["other"] is False
    assert t["dims"] == [1, 2, 3] and t["joined"] == "abcd" and t["enum"] == "MAX"
    assert t.key_locs["layer"].line == 4 and t["layer"].item_locs[1].line == 5
    assert t["layer"][1].key_locs["param"].line == 5


@pytest.mark.parametrize("text, where, what", [
    ("layer {\n name: 'x'\n", 3, "expected a field name or '}', got the end of the file"),
    ("a: 1\nb: }\n", 2, "expected a value"),
    ("a: 1\nb 2\n", 2, "expected ':' or '{'"),
    ("a: 1\n\n c: \"x\\q\"\n", 3, "bad escape"),
    ("a: $\n", 1, "unexpected character '$'"),
    ("a: -b\n", 1, "a number after '-'"),
])
def test_reader_errors_name_the_line(text, where, what):
    with pytest.raises(ConfigError) as e:
        load_prototxt("bad.prototxt", text)
    assert str(e.value).startswith(f"bad.prototxt:{where}: ") and what in str(e.value)


def test_detection_by_extension_and_content():
    assert is_prototxt("n.prototxt") and is_prototxt("n.pbtxt") and not is_prototxt("n.yaml", "layer {")
    assert is_prototxt("net.txt", 'name: "n"\nlayer {\n  name: "a"\n}\n')
    assert not is_prototxt("net.txt", "name: n\nlayers:\n  - {name: a}\n")


def test_v1_upgrade_and_net_inputs():
    text = """
    name: "old"
    input: "data"
    input_dim: 2 input_dim: 1 input_dim: 8 input_dim: 8
    layers { name: "conv" type: CONVOLUTION bottom: "data" top: "conv"
             blobs_lr: 1 blobs_lr: 2 weight_decay: 1 weight_decay: 0
             convolution_param { num_output: 3 kernel_size: 3 } }
    layers { name: "relu" type: RELU bottom: "conv" top: "conv" }
    """
    t = upgrade_net(load_prototxt("old.prototxt", text), "old.prototxt")
    assert [l["type"] for l in t["layer"]] == ["Input", "Convolution", "ReLU"]
    assert t["layer"][0]["input_param"]["shape"][0]["dim"] == [2, 1, 8, 8]
    assert t["layer"][1]["param"] == [{"lr_mult": 1, "decay_mult": 1}, {"lr_mult": 2, "decay_mult": 0}]
    net = Net(t, phase="TEST")
    assert net.blobs["conv"].shape == (2, 3, 6, 6)
    assert net.lr_mults.tolist() == [1, 2] and net.decay_mults.tolist() == [1, 0]


def test_v1_unknown_type_is_one_line():
    with pytest.raises(ConfigError, match=r"old.prototxt:2: V1 layer type 'CONVOLUTON' .*did you mean 'CONVOLUTION'"):
        upgrade_net(load_prototxt("old.prototxt", 'name: "n"\nlayers { type: CONVOLUTON }'), "old.prototxt")


def test_schema_errors_keep_prototxt_lines(tmp_path):
    f = tmp_path / "n.prototxt"
    f.write_text('name: "n"\nlayer {\n  name: "in"\n  type: "Input"\n  top: "x"\n'
                 '  input_param { shape { dim: 1 dim: 4 } }\n}\nlayer {\n  name: "ip"\n  type: "InnerProduct"\n'
                 '  bottom: "x"\n  top: "y"\n  inner_product_param { num_ouput: 3 }\n}\n')
    with pytest.raises(ConfigError) as e:
        Net(f)
    assert f"{f}:13: layer 'ip' (InnerProduct): field 'inner_product_param.num_ouput': unknown field " \
        "'num_ouput' in InnerProductParameter (did you mean 'num_output'?)" in str(e.value)


def test_dump_reads_back():
    from netcli.config.prototxt_write import Enum
    tree = {"name": 'q"uote', "layer": [{"name": "a", "top": ["x", "y"], "pooling_param": {"pool": Enum("MAX")},
                                          "v": 1.5, "k": 3, "b": False}]}
    back = load_prototxt("x.prototxt", dump_prototxt(tree))
    assert back == {"name": 'q"uote', "layer": {"name": "a", "top": ["x", "y"], "pooling_param": {"pool": "MAX"},
                                               "v": 1.5, "k": 3, "b": False}}


def test_yaml_to_prototxt_leaves_out_data_param_shuffle(tmp_path, capsys):
    """Caffe's DataParameter has no `shuffle` (issue 24): written, Caffe would refuse the file. It
    is left out, with a comment in the file and one warning; `shuffle: false` goes silently."""
    from netcli.config.prototxt import load_prototxt
    from netcli.config.prototxt_write import net_to_prototxt
    (tmp_path / "n.yaml").write_text(
        "name: n\nlayers:\n"
        "  - {name: d, type: Data, top: [data, label], data_param: {source: a.npz, batch_size: 2, shuffle: true}}\n"
        "  - {name: e, type: Data, top: [x, y], data_param: {source: b.npz, batch_size: 2, shuffle: false}}\n"
        "  - {name: i, type: ImageData, top: [p, q], image_data_param: {source: l.txt, shuffle: true}}\n")
    text = net_to_prototxt(str(tmp_path / "n.yaml"))
    assert text.startswith("# layer 'd': data_param.shuffle: true left out: Caffe's DataParameter has no shuffle")
    tree = load_prototxt(str(tmp_path / "x.prototxt"), text)
    assert "shuffle" not in tree["layer"][0]["data_param"] and "shuffle" not in tree["layer"][1]["data_param"]
    assert tree["layer"][2]["image_data_param"]["shuffle"] is True     # Caffe's ImageData has it
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and err[0].startswith("WARNING: prototxt: layer 'd': data_param.shuffle")


def test_files_named_neither_way_that_only_prototxt_reads(tmp_path):
    # pycaffe scripts write solvers and nets to temporary files without an extension: a flat
    # solver whose field repeats, and a net whose blocks sit on one line, are prototxt
    from netcli.config.load import load_config
    from netcli.errors import ConfigError
    solver = tmp_path / "solver"
    solver.write_text('net: "net.txt"\nbase_lr: 0.01\nlr_policy: "multistep"\nstepvalue: 100\nstepvalue: 200\n')
    tree = load_config(str(solver), net=False)
    assert [int(v) for v in tree["stepvalue"]] == [100, 200] and float(tree["base_lr"]) == 0.01
    net = tmp_path / "net.txt"
    net.write_text('name: "chain"\nlayer { name: "data" type: "Input" top: "data" input_param { shape { dim: 2 dim: 3 } } }\n'
                   'layer { name: "ip" type: "InnerProduct" bottom: "data" top: "ip" inner_product_param { num_output: 4 } }\n')
    assert [l["name"] for l in load_config(str(net))["layer"]] == ["data", "ip"]
    flat = tmp_path / "flat.pt"                   # reads both ways: YAML, the same values
    flat.write_text("base_lr: 0.5\nmax_iter: 3\n")
    assert float(load_config(str(flat), net=False)["base_lr"]) == 0.5
    broken = tmp_path / "broken.txt"              # neither: the YAML error, one line with the file
    broken.write_text("base_lr: [0.5\n")
    with pytest.raises(ConfigError, match="broken.txt"):
        load_config(str(broken), net=False)
