"""Softmax with multinomial logistic loss over scores x (R, C, I): classes on axis 1, R rows
(samples) and I positions per row; labels lab (R, I) hold class indices as floats."""
import math

from numba import njit

TINY = 1.1754943508222875e-38  # np.finfo(np.float32).tiny: log(0) is clamped here, as Caffe does


@njit(cache=True, nogil=True)
def softmax_loss_forward(x, lab, prob, ignore, has_ignore):
    """prob = softmax of x over C. Returns (sum of log prob[r, lab[r, i], i] over the labels that
    are not ignored, how many those are, the first label that is not a class index (a whole
    number in [0, C)) or 0.0, and whether one was found)."""
    R, C, I = x.shape
    total = 0.0
    count = 0
    for r in range(R):
        for i in range(I):
            m = x[r, 0, i]
            for c in range(1, C):
                m = max(m, x[r, c, i])
            s = 0.0
            for c in range(C):
                e = math.exp(x[r, c, i] - m)
                prob[r, c, i] = e
                s += e
            inv = 1.0 / s
            for c in range(C):
                prob[r, c, i] *= inv
            v = lab[r, i]
            if has_ignore and v == ignore:
                continue
            if not (v >= 0 and v < C and v == math.floor(v)):   # NaN fails too
                return total, count, v, True
            k = int(v)
            total += math.log(max(prob[r, k, i], TINY))
            count += 1
    return total, count, 0.0, False


@njit(cache=True, nogil=True)
def softmax_loss_backward(prob, lab, dx, scale, ignore, has_ignore):
    """dx = scale * (prob - one_hot(lab)); zero where the label is ignored."""
    R, C, I = prob.shape
    for r in range(R):
        for i in range(I):
            k = int(lab[r, i])
            if has_ignore and k == ignore:
                for c in range(C):
                    dx[r, c, i] = 0.0
                continue
            for c in range(C):
                dx[r, c, i] = scale * prob[r, c, i]
            dx[r, k, i] -= scale
