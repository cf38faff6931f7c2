"""caffe.Net: pycaffe's Net (Caffe 1.0's python/caffe/pycaffe.py and _caffe.cpp) over netcli.Net.

    net = caffe.Net("deploy.prototxt", "weights.caffemodel", caffe.TEST)
    net = caffe.Net("deploy.prototxt", caffe.TEST, weights="weights.caffemodel")

The blobs and params are netcli's own (Blob: data, diff, shape, count, num/channels/height/width,
reshape); forward/backward run netcli's executor. What pycaffe does that netcli.Net does not is
here: integer phases, forward/backward between two layers returning named blobs, reshaping on
forward after an input blob was reshaped, batching (forward_all), Caffe's file formats for
copy_from/save (a weights file with extra layers: "Ignoring source layer", as Caffe).

Python layers run (allow_python=True): a script that imports netcli.caffe is the user's own
code, as a pycaffe script was; the modules a net file names are still looked up only beside the
net file and on sys.path (netcli/layers/python.py).
"""
from __future__ import annotations

import itertools
import os
from collections import OrderedDict

import numpy as np

from .. import log
from ..errors import NetcliError
from ..net import Net as _NetcliNet

PHASES = {0: "TRAIN", 1: "TEST"}
H5PY = "pip install h5py"


def _phase(phase):
    if isinstance(phase, (bool, np.bool_)) or phase not in PHASES:
        raise NetcliError(f"phase must be caffe.TRAIN (0) or caffe.TEST (1), got {phase!r}")
    return PHASES[int(phase)]


