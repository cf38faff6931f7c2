"""LeNet training on a GPU: netcli's CUDA path against PyTorch's, in the same run.

    python bench/gpu_vs_torch.py [--batches 64,1024] [--iters 300] [--rounds 3] [--gpu 0] [--profile]
                                 [--net configs/lenet_train_test.yaml]

LeNet is built from configs/lenet_train_test.yaml (its Data layers replaced by an Input layer of
the TRAIN batch, filled once with random samples), and translated to PyTorch from the same layer
list (bench/nets_vs_torch.py). Both train with SGD, momentum 0.9, weight decay 5e-4. Per
iteration, netcli copies the batch from pinned host memory to the device, runs forward, backward
and the update there, and reads the loss back (as its solver does); PyTorch copies the same batch
with non_blocking=True and never reads the loss (its fastest loop). Each round times `--iters`
iterations of each after a warm-up, the two alternating; the medians are printed with the ratio
netcli/PyTorch, the issue's targets (batch 64: >= 1.0; batch 1024: >= 0.5), netcli's kernel
launches and host<->device copies per iteration, and with --profile `netcli time --gpu`'s
per-layer table. The GPU, the CPU and the versions head the output.

Needs `pip install '.[gpu]'` and a CUDA build of PyTorch (`pip install torch`). Under
NUMBA_ENABLE_CUDASIM=1 (with --torch-device cpu) it runs end to end on tiny settings as a check of
the script (`--net configs/mnist_logreg.yaml --batches 2 --iters 2 --rounds 1`: LeNet itself takes
minutes per iteration in the simulator); the numbers are then the simulator's, never a GPU's.
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_workers import MNIST, SOLVER, bench_layers, netcli_yaml, random_data  # noqa: E402
from nets_vs_torch import cpu_model  # noqa: E402

TARGETS = {64: 1.0, 1024: 0.5}        # netcli / PyTorch img/s the issue asks for


class NetcliTrainer:
    def __init__(self, net, batch, gpu, tmp):
        import netcli
        from netcli.ops import cuda as kernels
        self.kernels = kernels
        layers, _, _, _ = bench_layers(net, MNIST)
        self.model = os.path.join(tmp, f"net_{batch}.yaml")
        with open(self.model, "w") as f:
            f.write(netcli_yaml(layers, batch, MNIST, True))
        solver = os.path.join(tmp, f"solver_{batch}.yaml")
        with open(solver, "w") as f:
            f.write(SOLVER.format(net=self.model).replace("base_lr: 0.001", "base_lr: 0.01"))
        self.solver = netcli.Solver(solver, progress=False, quiet=True, log_path=False, gpu=gpu)
        self.solver.test_interval = 0
        import numpy as np
        x, y = random_data(MNIST)
        net = self.solver.net
        net.blobs["data"].data[...] = np.resize(x, (batch, *MNIST))       # the pool repeated to the batch
        net.blobs["label"].data[...] = np.resize(y, batch)
        self.batch = batch
        self.device = net.executor.device

    def train(self, iters):
        """Seconds for `iters` iterations (step() ends by copying the params back: synchronised)."""
        ex = self.solver.net.executor
        k0, c0 = self.kernels.launches, ex.copies[0]
        t = time.perf_counter()
        self.solver.step(iters)
        seconds = time.perf_counter() - t
        return seconds, (self.kernels.launches - k0) / iters, (ex.copies[0] - c0) / iters


class TorchTrainer:
    def __init__(self, net, batch, device):
        import torch
        self.torch = torch
        torch.manual_seed(0)
        from torch_models import TorchNet
        layers, _, _, _ = bench_layers(net, MNIST)
        self.model = TorchNet(layers, MNIST)
        self.model.modules.to(device)
        self.model.modules.train()
        self.opt = torch.optim.SGD(self.model.modules.parameters(), lr=0.01, momentum=0.9, weight_decay=5e-4)
        x, y = random_data(MNIST)
        reps = -(-batch // len(x))
        x, y = torch.from_numpy(x).repeat(reps, 1, 1, 1)[:batch], torch.from_numpy(y).long().repeat(reps)[:batch]
        cuda = device.startswith("cuda")
        self.x, self.y = (x.pin_memory(), y.pin_memory()) if cuda else (x, y)
        self.device, self.cuda = device, cuda

    def train(self, iters):
        torch = self.torch
        if self.cuda:
            torch.cuda.synchronize()
        t = time.perf_counter()
        for _ in range(iters):
            x = self.x.to(self.device, non_blocking=True)
            y = self.y.to(self.device, non_blocking=True)
            self.opt.zero_grad(set_to_none=True)
            self.model.run(x, y).backward()
            self.opt.step()
        if self.cuda:
            torch.cuda.synchronize()
        return time.perf_counter() - t


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--batches", default="64,1024", help="Batch sizes, comma-separated.")
    ap.add_argument("--iters", type=int, default=300, help="Training iterations per round and framework.")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--gpu", type=int, default=0, help="The CUDA device for netcli.")
    ap.add_argument("--torch-device", default=None, help="PyTorch's device (default: cuda:<--gpu>).")
    ap.add_argument("--profile", action="store_true", help="Also netcli time --gpu's per-layer table per batch.")
    ap.add_argument("--net", default="configs/lenet_train_test.yaml", help="An MNIST net of configs/ (default LeNet).")
    args = ap.parse_args(argv)
    os.chdir(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    from netcli.errors import NetcliError
    from netcli.gpu.device import select
    try:
        gpu_name = select(args.gpu)
    except NetcliError as e:
        sys.exit(f"bench/gpu_vs_torch.py: {e}")
    try:
        import torch
    except ImportError:
        sys.exit("bench/gpu_vs_torch.py: needs PyTorch with CUDA: pip install torch")
    tdev = args.torch_device or f"cuda:{args.gpu}"
    if tdev.startswith("cuda") and not torch.cuda.is_available():
        sys.exit(f"bench/gpu_vs_torch.py: this PyTorch ({torch.__version__}) has no CUDA device; install a CUDA "
                 "build, or give --torch-device cpu to check the script")
    import numba
    import numba_cuda
    tname = torch.cuda.get_device_name(torch.device(tdev)) if tdev.startswith("cuda") else "cpu"
    print(f"GPU (netcli): {gpu_name}; PyTorch on {tdev} ({tname})")
    print(f"CPU: {cpu_model()}; numba {numba.__version__}, numba-cuda {numba_cuda.__version__}, "
          f"torch {torch.__version__}")
    if "simulated" in gpu_name:
        print("The CUDA simulator: these numbers check the script; they say nothing of a GPU's speed.")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for batch in (int(b) for b in args.batches.split(",")):
            ours, theirs = NetcliTrainer(args.net, batch, args.gpu, tmp), TorchTrainer(args.net, batch, tdev)
            t0 = time.perf_counter()
            ours.train(2)
            compile_s = time.perf_counter() - t0
            theirs.train(2)
            a, b, launches, copies = [], [], 0.0, 0.0
            for _ in range(args.rounds):
                s, launches, copies = ours.train(args.iters)
                a.append(batch * args.iters / s)
                b.append(batch * args.iters / theirs.train(args.iters))
            ratio = statistics.median(x / y for x, y in zip(a, b))
            rows.append((batch, statistics.median(a), statistics.median(b), ratio, launches, copies, compile_s))
            if args.profile:
                from netcli.commands.timing import benchmark
                print(f"\n-- netcli time --gpu {args.gpu}, batch {batch}")
                benchmark(ours.model, iterations=min(args.iters, 50), gpu=args.gpu, echo=print)
    print(f"\n{os.path.basename(args.net)} training, {args.iters} iterations x {args.rounds} rounds (medians)")
    print(f"{'batch':>6} {'netcli img/s':>13} {'PyTorch img/s':>14} {'ratio':>6} {'target':>7} "
          f"{'launches/it':>12} {'copies/it':>10} {'first 2 it (s)':>15}")
    for batch, ours, theirs, ratio, launches, copies, compile_s in rows:
        target = TARGETS.get(batch)
        mark = "" if target is None else (f">= {target:g} " + ("met" if ratio >= target else "MISSED"))
        print(f"{batch:>6} {ours:>13.0f} {theirs:>14.0f} {ratio:>6.2f} {mark:>7} {launches:>12.1f} "
              f"{copies:>10.1f} {compile_s:>15.2f}")


if __name__ == "__main__":
    main()
