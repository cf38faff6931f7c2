"""Seeded mutations of the shipped configs and of data files, and the one question asked of each
mutant: does netcli end in a clean user error (NetcliError) or succeed? Used by
tests/test_fuzz.py (hypothesis, a few hundred cases) and bench/fuzz.py (thousands, in worker
processes with a hang timeout). A case is a pure function of its seed, so any finding replays."""
from __future__ import annotations

import copy
import glob
import gzip
import io
import os
import random
import struct
import zipfile

import numpy as np
import yaml

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# The shipped configs, but for the long benchmark nets (resnet56_cifar, resnet50: the layers of the
# shorter resnet20_cifar repeated, at several times the build cost per case).
CONFIGS = sorted(p for p in glob.glob(os.path.join(ROOT, "configs", "*.yaml")) if os.path.getsize(p) < 20_000)

WEIRD_NUMBERS = [0, -1, -7, 1, 2 ** 31, 2 ** 63, 10 ** 400, 1e21, -1e21, 1e-45, 0.5, -0.5,
                 float("nan"), float("inf"), float("-inf"), 3.7, 65536, 100000]
WEIRD_VALUES = [None, True, False, "", "abc", "mnist:nope", [], {}, [1, 2], {"a": 1}, "../x",
                "-1", "1e-4", "1e400", "TRAIN", "xavier", "data", "label"]
KEY_TYPOS = ["nmae", "tpye", "bottm", "top ", "num_ouput", "kernal_size", "lr_mutl", "batchsize",
             "base_Lr", "stride_h", "convolution_param", "data_param", "include", "phase"]
YAML_TRICKS = [
    b"layers: &l [*l]\n",
    b"a: " + b"[" * 1000 + b"]" * 1000 + b"\n",
    b"a: &a [x,x,x,x,x,x,x,x,x]\nb: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]\nc: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]\n"
    b"d: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]\ne: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]\nf: [*e,*e,*e,*e,*e,*e,*e,*e,*e]\n",
    b"base_lr: !!float abc\n", b"snapshot_after_train: !!bool maybe\n", b"<<: 5\n", b"~\n", b"",
    b"x: !!python/object/apply:os.system [true]\n", b"x: !!binary aGk=\n", b"--- 1\n--- 2\n",
    b"name: caf\xe9\n", b"\xff\xfe\x00", b"a: 2001-02-30\n", b"[1, 2, 3]\n", b"? [a, b]\n: 1\n",
    b"layers:\n  - &x {name: a, type: ReLU, bottom: a, top: a}\n  - *x\n",
]


# -- configs ----------------------------------------------------------------------------------
def _paths(tree, prefix=()):
    """Every (container, key) path in a parsed YAML tree (down to 30 levels: trees from YAML
    tricks can be deep or contain themselves)."""
    out = []
    if len(prefix) > 30:
        return out
    if isinstance(tree, dict):
        for k, v in tree.items():
            out.append(prefix + (k,))
            out += _paths(v, prefix + (k,))
    elif isinstance(tree, list):
        for i, v in enumerate(tree):
            out.append(prefix + (i,))
            out += _paths(v, prefix + (i,))
    return out


def _get(tree, path):
    for p in path:
        tree = tree[p]
    return tree


def mutate_tree(tree, rnd: random.Random):
    """One structural mutation: delete, rename, retype, a weird number, a graph change."""
    paths = _paths(tree)
    if not paths:
        return tree
    path = rnd.choice(paths)
    parent, key = _get(tree, path[:-1]), path[-1]
    what = rnd.randrange(9)
    if what == 0:
        del parent[key]
    elif what == 1 and isinstance(parent, dict):
        parent[rnd.choice(KEY_TYPOS + [key + "s", key.upper()])] = parent.pop(key)
    elif what in (2, 3):
        parent[key] = rnd.choice(WEIRD_NUMBERS)
    elif what == 4:
        parent[key] = copy.deepcopy(rnd.choice(WEIRD_VALUES))
    elif what == 5 and isinstance(tree.get("layers"), list) and tree["layers"]:
        layers = tree["layers"]                       # move a layer: out of order, maybe a cycle
        layers.insert(rnd.randrange(len(layers) + 1), layers.pop(rnd.randrange(len(layers))))
    elif what == 6 and isinstance(tree.get("layers"), list) and tree["layers"]:
        layer = rnd.choice(tree["layers"])            # rewire: a bottom from anywhere
        tops = [t for l in tree["layers"] if isinstance(l, dict) for t in _as_list(l.get("top"))]
        if isinstance(layer, dict) and tops:
            layer["bottom"] = rnd.choice(tops) if rnd.random() < 0.7 else [rnd.choice(tops), "nowhere"]
    elif what == 7 and isinstance(tree.get("layers"), list) and tree["layers"]:
        layers = tree["layers"]                       # duplicate or drop a whole param block / layer
        i = rnd.randrange(len(layers))
        if isinstance(layers[i], dict):
            blocks = [k for k in layers[i] if k.endswith("_param")]
            if blocks and rnd.random() < 0.6:
                del layers[i][rnd.choice(blocks)]
            else:
                layers.insert(i, copy.deepcopy(layers[i]))
    else:
        v = parent[key]
        if isinstance(v, (int, float)) and not isinstance(v, bool):
            parent[key] = rnd.choice([v * 1000, -v, v + 1, 0, v / 3])
        elif isinstance(v, str):
            parent[key] = v[::-1] if rnd.random() < 0.5 else v + "x"
        else:
            parent[key] = None
    return tree


