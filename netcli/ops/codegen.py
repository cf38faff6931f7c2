"""How Numba compiles netcli's CPU kernels: with 512-bit vectors where the CPU has AVX-512.

LLVM's tuning for Intel's AVX-512 server CPUs (this Emerald Rapids among them) prefers 256-bit
vectors when it vectorises a loop, so the kernels written as plain loops (BatchNorm's passes and
sums, Eltwise, ReLU, the update rules) ran at half the width the CPU has; the kernels that spell
out their vectors (direct_vectors.py, depthwise_vectors.py) used 512 bits already.
`prefer_wide_vectors` compiles with the CPU's own features less that preference. No value changes:
no kernel lets LLVM reorder floating-point sums (no fastmath), so each loop computes the same
operations in the same order at either width (LeNet, cifar10_quick, ResNet-20, MobileNet and the
Inception net after 20 training iterations: the same bits of every param, gradient and inference
output). Measured on an Intel Xeon (model 207), 2 threads:
- the fused BatchNorm-Scale-ReLU gradient sums, 32 images of 16 x 32x32, one thread: 0.323 ->
  0.257 ms (32 x 16x16 0.157 -> 0.123, 64 x 8x8 0.076 -> 0.061);
- ResNet-20 training at batch 64, one process each, 3 alternating pairs: 62.2-65.1 -> 60.2-63.3 ms
  an iteration; LeNet at batch 64: 4.47-4.55 -> 4.33-4.48 ms;
- bench/nets_vs_torch.py, 3 rounds each, one run after the other: LeNet inference 44,756 ->
  48,581 img/s, MobileNet training 492 -> 511 img/s, the others within their noise.

Numba makes its code generator once, when the first function is decorated, from its config
(NUMBA_CPU_NAME, NUMBA_CPU_FEATURES): netcli/ops/__init__.py calls this first, and a user's own
NUMBA_CPU_NAME or NUMBA_CPU_FEATURES is left as it is. The kernels cached by Numba are kept apart
by the features they were compiled for.
"""
from __future__ import annotations

NARROW_TUNING = "prefer-256-bit"      # the LLVM tuning flag taken off


def wide_features(features):
    """The CPU's LLVM feature string with 512-bit vectors preferred, or None where it has no
    AVX-512 (nothing to change)."""
    flags = features.split(",")
    if "+avx512f" not in flags:
        return None
    return ",".join([f for f in flags if f.lstrip("+-") != NARROW_TUNING] + ["-" + NARROW_TUNING])


def prefer_wide_vectors():
    """Set Numba's CPU name and features (before its code generator exists) to this CPU's, with
    512-bit vectors preferred where it has AVX-512; nothing where the user set either."""
    from numba.core import config
    if config.CPU_NAME is not None or config.CPU_FEATURES is not None:
        return
    import llvmlite.binding as llvm
    features = wide_features(llvm.get_host_cpu_features().flatten())
    if features is not None:
        config.CPU_NAME = llvm.get_host_cpu_name()
        config.CPU_FEATURES = features
