"""ReLU over flat arrays, in one pass each way: y = x where x > 0, else negative_slope * x (0 for
a slope of 0; a NaN stays a NaN); the backward reads y, not x (Caffe reads its bottom, the same
array when in place): for a slope of at least 0, y > 0 exactly where x > 0. The slope comes in the
arrays' dtype, so that float32 arrays multiply in float32 (as NumPy's float32 product)."""
from numba import njit

from .inplace import same


@njit(cache=True, nogil=True)
def relu_forward(x, y, slope):
    if same(x, y):                       # in place: one array named (ops/cpu/inplace.py)
        if slope == 0:
            for i in range(y.size):
                v = y[i]
                y[i] = 0.0 if v <= 0 else v
        else:
            for i in range(y.size):
                v = y[i]
                y[i] = v * slope if v <= 0 else v
    elif slope == 0:
        for i in range(x.size):
            v = x[i]
            y[i] = 0.0 if v <= 0 else v
    else:
        for i in range(x.size):
            v = x[i]
            y[i] = v * slope if v <= 0 else v


@njit(cache=True, nogil=True)
def relu_backward(y, dy, dx, slope):
    """dx = dy where y > 0, else slope * dy (dx may be dy: in place)."""
    if same(dy, dx):
        for i in range(y.size):
            g = dx[i]
            dx[i] = g if y[i] > 0 else g * slope
    else:
        for i in range(y.size):
            g = dy[i]
            dx[i] = g if y[i] > 0 else g * slope
