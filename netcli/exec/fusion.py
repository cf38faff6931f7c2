"""Layers the CPU executor runs as one pass: a BatchNorm, the Scale after it and the ReLU after
that, all on one blob in place (the block of every ResNet and MobileNet in Caffe's files).

Each layer alone reads and writes the whole blob, forward and backward; fused, the chain reads
it once and writes it once forward, and makes two passes backward (the batch's gradient sums,
then the input's gradient) instead of five. The fused kernels (ops/cpu/norm_scale_relu.py) form
every value with the unfused layers' float32 operations and sums, so fusing changes no bit: it
is a plan the executor chooses, never a different net. The chain runs fused only where the
executor runs all of its layers in one stretch (a whole forward or backward pass); a layer run
alone (`netcli time`'s per-layer lines, pycaffe's forward(end=...)) runs as itself.
"""
from __future__ import annotations

import copy

import numpy as np

from ..ops.cpu import norm_scale_relu as ops


def find_chains(net, stretches, backward_ok):
    """{BatchNorm's layer index: NormScaleReLU} for every chain the executor may fuse: a
    BatchNorm, then a per-channel Scale with its own params, in place on the BatchNorm's top, then
    optionally a ReLU (negative_slope >= 0) in place on it too, in one per-sample stretch, with
    no loss weight on their tops. Where the chain needs a backward pass, all three need it and
    the gradients are this net's own (backward_ok). A BatchNorm with use_global_stats needs
    nothing from the batch, so its chain's forward is fused in any case (a TEST net that shares
    the training net's params, as the solver's and pycaffe's test nets do), its backward, where
    one is needed, run by the three layers apart."""
    chains = {}
    for n, idx in stretches:
        if n is None:
            continue
        members = set(idx)
        for i in idx:
            chain = _chain_at(net, i, members, backward_ok)
            if chain is not None:
                chains[i] = chain
    return chains


def follows_conv(net, j, chain):
    """Whether `chain` (at layer j + 1) can run inside layer j's forward, on each block of rows
    as the convolution finishes it (ops/cpu/conv2d.py, `after`), instead of in a pass of its own
    over the whole blob: a Convolution with one bottom whose one top is the chain's input, and a
    chain that needs nothing from the batch (a BatchNorm with global statistics: TEST nets,
    frozen statistics). ResNet-20 at batch 100, one thread: the chains' pass over blobs no longer
    in cache took 11-14 ms of 130 ms."""
    layer = net.layers[j]
    return (layer.type == "Convolution" and not chain.bn.batch_stats and len(net.bottom_vecs[j]) == 1
            and len(net.top_vecs[j]) == 1 and net.top_vecs[j][0] is chain.x)


def _in_place(net, i, blob):
    return net.bottom_vecs[i] == [blob] and len(net.top_vecs[i]) == 1 and net.top_vecs[i][0] is blob


def _chain_at(net, i, members, backward_ok):
    layers = net.layers
    bn = layers[i]
    if bn.type != "BatchNorm" or i + 1 not in members or len(net.top_vecs[i]) != 1:
        return None
    t = net.top_vecs[i][0]
    scale = layers[i + 1]
    if (scale.type != "Scale" or not _in_place(net, i + 1, t) or scale.from_bottom or not scale.per_sample
            or (scale.C, scale.inner, scale.rows_outer) != (bn.C, bn.S, 1)):
        return None
    k = i + 2
    relu = layers[k] if k in members and layers[k].type == "ReLU" and _in_place(net, k, t) else None
    if relu is not None and (not relu.p.relu_param.negative_slope >= 0 or relu.keep_mask):
        relu = None
    indices = [i, i + 1] + ([k] if relu is not None else [])
    if any(w for j in indices for w in net.loss_weights[j]):
        return None
    back = [net.need_backward[j] for j in indices]
    fused_back = all(back) and backward_ok and all(net.propagate_down[j][0] for j in indices[1:])
    if any(back) and not fused_back and bn.batch_stats:
        return None
    return NormScaleReLU(net, indices, any(back), fused_back)


