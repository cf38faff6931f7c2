"""caffe.io: pycaffe's input helpers (Caffe 1.0's python/caffe/io.py), in NumPy.

Transformer turns (H, W, K) images, float in [0, 1] as load_image gives them, into the net's
(K, H, W) inputs: resize to the input size, transpose, channel swap, raw scale, mean, input
scale, in that order; deprocess undoes it. resize_image is skimage's order-1 resize with
mode='constant' (what Caffe called), computed here in NumPy; load_image reads through
netcli/data/images.py (Pillow, the formats netcli reads). The BlobProto and Datum helpers take
and give caffe_pb2 messages where protobuf is installed, else netcli's wire-format stand-ins
(messages.py); both serialize to the same bytes Caffe writes.
"""
from __future__ import annotations

import numpy as np

from ..errors import NetcliError
from .messages import message


# -- BlobProto and Datum ------------------------------------------------------------------------------
def blobproto_to_array(blob, return_diff=False):
    """A BlobProto's data (or diff) as an array of its shape (legacy num/channels/height/width
    when any of them is set)."""
    data = np.array(blob.diff if return_diff else blob.data, dtype=np.float64)
    if any(blob.HasField(f) for f in ("num", "channels", "height", "width")):
        return data.reshape(blob.num, blob.channels, blob.height, blob.width)
    return data.reshape(tuple(blob.shape.dim))


def array_to_blobproto(arr, diff=None):
    """An array (and its diff) as a BlobProto with its shape."""
    arr = np.asarray(arr)
    blob = message("BlobProto")
    blob.shape.dim.extend(arr.shape)
    blob.data.extend(arr.astype(float).flat)
    if diff is not None:
        blob.diff.extend(np.asarray(diff).astype(float).flat)
    return blob


def arraylist_to_blobprotovector_str(arraylist):
    """Arrays as the bytes of a BlobProtoVector."""
    vec = message("BlobProtoVector")
    vec.blobs.extend([array_to_blobproto(arr) for arr in arraylist])
    return vec.SerializeToString()


def blobprotovector_str_to_arraylist(text):
    vec = message("BlobProtoVector")
    vec.ParseFromString(text)
    return [blobproto_to_array(b) for b in vec.blobs]


def array_to_datum(arr, label=None):
    """A (C, H, W) array as a Datum: uint8 as bytes, anything else as float_data."""
    arr = np.asarray(arr)
    if arr.ndim != 3:
        raise ValueError("Incorrect array shape.")
    datum = message("Datum")
    datum.channels, datum.height, datum.width = arr.shape
    if arr.dtype == np.uint8:
        datum.data = arr.tobytes()
    else:
        datum.float_data.extend(arr.astype(float).flat)
    if label is not None:
        datum.label = label
    return datum


def datum_to_array(datum):
    """A Datum's pixels as (C, H, W): uint8 from `data`, else float from `float_data`."""
    shape = (datum.channels, datum.height, datum.width)
    if len(datum.data):
        return np.frombuffer(datum.data, dtype=np.uint8).reshape(shape)
    return np.array(datum.float_data).astype(float).reshape(shape)


# -- images -------------------------------------------------------------------------------------------
def load_image(filename, color=True):
    """An image file as (H, W, 3) float32 RGB in [0, 1] (color=False: (H, W, 1), skimage's grey
    weights 0.2125 R + 0.7154 G + 0.0721 B)."""
    from ..data.images import ImageError, decode
    try:
        im = decode(filename, "auto")
    except ImageError as e:
        raise NetcliError(f"{filename}: {e}") from None
    a = np.asarray(im, np.float32) / 255.0
    if a.ndim == 3 and not color:
        a = a @ np.array([0.2125, 0.7154, 0.0721], np.float32)
    if a.ndim == 2:
        a = a[:, :, None]
        if color:
            a = np.tile(a, (1, 1, 3))
    return a.astype(np.float32)


