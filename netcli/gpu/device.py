"""Finding the CUDA device: the extra, the driver, the device number; each missing piece is one
line. Under NUMBA_ENABLE_CUDASIM=1, Numba's CUDA simulator stands in for a GPU (tests)."""
from __future__ import annotations

import os

from ..errors import NetcliError


class NoGpu(NetcliError):
    """No GPU to run on: `reason` says why; the message adds what a `--gpu` user changes. A
    solver_mode: GPU run falls back to the CPU and says `reason` with its own advice."""

    def __init__(self, reason, advice="run without --gpu for the CPU"):
        super().__init__(f"{reason}; {advice}")
        self.reason = reason


def simulated():
    return os.environ.get("NUMBA_ENABLE_CUDASIM", "") not in ("", "0")


def cuda_module():
    """numba.cuda from the numba-cuda package (the extra), or a one-line error."""
    try:
        import numba_cuda  # noqa: F401  (the maintained CUDA target; numba's own is deprecated)
        from numba import cuda
    except ImportError:
        raise NoGpu("the GPU needs the numba-cuda package", "pip install 'netcli[gpu]'") from None
    return cuda


def select(device_id=0):
    """Make CUDA device `device_id` current and return its name; no usable GPU is one line."""
    cuda = cuda_module()
    if not cuda.is_available():
        raise NoGpu("no CUDA GPU is usable here (no NVIDIA driver or device found)")
    n = len(cuda.gpus)
    if not 0 <= device_id < n:
        raise NetcliError(f"GPU {device_id}: this machine has {n} CUDA device(s), numbered 0 to {n - 1}")
    cuda.select_device(device_id)
    dev = cuda.get_current_device()
    name = getattr(dev, "name", "CUDA device")          # the simulator's device has none
    name = name.decode() if isinstance(name, bytes) else str(name)
    return f"{name}{' (simulated)' if simulated() else ''}"
