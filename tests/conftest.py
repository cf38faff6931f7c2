import ctypes
import ctypes.util
import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(__file__))
os.environ.setdefault("NETCLI_OFFLINE", "1")

from repo_guard import repo_files, written  # noqa: E402  (needs the path above)


def _libc_malloc_trim():
    """glibc's malloc_trim, or None elsewhere. Freed arrays below glibc's adaptive mmap threshold
    (up to 32 MB) stay in the heap: without a trim, each big net a test built (AlexNet, GoogLeNet)
    left ~1 GB resident for the rest of the session, and the suite's peak was their sum."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        return libc.malloc_trim
    except (OSError, AttributeError):
        return None


_malloc_trim = _libc_malloc_trim()


@pytest.fixture(autouse=True)
def _writes_nothing_into_the_repository(request):
    """Tests write only under temporary folders: a test that leaves a file in the repository (a run
    log in snapshots/, a plot, a converted model) fails, naming it. Bytecode and Numba caches
    (__pycache__), and pytest's and hypothesis's own folders are not counted."""
    before = repo_files()
    yield
    if _malloc_trim is not None:
        _malloc_trim(0)
    new = written(before, repo_files())
    if new:
        pytest.fail(f"{request.node.nodeid} wrote into the repository: {', '.join(new[:10])}"
                    f"{' …' if len(new) > 10 else ''} (write under tmp_path)", pytrace=False)


@pytest.fixture
def thread_count():
    """set(n): the compute thread count for this test (netcli.exec.threads.set_threads); the
    count before the test is restored after it."""
    from netcli.exec import threads
    old = threads.count()
    yield threads.set_threads
    threads.set_threads(old)
