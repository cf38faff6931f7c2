"""Pooling and SPP (spatial pyramid pooling): setup (checks, shapes) here; the computation in
netcli/ops/cpu/pool.py, on a CUDA device in vision_cuda.py."""
from __future__ import annotations

import numpy as np

from ..config.schema import Field, Message, engine_field, REQUIRED, positive, non_negative
from ..exec import threads
from ..exec.team import with_helpers
from ..ops.cpu import pool, pool_team
from ..ops.cpu.team_jobs import run_job
from .base import LayerError, PerSample, register
from . import onnx_ops, vision_cuda as cu
from .vision import _need_4d, _pair


# A call on one image (batch-1 inference) that reads at least TILED_READS input values goes in
# TILES blocks of channels, which idle threads take (exec/threads.py tiles): the same bits whoever
# runs them. SqueezeNet 1.1's pool1 (64 channels of 111x111, 3x3 stride 2, 1.7M reads): 0.63 ms
# on one thread.
TILES = 4
TILED_READS = 2 ** 19

SPP = Message("SPPParameter", [
    Field("pyramid_height", "int", REQUIRED, "levels; level l pools a 2^l x 2^l grid", check=positive, number=1),
    Field("pool", ("MAX", "AVE"), "MAX", "pooling method", number=2, proto={"enum": "PoolMethod"}),
    engine_field(6),
], number=132)


