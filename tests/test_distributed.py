"""Training across processes (netcli/distributed.py), run under the real mpiexec of the netcli[mpi]
extra: the same weights as one process, resume across process counts, a failing or killed rank
ending the job, mismatched configs, files written by rank 0 alone. Skipped without the extra."""
import os
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MPIEXEC = shutil.which("mpiexec") or shutil.which("mpirun")
try:
    import mpi4py  # noqa: F401
    HAVE_MPI = MPIEXEC is not None
except ImportError:
    HAVE_MPI = False

pytestmark = pytest.mark.skipif(not HAVE_MPI, reason="needs the MPI extra: pip install 'netcli[mpi]'")

SOLVER = """net: {root}/configs/{net}
base_lr: 0.01
momentum: 0.9
weight_decay: 0.0005
lr_policy: inv
gamma: 0.0001
power: 0.75
display: 10
max_iter: {iters}
test_interval: {test}
test_iter: 2
snapshot: {snap}
snapshot_prefix: {prefix}
random_seed: 3
iter_size: {iter_size}
"""


def solver_file(folder, name, net="lenet_train_test.yaml", iters=20, test=10, snap=0, iter_size=1):
    os.makedirs(folder, exist_ok=True)
    path = os.path.join(folder, f"{name}.yaml")
    with open(path, "w") as f:
        f.write(SOLVER.format(root=ROOT, net=net, iters=iters, test=test, snap=snap, iter_size=iter_size,
                              prefix=os.path.join(folder, name)))
    return path


def launcher(n):
    """mpiexec -n n, oversubscribing the cores (Open MPI needs to be told; as root, also allowed)."""
    out = subprocess.run([MPIEXEC, "--version"], capture_output=True, text=True).stdout
    open_mpi = "Open MPI" in out or "prte" in out.lower()
    return [MPIEXEC, "-n", str(n)] + (["--oversubscribe"] if open_mpi else [])


def env():
    e = dict(os.environ, OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1", NETCLI_OFFLINE="1")
    e.pop("NETCLI_THREADS", None)          # the ranks divide the cores among themselves
    return e


NETCLI = [sys.executable, "-m", "netcli.cli"]


def run(cmd, timeout=240, cwd=None):
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env(), cwd=cwd)


def train(n, solver, *args, mpmd=None):
    """`netcli train` under mpiexec -n n (n=1: one process, no launcher)."""
    cmd = NETCLI + ["train", "--solver", solver, "--quiet", *args]
    if n > 1:
        cmd = launcher(n) + cmd
    r = run(cmd)
    assert r.returncode == 0, r.stderr[-3000:]
    return r


def weights(path):
    from netcli.io.weights import read_weights
    return read_weights(path)          # the params (not the preprocessing entries)


def same(a, b):
    return a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a)


def test_two_and_four_processes_give_one_process_weights(tmp_path):
    # LeNet: the default split (2 shares of 32) on 1 and 2 processes; --shares 4 on 1 and 4.
    one = train(1, solver_file(tmp_path, "one"))
    two = train(2, solver_file(tmp_path, "two"))
    assert same(weights(tmp_path / "one_iter_20.weights.npz"), weights(tmp_path / "two_iter_20.weights.npz"))
    # rank 0 logs once: one Solving line, the test lines once per test
    assert two.stdout.count("Solving LeNet") == 1 and two.stdout.count("Testing net") == 3
    assert "Processes: 2" in two.stdout
    assert one.stdout.count("Test net output #0") == two.stdout.count("Test net output #0")
    train(1, solver_file(tmp_path, "one4"), "--shares", "4")
    train(4, solver_file(tmp_path, "four"), "--shares", "4")
    assert same(weights(tmp_path / "one4_iter_20.weights.npz"), weights(tmp_path / "four_iter_20.weights.npz"))


def test_batch_statistics_dropout_and_iter_size_are_exact(tmp_path):
    # BatchNorm's moments and the loss are exchanged share by share; dropout masks follow the
    # global row; iter_size 2 sums two passes as one process does.
    for net in ("lenet_bn.yaml", "lenet_dropout.yaml"):
        name = net.split(".")[0]
        train(1, solver_file(tmp_path, name + "_1", net=net, iters=8, test=4, iter_size=2))
        train(2, solver_file(tmp_path, name + "_2", net=net, iters=8, test=4, iter_size=2))
        assert same(weights(tmp_path / f"{name}_1_iter_8.weights.npz"),
                    weights(tmp_path / f"{name}_2_iter_8.weights.npz")), net


