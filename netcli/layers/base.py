"""The Layer contract (Caffe's): setup checks bottoms, infers and allocates tops and declares
params; forward and backward only compute. Backward writes bottom diffs and *accumulates* (+=)
into param diffs, so shared weights and iter_size accumulation come for free."""
from __future__ import annotations

import numpy as np

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
    per_sample = False                # samples are independent: see PerSample
    reduced_tops = ()                 # PerSample: tops combined over all rows (a loss)
    base_dir = ""                     # set by the Net: the net file's folder (netcli.config.paths.resolve)
    dtype = np.float32                # set by the Net: its float type (float64 in gradient checks)
    class_labels = None               # set in setup by layers reading class indices: (bottom, classes, ignore)
    reads_dataset = False             # a data layer with a dataset, batches and a position (layers/data.py)
    param_propagate_down = None       # set by the Net: per param blob, False where lr_mult is 0
    keeps_for_backward = True         # set by the Net: False where it never runs this layer's backward (net_plan.py)
    buffer_bytes = 0                  # host memory held beyond the blobs (a data layer's prefetch ring), counted by the Net
    batch_key = None                  # a data layer without a dataset: its message with batch_size (replaced by compile_net's batch_size)
    # -- what the rest of netcli asks of a layer type (instead of lists of type names) ---------------
    is_input = False                  # its tops are the net's inputs, set by the caller (Input)
    makes_data = False                # a data layer: it makes each batch itself; top 0 is the data, the rest labels
    metric = False                    # reports on the net (Accuracy): no part of an inference graph
    runs_code = False                 # runs code named in the net file (Python): refused without allow_python
    alias = False                     # its tops are copies of its bottom, the same values under other names (Split)
    class_scores = None               # where it finds class scores: "top" (Softmax) or "bottom" (bottom 0; bottom 1 the labels)
    draw_kind = "other"               # its colour family in `netcli draw` (netcli/viz/draw.py's COLORS)
    to_onnx = None                    # (layer, graph, bottom values, top names) -> top value(s): layers/onnx_ops.py

    def draw_label(self):
        """Lines under the layer's name and type in `netcli draw` (its geometry)."""
        return []

    # -- on a CUDA device (netcli/exec/cuda.py): a layer with forward_cuda runs there (unless
    # cuda_refusal says why not), one without runs on the host (its blobs copied out and back).
    # forward_cuda(bottoms, tops, ws, dev) and backward_cuda(tops, propagate_down, bottoms, ws, dev)
    # take (data, diff) device arrays per blob, ws the device arrays cuda_workspace() asks for, and
    # dev the executor: dev.k (netcli/ops/cuda/), dev.launch, dev.param(self, j) (the j-th
    # param's (data, diff)), dev.fused_relu(self) (the slope of a ReLU it absorbs, or None),
    # dev.read_later(name, rows, reduce, now=False) (a top computed on the host from device rows,
    # once the pass ends, or at once with now) and dev.host(name) (a blob's host copy).
    forward_cuda = None
    backward_cuda = None
    absorbs_relu = False              # its device forward can apply a following in-place ReLU (fusion)
    relu_slope = None                 # a ReLU: its negative slope (what a layer absorbing it applies)

    def cuda_workspace(self, bottoms, tops):
        """{name: (shape, dtype)}: device scratch arrays the device ops keep between passes
        (bottoms, tops: the host blobs, set up)."""
        return {}

    def cuda_refusal(self, bottoms):
        """Why this layer's device op cannot run this configuration (None: it can)."""
        return None

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

    def learns(self, i):
        """Whether param i exists and takes a gradient (lr_mult 0: Caffe skips it)."""
        return i < len(self.blobs) and (self.param_propagate_down is None or bool(self.param_propagate_down[i]))

    def param_grad(self, grads, i):
        """grads[i], or None where the param is frozen or absent (see learns)."""
        return grads[i] if self.learns(i) else None

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


