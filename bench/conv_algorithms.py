"""Each convolution algorithm of netcli/ops/cpu/conv2d.py against the im2col/im2row + GEMM path the
layer would run without it, on the shapes real nets have, in one run.

    python bench/conv_algorithms.py [--share 32] [--rounds 5] [--only depthwise,1x1,1x1/2,3x3,5x5]

One share of the batch (`--share` images, what one thread computes) on one thread, BLAS on one
thread, as the CPU executor runs a Convolution layer. Per shape: forward and backward (input,
weight and bias gradients) in ms, the best of `--rounds` rounds that alternate between the
algorithms (each sample loops for >= 20 ms; the best, as other processes on a shared machine
only ever add time), and the speedup = GEMM path time / algorithm time. The rules in
conv2d_algorithm cite these numbers; they are still noisy on a shared machine.
"""
from __future__ import annotations

import argparse
import os
import sys
import time

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as np  # noqa: E402
from threadpoolctl import threadpool_limits  # noqa: E402

from netcli.ops.cpu.conv2d import conv2d_backward, conv2d_forward, conv2d_scratch, conv2d_workspace  # noqa: E402
from netcli.ops.cpu.conv2d_rule import conv2d_algorithm, patch_layout  # noqa: E402
from netcli.ops.cpu.direct import direct_fits  # noqa: E402
from netcli.ops.cpu.planes import planes_fits  # noqa: E402
from netcli.ops.cpu.winograd import winograd_fits  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from nets_vs_torch import cpu_model  # noqa: E402 - the CPU line every bench prints

# (family, C, H, W, K, kernel, stride, pad, group): MobileNet-v1 on 32x32 (depthwise 3x3 and
# pointwise 1x1), ResNet-20/56's 3x3 convs (16/32/64 channels at 32/16/8), Inception-style 1x1s
# the algorithms a family's rule chooses between (each is also timed where the rule picks another)
CANDIDATES = {"1x1": ("1x1", "1x1-nhwc"), "1x1/2": ("1x1-strided",), "3x3": ("winograd", "winograd4", "direct", "planes"),
              "3x3/2": ("direct",), "7x7/2": ("direct",), "5x5": ("winograd4", "direct", "planes")}
SHAPES = [
    ("depthwise", 32, 32, 32, 32, 3, 1, 1, 32),
    ("depthwise", 64, 32, 32, 64, 3, 2, 1, 64),
    ("depthwise", 128, 16, 16, 128, 3, 1, 1, 128),
    ("depthwise", 256, 8, 8, 256, 3, 1, 1, 256),
    ("depthwise", 512, 4, 4, 512, 3, 1, 1, 512),
    ("1x1", 32, 32, 32, 64, 1, 1, 0, 1),
    ("1x1", 64, 16, 16, 128, 1, 1, 0, 1),
    ("1x1", 128, 16, 16, 128, 1, 1, 0, 1),
    ("1x1", 256, 8, 8, 256, 1, 1, 0, 1),
    ("1x1", 512, 4, 4, 512, 1, 1, 0, 1),
    ("1x1", 1024, 2, 2, 1024, 1, 1, 0, 1),
    ("1x1", 8, 32, 32, 16, 1, 1, 0, 1),
    ("1x1/2", 16, 32, 32, 32, 1, 2, 0, 1),        # ResNet-20's projections
    ("1x1/2", 32, 16, 16, 64, 1, 2, 0, 1),
    ("1x1/2", 256, 56, 56, 512, 1, 2, 0, 1),      # ResNet-50's
    ("1x1/2", 256, 56, 56, 128, 1, 2, 0, 1),
    ("1x1/2", 512, 28, 28, 1024, 1, 2, 0, 1),
    ("1x1/2", 1024, 14, 14, 2048, 1, 2, 0, 1),
    ("1x1/2", 1024, 14, 14, 512, 1, 2, 0, 1),
    ("1x1/2", 64, 8, 8, 128, 1, 2, 0, 1),          # small outputs
    ("1x1/2", 16, 8, 8, 32, 1, 2, 0, 1),
    ("1x1/2", 512, 4, 4, 1024, 1, 2, 0, 1),
    ("3x3", 16, 32, 32, 16, 3, 1, 1, 1),
    ("3x3", 32, 16, 16, 32, 3, 1, 1, 1),
    ("3x3", 64, 8, 8, 64, 3, 1, 1, 1),
    ("3x3", 64, 32, 32, 64, 3, 1, 1, 1),         # VGG-style nets on 32x32
    ("3x3", 128, 16, 16, 128, 3, 1, 1, 1),
    ("3x3", 256, 8, 8, 256, 3, 1, 1, 1),
    ("3x3", 3, 32, 32, 16, 3, 1, 1, 1),           # a first layer on RGB
    ("3x3", 128, 28, 28, 128, 3, 1, 1, 1),        # ResNet-50's
    ("3x3", 256, 14, 14, 256, 3, 1, 1, 1),
    ("3x3", 64, 56, 56, 64, 3, 1, 1, 1),
    ("3x3/2", 16, 32, 32, 32, 3, 2, 1, 1),        # ResNet-20's downsampling
    ("3x3/2", 32, 16, 16, 64, 3, 2, 1, 1),
    ("3x3/2", 64, 32, 32, 128, 3, 2, 1, 1),
    ("3x3/2", 128, 56, 56, 128, 3, 2, 1, 1),      # ResNet-50 v1.5's
    ("7x7/2", 3, 224, 224, 64, 7, 2, 3, 1),       # ResNet-50's conv1
    ("5x5", 32, 16, 16, 32, 5, 1, 2, 1),          # cifar10_quick's conv2 and conv3
    ("5x5", 32, 8, 8, 64, 5, 1, 2, 1),
    ("5x5", 16, 16, 16, 16, 5, 1, 2, 1),          # Inception-style 5x5 branches
    ("5x5", 20, 12, 12, 50, 5, 1, 0, 1),          # LeNet's conv2 (no padding)
    ("5x5", 1, 28, 28, 20, 5, 1, 0, 1),           # LeNet's conv1 (first layers: "planes")
    ("5x5", 3, 32, 32, 32, 5, 1, 2, 1),           # cifar10_quick's conv1
]



