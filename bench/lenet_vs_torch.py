"""LeNet (Caffe's MNIST net) in netcli and in PyTorch, side by side on this machine.

    python bench/lenet_vs_torch.py [--threads N] [--rounds 7] [--iters 100]

Each framework runs in its own worker process (so their thread pools never coexist), with the
same thread count; after warm-up the driver alternates A/B rounds. Training: batch 64, SGD with
momentum 0.9 and weight decay 5e-4, random MNIST-shaped data. Inference: batch 100. Prints images/s
of each, the ratio netcli/PyTorch (median and spread over rounds), netcli's GFLOP/s, per-layer
times of both, and each worker's peak memory. PyTorch is not a netcli dependency:
`pip install torch==2.13.0` installs the CPU build; without it this prints a message and exits 0.
"""
from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import statistics
import sys

TRAIN_FLOP = 13.182e6     # LeNet forward+backward per image (no gradient into the data)
INFER_FLOP = 4.586e6
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def lenet_yaml(batch):
    return f"""
name: LeNet
layers:
  - {{name: data, type: Input, top: [data, label], input_param: {{shape: [{{dim: [{batch}, 1, 28, 28]}}, {{dim: [{batch}]}}]}}}}
  - {{name: conv1, type: Convolution, bottom: data, top: conv1, param: [{{lr_mult: 1}}, {{lr_mult: 2}}],
     convolution_param: {{num_output: 20, kernel_size: 5, weight_filler: {{type: xavier}}}}}}
  - {{name: pool1, type: Pooling, bottom: conv1, top: pool1, pooling_param: {{pool: MAX, kernel_size: 2, stride: 2}}}}
  - {{name: conv2, type: Convolution, bottom: pool1, top: conv2, param: [{{lr_mult: 1}}, {{lr_mult: 2}}],
     convolution_param: {{num_output: 50, kernel_size: 5, weight_filler: {{type: xavier}}}}}}
  - {{name: pool2, type: Pooling, bottom: conv2, top: pool2, pooling_param: {{pool: MAX, kernel_size: 2, stride: 2}}}}
  - {{name: ip1, type: InnerProduct, bottom: pool2, top: ip1, param: [{{lr_mult: 1}}, {{lr_mult: 2}}],
     inner_product_param: {{num_output: 500, weight_filler: {{type: xavier}}}}}}
  - {{name: relu1, type: ReLU, bottom: ip1, top: ip1}}
  - {{name: ip2, type: InnerProduct, bottom: ip1, top: ip2, param: [{{lr_mult: 1}}, {{lr_mult: 2}}],
     inner_product_param: {{num_output: 10, weight_filler: {{type: xavier}}}}}}
  - {{name: loss, type: SoftmaxWithLoss, bottom: [ip2, label], top: loss}}
"""


SOLVER = """net: {net}
base_lr: 0.01
momentum: 0.9
weight_decay: 0.0005
lr_policy: fixed
max_iter: 1000000000
random_seed: 1
"""


def make_data(n=6400, seed=0):
    import numpy as np
    rng = np.random.default_rng(seed)
    x = (rng.integers(0, 256, (n, 1, 28, 28)) / 256).astype(np.float32)
    y = rng.integers(0, 10, n).astype(np.float32)
    return x, y


