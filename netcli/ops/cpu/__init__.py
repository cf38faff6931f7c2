"""The CPU kernels (Numba, @njit(cache=True)). Each module keeps an operation's forward and
backward side by side; its CUDA counterpart, where there is one, is the module of the same name in
netcli/ops/cuda/ (pool, softmax, im2col)."""
