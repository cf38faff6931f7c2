"""The Layer contract (Caffe's): setup checks bottoms, infers and allocates tops and declares
params; forward and backward only compute. Backward writes bottom diffs and *accumulates* (+=)
into param diffs, so shared weights and iter_size accumulation come for free."""
from __future__ import annotations

import numpy as np

from .. import threads
from ..blob import Blob
from ..config.schema import Message

REGISTRY: dict[str, type["Layer"]] = {}


class LayerError(Exception):
    """A problem found in setup; the Net adds file, line and layer name. `field` names the
    parameter at fault (e.g. 'convolution_param.kernel_size')."""

    def __init__(self, msg, field=None):
        super().__init__(msg)
        self.field = field


def register(cls):
    REGISTRY[cls.type] = cls
    return cls


class Layer:
    type = "Layer"
    doc = ""
    params: dict[str, Message] = {}   # YAML key -> spec, e.g. {"convolution_param": CONV}
    bottoms = (1, 1)                  # (min, max) number of bottoms; max None = any
    tops = (1, 1)
    in_place_ok = False               # may top == bottom
    loss = False                      # default loss_weight 1 on the first top
    no_grad_bottoms = ()              # bottom indices that never take a gradient (labels)
    has_backward = True
    batch_parallel = False            # samples are independent: see RowParallel
    reduced_tops = ()                 # RowParallel: tops summed over all rows (a loss)
    base_dir = ""                     # set by the Net: the net file's folder (netcli.paths.resolve)
    class_labels = None               # set in setup by layers reading class indices: (bottom, classes, ignore)

    def __init__(self, name, p, phase, bottom_names, top_names, rng: np.random.Generator):
        self.name = name
        self.p = p                     # object with one attribute per key in `params`
        self.phase = phase
        self.bottom_names = list(bottom_names)
        self.top_names = list(top_names)
        self.rng = rng
        self.blobs: list[Blob] = []    # learnable (or state) params, in Caffe's order
        self.fillers: list = []        # FillerParameter per blob (None: leave zero)

    # -- setup -------------------------------------------------------------------------------
    def setup(self, bottoms: list[Blob], tops: list[Blob]):
        raise NotImplementedError

    def add_param(self, shape, filler=None) -> Blob:
        """Declare a param blob; the Net allocates it (in one flat buffer) and fills it."""
        b = Blob(f"{self.name}/{len(self.blobs)}")
        b.data = tuple(int(s) for s in shape)   # shape only, until the Net allocates
        self.blobs.append(b)
        self.fillers.append(filler)
        return b

    def where(self, i=0):
        """'from <blob>' for messages about bottom i."""
        return f"from {self.bottom_names[i]}"

    # -- compute -----------------------------------------------------------------------------
    def forward(self, bottoms, tops):
        raise NotImplementedError

    def backward(self, tops, propagate_down, bottoms):
        raise NotImplementedError

    # -- state beyond params (RNG positions, data cursors), for exact resume ---------------------
    def get_state(self):
        return None

    def set_state(self, state):
        pass

    # -- FLOPs per image for `netcli check` (multiply-add = 2) ------------------------------------
    def flops(self, bottoms, tops):
        return 0


class RowParallel(Layer):
    """A layer whose samples (rows along axis 0 of every bottom and top) are computed
    independently. It implements forward_rows/backward_rows for the rows [lo, hi) on thread t
    (t indexes the layer's per-thread scratch, which follows threads.chunks(batch)). The Net runs
    a stretch of such layers back to back on each thread's rows: one hand-off to the threads per
    stretch, not per layer. forward/backward below run this layer alone the same way."""
    batch_parallel = True
    # Set by the Net for one backward pass: the pdiffs slots hold zeros and only this layer writes
    # them in the pass, so backward_rows may overwrite (out=) instead of adding.
    param_diffs_fresh = False

    def forward_rows(self, bottoms, tops, t, lo, hi):
        raise NotImplementedError

    def finish_rows(self, tops):
        """After every thread's forward_rows: set the reduced tops from per-thread partials."""

    def backward_rows(self, tops, propagate_down, bottoms, t, lo, hi, pdiffs):
        """Write bottom diffs of rows lo..hi and *add* those rows' param gradients to pdiffs
        (arrays shaped like the param diffs: the params' own on thread 0, scratch on others)."""
        raise NotImplementedError

    def row_ranges(self, bottoms, tops):
        n = (bottoms or tops)[0].shape[0]
        if getattr(self, "_ranges_n", None) != n:
            self._ranges, self._ranges_n = threads.chunks(n), n
        return self._ranges

    @staticmethod
    def _rows_of_scalars(blobs):
        """0-d blobs (a loss value) as one row: views of shape (1,)."""
        out = []
        for b in blobs:
            v = Blob(b.name)
            v.share(b, (1,) if b.data.ndim == 0 else None)
            out.append(v)
        return out

    def forward(self, bottoms, tops):
        if (bottoms or tops)[0].data.ndim == 0:
            bottoms, tops = self._rows_of_scalars(bottoms), self._rows_of_scalars(tops)
        threads.run(lambda t, lo, hi: self.forward_rows(bottoms, tops, t, lo, hi), self.row_ranges(bottoms, tops))
        self.finish_rows(tops)

    def backward(self, tops, propagate_down, bottoms):
        if (bottoms or tops)[0].data.ndim == 0:
            bottoms, tops = self._rows_of_scalars(bottoms), self._rows_of_scalars(tops)
        ranges = self.row_ranges(bottoms, tops)
        if not self.blobs:
            threads.run(lambda t, lo, hi: self.backward_rows(tops, propagate_down, bottoms, t, lo, hi, []), ranges)
            return
        if getattr(self, "_scratch", None) is None or len(self._scratch) != len(ranges) - 1:
            self._scratch = [[np.zeros_like(b.diff) for b in self.blobs] for _ in ranges[1:]]
        diffs = [[b.diff for b in self.blobs]] + self._scratch
        threads.run(lambda t, lo, hi: self.backward_rows(tops, propagate_down, bottoms, t, lo, hi, diffs[t]),
                    ranges)
        for extra in self._scratch:          # a fixed order: the same sums on every run
            for b, d in zip(self.blobs, extra):
                b.diff += d
                d[...] = 0


def canon_axis(axis, ndim, field):
    a = axis + ndim if axis < 0 else axis
    if not 0 <= a < ndim:
        raise LayerError(f"axis {axis} is out of range for a {ndim}-D input", field)
    return a
