"""Seeded fuzz cases for the untrusted inputs other than YAML configs and data sets
(tests/mutations.py has those): prototxt text, caffemodel and binaryproto bytes, images given to
`predict`, and run logs given to `netcli log` and `netcli plot`. A case is a pure function of its
seed; `case(target, seed, folder)` writes it and returns the call to make, run_case() makes it
through the CLI in this process (--debug, so an internal error surfaces as its exception) and
mutations.outcome() classifies it. bench/fuzz.py runs thousands, with a hang timeout."""
from __future__ import annotations

import glob
import io
import json
import math
import os
import random
import struct

import numpy as np

from mutations import ROOT, _flip

TARGETS = ("prototxt", "caffemodel", "binaryproto", "image", "runlog")
PROTOTXTS = sorted(p for p in glob.glob(os.path.join(ROOT, "tests", "data", "caffe", "examples", "*", "*.prototxt"))
                   if "solver" not in os.path.basename(p) and os.path.getsize(p) < 20_000)
DEPLOY_PROTOTXTS = [p for p in PROTOTXTS if os.path.basename(p) in ("lenet.prototxt", "cifar10_quick.prototxt",
                                                                       "cifar10_full.prototxt", "conv.prototxt")]
DEPLOY = os.path.join(ROOT, "configs", "lenet_deploy.yaml")


# -- prototxt text ----------------------------------------------------------------------------
PROTOTXT_SNIPPETS = [
    b"1" * 5000 + b"x", b"9" * 4400, b"0x" + b"f" * 400, b"-" * 300 + b"1", b"1e99999", b"nan", b"-inf",
    b"{" * 3000, b"}" * 50, b"layer {" * 2000, b'"' + b"\\" * 999, b'"\\x"', b'"\\777"', b'"\xff\xfe"',
    b"\x00", b"\xef\xbb\xbf", b"# " + b"#" * 5000, b"\n" * 20000, b"\t\r\x0b\x0c", b":" * 100, b"<" * 10,
    b"name: " + b"a" * 100000, b"top: \"\x1b]0;pwn\x07\"", b"bottom: \"data\"", b"type: \"Python\"",
    b"python_param { module: \"os\" layer: \"system\" }", b"input_dim: 2147483648", b"num_output: -1",
    b"kernel_size: 0", b"pad: 99999999999999999999", b"stride: 1.5", b"engine: CAFFE", b"phase: TSET",
    b"include { phase: TRAIN }", b"exclude { stage: \"x\" }", b"shuffle: 0x7fffffffffffffffffffff",
    b"mirror: 100", b"blobs_lr: 1 blobs_lr: 2 blobs_lr: 3", b"layers { type: CONVOLUTION }",
]


PROTOTXT_VALUES = [b"1" * 5000 + b"x", b"9" * 4400, b"0x" + b"f" * 400, b"-0x8000000000000000", b"1e99999", b"nan",
                   b"-inf", b"0", b"-1", b"2147483648", b"18446744073709551616", b"1.5", b"true", b"false", b"0x1",
                   b"CAFFE", b"TSET", b'"a"', b'"\x1b]0;pwn\x07"', b'"' + b"n" * 100000 + b'"', b'"\\777"',
                   b"{ }", b"[1, 2]", b"'x'", b'"data"', b'"Python"', b"MAX", b"AVE", b"1e-45"]


def _prototxt_case(rnd, folder):
    text = open(rnd.choice(DEPLOY_PROTOTXTS if rnd.random() < 0.6 else PROTOTXTS), "rb").read()
    for _ in range(rnd.choice([1, 1, 2, 3])):
        what = rnd.choice([0, 1, 2, 3, 3, 3, 3, 4, 5, 6])
        lines = text.split(b"\n")
        i = rnd.randrange(len(lines))
        if what == 0:
            lines.insert(i, rnd.choice(PROTOTXT_SNIPPETS))
        elif what == 1 and len(lines) > 1:
            del lines[i]
        elif what == 2:
            lines.insert(i, lines[rnd.randrange(len(lines))])
        elif what == 3:                                   # a value changed in place
            valued = [k for k, line in enumerate(lines) if b":" in line] or [i]
            i = rnd.choice(valued)
            head, _, value = lines[i].partition(b":")
            lines[i] = head + b": " + rnd.choice(PROTOTXT_VALUES + [value.strip()[::-1], value.strip() * 3, b""])
        elif what == 4:
            text = _flip(text, rnd)
            continue
        elif what == 5:
            text = text[:rnd.randrange(len(text) + 1)]
            continue
        else:
            lines[i] = lines[i].replace(b"{", b"") if rnd.random() < 0.5 else lines[i].replace(b":", b"")
        text = b"\n".join(lines)
    path = os.path.join(folder, rnd.choice(["net.prototxt", "net.pt", "net"]))
    open(path, "wb").write(text)
    return ["check", "--model", path]