@register
class SPP(PerSample):
    type = "SPP"
    draw_kind = "pool"
    to_onnx = onnx_ops.spp
    doc = ("Spatial pyramid pooling (He et al.; Caffe's SPP): level l pools the image into a 2^l x 2^l "
           "grid; the levels are flattened and concatenated, so any input size gives one output size.")
    params = {"spp_param": SPP}

    def setup(self, bottoms, tops):
        p = self.p.spp_param
        x = bottoms[0]
        _need_4d(self, x, "SPP")
        N, C, H, W = x.shape
        self.max = p.pool == "MAX"
        self.levels = []           # (kernel h, w, pad h, w, pooled (N, C, OH, OW), mask, top offset)
        at = 0
        for level in range(p.pyramid_height):
            bins = 2 ** level
            kh, kw = -(-H // bins), -(-W // bins)                      # Caffe: kernel ceil(size / bins),
            ph, pw = (kh * bins - H + 1) // 2, (kw * bins - W + 1) // 2   # pad half the remainder, stride kernel
            oh, ow = _pooled_size(H, kh, kh, ph), _pooled_size(W, kw, kw, pw)
            y = np.empty((N, C, oh, ow), x.data.dtype)
            mask = np.empty((N, C, oh, ow), np.int32)
            self.levels.append((kh, kw, ph, pw, y, mask, at))
            at += C * oh * ow
        if p.pyramid_height == 1:
            tops[0].reshape(self.levels[0][4].shape, x.data.dtype)   # as Caffe: one level is not flattened
        else:
            tops[0].reshape((N, at), x.data.dtype)
        self.dx = np.empty(x.shape, x.data.dtype)

    def forward_rows(self, bottoms, tops, lo, hi, ws):
        x, top = bottoms[0].data[lo:hi], tops[0].data[lo:hi].reshape(hi - lo, -1)
        for kh, kw, ph, pw, y, mask, at in self.levels:
            y, mask = y[lo:hi], mask[lo:hi]
            if self.max:
                pool.maxpool_forward(x, y, mask, kh, kw, kh, kw, ph, pw)
            else:
                pool.avepool_forward(x, y, kh, kw, kh, kw, ph, pw)
            top[:, at:at + y[0].size] = y.reshape(y.shape[0], -1)

    def backward_rows(self, tops, propagate_down, bottoms, lo, hi, ws, grads, fresh):
        if not propagate_down[0]:
            return
        dx, dtop, part = bottoms[0].diff[lo:hi], tops[0].diff[lo:hi].reshape(hi - lo, -1), self.dx[lo:hi]
        dx[...] = 0
        for kh, kw, ph, pw, y, mask, at in self.levels:
            dy = dtop[:, at:at + y[0].size].reshape((hi - lo,) + y.shape[1:])
            if self.max:
                pool.maxpool_backward(dy, mask[lo:hi], part)
            else:
                pool.avepool_backward(dy, part, kh, kw, kh, kw, ph, pw)
            dx += part


def _pooled_size(size, kernel, stride, pad, ceil=True):
    """Caffe's pooled size: ceil((size + 2 pad - kernel) / stride) + 1 (or floor), less one when
    the last window would start in the padding."""
    span = size + 2 * pad - kernel
    o = (-(-span // stride) if ceil else span // stride) + 1
    if pad and (o - 1) * stride >= size + pad:
        o -= 1
    return o


POOLING = Message("PoolingParameter", [
    Field("pool", ("MAX", "AVE"), "MAX", "pooling method", number=1, proto={"enum": "PoolMethod"}),
    Field("kernel_size", "int", None, "square kernel size", check=positive, number=2),
    Field("kernel_h", "int", None, "kernel height", check=positive, number=5),
    Field("kernel_w", "int", None, "kernel width", check=positive, number=6),
    Field("pad", "int", None, "zero padding (default 0)", check=non_negative, number=4, proto={"default": 0}),
    Field("pad_h", "int", None, "vertical padding", check=non_negative, number=9, proto={"default": 0}),
    Field("pad_w", "int", None, "horizontal padding", check=non_negative, number=10, proto={"default": 0}),
    Field("stride", "int", None, "stride (default 1)", check=positive, number=3, proto={"default": 1}),
    Field("stride_h", "int", None, "vertical stride", check=positive, number=7),
    Field("stride_w", "int", None, "horizontal stride", check=positive, number=8),
    Field("global_pooling", "bool", False, "pool over the whole height and width", number=12),
    Field("round_mode", ("CEIL", "FLOOR"), "CEIL", "rounding of the output size (Caffe: CEIL)", number=13),
    engine_field(11),
], number=121)


@register
class Pooling(PerSample):
    type = "Pooling"
    draw_kind = "pool"
    to_onnx = onnx_ops.pooling
    doc = "Max or average pooling with Caffe's output size and padding rules."
    params = {"pooling_param": POOLING}
    tops = (1, 2)
    forward_cuda, backward_cuda, cuda_workspace, cuda_refusal = cu.POOLING          # vision_cuda.py
    team_jobs = True         # threads beyond a run's shares help it (exec/team.py; ops/cpu/pool_team.py)

    def draw_label(self):
        return [f"{'max' if self.max else 'ave'} {self.KH}x{self.KW}/{self.SH}"]

    def setup(self, bottoms, tops):
        p = self.p.pooling_param
        f = "pooling_param"
        x = bottoms[0]
        _need_4d(self, x, "Pooling")
        N, C, H, W = x.shape
        if p.global_pooling:
            if p.kernel_size is not None or p.kernel_h is not None or p.kernel_w is not None:
                raise LayerError("with global_pooling: true the kernel size cannot be given",
                                 f"{f}.kernel_size")
            self.KH, self.KW = H, W
        else:
            self.KH, self.KW = _pair(p, "kernel_size", None, f, required=True)
        self.PH, self.PW = _pair(p, "pad", 0, f)
        self.SH, self.SW = _pair(p, "stride", 1, f)
        if p.global_pooling and (self.PH or self.PW or self.SH != 1 or self.SW != 1):
            raise LayerError("with global_pooling: true only pad 0 and stride 1 are allowed", f"{f}.global_pooling")
        if self.PH >= self.KH or self.PW >= self.KW:
            raise LayerError(f"pad {self.PH}x{self.PW} must be smaller than kernel {self.KH}x{self.KW}", f"{f}.pad")
        Hp, Wp = H + 2 * self.PH, W + 2 * self.PW
        if self.KH > Hp or self.KW > Wp:
            raise LayerError(f"kernel {self.KH}x{self.KW} larger than padded input {Hp}x{Wp} {self.where()}",
                             f"{f}.kernel_size")
        ceil = p.round_mode == "CEIL"
        OH = _pooled_size(H, self.KH, self.SH, self.PH, ceil)
        OW = _pooled_size(W, self.KW, self.SW, self.PW, ceil)
        self.max = p.pool == "MAX"
        if len(tops) > 1 and not self.max:
            raise LayerError("a second top (the argmax mask) needs pool: MAX", f"{f}.pool")
        tops[0].reshape((N, C, OH, OW), x.data.dtype)
        if len(tops) > 1:
            tops[1].reshape((N, C, OH, OW), x.data.dtype)
        self.mask = np.empty((N, C, OH, OW), np.int32) if self.max else None
        fast2x2 = (self.max and (self.KH, self.KW, self.SH, self.SW, self.PH, self.PW) == (2, 2, 2, 2, 0, 0)
                   and H % 2 == 0 and W % 2 == 0)
        k3x3 = (self.KH, self.KW) == (3, 3)
        # the kernels (ops/cpu/pool.py), by their names in pool_team.py
        self.forward_kernel = ("max2x2" if fast2x2 else "max3x3" if k3x3 else "max") if self.max else \
            ("ave3x3" if k3x3 else "ave")
        self.backward_kernel = "max" if self.max else "ave3x3" if k3x3 else "ave"
        self.no_mask = np.zeros((0, 1, 1, 1), np.int32)

    def forward_rows(self, bottoms, tops, lo, hi, ws):
        x, y = bottoms[0].data[lo:hi], tops[0].data[lo:hi]
        m = self.mask[lo:hi] if self.max else None
        if hi - lo == 1 and y.size * self.KH * self.KW >= TILED_READS:
            C = x.shape[1]           # one image (batch-1 inference): blocks of channels, on idle threads

            def block(a, j):
                return None if a is None else a[:, C * j // TILES:C * (j + 1) // TILES]
            threads.tiles(lambda j: self._pool(block(x, j), block(y, j), block(m, j)), TILES)
        else:
            self._pool(x, y, m)
        if len(tops) > 1:
            tops[1].data[lo:hi] = m

    def _pool(self, x, y, m):
        geometry = (self.KH, self.KW, self.SH, self.SW, self.PH, self.PW)
        team = with_helpers(x, y, *(() if m is None else (m,)))      # threads to spare: in tiles of images
        if team is not None:
            pool_team.forward_job(team.record, pool_team.FORWARDS.index(self.forward_kernel), x, y,
                                  self.no_mask if m is None else m, *geometry)
            run_job(team, y.reshape(-1)[:0])
        elif self.forward_kernel == "ave3x3":
            pool.avepool3x3_forward(x, y, *geometry[2:])
        elif self.forward_kernel == "ave":
            pool.avepool_forward(x, y, *geometry)
        elif self.forward_kernel == "max2x2":
            pool.maxpool2x2_forward(x, y, m)
        elif self.forward_kernel == "max3x3":
            pool.maxpool3x3_forward(x, y, m, *geometry[2:])
        else:
            pool.maxpool_forward(x, y, m, *geometry)

    def backward_rows(self, tops, propagate_down, bottoms, lo, hi, ws, grads, fresh):
        if not propagate_down[0]:
            return
        dy, dx = tops[0].diff[lo:hi], bottoms[0].diff[lo:hi]
        geometry = (self.KH, self.KW, self.SH, self.SW, self.PH, self.PW)
        mask = self.mask[lo:hi] if self.max else self.no_mask
        team = with_helpers(dy, dx, mask)
        if team is not None:
            pool_team.backward_job(team.record, pool_team.BACKWARDS.index(self.backward_kernel), dy, mask, dx,
                                   *geometry)
            run_job(team, dy.reshape(-1)[:0])
        elif self.backward_kernel == "max":
            pool.maxpool_backward(dy, mask, dx)
        elif self.backward_kernel == "ave3x3":
            pool.avepool3x3_backward(dy, dx, *geometry[2:])
        else:
            pool.avepool_backward(dy, dx, *geometry)
