"""Caffe's utility layers, which move, split or join blobs: Flatten, Reshape, Concat, Slice, Split,
Eltwise (those that reduce or repeat along axes, ArgMax, Reduction and Tile: reduction.py)."""
from __future__ import annotations

import math

import numpy as np

from ..config.schema import Field, Message, REQUIRED
from ..exec import threads
from ..ops.cpu.eltwise import weighted_sum
from ..ops.cpu.team_call import copy_rows, has_helpers
from .base import LayerError, PerSample, canon_axis, register
from . import onnx_ops
from .common import BLOB_SHAPE


FLATTEN = Message("FlattenParameter", [
    Field("axis", "int", 1, "first axis to flatten", number=1),
    Field("end_axis", "int", -1, "last axis to flatten", number=2),
], number=135)


class _View(PerSample):
    """Top is a reshaped view of the bottom: same memory for data and diff, nothing to compute."""

    def forward(self, bottoms, tops):
        pass

    def backward(self, tops, propagate_down, bottoms):
        pass

    def forward_rows(self, bottoms, tops, lo, hi, ws):
        pass

    def backward_rows(self, tops, propagate_down, bottoms, lo, hi, ws, grads, fresh):
        pass


@register
class Flatten(_View):
    type = "Flatten"
    to_onnx = onnx_ops.reshape_to_top
    doc = "Collapse axes axis..end_axis into one (no copy)."
    params = {"flatten_param": FLATTEN}

    def setup(self, bottoms, tops):
        p = self.p.flatten_param
        shape = bottoms[0].shape
        a = canon_axis(p.axis, len(shape), "flatten_param.axis")
        e = canon_axis(p.end_axis, len(shape), "flatten_param.end_axis")
        if e < a:
            raise LayerError(f"end_axis {p.end_axis} comes before axis {p.axis}", "flatten_param.end_axis")
        tops[0].share(bottoms[0], shape[:a] + (int(np.prod(shape[a:e + 1])),) + shape[e + 1:])


RESHAPE = Message("ReshapeParameter", [
    Field("shape", BLOB_SHAPE, REQUIRED, "new dims: 0 copies the bottom's dim, -1 is inferred", number=1),
    Field("axis", "int", 0, "first bottom axis replaced", number=2),
    Field("num_axes", "int", -1, "how many bottom axes are replaced (-1: all from axis)", number=3),
], number=133)


@register
class Reshape(_View):
    type = "Reshape"
    to_onnx = onnx_ops.reshape_to_top
    doc = "Change the shape without copying (0 = keep that dim, -1 = infer)."
    params = {"reshape_param": RESHAPE}

    def setup(self, bottoms, tops):
        p = self.p.reshape_param
        f = "reshape_param"
        shape = bottoms[0].shape
        start = p.axis + len(shape) + 1 if p.axis < 0 else p.axis
        if not 0 <= start <= len(shape):
            raise LayerError(f"axis {p.axis} is out of range for a {len(shape)}-D input", f"{f}.axis")
        end = len(shape) if p.num_axes == -1 else start + p.num_axes
        if p.num_axes < -1 or end > len(shape):
            raise LayerError(f"num_axes {p.num_axes} is out of range", f"{f}.num_axes")
        dims = list(p.shape.dim)
        if dims.count(-1) > 1:
            raise LayerError("at most one dim may be -1", f"{f}.shape")
        new = []
        for i, d in enumerate(dims):
            if d == 0:
                if start + i >= len(shape):
                    raise LayerError(f"dim {i} is 0 but the input has no axis {start + i}", f"{f}.shape")
                new.append(shape[start + i])
            elif d < -1:
                raise LayerError(f"dims must be positive, 0 or -1, got {d}", f"{f}.shape")
            else:
                new.append(d)
        full = list(shape[:start]) + new + list(shape[end:])
        count = int(np.prod(shape))
        if -1 in full:
            known = int(np.prod([d for d in full if d != -1]))
            if known == 0 or count % known:
                raise LayerError(f"cannot infer -1: {count} elements do not divide into {full}", f"{f}.shape")
            full[full.index(-1)] = count // known
        if int(np.prod(full)) != count:
            raise LayerError(f"new shape {tuple(full)} has {int(np.prod(full))} elements, input "
                             f"{tuple(shape)} {self.where()} has {count}", f"{f}.shape")
        tops[0].share(bottoms[0], tuple(full))


