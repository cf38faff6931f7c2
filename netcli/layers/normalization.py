"""BatchNorm, Scale, Bias, MVN and LRN (Caffe semantics)."""
from __future__ import annotations

import numpy as np

from ..config.schema import Field, Message, engine_field, Problems, non_negative
from ..fillers import FILLER
from ..exec.team import with_helpers
from ..ops.cpu import channel_passes, channels, lrn_team
from ..ops.cpu.team_jobs import run_job
from ..ops.cpu.lrn import lrn_backward, lrn_forward
from ..ops.cpu.pool import avepool_backward, avepool_forward
from .base import LayerError, PerSample, around, canon_axis, register
from . import onnx_ops

BATCH_NORM = Message("BatchNormParameter", [
    Field("use_global_stats", "bool", None, "normalise with the stored statistics (default: true in TEST)", number=1),
    Field("moving_average_fraction", "float", 0.999, "decay of the running averages", number=2),
    Field("eps", "float", 1e-5, "added to the variance", number=3),
], number=139)


@register
class BatchNorm(PerSample):
    type = "BatchNorm"
    draw_kind = "norm"
    to_onnx = onnx_ops.batch_norm
    doc = ("Normalise each channel over the batch and spatial axes (no learned affine: add a Scale layer "
           "with bias_term). Params: running mean sum, variance sum, and their scale factor, never learned.")
    params = {"batch_norm_param": BATCH_NORM}
    in_place_ok = True
    fixed_lr_mult = 0.0
    stats_keys = ("count", "mean", "m2")
    grad_stats_keys = ("sum_dy", "sum_dy_xhat")
    # threads beyond a run's shares help its moments and the BatchNorm + Scale + ReLU chain it
    # heads (exec/team.py; ops/cpu/channel_passes.py)
    team_jobs = True

    def setup(self, bottoms, tops):
        p = self.p.batch_norm_param
        x = bottoms[0]
        if x.data.ndim < 2:
            raise LayerError(f"BatchNorm needs (N, C, ...) input, got {x.shape} {self.where()}")
        global_stats = p.use_global_stats if p.use_global_stats is not None else self.phase != "TRAIN"
        self.batch_stats = not global_stats
        if tops[0] is not x:
            tops[0].reshape(x.shape, x.data.dtype)
        C = x.shape[1]
        self.C, self.S = C, x.count // max(x.shape[0] * C, 1)
        self.m = x.count // C                  # values per channel in the batch
        for shape in ((C,), (C,), (1,)):
            self.add_param(shape, None)      # zeros, as Caffe
        # per channel, set by combine_stats (batch statistics) or per share (global statistics)
        self.dtype = dt = x.data.dtype
        self.a, self.b, self.inv_std = (np.zeros(C, dt) for _ in range(3))
        self.mean_dy, self.mean_dy_xhat = np.zeros(C, dt), np.zeros(C, dt)
        # the shares' statistics combined (combine_stats, combine_grad_stats), float64
        self.moments = np.zeros(1), np.zeros(C), np.zeros(C)
        self.grad_sums = np.zeros(C), np.zeros(C)
        self.maf_one = np.array([self.p.batch_norm_param.moving_average_fraction, 1], dt)

    def workspace(self, rows):
        C, f8, dt = self.C, np.float64, self.dtype
        ws = {"a": ((C,), dt), "b": ((C,), dt), "inv_std": ((C,), dt), "zero": ((C,), dt)}
        if self.batch_stats:
            ws.update({"count": ((1,), f8), "mean": ((C,), f8), "m2": ((C,), f8),
                       "sum_dy": ((C,), f8), "sum_dy_xhat": ((C,), f8),
                       "xhat": ((rows, C, self.S), dt),
                       # a following Scale's gradient sums, where the executor fuses them (exec/fusion.py)
                       "scale_dgamma": ((C,), f8), "scale_dbeta": ((C,), f8)})
        return ws

    def _rows(self, arr, lo, hi):
        return arr[lo:hi].reshape(hi - lo, self.C, self.S)

    def stats_rows(self, bottoms, lo, hi, ws):
        channel_passes.channel_moments(self._rows(bottoms[0].data, lo, hi), ws["count"], ws["mean"], ws["m2"])

    def combine_stats(self, workspaces):
        count, mean, m2 = self.moments
        for name, total in (("count", count), ("mean", mean), ("m2", m2)):
            np.copyto(total, workspaces[0][name])
        for ws in workspaces[1:]:          # in share order: the same result for any thread count
            channels.combine_moments(count, mean, m2, ws["count"], ws["mean"], ws["m2"])
        channels.batch_stats_step(count, mean, m2, self.maf_one, self.m / max(self.m - 1, 1),
                                  float(self.p.batch_norm_param.eps), *(b.data for b in self.blobs),
                                  self.inv_std, self.a, self.b)

    def forward_rows(self, bottoms, tops, lo, hi, ws):
        x, y = self._rows(bottoms[0].data, lo, hi), self._rows(tops[0].data, lo, hi)
        if self.batch_stats:
            channels.batch_norm_forward(x, self.a, self.b, y, ws["xhat"])
            return
        self.global_affine(ws)
        channels.channel_affine(x, ws["a"], ws["b"], y)

    def global_affine(self, ws):
        """ws's a, b and inv_std from the stored statistics (use_global_stats)."""
        mean_b, var_b, s_b = (b.data for b in self.blobs)
        f = 0.0 if s_b[0] == 0 else 1.0 / float(s_b[0])
        channels.stored_affine(mean_b, var_b, f, float(self.p.batch_norm_param.eps), ws["inv_std"], ws["a"], ws["b"])

    def grad_stats_rows(self, tops, lo, hi, ws):
        channels.channel_grad_sums(self._rows(tops[0].diff, lo, hi), ws["xhat"], ws["sum_dy"], ws["sum_dy_xhat"])

    def combine_grad_stats(self, workspaces):
        sum_dy, sum_dy_xhat = self.grad_sums
        np.copyto(sum_dy, workspaces[0]["sum_dy"])
        np.copyto(sum_dy_xhat, workspaces[0]["sum_dy_xhat"])
        for ws in workspaces[1:]:
            np.add(sum_dy, ws["sum_dy"], out=sum_dy)
            np.add(sum_dy_xhat, ws["sum_dy_xhat"], out=sum_dy_xhat)
        channels.grad_stats_means(sum_dy, sum_dy_xhat, self.m, self.mean_dy, self.mean_dy_xhat)

    def backward_rows(self, tops, propagate_down, bottoms, lo, hi, ws, grads, fresh):
        if not propagate_down[0]:
            return
        dy, dx = self._rows(tops[0].diff, lo, hi), self._rows(bottoms[0].diff, lo, hi)
        if self.batch_stats:
            channels.batch_norm_backward(dy, ws["xhat"], self.mean_dy, self.mean_dy_xhat, self.inv_std, dx)
        else:
            channels.channel_affine(dy, ws["inv_std"], ws["zero"], dx)


