"""im2col / col2im for 2-D convolution with pad, stride and dilation.

Layout: images x are (N, C, H, W); columns are (C*KH*KW, N*OH*OW), row (c, i, j) and column
(n, oh, ow), so that `weights (K, C*KH*KW) @ cols` gives every image's output in one GEMM.
"""
from numba import njit


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
def gemm_to_nchw(res, bias, y):
    """y[n, k, p] = res[k, n*P + p] + bias[k]  (res: (K, N*P); y: (N, K, OH, OW); bias may be empty)."""
    N, K = y.shape[0], y.shape[1]
    P = y.shape[2] * y.shape[3]
    yf = y.reshape(N, K, P)
    has_bias = bias.shape[0] > 0
    for n in range(N):
        for k in range(K):
            b = bias[k] if has_bias else 0.0
            for p in range(P):
                yf[n, k, p] = res[k, n * P + p] + b


@njit(cache=True, nogil=True)
def nchw_to_gemm(dy, dres, dbias):
    """dres[k, n*P + p] = dy[n, k, p]; dbias[k] += sum over n, p (dbias may be empty)."""
    N, K = dy.shape[0], dy.shape[1]
    P = dy.shape[2] * dy.shape[3]
    df = dy.reshape(N, K, P)
    has_bias = dbias.shape[0] > 0
    for k in range(K):
        acc = 0.0
        for n in range(N):
            for p in range(P):
                v = df[n, k, p]
                dres[k, n * P + p] = v
                acc += v
        if has_bias:
            dbias[k] += acc
