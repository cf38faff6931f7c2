"""Seeded mutational fuzzing of configs, data files and the other untrusted inputs: every case
must end in a clean user error or success, within 20 s, without crashing the process.

    python bench/fuzz.py --cases 5000            # mutants of the shipped configs, through `check`
    python bench/fuzz.py --data 1000             # broken data files read by a Data layer
    python bench/fuzz.py --prototxt 2000 --caffemodel 2000 --binaryproto 2000 --image 2000 --runlog 2000
    python bench/fuzz.py --cases 500 --seed 7 --show 5

The last five are tests/fuzz_targets.py: prototxt text through `netcli check`, caffemodel and
binaryproto bytes through `predict`/`convert`, images through `predict`, run logs through
`netcli log --csv` and `netcli plot` (each run in-process, as `netcli --debug ...`).

Cases run in worker processes (one per core); a case over --timeout seconds is a hang (the worker
is killed and replaced), a worker that dies is a crash. Each worker's address space is capped (--memory GiB):
an input that makes netcli allocate past it is a finding (MemoryError), not a frozen machine.
The last line is the summary.
"""
from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import platform
import shutil
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "tests"))
os.environ.setdefault("NETCLI_OFFLINE", "1")
os.environ.setdefault("NETCLI_THREADS", "1")


def _worker(conn, memory_gib):
    if memory_gib:
        import resource
        cap = int(memory_gib * 2 ** 30)
        resource.setrlimit(resource.RLIMIT_AS, (cap, cap))
    import fuzz_targets
    import mutations
    from netcli import log
    log.set_quiet(True)
    import warnings
    warnings.simplefilter("ignore")
    while True:
        job = conn.recv()
        if job is None:
            return
        kind, seed = job
        folder = tempfile.mkdtemp(prefix="netcli-fuzz-")
        try:
            if kind == "config":
                what, path = mutations.config_case(seed, folder)
                result = mutations.outcome(mutations.run_config_case, what, path)
            elif kind == "data":
                path = mutations.data_case(seed, folder)
                result = mutations.outcome(mutations.run_data_case, path)
            else:
                argv = fuzz_targets.case(kind, seed, folder)
                result = mutations.outcome(fuzz_targets.run_case, argv)
        finally:
            shutil.rmtree(folder, ignore_errors=True)
        conn.send(result)


class Worker:
    def __init__(self, ctx, memory_gib):
        self.conn, child = ctx.Pipe()
        self.proc = ctx.Process(target=_worker, args=(child, memory_gib), daemon=True)
        self.proc.start()
        self.job, self.started = None, None

    def submit(self, job):
        self.job, self.started = job, time.monotonic()
        self.conn.send(job)

    def kill(self):
        self.proc.kill()
        self.proc.join()


def _targets():
    from fuzz_targets import TARGETS
    return TARGETS


def cpu_name():
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def fuzz(jobs, workers, timeout, show, memory_gib=0):
    ctx = mp.get_context("spawn")
    pool = [Worker(ctx, memory_gib) for _ in range(workers)]
    pending = list(jobs)
    counts = {"ok": 0, "clean": 0, "traceback": 0, "hang": 0, "crash": 0}
    per_kind = {}
    findings = []
    done = 0
    t0 = time.monotonic()
    while pending or any(w.job for w in pool):
        for i, w in enumerate(pool):
            if w.job is None and pending:
                w.submit(pending.pop(0))
        for i, w in enumerate(pool):
            if w.job is None:
                continue
            result = None
            if w.conn.poll(0.01):
                try:
                    result = w.conn.recv()
                except EOFError:
                    result = "crash"
            elif not w.proc.is_alive():
                result = f"crash (exit code {w.proc.exitcode})"
            elif time.monotonic() - w.started > timeout:
                result = f"hang (over {timeout:g} s)"
            if result is None:
                continue
            key = result.split(":")[0].split(" ")[0]
            counts[key] += 1
            per_kind.setdefault(w.job[0], dict.fromkeys(counts, 0))[key] += 1
            done += 1
            if key not in ("ok", "clean"):
                findings.append((w.job, result))
                if len(findings) <= show:
                    print(f"  {w.job[0]} seed {w.job[1]}: {result}", flush=True)
            if key in ("hang", "crash"):
                w.kill()
                pool[i] = Worker(ctx, memory_gib)
            else:
                w.job = None
    for w in pool:
        try:
            w.conn.send(None)
        except OSError:
            pass
        w.proc.join(timeout=5)
    return counts, per_kind, findings, time.monotonic() - t0


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cases", type=int, default=0, help="config mutants")
    ap.add_argument("--data", type=int, default=0, help="data-file mutants")
    for target in _targets():
        ap.add_argument(f"--{target}", type=int, default=0, help=f"{target} cases (tests/fuzz_targets.py)")
    ap.add_argument("--seed", type=int, default=0, help="first seed (case k uses seed + k)")
    ap.add_argument("--timeout", type=float, default=20.0, help="seconds before a case is a hang")
    ap.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--memory", type=float, default=8.0, help="GiB of address space per worker (0: no cap)")
    ap.add_argument("--show", type=int, default=20, help="findings printed as they happen")
    a = ap.parse_args()
    sizes = {"config": a.cases, "data": a.data, **{t: getattr(a, t) for t in _targets()}}
    if not any(sizes.values()):
        sizes["config"] = 200
    jobs = [(kind, a.seed + k) for k in range(max(sizes.values())) for kind, n in sizes.items() if k < n]
    print(f"fuzzing on {cpu_name()}, {a.workers} worker(s): "
          + ", ".join(f"{n} {kind} cases" for kind, n in sizes.items() if n) + f", seeds from {a.seed}", flush=True)
    counts, per_kind, findings, secs = fuzz(jobs, a.workers, a.timeout, a.show, a.memory)
    if len(per_kind) > 1:
        for kind, c in per_kind.items():
            print(f"  {kind}: ok {c['ok']}, clean errors {c['clean']}, tracebacks {c['traceback']}, "
                  f"hangs {c['hang']}, crashes {c['crash']}")
    print(f"cases {sum(counts.values())}: ok {counts['ok']}, clean errors {counts['clean']}, "
          f"tracebacks {counts['traceback']}, hangs {counts['hang']}, crashes {counts['crash']} "
          f"({secs:.0f} s; seeds {a.seed}..{a.seed + max(sizes.values()) - 1})")
    sys.exit(1 if findings else 0)


if __name__ == "__main__":
    main()
