"""Patch layouts for 2-D convolution as GEMM, with pad, stride and dilation.

Two layouts, each with its adjoint; Convolution picks one per layer:
- columns (im2col/col2im): x (N, C, H, W) -> cols (C*KH*KW, N*OH*OW), row (c, i, j), column
  (n, oh, ow); the Convolution layer keeps one such block per image (im2col_images), so that
  `weights (K, C*KH*KW) @ cols[n]` is image n's output already in NCHW order. Its copies run
  along an output row (OW long): the better layout for few input channels.
- rows (im2row/row2im) on channels-last images xt (N, H, W, C): rows (N*OH*OW, KH*KW*C), row
  (n, oh, ow), column (i, j, c). Along a kernel row the patch is KW*C contiguous floats of xt,
  so the copies are long and vectorise; with many channels this is ~3x (im2row) and ~7x (row2im)
  faster than the column layout, and OpenBLAS runs the weight-gradient GEMM faster on it.
The NCHW <-> NHWC and GEMM-output <-> NCHW moves and the bias sums are here too.
"""
import numpy as np
from numba import njit

from .transpose import BLOCK, aliased, from_channels_last, steps, through_buffer, to_channels_last


@njit(cache=True, nogil=True, inline="always")
def _valid(O, S, P, off, L):
    """The outputs o in [lo, hi) that read inside [0, L): o*S - P + off in range."""
    lo = max(0, (P - off + S - 1) // S)
    return lo, max(lo, min(O, (L - 1 + P - off) // S + 1))


@njit(cache=True, nogil=True)
def im2col(x, cols, KH, KW, SH, SW, PH, PW, DH, DW, OH, OW):
    """cols[(c*KH + i)*KW + j, (n*OH + oh)*OW + ow] = x[n, c, oh*SH - PH + i*DH, ow*SW - PW + j*DW]
    (zero outside the image).

    For each kernel offset (i, j), only outputs oh in [oh_lo, oh_hi), ow in [ow_lo, ow_hi) read
    inside the image; the copy between those ranges runs on slice views with indices from 0, which
    LLVM vectorises (per-element bounds checks kept an earlier version scalar and ~2x slower)."""
    N, C, H, W = x.shape
    for c in range(C):
        for i in range(KH):
            oh_lo, oh_hi = _valid(OH, SH, PH, i * DH, H)
            for j in range(KW):
                row = cols[(c * KH + i) * KW + j]
                ow_lo, ow_hi = _valid(OW, SW, PW, j * DW, W)
                m = ow_hi - ow_lo
                w_first = ow_lo * SW - PW + j * DW
                full = ow_lo == 0 and ow_hi == OW
                for n in range(N):
                    xs = x[n, c]
                    for oh in range(OH):
                        base = (n * OH + oh) * OW
                        inside = oh_lo <= oh < oh_hi
                        if not inside or not full:
                            for k in range(OW):
                                row[base + k] = 0.0
                            if not inside:
                                continue
                        h = oh * SH - PH + i * DH
                        part = row[base + ow_lo:base + ow_hi]
                        if SW == 1:
                            src = xs[h, w_first:w_first + m]
                            for k in range(m):
                                part[k] = src[k]
                        else:
                            for k in range(m):
                                part[k] = xs[h, w_first + k * SW]


@njit(cache=True, nogil=True)
def col2im(cols, dx, KH, KW, SH, SW, PH, PW, DH, DW, OH, OW):
    """The adjoint of im2col: dx = 0, then dx[n, c, h, w] += every column entry that read it."""
    N, C, H, W = dx.shape
    dx[...] = 0.0
    for n in range(N):
        for c in range(C):
            xs = dx[n, c]
            for i in range(KH):
                oh_lo, oh_hi = _valid(OH, SH, PH, i * DH, H)
                for j in range(KW):
                    row = cols[(c * KH + i) * KW + j]
                    ow_lo, ow_hi = _valid(OW, SW, PW, j * DW, W)
                    m = ow_hi - ow_lo
                    w_first = ow_lo * SW - PW + j * DW
                    for oh in range(oh_lo, oh_hi):
                        base = (n * OH + oh) * OW
                        h = oh * SH - PH + i * DH
                        part = row[base + ow_lo:base + ow_hi]
                        if SW == 1:
                            dst = xs[h, w_first:w_first + m]
                            for k in range(m):
                                dst[k] += part[k]
                        else:
                            for k in range(m):
                                xs[h, w_first + k * SW] += part[k]


@njit(cache=True, nogil=True)
def im2col_images(x, cols, KH, KW, SH, SW, PH, PW, DH, DW, OH, OW):
    """Per image: cols[n] = im2col(x[n]), cols (N, C*KH*KW, OH*OW); then `weights @ cols[n]` is
    image n's output in NCHW order, with no layout move."""
    for n in range(x.shape[0]):
        im2col(x[n:n + 1], cols[n], KH, KW, SH, SW, PH, PW, DH, DW, OH, OW)


@njit(cache=True, nogil=True)
def col2im_images(cols, dx, KH, KW, SH, SW, PH, PW, DH, DW, OH, OW):
    """The adjoint of im2col_images."""
    for n in range(dx.shape[0]):
        col2im(cols[n], dx[n:n + 1], KH, KW, SH, SW, PH, PW, DH, DW, OH, OW)


@njit(cache=True, nogil=True)
def add_bias(y, bias):
    """y[n, k, p] += bias[k]  (y: (N, K, P))."""
    N, K, P = y.shape
    for n in range(N):
        for k in range(K):
            b = bias[k]
            row = y[n, k]
            for p in range(P):
                row[p] += b


@njit(cache=True, nogil=True)
def sum_bias(dy, dbias):
    """dbias[k] += sum over n, p of dy[n, k, p]. One partial sum per position p, so the loop over
    p vectorises (a single running sum makes every add wait for the one before)."""
    N, K, P = dy.shape
    part = np.empty(P, dy.dtype)
    for k in range(K):
        part[:] = 0.0
        for n in range(N):
            row = dy[n, k]
            for p in range(P):
                part[p] += row[p]
        dbias[k] += part.sum()


# From BLOCK (8) channels on, the transposes go a row at a time in blocks of 8 channels x 8
# columns, transposed in vector registers (transpose.py, as the Winograd transforms' copies); fewer
# channels go number by number. One thread, AMD EPYC Zen 5, best of 30, to NHWC / back, ms,
# through a (columns, channels) buffer in L1 (the strided half landing there, then each column
# moved as one run of C numbers; number by number under 16 channels) -> in blocks: 8 x 256 x
# 14x14 0.109 / 0.095 -> 0.078 / 0.074, 8 x 64 x 56x56 0.45 / 0.34 -> 0.14 / 0.14, 32 x 16 x
# 32x32 0.14 / 0.12 -> 0.05 / 0.09, 32 x 32 x 16x16 0.072 / 0.061 -> 0.025 / 0.027, 32 x 64 x
# 8x8 0.034 -> 0.012, 32 x 8 x 32x32 0.047 -> 0.023, 1 x 512 x 7x7 0.008 either way; back onto
# 32x32 planes of more than 16 channels the blocks were slower (32 x 32 x 32x32 0.24 -> 0.55; 31x31
# and 33x33: 0.13 and 0.11), which go through the buffer still (transpose.aliased).
@njit(cache=True, nogil=True, inline="always")
def _unit(a):
    """Whether a's last axis holds its numbers one after another (the 8 x 8 blocks' reads and
    writes count so: transpose.py); other views go number by number."""
    return a.strides[a.ndim - 1] == a.itemsize


@njit(cache=True, nogil=True)
def nchw_to_nhwc_at(x, xt, PH, PW):
    """xt[n, h + PH, w + PW, c] = x[n, c, h, w] (xt's other positions untouched), a row at a time
    in 8 x 8 blocks from BLOCK channels on (also depthwise_nhwc.py's, into its padded buffer)."""
    N, C, H, W = x.shape
    if C < BLOCK or not (_unit(x) and _unit(xt)):
        for n in range(N):
            for c in range(C):
                for h in range(H):
                    for w in range(W):
                        xt[n, h + PH, w + PW, c] = x[n, c, h, w]
        return
    down, size = steps(BLOCK, x.strides[1] // x.itemsize), xt.itemsize
    at = steps(W, xt.strides[2] // size, PW * (xt.strides[2] // size))
    for n in range(N):
        for h in range(H):
            to_channels_last(x[n, :, h], xt[n, h + PH], at, down)


@njit(cache=True, nogil=True)
def nhwc_to_nchw_at(xt, x, PH, PW):
    """x[n, c, h, w] = xt[n, h + PH, w + PW, c]: nchw_to_nhwc_at's way back; onto planes that
    alias (transpose.aliased) through a row buffer."""
    N, C, H, W = x.shape
    if C < BLOCK or not (_unit(x) and _unit(xt)):
        for n in range(N):
            for c in range(C):
                for h in range(H):
                    for w in range(W):
                        x[n, c, h, w] = xt[n, h + PH, w + PW, c]
        return
    down, size = steps(BLOCK, x.strides[1] // x.itemsize), xt.itemsize
    at = steps(W, xt.strides[2] // size, PW * (xt.strides[2] // size))
    no_bias = np.empty(0, x.dtype)
    if aliased(x.strides[1], C):
        buf = np.empty((W, C), x.dtype)
        for n in range(N):
            for h in range(H):
                through_buffer(xt[n, h + PH].reshape(-1), x[n, :, h], no_bias, at, buf)
        return
    for n in range(N):
        for h in range(H):
            from_channels_last(xt[n, h + PH], x[n, :, h], no_bias, at, down)


@njit(cache=True, nogil=True)
def nchw_to_nhwc(x, xt):
    """xt[n, h, w, c] = x[n, c, h, w] (nchw_to_nhwc_at without padding)."""
    nchw_to_nhwc_at(x, xt, 0, 0)


@njit(cache=True, nogil=True)
def nhwc_to_nchw(xt, x):
    """x[n, c, h, w] = xt[n, h, w, c] (nhwc_to_nchw_at without padding)."""
    nhwc_to_nchw_at(xt, x, 0, 0)


@njit(cache=True, nogil=True)
def im2row(xt, rows, KH, KW, SH, SW, PH, PW, DH, DW, OH, OW, first):
    """rows[q - first, (i*KW + j)*C + c] = xt[n, oh*SH - PH + i*DH, ow*SW - PW + j*DW, c] for
    the positions q = (n*OH + oh)*OW + ow from `first` on, as many as rows has (0: all of them;
    a tile of one image's GEMM makes its own rows: conv2d.py), zero outside the image.
    Flat indices, and the long copy on 1-D slices indexed from 0 (so LLVM drops the
    negative-index wrap and vectorises it)."""
    N, H, W, C = xt.shape
    R = rows.shape[1]
    xf = xt.reshape(N * H * W * C)
    rf = rows.reshape(rows.shape[0] * R)
    seg = KW * C
    for q in range(first, first + rows.shape[0]):
        n, rest = q // (OH * OW), q % (OH * OW)
        oh, ow = rest // OW, rest % OW
        rb = (q - first) * R
        w0 = ow * SW - PW
        whole = DW == 1 and w0 >= 0 and w0 + KW <= W
        for i in range(KH):
            h = oh * SH - PH + i * DH
            dst = rf[rb + i * seg:rb + (i + 1) * seg]
            if h < 0 or h >= H:
                for k in range(seg):
                    dst[k] = 0.0
            elif whole:
                xb = ((n * H + h) * W + w0) * C
                src = xf[xb:xb + seg]
                for k in range(seg):
                    dst[k] = src[k]
            else:
                for j in range(KW):
                    w = w0 + j * DW
                    if 0 <= w < W:
                        xb = ((n * H + h) * W + w) * C
                        for c in range(C):
                            dst[j * C + c] = xf[xb + c]
                    else:
                        for c in range(C):
                            dst[j * C + c] = 0.0


@njit(cache=True, nogil=True)
def row2im(rows, dxt, KH, KW, SH, SW, PH, PW, DH, DW, OH, OW):
    """The adjoint of im2row: dxt = 0, then dxt[n, h, w, c] += every row entry that read it."""
    N, H, W, C = dxt.shape
    R = rows.shape[1]
    dxt[...] = 0.0
    xf = dxt.reshape(N * H * W * C)
    rf = rows.reshape(rows.shape[0] * R)
    seg = KW * C
    for n in range(N):
        for oh in range(OH):
            for ow in range(OW):
                rb = ((n * OH + oh) * OW + ow) * R
                w0 = ow * SW - PW
                whole = DW == 1 and w0 >= 0 and w0 + KW <= W
                for i in range(KH):
                    h = oh * SH - PH + i * DH
                    if h < 0 or h >= H:
                        continue
                    src = rf[rb + i * seg:rb + (i + 1) * seg]
                    if whole:
                        xb = ((n * H + h) * W + w0) * C
                        dst = xf[xb:xb + seg]
                        for k in range(seg):
                            dst[k] += src[k]
                    else:
                        for j in range(KW):
                            w = w0 + j * DW
                            if 0 <= w < W:
                                xb = ((n * H + h) * W + w) * C
                                for c in range(C):
                                    xf[xb + c] += src[j * C + c]


# rows_to_nchw in blocks of positions of ROWS_BLOCK numbers (32 KB): one thread, AMD EPYC Zen 4,
# best of 20: ResNet-50's conv1 at one image (12,544 positions x 64) 0.69 -> 0.36 ms, 8 images
# of 256 x 14x14 0.36 -> 0.18, of 64 x 56x56 1.08 -> 0.77, 1 of 512 x 7x7 0.042 -> 0.012; where
# an image holds fewer (MobileNet's 50 x 512 x 4x4) it is one block, as before. Then number by
# number -> in 8 x 8 blocks (transpose.py), one thread, AMD EPYC Zen 5, best of 30, (N, K, OH,
# OW), ms: (1, 64, 112, 112) 0.28 -> 0.21, (8, 256, 14, 14) 0.14 -> 0.12, (32, 128, 16, 16) 0.37
# -> 0.29, (50, 32, 32, 32) 0.58 -> 0.44, (32, 256, 8, 8) 0.18 -> 0.14.
ROWS_BLOCK = 8192


@njit(cache=True, nogil=True)
def rows_to_nchw(res, bias, y, first):
    """y[n, k, p] = res[n*P + p - first, k] + bias[k] for the rows q = n*P + p from `first` on,
    as many as res has (0: all of them; a tile of one image's GEMM: conv2d.py), res:
    (rows, K); bias may be empty (then + 0). An image whose rows hold more than ROWS_BLOCK numbers
    goes a block of positions at a time (ROWS_BLOCK numbers), which the strided reads of its K
    passes then find in L1, and from BLOCK (8) positions and channels on in 8 x 8 blocks
    transposed in vector registers (transpose.py; whole images of at most ROWS_BLOCK numbers
    stay number by number, their bias added on the way: 32 x 512 x 4x4 0.049 ms against 0.066
    in blocks)."""
    N, K = y.shape[0], y.shape[1]
    P = y.shape[2] * y.shape[3]
    yf = y.reshape(N, K, P)
    add = bias if bias.shape[0] > 0 else np.zeros(K, bias.dtype)     # + 0 as before: -0 becomes 0
    pb = max(8, ROWS_BLOCK // K)
    if first == 0 and res.shape[0] == N * P and P * K <= ROWS_BLOCK:   # whole small images: element by
        for n in range(N):                                              # element from 0 (a slice per row
            block = res[n * P:(n + 1) * P]                              # took 1.5x as long: 512 x 4x4)
            for k in range(K):
                c = add[k]
                for p in range(P):
                    yf[n, k, p] = block[p, k] + c
        return
    at, down = steps(pb, K), steps(BLOCK, P)
    blocks = K >= BLOCK and P >= BLOCK and res.strides[0] == K * res.itemsize and _unit(res)
    q1 = first + res.shape[0]
    for n in range(first // P, (q1 + P - 1) // P):
        a, b = max(first, n * P) - n * P, min(q1, (n + 1) * P) - n * P      # this image's positions
        for p0 in range(a, b, pb):
            p1 = min(b, p0 + pb)
            block = res[n * P + p0 - first:n * P + p1 - first]
            if blocks:
                from_channels_last(block, yf[n, :, p0:p1], add, at, down)
                continue
            for k in range(K):
                c = add[k]
                dst = yf[n, k, p0:p1]
                for p in range(p1 - p0):
                    dst[p] = block[p, k] + c


@njit(cache=True, nogil=True)
def nchw_to_gemm(dy, dres, dbias):
    """dres[k, n*P + p] = dy[n, k, p]; dbias[k] += sum over n, p (dbias may be empty). The copies
    are whole (n, k) planes; the bias sum keeps one partial sum per position p, so the loop over p
    vectorises (a single running sum makes every add wait for the one before)."""
    N, K = dy.shape[0], dy.shape[1]
    P = dy.shape[2] * dy.shape[3]
    df = dy.reshape(N, K, P)
    part = np.empty(P, dres.dtype)
    for k in range(K):
        part[:] = 0.0
        for n in range(N):
            src = df[n, k]
            dst = dres[k, n * P:(n + 1) * P]
            for p in range(P):
                v = src[p]
                dst[p] = v
                part[p] += v
        if dbias.shape[0] > 0:
            dbias[k] += part.sum()
