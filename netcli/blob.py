"""Blob: data and diff of one shape (Caffe's Blob), float32 in the engine."""
from __future__ import annotations

import os

import numpy as np

from .errors import NetcliError


class ShapeError(NetcliError):
    """A shape that cannot be allocated: a negative dimension, or more than this machine's memory."""


def physical_memory():
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):   # not POSIX: no limit of our own
        return 2 ** 62


def address_space_limit():
    """The process's address-space limit (ulimit -v, RLIMIT_AS) in bytes, or None."""
    try:
        import resource
        soft = resource.getrlimit(resource.RLIMIT_AS)[0]
    except (ImportError, ValueError, OSError, AttributeError):
        return None
    return None if soft in (resource.RLIM_INFINITY, -1) or soft <= 0 else soft


def memory_budget():
    """Bytes a net may use for its blobs and params (data and diff): half the machine's memory
    (or of the process's address-space limit, where that is lower), leaving the rest for the
    data set, per-thread workspace and gradients, and everything else. Files (datasets, weights)
    are bounded by the same figure."""
    limit = address_space_limit()
    return min(physical_memory(), limit if limit else 2 ** 62) // 2


def describe_budget():
    limited = (address_space_limit() or 2 ** 62) < physical_memory()
    return (f"netcli allows {memory_budget() / 2 ** 30:.3g} GB, half of "
            + ("this process's address-space limit (ulimit -v)" if limited else "this machine's memory"))


ALIGN_BYTES = 64     # where the engine's arrays start: a cache line, an AVX-512 vector


def aligned_zeros(shape, dtype=np.float32):
    """np.zeros(shape, dtype) starting on an ALIGN_BYTES boundary. NumPy's arrays start where
    malloc puts them, 16 bytes past one on Linux for most: then every vector load or store of a
    row crosses two cache lines. ResNet-20's training at batch 64, 2 threads, Intel Xeon (model
    207), 3 nets of each kind in one process, 5 alternating rounds: 68.7 ms an iteration with
    NumPy's arrays (66.7-69.1 from net to net), 67.1 with every blob, param, workspace and
    scratch array aligned (66.4-67.6)."""
    dtype = np.dtype(dtype)
    shape = (int(shape),) if np.ndim(shape) == 0 else tuple(int(s) for s in shape)
    nbytes = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    raw = np.zeros(nbytes + ALIGN_BYTES, np.uint8)
    start = -raw.ctypes.data % ALIGN_BYTES
    return raw[start:start + nbytes].view(dtype).reshape(shape)


class Blob:
    __slots__ = ("name", "data", "diff")

    def __init__(self, name: str = "", shape=None, dtype=np.float32):
        self.name = name
        self.data = None
        self.diff = None
        if shape is not None:
            self.reshape(shape, dtype)

    def reshape(self, *args, dtype=None):
        """Allocate data and diff (at setup): reshape(shape[, dtype]), or pycaffe's reshape(n, c, h, w).
        The dtype defaults to the blob's own (float32 for a new blob)."""
        if len(args) == 2 and not isinstance(args[1], (int, np.integer)):
            shape, dtype = args
        elif len(args) == 1 and not isinstance(args[0], (int, np.integer)):
            shape = args[0]
        else:
            shape = args
        if dtype is None:
            dtype = self.data.dtype if isinstance(self.data, np.ndarray) else np.float32
        shape = tuple(int(s) for s in shape)
        if any(s < 0 for s in shape):
            raise ShapeError(f"top '{self.name}' would have a negative dimension: {shape}")
        nbytes = 2 * np.dtype(dtype).itemsize * float(np.prod([float(s) for s in shape]))
        if nbytes > memory_budget():
            raise ShapeError(f"top '{self.name}' of shape {shape} needs {nbytes / 2 ** 30:.3g} GB (data and "
                               f"diff); {describe_budget()}")
        self.data = aligned_zeros(shape, dtype)
        self.diff = aligned_zeros(shape, dtype)

    def share(self, other: "Blob", shape=None):
        """Make this blob a view of `other` (same memory for data and diff), maybe reshaped."""
        shape = other.shape if shape is None else tuple(shape)
        self.data = other.data.reshape(shape)
        self.diff = other.diff.reshape(shape)

    @property
    def shape(self):
        return self.data.shape

    @property
    def count(self):
        return self.data.size

    def _legacy(self, axis):
        """Caffe's LegacyShape: a missing axis of a blob of fewer than 4 axes counts as 1."""
        return self.data.shape[axis] if axis < self.data.ndim else 1

    num = property(lambda self: self._legacy(0), doc="pycaffe's num: shape[0] (1 for a 0-d blob)")
    channels = property(lambda self: self._legacy(1), doc="pycaffe's channels: shape[1], or 1")
    height = property(lambda self: self._legacy(2), doc="pycaffe's height: shape[2], or 1")
    width = property(lambda self: self._legacy(3), doc="pycaffe's width: shape[3], or 1")

    def __repr__(self):
        return f"Blob({self.name!r}, shape={None if self.data is None else self.shape})"
