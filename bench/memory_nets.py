"""Peak memory of one training iteration of Caffe's ImageNet nets, netcli beside PyTorch (issue 29).

    python bench/memory_nets.py [--nets caffenet,vgg16,googlenet,lenet,cifar10_quick]
                                [--batch N] [--threads 2] [--what step|fb] [--only netcli|torch]
                                [--release auto|always|never]

Each net is written as a netcli config (an Input of data and label at the batch, the layers, a
SoftmaxWithLoss): CaffeNet (bvlc_reference_caffenet's layers, LRN after the first two pools,
groups in conv2/4/5), VGG-16 (configuration D) and GoogLeNet (bvlc_googlenet without its two
auxiliary classifiers). Every run is its own process (sequential, never two at once): it builds
the net, fills the input with random data and runs two iterations (the second as every later
one: gradients and history held from the first) -- `fb` forward and backward, `step` solver
steps (SGD with momentum, so its history too) -- then reports its peak resident
memory (VmHWM, MB), its peak after the imports, and for netcli the memory plan's total
(netcli.exec.memory_plan). PyTorch (not a netcli dependency) runs the same layers, translated by
bench/torch_models.py, with SGD with momentum. Default batches: Caffe's own (CaffeNet 256, VGG-16
and GoogLeNet 32); LeNet 64 and cifar10_quick 100 from their configs.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile

BENCH = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(BENCH)
sys.path[:0] = [BENCH]

from make_configs import Builder, inception_module  # noqa: E402

ITERATIONS = 2     # the second one is the steady state (gradients and history exist from the first)
DEFAULT_BATCH = {"caffenet": 256, "vgg16": 32, "googlenet": 32, "lenet": 64, "cifar10_quick": 100}
SOLVER = """net: {net}
base_lr: 0.001
momentum: 0.9
weight_decay: 0.0005
lr_policy: fixed
max_iter: 10
random_seed: 1
"""


def _conv_relu(b, name, bottom, n, k, stride=1, pad=0, group=1):
    top = b.conv(name, bottom, n, k, stride, pad, group, bias=True)
    return b.relu(f"relu_{name}", top)


def _lrn(b, name, bottom):
    return b.add(name=name, type="LRN", bottom=bottom, top=name,
                 lrn_param={"local_size": 5, "alpha": 0.0001, "beta": 0.75})


def _head(b, x, widths, drop=0.5):
    for k, n in enumerate(widths, 6):
        x = b.relu(f"relu{k}", b.fc(f"fc{k}", x, n))
        x = b.add(name=f"drop{k}", type="Dropout", bottom=x, top=x, dropout_param={"dropout_ratio": drop})
    return b.fc(f"fc{6 + len(widths)}", x, 1000)


def caffenet():
    b = Builder()
    x = _conv_relu(b, "conv1", "data", 96, 11, 4)
    x = _lrn(b, "norm1", b.pool("pool1", x, "MAX", 3, 2))
    x = _conv_relu(b, "conv2", x, 256, 5, pad=2, group=2)
    x = _lrn(b, "norm2", b.pool("pool2", x, "MAX", 3, 2))
    x = _conv_relu(b, "conv3", x, 384, 3, pad=1)
    x = _conv_relu(b, "conv4", x, 384, 3, pad=1, group=2)
    x = _conv_relu(b, "conv5", x, 256, 3, pad=1, group=2)
    return b, _head(b, b.pool("pool5", x, "MAX", 3, 2), (4096, 4096)), (3, 227, 227)


def vgg16():
    b = Builder()
    x = "data"
    for stage, (n, reps) in enumerate(((64, 2), (128, 2), (256, 3), (512, 3), (512, 3)), 1):
        for r in range(1, reps + 1):
            x = _conv_relu(b, f"conv{stage}_{r}", x, n, 3, pad=1)
        x = b.pool(f"pool{stage}", x, "MAX", 2, 2)
    return b, _head(b, x, (4096, 4096)), (3, 224, 224)


def googlenet():
    b = Builder()
    x = b.pool("pool1", _conv_relu(b, "conv1", "data", 64, 7, 2, 3), "MAX", 3, 2)
    x = _lrn(b, "pool1_norm1", x)
    x = _conv_relu(b, "conv2_reduce", x, 64, 1)
    x = _lrn(b, "conv2_norm2", _conv_relu(b, "conv2", x, 192, 3, pad=1))
    x = b.pool("pool2", x, "MAX", 3, 2)
    x = inception_module(b, "inception_3a", x, 64, 96, 128, 16, 32, 32)
    x = inception_module(b, "inception_3b", x, 128, 128, 192, 32, 96, 64)
    x = b.pool("pool3", x, "MAX", 3, 2)
    for name, c in (("4a", (192, 96, 208, 16, 48, 64)), ("4b", (160, 112, 224, 24, 64, 64)),
                    ("4c", (128, 128, 256, 24, 64, 64)), ("4d", (112, 144, 288, 32, 64, 64)),
                    ("4e", (256, 160, 320, 32, 128, 128))):
        x = inception_module(b, f"inception_{name}", x, *c)
    x = b.pool("pool4", x, "MAX", 3, 2)
    x = inception_module(b, "inception_5a", x, 256, 160, 320, 32, 128, 128)
    x = inception_module(b, "inception_5b", x, 384, 192, 384, 48, 128, 128)
    x = b.pool("pool5", x, "AVE", 7, 1)
    x = b.add(name="drop", type="Dropout", bottom=x, top=x, dropout_param={"dropout_ratio": 0.4})
    return b, b.fc("loss3_classifier", x, 1000), (3, 224, 224)


BUILT = {"caffenet": caffenet, "vgg16": vgg16, "googlenet": googlenet}
SHIPPED = {"lenet": "configs/lenet_train_test.yaml", "cifar10_quick": "configs/cifar10_quick_train_test.yaml"}


def layer_list(name):
    """(the net's layers without its data layers, ending in a SoftmaxWithLoss; sample shape)."""
    if name in BUILT:
        b, x, sample = BUILT[name]()
        b.add(name="loss", type="SoftmaxWithLoss", bottom=[x, "label"], top="loss")
        return b.layers, sample
    from bench_workers import NETS, bench_layers
    layers, sample, _, _ = bench_layers(*NETS[name])
    return layers, sample


def write_net(name, batch, folder):
    from bench_workers import netcli_yaml
    layers, sample = layer_list(name)
    path = os.path.join(folder, f"{name}_{batch}.yaml")
    with open(path, "w") as f:
        f.write(netcli_yaml(layers, batch, sample, True))
    return path, sample


RELEASE = {"auto": "auto", "always": True, "never": False}     # netcli's release_rows (exec/arena.py)


def worker(kind, name, batch, threads, what, release="auto"):
    """One iteration in this process; prints a JSON line with its peak memory."""
    os.environ["NETCLI_THREADS"] = str(threads)
    import numpy as np
    from bench_workers import peak_rss_mb
    out = {"kind": kind, "net": name, "batch": batch, "threads": threads, "what": what}
    if kind == "netcli":
        sys.path.insert(0, ROOT)
        import netcli
        from netcli.exec import threads as pool
        pool.set_threads(threads)
    else:
        import torch
        torch.set_num_threads(threads)
    out["imports_mb"] = peak_rss_mb()
    with tempfile.TemporaryDirectory() as tmp:
        path, sample = write_net(name, batch, tmp)
        rng = np.random.default_rng(0)
        x = rng.normal(0, 1, (batch, *sample)).astype(np.float32)
        y = rng.integers(0, 10, batch).astype(np.float32)
        if kind == "netcli":
            spath = os.path.join(tmp, "solver.yaml")
            with open(spath, "w") as f:
                f.write(SOLVER.format(net=path))
            if what == "step":
                s = netcli.Solver(spath, progress=False, log_path=False, release_rows=RELEASE[release])
                s.test_interval = 0
                net = s.net
            else:
                net = netcli.Net(path, phase="TRAIN", release_rows=RELEASE[release])
            plan = getattr(net.executor, "memory", None)      # netcli.exec.memory_plan
            if plan is not None:
                out["plan_mb"] = plan.total / 2 ** 20
                out["plan_items"] = [(k, v / 2 ** 20) for k, v in plan.biggest(8)]
            out["built_mb"] = peak_rss_mb()
            net.blobs["data"].data[...] = x
            net.blobs["label"].data[...] = y
            for _ in range(ITERATIONS):
                if what == "step":
                    s.step(1)
                else:
                    net.clear_param_diffs()
                    net.forward_backward()
        else:
            import torch
            from torch_models import TorchNet
            layers = [dict(layer) for layer in layer_list(name)[0]]
            model = TorchNet(layers, sample)
            model.modules.train()
            opt = torch.optim.SGD(model.modules.parameters(), lr=0.001, momentum=0.9, weight_decay=5e-4)
            out["built_mb"] = peak_rss_mb()
            for _ in range(ITERATIONS):
                loss = model.run(torch.from_numpy(x), torch.from_numpy(y).long())
                opt.zero_grad()
                loss.backward()
                if what == "step":
                    opt.step()
    out["peak_mb"] = peak_rss_mb()
    print(json.dumps(out), flush=True)


def run_one(kind, name, batch, threads, what, release):
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    r = subprocess.run([sys.executable, __file__, "--worker", kind, "--nets", name, "--batch", str(batch),
                        "--threads", str(threads), "--what", what, "--release", release],
                       capture_output=True, text=True, env=env)
    lines = [line for line in r.stdout.splitlines() if line.startswith("{")]
    if r.returncode or not lines:
        return {"kind": kind, "net": name, "error": (r.stderr.strip().splitlines() or ["?"])[-1]}
    return json.loads(lines[-1])


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--nets", default="caffenet,vgg16,googlenet,lenet,cifar10_quick")
    ap.add_argument("--batch", type=int, help="one batch for every net (default: each net's own)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--what", choices=("step", "fb"), default="step")
    ap.add_argument("--only", choices=("netcli", "torch"))
    ap.add_argument("--release", choices=tuple(RELEASE), default="auto",
                    help="netcli's release_rows: auto (the Solver's), always, never")
    ap.add_argument("--worker", choices=("netcli", "torch"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        worker(args.worker, args.nets, args.batch, args.threads, args.what, args.release)
        return 0
    kinds = [args.only] if args.only else ["netcli", "torch"]
    print(f"{'net':<14}{'batch':>6}{'kind':>8}{'peak MB':>10}{'imports':>9}{'built':>8}{'plan MB':>9}"
          f"{'peak/plan':>10}   ({args.what}, {args.threads} threads, release {args.release})")
    for name in args.nets.split(","):
        batch = args.batch or DEFAULT_BATCH[name]
        got = {}
        for kind in kinds:
            r = got[kind] = run_one(kind, name, batch, args.threads, args.what, args.release)
            if "error" in r:
                print(f"{name:<14}{batch:>6}{kind:>8}  failed: {r['error']}", flush=True)
                continue
            plan = r.get("plan_mb")
            print(f"{name:<14}{batch:>6}{kind:>8}{r['peak_mb']:>10.0f}{r['imports_mb']:>9.0f}{r['built_mb']:>8.0f}"
                  + (f"{plan:>9.0f}{r['peak_mb'] / plan:>10.2f}" if plan else f"{'-':>9}{'-':>10}"), flush=True)
            if r.get("plan_items"):
                print("    plan: " + ", ".join(f"{k} {v:.0f}" for k, v in r["plan_items"]), flush=True)
        if "netcli" in got and "torch" in got and "error" not in got["netcli"] and "error" not in got["torch"]:
            print(f"{'':<14}{'':>6}{'netcli/torch':>12}{got['netcli']['peak_mb'] / got['torch']['peak_mb']:>6.2f}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
