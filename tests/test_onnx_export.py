"""ONNX export: every exportable layer type, LeNet, cifar10_quick and the MLP run in ONNX Runtime
and match netcli's forward to 1e-5; what cannot be exported is one clear line."""
import copy

import numpy as np
import pytest
import yaml
from click.testing import CliRunner

import netcli
from netcli.cli import cli
from netcli.errors import NetcliError

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

from netcli.io.onnx_export import export_onnx, exportable  # noqa: E402

G = {"type": "gaussian", "std": 0.5}


def _run_both(net, path, batch_scale=1):
    """netcli's forward and ONNX Runtime's on the same random inputs: {output: (ours, theirs)}."""
    inputs, outputs = export_onnx(net, path)
    rng = np.random.default_rng(7)
    feed = {}
    for name in inputs:
        shape = net.blobs[name].shape
        feed[name] = (rng.integers(0, 5, shape) if name == "idx" else rng.standard_normal(shape)).astype(np.float32)
        net.blobs[name].data[...] = feed[name]
    for layer, b, t in zip(net.layers, net.bottom_vecs, net.top_vecs):
        if layer.bottom_names or layer.type not in ("Input", "Data"):
            layer.forward(b, t)
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    got = sess.run(outputs, feed)
    return {name: (net.blobs[name].data, g) for name, g in zip(outputs, got)}


def _assert_close(pairs, tol=1e-5):
    for name, (ours, theirs) in pairs.items():
        assert ours.shape == theirs.shape, name
        scale = max(1.0, float(np.abs(ours).max()))
        assert np.abs(ours - theirs).max() <= tol * scale, (name, np.abs(ours - theirs).max())


def _one_layer(layer, shapes=((2, 4, 7, 6),), tops=("y",), extra=()):
    tops_in = ["x", "x2", "idx"][:len(shapes)] if layer["type"] != "Embed" else ["idx"]
    net = {"name": "one", "layers": [
        {"name": "in", "type": "Input", "top": tops_in, "input_param": {"shape": [{"dim": list(s)} for s in shapes]}},
        dict(layer, name="L", bottom=layer.get("bottom", tops_in), top=list(tops)), *extra]}
    return net


