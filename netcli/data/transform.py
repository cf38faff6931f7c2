"""Caffe's DataTransformer: (x - mean) * scale, then crop and mirror.

Crop is random in TRAIN and centred in TEST; mirror is random (50%) in TRAIN only. (Caffe also
mirrors in TEST when mirror is set, which makes test scores noisy; we gate it by phase.)"""
from __future__ import annotations

import json

import numpy as np

from ..config.schema import Field, Message, non_negative

TRANSFORM = Message("TransformationParameter", [
    Field("scale", "float", 1.0, "multiply inputs by this after subtracting the mean", number=1),
    Field("mirror", "bool", False, "TRAIN: flip each image left-right with probability 1/2", number=2),
    Field("crop_size", "int", 0, "crop square patches of this size (random in TRAIN, centre in TEST)",
          check=non_negative, number=3),
    Field("mean_file", "str", None, "the (C, H, W) mean image: Caffe's .binaryproto, or an .npy/.npz file", number=4),
    Field("mean_value", "float", None, "per-channel mean (1 or C values)", repeated=True, number=5),
    Field("force_color", "bool", False, "decode encoded Datums as 3-channel colour (grey JPEGs among colour ones)",
          number=6),
    Field("force_gray", "bool", False, "decode encoded Datums as 1-channel grey", number=7),
], doc="Preprocessing applied by data layers.", number=100)


class Transformer:
    def __init__(self, p, phase, shape, mean=None):
        """`shape`: (C, H, W) of a raw sample; `mean`: the loaded mean image or None."""
        self.p, self.train = p, phase == "TRAIN"
        C, H, W = shape
        self.crop = p.crop_size
        self.out_shape = (C, self.crop, self.crop) if self.crop else (C, H, W)
        if mean is not None:
            self.mean = mean.astype(np.float32)
        elif p.mean_value:
            self.mean = np.asarray(p.mean_value, np.float32).reshape(-1, 1, 1)
        else:
            self.mean = None
        self.H, self.W = H, W

    def __call__(self, raw, out, rng: np.random.Generator, rows=None):
        """raw: (B, C, H, W) uint8/float; out: (B, C, h, w) float32, filled in place. rows =
        (first, batch): raw holds rows first.. of a batch of that size, and gets the crops and
        mirrors those rows would get in the whole batch."""
        B = len(raw)
        first, total = rows or (0, B)
        pick = slice(first, first + B)
        c = self.crop
        if c and self.train:
            hs = rng.integers(0, self.H - c + 1, total)[pick]
            ws = rng.integers(0, self.W - c + 1, total)[pick]
        elif c:
            hs = np.full(B, (self.H - c) // 2)
            ws = np.full(B, (self.W - c) // 2)
        flip = rng.random(total)[pick] < 0.5 if self.p.mirror and self.train else np.zeros(B, bool)
        scale = np.float32(self.p.scale)
        whole_mean = self.mean is not None and self.mean.shape[1:] != (1, 1)
        if not c:                                      # the whole batch at once
            out[...] = raw
            self._normalize(out, self.mean)
            out[flip] = out[flip][..., ::-1]
            return
        for i in range(B):       # crop first, then the mean (its crop) and scale: the same numbers, less work
            h, w = hs[i], ws[i]
            x = raw[i, :, h:h + c, w:w + c].astype(np.float32)
            self._normalize(x, self.mean[:, h:h + c, w:w + c] if whole_mean else self.mean, scale)
            out[i] = x[..., ::-1] if flip[i] else x

    def _normalize(self, x, mean, scale=None):
        """(x - mean) * scale in place, in float32 (as Caffe: the mean first)."""
        if mean is not None:
            x -= mean
        if self.p.scale != 1.0:
            x *= np.float32(self.p.scale) if scale is None else scale


def mean_value_count(n, channels):
    """A complaint when `n` mean values do not fit images of `channels` channels, else None."""
    if n in (1, channels):
        return None
    want = "1 value" if channels == 1 else f"1 value or {channels} (one per channel)"
    return f"mean_value needs {want} for {channels}-channel images, got {n}"


class Preprocessing:
    """What a net's inputs went through in training, to do the same to new images (predict):
    the raw sample shape (C, H, W) images are resized to, their channel order, and the TEST
    transform (mean, scale, centre crop). Kept in the weights files `netcli train` writes
    (entries 'netcli:preprocess' and 'netcli:mean'), and read from a net's data layer."""

    KEY, MEAN_KEY = "netcli:preprocess", "netcli:mean"

    def __init__(self, shape, colors="RGB", scale=1.0, crop_size=0, mean=None):
        self.shape, self.colors = tuple(int(s) for s in shape), colors
        self.scale, self.crop_size = float(scale), int(crop_size)
        self.mean = None if mean is None else np.asarray(mean, np.float32)

    @classmethod
    def of_data_layer(cls, layer):
        t = layer.transformer
        return cls(layer.dataset.shape, layer.dataset.colors, t.p.scale, t.crop, t.mean)

    def to_arrays(self):
        meta = {"shape": list(self.shape), "colors": self.colors, "scale": self.scale, "crop_size": self.crop_size}
        out = {self.KEY: np.array(json.dumps(meta))}
        if self.mean is not None:
            out[self.MEAN_KEY] = self.mean
        return out

    @classmethod
    def from_arrays(cls, arrays):
        """The preprocessing kept in a weights file's arrays, or None."""
        if cls.KEY not in arrays:
            return None
        meta = json.loads(str(arrays[cls.KEY]))
        return cls(meta["shape"], meta["colors"], meta["scale"], meta["crop_size"], arrays.get(cls.MEAN_KEY))

    def __call__(self, raw):
        """raw (B, C, H, W) at self.shape -> the net's input, as the TEST phase transforms it
        (the mean: an image (C, H, W) or per-channel values (C, 1, 1))."""
        C, H, W = self.shape
        c = self.crop_size
        p = TRANSFORM.defaults()
        p.scale, p.crop_size = self.scale, c
        out = np.empty((len(raw), C, c or H, c or W), np.float32)
        Transformer(p, "TEST", self.shape, self.mean)(raw, out, np.random.default_rng(0))
        return out
