"""Blob: data and diff of one shape (Caffe's Blob), float32 in the engine."""
from __future__ import annotations

import numpy as np


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
