"""Per-channel kernels of BatchNorm and Scale, on arrays viewed as (N, C, S): N samples, C
channels, S positions per channel (the spatial axes flattened; 1 for a 2-D input).

BatchNorm in TRAIN needs statistics over the whole batch; the executor computes them per share
(`channel_moments`, `channel_grad_sums`) and combines the shares in a fixed order
(`combine_moments`, plain sums), so the statistics do not depend on which thread ran what.
Sums are float64; element-wise outputs float32.
"""
import numpy as np
from numba import njit

from .inplace import same

# The moments run over blocks of MOMENTS_BLOCK numbers (channels x positions, at least one
# channel), two images a pass; each lane still adds its images in order (the same bits). Both
# passes of a block read its images, so a block of 32 images stays in L2 (larger blocks measured
# slower). One thread, AMD EPYC Zen 5, 32 images out of cache (hot in brackets), before -> after:
# 16 x 32x32 0.17 -> 0.15 ms (0.076 -> 0.071), 32 x 16x16 0.077 -> 0.071, 64 x 8x8 0.049 ->
# 0.035, 512 x 4x4 0.095 -> 0.066 (0.046 -> 0.030), 64 x 16x16 0.16 -> 0.14.
MOMENTS_BLOCK = 2048


@njit(cache=True, nogil=True)
def channel_moments(x, count, mean, m2):
    """Per channel c of x (N, C, S): count = N*S, mean[c], and m2[c] = sum of (x - mean)^2.
    Each sum runs over the samples into one float64 lane per position, then over the lanes in
    position order (summed along the positions, the loops vectorise: 5-7x a running scalar sum)."""
    count[0] = x.shape[0] * x.shape[2]
    channel_moments_part(x, mean, m2, 0, x.shape[1])


