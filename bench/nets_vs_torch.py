"""The shipped nets in netcli and in PyTorch, side by side on this machine.

    python bench/nets_vs_torch.py [--nets lenet,resnet20,...] [--threads N] [--rounds 5]
                                  [--against REV] [--scaling] [--no-layers]

Each net is built from its file in configs/ (its Data layers replaced by an Input layer of the same
shapes, filled with random data); the PyTorch model is translated from the same layer list by
bench/torch_models.py. Each framework runs in its own worker process, a fresh one per net (their
thread pools never coexist), with the same thread count; after a warm-up the driver alternates
A/B rounds. Training: the config's TRAIN batch, SGD with momentum 0.9 and weight decay 5e-4.
Inference: the TEST batch in eval mode (batch 8 for the deploy nets squeezenet11 and resnet50, which
are inference only), and batch 1 latency. Printed: the CPU, the sgemm ceiling measured in this run
(the best of NumPy's and PyTorch's BLAS on one large product), images/s of each, the ratio
netcli/PyTorch (median and spread over rounds), each net's GFLOP/s and share of the ceiling, each
worker's peak resident memory (and its growth over the worker's size after its imports), and
per-layer times of both.
--against REV: a third worker runs netcli as of commit REV (`git archive` of its netcli/ into a
temporary folder, removed at the end), and the rounds rotate netcli / netcli-REV / PyTorch; the
now/REV ratios are printed with their spread. A net that REV cannot build gets one line.
--scaling: training throughput of netcli and PyTorch at 1, 2, ... threads up to the usable cores,
batch 32 and 64, for --scaling-nets (lenet and resnet20), and the ratio to each one's 1 thread.
PyTorch is not a netcli dependency: `pip install torch==2.13.0` installs the CPU build.
"""
from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BENCH = os.path.join(ROOT, "bench")
MNIST, CIFAR = (1, 28, 28), (3, 32, 32)
NETS = {                               # name: (config, sample shape; None: a deploy net, from its Input)
    "lenet": ("configs/lenet_train_test.yaml", MNIST),
    "lenet_bn": ("configs/lenet_bn.yaml", MNIST),
    "lenet_dropout": ("configs/lenet_dropout.yaml", MNIST),
    "cifar10_quick": ("configs/cifar10_quick_train_test.yaml", CIFAR),
    "mlp": ("configs/mnist_mlp.yaml", MNIST),
    "resnet20": ("configs/resnet20_cifar.yaml", CIFAR),
    "resnet56": ("configs/resnet56_cifar.yaml", CIFAR),
    "mobilenet": ("configs/mobilenet_cifar.yaml", CIFAR),
    "inception": ("configs/inception_cifar.yaml", CIFAR),
    "squeezenet11": ("configs/squeezenet11.yaml", None),
    "resnet50": ("configs/resnet50.yaml", None),
}
DEPLOY_BATCH = 8
SOLVER = """net: {net}
base_lr: 0.001
momentum: 0.9
weight_decay: 0.0005
lr_policy: fixed
max_iter: 1000000000
random_seed: 1
"""


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


def usable_cores():
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def bench_layers(name):
    """The config's layers for benchmarking: Data and Input layers out (the bench puts its own
    Input in), TEST-only layers out. Returns (layers, sample shape, TRAIN batch or None for a
    deploy net, inference batch)."""
    import yaml
    config, sample = NETS[name]
    with open(os.path.join(ROOT, config)) as f:
        cfg = yaml.safe_load(f)
    batch = {"TRAIN": None, "TEST": None}
    layers = []
    for layer in cfg["layers"]:
        phase = (layer.get("include") or {}).get("phase")
        if layer["type"] == "Data":
            batch[phase] = layer["data_param"]["batch_size"]
        elif layer["type"] == "Input":
            sample = tuple(layer["input_param"]["shape"][0]["dim"][1:])
        elif phase != "TEST":
            layers.append(layer)
    if batch["TRAIN"] is None:
        return layers, sample, None, DEPLOY_BATCH
    return layers, sample, batch["TRAIN"], batch["TEST"] or 100


