"""The sum of two blobs with coefficients, in one pass: Eltwise SUM's forward (two bottoms) and
Split's backward (two consumers' gradients). NumPy took three passes and a temporary for
y = ca*a; y += cb*b. The values are NumPy's: each product rounded to the arrays' dtype (ca and
cb come in it), then their sum. Arrays are flat; y may be a or b (ops/cpu/inplace.py)."""
from numba import njit

from .inplace import same


@njit(cache=True, nogil=True)
def weighted_sum(a, ca, b, cb, y):
    """y = ca * a + cb * b."""
    if same(y, a):
        for i in range(y.size):
            y[i] = y[i] * ca + b[i] * cb
    elif same(y, b):
        for i in range(y.size):
            y[i] = a[i] * ca + y[i] * cb
    else:
        for i in range(y.size):
            y[i] = a[i] * ca + b[i] * cb


@njit(cache=True, nogil=True)
def weighted_sum_relu(a, ca, b, cb, slope, y):
    """y = ReLU(ca * a + cb * b) with negative_slope `slope` (>= 0): weighted_sum's values, then
    ops/cpu/relu.py's, in one pass (exec/fusion.py, SumReLU). y is neither a nor b."""
    if slope == 0:
        for i in range(y.size):
            v = a[i] * ca + b[i] * cb
            y[i] = 0.0 if v <= 0 else v
    else:
        for i in range(y.size):
            v = a[i] * ca + b[i] * cb
            y[i] = v * slope if v <= 0 else v


@njit(cache=True, nogil=True)
def weighted_sum_relu_backward(y, dy, slope, ca, da, cb, db):
    """The backward of weighted_sum_relu in one pass: dy becomes the ReLU's input gradient (as the
    ReLU in place on the sum leaves it), da = ca * that and db = cb * that (the Eltwise's). An
    empty da or db: that bottom needs no gradient."""
    if da.size and db.size:
        for i in range(y.size):
            g = dy[i] if y[i] > 0 else dy[i] * slope
            dy[i] = g
            da[i] = g * ca
            db[i] = g * cb
    elif da.size:
        for i in range(y.size):
            g = dy[i] if y[i] > 0 else dy[i] * slope
            dy[i] = g
            da[i] = g * ca
    elif db.size:
        for i in range(y.size):
            g = dy[i] if y[i] > 0 else dy[i] * slope
            dy[i] = g
            db[i] = g * cb
    else:
        for i in range(y.size):
            dy[i] = dy[i] if y[i] > 0 else dy[i] * slope
