"""Teams (netcli/exec/team.py): threads beyond a run's shares take tiles of one share's
Winograd and per-image GEMM jobs (ops/cpu/winograd_team.py, gemms_team.py; BatchNorm's:
tests/ops/test_channel_passes.py) in compiled code. Whoever takes a tile computes it the same way,
so the bits are those of a thread alone: for every job kind and dtype, jobs after jobs with a
helper that joins late, and in training (the weights after a few iterations on 1 thread and on 2
with teams)."""
import threading
import time

import numpy as np
import pytest
from numba import cfunc, njit

import netcli
from helpers import with_a_helper
from netcli.exec import team, threads
from netcli.layers import utility
from netcli.exec.claims import FAILED, FLAGS, GENERATIONS, KIND, POST, RECORD
from netcli.ops.cpu import winograd
from netcli.ops.cpu.blas import gemm_address
from netcli.ops.cpu.image_gemms import image_gemms
from netcli.ops.cpu import team_call, team_jobs
from netcli.ops.cpu.team_jobs import run_job, serve

pytestmark = pytest.mark.skipif(not gemm_address(np.float32), reason="no BLAS for team jobs (ops/cpu/blas.py)")


@pytest.fixture
def compiled():
    """The helpers' loop compiled before a helper starts (a first compile inside the helper can
    outlast the lead's work: then it takes no tile, which is right but proves nothing here)."""
    for dtype in (np.float32, np.float64):
        assert serve(np.zeros(FLAGS, np.int64), np.zeros(RECORD, np.int64), 0, np.zeros(0, dtype)) == 0


def _layer(n, C, H, W, K, dtype, m, k, seed):
    rng = np.random.default_rng(seed)
    x, w, b = (rng.standard_normal(s).astype(dtype) for s in ((n, C, H, W), (K, C, k, k), (K,)))
    dy = rng.standard_normal((n, K, H, W)).astype(dtype)
    shapes = {**winograd.winograd_workspace(n, C, H, W, K, H, W, dtype, m, k),
              **winograd.winograd_scratch(n, C, H, W, K, H, W, dtype, m, k)}
    return x, w, b, dy, shapes


def _pass(x, w, b, dy, shapes, m, k):
    """A forward and a backward (both gradients), from scratch full of NaN; what they wrote."""
    ws = {name: np.full(s, np.nan, d) for name, (s, d) in shapes.items()}
    ws["no_bias"] = np.zeros(0, x.dtype)
    p = k // 2
    y = np.full(dy.shape, np.nan, x.dtype)
    winograd.winograd_forward(y, x, w, b, ws, p, p, m)
    dx, dw = np.full(x.shape, np.nan, x.dtype), np.full(w.shape, np.nan, x.dtype)
    winograd.winograd_backward(dx, dw, None, dy, x, w, ws, p, p, True, m)
    return y, dx, dw


LAYERS = [  # n, C, H, W, K, dtype, m, k: images in groups of 1-3, in one block and in several
    (21, 16, 12, 10, 16, np.float32, 2, 3),
    (9, 8, 9, 9, 24, np.float64, 4, 3),
    (16, 16, 8, 8, 8, np.float32, 4, 5),
    (3, 5, 16, 15, 4, np.float32, 2, 3),
]


@pytest.mark.skipif(threads.usable_cores() < 2, reason="a helper needs a core of its own")
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_a_helper_takes_tiles_and_every_bit_stays(monkeypatch, compiled, dtype):
    """A helper thread (taking the jobs of one dtype) serves one team while its lead runs forward
    and backward passes of several layers in turn (every job kind, float32 and float64 layers,
    blocks of images where BLOCK_BYTES is small): the lead alone, and the team, write the same
    bits; the helper took tiles."""
    monkeypatch.setattr(winograd, "BLOCK_BYTES", 2 ** 16)
    monkeypatch.setattr(winograd, "BLOCK_TILES", 1)
    layers = [_layer(*case, seed=i) for i, case in enumerate(LAYERS)]
    alone = [_pass(*layer, m=case[6], k=case[7]) for layer, case in zip(layers, LAYERS)]
    rng = np.random.default_rng(9)
    w, x = rng.standard_normal((24, 40)).astype(dtype), rng.standard_normal((13, 40, 30)).astype(dtype)
    products = np.full((13, 24, 30), np.nan, dtype)

    def passes():
        image_gemms(w, x, products)         # a convolution's per-image GEMMs (ops/cpu/gemms_team.py)
        return [_pass(*layer, m=case[6], k=case[7]) for _ in range(3) for layer, case in zip(layers, LAYERS)]
    together, helped = with_a_helper(dtype, passes)
    assert helped > 0
    assert np.array_equal(products, np.matmul(w, x))
    for i, got in enumerate(together):
        for a, b in zip(got, alone[i % len(LAYERS)]):
            assert np.isfinite(a).all() and np.array_equal(a, b), LAYERS[i % len(LAYERS)]


