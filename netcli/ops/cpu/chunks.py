"""The images of one call in chunks (from the shape alone): a layer whose per-image arrays are
large (the patches of CaffeNet's conv2, Winograd's transforms of VGG-16's 224x224 layers) goes
through a call's images a chunk at a time, so that its arrays of one chunk stay within
CHUNK_BYTES each, instead of growing with the images of a call (a share of 32 or more);
`patch_chunks`: the convolution's patches' (ops/cpu/conv2d.py)."""
from __future__ import annotations

import math
from functools import lru_cache

import numpy as np

CHUNK_BYTES = 16 * 2 ** 20
# A call whose arrays stay within WHOLE_BYTES is not cut: CIFAR-sized layers keep their patches for
# the backward (cifar10_quick's conv2: 45 MB for 50 images), where making them again would cost time.
WHOLE_BYTES = 64 * 2 ** 20
# A call whose arrays no backward reads (a net that only infers) keeps a chunk's within
# FORWARD_BYTES, one image's where they are larger: patches made and multiplied while in cache.
# Convolution forward, 4 images, one thread, AMD EPYC Zen 5, best of 5 (whole call -> images in
# pairs -> one at a time, ms): ResNet-50's conv1 (7 MB of patches an image) 9.16 -> 8.25 -> 7.06,
# AlexNet's conv1 (4.2 MB) 5.75 -> 4.80 -> 4.67, CaffeNet's conv2 (3.3 MB) 10.15 -> 9.61 -> 10.08,
# SqueezeNet 1.1's conv1 (3.2 MB of output) 1.54 -> 1.42 -> 1.46; where the weights outweigh
# the patches the whole call is faster: AlexNet's conv3 (1.5 MB of patches, 3.4 MB of weights)
# 5.70 -> 6.35 -> 8.52, ResNet-50's 3x3 on 512 channels of 7x7 5.30 -> 6.87 -> 9.04.
FORWARD_BYTES = 8 * 2 ** 20


def image_chunks(n, per_image, keeps=True):
    """((first, stop), ...): n images in one chunk where per_image * n bytes is within
    WHOLE_BYTES, else in as few chunks as keep a chunk's within CHUNK_BYTES (at least one image
    each), equal but for one image; where no backward `keeps` the arrays, FORWARD_BYTES for both."""
    if not keeps:
        return _image_chunks(n, per_image, FORWARD_BYTES, FORWARD_BYTES)
    return _image_chunks(n, per_image, CHUNK_BYTES, WHOLE_BYTES)


@lru_cache(maxsize=4096)
def _image_chunks(n, per_image, chunk_bytes, whole_bytes):
    if per_image * n <= whole_bytes:
        return ((0, n),)
    count = min(n, max(1, -(-per_image * n // chunk_bytes)))
    return tuple((n * i // count, n * (i + 1) // count) for i in range(count))


def largest(chunks):
    return max(b - a for a, b in chunks)


def first(a, shape):
    """The leading elements of the contiguous array a, as an array of `shape` (a chunk smaller
    than the largest, in that one's buffer)."""
    if a.shape == shape:                 # one chunk: the array itself (no Python work on the hot path)
        return a
    assert a.flags.c_contiguous
    return a.reshape(-1)[:math.prod(shape)].reshape(shape)


def patch_chunks(n, C, H, W, K, KH, KW, OH, OW, group, algorithm, itemsize, keeps=True):
    """[(first, stop)]: the chunks of a call's images for "im2row" and "im2col" (the largest
    per-image array: the patches, or im2row's GEMM result, and im2col's weight gradients where a
    backward `keeps` the patches); one chunk for the others."""
    if algorithm not in ("im2row", "im2col"):
        return ((0, n),)
    P, CKK = OH * OW, C // group * KH * KW
    per_image = max(P * CKK, P * K, H * W * C) + (K * CKK if algorithm == "im2col" and keeps else 0)
    return image_chunks(n, per_image * itemsize, keeps)