@njit(cache=True, nogil=True)
def channel_moments_part(x, mean, m2, c_from, c_to):
    """channel_moments' mean and m2 of the channels c_from..c_to alone: each channel's lanes add
    the images in the same order whichever block holds it, so the same bits (a team's tiles:
    channels_team.py)."""
    N, C, S = x.shape
    cb = max(1, min(c_to - c_from, MOMENTS_BLOCK // S))
    acc = np.empty(cb * S, np.float64)
    mu = np.empty(cb * S, np.float64)            # the block's means, spread over its positions
    x2 = x.reshape(N, C * S)
    for c0 in range(c_from, c_to, cb):
        c1 = min(c_to, c0 + cb)
        i0, i1, L = c0 * S, c1 * S, (c1 - c0) * S
        a, m = acc[:L], mu[:L]
        a[:] = 0.0
        for n in range(0, N - 1, 2):
            ra, rb = x2[n, i0:i1], x2[n + 1, i0:i1]
            for i in range(L):
                v = a[i]
                v += ra[i]
                v += rb[i]
                a[i] = v
        if N % 2:
            row = x2[N - 1, i0:i1]
            for i in range(L):
                a[i] += row[i]
        for c in range(c0, c1):
            mean[c] = lane_sum(a[(c - c0) * S:(c - c0 + 1) * S]) / (N * S)
            m[(c - c0) * S:(c - c0 + 1) * S] = mean[c]
        a[:] = 0.0
        for n in range(0, N - 1, 2):
            ra, rb = x2[n, i0:i1], x2[n + 1, i0:i1]
            for i in range(L):
                da, db = ra[i] - m[i], rb[i] - m[i]
                v = a[i]
                v += da * da
                v += db * db
                a[i] = v
        if N % 2:
            row = x2[N - 1, i0:i1]
            for i in range(L):
                d = row[i] - m[i]
                a[i] += d * d
        for c in range(c0, c1):
            m2[c] = lane_sum(a[(c - c0) * S:(c - c0 + 1) * S])


@njit(cache=True, nogil=True, inline="always")
def lane_sum(acc):
    """The lanes' total, in position order."""
    total = 0.0
    for s in range(acc.shape[0]):
        total += acc[s]
    return total


@njit(cache=True, nogil=True)
def combine_moments(count_a, mean_a, m2_a, count_b, mean_b, m2_b):
    """(count_a, mean_a, m2_a) <- the moments of a's and b's samples together (Chan et al.'s
    pairwise update)."""
    na, nb = count_a[0], count_b[0]
    n = na + nb
    if nb == 0:
        return
    for c in range(mean_a.shape[0]):
        delta = mean_b[c] - mean_a[c]
        mean_a[c] += delta * nb / n
        m2_a[c] += m2_b[c] + delta * delta * na * nb / n
    count_a[0] = n


@njit(cache=True, nogil=True)
def batch_stats_step(count, mean, m2, maf_one, ratio, eps, mean_b, var_b, s_b, inv_std, a, b):
    """BatchNorm in TRAIN, once the shares' moments are combined (count, mean, m2: float64): the
    running sums mean_b = mean + maf * mean_b and var_b = ratio * var + maf * var_b, their factor
    s_b = s_b * maf + 1 (maf_one: (maf, 1) in the blobs' dtype), and inv_std = a = 1/sqrt(var +
    eps), b = -mean * inv_std; each as NumPy's same formula rounds it (the products with maf in
    the blobs' dtype, the rest in float64, then rounded to it). One call where NumPy's 15 took
    23-46 us a layer on a 2-core AMD EPYC in a training pass (ResNet-20 has 21 BatchNorms), the
    other threads waiting (exec/threads.py, Barrier)."""
    maf, one = maf_one[0], maf_one[1]
    s_b[0] = s_b[0] * maf + one
    n = max(count[0], 1.0)
    for c in range(mean.shape[0]):
        mu, var = mean[c], m2[c] / n
        mean_b[c] = mu + maf * mean_b[c]
        var_b[c] = ratio * var + maf * var_b[c]
        inv = 1.0 / np.sqrt(var + eps)
        inv_std[c] = inv
        a[c] = inv
        b[c] = -mu * inv


@njit(cache=True, nogil=True)
def grad_stats_means(sum_dy, sum_dy_xhat, m, mean_dy, mean_dy_xhat):
    """mean_dy = sum_dy / m and mean_dy_xhat = sum_dy_xhat / m (float64 sums of the batch, the means
    rounded to the blobs' dtype), in one call."""
    for c in range(sum_dy.shape[0]):
        mean_dy[c] = sum_dy[c] / m
        mean_dy_xhat[c] = sum_dy_xhat[c] / m


@njit(cache=True, nogil=True)
def stored_affine(mean, var, factor, eps, inv_std, a, b):
    """BatchNorm with stored statistics (use_global_stats): inv_std = a = 1/sqrt(var * factor +
    eps), b = -mean * factor * inv_std, in float64 then rounded (as NumPy's same formula). One
    call where NumPy's took 8 us a layer (ResNet-50 at batch 1 has 53)."""
    for c in range(mean.shape[0]):
        inv = 1.0 / np.sqrt(np.float64(var[c]) * factor + eps)
        inv_std[c] = inv
        a[c] = inv
        b[c] = -np.float64(mean[c]) * factor * inv


@njit(cache=True, nogil=True)
def channel_affine(x, a, b, y):
    """y[n, c, s] = x[n, c, s] * a[c] + b[c] (x and y may be the same array)."""
    N, C, S = x.shape
    inplace = same(x, y)
    for n in range(N):
        for c in range(C):
            ac, bc, yr = a[c], b[c], y[n, c]
            if inplace:                  # one array named (ops/cpu/inplace.py)
                for s in range(S):
                    yr[s] = yr[s] * ac + bc
            else:
                xr = x[n, c]
                for s in range(S):
                    yr[s] = xr[s] * ac + bc


@njit(cache=True, nogil=True)
def batch_norm_forward(x, a, b, y, xhat):
    """y = xhat = x * a[c] + b[c] (a = 1/std, b = -mean/std); xhat is the copy backward reads
    (x and y may be the same array)."""
    N, C, S = x.shape
    for n in range(N):
        for c in range(C):
            ac, bc, xh, yr = a[c], b[c], xhat[n, c], y[n, c]
            xr = yr if same(x, y) else x[n, c]
            for s in range(S):           # xhat first: then y from it, a loop of two arrays
                xh[s] = xr[s] * ac + bc
            for s in range(S):
                yr[s] = xh[s]


# The unfused layers' sums (channel_grad_sums, scale_backward) go as the fused chain's
# (norm_scale_relu.py, GRAD_BLOCK): blocks of SUMS_BLOCK numbers, each image's block one contiguous
# read, two images a pass; the same sums in the same order, where one channel at a time read rows
# a whole image apart (and rows of 4-16 numbers on small planes). One thread, AMD EPYC Zen 5, 32
# images out of cache, channel_grad_sums / scale_backward with dx, before -> after (us): 16 x
# 32x32 342 -> 192 / 398 -> 297, 32 x 16x16 163 -> 97 / 258 -> 145, 64 x 8x8 82 -> 52 / 147 -> 75,
# 512 x 4x4 202 -> 96 / 787 -> 145.
SUMS_BLOCK = 8192


@njit(cache=True, nogil=True)
def channel_grad_sums(dy, xhat, sum_dy, sum_dy_xhat):
    """Per channel: sum_dy[c] = sum of dy, sum_dy_xhat[c] = sum of dy * xhat (float64, in lanes
    per position as channel_moments)."""
    N, C, S = dy.shape
    cb = max(1, min(C, SUMS_BLOCK // S))
    ls, lp = np.empty(cb * S, np.float64), np.empty(cb * S, np.float64)
    d2, x2 = dy.reshape(N, C * S), xhat.reshape(N, C * S)
    for c0 in range(0, C, cb):
        c1 = min(C, c0 + cb)
        i0, i1, L = c0 * S, c1 * S, (c1 - c0) * S
        ls[:L] = 0.0
        lp[:L] = 0.0
        for n in range(0, N - 1, 2):
            _add_two_images(d2[n, i0:i1], x2[n, i0:i1], d2[n + 1, i0:i1], x2[n + 1, i0:i1], ls, lp, L)
        if N % 2:
            _add_image(d2[N - 1, i0:i1], x2[N - 1, i0:i1], ls, lp, L)
        for c in range(c0, c1):
            sum_dy[c] = lane_sum(ls[(c - c0) * S:(c - c0 + 1) * S])
            sum_dy_xhat[c] = lane_sum(lp[(c - c0) * S:(c - c0 + 1) * S])


@njit(cache=True, nogil=True, inline="always")
def _add_image(d, x, ls, lp, L):
    """ls += d, lp += d * x, lane by lane."""
    for i in range(L):
        ls[i] += d[i]
        lp[i] += d[i] * x[i]


@njit(cache=True, nogil=True, inline="always")
def _add_two_images(da, xa, db, xb, ls, lp, L):
    """_add_image for image a, then b, in one loop."""
    for i in range(L):
        v = ls[i]
        v += da[i]
        v += db[i]
        ls[i] = v
        v = lp[i]
        v += da[i] * xa[i]
        v += db[i] * xb[i]
        lp[i] = v


@njit(cache=True, nogil=True)
def batch_norm_backward(dy, xhat, mean_dy, mean_dy_xhat, inv_std, dx):
    """dx = (dy - mean_dy[c] - xhat * mean_dy_xhat[c]) * inv_std[c] (dx may be dy)."""
    N, C, S = dy.shape
    inplace = same(dy, dx)
    for n in range(N):
        for c in range(C):
            m1, m2, k, o, xh = mean_dy[c], mean_dy_xhat[c], inv_std[c], dx[n, c], xhat[n, c]
            if inplace:                  # one array named (ops/cpu/inplace.py)
                for s in range(S):
                    o[s] = (o[s] - m1 - xh[s] * m2) * k
            else:
                g = dy[n, c]
                for s in range(S):
                    o[s] = (g[s] - m1 - xh[s] * m2) * k


@njit(cache=True, nogil=True)
def scale_forward(x, gamma, beta, y, x_saved):
    """y = x * gamma[c] (+ beta[c] when beta has C entries); x_saved (when it has N rows) keeps
    x for the backward (x and y may be the same array)."""
    N, C, S = x.shape
    bias = beta.shape[0] == C
    keep = x_saved.shape[0] == N
    inplace = same(x, y)
    for n in range(N):
        for c in range(C):
            g = gamma[c]
            bc = beta[c] if bias else 0.0
            yr = y[n, c]
            if keep:                     # the saved copy first: then y from it
                xs = x_saved[n, c]
                xr = yr if inplace else x[n, c]
                for s in range(S):
                    xs[s] = xr[s]
                for s in range(S):
                    yr[s] = xs[s] * g + bc
            elif inplace:                # one array named (ops/cpu/inplace.py)
                for s in range(S):
                    yr[s] = yr[s] * g + bc
            else:
                xr = x[n, c]
                for s in range(S):
                    yr[s] = xr[s] * g + bc


@njit(cache=True, nogil=True)
def scale_backward(dy, x, gamma, dgamma, dbeta, dx, fresh):
    """dgamma[c] += sum of dy * x, dbeta[c] += sum of dy (when dbeta has C entries; = when
    `fresh`; float64 lanes per position as channel_moments, in blocks as channel_grad_sums);
    dx = dy * gamma[c] when dx has N rows (dx may be dy: an image's sums are taken first)."""
    N, C, S = dy.shape
    bias = dbeta.shape[0] == C
    grad_in = dx.shape[0] == N
    cb = max(1, min(C, SUMS_BLOCK // S))
    lb, lg = np.empty(cb * S, np.float64), np.empty(cb * S, np.float64)
    gv = np.empty(cb * S, gamma.dtype)            # the gamma of each position of a block
    d2, x2, o2 = dy.reshape(N, C * S), x.reshape(N, C * S), dx.reshape(dx.shape[0], C * S)
    for c0 in range(0, C, cb):
        c1 = min(C, c0 + cb)
        i0, i1, L = c0 * S, c1 * S, (c1 - c0) * S
        lb[:L] = 0.0
        lg[:L] = 0.0
        for c in range(c0, c1):
            gv[(c - c0) * S:(c - c0 + 1) * S] = gamma[c]
        for n in range(0, N - 1, 2):
            _add_two_images(d2[n, i0:i1], x2[n, i0:i1], d2[n + 1, i0:i1], x2[n + 1, i0:i1], lb, lg, L)
            if grad_in:
                _scaled(d2[n, i0:i1], gv, o2[n, i0:i1], L)
                _scaled(d2[n + 1, i0:i1], gv, o2[n + 1, i0:i1], L)
        if N % 2:
            _add_image(d2[N - 1, i0:i1], x2[N - 1, i0:i1], lb, lg, L)
            if grad_in:
                _scaled(d2[N - 1, i0:i1], gv, o2[N - 1, i0:i1], L)
        for c in range(c0, c1):
            sg = lane_sum(lg[(c - c0) * S:(c - c0 + 1) * S])
            sb = lane_sum(lb[(c - c0) * S:(c - c0 + 1) * S])
            if fresh:
                dgamma[c] = sg
                if bias:
                    dbeta[c] = sb
            else:
                dgamma[c] += sg
                if bias:
                    dbeta[c] += sb


@njit(cache=True, nogil=True, inline="always")
def _scaled(d, gv, o, L):
    """o = d * gv (o may be d: one array named, ops/cpu/inplace.py)."""
    if same(d, o):
        for i in range(L):
            o[i] = o[i] * gv[i]
    else:
        for i in range(L):
            o[i] = d[i] * gv[i]
