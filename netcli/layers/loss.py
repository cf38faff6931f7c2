"""Loss layers and Accuracy. A loss top is a scalar; its diff holds the loss weight."""
from __future__ import annotations

import numpy as np

from ..config.schema import Field, Message
from ..errors import NetcliError
from .base import Layer, LayerError, PerSample, canon_axis, register
from .common import SOFTMAX, softmax_forward

LOSS = Message("LossParameter", [
    Field("ignore_label", "int", None, "label value that contributes neither loss nor gradient"),
    Field("normalization", ("FULL", "VALID", "BATCH_SIZE", "NONE"), None,
          "divide the loss by: all positions (FULL), non-ignored ones (VALID, default), N, or 1"),
    Field("normalize", "bool", None, "deprecated: true = VALID, false = BATCH_SIZE"),
])


def normalization(p, default="VALID"):
    """The normalization mode in force (the deprecated `normalize` maps to VALID/BATCH_SIZE)."""
    if p.normalization:
        return p.normalization
    return {True: "VALID", False: "BATCH_SIZE"}[p.normalize] if p.normalize is not None else default


def normalizer(p, outer, inner, valid, default="VALID"):
    mode = normalization(p, default)
    if mode == "FULL":
        n = outer * inner
    elif mode == "VALID":
        n = valid if p.ignore_label is not None else outer * inner
    elif mode == "BATCH_SIZE":
        n = outer
    else:
        n = 1
    return max(1.0, float(n))


class Loss(Layer):
    loss = True

    def scalar_top(self, tops, dtype):
        tops[0].reshape((), dtype)


def _labels_for(layer, scores_shape, labels, axis):
    outer = int(np.prod(scores_shape[:axis]))
    inner = int(np.prod(scores_shape[axis + 1:]))
    if labels.size != outer * inner:
        raise LayerError(f"number of labels {labels.size} {layer.where(1)} must match the number of "
                         f"predictions {outer * inner} ({outer} x {inner}) {layer.where(0)}")
    return outer, inner


def _is_class(lab, C, ignore):
    """Where float labels are class indices: whole numbers in [0, C), or the ignore label."""
    ok = (lab >= 0) & (lab < C) & (lab == np.floor(lab))
    return ok | (lab == ignore) if ignore is not None else ok


def _label_message(layer, value, row, C):
    kind = "not a whole number" if value == value and value != np.floor(value) else f"outside [0, {C})"
    return (f"layer '{layer.name}': label {value:g} in row {row} of the batch (from {layer.bottom_names[1]}) is "
            f"{kind}: labels are class indices 0..{C - 1}")


def _check_labels(layer, lab, C, ignore):
    """lab: (outer, inner) float labels; the first that is not a class index is an error."""
    ok = _is_class(lab, C, ignore)
    if not ok.all():
        row = int(np.flatnonzero(~ok.reshape(len(ok), -1).all(axis=1))[0])
        raise NetcliError(_label_message(layer, float(lab[~ok][0]), row, C))


