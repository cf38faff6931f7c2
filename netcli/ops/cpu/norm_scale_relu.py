"""BatchNorm, Scale and ReLU in one pass over the data (the chain every ResNet and MobileNet block
has: exec/fusion.py finds it). Arrays viewed as (N, C, S), as in channels.py.

Forward: xhat = x * a[c] + b[c] (a = 1/std, b = -mean/std), w = xhat * gamma[c] + beta[c],
y = w if w > 0 else slope * w (relu false: y = w). `k` holds (slope, 0, 1) in the arrays' dtype, so
that no value is widened to float64 on the way. Backward, with dz = dy where y > 0 and
slope * dy elsewhere (relu false: dz = dy) and dxhat = dz * gamma[c]:
  dgamma[c] = sum dz * xhat, dbeta[c] = sum dz (Scale's gradients),
  sum_dy[c] = sum dxhat, sum_dy_xhat[c] = sum dxhat * xhat (BatchNorm's statistics),
  dx = (dxhat - mean_dy[c] - xhat * mean_dy_xhat[c]) * inv_std[c].
Each value is formed by the same operations (in the blob's dtype), and each sum in the same order, as the three
layers' own kernels (channels.scale_forward/backward, channel_grad_sums, batch_norm_backward and
ReLU's), so the fused chain gives the unfused chain's bits: only the passes over memory go (three
reads and three writes of the blob forward, about twice that backward, become one and two). The
backward forms the mask again from xhat, w = xhat * gamma[c] + beta[c] by the forward's own
operations in the blob's dtype (w > 0 exactly where y > 0, for slope >= 0), so that it reads neither y nor
a stored mask: 32 images of 16 x 32x32 out of cache, one thread, AMD EPYC Zen 5, gradient sums
297 -> 264 us (without the ReLU, which read y all the same, 295 -> 244), backward 141 -> 106 us.
Sums are float64.

Small planes (fewer than SMALL_PLANE positions: MobileNet's 4x4 and 2x2, ResNet-50's 7x7) go, in
the forward that keeps nothing, in blocks of channels (`_blocked`): each loop runs over a block's CHANNEL_BLOCK numbers at once, with
the per-channel numbers spread over the block, where one loop per channel and image ran over 4
or 16 numbers; the same operations and sums in the same order. Forward, one thread, 32 images
(per-channel -> blocked): 512 x 4x4 0.30 -> 0.07 ms, 1024 x 2x2 0.48 -> 0.04 ms, 64 x 8x8 0.06
-> 0.03 ms; but 16 x 32x32 0.09 -> 0.15 ms (hence the bound). The training passes run faster
channel by channel from 3x3 planes up, and so go in blocks only below TRAINING_SMALL_PLANE (9):
blocked -> per channel, 32 images out of cache, us, the backward (its mask formed from xhat):
512 x 3x3 66 -> 49, 512 x 4x4 115 -> 67, 128 x 7x7 88 -> 49, 64 x 8x8 59 -> 33, 64 x 10x10 87 ->
49, but 1024 x 2x2 62 -> 117; the forward keeping xhat: 512 x 4x4 114 -> 75, 256 x 5x5 97 -> 60,
128 x 7x7 92 -> 52, 64 x 8x8 61 -> 36, but 1024 x 2x2 62 -> 148. Blocks of 8192 numbers rather than
1024 read each image's block in longer runs (inputs out of cache, AMD EPYC Zen 5, forward /
backward, us: 512 x 4x4 161 / 163 -> 125 / 137, 1024 x 2x2 77 / 84 -> 67 / 73, 128 x 7x7 120 /
116 -> 93 / 100). The gradient sums go in blocks on every plane (GRAD_BLOCK, where they are).
"""
import numpy as np
from numba import njit

from .channels import lane_sum
from .inplace import same

SMALL_PLANE = 128           # positions per channel below which the forward keeping nothing goes in blocks of channels,
TRAINING_SMALL_PLANE = 9    # and below which the forward that keeps xhat and the backward do (see above)
CHANNEL_BLOCK = 8192        # numbers per block (channels x positions), at least one channel


