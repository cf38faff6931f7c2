"""Layers the CPU executor runs as one pass: a BatchNorm, the Scale after it and the ReLU after
that, all on one blob in place (the block of every ResNet and MobileNet in Caffe's files); and an
Eltwise SUM of two blobs with the ReLU in place on its sum (every ResNet's shortcut join).

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

from . import threads
from .team import with_helpers
from ..ops.cpu import channel_passes, eltwise_team, norm_scale_relu as ops
from ..ops.cpu.eltwise import weighted_sum_relu, weighted_sum_relu_backward
from ..ops.cpu.team_jobs import run_job


def find_chains(net, stretches, backward_ok):
    """{BatchNorm's layer index: NormScaleReLU} for every chain the executor may fuse: a
    BatchNorm, then a per-channel Scale with its own params, in place on the BatchNorm's top, then
    optionally a ReLU (negative_slope >= 0, keeping no mask: the chain's forward writes none, which
    its own backward, where the layers run apart, would read) in place on it too, in one
    per-sample stretch, with no loss weight on their tops. Where the chain needs a backward pass,
    all three need it and the gradients are this net's own (backward_ok). A BatchNorm with
    use_global_stats needs nothing from the batch, so its chain's forward is fused in any case (a
    TEST net that shares the training net's params, as the solver's and pycaffe's test nets do),
    its backward, where one is needed, run by the three layers apart."""
    chains = {}
    for n, idx in stretches:
        if n is None:
            continue
        members = set(idx)
        for i in idx:
            chain = _chain_at(net, i, members, backward_ok) or _sum_relu_at(net, i, members, backward_ok)
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
    return (isinstance(chain, NormScaleReLU) and layer.type == "Convolution" and not chain.bn.batch_stats
            and len(net.bottom_vecs[j]) == 1 and len(net.top_vecs[j]) == 1 and net.top_vecs[j][0] is chain.x)


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


def _sum_relu_at(net, i, members, backward_ok):
    """SumReLU where layer i is an Eltwise SUM of two different blobs into a third and the next
    layer, in the same stretch, a ReLU in place on that sum, with a slope >= 0 and no mask kept
    (y tells where the sum was positive), neither with a loss weight. Its forward is fused in
    any case (the ReLU's backward reads only y, which it writes); its backward where both need
    one, with this net's own gradients."""
    layers, k = net.layers, i + 1
    add = layers[i]
    if add.type != "Eltwise" or k not in members or layers[k].type != "ReLU" or add.op != "SUM":
        return None
    bottoms, tops = net.bottom_vecs[i], net.top_vecs[i]
    if len(bottoms) != 2 or bottoms[0] is bottoms[1] or len(tops) != 1 or tops[0] in bottoms:
        return None
    relu = layers[k]
    if not _in_place(net, k, tops[0]) or relu.keep_mask or not relu.relu_slope >= 0:
        return None
    if any(w for j in (i, k) for w in net.loss_weights[j]):
        return None
    backward = backward_ok and net.need_backward[i] and net.need_backward[k] and net.propagate_down[k][0]
    return SumReLU(net, i, k, backward)


class NormScaleReLU:
    """One fused BatchNorm (+ Scale (+ ReLU)) chain: its passes over rows lo..hi, with the
    BatchNorm's workspace of that share (which holds xhat and the share's sums).
    `back`: some of the three need a backward pass; `fused_back`: the executor may run it fused.
    `backward`: the backward pass is fused too (the BatchNorm uses the batch's statistics).
    `keeps`: the backward runs the layers apart (use_global_stats, in a net that needs a
    backward pass: a TEST net of a train_test file, or one whose gradients live in another
    net), so the forward also writes what their backward reads: the Scale's saved input and the
    ReLU's mask."""

    forward_kind, backward_kind = "fused_forward", "fused_backward"    # their steps (exec/stretches.py)

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

    def on(self, blob):
        """This chain over blob(x) and blob(y) instead of its own blobs (exec/arena.py's views)."""
        chain = copy.copy(self)
        chain.x, chain.y = blob(self.x), blob(self.y)
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
        channel_passes.norm_scale_relu_forward(self._rows(self.x.data, lo, hi), a, b, gamma, beta, self.slope,
                                               self.relu is not None, self._rows(self.y.data, lo, hi), xhat, pos)

    def before_conv(self, ws):
        """Once before a convolution runs this chain on the blocks it finishes (forward_rows with
        `first`): the BatchNorm's affine from its global statistics, which every block reads."""
        self.bn.global_affine(ws)

    def grad_stats_rows(self, lo, hi, ws):
        gamma, beta = self._gamma_beta()
        channel_passes.norm_scale_relu_grad_sums(self._rows(self.y.diff, lo, hi), ws["xhat"], gamma, beta, self.slope,
                                                 self.relu is not None, ws["scale_dgamma"], ws["scale_dbeta"],
                                                 ws["sum_dy"], ws["sum_dy_xhat"])

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
            gamma, beta = self._gamma_beta()
            channel_passes.norm_scale_relu_backward(
                self._rows(self.y.diff, lo, hi), ws["xhat"], gamma, beta, bn.mean_dy, bn.mean_dy_xhat, bn.inv_std,
                self.slope, self.relu is not None, self._rows(self.x.diff, lo, hi))


class SumReLU:
    """An Eltwise SUM of two blobs (with its coefficients) and the ReLU in place on the sum, as one
    pass each way over the rows lo..hi of the blobs the executor hands its step (the Eltwise's
    bottoms and top): forward y = ReLU(ca * a + cb * b), where the two layers wrote y and read it
    back; backward, the ReLU's gradient left in y's diff as the ReLU leaves it, and each bottom's,
    reading y and its diff once, where the two layers read the diff three times. ResNet-50 at
    batch 8, 2 threads: the 16 joins and their ReLUs were 4.5% of a forward's thread time. The
    same float32 operations as the two layers, so the same bits. `backward`: the backward pass is
    fused too."""

    forward_kind, backward_kind = "fused_sum_forward", "fused_sum_backward"    # their steps
    keeps = False                     # the ReLU's backward reads only y, which the forward writes

    def __init__(self, net, i, k, backward):
        self.indices, self.head = (i, k), i
        self.add, self.relu = net.layers[i], net.layers[k]
        self.names = [net.layer_names[i], net.layer_names[k]]
        self.backward = backward
        t = net.top_vecs[i][0].data.dtype.type          # the coefficients and slope in the blobs' dtype
        self.ca, self.cb, self.slope = t(self.add.coeff[0]), t(self.add.coeff[1]), t(self.relu.relu_slope)
        self.k = np.array([self.ca, self.cb, self.slope])      # (as a team job reads them: eltwise_team.py)

    def on(self, blob):
        """The same chain: it holds no blobs (the executor hands it the arena's, exec/arena.py)."""
        return self

    def forward_rows(self, bottoms, tops, lo, hi):
        y = tops[0].data[lo:hi].reshape(-1)
        a, b = bottoms[0].data[lo:hi].reshape(-1), bottoms[1].data[lo:hi].reshape(-1)
        ca, cb, slope = self.ca, self.cb, self.slope
        team = with_helpers(a, b, y)                  # threads to spare: in blocks of numbers
        if team is not None:
            eltwise_team.forward_job(team.record, a, b, y, self.k)
            run_job(team, y[:0])
            return
        threads.sample_tiles(lambda i, j: weighted_sum_relu(a[i:j], ca, b[i:j], cb, slope, y[i:j]),
                             y.size, hi - lo)

    def backward_rows(self, tops, propagate_down, bottoms, lo, hi):
        y, dy = tops[0].data[lo:hi].reshape(-1), tops[0].diff[lo:hi].reshape(-1)
        none = dy[:0]
        da, db = (bottoms[j].diff[lo:hi].reshape(-1) if propagate_down[j] else none for j in (0, 1))
        team = with_helpers(y, dy, da, db)
        if team is not None:
            eltwise_team.backward_job(team.record, y, dy, da, db, self.k)
            run_job(team, y[:0])
            return
        weighted_sum_relu_backward(y, dy, self.slope, self.ca, da, self.cb, db)
