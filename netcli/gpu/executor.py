"""Running a Net's layers on a CUDA device: the executor a Net uses instead of the CPU one
(netcli/parallel.py), with the same interface (forward, backward, forward_backward).

The net is set up on the host as always (shapes, params, fillers, data layers); every blob then
gets device memory for its data and diff, and the params one flat device buffer. Data layers run
on the host and their tops are copied to the device once per batch. The loss and the net's
outputs are copied back after each forward, and the parameter gradients after each backward;
the host's params are copied to the device before each forward. That last pair of copies goes
when the update rule runs on the device too (next in issue 16).

So far the layer types of LeNet run on the device: Convolution (no groups or dilation), Pooling
(MAX), InnerProduct (axis 1), ReLU, Dropout in TEST (the identity) and SoftmaxWithLoss (class
scores of shape (N, C)). Every other layer runs on the host, as on the CPU path: its bottoms are
copied out, the CPU layer runs, its tops (and in backward its bottoms' and params' gradients) are
copied back. The results are the CPU's, to float rounding; plan() names the layers on the host.
"""
from __future__ import annotations

import numpy as np

from .device import cuda_module, select

DATA_TYPES = ("Input", "Data", "HDF5Data", "ImageData", "MemoryData", "DummyData", "WindowData")


def _unsupported(layer, net):
    """Why this layer cannot run on the GPU path yet (None: it can)."""
    t, p = layer.type, layer.p
    if t in DATA_TYPES:
        return None
    if t == "Convolution":
        if layer.G != 1 or (layer.DH, layer.DW) != (1, 1) or len(layer.bottom_names) != 1:
            return "groups, dilation and several bottoms are not on the GPU yet"
        return None
    if t == "Pooling":
        return None if layer.max and len(layer.top_names) == 1 else "only MAX pooling with one top"
    if t == "InnerProduct":
        return None if layer.R == 1 and not layer.transpose else "only axis 1 without transpose"
    if t == "ReLU":
        return None
    if t == "Dropout":
        return None if layer.phase != "TRAIN" else "Dropout in TRAIN is not on the GPU yet"
    if t == "SoftmaxWithLoss":
        scores = net.blobs[layer.bottom_names[0]]
        if scores.data.ndim != 2 or p.loss_param.ignore_label is not None:
            return "only (N, C) scores without ignore_label"
        return None
    return "this layer type is not on the GPU yet"


