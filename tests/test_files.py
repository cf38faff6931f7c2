"""netcli/io/files.py, the one writer: atomic, O_EXCL | O_NOFOLLOW temporaries, no symlink followed;
and the writers built on it (plot, draw, the run log, dataset downloads)."""
import os
import stat

import pytest

from netcli.io import files
from netcli.errors import NetcliError


@pytest.fixture
def victim(tmp_path):
    v = tmp_path / "victim.txt"
    v.write_bytes(b"precious")
    return v


def _fixed_names(monkeypatch, *tokens):
    """temp_name draws these tokens, in order (a planted name is then known)."""
    it = iter(tokens)
    monkeypatch.setattr(files.secrets, "token_hex", lambda n: next(it))


def test_write_atomic_writes_bytes_and_functions_with_the_umask(tmp_path):
    old = os.umask(0o022)
    try:
        files.write_atomic(tmp_path / "a.bin", b"abc")
        files.write_atomic(tmp_path / "b.bin", lambda f: f.write(b"def"))
    finally:
        os.umask(old)
    assert (tmp_path / "a.bin").read_bytes() == b"abc" and (tmp_path / "b.bin").read_bytes() == b"def"
    assert os.stat(tmp_path / "a.bin").st_mode & 0o777 == 0o644
    assert sorted(os.listdir(tmp_path)) == ["a.bin", "b.bin"]


def test_write_atomic_refuses_a_symlinked_target(tmp_path, victim):
    (tmp_path / "out.bin").symlink_to(victim)
    with pytest.raises(NetcliError, match="refusing to write .*out.bin: it is a symbolic link"):
        files.write_atomic(tmp_path / "out.bin", b"evil")
    assert victim.read_bytes() == b"precious" and os.path.islink(tmp_path / "out.bin")


def test_a_planted_temporary_name_is_never_opened(tmp_path, victim, monkeypatch):
    target = tmp_path / "out.bin"
    (tmp_path / "out.bin.aaaa.tmp").symlink_to(victim)          # the name the writer draws first
    (tmp_path / "out.bin.tmp").symlink_to(victim)               # the name older netcli used
    _fixed_names(monkeypatch, "aaaa", "bbbb")
    files.write_atomic(target, b"new")
    assert target.read_bytes() == b"new" and victim.read_bytes() == b"precious"
    assert os.path.islink(tmp_path / "out.bin.aaaa.tmp")


def test_a_failed_write_leaves_the_target_and_no_temporary(tmp_path):
    target = tmp_path / "out.bin"
    target.write_bytes(b"old")

    def half(f):
        f.write(b"partial")
        raise OSError(28, "No space left on device")
    with pytest.raises(NetcliError, match="cannot write the file .*out.bin: the disk is full"):
        files.write_atomic(target, half)
    assert os.listdir(tmp_path) == ["out.bin"] and target.read_bytes() == b"old"
    with pytest.raises(NetcliError, match="its folder does not exist"):
        files.write_atomic(tmp_path / "no" / "such" / "x.bin", b"")      # nothing creates folders
    assert os.listdir(tmp_path) == ["out.bin"]


def test_open_append_appends_and_refuses_symlinks_and_fifos(tmp_path, victim):
    log = tmp_path / "run.log"
    for line in ("one\n", "two\n"):
        with files.open_append(log) as f:
            f.write(line)
    assert log.read_text() == "one\ntwo\n"
    (tmp_path / "link.log").symlink_to(victim)
    with pytest.raises(NetcliError, match="refusing to write the log .*link.log: it is a symbolic link"):
        files.open_append(tmp_path / "link.log")
    assert victim.read_bytes() == b"precious"
    if hasattr(os, "mkfifo"):
        os.mkfifo(tmp_path / "fifo.log")                       # would block a plain open() forever
        with pytest.raises(NetcliError, match="not a regular file"):
            files.open_append(tmp_path / "fifo.log")
        assert stat.S_ISFIFO(os.lstat(tmp_path / "fifo.log").st_mode)


def test_the_run_log_never_follows_a_symlink(tmp_path, victim):
    from netcli.solver.runlog import RunLog
    (tmp_path / "tiny.log.jsonl").symlink_to(victim)
    with pytest.raises(NetcliError, match="refusing to write the run log .*tiny.log.jsonl: it is a symbolic link"):
        RunLog(tmp_path / "tiny.log.jsonl")
    assert victim.read_bytes() == b"precious"


def test_plot_and_draw_never_follow_a_symlink(tmp_path, victim, monkeypatch):
    pytest.importorskip("matplotlib")
    from netcli.viz.plot import _pyplot, _save
    from netcli import Net
    from netcli.viz.draw import draw
    plt = _pyplot()
    (tmp_path / "curves.png.tmp").symlink_to(victim)          # the temporary name older netcli used
    (tmp_path / "curves.png.cccc.tmp").symlink_to(victim)
    _fixed_names(monkeypatch, "cccc", "dddd")
    _save(plt.figure(), tmp_path / "curves.png")
    assert victim.read_bytes() == b"precious" and (tmp_path / "curves.png").read_bytes()[:4] == b"\x89PNG"
    (tmp_path / "link.png").symlink_to(victim)
    with pytest.raises(NetcliError, match="symbolic link"):
        _save(plt.figure(), tmp_path / "link.png")
    (tmp_path / "net.svg").symlink_to(victim)
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    with pytest.raises(NetcliError, match="symbolic link"):
        draw(Net(os.path.join(root, "configs", "lenet_deploy.yaml"), phase="TEST"), str(tmp_path / "net.svg"))
    assert victim.read_bytes() == b"precious"
