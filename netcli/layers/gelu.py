"""GELU, y = x * Phi(x) (Hendrycks & Gimpel), as PyTorch's nn.GELU: the exact form with the
normal CDF, Phi(x) = (1 + erf(x / sqrt(2))) / 2, by default; `approximate: tanh` for
Phi(x) ~ (1 + tanh(sqrt(2 / pi) * (x + 0.044715 x^3))) / 2. Caffe has none.

Everything GELU is lives here: the element function and its derivative written once (_gelu,
_gelu_grad), compiled by Numba for the CPU (the kernels below, forward and backward side by
side) and, on first use on a GPU, as a CUDA device function; the layer; its ONNX export."""
from __future__ import annotations

import functools
import math

import numpy as np
from .. import ops  # noqa: F401 - Numba's code generation set first (ops/codegen.py)
from numba import njit

from ..config.schema import Field, Message
from .base import register
from .neuron import PerSampleNeuron

GELU_PARAM = Message("GELUParameter", [
    Field("approximate", ("none", "tanh"), "none", "none: x * Phi(x) with erf; tanh: PyTorch's tanh approximation", number=1),
], number=10001)

SQRT_HALF = 0.7071067811865476        # 1 / sqrt(2)
INV_SQRT_2PI = 0.3989422804014327     # 1 / sqrt(2 pi): the normal density's factor
SQRT_2_OVER_PI = 0.7978845608028654   # sqrt(2 / pi)
CUBIC = 0.044715


def _gelu(v, tanh_form):
    """GELU of one value; tanh_form: the tanh approximation."""
    if tanh_form:
        return 0.5 * v * (1.0 + math.tanh(SQRT_2_OVER_PI * (v + CUBIC * v * v * v)))
    return 0.5 * v * (1.0 + math.erf(v * SQRT_HALF))


def _gelu_grad(v, tanh_form):
    """d GELU / dx at one value: Phi(x) + x phi(x), or the tanh form's derivative."""
    if tanh_form:
        t = math.tanh(SQRT_2_OVER_PI * (v + CUBIC * v * v * v))
        return 0.5 * (1.0 + t) + 0.5 * v * (1.0 - t * t) * SQRT_2_OVER_PI * (1.0 + 3.0 * CUBIC * v * v)
    return 0.5 * (1.0 + math.erf(v * SQRT_HALF)) + v * INV_SQRT_2PI * math.exp(-0.5 * v * v)


_gelu_cpu, _gelu_grad_cpu = njit(cache=True)(_gelu), njit(cache=True)(_gelu_grad)


# -- CPU kernels: flat arrays of one length --------------------------------------------------------
@njit(cache=True)
def gelu_forward(x, y, keep, tanh_form):
    """y = GELU(x); keep = x (y may be x: the input is kept for the backward)."""
    for i in range(x.size):
        v = x[i]
        keep[i] = v
        y[i] = _gelu_cpu(v, tanh_form)


@njit(cache=True)
def gelu_backward(keep, dy, dx, tanh_form):
    """dx = dy * GELU'(x), x as kept by the forward."""
    for i in range(keep.size):
        dx[i] = dy[i] * _gelu_grad_cpu(keep[i], tanh_form)


# -- CUDA kernels: the same functions compiled for the device, on first use -----------------------
cuda = None                             # numba.cuda, imported by cuda_kernels() (a global: the simulator swaps it)


@functools.cache
def cuda_kernels():
    """(forward, backward) CUDA kernels with the CPU kernels' arguments, and a length."""
    global cuda
    from ..gpu.device import cuda_module
    cuda = cuda_module()
    fwd, grad = cuda.jit(device=True)(_gelu), cuda.jit(device=True)(_gelu_grad)

    @cuda.jit
    def forward(x, y, keep, tanh_form, n):
        i = cuda.grid(1)
        if i < n:
            v = x[i]
            keep[i] = v
            y[i] = fwd(v, tanh_form)

    @cuda.jit
    def backward(keep, dy, dx, tanh_form, n):
        i = cuda.grid(1)
        if i < n:
            dx[i] = dy[i] * grad(keep[i], tanh_form)

    return forward, backward


def _flat(a):
    return a.reshape(a.size)


@register
class GELU(PerSampleNeuron):
    type = "GELU"
    doc = "y = x * Phi(x), Phi the normal CDF (exact, with erf), or PyTorch's tanh approximation."
    params = {"gelu_param": GELU_PARAM}

    @property
    def tanh_form(self):
        return self.p.gelu_param.approximate == "tanh"

    def setup_neuron(self, bottom):
        self.keep = np.empty(bottom.shape or (1,), bottom.data.dtype)     # x, for backward (in place)

    def forward_rows(self, bottoms, tops, lo, hi, ws):
        gelu_forward(_flat(bottoms[0].data[lo:hi]), _flat(tops[0].data[lo:hi]), _flat(self.keep[lo:hi]),
                     self.tanh_form)

    def backward_rows(self, tops, propagate_down, bottoms, lo, hi, ws, grads, fresh):
        if propagate_down[0]:
            gelu_backward(_flat(self.keep[lo:hi]), _flat(tops[0].diff[lo:hi]), _flat(bottoms[0].diff[lo:hi]),
                          self.tanh_form)

    def flops(self, bottoms, tops):
        return 10 * int(np.prod(bottoms[0].shape[1:]))

    # -- on a CUDA device: (data, diff) device arrays per blob; ws: cuda_workspace's arrays ---------
    def cuda_workspace(self, bottoms, tops):
        return {"keep": (self.keep.shape, np.float32)}

    def forward_cuda(self, bottoms, tops, ws, dev):
        (x, _), (y, _) = bottoms[0], tops[0]
        dev.launch(cuda_kernels()[0], x.size, _flat(x), _flat(y), _flat(ws["keep"]), self.tanh_form, x.size)

    def backward_cuda(self, tops, propagate_down, bottoms, ws, dev):
        if propagate_down[0]:
            (_, dx), (_, dy) = bottoms[0], tops[0]
            dev.launch(cuda_kernels()[1], dx.size, _flat(ws["keep"]), _flat(dy), _flat(dx), self.tanh_form, dx.size)

    # -- ONNX: opset 20's Gelu exists, netcli writes opset 18, so the erf (or tanh) form as nodes ---
    def to_onnx(self, g, xs, tops):
        x = xs[0]
        if self.tanh_form:
            cube = g.node("Mul", [g.node("Mul", [x, x]), x])
            inner = g.node("Add", [x, g.node("Mul", [cube, g.const("cubic", CUBIC)])])
            phi2 = g.node("Tanh", [g.node("Mul", [inner, g.const("sqrt_2_over_pi", SQRT_2_OVER_PI)])])
        else:
            phi2 = g.node("Erf", [g.node("Mul", [x, g.const("sqrt_half", SQRT_HALF)])])
        half_x = g.node("Mul", [x, g.const("half", 0.5)])
        return g.node("Mul", [half_x, g.node("Add", [phi2, g.const("one", 1.0)])], tops)
