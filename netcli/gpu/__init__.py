"""The GPU path (issue 16): CUDA kernels through Numba's CUDA target, from the optional extra
`netcli[gpu]` (the numba-cuda package). `device.py` finds the GPU (or says in one line why there
is none); `kernels.py` holds the kernels, each tested against the CPU kernel it stands in for
under the CUDA simulator; `executor.py` runs a Net's layers on the device."""
from ..errors import NetcliError


def run_on_gpu(net, gpu, group=None):
    """Run `net` on CUDA device `gpu` (None or < 0: leave it on the CPU); True when it does.
    The train net's test nets are placed by the Solver instead (they share its device params)."""
    if gpu is None or gpu < 0:
        return False
    if group is not None:
        from .device import NoGpu
        raise NoGpu("the GPU path runs in one process for now", "run without mpiexec, or without --gpu")
    from .executor import GpuExecutor
    net.executor = GpuExecutor(net, gpu)
    return True
