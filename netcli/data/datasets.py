"""Named datasets (`source: mnist:train`, `cifar10:test`): found in the data directory, fetched
from public mirrors with checksum verification (SHA-256 where published, else MD5), or (MNIST
only, offline) the embedded 5,000-image subset.

A new MNIST-format dataset is one entry in DATASETS; another format, an entry with its `reader`.
"""
from __future__ import annotations

import hashlib
import os
import time
import sys
from functools import partial
import urllib.error
import urllib.request
from dataclasses import dataclass

import numpy as np

from ..io import files
from .. import log
from ..errors import NetcliError
from . import cifar
from .sources import Dataset, DataError, load_idx


@dataclass(frozen=True)
class RemoteFile:
    name: str          # file name in the data directory, as published
    md5: str = ""      # the published checksums: SHA-256 is checked where given, else MD5
    sha256: str = ""
    size: int = 0      # bytes, where published (0: not checked)


def read_idx_split(folder, ds, split):
    """An MNIST-format split: `ds.splits[split]` is the IDX prefix (the file stem before -images/-labels)."""
    return load_idx(os.path.join(folder, ds.splits[split]))


def read_cifar_split(folder, ds, split, label_bytes, label_at):
    """A CIFAR split: `ds.splits[split]` names the archive's members (cifar.py)."""
    return cifar.load_split(os.path.join(folder, ds.files[0].name), ds.splits[split], label_bytes, label_at,
                            f"{ds.name}:{split}")


@dataclass(frozen=True)
class NamedDataset:
    name: str
    mirrors: tuple            # base URLs, tried in order
    files: tuple              # RemoteFile, all needed
    splits: dict              # split name -> what `reader` needs to find it (IDX: the file prefix)
    embedded: str | None = None
    reader: object = read_idx_split     # (folder, dataset, split) -> Dataset
    mean: str | None = None   # `<name>:mean` is the per-pixel mean image of this split (Caffe's mean.binaryproto)


def _cifar10_batches(names):
    return tuple(f"cifar-10-batches-bin/{n}.bin" for n in names)


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
    # SHA-256 and sizes as TensorFlow Datasets publishes them (tensorflow_datasets/url_checksums/)
    "fashion-mnist": NamedDataset(
        "fashion-mnist",
        mirrors=("https://raw.githubusercontent.com/zalandoresearch/fashion-mnist/master/data/fashion/",
                 "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/"),
        files=(RemoteFile("train-images-idx3-ubyte.gz", sha256="3aede38d61863908ad78613f6a32ed271626dd12800ba2636569512369268a84", size=26421880),
               RemoteFile("train-labels-idx1-ubyte.gz", sha256="a04f17134ac03560a47e3764e11b92fc97de4d1bfaf8ba1a3aa29af54cc90845", size=29515),
               RemoteFile("t10k-images-idx3-ubyte.gz", sha256="346e55b948d973a97e58d2351dde16a484bd415d4595297633bb08f03db6a073", size=4422102),
               RemoteFile("t10k-labels-idx1-ubyte.gz", sha256="67da17c76eaffca5446c3361aaab5c3cd6d1c2608764d35dfb1850b086bf8dd5", size=5148)),
        splits={"train": "train", "test": "t10k", "t10k": "t10k"}),
    "cifar10": NamedDataset(
        "cifar10",
        mirrors=("https://www.cs.toronto.edu/~kriz/",),
        files=(RemoteFile("cifar-10-binary.tar.gz", sha256="c4a38c50a1bc5f3a1c5537f2155ab9d68f9f25eb1ed8d9ddda3db29a59bca1dd", size=170052171),),
        splits={"train": _cifar10_batches(f"data_batch_{i}" for i in range(1, 6)),
                "test": _cifar10_batches(["test_batch"])},
        reader=partial(read_cifar_split, label_bytes=1, label_at=0), mean="train"),
    "cifar100": NamedDataset(       # the fine labels (100 classes); coarse: the 20 superclasses
        "cifar100",
        mirrors=("https://www.cs.toronto.edu/~kriz/",),
        files=(RemoteFile("cifar-100-binary.tar.gz", sha256="58a81ae192c23a4be8b1804d68e518ed807d710a4eb253b1f2a199162a40d8ec", size=168513733),),
        splits={"train": ("cifar-100-binary/train.bin",), "test": ("cifar-100-binary/test.bin",)},
        reader=partial(read_cifar_split, label_bytes=2, label_at=1), mean="train"),
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
    """Download every file of dataset `name` that is missing, verifying its checksum (and size);
    each file is written to a temporary file and renamed only when complete and verified."""
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
                _download(base + f.name, dest, f, progress)
                break
            except DataError as e:
                errors.append(str(e))
        else:
            raise DataError(f"could not download {f.name}:\n  " + "\n  ".join(errors))
    return folder


def _download(url, dest, remote, progress=None):
    """`url` to `dest` through files.write_files: renamed into place only when complete and its
    checksum (RemoteFile: SHA-256, else MD5) and size verified (each MPI rank that fetches at once
    writes its own temporary file; the last rename wins)."""
    from tqdm import tqdm
    kind, expected = ("SHA-256", remote.sha256) if remote.sha256 else ("MD5", remote.md5)

    def fill(out):
        h = hashlib.sha256() if remote.sha256 else hashlib.md5()
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
                        if remote.size and out.tell() > remote.size:     # a mirror cannot fill the disk
                            raise DataError(f"{url}: more than the {remote.size} bytes expected")
                if total is not None and out.tell() != total:
                    raise DataError(f"{url}: connection closed after {out.tell()} of {total} bytes")
                if remote.size and out.tell() != remote.size:
                    raise DataError(f"{url}: {out.tell()} bytes, expected {remote.size}")
        except (urllib.error.URLError, OSError, ValueError) as e:
            reason = getattr(e, "reason", e)
            raise DataError(f"{url}: {reason}") from None
        if h.hexdigest() != expected:
            raise DataError(f"{url}: checksum mismatch ({kind} {h.hexdigest()}, expected {expected})")

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
    """`name:split`, e.g. mnist:train, cifar10:test."""
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
    return ds.reader(folder, ds, split)
