"""caffe.Detector: pycaffe's (Caffe 1.0's python/caffe/detector.py), a caffe.Net that classifies
windows of images (R-CNN style): each window is cropped (with context_pad pixels of context,
padded with the mean where it leaves the image), warped to the net's input and preprocessed.
detect_selective_search needs the selective_search_ijcv_with_python package (MATLAB), which
netcli does not provide: give the windows to detect_windows instead."""
from __future__ import annotations

import numpy as np

from ..errors import NetcliError
from . import TEST
from .io import input_transformer, load_image, resize_image
from .pynet import Net


class Detector(Net):
    def __init__(self, model_file, pretrained_file, mean=None, input_scale=None, raw_scale=None,
                 channel_swap=None, context_pad=None):
        super().__init__(model_file, TEST, weights=pretrained_file)
        self.transformer = input_transformer(self, mean, input_scale, raw_scale, channel_swap)
        self.configure_crop(context_pad)

    def detect_windows(self, images_windows):
        """[(image file, [(ymin, xmin, ymax, xmax), ...]), ...] -> one dict per window:
        window, prediction (the net's first output), filename."""
        window_inputs = []
        for image_fname, windows in images_windows:
            image = load_image(image_fname).astype(np.float32)
            for window in windows:
                window_inputs.append(self.crop(image, window))
        in_ = self.inputs[0]
        caffe_in = np.zeros((len(window_inputs), window_inputs[0].shape[2]) + self.blobs[in_].data.shape[2:],
                            dtype=np.float32)
        for ix, window_in in enumerate(window_inputs):
            caffe_in[ix] = self.transformer.preprocess(in_, window_in)
        predictions = self.forward_all(**{in_: caffe_in})[self.outputs[0]]
        detections, ix = [], 0
        for image_fname, windows in images_windows:
            for window in windows:
                detections.append({"window": window, "prediction": predictions[ix], "filename": image_fname})
                ix += 1
        return detections

    def detect_selective_search(self, image_fnames):
        raise NetcliError("Detector.detect_selective_search needs selective_search_ijcv_with_python (MATLAB), "
                          "which netcli does not provide: compute the windows and call detect_windows")

    def crop(self, im, window):
        """The window of `im` (with context padding when configured)."""
        window = np.asarray(window)
        crop = im[int(window[0]):int(window[2]), int(window[1]):int(window[3])]
        if self.context_pad:
            box = window.astype(np.float64)
            crop_size = self.blobs[self.inputs[0]].width        # square inputs, as pycaffe assumes
            scale = crop_size / (1. * crop_size - self.context_pad * 2)
            half_h, half_w = (box[2] - box[0] + 1) / 2., (box[3] - box[1] + 1) / 2.
            center = (box[0] + half_h, box[1] + half_w)
            box = np.round(np.tile(center, 2) + scale * np.array((-half_h, -half_w, half_h, half_w)))
            full_h, full_w = box[2] - box[0] + 1, box[3] - box[1] + 1
            scale_h, scale_w = crop_size / full_h, crop_size / full_w
            pad_y, pad_x = int(round(max(0, -box[0]) * scale_h)), int(round(max(0, -box[1]) * scale_w))
            im_h, im_w = im.shape[:2]
            box = np.clip(box, 0., [im_h, im_w, im_h, im_w])
            clip_h, clip_w = box[2] - box[0] + 1, box[3] - box[1] + 1
            if clip_h <= 0 or clip_w <= 0:
                raise NetcliError(f"Detector.crop: window {tuple(window)} lies outside the image")
            crop_h, crop_w = int(round(clip_h * scale_h)), int(round(clip_w * scale_w))
            crop_h, crop_w = min(crop_h, crop_size - pad_y), min(crop_w, crop_size - pad_x)
            context_crop = resize_image(im[int(box[0]):int(box[2]), int(box[1]):int(box[3])], (crop_h, crop_w))
            crop = np.ones(self.crop_dims, dtype=np.float32) * self.crop_mean
            crop[pad_y:pad_y + crop_h, pad_x:pad_x + crop_w] = context_crop
        return crop

    def configure_crop(self, context_pad):
        """The crop's (H, W, K) and, with context padding, the mean in image space to pad with."""
        in_ = self.inputs[0]
        tpose = self.transformer.transpose[in_]
        inv_tpose = [tpose[t] for t in tpose]
        self.crop_dims = np.array(self.blobs[in_].data.shape[1:])[inv_tpose]
        self.context_pad = context_pad
        if self.context_pad:
            channel_order = self.transformer.channel_swap.get(in_)
            raw_scale = self.transformer.raw_scale.get(in_)
            mean = self.transformer.mean.get(in_)
            if mean is not None:
                crop_mean = np.array(mean, np.float32).transpose(inv_tpose)
                if channel_order is not None:
                    inverse = [list(channel_order).index(i) for i in range(crop_mean.shape[2])]
                    crop_mean = crop_mean[:, :, inverse]
                if raw_scale is not None:
                    crop_mean /= raw_scale
                self.crop_mean = crop_mean
            else:
                self.crop_mean = np.zeros(self.crop_dims, dtype=np.float32)
