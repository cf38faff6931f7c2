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