def test_the_team_path_gives_np_matmuls_bits(monkeypatch):
    """A block's jobs (the team path) against the transforms and np.matmul called one after another
    (the path without a GEMM address): the same bits."""
    for i, case in enumerate(LAYERS):
        layer = _layer(*case, seed=10 + i)
        got = _pass(*layer, m=case[6], k=case[7])
        with monkeypatch.context() as mp:
            mp.setattr(winograd, "_team_gemm", lambda *arrays: 0)
            want = _pass(*layer, m=case[6], k=case[7])
        for a, b in zip(got, want):
            assert np.isfinite(a).all() and np.array_equal(a, b), case


def test_a_helper_of_an_ended_run_goes_at_once():
    crew = team.Team()
    crew.run = 3
    team.lead(crew, lambda: None)
    assert serve(crew.flags, crew.record, 3, crew.like) == 0


def test_each_team_gets_neighbouring_threads(monkeypatch):
    """staffed(): the lead of team j runs chunk first(j) (chunk 0: the caller, team 0), its helpers
    the chunks up to first(j + 1), and work(j, ...) gets block j of the shares."""
    calls = []
    monkeypatch.setattr(team, "near", lambda: True)
    monkeypatch.setattr(team, "lead", lambda crew, fn, *args: calls.append(("lead", crew, (fn, *args))))
    monkeypatch.setattr(team, "help_lead", lambda crew: calls.append(("help", crew)))
    for n, blocks, leads_at in [(16, [(0, 1), (1, 2)], [0, 8]), (6, [(0, 1), (1, 2), (2, 3), (3, 4)], [0, 2, 3, 5]),
                                (3, [(0, 4)], [0])]:
        monkeypatch.setattr(threads, "count", lambda: n)
        teams = [team.Team() for _ in blocks]
        fn, ranges = team.staffed("work", blocks, teams)
        assert len(ranges) == n and [ranges[c] for c in leads_at] == blocks
        calls.clear()
        for c in range(n):
            fn(c, *ranges[c])
        for c, call in enumerate(calls):
            j = max(i for i, at in enumerate(leads_at) if at <= c)
            assert call[1] is teams[j]
            assert call[0] == ("lead" if c == leads_at[j] else "help")
            if call[0] == "lead":
                assert call[2] == ("work", j, *blocks[j])
        assert all(t.run == 1 for t in teams)


NET = """\
name: Teams
layers:
  - {name: data, type: Input, top: data, input_param: {shape: {dim: [8, 3, 12, 12]}}}
  - {name: label, type: Input, top: label, input_param: {shape: {dim: [8]}}}
  - {name: conv1, type: Convolution, bottom: data, top: conv1,
     convolution_param: {num_output: 48, kernel_size: 3, pad: 1, weight_filler: {type: msra}}}
  - {name: relu1, type: ReLU, bottom: conv1, top: conv1}
  - {name: conv2, type: Convolution, bottom: conv1, top: conv2,
     convolution_param: {num_output: 16, kernel_size: 3, pad: 1, weight_filler: {type: msra}}}
  - {name: relu2, type: ReLU, bottom: conv2, top: conv2}
  - {name: ip, type: InnerProduct, bottom: conv2, top: ip,
     inner_product_param: {num_output: 4, weight_filler: {type: xavier}}}
  - {name: loss, type: SoftmaxWithLoss, bottom: [ip, label], top: loss}
"""