@register
class SoftmaxWithLoss(Loss, PerSample):
    type = "SoftmaxWithLoss"
    doc = "Softmax then multinomial logistic loss (categorical cross-entropy), numerically stable."
    params = {"loss_param": LOSS, "softmax_param": SOFTMAX}
    bottoms = (2, 2)
    tops = (1, 2)
    no_grad_bottoms = (1,)
    reduced_tops = (0,)

    def setup(self, bottoms, tops):
        shape = bottoms[0].shape
        self.axis = canon_axis(self.p.softmax_param.axis, len(shape), "softmax_param.axis")
        self.outer, self.inner = _labels_for(self, shape, bottoms[1].data, self.axis)
        self.C = shape[self.axis]
        self.class_labels = (1, self.C, self.p.loss_param.ignore_label)
        dt = bottoms[0].data.dtype
        self.prob = np.empty(shape, dt)
        self.scalar_top(tops, dt)
        if len(tops) > 1:
            tops[1].reshape(shape, dt)
        p = self.p.loss_param
        self.ignore = p.ignore_label if p.ignore_label is not None else 0
        # Rows (samples) are independent when the normalizer does not count labels: then this
        # layer is per-sample (it joins the executor's stretches), each piece summing its own rows.
        counts_labels = p.ignore_label is not None and normalization(p) == "VALID"
        self.per_sample = self.axis == 1 and not counts_labels and bottoms[1].shape[:1] == shape[:1]
        self.n = normalizer(p, self.outer, self.inner, self.outer * self.inner)

    def workspace(self, n):
        return {"loss": ((1,), np.float64)}     # the summed log-probabilities of these rows

    def _views(self, bottoms, lo, hi):
        x = bottoms[0].data.reshape(self.outer, self.C, self.inner)[lo:hi]
        lab = bottoms[1].data.reshape(self.outer, self.inner)[lo:hi]
        return x, lab, self.prob.reshape(self.outer, self.C, self.inner)[lo:hi]

    def _loss_sum(self, bottoms, lo, hi):
        from ..kernels.softmax import softmax_loss_forward
        x, lab, prob = self._views(bottoms, lo, hi)
        total, count, bad, found = softmax_loss_forward(x, lab, prob, self.ignore,
                                                        self.p.loss_param.ignore_label is not None)
        if found:
            row = lo + int(np.flatnonzero(~_is_class(lab, self.C, self.p.loss_param.ignore_label).all(axis=1))[0])
            raise NetcliError(_label_message(self, bad, row, self.C))
        return total, count

    def forward_rows(self, bottoms, tops, lo, hi, ws):
        ws["loss"][0] = self._loss_sum(bottoms, lo, hi)[0]
        if len(tops) > 1:
            tops[1].data[lo:hi] = self.prob[lo:hi]

    def finish_rows(self, tops, workspaces):
        total = 0.0
        for ws in workspaces:          # in share order: the same sum whatever ran where
            total += ws["loss"][0]
        tops[0].data[...] = -total / self.n

    def forward(self, bottoms, tops):
        if self.per_sample:
            PerSample.forward(self, bottoms, tops)
            return
        total, count = self._loss_sum(bottoms, 0, self.outer)
        self.n = normalizer(self.p.loss_param, self.outer, self.inner, count)
        tops[0].data[...] = -total / self.n
        if len(tops) > 1:
            tops[1].data[...] = self.prob

    def backward_rows(self, tops, propagate_down, bottoms, lo, hi, ws, grads, fresh):
        from ..kernels.softmax import softmax_loss_backward
        if not propagate_down[0]:
            return
        _, lab, prob = self._views(bottoms, lo, hi)
        dx = bottoms[0].diff.reshape(self.outer, self.C, self.inner)[lo:hi]
        softmax_loss_backward(prob, lab, dx, float(tops[0].diff) / self.n, self.ignore,
                              self.p.loss_param.ignore_label is not None)

    def backward(self, tops, propagate_down, bottoms):
        if self.per_sample:
            PerSample.backward(self, tops, propagate_down, bottoms)
        else:
            self.backward_rows(tops, propagate_down, bottoms, 0, self.outer, {}, [], False)


@register
class EuclideanLoss(Loss):
    type = "EuclideanLoss"
    doc = "Sum of squared differences / (2 N) (L2 loss, MSE/2)."
    bottoms = (2, 2)

    def setup(self, bottoms, tops):
        a, b = bottoms
        if a.count != b.count:
            raise LayerError(f"inputs must have the same number of elements: {a.shape} {self.where(0)} "
                             f"vs {b.shape} {self.where(1)}")
        self.diff = np.empty(a.shape, a.data.dtype)
        self.scalar_top(tops, a.data.dtype)

    def forward(self, bottoms, tops):
        a, b = bottoms
        np.subtract(a.data, b.data.reshape(a.shape), out=self.diff)
        tops[0].data[...] = np.vdot(self.diff, self.diff) / a.shape[0] / 2

    def backward(self, tops, propagate_down, bottoms):
        a = bottoms[0]
        for i, sign in ((0, 1.0), (1, -1.0)):
            if propagate_down[i]:
                d = bottoms[i].diff.reshape(a.shape)
                np.multiply(self.diff, sign * tops[0].diff / a.shape[0], out=d)


ACCURACY = Message("AccuracyParameter", [
    Field("top_k", "int", 1, "correct if the true class is among the k best scores",
          check=lambda v: None if v >= 1 else f"must be >= 1, got {v}"),
    Field("axis", "int", 1, "the class axis"),
    Field("ignore_label", "int", None, "label value that is not counted"),
])


