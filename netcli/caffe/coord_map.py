"""caffe.coord_map: pycaffe's coordinate mapping between the tops of a NetSpec (Caffe 1.0's
python/caffe/coord_map.py), for cropping as fully convolutional nets do:

    n.score = coord_map.crop(n.upscore, n.data)     # L.Crop with the offset the layers imply

A layer maps coordinates of its top to its bottom by an axis, a scale and an offset: a
convolution or pooling by 1/stride and (pad - (kernel - 1) / 2) / stride, a deconvolution by
stride and (kernel - 1) / 2 - pad, a crop by its offset; element-wise layers pass through.
"""
from __future__ import annotations

import numpy as np

from .net_spec import layers as L

PASS_THROUGH_LAYERS = ["AbsVal", "BatchNorm", "Bias", "BNLL", "Dropout", "Eltwise", "ELU", "Log", "LRN", "Exp",
                       "MVN", "Power", "ReLU", "PReLU", "Scale", "Sigmoid", "Split", "TanH", "Threshold"]


class UndefinedMapException(Exception):
    """A layer whose coordinate mapping is not defined (it ends the walk)."""


class AxisMismatchException(Exception):
    """Two maps on different axes."""


def conv_params(fn):
    params = fn.params.get("convolution_param", fn.params)
    axis = params.get("axis", 1)
    ks = np.array(params["kernel_size"], ndmin=1)
    dilation = np.array(params.get("dilation", 1), ndmin=1)
    if {"pad_h", "pad_w", "kernel_h", "kernel_w", "stride_h", "stride_w"} & set(fn.params):
        raise ValueError("cropping does not support legacy _h/_w params")
    return (axis, np.array(params.get("stride", 1), ndmin=1), (ks - 1) * dilation + 1,
            np.array(params.get("pad", 0), ndmin=1))


def crop_params(fn):
    params = fn.params.get("crop_param", fn.params)
    return params.get("axis", 2), np.array(params.get("offset", 0), ndmin=1)


def coord_map(fn):
    """(axis, scale, offset) of the map from a layer's top to its bottom."""
    if fn.type_name in ("Convolution", "Pooling", "Im2col"):
        axis, stride, ks, pad = conv_params(fn)
        return axis, 1 / stride, (pad - (ks - 1) / 2) / stride
    if fn.type_name == "Deconvolution":
        axis, stride, ks, pad = conv_params(fn)
        return axis, stride, (ks - 1) / 2 - pad
    if fn.type_name in PASS_THROUGH_LAYERS:
        return None, 1, 0
    if fn.type_name == "Crop":
        axis, offset = crop_params(fn)
        return axis - 1, 1, -offset
    raise UndefinedMapException


def compose(base_map, next_map):
    ax1, a1, b1 = base_map
    ax2, a2, b2 = next_map
    if ax1 is None:
        ax = ax2
    elif ax2 is None or ax1 == ax2:
        ax = ax1
    else:
        raise AxisMismatchException
    return ax, a1 * a2, a1 * b2 + b1


def inverse(coord_map):
    ax, a, b = coord_map
    return ax, 1 / a, -b / a


def _bottoms(top):
    """The bottoms a map walks through: all of a layer's, but a Crop's first only."""
    return top.fn.inputs[:1] if top.fn.type_name == "Crop" else top.fn.inputs


def coord_map_from_to(top_from, top_to):
    """The map from top_from's coordinates to top_to's, through their common ancestor."""
    from_maps, frontier = {top_from: (None, 1, 0)}, {top_from}
    while frontier:
        top = frontier.pop()
        try:
            for bottom in _bottoms(top):
                from_maps[bottom] = compose(from_maps[top], coord_map(top.fn))
                frontier.add(bottom)
        except UndefinedMapException:
            pass
    to_maps, frontier = {top_to: (None, 1, 0)}, {top_to}
    while frontier:
        top = frontier.pop()
        if top in from_maps:
            return compose(to_maps[top], inverse(from_maps[top]))
        try:
            for bottom in _bottoms(top):
                to_maps[bottom] = compose(to_maps[top], coord_map(top.fn))
                frontier.add(bottom)
        except UndefinedMapException:
            continue
    raise RuntimeError("Could not compute map between tops; are they connected by spatial layers?")


def crop(top_from, top_to):
    """L.Crop of top_from to top_to's extent, at the offset their layers imply."""
    ax, a, b = coord_map_from_to(top_from, top_to)
    if not np.all(a == 1):
        raise ValueError(f"scale mismatch on crop (a = {a})")
    if not np.all(b <= 0):
        raise ValueError(f"cannot crop negative offset (b = {b})")
    if not np.all(np.round(b) == b):
        raise ValueError(f"cannot crop noninteger offset (b = {b})")
    return L.Crop(top_from, top_to, crop_param=dict(axis=ax + 1, offset=list(-np.round(b).astype(int))))
