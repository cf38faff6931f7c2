"""Named datasets (`source: mnist:train`): found in the data directory, fetched from public
mirrors with checksum verification, or (MNIST only, offline) the embedded 5,000-image subset.

A new MNIST-format dataset is one entry in DATASETS.
"""
from __future__ import annotations

import hashlib
import os
import time
import sys
import urllib.error
import urllib.request
from dataclasses import dataclass

import numpy as np

from ..io import files
from .. import log
from ..errors import NetcliError
from .sources import Dataset, DataError, load_idx


@dataclass(frozen=True)
class RemoteFile:
    name: str      # file name in the data directory, as published
    md5: str       # the published checksum


@dataclass(frozen=True)
class NamedDataset:
    name: str
    mirrors: tuple            # base URLs, tried in order
    files: tuple              # RemoteFile, all needed
    splits: dict              # split name -> IDX prefix (file stem before -images/-labels)
    embedded: str | None = None


DATASETS = {
    "mnist": NamedDataset(
        "mnist",
        mirrors=("https://ossci-datasets.s3.amazonaws.com/mnist/",
                 "https://storage.googleapis.com/cvdf-datasets/mnist/",
                 "http://yann.lecun.com/exdb/mnist/"),
        files=(RemoteFile("train-images-idx3-ubyte.gz", "f68b3c2dcbeaaa9fbdd348bbdeb94873"),
               RemoteFile("train-labels-idx1-ubyte.gz", "d53e105ee54ea40749a09fcbcd1e9432"),
               RemoteFile("t10k-images-idx3-ubyte.gz", "9fb629c4189551a2d022fa330f9573f3"),
               RemoteFile("t10k-labels-idx1-ubyte.gz", "ec29112dd5afa0611ce80d1b7f02629c")),
        splits={"train": "train", "test": "t10k", "t10k": "t10k"},
        embedded="mnist_5k.npz"),
}

TIMEOUT = 5.0  # seconds, per connection attempt and per read


def data_dir():
    return os.path.expanduser(os.environ.get("NETCLI_DATA") or "~/.cache/netcli")


def offline():
    """$NETCLI_OFFLINE: 1/true/yes (never download) or 0/false/no/unset; anything else is an error."""
    v = os.environ.get("NETCLI_OFFLINE", "").strip().lower()
    if v in ("", "0", "false", "no", "off"):
        return False
    if v in ("1", "true", "yes", "on"):
        return True
    raise DataError(f"NETCLI_OFFLINE must be 1 or 0 (true/false, yes/no), got {os.environ['NETCLI_OFFLINE']!r}")


RETRY_AFTER = 3600     # seconds: after a failed automatic download, commands do not try again for this long


def _failed_marker(folder):
    return os.path.join(folder, ".download-failed")


def _failed_recently(folder):
    """An automatic download of this dataset failed within RETRY_AFTER (so offline, each command
    does not wait out the mirrors' timeouts again); `netcli data fetch` always tries."""
    try:
        return time.time() - os.path.getmtime(_failed_marker(folder)) < RETRY_AFTER
    except OSError:
        return False


def _mark_failed(folder):
    try:
        os.makedirs(folder, exist_ok=True)
        files.write_files({_failed_marker(folder): b""})
    except (OSError, NetcliError):      # a marker only: without it, the next command tries again
        pass


def _have(folder, ds):
    return all(os.path.exists(os.path.join(folder, f.name)) or
               os.path.exists(os.path.join(folder, f.name[:-3])) for f in ds.files)


def fetch(name, folder=None, mirrors=None, progress=None):
    """Download every file of dataset `name` that is missing, verifying its MD5; each file is
    written to a temporary file and renamed only when complete and verified."""
    ds = DATASETS.get(name)
    if ds is None:
        raise DataError(f"unknown dataset '{name}' (known: {', '.join(DATASETS)})")
    folder = folder or os.path.join(data_dir(), name)
    os.makedirs(folder, exist_ok=True)
    for f in ds.files:
        dest = os.path.join(folder, f.name)
        if os.path.exists(dest) or os.path.exists(dest[:-3]):
            continue
        errors = []
        for base in mirrors or ds.mirrors:
            try:
                _download(base + f.name, dest, f.md5, progress)
                break
            except DataError as e:
                errors.append(str(e))
        else:
            raise DataError(f"could not download {f.name}:\n  " + "\n  ".join(errors))
    return folder


