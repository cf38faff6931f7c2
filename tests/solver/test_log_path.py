"""The run log goes where the snapshots go: a snapshot prefix changed after the Solver was built
(as tests and benches do, to keep runs out of snapshots/) takes the run log along."""
import netcli
from netcli import log
from tinynet import make_tiny


def test_a_prefix_set_after_construction_takes_the_run_log_along(tmp_path):
    (tmp_path / "run").mkdir()
    solver = make_tiny(tmp_path / "run", max_iter=2, test_interval=0)
    s = netcli.Solver(solver, progress=False)
    s.prefix = str(tmp_path / "elsewhere" / "snap")
    log.set_quiet(True)
    try:
        s.solve()
    finally:
        log.set_quiet(False)
    assert (tmp_path / "elsewhere" / "snap.log.jsonl").exists()
    assert not (tmp_path / "run" / "snaps" / "tiny.log.jsonl").exists()


def test_a_given_run_log_path_wins(tmp_path):
    s = netcli.Solver(make_tiny(tmp_path, max_iter=1, test_interval=0), progress=False, log_path=str(tmp_path / "x.jsonl"))
    s.prefix = str(tmp_path / "other")
    assert s.log_path == str(tmp_path / "x.jsonl")