def _as_list(v):
    return v if isinstance(v, list) else [v]


def _dump(tree):
    return yaml.safe_dump(tree, sort_keys=False, allow_unicode=True).encode()


def mutate_text(text: bytes, rnd: random.Random):
    """One textual mutation: a byte, a line, a YAML trick."""
    what = rnd.randrange(6)
    lines = text.split(b"\n")
    if what == 0:
        i = rnd.randrange(len(text) + 1)
        return text[:i] + bytes([rnd.choice([0xE9, 0xFF, 0x00, 0x09, 0x7B, 0x5B, 0x3A, 0x26, 0x2A, 0x21])]) + text[i:]
    if what == 1 and len(lines) > 1:
        del lines[rnd.randrange(len(lines))]
        return b"\n".join(lines)
    if what == 2:
        i = rnd.randrange(len(lines))
        lines[i] = b"  " + lines[i]
        return b"\n".join(lines)
    if what == 3:
        return rnd.choice(YAML_TRICKS)
    if what == 4:
        return text + b"\n" + rnd.choice(YAML_TRICKS)
    return text[:rnd.randrange(len(text) + 1)]


def config_case(seed, folder):
    """Write a mutant of one shipped config into `folder` (the net beside a solver, as shipped);
    returns ("model" | "solver", path)."""
    rnd = random.Random(seed)
    src = rnd.choice(CONFIGS)
    text = open(src, "rb").read()
    tree = yaml.safe_load(text)
    kind = "solver" if isinstance(tree, dict) and "net" in tree else "model"
    if kind == "solver":                         # its net, unchanged, next to it
        net = os.path.join(os.path.dirname(src), tree["net"])
        with open(os.path.join(folder, os.path.basename(net)), "wb") as f:
            f.write(open(net, "rb").read())
    for _ in range(rnd.choice([1, 1, 1, 2, 3])):
        if rnd.random() < 0.8 and isinstance(tree, dict) and len(text) < 100_000 and text.count(b"[") < 200:
            tree = mutate_tree(tree, rnd)
            text = _dump(tree)
        else:
            text = mutate_text(text, rnd)
            try:
                tree = yaml.safe_load(text)
            except Exception:
                tree = None
    if kind == "solver" and isinstance(tree, dict) and rnd.random() < 0.5:
        tree["snapshot_prefix"] = os.path.join(folder, "snap")
        text = _dump(tree)
    path = os.path.join(folder, "mutant_" + os.path.basename(src))
    with open(path, "wb") as f:
        f.write(text)
    return kind, path


# -- data files -------------------------------------------------------------------------------
def _idx(arr, code=0x08):
    head = bytes([0, 0, code, arr.ndim]) + b"".join(struct.pack(">i", d) for d in arr.shape)
    return head + arr.astype({0x08: ">u1", 0x0D: ">f4"}[code]).tobytes()


def _npz(**arrays):
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    return buf.getvalue()


def _flip(raw: bytes, rnd, n=None):
    raw = bytearray(raw)
    for _ in range(n or rnd.randrange(1, 8)):
        if raw:
            i = rnd.randrange(len(raw))
            raw[i] ^= 1 << rnd.randrange(8)
    return bytes(raw)


