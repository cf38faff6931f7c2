"""Loss layers and Accuracy. A loss top is a scalar; its diff holds the loss weight."""
from __future__ import annotations

import numpy as np

from ..config.schema import Field, Message
from ..errors import NetcliError
from .base import Layer, LayerError, canon_axis, register
from .common import SOFTMAX, softmax_forward

LOSS = Message("LossParameter", [
    Field("ignore_label", "int", None, "label value that contributes neither loss nor gradient"),
    Field("normalization", ("FULL", "VALID", "BATCH_SIZE", "NONE"), None,
          "divide the loss by: all positions (FULL), non-ignored ones (VALID, default), N, or 1"),
    Field("normalize", "bool", None, "deprecated: true = VALID, false = BATCH_SIZE"),
])


def normalizer(p, outer, inner, valid, default="VALID"):
    mode = p.normalization or ({True: "VALID", False: "BATCH_SIZE"}.get(p.normalize) if p.normalize is not None else default)
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


def _check_labels(layer, lab, C, ignore):
    bad = (lab < 0) | (lab >= C)
    if ignore is not None:
        bad &= lab != ignore
    if bad.any():
        v = lab[bad][0]
        raise NetcliError(f"{layer.name}: label {v} is outside [0, {C}) (from {layer.bottom_names[1]})")


@register
class SoftmaxWithLoss(Loss):
    type = "SoftmaxWithLoss"
    doc = "Softmax then multinomial logistic loss (categorical cross-entropy), numerically stable."
    params = {"loss_param": LOSS, "softmax_param": SOFTMAX}
    bottoms = (2, 2)
    tops = (1, 2)
    no_grad_bottoms = (1,)

    def setup(self, bottoms, tops):
        shape = bottoms[0].shape
        self.axis = canon_axis(self.p.softmax_param.axis, len(shape), "softmax_param.axis")
        self.outer, self.inner = _labels_for(self, shape, bottoms[1].data, self.axis)
        self.C = shape[self.axis]
        dt = bottoms[0].data.dtype
        self.prob = np.empty(shape, dt)
        self.scalar_top(tops, dt)
        if len(tops) > 1:
            tops[1].reshape(shape, dt)

    def _picked(self, bottoms):
        prob = self.prob.reshape(self.outer, self.C, self.inner)
        lab = bottoms[1].data.reshape(self.outer, self.inner).astype(np.int64)
        p = self.p.loss_param
        _check_labels(self, lab, self.C, p.ignore_label)
        valid = lab != p.ignore_label if p.ignore_label is not None else np.ones(lab.shape, bool)
        safe = np.where(valid, lab, 0)
        return prob, safe, valid

    def forward(self, bottoms, tops):
        softmax_forward(bottoms[0].data, self.prob, self.axis)
        prob, lab, valid = self._picked(bottoms)
        o, i = np.ogrid[:self.outer, :self.inner]
        picked = prob[o, lab, i]
        logp = np.log(np.maximum(picked, np.finfo(np.float32).tiny))
        n = normalizer(self.p.loss_param, self.outer, self.inner, int(valid.sum()))
        tops[0].data[...] = -(logp * valid).sum() / n
        if len(tops) > 1:
            tops[1].data[...] = self.prob

    def backward(self, tops, propagate_down, bottoms):
        if not propagate_down[0]:
            return
        prob, lab, valid = self._picked(bottoms)
        dx = bottoms[0].diff.reshape(self.outer, self.C, self.inner)
        np.copyto(dx, prob)
        o, i = np.ogrid[:self.outer, :self.inner]
        dx[o, lab, i] -= 1
        dx *= valid[:, None, :]
        n = normalizer(self.p.loss_param, self.outer, self.inner, int(valid.sum()))
        dx *= tops[0].diff / n


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
        if p.top_k > self.C:
            raise LayerError(f"top_k {p.top_k} is larger than the number of classes {self.C}",
                             "accuracy_param.top_k")
        tops[0].reshape((), bottoms[0].data.dtype)
        if len(tops) > 1:
            tops[1].reshape((self.C,), bottoms[0].data.dtype)

    def forward(self, bottoms, tops):
        p = self.p.accuracy_param
        s = bottoms[0].data.reshape(self.outer, self.C, self.inner)
        lab = bottoms[1].data.reshape(self.outer, self.inner).astype(np.int64)
        valid = lab != p.ignore_label if p.ignore_label is not None else np.ones(lab.shape, bool)
        _check_labels(self, lab, self.C, p.ignore_label)
        safe = np.where(valid, lab, 0)
        o, i = np.ogrid[:self.outer, :self.inner]
        true = s[o, safe, i]
        # Caffe: correct when fewer than top_k classes score >= the true class (itself included)
        better = (s >= true[:, None, :]).sum(axis=1)
        correct = (better <= p.top_k) & valid
        count = valid.sum()
        tops[0].data[...] = correct.sum() / count if count else 0.0
        if len(tops) > 1:
            per = tops[1].data
            for c in range(self.C):
                m = valid & (lab == c)
                per[c] = correct[m].sum() / m.sum() if m.any() else 0.0

    def backward(self, tops, propagate_down, bottoms):
        pass
