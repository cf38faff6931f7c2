"""Max and average pooling over (N, C, H, W) with Caffe's windows.

A window starts at (oh*SH - PH, ow*SW - PW). MAX clips the window to the image and keeps the
first maximum (flat index h*W + w in `mask`). AVE divides by the window size clipped to the
padded image (padding counts), summing only inside the image.
"""
from numba import njit


@njit(cache=True, nogil=True, inline="always")
def _max_window(xp, hs, ws, KH, KW, H, W):
    """(max, flat index of its first occurrence) of plane xp over the window at (hs, ws) clipped
    to the image; (-FLT_MAX, -1) when nothing is inside."""
    best = -3.4028234663852886e38
    arg = -1
    for h in range(max(hs, 0), min(hs + KH, H)):
        for w in range(max(ws, 0), min(ws + KW, W)):
            v = xp[h, w]
            if v > best:
                best = v
                arg = h * W + w
    return best, arg


@njit(cache=True, nogil=True, inline="always")
def _ave_size(hs, ws, KH, KW, H, W, PH, PW):
    """The divisor of the window at (hs, ws): its size clipped to the padded image."""
    return (min(hs + KH, H + PH) - hs) * (min(ws + KW, W + PW) - ws)


@njit(cache=True, nogil=True, inline="always")
def _ave_window(xp, hs, ws, KH, KW, H, W, PH, PW):
    acc = 0.0
    for h in range(max(hs, 0), min(hs + KH, H)):
        for w in range(max(ws, 0), min(ws + KW, W)):
            acc += xp[h, w]
    return acc / _ave_size(hs, ws, KH, KW, H, W, PH, PW)


@njit(cache=True, nogil=True, inline="always")
def _ave_scatter(dxp, g, hs, ws, KH, KW, H, W, PH, PW):
    """Add g, shared evenly over the window at (hs, ws), to the image positions it covers."""
    g = g / _ave_size(hs, ws, KH, KW, H, W, PH, PW)
    for h in range(max(hs, 0), min(hs + KH, H)):
        for w in range(max(ws, 0), min(ws + KW, W)):
            dxp[h, w] += g


@njit(cache=True, nogil=True)
def maxpool_forward(x, out, mask, KH, KW, SH, SW, PH, PW):
    N, C, H, W = x.shape
    OH, OW = out.shape[2], out.shape[3]
    for n in range(N):
        for c in range(C):
            xp = x[n, c]
            for oh in range(OH):
                for ow in range(OW):
                    best, arg = _max_window(xp, oh * SH - PH, ow * SW - PW, KH, KW, H, W)
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
            xp = x[n, c]
            for oh in range(OH):
                for ow in range(OW):
                    out[n, c, oh, ow] = _ave_window(xp, oh * SH - PH, ow * SW - PW, KH, KW, H, W, PH, PW)


@njit(cache=True, nogil=True)
def avepool_backward(dout, dx, KH, KW, SH, SW, PH, PW):
    N, C, H, W = dx.shape
    OH, OW = dout.shape[2], dout.shape[3]
    dx[...] = 0.0
    for n in range(N):
        for c in range(C):
            dxp = dx[n, c]
            for oh in range(OH):
                for ow in range(OW):
                    _ave_scatter(dxp, dout[n, c, oh, ow], oh * SH - PH, ow * SW - PW, KH, KW, H, W, PH, PW)


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
                        best, arg = _max_window(x[n, c], hs, ws, 3, 3, H, W)
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
                inside_h = hs >= 0 and hs + 3 <= H
                for ow in range(OW):
                    ws = ow * SW - PW
                    if inside_h and ws >= 0 and ws + 3 <= W:
                        acc = 0.0
                        for i in range(3):
                            for j in range(3):
                                acc += x[n, c, hs + i, ws + j]
                        out[n, c, oh, ow] = acc / 9
                    else:
                        out[n, c, oh, ow] = _ave_window(x[n, c], hs, ws, 3, 3, H, W, PH, PW)


@njit(cache=True, nogil=True)
def avepool3x3_backward(dout, dx, SH, SW, PH, PW):
    N, C, H, W = dx.shape
    OH, OW = dout.shape[2], dout.shape[3]
    dx[...] = 0.0
    for n in range(N):
        for c in range(C):
            for oh in range(OH):
                hs = oh * SH - PH
                inside_h = hs >= 0 and hs + 3 <= H
                for ow in range(OW):
                    ws = ow * SW - PW
                    if inside_h and ws >= 0 and ws + 3 <= W:
                        g = dout[n, c, oh, ow] / 9
                        for i in range(3):
                            for j in range(3):
                                dx[n, c, hs + i, ws + j] += g
                    else:
                        _ave_scatter(dx[n, c], dout[n, c, oh, ow], hs, ws, 3, 3, H, W, PH, PW)