@register
class Accuracy(Layer):
    type = "Accuracy"
    doc = "Fraction of predictions whose true class is among the top_k scores (optional 2nd top: per class)."
    params = {"accuracy_param": ACCURACY}
    bottoms = (2, 2)
    tops = (1, 2)
    has_backward = False
    no_grad_bottoms = (0, 1)

    def setup(self, bottoms, tops):
        p = self.p.accuracy_param
        shape = bottoms[0].shape
        self.axis = canon_axis(p.axis, len(shape), "accuracy_param.axis")
        self.outer, self.inner = _labels_for(self, shape, bottoms[1].data, self.axis)
        self.C = shape[self.axis]
        self.class_labels = (1, self.C, p.ignore_label)
        if p.top_k > self.C:
            raise LayerError(f"top_k {p.top_k} is larger than the number of classes {self.C}",
                             "accuracy_param.top_k")
        tops[0].reshape((), bottoms[0].data.dtype)
        if len(tops) > 1:
            tops[1].reshape((self.C,), bottoms[0].data.dtype)

    def forward(self, bottoms, tops):
        p = self.p.accuracy_param
        s = bottoms[0].data.reshape(self.outer, self.C, self.inner)
        flab = bottoms[1].data.reshape(self.outer, self.inner)
        _check_labels(self, flab, self.C, p.ignore_label)
        lab = flab.astype(np.int64)
        valid = lab != p.ignore_label if p.ignore_label is not None else np.ones(lab.shape, bool)
        safe = np.where(valid, lab, 0)
        o, i = np.ogrid[:self.outer, :self.inner]
        true = s[o, safe, i]
        # Caffe: correct when fewer than top_k classes score >= the true class (itself included).
        # A prediction with a NaN score is never correct (NaN compares false, so it would be).
        better = (s >= true[:, None, :]).sum(axis=1)
        finite = ~np.isnan(s).any(axis=1)
        correct = (better <= p.top_k) & valid & finite
        count = valid.sum()
        tops[0].data[...] = correct.sum() / count if count else 0.0
        if len(tops) > 1:
            per = tops[1].data
            for c in range(self.C):
                m = valid & (lab == c)
                per[c] = correct[m].sum() / m.sum() if m.any() else 0.0

    def backward(self, tops, propagate_down, bottoms):
        pass


class _PairLoss(Loss):
    """Losses on (prediction, target) of the same count; the gradient flows to both."""
    bottoms = (2, 2)

    def setup(self, bottoms, tops):
        a, b = bottoms
        if a.count != b.count:
            raise LayerError(f"inputs must have the same number of elements: {a.shape} {self.where(0)} "
                             f"vs {b.shape} {self.where(1)}")
        self.diff = np.empty(a.shape, a.data.dtype)
        self.N = a.shape[0] if a.data.ndim else 1
        self.scalar_top(tops, a.data.dtype)

    def forward(self, bottoms, tops):
        a, b = bottoms
        np.subtract(a.data, b.data.reshape(a.shape), out=self.diff)
        tops[0].data[...] = self.value(self.diff) / self.N

    def backward(self, tops, propagate_down, bottoms):
        g = self.grad(self.diff) * (tops[0].diff / self.N)
        for i, sign in ((0, 1.0), (1, -1.0)):
            if propagate_down[i]:
                np.multiply(g, sign, out=bottoms[i].diff.reshape(g.shape))


@register
class L1Loss(_PairLoss):
    type = "L1Loss"
    doc = "Sum of absolute differences / N (mean absolute error per sample)."

    def value(self, d):
        return np.abs(d).sum()

    def grad(self, d):
        return np.sign(d)


SMOOTH_L1 = Message("SmoothL1LossParameter", [
    Field("sigma", "float", 1.0, "quadratic for |x| < 1/sigma^2, linear beyond (Fast R-CNN)",
          check=lambda v: None if v > 0 else f"must be > 0, got {v}"),
])


@register
class SmoothL1Loss(_PairLoss):
    type = "SmoothL1Loss"
    doc = "Sum of 0.5 (sigma x)^2 if |x| < 1/sigma^2 else |x| - 0.5/sigma^2, over x = a - b, / N."
    params = {"smooth_l1_loss_param": SMOOTH_L1}

    def value(self, d):
        s2 = self.p.smooth_l1_loss_param.sigma ** 2
        ad = np.abs(d)
        return np.where(ad < 1 / s2, 0.5 * s2 * d * d, ad - 0.5 / s2).sum()

    def grad(self, d):
        s2 = self.p.smooth_l1_loss_param.sigma ** 2
        return np.where(np.abs(d) < 1 / s2, s2 * d, np.sign(d))


