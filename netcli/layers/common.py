"""Input, InnerProduct, Softmax and Embed (the blob utilities: utility.py)."""
from __future__ import annotations

import numpy as np

from ..config.schema import Field, Message, engine_field, REQUIRED, positive
from ..fillers import FILLER
from ..ops.cpu.inner_product import (inner_product_backward, inner_product_forward, inner_product_weight_grad,
                                     large_weight, weight_tiles)
from .base import Layer, LayerError, PerSample, canon_axis, register
from . import common_cuda, onnx_ops

BLOB_SHAPE = Message("BlobShape", [
    Field("dim", "int", None, "the dimensions", repeated=True, number=1, proto={"type": "int64", "packed": True}),
])

INPUT = Message("InputParameter", [
    Field("shape", BLOB_SHAPE, None, "one shape for every top, or one per top", repeated=True, number=1),
], number=143)


@register
class Input(Layer):
    type = "Input"
    is_input = True
    draw_kind = "data"
    doc = "Net inputs of fixed shape, filled from Python (deploy nets, feeding arrays)."
    params = {"input_param": INPUT}
    bottoms = (0, 0)
    tops = (1, None)
    has_backward = False

    def setup(self, bottoms, tops):
        shapes = self.p.input_param.shape
        if len(shapes) not in (1, len(tops)):
            raise LayerError(f"give 1 shape or one per top ({len(tops)}), got {len(shapes)}",
                             "input_param.shape")
        for i, t in enumerate(tops):
            dims = shapes[0 if len(shapes) == 1 else i].dim
            if any(d <= 0 for d in dims):
                raise LayerError(f"dimensions must be positive, got {dims}", "input_param.shape")
            t.reshape(dims, self.dtype)

    def forward(self, bottoms, tops):
        pass


INNER_PRODUCT = Message("InnerProductParameter", [
    Field("num_output", "int", REQUIRED, "number of outputs", check=positive, number=1),
    Field("bias_term", "bool", True, "add a learned bias", number=2),
    Field("weight_filler", FILLER, None, "weight initialisation (default: constant 0)", number=3),
    Field("bias_filler", FILLER, None, "bias initialisation (default: constant 0)", number=4),
    Field("axis", "int", 1, "first axis flattened into the input vector", number=5),
    Field("transpose", "bool", False, "store weights as (input, output) instead of (output, input)", number=6),
], number=117)


