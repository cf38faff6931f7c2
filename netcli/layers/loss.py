"""The Loss base and its label checks, SoftmaxWithLoss, EuclideanLoss and Accuracy (the other
losses: loss_extra.py). A loss top is a scalar; its diff holds the loss weight."""
from __future__ import annotations

import numpy as np

from ..config.schema import Field, Message
from ..errors import NetcliError
from .base import Layer, LayerError, PerSample, canon_axis, register
from .common import SOFTMAX

LOSS = Message("LossParameter", [
    Field("ignore_label", "int", None, "label value that contributes neither loss nor gradient", number=1),
    Field("normalization", ("FULL", "VALID", "BATCH_SIZE", "NONE"), None,
          "divide the loss by: all positions (FULL), non-ignored ones (VALID, default), N, or 1", number=3,
          proto={"enum": "NormalizationMode", "default": "VALID"}),
    Field("normalize", "bool", None, "deprecated: true = VALID, false = BATCH_SIZE", number=2),
], number=101)


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
    draw_kind = "loss"

    def scalar_top(self, tops, dtype):
        tops[0].reshape((), dtype)


class RowLoss(Loss, PerSample):
    """A loss summed over independent rows (samples): each piece of rows adds its rows' terms
    (and, for a normalizer that counts them, its valid labels) into its workspace, and the loss is
    the pieces' sum in piece order over `self.n` (finish_rows; set from the summed count when
    `counts` is true, before any backward)."""
    finish_keys = ("loss", "count")
    reduced_tops = (0,)
    sign = 1.0                         # the loss is sign * sum / n
    counts = False                     # n comes from the count of valid labels (count_normalizer)

    def workspace(self, rows):
        return {"loss": ((1,), np.float64), "count": ((1,), np.float64)}

    def finish_rows(self, tops, workspaces):
        total = 0.0
        for ws in workspaces:          # in piece order: the same sum whatever ran where
            total += ws["loss"][0]
        tops[0].data[...] = self.sign * total / self.n

    def count_normalizer(self, count):
        return self.n

    # A normalizer that counts valid labels is needed by every piece's backward, which may run
    # right after that piece's forward (the executor runs a stretch's forward and backward share
    # by share): the count is a statistic over the batch (batch_stats, set in setup where
    # `counts`), summed in piece order before any piece's forward.
    stats_keys = ("count",)

    def count_rows(self, bottoms, lo, hi):
        """How many labels of rows lo..hi count (where `counts`)."""
        raise NotImplementedError

    def stats_rows(self, bottoms, lo, hi, ws):
        ws["count"][0] = self.count_rows(bottoms, lo, hi)

    def combine_stats(self, workspaces):
        count = 0.0
        for ws in workspaces:
            count += ws["count"][0]
        self.n = self.count_normalizer(count)

    def grad_stats_rows(self, tops, lo, hi, ws):
        pass

    def combine_grad_stats(self, workspaces):
        pass


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


def _check_labels(layer, lab, C, ignore, first_row=0):
    """lab: (outer, inner) float labels of the batch's rows from first_row on; the first that is
    not a class index is an error."""
    ok = _is_class(lab, C, ignore)
    if not ok.all():
        row = first_row + int(np.flatnonzero(~ok.reshape(len(ok), -1).all(axis=1))[0])
        raise NetcliError(_label_message(layer, float(lab[~ok][0]), row, C))