def _covered_axes(layer, bottoms, p, f):
    """(first axis, shape) of the part of bottom 0 that a per-position Scale or Bias covers: the
    second bottom's shape from `axis` on, or `num_axes` axes from `axis` (-1: to the end)."""
    x = bottoms[0]
    nd = x.data.ndim
    a = canon_axis(p.axis, nd, f + ".axis")
    if len(bottoms) > 1:
        s = tuple(bottoms[1].shape)
        if tuple(x.shape[a:a + len(s)]) != s:
            raise LayerError(f"shape {s} {layer.where(1)} does not match axes {a}.. of {tuple(x.shape)} "
                             f"{layer.where()}", f + ".axis")
        return a, s
    n = nd - a if p.num_axes == -1 else p.num_axes
    if n < 0 or a + n > nd:
        raise LayerError(f"num_axes {p.num_axes} from axis {a} does not fit a {nd}-D input", f + ".num_axes")
    return a, tuple(x.shape[a:a + n])


SCALE = Message("ScaleParameter", [
    Field("axis", "int", 1, "first axis of the bottom that the scale covers", number=1),
    Field("num_axes", "int", 1, "how many axes the scale covers (-1: to the end; ignored with a second "
          "bottom, which gives the scale)", number=2),
    Field("filler", FILLER, None, "scale initialisation (default: constant 1)", number=3),
    Field("bias_term", "bool", False, "also learn a bias", number=4),
    Field("bias_filler", FILLER, None, "bias initialisation (default: constant 0)", number=5),
], number=142)


