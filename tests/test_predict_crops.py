"""predict/Classifier as Caffe's classify.py and pycaffe's Classifier: images resized to
image_dims, then the centre crop or the 10 crops of caffe.io.oversample (positions written out here
from Caffe's arithmetic), probabilities averaged; a warning when the labels do not match the
net's classes."""
import json

import numpy as np
import pytest
from click.testing import CliRunner

import netcli
from netcli.cli import cli
from netcli.predict_crops import crop_boxes, oversample

Image = pytest.importorskip("PIL.Image")

DEPLOY = """\
name: "tiny"
layer { name: "data" type: "Input" top: "data" input_param { shape { dim: 2 dim: 3 dim: 4 dim: 5 } } }
layer { name: "ip" type: "InnerProduct" bottom: "data" top: "ip" inner_product_param { num_output: 3 } }
layer { name: "prob" type: "Softmax" bottom: "ip" top: "prob" }
"""


def test_crop_positions_are_caffes():
    # image 7x9, crop 4x5: corners (0,0) (0,4) (3,0) (3,4); centre (int(3.5-2), int(4.5-2.5)) = (1, 2)
    assert crop_boxes((7, 9), (4, 5)) == [(0, 0), (0, 4), (3, 0), (3, 4), (1, 2)]
    assert crop_boxes((256, 256), (227, 227))[4] == (14, 14)
    im = np.arange(2 * 7 * 9, dtype=np.float32).reshape(1, 2, 7, 9)
    crops = oversample(im, (4, 5))
    assert crops.shape == (10, 2, 4, 5)
    assert np.array_equal(crops[1], im[0, :, 0:4, 4:9]) and np.array_equal(crops[4], im[0, :, 1:5, 2:7])
    assert np.array_equal(crops[6], im[0, :, 0:4, 4:9][:, :, ::-1])       # mirrors follow the five


@pytest.fixture()
def tiny(tmp_path):
    model = tmp_path / "deploy.prototxt"
    model.write_text(DEPLOY)
    net = netcli.Net(str(model))
    rng = np.random.default_rng(7)
    W = rng.standard_normal((3, 60)).astype(np.float32) * 0.05
    b = rng.standard_normal(3).astype(np.float32)
    net.params["ip"][0].data[...] = W
    net.params["ip"][1].data[...] = b
    weights = tmp_path / "w.caffemodel"
    net.save(str(weights))
    img = rng.integers(0, 256, (8, 10, 3)).astype(np.uint8)
    Image.fromarray(img).save(tmp_path / "im.png")
    return model, weights, img, W, b


def _reference(img, W, b, dims, boxes, scale):
    """classify.py by hand: resize (bilinear), RGB -> BGR, (H, W, C) -> (C, H, W), each crop scaled,
    a softmax of W x + b, the mean over the crops."""
    H, Wd = dims
    a = np.asarray(Image.fromarray(img).resize((Wd, H), Image.BILINEAR), np.float32)[:, :, ::-1].transpose(2, 0, 1)
    probs = []
    for (t, l), mirror in boxes:
        c = a[:, t:t + 4, l:l + 5]
        c = c[:, :, ::-1] if mirror else c
        s = W.astype(np.float64) @ (c.reshape(-1) * scale) + b
        e = np.exp(s - s.max())
        probs.append(e / e.sum())
    return np.mean(probs, axis=0)


def test_classifier_oversample_and_center_crop(tiny):
    model, weights, img, W, b = tiny
    clf = netcli.Classifier(str(model), str(weights), image_dims=(8, 9), scale=0.02)
    ten = clf.predict([img], oversample=True)
    boxes = [(0, 0), (0, 4), (4, 0), (4, 4), (2, 2)]          # 8x9 -> 4x5: centre (int(4-2), int(4.5-2.5))
    ref = _reference(img, W, b, (8, 9), [(x, False) for x in boxes] + [(x, True) for x in boxes], 0.02)
    np.testing.assert_allclose(ten[0], ref, rtol=1e-5, atol=1e-7)
    one = clf.predict([img, img])
    np.testing.assert_allclose(one[1], _reference(img, W, b, (8, 9), [((2, 2), False)], 0.02), rtol=1e-5, atol=1e-7)