class Net:
    """Net(model, phase, level=0, stages=None, weights=None) or Net(model, weights, phase)."""

    def __init__(self, model, *args, phase=None, weights=None, level=0, stages=None):
        from . import device, random_seed
        named = bool(args) and isinstance(args[0], (str, os.PathLike))
        if len(args) > 3 or (named and len(args) != 2):
            raise TypeError("caffe.Net(model, phase[, level, stages], weights=...) or caffe.Net(model, weights, phase)")
        if named:
            weights, phase = args
        elif args:
            phase, level, stages = (tuple(args) + (phase, level, stages)[len(args):])[:3]
        if phase is None:
            raise TypeError("caffe.Net needs a phase: caffe.TRAIN or caffe.TEST")
        net = _NetcliNet(os.fspath(model), phase=_phase(phase), level=int(level), stages=tuple(stages or ()),
                         allow_python=True, device=device(), seed=random_seed())
        self._attach(net)
        if weights:
            self.copy_from(weights)

    @classmethod
    def wrap(cls, net):
        """The pycaffe view of a netcli.Net built elsewhere (a solver's nets)."""
        self = cls.__new__(cls)
        self._attach(net)
        return self

    def _attach(self, net):
        self.native = net
        self._shapes = {n: net.blobs[n].shape for n in net.inputs}
        self._stale = set()           # on a device: what the last pass left there ("data", "diff")

    def passed(self, *what):
        """A pass ran (here or in a solver): on a device, the host's blobs are behind until read."""
        if self.native.device != "cpu":
            self._stale.update(what)

    def _sync(self):
        """The blobs as the device's last pass left them, into the host's arrays: once, at the
        first read after a pass (so the host writes that follow it are not overwritten)."""
        if self._stale:
            names = list(self.native.blobs)
            for what in sorted(self._stale):
                self.native.executor.blobs_to_host(names, diff=what == "diff")
            self._stale = set()

    # -- what the net holds -----------------------------------------------------------------------
    @property
    def blobs(self):
        self._sync()
        return OrderedDict(self.native.blobs)

    @property
    def params(self):
        """{layer: [its param blobs]} for the layers that have params; .data and .diff are views
        into the net's params: writing into them (`params['fc6'][0].data[...] = w`) sets them."""
        net = self.native
        net.executor.pull()
        net.executor.pull_grads()
        return OrderedDict((n, list(net.params[n])) for n in net.layer_names if net.params.get(n))

    @property
    def layers(self):
        return list(self.native.layers)

    @property
    def _layer_names(self):
        return list(self.native.layer_names)

    @property
    def layer_dict(self):
        return OrderedDict(zip(self.native.layer_names, self.native.layers))

    @property
    def _blob_names(self):
        return list(self.native.blobs)

    @property
    def top_names(self):
        return OrderedDict((c.name, list(c.top)) for c in self.native.configs)

    @property
    def bottom_names(self):
        return OrderedDict((c.name, list(c.bottom)) for c in self.native.configs)

    @property
    def inputs(self):
        return list(self.native.inputs)

    @property
    def outputs(self):
        return list(self.native.outputs)

    @property
    def blob_loss_weights(self):
        """{blob: its weight in the loss} (0 for a blob that is no loss), as Caffe's."""
        weights = OrderedDict((n, 0.0) for n in self.native.blobs)
        for t, w in self.native.loss_tops:
            weights[t.name] = float(w)
        return weights

    # -- passes ---------------------------------------------------------------------------------------
    def _index(self, name, default):
        if name is None:
            return default
        if name not in self.native.layer_dict:
            raise NetcliError(f"net '{self.native.name}' has no layer '{name}'")
        return self.native.layer_names.index(name)

    def _reshape_if_needed(self):
        """pycaffe reshapes every layer on forward: an input blob reshaped by the caller takes."""
        net = self.native
        if any(net.blobs[n].shape != s for n, s in self._shapes.items()):
            net.reshape()
            self._shapes = {n: net.blobs[n].shape for n in net.inputs}

    def _one_by_one(self, what):
        if self.native.device != "cpu":
            raise NetcliError(f"net.{what} between two layers runs on the CPU only (caffe.set_mode_cpu())")

    def forward(self, blobs=None, start=None, end=None, **kwargs):
        """Forward from layer `start` to layer `end` (both included; default: all); keyword
        arguments set the input blobs first (all of them, each batch-sized). Returns {name: data}
        for the net's outputs (or the blob named as `end`) and the blobs listed in `blobs`."""
        net = self.native
        first, last = self._index(start, 0), self._index(end, len(net.layers) - 1)
        outputs = set(([end] if end is not None else self.outputs) + list(blobs or []))
        if kwargs:
            if set(kwargs) != set(net.inputs):
                raise NetcliError(f"Input blob arguments do not match net inputs: got {sorted(kwargs)}, "
                                  f"the net's inputs are {net.inputs}")
            for name, value in kwargs.items():
                if np.shape(value)[0] != net.blobs[name].shape[0]:
                    raise NetcliError(f"Input is not batch sized: '{name}' has {np.shape(value)[0]} items, "
                                      f"the net takes {net.blobs[name].shape[0]}")
        self._reshape_if_needed()
        if first > 0:
            self._sync()              # the blobs before `start` are read from the host
        for name, value in kwargs.items():
            net.blobs[name].data[...] = value
        if first == 0 and last == len(net.layers) - 1:
            net.forward()
        elif last == len(net.layers) - 1:
            net.forward(start=net.layer_names[first])
        else:
            self._one_by_one("forward(end=...)")
            for i in range(first, last + 1):
                net.layers[i].forward(net.bottom_vecs[i], net.top_vecs[i])
        self.passed("data")
        missing = [o for o in outputs if o not in net.blobs]
        if missing:
            raise NetcliError(f"net '{net.name}' has no blob {missing[0]!r}")
        if blobs:
            self._sync()
        return {o: net.blobs[o].data for o in outputs}

    def backward(self, diffs=None, start=None, end=None, **kwargs):
        """Backward from layer `start` down to layer `end` (default: all); keyword arguments set
        the output blobs' diffs first. Param diffs add to what they hold (as Caffe's). Returns
        {name: diff} for the net's inputs (or the blob named as `end`) and the blobs in `diffs`."""
        net = self.native
        self._sync()                  # before the diffs given here are written
        first, last = self._index(start, len(net.layers) - 1), self._index(end, 0)
        outputs = set(([end] if end is not None else self.inputs) + list(diffs or []))
        if kwargs:
            if set(kwargs) != set(net.outputs):
                raise NetcliError(f"Top diff arguments do not match net outputs: got {sorted(kwargs)}, "
                                  f"the net's outputs are {net.outputs}")
            for name, value in kwargs.items():
                if np.shape(value)[0] != net.blobs[name].shape[0]:
                    raise NetcliError(f"Diff is not batch sized: '{name}'")
                net.blobs[name].diff[...] = value
        if first == len(net.layers) - 1 and last == 0:
            net.executor.diffs_to_device(net.outputs)       # the output diffs set on the host
            net.backward()
        else:
            self._one_by_one("backward(start=/end=...)")
            for i in range(first, last - 1, -1):
                if net.need_backward[i]:
                    net.layers[i].backward(net.top_vecs[i], net.propagate_down[i], net.bottom_vecs[i])
        net.executor.pull_grads()
        self.passed("diff")
        self._sync()
        missing = [o for o in outputs if o not in net.blobs]
        if missing:
            raise NetcliError(f"net '{net.name}' has no blob {missing[0]!r}")
        return {o: net.blobs[o].diff for o in outputs}

    def _batch(self, arrays):
        """pycaffe's batching: batch-sized pieces of `arrays`, the last one padded with zeros."""
        if not arrays:
            return
        num = len(next(iter(arrays.values())))
        size = next(iter(self.native.blobs.values())).shape[0]
        for i in range(0, num - num % size, size):
            yield {k: v[i:i + size] for k, v in arrays.items()}
        if num % size:
            rest = num % size
            yield {k: np.concatenate([v[-rest:], np.zeros((size - rest,) + v.shape[1:], v.dtype)])
                   for k, v in arrays.items()}

    @staticmethod
    def _packed(collected, num):
        """The rows collected per blob as arrays, the padding of the last batch dropped."""
        return {k: np.asarray(v)[:num] if num is not None else np.asarray(v) for k, v in collected.items()}

    def forward_all(self, blobs=None, **kwargs):
        """forward() over inputs of any length, a batch at a time; {name: all its rows}."""
        outs = {o: [] for o in set(self.outputs + list(blobs or []))}
        arrays = {k: np.asarray(v) for k, v in kwargs.items()}
        for batch in self._batch(arrays):
            for name, value in self.forward(blobs=blobs, **batch).items():
                outs[name].extend(value.copy())
        return self._packed(outs, len(next(iter(arrays.values()))) if arrays else None)

    def forward_backward_all(self, blobs=None, diffs=None, **kwargs):
        """forward() and backward() a batch at a time: keyword arguments are inputs (by the net's
        input names) and output diffs (by its output names). Returns (outputs, diffs)."""
        outs = {o: [] for o in set(self.outputs + list(blobs or []))}
        grads = {d: [] for d in set(self.inputs + list(diffs or []))}
        ins = {k: np.asarray(kwargs[k]) for k in self.inputs if k in kwargs}
        tops = {k: np.asarray(kwargs[k]) for k in self.outputs if k in kwargs}
        for fb, bb in itertools.zip_longest(self._batch(ins), self._batch(tops), fillvalue={}):
            for name, value in self.forward(blobs=blobs, **fb).items():
                outs[name].extend(value.copy())
            for name, value in self.backward(diffs=diffs, **bb).items():
                grads[name].extend(value.copy())
        num = len(next(iter(kwargs.values()))) if kwargs else None
        return self._packed(outs, num), self._packed(grads, num)

    def clear_param_diffs(self):
        self.native.clear_param_diffs()

    def set_input_arrays(self, data, labels):
        """Feed the MemoryData layer (the net's first layer) these samples and labels."""
        layer = self.native.layers[0] if self.native.layers else None
        if layer is None or layer.type != "MemoryData":
            raise NetcliError("set_input_arrays needs a net whose first layer is a MemoryData layer")
        labels = np.asarray(labels)
        if labels.ndim == 1:
            labels = labels[:, None, None, None]
        layer.set_input_arrays(np.ascontiguousarray(data, np.float32), labels)

    def reshape(self):
        self.native.reshape()
        self._shapes = {n: self.native.blobs[n].shape for n in self.native.inputs}

    # -- weights --------------------------------------------------------------------------------------
    def copy_from(self, path):
        """Caffe's CopyTrainedLayersFrom: params by layer name from a .caffemodel (or netcli's
        .weights.npz); the file's layers the net lacks are ignored, with one line each."""
        net = self.native
        net.executor.pull()
        _, unused = net.load(os.fspath(path), strict=False)
        for layer in dict.fromkeys(k.rsplit("/", 1)[0] for k in unused):
            log.info(f"Ignoring source layer {layer}")
        net.executor.push()

    def share_with(self, other):
        """Use `other`'s params (by layer name; Caffe's ShareTrainedLayersWith)."""
        self.native.share_weights(other.native if isinstance(other, Net) else other)

    def save(self, path):
        """The params as a .caffemodel (Caffe's binary NetParameter, whatever the name says)."""
        from ..caffe.caffemodel import caffemodel_bytes
        from ..io.files import write_atomic
        self.native.executor.pull()
        write_atomic(os.fspath(path), caffemodel_bytes(self.native), "weights file")

    def save_hdf5(self, path):
        """Caffe's ToHDF5: groups data/<layer>/<i> (and diff/<layer>/<i>)."""
        h5py = _h5py()
        from ..io.files import write_atomic
        params = self.params

        def write(f):
            with h5py.File(f, "w") as h5:
                for group, attr in (("data", "data"), ("diff", "diff")):
                    g = h5.create_group(group)
                    for name, blobs in params.items():
                        lg = g.create_group(name)
                        for i, b in enumerate(blobs):
                            lg.create_dataset(str(i), data=getattr(b, attr))
        write_atomic(os.fspath(path), write, "weights file")

    def load_hdf5(self, path):
        """Caffe's CopyTrainedLayersFromHDF5: data/<layer>/<i> into the params of the same name."""
        h5py = _h5py()
        params = self.params
        with h5py.File(os.fspath(path), "r") as h5:
            data = h5["data"]
            for name in data:
                if name not in params:
                    log.info(f"Ignoring source layer {name}")
                    continue
                for i, b in enumerate(params[name]):
                    a = data[name][str(i)]
                    if tuple(a.shape) != b.shape:
                        raise NetcliError(f"{path}: param {i} of layer '{name}' has shape {tuple(a.shape)}, "
                                          f"the net's {b.shape}")
                    b.data[...] = a[()]
        self.native.executor.push()

    def __repr__(self):
        return f"caffe.Net({self.native.name!r}, phase={self.native.phase}, layers={len(self.native.layers)})"


def _h5py():
    try:
        import h5py
    except ImportError:
        raise NetcliError(f"save_hdf5/load_hdf5 need h5py, which netcli does not depend on: {H5PY}") from None
    return h5py
