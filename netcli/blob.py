"""Blob: data and diff of one shape (Caffe's Blob), float32 in the engine."""
from __future__ import annotations

import os

import numpy as np

from .errors import NetcliError


class ShapeError(NetcliError):
    """A shape that cannot be allocated: a negative dimension, or more than this machine's memory."""


def memory_budget():
    """Bytes a net may use for its blobs: the machine's physical memory."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):   # not POSIX: no limit of our own
        return 2 ** 62


class Blob:
    __slots__ = ("name", "data", "diff")

    def __init__(self, name: str = "", shape=None, dtype=np.float32):
        self.name = name
        self.data = None
        self.diff = None
        if shape is not None:
            self.reshape(shape, dtype)

    def reshape(self, shape, dtype=np.float32):
        """Allocate data and diff (done once, at setup)."""
        shape = tuple(int(s) for s in shape)
        if any(s < 0 for s in shape):
            raise ShapeError(f"top '{self.name}' would have a negative dimension: {shape}")
        nbytes = 2 * np.dtype(dtype).itemsize * float(np.prod([float(s) for s in shape]))
        if nbytes > memory_budget():
            raise ShapeError(f"top '{self.name}' of shape {shape} needs {nbytes / 2 ** 30:.3g} GB (data and "
                               f"diff); this machine has {memory_budget() / 2 ** 30:.3g} GB")
        self.data = np.zeros(shape, dtype)
        self.diff = np.zeros(shape, dtype)

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

    def __repr__(self):
        return f"Blob({self.name!r}, shape={None if self.data is None else self.shape})"
