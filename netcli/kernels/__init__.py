"""Numba kernels. Each module keeps an operation's forward and backward side by side.

Layers call these functions and nothing else array-library specific for the heavy work, so a
`numba.cuda` port replaces this package, not the layers.
"""