def test_a_large_inner_product_formed_after_the_pass_is_exact(tmp_path):
    # issue 29: LeNet with ip1 widened to 1,400 outputs (1.12 M weights, over the tile
    # threshold): its gradient is formed tile by tile after the pass (netcli/exec/late_grads.py),
    # the other process's shares counting as zeros; iter_size 2 adds two passes.
    text = open(os.path.join(ROOT, "configs", "lenet_train_test.yaml")).read()
    assert text.count("num_output: 500") == 1
    net = tmp_path / "wide.yaml"
    net.write_text(text.replace("num_output: 500", "num_output: 1400"))
    for n in (1, 2):
        path = solver_file(tmp_path, f"wide{n}", iters=6, test=3, iter_size=2)
        with open(path) as f:
            solver = f.read().replace(f"{ROOT}/configs/lenet_train_test.yaml", str(net))
        with open(path, "w") as f:
            f.write(solver)
        train(n, path)
    assert same(weights(tmp_path / "wide1_iter_6.weights.npz"), weights(tmp_path / "wide2_iter_6.weights.npz"))


# `netcli train` with every blob of LeNet's stretch in the arenas (netcli/exec/arena.py keeps
# nets this small on whole-batch arrays otherwise), each arena full of NaNs when made
ARENA = [sys.executable, "-c", "import sys; import numpy as np; import netcli.exec.arena as a; a.MIN_SHARE_BYTES = 1; "
         "a.MIN_TOTAL_BYTES = 0; a.buffer = lambda n: print('arena made', file=sys.stderr) or np.full(n, 255, np.uint8); "
         "from netcli.cli import main; sys.argv[0] = 'netcli'; main()"]


def test_rows_in_arenas_on_two_and_four_processes_are_exact(tmp_path):
    # issue 29: each process runs its own shares through its threads' arenas
    plain = train(1, solver_file(tmp_path, "plain", iters=6, test=3))
    assert plain.returncode == 0
    for n, extra in ((1, ()), (2, ()), (4, ("--shares", "4"))):
        name = f"arena{n}"
        cmd = ARENA + ["train", "--solver", solver_file(tmp_path, name, iters=6, test=3), "--quiet", *extra]
        r = run((launcher(n) if n > 1 else []) + cmd)
        assert r.returncode == 0, r.stderr[-3000:]
        assert r.stderr.count("arena made") >= n
    four_plain = train(1, solver_file(tmp_path, "plain4", iters=6, test=3), "--shares", "4")
    assert four_plain.returncode == 0
    for n, ref in ((1, "plain"), (2, "plain"), (4, "plain4")):
        assert same(weights(tmp_path / f"{ref}_iter_6.weights.npz"), weights(tmp_path / f"arena{n}_iter_6.weights.npz")), n


def test_resnet_style_net_on_two_processes_is_exact(tmp_path):
    # issue 26: Eltwise SUM, Concat, LRN, PReLU (slope gradients per share) and Softmax are
    # per-sample, so a ResNet-style net with BatchNorm + Scale + ReLU splits across processes.
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from resnetlike import resnet_solver
    one = train(1, resnet_solver(tmp_path, "one", iters=6, test=3))
    two = train(2, resnet_solver(tmp_path, "two", iters=6, test=3))
    assert "Processes: 2" in two.stdout
    assert same(weights(tmp_path / "one_iter_6.weights.npz"), weights(tmp_path / "two_iter_6.weights.npz"))
    assert one.stdout.count("Test net output #0") == two.stdout.count("Test net output #0") > 0


def test_losses_on_two_processes_are_exact(tmp_path):
    # SigmoidCrossEntropyLoss, EuclideanLoss and a SoftmaxWithLoss whose normalizer counts the
    # labels it does not ignore: each process sums (and counts) its own rows, the sums are
    # exchanged and added in share order.
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from resnetlike import LOSSES_NET, resnet_solver
    train(1, resnet_solver(tmp_path, "one", iters=6, test=3, text=LOSSES_NET))
    two = train(2, resnet_solver(tmp_path, "two", iters=6, test=3, text=LOSSES_NET))
    assert "Processes: 2" in two.stdout
    assert same(weights(tmp_path / "one_iter_6.weights.npz"), weights(tmp_path / "two_iter_6.weights.npz"))


def test_mpi_allreduce_is_close(tmp_path):
    train(1, solver_file(tmp_path, "one"))
    train(2, solver_file(tmp_path, "mpi"), "--reduction", "mpi")
    a, b = weights(tmp_path / "one_iter_20.weights.npz"), weights(tmp_path / "mpi_iter_20.weights.npz")
    for k in a:
        assert np.abs(a[k] - b[k]).max() <= 1e-5 * np.abs(a[k]).max() + 1e-7, k


