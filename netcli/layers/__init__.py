"""All layer types, registered by their Caffe type name in REGISTRY: every module of this package
is imported here, so a new layer type is one new file (with @register on its class)."""
import importlib
import pkgutil

from .base import REGISTRY, Layer, LayerError, register

for _m in sorted(m.name for m in pkgutil.iter_modules(__path__)):
    importlib.import_module(f"{__name__}.{_m}")          # registration

__all__ = ["REGISTRY", "Layer", "LayerError", "register"]
