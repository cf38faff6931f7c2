"""Issue 28, item 2: decoding worker processes (netcli/data/workers.py). The same pixels and the
same weights whatever the number of workers, and across a kill -9 and resume; a worker's error is
one line naming the image; workers end with the training process, however it ends; the loop's
wait on data is in the training log and in `netcli time`."""
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

pytest.importorskip("PIL")

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

NET = """\
name: pics
layers:
  - {{name: data, type: ImageData, top: [data, label],
     transform_param: {{crop_size: 8, mirror: true, mean_value: [100, 110, 120], scale: 0.01}},
     image_data_param: {{source: list.txt, root_folder: {root}/, batch_size: 12, shuffle: true, threads: {threads}}}}}
  - {{name: conv, type: Convolution, bottom: data, top: conv,
     convolution_param: {{num_output: 4, kernel_size: 3, weight_filler: {{type: xavier}}}}}}
  - {{name: pool, type: Pooling, bottom: conv, top: pool, pooling_param: {{kernel_size: 2, stride: 2}}}}
  - {{name: relu, type: ReLU, bottom: pool, top: pool}}
  - {{name: ip, type: InnerProduct, bottom: pool, top: ip, inner_product_param: {{num_output: 2, weight_filler: {{type: xavier}}}}}}
  - {{name: loss, type: SoftmaxWithLoss, bottom: [ip, label], top: loss}}
"""

SOLVER = """\
net: net.yaml
base_lr: 0.05
momentum: 0.9
lr_policy: fixed
display: {display}
max_iter: {max_iter}
snapshot: {snapshot}
snapshot_prefix: {root}/snaps/pics
random_seed: 7
"""


def make_pics(folder, threads, max_iter=200, snapshot=0, display=0, n=40):
    """`n` random 10x10 PNGs in two classes (class 1 brighter in the middle), their list, a net
    reading them with `threads` decoding workers and a solver."""
    from PIL import Image
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    lines = []
    for i in range(n):
        a = rng.integers(0, 150, (10, 10, 3), dtype=np.uint8)
        a[3:7, 3:7] += 100 * (i % 2)
        if not (folder / f"{i}.png").exists():
            Image.fromarray(a).save(folder / f"{i}.png")
        lines.append(f"{i}.png {i % 2}")
    (folder / "list.txt").write_text("\n".join(lines) + "\n")
    (folder / "net.yaml").write_text(NET.format(root=folder, threads=threads))
    (folder / "solver.yaml").write_text(SOLVER.format(root=folder, max_iter=max_iter, snapshot=snapshot, display=display))
    return str(folder / "solver.yaml")


def env():
    return dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""), NETCLI_THREADS="1")


def children(pid):
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            return [int(c) for c in f.read().split()]
    except OSError:
        return []


