"""The CUDA driver of the update rules: one elementwise kernel per rule, one thread per element,
compiled from the rule's formula and base.element as device functions. Imported on first use, so
netcli imports without numba-cuda."""
from ..gpu.device import cuda_module
from .element import element, flush

cuda = cuda_module()     # a module global, which the CUDA simulator swaps for its own


def kernel(n_history, formula, gradient):
    dev = cuda.jit(device=True)
    one = dev(element(n_history, dev(formula), dev(gradient), dev(flush)))

    @cuda.jit
    def update(w, g, h0, h1, lr, decay, rate, args, scale, l1):
        i = cuda.grid(1)
        if i < w.size:
            one(i, w, g, h0, h1, rate * lr[i], decay[i], args, scale, l1)
    return update