class PerSample(Layer):
    """A layer whose samples (rows along axis 0 of every bottom and top, but reduced_tops) are
    computed independently. It implements forward_rows/backward_rows for rows [lo, hi) with a
    workspace of arrays for that many rows (declared by workspace()). The net's executor
    (netcli/exec/cpu.py) decides which rows run where; forward()/backward() below run the whole
    batch as one piece, here, for use outside a net (tests, tools)."""
    per_sample = True

    def workspace(self, rows):
        """{name: (shape, dtype)}: the arrays one piece of `rows` samples keeps (from its forward
        to its backward, or for finish_rows and the statistics' combination)."""
        return {}

    def scratch(self, rows):
        """{name: (shape, dtype)}: arrays one call on `rows` samples writes before it reads them,
        in the same call; the executor shares them between the layers a thread runs. The calls
        get one dict with workspace()'s and scratch()'s names."""
        return {}

    def forward_rows(self, bottoms, tops, lo, hi, ws):
        raise NotImplementedError

    # the workspace entries finish_rows reads (for processes to exchange: netcli/distributed.py)
    finish_keys: tuple = ()

    def finish_rows(self, tops, workspaces):
        """After every piece's forward_rows: set the reduced tops from the pieces' workspaces,
        in the order given (a fixed order: the same sums every run)."""

    def backward_rows(self, tops, propagate_down, bottoms, lo, hi, ws, grads, fresh):
        """Write bottom diffs of rows lo..hi and add those rows' param gradients to `grads`
        (arrays shaped like the param diffs); `fresh`: they hold zeros and nothing else writes
        them in this pass, so they may be overwritten instead."""
        raise NotImplementedError

    # -- param gradients formed after the pass (large weights: InnerProduct's fc6) ---------------
    # The params named in late_params (set in setup) may have their gradients formed by the
    # executor once every share's backward is done: tile by tile along the param's first axis
    # (late_tiles, fixed by the shape), each tile from every share's rows (late_grad) and summed
    # by the shares' tree, so that no share holds a partial gradient of the param's full size
    # (netcli/exec/cpu.py). backward_rows then gets None for them in `grads`.
    late_params: tuple = ()

    def late_tiles(self, j):
        """[(a0, a1)]: the tiles of param j's first axis."""
        raise NotImplementedError

    def late_grad(self, tops, bottoms, lo, hi, j, a0, a1, out):
        """out (written) = rows a0..a1 of param j's gradient from samples lo..hi."""
        raise NotImplementedError

    # -- statistics over the whole batch (BatchNorm in TRAIN) ------------------------------------
    # A layer with batch_stats set (in setup) needs sums over every row before it can compute
    # any: the executor runs stats_rows on every share, then combine_stats once with the shares'
    # workspaces in share order, then forward_rows on every share (and the same in backward with
    # grad_stats_rows / combine_grad_stats). The fixed order keeps results thread-count free.
    # A run split across processes exchanges the workspace entries named in stats_keys
    # (grad_stats_keys) of every share before combine_stats (combine_grad_stats).
    batch_stats = False
    stats_keys: tuple = ()
    grad_stats_keys: tuple = ()

    def stats_rows(self, bottoms, lo, hi, ws):
        """Partial statistics of rows lo..hi into ws."""
        raise NotImplementedError

    def combine_stats(self, workspaces):
        """The batch's statistics from every share's partials (workspaces in share order)."""
        raise NotImplementedError

    def grad_stats_rows(self, tops, lo, hi, ws):
        raise NotImplementedError

    def combine_grad_stats(self, workspaces):
        raise NotImplementedError

    def _whole(self, bottoms, tops):
        n = (bottoms or tops)[0].shape[0] if (bottoms or tops)[0].data.ndim else 1
        if getattr(self, "_solo", None) is None or self._solo[0] != n:
            self._solo = (n, {k: np.zeros(shape, dt) for k, (shape, dt)
                              in {**self.workspace(n), **self.scratch(n)}.items()})
        if (bottoms or tops)[0].data.ndim == 0:
            bottoms, tops = self._rows_of_scalars(bottoms), self._rows_of_scalars(tops)
        return n, self._solo[1], bottoms, tops

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
        n, ws, bottoms, tops = self._whole(bottoms, tops)
        if self.batch_stats:
            self.stats_rows(bottoms, 0, n, ws)
            self.combine_stats([ws])
        self.forward_rows(bottoms, tops, 0, n, ws)
        self.finish_rows(tops, [ws])

    def backward(self, tops, propagate_down, bottoms):
        n, ws, bottoms, tops = self._whole(bottoms, tops)
        if self.batch_stats:
            self.grad_stats_rows(tops, 0, n, ws)
            self.combine_grad_stats([ws])
        self.backward_rows(tops, propagate_down, bottoms, 0, n, ws, [b.diff for b in self.blobs], False)


def canon_axis(axis, ndim, field):
    a = axis + ndim if axis < 0 else axis
    if not 0 <= a < ndim:
        raise LayerError(f"axis {axis} is out of range for a {ndim}-D input", field)
    return a


def around(shape, first, count):
    """(size before axis `first`, size of the `count` axes from it, size after them): the
    (outer, C, inner) view of a blob that layers acting on a span of axes use."""
    return tuple(int(np.prod(dims, dtype=np.int64))
                 for dims in (shape[:first], shape[first:first + count], shape[first + count:]))
