"""All layer types, registered by their Caffe type name in REGISTRY."""
from .base import REGISTRY, Layer, LayerError, register
from . import common, vision, neuron, activations, loss, losses, data, window_data, normalization, python  # noqa: F401  (registration)

__all__ = ["REGISTRY", "Layer", "LayerError", "register"]