class GpuExecutor:
    def __init__(self, net, device_id=0):
        # layers without a device version run on the host (data layers always do)
        self.on_host = [l.type not in DATA_TYPES and _unsupported(l, net) is not None for l in net.layers]
        self.device = select(device_id)
        self.cuda = cuda = cuda_module()
        from . import kernels
        self.k = kernels
        self.net = net
        self.stretches = []
        self.blobs = {}                  # blob name -> (device data, device diff)
        for tops in net.top_vecs:
            for t in tops:
                if t.name not in self.blobs:
                    self.blobs[t.name] = (cuda.to_device(t.data), cuda.to_device(t.diff))
        self.params = cuda.to_device(net.param_data)
        self.grads = cuda.to_device(net.param_diff)
        self.views = {}                  # id(param blob) -> (device data, device diff) views
        for b, a, z in zip(net.learnable_params, net.param_offsets[:-1], net.param_offsets[1:]):
            self.views[id(b)] = (self.params[a:z].reshape(b.shape), self.grads[a:z].reshape(b.shape))
        self.scratch = {}                # layer index -> device buffers
        for i, layer in enumerate(net.layers):
            if layer.type == "Convolution":
                P = layer.OH * layer.OW
                self.scratch[i] = (cuda.device_array((layer.CKK, P), np.float32),
                                   cuda.device_array((layer.CKK, P), np.float32))
            elif layer.type == "Pooling":
                self.scratch[i] = cuda.device_array(net.top_vecs[i][0].shape, np.int32)
            elif layer.type == "SoftmaxWithLoss":
                n = net.blobs[layer.bottom_names[0]].shape[0]
                self.scratch[i] = (cuda.device_array(net.blobs[layer.bottom_names[0]].shape, np.float32),
                                   cuda.device_array(n, np.float32))

    def _param(self, layer, j):
        return self.views[id(layer.blobs[j])]

    def plan(self):
        host = [f"{n} ({l.type})" for n, l, h in zip(self.net.layer_names, self.net.layers, self.on_host) if h]
        return [f"GPU {self.device}: " + (f"on the host (no device version yet): {', '.join(host)}; " if host else
                                          "every layer on the device; ") +
                "the host copies params in before each forward and gradients out after each backward"]

    # -- passes --------------------------------------------------------------------------------
    def forward(self, stretches=None):
        net = self.net
        self.params.copy_to_device(net.param_data)
        for i, layer in enumerate(net.layers):
            if self.on_host[i]:
                self._host_forward(i, layer)
            else:
                getattr(self, "_fwd_" + layer.type, self._fwd_data)(i, layer)
        for name in net.outputs:
            self.blobs[name][0].copy_to_host(net.blobs[name].data)
        net.sum_loss()

    def backward(self, upto=None, cleared=False):
        net = self.net
        self.grads.copy_to_device(net.param_diff)     # the host's gradients: += onto them (iter_size)
        for i in reversed(range(len(net.layers))):
            if net.need_backward[i]:
                layer = net.layers[i]
                if self.on_host[i]:
                    self._host_backward(i, layer, net.propagate_down[i])
                else:
                    getattr(self, "_bwd_" + layer.type)(i, layer, net.propagate_down[i])
        self.grads.copy_to_host(net.param_diff)

    # -- layers without a device version: the CPU layer on host copies ---------------------------
    def _host_forward(self, i, layer):
        net = self.net
        for b in net.bottom_vecs[i]:
            self.blobs[b.name][0].copy_to_host(b.data)
        layer.forward(net.bottom_vecs[i], net.top_vecs[i])
        for t in net.top_vecs[i]:
            self.blobs[t.name][0].copy_to_device(t.data)

    def _host_backward(self, i, layer, pd):
        net = self.net
        for t in net.top_vecs[i]:
            self.blobs[t.name][1].copy_to_host(t.diff)
        for b in net.bottom_vecs[i]:                 # an in-place layer may have changed them since
            self.blobs[b.name][0].copy_to_host(b.data)
        for blob in layer.blobs:                     # += onto the device's sums so far
            self.views[id(blob)][1].copy_to_host(blob.diff)
        layer.backward(net.top_vecs[i], pd, net.bottom_vecs[i])
        for b, down in zip(net.bottom_vecs[i], pd):
            if down:
                self.blobs[b.name][1].copy_to_device(b.diff)
        for blob in layer.blobs:
            self.views[id(blob)][1].copy_to_device(blob.diff)

    def forward_backward(self, cleared=False):
        self.forward()
        self.backward(cleared=cleared)

    def bind_grads(self):
        pass

    # -- layers: forward -----------------------------------------------------------------------
    def _io(self, i):
        net = self.net
        return ([self.blobs[b.name] for b in net.bottom_vecs[i]], [self.blobs[t.name] for t in net.top_vecs[i]])

    def _fwd_data(self, i, layer):
        """Data layers (and Input) fill their host tops; the device gets a copy of each."""
        net = self.net
        if layer.type != "Input":
            layer.forward(net.bottom_vecs[i], net.top_vecs[i])
        for t in net.top_vecs[i]:
            self.blobs[t.name][0].copy_to_device(t.data)

    def _fwd_Convolution(self, i, layer):
        [(x, _)], [(y, _)] = self._io(i)
        w, _ = self._param(layer, 0)
        cols, _ = self.scratch[i]
        w2 = w.reshape(layer.K, layer.CKK)
        geo = (layer.KH, layer.KW, layer.SH, layer.SW, layer.PH, layer.PW, layer.OH, layer.OW)
        for n in range(x.shape[0]):
            self.k.im2col(x[n:n + 1], cols, *geo)
            self.k.gemm(w2, cols, y[n].reshape(layer.K, layer.OH * layer.OW))
        if len(layer.blobs) > 1:
            self.k.add_bias(y, self._param(layer, 1)[0])

    def _fwd_Pooling(self, i, layer):
        [(x, _)], [(y, _)] = self._io(i)
        self.k.maxpool_forward(x, y, self.scratch[i], layer.KH, layer.KW, layer.SH, layer.SW, layer.PH, layer.PW)

    def _fwd_InnerProduct(self, i, layer):
        [(x, _)], [(y, _)] = self._io(i)
        self.k.gemm(x.reshape(layer.M, layer.K), self._param(layer, 0)[0], y, tb=True)
        if len(layer.blobs) > 1:
            self.k.add_bias(y, self._param(layer, 1)[0])

    def _fwd_ReLU(self, i, layer):
        [(x, _)], [(y, _)] = self._io(i)
        self.k.relu_forward(x, y, layer.p.relu_param.negative_slope)

    def _fwd_Dropout(self, i, layer):           # TEST: the identity
        [(x, _)], [(y, _)] = self._io(i)
        if x is not y:
            y.copy_to_device(x)

    def _fwd_SoftmaxWithLoss(self, i, layer):
        net = self.net
        [(s, _), (lab, _)], _ = self._io(i)
        prob, logp = self.scratch[i]
        self.k.softmax_loss_forward(s, lab, prob, logp)
        rows = logp.copy_to_host().astype(np.float64)         # summed here, in row order
        top = net.top_vecs[i][0]
        top.data[...] = -rows.sum() / len(rows)
        self.blobs[top.name][0].copy_to_device(top.data)

    # -- layers: backward ----------------------------------------------------------------------
    def _bwd_Convolution(self, i, layer, pd):
        [(x, dx)], [(_, dy)] = self._io(i)
        w, dw = self._param(layer, 0)
        cols, dcols = self.scratch[i]
        K, P = layer.K, layer.OH * layer.OW
        geo = (layer.KH, layer.KW, layer.SH, layer.SW, layer.PH, layer.PW, layer.OH, layer.OW)
        if layer.learns(1):
            self.k.sum_bias(dy, self._param(layer, 1)[1])
        learn = layer.learns(0)
        for n in range(x.shape[0]):
            dyn = dy[n].reshape(K, P)
            if learn:
                self.k.im2col(x[n:n + 1], cols, *geo)
                self.k.gemm(dyn, cols, dw.reshape(K, layer.CKK), tb=True, beta=1.0)
            if pd[0]:
                self.k.gemm(w.reshape(K, layer.CKK), dyn, dcols, ta=True)
                self.k.col2im(dcols, dx[n:n + 1], *geo)

    def _bwd_Pooling(self, i, layer, pd):
        if pd[0]:
            [(_, dx)], [(_, dy)] = self._io(i)
            self.k.maxpool_backward(dy, self.scratch[i], dx, layer.KH, layer.KW, layer.SH, layer.SW,
                                    layer.PH, layer.PW)

    def _bwd_InnerProduct(self, i, layer, pd):
        [(x, dx)], [(_, dy)] = self._io(i)
        w, dw = self._param(layer, 0)
        x2 = x.reshape(layer.M, layer.K)
        if layer.learns(0):
            self.k.gemm(dy, x2, dw, ta=True, beta=1.0)
        if layer.learns(1):
            self.k.sum_bias(dy, self._param(layer, 1)[1])
        if pd[0]:
            self.k.gemm(dy, w, dx.reshape(layer.M, layer.K))

    def _bwd_ReLU(self, i, layer, pd):
        if pd[0]:
            [(x, dx)], [(y, dy)] = self._io(i)
            self.k.relu_backward(y, dy, dx, layer.p.relu_param.negative_slope)   # y > 0 exactly where x > 0

    def _bwd_Dropout(self, i, layer, pd):
        [(_, dx)], [(_, dy)] = self._io(i)
        if pd[0] and dx is not dy:
            dx.copy_to_device(dy)

    def _bwd_SoftmaxWithLoss(self, i, layer, pd):
        if pd[0]:
            net = self.net
            [(_, ds), (lab, _)], _ = self._io(i)
            prob, _ = self.scratch[i]
            weight = float(net.top_vecs[i][0].diff)
            self.k.softmax_loss_backward(prob, lab, ds, weight / prob.shape[0])
