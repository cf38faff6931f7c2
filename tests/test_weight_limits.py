"""Weights files are checked against the net's own param shapes before anything is allocated or
inflated: a small file declaring a huge array costs no memory; bad caffemodel blobs are one line."""
import io
import os
import tracemalloc
import zipfile

import numpy as np
import pytest
from click.testing import CliRunner

import netcli
from netcli.caffe import wire
from netcli.caffe.caffemodel import BLOB_DATA, BLOB_SHAPE, LAYER, NET_LAYER
from netcli.cli import cli
from helpers import make_layer
from netcli.layers import LayerError

NET = """\
name: wide
layers:
  - {name: data, type: Input, top: data, input_param: {shape: {dim: [1, 1000]}}}
  - {name: ip, type: InnerProduct, bottom: data, top: ip, inner_product_param: {num_output: 1000, bias_term: false}}
"""
MB = 2 ** 20


@pytest.fixture
def net(tmp_path):
    (tmp_path / "net.yaml").write_text(NET)
    return netcli.Net(str(tmp_path / "net.yaml"))


def _peak(fn):
    """fn()'s peak of traced allocations above what was allocated before it, in bytes."""
    tracemalloc.start()
    try:
        base = tracemalloc.get_traced_memory()[0]
        try:
            fn()
        except netcli.NetcliError as e:
            _peak.error = str(e)
        return tracemalloc.get_traced_memory()[1] - base
    finally:
        tracemalloc.stop()


