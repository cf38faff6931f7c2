"""How close to the sgemm ceiling a GEMM-based engine can get on a net's own matrix shapes.

    python bench/gemm_ceiling.py [--nets lenet,cifar10_quick] [--threads 2]

For each Convolution and InnerProduct layer of a shipped net (built as bench/nets_vs_torch.py
builds it), the products one training iteration runs on one thread's share of the batch (the
executor gives each thread batch/threads images): forward, weight gradient, and input gradient
where one flows. Each is timed alone with NumPy's BLAS on one thread (best of 5), after a
1024^3 product on one thread sets the ceiling. The sum is what the net's training would cost if
nothing but its GEMMs ran, so its GFLOP/s over the ceiling bounds the "share of sgemm" that
bench/nets_vs_torch.py reports from above for any engine built on this BLAS.
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_workers import NETS, bench_layers, netcli_yaml  # noqa: E402
from nets_vs_torch import cpu_model  # noqa: E402


def gemm_seconds(m, k, n, a_t, b_t, rng):
    """Best time of C[m,n] = A[m,k] @ B[k,n], A and B stored transposed when a_t/b_t say so,
    which is how the engine's kernels hand them to BLAS."""
    import numpy as np
    A = rng.standard_normal((k, m) if a_t else (m, k)).astype(np.float32)
    B = rng.standard_normal((n, k) if b_t else (k, n)).astype(np.float32)
    a, b = (A.T if a_t else A), (B.T if b_t else B)
    C = np.empty((m, n), np.float32)
    reps = max(3, int(2e8 / (2 * m * k * n)))
    for _ in range(2):
        np.matmul(a, b, out=C)
    best = float("inf")
    for _ in range(5):
        t = time.perf_counter()
        for _ in range(reps):
            np.matmul(a, b, out=C)
        best = min(best, (time.perf_counter() - t) / reps)
    return best


def products(net, share):
    """(name, m, k, n, a_t, b_t) of every GEMM one training iteration runs on `share` images."""
    out = []
    for i, layer in enumerate(net.layers):
        back = net.need_backward[i]
        grad_in = back and any(net.propagate_down[i])
        if layer.type == "Convolution":
            M, K, P = layer.K // layer.G, layer.CKK, layer.OH * layer.OW * share
            for _ in range(layer.G):
                out.append((f"{layer.name} fwd", M, K, P, False, False))
                if back:
                    out.append((f"{layer.name} wgrad", M, P, K, False, True))
                if grad_in:
                    out.append((f"{layer.name} dgrad", K, M, P, True, False))
        elif layer.type == "InnerProduct":
            rows = layer.M // net.bottom_vecs[i][0].shape[0] * share
            out.append((f"{layer.name} fwd", rows, layer.K, layer.N, False, True))
            if back:
                out.append((f"{layer.name} wgrad", layer.N, rows, layer.K, True, False))
            if grad_in:
                out.append((f"{layer.name} dgrad", rows, layer.N, layer.K, False, False))
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--nets", default="lenet,cifar10_quick")
    ap.add_argument("--threads", type=int, default=2, help="threads the batch is shared among")
    args = ap.parse_args()
    import numpy as np
    from threadpoolctl import threadpool_limits
    import netcli
    rng = np.random.default_rng(0)
    print(f"CPU: {cpu_model()}, {os.cpu_count()} logical cores; NumPy {np.__version__}")
    with threadpool_limits(1, user_api="blas"):
        ceiling = 2 * 1024 ** 3 / gemm_seconds(1024, 1024, 1024, False, False, rng) / 1e9
        print(f"sgemm ceiling, 1 thread, 1024^3: {ceiling:.1f} GFLOP/s\n")
        for name in args.nets.split(","):
            layers, sample, train_batch, test_batch = bench_layers(*NETS[name])
            has_label, train_batch = train_batch is not None, train_batch or test_batch    # a deploy net: no label
            share = -(-train_batch // args.threads)
            with tempfile.TemporaryDirectory() as tmp:
                path = os.path.join(tmp, "net.yaml")
                with open(path, "w") as f:
                    f.write(netcli_yaml(layers, train_batch, sample, has_label))
                net = netcli.Net(path, phase="TRAIN")
            print(f"{name}: batch {train_batch}, share {share} images per thread")
            flop = seconds = 0.0
            for label, m, k, n, a_t, b_t in products(net, share):
                s = gemm_seconds(m, k, n, a_t, b_t, rng)
                f = 2.0 * m * k * n
                flop, seconds = flop + f, seconds + s
                print(f"  {label:<14}{m:>6} x{k:>6} x{n:>7}  {f / s / 1e9:6.1f} GFLOP/s  {f / s / 1e9 / ceiling:4.0%}")
            rate = flop / seconds / 1e9
            print(f"  all GEMMs: {seconds * 1e3:.2f} ms per share, {rate:.1f} GFLOP/s = {rate / ceiling:.0%} "
                  f"of the ceiling; with nothing else running: {share / seconds:.0f} img/s per thread\n")


if __name__ == "__main__":
    main()