@register
class InnerProduct(PerSample):
    type = "InnerProduct"
    absorbs_relu = True
    draw_kind = "ip"
    to_onnx = onnx_ops.inner_product
    doc = "Fully connected: y = x W^T + b over the axes from `axis` on."
    params = {"inner_product_param": INNER_PRODUCT}
    forward_cuda, backward_cuda = common_cuda.ip_forward_cuda, common_cuda.ip_backward_cuda

    def draw_label(self):
        return [f"{self.p.inner_product_param.num_output} out"]

    def setup(self, bottoms, tops):
        p = self.p.inner_product_param
        shape = bottoms[0].shape
        axis = canon_axis(p.axis, len(shape), "inner_product_param.axis")
        self.M = int(np.prod(shape[:axis]))
        self.K = int(np.prod(shape[axis:]))
        self.N = p.num_output
        self.R = self.M // shape[0] if shape[0] else 1   # GEMM rows per sample (1 when axis is 1)
        tops[0].reshape(shape[:axis] + (self.N,), bottoms[0].data.dtype)
        self.add_param((self.K, self.N) if p.transpose else (self.N, self.K), p.weight_filler)
        if p.bias_term:
            self.add_param((self.N,), p.bias_filler)
        self.transpose = p.transpose
        self.dtype, self.wshape = bottoms[0].data.dtype, self.blobs[0].data   # (still a shape here)
        self.tiles = weight_tiles(*self.wshape)
        self.late_params = (0,) if large_weight(*self.wshape) else ()

    def scratch(self, n):
        # the output transposed (W x^T runs ~1.6x faster in OpenBLAS than x W^T for few rows),
        # and one tile of the weight gradient (ops/cpu/inner_product.py): both written before
        # read in one call, so one set per thread
        a0, a1 = self.tiles[0]
        return {"yt": ((self.N, n * self.R), self.dtype), "dw": ((a1 - a0, self.wshape[1]), self.dtype)}

    def late_tiles(self, j):
        return self.tiles

    def late_grad(self, tops, bottoms, lo, hi, j, a0, a1, out):
        r = slice(lo * self.R, hi * self.R)
        inner_product_weight_grad(out, tops[0].diff.reshape(self.M, self.N)[r],
                                  bottoms[0].data.reshape(self.M, self.K)[r], a0, a1, self.transpose)

    def forward_rows(self, bottoms, tops, lo, hi, ws):
        r = slice(lo * self.R, hi * self.R)
        inner_product_forward(tops[0].data.reshape(self.M, self.N)[r], bottoms[0].data.reshape(self.M, self.K)[r],
                              self.blobs[0].data, self.blobs[1].data if len(self.blobs) > 1 else None,
                              ws["yt"], self.transpose)

    def backward_rows(self, tops, propagate_down, bottoms, lo, hi, ws, grads, fresh):
        r = slice(lo * self.R, hi * self.R)
        dinp = bottoms[0].diff.reshape(self.M, self.K)[r] if propagate_down[0] else None
        inner_product_backward(dinp, self.param_grad(grads, 0), self.param_grad(grads, 1),
                               tops[0].diff.reshape(self.M, self.N)[r], bottoms[0].data.reshape(self.M, self.K)[r],
                               self.blobs[0].data, ws["dw"], self.transpose, fresh)

    def flops(self, bottoms, tops):
        return 2 * self.K * self.N * (self.M // max(bottoms[0].shape[0], 1))


SOFTMAX = Message("SoftmaxParameter", [
    Field("axis", "int", 1, "the axis normalised over", number=2),
    engine_field(1),
], number=125)


def softmax_forward(x, y, axis):
    np.subtract(x, x.max(axis=axis, keepdims=True), out=y)
    np.exp(y, out=y)
    y /= y.sum(axis=axis, keepdims=True)


@register
class Softmax(PerSample):
    type = "Softmax"
    class_scores = "top"
    draw_kind = "loss"
    to_onnx = onnx_ops.softmax
    doc = "y = exp(x) / sum(exp(x)) along `axis` (per sample unless axis is 0: then on the whole batch)."
    params = {"softmax_param": SOFTMAX}
    forward_cuda, backward_cuda = common_cuda.softmax_forward_cuda, common_cuda.softmax_backward_cuda

    def setup(self, bottoms, tops):
        self.axis = canon_axis(self.p.softmax_param.axis, bottoms[0].data.ndim, "softmax_param.axis")
        self.per_sample = self.axis >= 1      # along the batch axis, every row's value needs every other's
        tops[0].reshape(bottoms[0].shape, bottoms[0].data.dtype)

    def forward(self, bottoms, tops):
        self.forward_rows(bottoms, tops, 0, None, None)

    def backward(self, tops, propagate_down, bottoms):
        self.backward_rows(tops, propagate_down, bottoms, 0, None, None, None, False)

    def forward_rows(self, bottoms, tops, lo, hi, ws):
        softmax_forward(bottoms[0].data[lo:hi], tops[0].data[lo:hi], self.axis)

    def backward_rows(self, tops, propagate_down, bottoms, lo, hi, ws, grads, fresh):
        if propagate_down[0]:
            y, dy = tops[0].data[lo:hi], tops[0].diff[lo:hi]
            np.multiply(dy - (dy * y).sum(axis=self.axis, keepdims=True), y, out=bottoms[0].diff[lo:hi])


EMBED = Message("EmbedParameter", [
    Field("num_output", "int", REQUIRED, "length of each embedding vector", check=positive, number=1),
    Field("input_dim", "int", REQUIRED, "vocabulary size: indices run from 0 to input_dim - 1", check=positive, number=2),
    Field("bias_term", "bool", True, "add a learned bias", number=3),
    Field("weight_filler", FILLER, None, "weight initialisation (default: constant 0)", number=4),
    Field("bias_filler", FILLER, None, "bias initialisation (default: constant 0)", number=5),
], number=137)


@register
class Embed(PerSample):
    type = "Embed"
    draw_kind = "ip"
    to_onnx = onnx_ops.embed
    doc = ("A lookup table: each index of the bottom becomes row `index` of a learned (input_dim, num_output) "
           "matrix (one-hot times the matrix), plus a bias; the top has one more axis. Indices from a data "
           "layer's labels are checked before training; others outside [0, input_dim) are clipped.")
    params = {"embed_param": EMBED}
    no_grad_bottoms = (0,)

    def setup(self, bottoms, tops):
        p = self.p.embed_param
        x = bottoms[0]
        self.class_labels = (0, p.input_dim, None)     # the data layers check indices are in range
        tops[0].reshape(tuple(x.shape) + (p.num_output,), x.data.dtype)
        self.add_param((p.input_dim, p.num_output), p.weight_filler)
        if p.bias_term:
            self.add_param((p.num_output,), p.bias_filler)
        self.N = p.num_output
        self.per_sample = x.data.ndim >= 1     # each sample's indices look up its own rows

    def forward(self, bottoms, tops):
        self.forward_rows(bottoms, tops, 0, None, None)

    def backward(self, tops, propagate_down, bottoms):
        self.backward_rows(tops, propagate_down, bottoms, 0, None, None, [b.diff for b in self.blobs], False)

    def forward_rows(self, bottoms, tops, lo, hi, ws):
        rows = slice(lo, hi) if self.per_sample else ...
        idx = bottoms[0].data[rows].reshape(-1).astype(np.intp)
        y = tops[0].data[rows].reshape(-1, self.N)
        np.take(self.blobs[0].data, idx, axis=0, out=y, mode="clip")
        if len(self.blobs) > 1:
            y += self.blobs[1].data

    def backward_rows(self, tops, propagate_down, bottoms, lo, hi, ws, grads, fresh):
        rows = slice(lo, hi) if self.per_sample else ...
        dy = tops[0].diff[rows].reshape(-1, self.N)
        dw, db = self.param_grad(grads, 0), self.param_grad(grads, 1)
        if dw is not None:          # into zeros when fresh: the same either way
            np.add.at(dw, bottoms[0].data[rows].reshape(-1).astype(np.intp), dy)
        if db is not None:
            if fresh:
                np.sum(dy, axis=0, out=db)
            else:
                db[...] += dy.sum(axis=0)