CONCAT = Message("ConcatParameter", [
    Field("axis", "int", 1, "axis along which to concatenate", number=2),
    Field("concat_dim", "int", None, "deprecated (Caffe): the axis, when axis is not given", range=(0, 2 ** 31 - 1), number=1,
          proto={"default": 1}),
], number=104)


@register
class Concat(PerSample):
    type = "Concat"
    to_onnx = onnx_ops.concat
    doc = "Join bottoms along `axis` (per sample unless axis is 0: then on the whole batch)."
    params = {"concat_param": CONCAT}
    bottoms = (1, None)

    def setup(self, bottoms, tops):
        ref = bottoms[0].shape
        p = self.p.concat_param
        axis = p.concat_dim if p.has("concat_dim") and not p.has("axis") else p.axis
        self.axis = a = canon_axis(axis, len(ref), "concat_param.axis")
        for i, b in enumerate(bottoms[1:], 1):
            s = b.shape
            if len(s) != len(ref) or s[:a] != ref[:a] or s[a + 1:] != ref[a + 1:]:
                raise LayerError(f"bottom {self.bottom_names[i]} has shape {s}, which does not match "
                                 f"{ref} from {self.bottom_names[0]} outside axis {a}", "concat_param.axis")
        self.sizes = [b.shape[a] for b in bottoms]
        self.offsets = np.concatenate([[0], np.cumsum(self.sizes)]).tolist()
        self.per_sample = a >= 1        # along the batch axis, rows of the top come from different bottoms
        tops[0].reshape(ref[:a] + (sum(self.sizes),) + ref[a + 1:], bottoms[0].data.dtype)

    def _slice(self, i):
        return (slice(None),) * self.axis + (slice(self.offsets[i], self.offsets[i + 1]),)

    def forward(self, bottoms, tops):
        self.forward_rows(bottoms, tops, 0, None, None)

    def backward(self, tops, propagate_down, bottoms):
        self.backward_rows(tops, propagate_down, bottoms, 0, None, None, None, False)

    def forward_rows(self, bottoms, tops, lo, hi, ws):
        y = tops[0].data[lo:hi]
        for i, b in enumerate(bottoms):
            if not _copy_part(y, b.data[lo:hi], self.axis, self.offsets[i], True):
                y[self._slice(i)] = b.data[lo:hi]

    def backward_rows(self, tops, propagate_down, bottoms, lo, hi, ws, grads, fresh):
        dy = tops[0].diff[lo:hi]
        for i, b in enumerate(bottoms):
            if propagate_down[i] and not _copy_part(dy, b.diff[lo:hi], self.axis, self.offsets[i], False):
                b.diff[lo:hi] = dy[self._slice(i)]


def _copy_part(whole, part, axis, start, into_whole):
    """whole's part along `axis` from `start` (part's size along it) = part, or part = that part of
    whole (into_whole false), as a team job where the calling thread leads a team with helpers
    (ops/cpu/team_call.py, copy_rows: rows of numbers); whether it ran so. Concat's and Slice's
    copies: a share's rows (axis >= 1), or the whole batch (axis 0, outside any team)."""
    if not (has_helpers() and whole.flags.c_contiguous and part.flags.c_contiguous):    # (reshape: views)
        return False
    rows, inner = math.prod(whole.shape[:axis]), math.prod(whole.shape[axis + 1:])
    length, step = part.shape[axis] * inner, whole.shape[axis] * inner
    w, p = whole.reshape(-1)[start * inner:], part.reshape(-1)
    return copy_rows(p, w, rows, length, length, step) if into_whole else copy_rows(w, p, rows, length, step, length)


