"""netcli: a Caffe-style, declarative training tool (YAML nets and solvers, Numba kernels).

The API mirrors pycaffe: `netcli.Net(path, phase, weights)`, `netcli.Solver(path)`.
Heavy modules (NumPy, Numba) load on first use, so `netcli --help` stays fast.
"""
__version__ = "0.1.0"

__all__ = ["Net", "Solver", "Classifier", "PythonLayer", "NetcliError", "ConfigError", "__version__"]


def __getattr__(name):
    if name == "Net":
        from .net import Net
        return Net
    if name == "Solver":
        from .solver import Solver
        return Solver
    if name == "Classifier":
        from .predict import Classifier
        return Classifier
    if name == "PythonLayer":
        from .layers.python import PythonLayer
        return PythonLayer
    if name in ("NetcliError", "ConfigError"):
        from . import errors
        return getattr(errors, name)
    raise AttributeError(f"module 'netcli' has no attribute {name!r}")
