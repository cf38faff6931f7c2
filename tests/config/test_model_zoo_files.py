"""Model-zoo net files that Caffe accepts: `engine` in a layer's parameters (MobileNet's
`convolution_param { engine: CAFFE }`) and parameter blocks of another layer type (a VGG-16 deploy
file's `image_data_param` on its Input layer) are ignored as Caffe ignores them."""
import numpy as np
import pytest

from netcli import Net
from netcli.config.compile import compile_net
from netcli.errors import ConfigError

ENGINES = """\
name: "engines"
layer { name: "data" type: "Input" top: "data" input_param { shape { dim: 1 dim: 2 dim: 6 dim: 6 } } }
layer { name: "conv" type: "Convolution" bottom: "data" top: "conv"
        convolution_param { num_output: 2 kernel_size: 3 engine: CAFFE weight_filler { type: "gaussian" }
                            force_nd_im2col: true } }
layer { name: "relu" type: "ReLU" bottom: "conv" top: "relu" relu_param { engine: CUDNN } }
layer { name: "sig" type: "Sigmoid" bottom: "relu" top: "sig" sigmoid_param { engine: CAFFE } }
layer { name: "tanh" type: "TanH" bottom: "sig" top: "tanh" tanh_param { engine: DEFAULT } }
layer { name: "lrn" type: "LRN" bottom: "tanh" top: "lrn" lrn_param { local_size: 1 engine: CAFFE } }
layer { name: "pool" type: "Pooling" bottom: "lrn" top: "pool" pooling_param { pool: MAX kernel_size: 2 engine: CAFFE } }
layer { name: "prob" type: "Softmax" bottom: "pool" top: "prob" softmax_param { engine: CUDNN } }
"""


def test_engine_is_accepted_and_ignored(tmp_path, capsys):
    f = tmp_path / "engines.prototxt"
    f.write_text(ENGINES)
    plain = tmp_path / "plain.prototxt"
    plain.write_text("\n".join(l for l in ENGINES.replace(" engine: CAFFE", "").replace(" engine: CUDNN", "")
                               .replace(" engine: DEFAULT", "").replace("force_nd_im2col: true", "")
                               .splitlines()))
    x = np.random.default_rng(0).standard_normal((1, 2, 6, 6)).astype(np.float32)
    a = Net(str(f), seed=1).forward(data=x)["prob"].copy()
    b = Net(str(plain), seed=1).forward(data=x)["prob"].copy()
    assert np.array_equal(a, b)
    out = capsys.readouterr()
    assert "engine" not in out.out + out.err


def test_engine_takes_only_caffes_values(tmp_path):
    f = tmp_path / "bad.prototxt"
    f.write_text(ENGINES.replace("engine: CAFFE", "engine: MKL", 1))
    with pytest.raises(ConfigError, match="engine.*expected one of DEFAULT, CAFFE, CUDNN"):
        compile_net(str(f))


VGG_INPUT = """\
name: "VGG_ILSVRC_16_layers"
layer {
  name: "data"
  type: "Input"
  top: "data"
  input_param { shape { dim: 1 dim: 3 dim: 8 dim: 8 } }
  image_data_param { source: "missing.txt" batch_size: 10 new_height: 256 new_width: 256 }
  transform_param { crop_size: 224 mirror: false }
}
layer { name: "fc" type: "InnerProduct" bottom: "data" top: "fc" inner_product_param { num_output: 2 } }
"""


def test_foreign_parameter_blocks_are_ignored_with_one_warning(tmp_path, capsys):
    f = tmp_path / "vgg.prototxt"
    f.write_text(VGG_INPUT)
    net = Net(str(f), phase="TEST")
    Net(str(f), phase="TRAIN")                       # a second compile: no second line
    assert net.blobs["data"].shape == (1, 3, 8, 8)
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert "vgg.prototxt:7" in err[0] and "layer 'data' (Input)" in err[0]
    assert "image_data_param, transform_param" in err[0] and "ignor" in err[0]


def test_unknown_blocks_are_still_errors(tmp_path):
    f = tmp_path / "bad.prototxt"
    f.write_text(VGG_INPUT.replace("image_data_param", "imagedata_param"))
    with pytest.raises(ConfigError, match="unknown field 'imagedata_param'"):
        compile_net(str(f))


def test_a_solvers_deprecated_solver_type_is_upgraded(tmp_path):
    """Old Caffe solvers say `solver_type: NESTEROV`; Caffe's UpgradeSolverType makes it the type."""
    from netcli.solver.setup import read_solver
    (tmp_path / "net.prototxt").write_text(VGG_INPUT.replace("  image_data_param { source: \"missing.txt\" batch_size: "
                                                             "10 new_height: 256 new_width: 256 }\n", ""))
    f = tmp_path / "solver.prototxt"
    f.write_text('net: "net.prototxt"\nbase_lr: 0.1\nmomentum: 0.9\nsolver_type: NESTEROV\n')
    assert read_solver(str(f))[0].type == "NESTEROV"
    f.write_text('net: "net.prototxt"\nbase_lr: 0.1\nsolver_type: ADAM\ntype: "Adam"\n')
    with pytest.raises(ConfigError, match=r"solver.prototxt:3: .*not both"):
        read_solver(str(f))
    f.write_text('net: "net.prototxt"\nbase_lr: 0.1\nsolver_type: NESTEROF\n')
    with pytest.raises(ConfigError, match="solver_type 'NESTEROF' is not one of SGD, NESTEROV.*did you mean 'NESTEROV'"):
        read_solver(str(f))
