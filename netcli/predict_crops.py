"""Cutting resized images to a net's input as pycaffe does (python/caffe/classifier.py and
caffe.io.oversample): the centre crop, or 10 crops: the four corners and the centre, then the same
five mirrored left-right. Positions follow Caffe's arithmetic (centre = size / 2 - crop / 2, cut
to an int), so the crops are the pixels Caffe's would be."""
from __future__ import annotations

import numpy as np


def center_box(image_dims, crop_dims):
    """(top, left) of the centre crop, as Classifier.predict computes it."""
    return tuple(int(i / 2.0 - c / 2.0) for i, c in zip(image_dims, crop_dims))


def crop_boxes(image_dims, crop_dims):
    """The five (top, left) of caffe.io.oversample: corners (top-left, top-right, bottom-left,
    bottom-right), then the centre."""
    (H, W), (h, w) = image_dims, crop_dims
    return [(i, j) for i in (0, H - h) for j in (0, W - w)] + [center_box(image_dims, crop_dims)]


def oversample(images, crop_dims):
    """caffe.io.oversample on (N, C, H, W) images: (10 N, C, h, w), per image the five crops of
    crop_boxes then their mirrors."""
    h, w = crop_dims
    boxes = crop_boxes(images.shape[2:], crop_dims)
    out = np.empty((10 * len(images),) + images.shape[1:2] + (h, w), np.float32)
    for n, im in enumerate(images):
        for k, (t, l) in enumerate(boxes):
            out[10 * n + k] = im[:, t:t + h, l:l + w]
            out[10 * n + 5 + k] = im[:, t:t + h, l:l + w][:, :, ::-1]
    return out


def center_crop(images, crop_dims):
    t, l = center_box(images.shape[2:], crop_dims)
    return np.ascontiguousarray(images[:, :, t:t + crop_dims[0], l:l + crop_dims[1]], np.float32)


def crop_inputs(raw, pre, crop_dims, ten=False):
    """Resized raw images (N, C, H, W) -> the net's inputs: the preprocessing's mean subtracted
    (an image mean of the images' size before cutting, as a data layer subtracts it; of the
    input's size or per channel after; of another size resized to the images' first), the crops (10
    with `ten`) cut, then scaled."""
    x = np.array(raw, np.float32)
    mean = pre.mean
    after = None
    if mean is not None:
        if mean.shape[1:] == x.shape[2:]:
            x -= mean
        elif mean.shape[1:] == tuple(crop_dims) or mean.shape[1:] == (1, 1):
            after = mean
        else:
            x -= _resized(mean, x.shape[2:])
    out = oversample(x, crop_dims) if ten else center_crop(x, crop_dims)
    if after is not None:
        out -= after
    out *= np.float32(pre.scale)
    return out


def _resized(mean, dims):
    from PIL import Image
    H, W = dims
    return np.stack([np.asarray(Image.fromarray(m).resize((W, H), Image.BILINEAR)) for m in mean.astype(np.float32)])
