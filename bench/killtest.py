"""kill -9 `netcli train` at random moments, then resume: counts corrupt files, leftovers (temporary
files, weights without solver state) and inexact resumes over many trials.

    python bench/killtest.py --trials 50 [--seed 0]
"""
from __future__ import annotations

import argparse
import os
import pathlib
import shutil
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "tests"))
os.environ.setdefault("NETCLI_OFFLINE", "1")

import killing  # noqa: E402
from fuzz import cpu_name  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--trials", type=int, default=50)
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    root = pathlib.Path(tempfile.mkdtemp(prefix="netcli-kill-"))
    t0 = time.perf_counter()
    try:
        ref, duration = killing.reference(root / "ref")
        print(f"kill -9 trials on {cpu_name()}: uninterrupted run {duration:.2f} s, "
              f"{killing.MAX_ITER} iterations, a snapshot every 2", flush=True)
        counts = {"corrupt": 0, "leftovers": 0, "inexact": 0, "failed": 0}
        seen = {}
        for k in range(a.trials):
            folder = root / f"t{k}"
            folder.mkdir()
            problems = killing.trial(folder, a.seed + k, ref, duration, seen)
            for p in problems:
                print(f"  trial {k} (seed {a.seed + k}): {p}", flush=True)
                key = ("corrupt" if p.startswith("corrupt") else "inexact" if "bit-exact" in p else
                       "failed" if p.startswith("resume failed") else "leftovers")
                counts[key] += 1
            shutil.rmtree(folder)
        exact = a.trials - counts["inexact"] - counts["failed"]
        print("kills that landed: " + ", ".join(f"{k} {v}" for k, v in seen.items()))
        print(f"trials {a.trials}: corrupt files {counts['corrupt']}, leftovers {counts['leftovers']}, "
              f"exact resumes {exact}/{a.trials}, failed resumes {counts['failed']} "
              f"({time.perf_counter() - t0:.0f} s; seeds {a.seed}..{a.seed + a.trials - 1})")
        sys.exit(1 if any(counts.values()) else 0)
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