def data_case(seed, folder):
    """Write a (possibly broken) dataset into `folder` and a net reading it; returns the net path."""
    rnd = random.Random(seed)
    rng = np.random.default_rng(seed)
    n = rnd.choice([1, 3, 16, 40])
    images = rng.integers(0, 255, (n, 1, 6, 6)).astype(np.uint8)
    labels = rng.integers(0, 3, n)
    kind = rnd.choice(["npz", "npz", "idx", "idxgz", "mean", "labels"])
    source, extra = "d.npz", ""
    if kind in ("npz", "mean", "labels"):
        arrays = {"data": images, "label": labels}
        if kind == "labels":
            arrays["label"] = rnd.choice([labels + 0.5, -labels - 1, labels * 10, labels.astype(str),
                                          np.full(n, np.nan), labels[:-1], labels.reshape(-1, 1)])
        elif rnd.random() < 0.3:
            arrays["data"] = rnd.choice([images[:, :, :0], images[0], images.astype(np.float64) * np.nan,
                                         images.astype(np.complex64), np.zeros((n, 1, 6, 6, 1), np.uint8),
                                         images.astype(object)])
        raw = _npz(**arrays)
        if kind == "mean":
            mean = rnd.choice([_npz(), _npz(m=np.zeros((1, 6, 6))), _npz(m=np.zeros((3, 2))),
                               b"", b"not numpy", _flip(_npz(m=np.zeros((1, 6, 6), np.float32)), rnd)])
            open(os.path.join(folder, "mean.npz"), "wb").write(mean)
            extra = ", mean_file: mean.npz"
        else:
            raw = rnd.choice([raw, _flip(raw, rnd), raw[:rnd.randrange(len(raw))], b"",
                              raw[:30] + raw[30:].replace(b"(6, 6)", b"(9999999, 99999)"), _npy(images),
                              _zip_named(b"data.npy", b"garbage"), _zip_bomb_header(rnd)])
        open(os.path.join(folder, "d.npz"), "wb").write(raw)
    else:
        dims_img, dims_lab = images[:, 0], labels
        img, lab = _idx(dims_img), _idx(dims_lab)
        choice = rnd.randrange(6)
        if choice == 0:
            img = img[:4] + struct.pack(">iii", rnd.choice([64, -1, 10 ** 9, 0]),
                                        rnd.choice([-28, 6, 0, 2 ** 31 - 1]), 6) + img[16:]
        elif choice == 1:
            img = _flip(img, rnd)
        elif choice == 2:
            lab = lab[:rnd.randrange(len(lab) + 1)]
        elif choice == 3:
            img = img[:rnd.randrange(len(img) + 1)]
        if kind == "idxgz":
            gz_img, gz_lab = gzip.compress(img), gzip.compress(lab)
            if rnd.random() < 0.5:
                gz_img = _flip(gz_img, rnd) if rnd.random() < 0.5 else gz_img[:len(gz_img) // 2]
            open(os.path.join(folder, "d-images-idx3-ubyte.gz"), "wb").write(gz_img)
            open(os.path.join(folder, "d-labels-idx1-ubyte.gz"), "wb").write(gz_lab)
        else:
            open(os.path.join(folder, "d-images-idx3-ubyte"), "wb").write(img)
            open(os.path.join(folder, "d-labels-idx1-ubyte"), "wb").write(lab)
        source = "d"
    net = f"""name: fuzz
layers:
  - {{name: data, type: Data, top: [data, label], transform_param: {{scale: 0.1{extra}}},
     data_param: {{source: {source}, batch_size: {rnd.choice([1, 4, 16])}}}}}
  - {{name: ip, type: InnerProduct, bottom: data, top: ip,
     inner_product_param: {{num_output: 3, weight_filler: {{type: xavier}}}}}}
  - {{name: acc, type: Accuracy, bottom: [ip, label], top: accuracy}}
  - {{name: loss, type: SoftmaxWithLoss, bottom: [ip, label], top: loss}}
"""
    path = os.path.join(folder, "net.yaml")
    open(path, "w").write(net)
    return path


def _npy(arr):
    buf = io.BytesIO()
    np.save(buf, arr)
    return buf.getvalue()


def _zip_named(name, payload):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr(name.decode(), payload)
    return buf.getvalue()


def _zip_bomb_header(rnd):
    """A valid .npz whose data header claims far more than the member holds."""
    arr = np.zeros((2, 1, 6, 6), np.uint8)
    raw = _npy(arr).replace(b"(2, 1, 6, 6)", b"(2000000000, 1, 6, 6)".ljust(len(b"(2, 1, 6, 6)"))[:12])
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("data.npy", raw)
        z.writestr("label.npy", _npy(np.zeros(2)))
    return buf.getvalue()


# -- running one case -------------------------------------------------------------------------
def run_config_case(kind, path):
    """What `netcli check` does with the file: build the nets (every phase), or the solver."""
    import netcli
    from netcli.commands import check as tools
    if kind == "solver":
        tools.check(solver=path)
    else:
        for phase in ("TRAIN", "TEST"):
            netcli.Net(path, phase=phase)


def run_data_case(path):
    """Build the net (reads and checks the data) and run two training passes over it."""
    import netcli
    net = netcli.Net(path, phase="TRAIN")
    for _ in range(2):
        net.clear_param_diffs()
        net.forward_backward()


def outcome(fn, *args):
    """"ok", "clean" (a NetcliError: one user-facing message) or "traceback: <type>: <msg>"."""
    from netcli.errors import NetcliError
    from netcli.layers.data import _CACHE
    _CACHE.clear()
    try:
        fn(*args)
        return "ok"
    except NetcliError as e:
        if not str(e).strip():
            return "traceback: empty NetcliError message"
        return "clean"
    except MemoryError:
        # the CLI's one line "out of memory (a smaller batch_size or net may fit)" (cli.Group): the
        # fuzz workers run under an address-space cap that nets within netcli's budget can exceed
        return "clean"
    except BaseException as e:   # noqa: BLE001 - what we are looking for
        import traceback
        where = traceback.extract_tb(e.__traceback__)[-1]
        return f"traceback: {type(e).__name__}: {str(e)[:200]} at {os.path.basename(where.filename)}:{where.lineno}"
