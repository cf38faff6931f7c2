"""Plain NumPy references, written independently of netcli's kernels (direct loops and
sliding windows, no im2col)."""
import math

import numpy as np


def conv2d(x, w, b, stride=(1, 1), pad=(0, 0), dil=(1, 1), group=1):
    N, C, H, W = x.shape
    K, Cg, KH, KW = w.shape
    xp = np.pad(x, ((0, 0), (0, 0), (pad[0], pad[0]), (pad[1], pad[1])))
    OH = (H + 2 * pad[0] - (dil[0] * (KH - 1) + 1)) // stride[0] + 1
    OW = (W + 2 * pad[1] - (dil[1] * (KW - 1) + 1)) // stride[1] + 1
    out = np.zeros((N, K, OH, OW), np.float64)
    Kg = K // group
    for g in range(group):
        for i in range(KH):
            for j in range(KW):
                h0, w0 = i * dil[0], j * dil[1]
                patch = xp[:, g * Cg:(g + 1) * Cg, h0:h0 + stride[0] * (OH - 1) + 1:stride[0],
                           w0:w0 + stride[1] * (OW - 1) + 1:stride[1]]
                out[:, g * Kg:(g + 1) * Kg] += np.einsum("nchw,kc->nkhw", patch, w[g * Kg:(g + 1) * Kg, :, i, j])
    if b is not None:
        out += b.reshape(1, -1, 1, 1)
    return out


def pool_out(H, k, s, p, ceil=True):
    o = (math.ceil if ceil else math.floor)((H + 2 * p - k) / s) + 1
    if p and (o - 1) * s >= H + p:
        o -= 1
    return o


def pool2d(x, k, s, p, mode):
    N, C, H, W = x.shape
    OH, OW = pool_out(H, k[0], s[0], p[0]), pool_out(W, k[1], s[1], p[1])
    out = np.zeros((N, C, OH, OW))
    for oh in range(OH):
        for ow in range(OW):
            hs, ws = oh * s[0] - p[0], ow * s[1] - p[1]
            he, we = min(hs + k[0], H + p[0]), min(ws + k[1], W + p[1])
            size = (he - hs) * (we - ws)
            win = x[:, :, max(hs, 0):min(he, H), max(ws, 0):min(we, W)]
            if mode == "MAX":
                out[:, :, oh, ow] = win.max(axis=(2, 3))
            else:
                out[:, :, oh, ow] = win.sum(axis=(2, 3)) / size
    return out


def softmax(x, axis=1):
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


def deconv2d(x, w, b, stride=(1, 1), pad=(0, 0), dil=(1, 1), group=1):
    """Transposed convolution by scattering: every input value times its kernel, added at its
    place in the (uncropped) output, which then loses `pad` on each side."""
    N, C, H, W = x.shape
    _, Kg, KH, KW = w.shape
    Cg = C // group
    FH = stride[0] * (H - 1) + dil[0] * (KH - 1) + 1
    FW = stride[1] * (W - 1) + dil[1] * (KW - 1) + 1
    full = np.zeros((N, Kg * group, FH, FW))
    for g in range(group):
        for i in range(KH):
            for j in range(KW):
                contrib = np.einsum("nchw,ck->nkhw", x[:, g * Cg:(g + 1) * Cg], w[g * Cg:(g + 1) * Cg, :, i, j])
                full[:, g * Kg:(g + 1) * Kg, i * dil[0]:i * dil[0] + stride[0] * (H - 1) + 1:stride[0],
                     j * dil[1]:j * dil[1] + stride[1] * (W - 1) + 1:stride[1]] += contrib
    out = full[:, :, pad[0]:FH - pad[0], pad[1]:FW - pad[1]]
    if b is not None:
        out = out + b.reshape(1, -1, 1, 1)
    return out


def spp(x, height, mode):
    """Spatial pyramid pooling by its definition: level l cuts the padded image into a 2^l grid
    of ceil(size / 2^l) windows."""
    N, C, H, W = x.shape
    outs = []
    for level in range(height):
        bins = 2 ** level
        kh, kw = math.ceil(H / bins), math.ceil(W / bins)
        ph, pw = (kh * bins - H + 1) // 2, (kw * bins - W + 1) // 2
        outs.append(pool2d(x, (kh, kw), (kh, kw), (ph, pw), mode))
    if height == 1:
        return outs[0]
    return np.concatenate([o.reshape(N, -1) for o in outs], axis=1)


def lanes_then_positions(terms):
    """terms (N, C, S) -> (C,): one float64 lane per position, adding the images in order, then
    the lanes in position order (the order netcli's per-channel sums keep, whatever their blocks)."""
    lanes = np.zeros(terms.shape[1:])
    for row in terms:
        lanes += row.astype(np.float64)
    return np.cumsum(lanes, axis=1)[:, -1]
