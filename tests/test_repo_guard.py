"""The guard of tests/conftest.py: a test that leaves a file in the repository fails."""
import os

from repo_guard import ROOT, repo_files, written


def test_a_file_left_in_the_repository_is_seen(tmp_path):
    before = repo_files()
    probe = os.path.join(ROOT, "snapshots", f"guard-probe-{os.getpid()}.log.jsonl")
    open(probe, "w").close()
    try:
        assert written(before, repo_files()) == [os.path.relpath(probe, ROOT)]
    finally:
        os.unlink(probe)
    assert written(before, repo_files()) == []


def test_an_append_to_a_run_log_in_snapshots_is_seen():
    probe = os.path.join(ROOT, "snapshots", f"guard-probe-{os.getpid()}.log.jsonl")
    open(probe, "w").close()
    try:
        before = repo_files()
        with open(probe, "a") as f:
            f.write("{}\n")
        assert written(before, repo_files()) == [os.path.relpath(probe, ROOT)]
    finally:
        os.unlink(probe)
