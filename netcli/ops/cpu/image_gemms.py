"""np.matmul(a, b, out=out) for a convolution's per-image products (ops/cpu/conv2d.py: out[i] =
a[i] @ b[i], either one shared by every image, either as a transposed view), as a team job
(gemms_team.py) where numpy's BLAS is reachable from compiled code (blas.py) and every matrix
is a plain or transposed row-major one: the same bits, with threads beyond a run's shares taking
images (exec/team.py). Elsewhere, and for a product with one row, one column or an inner size
of one (np.matmul's own paths), np.matmul itself: a choice of shapes and layouts alone, never
of the thread count. And `gemm_columns`: one GEMM over a share's images, in fixed blocks of its
output's columns, the same job."""

import numpy as np

from ...exec.claims import PHASE_TILES
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


# A GEMM over a share's images at once (the rows layout's: ops/cpu/conv2d.py, "1x1-nhwc" and
# "im2row") goes in blocks of its output's columns, GEMM_COLUMNS or more each, which a share's
# helpers take (gemms_team.py: a block as an "image"). Each block packs its own columns of B but
# all of A again (blocks of rows pack all of B again, dearer: 8 blocks 1.16 ms against 0.66). One
# thread, AMD EPYC Zen 5, the MobileNet's 1x1 512 -> 512 on 16 images of 4x4, forward / weight /
# input gradient in us: np.dot 578 / 523 / 521, one block 576 / 520 / 522, blocks of 64 columns
# 640 / 581 / 618, of 128 606 / 549 / 566, of 256 587 / 538 / 542. The MobileNet at batch 16, one
# thread: +13% an iteration in blocks of 64, +1% in blocks of 128; on 2 threads (a team) 43.6-43.9
# -> 30.8-32.3 ms in blocks of 128. ResNet-50's im2row layers (7x7: A has 4608 columns of
# patches) took 2-3% more in blocks of 256, so 256 it is.
GEMM_COLUMNS = 256


def column_blocks(N):
    """Blocks of N columns: the most, up to PHASE_TILES, that divide N into GEMM_COLUMNS or more."""
    return max([t for t in range(1, PHASE_TILES + 1) if N % t == 0 and N // t >= GEMM_COLUMNS] or [1])


def gemm_columns(a, b, out):
    """out (M, N) = a @ b (2-D; either a transposed view), in column_blocks(N) blocks of columns,
    each a GEMM of numpy's BLAS (blas.py): the same bits whoever takes them. In one block, without
    that BLAS, or for operands it cannot read, np.dot (a choice of the shape, the build and the
    layouts, never of the thread count)."""
    fn = gemm_address(out.dtype)
    M, N = out.shape
    T = column_blocks(N)
    ops = None
    if fn and T > 1 and out.flags.c_contiguous and a.dtype == b.dtype == out.dtype:
        ops = (_operand(a), _operand(b))
    if ops is None or None in ops:          # (one block: np.dot itself, without a job's cost: 5-10 us)
        np.dot(a, b, out=out)
        return
    (pa, _, lda, ta), (pb, _, ldb, tb) = ops
    cols = N // T
    team = current_team()
    image_gemms_job(team.record, fn, out.itemsize, T, ta, tb, M, cols, a.shape[1], pa, 0, lda, pb,
                    cols * ldb if tb else cols, ldb, out.ctypes.data, cols, N)
    run_job(team, out.reshape(-1)[:0])