@register
class Scale(PerSample):
    type = "Scale"
    draw_kind = "norm"
    to_onnx = onnx_ops.scale
    doc = ("y = x * gamma (+ beta), gamma broadcast over axes [axis, axis + num_axes); the affine part after "
           "BatchNorm. With a second bottom, gamma is that bottom (and gets its gradient).")
    params = {"scale_param": SCALE}
    in_place_ok = True
    bottoms = (1, 2)

    def setup(self, bottoms, tops):
        p = self.p.scale_param
        x = bottoms[0]
        a, pshape = _covered_axes(self, bottoms, p, "scale_param")
        # viewed as (outer, C, inner); per sample when the scale does not cover the batch axis
        # and is a param, or is a second bottom with a scale per sample (axis 0, as squeeze-and-
        # excitation nets use it; no bias: that would be a param covering the batch). A second
        # bottom shared by every sample gets the batch's sum as its gradient: the batch is one piece.
        self.outer, self.C, self.inner = around(x.shape, a, len(pshape))
        self.from_bottom = len(bottoms) > 1
        self.batch_scale = (self.from_bottom and a == 0 and not p.bias_term and x.data.ndim >= 1
                            and bottoms[1].shape[:1] == x.shape[:1])
        self.per_sample = (a >= 1 and not self.from_bottom) or self.batch_scale
        self.Cs = self.C // max(x.shape[0], 1) if self.batch_scale else self.C     # channels per sample
        self.rows_outer = self.outer // x.shape[0] if a >= 1 else 1   # outer entries per sample
        self.inplace = tops[0] is x
        if not self.inplace:
            tops[0].reshape(x.shape, x.data.dtype)
        one = FILLER.parse({"type": "constant", "value": 1.0}, Problems(), None, "")
        if not self.from_bottom:
            self.add_param(pshape, p.filler if p.has("filler") else one)
        if p.bias_term:
            self.add_param(pshape, p.bias_filler)
        self.dtype = x.data.dtype

    def workspace(self, rows):
        n = rows * self.rows_outer if self.per_sample else self.outer
        C = rows * self.Cs if self.batch_scale else self.C
        if self.batch_scale:
            n = 1
        return {"x": (((n, C, self.inner) if self.inplace else (0, 1, 1)), self.dtype),
                "none": ((0,), self.dtype), "no_dx": ((0, 1, 1), self.dtype), "dgamma": ((C,), self.dtype)}

    def _gamma(self, bottoms, lo, hi):
        if self.batch_scale:
            return bottoms[1].data[lo:hi].reshape(-1)
        return (bottoms[1] if self.from_bottom else self.blobs[0]).data.reshape(-1)

    def _view(self, arr, lo, hi):
        if not self.per_sample:
            return arr.reshape(self.outer, self.C, self.inner)
        if self.batch_scale:      # (1, channels of these samples, inner): the whole batch's view, cut
            return arr[lo:hi].reshape(1, (hi - lo) * self.Cs, self.inner)
        return arr[lo:hi].reshape((hi - lo) * self.rows_outer, self.C, self.inner)

    def forward_rows(self, bottoms, tops, lo, hi, ws):
        beta = self.blobs[-1].data.reshape(-1) if self.p.scale_param.bias_term else ws["none"]
        channels.scale_forward(self._view(bottoms[0].data, lo, hi), self._gamma(bottoms, lo, hi), beta,
                               self._view(tops[0].data, lo, hi), ws["x"])

    def backward_rows(self, tops, propagate_down, bottoms, lo, hi, ws, grads, fresh):
        x = ws["x"] if self.inplace else self._view(bottoms[0].data, lo, hi)
        nb = self.p.scale_param.bias_term
        dbeta = self.param_grad(grads, len(grads) - 1) if nb else None
        dbeta = ws["none"] if dbeta is None else dbeta.reshape(-1)
        dy = self._view(tops[0].diff, lo, hi)
        if self.from_bottom:       # the scale's gradient is the second bottom's diff: written, so the
            if dbeta.size:         # bias (a param: accumulated) is summed here, before dx may replace dy
                dbeta += dy.sum(axis=(0, 2))
            dbeta = ws["none"]
            dg = bottoms[1].diff[lo:hi] if self.batch_scale else bottoms[1].diff
            dgamma, fresh = (dg.reshape(-1) if propagate_down[1] else ws["dgamma"]), True
        else:
            dgamma = self.param_grad(grads, 0)
            dgamma = ws["dgamma"] if dgamma is None else dgamma.reshape(-1)
        dx = self._view(bottoms[0].diff, lo, hi) if propagate_down[0] else ws["no_dx"]
        channels.scale_backward(dy, x, self._gamma(bottoms, lo, hi), dgamma, dbeta, dx, fresh)


