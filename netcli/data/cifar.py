"""CIFAR-10 and CIFAR-100 in their binary versions (cifar-10-binary.tar.gz, cifar-100-binary.tar.gz,
never the pickled Python ones: unpickling runs code), read straight from the archive as
downloaded: one pass through the gzip stream, members taken by their exact names (nothing is
extracted, no path from the archive is ever opened), each checked to be a regular file of a
whole number of records and at most `MAX_RECORDS` of them before it is read.

A record is the label byte(s) then 3,072 pixel bytes: 1,024 red, 1,024 green, 1,024 blue (a
32x32 image, channel-major). Images come as (N, 3, 32, 32) uint8 in that RGB order, which is
also what Caffe's convert_cifar_data writes into its LMDB (it copies the bytes)."""
from __future__ import annotations

import tarfile
import zlib

import numpy as np

from .sources import DataError, Dataset

PIXELS = 3 * 32 * 32
MAX_RECORDS = 60_000             # the largest member of either archive holds 50,000


def read_members(archive, names, record):
    """{name: bytes} of the archive's members `names`, each a whole number of `record`-byte records."""
    wanted, found = set(names), {}
    try:
        with tarfile.open(archive, "r|gz") as tar:
            for member in tar:
                if member.name not in wanted or member.name in found:
                    continue
                if not member.isfile():
                    raise DataError(f"{archive}: {member.name} is not a regular file in the archive")
                if member.size % record or not 0 < member.size <= MAX_RECORDS * record:
                    raise DataError(f"{archive}: {member.name} holds {member.size:,} bytes, not a whole number "
                                    f"(1..{MAX_RECORDS:,}) of {record}-byte records")
                raw = tar.extractfile(member).read(member.size)
                if len(raw) != member.size:
                    raise DataError(f"{archive}: {member.name} is truncated")
                found[member.name] = raw
                if len(found) == len(wanted):
                    break
    except (tarfile.TarError, EOFError, zlib.error, OSError) as e:
        raise DataError(f"{archive}: not a readable .tar.gz archive ({' '.join(str(e).split())[:120]}); "
                        "remove it and fetch again") from None
    missing = [n for n in names if n not in found]
    if missing:
        raise DataError(f"{archive}: no member {missing[0]} (not the binary CIFAR archive?)")
    return found


def load_split(archive, names, label_bytes, label_at, name):
    """A Dataset of the records in members `names` of `archive` (in that order); the label is
    byte `label_at` of each record's `label_bytes` (CIFAR-100: 0 coarse, 1 fine)."""
    record = label_bytes + PIXELS
    members = read_members(archive, names, record)
    data = np.concatenate([np.frombuffer(members[n], np.uint8).reshape(-1, record) for n in names])
    images = np.ascontiguousarray(data[:, label_bytes:]).reshape(-1, 3, 32, 32)
    return Dataset(images, data[:, label_at].astype(np.float32), name, "RGB")
