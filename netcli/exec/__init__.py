"""Executors: what runs a Net's layers on a device. interface.py says what every executor does;
cpu.py runs on the host's threads, cuda.py on a CUDA device (its kernels: netcli/gpu/). A Net
chooses its executor once, from its `device` string, by make_executor."""
from __future__ import annotations

from ..errors import NetcliError


def parse_device(device):
    """"cpu" -> None, "cuda:N" (or "cuda": 0) -> N; anything else is one line."""
    text = str(device).strip().lower()
    if text == "cpu":
        return None
    if text == "cuda":
        return 0
    head, _, tail = text.partition(":")
    if head == "cuda" and tail.isdigit():
        return int(tail)
    raise NetcliError(f"device {device!r}: expected 'cpu' or 'cuda:N' (N a CUDA device number)")


def device_of(gpu, group=None):
    """The device string for a `--gpu N` (None or < 0: "cpu"); a GPU under mpiexec is one line."""
    if gpu is None or gpu < 0:
        return "cpu"
    if group is not None:
        from ..gpu.device import NoGpu
        raise NoGpu("the GPU path runs in one process for now", "run without mpiexec, or without --gpu")
    return f"cuda:{gpu}"


def make_executor(net, device="cpu", shared=None):
    """The executor of `net` on `device` ("cpu" or "cuda:N"); shared: the executor of the net
    whose params `net` uses (Net.share_weights)."""
    gpu = parse_device(device)
    if gpu is None:
        from .cpu import CpuExecutor
        return CpuExecutor(net, shared)
    from .cuda import CudaExecutor
    return CudaExecutor(net, gpu, shared if isinstance(shared, CudaExecutor) else None)