BIAS = Message("BiasParameter", [
    Field("axis", "int", 1, "first axis of the bottom that the bias covers", number=1),
    Field("num_axes", "int", 1, "how many axes the bias covers (-1: to the end; ignored with a second "
          "bottom, which gives the bias)", number=2),
    Field("filler", FILLER, None, "bias initialisation (default: constant 0)", number=3),
], number=141)


@register
class Bias(PerSample):
    type = "Bias"
    draw_kind = "norm"
    to_onnx = onnx_ops.bias
    doc = ("y = x + b, b broadcast over axes [axis, axis + num_axes): a learned param, or the second bottom "
           "(which gets its gradient).")
    params = {"bias_param": BIAS}
    bottoms = (1, 2)
    in_place_ok = True

    def setup(self, bottoms, tops):
        p = self.p.bias_param
        x = bottoms[0]
        a, pshape = _covered_axes(self, bottoms, p, "bias_param")
        self.view = around(x.shape, a, len(pshape))          # (outer, C, inner)
        # per sample when the bias does not cover the batch axis and is a param, or is a second
        # bottom with a bias per sample (axis 0), as Scale
        self.batch_bias = len(bottoms) > 1 and a == 0 and x.data.ndim >= 1 and bottoms[1].shape[:1] == x.shape[:1]
        self.per_sample = (a >= 1 and len(bottoms) == 1) or self.batch_bias
        self.rows_outer = self.view[0] // x.shape[0] if self.per_sample and not self.batch_bias else 1
        self.Cs = self.view[1] // max(x.shape[0], 1) if self.batch_bias else self.view[1]
        if tops[0] is not x:
            tops[0].reshape(x.shape, x.data.dtype)
        if len(bottoms) == 1:
            self.add_param(pshape, p.filler)

    def _bias(self, bottoms, lo, hi):
        if self.batch_bias:
            return bottoms[1].data[lo:hi].reshape(1, -1, 1)
        return (bottoms[1] if len(bottoms) > 1 else self.blobs[0]).data.reshape(1, -1, 1)

    def _view(self, arr, lo, hi):
        if not self.per_sample:
            return arr.reshape(self.view)
        if self.batch_bias:       # (1, channels of these samples, inner): the whole batch's view, cut
            return arr[lo:hi].reshape(1, (hi - lo) * self.Cs, self.view[2])
        return arr[lo:hi].reshape(((hi - lo) * self.rows_outer,) + self.view[1:])

    def forward(self, bottoms, tops):
        self.forward_rows(bottoms, tops, 0, bottoms[0].shape[0] if bottoms[0].data.ndim else 1, None)

    def backward(self, tops, propagate_down, bottoms):
        n = bottoms[0].shape[0] if bottoms[0].data.ndim else 1
        self.backward_rows(tops, propagate_down, bottoms, 0, n, None, [b.diff for b in self.blobs], False)

    def forward_rows(self, bottoms, tops, lo, hi, ws):
        np.add(self._view(bottoms[0].data, lo, hi), self._bias(bottoms, lo, hi), out=self._view(tops[0].data, lo, hi))

    def backward_rows(self, tops, propagate_down, bottoms, lo, hi, ws, grads, fresh):
        dy = self._view(tops[0].diff, lo, hi)
        if len(bottoms) > 1:       # the bias is the second bottom: its diff is written
            if propagate_down[1]:
                db = bottoms[1].diff[lo:hi] if self.batch_bias else bottoms[1].diff
                np.sum(dy, axis=(0, 2), out=db.reshape(-1))
        else:
            db = self.param_grad(grads, 0)
            if db is not None:
                if fresh:
                    np.sum(dy, axis=(0, 2), out=db.reshape(-1))
                else:
                    db.reshape(-1)[...] += dy.sum(axis=(0, 2))
        if propagate_down[0] and bottoms[0].diff is not tops[0].diff:
            np.copyto(self._view(bottoms[0].diff, lo, hi), dy)


