"""Running a Net's layers on a CUDA device: the executor a Net uses instead of the CPU one
(netcli/parallel.py), with the same interface (forward, backward, forward_backward, update).

The net is set up on the host as always (shapes, params, fillers, data layers); every blob then
gets device memory for its data and diff, and the params, their gradients and the update rule's
history one flat device buffer each. While training, the params live on the device: one
host-to-device copy per batch (the data layers' tops, from pinned host memory), forward,
backward and the update rule run there, and the loss comes back (a float per sample) for the
solver's display and divergence check, read once the backward's kernels are queued.
`push()` and `pull()` move the params (and the rule's history) between host and device; whichever side wrote last owns them, so both are no-ops when
nothing changed. The Solver pulls before a snapshot, a test's hooks and at the end of step(),
and every host write (restore, finetune, your own) is pushed at the next forward.

On the device: Convolution (no groups or dilation; one GEMM per chunk of images, the bias and
a following in-place ReLU fused into the layout kernel), Pooling (MAX, AVE), InnerProduct (axis
1; bias and a following in-place ReLU fused), ReLU, TanH, Sigmoid, Softmax, Dropout in TEST
(the identity) and SoftmaxWithLoss (class scores of shape (N, C)). Every other layer runs on the
host, as on the CPU path: its bottoms (and params) are copied out, the CPU layer runs, its tops
(and in backward its bottoms' and params' gradients) are copied back. The results are the
CPU's, to float rounding; plan() names the layers on the host. Test nets share the train net's
device params (`shared`).
"""
from __future__ import annotations

import time
import weakref

import numpy as np

from .device import cuda_module, select

COLS_LIMIT = 1 << 25          # floats in a convolution's column buffer (128 MB): images go in chunks


def _unsupported(layer, net):
    """Why this layer cannot run on the GPU path yet (None: it can)."""
    t, p = layer.type, layer.p
    if layer.is_input or layer.makes_data or layer.forward_cuda is not None:
        return None
    if t == "Convolution":
        if layer.G != 1 or (layer.DH, layer.DW) != (1, 1) or len(layer.bottom_names) != 1:
            return "groups, dilation and several bottoms are not on the GPU yet"
        return None
    if t == "Pooling":
        return None if layer.p.pooling_param.pool in ("MAX", "AVE") and len(layer.top_names) == 1 else \
            "only MAX and AVE pooling with one top"
    if t == "Softmax":
        return None
    if t == "InnerProduct":
        return None if layer.R == 1 and not layer.transpose else "only axis 1 without transpose"
    if t == "Dropout":
        return None if layer.phase != "TRAIN" else "Dropout in TRAIN is not on the GPU yet"
    if t == "SoftmaxWithLoss":
        scores = net.blobs[layer.bottom_names[0]]
        if scores.data.ndim != 2 or p.loss_param.ignore_label is not None:
            return "only (N, C) scores without ignore_label"
        return None
    return "this layer type is not on the GPU yet"


