"""np.matmul(a, b, out=out) for a convolution's per-image products (ops/cpu/conv2d.py: out[i] =
a[i] @ b[i], either one shared by every image, either as a transposed view), as a team job
(gemms_team.py) where numpy's BLAS is reachable from compiled code (blas.py) and every matrix
is a plain or transposed row-major one: the same bits, with threads beyond a run's shares taking
images (exec/team.py). Elsewhere, and for a product with one row, one column or an inner size
of one (np.matmul's own paths), np.matmul itself: a choice of shapes and layouts alone, never
of the thread count."""
import numpy as np

from ...exec.team import current as current_team
from .blas import gemm_address
from .gemms_team import image_gemms_job
from .team_jobs import run_job


def _operand(x):
    """(address, stride from one image's matrix to the next, leading dimension, transposed) of a
    2-D (shared: stride 0) or 3-D operand, in numbers; None where a matrix is neither row-major
    nor a transposed row-major one."""
    s = x.itemsize
    rows, cols = x.shape[-2:]
    down, across = x.strides[-2:]
    stride = x.strides[0] if x.ndim == 3 else 0
    if stride % s:
        return None
    if across == s and down % s == 0 and down // s >= cols:
        return x.ctypes.data, stride // s, down // s, 0
    if down == s and across % s == 0 and across // s >= rows:
        return x.ctypes.data, stride // s, across // s, 1
    return None


def image_gemms(a, b, out):
    """out[i] = a[i] @ b[i] (a or b 2-D: the same matrix for every i), as np.matmul(a, b, out=out)."""
    fn = gemm_address(out.dtype)
    n, M, N = out.shape
    K = a.shape[-1]
    ops = None
    if fn and M > 1 and N > 1 and K > 1 and out.flags.c_contiguous and a.dtype == b.dtype == out.dtype:
        ops = (_operand(a), _operand(b))
    if ops is None or None in ops or ops[0][0] == ops[1][0]:      # (a @ a.T: np.matmul's own product)
        np.matmul(a, b, out=out)
        return
    (pa, sa, lda, ta), (pb, sb, ldb, tb) = ops
    team = current_team()
    image_gemms_job(team.record, fn, out.itemsize, n, ta, tb, M, N, K, pa, sa, lda, pb, sb, ldb, out.ctypes.data,
                    M * N, N)
    run_job(team, out.reshape(-1)[:0])
