"""Where a relative path in a config points: next to the config file first, then the working
directory (the same rule for data sources, IDX prefixes, mean files, infogain matrices and a
solver's net). When neither has it, the error says both places it looked."""
from __future__ import annotations

import errno
import os
import stat

from ..errors import NetcliError


def resolve(path, base_dir, what="file", exists=os.path.exists):
    """The path to use for `path` written in a config that lives in `base_dir`; `exists` tests a
    candidate (an IDX prefix, say, exists when its files do)."""
    if os.path.isabs(path):
        if exists(path):
            return path
        raise NetcliError(f"{path}: no such {what}")
    candidates = [os.path.join(base_dir, path)] if base_dir else []
    candidates.append(path)
    for c in candidates:
        if exists(c):
            return c
    looked = [os.path.abspath(c) for c in dict.fromkeys(candidates)]
    looked = " and ".join(looked) + ("; found neither" if len(looked) > 1 else "")
    where = "next to the config file and in the working directory" if base_dir else "in the working directory"
    raise NetcliError(f"{path}: no such {what} {where} (looked for {looked}){_similar(path, candidates)}")


def _similar(path, candidates):
    """'; did you mean ...?' for a near miss among the names in the folders looked in, written
    as `path` was."""
    import difflib
    for c in candidates:
        folder, name = os.path.split(c)
        try:
            names = os.listdir(folder or ".")
        except OSError:
            continue
        close = difflib.get_close_matches(name, names, n=1, cutoff=0.75)
        if close:
            return f"; did you mean '{os.path.join(os.path.dirname(path), close[0])}'?"
    return ""


def open_regular(path):
    """A binary file object for `path` if it is a regular file, else OSError (a FIFO, device or
    socket: EINVAL; a folder: IsADirectoryError). Opened without blocking, checked on the open
    descriptor: a FIFO named like a weights file is refused, never waited on."""
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0))
    try:
        mode = os.fstat(fd).st_mode
        if stat.S_ISDIR(mode):
            raise IsADirectoryError(errno.EISDIR, "is a folder", path)
        if not stat.S_ISREG(mode):
            raise OSError(errno.EINVAL, "not a regular file (a FIFO, device or socket)", path)
        if getattr(os, "O_NONBLOCK", 0):
            os.set_blocking(fd, True)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def open_text(path):
    """A list or label file (UTF-8 text) for reading, a regular file only (see open_regular)."""
    import io
    return io.TextIOWrapper(open_regular(path), encoding="utf-8")


def read_start(path, what, limit):
    """(size, the first `limit` bytes) of the file at `path` (a regular file only); each way this
    can fail is one NetcliError naming the file and `what` it should have been."""
    try:
        with open_regular(path) as f:
            return os.fstat(f.fileno()).st_size, f.read(limit)
    except FileNotFoundError:
        raise NetcliError(f"{path}: no such {what}") from None
    except IsADirectoryError:
        raise NetcliError(f"{path}: is a folder, not a {what}") from None
    except OSError as e:
        raise NetcliError(f"{path}: cannot read the {what}: {e.strerror or e}") from None
