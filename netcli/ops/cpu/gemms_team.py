"""Per-image GEMMs (a convolution's on its input or patches: ops/cpu/image_gemms.py) as a team job
(exec/team.py; run by ops/cpu/team_jobs.py): C[i] = op(A[i]) @ op(B[i]) for the images i of a
call, in min(images, PHASE_TILES) tiles of whole images, each GEMM as np.matmul makes it (the same
function, the same arguments: ops/cpu/blas.py); an operand shared by every image has stride 0."""
from numba import njit

from ...exec.claims import GEMM, HEAD, IMAGE_GEMMS, PHASE_TILES, TILES, write_job
from .blas import gemm

# image_gemms_job's record, from HEAD
(N_IMAGES, N_TRANS_A, N_TRANS_B, N_M, N_N, N_K, N_A, N_A_STRIDE, N_LDA, N_B, N_B_STRIDE, N_LDB, N_C, N_C_STRIDE,
 N_LDC) = range(HEAD, HEAD + 15)


@njit(cache=True, nogil=True)
def image_gemms_job(record, fn, itemsize, images, trans_a, trans_b, M, N, K, a, a_stride, lda, b, b_stride, ldb,
                    c, c_stride, ldc):
    """The job (into record) of `images` GEMMs; a, b, c: addresses, their strides from one image's
    matrix to the next in numbers (0: shared)."""
    fields = (images, trans_a, trans_b, M, N, K, a, a_stride, lda, b, b_stride, ldb, c, c_stride, ldc)
    write_job(record, IMAGE_GEMMS, min(images, PHASE_TILES), 0, 0, fn, itemsize, fields)


@njit(cache=True, nogil=True)
def image_gemms_tile(record, t, like):
    """Tile t of an image_gemms_job: the GEMMs of its images."""
    n, size = record[N_IMAGES], like.itemsize
    for i in range(n * t // record[TILES], n * (t + 1) // record[TILES]):
        gemm(record[GEMM], like, record[N_TRANS_A], record[N_TRANS_B], record[N_M], record[N_N], record[N_K],
             record[N_A] + i * record[N_A_STRIDE] * size, record[N_LDA],
             record[N_B] + i * record[N_B_STRIDE] * size, record[N_LDB],
             record[N_C] + i * record[N_C_STRIDE] * size, record[N_LDC])
