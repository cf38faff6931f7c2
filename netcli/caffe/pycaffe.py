"""What a Python layer written for Caffe imports from `caffe`, when no Caffe is installed: the
Layer base class and the phase constants (netcli/layers/python.py installs this module as
`caffe` while importing such a layer's module, and runs the layers)."""

TRAIN, TEST = 0, 1


class Layer:
    """Base class of user layers (pycaffe's caffe.Layer; netcli.PythonLayer): override setup, reshape, forward and
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


__all__ = ["Layer", "TRAIN", "TEST"]
