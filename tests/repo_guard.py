"""What the test suite may not do: leave files in the repository (tests/conftest.py checks each test)."""
from __future__ import annotations

import os

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
IGNORED_DIRS = {".git", "__pycache__", ".pytest_cache", ".hypothesis", ".venv", "build", "dist"}


def repo_files(root=ROOT):
    """{relative path: (size, mtime_ns)} of every file in the repository, but caches and VCS data."""
    out = {}
    stack = [root]
    while stack:
        folder = stack.pop()
        try:
            entries = list(os.scandir(folder))
        except OSError:
            continue
        for e in entries:
            if e.is_dir(follow_symlinks=False):
                if e.name not in IGNORED_DIRS and not e.name.endswith(".egg-info"):
                    stack.append(e.path)
                continue
            try:
                st = e.stat(follow_symlinks=False)
            except OSError:
                continue
            out[os.path.relpath(e.path, root)] = (st.st_size, st.st_mtime_ns)
    return out


def written(before, after):
    """The paths created between two repo_files() listings, and those changed under snapshots/
    (where a run log is appended to), sorted. A tracked file changed meanwhile is someone editing
    the code while the suite runs, not the suite."""
    return sorted(p for p, sig in after.items()
                  if p not in before or (before[p] != sig and p.startswith("snapshots" + os.sep)))