def netcli_yaml(layers, batch, sample, label):
    import yaml
    tops, shapes = ["data"], [{"dim": [batch, *sample]}]
    if label:
        tops, shapes = tops + ["label"], shapes + [{"dim": [batch]}]
    data = {"name": "data", "type": "Input", "top": tops, "input_param": {"shape": shapes}}
    return yaml.safe_dump({"name": "bench", "layers": [data] + layers}, sort_keys=False)


def random_data(sample, classes=10, seed=0):
    """A pool of random samples the workers cycle through (fewer for large images)."""
    import numpy as np
    size = 1
    for d in sample:
        size *= d
    pool = max(16, min(256, (1 << 24) // size))
    rng = np.random.default_rng(seed)
    x = rng.normal(0, 1, (pool, *sample)).astype(np.float32)
    y = rng.integers(0, classes, pool).astype(np.float32)
    return x, y


def sgemm_gflops(mm, n=1024, reps=6):
    """One n x n x n float32 product, best of reps, in GFLOP/s."""
    best = float("inf")
    for _ in range(reps):
        t = time.perf_counter()
        mm()
        best = min(best, time.perf_counter() - t)
    return 2 * n ** 3 / best / 1e9


def peak_rss_mb():
    import resource
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024          # Linux: kB


# -- workers ---------------------------------------------------------------------------------
class Worker:
    """What both frameworks' workers share: the random data and the batch-by-batch feed."""

    def _setup(self, name, train_batches):
        self.layer_list, self.sample, self.train_batch, self.test_batch = bench_layers(name)
        self.train_batches = list(train_batches or ([self.train_batch] if self.train_batch else []))
        self.x, self.y = random_data(self.sample)
        self.k = 0

    def _next(self, batch):
        i = (self.k * batch) % (len(self.x) - batch + 1)
        self.k += 1
        return slice(i, i + batch)

    def sgemm(self):
        raise NotImplementedError

    def latency(self, iters):
        return self.inference(iters, 1)

    def memory(self):
        return peak_rss_mb(), self.baseline_mb


def netcli_set_threads(threads):
    """The thread count for this netcli (today's, or an older commit's where the module moved)."""
    import importlib
    for module in ("netcli.exec.threads", "netcli.threads"):
        try:
            importlib.import_module(module).set_threads(threads)
            return
        except (ImportError, AttributeError):
            continue


class NetcliWorker(Worker):
    def __init__(self, name, threads, tmp, train_batches=None):
        os.environ["NETCLI_THREADS"] = str(threads)
        netcli_set_threads(threads)
        import netcli
        import netcli.net  # noqa: F401 - the imports before the baseline
        self.baseline_mb = peak_rss_mb()
        self._setup(name, train_batches)
        paths = {}
        for b in {*self.train_batches, self.test_batch, 1}:
            paths[b] = os.path.join(tmp, f"{name}_{b}.yaml")
            with open(paths[b], "w") as f:
                f.write(netcli_yaml(self.layer_list, b, self.sample, self.train_batch is not None))
        self.solvers = {}
        for b in self.train_batches:
            with open(os.path.join(tmp, f"solver_{b}.yaml"), "w") as f:
                f.write(SOLVER.format(net=paths[b]))
            s = netcli.Solver(os.path.join(tmp, f"solver_{b}.yaml"), progress=False)
            s.test_interval = 0
            self.solvers[b] = s
        self.infer = {b: netcli.Net(paths[b], phase="TEST") for b in (self.test_batch, 1)}
        owner = self.solvers[self.train_batches[0]].net if self.solvers else self.infer[self.test_batch]
        for net in [s.net for s in self.solvers.values()] + list(self.infer.values()):
            if net is not owner and hasattr(net, "share_weights"):
                net.share_weights(owner)
        self.unit_statistics()

    def unit_statistics(self):
        """BatchNorm's stored statistics as mean 0, variance 1 (a net never trained normalises
        by variance 0 otherwise, and its values run to inf within a few layers)."""
        nets = [s.net for s in self.solvers.values()] + list(self.infer.values())
        for net in nets:
            for layer in net.layers:
                if layer.type == "BatchNorm" and len(layer.blobs) == 3:
                    layer.blobs[0].data[...] = 0
                    layer.blobs[1].data[...] = 1
                    layer.blobs[2].data[...] = 1

    def flops(self):
        """(training FLOPs per image: forward, plus the weight gradient of layers with params
        and the input gradient where one flows; inference FLOPs per image)."""
        net = self.solvers[self.train_batches[0]].net if self.solvers else self.infer[self.test_batch]
        train = infer = 0
        for i, layer in enumerate(net.layers):
            f = layer.flops(net.bottom_vecs[i], net.top_vecs[i])
            infer += f
            train += f
            if self.solvers and net.need_backward[i]:
                train += f * (bool(layer.blobs) + any(net.propagate_down[i]))
        return train, infer

    def sgemm(self):
        import numpy as np
        from threadpoolctl import threadpool_limits
        from netcli.exec import threads
        a = np.random.default_rng(0).random((1024, 1024), np.float32)
        with threadpool_limits(threads.count(), user_api="blas"):
            return sgemm_gflops(lambda: a @ a)

    def _feed(self, net, batch):
        rows = self._next(batch)
        net.blobs["data"].data[...] = self.x[rows]
        if "label" in net.blobs:
            net.blobs["label"].data[...] = self.y[rows]

    def train(self, iters, batch=None):
        batch = batch or self.train_batches[0]
        solver = self.solvers[batch]
        times = []
        for _ in range(iters):
            t = time.perf_counter()
            self._feed(solver.net, batch)
            solver.step(1)
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

    def layers(self, iters):
        from netcli.commands.timing import time_layers
        net = self.solvers[self.train_batches[0]].net if self.solvers else self.infer[self.test_batch]
        self._feed(net, net.blobs["data"].shape[0])
        fwd, bwd, _, _ = time_layers(net, iters)[:4]
        return [(n, f, b) for n, l, f, b in zip(net.layer_names, net.layers, fwd, bwd) if l.type != "Input"]


class TorchWorker(Worker):
    def __init__(self, name, threads, tmp, train_batches=None):
        import torch
        sys.path.insert(0, BENCH)
        from torch_models import TorchNet
        torch.set_num_threads(threads)
        self.torch = torch
        self.baseline_mb = peak_rss_mb()
        torch.manual_seed(0)
        self._setup(name, train_batches)
        self.x, self.y = torch.from_numpy(self.x), torch.from_numpy(self.y).long()
        self.model = TorchNet(self.layer_list, self.sample)
        self.opt = torch.optim.SGD(self.model.modules.parameters(), lr=0.001, momentum=0.9, weight_decay=5e-4)

    def sgemm(self):
        a = self.torch.rand(1024, 1024)
        return sgemm_gflops(lambda: a @ a)

    def train(self, iters, batch=None):
        batch = batch or self.train_batches[0]
        times = []
        self.model.modules.train()
        for _ in range(iters):
            t = time.perf_counter()
            rows = self._next(batch)
            self.opt.zero_grad(set_to_none=True)
            self.model.run(self.x[rows], self.y[rows]).backward()
            self.opt.step()
            times.append(time.perf_counter() - t)
        return times

    def inference(self, iters, batch=None):
        times = []
        self.model.modules.eval()
        with self.torch.inference_mode():
            for _ in range(iters):
                t = time.perf_counter()
                self.model.run(self.x[self._next(batch or self.test_batch)])
                times.append(time.perf_counter() - t)
        return times

    def layers(self, iters):
        """Per step: forward ms, and backward ms (gradients of its params and its inputs); for a
        deploy net, eval mode and forward only."""
        train = bool(self.train_batches)
        batch = self.train_batches[0] if train else self.test_batch
        self.model.modules.train(train)
        with self.torch.enable_grad() if train else self.torch.no_grad():
            return self.model.layer_times(self.x[:batch], self.y[:batch], iters, time.perf_counter, train)


KINDS = {"netcli": NetcliWorker, "rev": NetcliWorker, "torch": TorchWorker}


def worker(kind, name, threads, conn, path_first=ROOT, train_batches=None):
    """One worker process: `path_first` goes first on sys.path before anything imports netcli
    (the netcli under test: this checkout, or REV's folder)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)          # Ctrl-C is the driver's to handle
    os.environ.update({v: str(threads) for v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")})
    sys.path.insert(0, path_first)
    with tempfile.TemporaryDirectory() as tmp:
        try:
            w = KINDS[kind](name, threads, tmp, train_batches)
            flops = w.flops() if kind == "netcli" else None
            where = os.path.dirname(os.path.dirname(sys.modules["netcli"].__file__)) if kind != "torch" else None
            conn.send(("ready", w.train_batch, w.test_batch, flops, where))
        except Exception as e:       # noqa: BLE001 - reported by the driver
            conn.send(("error", f"{type(e).__name__}: {e}", None, None, None))
            return
        while True:
            try:
                cmd, *a = conn.recv()
            except EOFError:         # the driver is gone
                return
            if cmd == "quit":
                return
            try:
                conn.send(getattr(w, cmd)(*a))
            except Exception as e:   # noqa: BLE001 - reported by the driver
                conn.send(("error", f"{type(e).__name__}: {e}"))


class Workers:
    """The driver's side: one worker process per (kind, threads), started together for one net."""

    def __init__(self, ctx, name, specs, path_first, train_batches=None):
        self.conns, self.info, self.failed = {}, {}, {}
        for key in specs:                                   # key: (kind, threads)
            kind, threads = key
            a, b = ctx.Pipe()
            p = ctx.Process(target=worker, daemon=True,
                            args=(kind, name, threads, b, path_first[kind], train_batches))
            p.start()
            self.conns[key] = (a, p)
        for key, (a, p) in list(self.conns.items()):
            msg = a.recv() if p.is_alive() or a.poll() else ("error", "the worker died", None, None, None)
            if msg[0] == "error":
                self.failed[key] = msg[1]
                self._quit(key)
            elif key[0] == "rev" and os.path.realpath(msg[4]) != os.path.realpath(path_first["rev"]):
                self.failed[key] = f"it imported netcli from {msg[4]}, not from REV's folder"
                self._quit(key)
            else:
                self.info[key] = msg

    def ask(self, key, *cmd):
        a, _ = self.conns[key]
        a.send(cmd)
        r = a.recv()
        if isinstance(r, tuple) and r and r[0] == "error":
            raise RuntimeError(f"{key[0]} worker: {r[1]}")
        return r

    def _quit(self, key):
        a, p = self.conns.pop(key)
        try:
            a.send(("quit",))
        except OSError:
            pass
        p.join(5)
        if p.is_alive():
            p.terminate()

    def close(self):
        for key in list(self.conns):
            self._quit(key)


def spread(values):
    return statistics.median(values), min(values), max(values)


def compare(name, args, ctx, path_first):
    kinds = ["netcli", "torch"] + (["rev"] if "rev" in path_first else [])
    ws = Workers(ctx, name, [(k, args.threads) for k in kinds], path_first)
    try:
        for kind in ("netcli", "torch"):
            if (kind, args.threads) in ws.failed:
                print(f"{name}: {kind} worker failed: {ws.failed[kind, args.threads]}")
                return None
        if ("rev", args.threads) in ws.failed:
            print(f"{name}: netcli at {args.against} cannot run it: {ws.failed['rev', args.threads]}")
            kinds.remove("rev")
        return measure(name, args, ws, kinds)
    finally:
        ws.close()


def measure(name, args, ws, kinds):
    key = {k: (k, args.threads) for k in kinds}
    _, train_batch, test_batch, (train_flop, infer_flop), _ = ws.info[key["netcli"]]
    what = (["train"] if train_batch else []) + ["inference", "latency"]
    batch = {"train": train_batch, "inference": test_batch, "latency": 1}
    for kind in kinds:                                  # warm-up: JIT, caches, allocators
        for w in what:
            ws.ask(key[kind], w, args.warmup if w == "train" else max(1, args.warmup // 2))
    res = {k: {w: [] for w in what} for k in kinds}
    ratios = {(k, w): [] for k in kinds if k != "netcli" for w in what}
    for r in range(args.rounds):
        order = kinds[r % len(kinds):] + kinds[:r % len(kinds)]
        per = {k: {w: batch[w] / statistics.median(ws.ask(key[k], w, args.iters)) for w in what} for k in order}
        for w in what:
            for k in kinds:
                res[k][w].append(per[k][w])
                if k != "netcli":
                    ratios[k, w].append(per["netcli"][w] / per[k][w])
    out = {"train_batch": train_batch, "test_batch": test_batch, "what": what,
           "memory": {k: ws.ask(key[k], "memory") for k in kinds}}
    out["layers"] = {} if args.no_layers else {k: ws.ask(key[k], "layers", args.layer_iters) for k in ("netcli", "torch")}
    for w in what:
        out[w] = {k: statistics.median(res[k][w]) for k in kinds}
        for k in kinds:
            if k != "netcli":
                out[w][f"netcli/{k}"] = spread(ratios[k, w])
    flop, rate = (train_flop, out["train"]["netcli"]) if train_batch else (infer_flop, out["inference"]["netcli"])
    out["gflops"] = rate * flop / 1e9
    return out


def sgemm_ceiling(ctx, args):
    got = []
    for kind in ("netcli", "torch"):
        ws = Workers(ctx, "mlp", [(kind, args.threads)], {"netcli": ROOT, "torch": ROOT})
        try:
            got.append(ws.ask((kind, args.threads), "sgemm") if not ws.failed else 0.0)
        finally:
            ws.close()
    return got


def print_net(name, r, sgemm):
    parts = [f"{name}:"]
    if "train" in r:
        tr = r["train"]
        parts.append(f"train b{r['train_batch']} {tr['netcli']:.0f} vs {tr['torch']:.0f} img/s = "
                     "{:.2f}x [{:.2f}-{:.2f}];".format(*tr["netcli/torch"]))
    inf, lat = r["inference"], r["latency"]
    parts.append(f"inference b{r['test_batch']} {inf['netcli']:.0f} vs {inf['torch']:.0f} img/s = "
                 "{:.2f}x [{:.2f}-{:.2f}];".format(*inf["netcli/torch"]))
    parts.append(f"batch 1 {1e3 / lat['netcli']:.3f} vs {1e3 / lat['torch']:.3f} ms = "
                 "{:.2f}x [{:.2f}-{:.2f}];".format(*lat["netcli/torch"]))
    parts.append(f"{r['gflops']:.1f} GFLOP/s = {r['gflops'] / sgemm:.0%} of sgemm;")
    mem = "; ".join(f"{k} {peak:.0f} MB (+{peak - base:.0f})" for k, (peak, base) in r["memory"].items())
    parts.append(f"peak RSS {mem}")
    print(" ".join(parts), flush=True)


def print_tables(results, args, sgemm):
    print(f"\nmedians of {args.rounds} rounds (ratio = netcli / PyTorch, higher is better for netcli; "
          f"b1 = batch-1 latency, lower is better)")
    print(f"{'net':<14}{'train img/s':>12}{'torch':>8}{'ratio':>7}{'infer img/s':>12}{'torch':>8}{'ratio':>7}"
          f"{'b1 ms':>9}{'torch':>9}{'ratio':>7}{'% sgemm':>9}{'MB netcli':>11}{'torch':>7}")
    for name, r in results.items():
        tr = r.get("train")
        train = f"{tr['netcli']:>12.0f}{tr['torch']:>8.0f}{tr['netcli/torch'][0]:>7.2f}" if tr else f"{'-':>12}{'-':>8}{'-':>7}"
        inf, lat, mem = r["inference"], r["latency"], r["memory"]
        print(f"{name:<14}{train}{inf['netcli']:>12.0f}{inf['torch']:>8.0f}{inf['netcli/torch'][0]:>7.2f}"
              f"{1e3 / lat['netcli']:>9.3f}{1e3 / lat['torch']:>9.3f}{lat['netcli/torch'][0]:>7.2f}"
              f"{r['gflops'] / sgemm:>9.0%}{mem['netcli'][0]:>11.0f}{mem['torch'][0]:>7.0f}")
    revs = {n: r for n, r in results.items() if "rev" in r["memory"]}
    if revs:
        print(f"\nnetcli now / netcli at {args.against} (median [min-max] of {args.rounds} rounds; "
              f"> 1: now is faster)")
        print(f"{'net':<14}{'train':>20}{'inference':>20}{'batch 1':>20}{'MB now':>9}{'REV':>7}")
        for name, r in revs.items():
            cells = ["{:.2f} [{:.2f}-{:.2f}]".format(*r[w]["netcli/rev"]) if w in r else "-"
                     for w in ("train", "inference", "latency")]
            print(f"{name:<14}" + "".join(f"{c:>20}" for c in cells)
                  + f"{r['memory']['netcli'][0]:>9.0f}{r['memory']['rev'][0]:>7.0f}")
    base = results.get("lenet")
    for name in ("lenet_bn", "lenet_dropout"):
        if base and name in results:
            print(f"{name} iteration time / lenet's: {base['train']['netcli'] / results[name]['train']['netcli']:.2f}")
    for name, r in results.items():
        if r["layers"]:
            print_layers(name, r)


def print_layers(name, r):
    """netcli's layers in order, each beside PyTorch's step of the same name (BatchNorm carries
    the Scale folded into it; Split is no step in PyTorch)."""
    a, b = r["layers"]["netcli"], r["layers"]["torch"]
    torch_by_name = {n: (f, bw) for n, f, bw in b}
    batch = r["train_batch"] or r["test_batch"]
    print(f"\n{name}: per layer at batch {batch}, ms (forward / backward)")
    print(f"{'layer':<28}{'netcli fwd':>11}{'bwd':>9}{'torch fwd':>11}{'bwd':>9}")
    for n, f, bw in a:
        t = torch_by_name.pop(n, None)
        right = f"{t[0]:>11.3f}{t[1]:>9.3f}" if t else ""
        print(f"{n[:27]:<28}{f:>11.3f}{bw:>9.3f}{right}")
    for n, (f, bw) in torch_by_name.items():
        print(f"{n[:27]:<28}{'':>20}{f:>11.3f}{bw:>9.3f}")
    print(f"{'total':<28}{sum(x[1] for x in a):>11.3f}{sum(x[2] for x in a):>9.3f}"
          f"{sum(x[1] for x in b):>11.3f}{sum(x[2] for x in b):>9.3f}")


def scaling(args, ctx):
    """Training img/s at 1, 2, ... threads, batch 32 and 64, each framework against its 1 thread."""
    cores = usable_cores()
    counts = list(range(1, cores + 1)) if cores <= 8 else sorted({1 << k for k in range(cores.bit_length())} | {cores})
    batches = (32, 64)
    print(f"\nthread scaling: training img/s, median of {args.rounds} rounds; x1 = against the same framework's 1 thread")
    print(f"{'net':<10}{'batch':>6}{'threads':>8}{'netcli':>9}{'x1':>6}{'torch':>9}{'x1':>6}{'ratio':>7}")
    for name in args.scaling_nets.split(","):
        keys = [(k, t) for t in counts for k in ("netcli", "torch")]
        ws = Workers(ctx, name, keys, {"netcli": ROOT, "torch": ROOT}, batches)
        try:
            if ws.failed:
                print(f"{name}: a worker failed: {next(iter(ws.failed.values()))}")
                continue
            for key in keys:
                for b in batches:
                    ws.ask(key, "train", args.warmup, b)
            got = {(key, b): [] for key in keys for b in batches}
            for r in range(args.rounds):
                for key in keys[r % len(keys):] + keys[:r % len(keys)]:
                    for b in batches:
                        got[key, b].append(b / statistics.median(ws.ask(key, "train", args.iters, b)))
            for b in batches:
                one = {k: statistics.median(got[(k, 1), b]) for k in ("netcli", "torch")}
                for t in counts:
                    n, p = statistics.median(got[("netcli", t), b]), statistics.median(got[("torch", t), b])
                    print(f"{name:<10}{b:>6}{t:>8}{n:>9.0f}{n / one['netcli']:>6.2f}{p:>9.0f}"
                          f"{p / one['torch']:>6.2f}{n / p:>7.2f}", flush=True)
        finally:
            ws.close()


def checkout(rev):
    """netcli/ as of commit rev, in a new temporary folder (the caller removes it)."""
    import tarfile
    sha = subprocess.run(["git", "-C", ROOT, "rev-parse", "--verify", f"{rev}^{{commit}}"],
                         capture_output=True, text=True)
    if sha.returncode:
        raise SystemExit(f"--against {rev}: not a commit of this repository ({sha.stderr.strip()})")
    sha = sha.stdout.strip()
    folder = tempfile.mkdtemp(prefix="netcli-rev-")
    archive = subprocess.run(["git", "-C", ROOT, "archive", "--format=tar", sha, "netcli"], capture_output=True)
    if archive.returncode:
        shutil.rmtree(folder)
        raise SystemExit(f"--against {rev}: git archive failed: {archive.stderr.decode(errors='replace').strip()}")
    import io
    with tarfile.open(fileobj=io.BytesIO(archive.stdout)) as tar:
        tar.extractall(folder, filter="data")
    subject = subprocess.run(["git", "-C", ROOT, "log", "-1", "--format=%h %s", sha], capture_output=True, text=True)
    return folder, subject.stdout.strip()[:100]


def versions():
    import numpy
    import numba
    import torch
    return f"numpy {numpy.__version__}, numba {numba.__version__}, torch {torch.__version__}, python {sys.version.split()[0]}"


def parse_args():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--nets", default=",".join(n for n in NETS if n != "mlp"), help=f"comma-separated, from {', '.join(NETS)}")
    ap.add_argument("--threads", type=int, default=usable_cores())
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--iters", type=int, default=40, help="iterations per measurement in a round")
    ap.add_argument("--warmup", type=int, default=20, help="training iterations before the rounds (half that for inference)")
    ap.add_argument("--layer-iters", type=int, default=20, help="iterations of the per-layer timing")
    ap.add_argument("--no-layers", action="store_true", help="skip the per-layer tables")
    ap.add_argument("--against", metavar="REV", help="also run netcli as of this commit (A/B against it)")
    ap.add_argument("--scaling", action="store_true", help="also print the thread-scaling table")
    ap.add_argument("--scaling-nets", default="lenet,resnet20", help="the nets of the scaling table")
    return ap.parse_args()


def main():
    args = parse_args()
    try:
        import torch  # noqa: F401
    except ImportError:
        print("PyTorch is not installed, so there is nothing to compare against: "
              "pip install torch==2.13.0 (the CPU build) and run again.")
        return 0
    names = [n.strip() for n in args.nets.split(",") if n.strip()]
    unknown = [n for n in names + args.scaling_nets.split(",") if n not in NETS]
    if unknown:
        print(f"unknown net(s) {', '.join(unknown)}; known: {', '.join(NETS)}")
        return 2
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))     # so that the finally below runs
    path_first = {"netcli": ROOT, "torch": ROOT}
    folder = None
    try:
        if args.against:
            folder, subject = checkout(args.against)
            path_first["rev"] = folder
        ctx = mp.get_context("spawn")
        print(f"CPU: {cpu_model()}; {usable_cores()} usable cores, threads {args.threads}; {versions()}")
        head = subprocess.run(["git", "-C", ROOT, "log", "-1", "--format=%h %s"], capture_output=True, text=True)
        print(f"netcli now: {head.stdout.strip()[:100]}" + (f"; REV {args.against}: {subject}" if folder else ""))
        ceiling = sgemm_ceiling(ctx, args)
        sgemm = max(ceiling)
        print(f"sgemm ceiling (1024^3, {args.threads} threads): {sgemm:.0f} GFLOP/s "
              f"(NumPy's BLAS {ceiling[0]:.0f}, PyTorch's {ceiling[1]:.0f})\n")
        results = {}
        for name in names:
            r = compare(name, args, ctx, path_first)
            if r is not None:
                results[name] = r
                print_net(name, r, sgemm)
        if results:
            print_tables(results, args, sgemm)
        if args.scaling:
            scaling(args, ctx)
    except KeyboardInterrupt:
        print("\ninterrupted", file=sys.stderr)
        return 130
    finally:
        if folder:
            shutil.rmtree(folder, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
