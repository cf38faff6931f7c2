"""Caffe's key-value databases (LMDB, LevelDB) record by record: `records` reads (key, value)
pairs in key order without holding more than one; `write_db` builds a new database atomically
(netcli/io/files.write_folder) from an iterator of pairs, in transactions of bounded size.
LMDB needs the lmdb package ([lmdb] extra), LevelDB plyvel ([leveldb])."""
from __future__ import annotations

import os

from .sources import DataError

BACKENDS = ("lmdb", "leveldb")
BATCH_RECORDS = 1000              # Caffe commits every 1,000 records
BATCH_BYTES = 64 << 20            # ... and netcli also at 64 MB, so big images keep memory bounded
MAP_START = 64 << 20              # LMDB's first map size; doubled whenever it fills


def backend_of(path):
    """'lmdb' or 'leveldb' for a database folder (data.mdb / CURRENT in it), else None."""
    if os.path.isfile(os.path.join(path, "data.mdb")):
        return "lmdb"
    if os.path.isfile(os.path.join(path, "CURRENT")):
        return "leveldb"
    return None


def _lmdb():
    try:
        import lmdb
    except ImportError:
        raise DataError("LMDB databases need the lmdb package: pip install 'netcli[lmdb]'") from None
    return lmdb


def _plyvel():
    try:
        import plyvel
    except ImportError:
        raise DataError("LevelDB databases need the plyvel package: pip install 'netcli[leveldb]'") from None
    return plyvel


def records(path, backend=None):
    """A generator: first the number of records, then each (key, value) as bytes, in key order."""
    backend = backend or backend_of(path)
    if backend == "lmdb":
        lmdb = _lmdb()
        try:
            env = lmdb.open(path, readonly=True, lock=False, readahead=False, subdir=True)
        except lmdb.Error as e:
            raise DataError(f"{path}: cannot open the LMDB database: {e}") from None
        try:
            with env.begin(buffers=False) as txn:
                yield txn.stat()["entries"]
                for key, value in txn.cursor():
                    yield key, value
        finally:
            env.close()
    elif backend == "leveldb":
        plyvel = _plyvel()
        try:
            db = plyvel.DB(path, create_if_missing=False)
        except plyvel.Error as e:
            raise DataError(f"{path}: cannot open the LevelDB database: {' '.join(str(e).split())[:160]}") from None
        try:
            yield sum(1 for _ in db.iterator(include_value=False))
            yield from db.iterator()
        finally:
            db.close()
    else:
        raise DataError(f"{path}: not an LMDB or LevelDB database (no data.mdb or CURRENT in the folder)")


def _batches(items):
    batch, size = [], 0
    for key, value in items:
        batch.append((key, value))
        size += len(key) + len(value)
        if len(batch) >= BATCH_RECORDS or size >= BATCH_BYTES:
            yield batch
            batch, size = [], 0
    if batch:
        yield batch


def _fill_lmdb(folder, items):
    lmdb = _lmdb()
    size = MAP_START
    env = lmdb.open(folder, map_size=size, subdir=True, meminit=False)
    try:
        for batch in _batches(items):
            while True:
                try:
                    with env.begin(write=True) as txn:
                        for key, value in batch:
                            txn.put(key, value)
                    break
                except lmdb.MapFullError:          # aborted: grow the map, write the batch again
                    size *= 2
                    env.set_mapsize(size)
        env.sync(True)
    finally:
        env.close()


def _fill_leveldb(folder, items):
    plyvel = _plyvel()
    db = plyvel.DB(folder, create_if_missing=True, error_if_exists=False, write_buffer_size=256 << 20)
    try:
        for batch in _batches(items):
            with db.write_batch(sync=False) as wb:
                for key, value in batch:
                    wb.put(key, value)
    finally:
        db.close()


def write_db(path, backend, items, overwrite=False):
    """A new `backend` database at `path` holding the (key, value) pairs of `items`, built in a
    temporary folder next to it and renamed when complete. An existing database of that backend
    is replaced only with `overwrite`; any other thing at `path` is refused."""
    if backend not in BACKENDS:
        raise DataError(f"unknown backend '{backend}' (lmdb or leveldb)")
    (_lmdb if backend == "lmdb" else _plyvel)()          # the missing package: one line, nothing made
    fill = _fill_lmdb if backend == "lmdb" else _fill_leveldb

    def replaceable(p):
        if not overwrite:
            return False
        if os.path.isdir(p) and not os.path.islink(p) and backend_of(p) == backend:
            return True
        raise DataError(f"{p} exists and is not an {backend.upper()} database: not replacing it")

    def build(tmp):
        try:
            fill(tmp, items)
        except OSError:
            raise
        except Exception as e:
            if type(e).__module__.split(".")[0] in ("lmdb", "plyvel"):
                raise DataError(f"{path}: cannot write the {backend.upper()} database: "
                                f"{' '.join(str(e).split())[:160]}") from None
            raise

    from ..io.files import write_folder
    write_folder(path, build, replaceable, f"{backend.upper()} database",
                 "give another name, or --overwrite to replace the database")