def _deflated_npz(path, members, nbytes):
    """An .npz whose members each declare (and hold, deflated) `nbytes` of zeros as float32."""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        for name in members:
            header = io.BytesIO()
            np.lib.format.write_array_header_1_0(header, {"descr": "<f4", "fortran_order": False,
                                                          "shape": (nbytes // 4,)})
            with z.open(name + ".npy", "w", force_zip64=True) as m:
                m.write(header.getvalue())
                chunk = bytes(4 * MB)
                for _ in range(nbytes // len(chunk)):
                    m.write(chunk)


def test_a_small_npz_declaring_a_huge_array_is_refused_without_inflating_it(net, tmp_path):
    path = tmp_path / "bomb.npz"
    _deflated_npz(path, ["ip/0", "junk"], 256 * MB)
    assert os.path.getsize(path) < 2 * MB
    peak = _peak(lambda: net.load(str(path)))
    assert peak < 16 * MB, peak / MB
    assert "ip/0: shape (67108864,) in the file, (1000, 1000) in the net" in _peak.error
    assert "junk" not in _peak.error          # a layer the net lacks: ignored, as Caffe does


def _caffemodel(dims, values=None, packed=False):
    """One layer 'ip' with one blob of shape `dims`; values written one fixed32 field each
    (as old Caffe files hold them) unless packed."""
    blob = wire.put_bytes(BLOB_SHAPE, wire.put_packed_varints(1, dims))
    if values is not None:
        if packed:
            blob += wire.put_packed_floats(BLOB_DATA, values)
        else:
            key = wire.key(BLOB_DATA, wire.FIXED32)
            rec = np.empty((len(values), 5), np.uint8)
            rec[:, 0] = key[0]
            rec[:, 1:] = np.asarray(values, "<f4").view(np.uint8).reshape(-1, 4)
            blob += rec.tobytes()
    layer = wire.put_string(LAYER["name"], "ip") + wire.put_string(LAYER["type"], "InnerProduct")
    layer += wire.put_bytes(LAYER["blobs"], blob)
    return wire.put_bytes(NET_LAYER, layer)


def test_unpacked_floats_load_without_an_object_per_value(net, tmp_path):
    w = np.random.default_rng(0).standard_normal(1000 * 1000).astype(np.float32)
    path = tmp_path / "w.caffemodel"
    path.write_bytes(_caffemodel([1000, 1000], w))
    assert os.path.getsize(path) > 5_000_000
    _peak.error = None
    peak = _peak(lambda: net.load(str(path)))
    assert _peak.error is None, _peak.error
    assert peak < 40 * MB, peak / MB            # file 5 MB, values 4 MB; an object per value: > 150 MB
    assert np.array_equal(net.params["ip"][0].data.reshape(-1), w)
    # and packed
    path.write_bytes(_caffemodel([1000, 1000], w, packed=True))
    net.params["ip"][0].data[...] = 0
    net.load(str(path))
    assert np.array_equal(net.params["ip"][0].data.reshape(-1), w)


@pytest.mark.parametrize("dims, message", [
    ([2 ** 31 - 1] * 3, "holds 0 values, not"),                 # a product over int64
    ([2 ** 40], "blob dimension over 2,147,483,647"),
    ([0, 2 ** 62], "blob dimension over 2,147,483,647"),        # zero values, a huge extent
    ([1] * 65, "blob with 65 dimensions (at most 32)"),
    ([-1, 4], "negative blob dimension"),
])
def test_bad_caffemodel_blobs_are_one_line(net, tmp_path, dims, message):
    path = tmp_path / "bad.caffemodel"
    path.write_bytes(_caffemodel(dims))
    with pytest.raises(netcli.NetcliError) as e:
        net.load(str(path))
    assert message in str(e.value) and len(str(e.value).splitlines()) == 1, str(e.value)
    np.savez(tmp_path / "x.npz", data=np.zeros((1, 1, 1, 1000), np.float32))
    r = CliRunner().invoke(cli, ["predict", "--model", str(tmp_path / "net.yaml"), "--weights", str(path),
                                 str(tmp_path / "x.npz")], obj={})
    assert r.exit_code == 1 and message in r.output and "internal error" not in r.output, r.output


def test_a_zero_count_blob_of_another_shape_is_a_mismatch_not_a_crash(net, tmp_path):
    path = tmp_path / "z.caffemodel"
    path.write_bytes(_caffemodel([0, 2 ** 31 - 1, 2 ** 31 - 1]))
    with pytest.raises(netcli.NetcliError, match=r"ip/0: shape \(0, 2147483647, 2147483647\) in the file"):
        net.load(str(path))


def test_infogain_reads_its_matrix_from_npz_and_checks_the_shape_first(tmp_path):
    rng = np.random.default_rng(1)
    s, lab, H = rng.standard_normal((5, 3)), rng.integers(0, 3, 5).astype(float), rng.random((3, 3))
    np.savez(tmp_path / "H.npz", H=H)
    np.save(tmp_path / "H.npy", H)
    out = []
    for name in ("H.npz", "H.npy"):
        layer, bottoms, tops = make_layer("InfogainLoss", {"infogain_loss_param": {"source": str(tmp_path / name)}},
                                          [s.shape, lab.shape], bottoms_data=[s, lab])
        layer.forward(bottoms, tops)
        out.append(float(tops[0].data))
    assert out[0] == out[1]
    np.savez(tmp_path / "bad.npz", H=np.zeros((4, 4)))
    with pytest.raises(LayerError, match=r"has shape \(4, 4\), expected \(3, 3\)"):
        make_layer("InfogainLoss", {"infogain_loss_param": {"source": str(tmp_path / "bad.npz")}},
                   [s.shape, lab.shape], bottoms_data=[s, lab])
    # a .npy declaring 2**40 values in a few bytes: refused, nothing allocated
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(header, {"descr": "<f8", "fortran_order": False, "shape": (2 ** 20, 2 ** 20)})
    (tmp_path / "huge.npy").write_bytes(header.getvalue() + bytes(64))
    with pytest.raises(LayerError, match="infogain"):
        make_layer("InfogainLoss", {"infogain_loss_param": {"source": str(tmp_path / "huge.npy")}},
                   [s.shape, lab.shape], bottoms_data=[s, lab])
