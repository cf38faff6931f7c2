"""Caffe's data layers against plain NumPy: ImageData (BGR, resized, list order), MemoryData
(batches in order, wrapping), DummyData (constant once, random every forward), LMDB Datum
records (raw and encoded)."""
import numpy as np
import pytest

from netcli import Net
from netcli.caffe.datum import datum_bytes, parse_datum
from netcli.errors import NetcliError


def _net(layer, tops):
    return {"name": "n", "layers": [layer, {"name": "s", "type": "Flatten", "bottom": tops[0], "top": "flat"}]}


def test_image_data_is_bgr_in_list_order(tmp_path):
    Image = pytest.importorskip("PIL.Image")
    rng = np.random.default_rng(0)
    pics = [rng.integers(0, 256, (6, 5, 3), dtype=np.uint8) for _ in range(3)]
    lines = []
    for i, a in enumerate(pics):
        Image.fromarray(a).save(tmp_path / f"p{i}.png")
        lines.append(f"p{i}.png {7 - i}")
    (tmp_path / "list.txt").write_text("\n".join(lines) + "\n")
    layer = {"name": "d", "type": "ImageData", "top": ["data", "label"],
             "image_data_param": {"source": str(tmp_path / "list.txt"), "root_folder": str(tmp_path) + "/",
                                  "batch_size": 2}}
    net = Net(_net(layer, ["data"]), phase="TEST")
    net.forward()
    want = np.stack([pics[0], pics[1]])[..., ::-1].transpose(0, 3, 1, 2).astype(np.float32)
    assert np.array_equal(net.blobs["data"].data, want)
    assert net.blobs["label"].data.tolist() == [7, 6]
    net.forward()                                  # wraps: image 2, then image 0
    assert net.blobs["label"].data.tolist() == [5, 7]


def test_memory_data_batches_in_order():
    layer = {"name": "m", "type": "MemoryData", "top": ["data", "label"],
             "memory_data_param": {"batch_size": 2, "channels": 1, "height": 2, "width": 3},
             "transform_param": {"scale": 0.5}}
    net = Net(_net(layer, ["data"]), phase="TEST")
    with pytest.raises(NetcliError, match="set_input_arrays"):
        net.forward()
    x = np.random.default_rng(1).random((4, 1, 2, 3)).astype(np.float32)
    with pytest.raises(NetcliError, match=r"must be \(N, 1, 2, 3\)"):
        net.layer_dict["m"].set_input_arrays(x[:, 0], np.arange(4))
    net.layer_dict["m"].set_input_arrays(x, np.arange(4))
    for k in (0, 2, 0):
        net.forward()
        assert np.array_equal(net.blobs["data"].data, x[k:k + 2] * np.float32(0.5))
        assert net.blobs["label"].data.tolist() == [k, k + 1]


def test_dummy_data_constant_and_random():
    layer = {"name": "d", "type": "DummyData", "top": ["a", "b"],
             "dummy_data_param": {"shape": [{"dim": [2, 3]}, {"dim": [4]}],
                                  "data_filler": [{"type": "constant", "value": 1.5}, {"type": "gaussian"}]}}
    net = Net(_net(layer, ["a"]), phase="TEST", seed=0)
    net.forward()
    first = net.blobs["b"].data.copy()
    net.forward()
    assert np.all(net.blobs["a"].data == 1.5) and net.blobs["b"].shape == (4,)
    assert not np.array_equal(first, net.blobs["b"].data)
    legacy = {"name": "d", "type": "DummyData", "top": ["a"],
              "dummy_data_param": {"num": 2, "channels": 3, "height": 4, "width": 5}}
    assert Net(_net(legacy, ["a"]), phase="TEST").blobs["a"].shape == (2, 3, 4, 5)


def test_datum_raw_and_encoded():
    Image = pytest.importorskip("PIL.Image")
    import io
    rng = np.random.default_rng(2)
    a = rng.integers(0, 256, (3, 4, 5), dtype=np.uint8)
    back, label = parse_datum(datum_bytes(a, 9))
    assert np.array_equal(back, a) and label == 9
    png = io.BytesIO()
    Image.fromarray(a.transpose(1, 2, 0)).save(png, format="PNG")      # RGB on disk
    from netcli.caffe import wire
    record = wire.put_bytes(4, png.getvalue()) + wire.put_varint(5, 3) + wire.put_varint(7, 1)
    img, label = parse_datum(record)
    assert label == 3 and np.array_equal(img, a[::-1])                 # decoded to Caffe's BGR


