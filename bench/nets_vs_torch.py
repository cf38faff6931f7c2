"""The shipped nets in netcli and in PyTorch, side by side on this machine.

    python bench/nets_vs_torch.py [--nets lenet,cifar10_quick,...] [--threads N] [--rounds 5]

Each net is built from its file in configs/ (its Data layers replaced by Input layers of the same
shapes, filled with random data); the PyTorch model is translated from the same layer list
(BatchNorm followed by Scale becomes one BatchNorm2d with its affine, as PyTorch users write it).
Each framework runs in its own worker process (their thread pools never coexist) with the same
thread count; after a warm-up the driver alternates A/B rounds. Training: the config's TRAIN batch,
SGD with momentum 0.9 and weight decay 5e-4. Inference: the TEST batch in eval mode, and batch 1
latency. Printed: the CPU, the sgemm ceiling measured in this run (the best of NumPy's and
PyTorch's BLAS on one large product), images/s of each, the ratio netcli/PyTorch (median and spread
over rounds), each net's GFLOP/s and share of the ceiling, per-layer times of both.
PyTorch is not a netcli dependency: `pip install torch==2.13.0` installs the CPU build.
"""
from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import statistics
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MNIST, CIFAR = (1, 28, 28), (3, 32, 32)
NETS = {                               # name: (config, sample shape)
    "lenet": ("configs/lenet_train_test.yaml", MNIST),
    "lenet_bn": ("configs/lenet_bn.yaml", MNIST),
    "lenet_dropout": ("configs/lenet_dropout.yaml", MNIST),
    "cifar10_quick": ("configs/cifar10_quick_train_test.yaml", CIFAR),
    "mlp": ("configs/mnist_mlp.yaml", MNIST),
}
SOLVER = """net: {net}
base_lr: 0.001
momentum: 0.9
weight_decay: 0.0005
lr_policy: fixed
max_iter: 1000000000
random_seed: 1
"""
POOL = 256                             # random samples each worker cycles through


def cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    import platform
    return platform.processor() or platform.machine()


def bench_layers(config, sample):
    """The config's layers for benchmarking: Data layers out, an Input layer in (TRAIN batch),
    TEST-only layers out; and the two batch sizes."""
    import yaml
    with open(os.path.join(ROOT, config)) as f:
        cfg = yaml.safe_load(f)
    batch = {"TRAIN": None, "TEST": None}
    layers = []
    for layer in cfg["layers"]:
        phase = (layer.get("include") or {}).get("phase")
        if layer["type"] == "Data":
            batch[phase] = layer["data_param"]["batch_size"]
            continue
        if phase == "TEST":
            continue
        layers.append(layer)
    return layers, batch["TRAIN"], batch["TEST"] or 100


def netcli_yaml(layers, batch, sample):
    import yaml
    data = {"name": "data", "type": "Input", "top": ["data", "label"],
            "input_param": {"shape": [{"dim": [batch, *sample]}, {"dim": [batch]}]}}
    return yaml.safe_dump({"name": "bench", "layers": [data] + layers}, sort_keys=False)


def random_data(sample, classes=10, seed=0):
    import numpy as np
    rng = np.random.default_rng(seed)
    x = rng.normal(0, 1, (POOL, *sample)).astype(np.float32)
    y = rng.integers(0, classes, POOL).astype(np.float32)
    return x, y


def sgemm_gflops(mm, n=1024, reps=6):
    """One n x n x n float32 product, best of reps, in GFLOP/s."""
    best = float("inf")
    for _ in range(reps):
        t = time.perf_counter()
        mm()
        best = min(best, time.perf_counter() - t)
    return 2 * n ** 3 / best / 1e9