@njit(cache=True, nogil=True, inline="always")
def _blocked(C, S):
    """Channels per block."""
    return max(1, min(C, CHANNEL_BLOCK // S))


@njit(cache=True, nogil=True, inline="always")
def _spread(rows, c0, c1, S, v0, v1, v2, v3):
    """rows[j, (c - c0)*S + s] = vj[c] for the block's channels c0..c1: per-channel numbers as
    the block's per-position rows."""
    for c in range(c0, c1):
        s0 = (c - c0) * S
        rows[0, s0:s0 + S] = v0[c]
        rows[1, s0:s0 + S] = v1[c]
        rows[2, s0:s0 + S] = v2[c]
        rows[3, s0:s0 + S] = v3[c]


@njit(cache=True, nogil=True)
def norm_scale_relu_forward(x, a, b, gamma, beta, k, relu, y, xhat, pos):
    """y from x as above (x and y may be the same array); xhat (when it has N rows) keeps
    the normalised values for the backward, pos (when it has N rows) where w > 0 (the unfused
    ReLU's mask)."""
    N, C, S = x.shape
    keep = xhat.shape[0] == N
    mask = pos.shape[0] == N
    inplace = same(x, y)
    slope, zero = k[0], k[1]
    if S < (TRAINING_SMALL_PLANE if keep else SMALL_PLANE):
        _forward_blocked(x, a, b, gamma, beta, slope, zero, relu, y, xhat, pos, keep, mask, inplace)
        return
    for n in range(N):
        for c in range(C):
            ac, bc, g, bb, yr = a[c], b[c], gamma[c], beta[c], y[n, c]
            xr = yr if inplace else x[n, c]
            if keep:                     # xhat first, then y from it: no loop reads and writes two
                xh = xhat[n, c]          # names of one array (ops/cpu/inplace.py)
                for s in range(S):
                    xh[s] = xr[s] * ac + bc
                if mask:
                    pr = pos[n, c]
                    for s in range(S):
                        w = xh[s] * g + bb
                        pr[s] = w > 0
                        yr[s] = _relu(w, relu, slope, zero)
                else:
                    for s in range(S):
                        yr[s] = _relu(xh[s] * g + bb, relu, slope, zero)
            elif mask:
                pr = pos[n, c]
                if inplace:
                    for s in range(S):
                        w = (yr[s] * ac + bc) * g + bb
                        pr[s] = w > 0
                        yr[s] = _relu(w, relu, slope, zero)
                else:
                    for s in range(S):
                        w = (xr[s] * ac + bc) * g + bb
                        pr[s] = w > 0
                        yr[s] = _relu(w, relu, slope, zero)
            else:
                _row(xr, yr, ac, bc, g, bb, inplace, relu, slope, zero, S)


@njit(cache=True, nogil=True)
def _forward_blocked(x, a, b, gamma, beta, slope, zero, relu, y, xhat, pos, keep, mask, inplace):
    """norm_scale_relu_forward on small planes, in blocks of channels."""
    N, C, S = x.shape
    cb = _blocked(C, S)
    co = np.empty((4, cb * S), x.dtype)
    x2, y2 = x.reshape(N, C * S), y.reshape(N, C * S)
    for c0 in range(0, C, cb):
        c1 = min(C, c0 + cb)
        i0, i1, L = c0 * S, c1 * S, (c1 - c0) * S
        _spread(co, c0, c1, S, a, b, gamma, beta)
        av, bv, gv, tv = co[0, :L], co[1, :L], co[2, :L], co[3, :L]
        for n in range(N):
            yr = y2[n, i0:i1]
            xr = yr if inplace else x2[n, i0:i1]
            if keep:                     # xhat first, then y from it (as the per-channel loops)
                xh = xhat.reshape(N, C * S)[n, i0:i1]
                for i in range(L):
                    xh[i] = xr[i] * av[i] + bv[i]
                if mask:
                    pr = pos.reshape(N, C * S)[n, i0:i1]
                    for i in range(L):
                        w = xh[i] * gv[i] + tv[i]
                        pr[i] = w > 0
                        yr[i] = _relu(w, relu, slope, zero)
                else:
                    for i in range(L):
                        yr[i] = _relu(xh[i] * gv[i] + tv[i], relu, slope, zero)
            elif mask:
                pr = pos.reshape(N, C * S)[n, i0:i1]
                if inplace:
                    for i in range(L):
                        w = (yr[i] * av[i] + bv[i]) * gv[i] + tv[i]
                        pr[i] = w > 0
                        yr[i] = _relu(w, relu, slope, zero)
                else:
                    for i in range(L):
                        w = (xr[i] * av[i] + bv[i]) * gv[i] + tv[i]
                        pr[i] = w > 0
                        yr[i] = _relu(w, relu, slope, zero)
            elif inplace:
                for i in range(L):
                    yr[i] = _relu((yr[i] * av[i] + bv[i]) * gv[i] + tv[i], relu, slope, zero)
            else:
                for i in range(L):
                    yr[i] = _relu((xr[i] * av[i] + bv[i]) * gv[i] + tv[i], relu, slope, zero)


@njit(cache=True, nogil=True)
def norm_scale_relu_tile(x, a, b, gamma, beta, k, relu, y, S, c0, c1, p0, p1):
    """norm_scale_relu_forward on one image's channels c0..c1 at positions p0..p1 (a tile of a
    convolution's output, written while in cache: ops/cpu/conv2d.py), keeping neither xhat nor
    a mask; x and y are the image flat, (C * S,), and may be the same array."""
    slope, zero = k[0], k[1]
    inplace = same(x, y)
    for c in range(c0, c1):              # row views indexed from 0: no wraparound test, vectorised
        yr = y[c * S + p0:c * S + p1]
        _row(yr if inplace else x[c * S + p0:c * S + p1], yr, a[c], b[c], gamma[c], beta[c], inplace, relu, slope,
             zero, p1 - p0)


@njit(cache=True, nogil=True, inline="always")
def _row(xr, yr, ac, bc, g, bb, inplace, relu, slope, zero, L):
    """One channel's row of the forward (L numbers), keeping neither xhat nor a mask (in place:
    only yr is named)."""
    if inplace:
        for s in range(L):
            yr[s] = _relu((yr[s] * ac + bc) * g + bb, relu, slope, zero)
    else:
        for s in range(L):
            yr[s] = _relu((xr[s] * ac + bc) * g + bb, relu, slope, zero)


@njit(inline="always")
def _relu(w, relu, slope, zero):
    """The chain's last step on w = the Scale's output (relu false: w itself)."""
    if relu and not w > 0:
        return w * slope if slope != 0 else zero
    return w


@njit(inline="always")
def _slope_at(w, relu, slope, one):
    """The ReLU's derivative where the Scale's output was w (relu false: one): the mask the
    forward's y > 0 gives, from w (w > 0 exactly where y > 0, slope >= 0)."""
    return one if not relu or w > 0 else slope


# The gradient sums run over blocks of GRAD_BLOCK numbers (channels x positions, at least one
# channel): each image's block is one contiguous read, where one channel at a time jumped a whole
# image's channels between rows of a few KB and left the prefetcher to start again on each; and
# each pass takes two images, loading and storing the four lanes once for both. Each lane still
# adds its images in order, so the sums are the same bits. One thread, AMD EPYC Zen 5, 32 images,
# inputs out of cache as in a pass (hot in brackets), before -> after: 16 x 32x32 0.50 -> 0.31 ms
# (0.19 -> 0.16), 32 x 16x16 0.27 -> 0.16 (0.08 -> 0.08), 64 x 8x8 0.11 -> 0.08, 64 x 16x16 0.57
# -> 0.31, 512 x 4x4 0.25 -> 0.16 (0.08 -> 0.07), 1024 x 2x2 0.12 -> 0.08, 128 x 7x7 0.19 -> 0.11.
GRAD_BLOCK = 8192


@njit(cache=True, nogil=True)
def norm_scale_relu_grad_sums(dy, xhat, gamma, beta, k, relu, dgamma, dbeta, sum_dy, sum_dy_xhat):
    """Per channel, over these rows: Scale's dgamma and dbeta, BatchNorm's sum_dy and sum_dy_xhat
    (all float64, written; in lanes per position, as channels.py sums)."""
    norm_scale_relu_grad_sums_part(dy, xhat, gamma, beta, k, relu, dgamma, dbeta, sum_dy, sum_dy_xhat, 0, dy.shape[1])


@njit(cache=True, nogil=True)
def norm_scale_relu_grad_sums_part(dy, xhat, gamma, beta, k, relu, dgamma, dbeta, sum_dy, sum_dy_xhat, c_from, c_to):
    """norm_scale_relu_grad_sums of the channels c_from..c_to alone, the same bits (each lane adds
    its images in order whichever block holds it: a team's tiles, channels_team.py)."""
    N, C, S = dy.shape
    slope, one = k[0], k[2]
    cb = max(1, min(c_to - c_from, GRAD_BLOCK // S))
    L0 = cb * S
    lg, lb = np.empty(L0, np.float64), np.empty(L0, np.float64)
    l1, l2 = np.empty(L0, np.float64), np.empty(L0, np.float64)
    g0, b0 = np.empty(L0, dy.dtype), np.empty(L0, dy.dtype)     # the gamma and beta of each position of a block
    d2, x2 = dy.reshape(N, C * S), xhat.reshape(N, C * S)
    for c0 in range(c_from, c_to, cb):
        c1 = min(c_to, c0 + cb)
        i0, i1, L = c0 * S, c1 * S, (c1 - c0) * S
        for c in range(c0, c1):
            g0[(c - c0) * S:(c - c0 + 1) * S] = gamma[c]
            b0[(c - c0) * S:(c - c0 + 1) * S] = beta[c]
        gv, bv = g0[:L], b0[:L]
        lg[:L] = 0.0
        lb[:L] = 0.0
        l1[:L] = 0.0
        l2[:L] = 0.0
        for n in range(0, N - 1, 2):
            _add_two_images(d2[n, i0:i1], x2[n, i0:i1], d2[n + 1, i0:i1], x2[n + 1, i0:i1], gv, bv, slope, one,
                            relu, lg, lb, l1, l2, L)
        if N % 2:
            _add_grad_lanes(d2[N - 1, i0:i1], x2[N - 1, i0:i1], gv, bv, slope, one, relu, lg, lb, l1, l2, L)
        for c in range(c0, c1):
            s0, s1 = (c - c0) * S, (c - c0 + 1) * S
            dgamma[c] = lane_sum(lg[s0:s1])
            dbeta[c] = lane_sum(lb[s0:s1])
            sum_dy[c] = lane_sum(l1[s0:s1])
            sum_dy_xhat[c] = lane_sum(l2[s0:s1])


@njit(cache=True, nogil=True, inline="always")
def _add_grad_lanes(dr, xr, gv, bv, slope, one, relu, lg, lb, l1, l2, L):
    """One image's terms added to the four lane arrays, gv and bv the gamma and beta of each
    position (four arrays apart, so that one loop over them vectorises; as views of one array it
    took four loops and a row of dz: 32 images of 16 x 32x32, one thread, AMD EPYC Zen 5, 212 ->
    158 us)."""
    for s in range(L):
        x = xr[s]
        z = dr[s] * _slope_at(x * gv[s] + bv[s], relu, slope, one)
        zg = z * gv[s]
        lg[s] += z * x
        lb[s] += z
        l1[s] += zg
        l2[s] += zg * x


@njit(cache=True, nogil=True, inline="always")
def _add_two_images(da, xa, db, xb, gv, bv, slope, one, relu, lg, lb, l1, l2, L):
    """Two images' terms (a, then b) added to the lanes: _add_grad_lanes twice, in one loop."""
    for s in range(L):
        xs, xt = xa[s], xb[s]
        za = da[s] * _slope_at(xs * gv[s] + bv[s], relu, slope, one)
        zb = db[s] * _slope_at(xt * gv[s] + bv[s], relu, slope, one)
        zga, zgb = za * gv[s], zb * gv[s]
        v = lg[s]
        v += za * xs
        v += zb * xt
        lg[s] = v
        v = lb[s]
        v += za
        v += zb
        lb[s] = v
        v = l1[s]
        v += zga
        v += zgb
        l1[s] = v
        v = l2[s]
        v += zga * xs
        v += zgb * xt
        l2[s] = v


@njit(cache=True, nogil=True)
def norm_scale_relu_backward(dy, xhat, gamma, beta, mean_dy, mean_dy_xhat, inv_std, k, relu, dx):
    """dx as above (dx may be dy)."""
    N, C, S = dy.shape
    slope, one = k[0], k[2]
    inplace = same(dy, dx)
    if S < TRAINING_SMALL_PLANE:
        _backward_blocked(dy, xhat, gamma, beta, mean_dy, mean_dy_xhat, inv_std, slope, one, relu, dx, inplace)
        return
    for n in range(N):
        for c in range(C):
            g, bb, m1, m2, ks = gamma[c], beta[c], mean_dy[c], mean_dy_xhat[c], inv_std[c]
            dr, xr, o = dy[n, c], xhat[n, c], dx[n, c]
            if inplace:                  # one array named (ops/cpu/inplace.py)
                for s in range(S):
                    x = xr[s]
                    d = o[s] * _slope_at(x * g + bb, relu, slope, one)
                    o[s] = (d * g - m1 - x * m2) * ks
            else:
                for s in range(S):
                    x = xr[s]
                    d = dr[s] * _slope_at(x * g + bb, relu, slope, one)
                    o[s] = (d * g - m1 - x * m2) * ks


@njit(cache=True, nogil=True)
def _backward_blocked(dy, xhat, gamma, beta, mean_dy, mean_dy_xhat, inv_std, slope, one, relu, dx, inplace):
    """norm_scale_relu_backward on small planes, in blocks of channels."""
    N, C, S = dy.shape
    cb = _blocked(C, S)
    co = np.empty((5, cb * S), dy.dtype)
    d2, x2, o2 = dy.reshape(N, C * S), xhat.reshape(N, C * S), dx.reshape(N, C * S)
    for c0 in range(0, C, cb):
        c1 = min(C, c0 + cb)
        i0, i1, L = c0 * S, c1 * S, (c1 - c0) * S
        _spread(co, c0, c1, S, gamma, mean_dy, mean_dy_xhat, inv_std)
        for c in range(c0, c1):
            co[4, (c - c0) * S:(c - c0 + 1) * S] = beta[c]
        gv, m1, m2, ks, bv = co[0, :L], co[1, :L], co[2, :L], co[3, :L], co[4, :L]
        for n in range(N):
            xr, o = x2[n, i0:i1], o2[n, i0:i1]
            if inplace:                  # one array named (ops/cpu/inplace.py)
                for i in range(L):
                    x = xr[i]
                    d = o[i] * _slope_at(x * gv[i] + bv[i], relu, slope, one)
                    o[i] = (d * gv[i] - m1[i] - x * m2[i]) * ks[i]
            else:
                dr = d2[n, i0:i1]
                for i in range(L):
                    x = xr[i]
                    d = dr[i] * _slope_at(x * gv[i] + bv[i], relu, slope, one)
                    o[i] = (d * gv[i] - m1[i] - x * m2[i]) * ks[i]


@njit(cache=True, nogil=True)
def add_sums(target, sums, fresh):
    """target[c] (float32) += sums[c] (float64), or = when `fresh` (as Scale's kernel adds)."""
    for c in range(target.shape[0]):
        if fresh:
            target[c] = sums[c]
        else:
            target[c] += sums[c]