# -- caffemodel and binaryproto bytes ---------------------------------------------------------
def _varint(v):
    v &= (1 << 64) - 1 if v < 0 else (1 << 70) - 1
    out = bytearray()
    while True:
        b = v & 0x7F
        v >>= 7
        out.append(b | (0x80 if v else 0))
        if not v:
            return bytes(out)


def _field(number, wt, payload):
    key = _varint(number << 3 | wt)
    if wt == 2:
        return key + _varint(len(payload)) + payload
    return key + payload


def _blob(rnd, shape, legacy=False):
    """A BlobProto: shape (field 7, BlobShape dim 1 packed) or legacy num/channels/height/width
    (fields 1-4), then data (5, packed floats) or double_data (8)."""
    out = b""
    if legacy:
        for number, d in zip((1, 2, 3, 4), ([1] * 4 + list(shape))[-4:]):      # Caffe's (1, 1, 1, N) bias
            out += _field(number, 0, _varint(d))
    else:
        out += _field(7, 2, _field(1, 2, b"".join(_varint(d) for d in shape)))
    n = math.prod(d for d in shape if 0 <= d < 10 ** 6)     # Python ints: no int64 wrap to negative
    n = min(n, 500_000)
    values = np.random.default_rng(rnd.randrange(2 ** 32)).standard_normal(n).astype("<f4")
    if rnd.random() < 0.1:
        out += _field(8, 2, values.astype("<f8").tobytes())
    elif rnd.random() < 0.1 and n <= 25000:           # unpacked floats: five bytes per value
        out += b"".join(_field(5, 5, struct.pack("<f", v)) for v in values)
    else:
        out += _field(5, 2, values.tobytes())
    return out


WEIRD_DIMS = [0, 1, 2, 3, 5, 20, 500, 2 ** 31, 2 ** 40, 2 ** 62, 2 ** 63 + 5, -1, -(2 ** 40)]
LENET_BLOBS = [("conv1", [(20, 1, 5, 5), (20,)]), ("conv2", [(50, 20, 5, 5), (50,)]),
               ("ip1", [(500, 800), (500,)]), ("ip2", [(10, 500), (10,)])]


def _weird_shape(rnd, shape):
    what = rnd.randrange(6)
    if what == 0:
        return tuple(rnd.choice(WEIRD_DIMS) for _ in range(rnd.choice([0, 1, 4, 8, 65, 200])))
    if what == 1:
        return (0, 2 ** 62)
    shape = list(shape)
    shape[rnd.randrange(len(shape))] = rnd.choice(WEIRD_DIMS)
    return tuple(shape)


def _caffemodel_bytes(rnd):
    """LeNet's layers (LayerParameter: name 1, type 2, blobs 7) under NetParameter field 100 (or
    V1 field 2), some blobs with odd shapes, then byte-level damage."""
    out = _field(1, 2, b"LeNet")
    for name, shapes in LENET_BLOBS:
        body = _field(1, 2, name.encode()) + _field(2, 2, b"Convolution" if "conv" in name else b"InnerProduct")
        for shape in shapes:
            if rnd.random() < 0.05:
                shape = _weird_shape(rnd, shape)
            if rnd.random() < 0.3 and max(shape, default=0) < 5000:
                blob = _blob(rnd, shape, legacy=rnd.random() < 0.5)
            else:
                blob = _blob(rnd, shape[:1] if rnd.random() < 0.05 else shape)
            body += _field(7, 2, blob)
        out += _field(100 if rnd.random() < 0.9 else 2, 2, body)
    return _damage(out, rnd) if rnd.random() < 0.6 else out


def _damage(raw, rnd):
    what = rnd.randrange(8)
    if what == 0:
        return _flip(raw, rnd)
    if what == 1:
        return raw[:rnd.randrange(len(raw) + 1)]
    if what == 2:                                     # a length prefix that lies
        i = rnd.randrange(len(raw))
        return raw[:i] + _varint(rnd.choice([2 ** 31, 2 ** 63 - 1, 2 ** 64 - 1, 10 ** 6])) + raw[i:]
    if what == 3:                                     # a deep nest of length-delimited fields
        inner = b""
        for _ in range(rnd.choice([100, 5000])):
            inner = _field(7, 2, inner)
        return raw + _field(100, 2, inner)
    if what == 4:
        return raw + bytes(rnd.randrange(256) for _ in range(rnd.randrange(1, 64)))
    if what == 5:
        return raw + _field(rnd.choice([1, 3, 7, 100, 536870911]), rnd.choice([0, 1, 2, 3, 4, 5, 6, 7]), b"\x80" * 12)
    return raw


