"""More losses: L1 and smooth L1 (Fast R-CNN), sigmoid cross-entropy, hinge, infogain and
contrastive (Caffe's), on the Loss base and label checks of netcli/layers/loss.py."""
from __future__ import annotations

import numpy as np

from ..config.schema import Field, Message
from ..errors import NetcliError
from .base import LayerError, canon_axis, register
from .common import softmax_forward
from .loss import LOSS, RowLoss, _check_labels, _labels_for, normalization, normalizer


class _PairLoss(RowLoss):
    """Losses on (prediction, target) of the same count; the gradient flows to both."""
    bottoms = (2, 2)

    def setup(self, bottoms, tops):
        a, b = bottoms
        if a.count != b.count:
            raise LayerError(f"inputs must have the same number of elements: {a.shape} {self.where(0)} "
                             f"vs {b.shape} {self.where(1)}")
        self.diff = np.empty(a.shape or (1,), a.data.dtype)
        self.N = self.n = a.shape[0] if a.data.ndim else 1
        self.scalar_top(tops, a.data.dtype)

    def forward_rows(self, bottoms, tops, lo, hi, ws):
        a, b = bottoms
        d = self.diff[lo:hi]
        np.subtract(a.data[lo:hi], b.data.reshape(a.data.shape)[lo:hi], out=d)
        ws["loss"][0] = self.value(d)

    def backward_rows(self, tops, propagate_down, bottoms, lo, hi, ws, grads, fresh):
        g = self.grad(self.diff[lo:hi]) * (tops[0].diff / self.N)
        for i, sign in ((0, 1.0), (1, -1.0)):
            if propagate_down[i]:
                np.multiply(g, sign, out=bottoms[i].diff.reshape(self.diff.shape)[lo:hi])


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
          check=lambda v: None if v > 0 else f"must be > 0, got {v}", number=1),
], number=10002)


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
class SigmoidCrossEntropyLoss(RowLoss):
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
        p = self.p.loss_param
        # a normalizer that counts the valid targets adds up the pieces' counts (combine_stats)
        self.counts = self.batch_stats = p.ignore_label is not None and normalization(p, "BATCH_SIZE") == "VALID"
        self.n = normalizer(p, self.outer, self.inner, self.outer * self.inner, default="BATCH_SIZE")
        self.scalar_top(tops, a.data.dtype)

    def count_normalizer(self, count):
        return normalizer(self.p.loss_param, self.outer, self.inner, int(count), default="BATCH_SIZE")

    def _parts(self, bottoms, lo, hi):
        x = bottoms[0].data.reshape(self.outer, self.inner)[lo:hi]
        t = bottoms[1].data.reshape(self.outer, self.inner)[lo:hi]
        ig = self.p.loss_param.ignore_label
        valid = t != ig if ig is not None else np.ones(t.shape, bool)
        return x, t, valid

    def count_rows(self, bottoms, lo, hi):
        return np.count_nonzero(self._parts(bottoms, lo, hi)[2])

    def forward_rows(self, bottoms, tops, lo, hi, ws):
        x, t, valid = self._parts(bottoms, lo, hi)
        # stable: max(x, 0) - x t + log(1 + exp(-|x|))
        loss = np.maximum(x, 0) - x * t + np.log1p(np.exp(-np.abs(x)))
        ws["loss"][0] = (loss * valid).sum()
        ws["count"][0] = np.count_nonzero(valid)

    def backward_rows(self, tops, propagate_down, bottoms, lo, hi, ws, grads, fresh):
        if propagate_down[0]:
            x, t, valid = self._parts(bottoms, lo, hi)
            s = 0.5 * np.tanh(0.5 * x) + 0.5
            np.copyto(bottoms[0].diff.reshape(self.outer, self.inner)[lo:hi], (s - t) * valid * (tops[0].diff / self.n))


HINGE = Message("HingeLossParameter", [
    Field("norm", ("L1", "L2"), "L1", "L1: sum of hinges; L2: sum of squared hinges", number=1,
          proto={"values": {"L1": 1, "L2": 2}}),
], number=114)


@register
class HingeLoss(RowLoss):
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
        self.signs = np.empty((self.N, self.C), s.data.dtype)
        self.n = self.N
        self.scalar_top(tops, s.data.dtype)

    def forward_rows(self, bottoms, tops, lo, hi, ws):
        s = bottoms[0].data.reshape(self.N, self.C)[lo:hi]
        _check_labels(self, bottoms[1].data.reshape(-1, 1)[lo:hi], self.C, None, lo)
        lab = bottoms[1].data.reshape(-1)[lo:hi].astype(np.int64)
        sign, m = self.signs[lo:hi], self.margin[lo:hi]
        sign[...] = 1.0
        sign[np.arange(hi - lo), lab] = -1.0
        np.maximum(0, 1 + sign * s, out=m)
        ws["loss"][0] = m.sum() if self.p.hinge_loss_param.norm == "L1" else (m * m).sum()

    def backward_rows(self, tops, propagate_down, bottoms, lo, hi, ws, grads, fresh):
        if propagate_down[0]:
            m, sign = self.margin[lo:hi], self.signs[lo:hi]
            g = (m > 0) * sign if self.p.hinge_loss_param.norm == "L1" else 2 * m * sign
            np.copyto(bottoms[0].diff.reshape(self.N, self.C)[lo:hi], g * (tops[0].diff / self.N))


