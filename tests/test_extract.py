"""`netcli extract-features` (Caffe's tools/extract_features, issue 24 item 7): the named blobs
over N batches into an .npz or LMDBs of Datums, compared with a forward pass of the same net."""
import os

import numpy as np
import pytest
from click.testing import CliRunner

import netcli
from netcli.caffe.datum import parse_datum
from netcli.cli import cli
from netcli.commands.extract import extract_features
from netcli.errors import NetcliError
from tinynet import make_tiny


def run(*args):
    return CliRunner().invoke(cli, list(args), obj={})


@pytest.fixture
def tiny(tmp_path):
    make_tiny(tmp_path)
    net = netcli.Net(str(tmp_path / "net.yaml"), phase="TEST")
    w = str(tmp_path / "w.weights.npz")
    net.save(w)
    return str(tmp_path / "net.yaml"), w


def forward(model, weights, blobs, batches):
    """The blobs of `batches` forward passes of a fresh net, concatenated."""
    net = netcli.Net(model, phase="TEST", weights=weights)
    out = {b: [] for b in blobs}
    for _ in range(batches):
        net.forward()
        for b in blobs:
            out[b].append(net.blobs[b].data.copy())
    return {b: np.concatenate(v) for b, v in out.items()}


def test_extract_to_npz_matches_a_forward_pass(tiny, tmp_path):
    model, w = tiny
    out = tmp_path / "feats.npz"
    r = run("extract-features", "--model", model, "--weights", w, "--blobs", "ip,conv", "--iterations", "2",
            "-o", str(out))
    assert r.exit_code == 0, r.output
    assert r.output.strip() == f"Wrote {out}: ip 64x2, conv 64x4x6x6"
    with np.load(out) as z:
        got = {k: z[k] for k in z.files}
    ref = forward(model, w, ["ip", "conv"], 2)
    assert sorted(got) == ["conv", "ip"]
    for b in ref:
        np.testing.assert_array_equal(got[b], ref[b])
    assert sorted(os.listdir(tmp_path)) == sorted(["feats.npz", "net.yaml", "solver.yaml", "test.npz", "train.npz", "w.weights.npz"])


def test_extract_whole_set_counts_each_sample_once(tiny, tmp_path):
    model, w = tiny
    got = extract_features(model, w, "ip", str(tmp_path / "f.npz"))        # 64 samples, batches of 32
    assert got["ip"].shape == (64, 2)


def test_extract_to_lmdb_writes_caffe_datums(tiny, tmp_path):
    lmdb = pytest.importorskip("lmdb")
    model, w = tiny
    a, b = str(tmp_path / "ip.lmdb"), str(tmp_path / "conv.lmdb")
    r = run("extract-features", "--model", model, "--weights", w, "--blobs", "ip,conv", "--iterations", "2",
            "-o", f"{a},{b}")
    assert r.exit_code == 0, r.output
    ref = forward(model, w, ["ip", "conv"], 2)
    for path, blob, shape in ((a, "ip", (2, 1, 1)), (b, "conv", (4, 6, 6))):
        env = lmdb.open(path, readonly=True, lock=False)
        with env.begin() as txn:
            records = list(txn.cursor())
        env.close()
        assert [k for k, _ in records] == [f"{i:010d}".encode() for i in range(64)]
        for i, (_, value) in enumerate(records):
            x, label = parse_datum(value)
            assert x.shape == shape and x.dtype == np.float32 and label == 0
            np.testing.assert_array_equal(x.reshape(-1), ref[blob][i].reshape(-1))
    r = run("extract-features", "--model", model, "--weights", w, "--blobs", "ip", "--iterations", "1", "-o", a)
    assert r.exit_code == 1 and "already exists" in r.output          # never written over
    r = run("extract-features", "--model", model, "--weights", w, "--blobs", "ip,conv", "-o", str(tmp_path / "x.lmdb"))
    assert r.exit_code == 1 and "2 blobs need 2 LMDB outputs" in r.output
    assert not [n for n in os.listdir(tmp_path) if n.endswith(".tmp")]


def test_unknown_blob_is_one_line_listing_the_blobs(tiny, tmp_path):
    model, w = tiny
    r = run("extract-features", "--model", model, "--weights", w, "--blobs", "ip,fc7", "-o", str(tmp_path / "f.npz"))
    assert r.exit_code == 1
    lines = r.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("netcli: error: fc7: not a blob of net 'tiny' (TEST); its blobs: ")
    assert "conv, pool, ip" in lines[0]
    assert not os.path.exists(tmp_path / "f.npz")
    with pytest.raises(NetcliError, match="the output is an .npz file, or LMDB folders"):
        extract_features(model, w, "ip", str(tmp_path / "f.txt"))


def test_npz_output_does_not_follow_a_planted_temporary_symlink(tiny, tmp_path):
    """The temporary file is created with O_EXCL | O_NOFOLLOW: a link at a guessable name is not
    written through, and the target file is left as it was."""
    model, w = tiny
    victim = tmp_path / "victim"
    victim.write_text("keep")
    for i in range(3):
        os.symlink(victim, tmp_path / f".f.npz.{os.getpid()}.{i}.tmp")
    extract_features(model, w, "ip", str(tmp_path / "f.npz"), iterations=1)
    assert victim.read_text() == "keep" and np.load(tmp_path / "f.npz")["ip"].shape == (32, 2)
