"""Reading .npz files that may be damaged or hostile: every array's header is checked against
the archive before anything is allocated, sizes are bounded by the machine's memory, Python
objects are never unpickled, and every fault (not a zip, truncated, bad CRC, a header that lies,
an .npy named .npz) is one NetcliError naming the file."""
from __future__ import annotations

import os
import tokenize
import zipfile
import zlib
from dataclasses import dataclass

import numpy as np

from ..blob import describe_budget, memory_budget
from ..errors import NetcliError
from ..config.paths import open_regular, read_start

_READ_ERRORS = (zipfile.BadZipFile, zlib.error, EOFError, OSError, ValueError, KeyError, TypeError,
                tokenize.TokenError, SyntaxError, NotImplementedError, RuntimeError, OverflowError)


def read_npz(path, what="weights", names=None, shapes=None, select=None):
    """{name: array} of the .npz at `path` (only `names`, if given: each must be there; only the
    names `select(name)` is true for, if given). `shapes` ({name: shape}, a net's params): an
    array not named there, or declaring another shape, is not read at all (not inflated, nothing
    allocated): it comes back as a Declared (its shape and dtype), for the caller to report."""
    path = os.fspath(path)
    size, magic = read_start(path, f"{what} file", 6)
    if size == 0:
        raise NetcliError(f"{path}: the {what} file is empty")
    if magic == b"\x93NUMPY":
        raise NetcliError(f"{path}: a single .npy array, not an .npz archive of named arrays ({what})")
    if not magic.startswith(b"PK"):
        raise NetcliError(f"{path}: not an .npz archive (a zip of .npy arrays), so not a {what} file")
    try:
        with zipfile.ZipFile(path) as z:
            members = {i.filename[:-4]: i for i in z.infolist() if i.filename.endswith(".npy")}
            wanted = list(members) if names is None else list(names)
            if select is not None:
                wanted = [n for n in wanted if select(n)]
            missing = [n for n in wanted if n not in members]
            if missing:
                raise NetcliError(f"{path}: missing array(s) {', '.join(missing)} (found "
                                  f"{', '.join(sorted(members)) or 'none'})")
            budget, total, out = memory_budget(), 0, {}
            for name in wanted:
                arr, total = _read_member(z, members[name], path, budget, total, shapes)
                out[name] = arr
            return out
    except NetcliError:
        raise
    except MemoryError:
        raise NetcliError(f"{path}: not enough memory to read the {what} file") from None
    except _READ_ERRORS as e:
        reason = " ".join(str(e).split())[:160] or type(e).__name__
        raise NetcliError(f"{path}: damaged or not a {what} file (.npz): {reason}") from None


def _read_member(z, info, path, budget, total, shapes=None):
    with z.open(info) as m:
        return _read_stream(m, info.file_size, info.filename[:-4], path, budget, total, shapes)


def _read_stream(m, file_size, name, path, budget, total, shapes=None):
    """An .npy read from the file object `m` of `file_size` bytes: its header first, checked
    against `shapes` and the size, then the data into one new array."""
    version = np.lib.format.read_magic(m)
    if version == (1, 0):
        shape, fortran, dtype = np.lib.format.read_array_header_1_0(m)
    else:
        shape, fortran, dtype = np.lib.format.read_array_header_2_0(m)
    if dtype.hasobject:
        raise NetcliError(f"{path}: array '{name}' holds Python objects, which netcli does not load")
    count = 1
    for d in shape:
        count *= int(d)
    nbytes = count * dtype.itemsize
    if shapes is not None and (name not in shapes or not fits(shape, shapes[name])):
        return Declared(tuple(shape), dtype), total
    header = m.tell()
    if header + nbytes != file_size:
        raise NetcliError(f"{path}: array '{name}' claims shape {shape} of {dtype} ({nbytes:,} bytes), but "
                          f"the file holds {max(file_size - header, 0):,} bytes for it: damaged file")
    total += nbytes
    if total > budget:
        raise NetcliError(f"{path}: {total / 2 ** 30:.3g} GB of arrays; {describe_budget()}")
    arr = np.empty(count, dtype)
    view = memoryview(arr.view(np.uint8)) if nbytes else memoryview(b"")
    got = 0
    while got < nbytes:
        n = m.readinto(view[got:])
        if not n:
            raise NetcliError(f"{path}: array '{name}' is truncated ({got:,} of {nbytes:,} bytes)")
        got += n
    m.read(1)              # reach the member's end, where zipfile checks its CRC
    return arr.reshape(shape, order="F" if fortran else "C"), total


def fits(shape, expected):
    """Whether a declared `shape` is `expected`, where None in `expected` is any extent."""
    return len(shape) == len(expected) and all(e is None or int(d) == e for d, e in zip(shape, expected))


def shown(expected):
    """An expected shape as messages write it: (3, 28, 28), or (3, any, any)."""
    return str(tuple(expected)).replace("None", "any")


@dataclass(frozen=True)
class Declared:
    """An array a file declares but that was not read (another name or shape than the net's):
    its shape and dtype, for the caller's message; no data."""
    shape: tuple
    dtype: np.dtype

    @property
    def ndim(self):
        return len(self.shape)


class _EveryName(dict):
    """`shapes` for read_npz that gives every name one shape."""

    def __init__(self, shape):
        super().__init__()
        self.shape = tuple(shape)

    def __contains__(self, name):
        return True

    def __getitem__(self, name):
        return self.shape


def read_array(path, what, shape):
    """The array of an .npy file, or the first array of an .npz, which must have `shape` (None:
    any extent on that axis); its declared shape is checked before anything is read or allocated."""
    path = os.fspath(path)
    expected = shown(shape)
    if path.endswith(".npz"):
        arrays = read_npz(path, what, shapes=_EveryName(shape))
        if not arrays:
            raise NetcliError(f"{path}: the .npz holds no arrays ({what})")
        a = next(iter(arrays.values()))
        if isinstance(a, Declared):
            raise NetcliError(f"{path}: the {what} has shape {a.shape}, expected {expected}")
    else:
        read_start(path, f"{what} file", 0)          # a regular file: a FIFO is refused, not waited on
        try:
            with open_regular(path) as f:
                a, _ = _read_stream(f, os.fstat(f.fileno()).st_size, what, path, memory_budget(), 0,
                                    _EveryName(shape))
        except NetcliError:
            raise
        except MemoryError:
            raise NetcliError(f"{path}: not enough memory to read the {what}") from None
        except _READ_ERRORS as e:
            raise NetcliError(f"{path}: cannot read the {what} (a .npy or .npz file): "
                              f"{' '.join(str(e).split())[:160] or type(e).__name__}") from None
        if isinstance(a, Declared):
            raise NetcliError(f"{path}: the {what} has shape {a.shape}, expected {expected}")
    if not fits(a.shape, shape):
        raise NetcliError(f"{path}: the {what} has shape {a.shape}, expected {expected}")
    if a.dtype.kind not in "fiu":
        raise NetcliError(f"{path}: the {what} holds {a.dtype}, not numbers")
    return np.array(a)
