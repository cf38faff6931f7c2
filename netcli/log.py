"""Log lines: one event per line on stdout, in Caffe's wording; warnings on stderr."""
import sys

from .text import safe_text

_state = {"quiet": False, "silent": False, "bar": None, "format": "netcli"}
_warned: set = set()
FORMATS = ("netcli", "caffe")


def set_format(fmt: str):
    """'caffe': every log line starts as glog's do (`I1123 18:22:33.123456  4242 solver.py:0] `),
    so Caffe's tools/extra/parse_log.py and plot_training_log.py read netcli's logs."""
    _state["format"] = fmt


def _glog_prefix(level="I"):
    import datetime
    import os
    now = datetime.datetime.now()
    return f"{level}{now:%m%d %H:%M:%S.%f} {os.getpid():5d} solver.py:0] "


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
    msg = safe_text(msg)                # names from files: no escape sequences on the terminal
    if _state["format"] == "caffe":
        msg = _glog_prefix() + msg
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
    print(f"WARNING: {safe_text(msg)}", file=sys.stderr, flush=True)
