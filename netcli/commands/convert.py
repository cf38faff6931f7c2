"""`netcli export` (a net and its weights as ONNX) and `netcli convert` (weights between .npz and
.caffemodel; nets and solvers as a prototxt Caffe reads)."""
from __future__ import annotations

import os

from ..errors import NetcliError
from ..net import Net
from .check import CONFIG_EXT, WEIGHT_EXT, is_solver_file, print_config
from .score import _noop


def export(model, weights, onnx_path, stages=(), level=0, echo=None, raw_input=False):
    """The TEST-phase inference graph of `model` with `weights` (None: as initialised, with a
    warning) as an ONNX file (netcli/io/onnx_export.py); how its input is prepared goes into its
    metadata, or with raw_input into the graph (netcli/io/onnx_preprocess.py)."""
    from ..io.onnx_export import export_onnx
    from ..io.onnx_preprocess import find_preprocessing
    net = Net(model, phase="TEST", weights=weights, stages=stages, level=level)
    if not weights:
        (echo or _noop)("Warning: no --weights given: the model holds the initial (untrained) weights")
    inputs, outputs = export_onnx(net, onnx_path, find_preprocessing(net, weights), raw_input)
    (echo or _noop)(f"Wrote {onnx_path}: net '{net.name}', inputs {', '.join(inputs)} -> outputs {', '.join(outputs)} "
                    "(batch axis free)")
    return inputs, outputs


def convert(source, output, model=None, echo=None):
    """A net or solver file between YAML and prototxt, or weights between .npz and .caffemodel
    (`model` gives the net they belong to); the output's extension says which. Written
    atomically: nothing half-written is left on an error."""
    from ..io.files import write_atomic
    from ..io.weights import is_caffemodel
    out = os.fspath(output)
    if not out.lower().endswith(WEIGHT_EXT + CONFIG_EXT):
        raise NetcliError(f"{out}: the output's extension says what to write: one of {', '.join(WEIGHT_EXT + CONFIG_EXT)}")
    if out.lower().endswith(WEIGHT_EXT):
        if not (os.fspath(source).endswith(".npz") or is_caffemodel(source)):
            raise NetcliError(f"{source}: weights are converted from a .npz or a .caffemodel")
        if not model:
            raise NetcliError("converting weights needs --model, the net they belong to (its layer names and shapes)")
        net = Net(model, phase="TEST")
        net.load(source)
        net.save(out)
        (echo or _noop)(f"Wrote {out}: {len(net.param_owner_keys)} param blobs of net '{net.name}'")
        return out
    if os.fspath(source).lower().endswith(WEIGHT_EXT):
        raise NetcliError(f"{source}: weights convert to .npz or .caffemodel, not to {os.path.splitext(out)[1]}")
    solver = is_solver_file(source)
    if out.lower().endswith((".prototxt", ".pbtxt")):
        from ..config.prototxt_write import net_to_prototxt, solver_to_prototxt
        text = solver_to_prototxt(source) if solver else net_to_prototxt(source)
    else:
        text = print_config(None if solver else source, source if solver else None) + "\n"
    write_atomic(out, text.encode("utf-8"), "converted file")
    (echo or _noop)(f"Wrote {out}: the {'solver' if solver else 'net'} of {source}")
    return out