# -- workers ---------------------------------------------------------------------------------
class NetcliWorker:
    def __init__(self, name, threads, tmp):
        from netcli.exec.threads import set_threads
        set_threads(threads)
        import netcli
        config, sample = NETS[name]
        layers, self.train_batch, self.test_batch = bench_layers(config, sample)
        self.x, self.y = random_data(sample)
        paths = {}
        for b in {self.train_batch, self.test_batch, 1}:
            paths[b] = os.path.join(tmp, f"{name}_{b}.yaml")
            with open(paths[b], "w") as f:
                f.write(netcli_yaml(layers, b, sample))
        with open(os.path.join(tmp, "solver.yaml"), "w") as f:
            f.write(SOLVER.format(net=paths[self.train_batch]))
        self.solver = netcli.Solver(os.path.join(tmp, "solver.yaml"), progress=False)
        self.solver.test_interval = 0
        self.infer = {b: netcli.Net(paths[b], phase="TEST") for b in (self.test_batch, 1)}
        for net in self.infer.values():
            net.share_weights(self.solver.net)
        self.k = 0

    def flops(self):
        """(training FLOPs per image: forward, plus the weight gradient of layers with params
        and the input gradient where one flows; inference FLOPs per image)."""
        net = self.solver.net
        train = infer = 0
        for i, layer in enumerate(net.layers):
            f = layer.flops(net.bottom_vecs[i], net.top_vecs[i])
            infer += f
            train += f
            if net.need_backward[i]:
                train += f * (bool(layer.blobs) + any(net.propagate_down[i]))
        return train, infer

    def sgemm(self, _):
        import numpy as np
        from threadpoolctl import threadpool_limits
        a = np.random.default_rng(0).random((1024, 1024), np.float32)
        with threadpool_limits(self.threads_for_blas(), user_api="blas"):
            return sgemm_gflops(lambda: a @ a)

    @staticmethod
    def threads_for_blas():
        from netcli.exec import threads
        return threads.count()

    def _feed(self, net, batch):
        i = (self.k * batch) % (POOL - batch + 1)
        self.k += 1
        net.blobs["data"].data[...] = self.x[i:i + batch]
        if "label" in net.blobs:
            net.blobs["label"].data[...] = self.y[i:i + batch]

    def train(self, iters):
        times = []
        for _ in range(iters):
            t = time.perf_counter()
            self._feed(self.solver.net, self.train_batch)
            self.solver.step(1)
            times.append(time.perf_counter() - t)
        return times

    def inference(self, iters, batch=None):
        batch = batch or self.test_batch
        net = self.infer[batch]
        times = []
        for _ in range(iters):
            t = time.perf_counter()
            self._feed(net, batch)
            net.forward()
            times.append(time.perf_counter() - t)
        return times

    def latency(self, iters):
        return self.inference(iters, 1)

    def layers(self, iters):
        from netcli.commands.timing import time_layers
        net = self.solver.net
        fwd, bwd, _, _ = time_layers(net, iters)
        return [(n, f, b) for n, l, f, b in zip(net.layer_names, net.layers, fwd, bwd) if l.type != "Input"]