INFOGAIN = Message("InfogainLossParameter", [
    Field("source", "str", None, "a .npy file (or the first array of an .npz) with the (C, C) infogain matrix H "
          "(default: identity)", number=1),
    Field("axis", "int", 1, "the class axis", number=2),
], number=116)


@register
class InfogainLoss(RowLoss):
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
            from ..io.npzfile import read_array
            from ..config.paths import resolve
            try:
                path = resolve(p.source, self.base_dir, "infogain matrix")
                H = read_array(path, "infogain matrix", (self.C, self.C))
            except NetcliError as e:
                raise LayerError(str(e), "infogain_loss_param.source") from None
            self.H = H.astype(dt)
        else:
            self.H = np.eye(self.C, dtype=dt)
        self.prob = np.empty(shape, dt)
        self.per_sample = self.axis >= 1        # along axis 0 the softmax runs over the batch
        self.k = self.outer // shape[0] if self.per_sample else self.outer    # outer rows per sample
        self.n, self.sign = self.outer * self.inner, -1.0
        self.scalar_top(tops, dt)

    def _rows(self, arr, lo, hi):
        return arr[lo:hi] if self.per_sample else arr      # along axis 0: one piece, the whole batch

    def forward_rows(self, bottoms, tops, lo, hi, ws):
        softmax_forward(self._rows(bottoms[0].data, lo, hi), self._rows(self.prob, lo, hi), self.axis)
        r = slice(lo * self.k, hi * self.k)
        p = self.prob.reshape(self.outer, self.C, self.inner)[r]
        _check_labels(self, bottoms[1].data.reshape(self.outer, self.inner)[r], self.C, None, r.start)
        lab = bottoms[1].data.reshape(self.outer, self.inner)[r].astype(np.int64)
        Hl = self.H[lab]                                     # (outer, inner, C)
        logp = np.log(np.maximum(p, np.finfo(np.float32).tiny)).transpose(0, 2, 1)
        ws["loss"][0] = (Hl * logp).sum()

    def backward_rows(self, tops, propagate_down, bottoms, lo, hi, ws, grads, fresh):
        if propagate_down[0]:
            r = slice(lo * self.k, hi * self.k)
            p = self.prob.reshape(self.outer, self.C, self.inner)[r]
            lab = bottoms[1].data.reshape(self.outer, self.inner)[r].astype(np.int64)
            Hl = self.H[lab].transpose(0, 2, 1)              # (outer, C, inner)
            g = p * Hl.sum(axis=1, keepdims=True) - Hl
            np.copyto(bottoms[0].diff.reshape(self.outer, self.C, self.inner)[r], g * (tops[0].diff / self.n))


CONTRASTIVE = Message("ContrastiveLossParameter", [
    Field("margin", "float", 1.0, "dissimilar pairs are pushed at least this far apart", number=1),
    Field("legacy_version", "bool", False, "Caffe's old form: max(margin - d^2, 0) instead of max(margin - d, 0)^2", number=2),
], number=105)


@register
class ContrastiveLoss(RowLoss):
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
        self.n = 2 * self.N
        self.scalar_top(tops, a.data.dtype)

    def _terms(self, bottoms, lo, hi):
        a = bottoms[0].data.reshape(self.N, -1)[lo:hi]
        b = bottoms[1].data.reshape(self.N, -1)[lo:hi]
        y = bottoms[2].data.reshape(-1)[lo:hi]
        diff = a - b
        d2 = (diff * diff).sum(axis=1)
        return diff, d2, y

    def forward_rows(self, bottoms, tops, lo, hi, ws):
        p = self.p.contrastive_loss_param
        diff, d2, y = self._terms(bottoms, lo, hi)
        if p.legacy_version:
            dis = np.maximum(p.margin - d2, 0)
        else:
            dis = np.maximum(p.margin - np.sqrt(d2), 0) ** 2
        ws["loss"][0] = (y * d2 + (1 - y) * dis).sum()

    def backward_rows(self, tops, propagate_down, bottoms, lo, hi, ws, grads, fresh):
        p = self.p.contrastive_loss_param
        diff, d2, y = self._terms(bottoms, lo, hi)
        if p.legacy_version:
            coef = np.where(p.margin - d2 > 0, -1.0, 0.0)
        else:
            d = np.sqrt(d2)
            m = np.maximum(p.margin - d, 0)
            coef = -m / np.maximum(d, 1e-12)   # the exact derivative (Caffe divides by d + 1e-4)
        g = ((y + (1 - y) * coef)[:, None] * diff) * (tops[0].diff / self.N)
        for i, sign in ((0, 1.0), (1, -1.0)):
            if propagate_down[i]:
                np.copyto(bottoms[i].diff.reshape(self.N, -1)[lo:hi], sign * g)
