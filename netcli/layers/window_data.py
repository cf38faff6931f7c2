"""WindowData: R-CNN's training windows (Caffe's WindowData layer).

The window file lists images and boxes:

    # 0                      (image index)
    /path/to/image.jpg
    3                        (channels, height, width)
    500
    353
    2                        (number of windows)
    15 0.81 156 97 351 270   (class, overlap with a ground-truth box, x1 y1 x2 y2)
    0 0.12 1 1 100 80

Windows with overlap >= fg_threshold are foreground (their class), those below bg_threshold
background (class 0). Each batch draws fg_fraction of its samples from the foreground and the
rest from the background, at random; each window is cut out with context_pad pixels of context
(warped, or made square first with crop_mode "square"), resized to crop_size, maybe mirrored,
less the mean, times scale. As in Caffe, `mirror` applies in every phase.
"""
from __future__ import annotations

import math

import numpy as np

from ..config.schema import Field, Message, REQUIRED, non_negative, positive
from ..data.sources import DataError, read_image
from ..data.transform import TRANSFORM, mean_value_count
from ..errors import NetcliError
from ..config.paths import open_text
from .base import Layer, LayerError, register

WINDOW_DATA = Message("WindowDataParameter", [
    Field("source", "str", REQUIRED, "the window file (format: netcli/layers/window_data.py)", number=1),
    Field("batch_size", "int", REQUIRED, "windows per batch", check=positive, number=4),
    Field("fg_threshold", "float", 0.5, "a window overlapping a ground-truth box this much is foreground", number=7),
    Field("bg_threshold", "float", 0.5, "a window overlapping less than this is background (class 0)", number=8),
    Field("fg_fraction", "float", 0.25, "the share of each batch drawn from the foreground", number=9),
    Field("context_pad", "int", 0, "pixels of context around each window, at the output scale", check=non_negative, number=10),
    Field("crop_mode", ("warp", "square"), "warp", "warp the window to a square, or widen it to one first", number=11, proto={"type": "string"}),
    Field("cache_images", "bool", False, "keep the decoded images in memory", number=12),
    Field("root_folder", "str", "", "prefix of every image path", number=13),
    Field("scale", "float", 1.0, "multiply pixels by this after subtracting the mean", number=2),
    Field("mean_file", "str", None, "deprecated: use transform_param.mean_file", number=3),
    Field("crop_size", "int", 0, "deprecated: use transform_param.crop_size", check=non_negative, number=5),
    Field("mirror", "bool", False, "deprecated: use transform_param.mirror", number=6),
], doc="Where a WindowData layer reads its windows.", number=129)


def read_window_file(path, root_folder, fg_threshold, bg_threshold):
    """([(image path, (C, H, W))], foreground windows, background windows), each window
    (image index, label, x1, y1, x2, y2)."""
    try:
        with open_text(path) as f:
            words = [(n + 1, w) for n, line in enumerate(f) for w in line.split()]
    except (OSError, UnicodeDecodeError) as e:
        raise DataError(f"{path}: cannot read the window file: {getattr(e, 'strerror', None) or e}") from None
    images, fg, bg = [], [], []
    at = 0

    def take(kind, what):
        nonlocal at
        if at >= len(words):
            raise DataError(f"{path}: ends where {what} was expected")
        line, w = words[at]
        at += 1
        try:
            v = kind(w)
            if kind is int and not -2 ** 31 <= v < 2 ** 31:     # Caffe reads an int
                raise ValueError
            return v
        except ValueError:
            raise DataError(f"{path}:{line}: expected {what}, got {w[:40]!r}") from None

    while at < len(words):
        line, mark = words[at]
        if mark != "#":
            raise DataError(f"{path}:{line}: expected '# <image index>', got {mark!r}")
        at += 1
        index = take(int, "the image index")
        if index != len(images):
            raise DataError(f"{path}:{line}: image index {index}, expected {len(images)} (they count from 0)")
        image = take(str, "the image path")
        shape = tuple(take(int, d) for d in ("channels", "height", "width"))
        images.append((root_folder + image, shape))
        for _ in range(take(int, "the number of windows")):
            label, overlap = take(int, "a class"), take(float, "an overlap")
            box = tuple(take(int, c) for c in ("x1", "y1", "x2", "y2"))
            if overlap >= fg_threshold:
                if label <= 0:
                    raise DataError(f"{path}:{words[at - 1][0]}: a foreground window needs a class > 0, got {label}")
                fg.append((index, label) + box)
            elif overlap < bg_threshold:
                bg.append((index, 0) + box)
    if not images:
        raise DataError(f"{path}: lists no images")
    return images, np.asarray(fg, np.int64).reshape(-1, 6), np.asarray(bg, np.int64).reshape(-1, 6)


