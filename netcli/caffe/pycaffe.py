"""What a Python layer written for Caffe imports from `caffe`, when no Caffe is installed: the
Layer base class and the phase constants (netcli/layers/python.py installs this module as
`caffe` while importing such a layer's module)."""
from ..layers.python import PythonLayer as Layer

TRAIN, TEST = 0, 1

__all__ = ["Layer", "TRAIN", "TEST"]