def test_snapshot_of_two_processes_resumes_on_one(tmp_path):
    train(1, solver_file(tmp_path, "one"))
    s = solver_file(tmp_path, "res", snap=10)
    train(2, s, "--iterations", "10")
    assert sorted(os.listdir(tmp_path)) == sorted(["one.yaml", "one_iter_20.weights.npz", "one.log.jsonl",
                                                   "one_iter_20.solverstate.npz", "res.yaml", "res.log.jsonl",
                                                   "res_iter_10.weights.npz", "res_iter_10.solverstate.npz"])
    train(1, s, "--snapshot", str(tmp_path / "res_iter_10.solverstate.npz"))
    assert same(weights(tmp_path / "one_iter_20.weights.npz"), weights(tmp_path / "res_iter_20.weights.npz"))


def test_only_rank_zero_writes(tmp_path):
    # two ranks in two working directories, with a relative snapshot prefix: files appear in rank 0's only
    s = solver_file(tmp_path / "cfg", "rel", snap=10)
    text = open(s).read().replace(str(tmp_path / "cfg" / "rel"), "snaps/rel")
    with open(s, "w") as f:
        f.write(text)
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir(), b.mkdir()
    cmd = NETCLI + ["train", "--solver", s, "--quiet"]
    r = run(launcher(1) + ["--wdir", str(a)] + cmd + [":", "-n", "1", "--wdir", str(b)] + cmd)
    if "wdir" in r.stderr and r.returncode:
        pytest.skip("this mpiexec has no --wdir")
    assert r.returncode == 0, r.stderr[-2000:]
    assert sorted(os.listdir(a / "snaps")) == ["rel.log.jsonl", "rel_iter_10.solverstate.npz", "rel_iter_10.weights.npz",
                                               "rel_iter_20.solverstate.npz", "rel_iter_20.weights.npz"]
    assert not os.path.exists(b / "snaps") or os.listdir(b / "snaps") == []


def test_a_failing_rank_ends_the_job_with_one_line(tmp_path):
    good = solver_file(tmp_path, "good", iters=2000)
    t = time.monotonic()
    r = run(launcher(1) + NETCLI + ["train", "--solver", good, "--quiet", ":", "-n", "1"]
            + NETCLI + ["train", "--solver", str(tmp_path / "missing.yaml"), "--quiet"], timeout=120)
    assert r.returncode != 0
    assert time.monotonic() - t < 60
    lines = [l for l in r.stderr.splitlines() if "netcli: rank" in l]
    assert len(lines) == 1 and "rank 1 of 2: error:" in lines[0] and "missing.yaml" in lines[0], r.stderr
    assert "Traceback" not in r.stderr


def test_different_configs_on_ranks_are_refused(tmp_path):
    a = solver_file(tmp_path, "a")
    b = solver_file(tmp_path, "b")
    text = open(b).read()
    with open(b, "w") as f:
        f.write(text.replace("base_lr: 0.01", "base_lr: 0.02"))
    r = run(launcher(1) + NETCLI + ["train", "--solver", a, "--quiet", ":", "-n", "1"]
            + NETCLI + ["train", "--solver", b, "--quiet"], timeout=120)
    assert r.returncode != 0
    assert "differs between ranks" in r.stderr and "rank(s) 1" in r.stderr, r.stderr[-2000:]
    assert not any(f.endswith(".npz") for f in os.listdir(tmp_path))


def test_too_few_shares_for_the_processes_is_one_line(tmp_path):
    r = run(launcher(4) + NETCLI + ["train", "--solver", solver_file(tmp_path, "x"), "--quiet"])
    assert r.returncode != 0
    lines = [l for l in r.stderr.splitlines() if "netcli: rank" in l]
    assert len(lines) == 1 and "--shares 4" in lines[0], r.stderr[-2000:]


