"""Numba kernels. Each module keeps an operation's forward and backward side by side.

Layers call these functions and nothing else array-library specific for the heavy work, so a
`numba.cuda` port replaces this package, not the layers.
"""
import os

KERNEL_MODULES = ("channels", "conv", "dropout", "fpmode", "pool", "softmax", "update")


def cold_cache():
    """True when most compiled kernels have no entry in Numba's on-disk cache yet (a fresh install,
    or a new NUMBA_CACHE_DIR): the first passes then compile them, for seconds; later runs load them."""
    import importlib
    missing = total = 0
    for name in KERNEL_MODULES:
        mod = importlib.import_module(f"{__name__}.{name}")
        for f in vars(mod).values():
            index = getattr(getattr(getattr(f, "_cache", None), "_cache_file", None), "_index_path", None)
            if index is not None and getattr(f, "__module__", None) == mod.__name__:
                total += 1
                missing += not os.path.exists(index)
    return total > 0 and missing > total // 2
