"""Fused parameter updates over a flat slice of all params, one pass each.

Every kernel first forms the gradient Caffe's solver uses: g' = scale*g + decay*w (L2) or
decay*sign(w) (L1), with `scale` = 1/iter_size times any clipping factor and `decay` the
per-element weight_decay*decay_mult; then applies its rule with the per-element rate lr*rate.

Results below float32's smallest normal number are stored as zero (flush to zero): under weight
decay some weights and running averages drift into the subnormal range, where every BLAS and
arithmetic operation that touches them becomes many times slower (RMSProp on LeNet went from 58 to
15 iterations/s), and they carry nothing a float32 net can use."""
from numba import njit

TINY = 1.1754943508222875e-38  # np.finfo(np.float32).tiny


@njit(cache=True, nogil=True, inline="always")
def _ftz(v):
    return v if abs(v) >= TINY else 0.0


@njit(cache=True, nogil=True)
def _grad(gi, wi, d, scale, l1):
    if l1:
        s = 1.0 if wi > 0 else (-1.0 if wi < 0 else 0.0)
        return scale * gi + d * s
    return scale * gi + d * wi


@njit(cache=True, nogil=True)
def combine_shares(base, scratch, lo, hi):
    """For j in [lo, hi): base[j] = the pairwise tree sum over shares of (base[j], scratch[0, j],
    ..., scratch[S-2, j]) -- ((g0+g1)+(g2+g3))+... in one fixed order whatever the slice -- and
    scratch[:, j] = 0. Blocks of 256 elements, one tree level at a time (vectorised over j)."""
    S = scratch.shape[0] + 1
    B = 256
    for b0 in range(lo, hi, B):
        b1 = min(b0 + B, hi)
        step = 1
        while step < S:
            for a in range(0, S - step, 2 * step):
                src = scratch[a + step - 1]
                if a == 0:
                    for j in range(b0, b1):
                        base[j] += src[j]
                else:
                    dst = scratch[a - 1]
                    for j in range(b0, b1):
                        dst[j] += src[j]
            step *= 2
        for r in range(S - 1):
            row = scratch[r]
            for j in range(b0, b1):
                row[j] = 0.0


@njit(cache=True, nogil=True)
def sgd(w, g, h, lr, decay, rate, momentum, scale, l1):
    """h = momentum*h + rate*lr*g';  w -= h"""
    for i in range(w.shape[0]):
        gi = _grad(g[i], w[i], decay[i], scale, l1)
        hi = momentum * h[i] + rate * lr[i] * gi
        h[i] = _ftz(hi)
        w[i] = _ftz(w[i] - hi)


@njit(cache=True, nogil=True)
def nesterov(w, g, h, lr, decay, rate, momentum, scale, l1):
    """h' = momentum*h + rate*lr*g';  w -= (1+momentum)*h' - momentum*h"""
    for i in range(w.shape[0]):
        gi = _grad(g[i], w[i], decay[i], scale, l1)
        prev = h[i]
        hi = momentum * prev + rate * lr[i] * gi
        h[i] = _ftz(hi)
        w[i] = _ftz(w[i] - ((1.0 + momentum) * hi - momentum * prev))


@njit(cache=True, nogil=True)
def adam(w, g, m, v, lr, decay, rate, b1, b2, eps, scale, l1):
    """m = b1*m + (1-b1)*g';  v = b2*v + (1-b2)*g'^2;  w -= rate*lr * m / (sqrt(v) + eps)
    (`rate` already holds Adam's bias correction sqrt(1-b2^t)/(1-b1^t))."""
    for i in range(w.shape[0]):
        gi = _grad(g[i], w[i], decay[i], scale, l1)
        mi = b1 * m[i] + (1.0 - b1) * gi
        vi = b2 * v[i] + (1.0 - b2) * gi * gi
        m[i] = _ftz(mi)
        v[i] = _ftz(vi)
        w[i] = _ftz(w[i] - rate * lr[i] * mi / (vi ** 0.5 + eps))


@njit(cache=True, nogil=True)
def adagrad(w, g, h, lr, decay, rate, eps, scale, l1):
    """h += g'^2;  w -= rate*lr * g' / (sqrt(h) + eps)"""
    for i in range(w.shape[0]):
        gi = _grad(g[i], w[i], decay[i], scale, l1)
        hi = h[i] + gi * gi
        h[i] = _ftz(hi)
        w[i] = _ftz(w[i] - rate * lr[i] * gi / (hi ** 0.5 + eps))


@njit(cache=True, nogil=True)
def rmsprop(w, g, h, lr, decay, rate, rms_decay, eps, scale, l1):
    """h = rms_decay*h + (1-rms_decay)*g'^2;  w -= rate*lr * g' / (sqrt(h) + eps)"""
    for i in range(w.shape[0]):
        gi = _grad(g[i], w[i], decay[i], scale, l1)
        hi = rms_decay * h[i] + (1.0 - rms_decay) * gi * gi
        h[i] = _ftz(hi)
        w[i] = _ftz(w[i] - rate * lr[i] * gi / (hi ** 0.5 + eps))


@njit(cache=True, nogil=True)
def adadelta(w, g, h, h2, lr, decay, rate, rho, eps, scale, l1):
    """h = rho*h + (1-rho)*g'^2;  dx = g' * sqrt((h2+eps)/(h+eps));  h2 = rho*h2 + (1-rho)*dx^2;
    w -= rate*lr * dx"""
    for i in range(w.shape[0]):
        gi = _grad(g[i], w[i], decay[i], scale, l1)
        hi = rho * h[i] + (1.0 - rho) * gi * gi
        dx = gi * ((h2[i] + eps) / (hi + eps)) ** 0.5
        h[i] = _ftz(hi)
        h2[i] = _ftz(rho * h2[i] + (1.0 - rho) * dx * dx)
        w[i] = _ftz(w[i] - rate * lr[i] * dx)
