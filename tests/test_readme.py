"""The README runs as written: every bash command and Python block of README.md, top to bottom, in
a temporary folder holding copies of configs/ and models/ (as a fresh clone has them), each exiting 0.

What a test may change, all of it here:
- Long runs are shortened by SHORTEN (100): in the copied solvers, max_iter, snapshot,
  test_interval and display are divided by it; in the commands and the Python blocks, `_iter_<N>`
  file names and `--iterations N` are divided by it (at least 1).
- `pip install ... && ` before a command is dropped (the test runs in the installed environment).
- Commands that need what CI lacks are skipped: SKIP names them.
- `netcli` runs this checkout's netcli (a shim on PATH), offline on the embedded MNIST subset.
"""
import os
import re
import shutil
import stat
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHORTEN = 100
SKIP = {
    "netcli data fetch": "downloads (no network in CI)",
    "configs/cifar10_quick_solver.yaml": "downloads CIFAR-10 (tests/data/test_cifar.py trains it from a local server)",
    "netcli data convert-imageset": "an image list of the user's (tests/data/test_convert_imageset.py)",
    "mpiexec": "an MPI launcher (tests/test_distributed.py runs MPI)",
    "srun": "a Slurm cluster",
    "--gpu": "an NVIDIA GPU (tests/gpu runs the kernels under the simulator)",
    "python -m pytest": "the test suite itself",
}
SOLVER_FIELDS = ("max_iter", "snapshot", "test_interval", "display")


def readme_blocks(text):
    """[(language, code)] of the fenced bash and python blocks, in order."""
    return re.findall(r"^```(bash|python)\n(.*?)^```", text, re.S | re.M)


def bash_commands(code):
    """The commands of a bash block: comment-only lines dropped, `\\` continuations joined."""
    return [line for line in code.replace("\\\n", " ").splitlines() if line.strip() and not line.lstrip().startswith("#")]


def shorten(command):
    command = re.sub(r"^pip install \S+ && ", "", command)
    command = re.sub(r"_iter_(\d+)\.", lambda m: f"_iter_{max(int(m[1]) // SHORTEN, 1)}.", command)
    return re.sub(r"(-?-iterations) (\d+)", lambda m: f"{m[1]} {max(int(m[2]) // SHORTEN, 1)}", command)


def shorten_solver(path):
    text = open(path).read()
    for field in SOLVER_FIELDS:
        text = re.sub(rf"^({field}:\s*)(\d+)", lambda m: f"{m[1]}{max(int(m[2]) // SHORTEN, 1)}", text, flags=re.M)
    open(path, "w").write(text)


def fresh_clone(tmp_path):
    """configs/ and models/ copied, solvers shortened; a `netcli` on PATH that runs this checkout."""
    for folder in ("configs", "models"):
        shutil.copytree(os.path.join(ROOT, folder), tmp_path / folder)
    for name in os.listdir(tmp_path / "configs"):
        if "solver" in name:
            shorten_solver(tmp_path / "configs" / name)
    (tmp_path / "bin").mkdir()
    shim = tmp_path / "bin" / "netcli"
    shim.write_text(f'#!/bin/sh\nexec "{sys.executable}" -m netcli.cli "$@"\n')
    shim.chmod(shim.stat().st_mode | stat.S_IXUSR)
    env = dict(os.environ, PATH=f"{tmp_path / 'bin'}{os.pathsep}{os.path.dirname(sys.executable)}{os.pathsep}"
               f"{os.environ.get('PATH', '')}", PYTHONPATH=ROOT, NETCLI_OFFLINE="1",
               NETCLI_DATA=str(tmp_path / "data"), MPLBACKEND="Agg")
    return env


def test_shortening_rules():
    assert shorten("pip install . && netcli train --solver s.yaml") == "netcli train --solver s.yaml"
    assert shorten("x --weights snapshots/lenet_iter_2000.weights.npz --iterations 50") == \
        "x --weights snapshots/lenet_iter_20.weights.npz --iterations 1"
    assert shorten("netcli train -solver s.prototxt -iterations 100") == "netcli train -solver s.prototxt -iterations 1"


def test_readme_runs_as_written(tmp_path):
    pytest.importorskip("matplotlib")           # the plot section's PNGs ([plot], in [test])
    pytest.importorskip("onnx")                 # export --onnx ([onnx], in [test])
    pytest.importorskip("PIL")                  # predict on PNGs ([images], in [test])
    env = fresh_clone(tmp_path)
    text = open(os.path.join(ROOT, "README.md"), encoding="utf-8").read()
    first = text.splitlines()[:3]
    assert first[0] == "```bash" and first[1].startswith("pip install . && netcli train --solver "), first
    ran = 0
    for language, code in readme_blocks(text):
        if language == "python":
            r = subprocess.run([sys.executable, "-"], input=shorten(code), cwd=tmp_path, env=env, capture_output=True,
                               text=True, timeout=600)
            assert r.returncode == 0, f"README Python block failed:\n{code}\n{r.stdout[-3000:]}{r.stderr[-3000:]}"
            ran += 1
            continue
        for command in bash_commands(code):
            if any(s in command for s in SKIP):
                continue
            short = shorten(command)
            r = subprocess.run(["bash", "-c", short], cwd=tmp_path, env=env, capture_output=True, text=True,
                               timeout=600)
            assert r.returncode == 0, f"README command failed: {short}\n{r.stdout[-3000:]}{r.stderr[-3000:]}"
            ran += 1
    assert ran >= 25, ran            # the blocks were found
