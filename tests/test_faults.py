"""kill -9 at random moments of training: no corrupt files, no leftovers, exact resume
(tests/killing.py; bench/killtest.py runs many more trials)."""
import shutil

import killing


def test_kill_minus_nine_then_resume(tmp_path):
    ref, duration = killing.reference(tmp_path / "ref")
    failures = []
    for seed in range(4):
        folder = tmp_path / f"t{seed}"
        folder.mkdir()
        problems = killing.trial(folder, seed, ref, duration)
        failures += [f"seed {seed}: {p}" for p in problems]
        shutil.rmtree(folder)
    assert not failures, "\n".join(failures)