@register
class SigmoidCrossEntropyLoss(Loss):
    type = "SigmoidCrossEntropyLoss"
    doc = "Binary cross-entropy of sigmoid(x) against targets in [0, 1] (default normalisation: BATCH_SIZE)."
    params = {"loss_param": LOSS}
    bottoms = (2, 2)
    no_grad_bottoms = (1,)

    def setup(self, bottoms, tops):
        a, b = bottoms
        if a.count != b.count:
            raise LayerError(f"targets {b.shape} {self.where(1)} must have as many elements as the scores "
                             f"{a.shape} {self.where(0)}")
        self.outer = a.shape[0] if a.data.ndim else 1
        self.inner = a.count // self.outer
        self.scalar_top(tops, a.data.dtype)

    def _parts(self, bottoms):
        x = bottoms[0].data.reshape(self.outer, self.inner)
        t = bottoms[1].data.reshape(self.outer, self.inner)
        ig = self.p.loss_param.ignore_label
        valid = t != ig if ig is not None else np.ones(t.shape, bool)
        n = normalizer(self.p.loss_param, self.outer, self.inner, int(valid.sum()), default="BATCH_SIZE")
        return x, t, valid, n

    def forward(self, bottoms, tops):
        x, t, valid, n = self._parts(bottoms)
        # stable: max(x, 0) - x t + log(1 + exp(-|x|))
        loss = np.maximum(x, 0) - x * t + np.log1p(np.exp(-np.abs(x)))
        tops[0].data[...] = (loss * valid).sum() / n

    def backward(self, tops, propagate_down, bottoms):
        if propagate_down[0]:
            x, t, valid, n = self._parts(bottoms)
            s = 0.5 * np.tanh(0.5 * x) + 0.5
            np.copyto(bottoms[0].diff.reshape(x.shape), (s - t) * valid * (tops[0].diff / n))


HINGE = Message("HingeLossParameter", [
    Field("norm", ("L1", "L2"), "L1", "L1: sum of hinges; L2: sum of squared hinges"),
])


@register
class HingeLoss(Loss):
    type = "HingeLoss"
    doc = "One-vs-all hinge: sum over classes of max(0, 1 - s_j * y_j) (squared for L2), / N; y_j = +1 for the label."
    params = {"hinge_loss_param": HINGE}
    bottoms = (2, 2)
    no_grad_bottoms = (1,)

    def setup(self, bottoms, tops):
        s = bottoms[0]
        self.N = s.shape[0]
        self.C = s.count // self.N
        self.class_labels = (1, self.C, None)
        if bottoms[1].count != self.N:
            raise LayerError(f"one label per sample expected: {bottoms[1].count} labels {self.where(1)} for "
                             f"{self.N} samples")
        self.margin = np.empty((self.N, self.C), s.data.dtype)
        self.sign = np.empty((self.N, self.C), s.data.dtype)
        self.scalar_top(tops, s.data.dtype)

    def forward(self, bottoms, tops):
        s = bottoms[0].data.reshape(self.N, self.C)
        _check_labels(self, bottoms[1].data.reshape(-1, 1), self.C, None)
        lab = bottoms[1].data.reshape(-1).astype(np.int64)
        self.sign[...] = 1.0
        self.sign[np.arange(self.N), lab] = -1.0
        np.maximum(0, 1 + self.sign * s, out=self.margin)
        m = self.margin
        tops[0].data[...] = (m.sum() if self.p.hinge_loss_param.norm == "L1" else (m * m).sum()) / self.N

    def backward(self, tops, propagate_down, bottoms):
        if propagate_down[0]:
            m = self.margin
            g = (m > 0) * self.sign if self.p.hinge_loss_param.norm == "L1" else 2 * m * self.sign
            np.copyto(bottoms[0].diff.reshape(self.N, self.C), g * (tops[0].diff / self.N))


INFOGAIN = Message("InfogainLossParameter", [
    Field("source", "str", None, "a .npy file with the (C, C) infogain matrix H (default: identity)"),
    Field("axis", "int", 1, "the class axis"),
])


