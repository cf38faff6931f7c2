"""Net: layers in order, a table of named blobs, and the learnable params in one flat buffer.

Build steps (all checks happen before any compute; every mistake is reported at once, each
naming file, line, layer and field): compile the file into a NetSpec (netcli/config/compile.py:
parse, phase filter, graph checks, Split insertion) -> set up layers in order (shapes) -> check
class labels against the data -> allocate and fill params -> decide which layers need backward
(netcli/net_plan.py) -> plan the executor (netcli/exec/).
"""
from __future__ import annotations

import gc
import os
from contextlib import contextmanager

import numpy as np

from .blob import Blob, ShapeError, aligned_zeros, describe_budget, memory_budget
from .errors import NetcliError
from .config.compile import field_loc, compile_net
from .config.schema import Problems
from .fillers import check_filler_shape
from .exec import make_executor
from .exec.memory_plan import resident_bytes
from .params import build_param_table, share_params
from .layers import REGISTRY, LayerError
from .layers.data import check_label_sources
from .layers.python import python_allowed, refusal
from .net_plan import alias_split_tops, plan_backward, refuse_backward, relu_masks


def refuse_python_layers(spec, allowed):
    """Unless allowed, a net with a Python layer is refused in one line, before any layer is set up."""
    if allowed:
        return
    for c in spec.layers:
        if c.type in REGISTRY and REGISTRY[c.type].runs_code:
            problems = Problems()
            field = "python_param.module"
            problems.add(field_loc(c.p, field, c.loc), refusal(c.p.python_param.module), f"layer '{c.name}' (Python)",
                         field)
            problems.raise_if_any()


@contextmanager
def _gc_paused():
    """The cycle collector off while a net is built: building creates many objects that all live
    on, and the collector's passes over them took two thirds of `netcli check`'s time on a net of
    20,000 layers. Cycles made meanwhile are collected at the next pass after."""
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()