# -- workers ---------------------------------------------------------------------------------
class NetcliWorker:
    def __init__(self, threads, tmp):
        from netcli.threads import set_threads
        set_threads(threads)
        import numpy as np
        import netcli
        self.np = np
        self.x, self.y = make_data()
        paths = {}
        for b in (64, 100):
            paths[b] = os.path.join(tmp, f"lenet_{b}.yaml")
            with open(paths[b], "w") as f:
                f.write(lenet_yaml(b))
        with open(os.path.join(tmp, "solver.yaml"), "w") as f:
            f.write(SOLVER.format(net=paths[64]))
        self.solver = netcli.Solver(os.path.join(tmp, "solver.yaml"), progress=False)
        self.solver.test_interval = 0
        self.infer = netcli.Net(paths[100], phase="TEST")
        self.infer.share_weights(self.solver.net)
        self.k = 0

    def train(self, iters):
        import time
        net = self.solver.net
        data, label = net.blobs["data"].data, net.blobs["label"].data
        times = []
        for _ in range(iters):
            i = (self.k * 64) % (len(self.y) - 64)
            self.k += 1
            t = time.perf_counter()
            data[...] = self.x[i:i + 64]
            label[...] = self.y[i:i + 64]
            self.solver.step(1)
            times.append(time.perf_counter() - t)
        return times

    def inference(self, iters):
        import time
        data = self.infer.blobs["data"].data
        times = []
        for j in range(iters):
            i = (j * 100) % (len(self.y) - 100)
            t = time.perf_counter()
            data[...] = self.x[i:i + 100]
            self.infer.forward()
            times.append(time.perf_counter() - t)
        return times

    def layers(self, iters):
        from netcli.tools import time_layers
        net = self.solver.net
        fwd, bwd, _ = time_layers(net, iters)
        return {n: (f, b) for n, f, b in zip(net.layer_names, fwd, bwd) if n != "data"}


class TorchWorker:
    def __init__(self, threads, tmp):
        import torch
        import torch.nn as nn
        torch.set_num_threads(threads)
        self.torch = torch
        torch.manual_seed(0)
        x, y = make_data()
        self.x, self.y = torch.from_numpy(x), torch.from_numpy(y).long()
        self.model = nn.Sequential(nn.Conv2d(1, 20, 5), nn.MaxPool2d(2, 2), nn.Conv2d(20, 50, 5), nn.MaxPool2d(2, 2),
                                   nn.Flatten(), nn.Linear(800, 500), nn.ReLU(), nn.Linear(500, 10))
        self.opt = torch.optim.SGD(self.model.parameters(), lr=0.01, momentum=0.9, weight_decay=5e-4)
        self.k = 0

    def train(self, iters):
        import time
        F = self.torch.nn.functional
        times = []
        self.model.train()
        for _ in range(iters):
            i = (self.k * 64) % (len(self.y) - 64)
            self.k += 1
            t = time.perf_counter()
            self.opt.zero_grad(set_to_none=True)
            loss = F.cross_entropy(self.model(self.x[i:i + 64]), self.y[i:i + 64])
            loss.backward()
            self.opt.step()
            times.append(time.perf_counter() - t)
        return times

    def inference(self, iters):
        import time
        times = []
        self.model.eval()
        with self.torch.inference_mode():
            for j in range(iters):
                i = (j * 100) % (len(self.y) - 100)
                t = time.perf_counter()
                self.torch.softmax(self.model(self.x[i:i + 100]), 1)
                times.append(time.perf_counter() - t)
        return times

    def layers(self, iters):
        import time
        torch = self.torch
        names = ["conv1", "pool1", "conv2", "pool2", "flatten", "ip1", "relu1", "ip2"]
        x = self.x[:64]
        out = {}
        for name, m in zip(names, self.model):
            xin = x.detach().requires_grad_(name != "conv1")
            f = b = 0.0
            for _ in range(iters):
                s = time.perf_counter()
                y = m(xin)
                f += time.perf_counter() - s
                g = torch.ones_like(y)
                wrt = [p for p in m.parameters()] + ([xin] if xin.requires_grad else [])
                if wrt:
                    y = m(xin)
                    s = time.perf_counter()
                    torch.autograd.grad(y, wrt, g)
                    b += time.perf_counter() - s
            if name != "flatten":
                out[name] = (f / iters * 1e3, b / iters * 1e3)
            x = m(x).detach()
        logits = self.model(self.x[:64]).detach().requires_grad_()
        f = b = 0.0
        for _ in range(iters):
            s = time.perf_counter()
            loss = torch.nn.functional.cross_entropy(logits, self.y[:64])
            f += time.perf_counter() - s
            s = time.perf_counter()
            torch.autograd.grad(loss, [logits])
            b += time.perf_counter() - s
        out["loss"] = (f / iters * 1e3, b / iters * 1e3)
        return out


