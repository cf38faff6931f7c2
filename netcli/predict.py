"""Classify new inputs with a trained net (pycaffe's caffe.Classifier; `netcli predict`).

The net: a deploy net (an Input layer) or a train/test net, whose TEST data layer's top is fed
instead of read. The preprocessing, in this order of preference: the TEST data layer's (sample
shape, channel order, mean, scale, centre crop) when the net has one, else what the weights
file keeps (netcli train writes it), else none: images are resized to the input and go in as
0..255 pixels, with a warning. Images are read with Pillow (grey for 1 channel; 3 channels in
the order the training data had, Caffe's BGR when unknown) and resized bilinearly.
Probabilities: a Softmax output as it is; otherwise the scores under the net's softmax loss (or
its first output), through a softmax.

As pycaffe's Classifier and classify.py: images may be resized to `image_dims` larger than the
net's input, then cut to it: the centre crop, or 10 crops (the 4 corners and the centre, and their
left-right mirrors; caffe.io.oversample's positions) whose probabilities are averaged.
"""
from __future__ import annotations

import os

import numpy as np

from .data.images import IMAGE_EXT
from .data.transform import Preprocessing, mean_value_count
from .errors import NetcliError
from . import log
from .net import Net
from .config.paths import open_text
from .io.weights import read_preprocessing
from .text import printable