def _download(url, dest, md5, progress=None):
    """`url` to `dest` through files.write_files: renamed into place only when complete and its MD5
    verified (each MPI rank that fetches at once writes its own temporary file; the last rename wins)."""
    from tqdm import tqdm

    def fill(out):
        h = hashlib.md5()
        try:
            with urllib.request.urlopen(url, timeout=TIMEOUT) as r:
                total = int(r.headers.get("Content-Length") or 0) or None
                show = sys.stderr.isatty() if progress is None else progress
                with tqdm(total=total, unit="B", unit_scale=True, desc=os.path.basename(dest),
                          disable=not show, file=sys.stderr, leave=False) as bar:
                    while True:
                        chunk = r.read(1 << 16)
                        if not chunk:
                            break
                        out.write(chunk)
                        h.update(chunk)
                        bar.update(len(chunk))
                if total is not None and out.tell() != total:
                    raise DataError(f"{url}: connection closed after {out.tell()} of {total} bytes")
        except (urllib.error.URLError, OSError, ValueError) as e:
            reason = getattr(e, "reason", e)
            raise DataError(f"{url}: {reason}") from None
        if h.hexdigest() != md5:
            raise DataError(f"{url}: checksum mismatch (MD5 {h.hexdigest()}, expected {md5})")

    try:
        files.write_files({dest: fill})
    except OSError as e:
        raise DataError(f"cannot write {dest}: {files.reason(e)}") from None


def embedded_split(ds: NamedDataset, split):
    """The embedded subset, split class-balanced: per class, in file order, the first 80% are
    train and the rest test (MNIST: 4,000 train / 1,000 test)."""
    path = os.path.join(os.path.dirname(__file__), "embedded", ds.embedded)
    with np.load(path) as z:
        images, labels = z["images"], z["labels"]
    train = np.zeros(len(labels), bool)
    for c in np.unique(labels):
        idx = np.flatnonzero(labels == c)
        train[idx[:len(idx) * 4 // 5]] = True
    keep = train if split == "train" else ~train
    return Dataset(images[keep][:, None], labels[keep].astype(np.float32), f"{ds.name}:{split} (embedded)")


def load_named(source):
    """`name:split`, e.g. mnist:train."""
    name, _, split = source.partition(":")
    ds = DATASETS.get(name)
    if ds is None or split not in ds.splits:
        known = ", ".join(f"{n}:{s}" for n, d in DATASETS.items() for s in d.splits)
        raise DataError(f"unknown named dataset '{source}' (known: {known})")
    folder = os.path.join(data_dir(), name)
    if not _have(folder, ds):
        problem = "NETCLI_OFFLINE is set"
        if not offline() and not _failed_recently(folder):
            try:
                fetch(name, folder)
                problem = None
            except DataError as e:
                problem = " ".join(line.strip() for line in str(e).splitlines()[:2])   # the file and the first reason
                _mark_failed(folder)
        elif not offline():
            problem = f"the last try, under {RETRY_AFTER // 60} minutes ago, failed"
        if problem is not None:
            if ds.embedded is None:
                raise DataError(f"{name} not found in {folder} and could not be downloaded ({problem}); "
                                f"run: netcli data fetch {name}")
            if not offline():          # NETCLI_OFFLINE=1 chose the embedded subset: nothing to warn of
                shown = folder.replace(os.path.expanduser("~"), "~", 1)
                problem = problem if len(problem) <= 80 else problem[:77] + "..."
                log.warn(f"no {name.upper()} in {shown} ({problem}): using the embedded subset; "
                         f"`netcli data fetch {name}` gets the full set", once_key=name)
            return embedded_split(ds, "train" if ds.splits[split] == "train" else "test")
    return load_idx(os.path.join(folder, ds.splits[split]))
