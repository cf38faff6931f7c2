"""The notice that netcli's Numba kernels are being compiled, given only when they are.

Numba compiles a kernel on its first call with new argument types, unless its on-disk cache
(`cache=True`, NUMBA_CACHE_DIR) holds it; a net uses only some kernels, so no look at the cache
before a run can say whether that run compiles. Numba announces each real compile (a cache miss)
with a "numba:compile" event: this listener says so when the first one starts, and afterwards
which kernels were compiled and how long the compiling itself took.
"""
from __future__ import annotations

import threading
import time

from numba.core import event

SHOWN_NAMES = 6


def _kernel_name(dispatcher):
    """`module.function` for one of netcli's kernels, else None (a user's or Numba's own function)."""
    fn = getattr(dispatcher, "py_func", None)
    module = getattr(fn, "__module__", "") or ""
    if not module.startswith("netcli."):
        return None
    return f"{module.rsplit('.', 1)[-1]}.{fn.__name__}"


class KernelCompiles(event.Listener):
    """While entered, `say` gets "Compiling kernels ..." when Numba starts compiling one of netcli's
    kernels, and report() (called by the owner between passes, and on exit) one line naming what was
    compiled and the seconds spent compiling (nested compiles counted once). Nothing at all when
    every kernel comes from the cache."""

    def __init__(self, say):
        self.say = say
        self.names: list[str] = []
        self.seconds = 0.0
        self._depth = 0
        self._started = 0.0
        self._lock = threading.Lock()

    def on_start(self, ev):
        name = _kernel_name(ev.data.get("dispatcher"))
        with self._lock:
            if self._depth == 0:
                self._started = time.perf_counter()
            self._depth += 1
            if name is None or name in self.names:
                return
            first = not self.names
            self.names.append(name)
        if first:
            self.say("Compiling kernels (first use; Numba caches them on disk for later runs) ...")

    def on_end(self, ev):
        with self._lock:
            self._depth -= 1
            if self._depth == 0:
                self.seconds += time.perf_counter() - self._started

    def report(self):
        """One line for the kernels compiled since the last report (none: nothing is said)."""
        with self._lock:
            if not self.names or self._depth:
                return
            names, seconds = self.names, self.seconds
            self.names, self.seconds = [], 0.0
        shown = ", ".join(names[:SHOWN_NAMES]) + (f" and {len(names) - SHOWN_NAMES} more"
                                                  if len(names) > SHOWN_NAMES else "")
        self.say(f"Kernels compiled in {seconds:.1f} s ({len(names)}: {shown}); cached: the next runs load them")

    def __enter__(self):
        event.register("numba:compile", self)
        return self

    def __exit__(self, *exc):
        event.unregister("numba:compile", self)
        self.report()
        return False
