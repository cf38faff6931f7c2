"""im2col / col2im for 2-D convolution with pad, stride and dilation.

Layout: images x are (N, C, H, W); columns are (C*KH*KW, N*OH*OW), row (c, i, j) and column
(n, oh, ow), so that `weights (K, C*KH*KW) @ cols` gives every image's output in one GEMM.
"""
from numba import njit


@njit(cache=True, nogil=True)
def im2col(x, cols, KH, KW, SH, SW, PH, PW, DH, DW, OH, OW):
    """cols[(c*KH + i)*KW + j, (n*OH + oh)*OW + ow] = x[n, c, oh*SH - PH + i*DH, ow*SW - PW + j*DW]
    (zero outside the image)."""
    N, C, H, W = x.shape
    P = OH * OW
    for c in range(C):
        for i in range(KH):
            for j in range(KW):
                row = (c * KH + i) * KW + j
                for n in range(N):
                    base = n * P
                    for oh in range(OH):
                        h = oh * SH - PH + i * DH
                        col = base + oh * OW
                        if h < 0 or h >= H:
                            for ow in range(OW):
                                cols[row, col + ow] = 0.0
                        else:
                            for ow in range(OW):
                                w = ow * SW - PW + j * DW
                                if 0 <= w < W:
                                    cols[row, col + ow] = x[n, c, h, w]
                                else:
                                    cols[row, col + ow] = 0.0


@njit(cache=True, nogil=True)
def col2im(cols, dx, KH, KW, SH, SW, PH, PW, DH, DW, OH, OW):
    """The adjoint of im2col: dx = 0, then dx[n, c, h, w] += every column entry that read it."""
    N, C, H, W = dx.shape
    P = OH * OW
    dx[...] = 0.0
    for c in range(C):
        for i in range(KH):
            for j in range(KW):
                row = (c * KH + i) * KW + j
                for n in range(N):
                    base = n * P
                    for oh in range(OH):
                        h = oh * SH - PH + i * DH
                        if h < 0 or h >= H:
                            continue
                        col = base + oh * OW
                        for ow in range(OW):
                            w = ow * SW - PW + j * DW
                            if 0 <= w < W:
                                dx[n, c, h, w] += cols[row, col + ow]
