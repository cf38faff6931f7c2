"""The worker processes of bench/nets_vs_torch.py: each builds one net in one framework (netcli as
of this checkout, netcli as of another commit, or PyTorch through bench/torch_models.py) and answers
the driver's requests (train, inference, latency, layers, memory, sgemm) over a pipe. Nothing here
imports netcli or PyTorch at module level: the worker puts the netcli under test first on sys.path
before its first import of netcli."""
from __future__ import annotations

import inspect
import os
import signal
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


def bench_layers(config, sample=None):
    """A config's layers for benchmarking (config: a path under the repository, as in NETS):
    Data and Input layers out (the bench puts its own Input in), TEST-only layers out. Returns
    (layers, sample shape (a deploy net's from its Input layer), TRAIN batch or None for a deploy
    net, inference batch)."""
    import yaml
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
    """This process's peak resident memory in MB: Linux's VmHWM (the peak of this process's own
    memory; ru_maxrss would also count the driver's size when it spawned this worker, which the
    kernel carries over an exec), else ru_maxrss."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except (OSError, ValueError, IndexError):
        pass
    import resource
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024          # Linux: kB, macOS: bytes


def check_translation(name):
    """The largest difference between netcli's and PyTorch's logits (the input of the last
    layer) for the same weights and a random batch of 2, relative to the largest logit: TEST
    phase, BatchNorm statistics and Scale params random. Run in a worker process."""
    sys.path[:0] = [ROOT, BENCH]
    import numpy as np
    import torch
    import netcli
    from torch_models import TorchNet, load_from_netcli, logits
    layers, sample, train_batch, _ = bench_layers(*NETS[name])
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "net.yaml")
        with open(path, "w") as f:
            f.write(netcli_yaml(layers, 2, sample, train_batch is not None))
        net = netcli.Net(path, phase="TEST")
    rng = np.random.default_rng(1)
    for layer in net.layers:
        if layer.type == "BatchNorm":
            for blob, (lo, hi) in zip(layer.blobs, ((-0.2, 0.2), (0.5, 2.0), (1.0, 1.0))):
                blob.data[...] = rng.uniform(lo, hi, blob.shape)
        elif layer.type == "Scale":
            for blob in layer.blobs:
                blob.data[...] = rng.uniform(0.5, 1.5, blob.shape)
    model = TorchNet(layers, sample)
    load_from_netcli(model, net)
    x = rng.normal(0, 1, (2, *sample)).astype(np.float32)
    net.blobs["data"].data[...] = x
    net.forward()
    theirs = logits(model, torch.from_numpy(x)).numpy()
    ours = net.blobs[model.steps[-1][2][0]].data.reshape(theirs.shape)
    return float(np.abs(ours - theirs).max() / max(float(np.abs(theirs).max()), 1e-30))


# -- workers ---------------------------------------------------------------------------------
class Worker:
    """What both frameworks' workers share: the random data and the batch-by-batch feed."""

    def _setup(self, name, train_batches):
        self.layer_list, self.sample, self.train_batch, self.test_batch = bench_layers(*NETS[name])
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
        """(this worker's peak resident memory, MB; the peak after its imports, before the net)."""
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
        # forward only (as torch.inference_mode); a revision before Net(inference=) (--against) as it can
        only = {"inference": True, "release_rows": "auto"} if "inference" in inspect.signature(netcli.Net).parameters else {}
        self.infer = {b: netcli.Net(paths[b], phase="TEST", **only) for b in (self.test_batch, 1)}
        # The inference nets use the first solver's weights. Each solver keeps its own: a net that
        # shares another's params runs its backward layer by layer (exec/cpu.py, bind_grads), which
        # made the scaling table's batch 64 (beside batch 32) scale 1.1x on 2 threads instead of 1.8x.
        owner = self.solvers[self.train_batches[0]].net if self.solvers else self.infer[self.test_batch]
        for net in self.infer.values():
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

    def handover_ns(self):
        """How far apart netcli's threads are: the least of 3 round trips of a cache line between
        the calling thread's core and the first worker's, ns (exec/team.py: teams help where it
        is within NEAR_NS; the two shares' weights and gradients cross it every iteration); None
        with one thread or in a revision without the measure (--against)."""
        from netcli.exec import team, threads
        if threads.count() < 2 or not hasattr(team, "least_round_trip_ns"):
            return None
        return team.least_round_trip_ns(3)

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
        for key in specs:                                   # key: (kind, threads[, copy number])
            kind, threads = key[:2]
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

    def ask_together(self, keys, *cmd):
        """The same command to several workers at once (they run it side by side); their answers."""
        for key in keys:
            self.conns[key][0].send(cmd)
        got = [self.conns[key][0].recv() for key in keys]
        for key, r in zip(keys, got):
            if isinstance(r, tuple) and r and r[0] == "error":
                raise RuntimeError(f"{key[0]} worker: {r[1]}")
        return got

    def _quit(self, key, wait=True):
        a, p = self.conns.pop(key)
        if wait:
            try:
                a.send(("quit",))
            except OSError:
                pass
            p.join(5)
        if p.is_alive():
            p.terminate()
            p.join(5)

    def close(self, wait=True):
        """Ask each worker to quit (wait) or end it at once."""
        for key in list(self.conns):
            self._quit(key, wait)
