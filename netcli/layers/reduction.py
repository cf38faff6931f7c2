"""Caffe's layers that reduce or repeat along axes: ArgMax, Reduction, Tile. Each is per-sample
when the axes it acts on leave the batch axis alone (ArgMax without an axis or along one >= 1,
Reduction and Tile from axis 1 on); along axis 0 it runs on the whole batch."""
from __future__ import annotations

import numpy as np

from ..config.schema import Field, Message, REQUIRED, positive
from .base import LayerError, PerSample, around, canon_axis, register
from . import onnx_ops


class _Axes(PerSample):
    """A layer whose rows are its bottom's and top's rows when per_sample (set in setup), and the
    whole arrays otherwise; forward/backward run the one piece of every row."""

    def _rows(self, arr, lo, hi):
        return arr[lo:hi] if self.per_sample else arr

    def forward(self, bottoms, tops):
        self.forward_rows(bottoms, tops, 0, None, None)

    def backward(self, tops, propagate_down, bottoms):
        self.backward_rows(tops, propagate_down, bottoms, 0, None, None, None, False)


ARGMAX = Message("ArgMaxParameter", [
    Field("out_max_val", "bool", False, "output the values (with axis), or indices and values (without)", number=1),
    Field("top_k", "int", 1, "how many of the largest to output", check=positive, number=2),
    Field("axis", "int", None, "the axis searched; without it, each sample's values flattened", number=3),
], number=103)


@register
class ArgMax(_Axes):
    type = "ArgMax"
    to_onnx = onnx_ops.argmax
    doc = ("Indices (or values) of the top_k largest entries, per sample or along `axis`, largest first; "
           "Caffe's output shapes. Ties go to the larger index, as Caffe's sort.")
    params = {"argmax_param": ARGMAX}
    has_backward = False

    def setup(self, bottoms, tops):
        p = self.p.argmax_param
        x = bottoms[0]
        nd = x.data.ndim
        if p.axis is not None:
            self.axis = canon_axis(p.axis, nd, "argmax_param.axis")
            size = x.shape[self.axis]
            shape = list(x.shape)
            shape[self.axis] = p.top_k
        else:
            self.axis = None
            size = int(np.prod(x.shape[1:], dtype=np.int64))
            shape = [1] * max(nd, 3)
            shape[0], shape[2] = x.shape[0], p.top_k
            if p.out_max_val:
                shape[1] = 2
        if p.top_k > size:
            raise LayerError(f"top_k {p.top_k} is larger than the {size} values it chooses from {self.where()}",
                             "argmax_param.top_k")
        self.k, self.values = p.top_k, p.out_max_val
        self.per_sample = nd >= 1 and self.axis != 0
        tops[0].reshape(tuple(shape), x.data.dtype)

    def forward_rows(self, bottoms, tops, lo, hi, ws):
        x, top = self._rows(bottoms[0].data, lo, hi), self._rows(tops[0].data, lo, hi)
        if self.axis is None:
            flat = x.reshape(x.shape[0], -1)
            idx = _top_k(flat, self.k, 1)
            y = top.reshape(x.shape[0], -1, self.k)
            y[:, 0] = idx
            if self.values:
                y[:, 1] = np.take_along_axis(flat, idx, 1)
            return
        idx = _top_k(x, self.k, self.axis)
        top[...] = np.take_along_axis(x, idx, self.axis) if self.values else idx

    def backward_rows(self, tops, propagate_down, bottoms, lo, hi, ws, grads, fresh):
        pass


def _top_k(x, k, axis):
    """Indices of the k largest along `axis`, largest first, ties to the larger index."""
    rev = np.flip(x, axis)                        # a stable sort of the reversed values puts the
    order = np.argsort(-rev, axis=axis, kind="stable")   # larger original index first among ties
    first = np.take(order, np.arange(k), axis=axis)
    return x.shape[axis] - 1 - first


