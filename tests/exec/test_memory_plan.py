"""The memory plan (netcli/exec/memory_plan.py): what a training iteration will hold, computed
before the executor allocates; the peak a fresh process measures stays near it; a net whose plan
exceeds the memory available is refused in one line naming the plan's total and the largest batch
that fits; `netcli check` and `netcli time` print it."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest
from click.testing import CliRunner

import netcli
from netcli.cli import cli
from netcli.errors import NetcliError
from netcli.exec import memory_plan

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
NET = """
name: planned
layers:
  - {{name: in, type: Input, top: [data, label], input_param: {{shape: [{{dim: [{batch}, 3, 32, 32]}}, {{dim: [{batch}]}}]}}}}
  - {{name: conv1, type: Convolution, bottom: data, top: conv1,
     convolution_param: {{num_output: 32, kernel_size: 5, pad: 2, weight_filler: {{type: xavier}}}}}}
  - {{name: relu1, type: ReLU, bottom: conv1, top: conv1}}
  - {{name: pool1, type: Pooling, bottom: conv1, top: pool1, pooling_param: {{pool: MAX, kernel_size: 2, stride: 2}}}}
  - {{name: conv2, type: Convolution, bottom: pool1, top: conv2,
     convolution_param: {{num_output: 64, kernel_size: 5, pad: 2, weight_filler: {{type: xavier}}}}}}
  - {{name: ip1, type: InnerProduct, bottom: conv2, top: ip1,
     inner_product_param: {{num_output: 512, weight_filler: {{type: xavier}}}}}}
  - {{name: ip2, type: InnerProduct, bottom: ip1, top: ip2,
     inner_product_param: {{num_output: 10, weight_filler: {{type: xavier}}}}}}
  - {{name: loss, type: SoftmaxWithLoss, bottom: [ip2, label], top: loss}}
