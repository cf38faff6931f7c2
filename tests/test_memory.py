"""A net that is dropped is freed at once, without waiting for the cycle collector: nothing it
owns (its executor, its data layers' prefetch threads) holds it in a reference cycle. The suite
builds hundreds of nets; before, AlexNet-sized ones piled up to 6.7 GB."""
import gc
import threading
import time
import weakref

import netcli


def test_a_dropped_net_and_its_prefetch_thread_go_at_once():
    gc.collect()                                   # what earlier tests left to the collector
    before = set(threading.enumerate())
    gc.disable()
    try:
        net = netcli.Net("configs/lenet_train_test.yaml", phase="TRAIN")
        net.forward_backward()                     # the data layer's prefetch thread is running
        refs = [weakref.ref(net), weakref.ref(net.executor), weakref.ref(net.layers[0])]
        del net
        assert [r() for r in refs] == [None, None, None]
    finally:
        gc.enable()
    deadline = time.monotonic() + 5
    ours = lambda: [t.name for t in set(threading.enumerate()) - before if t.name.startswith("netcli-prefetch")]  # noqa: E731
    while ours() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not ours()


def test_a_dropped_solver_goes_at_once(tmp_path, monkeypatch):
    """The Solver owns its callbacks (the signal hook among them): none holds it in a cycle, so a
    dropped Solver frees its nets at once (Caffe's solvers in tests/caffe piled up to 5 GB)."""
    from tinynet import make_tiny
    monkeypatch.chdir(tmp_path)
    solver = make_tiny(tmp_path, max_iter=2, test_interval=1)
    gc.collect()
    gc.disable()
    try:
        s = netcli.Solver(str(solver), progress=False)
        s.solve()
        refs = [weakref.ref(s), weakref.ref(s.net), weakref.ref(s.test_nets[0])]
        del s
        assert [r() for r in refs] == [None, None, None]
    finally:
        gc.enable()