def test_a_killed_rank_ends_the_job_and_keeps_the_last_snapshot(tmp_path):
    s = solver_file(tmp_path, "kill", iters=100000, test=0, snap=20)
    p = subprocess.Popen(launcher(2) + NETCLI + ["train", "--solver", s, "--quiet"], env=env(),
                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 120
        while not (tmp_path / "kill_iter_40.solverstate.npz").exists():
            assert p.poll() is None and time.monotonic() < deadline, "training did not reach iteration 40"
            time.sleep(0.2)
        ps = subprocess.run(["ps", "-ww", "-eo", "pid=,args="], capture_output=True, text=True).stdout.splitlines()
        ranks = [int(line.split()[0]) for line in ps
                 if f"netcli.cli train --solver {s}" in line and "python" in os.path.basename(line.split()[1])]
        assert len(ranks) == 2
        os.kill(max(ranks), signal.SIGKILL)
        t = time.monotonic()
        p.wait(timeout=30)
        assert time.monotonic() - t < 30 and p.returncode != 0
    finally:
        if p.poll() is None:
            p.kill()
    snaps = sorted(int(f.split("_iter_")[1].split(".")[0]) for f in os.listdir(tmp_path)
                   if f.endswith(".solverstate.npz"))
    last = tmp_path / f"kill_iter_{snaps[-1]}.solverstate.npz"
    with np.load(last) as z:
        assert int(z["iter"]) == snaps[-1]
    w = weights(tmp_path / f"kill_iter_{snaps[-1]}.weights.npz")
    assert all(np.isfinite(v).all() for v in w.values())


def test_netcli_test_and_time_under_mpiexec(tmp_path):
    train(1, solver_file(tmp_path, "one", iters=10, test=0))
    cmd = NETCLI + ["test", "--model", os.path.join(ROOT, "configs/lenet_train_test.yaml"),
                    "--weights", str(tmp_path / "one_iter_10.weights.npz"), "--json"]
    alone, split = run(cmd), run(launcher(3) + cmd)
    assert alone.returncode == 0 and split.returncode == 0, split.stderr[-2000:]
    assert alone.stdout == split.stdout            # the same sums, in batch order, printed once
    t = run(launcher(2) + NETCLI + ["time", "--model", os.path.join(ROOT, "configs/lenet_train_test.yaml"),
                                    "--iterations", "3", "--json"])
    assert t.returncode == 0, t.stderr[-2000:]
    import json
    result = json.loads(t.stdout)
    assert result["processes"] == 2 and result["communication_ms"] > 0 and result["gradient_mb"] > 1


# -- signals (issue 24): Open MPI's mpiexec ends a job itself on SIGTERM/SIGINT/SIGHUP (the ranks
# are sent SIGTERM, then SIGKILL a quarter second later, their output is dropped, and it exits 1:
# PRRTE's clean_abort), so a job is stopped with a snapshot by signalling the ranks (a scheduler's
# way, or pkill) or by SIGUSR1 to mpiexec, which forwards it to every rank.
def signalled_job(tmp_path, name, send):
    """A 2-rank train of LeNet; once it logs iteration 10, send(mpiexec, rank pids); returns
    (return code, output, seconds from the signal to the end)."""
    s = solver_file(tmp_path, name, iters=100000, test=0)
    p = subprocess.Popen(launcher(2) + NETCLI + ["train", "--solver", s, "--quiet"], env=env(),
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines = []
    try:
        deadline = time.monotonic() + 120
        for line in p.stdout:
            lines.append(line)
            if line.startswith("Iteration 10,"):
                break
            assert time.monotonic() < deadline, "".join(lines)
        ps = subprocess.run(["ps", "-ww", "-eo", "pid=,args="], capture_output=True, text=True).stdout.splitlines()
        ranks = sorted(int(line.split()[0]) for line in ps
                       if f"netcli.cli train --solver {s}" in line and "python" in os.path.basename(line.split()[1]))
        assert len(ranks) == 2, ps
        t = time.monotonic()
        send(p.pid, ranks)
        out, _ = p.communicate(timeout=60)
        return p.returncode, "".join(lines) + out, time.monotonic() - t
    finally:
        if p.poll() is None:
            p.kill()
            p.communicate()


def resumes(tmp_path, name, text):
    """The snapshot the signal made resumes (one process, two more iterations)."""
    it = int(text.split(f"{name}_iter_")[1].split(".")[0])
    state = tmp_path / f"{name}_iter_{it}.solverstate.npz"
    assert state.exists() and (tmp_path / f"{name}_iter_{it}.weights.npz").exists(), text
    assert not any(f.endswith(".tmp") for f in os.listdir(tmp_path))
    r = train(1, str(tmp_path / f"{name}.yaml"), "--snapshot", str(state), "--iterations", "2")
    assert f"{name}_iter_{it + 2}.solverstate.npz" in r.stdout


def test_sigterm_to_one_rank_stops_every_rank_with_a_snapshot_and_exit_0(tmp_path):
    # as a scheduler or `pkill -TERM -f 'netcli train'` may: rank 1 alone gets it; the ranks agree
    # at the next iteration, rank 0 says so, snapshots, and every rank exits 0
    code, text, secs = signalled_job(tmp_path, "term", lambda mpiexec, ranks: os.kill(ranks[1], signal.SIGTERM))
    assert code == 0 and secs < 30, text[-3000:]
    assert "Caught SIGTERM on rank 1: snapshotting and stopping" in text and "Optimization stopped early." in text
    assert text.count("Snapshotting to ") == 1 and "Traceback" not in text
    resumes(tmp_path, "term", text)


def test_sigusr1_to_mpiexec_is_forwarded_snapshots_and_exits_0(tmp_path):
    code, text, secs = signalled_job(tmp_path, "usr1", lambda mpiexec, ranks: os.kill(mpiexec, signal.SIGUSR1))
    assert code == 0 and secs < 30, text[-3000:]
    assert "Caught SIGUSR1: snapshotting and stopping" in text and "Optimization stopped early." in text
    assert text.count("Snapshotting to ") == 1 and "Traceback" not in text
    resumes(tmp_path, "usr1", text)