class Net:
    """A net from a YAML file, for one phase.

    >>> net = Net("configs/lenet_deploy.yaml", phase="TEST")
    >>> net.blobs["data"].data[...] = images
    >>> out = net.forward()

    allow_python: run the net's Python layers (their modules' code); None: only if the CLI's
    --allow-python-layers or NETCLI_ALLOW_PYTHON=1 said so (netcli/layers/python.py).
    device: "cpu" or "cuda:N", where the layers run (netcli/exec/); kept through reshape().
    inference: the net only ever runs forward (a Solver's test nets, netcli test, predict): it keeps
    nothing for a backward pass, and backward() is refused (net_plan.py); False: pycaffe's nets.
    """

    def __init__(self, model, phase="TEST", weights=None, seed=None, level=0, stages=(),
                 dtype=np.float32, batch_size=None, allow_python=None, device="cpu", release_rows=False,
                 inference=False):
        """release_rows: whether a training iteration (forward_backward), or an inference net's
        forward, keeps the rows of the blobs inside its last stretch in one arena per thread, reused
        share by share, not whole-batch arrays (netcli/exec/arena.py): True, False or "auto" (the
        Solver's nets, netcli test's and predict's; as True: small nets keep their arrays anyway).
        Those blobs then do not hold the pass's values afterwards (the outputs and loss tops do)."""
        self.inference = inference
        with _gc_paused():
            self._setup(model, phase, weights, seed, level, stages, dtype, batch_size, allow_python, device,
                        release_rows)

    def _setup(self, model, phase, weights, seed, level, stages, dtype, batch_size, allow_python, device,
               release_rows=False):
        self.rss_before = resident_bytes()      # the memory plan's first item (netcli/exec/memory_plan.py)
        self.spec = compile_net(model, phase, level, stages, batch_size)
        self.allow_python = python_allowed(allow_python)
        refuse_python_layers(self.spec, self.allow_python)
        self.phase, self.level, self.stages = self.spec.phase, level, tuple(stages)
        self.name, self.force_backward, self.source = self.spec.name, self.spec.force_backward, self.spec.source
        self.dtype = dtype
        self.rng = np.random.default_rng(seed)
        self.model = model                # what it was built from: a path or a dict
        problems = Problems()
        self._build(self.spec, problems)
        problems.raise_if_any()
        check_label_sources(self, problems)
        self._allocate_params(problems)
        problems.raise_if_any()
        plan_backward(self)
        alias_split_tops(self)
        relu_masks(self)
        self.device, self._shared = device, None
        self.release_rows = release_rows
        self.executor = make_executor(self, device)
        self._input_shapes = {n: self.blobs[n].shape for n in self.inputs}
        self.load_all(weights)

    # -- setup -------------------------------------------------------------------------------
    def _build(self, spec, problems):
        self.layers, self.layer_names, self.configs = [], [], []
        self.bottom_vecs, self.top_vecs = [], []
        self.blobs: dict[str, Blob] = {}
        self.loss_weights = []             # per layer: list per top
        broken: set[str] = set()
        used, budget = 0, memory_budget()
        for c in spec.layers:
            cls = REGISTRY[c.type]
            label = f"layer '{c.name}' ({c.type})"
            if any(b in broken for b in c.bottom):
                broken.update(c.top)       # its inputs are already reported
                continue
            bottoms = [self.blobs[b] for b in c.bottom]
            tops = [self.blobs[t] if t in c.bottom else Blob(t) for t in c.top]
            layer = cls(c.name, c.p, c.p.phase, c.bottom, c.top, self.rng)
            layer.base_dir, layer.dtype = spec.base_dir, self.dtype
            if layer.runs_code:         # the net file's folder, absolute ("net.yaml" has base_dir "")
                layer.allow_python = self.allow_python
                layer.module_dir = os.path.abspath(spec.base_dir) if spec.source != "<dict>" else ""
            try:
                try:
                    layer.setup(bottoms, tops)
                except (ShapeError, MemoryError) as e:
                    raise LayerError(str(e) if isinstance(e, ShapeError) else "not enough memory for its blobs")
                used += sum(2 * t.data.nbytes for t in tops if t.data is not None and t.name not in c.bottom)
                used += sum(2 * 4 * int(np.prod(b.data)) for b in layer.blobs) + layer.buffer_bytes
                if used > budget:
                    problems.add(c.loc, f"the net needs more than {used / 2 ** 30:.3g} GB for its blobs and params "
                                 f"(data and diff) up to this layer; {describe_budget()}",
                                 label)
                    return
                if tops and any(t.data is None for t in tops):   # pragma: no cover - layer bug
                    raise LayerError("setup left a top unallocated")
                if len(c.p.param) > len(layer.blobs):
                    raise LayerError(f"{len(c.p.param)} param entries given, but {c.type} has "
                                     f"{len(layer.blobs)} param blob(s)", "param")
                for b, fp in zip(layer.blobs, layer.fillers):
                    msg = fp is not None and check_filler_shape(fp, b.data)
                    if msg:
                        raise LayerError(msg)
            except LayerError as e:
                loc = field_loc(c.p, e.field, c.loc) if e.field else c.loc
                problems.add(loc, str(e), label, e.field)
                broken.update(c.top)
                continue
            for t in tops:
                self.blobs[t.name] = t
            self.layers.append(layer)
            self.layer_names.append(c.name)
            self.configs.append(c)
            self.bottom_vecs.append(bottoms)
            self.top_vecs.append(tops)
            self.loss_weights.append(c.loss_weight)
        self.layer_dict = dict(zip(self.layer_names, self.layers))

    def _allocate_params(self, problems):
        """The parameter table (netcli/params.py): owner params in one flat data and one flat
        diff buffer, sharing by name, lr/decay multipliers; filled by their fillers."""
        t = build_param_table(self.layers, self.configs, self.layer_names, self.dtype, self.rng, problems)
        self.params, self.learnable_params, self.param_owner_keys = t.by_layer, t.blobs, t.keys
        self.param_data, self.param_diff, self.param_offsets = t.data, t.diff, t.offsets
        self.lr_mults, self.decay_mults = t.lr_mults, t.decay_mults
        for name, layer in zip(self.layer_names, self.layers):
            if layer.blobs:     # Caffe's param_propagate_down: each layer by its own lr_mult
                layer.param_propagate_down = [m != 0 for m in t.lr_by_layer[name]]

    def reshape(self):
        """After an input blob got a new shape (pycaffe: net.blobs['data'].reshape(1, 1, 28, 28)),
        set every layer up again for it; params keep their values (their shapes may not change)."""
        for layer, name, bottoms, tops in zip(self.layers, self.layer_names, self.bottom_vecs, self.top_vecs):
            if layer.is_input:                  # its tops are what the caller reshaped
                continue
            params, fillers = layer.blobs, layer.fillers
            layer.blobs, layer.fillers = [], []
            try:
                layer.setup(bottoms, tops)
            except (LayerError, ShapeError) as e:
                raise NetcliError(f"net.reshape(): layer '{name}' ({layer.type}): {e}") from None
            finally:
                new = [b.data for b in layer.blobs]
                layer.blobs, layer.fillers = params, fillers
            if [tuple(s) for s in new] != [p.shape for p in params]:
                raise NetcliError(f"net.reshape(): layer '{name}' ({layer.type}) would need params of shapes "
                                  f"{[tuple(s) for s in new]}, it has {[p.shape for p in params]}")
        for t, w in self.loss_tops:
            t.diff[...] = w
        alias_split_tops(self)
        relu_masks(self)
        self.executor.pull()                   # the params where the new executor starts: the host
        self.executor = make_executor(self, self.device, self._shared)
        self._input_shapes = {n: self.blobs[n].shape for n in self.inputs}

    def _check_inputs(self):
        for n, shape in self._input_shapes.items():
            if self.blobs[n].shape != shape:
                raise NetcliError(f"input '{n}' now has shape {self.blobs[n].shape}, the net was set up for {shape}: "
                                  "call net.reshape() before forward (as in pycaffe)")

    # -- compute -----------------------------------------------------------------------------
    def forward(self, start=None, **inputs):
        """Run every layer forward; returns {output blob name: data}. Keyword arguments set
        blobs (by name) before running; `start` (a layer name, as pycaffe's) runs from that
        layer on, one layer at a time: to feed a blob that a data layer would overwrite."""
        self._check_inputs()
        for k, v in inputs.items():
            self.blobs[k].data[...] = v
        if start is None:
            self.executor.forward()
        else:
            if start not in self.layer_dict:
                raise NetcliError(f"net '{self.name}' has no layer '{start}'")
            self.executor.forward_from(self.layer_names.index(start))
        self.sum_loss()
        return {name: self.blobs[name].data for name in self.outputs}

    def backward(self):
        """Back-propagate from the loss tops; param diffs accumulate (clear_param_diffs first,
        once per update) and are complete in param_diff when this returns."""
        refuse_backward(self)
        self.executor.backward()

    def forward_backward(self, cleared=False, step=None):
        """forward() then backward(); returns the loss. cleared=True promises the param diffs are
        zero (clear_param_diffs since the last backward): layers may then write their gradients
        instead of adding them. step: an update (update_rules.base.Step) the executor may apply
        as the pass ends; step.applied says whether it did."""
        self._check_inputs()
        refuse_backward(self)
        self.executor.forward_backward(cleared=cleared, step=step)
        return self.loss

    def sum_loss(self):
        self.loss = float(sum(w * float(t.data.sum()) for t, w in self.loss_tops))

    def clear_param_diffs(self):
        self.executor.clear_param_diffs()

    # -- state beyond params: RNG and data positions, for exact resume -------------------------------
    def get_state(self):
        state = {"rng": self.rng.bit_generator.state}
        for name, layer in zip(self.layer_names, self.layers):
            st = layer.get_state()
            if st is not None:
                state[name] = st
        return state

    def set_state(self, state):
        self.rng.bit_generator.state = state["rng"]
        for name, layer in zip(self.layer_names, self.layers):
            if name in state:
                layer.set_state(state[name])

    def data_layers(self):
        return [l for l in self.layers if l.reads_dataset]

    def data_size(self):
        """Samples in this net's (first) Data layer, or None."""
        d = self.data_layers()
        return len(d[0]) if d else None

    def batch_size(self):
        d = self.data_layers()
        return d[0].B if d else None

    def rewind_data(self):
        for layer in self.data_layers():
            layer.rewind()

    # -- weights -----------------------------------------------------------------------------
    def share_weights(self, other: "Net"):
        """Use `other`'s param memory (by layer name), as Caffe's test nets share the train net's."""
        share_params(self.params, other.params, other.phase)
        if not any(np.may_share_memory(b.data, self.param_data) for bs in self.params.values() for b in bs):
            # every param is the other's now: let this net's filled copy go (a test net held the weights twice)
            self.param_data, self.param_diff = (aligned_zeros(a.size, a.dtype) for a in (self.param_data, self.param_diff))
        self._shared = other.executor        # diffs now live in `other`: on its device, if it has one
        self.executor = make_executor(self, self.device, self._shared)

    def save(self, path):
        from .io.weights import save_weights
        save_weights(self, path)

    def load_all(self, weights):
        """Load each file of `weights` (comma-separated paths; None or empty: none), in order."""
        for w in str(weights).split(",") if weights else ():
            self.load(w.strip())

    def load(self, path, strict=True):
        """Load weights by name ('<layer>/<i>'); strict: every param and every array must
        match. Returns (loaded names, names in the file that were not used)."""
        from .io.weights import load_weights
        return load_weights(self, path, strict=strict)

    def __repr__(self):
        return f"Net({self.name!r}, phase={self.phase}, layers={len(self.layers)})"
