"""Issue 24: snapshot_keep never deletes another run's (or this run's newest) snapshots; --resume
continues the run written last; snapshot writes, the folder probe and recovery follow no symlink
and touch only netcli's own names; a solver state's learned_net stays in its own folder; a
snapshot_prefix creates at most its last folder."""
import os

import numpy as np
import pytest
from click.testing import CliRunner

import netcli
import netcli.io.weights as snapmod
from netcli import log
from netcli.cli import cli
from netcli.errors import NetcliError
from tinynet import make_tiny


def _pairs(snaps):
    return sorted(int(f.split("_iter_")[1].split(".")[0]) for f in os.listdir(snaps) if f.endswith(".solverstate.npz"))


def _age(folder, seconds=3600):
    """Make every file in `folder` look written `seconds` ago."""
    for f in os.listdir(folder):
        st = os.stat(folder / f)
        os.utime(folder / f, ns=(st.st_atime_ns, st.st_mtime_ns - seconds * 10**9))


def _train(solver, *flags):
    r = CliRunner().invoke(cli, ["train", "--solver", solver, "--quiet", *flags], obj={})
    log.set_format("netcli")
    return r


def test_snapshot_keep_spares_an_older_longer_run_and_resume_continues_the_new_one(tmp_path):
    old = make_tiny(tmp_path, max_iter=60, test_interval=0, snapshot=10, extra="snapshot_keep: 2\n")
    netcli.Solver(old, progress=False).solve()
    snaps = tmp_path / "snaps"
    assert _pairs(snaps) == [50, 60]
    _age(snaps)
    new = make_tiny(tmp_path, max_iter=20, test_interval=0, snapshot=10, extra="snapshot_keep: 2\n")
    s = netcli.Solver(new, progress=False)
    s.solve()
    assert _pairs(snaps) == [10, 20, 50, 60]            # the new run's two newest, the old run's untouched
    r = _train(new, "--resume", "--iterations", "20")
    assert r.exit_code == 0, r.output
    assert f"Resuming from {snaps / 'tiny_iter_20.solverstate.npz'}" in r.output
    assert _pairs(snaps) == [30, 40, 50, 60]            # the resumed run prunes what it (and its start) wrote
    st = np.load(snaps / "tiny_iter_40.solverstate.npz")
    assert list(st["snapshots"]) == [30, 40]


def test_prune_removes_only_the_exact_names_of_this_run(tmp_path):
    path = make_tiny(tmp_path, max_iter=30, test_interval=0, snapshot=10, extra="snapshot_keep: 1\n")
    snaps = tmp_path / "snaps"
    snaps.mkdir()
    others = ["tiny_iter_10.weights.npz.bak", "tiny_iter_5.solverstate.npz", "tiny_iter_5.weights.npz",
              "tiny_iter_10.caffemodel", "tiny_notes.npz.tmp", "tiny_iter_x.weights.npz.tmp"]
    for f in others:
        (snaps / f).write_bytes(b"keep me")
    netcli.Solver(path, progress=False).solve()
    left = sorted(os.listdir(snaps))
    assert left == sorted(others + ["tiny.log.jsonl", "tiny_iter_30.solverstate.npz", "tiny_iter_30.weights.npz"])
    assert all((snaps / f).read_bytes() == b"keep me" for f in others)


def test_snapshot_writes_never_follow_planted_symlinks(tmp_path):
    victim = tmp_path / "victim.txt"
    victim.write_bytes(b"precious")
    s = netcli.Solver(make_tiny(tmp_path, max_iter=4, test_interval=0), progress=False)
    snaps = tmp_path / "snaps"
    snaps.mkdir()
    for name in ("tiny_probe.npz.tmp", "tiny_iter_2.weights.npz.tmp", "tiny_iter_2.solverstate.npz.tmp",
                 "tiny_iter_4.weights.npz.eeee.tmp"):
        (snaps / name).symlink_to(victim)        # the old fixed names, and one of the new ones
    s.solve()                                    # the probe, recovery (removes the links), the pair at 4
    assert victim.read_bytes() == b"precious"
    assert _pairs(snaps) == [4] and not [f for f in os.listdir(snaps) if f.endswith(".tmp")]   # links removed
    (snaps / "tiny_iter_6.weights.npz").symlink_to(victim)
    s.step(2)
    with pytest.raises(NetcliError, match="refusing to write .*tiny_iter_6.weights.npz: it is a symbolic link"):
        s.snapshot()
    assert victim.read_bytes() == b"precious" and not [f for f in os.listdir(snaps) if f.endswith(".tmp")]


def test_recover_removes_only_its_own_temporary_names(tmp_path):
    snaps = tmp_path / "snaps"
    snaps.mkdir()
    victim = tmp_path / "victim.txt"
    victim.write_bytes(b"precious")
    ours = ["tiny_iter_20.weights.npz.tmp", "tiny_iter_20.solverstate.npz.0123456789ab.tmp",
            "tiny_iter_3.caffemodel.abc.tmp", "tiny_probe.npz.tmp", "tiny_best.weights.npz.x1.tmp"]
    theirs = ["tiny_notes.npz.tmp", "tiny_iter_2.weights.npz.tmp.keep", "tiny_data.npz.bak.tmp",
              "tinyiter_2.weights.npz.tmp", "tiny_iter_2.weights.npz.a.b.tmp"]
    for f in ours + theirs:
        (snaps / f).write_bytes(b"x")
    (snaps / "tiny_iter_30.weights.npz.tmp").symlink_to(victim)
    finished, removed = snapmod.recover(str(snaps / "tiny"))
    assert finished == [] and sorted(os.path.basename(r) for r in removed) == sorted(ours + ["tiny_iter_30.weights.npz.tmp"])
    assert sorted(os.listdir(snaps)) == sorted(theirs) and victim.read_bytes() == b"precious"


@pytest.mark.parametrize("learned", ["/etc/passwd", "../victim.weights.npz", "sub/tiny_iter_2.weights.npz", "..",
                                     "link.weights.npz"])
def test_learned_net_must_be_a_plain_file_in_the_states_folder(tmp_path, learned):
    s = netcli.Solver(make_tiny(tmp_path, max_iter=4, test_interval=0), progress=False)
    s.step(2)
    wpath, spath = s.snapshot()
    snaps = tmp_path / "snaps"
    (snaps / "sub").mkdir()
    os.link(wpath, snaps / "sub" / "tiny_iter_2.weights.npz")
    os.link(wpath, tmp_path / "victim.weights.npz")
    (snaps / "link.weights.npz").symlink_to(wpath)
    st = dict(np.load(spath))
    st["learned_net"] = np.array(learned)
    np.savez(spath, **st)
    r = netcli.Solver(str(tmp_path / "solver.yaml"), progress=False)
    with pytest.raises(NetcliError, match="must name a weights file in the solver state's own folder|not a regular file"):
        r.restore(spath)
    assert r.iter == 0


def test_snapshot_prefix_creates_at_most_its_last_folder(tmp_path):
    s = netcli.Solver(make_tiny(tmp_path, max_iter=2, test_interval=0), progress=False)
    s.prefix = str(tmp_path / "a" / "b" / "c" / "tiny")
    with pytest.raises(NetcliError, match=r"cannot write snapshots to .*c'.*its parent folder .*b does not exist "
                                          r"\(netcli creates only the last folder of snapshot_prefix\)"):
        s.solve()
    assert not os.path.exists(tmp_path / "a") and s.iter == 0
    s.prefix = str(tmp_path / "new" / "tiny")
    s.solve()
    assert _pairs(tmp_path / "new") == [2]
