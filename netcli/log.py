"""Log lines: one event per line on stdout, in Caffe's wording; warnings on stderr."""
import sys

_state = {"quiet": False, "silent": False, "bar": None}
_warned: set = set()


def set_quiet(quiet: bool):
    _state["quiet"] = quiet


def silence():
    """No log lines and no warnings from this process (the ranks but 0 of a distributed run)."""
    _state["quiet"] = _state["silent"] = True


def set_bar(bar):
    """While a tqdm bar is on screen, lines are written around it."""
    _state["bar"] = bar


def info(msg: str):
    if _state["quiet"]:
        return
    if _state["bar"] is not None:
        _state["bar"].write(msg, file=sys.stdout)
    else:
        print(msg, flush=True)


def warn(msg: str, once_key=None):
    """A one-line warning on stderr (at most once per key per process)."""
    if _state["silent"]:
        return
    if once_key is not None:
        if once_key in _warned:
            return
        _warned.add(once_key)
    print(f"WARNING: {msg}", file=sys.stderr, flush=True)
