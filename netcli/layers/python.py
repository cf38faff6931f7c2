"""The Python layer: a layer written in Python by the user, with pycaffe's interface.

    layer { type: "Python" name: "loss" bottom: "a" bottom: "b" top: "loss"
            python_param { module: "pyloss" layer: "EuclideanLossLayer" param_str: "..." } }

A Python layer runs code named by the net file, so it is set up only when allowed: the CLI's
--allow-python-layers, NETCLI_ALLOW_PYTHON=1 in the environment, or Net(..., allow_python=True)
(Caffe needs its build flag WITH_PYTHON_LAYER). Without that, the net is refused in one line
naming the layer and the module, before any of it is imported.

The module is imported from the net file's folder, then sys.path (Caffe: $PYTHONPATH); not from
the working directory unless it is on sys.path. The class has pycaffe's methods setup(bottom, top), reshape(bottom, top),
forward(bottom, top), backward(top, propagate_down, bottom), and sees blobs as pycaffe did:
`.data`, `.diff`, `.reshape(*shape)`, `.num`, `.count`, `.shape`; `self.blobs.add_blob(*shape)`
declares a param; `self.param_str` and `self.phase` (0 TRAIN, 1 TEST) are set before setup.
Such a class may subclass netcli.PythonLayer, or caffe.Layer: where no Caffe is installed,
`import caffe` in the module finds netcli's stand-in (netcli/caffe/pycaffe.py), or a pycaffe
the program had imported already (one with caffe.Layer); a caffe.py beside the net or in the working directory is
never imported.
"""
from __future__ import annotations

import importlib
import os
import sys

import numpy as np

from ..caffe import pycaffe
from ..config.schema import Field, Message, REQUIRED
from ..errors import NetcliError
from .base import Layer, LayerError, register

ALLOW_ENV = "NETCLI_ALLOW_PYTHON"
HOW_TO_ALLOW = f"`netcli --allow-python-layers COMMAND ...`, {ALLOW_ENV}=1 or Net(..., allow_python=True)"
_allowed_by_cli = False


def allow_python_layers(on=True):
    """The process-wide opt-in (the CLI's --allow-python-layers) for nets built without an
    explicit allow_python."""
    global _allowed_by_cli
    _allowed_by_cli = bool(on)


def python_allowed(explicit=None):
    """Whether Python layers may run: `explicit` (Net's allow_python) if given, else the CLI's
    flag or NETCLI_ALLOW_PYTHON=1."""
    if explicit is not None:
        return bool(explicit)
    return _allowed_by_cli or os.environ.get(ALLOW_ENV, "").strip() == "1"


def refusal(module):
    """The one line for a Python layer that is not allowed to run."""
    return (f"would import and run Python module '{module}'; netcli runs code named "
            f"by a net file only when allowed: {HOW_TO_ALLOW}")


PYTHON = Message("PythonParameter", [
    Field("module", "str", REQUIRED, "the module to import (its file name without .py)", number=1),
    Field("layer", "str", REQUIRED, "the class in that module", number=2),
    Field("param_str", "str", "", "a string given to the layer as self.param_str", number=3),
    Field("share_in_parallel", "bool", False, "deprecated in Caffe; accepted and ignored", number=4),
], number=130)


PythonLayer = pycaffe.Layer     # the base class of user layers (netcli/caffe/pycaffe.py)


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
    runs_code = True
    doc = "A layer written in Python with pycaffe's interface (python_param: module, layer, param_str)."
    params = {"python_param": PYTHON}
    bottoms = (0, None)
    tops = (0, None)

    allow_python = None                 # set by the Net: its allow_python (None: python_allowed())
    module_dir = ""                     # set by the Net: the net file's folder, searched first

    def setup(self, bottoms, tops):
        p = self.p.python_param
        if not python_allowed(self.allow_python):
            raise LayerError(refusal(p.module), "python_param.module")
        cls = _load_class(p.module, p.layer, self.module_dir)
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


def _load_class(module, name, folder):
    """Import `module` (the net file's folder first, then sys.path) and return its class `name`;
    `import caffe` inside it finds an already imported caffe or netcli's stand-in, never a file
    on the path; a missing module or class is one line."""
    saved = sys.path[:]
    # relative entries ('' under `python -c`, '.') would mean the working directory
    sys.path[:] = ([folder] if folder else []) + [d for d in saved if d and os.path.isabs(d)]
    before = sys.modules.get("caffe")
    try:
        if not hasattr(before, "Layer"):    # no file named caffe.py is looked for
            sys.modules["caffe"] = pycaffe
        mod = importlib.import_module(module)
    except ImportError as e:
        raise LayerError(f"cannot import module '{module}' ({e}); put {module}.py beside the net file or on "
                         "PYTHONPATH", "python_param.module") from None
    except Exception as e:
        raise LayerError(f"importing module '{module}' raised {type(e).__name__}: {e}", "python_param.module") from None
    finally:
        sys.path[:] = saved
        if before is None:
            sys.modules.pop("caffe", None)
        else:
            sys.modules["caffe"] = before
    cls = getattr(mod, name, None)
    if not isinstance(cls, type):
        raise LayerError(f"module '{module}' ({getattr(mod, '__file__', '?')}) has no class '{name}'",
                         "python_param.layer")
    return cls
