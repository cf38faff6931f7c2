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
worker's peak resident memory (VmHWM; in brackets its peak after the imports, before the net), and
per-layer times of both.
--against REV: a third worker runs netcli as of commit REV (`git archive` of its netcli/ into a
temporary folder, removed at the end), and the rounds rotate netcli / netcli-REV / PyTorch; the
now/REV ratios are printed with their spread. A net that REV cannot build gets one line.
--scaling: training throughput of netcli and PyTorch at 1, 2, ... threads up to the usable cores,
batch 32 and 64, for --scaling-nets (lenet and resnet20), and the ratio to each one's 1 thread;
beside netcli's, the machine's own ceiling ("ceil"): T one-thread netcli processes, each training
1/T of the batch at the same time (no shared memory, no GIL, nothing to combine), against one
process training the whole batch. Where cores share a memory bus, a cache or a physical core (a
VM's vCPUs), the ceiling is under T, and so is any framework's scaling (up to CEILING_PROCESSES).
After each net's rows: the round trip of a cache line between the cores of netcli's threads after
each round. A VM's host may move its vCPUs between one core complex (~100 ns) and two (~500 ns)
from one minute to the next, and the two shares' threads exchange their weights and gradients
every iteration (LeNet at batch 32 on 2 vCPUs of an AMD EPYC Zen 5: 1.57-1.63x one thread near,
1.24-1.32x far, the same day).
PyTorch is not a netcli dependency: `pip install torch==2.13.0` installs the CPU build.
Some environments set OPENBLAS_CORETYPE (and OPENBLAS_L2_SIZE) for older OpenBLAS builds that fail
on their CPUs; NumPy's own OpenBLAS then runs older kernels (AVX2 on an AVX-512 CPU: 1024^3 sgemm
134 against 249 GFLOP/s per Zen 5 core) while PyTorch's are unaffected. The BLAS line names the
kernels and the variable; to compare on equal terms, unset both for the bench's command alone:
`env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python bench/nets_vs_torch.py ...`.
"""
from __future__ import annotations

import argparse
import io
import multiprocessing as mp
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tarfile
import tempfile

from bench_workers import NETS, ROOT, Workers, check_translation


def cpu_model():
    """The CPU's model name, family and widest vector unit (a VM may show only 'AMD EPYC': the
    family tells Zen 3 (25) from Zen 5 (26), and AVX2 from AVX-512 machines apart)."""
    info = {}
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                key, _, value = line.partition(":")
                info.setdefault(key.strip(), value.strip())
    except OSError:
        pass
    if "model name" not in info:
        import platform
        return platform.processor() or platform.machine()
    flags = set(info.get("flags", "").split())
    vector = "AVX-512" if "avx512f" in flags else "AVX2" if "avx2" in flags else "no AVX2"
    return f"{info['model name']} (family {info.get('cpu family', '?')} model {info.get('model', '?')}, {vector})"


def blas_line():
    """NumPy's BLAS and the kernels it chose (OpenBLAS takes them from OPENBLAS_CORETYPE where
    that is set: an environment may hold an AVX-512 CPU to the AVX2 kernels)."""
    import numpy  # noqa: F401 - loads the BLAS threadpoolctl reads
    from threadpoolctl import threadpool_info
    libs = [i for i in threadpool_info() if i.get("user_api") == "blas"]
    if not libs:
        return "NumPy's BLAS: unknown"
    lib = libs[0]
    kernels = f", {lib['architecture']} kernels" if lib.get("architecture") else ""
    forced = os.environ.get("OPENBLAS_CORETYPE")
    why = (f" (OPENBLAS_CORETYPE={forced} in the environment; `env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE` "
           f"lets OpenBLAS choose)") if forced and lib["internal_api"] == "openblas" else ""
    return f"NumPy's BLAS: {lib['internal_api']} {lib.get('version')}{kernels}{why}"


def usable_cores():
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def spread(values):
    return statistics.median(values), min(values), max(values)


def compare(name, args, ctx, path_first):
    kinds = ["netcli", "torch"] + (["rev"] if "rev" in path_first else [])
    ws = Workers(ctx, name, [(k, args.threads) for k in kinds], path_first)
    try:
        r = run_workers(name, args, ws, kinds)
    except BaseException:                   # Ctrl-C, SIGTERM: the workers go now, mid-measurement
        ws.close(wait=False)
        raise
    ws.close()
    return r


def run_workers(name, args, ws, kinds):
    for kind in ("netcli", "torch"):
        if (kind, args.threads) in ws.failed:
            print(f"{name}: {kind} worker failed: {ws.failed[kind, args.threads]}")
            return None
    if ("rev", args.threads) in ws.failed:
        print(f"{name}: netcli at {args.against} cannot run it: {ws.failed['rev', args.threads]}")
        kinds.remove("rev")
    while True:
        try:
            return measure(name, args, ws, kinds)
        except RuntimeError as e:
            if "rev" in kinds and str(e).startswith("rev "):      # REV failed: measure again without it
                print(f"{name}: netcli at {args.against} failed while measuring: {e}")
                kinds.remove("rev")
                continue
            print(f"{name}: {e}")
            return None


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
    mem = "; ".join(f"{k} {peak:.0f} MB (imports {base:.0f})" for k, (peak, base) in r["memory"].items())
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
    print(f"{'layer':<36}{'netcli fwd':>11}{'bwd':>9}{'torch fwd':>11}{'bwd':>9}")
    for n, f, bw in a:
        t = torch_by_name.pop(n, None)
        right = f"{t[0]:>11.3f}{t[1]:>9.3f}" if t else ""
        print(f"{n[:35]:<36}{f:>11.3f}{bw:>9.3f}{right}")
    for n, (f, bw) in torch_by_name.items():
        print(f"{n[:35]:<36}{'':>20}{f:>11.3f}{bw:>9.3f}")
    print(f"{'total':<36}{sum(x[1] for x in a):>11.3f}{sum(x[2] for x in a):>9.3f}"
          f"{sum(x[1] for x in b):>11.3f}{sum(x[2] for x in b):>9.3f}")


CEILING_PROCESSES = 8     # the ceiling's processes at most (each holds the net: ResNet-20 about 0.8 GB)


def scaling(args, ctx):
    """Training img/s at 1, 2, ... threads, batch 32 and 64, each framework against its 1 thread;
    then the machine's ceiling (ceiling())."""
    cores = usable_cores()
    counts = list(range(1, cores + 1)) if cores <= 8 else sorted({1 << k for k in range(cores.bit_length())} | {cores})
    batches = (32, 64)
    print(f"\nthread scaling: training img/s, median of {args.rounds} rounds; x1 = against the same framework's 1 "
          f"thread; ceil = the machine's ceiling for netcli, measured after (--help)")
    print(f"{'net':<10}{'batch':>6}{'threads':>8}{'netcli':>9}{'x1':>6}{'ceil':>6}{'torch':>9}{'x1':>6}{'ratio':>7}")
    for name in args.scaling_nets.split(","):
        keys = [(k, t) for t in counts for k in ("netcli", "torch")]
        ws = Workers(ctx, name, keys, {"netcli": ROOT, "torch": ROOT}, batches)
        wait, got = False, None
        try:
            if ws.failed:
                print(f"{name}: a worker failed: {next(iter(ws.failed.values()))}")
                continue
            for key in keys:
                for b in batches:
                    ws.ask(key, "train", args.warmup, b)
            got = {(key, b): [] for key in keys for b in batches}
            trips = []             # after each round: how far apart the most threads' cores were
            for r in range(args.rounds):
                for key in keys[r % len(keys):] + keys[:r % len(keys)]:
                    for b in batches:
                        got[key, b].append(b / statistics.median(ws.ask(key, "train", args.iters, b)))
                trips.append(ws.ask(("netcli", counts[-1]), "handover_ns") if counts[-1] > 1 else None)
            wait = True
        except RuntimeError as e:
            print(f"{name}: {e}")
            got = None
        finally:
            ws.close(wait)
        if got is None:
            continue
        ceil = ceiling(args, ctx, name, counts, batches)
        for b in batches:
            one = {k: statistics.median(got[(k, 1), b]) for k in ("netcli", "torch")}
            for t in counts:
                n, p = statistics.median(got[("netcli", t), b]), statistics.median(got[("torch", t), b])
                print(f"{name:<10}{b:>6}{t:>8}{n:>9.0f}{n / one['netcli']:>6.2f}{ceil.get((t, b), '-'):>6}{p:>9.0f}"
                      f"{p / one['torch']:>6.2f}{n / p:>7.2f}", flush=True)
        if any(ns is not None for ns in trips):
            print(f"{name}: a cache line's round trip between the {counts[-1]} threads' cores after each round, ns: "
                  + ", ".join("-" if ns is None else f"{ns:.0f}" for ns in trips)
                  + " (a VM's host may move its vCPUs; the shares' weights and gradients cross every iteration)",
                  flush=True)


