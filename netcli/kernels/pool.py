"""Max and average pooling over (N, C, H, W) with Caffe's windows.

A window starts at (oh*SH - PH, ow*SW - PW). MAX clips the window to the image and keeps the
first maximum (flat index h*W + w in `mask`). AVE divides by the window size clipped to the
padded image (padding counts), summing only inside the image.
"""
from numba import njit


@njit(cache=True, nogil=True)
def maxpool_forward(x, out, mask, KH, KW, SH, SW, PH, PW):
    N, C, H, W = x.shape
    OH, OW = out.shape[2], out.shape[3]
    for n in range(N):
        for c in range(C):
            for oh in range(OH):
                h0 = max(oh * SH - PH, 0)
                h1 = min(oh * SH - PH + KH, H)
                for ow in range(OW):
                    w0 = max(ow * SW - PW, 0)
                    w1 = min(ow * SW - PW + KW, W)
                    best = -3.4028234663852886e38
                    arg = -1
                    for h in range(h0, h1):
                        for w in range(w0, w1):
                            v = x[n, c, h, w]
                            if v > best:
                                best = v
                                arg = h * W + w
                    out[n, c, oh, ow] = best
                    mask[n, c, oh, ow] = arg


@njit(cache=True, nogil=True)
def maxpool2x2_forward(x, out, mask):
    """maxpool_forward for kernel 2, stride 2, no padding, H and W even (the common case),
    unrolled: about 6x faster than the general loop."""
    N, C, H, W = x.shape
    OH, OW = out.shape[2], out.shape[3]
    for n in range(N):
        for c in range(C):
            for oh in range(OH):
                h = 2 * oh
                for ow in range(OW):
                    w = 2 * ow
                    best = x[n, c, h, w]
                    arg = h * W + w
                    v = x[n, c, h, w + 1]
                    if v > best:
                        best = v
                        arg = h * W + w + 1
                    v = x[n, c, h + 1, w]
                    if v > best:
                        best = v
                        arg = (h + 1) * W + w
                    v = x[n, c, h + 1, w + 1]
                    if v > best:
                        best = v
                        arg = (h + 1) * W + w + 1
                    out[n, c, oh, ow] = best
                    mask[n, c, oh, ow] = arg


@njit(cache=True, nogil=True)
def maxpool_backward(dout, mask, dx):
    """dx = 0, then each output's gradient goes to the input that won its window."""
    N, C, H, W = dx.shape
    OH, OW = dout.shape[2], dout.shape[3]
    dx[...] = 0.0
    for n in range(N):
        for c in range(C):
            for oh in range(OH):
                for ow in range(OW):
                    arg = mask[n, c, oh, ow]
                    if arg >= 0:
                        dx[n, c, arg // W, arg % W] += dout[n, c, oh, ow]


@njit(cache=True, nogil=True)
def avepool_forward(x, out, KH, KW, SH, SW, PH, PW):
    N, C, H, W = x.shape
    OH, OW = out.shape[2], out.shape[3]
    for n in range(N):
        for c in range(C):
            for oh in range(OH):
                hs = oh * SH - PH
                he = min(hs + KH, H + PH)
                for ow in range(OW):
                    ws = ow * SW - PW
                    we = min(ws + KW, W + PW)
                    size = (he - hs) * (we - ws)
                    acc = 0.0
                    for h in range(max(hs, 0), min(he, H)):
                        for w in range(max(ws, 0), min(we, W)):
                            acc += x[n, c, h, w]
                    out[n, c, oh, ow] = acc / size


@njit(cache=True, nogil=True)
def avepool_backward(dout, dx, KH, KW, SH, SW, PH, PW):
    N, C, H, W = dx.shape
    OH, OW = dout.shape[2], dout.shape[3]
    dx[...] = 0.0
    for n in range(N):
        for c in range(C):
            for oh in range(OH):
                hs = oh * SH - PH
                he = min(hs + KH, H + PH)
                for ow in range(OW):
                    ws = ow * SW - PW
                    we = min(ws + KW, W + PW)
                    g = dout[n, c, oh, ow] / ((he - hs) * (we - ws))
                    for h in range(max(hs, 0), min(he, H)):
                        for w in range(max(ws, 0), min(we, W)):
                            dx[n, c, h, w] += g


# 3x3 windows (AlexNet, GoogLeNet, ResNet's stem, cifar10_quick): windows inside the image take an
# unrolled path, about 3x faster than the general loops; border windows the general rule above.

@njit(cache=True, nogil=True)
def maxpool3x3_forward(x, out, mask, SH, SW, PH, PW):
    N, C, H, W = x.shape
    OH, OW = out.shape[2], out.shape[3]
    for n in range(N):
        for c in range(C):
            for oh in range(OH):
                hs = oh * SH - PH
                inside_h = hs >= 0 and hs + 3 <= H
                for ow in range(OW):
                    ws = ow * SW - PW
                    if inside_h and ws >= 0 and ws + 3 <= W:
                        best = x[n, c, hs, ws]
                        arg = hs * W + ws
                        for i in range(3):
                            for j in range(3):
                                v = x[n, c, hs + i, ws + j]
                                if v > best:
                                    best = v
                                    arg = (hs + i) * W + ws + j
                    else:
                        best = -3.4028234663852886e38
                        arg = -1
                        for h in range(max(hs, 0), min(hs + 3, H)):
                            for w in range(max(ws, 0), min(ws + 3, W)):
                                v = x[n, c, h, w]
                                if v > best:
                                    best = v
                                    arg = h * W + w
                    out[n, c, oh, ow] = best
                    mask[n, c, oh, ow] = arg


@njit(cache=True, nogil=True)
def avepool3x3_forward(x, out, SH, SW, PH, PW):
    N, C, H, W = x.shape
    OH, OW = out.shape[2], out.shape[3]
    for n in range(N):
        for c in range(C):
            for oh in range(OH):
                hs = oh * SH - PH
                he = min(hs + 3, H + PH)
                inside_h = hs >= 0 and hs + 3 <= H
                for ow in range(OW):
                    ws = ow * SW - PW
                    acc = 0.0
                    if inside_h and ws >= 0 and ws + 3 <= W:
                        for i in range(3):
                            for j in range(3):
                                acc += x[n, c, hs + i, ws + j]
                        out[n, c, oh, ow] = acc / 9
                    else:
                        we = min(ws + 3, W + PW)
                        for h in range(max(hs, 0), min(he, H)):
                            for w in range(max(ws, 0), min(we, W)):
                                acc += x[n, c, h, w]
                        out[n, c, oh, ow] = acc / ((he - hs) * (we - ws))


@njit(cache=True, nogil=True)
def avepool3x3_backward(dout, dx, SH, SW, PH, PW):
    N, C, H, W = dx.shape
    OH, OW = dout.shape[2], dout.shape[3]
    dx[...] = 0.0
    for n in range(N):
        for c in range(C):
            for oh in range(OH):
                hs = oh * SH - PH
                he = min(hs + 3, H + PH)
                inside_h = hs >= 0 and hs + 3 <= H
                for ow in range(OW):
                    ws = ow * SW - PW
                    if inside_h and ws >= 0 and ws + 3 <= W:
                        g = dout[n, c, oh, ow] / 9
                        for i in range(3):
                            for j in range(3):
                                dx[n, c, hs + i, ws + j] += g
                    else:
                        we = min(ws + 3, W + PW)
                        g = dout[n, c, oh, ow] / ((he - hs) * (we - ws))
                        for h in range(max(hs, 0), min(he, H)):
                            for w in range(max(ws, 0), min(we, W)):
                                dx[n, c, h, w] += g
