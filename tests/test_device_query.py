"""`netcli device-query` (Caffe's device_query) and `--gpu all` (issue 24 item 7)."""
import json
import types

import pytest
from click.testing import CliRunner

from netcli.cli import cli
from netcli.commands.device_query import resolve_gpu
from netcli.errors import NetcliError
from netcli.gpu import device
from tinynet import make_tiny


def run(*args):
    return CliRunner().invoke(cli, list(args), obj={})


@pytest.fixture(autouse=True)
def real_driver(monkeypatch):
    """The fake driver is not Numba's simulator (which tests/gpu switches on for the whole session)."""
    monkeypatch.setattr(device, "simulated", lambda: False)


def fake_cuda(n):
    """numba.cuda as a driver with n GPUs shows it: names, compute capability 8.0, 16 GiB each."""
    current = {"i": 0}

    class Gpu:
        def __init__(self, i):
            self.i = i

        def __enter__(self):
            current["i"] = self.i

        def __exit__(self, *exc):
            pass
    return types.SimpleNamespace(
        is_available=lambda: n > 0, gpus=[Gpu(i) for i in range(n)],
        get_current_device=lambda: types.SimpleNamespace(name=f"Fake A{current['i']}".encode(),
                                                         compute_capability=(8, 0)),
        current_context=lambda: types.SimpleNamespace(get_memory_info=lambda: (1, 16 * 2 ** 30)))


def test_device_query_prints_the_cpu_and_says_there_is_no_gpu(monkeypatch):
    monkeypatch.setattr(device, "cuda_module", lambda: fake_cuda(0))
    r = run("--threads", "1", "device-query")
    assert r.exit_code == 0, r.output
    lines = r.output.splitlines()
    assert lines[0].startswith("CPU: ") and lines[1].startswith("  cores: ") and lines[2].startswith("  SIMD: ")
    assert lines[3].startswith("  threads netcli will use: 1 ")
    assert lines[-1] == "GPUs: none (no NVIDIA driver or CUDA device found); netcli runs on the CPU"
    r = run("device-query", "--json")
    out = json.loads(r.output)
    assert out["gpus"] == [] and out["cpu"]["cores"] >= 1 and isinstance(out["cpu"]["simd"], list)


def test_device_query_without_the_gpu_extra_says_how_to_get_it(monkeypatch):
    def missing():
        raise device.NoGpu("the GPU needs the numba-cuda package", "pip install 'netcli[gpu]'")
    monkeypatch.setattr(device, "cuda_module", missing)
    r = run("device-query")
    assert r.exit_code == 0 and "GPUs: none (the GPU needs the numba-cuda package (pip install 'netcli[gpu]'))" \
        in r.output


def test_device_query_lists_each_gpu(monkeypatch):
    monkeypatch.setattr(device, "cuda_module", lambda: fake_cuda(2))
    r = run("device-query", "--gpu", "all")
    assert r.exit_code == 0, r.output
    assert "GPU 0: Fake A0, compute capability 8.0, 16.0 GiB" in r.output
    assert "GPU 1: Fake A1, compute capability 8.0, 16.0 GiB" in r.output
    r = run("device-query", "--gpu", "1")
    assert "GPU 1: Fake A1" in r.output and "GPU 0:" not in r.output
    r = run("device-query", "--gpu", "5")
    assert r.exit_code == 1 and "GPU 5: this machine has 2 CUDA device(s)" in r.output
    r = run("device-query", "--gpu", "two")
    assert r.exit_code == 2 and "not a device number or 'all'" in r.output


def test_gpu_all_is_the_one_gpu_or_one_clear_line(monkeypatch, tmp_path):
    monkeypatch.setattr(device, "cuda_module", lambda: fake_cuda(1))
    assert resolve_gpu("all") == 0 and resolve_gpu(3) == 3
    monkeypatch.setattr(device, "cuda_module", lambda: fake_cuda(2))
    with pytest.raises(NetcliError, match="--gpu all: netcli runs on one GPU per process for now, and this machine "
                                          "has 2; give one with --gpu N"):
        resolve_gpu("all")
    monkeypatch.setattr(device, "cuda_module", lambda: fake_cuda(0))
    solver = make_tiny(tmp_path, max_iter=1, test_interval=0)
    r = run("train", "--solver", solver, "--gpu", "all")
    assert r.exit_code == 1 and r.output.strip().splitlines() == [
        "netcli: error: --gpu all: no NVIDIA driver or CUDA device found; run without --gpu for the CPU"]