class Case:
    """One shape on `n` images with one algorithm: arrays, scratch, and the two passes."""

    def __init__(self, n, C, H, W, K, k, s, p, group, algorithm, rng):
        self.geometry = (k, k, s, s, p, p, 1, 1, group, algorithm)
        OH, OW = (H + 2 * p - k) // s + 1, (W + 2 * p - k) // s + 1
        f32 = np.float32
        self.x = rng.standard_normal((n, C, H, W)).astype(f32)
        self.w = rng.standard_normal((K, C // group, k, k)).astype(f32)
        self.b = rng.standard_normal(K).astype(f32)
        self.y = np.empty((n, K, OH, OW), f32)
        self.dy = rng.standard_normal(self.y.shape).astype(f32)
        self.dx, self.dw, self.db = np.empty_like(self.x), np.zeros_like(self.w), np.zeros_like(self.b)
        shape = (n, C, H, W, K, k, k, OH, OW, group, algorithm, f32)
        self.ws = {name: np.zeros(shape, dt) for name, (shape, dt) in
                   {**conv2d_workspace(*shape), **conv2d_scratch(*shape)}.items()}

    def forward(self):
        conv2d_forward(self.y, self.x, self.w, self.b, self.ws, *self.geometry)

    def backward(self):
        conv2d_backward(self.dx, self.dw, self.db, self.dy, self.x, self.w, self.ws, *self.geometry, True)


def sample_ms(fn, min_s=0.02):
    """ms per call of fn, over a loop of >= min_s seconds."""
    calls, t0 = 0, time.perf_counter()
    while True:
        fn()
        calls += 1
        t = time.perf_counter() - t0
        if t >= min_s:
            return t / calls * 1000


def _fits(algorithm, C, H, W, K, k, s, p, group):
    """Whether the algorithm computes this shape (its kernels write past arrays that it does not)."""
    if algorithm == "direct":
        return direct_fits(k, k, s, s, p, p, 1, 1, group, K)
    if algorithm == "planes":
        return planes_fits(C, H, W, K, k, k, s, s, p, p, 1, 1, group)
    if algorithm in ("winograd", "winograd4"):
        return winograd_fits(k, k, s, s, p, p, 1, 1, group)
    return True


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--share", type=int, default=32, help="images per call (one thread's share)")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--only", default="depthwise,1x1,1x1/2,3x3,3x3/2,7x7/2,5x5", help="families to run")
    args = ap.parse_args()
    families = set(args.only.split(","))
    rng = np.random.default_rng(0)
    print(f"CPU: {cpu_model()}; 1 thread, BLAS on 1 thread; share of {args.share} images; "
          f"best of {args.rounds} rounds (noisy on a shared machine)")
    print(f"{'shape':<34} {'algorithm':>10} {'fwd ms':>8} {'bwd ms':>8} {'gemm path':>9} {'fwd ms':>8} "
          f"{'bwd ms':>8} {'fwd x':>6} {'bwd x':>6}")
    with threadpool_limits(1, user_api="blas"):
        for family, C, H, W, K, k, s, p, group in SHAPES:
            if family not in families:
                continue
            chosen = conv2d_algorithm(C, H, W, K, k, k, s, s, p, p, 1, 1, group)
            base = patch_layout(C, k, group)      # what the layer ran before these algorithms
            algos = [a for a in dict.fromkeys([chosen, *CANDIDATES.get(family, ()), base])
                     if _fits(a, C, H, W, K, k, s, p, group)]
            cases = {a: Case(args.share, C, H, W, K, k, s, p, group, a, rng) for a in algos}
            for c in cases.values():          # compile, warm the caches
                c.forward()
                c.backward()
            times = {a: ([], []) for a in algos}
            for _ in range(args.rounds):
                for a, c in cases.items():
                    times[a][0].append(sample_ms(c.forward))
                    times[a][1].append(sample_ms(c.backward))
            med = {a: (min(f), min(b)) for a, (f, b) in times.items()}
            shape = f"{C}->{K} {k}x{k}/{s} g{group} {H}x{W}"
            cf, cb = med[chosen]
            bf, bb = med[base]
            print(f"{shape:<34} {chosen:>10} {cf:8.3f} {cb:8.3f} {base:>9} {bf:8.3f} {bb:8.3f} "
                  f"{bf / cf:6.2f} {bb / cb:6.2f}")
            for a in algos:                   # the other candidates measured for the rule
                if a in (chosen, base):
                    continue
                af, ab = med[a]
                print(f"{'':<34} {a:>10} {af:8.3f} {ab:8.3f} {'':>9} {'':>8} {'':>8} {bf / af:6.2f} {bb / ab:6.2f}")


if __name__ == "__main__":
    main()