class Classifier:
    """Classifier(model, weights): `predict(images)` -> (N, classes) probabilities, for images as
    arrays (H, W, 3) RGB or (H, W) grey, uint8 0..255 (as Pillow gives them), or file paths."""

    def __init__(self, model, weights, stages=(), level=0, labels=None, scale=None, mean=None, colors=None,
                 gpu=None, allow_python=None, image_dims=None):
        """scale, mean ((C,) values, or a (C, H, W) image: a .binaryproto/.npy path or an array)
        and colors ("RGB" or "BGR") replace what the net or the weights say, as Caffe's
        classify.py flags (--raw_scale, --mean_file, --channel_swap) do. gpu: a CUDA device
        number (None or -1: the CPU). allow_python: run the net's Python layers (netcli.Net's
        argument). image_dims: (H, W) images are resized to before they are cut to the net's input
        (default: the size the preprocessing knows, else the input's), as caffe.Classifier's."""
        from .exec import device_of
        self.net = Net(model, phase="TEST", weights=weights, stages=stages, level=level, allow_python=allow_python,
                       device=device_of(gpu), inference=True, release_rows="auto")
        net = self.net
        data = net.data_layers()
        if net.inputs:
            self.input, self.start = net.inputs[0], None
            self.preprocessing = read_preprocessing(weights) if weights else None
        elif data:
            layer = data[0]
            self.input = layer.top_names[0]
            i = net.layers.index(layer)
            if i + 1 >= len(net.layers):
                raise NetcliError(f"net '{net.name}' has nothing after its data layer to classify with")
            self.start = net.layer_names[i + 1]
            self.preprocessing = Preprocessing.of_data_layer(layer)
        else:
            raise NetcliError(f"net '{net.name}' has no Input layer and no data layer: nothing says what to feed")
        shape = net.blobs[self.input].shape
        self.batch = shape[0]
        self.known = self.kept = self.preprocessing is not None     # kept: by a data layer or the weights
        if self.preprocessing is None:
            self.preprocessing = Preprocessing(shape[1:], "BGR")
        else:
            C, H, W = self.preprocessing.shape
            c = self.preprocessing.crop_size
            if (C, c or H, c or W) != tuple(shape[1:]):
                raise NetcliError(f"the preprocessing kept in {weights} makes inputs of shape {(C, c or H, c or W)}; "
                                  f"the net's '{self.input}' is {tuple(shape[1:])}")
        self._override(scale, mean, colors)
        self.output, self.softmax = self._scores()
        self.labels = list(labels) if labels is not None else None
        self.crop_dims = tuple(shape[2:])
        self.image_dims = tuple(int(d) for d in image_dims) if image_dims is not None else \
            tuple(self.preprocessing.shape[1:])
        if len(self.image_dims) != 2 or min(self.image_dims) < 1 or len(self.crop_dims) != 2 or \
                any(i < c for i, c in zip(self.image_dims, self.crop_dims)):
            raise NetcliError(f"image size {'x'.join(map(str, self.image_dims))} is smaller than the net's input "
                              f"{'x'.join(map(str, self.crop_dims))}: nothing to crop it from")
        classes = int(np.prod(net.blobs[self.output].shape[1:]))
        if self.labels is not None and len(self.labels) != classes:
            log.warn(f"{len(self.labels)} labels for net '{net.name}', which scores {classes} classes "
                     f"(output '{self.output}'): the names may not be its classes")

    def _override(self, scale, mean, colors):
        pre = self.preprocessing
        if scale is not None:
            pre.scale = float(scale)
        if colors is not None:
            pre.colors = colors.upper()
        if mean is not None:
            if isinstance(mean, (str, os.PathLike)):
                from .layers.data import _load_mean
                from .layers.base import LayerError
                try:
                    mean = _load_mean(os.fspath(mean), (pre.shape[0], None, None))
                except LayerError as e:
                    raise NetcliError(str(e).replace("mean_file ", "", 1)) from None
            mean = np.asarray(mean, np.float32)
            if mean.ndim == 1:
                problem = mean_value_count(len(mean), pre.shape[0])
                if problem:
                    raise NetcliError("--" + problem.replace("mean_value", "mean-value", 1))
                mean = mean.reshape(-1, 1, 1)
            elif mean.shape[0] != pre.shape[0]:
                raise NetcliError(f"the mean has {mean.shape[0]} channels, the net's inputs {pre.shape[0]}")
            elif mean.shape[1:] != tuple(pre.shape[1:]):
                # Caffe's classify.py: a mean image of another size is resized to the input (bilinear)
                from PIL import Image
                mean = np.stack([np.asarray(Image.fromarray(m).resize((pre.shape[2], pre.shape[1]), Image.BILINEAR))
                                 for m in mean.astype(np.float32)])
            pre.mean = mean
        if scale is not None or mean is not None or colors is not None:
            self.known = True

    def _scores(self):
        """(the blob holding class scores, whether they still need a softmax)."""
        net = self.net
        for layer in net.layers:
            if layer.class_scores == "top" and layer.top_names[0] in net.outputs:
                return layer.top_names[0], False
        for layer, bottoms in zip(net.layers, net.bottom_vecs):
            if layer.class_scores == "bottom" and not layer.metric:
                return _origin(net, bottoms[0].name), True
        outs = [o for o in net.outputs if net.blobs[o].data.ndim >= 2]
        if not outs:
            raise NetcliError(f"net '{net.name}' has no output with class scores")
        return outs[0], True

    def raw(self, images, dims=None):
        """Images (arrays or paths) as the raw samples the preprocessing expects: (N, C, H, W)
        (or of size `dims`, (H, W))."""
        C, H, W = self.preprocessing.shape
        H, W = dims or (H, W)
        out = np.empty((len(images), C, H, W), np.float32)
        for i, im in enumerate(images):
            out[i] = _to_chw(im, C, H, W, self.preprocessing.colors)
        return out

    def predict(self, images=None, raw=None, oversample=False):
        """Class probabilities (N, classes) for `images`, or for raw samples (N, C, H, W) already
        at the preprocessing's shape (as a dataset holds them). Images are resized to image_dims;
        where that is not the preprocessing's own size, or with `oversample`, they are cut to the
        net's input as pycaffe's Classifier.predict cuts them: the centre crop, or (oversample) 10
        crops whose probabilities are averaged."""
        if (images is None) == (raw is None):
            raise NetcliError("Classifier.predict takes images or raw samples (one of the two)")
        if images is not None and (oversample or self.image_dims != tuple(self.preprocessing.shape[1:])):
            from .predict_crops import crop_inputs
            x = crop_inputs(self.raw(images, self.image_dims), self.preprocessing, self.crop_dims, oversample)
            probs = self._probabilities(x)
            return probs.reshape(len(images), 10, -1).mean(axis=1) if oversample and len(images) else probs
        raw = self.raw(images) if raw is None else np.asarray(raw)
        x = self.preprocessing(raw) if len(raw) else np.zeros((0,) + self.net.blobs[self.input].shape[1:], np.float32)
        return self._probabilities(x)

    def _probabilities(self, x):
        """The net's class probabilities (N, classes) for prepared inputs x (N, C, h, w)."""
        probs = []
        for lo in range(0, len(x), self.batch):
            chunk = x[lo:lo + self.batch]
            feed = np.zeros(self.net.blobs[self.input].shape, np.float32)
            feed[:len(chunk)] = chunk
            self.net.forward(start=self.start, **{self.input: feed})
            s = self.net.blobs[self.output].data.reshape(self.batch, -1)[:len(chunk)].astype(np.float64)
            if self.softmax:
                s = np.exp(s - s.max(axis=1, keepdims=True))
                s /= s.sum(axis=1, keepdims=True)
            probs.append(s)
        return np.concatenate(probs) if probs else np.zeros((0, 0))

    def top_k(self, probs, k=5):
        """[[{class, label?, prob}, ...] per row], the k most likely, most likely first."""
        rows = []
        for p in probs:
            order = np.argsort(-p, kind="stable")[:k]
            rows.append([dict({"class": int(c), "prob": round(float(p[c]), 6)},
                              **({"label": self.labels[c]} if self.labels and c < len(self.labels) else {}))
                         for c in order])
        return rows


