"""Running a Net's layers on a CUDA device: the executor a Net uses instead of the CPU one
(netcli/exec/cpu.py), with the same interface (netcli/exec/interface.py).

The net is set up on the host as always (shapes, params, fillers, data layers); every blob then
gets device memory for its data and diff, and the params, their gradients and the update rule's
history one flat device buffer each. While training, the params live on the device: one
host-to-device copy per batch (the data layers' tops, from pinned host memory), forward,
backward and the update rule run there, and the loss comes back (a float per sample) for the
solver's display and divergence check, read once the backward's kernels are queued.
`push()` and `pull()` move the params (and the rule's history) between host and device; whichever side wrote last owns them, so both are no-ops when
nothing changed. The Solver pulls before a snapshot, a test's hooks and at the end of step(),
and every host write (restore, finetune, your own) is pushed at the next forward.

On the device: every layer with its own device op (forward_cuda/backward_cuda, beside its CPU
code: netcli/layers/base.py says the contract) that does not refuse its configuration
(cuda_refusal); this executor knows no layer type. A layer absorbing a following in-place ReLU
(absorbs_relu: Convolution, InnerProduct) runs it in its bias kernel. Every other layer runs on
the host, as on the CPU path: its bottoms (and params) are copied out, the CPU layer runs, its tops
(and in backward its bottoms' and params' gradients) are copied back. The results are the
CPU's, to float rounding; plan() names the layers on the host. Test nets share the train net's
device params (`shared`).
"""
from __future__ import annotations

import time
import weakref

import numpy as np

from ..errors import NetcliError
from ..gpu.device import cuda_module, select