# one small net per exportable layer type (several for types with modes), run through ORT
CASES = {
    "Convolution": [{"type": "Convolution", "convolution_param": {"num_output": 3, "kernel_size": 3, "stride": 2,
                                                                  "pad": 1, "weight_filler": G, "bias_filler": G}},
                    {"type": "Convolution", "convolution_param": {"num_output": 4, "kernel_size": 2, "group": 2,
                                                                  "dilation": 2, "weight_filler": G}}],
    "Deconvolution": [{"type": "Deconvolution", "convolution_param": {"num_output": 2, "kernel_size": 4, "stride": 2,
                                                                      "pad": 1, "weight_filler": G, "bias_filler": G}}],
    "InnerProduct": [{"type": "InnerProduct", "inner_product_param": {"num_output": 5, "weight_filler": G,
                                                                      "bias_filler": G}},
                     {"type": "InnerProduct", "inner_product_param": {"num_output": 3, "axis": 2, "transpose": True,
                                                                      "weight_filler": G}}],
    "Pooling": [{"type": "Pooling", "pooling_param": {"pool": "MAX", "kernel_size": 3, "stride": 2}},
                {"type": "Pooling", "pooling_param": {"pool": "AVE", "kernel_size": 3, "stride": 2, "pad": 1}},
                {"type": "Pooling", "pooling_param": {"pool": "AVE", "kernel_size": 2, "stride": 2}},
                {"type": "Pooling", "pooling_param": {"pool": "MAX", "kernel_size": 2, "stride": 3, "pad": 1}},
                {"type": "Pooling", "pooling_param": {"pool": "AVE", "global_pooling": True}}],
    "SPP": [{"type": "SPP", "spp_param": {"pyramid_height": 3, "pool": "MAX"}},
            {"type": "SPP", "spp_param": {"pyramid_height": 2, "pool": "AVE"}}],
    "ReLU": [{"type": "ReLU"}, {"type": "ReLU", "relu_param": {"negative_slope": 0.1}}],
    "Sigmoid": [{"type": "Sigmoid"}], "TanH": [{"type": "TanH"}], "ELU": [{"type": "ELU", "elu_param": {"alpha": 0.7}}],
    "AbsVal": [{"type": "AbsVal"}], "BNLL": [{"type": "BNLL"}],
    "Power": [{"type": "Power", "power_param": {"power": 2, "scale": 0.5, "shift": 3}}],
    "Exp": [{"type": "Exp", "exp_param": {"base": 2, "scale": 0.5, "shift": 0.1}}, {"type": "Exp"}],
    "Log": [{"type": "Log", "log_param": {"base": 10, "scale": 0.5, "shift": 5}}],
    "Threshold": [{"type": "Threshold", "threshold_param": {"threshold": 0.2}}],
    "PReLU": [{"type": "PReLU", "prelu_param": {"filler": G}},
              {"type": "PReLU", "prelu_param": {"channel_shared": True, "filler": G}}],
    "GELU": [{"type": "GELU"}, {"type": "GELU", "gelu_param": {"approximate": "tanh"}}],
    "Swish": [{"type": "Swish", "swish_param": {"beta": 1.5}}],
    "HardSigmoid": [{"type": "HardSigmoid"}], "Clip": [{"type": "Clip", "clip_param": {"min": -0.5, "max": 0.3}}],
    "HardTanh": [{"type": "HardTanh"}], "Maxout": [{"type": "Maxout", "maxout_param": {"num_pieces": 2}}],
    "Dropout": [{"type": "Dropout"}], "Softmax": [{"type": "Softmax"}, {"type": "Softmax", "softmax_param": {"axis": 2}}],
    "BatchNorm": [{"type": "BatchNorm"}],
    "Scale": [{"type": "Scale", "scale_param": {"filler": G, "bias_term": True, "bias_filler": G}},
              {"type": "Scale", "scale_param": {"num_axes": -1, "filler": G}}],
    "Bias": [{"type": "Bias", "bias_param": {"filler": G}}],
    "LRN": [{"type": "LRN", "lrn_param": {"local_size": 3, "alpha": 0.5, "beta": 0.75, "k": 2}}],
    "MVN": [{"type": "MVN"}, {"type": "MVN", "mvn_param": {"across_channels": True, "normalize_variance": False}}],
    "Flatten": [{"type": "Flatten"}, {"type": "Flatten", "flatten_param": {"axis": 2}}],
    "Reshape": [{"type": "Reshape", "reshape_param": {"shape": {"dim": [0, -1, 3]}}}],
    "Concat": [{"type": "Concat", "bottom": ["x", "x"]}],
    "Slice": [{"type": "Slice", "slice_param": {"slice_point": [1, 3]}}],
    "Eltwise": [{"type": "Eltwise", "bottom": ["x", "x2"], "eltwise_param": {"coeff": [0.5, -2]}},
                {"type": "Eltwise", "bottom": ["x", "x2"], "eltwise_param": {"operation": "PROD"}},
                {"type": "Eltwise", "bottom": ["x", "x2"], "eltwise_param": {"operation": "MAX"}}],
    "Crop": [{"type": "Crop", "bottom": ["x", "x2"], "crop_param": {"offset": [2, 1]}}],
    "Tile": [{"type": "Tile", "tile_param": {"axis": 2, "tiles": 3}}],
    "Reduction": [{"type": "Reduction", "reduction_param": {"operation": op, "axis": 1, "coeff": 0.5}}
                  for op in ("SUM", "ASUM", "SUMSQ", "MEAN")],
    "ArgMax": [{"type": "ArgMax", "argmax_param": {"axis": 1, "top_k": 2}},
               {"type": "ArgMax", "argmax_param": {"axis": 1, "out_max_val": True}},
               {"type": "ArgMax", "argmax_param": {"top_k": 3, "out_max_val": True}}],
    "Embed": [{"type": "Embed", "embed_param": {"num_output": 4, "input_dim": 5, "weight_filler": G, "bias_filler": G}}],
}
SHAPES = {"Eltwise": ((2, 4, 7, 6), (2, 4, 7, 6)), "Crop": ((2, 4, 7, 6), (2, 4, 4, 3)), "Embed": ((2, 3),)}
TOPS = {"Slice": ("y", "z", "w")}


def test_every_exportable_type_has_a_case():
    assert set(CASES) == set(exportable()) - {"Split"}


@pytest.mark.parametrize("case", [(t, i) for t in CASES for i in range(len(CASES[t]))], ids=lambda c: f"{c[0]}{c[1]}")
def test_layer_type_matches_onnx_runtime(tmp_path, case):
    t, i = case
    net = netcli.Net(_one_layer(CASES[t][i], SHAPES.get(t, ((2, 4, 7, 6),)), TOPS.get(t, ("y",))), phase="TEST", seed=i)
    if t == "BatchNorm":                        # stored statistics that are not trivial
        mean, var, s = net.params["L"]
        mean.data[...], var.data[...], s.data[...] = [0.5, -1, 2, 0], [4, 0.25, 1, 9], 2.0
    pairs = _run_both(net, tmp_path / "m.onnx")
    assert set(pairs) == set(TOPS.get(t, ("y",)))
    _assert_close(pairs)


def _with_input(path, shape):
    """A train/test net's TEST phase with its data layer replaced by an Input of `shape`."""
    with open(path) as f:
        cfg = yaml.safe_load(f)
    layers = []
    for layer in cfg["layers"]:
        phase = (layer.get("include") or {}).get("phase")
        if phase == "TRAIN":
            continue
        if layer["type"] == "Data":
            layer = {"name": "data", "type": "Input", "top": "data", "input_param": {"shape": {"dim": list(shape)}}}
        elif "label" in (layer.get("bottom") or []):
            continue
        layers.append(layer)
    return dict(cfg, layers=layers)


