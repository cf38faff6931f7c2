"""Update rules, one module each (sgd.py, adam.py, ...), registered by Caffe's name when their
module is imported; every module of this package is imported here, so a new rule is one new file.
The solver schema, the prototxt writer and the Solver read the rules from `RULES`."""
import importlib
import pkgutil

from .base import RULES, Rule, solver_fields

for _m in pkgutil.iter_modules(__path__):
    if _m.name not in ("base", "cuda", "element"):        # the shared parts; the rest are rules
        importlib.import_module(f"{__name__}.{_m.name}")

_order = sorted(RULES.items(), key=lambda kv: (kv[1].solver_type is None, kv[1].solver_type or 0, kv[0]))
RULES.clear()
RULES.update(_order)                                  # Caffe's order, then the others by name
TYPES = tuple(RULES)                                  # the schema's spellings (upper case)
NAMES = {k: cls.name for k, cls in RULES.items()}     # ... and Caffe's (Nesterov, AdaGrad, ...)

__all__ = ["NAMES", "RULES", "Rule", "TYPES", "solver_fields"]