class GpuExecutor:
    def __init__(self, net, device_id=0, shared=None):
        """shared: the train net's GpuExecutor, whose device params this (test) net uses."""
        # layers without a device version run on the host (data layers always do)
        self.on_host = [_unsupported(l, net) is not None for l in net.layers]
        self.device = select(device_id)
        self.cuda = cuda = cuda_module()
        from . import kernels
        self.k = kernels
        self._net = weakref.ref(net)     # the net owns its executor: no cycle keeping a dropped net's arrays
        self.stretches = []
        self.shared = shared
        self.blobs = {}                  # blob name -> (device data, device diff)
        for tops in net.top_vecs:
            for t in tops:
                if t.name not in self.blobs:
                    self.blobs[t.name] = (cuda.to_device(t.data), cuda.to_device(t.diff))
        self._pin_inputs()
        self.params = cuda.to_device(net.param_data)
        self.grads = cuda.to_device(net.param_diff)
        self.views = {}                  # id(host param array) -> (device data, device diff) views
        for b, a, z in zip(net.learnable_params, net.param_offsets[:-1], net.param_offsets[1:]):
            own = (self.params[a:z].reshape(b.shape), self.grads[a:z].reshape(b.shape))
            self.views[id(b.data)] = shared.views.get(id(b.data), own) if shared is not None else own
        self.owner = "device"            # who wrote the params last: "host" or "device"
        self.rule, self.rule_state = None, None  # the Solver's update rule; its device buffers
        self.fused = self._fusions()     # layer index -> the in-place ReLU fused into it
        self.scratch = {}                # layer index -> device buffers
        for i, layer in enumerate(net.layers):
            if self.on_host[i]:
                continue
            if layer.type == "Convolution":
                P = layer.OH * layer.OW
                n = self._chunk(layer, net.bottom_vecs[i][0].shape[0])
                self.scratch[i] = (cuda.device_array((layer.CKK, n * P), np.float32),
                                   cuda.device_array((layer.CKK, n * P), np.float32),
                                   cuda.device_array((layer.K, n * P), np.float32))
            elif layer.type == "Pooling" and layer.max:
                self.scratch[i] = cuda.device_array(net.top_vecs[i][0].shape, np.int32)
            elif layer.type == "SoftmaxWithLoss":
                n = net.blobs[layer.bottom_names[0]].shape[0]
                self.scratch[i] = (cuda.device_array(net.blobs[layer.bottom_names[0]].shape, np.float32),
                                   cuda.device_array(n, np.float32))
        self.workspaces = {i: {k: cuda.device_array(shape, dt) for k, (shape, dt) in l.cuda_workspace().items()}
                           for i, l in enumerate(net.layers) if l.forward_cuda is not None}
        self.sumsq_parts = cuda.device_array(kernels.SUMSQ_BLOCKS, np.float32)
        # each layer's passes, looked up once: a device method, the host's, or None (fused)
        fused = set(self.fused.values())
        self.forwards = [None if i in fused else self._host_forward if self.on_host[i] else
                         self._fwd_op if l.forward_cuda is not None else
                         getattr(self, "_fwd_" + l.type, self._fwd_data) for i, l in enumerate(net.layers)]
        self.backwards = [self._host_backward if self.on_host[i] else
                          self._bwd_op if l.backward_cuda is not None else getattr(self, "_bwd_" + l.type, None)
                          for i, l in enumerate(net.layers)]
        self.copies = [0, 0.0]           # host<->device copies so far: count, seconds (time --gpu)
        self.consumed = {b.name for bottoms in net.bottom_vecs for b in bottoms}   # blobs some layer reads
        self.on_host_now = set()         # outputs this forward computed on the host
        self.pending = []                # (layer index, per-sample log-probabilities) of losses not read yet

    @property
    def net(self):
        return self._net()

    def _pin_inputs(self):
        """The data layers' tops in pinned (page-locked) host memory: the one copy per batch
        to the device is a DMA, without a staging copy."""
        for i, layer in enumerate(self.net.layers):
            if layer.is_input or layer.makes_data:
                for t in self.net.top_vecs[i]:
                    pinned = self.cuda.pinned_array(t.data.shape, t.data.dtype)
                    pinned[...] = t.data
                    t.data = pinned

    def _fusions(self):
        """In-place ReLUs right after a device layer that absorbs them (Convolution, InnerProduct:
        absorbs_relu) on its top: the ReLU runs inside that layer's bias kernel, and its own forward
        is skipped."""
        net, fused = self.net, {}
        for i in range(len(net.layers) - 1):
            a, b = net.layers[i], net.layers[i + 1]
            if (a.absorbs_relu and b.relu_slope is not None and not self.on_host[i]
                    and not self.on_host[i + 1] and b.bottom_names == b.top_names == a.top_names[:1]):
                fused[i] = i + 1
        return fused

    @staticmethod
    def _chunk(layer, n):
        """Images per GEMM of this convolution: all of them, unless the columns would pass COLS_LIMIT."""
        return max(1, min(n, COLS_LIMIT // max(1, layer.CKK * layer.OH * layer.OW)))

    def plan(self):
        host = [f"{n} ({l.type})" for n, l, h in zip(self.net.layer_names, self.net.layers, self.on_host) if h]
        fused = [f"{self.net.layer_names[j]} into {self.net.layer_names[i]}" for i, j in self.fused.items()]
        return [f"GPU {self.device}: " + (f"on the host (no device version yet): {', '.join(host)}; " if host else
                                          "every layer on the device; ") +
                (f"fused: {', '.join(fused)}; " if fused else "") +
                "params, gradients and the update stay on the device; one copy of the inputs per batch"]

    # -- where the params are ----------------------------------------------------------------------
    def _copy(self, fn, *args):
        t0 = time.perf_counter()
        out = fn(*args)
        self.copies[0] += 1
        self.copies[1] += time.perf_counter() - t0
        return out

    def push(self):
        """The host's params (and the rule's history) to the device, if the host wrote them last."""
        self._own("device")

    def pull(self):
        """The device's params (and the rule's history) to the host, if the device wrote them
        last; the host owns them afterwards (write them freely: the next forward pushes them)."""
        self._own("host")

    def _own(self, side):
        """Make `side` ("host" or "device") hold the current params and history."""
        if self.shared is not None:
            self.shared._own(side)
        if self.owner != side:
            pairs = [(self.params, self.net.param_data)]
            if self.rule_state is not None:
                pairs += zip(self.rule_state[0], self.rule.history)
            for d, h in pairs:
                self._copy(d.copy_to_device if side == "device" else d.copy_to_host, h)
            self.owner = side

    def pull_grads(self):
        """The device's parameter gradients into the host's param_diff."""
        self._copy(self.grads.copy_to_host, self.net.param_diff)

    def clear_param_diffs(self):
        self.k.fill(self.grads, 0.0)

    def grad_sumsq(self):
        """The sum of squared gradients (gradient clipping), on the device."""
        return self.k.sumsq(self.grads, self.sumsq_parts)

    def update(self, rule, rate, it, scale):
        """One step of the Solver's update rule (netcli/update_rules/) on the device, by the
        rule's own CUDA kernel."""
        self.push()
        if self.rule is not rule:
            self.rule = rule
            cuda = self.cuda
            self.rule_state = ([cuda.to_device(h) for h in rule.history], cuda.to_device(rule.lr),
                               cuda.to_device(rule.decay))
        history, lr, decay = self.rule_state
        self.k.elementwise(rule.compiled("cuda"), self.params.size,
                           *rule.arguments(self.params, self.grads, history, lr, decay, rate, it, scale))

    # -- passes --------------------------------------------------------------------------------
    def forward(self, stretches=None):
        self.push()
        for i in range(len(self.net.layers)):
            self._forward(i)
        self._outputs_to_host()

    def forward_backward(self, cleared=False):
        """Forward, then backward; the loss is read after the backward's kernels are queued, so
        the host's launches overlap the device's work instead of waiting for the forward."""
        self.push()
        for i in range(len(self.net.layers)):
            self._forward(i)
        self.backward(cleared=cleared)
        self._outputs_to_host()

    def _outputs_to_host(self):
        """The losses, then the net's outputs to the host (but those a layer computed there)."""
        self._read_losses()
        for name in self.net.outputs:
            if name not in self.on_host_now:
                self._copy(self.blobs[name][0].copy_to_host, self.net.blobs[name].data)
        self.on_host_now.clear()
        self.net.sum_loss()

    def _read_losses(self):
        """Each SoftmaxWithLoss's per-sample log-probabilities, summed on the host in row order."""
        for i, logp in self.pending:
            rows = self._copy(logp.copy_to_host).astype(np.float64)
            top = self.net.top_vecs[i][0]
            top.data[...] = -rows.sum() / len(rows)
            self.on_host_now.add(top.name)
        self.pending.clear()

    def forward_from(self, start):
        """Layers start, start+1, ... forward; the blobs that earlier layers make are taken from
        the host (where net.forward(start=..., blob=...) set them)."""
        net = self.net
        self.push()
        for tops in net.top_vecs[:start]:
            for t in tops:
                self._copy(self.blobs[t.name][0].copy_to_device, t.data)
        for i in range(start, len(net.layers)):
            self._forward(i)
        self._outputs_to_host()

    def backward(self, upto=None, cleared=False):
        """Gradients into the device's buffers (added to what they hold: clear_param_diffs
        first, once per update; pull_grads() copies them to the host)."""
        net = self.net
        for i in reversed(range(len(net.layers))):
            if net.need_backward[i]:
                self._backward(i)

    def _forward(self, i):
        run, layer = self.forwards[i], self.net.layers[i]
        if run is None:                       # a ReLU that ran inside the layer before it
            return
        if not self.on_host[i]:
            self.on_host_now.difference_update(layer.top_names)     # (in place on a host layer's top)
        run(i, layer)

    def _backward(self, i):
        self.backwards[i](i, self.net.layers[i], self.net.propagate_down[i])

    def synchronize(self):
        """Wait for the device's queued work (timing)."""
        self.cuda.synchronize()

    def time_layer(self, i, forward):
        """Run layer i alone, as training runs it; returns (ms, launches, copies): ms between
        CUDA events around it (under the simulator, which records no time on its events, the
        wall clock of the simulation)."""
        from .device import simulated
        k0, c0 = self.k.launches, self.copies[0]
        self.push()
        events = None if simulated() else (self.cuda.event(), self.cuda.event())
        t0 = time.perf_counter()
        if events:
            events[0].record()
        (self._forward if forward else self._backward)(i)
        self._read_losses()
        if events:
            events[1].record()
            events[1].synchronize()
            ms = self.cuda.event_elapsed_time(*events)
        else:
            ms = (time.perf_counter() - t0) * 1000
        return ms, self.k.launches - k0, self.copies[0] - c0

    # -- layers without a device version: the CPU layer on host copies ---------------------------
    def _host_forward(self, i, layer):
        net = self.net
        for b in net.bottom_vecs[i]:
            self._copy(self.blobs[b.name][0].copy_to_host, b.data)
        for blob in layer.blobs:                     # its params (a BatchNorm's statistics too)
            self._copy(self.views[id(blob.data)][0].copy_to_host, blob.data)
        layer.forward(net.bottom_vecs[i], net.top_vecs[i])
        for t in net.top_vecs[i]:
            self._copy(self.blobs[t.name][0].copy_to_device, t.data)
            self.on_host_now.add(t.name)
        for blob in layer.blobs:
            self._copy(self.views[id(blob.data)][0].copy_to_device, blob.data)

    def _host_backward(self, i, layer, pd):
        net = self.net
        for t in net.top_vecs[i]:
            self._copy(self.blobs[t.name][1].copy_to_host, t.diff)
        for b in net.bottom_vecs[i]:                 # an in-place layer may have changed them since
            self._copy(self.blobs[b.name][0].copy_to_host, b.data)
        for blob in layer.blobs:                     # += onto the device's sums so far
            self._copy(self.views[id(blob.data)][1].copy_to_host, blob.diff)
        layer.backward(net.top_vecs[i], pd, net.bottom_vecs[i])
        for b, down in zip(net.bottom_vecs[i], pd):
            if down:
                self._copy(self.blobs[b.name][1].copy_to_device, b.diff)
        for blob in layer.blobs:
            self._copy(self.views[id(blob.data)][1].copy_to_device, blob.diff)

    def bind_grads(self):
        pass

    # -- layers: forward -----------------------------------------------------------------------
    def _io(self, i):
        net = self.net
        return ([self.blobs[b.name] for b in net.bottom_vecs[i]], [self.blobs[t.name] for t in net.top_vecs[i]])

    def _fwd_data(self, i, layer):
        """Data layers (and Input) fill their host tops; the device gets a copy of each."""
        net = self.net
        if not layer.is_input:
            layer.forward(net.bottom_vecs[i], net.top_vecs[i])
        for t in net.top_vecs[i]:
            self._copy(self.blobs[t.name][0].copy_to_device, t.data)

    def _fwd_op(self, i, layer):
        """A layer's own device op (its forward_cuda)."""
        bottoms, tops = self._io(i)
        layer.forward_cuda(bottoms, tops, self.workspaces[i], self)

    def _bwd_op(self, i, layer, pd):
        bottoms, tops = self._io(i)
        layer.backward_cuda(tops, pd, bottoms, self.workspaces[i], self)

    def launch(self, kernel, n, *args):
        """Launch a layer's element-wise CUDA kernel over n threads (counted in launches)."""
        self.k._launch(kernel, self.k._blocks(n), self.k.THREADS, *args)

    def _param(self, layer, j):
        """The device (data, diff) of the layer's j-th param."""
        return self.views[id(layer.blobs[j].data)]

    def _geometry(self, layer):
        return (layer.KH, layer.KW, layer.SH, layer.SW, layer.PH, layer.PW, layer.OH, layer.OW)

    def _bias_relu(self, i, layer):
        """The bias (None without one), and (relu, slope) of a fused ReLU."""
        bias = self._param(layer, 1)[0] if len(layer.blobs) > 1 else None
        j = self.fused.get(i)
        return bias, j is not None, (self.net.layers[j].relu_slope if j is not None else 0.0)

    def _fwd_Convolution(self, i, layer):
        """Per chunk of images: im2col, one GEMM (K, CKK) x (CKK, n*P), then the result into NCHW
        with the bias (and a fused ReLU): three launches."""
        [(x, _)], [(y, _)] = self._io(i)
        w, _ = self._param(layer, 0)
        cols, _, z = self.scratch[i]
        w2 = w.reshape(layer.K, layer.CKK)
        bias, relu, slope = self._bias_relu(i, layer)
        N, P = x.shape[0], layer.OH * layer.OW
        n = cols.shape[1] // P
        for a in range(0, N, n):
            b = min(N, a + n)
            c, zz = cols[:, :(b - a) * P], z[:, :(b - a) * P]
            self.k.im2col(x[a:b], c, *self._geometry(layer))
            self.k.gemm(w2, c, zz)
            self.k.cols_to_nchw(zz, y[a:b], bias, relu, slope)

    def _fwd_Pooling(self, i, layer):
        [(x, _)], [(y, _)] = self._io(i)
        geo = (layer.KH, layer.KW, layer.SH, layer.SW, layer.PH, layer.PW)
        if layer.max:
            self.k.maxpool_forward(x, y, self.scratch[i], *geo)
        else:
            self.k.avepool_forward(x, y, *geo)

    def _fwd_Softmax(self, i, layer):
        [(x, _)], [(y, _)] = self._io(i)
        self.k.softmax_forward(x, y, layer.axis)

    def _fwd_InnerProduct(self, i, layer):
        [(x, _)], [(y, _)] = self._io(i)
        self.k.gemm(x.reshape(layer.M, layer.K), self._param(layer, 0)[0], y, tb=True)
        bias, relu, slope = self._bias_relu(i, layer)
        if bias is not None or relu:
            self.k.bias_act(y, bias, relu, slope)

    def _fwd_Dropout(self, i, layer):           # TEST: the identity
        [(x, _)], [(y, _)] = self._io(i)
        if x is not y:
            y.copy_to_device(x)

    def _fwd_SoftmaxWithLoss(self, i, layer):
        net = self.net
        [(s, _), (lab, _)], _ = self._io(i)
        prob, logp = self.scratch[i]
        self.k.softmax_loss_forward(s, lab, prob, logp)
        self.pending.append((i, logp))           # read when the pass ends (_read_losses)
        top = net.top_vecs[i][0]
        if top.name in self.consumed:            # a layer after it reads the loss on the device: now
            self._read_losses()
            self._copy(self.blobs[top.name][0].copy_to_device, top.data)

    # -- layers: backward ----------------------------------------------------------------------
    def _bwd_Convolution(self, i, layer, pd):
        """Per chunk of images: the output gradient into the GEMM's layout, its row sums (the
        bias), dW += dY cols^T (im2col again when there were several chunks), dcols = W^T dY and
        col2im."""
        [(x, dx)], [(_, dy)] = self._io(i)
        w, dw = self._param(layer, 0)
        cols, dcols, z = self.scratch[i]
        K, P = layer.K, layer.OH * layer.OW
        geo = self._geometry(layer)
        learn, N, n = layer.learns(0), x.shape[0], cols.shape[1] // P
        for a in range(0, N, n):
            b = min(N, a + n)
            c, dc, zz = cols[:, :(b - a) * P], dcols[:, :(b - a) * P], z[:, :(b - a) * P]
            self.k.nchw_to_cols(dy[a:b], zz)
            if layer.learns(1):
                self.k.sum_rows(zz, self._param(layer, 1)[1])
            if learn:
                if n < N:                # one chunk: the forward's columns are still there
                    self.k.im2col(x[a:b], c, *geo)
                self.k.gemm(zz, c, dw.reshape(K, layer.CKK), tb=True, beta=1.0)
            if pd[0]:
                self.k.gemm(w.reshape(K, layer.CKK), zz, dc, ta=True)
                self.k.col2im(dc, dx[a:b], *geo)

    def _bwd_Pooling(self, i, layer, pd):
        if pd[0]:
            [(_, dx)], [(_, dy)] = self._io(i)
            geo = (layer.KH, layer.KW, layer.SH, layer.SW, layer.PH, layer.PW)
            if layer.max:
                self.k.maxpool_backward(dy, self.scratch[i], dx, *geo)
            else:
                self.k.avepool_backward(dy, dx, *geo)

    def _bwd_Softmax(self, i, layer, pd):
        if pd[0]:
            [(_, dx)], [(y, dy)] = self._io(i)
            self.k.softmax_backward(y, dy, dx, layer.axis)

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
