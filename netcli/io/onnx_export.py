"""ONNX out: a net's inference graph, with its weights, as an ONNX model (opset 18) for ONNX
Runtime, OpenCV, TensorRT and the rest.

What is exported: the net's TEST phase as it runs for inference. Input layers and the data
tops of data layers become graph inputs with a free batch axis ("N"); labels, and every layer
that needs them (losses, Accuracy), are left out, as are other losses; what is left unread at
the end are the graph outputs (for a train/test net: the scores before the loss). Dropout is
the identity. Each layer class says how it exports (its to_onnx, netcli/layers/onnx_ops.py); a
type without one is refused with a list of what can be exported. Needs the `onnx` package: pip install 'netcli[onnx]'.
"""
from __future__ import annotations


import numpy as np

from ..errors import NetcliError

OPSET = 18


def _onnx():
    try:
        import onnx
        from onnx import helper, numpy_helper
    except ImportError:
        raise NetcliError("ONNX export needs the onnx package: pip install 'netcli[onnx]'") from None
    return onnx, helper, numpy_helper


class Graph:
    """The nodes, weights, inputs and outputs of the ONNX graph being written."""

    def __init__(self, net):
        self.onnx, self.helper, self.numpy_helper = _onnx()
        self.net = net
        self.nodes, self.initializers, self.inputs = [], [], []
        self._names = set()

    def name(self, hint):
        """A fresh name for an intermediate value."""
        base, i = hint, 0
        while hint in self._names or hint in self.net.blobs:
            i += 1
            hint = f"{base}_{i}"
        self._names.add(hint)
        return hint

    def const(self, hint, value, dtype=np.float32):
        n = self.name(hint)
        self.initializers.append(self.numpy_helper.from_array(np.asarray(value, dtype), n))
        return n

    def ints(self, hint, values):
        return self.const(hint, np.asarray(values, np.int64), np.int64)

    def node(self, op, inputs, outputs=None, hint=None, **attrs):
        """Add a node; returns its output name(s) (one fresh name when outputs is None)."""
        if outputs is None:
            outputs = [self.name(hint or op.lower())]
        self.nodes.append(self.helper.make_node(op, list(inputs), list(outputs), name=self.name(f"{op}_{outputs[0]}"),
                                                **attrs))
        return outputs[0] if len(outputs) == 1 else outputs

    def dims(self, blob):
        """The blob's shape with the batch axis free (-1), for Reshape targets."""
        return [-1] + list(self.net.blobs[blob].shape[1:])


def export_onnx(net, path, preprocessing=None, raw_input=False):
    """Write `net` (a netcli.Net, TEST phase) to `path` as ONNX; returns (inputs, outputs).
    preprocessing (a Preprocessing) goes into the metadata; raw_input: the graph does its mean
    and scale on its first input (netcli/io/onnx_preprocess.py)."""
    from .onnx_preprocess import metadata, raw_input_nodes
    g = Graph(net)
    onnx, helper = g.onnx, g.helper
    produced = {}          # blob name -> the ONNX value holding it now
    dropped = set()        # blobs left out (labels and what depends on them)
    last_writer = {t.name: i for i, tv in enumerate(net.top_vecs) for t in tv}
    origin = {}            # a Split's top -> the blob it copies
    for i, (layer, bottoms, tops) in enumerate(zip(net.layers, net.bottom_vecs, net.top_vecs)):
        bnames = [b.name for b in bottoms]
        tnames = [t.name for t in tops]
        # ONNX names each value once: a blob written in place is renamed but for its last writer
        values = [t if last_writer[t] == i else g.name(t) for t in tnames]
        if layer.is_input or layer.makes_data:
            first = tops[0]
            g.inputs.append(helper.make_tensor_value_info(
                first.name, onnx.TensorProto.FLOAT, ["N"] + list(first.shape[1:])))
            produced[first.name] = first.name
            if raw_input and len(g.inputs) == 1:
                produced[first.name] = raw_input_nodes(g, first.name, preprocessing)
            if layer.is_input:
                for t in tops[1:]:
                    g.inputs.append(helper.make_tensor_value_info(t.name, onnx.TensorProto.FLOAT,
                                                                  ["N"] + list(t.shape[1:])))
                    produced[t.name] = t.name
            else:
                dropped.update(tnames[1:])
            continue
        if layer.loss or layer.metric or any(b in dropped for b in bnames):
            dropped.update(tnames)
            continue
        if layer.alias:          # copies of one blob: the same value, known by its name
            for t in tnames:
                produced[t], origin[t] = produced[bnames[0]], origin.get(bnames[0], bnames[0])
            continue
        if layer.to_onnx is None:
            raise NetcliError(f"layer '{layer.name}' ({layer.type}) cannot be exported to ONNX; exportable types: "
                              f"{', '.join(exportable())}")
        outs = layer.to_onnx(g, [produced[b] for b in bnames], values)
        for t, o in zip(tnames, outs if isinstance(outs, list) else [outs]):
            produced[t] = o
    used = {b.name for layer, bv in zip(net.layers, net.bottom_vecs) for b in bv
            if not (layer.loss or layer.metric)}
    outputs, inputs = [], {i.name for i in g.inputs}
    for tv in net.top_vecs:
        for t in tv:
            name = origin.get(t.name, t.name)
            if t.name in produced and t.name not in used and t.name not in dropped and name not in inputs and \
                    name not in [o.name for o in outputs]:
                value = produced[t.name]
                if value != name:            # the graph output carries the blob's name
                    g.node("Identity", [value], [name])
                outputs.append(helper.make_tensor_value_info(name, onnx.TensorProto.FLOAT,
                                                             ["N"] + list(t.shape[1:])))
    if not outputs:
        raise NetcliError("the net has nothing to export: no output is left once labels and losses are removed")
    graph = helper.make_graph(g.nodes, net.name or "netcli", g.inputs, outputs, g.initializers)
    model = helper.make_model(graph, producer_name="netcli", opset_imports=[helper.make_opsetid("", OPSET)])
    model.ir_version = min(model.ir_version, 9)       # readable by ONNX Runtime releases of the last years
    helper.set_model_props(model, metadata(preprocessing, g.inputs[0].name) if g.inputs else {})
    onnx.checker.check_model(model)
    from .files import write_atomic
    write_atomic(path, model.SerializeToString(), "ONNX file")      # atomic: nothing half-written
    return [i.name for i in g.inputs], [o.name for o in outputs]


def exportable():
    """The layer types that say how they export (their class's to_onnx)."""
    from ..layers import REGISTRY
    return sorted(t for t, cls in REGISTRY.items() if cls.to_onnx is not None or cls.alias)