# the same with a BatchNorm + Scale + ReLU chain (ops/cpu/channel_passes.py) after the first convolution,
# and pooling (ops/cpu/pool_team.py)
NET_BN = NET.replace("""  - {name: relu1, type: ReLU, bottom: conv1, top: conv1}""", """\
  - {name: bn1, type: BatchNorm, bottom: conv1, top: conv1}
  - {name: scale1, type: Scale, bottom: conv1, top: conv1, scale_param: {bias_term: true}}
  - {name: relu1, type: ReLU, bottom: conv1, top: conv1}
  - {name: pool1, type: Pooling, bottom: conv1, top: pool1,
     pooling_param: {pool: AVE, kernel_size: 3, stride: 1, pad: 1}}""").replace("bottom: conv1, top: conv2",
                                                                              "bottom: pool1, top: conv2")


# depthwise convolutions (ops/cpu/depthwise_passes.py): planes in rows (dilated), then channels last (stride 2)
NET_16 = NET.replace("num_output: 48", "num_output: 16")      # conv2 on 16 channels
NET_DW = NET_16.replace("""     convolution_param: {num_output: 16, kernel_size: 3, pad: 1, weight_filler: {type: msra}}}
  - {name: relu2""", """     convolution_param: {num_output: 16, group: 16, kernel_size: 3, pad: 2, dilation: 2,
                         weight_filler: {type: msra}}}
  - {name: conv3, type: Convolution, bottom: conv2, top: conv3,
     convolution_param: {num_output: 16, group: 16, kernel_size: 3, pad: 1, stride: 2,
                         weight_filler: {type: msra}}}
  - {name: relu2""").replace("bottom: conv2, top: ip", "bottom: conv3, top: ip")


# a Slice and a Concat along channels (ops/cpu/copy_team.py): the halves of conv1 joined the other
# way round
NET_JOIN = NET.replace("num_output: 48", "num_output: 64").replace(
    """  - {name: relu1, type: ReLU, bottom: conv1, top: conv1}""", """\
  - {name: relu1, type: ReLU, bottom: conv1, top: conv1}
  - {name: cut, type: Slice, bottom: conv1, top: [left, right], slice_param: {axis: 1, slice_point: [32]}}
  - {name: join, type: Concat, bottom: [right, left], top: joined}""").replace("bottom: conv1, top: conv2",
                                                                              "bottom: joined, top: conv2")


# direct convolutions (ops/cpu/direct_passes.py): 16 channels, then with a stride
NET_DIRECT = NET_16.replace("""  - {name: relu2, type: ReLU, bottom: conv2, top: conv2}""", """\
  - {name: relu2, type: ReLU, bottom: conv2, top: conv2}
  - {name: conv3, type: Convolution, bottom: conv2, top: conv3,
     convolution_param: {num_output: 32, kernel_size: 3, pad: 1, stride: 2, weight_filler: {type: msra}}}""").replace(
    "bottom: conv2, top: ip", "bottom: conv3, top: ip")


@pytest.mark.skipif(threads.usable_cores() < 2, reason="a helper needs a core of its own")
@pytest.mark.parametrize("text", [NET, NET_BN, NET_DW, NET_JOIN, NET_DIRECT],
                         ids=["conv", "batch-norm", "depthwise", "join", "direct"])
