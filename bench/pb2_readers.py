"""Would netcli's own readers be faster through protobuf (netcli.caffe.proto.caffe_pb2)?

    python bench/pb2_readers.py [--repeat 5]

Times, best of --repeat, on the same files: (1) a prototxt net: netcli/config/prototxt.py's
reader (a tree with file:line locations, what the compile stage needs) against
google.protobuf.text_format.Merge into caffe_pb2.NetParameter (no locations; a tree would still
have to be built from it); (2) a caffemodel: netcli/caffe/caffemodel.py's caffemodel_arrays
against NetParameter.ParseFromString plus one float32 array per blob. Prints seconds and the
ratio netcli / protobuf (> 1: protobuf is faster). Needs pip install 'netcli[caffe]'.
"""
from __future__ import annotations

import argparse
import os
import re
import sys
import tempfile
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from netcli.caffe import caffemodel, wire  # noqa: E402
from netcli.config.prototxt import load_prototxt  # noqa: E402

GOOGLENET = "tests/data/caffe/models/bvlc_googlenet/train_val.prototxt"


def best(fn, repeat):
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def big_prototxt(folder, copies):
    """GoogLeNet's train_val.prototxt with its layers repeated `copies` times (names made unique)."""
    text = open(GOOGLENET).read()
    head, _, rest = text.partition("layer {")
    body = "layer {" + rest
    parts = [re.sub(r'\b(name|top|bottom): "', rf'\1: "c{i}_', body) if i else body for i in range(copies)]
    path = os.path.join(folder, "big.prototxt")
    with open(path, "w") as f:
        f.write(head + "\n".join(parts))
    return path


def big_caffemodel(folder, layers, size):
    """`layers` InnerProduct-like layers of `size` floats each (packed, as Caffe writes them)."""
    rng = np.random.default_rng(0)
    out = [wire.put_string(caffemodel.NET_NAME, "bench")]
    for i in range(layers):
        a = rng.standard_normal(size).astype(np.float32).reshape(-1, 1000)
        body = (wire.put_string(caffemodel.LAYER["name"], f"ip{i}") + wire.put_string(caffemodel.LAYER["type"], "InnerProduct")
                + wire.put_bytes(caffemodel.LAYER["blobs"], caffemodel.blob_bytes(a)))
        out.append(wire.put_bytes(caffemodel.NET_LAYER, body))
    path = os.path.join(folder, "big.caffemodel")
    with open(path, "wb") as f:
        f.write(b"".join(out))
    return path


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    from google.protobuf import text_format
    from google.protobuf.internal import api_implementation
    from netcli.caffe.proto import caffe_pb2
    print(f"protobuf backend: {api_implementation.Type()}")
    with tempfile.TemporaryDirectory() as d:
        for path in (GOOGLENET, big_prototxt(d, 10)):
            text = open(path).read()
            ours = best(lambda: load_prototxt(path, text), args.repeat)
            theirs = best(lambda: text_format.Merge(text, caffe_pb2.NetParameter()), args.repeat)
            print(f"prototxt {os.path.basename(path)} ({len(text) / 1e3:.0f} kB): netcli {ours * 1e3:.1f} ms, "
                  f"text_format {theirs * 1e3:.1f} ms, netcli/protobuf {ours / theirs:.2f}")
        path = big_caffemodel(d, 20, 1_000_000)
        raw = open(path, "rb").read()

        def with_pb2():
            m = caffe_pb2.NetParameter()
            with open(path, "rb") as f:          # netcli's reader reads the file too
                m.ParseFromString(f.read())
            return {f"{l.name}/{i}": np.asarray(b.data, np.float32).reshape(tuple(b.shape.dim))
                    for l in m.layer for i, b in enumerate(l.blobs)}

        ours = best(lambda: caffemodel.caffemodel_arrays(path), args.repeat)
        theirs = best(with_pb2, args.repeat)
        print(f"caffemodel ({len(raw) / 1e6:.0f} MB, 20 blobs): netcli {ours * 1e3:.1f} ms, "
              f"protobuf {theirs * 1e3:.1f} ms, netcli/protobuf {ours / theirs:.2f}")


if __name__ == "__main__":
    main()