def _caffemodel_case(rnd, folder):
    path = os.path.join(folder, "w.caffemodel")
    open(path, "wb").write(_caffemodel_bytes(rnd))
    if rnd.random() < 0.7:
        return ["predict", "--model", DEPLOY, "--weights", path, _sample(folder)]
    return ["convert", path, "-o", os.path.join(folder, "w.npz"), "--model", DEPLOY]


def _sample(folder):
    path = os.path.join(folder, "x.npz")
    np.savez(path, data=np.zeros((1, 1, 28, 28), np.float32))
    return path


def _binaryproto_case(rnd, folder):
    shape = rnd.choice([(1, 1, 28, 28), (1, 1, 28, 28), (1, 3, 28, 28), (1, 1, 4, 4), (28, 28), (1, 1, 28, 28, 1)])
    if rnd.random() < 0.3:
        shape = _weird_shape(rnd, shape)
    raw = _blob(rnd, shape, legacy=rnd.random() < 0.4)
    raw = _damage(raw, rnd) if rnd.random() < 0.7 else raw
    path = os.path.join(folder, "mean.binaryproto")
    open(path, "wb").write(raw)
    image = os.path.join(folder, "img.png")
    from PIL import Image
    Image.fromarray(np.full((28, 28), 200, np.uint8)).save(image)
    return ["predict", "--model", DEPLOY, "--weights", _weights(folder), "--mean-file", path, image]


def _weights(folder):
    """Random LeNet deploy weights (the net's own fillers), written once per folder."""
    path = os.path.join(folder, "lenet.weights.npz")
    if not os.path.exists(path):
        import netcli
        netcli.Net(DEPLOY, seed=0).save(path)
    return path


# -- images given to predict ------------------------------------------------------------------
IMAGE_FORMATS = [("PNG", ".png"), ("JPEG", ".jpg"), ("BMP", ".bmp"), ("GIF", ".gif"), ("PPM", ".pgm"),
                 ("TIFF", ".tif"), ("WEBP", ".webp")]
ODD_CONTENT = [b"", b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 10 10\nshowpage\n", b"GIF89a", b"\x89PNG\r\n\x1a\n",
               b"BM" + b"\xff" * 60, b"P5\n99999 99999\n255\n", b"P6 1 1 65535\n\x00", b"II*\x00" + b"\xff" * 40,
               b"<svg xmlns='http://www.w3.org/2000/svg'/>", b"\xff\xd8\xff\xdb" + b"\x00" * 30]


def _image_bytes(rnd):
    from PIL import Image
    fmt, ext = rnd.choice(IMAGE_FORMATS)
    mode = rnd.choice(["L", "RGB", "RGBA", "P", "1", "I;16", "I", "F", "CMYK", "LA"])
    size = (rnd.choice([1, 3, 28, 57]), rnd.choice([1, 28, 40]))
    rng = np.random.default_rng(rnd.randrange(2 ** 32))
    im = Image.fromarray(rng.integers(0, 255, (size[1], size[0], 3), dtype=np.uint8))
    try:
        im = im.convert(mode)
        buf = io.BytesIO()
        im.save(buf, fmt)
    except (OSError, ValueError, KeyError):
        buf = io.BytesIO()
        im.convert("L").save(buf, fmt)
    raw = buf.getvalue()
    what = rnd.randrange(7)
    if what == 0:
        raw = _flip(raw, rnd)
    elif what == 1:
        raw = raw[:rnd.randrange(len(raw) + 1)]
    elif what == 2 and fmt == "PNG":                  # IHDR width/height: a bomb, zero or negative
        w, h = rnd.choice([(2 ** 31 - 1, 1), (100000, 100000), (0, 5), (1, 2 ** 31 - 1), (70000, 70000)])
        raw = raw[:16] + struct.pack(">II", w, h) + raw[24:]
    elif what == 3:
        raw = rnd.choice(ODD_CONTENT)
    elif what == 4 and fmt == "BMP":
        raw = raw[:18] + struct.pack("<ii", rnd.choice([2 ** 31 - 1, -5, 0, 50000]), rnd.choice([-(2 ** 31), 1, 50000])) + raw[26:]
    if rnd.random() < 0.15:
        ext = rnd.choice([e for _, e in IMAGE_FORMATS] + [".txt", ".npz", ""])
    return raw, ext


def _image(rnd, folder, name="img"):
    raw, ext = _image_bytes(rnd)
    path = os.path.join(folder, name + ext)
    open(path, "wb").write(raw)
    return path


def _image_case(rnd, folder):
    paths = [_image(rnd, folder, f"img{i}") for i in range(rnd.choice([1, 1, 2]))]
    inputs, args = ([folder] if rnd.random() < 0.3 else paths), []
    if rnd.random() < 0.3:
        args += ["--colors", rnd.choice(["RGB", "BGR"])]
    return ["predict", "--model", DEPLOY, "--weights", _weights(folder), *args, *inputs]


