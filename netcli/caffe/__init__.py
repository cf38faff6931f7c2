"""pycaffe, over netcli: `import netcli.caffe as caffe` runs a pycaffe script.

Module level as pycaffe's (Caffe 1.0): set_mode_cpu/set_mode_gpu/set_device/set_random_seed,
init_log/log, TRAIN/TEST, Net, the solver classes and get_solver, Layer, layer_type_list,
has_nccl/solver_count/solver_rank; the submodules io, net_spec (also as caffe.layers,
caffe.params, caffe.NetSpec, caffe.to_proto), classifier (Classifier), detector (Detector),
coord_map, draw, proto. Net and the solvers are thin wrappers over netcli.Net and netcli.Solver
(pynet.py, pysolver.py), not a second engine.

Caffe's binary files without protoc live here too: the protobuf wire format (wire.py), weights
and mean files (caffemodel.py), LMDB records (datum.py); pycaffe.py is the Layer base class a
Python layer's module finds as `caffe` (netcli/layers/python.py).

Heavy parts load on first use (as netcli's own __init__), so that importing a Python layer's
`caffe` stand-in does not import the engine.
"""
import importlib
import os

from .pycaffe import TRAIN, TEST, Layer

_SUBMODULES = ("io", "net_spec", "classifier", "detector", "coord_map", "draw", "proto", "pynet", "pysolver")
_FROM = {"Net": "pynet", "SGDSolver": "pysolver", "NesterovSolver": "pysolver", "AdaGradSolver": "pysolver",
         "RMSPropSolver": "pysolver", "AdaDeltaSolver": "pysolver", "AdamSolver": "pysolver",
         "get_solver": "pysolver", "Solver": "pysolver", "layers": "net_spec", "params": "net_spec",
         "NetSpec": "net_spec", "to_proto": "net_spec", "Classifier": "classifier", "Detector": "detector"}

_mode = {"gpu": False, "device": 0}


def set_mode_cpu():
    """Nets and solvers made from now on run on the CPU (the default)."""
    _mode["gpu"] = False


def set_mode_gpu():
    """Nets and solvers made from now on run on the CUDA device set_device chose (0 by default)."""
    _mode["gpu"] = True


def set_device(device_id):
    _mode["device"] = int(device_id)


def device():
    """Where a Net made now runs: "cpu" or "cuda:N" (netcli.Net's device)."""
    return f"cuda:{_mode['device']}" if _mode["gpu"] else "cpu"


def set_random_seed(seed):
    """Caffe's RNG seed: nets made from now on fill their params and draw their randomness from it
    (netcli.Net's seed; a solver's own random_seed still wins for the nets it builds)."""
    _mode["seed"] = int(seed)


def random_seed():
    return _mode.get("seed")


def init_log(level=0, use_stderr=False):
    """glog's setup in pycaffe; netcli's log lines always go to stderr: nothing to do."""


def log(message):
    """One INFO line, as pycaffe's caffe.log."""
    from .. import log as _log
    _log.info(str(message))


def layer_type_list():
    """Every layer type this netcli knows, sorted (Caffe's LayerRegistry::LayerTypeList)."""
    from ..layers import REGISTRY
    return sorted(REGISTRY)


def has_nccl():
    """False: netcli trains on several processes over MPI (netcli.distributed), not NCCL."""
    return False


def solver_count():
    """How many processes train together (an MPI launch: its world size), else 1."""
    from ..distributed import launched_size
    return launched_size()


def solver_rank():
    """This process's rank in an MPI launch, else 0."""
    from ..distributed import LAUNCHERS
    for size, rank in LAUNCHERS:
        if os.environ.get(size, "").isdigit() and int(os.environ[size]) > 1:
            v = os.environ.get(rank, "")
            return int(v) if v.isdigit() else 0
    return 0


def set_solver_count(count):
    """pycaffe's NCCL setup; the process count comes from mpiexec here: only 1 is accepted."""
    if int(count) != solver_count():
        from ..errors import NetcliError
        raise NetcliError(f"set_solver_count({count}): netcli trains on several processes with mpiexec "
                          "(netcli.distributed), not NCCL threads")


def set_solver_rank(rank):
    if int(rank) != solver_rank():
        from ..errors import NetcliError
        raise NetcliError(f"set_solver_rank({rank}): the rank comes from mpiexec (netcli.distributed)")


def set_multiprocess(multiprocess):
    """pycaffe's flag for NCCL's process mode; nothing to do."""


def __getattr__(name):
    if name in _FROM:
        return getattr(importlib.import_module(f"{__name__}.{_FROM[name]}"), name)
    if name in _SUBMODULES:
        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module 'netcli.caffe' (pycaffe) has no attribute {name!r}")


__all__ = ["TRAIN", "TEST", "Layer", "set_mode_cpu", "set_mode_gpu", "set_device", "set_random_seed", "init_log",
           "log", "layer_type_list", "has_nccl", "solver_count", "solver_rank", "set_solver_count",
           "set_solver_rank", "set_multiprocess", *_FROM, "io", "net_spec", "classifier", "detector", "coord_map",
           "draw"]
