"""Untrusted images: only the documented formats are decoded, Pillow's bomb limit is a clean
error (its warning too), and a FIFO named .png is refused without blocking."""
import os
import subprocess
import sys

import numpy as np
import pytest
from click.testing import CliRunner

import netcli
from netcli.cli import cli
from netcli.data.images import FORMATS, ImageError, decode

Image = pytest.importorskip("PIL.Image")
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

DEPLOY = """\
name: tiny
layers:
  - {name: data, type: Input, top: data, input_param: {shape: {dim: [1, 1, 4, 4]}}}
  - {name: ip, type: InnerProduct, bottom: data, top: ip, inner_product_param: {num_output: 2}}
  - {name: prob, type: Softmax, bottom: ip, top: prob}
"""

EPS = b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 10 10\n%%EndComments\nshowpage\n"


@pytest.fixture
def model(tmp_path):
    (tmp_path / "deploy.yaml").write_text(DEPLOY)
    netcli.Net(str(tmp_path / "deploy.yaml")).save(str(tmp_path / "w.weights.npz"))
    pics = tmp_path / "pics"
    pics.mkdir()
    Image.fromarray(np.full((4, 4), 9, np.uint8)).save(pics / "ok.png")
    return tmp_path


def predict(model, *inputs):
    return CliRunner().invoke(cli, ["predict", "--model", str(model / "deploy.yaml"), "--weights",
                                    str(model / "w.weights.npz"), *map(str, inputs)], obj={})


def test_a_png_predicts(model):
    r = predict(model, model / "pics" / "ok.png")
    assert r.exit_code == 0, r.output


def test_eps_named_png_never_reaches_its_decoder(model, monkeypatch):
    path = model / "pics" / "evil.png"
    path.write_bytes(EPS)
    with Image.open(path) as im:            # what Pillow alone would do: hand it to the EPS plugin
        assert im.format == "EPS"
    from PIL import EpsImagePlugin
    called = []
    monkeypatch.setattr(EpsImagePlugin.EpsImageFile, "_open", lambda self: called.append(1) or 1 / 0)
    r = predict(model, path)
    assert r.exit_code == 1 and len(r.output.strip().splitlines()) == 1, r.output
    assert "evil.png" in r.output and "not an image in a format netcli reads (PNG, JPEG" in r.output
    assert not called


@pytest.mark.parametrize("side", [15, 20])        # over the warning limit, over the error limit (2x)
def test_decompression_bomb_is_one_line_in_predict_imagedata_and_datums(model, monkeypatch, side):
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100)
    big = model / "pics" / "big.png"
    Image.fromarray(np.zeros((side, side), np.uint8)).save(big)
    r = predict(model, big)
    assert r.exit_code == 1 and len(r.output.strip().splitlines()) == 1, r.output
    assert "big.png" in r.output and "decompression-bomb limit of 100" in r.output
    # ImageData's reader and an encoded Datum
    from netcli.caffe.datum import decode_image
    from netcli.data.sources import DataError, read_image
    with pytest.raises(DataError, match="decompression-bomb limit of 100"):
        read_image(str(big))
    with pytest.raises(ImageError, match="decompression-bomb limit of 100"):
        decode_image(big.read_bytes())


def test_an_encoded_datum_in_another_format_is_refused():
    from netcli.caffe.datum import decode_image
    with pytest.raises(ImageError, match="not an image in a format netcli reads"):
        decode_image(EPS)


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs here")
def test_a_fifo_named_png_is_refused_without_blocking(model):
    os.mkfifo(model / "pics" / "zz.png")
    code = ("import sys; from netcli.cli import main; main(['predict', '--model', sys.argv[1], '--weights', "
            "sys.argv[2], sys.argv[3]])")
    for target in (model / "pics", model / "pics" / "zz.png"):     # in a folder, and given by name
        r = subprocess.run([sys.executable, "-c", code, str(model / "deploy.yaml"), str(model / "w.weights.npz"),
                            str(target)], capture_output=True, text=True, timeout=120,
                           env={**os.environ, "PYTHONPATH": ROOT, "NETCLI_OFFLINE": "1"})
        assert r.returncode == 1, r.stderr
        assert "zz.png" in r.stderr and "not a regular file (a FIFO)" in r.stderr
        assert "Traceback" not in r.stderr


def test_formats_are_the_documented_ones():
    readme = open(os.path.join(ROOT, "README.md"), encoding="utf-8").read()
    assert f"({', '.join(FORMATS)})" in readme
    with pytest.raises(ImageError, match="not a regular file"):
        decode(ROOT)
