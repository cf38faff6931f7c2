"""Every file netcli writes goes through here: whole files atomically, logs by appending.

`write_atomic(path, content)` writes `content` (bytes, or a function that writes into the open
binary file) to a new temporary file `<name>.<random>.tmp` in the target's folder, created with
O_CREAT | O_EXCL | O_NOFOLLOW (a planted file or symlink of that name is never opened, let alone
followed) and the user's umask; fsyncs it, renames it over the target and fsyncs the folder. A
target that is a symbolic link is refused; a failure removes the temporary file and leaves the
target as it was. `write_files` does the same for several files at once: every temporary file
first, then the renames in order (netcli/io/weights.py builds its crash-safe pairs on it).

`open_append(path)` opens a log for appending with O_APPEND | O_NOFOLLOW, and only a regular file
(never a symlink, FIFO or device). Nothing here creates folders: the caller decides which.
"""
from __future__ import annotations

import errno
import os
import secrets
import stat

from ..errors import NetcliError

TMP = ".tmp"
_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_CLOEXEC = getattr(os, "O_CLOEXEC", 0)
_NONBLOCK = getattr(os, "O_NONBLOCK", 0)
_BINARY = getattr(os, "O_BINARY", 0)


def temp_name(path):
    """A fresh temporary name next to `path`: '<name>.<12 random hex digits>.tmp'."""
    return f"{os.fspath(path)}.{secrets.token_hex(6)}{TMP}"


def create_exclusive(path):
    """A new file at exactly `path`, opened for writing (0o666 & ~umask); never an existing file
    or a symlink (FileExistsError). Returns the descriptor."""
    return os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | _NOFOLLOW | _CLOEXEC | _BINARY, 0o666)


def create_temp(path):
    """(descriptor, name) of a new temporary file next to `path` (see temp_name)."""
    for _ in range(100):
        tmp = temp_name(path)
        try:
            return create_exclusive(tmp), tmp
        except FileExistsError:        # a planted name, or a 1-in-2^48 clash: draw again
            continue
    raise FileExistsError(errno.EEXIST, "no free temporary name", os.fspath(path))


def refuse_symlink(path):
    """One NetcliError when `path` itself is a symbolic link (netcli never writes through one)."""
    try:
        link = stat.S_ISLNK(os.lstat(path).st_mode)
    except OSError:          # absent (the usual case), or unreachable: the write will say
        return
    if link:
        raise NetcliError(f"refusing to write {os.fspath(path)}: it is a symbolic link "
                          "(remove it, or give the real path)")


def fsync_folder(folder):
    try:
        fd = os.open(folder or ".", os.O_RDONLY | _CLOEXEC)
    except OSError:          # not possible on every platform: the rename is still atomic
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _fill(fd, content):
    with os.fdopen(fd, "wb") as f:
        if isinstance(content, (bytes, bytearray, memoryview)):
            f.write(content)
        else:
            content(f)
        f.flush()
        os.fsync(f.fileno())


def write_files(files, replace=os.replace):
    """Write {path: content} (content as in write_atomic): every temporary file first, then the
    renames in the given order, then one fsync per folder. On any failure every temporary file
    still there is removed and the exception propagates (OSError as it came); a target that is a
    symlink is a NetcliError before anything is written."""
    paths = [os.fspath(p) for p in files]
    for p in paths:
        refuse_symlink(p)
    tmps = []
    try:
        for path, content in zip(paths, files.values()):
            fd, tmp = create_temp(path)
            tmps.append(tmp)
            _fill(fd, content)
        for tmp, path in zip(tmps, paths):
            replace(tmp, path)
    except BaseException:
        for tmp in tmps:
            try:
                os.unlink(tmp)
            except OSError:
                pass
        raise
    for folder in {os.path.dirname(os.path.abspath(p)) for p in paths}:
        fsync_folder(folder)


def reason(e: OSError):
    """An OSError in the user's words."""
    if e.errno in (errno.ENOSPC, errno.EDQUOT):
        return "the disk is full"
    if e.errno == errno.ENOENT:
        return "its folder does not exist"
    return e.strerror or str(e)


def write_atomic(path, content, what="file"):
    """Write one file atomically (see the module doc). `content`: bytes, or a function called
    with the open binary file. Any OSError is one NetcliError naming the file; other exceptions
    (the content function's own) propagate after the temporary file is removed."""
    try:
        write_files({os.fspath(path): content})
    except OSError as e:
        raise NetcliError(f"cannot write the {what} {os.fspath(path)}: {reason(e)} (nothing was written)") from None


def open_append(path, what="log"):
    """A text file (UTF-8) opened for appending: O_APPEND | O_CREAT | O_NOFOLLOW, a regular file
    only. A symlink, FIFO, device or folder at `path` is one NetcliError."""
    path = os.fspath(path)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | _NOFOLLOW | _CLOEXEC | _NONBLOCK, 0o666)
    except OSError as e:
        if e.errno in (errno.ELOOP, errno.EMLINK):      # O_NOFOLLOW met a symlink (Linux, BSD)
            raise NetcliError(f"refusing to write the {what} {path}: it is a symbolic link") from None
        if e.errno == errno.ENXIO:
            raise NetcliError(f"refusing to write the {what} {path}: not a regular file") from None
        raise NetcliError(f"cannot write the {what} {path}: {reason(e)}") from None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise NetcliError(f"refusing to write the {what} {path}: not a regular file")
        if _NONBLOCK:
            os.set_blocking(fd, True)
        return os.fdopen(fd, "a", encoding="utf-8")
    except BaseException:
        os.close(fd)
        raise


def write_folder(path, fill, overwrite=None, what="database", hint="give another name, or remove it first"):
    """Build a folder (an LMDB or LevelDB database) atomically: `fill(tmp)` writes into a new
    temporary folder `.<name>.<random>.tmp` next to `path` (mkdtemp: created afresh, nothing
    planted in it), which is then renamed to `path`. An existing `path` is one line ending with
    `hint` unless `overwrite(path)` says it may go (then it is moved aside, the new folder renamed
    in, the old one removed); a symlink at `path` is always refused. On any failure the temporary
    folder is removed and `path` is as it was. OSError becomes one NetcliError; other exceptions
    propagate."""
    import shutil
    import tempfile
    path = os.fspath(path).rstrip(os.sep) or os.sep
    refuse_symlink(path)
    if os.path.lexists(path) and not (overwrite and overwrite(path)):
        raise NetcliError(f"{path} exists: {hint}")
    parent = os.path.dirname(os.path.abspath(path))
    try:
        tmp = tempfile.mkdtemp(prefix=f".{os.path.basename(path)}.", suffix=TMP, dir=parent)
    except OSError as e:
        raise NetcliError(f"cannot write the {what} {path}: {reason(e)} (nothing was written)") from None
    old = None
    try:
        fill(tmp)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o777 & ~umask)                   # mkdtemp's 0700 -> as mkdir would make it
        if os.path.lexists(path):
            refuse_symlink(path)
            old = tempfile.mkdtemp(prefix=f".{os.path.basename(path)}.", suffix=".old" + TMP, dir=parent)
            os.rename(path, os.path.join(old, "db"))
        os.rename(tmp, path)
        fsync_folder(parent)
    except BaseException as e:
        shutil.rmtree(tmp, ignore_errors=True)
        if old is not None and not os.path.lexists(path):
            os.rename(os.path.join(old, "db"), path)       # put the old one back
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
        if isinstance(e, OSError):
            raise NetcliError(f"cannot write the {what} {path}: {reason(e)} (nothing was written)") from None
        raise
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