# -- run logs given to log and plot -----------------------------------------------------------
def _records(rnd):
    recs = [{"event": "start", "time": "2026-01-01T00:00:00.000+00:00", "net": "LeNet", "solver": "s.yaml",
             "iter": 0, "max_iter": 100}]
    for it in range(0, rnd.choice([0, 20, 100]), 10):
        recs.append({"event": "train", "time": "t", "seconds": it / 10, "iter": it, "epoch": it / 50, "lr": 0.01,
                     "loss": 2.3 / (1 + it), "outputs": {"loss": 2.3 / (1 + it)}})
        if it % 50 == 0:
            recs.append({"event": "test", "time": "t", "seconds": it / 10, "iter": it, "epoch": it / 50,
                         "lr": 0.01, "net": 0, "outputs": {"accuracy": 0.5, "loss": 1.0, "prob": [0.1, 0.9]}})
    recs.append({"event": "end", "time": "t", "seconds": 10.0, "iter": 100, "finished": True})
    return recs


ODD_VALUES = [None, True, "x", "", [], {}, [1, [2]], {"a": {"b": 1}}, 10 ** 400, -(10 ** 30), 1e308, "NaN",
              "inf", float("nan"), -1, 0, 2 ** 63, "1" * 5000, {"loss": None}, [None], "\x1b]0;t\x07"]
ODD_LINES = ["[" * 100000 + "]" * 100000, "{\"event\": \"train\", \"iter\": " + "9" * 5000 + "}",
             "{\"event\": \"train\"", "\"just a string\"", "null", "[1, 2]", "{}", "\ufeff{\"event\": \"start\"}",
             "{\"event\": \"train\", \"outputs\": " + "{\"a\": " * 5000 + "1" + "}" * 5000 + "}",
             "{\"event\": \"test\", \"outputs\": [1, 2]}", "{\"event\": 5}", "{\"event\": [\"train\"]}",
             "{\"event\": \"train\", \"iter\": 1e999}", "x" * 200000]


def _runlog_case(rnd, folder):
    recs = _records(rnd) * rnd.choice([1, 1, 2])
    lines = [json.dumps(r) for r in recs]
    for _ in range(rnd.choice([1, 1, 2, 4])):
        what = rnd.randrange(5)
        i = rnd.randrange(len(lines))
        if what == 0:
            lines.insert(i, rnd.choice(ODD_LINES))
        elif what == 1:                               # a field of a record: an odd value, or gone
            try:
                rec = json.loads(lines[i]) if len(lines[i]) < 10000 else None
            except ValueError:                        # a line broken by an earlier mutation
                rec = None
            if isinstance(rec, dict):
                key = rnd.choice(list(rec) + ["outputs", "loss", "iter", "net", "epoch", "seconds"])
                if rnd.random() < 0.3:
                    rec.pop(key, None)
                else:
                    rec[key] = rnd.choice(ODD_VALUES)
                lines[i] = json.dumps(rec, allow_nan=True)
        elif what == 2:
            lines[-1] = lines[-1][:rnd.randrange(len(lines[-1]) + 1)] + rnd.choice(["", "[" * 50000, "\xff"])
        elif what == 3:
            lines[i] = lines[i].replace("\"", "", 1)
        else:
            lines.append(rnd.choice(ODD_LINES))
    raw = "\n".join(lines).encode("utf-8", "surrogateescape")
    if rnd.random() < 0.05:
        raw = _flip(raw, rnd)
    path = os.path.join(folder, "run.log.jsonl")
    open(path, "wb").write(raw)
    if rnd.random() < 0.6:
        return ["log", path, "--csv"]
    return ["plot", path, "-o", os.path.join(folder, "curves.png"), "--x", rnd.choice(["iter", "epoch", "seconds"]),
            "--smooth", str(rnd.choice([1, 3]))]


CASES = {"prototxt": _prototxt_case, "caffemodel": _caffemodel_case, "binaryproto": _binaryproto_case,
         "image": _image_case, "runlog": _runlog_case}


def case(target, seed, folder):
    """Write the case of `target` for `seed` into `folder`; returns its netcli command line."""
    return CASES[target](random.Random(f"{target}:{seed}"), folder)


def run_case(argv):
    """The command in this process, as `netcli --debug ...` (an internal error is raised, not
    turned into a line); a clean exit (0, or 1/2 with its one line) returns."""
    from click.testing import CliRunner
    from netcli.cli import cli
    result = CliRunner().invoke(cli, ["--debug", *argv], obj={}, catch_exceptions=True)
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception.with_traceback(result.exc_info[2])
    if "a bug in netcli" in result.output:
        raise AssertionError(result.output.strip().splitlines()[-1])
