import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(__file__))
os.environ.setdefault("NETCLI_OFFLINE", "1")

from repo_guard import repo_files, written  # noqa: E402  (needs the path above)


@pytest.fixture(autouse=True)
def _writes_nothing_into_the_repo(request):
    """Tests write only under temporary folders: a test that leaves a file in the repository (a run
    log in snapshots/, a plot, a converted model) fails, naming it. Bytecode and Numba caches
    (__pycache__), and pytest's and hypothesis's own folders are not counted."""
    before = repo_files()
    yield
    new = written(before, repo_files())
    if new:
        pytest.fail(f"{request.node.nodeid} wrote into the repository: {', '.join(new[:10])}"
                    f"{' …' if len(new) > 10 else ''} (write under tmp_path)", pytrace=False)
