"""One element of an update, written once for both devices: the flush to zero, Caffe's gradient
(coupled weight decay) or the scaled gradient alone, and `element`, which the CPU loop
(base.py) and the CUDA kernel (cuda.py) each compile around a rule's formula."""
import numpy as np
from numba.extending import register_jitable

TINY = 1.1754943508222875e-38  # np.finfo(np.float32).tiny
# The rules' formulas write 1 as ONE: a float literal (1.0) made Numba type their arithmetic, and
# with it the loop over the params, as float64 (scalar code with conversions). With ONE, and
# NumPy's error model for the CPU loop (base.py), over LeNet's 431k params, one thread, AMD EPYC
# Zen 4, best of 30: Adam 1.95 -> 0.17 ms, AdamW 2.36 -> 0.19, AdaDelta 2.60 -> 0.21, RMSProp
# 1.77 -> 0.16, AdaGrad 1.14 -> 0.16, Nesterov 0.21 -> 0.08 (SGD 0.08).
ONE = np.float32(1.0)


@register_jitable(inline="always")
def flush(v):
    """v, or 0 where it is subnormal. nan and inf pass (written `abs(v) >= TINY`, the test turned
    nan into 0: a diverged update zeroed the weights it reached, silently, instead of showing in
    the next loss)."""
    if abs(v) < TINY:
        return 0.0
    return v


@register_jitable(inline="always")
def caffe_gradient(g, w, d, scale, l1):
    """Caffe's gradient: scaled, plus coupled L2 or L1 weight decay. Both branches in the params'
    float32 (w's sign as float32): with float64 signs, the L2 branch too became float64, the
    CPU loop over the params stayed scalar and every rule did its arithmetic in float64 (SGD over
    LeNet's 431k params: 0.23 -> 0.064 ms, one thread)."""
    if l1:
        s = np.float32(1.0) if w > 0 else (np.float32(-1.0) if w < 0 else np.float32(0.0))
        return scale * g + d * s
    return scale * g + d * w


@register_jitable(inline="always")
def scaled_gradient(g, w, d, scale, l1):
    """The gradient scaled only (a rule that decays the weights itself)."""
    return scale * g


def element(n_history, formula, gradient, flush):
    """Element i of one update, written once for both devices: the gradient formed, the rule's
    formula(w, g', r, d, (history...), args) -> (w, (history...)), and the results stored flushed
    to zero. The driver passes element i's rate r = rate*lr_mult and decay d (the CUDA kernel reads
    them per element; the CPU loop takes one value for a whole run of params, so that its loop
    reads only contiguous arrays and vectorises). h1 is empty for one-history rules."""
    if n_history == 1:
        def element(i, w, g, h0, h1, r, d, args, scale, l1):
            wi = w[i]
            wn, (a,) = formula(wi, gradient(g[i], wi, d, scale, l1), r, d, (h0[i],), args)
            h0[i] = flush(a)
            w[i] = flush(wn)
    elif n_history == 2:
        def element(i, w, g, h0, h1, r, d, args, scale, l1):
            wi = w[i]
            wn, (a, b) = formula(wi, gradient(g[i], wi, d, scale, l1), r, d, (h0[i], h1[i]), args)
            h0[i] = flush(a)
            h1[i] = flush(b)
            w[i] = flush(wn)
    else:
        raise NotImplementedError(f"rules keep 1 or 2 history arrays, not {n_history}")
    return element