"""
SOLVER = "net: {net}\nbase_lr: 0.01\nmomentum: 0.9\nlr_policy: fixed\nmax_iter: 2\n"
MEASURE = """
import json, sys, numpy as np
import netcli
from netcli.exec import memory_plan
s = netcli.Solver(sys.argv[1], progress=False, log_path=False)
s.test_interval = 0
net = s.net
net.blobs["data"].data[...] = np.random.default_rng(0).normal(0, 1, net.blobs["data"].shape)
net.blobs["label"].data[...] = np.arange(net.blobs["label"].shape[0]) % 10
s.step(2)
print(json.dumps([net.executor.memory.total, memory_plan.peak_resident_bytes()]))
"""


def write(tmp_path, batch):
    (tmp_path / "net.yaml").write_text(NET.format(batch=batch))
    (tmp_path / "solver.yaml").write_text(SOLVER.format(net=tmp_path / "net.yaml"))
    return str(tmp_path / "net.yaml"), str(tmp_path / "solver.yaml")


@pytest.mark.skipif(not os.path.exists("/proc/self/status"), reason="peak memory read from /proc")
def test_the_peak_of_two_training_iterations_is_near_the_plan(tmp_path):
    _, solver = write(tmp_path, 256)
    env = dict(os.environ, PYTHONPATH=ROOT, NETCLI_THREADS="2")
    r = subprocess.run([sys.executable, "-c", MEASURE, solver], capture_output=True, text=True, env=env,
                       cwd=tmp_path, timeout=300)
    assert r.returncode == 0, r.stderr
    plan, peak = json.loads(r.stdout.strip().splitlines()[-1])
    assert plan > 300 * 2 ** 20                 # the net's own buffers dominate the process
    assert 0.8 < peak / plan < 1.2, (peak / 2 ** 20, plan / 2 ** 20)


def test_the_plan_counts_what_a_training_iteration_holds(tmp_path):
    net = netcli.Net(write(tmp_path, 64)[0], phase="TRAIN")
    plan = net.executor.memory
    items = {w: b for w, b in plan.biggest(100)}
    assert plan.training and plan.batch == 64
    assert items["params"] == items["param gradients"] == net.param_data.nbytes
    assert items["activations"] >= net.blobs["conv1"].data.nbytes + net.blobs["conv2"].data.nbytes
    # the data input takes no gradient: its diff is never written
    assert items["activation gradients"] < sum(b.diff.nbytes for b in net.blobs.values())
    assert plan.total == sum(items.values())
    test = netcli.Net(write(tmp_path, 64)[0], phase="TEST")
    own = "this process before the net"          # what the process held already grows as tests run

    def net_bytes(p):
        return p.total - dict(p.biggest(100)).get(own, 0)
    assert not test.executor.memory.training and net_bytes(test.executor.memory) < net_bytes(plan)


def test_a_net_beyond_the_memory_available_is_refused_in_one_line(tmp_path, monkeypatch):
    path, solver = write(tmp_path, 256)
    monkeypatch.setattr(netcli.net, "resident_bytes", lambda: 50 * 2 ** 20)   # the same for every net here
    plan = netcli.Net(path, phase="TRAIN").executor.memory
    limit = plan.total_at(100)
    monkeypatch.setattr(memory_plan, "memory_available", lambda: limit)
    with pytest.raises(NetcliError) as e:
        netcli.Net(path, phase="TRAIN")
    msg = str(e.value)
    assert "\n" not in msg and f"{plan.total / 2 ** 20:,.0f} MB" in msg and "a batch of at most 100 fits" in msg
    assert plan.largest_batch(limit) == 100
    r = CliRunner().invoke(cli, ["check", "--model", path, "--phase", "TRAIN"], obj={})
    assert r.exit_code == 1 and "a batch of at most 100 fits" in r.output and "Traceback" not in r.output
    monkeypatch.setattr(memory_plan, "memory_available", lambda: 1)
    with pytest.raises(NetcliError, match="not even a batch of 1 fits"):
        netcli.Net(path, phase="TRAIN")


def test_the_solver_history_is_planned_and_refused(tmp_path, monkeypatch):
    path, solver = write(tmp_path, 64)
    monkeypatch.setattr(netcli.net, "resident_bytes", lambda: 50 * 2 ** 20)
    net_only = netcli.Net(path, phase="TRAIN", release_rows="auto").executor.memory.total   # as the Solver builds it
    s = netcli.Solver(solver, progress=False, log_path=False)
    items = dict(s.net.executor.memory.biggest(100))
    assert items["solver history"] == s.net.param_data.nbytes          # SGD with momentum: one array
    monkeypatch.setattr(memory_plan, "memory_available", lambda: net_only + s.net.param_data.nbytes)
    with pytest.raises(NetcliError, match="the net with its solver"):
        netcli.Solver(solver, progress=False, log_path=False)


def test_check_and_time_print_the_plan(tmp_path):
    path, _ = write(tmp_path, 8)
    r = CliRunner().invoke(cli, ["check", "--model", path, "--phase", "TRAIN"], obj={})
    assert r.exit_code == 0, r.output
    assert "Memory plan (one training iteration at batch 8" in r.output and "MB in all" in r.output
    assert "  biggest: " in r.output
    r = CliRunner().invoke(cli, ["time", "--model", path, "--iterations", "1"], obj={})
    assert r.exit_code == 0, r.output
    assert "Memory plan (one training iteration" in r.output and "Peak resident memory of this process" in r.output


def test_a_test_net_sharing_every_weight_lets_its_own_copy_go(tmp_path):
    """A Solver's test net used to keep its own filled param buffer after sharing the train net's
    (VGG-16: 528 MB resident for nothing); now a fresh (untouched) buffer stands in for it."""
    _, solver = write(tmp_path, 8)
    s = netcli.Solver(solver, progress=False, log_path=False)
    test, train = s.test_nets[0], s.net
    assert test.param_data.size == train.param_data.size and not test.param_data.any()
    assert all(np.shares_memory(b.data, train.param_data) for bs in test.params.values() for b in bs)
    assert np.count_nonzero(train.param_data) > 0.9 * train.param_data.size
