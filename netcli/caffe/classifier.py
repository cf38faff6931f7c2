"""caffe.Classifier: pycaffe's (Caffe 1.0's python/caffe/classifier.py), a caffe.Net with a
caffe.io.Transformer: images are resized to image_dims, cropped to the net's input (the centre,
or the 10 crops of oversample, their predictions averaged), preprocessed, and forwarded.

(netcli.Classifier is netcli's own, which reads the preprocessing kept in a netcli weights file;
this one takes pycaffe's arguments and gives pycaffe's numbers.)"""
from __future__ import annotations

import numpy as np

from . import TEST
from .io import input_transformer, oversample, resize_image
from .pynet import Net


class Classifier(Net):
    """Classifier(model_file, pretrained_file, image_dims=None, mean=None, input_scale=None,
    raw_scale=None, channel_swap=None)."""

    def __init__(self, model_file, pretrained_file, image_dims=None, mean=None, input_scale=None,
                 raw_scale=None, channel_swap=None):
        super().__init__(model_file, TEST, weights=pretrained_file)
        in_ = self.inputs[0]
        self.transformer = input_transformer(self, mean, input_scale, raw_scale, channel_swap)
        self.crop_dims = np.array(self.blobs[in_].data.shape[2:])
        self.image_dims = self.crop_dims if not image_dims else image_dims

    def predict(self, inputs, oversample=True):
        """(N, classes) predictions for N images (H, W, K) float, as caffe.io.load_image gives:
        each resized to image_dims, then 10 crops averaged (oversample) or the centre crop."""
        input_ = np.zeros((len(inputs), self.image_dims[0], self.image_dims[1], inputs[0].shape[2]), np.float32)
        for ix, in_ in enumerate(inputs):
            input_[ix] = resize_image(in_, self.image_dims)
        if oversample:
            input_ = _oversample(input_, self.crop_dims)
        else:
            center = np.array(self.image_dims) / 2.0
            crop = np.tile(center, (1, 2))[0] + np.concatenate([-self.crop_dims / 2.0, self.crop_dims / 2.0])
            crop = crop.astype(int)
            input_ = input_[:, crop[0]:crop[2], crop[1]:crop[3], :]
        caffe_in = np.zeros(np.array(input_.shape)[[0, 3, 1, 2]], dtype=np.float32)
        for ix, in_ in enumerate(input_):
            caffe_in[ix] = self.transformer.preprocess(self.inputs[0], in_)
        out = self.forward_all(**{self.inputs[0]: caffe_in})
        predictions = out[self.outputs[0]]
        if oversample:
            predictions = predictions.reshape((len(predictions) // 10, 10, -1)).mean(1)
        return predictions


_oversample = oversample      # the argument of predict() has the function's name