def worker(kind, threads, conn):
    import resource
    import tempfile
    os.environ.update({v: str(threads) for v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")})
    sys.path.insert(0, ROOT)
    with tempfile.TemporaryDirectory() as tmp:
        w = (NetcliWorker if kind == "netcli" else TorchWorker)(threads, tmp)
        while True:
            cmd, n = conn.recv()
            if cmd == "quit":
                break
            res = getattr(w, cmd)(n)
            conn.send((res, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024))


def versions():
    import numpy
    import numba
    import torch
    return f"numpy {numpy.__version__}, numba {numba.__version__}, torch {torch.__version__}, python {sys.version.split()[0]}"


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=len(os.sched_getaffinity(0)))
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--iters", type=int, default=100, help="training iterations per round")
    args = ap.parse_args()
    try:
        import torch  # noqa: F401
    except ImportError:
        print("PyTorch is not installed, so there is nothing to compare against: "
              "pip install torch==2.13.0 (the CPU build) and run again.")
        return 0
    print(f"nproc {os.cpu_count()} (usable {len(os.sched_getaffinity(0))}), threads {args.threads}; {versions()}")
    ctx = mp.get_context("spawn")
    conns, procs = {}, {}
    for kind in ("netcli", "torch"):
        a, b = ctx.Pipe()
        p = ctx.Process(target=worker, args=(kind, args.threads, b), daemon=True)
        p.start()
        conns[kind], procs[kind] = a, p

    def ask(kind, cmd, n):
        conns[kind].send((cmd, n))
        return conns[kind].recv()

    for kind in conns:                      # warm-up: JIT, caches, allocator
        ask(kind, "train", 30)
        ask(kind, "inference", 20)
    res = {k: {"train": [], "inference": []} for k in conns}
    ratios = {"train": [], "inference": []}
    for r in range(args.rounds):
        order = ("netcli", "torch") if r % 2 == 0 else ("torch", "netcli")
        per = {}
        for kind in order:
            t, _ = ask(kind, "train", args.iters)
            i, rss = ask(kind, "inference", args.iters)
            per[kind] = (64 / statistics.median(t), 100 / statistics.median(i))
            res[kind]["train"].append(per[kind][0])
            res[kind]["inference"].append(per[kind][1])
        ratios["train"].append(per["netcli"][0] / per["torch"][0])
        ratios["inference"].append(per["netcli"][1] / per["torch"][1])
        print(f"round {r + 1}: train {per['netcli'][0]:.0f} vs {per['torch'][0]:.0f} img/s, "
              f"inference {per['netcli'][1]:.0f} vs {per['torch'][1]:.0f} img/s")
    layers = {k: ask(k, "layers", 30)[0] for k in conns}
    rss = {k: ask(k, "inference", 1)[1] for k in conns}
    for c in conns.values():
        c.send(("quit", 0))
    print()
    for what, flop, batch in (("train", TRAIN_FLOP, 64), ("inference", INFER_FLOP, 100)):
        n, t = statistics.median(res["netcli"][what]), statistics.median(res["torch"][what])
        rr = ratios[what]
        print(f"{what:>9} (batch {batch}): netcli {n:7.0f} img/s ({n * flop / 1e9:.1f} GFLOP/s), "
              f"PyTorch {t:7.0f} img/s; ratio netcli/PyTorch median {statistics.median(rr):.2f}x "
              f"[{min(rr):.2f}-{max(rr):.2f}] over {len(rr)} rounds")
    print(f"peak RSS of the worker processes: netcli {rss['netcli']:.0f} MB, PyTorch {rss['torch']:.0f} MB")
    print("\nper layer at batch 64, ms (forward / backward)")
    print(f"{'layer':<8}{'netcli fwd':>11}{'bwd':>8}{'torch fwd':>11}{'bwd':>8}")
    for name in ("conv1", "pool1", "conv2", "pool2", "ip1", "relu1", "ip2", "loss"):
        a, b = layers["netcli"].get(name, (0, 0)), layers["torch"].get(name, (0, 0))
        print(f"{name:<8}{a[0]:>11.3f}{a[1]:>8.3f}{b[0]:>11.3f}{b[1]:>8.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
