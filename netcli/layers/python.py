"""The Python layer: a layer written in Python by the user, with pycaffe's interface.

    layer { type: "Python" name: "loss" bottom: "a" bottom: "b" top: "loss"
            python_param { module: "pyloss" layer: "EuclideanLossLayer" param_str: "..." } }

The module is imported from the net file's folder, the working directory or sys.path (Caffe:
$PYTHONPATH). The class has pycaffe's methods setup(bottom, top), reshape(bottom, top),
forward(bottom, top), backward(top, propagate_down, bottom), and sees blobs as pycaffe did:
`.data`, `.diff`, `.reshape(*shape)`, `.num`, `.count`, `.shape`; `self.blobs.add_blob(*shape)`
declares a param; `self.param_str` and `self.phase` (0 TRAIN, 1 TEST) are set before setup.
Such a class may subclass netcli.PythonLayer, or caffe.Layer: where no Caffe is installed,
`import caffe` in the module finds netcli's stand-in (netcli/caffe/pycaffe.py).
"""
from __future__ import annotations

import importlib
import os
import sys

import numpy as np

from ..config.schema import Field, Message, REQUIRED
from ..errors import NetcliError
from .base import Layer, LayerError, register

PYTHON = Message("PythonParameter", [
    Field("module", "str", REQUIRED, "the module to import (its file name without .py)"),
    Field("layer", "str", REQUIRED, "the class in that module"),
    Field("param_str", "str", "", "a string given to the layer as self.param_str"),
    Field("share_in_parallel", "bool", False, "deprecated in Caffe; accepted and ignored"),
])


class PythonLayer:
    """Base class of user layers (pycaffe's caffe.Layer): override setup, reshape, forward and
    backward. `self.blobs` holds the params, `self.param_str` the config's string, `self.phase`
    0 (TRAIN) or 1 (TEST)."""

    def setup(self, bottom, top):
        pass

    def reshape(self, bottom, top):
        pass

    def forward(self, bottom, top):
        pass

    def backward(self, top, propagate_down, bottom):
        pass


class PyBlob:
    """One of our blobs as pycaffe showed it to a Python layer."""

    def __init__(self, blob, dtype, initial=None):
        self._blob, self._dtype, self._initial = blob, dtype, initial

    @property
    def data(self):
        return self._initial if isinstance(self._blob.data, tuple) else self._blob.data

    @property
    def diff(self):
        return np.zeros_like(self._initial) if isinstance(self._blob.data, tuple) else self._blob.diff

    def reshape(self, *shape):
        self._blob.reshape(shape, self._dtype)

    @property
    def shape(self):
        return self.data.shape

    @property
    def count(self):
        return int(self.data.size)

    @property
    def num(self):
        return self.shape[0]

    @property
    def channels(self):
        return self.shape[1]

    @property
    def height(self):
        return self.shape[2]

    @property
    def width(self):
        return self.shape[3]


class PyParams(list):
    """self.blobs of a Python layer: add_blob(*shape) declares a param (zeros; values written
    into .data during setup are its initial values)."""

    def __init__(self, layer):
        super().__init__()
        self._layer = layer

    def add_blob(self, *shape):
        initial = np.zeros(shape, self._layer.dt)
        blob = self._layer.add_param(shape, initial)      # an array filler: copied in at allocation
        self.append(PyBlob(blob, self._layer.dt, initial))


@register
class Python(Layer):
    type = "Python"
    doc = "A layer written in Python with pycaffe's interface (python_param: module, layer, param_str)."
    params = {"python_param": PYTHON}
    bottoms = (0, None)
    tops = (0, None)

    def setup(self, bottoms, tops):
        p = self.p.python_param
        cls = _load_class(p.module, p.layer, self.base_dir)
        self.what = f"{p.module}.{p.layer}"
        self.impl = cls()
        self.impl.param_str = p.param_str
        self.impl.phase = 0 if self.phase == "TRAIN" else 1
        self.dt = bottoms[0].data.dtype if bottoms else self.dtype
        self.impl.blobs = PyParams(self)
        pb, pt = self._wrap(bottoms), self._wrap(tops)
        self._call("setup", pb, pt, in_setup=True)
        self._call("reshape", pb, pt, in_setup=True)
        for t in tops:
            if t.data is None:
                raise LayerError(f"{self.what}.reshape did not reshape top '{t.name}' (call top[i].reshape(*shape))")

    def _wrap(self, blobs):
        return [PyBlob(b, self.dt) for b in blobs]

    def _call(self, method, *args, in_setup=False):
        try:
            getattr(self.impl, method)(*args)
        except (NetcliError, KeyboardInterrupt):
            raise
        except Exception as e:                      # the user's code: its error in one line
            msg = f"{self.what}.{method} raised {type(e).__name__}: {e}"
            if in_setup:
                raise LayerError(msg) from None
            raise NetcliError(f"layer '{self.name}' (Python): {msg}") from None

    def forward(self, bottoms, tops):
        self._call("forward", self._wrap(bottoms), self._wrap(tops))

    def backward(self, tops, propagate_down, bottoms):
        self._call("backward", self._wrap(tops), list(propagate_down), self._wrap(bottoms))


def _real_caffe():
    """An installed pycaffe, or None (a folder named caffe is not one)."""
    try:
        return importlib.import_module("caffe")
    except Exception:
        return None


def _load_class(module, name, base_dir):
    """Import `module` (the net file's folder and the working directory first) and return its
    class `name`; a missing module or class is one line."""
    extra = [d for d in (base_dir or "", os.getcwd()) if d and d not in sys.path]
    sys.path[:0] = extra
    before = sys.modules.get("caffe")
    try:
        if not hasattr(_real_caffe(), "Layer"):     # `import caffe; caffe.Layer` finds ours
            from ..caffe import pycaffe
            sys.modules["caffe"] = pycaffe
        mod = importlib.import_module(module)
    except ImportError as e:
        raise LayerError(f"cannot import module '{module}' ({e}); put {module}.py beside the net file, in the "
                         "working directory or on PYTHONPATH", "python_param.module") from None
    except Exception as e:
        raise LayerError(f"importing module '{module}' raised {type(e).__name__}: {e}", "python_param.module") from None
    finally:
        for d in extra:
            sys.path.remove(d)
        if before is None:
            sys.modules.pop("caffe", None)
        else:
            sys.modules["caffe"] = before
    cls = getattr(mod, name, None)
    if not isinstance(cls, type):
        raise LayerError(f"module '{module}' ({getattr(mod, '__file__', '?')}) has no class '{name}'",
                         "python_param.layer")
    return cls