def ceiling(args, ctx, name, counts, batches):
    """{(threads T, batch b): "x.xx"}: T one-thread netcli processes training b // T images each at
    the same time, their images/s against one such process training b, medians of rounds that
    alternate the two (after the frameworks' workers have gone)."""
    copies = [("netcli", 1, i) for i in range(min(counts[-1], CEILING_PROCESSES))]
    pairs = [(t, b) for b in batches for t in counts[1:] if b // t and t <= len(copies)]
    if not pairs:
        return {}
    cs = Workers(ctx, name, copies, {"netcli": ROOT}, sorted({*batches, *(b // t for t, b in pairs)}))
    out, wait = {}, False
    try:
        if cs.failed:
            print(f"{name}: a ceiling worker failed: {next(iter(cs.failed.values()))}")
            return {}
        for b in sorted({*batches, *(b // t for t, b in pairs)}):
            cs.ask_together(copies, "train", args.warmup, b)
        alone, together = {b: [] for b in batches}, {k: [] for k in pairs}
        for _ in range(args.rounds):
            for b in batches:
                alone[b].append(b / statistics.median(cs.ask(copies[0], "train", args.iters, b)))
            for t, b in pairs:
                times = cs.ask_together(copies[:t], "train", args.iters, b // t)
                together[t, b].append(sum(b // t / statistics.median(x) for x in times))
        out = {(t, b): f"{statistics.median(together[t, b]) / statistics.median(alone[b]):.2f}" for t, b in pairs}
        out.update({(1, b): "1.00" for b in batches})
        wait = True
    except RuntimeError as e:
        print(f"{name}: ceiling: {e}")
    finally:
        cs.close(wait)
    return out


def check(names, ctx):
    """That the PyTorch translation computes what netcli computes (one worker process per net)."""
    from concurrent.futures import ProcessPoolExecutor
    got = []
    for name in names:
        with ProcessPoolExecutor(1, mp_context=ctx) as pool:
            try:
                err = pool.submit(check_translation, name).result()
                got.append(f"{name} {err:.1e}" + (" MISMATCH" if err > 1e-4 else ""))
            except Exception as e:        # noqa: BLE001 - one line per net
                got.append(f"{name} failed ({type(e).__name__}: {e})")
    print("translation check, netcli's logits against PyTorch's for the same weights (largest "
          f"difference / largest logit): {', '.join(got)}\n", flush=True)


def checkout(rev):
    """netcli/ as of commit rev, in a new temporary folder (the caller removes it)."""
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
    with tarfile.open(fileobj=io.BytesIO(archive.stdout)) as tar:
        tar.extractall(folder, filter="data")
    subject = subprocess.run(["git", "-C", ROOT, "log", "-1", "--format=%h %s", sha], capture_output=True, text=True)
    return folder, subject.stdout.strip()[:100]


def commit_line():
    """This checkout's commit, and whether netcli/ has changes not committed (they are measured)."""
    head = subprocess.run(["git", "-C", ROOT, "log", "-1", "--format=%h %s"], capture_output=True, text=True)
    dirty = subprocess.run(["git", "-C", ROOT, "status", "--porcelain", "--", "netcli"], capture_output=True, text=True)
    return head.stdout.strip()[:100] + (" + changes not committed" if dirty.stdout.strip() else "")


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
    ap.add_argument("--no-check", action="store_true", help="skip the check that both frameworks compute the same net")
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
        print(blas_line())
        print(f"netcli now: {commit_line()}" + (f"; REV ({args.against}): {subject}" if folder else ""))
        ceiling = sgemm_ceiling(ctx, args)
        sgemm = max(ceiling)
        print(f"sgemm ceiling (1024^3, {args.threads} threads): {sgemm:.0f} GFLOP/s "
              f"(NumPy's BLAS {ceiling[0]:.0f}, PyTorch's {ceiling[1]:.0f})\n")
        if not args.no_check:
            check(names, ctx)
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
