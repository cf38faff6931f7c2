"""The Solver's loop calls every hook through one Callback interface (netcli/solver/callbacks.py),
each event at one place; the loop itself knows nothing of processes or MPI."""
import ast
import os
import re

import netcli
from netcli.solver.callbacks import Callback
from tinynet import make_tiny

SOLVER_DIR = os.path.join(os.path.dirname(netcli.__file__), "solver")


class Recorder(Callback):
    def __init__(self):
        self.events = []

    def on_start(self, s):
        self.events.append(("start", s.iter))

    def on_iteration_start(self, s):
        self.events.append(("iteration", s.iter))

    def on_gradients(self, s):
        self.events.append(("gradients", s.iter))

    def on_after_update(self, s):
        self.events.append(("update", s.iter))

    def on_test(self, s, results):
        self.events.append(("test", s.iter, sorted(results)))

    def on_iteration_end(self, s):
        self.events.append(("end_of_iteration", s.iter))

    def on_snapshot(self, s, written):
        self.events.append(("snapshot", s.iter, [os.path.basename(f) for f in written]))

    def on_end(self, s, finished, error):
        self.events.append(("end", s.iter, finished, error))


def test_a_callback_sees_every_event_in_the_loops_order(tmp_path):
    s = netcli.Solver(make_tiny(tmp_path, iter_size=2, max_iter=4, test_interval=2, snapshot=4),
                      progress=False, log_path=False)
    rec = Recorder()
    s.callbacks.items.append(rec)
    assert s.solve() is True
    e = rec.events
    assert e[0] == ("start", 0) and e[-1] == ("end", 4, True, None)
    assert e[1][:2] == ("test", 0)                              # test_initialization
    first = e[2:7]
    assert first == [("iteration", 0), ("gradients", 0), ("gradients", 0), ("update", 1), ("end_of_iteration", 1)]
    tests = [x for x in e if x[0] == "test"]
    assert [t[1] for t in tests] == [0, 2, 4] and "accuracy" in tests[0][2]
    assert ("snapshot", 4, ["tiny_iter_4.weights.npz", "tiny_iter_4.solverstate.npz"]) in e
    assert sum(1 for x in e if x[0] == "gradients") == 8          # iter_size passes per update


def test_the_solver_package_has_no_mpi_and_no_thread_pool():
    """Distribution is a callback (netcli/distributed.py) and threads belong to the executor
    (netcli/exec/): the solver's code names neither. (Its size: tests/test_architecture.py.)"""
    for name in os.listdir(SOLVER_DIR):
        if name.endswith(".py"):
            text = open(os.path.join(SOLVER_DIR, name)).read()
            assert not re.search(r"\bcomm\b|\bMPI\.|mpi4py", text), name      # in code; prose may name MPI
            tree = ast.parse(text)
            imported = {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
            imported |= {f"{n.module}.{a.name}" if n.module else a.name
                         for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) for a in n.names}
            pools = {m for m in imported if re.search(r"\bthreads\b|threading|concurrent|multiprocessing|ThreadPool", m)}
            assert not pools, (name, pools)
            assert not re.search(r"\bthreads\.(run|pool|chunks)\b|ThreadPoolExecutor", text), name