def test_training_with_a_team_gives_one_threads_weights(tmp_path, monkeypatch, compiled, text):
    """A batch of 8 (one share) on 2 threads: the second thread helps the share's Winograd
    convolutions and ReLUs (BatchNorm's passes and pooling, depthwise or direct convolutions, a
    Slice's and a Concat's copies); the weights after 3 iterations are one thread's, bit for bit."""
    monkeypatch.setattr(threads, "spin_reads", lambda: threads.SPIN_READS)   # teams even where not pinned
    monkeypatch.setattr(team, "near", lambda: True)                         # and whatever the host's placement
    monkeypatch.setattr(team_call, "PASS_NUMBERS", 1 << 12)    # ReLUs and copies of this net's size in tiles too
    copies = []
    monkeypatch.setattr(utility, "copy_rows", lambda *a: copies.append(team_call.copy_rows(*a)) or copies[-1])
    assert text.count("BatchNorm") == text.count("Pooling") == (text is NET_BN)
    (tmp_path / "net.yaml").write_text(text)
    (tmp_path / "solver.yaml").write_text(f"net: {tmp_path / 'net.yaml'}\nbase_lr: 0.01\nmomentum: 0.9\n"
                                          f"lr_policy: fixed\nmax_iter: 3\nrandom_seed: 5\n"
                                          f"snapshot_prefix: {tmp_path / 's'}\n")
    rng = np.random.default_rng(0)
    data = rng.standard_normal((8, 3, 12, 12)).astype(np.float32)
    labels = rng.integers(0, 4, 8).astype(np.float32)
    old = threads.count()
    got, helped = [], []
    try:
        for n in (1, 2):
            threads.set_threads(n)
            solver = netcli.Solver(str(tmp_path / "solver.yaml"), progress=False, quiet=True)
            net = solver.net
            algorithms = [net.layers[net.layer_names.index(name)].algorithm for name in ("conv2", "conv3")
                          if name in net.layer_names]
            assert algorithms == {NET_DW: ["depthwise", "depthwise-nhwc"], NET_DIRECT: ["direct", "direct"]}.get(
                text, ["winograd4"])
            for _ in range(3):
                net.blobs["data"].data[...] = data
                net.blobs["label"].data[...] = labels
                solver.step(1)
            got.append(net.param_data.copy())
            plans = [plan[-1] for key, plan in net.executor._plans.items() if key[0] == "run"]
            helped.append(sum(t.helped for teams in plans if teams for t in teams))
            assert bool(plans and all(plans)) == (n == 2)
    finally:
        threads.set_threads(old)
    assert helped[1] > 0 and any(copies) == (text is NET_JOIN)          # the Slice's and Concat's in tiles
    assert np.isfinite(got[0]).all() and np.array_equal(got[0], got[1])


def test_teams_only_where_their_threads_are_near(monkeypatch):
    """near(): a round trip of a cache line within NEAR_NS, the least of MEASURES measures, taken at
    most once per RECHECK_S (where every measure failed, None, again at the next run); far: the
    run has no helpers."""
    trips, clock = [], [100.0]
    monkeypatch.setattr(team, "_near", {"at": None, "near": False, "held": False})
    monkeypatch.setattr(team.time, "monotonic", lambda: clock[0])
    monkeypatch.setattr(team, "round_trip_ns", lambda: trips.pop(0))
    assert team.MEASURES == 3
    trips[:] = [None, None, None, 600.0, None, 120.0, 900.0, 800.0, 700.0, 260.0]
    assert not team.near() and team.near()              # none came, then 120 ns the least of three
    clock[0] += team.RECHECK_S / 2
    assert team.near() and len(trips) == 4              # not measured again yet
    clock[0] += team.RECHECK_S
    assert not team.near() and trips == [260.0]         # 700 ns the least
    fn, ranges = team.staffed("work", [(0, 4)], [team.Team()])
    assert (fn, ranges) == ("work", [(0, 4)])


@pytest.mark.skipif(threads.usable_cores() < 2, reason="two threads, each on a core")
def test_a_round_trip_is_measured_between_two_threads(thread_count):
    thread_count(2)
    got = [team.round_trip_ns() for _ in range(4)]
    assert any(ns is not None for ns in got)
    assert all(ns is None or 0 < ns < 1e6 for ns in got)


def test_the_job_numbers_wrap_without_a_stall(monkeypatch):
    """After 2^31 jobs a team's job number starts again at 0 (it shares a 64-bit counter with the
    tile number); the jobs around it run as any other."""
    layer = _layer(*LAYERS[3], seed=5)
    want = _pass(*layer, m=2, k=3)
    t = team.current()
    t.flags[POST] = GENERATIONS - 2
    got = _pass(*layer, m=2, k=3)
    assert 0 <= t.flags[POST] < 8
    for a, b in zip(got, want):
        assert np.array_equal(a, b)


@njit(nogil=True)
def _fails(record, t, like):
    if t == 1:
        raise MemoryError("no memory")


def _failing_entry(record_ptr, t, like_ptr):
    return team_jobs._entry(_fails, record_ptr, t, like_ptr)