@register
class SoftmaxWithLoss(Loss, PerSample):
    type = "SoftmaxWithLoss"
    class_scores = "bottom"
    doc = "Softmax then multinomial logistic loss (categorical cross-entropy), numerically stable."
    finish_keys = ("loss", "count")
    params = {"loss_param": LOSS, "softmax_param": SOFTMAX}
    bottoms = (2, 2)
    tops = (1, 2)
    no_grad_bottoms = (1,)
    reduced_tops = (0,)

    # -- on a CUDA device: netcli/ops/cuda/softmax.py over (outer, C, inner) views, as the CPU's ---
    # The log-probabilities come back as device rows, summed on the host when the pass ends (at
    # once when the normalizer counts the labels: the backward needs it).
    def cuda_workspace(self, bottoms, tops):
        return {"prob": ((self.outer, self.C, self.inner), np.float32)}

    def forward_cuda(self, bottoms, tops, ws, dev):
        (s, _), (lab, _) = bottoms
        p = self.p.loss_param
        parts = dev.k.softmax_loss_forward(s.reshape(self.outer, self.C, self.inner),
                                           lab.reshape(self.outer, self.inner), ws["prob"], self.ignore,
                                           p.ignore_label is not None)
        if len(tops) > 1:
            tops[1][0].reshape(self.outer, self.C, self.inner).copy_to_device(ws["prob"])
        counts = p.ignore_label is not None and normalization(p) == "VALID"

        def loss(rows):
            total, count, bad, found = dev.k.softmax_loss_results(rows)
            if found:
                first = int(np.flatnonzero(rows[:, 1] < 0)[0]) // self.inner
                raise NetcliError(_label_message(self, bad, first, self.C))
            if counts:
                self.n = normalizer(p, self.outer, self.inner, count)
            return -total / self.n
        dev.read_later(self.top_names[0], parts, loss, now=counts)

    def backward_cuda(self, tops, propagate_down, bottoms, ws, dev):
        if propagate_down[0]:
            (_, ds), (lab, _) = bottoms
            weight = float(dev.host(self.top_names[0]).diff)
            dev.k.softmax_loss_backward(ws["prob"], lab.reshape(self.outer, self.inner),
                                        ds.reshape(self.outer, self.C, self.inner), weight / self.n,
                                        self.ignore, self.p.loss_param.ignore_label is not None)

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
        # Rows (samples) are independent when the class axis is not the batch axis and the labels
        # come per sample: then this layer is per-sample (it joins the executor's stretches), each
        # piece summing its own rows' log-probabilities and counting its valid labels; the pieces
        # are added in order (finish_rows), and a normalizer that counts labels is set from the sum.
        self.counts_labels = p.ignore_label is not None and normalization(p) == "VALID"
        self.per_sample = self.axis >= 1 and bottoms[1].shape[:1] == shape[:1]
        self.batch_stats = self.per_sample and self.counts_labels
        self.k = self.outer // shape[0] if self.per_sample else 1      # (outer) rows per sample
        self.n = normalizer(p, self.outer, self.inner, self.outer * self.inner)

    def workspace(self, n):
        # the summed log-probabilities of these rows, and how many of their labels count
        return {"loss": ((1,), np.float64), "count": ((1,), np.float64)}

    def _views(self, bottoms, lo, hi):
        r = slice(lo * self.k, hi * self.k)
        x = bottoms[0].data.reshape(self.outer, self.C, self.inner)[r]
        lab = bottoms[1].data.reshape(self.outer, self.inner)[r]
        return x, lab, self.prob.reshape(self.outer, self.C, self.inner)[r]

    def _loss_sum(self, bottoms, lo, hi):
        from ..ops.cpu.softmax import softmax_loss_forward
        x, lab, prob = self._views(bottoms, lo, hi)
        total, count, bad, found = softmax_loss_forward(x, lab, prob, self.ignore,
                                                        self.p.loss_param.ignore_label is not None)
        if found:
            row = lo * self.k + int(np.flatnonzero(~_is_class(lab, self.C, self.p.loss_param.ignore_label).all(axis=1))[0])
            raise NetcliError(_label_message(self, bad, row, self.C))
        return total, count

    def forward_rows(self, bottoms, tops, lo, hi, ws):
        ws["loss"][0], ws["count"][0] = self._loss_sum(bottoms, lo, hi)
        if len(tops) > 1:
            tops[1].data[lo:hi] = self.prob[lo:hi]

    def finish_rows(self, tops, workspaces):
        total = 0.0
        for ws in workspaces:          # in share order: the same sum whatever ran where
            total += ws["loss"][0]
        tops[0].data[...] = -total / self.n

    # VALID with an ignore_label: the count of valid labels over the batch, before any share's
    # forward (its backward, run right after it, divides by it): batch statistics, as RowLoss's
    stats_keys = ("count",)

    def stats_rows(self, bottoms, lo, hi, ws):
        _, lab, _ = self._views(bottoms, lo, hi)
        ws["count"][0] = np.count_nonzero(lab != self.p.loss_param.ignore_label)

    def combine_stats(self, workspaces):
        count = 0.0
        for ws in workspaces:
            count += ws["count"][0]
        self.n = normalizer(self.p.loss_param, self.outer, self.inner, count)

    def grad_stats_rows(self, tops, lo, hi, ws):
        pass

    def combine_grad_stats(self, workspaces):
        pass

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
        from ..ops.cpu.softmax import softmax_loss_backward
        if not propagate_down[0]:
            return
        _, lab, prob = self._views(bottoms, lo, hi)
        dx = bottoms[0].diff.reshape(self.outer, self.C, self.inner)[lo * self.k:hi * self.k]
        softmax_loss_backward(prob, lab, dx, float(tops[0].diff) / self.n, self.ignore,
                              self.p.loss_param.ignore_label is not None)

    def backward(self, tops, propagate_down, bottoms):
        if self.per_sample:
            PerSample.backward(self, tops, propagate_down, bottoms)
        else:
            self.backward_rows(tops, propagate_down, bottoms, 0, self.outer, {}, [], False)