def _linear_weights(n_in, n_out, centres):
    """(index pairs, fractions) of linear interpolation along one axis: output i reads input
    position (i + 0.5) * n_in / n_out - 0.5 (pixel centres, skimage) or i * (n_in - 1) / (n_out - 1)
    (corners, ndimage.zoom); outside the image the value is 0 (mode='constant')."""
    i = np.arange(n_out, dtype=np.float64)
    if centres:
        pos = (i + 0.5) * (n_in / n_out) - 0.5
    else:
        pos = i * ((n_in - 1) / (n_out - 1)) if n_out > 1 else np.zeros(1)
    lo = np.floor(pos).astype(np.int64)
    return lo, pos - lo


def _resize_axis(a, axis, n_out, centres):
    n_in = a.shape[axis]
    lo, frac = _linear_weights(n_in, n_out, centres)
    padded = np.concatenate([np.zeros_like(np.take(a, [0], axis)), a, np.zeros_like(np.take(a, [0], axis))], axis)
    lo_v = np.take(padded, np.clip(lo + 1, 0, n_in + 1), axis)
    hi_v = np.take(padded, np.clip(lo + 2, 0, n_in + 1), axis)
    shape = [1] * a.ndim
    shape[axis] = n_out
    frac = frac.reshape(shape)
    return (1 - frac) * lo_v + frac * hi_v


def resize_image(im, new_dims, interp_order=1):
    """(H, W, K) -> (new_dims[0], new_dims[1], K) float32, as pycaffe: 1 or 3 channels through
    skimage's resize (scaled to [0, 1] and back; a constant image stays constant), others
    through ndimage.zoom. interp_order 1 (bilinear) and 0 (nearest) are supported."""
    im = np.asarray(im, np.float64)
    h, w = int(new_dims[0]), int(new_dims[1])
    if interp_order not in (0, 1):
        raise NetcliError(f"resize_image: interp_order {interp_order} (netcli has 0 and 1)")
    if im.shape[-1] in (1, 3):
        lo, hi = im.min(), im.max()
        if hi <= lo:
            return np.full((h, w, im.shape[-1]), lo, np.float32)
        std = (im - lo) / (hi - lo)
        out = _resize(std, h, w, interp_order, centres=True) * (hi - lo) + lo
    else:
        out = _resize(im, h, w, interp_order, centres=False)
    return out.astype(np.float32)


def _resize(a, h, w, order, centres):
    if order == 0:
        rows = np.minimum(((np.arange(h) + 0.5) * a.shape[0] / h).astype(np.int64), a.shape[0] - 1)
        cols = np.minimum(((np.arange(w) + 0.5) * a.shape[1] / w).astype(np.int64), a.shape[1] - 1)
        return a[rows][:, cols]
    return _resize_axis(_resize_axis(a, 0, h, centres), 1, w, centres)


def oversample(images, crop_dims):
    """The 10 crops of each image (4 corners and the centre, then their mirror images) as
    (10 * N, crop_h, crop_w, K), as classify.py averages them."""
    im_shape = np.array(images[0].shape)
    crop_dims = np.array(crop_dims)
    im_center = im_shape[:2] / 2.0
    crops_ix = np.empty((5, 4), dtype=int)
    curr = 0
    for i in (0, im_shape[0] - crop_dims[0]):
        for j in (0, im_shape[1] - crop_dims[1]):
            crops_ix[curr] = (i, j, i + crop_dims[0], j + crop_dims[1])
            curr += 1
    crops_ix[4] = np.tile(im_center, (1, 2)) + np.concatenate([-crop_dims / 2.0, crop_dims / 2.0])
    crops_ix = np.tile(crops_ix, (2, 1))
    crops = np.empty((10 * len(images), crop_dims[0], crop_dims[1], im_shape[-1]), dtype=np.float32)
    ix = 0
    for im in images:
        for crop in crops_ix:
            crops[ix] = im[crop[0]:crop[2], crop[1]:crop[3], :]
            ix += 1
        crops[ix - 5:ix] = crops[ix - 5:ix, :, ::-1, :]      # the mirrors
    return crops


