"""Data-parallel training across processes: measured here at K = 1 and 2, modelled at K = 8, 64, 512.

    python bench/scaling.py [--iterations 20]

Needs the MPI extra (pip install 'netcli[mpi]'). For LeNet, cifar10_quick (built as
bench/nets_vs_torch.py builds them: the config's layers, random inputs) and a net whose gradients
are large (one AlexNet-sized inner product, fc6: 9216 -> 4096, 151 MB of float32 gradients),
`netcli time` measures per iteration the compute and the gradient reduction, alone and under
`mpiexec -n 2` (both reductions). This machine's two processes talk through shared memory, so
the network is modelled: weak scaling (every process keeps one config batch, the global batch
grows with K), a ring allreduce taking 2(K-1)/K x gradient bytes / bandwidth + 2(K-1) x latency
per step, no overlap of communication with backward (netcli reduces after backward), and the
compute time measured here for one batch. Efficiency = compute / (compute + communication).
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_workers import NETS, bench_layers, netcli_yaml  # noqa: E402
from nets_vs_torch import cpu_model  # noqa: E402

NETWORKS = {"10 Gb/s Ethernet": (10e9 / 8, 25e-6), "100 Gb/s InfiniBand": (100e9 / 8, 3e-6)}   # B/s, s/step
SCALES = (8, 64, 512)
FC6 = {"name": "fc6_net", "layers": [
    {"name": "data", "type": "Input", "top": ["data", "label"],
     "input_param": {"shape": [{"dim": [32, 9216]}, {"dim": [32]}]}},
    {"name": "fc6", "type": "InnerProduct", "bottom": "data", "top": "fc6",
     "inner_product_param": {"num_output": 4096, "weight_filler": {"type": "gaussian", "std": 0.005}}},
    {"name": "loss", "type": "SoftmaxWithLoss", "bottom": ["fc6", "label"], "top": "loss"}]}


def nets(tmp):
    import yaml
    out = {}
    for name in ("lenet", "cifar10_quick"):
        layers, sample, batch, _ = bench_layers(*NETS[name])
        out[name] = (os.path.join(tmp, name + ".yaml"), netcli_yaml(layers, batch, sample, True), batch)
    out["alexnet_fc6"] = (os.path.join(tmp, "fc6.yaml"), yaml.safe_dump(FC6, sort_keys=False), 32)
    for path, text, _ in out.values():
        with open(path, "w") as f:
            f.write(text)
    return {k: (v[0], v[2]) for k, v in out.items()}


def launcher(k):
    if k == 1:
        return []
    mpiexec = shutil.which("mpiexec")
    version = subprocess.run([mpiexec, "--version"], capture_output=True, text=True).stdout
    return [mpiexec, "-n", str(k)] + (["--oversubscribe"] if "Open MPI" in version or "prte" in version.lower() else [])


def timed(path, k, iterations, reduction="exact"):
    env = dict(os.environ, OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1")
    env.pop("NETCLI_THREADS", None)
    cmd = launcher(k) + [sys.executable, "-m", "netcli.cli", "time", "--model", path, "--iterations",
                         str(iterations), "--json"] + (["--reduction", reduction] if k > 1 else [])
    r = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if r.returncode:
        raise SystemExit(f"{' '.join(cmd)} failed: {r.stderr.strip().splitlines()[-1:]}")
    return json.loads(r.stdout)


def ring_seconds(nbytes, k, bandwidth, latency):
    return 2 * (k - 1) / k * nbytes / bandwidth + 2 * (k - 1) * latency


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--iterations", type=int, default=20)
    args = ap.parse_args()
    try:
        import mpi4py  # noqa: F401
    except ImportError:
        raise SystemExit("bench/scaling.py needs MPI: pip install 'netcli[mpi]'")
    print(f"CPU: {cpu_model()}, {os.cpu_count()} logical cores; K processes share them (threads divided)")
    with tempfile.TemporaryDirectory() as tmp:
        paths = nets(tmp)
        measured = {}
        print("\nMeasured on this machine, ms per iteration (the slowest process; K=2 over shared memory):")
        print(f"{'net':<14}{'batch':>6}{'grad MB':>9}{'K=1 compute':>13}{'K=2 compute':>13}"
              f"{'exact reduce':>14}{'mpi reduce':>12}")
        for name, (path, batch) in paths.items():
            one = timed(path, 1, args.iterations)
            two = timed(path, 2, args.iterations)
            two_mpi = timed(path, 2, args.iterations, "mpi")
            mb = two["gradient_mb"]
            measured[name] = (one["as_trained_ms"] / 1e3, mb * 2 ** 20)
            print(f"{name:<14}{batch:>6}{mb:>9.2f}{one['as_trained_ms']:>13.2f}{two['as_trained_ms']:>13.2f}"
                  f"{two['communication_ms']:>14.2f}{two_mpi['communication_ms']:>12.2f}")
    print("\nModel: weak scaling (one config batch per process), ring allreduce after backward, no overlap;")
    print("efficiency = compute / (compute + communication); compute = the K=1 time above.")
    header = "".join(f"{'K=' + str(k):>9}" for k in SCALES)
    for network, (bw, lat) in NETWORKS.items():
        print(f"\n{network} ({bw * 8 / 1e9:g} Gb/s, {lat * 1e6:g} us per step): efficiency")
        print(f"{'net':<14}{'comm ms @K=512':>15}{header}")
        for name, (compute, nbytes) in measured.items():
            effs = [compute / (compute + ring_seconds(nbytes, k, bw, lat)) for k in SCALES]
            cells = "".join(f"{e:>9.0%}" for e in effs)
            print(f"{name:<14}{ring_seconds(nbytes, SCALES[-1], bw, lat) * 1e3:>15.2f}{cells}")
    print("\nBelow 90%: the time to move the gradient (bytes / bandwidth, about constant in K) or the")
    print("2(K-1) latency steps (growing with K) exceed a tenth of one batch's compute. Fixes, in order of")
    print("cost: a bigger batch per process (compute grows, the gradient does not); overlapping the")
    print("reduction with backward (buckets reduced as their layers finish: hides up to the backward time);")
    print("fewer bytes (float16 or compressed gradients, at the price of the exact mode's bit-identity);")
    print("and for small nets at large K, a tree/recursive-doubling allreduce (log K latency steps).")


if __name__ == "__main__":
    main()
