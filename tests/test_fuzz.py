"""Property: every mutant of a shipped config, and every damaged data file, ends in a clean user
error (NetcliError) or succeeds -- never another exception. The mutations are seeded
(tests/mutations.py); hypothesis draws the seeds, derandomized so CI runs the same cases.
bench/fuzz.py runs thousands more, with a hang timeout, in worker processes."""
from hypothesis import HealthCheck, given, settings, strategies as st

import mutations
from netcli import log

SETTINGS = settings(max_examples=300, deadline=None, derandomize=True, database=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])


@SETTINGS
@given(seed=st.integers(0, 2 ** 32 - 1))
def test_config_mutants_end_cleanly(seed, tmp_path_factory):
    folder = tmp_path_factory.mktemp("config")
    kind, path = mutations.config_case(seed, str(folder))
    log.set_quiet(True)
    try:
        result = mutations.outcome(mutations.run_config_case, kind, path)
    finally:
        log.set_quiet(False)
    assert result in ("ok", "clean"), f"seed {seed} ({path}): {result}"


@SETTINGS
@given(seed=st.integers(0, 2 ** 32 - 1))
def test_data_mutants_end_cleanly(seed, tmp_path_factory):
    folder = tmp_path_factory.mktemp("data")
    path = mutations.data_case(seed, str(folder))
    result = mutations.outcome(mutations.run_data_case, path)
    assert result in ("ok", "clean"), f"seed {seed}: {result}"


def test_fuzz_targets_replay_from_their_seed(tmp_path):
    """bench/fuzz.py's other targets (tests/fuzz_targets.py): a finding replays from its seed."""
    import os
    import fuzz_targets
    for target in fuzz_targets.TARGETS:
        a, b = tmp_path / f"{target}-a", tmp_path / f"{target}-b"
        a.mkdir(), b.mkdir()
        argv_a, argv_b = fuzz_targets.case(target, 11, str(a)), fuzz_targets.case(target, 11, str(b))
        assert [x.replace(str(a), "") for x in argv_a] == [x.replace(str(b), "") for x in argv_b]
        for name in os.listdir(a):
            if not name.endswith(".npz"):          # zip members carry a timestamp
                assert (a / name).read_bytes() == (b / name).read_bytes(), (target, name)
