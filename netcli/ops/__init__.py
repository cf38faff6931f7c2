"""The heavy arithmetic, one module per operation, one implementation per device side by side:

    ops/cpu/<op>.py    Numba kernels for the CPU (@njit(cache=True))
    ops/cuda/<op>.py   Numba CUDA kernels, the same operations under the same names

Layers compute through these functions (the CPU ones directly, the CUDA ones through the
executor's `dev.k`), never through an executor's internals. `compiles.py` says when Numba
compiles any of them. The update rules, which are compiled for each device from one formula,
live in netcli/update_rules/.
"""
from .codegen import prefer_wide_vectors

prefer_wide_vectors()      # before the first kernel is decorated: Numba's code generator is made then
