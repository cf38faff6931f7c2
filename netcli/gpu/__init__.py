"""The GPU path (issue 16): CUDA kernels through Numba's CUDA target, from the optional extra
`netcli[gpu]` (the numba-cuda package). `device.py` finds the GPU (or says in one line why there
is none); `kernels/` holds the kernels (one module per family), each tested against the CPU
kernel it stands in for under the CUDA simulator; netcli/exec/cuda.py runs a Net's layers on the device."""