@register
class EuclideanLoss(RowLoss):
    type = "EuclideanLoss"
    doc = "Sum of squared differences / (2 N) (L2 loss, MSE/2)."
    bottoms = (2, 2)

    def setup(self, bottoms, tops):
        a, b = bottoms
        if a.count != b.count:
            raise LayerError(f"inputs must have the same number of elements: {a.shape} {self.where(0)} "
                             f"vs {b.shape} {self.where(1)}")
        self.diff = np.empty(a.shape or (1,), a.data.dtype)
        self.N = a.shape[0] if a.data.ndim else 1
        self.n = 2 * self.N
        self.scalar_top(tops, a.data.dtype)

    def forward_rows(self, bottoms, tops, lo, hi, ws):
        a, b = bottoms
        d = self.diff[lo:hi]
        np.subtract(a.data[lo:hi], b.data.reshape(a.data.shape)[lo:hi], out=d)
        ws["loss"][0] = np.vdot(d, d)

    def backward_rows(self, tops, propagate_down, bottoms, lo, hi, ws, grads, fresh):
        a = bottoms[0]
        for i, sign in ((0, 1.0), (1, -1.0)):
            if propagate_down[i]:
                d = bottoms[i].diff.reshape(a.diff.shape)[lo:hi]
                np.multiply(self.diff[lo:hi], sign * tops[0].diff / self.N, out=d)


ACCURACY = Message("AccuracyParameter", [
    Field("top_k", "int", 1, "correct if the true class is among the k best scores",
          check=lambda v: None if v >= 1 else f"must be >= 1, got {v}", number=1),
    Field("axis", "int", 1, "the class axis", number=2),
    Field("ignore_label", "int", None, "label value that is not counted", number=3),
], number=102)


@register
class Accuracy(PerSample):
    type = "Accuracy"
    metric = True
    class_scores = "bottom"
    draw_kind = "loss"
    doc = "Fraction of predictions whose true class is among the top_k scores (optional 2nd top: per class)."
    finish_keys = ("correct", "count")
    params = {"accuracy_param": ACCURACY}
    bottoms = (2, 2)
    tops = (1, 2)
    has_backward = False
    no_grad_bottoms = (0, 1)
    reduced_tops = (0, 1)

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
        # per sample when the class axis is not the batch axis and the labels have a row per sample
        self.per_sample = self.axis >= 1 and bottoms[1].shape[:1] == shape[:1]
        self.N = shape[0] if self.per_sample else 1     # samples; outer / N predictions per sample

    def workspace(self, rows):
        return {"correct": ((self.C,), np.float64), "count": ((self.C,), np.float64)}   # per true class

    def forward_rows(self, bottoms, tops, lo, hi, ws):
        p = self.p.accuracy_param
        per = self.outer // self.N
        s = bottoms[0].data.reshape(self.outer, self.C, self.inner)[lo * per:hi * per]
        flab = bottoms[1].data.reshape(self.outer, self.inner)[lo * per:hi * per]
        _check_labels(self, flab, self.C, p.ignore_label, first_row=lo * per)
        lab = flab.astype(np.int64)
        valid = lab != p.ignore_label if p.ignore_label is not None else np.ones(lab.shape, bool)
        safe = np.where(valid, lab, 0)
        o, i = np.ogrid[:len(s), :self.inner]
        true = s[o, safe, i]
        # Caffe: correct when fewer than top_k classes score >= the true class (itself included).
        # A prediction with a NaN score is never correct (NaN compares false, so it would be).
        better = (s >= true[:, None, :]).sum(axis=1)
        finite = ~np.isnan(s).any(axis=1)
        correct = (better <= p.top_k) & valid & finite
        ws["correct"][...] = np.bincount(safe[valid], weights=correct[valid], minlength=self.C)
        ws["count"][...] = np.bincount(safe[valid], minlength=self.C)

    def finish_rows(self, tops, workspaces):
        correct, count = np.zeros(self.C), np.zeros(self.C)
        for ws in workspaces:          # in share order
            correct += ws["correct"]
            count += ws["count"]
        total = count.sum()
        tops[0].data[...] = correct.sum() / total if total else 0.0
        if len(tops) > 1:
            tops[1].data[...] = np.divide(correct, count, out=np.zeros(self.C), where=count > 0)