@register
class WindowData(Layer):
    type = "WindowData"
    makes_data = True
    draw_kind = "data"
    doc = "R-CNN's training windows: foreground and background boxes cut from images (Caffe's WindowData)."
    params = {"window_data_param": WINDOW_DATA, "transform_param": TRANSFORM}
    bottoms = (0, 0)
    tops = (2, 2)
    has_backward = False
    batch_key = "window_data_param"

    def setup(self, bottoms, tops):
        from ..config.paths import resolve
        from .data import _load_mean
        p, t = self.p.window_data_param, self.p.transform_param
        self.crop = t.crop_size or p.crop_size
        if not self.crop:
            raise LayerError("WindowData needs transform_param.crop_size (the output size)", "transform_param.crop_size")
        if self.crop <= 2 * p.context_pad:
            raise LayerError(f"crop_size {self.crop} leaves nothing inside context_pad {p.context_pad}",
                             "window_data_param.context_pad")
        try:
            source = resolve(p.source, self.base_dir, "window file")
            self.images, self.fg, self.bg = read_window_file(source, p.root_folder, p.fg_threshold, p.bg_threshold)
        except NetcliError as e:
            raise LayerError(str(e), "window_data_param.source") from None
        self.n_fg = int(p.batch_size * p.fg_fraction)
        for n, windows, what in ((self.n_fg, self.fg, "foreground"), (p.batch_size - self.n_fg, self.bg, "background")):
            if n and not len(windows):
                raise LayerError(f"{source} has no {what} windows, and each batch needs {n} "
                                 f"(fg_threshold {p.fg_threshold}, bg_threshold {p.bg_threshold})",
                                 "window_data_param.fg_fraction")
        C = self.images[0][1][0]
        self.C, self.B, self.wp = C, p.batch_size, p
        self.mirror, self.scale = t.mirror or p.mirror, p.scale
        self.mean = None
        mean_file = t.mean_file or p.mean_file
        if mean_file:
            try:
                mf = resolve(mean_file, self.base_dir, "mean_file")
            except NetcliError as e:
                raise LayerError(str(e), "transform_param.mean_file") from None
            m = _load_mean(mf, (C, None, None)).astype(np.float32)
            off = (m.shape[2] - self.crop) // 2
            if off < 0 or m.shape[1] < self.crop:
                raise LayerError(f"mean_file {mf} ({m.shape[1]}x{m.shape[2]}) is smaller than crop_size {self.crop}",
                                 "transform_param.mean_file")
            self.mean = m[:, off:off + self.crop, off:off + self.crop]   # Caffe: the centre, by the width's offset
        elif t.mean_value:
            if mean_value_count(len(t.mean_value), C):
                raise LayerError(mean_value_count(len(t.mean_value), C), "transform_param.mean_value")
            self.mean = np.broadcast_to(np.asarray(t.mean_value, np.float32).reshape(-1, 1, 1),
                                        (C, self.crop, self.crop))
        self.cache = {}
        tops[0].reshape((self.B, C, self.crop, self.crop), self.dtype)
        tops[1].reshape((self.B,), self.dtype)

    def _image(self, index):
        if index in self.cache:
            return self.cache[index]
        path, (C, _, _) = self.images[index]
        try:
            img = read_image(path, C == 3, where=f"layer '{self.name}' (WindowData): ")
        except ImportError:
            raise NetcliError("WindowData needs Pillow: pip install 'netcli[images]'") from None
        if self.wp.cache_images:
            self.cache[index] = img
        return img

    def forward(self, bottoms, tops):
        from PIL import Image
        p, crop = self.wp, self.crop
        out, labels = tops[0].data, tops[1].data
        out[...] = 0
        item = 0
        for windows, count in ((self.bg, self.B - self.n_fg), (self.fg, self.n_fg)):   # Caffe: background first
            for _ in range(count):
                index, label, x1, y1, x2, y2 = (int(v) for v in windows[self.rng.integers(len(windows))])
                flip = self.mirror and self.rng.integers(2) == 1
                img = self._image(index)
                H, W = img.shape[1:]
                size, pad_h, pad_w = (crop, crop), 0, 0
                if p.context_pad > 0 or p.crop_mode == "square":
                    x1, y1, x2, y2, size, pad_h, pad_w = _context_box(x1, y1, x2, y2, W, H, crop, p.context_pad,
                                                                      p.crop_mode == "square", flip)
                x1, y1 = max(x1, 0), max(y1, 0)
                x2, y2 = min(x2, W - 1), min(y2, H - 1)
                patch = img[:, y1:y2 + 1, x1:x2 + 1].transpose(1, 2, 0)
                im = Image.fromarray(patch[:, :, 0] if patch.shape[2] == 1 else np.ascontiguousarray(patch))
                w = np.asarray(im.resize((size[1], size[0]), Image.BILINEAR))
                w = (w[:, :, None] if w.ndim == 2 else w).transpose(2, 0, 1).astype(np.float32)
                if flip:
                    w = w[:, :, ::-1]
                region = (slice(None), slice(pad_h, pad_h + size[0]), slice(pad_w, pad_w + size[1]))
                if self.mean is not None:
                    w = w - self.mean[region]
                out[item][region] = w * self.scale
                labels[item] = label
                item += 1