MVN = Message("MVNParameter", [
    Field("normalize_variance", "bool", True, "also divide by the standard deviation", number=1),
    Field("across_channels", "bool", False, "statistics over channels, height and width together "
          "(default: per channel)", number=2),
    Field("eps", "float", 1e-9, "added to the standard deviation", number=3),
], number=120)


@register
class MVN(PerSample):
    type = "MVN"
    draw_kind = "norm"
    to_onnx = onnx_ops.mvn
    doc = ("Mean-variance normalisation per sample: y = (x - mean) / (std + eps) over each channel's "
           "positions, or over the whole sample with across_channels.")
    params = {"mvn_param": MVN}

    def setup(self, bottoms, tops):
        p = self.p.mvn_param
        x = bottoms[0]
        if x.data.ndim < 2:
            raise LayerError(f"MVN needs a batch axis and at least one more, got shape {tuple(x.shape)} {self.where()}")
        self.k = 1 if p.across_channels else x.shape[1]        # statistics per sample
        rows = x.shape[0] * self.k
        self.view = (rows, int(x.data.size // max(rows, 1)))
        self.var, self.eps = p.normalize_variance, p.eps
        self.std = np.empty((rows, 1), x.data.dtype)
        tops[0].reshape(x.shape, x.data.dtype)

    def _rows(self, arr, lo, hi):
        return arr.reshape(self.view[0], -1)[lo * self.k:hi * self.k]

    def forward_rows(self, bottoms, tops, lo, hi, ws):
        x, y, std = self._rows(bottoms[0].data, lo, hi), self._rows(tops[0].data, lo, hi), self._rows(self.std, lo, hi)
        np.subtract(x, x.mean(axis=1, keepdims=True), out=y)
        if self.var:
            # Caffe's variance E[x^2] - E[x]^2, taken here as the mean square of x - mean (the same
            # value without the cancellation)
            np.sqrt(np.mean(np.square(y), axis=1, keepdims=True), out=std)
            std += self.eps
            y /= std

    def backward_rows(self, tops, propagate_down, bottoms, lo, hi, ws, grads, fresh):
        if not propagate_down[0]:
            return
        dy, dx = self._rows(tops[0].diff, lo, hi), self._rows(bottoms[0].diff, lo, hi)
        mean_dy = dy.mean(axis=1, keepdims=True)
        if not self.var:
            np.subtract(dy, mean_dy, out=dx)
            return
        # y = z / (s + eps), z = x - mean, s = sqrt(mean z^2): dx = (dy - mean(dy) - z mean(dy z) / s^2 ... )
        # written with y: dx = (dy - mean(dy) - y * mean(dy * y) * (s + eps) / s) / (s + eps)
        y, std = self._rows(tops[0].data, lo, hi), self._rows(self.std, lo, hi)
        s = std - self.eps
        ratio = np.divide(std, s, out=np.ones_like(s), where=s > 0)
        dx[...] = (dy - mean_dy - y * np.mean(dy * y, axis=1, keepdims=True) * ratio) / std


LRN = Message("LRNParameter", [
    Field("local_size", "int", 5, "channels (ACROSS) or window side (WITHIN) summed over; odd",
          check=lambda v: None if v > 0 and v % 2 == 1 else f"must be a positive odd number, got {v}", number=1),
    Field("alpha", "float", 1.0, "scaling parameter", number=2),
    Field("beta", "float", 0.75, "exponent", number=3),
    Field("norm_region", ("ACROSS_CHANNELS", "WITHIN_CHANNEL"), "ACROSS_CHANNELS", "normalise across channels or within one", number=4),
    Field("k", "float", 1.0, "ACROSS_CHANNELS: added to the sum (WITHIN_CHANNEL uses 1, as Caffe)", check=non_negative, number=5),
    engine_field(6),
], number=118)


@register
class LRN(PerSample):
    type = "LRN"
    draw_kind = "norm"
    to_onnx = onnx_ops.lrn
    doc = ("Local response normalisation: y = x / (k + alpha/n sum x^2)^beta over n neighbouring channels, or "
           "y = x / (1 + alpha * mean of x^2 over an n x n window)^beta within each channel.")
    params = {"lrn_param": LRN}

    def setup(self, bottoms, tops):
        x = bottoms[0]
        if x.data.ndim != 4:
            raise LayerError(f"LRN needs a 4-D input, got {x.shape} {self.where()}")
        tops[0].reshape(x.shape, x.data.dtype)
        self.dtype, self.across = x.data.dtype, self.p.lrn_param.norm_region == "ACROSS_CHANNELS"
        self.C, self.HW = x.shape[1], x.shape[2] * x.shape[3]
        self.constants = np.array([getattr(self.p.lrn_param, f) for f in ("alpha", "beta", "k")])  # (lrn_team.py)

    @property
    def team_jobs(self):
        """Across channels, threads beyond a run's shares help it (exec/team.py; ops/cpu/lrn_team.py)."""
        return self.across

    def workspace(self, rows):
        """scale: k + alpha/n * the window's sum of squares, kept for the backward."""
        return {"scale": ((rows, self.C, self.HW), self.dtype)}

    def scratch(self, rows):
        return {"ratio": ((self.C, self.HW), self.dtype)} if self.across else {}

    def _flat(self, a, lo, hi):
        return a[lo:hi].reshape(hi - lo, self.C, self.HW)

    def forward_rows(self, bottoms, tops, lo, hi, ws):
        p = self.p.lrn_param
        n, scale = p.local_size, ws["scale"][:hi - lo]
        if self.across:
            x, y = self._flat(bottoms[0].data, lo, hi), self._flat(tops[0].data, lo, hi)
            team = with_helpers(x, scale, y)              # threads to spare: in tiles of images
            if team is None:
                lrn_forward(x, scale, y, n, p.alpha, p.beta, p.k)
            else:
                lrn_team.forward_job(team.record, x, scale, y, n, self.constants)
                run_job(team, y.reshape(-1)[:0])
            return
        x = bottoms[0].data[lo:hi]
        pad = (n - 1) // 2
        avg = np.empty_like(x)
        avepool_forward(np.ascontiguousarray(x * x), avg, n, n, 1, 1, pad, pad)
        scale[...] = (1 + p.alpha * avg).reshape(scale.shape)
        np.multiply(x, (scale ** -p.beta).reshape(x.shape), out=tops[0].data[lo:hi])

    def backward_rows(self, tops, propagate_down, bottoms, lo, hi, ws, grads, fresh):
        if not propagate_down[0]:
            return
        p = self.p.lrn_param
        n, scale = p.local_size, ws["scale"][:hi - lo]
        if self.across:
            x, y, dy, dx = (self._flat(a, lo, hi) for a in (bottoms[0].data, tops[0].data, tops[0].diff,
                                                            bottoms[0].diff))
            team = with_helpers(x, y, dy, scale, dx)
            if team is None:
                lrn_backward(x, y, dy, scale, dx, ws["ratio"], n, p.alpha, p.beta)
            else:
                lrn_team.backward_job(team.record, x, y, dy, scale, dx, n, self.constants)
                run_job(team, y.reshape(-1)[:0])
            return
        x, y, dy = bottoms[0].data[lo:hi], tops[0].data[lo:hi], tops[0].diff[lo:hi]
        scale = scale.reshape(x.shape)
        t = dy * y / scale
        pad = (n - 1) // 2
        acc = np.empty_like(x)
        avepool_backward(np.ascontiguousarray(t), acc, n, n, 1, 1, pad, pad)
        acc *= p.alpha
        np.copyto(bottoms[0].diff[lo:hi], dy * scale ** -p.beta - 2 * p.beta * x * acc)