def test_cli_default_is_classify_py(tiny, capsys):
    """A deploy net with Caffe's weights: resized to 256x256 and 10 crops by default; --center-only
    the centre crop; --images-dim another size."""
    model, weights, img, W, b = tiny
    base = ["predict", "--model", str(model), "--weights", str(weights), str(model.parent / "im.png"), "--json",
            "--scale", "0.02", "--top-k", "3"]

    def probs(*extra):
        r = CliRunner().invoke(cli, base + list(extra), obj={})
        assert r.exit_code == 0, r.output
        return {t["class"]: t["prob"] for t in json.loads(r.stdout)[0]["top_k"]}, r

    boxes = [(0, 0), (0, 251), (252, 0), (252, 251), (126, 125)]
    ten, _ = probs()
    ref = _reference(img, W, b, (256, 256), [(x, False) for x in boxes] + [(x, True) for x in boxes], 0.02)
    assert all(abs(ten[k] - ref[k]) < 2e-6 for k in range(3))
    centre, _ = probs("--center-only")
    ref = _reference(img, W, b, (256, 256), [((126, 125), False)], 0.02)
    assert all(abs(centre[k] - ref[k]) < 2e-6 for k in range(3))
    small, _ = probs("--images-dim", "6,7", "--center-only")
    ref = _reference(img, W, b, (6, 7), [((1, 1), False)], 0.02)
    assert all(abs(small[k] - ref[k]) < 2e-6 for k in range(3))
    r = CliRunner().invoke(cli, base + ["--images-dim", "6"], obj={})
    assert r.exit_code == 0, r.output                         # one number: a square
    r = CliRunner().invoke(cli, base + ["--images-dim", "3,3"], obj={})
    assert r.exit_code == 1 and "image size 3x3 is smaller than the net's input 4x5" in r.output
    r = CliRunner().invoke(cli, base + ["--images-dim", "a,b"], obj={})
    assert r.exit_code == 2 and "expected H,W" in r.output


def test_labels_of_another_count_warn(tiny, tmp_path):
    model, weights, _, _, _ = tiny
    (tmp_path / "names.txt").write_text("\n".join(f"n{i}" for i in range(1000)) + "\n")
    base = ["predict", "--model", str(model), "--weights", str(weights), str(tmp_path / "im.png"), "--labels"]
    r = CliRunner().invoke(cli, base + [str(tmp_path / "names.txt")], obj={})
    assert r.exit_code == 0, r.output
    warn = [l for l in r.stderr.splitlines() if "labels for net" in l]
    assert len(warn) == 1 and "1000 labels" in warn[0] and "3 classes" in warn[0]
    (tmp_path / "three.txt").write_text("a\nb\nc\n")
    r = CliRunner().invoke(cli, base + [str(tmp_path / "three.txt")], obj={})
    assert r.exit_code == 0 and "labels for net" not in r.stderr


TRAIN_TEST = """\
name: crops
layers:
  - {name: data, type: Data, top: [data, label], transform_param: {crop_size: 5, scale: 0.02, mean_value: [10, 20, 30]},
     data_param: {source: d.npz, batch_size: 2}}
  - {name: ip, type: InnerProduct, bottom: data, top: ip, inner_product_param: {num_output: 3}}
  - {name: prob, type: Softmax, bottom: ip, top: prob}
"""


def test_a_data_layer_with_a_crop_gets_ten_crops_of_its_raw_size(tmp_path, monkeypatch):
    """The preprocessing a data layer keeps (raw 8x8, crop 5, mean, scale): predict resizes to 8x8
    and averages classify.py's 10 crops; --center-only is the data layer's own TEST crop."""
    monkeypatch.chdir(tmp_path)
    rng = np.random.default_rng(3)
    np.savez("d.npz", data=rng.integers(0, 256, (4, 3, 8, 8)).astype(np.uint8), label=np.zeros(4, np.int64))
    (tmp_path / "net.yaml").write_text(TRAIN_TEST)
    net = netcli.Net("net.yaml", phase="TEST")
    W = rng.standard_normal((3, 75)).astype(np.float32) * 0.05
    net.params["ip"][0].data[...] = W
    net.params["ip"][1].data[...] = 0
    net.save("w.npz")
    img = rng.integers(0, 256, (8, 8, 3)).astype(np.uint8)
    Image.fromarray(img).save("im.png")
    chw = img.transpose(2, 0, 1).astype(np.float32)       # no resize (8x8 already); RGB, as the .npz data
    chw -= np.array([10, 20, 30], np.float32).reshape(3, 1, 1)

    def ref(boxes):
        out = []
        for (t, l), mirror in boxes:
            c = chw[:, t:t + 5, l:l + 5]
            s = W.astype(np.float64) @ ((c[:, :, ::-1] if mirror else c).reshape(-1) * 0.02)
            e = np.exp(s - s.max())
            out.append(e / e.sum())
        return np.mean(out, axis=0)

    def probs(*extra):
        r = CliRunner().invoke(cli, ["predict", "--model", "net.yaml", "--weights", "w.npz", "im.png", "--json",
                                     "--top-k", "3", *extra], obj={})
        assert r.exit_code == 0, r.output
        return np.array([dict((t["class"], t["prob"]) for t in json.loads(r.stdout)[0]["top_k"])[k] for k in range(3)])

    boxes = [(0, 0), (0, 3), (3, 0), (3, 3), (1, 1)]
    np.testing.assert_allclose(probs(), ref([(b, False) for b in boxes] + [(b, True) for b in boxes]), atol=2e-6)
    np.testing.assert_allclose(probs("--center-only"), ref([((1, 1), False)]), atol=2e-6)