def _window_net(tmp_path, windows, **param):
    """A WindowData net over one 100x80 RGB image with the given windows."""
    Image = pytest.importorskip("PIL.Image")
    rng = np.random.default_rng(1)
    pic = rng.integers(0, 256, (80, 100, 3), dtype=np.uint8)       # height 80, width 100
    Image.fromarray(pic).save(tmp_path / "im.png")
    lines = ["# 0", str(tmp_path / "im.png"), "3", "80", "100", str(len(windows))]
    lines += [" ".join(map(str, w)) for w in windows]
    (tmp_path / "windows.txt").write_text("\n".join(lines) + "\n")
    transform = param.pop("transform", {})
    layer = {"name": "w", "type": "WindowData", "top": ["data", "label"],
             "transform_param": dict({"crop_size": 20}, **transform),
             "window_data_param": dict({"source": str(tmp_path / "windows.txt"), "batch_size": 4}, **param)}
    return Net(_net(layer, ["data"]), phase="TRAIN"), pic[..., ::-1].transpose(2, 0, 1).astype(np.float32)


def _resized(img, x1, y1, x2, y2, h, w):
    from PIL import Image
    patch = np.ascontiguousarray(img[:, y1:y2 + 1, x1:x2 + 1].transpose(1, 2, 0).astype(np.uint8))
    return np.asarray(Image.fromarray(patch).resize((w, h), Image.BILINEAR)).transpose(2, 0, 1).astype(np.float32)


def test_window_data_warps_foreground_and_background_windows(tmp_path):
    net, img = _window_net(tmp_path, [(7, 0.9, 10, 5, 49, 34), (0, 0.1, 50, 40, 89, 79)], fg_fraction=0.5,
                           scale=0.5, transform={"mean_value": [10, 20, 30]})
    net.forward()
    assert net.blobs["data"].shape == (4, 3, 20, 20)
    assert net.blobs["label"].data.tolist() == [0, 0, 7, 7]        # Caffe: background first
    mean = np.array([10, 20, 30], np.float32).reshape(3, 1, 1)
    fg = (_resized(img, 10, 5, 49, 34, 20, 20) - mean) * 0.5
    bg = (_resized(img, 50, 40, 89, 79, 20, 20) - mean) * 0.5
    for i, want in enumerate([bg, bg, fg, fg]):
        np.testing.assert_array_equal(net.blobs["data"].data[i], want)


def test_window_data_context_pad_clipped_at_the_border(tmp_path):
    """Box 0..19 with crop 20 and context_pad 2: grown by 20/16 about its centre 10 to -3..23
    (C rounding), clipped to 0..23, resized to 18 columns placed from column 2 (3 * 20/27 rounded)."""
    net, img = _window_net(tmp_path, [(3, 1.0, 0, 0, 19, 19)], fg_fraction=1.0, context_pad=2)
    net.forward()
    out = net.blobs["data"].data[0]
    assert not out[:, :2, :].any() and not out[:, :, :2].any()
    np.testing.assert_array_equal(out[:, 2:, 2:], _resized(img, 0, 0, 23, 23, 18, 18))


def test_window_data_errors(tmp_path):
    with pytest.raises(NetcliError, match="no background windows"):
        _window_net(tmp_path, [(7, 0.9, 10, 5, 49, 34)])
    with pytest.raises(NetcliError, match="needs transform_param.crop_size"):
        _window_net(tmp_path, [(7, 0.9, 10, 5, 49, 34)], transform={"crop_size": 0})
    (tmp_path / "bad.txt").write_text("# 0\nim.png\n3\n80\nwide\n")
    layer = {"name": "w", "type": "WindowData", "top": ["data", "label"], "transform_param": {"crop_size": 8},
             "window_data_param": {"source": str(tmp_path / "bad.txt"), "batch_size": 2}}
    with pytest.raises(NetcliError, match="bad.txt:5: expected width, got 'wide'"):
        Net(_net(layer, ["data"]), phase="TRAIN")
