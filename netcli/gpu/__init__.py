"""The GPU path (issue 16): CUDA kernels through Numba's CUDA target, from the optional extra
`netcli[gpu]` (the numba-cuda package). `device.py` finds the GPU (or says in one line why there
is none); the kernels are in netcli/ops/cuda/, each beside the CPU module of the same name in
netcli/ops/cpu/ and tested against it under the CUDA simulator; netcli/exec/cuda.py runs a Net's layers on the device."""
