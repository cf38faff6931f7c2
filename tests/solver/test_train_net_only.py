"""A solver with a train net and no test net (Caffe's train_net without test_iter) trains."""
import netcli

NET = """layer { name: "data" type: "DummyData" top: "data" top: "label"
  dummy_data_param { shape { dim: 2 dim: 3 } shape { dim: 2 }
    data_filler { type: "gaussian" } data_filler { type: "constant" value: 0 } } }
layer { name: "ip" type: "InnerProduct" bottom: "data" top: "ip" inner_product_param { num_output: 2 } }
layer { name: "loss" type: "SoftmaxWithLoss" bottom: "ip" bottom: "label" top: "loss" }
"""


def test_train_net_without_test_nets(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "train.prototxt").write_text(NET)
    (tmp_path / "solver.prototxt").write_text('train_net: "train.prototxt"\nbase_lr: 0.1\nlr_policy: "fixed"\n'
                                              'max_iter: 2\ndisplay: 0\nsnapshot_prefix: "snap"\n')
    solver = netcli.Solver(str(tmp_path / "solver.prototxt"), quiet=True, log_path=False)
    assert solver.test_nets == []
    solver.step(2)
    assert solver.iter == 2