@pytest.mark.parametrize("path,shape", [
    ("configs/lenet_train_test.yaml", (3, 1, 28, 28)),
    ("configs/cifar10_quick_train_test.yaml", (2, 3, 32, 32)),
    ("configs/mnist_mlp.yaml", (4, 1, 28, 28)),
])
def test_zoo_nets_match_onnx_runtime(tmp_path, path, shape):
    net = netcli.Net(_with_input(path, shape), phase="TEST", seed=3)
    for blob in net.learnable_params:           # trained-looking weights: not the fillers' zeros
        blob.data[...] = np.random.default_rng(1).normal(0, 0.1, blob.data.shape)
    _assert_close(_run_both(net, tmp_path / "m.onnx"))


def test_train_test_net_exports_its_inference_graph(tmp_path):
    """Data becomes an input with a free batch axis; the label, loss and accuracy are left out;
    the output is the score blob by its own name (not the Split copies)."""
    net = netcli.Net("configs/lenet_train_test.yaml", phase="TEST")
    inputs, outputs = export_onnx(net, tmp_path / "m.onnx")
    assert (inputs, outputs) == (["data"], ["ip2"])
    model = onnx.load(str(tmp_path / "m.onnx"))
    dims = [d.dim_param or d.dim_value for d in model.graph.input[0].type.tensor_type.shape.dim]
    assert dims == ["N", 1, 28, 28]
    sess = ort.InferenceSession(str(tmp_path / "m.onnx"), providers=["CPUExecutionProvider"])
    assert sess.run(None, {"data": np.zeros((5, 1, 28, 28), np.float32)})[0].shape == (5, 10)


def test_cli_export_and_errors(tmp_path, monkeypatch):
    out = tmp_path / "lenet.onnx"
    r = CliRunner().invoke(cli, ["export", "--onnx", str(out), "--model", "configs/lenet_deploy.yaml"], obj={})
    assert r.exit_code == 0, r.output
    assert "inputs data -> outputs prob" in r.output and out.exists()
    net = _one_layer({"type": "LRN", "lrn_param": {"norm_region": "WITHIN_CHANNEL"}})
    with pytest.raises(NetcliError, match="WITHIN_CHANNEL has no ONNX operator"):
        export_onnx(netcli.Net(net, phase="TEST"), tmp_path / "x.onnx")
    assert not (tmp_path / "x.onnx").exists()
    net = _one_layer({"type": "BatchNorm", "batch_norm_param": {"use_global_stats": False}})
    with pytest.raises(NetcliError, match="use_global_stats is false"):
        export_onnx(netcli.Net(net, phase="TEST"), tmp_path / "x.onnx")
    monkeypatch.setitem(__import__("sys").modules, "onnx", None)
    r = CliRunner().invoke(cli, ["export", "--onnx", str(out), "--model", "configs/lenet_deploy.yaml"], obj={})
    assert r.exit_code == 1 and "pip install 'netcli[onnx]'" in r.output


def test_export_records_the_input_preparation_and_raw_input_matches_netcli(tmp_path):
    """Issue 24: the data layer's mean and scale are in the model's metadata; with --raw-input the
    graph does them, and ONNX Runtime on raw pixels gives netcli's outputs on the same images."""
    from tinynet import make_tiny
    make_tiny(tmp_path)
    net_path = str(tmp_path / "net.yaml")
    text = (tmp_path / "net.yaml").read_text().replace("transform_param: {scale: 0.00390625}, data_param: {source: test.npz",
                        "transform_param: {scale: 0.00390625, mean_value: [20]}, data_param: {source: test.npz")
    (tmp_path / "net.yaml").write_text(text)
    out = tmp_path / "m.onnx"
    r = CliRunner().invoke(cli, ["export", "--onnx", str(out), "--model", net_path], obj={})
    assert r.exit_code == 0, r.output
    props = {p.key: p.value for p in onnx.load(str(out)).metadata_props}
    assert props["netcli:input"] == "data = (pixels 0..255 - mean) * 0.00390625, RGB, NCHW"
    meta = __import__("json").loads(props["netcli:preprocess"])
    assert meta["scale"] == 0.00390625 and meta["mean"] == [20.0] and meta["shape"] == [1, 8, 8]
    net = netcli.Net(net_path, phase="TEST")
    net.save(str(tmp_path / "w.weights.npz"))
    r = CliRunner().invoke(cli, ["export", "--onnx", str(out), "--model", net_path, "--raw-input",
                                 "--weights", str(tmp_path / "w.weights.npz")], obj={})
    assert r.exit_code == 0, r.output
    raw = np.random.default_rng(3).integers(0, 256, net.blobs["data"].shape).astype(np.float32)
    net.blobs["data"].data[...] = (raw - 20) * 0.00390625        # what the data layer gives netcli
    for layer, b, t in zip(net.layers, net.bottom_vecs, net.top_vecs):
        if layer.type != "Data":
            layer.forward(b, t)
    sess = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    (got,) = sess.run(["ip"], {"data": raw})
    np.testing.assert_allclose(got, net.blobs["ip"].data, rtol=1e-5, atol=1e-5)