class CudaExecutor:
    def __init__(self, net, device_id=0, shared=None):
        """shared: the train net's CudaExecutor, whose device params this (test) net uses."""
        # layers without a device op (or whose op refuses their configuration) run on the host;
        # data layers fill host tops, copied to the device
        self.on_host = [not (l.is_input or l.makes_data) and
                        (l.forward_cuda is None or l.cuda_refusal(b) is not None)
                        for l, b in zip(net.layers, net.bottom_vecs)]
        self.device = select(device_id)
        self.cuda = cuda = cuda_module()
        from ..ops import cuda as kernels
        self.k = kernels
        self._net = weakref.ref(net)     # the net owns its executor: no cycle keeping a dropped net's arrays
        self.shared = shared
        self.blobs = {}                  # blob name -> (device data, device diff)
        for tops in net.top_vecs:
            for t in tops:
                if t.name not in self.blobs:
                    self.blobs[t.name] = (cuda.to_device(t.data), cuda.to_device(t.diff))
        self._pin_inputs()
        self.params = cuda.device_array_like(net.param_data)     # filled by the first push()
        self.grads = cuda.to_device(net.param_diff)
        self.views = {}                  # id(host param array) -> (device data, device diff) views
        for b, a, z in zip(net.learnable_params, net.param_offsets[:-1], net.param_offsets[1:]):
            own = (self.params[a:z].reshape(b.shape), self.grads[a:z].reshape(b.shape))
            self.views[id(b.data)] = shared.views.get(id(b.data), own) if shared is not None else own
        self.owner = "host"              # who wrote the params last: "host" or "device"
        self.rule, self.rule_state = None, None  # the Solver's update rule; its device buffers
        self.fused = self._fusions()     # layer index -> the in-place ReLU fused into it
        self.slopes = {id(net.layers[i]): net.layers[j].relu_slope for i, j in self.fused.items()}
        self.workspaces = {i: {k: cuda.device_array(shape, dt) for k, (shape, dt) in
                               l.cuda_workspace(net.bottom_vecs[i], net.top_vecs[i]).items()}
                           for i, l in enumerate(net.layers) if not self.on_host[i] and l.forward_cuda is not None}
        self.sumsq_parts = cuda.device_array(kernels.SUMSQ_BLOCKS, np.float32)
        # each layer's passes, looked up once: a device method, the host's, or None (fused)
        fused = set(self.fused.values())
        # (the class's functions, not bound methods: a list of bound methods would hold the executor
        # in a cycle, and a dropped net's device arrays would wait for the cycle collector)
        cls = type(self)
        self.forwards = [None if i in fused else cls._host_forward if self.on_host[i] else
                         cls._fwd_op if l.forward_cuda is not None else cls._fwd_data
                         for i, l in enumerate(net.layers)]
        self.backwards = [cls._host_backward if self.on_host[i] else
                          cls._bwd_op if l.backward_cuda is not None else None for i, l in enumerate(net.layers)]
        self.copies = [0, 0.0]           # host<->device copies so far: count, seconds (time --gpu)
        self.consumed = {b.name for bottoms in net.bottom_vecs for b in bottoms}   # blobs some layer reads
        self.on_host_now = set()         # outputs this forward computed on the host
        self.pending = []                # (blob name, device rows, reduce) of host tops not read yet

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

    def reshare(self, count):
        raise NetcliError("--shares cuts the batch for processes on the CPU; it does not apply on a GPU")

    def distribute(self, group):
        raise NetcliError("training over MPI processes runs on the CPU; a GPU run is one process "
                          "(drop mpiexec, or --gpu/solver_mode GPU)")

    def steps(self):
        return 1

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

    def blobs_to_host(self, names, diff=False):
        """The device's data (or diffs) of these blobs into the host's; after a forward the net's
        outputs are there already (some computed on the host: not overwritten)."""
        for name in names:
            if diff:
                self._copy(self.blobs[name][1].copy_to_host, self.net.blobs[name].diff)
            elif name not in self.net.outputs:
                self._copy(self.blobs[name][0].copy_to_host, self.net.blobs[name].data)

    def diffs_to_device(self, names):
        """The host's diffs of these blobs to the device (backward reads them there)."""
        for name in names:
            self._copy(self.blobs[name][1].copy_to_device, self.net.blobs[name].diff)

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
            self.rule_state = ([cuda.to_device(h) for h in rule.history], cuda.to_device(np.asarray(rule.lr)),
                               cuda.to_device(np.asarray(rule.decay)))
        history, lr, decay = self.rule_state
        self.k.elementwise(rule.compiled("cuda"), self.params.size,
                           *rule.arguments(self.params, self.grads, history, lr, decay, rate, it, scale))

    # -- passes --------------------------------------------------------------------------------
    def forward(self):
        self.push()
        for i in range(len(self.net.layers)):
            self._forward(i)
        self._outputs_to_host()

    def forward_backward(self, cleared=False, step=None):
        """Forward, then backward; the loss is read after the backward's kernels are queued, so
        the host's launches overlap the device's work instead of waiting for the forward. (The
        update, `step`, is left to the Solver: the device's kernel runs it.)"""
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
        """The tops layers asked to be computed on the host from device rows (read_later), in order."""
        for name, rows, reduce in self.pending:
            self.net.blobs[name].data[...] = reduce(self._copy(rows.copy_to_host))
            self.on_host_now.add(name)
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
        run(self, i, layer)

    def _backward(self, i):
        self.backwards[i](self, i, self.net.layers[i], self.net.propagate_down[i])

    def synchronize(self):
        """Wait for the device's queued work (timing)."""
        self.cuda.synchronize()

    def counters(self):
        """(kernel launches, host<->device copies, seconds in copies) so far."""
        return self.k.launches, self.copies[0], self.copies[1]

    def time_layer(self, i, forward):
        """Run layer i alone, as training runs it; returns (ms, launches, copies): ms between
        CUDA events around it (under the simulator, which records no time on its events, the
        wall clock of the simulation)."""
        from ..gpu.device import simulated
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

    # -- what a layer's device op asks of the executor (netcli/layers/base.py) -----------------------
    def launch(self, kernel, n, *args):
        """Launch a layer's element-wise CUDA kernel over n threads (counted in launches)."""
        self.k._launch(kernel, self.k._blocks(n), self.k.THREADS, *args)

    def param(self, layer, j):
        """The device (data, diff) of the layer's j-th param."""
        return self.views[id(layer.blobs[j].data)]

    def fused_relu(self, layer):
        """The negative slope of the in-place ReLU fused into the layer's forward, or None."""
        return self.slopes.get(id(layer))

    def host(self, name):
        """The host blob `name` (a loss top's diff holds its weight)."""
        return self.net.blobs[name]

    def read_later(self, name, rows, reduce, now=False):
        """Blob `name`'s data is reduce(rows copied to the host), read when the pass ends (so the
        backward's kernels are queued first), or at once if a later layer reads it on the device
        or `now` (the layer's backward needs what reduce computes)."""
        self.pending.append((name, rows, reduce))
        if now or name in self.consumed:
            self._read_losses()
        if name in self.consumed:
            self._copy(self.blobs[name][0].copy_to_device, self.net.blobs[name].data)