SLICE = Message("SliceParameter", [
    Field("axis", "int", 1, "axis to slice", number=3),
    Field("slice_point", "int", None, "indices where the slices start (one fewer than tops)", repeated=True, number=2),
    Field("slice_dim", "int", None, "deprecated (Caffe): the axis, when axis is not given", range=(0, 2 ** 31 - 1), number=1,
          proto={"default": 1}),
], number=126)


@register
class Slice(PerSample):
    type = "Slice"
    to_onnx = onnx_ops.slice_axis
    doc = "Cut the bottom along `axis` into the tops (per sample unless axis is 0: then on the whole batch)."
    params = {"slice_param": SLICE}
    tops = (1, None)

    def setup(self, bottoms, tops):
        p = self.p.slice_param
        shape = bottoms[0].shape
        axis = p.slice_dim if p.has("slice_dim") and not p.has("axis") else p.axis
        self.axis = a = canon_axis(axis, len(shape), "slice_param.axis")
        n, T = shape[a], len(tops)
        if p.slice_point:
            pts = p.slice_point
            if len(pts) != T - 1:
                raise LayerError(f"{T} tops need {T - 1} slice points, got {len(pts)}", "slice_param.slice_point")
            if any(b <= a_ for a_, b in zip([0] + pts, pts + [n])):
                raise LayerError(f"slice points {pts} must increase strictly within (0, {n})",
                                 "slice_param.slice_point")
            self.offsets = [0] + pts + [n]
        else:
            if n % T:
                raise LayerError(f"axis size {n} {self.where()} does not split evenly into {T} tops",
                                 "slice_param.slice_point")
            self.offsets = [i * n // T for i in range(T + 1)]
        self.per_sample = a >= 1        # along the batch axis, each top takes other rows of the bottom
        for i, t in enumerate(tops):
            t.reshape(shape[:a] + (self.offsets[i + 1] - self.offsets[i],) + shape[a + 1:], bottoms[0].data.dtype)

    def _slice(self, i):
        return (slice(None),) * self.axis + (slice(self.offsets[i], self.offsets[i + 1]),)

    def forward(self, bottoms, tops):
        self.forward_rows(bottoms, tops, 0, None, None)

    def backward(self, tops, propagate_down, bottoms):
        self.backward_rows(tops, propagate_down, bottoms, 0, None, None, None, False)

    def forward_rows(self, bottoms, tops, lo, hi, ws):
        x = bottoms[0].data[lo:hi]
        for i, t in enumerate(tops):
            if not _copy_part(x, t.data[lo:hi], self.axis, self.offsets[i], False):
                t.data[lo:hi] = x[self._slice(i)]

    def backward_rows(self, tops, propagate_down, bottoms, lo, hi, ws, grads, fresh):
        if propagate_down[0]:
            dx = bottoms[0].diff[lo:hi]
            for i, t in enumerate(tops):
                if not _copy_part(dx, t.diff[lo:hi], self.axis, self.offsets[i], True):
                    dx[self._slice(i)] = t.diff[lo:hi]


@register
class Split(PerSample):
    type = "Split"
    alias = True
    doc = "Give one blob to several consumers; their gradients are summed (inserted automatically)."
    tops = (1, None)

    def setup(self, bottoms, tops):
        # Each top gets its own array here; the Net then lets the tops that no layer writes in
        # place read the bottom's (net_plan.alias_split_tops), so that an in-place layer on one
        # branch cannot change what the other branches read.
        for t in tops:
            t.reshape(bottoms[0].shape, bottoms[0].data.dtype)

    def forward_rows(self, bottoms, tops, lo, hi, ws):
        for top in tops:
            if top.data is not bottoms[0].data:
                np.copyto(top.data[lo:hi], bottoms[0].data[lo:hi])

    def backward_rows(self, tops, propagate_down, bottoms, lo, hi, ws, grads, fresh):
        if propagate_down[0]:
            dx = bottoms[0].diff[lo:hi]
            if len(tops) == 2 and dx.flags.c_contiguous:        # one pass (ops/cpu/eltwise.py)
                one = dx.dtype.type(1)
                weighted_sum(tops[0].diff[lo:hi].reshape(-1), one, tops[1].diff[lo:hi].reshape(-1), one,
                             dx.reshape(-1))
                return
            np.copyto(dx, tops[0].diff[lo:hi])
            for top in tops[1:]:
                dx += top.diff[lo:hi]


ELTWISE = Message("EltwiseParameter", [
    Field("operation", ("PROD", "SUM", "MAX"), "SUM", "element-wise operation", number=1,
          proto={"enum": "EltwiseOp"}),
    Field("coeff", "float", None, "SUM only: one coefficient per bottom", repeated=True, number=2),
    Field("stable_prod_grad", "bool", True, "PROD: compute gradients without dividing by inputs", number=3),
], number=110)


@register
class Eltwise(PerSample):
    type = "Eltwise"
    to_onnx = onnx_ops.eltwise
    doc = "Element-wise SUM (with coefficients), PROD or MAX of same-shape bottoms, per sample."
    params = {"eltwise_param": ELTWISE}
    bottoms = (2, None)

    def setup(self, bottoms, tops):
        p = self.p.eltwise_param
        for i, b in enumerate(bottoms[1:], 1):
            if b.shape != bottoms[0].shape:
                raise LayerError(f"bottom {self.bottom_names[i]} has shape {b.shape}, expected "
                                 f"{bottoms[0].shape} as {self.bottom_names[0]}")
        if p.coeff and p.operation != "SUM":
            raise LayerError("coeff is only allowed with operation SUM", "eltwise_param.coeff")
        if p.coeff and len(p.coeff) != len(bottoms):
            raise LayerError(f"give one coeff per bottom ({len(bottoms)}), got {len(p.coeff)}",
                             "eltwise_param.coeff")
        self.op = p.operation
        self.coeff = p.coeff or [1.0] * len(bottoms)
        tops[0].reshape(bottoms[0].shape, bottoms[0].data.dtype)
        # MAX: which bottom won each element (0-d blobs are one row, as PerSample runs them)
        self.arg = np.empty(bottoms[0].shape or (1,), np.int32) if self.op == "MAX" else None

    def forward_rows(self, bottoms, tops, lo, hi, ws):
        y = tops[0].data[lo:hi]
        if self.op == "SUM" and len(bottoms) == 2 and y.flags.c_contiguous:    # one pass (ops/cpu/eltwise.py)
            t = y.dtype.type
            a, b, yf = bottoms[0].data[lo:hi].reshape(-1), bottoms[1].data[lo:hi].reshape(-1), y.reshape(-1)
            ca, cb = t(self.coeff[0]), t(self.coeff[1])
            threads.sample_tiles(lambda i, j: weighted_sum(a[i:j], ca, b[i:j], cb, yf[i:j]), yf.size, hi - lo)
        elif self.op == "SUM":
            np.multiply(bottoms[0].data[lo:hi], self.coeff[0], out=y)
            for c, b in zip(self.coeff[1:], bottoms[1:]):
                y += c * b.data[lo:hi]
        elif self.op == "PROD":
            np.copyto(y, bottoms[0].data[lo:hi])
            for b in bottoms[1:]:
                y *= b.data[lo:hi]
        else:
            arg = self.arg[lo:hi]
            np.copyto(y, bottoms[0].data[lo:hi])
            arg[...] = 0
            for i, b in enumerate(bottoms[1:], 1):
                better = b.data[lo:hi] > y
                arg[better] = i
                np.maximum(y, b.data[lo:hi], out=y)

    def backward_rows(self, tops, propagate_down, bottoms, lo, hi, ws, grads, fresh):
        dy = tops[0].diff[lo:hi]
        for i, b in enumerate(bottoms):
            if not propagate_down[i]:
                continue
            if self.op == "SUM":
                np.multiply(dy, self.coeff[i], out=b.diff[lo:hi])
            elif self.op == "PROD":
                others = np.ones_like(dy)
                for j, o in enumerate(bottoms):
                    if j != i:
                        others *= o.data[lo:hi]
                np.multiply(dy, others, out=b.diff[lo:hi])
            else:
                np.multiply(dy, self.arg[lo:hi] == i, out=b.diff[lo:hi])