REDUCTION = Message("ReductionParameter", [
    Field("operation", ("SUM", "ASUM", "SUMSQ", "MEAN"), "SUM", "what each output is of the reduced values", number=1,
          proto={"enum": "ReductionOp", "values": {"SUM": 1, "ASUM": 2, "SUMSQ": 3, "MEAN": 4}}),
    Field("axis", "int", 0, "the first reduced axis; it and all after it are reduced", number=2),
    Field("coeff", "float", 1.0, "the output is multiplied by this", number=3),
], number=136)


@register
class Reduction(_Axes):
    type = "Reduction"
    to_onnx = onnx_ops.reduction
    doc = "Sum, sum of absolute values, sum of squares or mean over the axes from `axis` on, times coeff."
    params = {"reduction_param": REDUCTION}

    def setup(self, bottoms, tops):
        p = self.p.reduction_param
        x = bottoms[0]
        a = canon_axis(p.axis, x.data.ndim, "reduction_param.axis")
        self.outer, self.dim, _ = around(x.shape, a, x.data.ndim - a)
        self.op, self.coeff = p.operation, p.coeff
        self.per_sample = a >= 1          # from axis 0 on, the top is one value of the whole batch
        tops[0].reshape(x.shape[:a], x.data.dtype)

    def forward_rows(self, bottoms, tops, lo, hi, ws):
        x = self._rows(bottoms[0].data, lo, hi).reshape(-1, self.dim)
        f = {"SUM": x, "ASUM": np.abs(x), "SUMSQ": np.square(x), "MEAN": x}[self.op]
        s = f.sum(axis=1)
        if self.op == "MEAN":
            s /= self.dim
        self._rows(tops[0].data, lo, hi).reshape(x.shape[0])[...] = self.coeff * s

    def backward_rows(self, tops, propagate_down, bottoms, lo, hi, ws, grads, fresh):
        if not propagate_down[0]:
            return
        x = self._rows(bottoms[0].data, lo, hi).reshape(-1, self.dim)
        dy = self.coeff * self._rows(tops[0].diff, lo, hi).reshape(x.shape[0], 1)
        dx = self._rows(bottoms[0].diff, lo, hi).reshape(x.shape)
        if self.op == "SUM":
            dx[...] = dy
        elif self.op == "MEAN":
            dx[...] = dy / self.dim
        elif self.op == "ASUM":
            np.multiply(np.sign(x), dy, out=dx)
        else:
            np.multiply(x, 2 * dy, out=dx)


TILE = Message("TileParameter", [
    Field("axis", "int", 1, "the axis repeated", number=1),
    Field("tiles", "int", REQUIRED, "how many copies", check=positive, number=2),
], number=138)


@register
class Tile(_Axes):
    type = "Tile"
    to_onnx = onnx_ops.tile
    doc = "Repeat the bottom `tiles` times along `axis` (the whole block from that axis on, as Caffe's)."
    params = {"tile_param": TILE}

    def setup(self, bottoms, tops):
        p = self.p.tile_param
        x = bottoms[0]
        a = canon_axis(p.axis, x.data.ndim, "tile_param.axis")
        self.outer, self.inner, _ = around(x.shape, a, x.data.ndim - a)
        self.tiles = p.tiles
        self.per_sample = a >= 1          # along axis 0, the copies are other rows
        shape = list(x.shape)
        shape[a] *= p.tiles
        tops[0].reshape(tuple(shape), x.data.dtype)

    def forward_rows(self, bottoms, tops, lo, hi, ws):
        self._rows(tops[0].data, lo, hi).reshape(-1, self.tiles, self.inner)[...] = \
            self._rows(bottoms[0].data, lo, hi).reshape(-1, 1, self.inner)

    def backward_rows(self, tops, propagate_down, bottoms, lo, hi, ws, grads, fresh):
        if propagate_down[0]:
            np.sum(self._rows(tops[0].diff, lo, hi).reshape(-1, self.tiles, self.inner), axis=1,
                   out=self._rows(bottoms[0].diff, lo, hi).reshape(-1, self.inner))