def _cround(v):
    """C's round(): halves away from zero (Python's round() goes to even)."""
    return int(math.copysign(math.floor(abs(v) + 0.5), v))


def _context_box(x1, y1, x2, y2, W, H, crop, context_pad, square, flip):
    """Caffe's window with context: the box grown by crop / (crop - 2 context_pad) about its
    centre (made square first in square mode), clipped to the image; returns the clipped box,
    the (height, width) it is resized to, and where it goes in the crop_size output."""
    context_scale = crop / (crop - 2 * context_pad)
    half_h, half_w = (y2 - y1 + 1) / 2.0, (x2 - x1 + 1) / 2.0
    cx, cy = x1 + half_w, y1 + half_h
    if square:
        half_h = half_w = max(half_h, half_w)
    x1, x2 = _cround(cx - half_w * context_scale), _cround(cx + half_w * context_scale)
    y1, y2 = _cround(cy - half_h * context_scale), _cround(cy + half_h * context_scale)
    unclipped_h, unclipped_w = y2 - y1 + 1, x2 - x1 + 1
    pad_x1, pad_y1 = max(0, -x1), max(0, -y1)
    pad_x2, pad_y2 = max(0, x2 - W + 1), max(0, y2 - H + 1)
    x1, x2, y1, y2 = x1 + pad_x1, x2 - pad_x2, y1 + pad_y1, y2 - pad_y2
    scale_x, scale_y = crop / unclipped_w, crop / unclipped_h
    width = _cround((x2 - x1 + 1) * scale_x)
    height = _cround((y2 - y1 + 1) * scale_y)
    pad_x1, pad_x2 = _cround(pad_x1 * scale_x), _cround(pad_x2 * scale_x)
    pad_h = _cround(pad_y1 * scale_y)
    pad_w = pad_x2 if flip else pad_x1
    height, width = min(height, crop - pad_h), min(width, crop - pad_w)
    return x1, y1, x2, y2, (max(height, 1), max(width, 1)), pad_h, pad_w