def alive(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(")")[-1].split()[0] != "Z"
    except OSError:
        return False


def test_batches_are_the_same_with_any_number_of_workers(tmp_path):
    import netcli
    runs = {}
    for threads in (0, 1, 2, 4):
        net = netcli.Net(make_pics(tmp_path, threads, 1) and str(tmp_path / "net.yaml"), phase="TRAIN", seed=3)
        got = []
        for _ in range(5):                                  # past an epoch of 40 images
            net.forward()
            got += [net.blobs["data"].data.copy(), net.blobs["label"].data.copy()]
        assert (net.layers[0].pool is None) == (threads == 0)
        runs[threads] = got
        del net
    for threads in (1, 2, 4):
        assert all(np.array_equal(a, b) for a, b in zip(runs[0], runs[threads])), threads


@pytest.mark.slow       # three 200-iteration trainings with worker processes (about 10 s)
def test_weights_after_200_iterations_are_bit_identical_with_1_2_and_4_workers(tmp_path):
    import netcli
    weights = {}
    for threads in (1, 2, 4):
        s = netcli.Solver(make_pics(tmp_path, threads), progress=False)
        s.solve()
        weights[threads] = s.net.param_data.copy()
        del s
    assert np.array_equal(weights[1], weights[2]) and np.array_equal(weights[1], weights[4])


@pytest.mark.slow       # two trainings in subprocesses, one killed (about 15 s)
def test_kill_9_with_workers_then_resume_is_bit_identical_and_leaves_no_worker(tmp_path):
    ref = tmp_path / "ref"
    cmd = [sys.executable, "-m", "netcli.cli", "train", "--quiet", "--solver"]
    r = subprocess.run(cmd + [make_pics(ref, 2, snapshot=100)], env=env(), capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    want = dict(np.load(ref / "snaps" / "pics_iter_200.weights.npz"))

    run = tmp_path / "run"
    p = subprocess.Popen(cmd + [make_pics(run, 2, snapshot=20)], env=env(), stdout=subprocess.DEVNULL,
                         stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while not (run / "snaps" / "pics_iter_40.solverstate.npz").exists() and time.time() < deadline:
        time.sleep(0.05)
    workers = children(p.pid)
    p.send_signal(signal.SIGKILL)
    p.wait()
    assert len(workers) >= 2, workers                 # its two decoding workers (and the resource tracker)
    deadline = time.time() + 10
    while any(alive(w) for w in workers) and time.time() < deadline:
        time.sleep(0.05)
    assert not any(alive(w) for w in workers), "a worker outlived the killed training"
    done = sorted(int(n.split("_")[-1].split(".")[0]) for n in os.listdir(run / "snaps") if n.endswith(".solverstate.npz"))
    assert done and done[-1] < 200
    r = subprocess.run(cmd + [str(run / "solver.yaml"), "--snapshot",
                              str(run / "snaps" / f"pics_iter_{done[-1]}.solverstate.npz")],
                       env=env(), capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    got = dict(np.load(run / "snaps" / "pics_iter_200.weights.npz"))
    assert set(got) == set(want) and all(np.array_equal(got[k], want[k]) for k in want)


def test_workers_end_with_the_net(tmp_path):
    import gc
    import netcli
    make_pics(tmp_path, 2, 1)
    net = netcli.Net(str(tmp_path / "net.yaml"), phase="TRAIN")
    net.forward()
    pids = [w[0].pid for w in net.layers[0].pool.workers]
    blocks = [os.path.join("/dev/shm", shm.name.lstrip("/")) for shm in net.layers[0].pool.shms]
    assert len(pids) == 2 and all(alive(p) for p in pids) and blocks
    del net
    gc.collect()
    deadline = time.time() + 10
    while (any(alive(p) for p in pids) or any(os.path.exists(b) for b in blocks)) and time.time() < deadline:
        time.sleep(0.05)
    assert not any(alive(p) for p in pids)
    if os.path.isdir("/dev/shm"):
        assert not any(os.path.exists(b) for b in blocks), "shared batches left behind"


def test_a_bad_image_read_by_a_worker_is_one_line_naming_it(tmp_path):
    import netcli
    make_pics(tmp_path, 2, 1)
    (tmp_path / "5.png").write_bytes(b"garbage")
    net = netcli.Net(str(tmp_path / "net.yaml"), phase="TRAIN")
    with pytest.raises(netcli.NetcliError, match=r"data layer 'data': .*list.txt:6: cannot read image .*5.png"):
        for _ in range(4):                    # an epoch: the bad image is in one of these batches
            net.forward()


def test_the_training_log_and_netcli_time_say_how_long_the_loop_waited_on_data(tmp_path):
    r = subprocess.run([sys.executable, "-m", "netcli.cli", "train", "--solver",
                        make_pics(tmp_path, 1, max_iter=20, display=10)], env=env(), capture_output=True,
                       text=True, timeout=300, cwd=tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr
    lines = [line for line in (r.stdout + r.stderr).splitlines() if "Data wait: " in line]
    assert lines and all("ms/iter (" in line and "% of the time)" in line for line in lines), lines
    from netcli.commands.timing import benchmark
    out = []
    result = benchmark(str(tmp_path / "net.yaml"), iterations=3, echo=out.append)
    assert result["data_wait_ms"] >= 0 and len(result["data_wait_ms_by_rank"]) == 1
    assert any(line.startswith("Data wait: ") and "ms/iter" in line for line in out), out


def test_a_net_dropped_just_before_exit_leaves_no_shared_batch(tmp_path):
    """The last holder of a dropped layer may be its prefetch thread, which the interpreter stops
    at exit: the pool unlinks its blocks before it waits for anything."""
    make_pics(tmp_path, 2, 1)
    (tmp_path / "data.yaml").write_text(
        "name: d\nlayers:\n  - {name: d, type: ImageData, top: [data, label], image_data_param: "
        f"{{source: list.txt, root_folder: {tmp_path}/, batch_size: 4, threads: 2}}}}\n")
    script = ("import gc, sys, netcli\n"
              f"net = netcli.Net({str(tmp_path / 'data.yaml')!r}, phase='TRAIN')\n"
              "net.forward()\n"
              "print(' '.join(s.name for s in net.layers[0].pool.shms))\n"
              "del net\n"
              "gc.collect()\n"
              "print(sorted(__import__('os').listdir('/dev/shm')) if __import__('os').path.isdir('/dev/shm') else '')\n")
    r = subprocess.run([sys.executable, "-c", script], env=env(), capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert "leaked shared_memory" not in r.stderr, r.stderr
    if os.path.isdir("/dev/shm"):
        assert not [n for n in r.stdout.splitlines()[0].split() if os.path.exists(os.path.join("/dev/shm", n.lstrip("/")))]


def test_a_workers_ignore_the_terminals_ctrl_c_and_import_nothing_from_the_working_folder(tmp_path, monkeypatch):
    """Ctrl-C reaches the whole process group: the training process decides what it means (a
    snapshot), so a worker lives on and keeps decoding. A module in the working folder named as
    one a worker imports (here numpy) is never imported there."""
    import netcli
    make_pics(tmp_path / "pics", 2, 1)
    planted = tmp_path / "cwd"
    planted.mkdir()
    (planted / "numpy.py").write_text("raise SystemExit(3)\n")
    monkeypatch.chdir(planted)
    net = netcli.Net(str(tmp_path / "pics" / "net.yaml"), phase="TRAIN")
    net.forward()
    pids = [w[0].pid for w in net.layers[0].pool.workers]
    for pid in pids:
        os.kill(pid, signal.SIGINT)
        os.kill(pid, signal.SIGHUP)
    time.sleep(0.3)
    assert all(alive(p) for p in pids)
    for _ in range(3):
        net.forward()                       # the workers still fill batches
    assert net.blobs["data"].data.std() > 0


def test_a_full_shared_memory_folder_is_one_line(tmp_path, monkeypatch):
    from netcli.data import workers
    from netcli.errors import NetcliError

    def full(fd, offset, size):
        raise OSError(28, "No space left on device")
    monkeypatch.setattr(os, "posix_fallocate", full)
    from multiprocessing import shared_memory
    shm = shared_memory.SharedMemory(create=True, size=4096)
    try:
        with pytest.raises(NetcliError, match=r"no room for a shared-memory batch.*threads: 0"):
            workers._reserve(shm, 4096)
    finally:
        shm.close()
        shm.unlink()
    assert workers._exit(-7) == "killed by SIGBUS" and workers._exit(3) == "exit code 3"