def _origin(net, blob):
    """The blob a Split copy stands for."""
    for layer, bottoms, tops in zip(net.layers, net.bottom_vecs, net.top_vecs):
        if layer.alias and any(t.name == blob for t in tops):
            return bottoms[0].name
    return blob


def _to_chw(im, C, H, W, colors):
    try:
        from PIL import Image
    except ImportError:
        raise NetcliError("predicting on images needs Pillow: pip install 'netcli[images]' (or give an .npz)") from None
    if isinstance(im, (str, os.PathLike)):
        from .data.images import ImageError, decode
        try:
            pic = decode(im, "L" if C == 1 else "RGB")
        except (OSError, ImageError) as e:
            raise NetcliError(f"cannot read image {printable(os.fspath(im))}: {e}") from None
    else:
        a = np.asarray(im)
        if a.dtype != np.uint8:
            a = np.clip(a, 0, 255).astype(np.uint8)
        pic = Image.fromarray(a)
        pic = pic.convert("L" if C == 1 else "RGB")
    if C not in (1, 3):
        raise NetcliError(f"the net takes {C}-channel inputs: images (1 or 3 channels) do not fit; give an .npz")
    if pic.size != (W, H):
        pic = pic.resize((W, H), Image.BILINEAR)
    a = np.asarray(pic, np.float32)
    if C == 1:
        return a[None]
    a = a.transpose(2, 0, 1)
    return a[::-1] if colors == "BGR" else a


def read_inputs(paths):
    """[(name, image path)] and [(name, raw sample)] from image files, folders (their image
    files, sorted) and .npz files (array 'data', or the only array: (N, C, H, W) or (N, H, W))."""
    from .io.npzfile import read_npz
    images, samples = [], []
    for p in paths:
        p = os.fspath(p)
        if os.path.isdir(p):
            found = sorted(f for f in os.listdir(p) if f.lower().endswith(IMAGE_EXT))
            if not found:
                raise NetcliError(f"{p}: no image files ({', '.join(IMAGE_EXT)}) in this folder")
            images += [(os.path.join(p, f), os.path.join(p, f)) for f in found]
        elif p.endswith(".npz"):
            arrays = read_npz(p, "inputs")
            a = arrays.get("data", next(iter(arrays.values())) if len(arrays) == 1 else None)
            if a is None:
                raise NetcliError(f"{p}: holds {', '.join(arrays)}; predict reads the array 'data'")
            a = a[:, None] if a.ndim == 3 else a
            if a.ndim != 4:
                raise NetcliError(f"{p}: 'data' must be (N, C, H, W) or (N, H, W), got shape {a.shape}")
            samples += [(f"{p}[{i}]", a[i]) for i in range(len(a))]
        elif os.path.exists(p):           # not a regular file: refused when it is opened
            images.append((p, p))
        else:
            raise NetcliError(f"{p}: no such file or folder")
    return images, samples


def read_labels(path):
    """Class names, one per line (Caffe's synset_words.txt and the like)."""
    try:
        with open_text(path) as f:
            return [line.strip() for line in f if line.strip()]
    except (OSError, UnicodeDecodeError) as e:
        raise NetcliError(f"{path}: cannot read the labels: {getattr(e, 'strerror', None) or e}") from None


CLASSIFY_DIMS = (256, 256)     # Caffe's classify.py's --images_dim default


def predict(model, weights, inputs, top_k=5, labels=None, stages=(), level=0, scale=None, mean=None, colors=None,
            gpu=None, images_dim=None, center_only=False):
    """[(input name, top-k list)] for the inputs (netcli predict); the Classifier second. Images
    are resized to `images_dim` (H, W); default: the size the data layer or the weights keep, else
    (a deploy net with Caffe's weights) classify.py's 256x256 where the input fits in it. Images
    larger than the input are cut to it as classify.py does: the centre crop (`center_only`) or
    10 crops, averaged."""
    clf = Classifier(model, weights, stages, level, read_labels(labels) if labels else None, scale, mean, colors,
                     gpu, image_dims=images_dim)
    if images_dim is None and not clf.kept and all(c <= d for c, d in zip(clf.crop_dims, CLASSIFY_DIMS)):
        clf.image_dims = CLASSIFY_DIMS
    oversample = not center_only and clf.image_dims != clf.crop_dims
    images, samples = read_inputs(inputs)
    if samples and tuple(samples[0][1].shape) != tuple(clf.preprocessing.shape):
        raise NetcliError(f"{samples[0][0]}: samples of shape {samples[0][1].shape}; the net's raw inputs are "
                          f"{clf.preprocessing.shape}")
    rows = []
    if images:
        rows += zip([n for n, _ in images], clf.top_k(clf.predict([p for _, p in images], oversample=oversample),
                                                      top_k))
    if samples:
        rows += zip([n for n, _ in samples], clf.top_k(clf.predict(raw=np.stack([s for _, s in samples])), top_k))
    return rows, clf