def test_a_tile_that_fails_ends_the_job_with_an_error(monkeypatch):
    """A tile that raises (here: tile 1 of a job of a kind made for the test) still counts as
    done, so nothing waits for it, and the lead raises once the job ends; the next job runs."""
    failing = cfunc(team_jobs._signature(np.float32), nogil=True)(_failing_entry)
    monkeypatch.setitem(team_jobs._compiled, team_jobs.entry_key(99, np.float32), failing)
    t = team.Team()
    t.record[:] = 0
    t.record[KIND], t.record[1] = 99, 3          # 3 tiles of that kind
    with pytest.raises(MemoryError, match="tile failed"):
        run_job(t, np.zeros(0, np.float32))
    assert t.flags[FAILED] == 0
    layer = _layer(*LAYERS[3], seed=6)
    assert np.isfinite(_pass(*layer, m=2, k=3)[0]).all()


@pytest.mark.skipif(threads.usable_cores() < 2, reason="a helper needs a core of its own")
def test_a_helper_takes_nothing_of_a_first_job_not_yet_posted(compiled):
    """A fresh team's flags read generation 0, tile 0: a helper that starts while the lead is
    still writing its first job (record and tile address, before open_job) must take nothing
    (it took tile 0 of the half-written record: a crash once in some hundred trainings)."""
    from netcli.exec.claims import DONE, NEXT, STOP
    from netcli.ops.cpu.gemms_team import image_gemms_job
    crew = team.Team(np.float32)
    crew.run = 1
    a, b, c = np.ones((2, 3, 4), np.float32), np.ones((4, 5), np.float32), np.zeros((2, 3, 5), np.float32)
    image_gemms_job(crew.record, gemm_address(np.float32), 4, 2, 0, 0, 3, 5, 4, a.ctypes.data, 12, 4, b.ctypes.data,
                    0, 5, c.ctypes.data, 15, 5)
    crew.record[team_jobs.TILE] = team_jobs.tile_address(crew.record[KIND], np.float32)   # all but posted
    helper = threading.Thread(target=team.help_lead, args=(crew,))
    helper.start()
    try:
        time.sleep(0.05)
        untouched = crew.flags[NEXT] == 0 and crew.flags[DONE] == 0 and not c.any()
    finally:
        crew.flags[STOP] = 1
        helper.join(10)
    assert untouched and not helper.is_alive() and crew.helped == 0


def test_near_is_not_measured_again_while_held(monkeypatch):
    """near_held (netcli time's passes): near() measures afresh at the block's first run, and that
    answer lasts to the end of the block, however long it takes; after it, near() measures again
    as before."""
    trips, clock = [600.0, 500.0, 400.0, 100.0, 100.0, 100.0], [100.0]
    monkeypatch.setattr(team, "_near", {"at": clock[0], "near": True, "held": False})     # near, just measured
    monkeypatch.setattr(team.time, "monotonic", lambda: clock[0])
    monkeypatch.setattr(team, "round_trip_ns", lambda: trips.pop(0))
    with team.near_held():
        assert not team.near()                          # measured: 400 ns, far
        clock[0] += 10 * team.RECHECK_S
        assert not team.near() and len(trips) == 3      # held: not measured again
    assert team.near() and trips == []                  # measured again: near


def test_a_profile_measures_near_once(tmp_path, monkeypatch, thread_count):
    """time_layers (netcli time) measures whether teams help once, however many of its runs fall
    after RECHECK_S: its untimed pass compiles the kernels its timed passes run."""
    from netcli.commands.timing import time_layers
    thread_count(2)
    monkeypatch.setattr(threads, "spin_reads", lambda: threads.SPIN_READS)   # teams even where not pinned
    (tmp_path / "net.yaml").write_text(NET_BN)
    net = netcli.Net(str(tmp_path / "net.yaml"), phase="TRAIN")
    measures = []
    monkeypatch.setattr(team, "_near", {"at": None, "near": False, "held": False})
    monkeypatch.setattr(team, "RECHECK_S", 0.0)
    monkeypatch.setattr(team, "least_round_trip_ns", lambda: measures.append(1) or 1000.0)
    time_layers(net, 2)
    assert len(measures) == 1
