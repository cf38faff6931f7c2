"""Log lines: one event per line on stdout, in Caffe's wording; warnings on stderr."""
import sys

_state = {"quiet": False}
_warned: set = set()


def set_quiet(quiet: bool):
    _state["quiet"] = quiet


def info(msg: str):
    if not _state["quiet"]:
        print(msg, flush=True)


def warn(msg: str, once_key=None):
    """A one-line warning on stderr (at most once per key per process)."""
    if once_key is not None:
        if once_key in _warned:
            return
        _warned.add(once_key)
    print(f"WARNING: {msg}", file=sys.stderr, flush=True)
