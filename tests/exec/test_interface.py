"""One executor interface (netcli/exec/interface.py): the CPU and CUDA executors implement it,
the Net chooses one from its device string, and nothing outside the Net assigns one."""
import inspect
import pathlib
import re

import pytest

import netcli
from netcli.errors import NetcliError
from netcli.exec import device_of, parse_device
from netcli.exec.cpu import CpuExecutor
from netcli.exec.cuda import CudaExecutor
from netcli.exec.interface import Executor

NET = {"name": "tiny", "layers": [
    {"name": "in", "type": "Input", "top": "data", "input_param": {"shape": [{"dim": [2, 3]}]}},
    {"name": "ip", "type": "InnerProduct", "bottom": "data", "top": "ip", "inner_product_param": {"num_output": 2}}]}


@pytest.mark.parametrize("cls", [CpuExecutor, CudaExecutor])
def test_both_executors_implement_the_interface(cls):
    members = [n for n, v in vars(Executor).items() if inspect.isfunction(v) and not n.startswith("_")]
    assert len(members) >= 12
    for name in members:
        assert callable(getattr(cls, name, None)), f"{cls.__name__} lacks {name}"
        wanted = list(inspect.signature(getattr(Executor, name)).parameters)
        assert list(inspect.signature(getattr(cls, name)).parameters)[:len(wanted)] == wanted, name


def test_the_net_chooses_its_executor_from_its_device():
    net = netcli.Net(NET)
    assert net.device == "cpu" and isinstance(net.executor, CpuExecutor) and isinstance(net.executor, Executor)
    net.blobs["data"].reshape(5, 3)
    net.reshape()
    assert isinstance(net.executor, CpuExecutor)


def test_device_strings():
    assert parse_device("cpu") is None and parse_device("cuda:1") == 1 and parse_device("cuda") == 0
    assert device_of(None) == device_of(-1) == "cpu" and device_of(2) == "cuda:2"
    with pytest.raises(NetcliError, match="expected 'cpu' or 'cuda:N'"):
        netcli.Net(NET, device="gpu0")


def test_nothing_outside_the_net_assigns_an_executor():
    root = pathlib.Path(netcli.__file__).parent
    hits = [str(p.relative_to(root)) for p in root.rglob("*.py")
            if re.search(r"\.executor\s*=[^=]", p.read_text())]
    assert hits == ["net.py"]


def test_the_cuda_executor_knows_no_layer_type():
    """No type names, no layer modules, no layer geometry: the layers' own device ops do that."""
    src = (pathlib.Path(netcli.__file__).parent / "exec" / "cuda.py").read_text()
    assert not re.search(r"\"_(fwd|bwd)_\"|def _(fwd|bwd)_[A-Z]", src)
    assert "layers" not in re.findall(r"from \.\.(\w+)", src)
    assert not re.search(r"\.type\s*[=!]=|\"(Convolution|Pooling|InnerProduct|Softmax\w*|Dropout)\"", src)
    assert not re.search(r"\blayer\.(K|KH|KW|CKK|OH|OW|M|R|G|max|axis|transpose)\b", src)