@register
class InfogainLoss(Loss):
    type = "InfogainLoss"
    doc = ("Softmax, then -sum_k H[label, k] log p_k / N: cross-entropy weighted by an infogain matrix "
           "(H = identity gives SoftmaxWithLoss).")
    params = {"infogain_loss_param": INFOGAIN}
    bottoms = (2, 2)
    no_grad_bottoms = (1,)

    def setup(self, bottoms, tops):
        p = self.p.infogain_loss_param
        shape = bottoms[0].shape
        self.axis = canon_axis(p.axis, len(shape), "infogain_loss_param.axis")
        self.outer, self.inner = _labels_for(self, shape, bottoms[1].data, self.axis)
        self.C = shape[self.axis]
        self.class_labels = (1, self.C, None)
        dt = bottoms[0].data.dtype
        if p.source:
            from ..paths import resolve
            try:
                path = resolve(p.source, self.base_dir, "infogain matrix")
                H = np.load(path, allow_pickle=False)
            except NetcliError as e:
                raise LayerError(str(e), "infogain_loss_param.source") from None
            except (OSError, ValueError, EOFError) as e:
                raise LayerError(f"cannot read the infogain matrix {path} (a .npy file): {e}",
                                 "infogain_loss_param.source") from None
            if H.shape != (self.C, self.C):
                raise LayerError(f"infogain matrix {path} has shape {H.shape}, expected ({self.C}, {self.C})",
                                 "infogain_loss_param.source")
            self.H = H.astype(dt)
        else:
            self.H = np.eye(self.C, dtype=dt)
        self.prob = np.empty(shape, dt)
        self.scalar_top(tops, dt)

    def forward(self, bottoms, tops):
        softmax_forward(bottoms[0].data, self.prob, self.axis)
        p = self.prob.reshape(self.outer, self.C, self.inner)
        _check_labels(self, bottoms[1].data.reshape(self.outer, self.inner), self.C, None)
        lab = bottoms[1].data.reshape(self.outer, self.inner).astype(np.int64)
        Hl = self.H[lab]                                     # (outer, inner, C)
        logp = np.log(np.maximum(p, np.finfo(np.float32).tiny)).transpose(0, 2, 1)
        tops[0].data[...] = -(Hl * logp).sum() / (self.outer * self.inner)

    def backward(self, tops, propagate_down, bottoms):
        if propagate_down[0]:
            p = self.prob.reshape(self.outer, self.C, self.inner)
            lab = bottoms[1].data.reshape(self.outer, self.inner).astype(np.int64)
            Hl = self.H[lab].transpose(0, 2, 1)              # (outer, C, inner)
            g = p * Hl.sum(axis=1, keepdims=True) - Hl
            np.copyto(bottoms[0].diff.reshape(g.shape), g * (tops[0].diff / (self.outer * self.inner)))


CONTRASTIVE = Message("ContrastiveLossParameter", [
    Field("margin", "float", 1.0, "dissimilar pairs are pushed at least this far apart"),
    Field("legacy_version", "bool", False, "Caffe's old form: max(margin - d^2, 0) instead of max(margin - d, 0)^2"),
])


@register
class ContrastiveLoss(Loss):
    type = "ContrastiveLoss"
    doc = "Siamese loss over pairs (a, b, similar): [y d^2 + (1 - y) max(margin - d, 0)^2] / 2N, d = |a - b|."
    params = {"contrastive_loss_param": CONTRASTIVE}
    bottoms = (3, 3)
    no_grad_bottoms = (2,)

    def setup(self, bottoms, tops):
        a, b, y = bottoms
        if a.shape != b.shape:
            raise LayerError(f"the two inputs must have one shape: {a.shape} {self.where(0)} vs {b.shape} {self.where(1)}")
        self.N = a.shape[0]
        if y.count != self.N:
            raise LayerError(f"one similarity label per pair expected: {y.count} {self.where(2)} for {self.N} pairs")
        self.scalar_top(tops, a.data.dtype)

    def _terms(self, bottoms):
        a = bottoms[0].data.reshape(self.N, -1)
        b = bottoms[1].data.reshape(self.N, -1)
        y = bottoms[2].data.reshape(-1)
        diff = a - b
        d2 = (diff * diff).sum(axis=1)
        return diff, d2, y

    def forward(self, bottoms, tops):
        p = self.p.contrastive_loss_param
        diff, d2, y = self._terms(bottoms)
        if p.legacy_version:
            dis = np.maximum(p.margin - d2, 0)
        else:
            dis = np.maximum(p.margin - np.sqrt(d2), 0) ** 2
        tops[0].data[...] = (y * d2 + (1 - y) * dis).sum() / (2 * self.N)

    def backward(self, tops, propagate_down, bottoms):
        p = self.p.contrastive_loss_param
        diff, d2, y = self._terms(bottoms)
        if p.legacy_version:
            coef = np.where(p.margin - d2 > 0, -1.0, 0.0)
        else:
            d = np.sqrt(d2)
            m = np.maximum(p.margin - d, 0)
            coef = -m / np.maximum(d, 1e-12)   # the exact derivative (Caffe divides by d + 1e-4)
        g = ((y + (1 - y) * coef)[:, None] * diff) * (tops[0].diff / self.N)
        for i, sign in ((0, 1.0), (1, -1.0)):
            if propagate_down[i]:
                np.copyto(bottoms[i].diff.reshape(g.shape), sign * g)