class NormScaleReLU:
    """One fused BatchNorm (+ Scale (+ ReLU)) chain: its passes over rows lo..hi, with the
    BatchNorm's workspace of that share (which holds xhat and the share's sums).
    `back`: some of the three need a backward pass; `fused_back`: the executor may run it fused.
    `backward`: the backward pass is fused too (the BatchNorm uses the batch's statistics).
    `keeps`: the backward runs the layers apart (use_global_stats, in a net that needs a
    backward pass: a TEST net of a train_test file, or one whose gradients live in another
    net), so the forward also writes what their backward reads: the Scale's saved input and the
    ReLU's mask."""

    def __init__(self, net, indices, back, fused_back):
        self.indices = tuple(indices)
        self.head, self.scale_index = indices[0], indices[1]
        self.bn, self.scale = net.layers[indices[0]], net.layers[indices[1]]
        self.relu = net.layers[indices[2]] if len(indices) > 2 else None
        self.x = net.bottom_vecs[self.head][0]
        self.y = net.top_vecs[self.head][0]
        self.propagate = net.propagate_down[self.head][0]
        slope = self.relu.p.relu_param.negative_slope if self.relu is not None else 0.0
        dt = self.bn.dtype
        self.slope = np.array([slope, 0, 1], dt)          # (slope, 0, 1) in the blob's dtype
        self.no_rows, self.no_bias = np.zeros((0, 1, 1), dt), np.zeros(self.bn.C, dt)
        self.names = [net.layer_names[j] for j in indices]
        self.backward = fused_back and self.bn.batch_stats
        self.keeps = back and not self.backward
        self.no_mask = np.zeros((0, 1, 1), np.bool_)

    def on(self, x, y):
        """This chain over blobs x and y instead of its own (exec/arena.py's views of them)."""
        chain = copy.copy(self)
        chain.x, chain.y = x, y
        return chain

    def _rows(self, arr, lo, hi):
        return arr[lo:hi].reshape(hi - lo, self.bn.C, self.bn.S)

    def _gamma_beta(self):
        p = self.scale.blobs
        return p[0].data.reshape(-1), (p[1].data.reshape(-1) if len(p) > 1 else self.no_bias)

    def forward_rows(self, lo, hi, ws, scale_ws, first=None, tile=None):
        """ws: the BatchNorm's workspace of the share these rows are in, scale_ws the Scale's;
        `first`: that share's first row, where lo..hi is a part of it (the rows a convolution
        just wrote: follows_conv, after its before_conv); None: lo. `tile`: (c0, c1, p0, p1),
        where the convolution wrote only channels c0..c1 at positions p0..p1 of one image (row lo;
        only where the chain keeps nothing for a backward pass)."""
        bn = self.bn
        pos = self.no_mask
        at = slice(lo - (lo if first is None else first), hi - (lo if first is None else first))
        if bn.batch_stats:
            a, b, xhat = bn.a, bn.b, ws["xhat"][at]
        else:
            if first is None:
                bn.global_affine(ws)
            a, b, xhat = ws["a"], ws["b"], self.no_rows
        if self.keeps:
            xhat = scale_ws["x"][at]        # (the ReLU's backward reads y: layers/neuron.py)
        gamma, beta = self._gamma_beta()
        if tile is not None:
            ops.norm_scale_relu_tile(self.x.data[lo].reshape(-1), a, b, gamma, beta, self.slope, self.relu is not None,
                                     self.y.data[lo].reshape(-1), bn.S, *tile)
            return
        ops.norm_scale_relu_forward(self._rows(self.x.data, lo, hi), a, b, gamma, beta, self.slope,
                                    self.relu is not None, self._rows(self.y.data, lo, hi), xhat, pos)

    def before_conv(self, ws):
        """Once before a convolution runs this chain on the blocks it finishes (forward_rows with
        `first`): the BatchNorm's affine from its global statistics, which every block reads."""
        self.bn.global_affine(ws)

    def grad_stats_rows(self, lo, hi, ws):
        gamma, _ = self._gamma_beta()
        ops.norm_scale_relu_grad_sums(self._rows(self.y.diff, lo, hi), self._rows(self.y.data, lo, hi),
                                      ws["xhat"], gamma, self.slope, self.relu is not None,
                                      ws["scale_dgamma"], ws["scale_dbeta"], ws["sum_dy"], ws["sum_dy_xhat"])

    def backward_rows(self, lo, hi, ws, scale_grads, fresh):
        """After the BatchNorm's combine_grad_stats: the Scale's param gradients of these rows
        (added to scale_grads, or written when `fresh`) and the BatchNorm's bottom diff."""
        dgamma, dbeta = self.scale.param_grad(scale_grads, 0), None
        if len(self.scale.blobs) > 1:
            dbeta = self.scale.param_grad(scale_grads, 1)
        if dgamma is not None:
            ops.add_sums(dgamma.reshape(-1), ws["scale_dgamma"], fresh)
        if dbeta is not None:
            ops.add_sums(dbeta.reshape(-1), ws["scale_dbeta"], fresh)
        if self.propagate:
            bn = self.bn
            gamma, _ = self._gamma_beta()
            ops.norm_scale_relu_backward(self._rows(self.y.diff, lo, hi), self._rows(self.y.data, lo, hi),
                                         ws["xhat"], gamma, bn.mean_dy, bn.mean_dy_xhat, bn.inv_std,
                                         self.slope, self.relu is not None, self._rows(self.x.diff, lo, hi))