# -- Transformer --------------------------------------------------------------------------------------
class Transformer:
    """Preprocessing per net input: Transformer({'data': net.blobs['data'].data.shape})."""

    def __init__(self, inputs):
        self.inputs = {k: tuple(v) for k, v in inputs.items()}
        self.transpose, self.channel_swap, self.raw_scale, self.mean, self.input_scale = {}, {}, {}, {}, {}

    def _check(self, in_):
        if in_ not in self.inputs:
            raise NetcliError(f"{in_} is not one of the net inputs: {self.inputs}")

    def preprocess(self, in_, data):
        """(H, W, K) image -> the net's (K, H', W') input."""
        self._check(in_)
        x = np.asarray(data).astype(np.float32, copy=False)
        in_dims = self.inputs[in_][2:]
        if x.shape[:2] != in_dims:
            x = resize_image(x, in_dims)
        if in_ in self.transpose:
            x = x.transpose(self.transpose[in_])
        if in_ in self.channel_swap:
            x = x[list(self.channel_swap[in_]), :, :]
        x = np.array(x, np.float32)
        if self.raw_scale.get(in_) is not None:
            x *= self.raw_scale[in_]
        if self.mean.get(in_) is not None:
            x -= self.mean[in_]
        if self.input_scale.get(in_) is not None:
            x *= self.input_scale[in_]
        return x

    def deprocess(self, in_, data):
        """The net's input back to an image: preprocess undone (but the resize)."""
        self._check(in_)
        x = np.array(data, copy=True).squeeze()
        if self.input_scale.get(in_) is not None:
            x /= self.input_scale[in_]
        if self.mean.get(in_) is not None:
            x += self.mean[in_]
        if self.raw_scale.get(in_) is not None:
            x /= self.raw_scale[in_]
        if in_ in self.channel_swap:
            x = x[np.argsort(self.channel_swap[in_]), :, :]
        if in_ in self.transpose:
            x = x.transpose(np.argsort(self.transpose[in_]))
        return x

    def set_transpose(self, in_, order):
        self._check(in_)
        if len(order) != len(self.inputs[in_]) - 1:
            raise NetcliError("Transpose order needs to have the same number of dimensions as the input.")
        self.transpose[in_] = tuple(order)

    def set_channel_swap(self, in_, order):
        self._check(in_)
        if len(order) != self.inputs[in_][1]:
            raise NetcliError("Channel swap needs to have the same number of dimensions as the input channels.")
        self.channel_swap[in_] = tuple(order)

    def set_raw_scale(self, in_, scale):
        self._check(in_)
        self.raw_scale[in_] = scale

    def set_mean(self, in_, mean):
        """A (K,) mean per channel, or an elementwise (K, H, W) mean of the input's shape."""
        self._check(in_)
        mean = np.asarray(mean)
        ms = mean.shape
        if mean.ndim == 1:
            if ms[0] != self.inputs[in_][1]:
                raise ValueError("Mean channels incompatible with input.")
            mean = mean[:, np.newaxis, np.newaxis]
        else:
            if len(ms) == 2:
                ms = (1,) + ms
            if len(ms) != 3:
                raise ValueError("Mean shape invalid")
            if ms != self.inputs[in_][1:]:
                raise ValueError("Mean shape incompatible with input shape.")
        self.mean[in_] = mean

    def set_input_scale(self, in_, scale):
        self._check(in_)
        self.input_scale[in_] = scale


def input_transformer(net, mean=None, input_scale=None, raw_scale=None, channel_swap=None):
    """The Transformer pycaffe's Classifier and Detector make for a net's first input: HWC images
    to CHW, then the given mean, scales and channel order (None: not set)."""
    in_ = net.inputs[0]
    t = Transformer({in_: net.blobs[in_].data.shape})
    t.set_transpose(in_, (2, 0, 1))
    if mean is not None:
        t.set_mean(in_, mean)
    if input_scale is not None:
        t.set_input_scale(in_, input_scale)
    if raw_scale is not None:
        t.set_raw_scale(in_, raw_scale)
    if channel_swap is not None:
        t.set_channel_swap(in_, channel_swap)
    return t
