"""Data layers whose batches come from memory, not from files: DummyData (filled by fillers) and
MemoryData (arrays a program gives the net)."""
from __future__ import annotations

import numpy as np

from ..config.schema import Field, Message, REQUIRED, positive
from ..data.transform import TRANSFORM, Transformer
from ..errors import NetcliError
from ..fillers import FILLER, fill as fill_blob
from .base import Layer, LayerError, register
from .common import BLOB_SHAPE


DUMMY_DATA = Message("DummyDataParameter", [
    Field("shape", BLOB_SHAPE, None, "one shape for every top, or one per top", repeated=True, number=6),
    Field("data_filler", FILLER, None, "one filler for every top, or one per top (default constant 0)", repeated=True, number=1),
    Field("num", "int", None, "legacy 4-D shape: num (one value, or one per top)", repeated=True, check=positive, number=2),
    Field("channels", "int", None, "legacy 4-D shape: channels", repeated=True, check=positive, number=3),
    Field("height", "int", None, "legacy 4-D shape: height", repeated=True, check=positive, number=4),
    Field("width", "int", None, "legacy 4-D shape: width", repeated=True, check=positive, number=5),
], doc="Tops of given shapes filled by fillers.", number=109)


@register
class DummyData(Layer):
    type = "DummyData"
    makes_data = True
    draw_kind = "data"
    doc = "Tops of given shapes filled by fillers: constant ones once, random ones at every forward (Caffe's DummyData)."
    params = {"dummy_data_param": DUMMY_DATA}
    bottoms = (0, 0)
    tops = (1, None)
    has_backward = False

    def setup(self, bottoms, tops):
        p, n = self.p.dummy_data_param, len(tops)
        legacy = [p.num, p.channels, p.height, p.width]
        if p.shape and any(legacy):
            raise LayerError("give shape or num/channels/height/width, not both", "dummy_data_param.shape")
        if p.shape:
            if len(p.shape) not in (1, n):
                raise LayerError(f"give 1 shape or one per top ({n}), got {len(p.shape)}", "dummy_data_param.shape")
            shapes = [tuple(s.dim) for s in p.shape]
        else:
            for name, values in zip(("num", "channels", "height", "width"), legacy):
                if len(values) not in (1, n):
                    raise LayerError(f"give 1 {name} or one per top ({n}), got {len(values)}", f"dummy_data_param.{name}")
            shapes = [tuple(v[i if len(v) > 1 else 0] for v in legacy) for i in range(n)]
        if len(p.data_filler) not in (0, 1, n):
            raise LayerError(f"give 1 data_filler or one per top ({n}), got {len(p.data_filler)}",
                             "dummy_data_param.data_filler")
        fill = p.data_filler or [FILLER.defaults()]
        self.fill = [fill[i if len(fill) > 1 else 0] for i in range(n)]
        for i, t in enumerate(tops):
            t.reshape(shapes[i if len(shapes) > 1 else 0], self.dtype)
        self.refill = [f.type != "CONSTANT" for f in self.fill]
        for f, t in zip(self.fill, tops):
            fill_blob(f, t.data, self.rng)

    def forward(self, bottoms, tops):
        for f, t, again in zip(self.fill, tops, self.refill):
            if again:
                fill_blob(f, t.data, self.rng)

    def backward(self, tops, propagate_down, bottoms):
        pass


MEMORY_DATA = Message("MemoryDataParameter", [
    Field("batch_size", "int", REQUIRED, "samples per batch", check=positive, number=1),
    Field("channels", "int", REQUIRED, "channels of each sample", check=positive, number=2),
    Field("height", "int", REQUIRED, "height of each sample", check=positive, number=3),
    Field("width", "int", REQUIRED, "width of each sample", check=positive, number=4),
], doc="The shape of the arrays a MemoryData layer is given.", number=119)


@register
class MemoryData(Layer):
    type = "MemoryData"
    makes_data = True
    draw_kind = "data"
    doc = ("Batches of (data, label) from arrays given in Python: net.layer_dict[name].set_input_arrays(data, "
           "labels), as pycaffe's; each forward takes the next batch, wrapping around.")
    params = {"memory_data_param": MEMORY_DATA, "transform_param": TRANSFORM}
    bottoms = (0, 0)
    tops = (2, 2)
    has_backward = False

    def setup(self, bottoms, tops):
        p = self.p.memory_data_param
        self.B, self.shape = p.batch_size, (p.channels, p.height, p.width)
        self.transformer = Transformer(self.p.transform_param, self.phase, self.shape)
        tops[0].reshape((self.B,) + self.transformer.out_shape)
        tops[1].reshape((self.B,))
        self.data = self.labels = None
        self.pos = 0

    def set_input_arrays(self, data, labels):
        data = np.asarray(data)
        labels = np.asarray(labels, np.float32).reshape(-1)
        if data.ndim != 4 or data.shape[1:] != self.shape:
            raise NetcliError(f"layer '{self.name}' (MemoryData): data must be (N, {', '.join(map(str, self.shape))}), "
                              f"got {data.shape}")
        if len(data) != len(labels) or len(data) % self.B:
            raise NetcliError(f"layer '{self.name}' (MemoryData): {len(data)} samples and {len(labels)} labels; "
                              f"both must be equal and a multiple of the batch size {self.B}")
        self.data, self.labels, self.pos = data, labels, 0

    def forward(self, bottoms, tops):
        if self.data is None:
            raise NetcliError(f"layer '{self.name}' (MemoryData): call set_input_arrays(data, labels) before forward")
        k = slice(self.pos, self.pos + self.B)
        self.transformer(self.data[k], tops[0].data, np.random.default_rng([self.pos, len(self.data)]))
        tops[1].data[...] = self.labels[k]
        self.pos = (self.pos + self.B) % len(self.data)

    def backward(self, tops, propagate_down, bottoms):
        pass