class TorchNet:
    """The layer list as a PyTorch module, run blob by blob as the netcli net runs."""

    def __init__(self, layers, sample):
        import torch
        import torch.nn as nn
        self.torch = torch
        self.steps = []              # (name, module or None, bottoms, tops)
        self.modules = nn.ModuleDict()
        shapes = {"data": sample}
        fused_scale = set()
        for k, layer in enumerate(layers):
            t, name = layer["type"], layer["name"]
            bottoms = layer.get("bottom", [])
            bottoms = [bottoms] if isinstance(bottoms, str) else bottoms
            tops = layer.get("top", [])
            tops = [tops] if isinstance(tops, str) else tops
            if name in fused_scale:
                continue
            shp = shapes.get(bottoms[0]) if bottoms else None
            m, out = self._module(t, layer, shp, layers[k + 1:], fused_scale)
            if m is not None:
                self.modules[name] = m
            self.steps.append((name, t, bottoms, tops))
            shapes[tops[0]] = out

    def _module(self, t, layer, shp, rest, fused_scale):
        import torch.nn as nn
        if t == "Convolution":
            p = layer["convolution_param"]
            k, s, pad = p["kernel_size"], p.get("stride", 1), p.get("pad", 0)
            m = nn.Conv2d(shp[0], p["num_output"], k, s, pad, bias=p.get("bias_term", True))
            oh = (shp[1] + 2 * pad - k) // s + 1
            return m, (p["num_output"], oh, (shp[2] + 2 * pad - k) // s + 1)
        if t == "Pooling":
            p = layer["pooling_param"]
            k, s = p["kernel_size"], p.get("stride", 1)
            m = (nn.MaxPool2d(k, s, ceil_mode=True) if p.get("pool", "MAX") == "MAX"
                 else nn.AvgPool2d(k, s, ceil_mode=True))
            import math
            return m, (shp[0], math.ceil((shp[1] - k) / s) + 1, math.ceil((shp[2] - k) / s) + 1)
        if t == "InnerProduct":
            n = layer["inner_product_param"]["num_output"]
            size = 1
            for d in shp:
                size *= d
            return nn.Sequential(nn.Flatten(), nn.Linear(size, n)), (n,)
        if t == "BatchNorm":
            nxt = rest[0] if rest else None
            affine = bool(nxt and nxt["type"] == "Scale")
            if affine:
                fused_scale.add(nxt["name"])
            return (nn.BatchNorm2d if len(shp) == 3 else nn.BatchNorm1d)(shp[0], affine=affine), shp
        if t == "ReLU":
            return nn.ReLU(), shp
        if t == "TanH":
            return nn.Tanh(), shp
        if t == "Sigmoid":
            return nn.Sigmoid(), shp
        if t == "Dropout":
            return nn.Dropout((layer.get("dropout_param") or {}).get("dropout_ratio", 0.5)), shp
        if t == "SoftmaxWithLoss":
            return None, ()
        raise ValueError(f"bench: no PyTorch translation for layer type {t}")

    def run(self, x, y=None, names=None):
        F = self.torch.nn.functional
        blobs = {"data": x}
        for name, t, bottoms, tops in self.steps:
            if t == "SoftmaxWithLoss":
                if y is None:
                    blobs[tops[0]] = self.torch.softmax(blobs[bottoms[0]], 1)
                else:
                    blobs[tops[0]] = F.cross_entropy(blobs[bottoms[0]], y)
                last = tops[0]
                continue
            blobs[tops[0]] = self.modules[name](blobs[bottoms[0]])
            last = tops[0]
        return blobs[last]


class TorchWorker:
    def __init__(self, name, threads, tmp):
        import torch
        torch.set_num_threads(threads)
        self.torch = torch
        torch.manual_seed(0)
        config, sample = NETS[name]
        self.layer_list, self.train_batch, self.test_batch = bench_layers(config, sample)
        x, y = random_data(sample)
        self.x, self.y = torch.from_numpy(x), torch.from_numpy(y).long()
        self.model = TorchNet(self.layer_list, sample)
        self.opt = torch.optim.SGD(self.model.modules.parameters(), lr=0.001, momentum=0.9, weight_decay=5e-4)
        self.k = 0

    def sgemm(self, _):
        a = self.torch.rand(1024, 1024)
        return sgemm_gflops(lambda: a @ a)

    def _slice(self, batch):
        i = (self.k * batch) % (POOL - batch + 1)
        self.k += 1
        return self.x[i:i + batch], self.y[i:i + batch]

    def train(self, iters):
        times = []
        self.model.modules.train()
        for _ in range(iters):
            t = time.perf_counter()
            x, y = self._slice(self.train_batch)
            self.opt.zero_grad(set_to_none=True)
            self.model.run(x, y).backward()
            self.opt.step()
            times.append(time.perf_counter() - t)
        return times

    def inference(self, iters, batch=None):
        times = []
        self.model.modules.eval()
        with self.torch.inference_mode():
            for _ in range(iters):
                t = time.perf_counter()
                x, _ = self._slice(batch or self.test_batch)
                self.model.run(x)
                times.append(time.perf_counter() - t)
        return times

    def latency(self, iters):
        return self.inference(iters, 1)

    def layers(self, iters):
        """Per step: forward ms, and backward ms (gradients of its params and its input)."""
        torch = self.torch
        self.model.modules.train()
        x, y = self.x[:self.train_batch], self.y[:self.train_batch]
        out = []
        F = torch.nn.functional
        for k, (name, t, bottoms, tops) in enumerate(self.model.steps):
            xin = x.detach().requires_grad_(k > 0)
            if t == "SoftmaxWithLoss":
                def fn(v):
                    return F.cross_entropy(v, y)
                params = []
            else:
                fn = self.model.modules[name]
                params = list(fn.parameters())
            f = b = 0.0
            for _ in range(iters):
                s = time.perf_counter()
                yv = fn(xin)
                f += time.perf_counter() - s
                wrt = params + ([xin] if xin.requires_grad else [])
                if wrt:
                    yv = fn(xin)
                    g = torch.ones_like(yv)
                    s = time.perf_counter()
                    torch.autograd.grad(yv, wrt, g)
                    b += time.perf_counter() - s
            out.append((name, f / iters * 1e3, b / iters * 1e3))
            x = fn(x).detach() if t != "SoftmaxWithLoss" else x
        return out


def worker(kind, name, threads, conn):
    import tempfile
    os.environ.update({v: str(threads) for v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")})
    sys.path.insert(0, ROOT)
    with tempfile.TemporaryDirectory() as tmp:
        try:
            w = (NetcliWorker if kind == "netcli" else TorchWorker)(name, threads, tmp)
            conn.send(("ready", w.train_batch, w.test_batch, w.flops() if kind == "netcli" else None))
        except Exception as e:       # noqa: BLE001 - reported by the driver
            conn.send(("error", f"{type(e).__name__}: {e}", None, None))
            return
        while True:
            cmd, n = conn.recv()
            if cmd == "quit":
                break
            conn.send(getattr(w, cmd)(n))


def versions():
    import numpy
    import numba
    import torch
    return f"numpy {numpy.__version__}, numba {numba.__version__}, torch {torch.__version__}, python {sys.version.split()[0]}"


def compare(name, args, ctx):
    conns = {}
    info = {}
    for kind in ("netcli", "torch"):
        a, b = ctx.Pipe()
        p = ctx.Process(target=worker, args=(kind, name, args.threads, b), daemon=True)
        p.start()
        conns[kind] = a
        info[kind] = a.recv()
        if info[kind][0] == "error":
            print(f"{name}: {kind} worker failed: {info[kind][1]}")
            return None
    _, train_batch, test_batch, (train_flop, infer_flop) = info["netcli"]

    def ask(kind, cmd, n):
        conns[kind].send((cmd, n))
        return conns[kind].recv()

    for kind in conns:                      # warm-up: JIT, caches, allocators
        ask(kind, "train", 20)
        ask(kind, "inference", 10)
        ask(kind, "latency", 10)
    what = ("train", "inference", "latency")
    res = {k: {w: [] for w in what} for k in conns}
    ratios = {w: [] for w in what}
    for r in range(args.rounds):
        order = ("netcli", "torch") if r % 2 == 0 else ("torch", "netcli")
        per = {}
        for kind in order:
            t = statistics.median(ask(kind, "train", args.iters))
            i = statistics.median(ask(kind, "inference", args.iters))
            lat = statistics.median(ask(kind, "latency", args.iters))
            per[kind] = {"train": train_batch / t, "inference": test_batch / i, "latency": 1 / lat}
        for w in what:
            for kind in conns:
                res[kind][w].append(per[kind][w])
            ratios[w].append(per["netcli"][w] / per["torch"][w])
    layers = {k: ask(k, "layers", 20) for k in conns}
    for c in conns.values():
        c.send(("quit", 0))
    out = {"train_batch": train_batch, "test_batch": test_batch, "layers": layers}
    for w in what:
        out[w] = (statistics.median(res["netcli"][w]), statistics.median(res["torch"][w]),
                  statistics.median(ratios[w]), min(ratios[w]), max(ratios[w]))
    out["gflops"] = out["train"][0] * train_flop / 1e9
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--nets", default=",".join(NETS), help=f"comma-separated, from {', '.join(NETS)}")
    ap.add_argument("--threads", type=int, default=len(os.sched_getaffinity(0)))
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--iters", type=int, default=40, help="iterations per measurement in a round")
    ap.add_argument("--no-layers", action="store_true", help="skip the per-layer tables")
    args = ap.parse_args()
    try:
        import torch  # noqa: F401
    except ImportError:
        print("PyTorch is not installed, so there is nothing to compare against: "
              "pip install torch==2.13.0 (the CPU build) and run again.")
        return 0
    names = [n.strip() for n in args.nets.split(",") if n.strip()]
    unknown = [n for n in names if n not in NETS]
    if unknown:
        print(f"unknown net(s) {', '.join(unknown)}; known: {', '.join(NETS)}")
        return 2
    ctx = mp.get_context("spawn")
    print(f"CPU: {cpu_model()}; {len(os.sched_getaffinity(0))} usable cores, threads {args.threads}; {versions()}")
    ceiling = []
    for kind in ("netcli", "torch"):
        a, b = ctx.Pipe()
        p = ctx.Process(target=worker, args=(kind, "mlp", args.threads, b), daemon=True)
        p.start()
        a.recv()
        a.send(("sgemm", 0))
        ceiling.append(a.recv())
        a.send(("quit", 0))
        p.join()
    sgemm = max(ceiling)
    print(f"sgemm ceiling (1024^3, {args.threads} threads): {sgemm:.0f} GFLOP/s "
          f"(NumPy's BLAS {ceiling[0]:.0f}, PyTorch's {ceiling[1]:.0f})\n")
    results = {}
    for name in names:
        r = compare(name, args, ctx)
        if r is None:
            continue
        results[name] = r
        tr, inf, lat = r["train"], r["inference"], r["latency"]
        print(f"{name}: train b{r['train_batch']} {tr[0]:.0f} vs {tr[1]:.0f} img/s = {tr[2]:.2f}x "
              f"[{tr[3]:.2f}-{tr[4]:.2f}], {r['gflops']:.1f} GFLOP/s = {r['gflops'] / sgemm:.0%} of sgemm; "
              f"inference b{r['test_batch']} {inf[2]:.2f}x [{inf[3]:.2f}-{inf[4]:.2f}]; "
              f"batch 1 {1e3 / lat[0]:.3f} vs {1e3 / lat[1]:.3f} ms = {lat[2]:.2f}x", flush=True)
    print(f"\nmedians of {args.rounds} A/B rounds (ratio = netcli / PyTorch, higher is better for netcli)")
    print(f"{'net':<15}{'train img/s':>13}{'torch':>8}{'ratio':>7}{'inference':>11}{'torch':>8}{'ratio':>7}"
          f"{'b1 ms':>8}{'torch':>8}{'ratio':>7}{'% sgemm':>9}")
    for name, r in results.items():
        tr, inf, lat = r["train"], r["inference"], r["latency"]
        print(f"{name:<15}{tr[0]:>13.0f}{tr[1]:>8.0f}{tr[2]:>7.2f}{inf[0]:>11.0f}{inf[1]:>8.0f}{inf[2]:>7.2f}"
              f"{1e3 / lat[0]:>8.3f}{1e3 / lat[1]:>8.3f}{lat[2]:>7.2f}{r['gflops'] / sgemm:>9.0%}")
    base = results.get("lenet")
    for name in ("lenet_bn", "lenet_dropout"):
        if base and name in results:
            print(f"{name} iteration time / lenet's: {base['train'][0] / results[name]['train'][0]:.2f}")
    if not args.no_layers:
        for name, r in results.items():
            print(f"\n{name}: per layer at batch {r['train_batch']}, ms (forward / backward)")
            print(f"{'netcli layer':<16}{'fwd':>8}{'bwd':>8}    {'torch step':<16}{'fwd':>8}{'bwd':>8}")
            a, b = r["layers"]["netcli"], r["layers"]["torch"]
            for k in range(max(len(a), len(b))):
                left = f"{a[k][0]:<16}{a[k][1]:>8.3f}{a[k][2]:>8.3f}" if k < len(a) else " " * 32
                right = f"{b[k][0]:<16}{b[k][1]:>8.3f}{b[k][2]:>8.3f}" if k < len(b) else ""
                print(f"{left}    {right}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
