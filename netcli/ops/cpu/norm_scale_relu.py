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
mask is read from y (y > 0 exactly where w > 0 for slope >= 0), so nothing else is stored.
Sums are float64.
"""
import numpy as np
from numba import njit

from .channels import lane_sum
from .inplace import same


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
            elif inplace:
                for s in range(S):
                    yr[s] = _relu((yr[s] * ac + bc) * g + bb, relu, slope, zero)
            else:
                for s in range(S):
                    yr[s] = _relu((xr[s] * ac + bc) * g + bb, relu, slope, zero)


@njit(inline="always")
def _relu(w, relu, slope, zero):
    """The chain's last step on w = the Scale's output (relu false: w itself)."""
    if relu and not w > 0:
        return w * slope if slope != 0 else zero
    return w


@njit(cache=True, nogil=True)
def norm_scale_relu_grad_sums(dy, y, xhat, gamma, k, relu, dgamma, dbeta, sum_dy, sum_dy_xhat):
    """Per channel, over these rows: Scale's dgamma and dbeta, BatchNorm's sum_dy and sum_dy_xhat
    (all float64, written; in lanes per position, as channels.py sums)."""
    N, C, S = dy.shape
    slope, one = k[0], k[2]
    lanes = np.empty((4, S), np.float64)
    dz = np.empty(S, dy.dtype)
    for c in range(C):
        g = gamma[c]
        lanes[:] = 0.0
        lg, lb, l1, l2 = lanes[0], lanes[1], lanes[2], lanes[3]
        for n in range(N):
            dr, yr, xr = dy[n, c], y[n, c], xhat[n, c]
            for s in range(S):
                dz[s] = dr[s] * (one if yr[s] > 0 or not relu else slope)
            for s in range(S):          # one lane array per loop: they vectorise
                lg[s] += dz[s] * xr[s]
            for s in range(S):
                lb[s] += dz[s]
            for s in range(S):
                l1[s] += dz[s] * g
            for s in range(S):
                l2[s] += (dz[s] * g) * xr[s]
        dgamma[c] = lane_sum(lg)
        dbeta[c] = lane_sum(lb)
        sum_dy[c] = lane_sum(l1)
        sum_dy_xhat[c] = lane_sum(l2)


@njit(cache=True, nogil=True)
def norm_scale_relu_backward(dy, y, xhat, gamma, mean_dy, mean_dy_xhat, inv_std, k, relu, dx):
    """dx as above (dx may be dy)."""
    N, C, S = dy.shape
    slope, one = k[0], k[2]
    inplace = same(dy, dx)
    for n in range(N):
        for c in range(C):
            g, m1, m2, ks = gamma[c], mean_dy[c], mean_dy_xhat[c], inv_std[c]
            dr, yr, xr, o = dy[n, c], y[n, c], xhat[n, c], dx[n, c]
            if inplace:                  # one array named (ops/cpu/inplace.py)
                for s in range(S):
                    d = o[s] * (one if yr[s] > 0 or not relu else slope)
                    o[s] = (d * g - m1 - xr[s] * m2) * ks
            else:
                for s in range(S):
                    d = dr[s] * (one if yr[s] > 0 or not relu else slope)
                    o[s] = (d * g - m1 - xr[s] * m2) * ks


@njit(cache=True, nogil=True)
def add_sums(target, sums, fresh):
    """target[c] (float32) += sums[c] (float64), or = when `fresh` (as Scale's kernel adds)."""
    for c in range(target.shape[0]):
        if fresh:
            target[c] = sums[c]
        else:
            target[c] += sums[c]
