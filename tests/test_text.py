"""Names from files reach the terminal escaped: no raw ESC or BEL from a layer, blob or net name."""
import numpy as np
import pytest
from click.testing import CliRunner

import netcli
from netcli import log
from netcli.cli import cli
from netcli.text import printable, safe_text

EVIL = "\x1b]0;pwn\x07"
SHOWN = "\\x1b]0;pwn\\x07"

NET = r"""name: "n\x1b]0;pwn\x07"
layer { name: "in" type: "Input" top: "data" input_param { shape { dim: 1 dim: 1 dim: 2 dim: 2 } } }
layer { name: "ip\x1b]0;pwn\x07" type: "InnerProduct" bottom: "data" top: "t\x1b]0;pwn\x07"
        inner_product_param { num_output: 2 } }
layer { name: "prob" type: "Softmax" bottom: "t\x1b]0;pwn\x07" top: "prob" }
"""


def test_printable_escapes_controls_and_keeps_the_rest():
    assert printable(f"ip{EVIL}") == f"ip{SHOWN}"
    assert printable("conv1 ü 中") == "conv1 ü 中"
    assert printable("a\nb\tc\x9b\u202e") == "a\\x0ab\\x09c\\x9b\\u202e"
    assert safe_text("a\nb\tc\x1b") == "a\nb\tc\\x1b"


def _clean(r):
    out = r.output + (r.stderr if r.stderr_bytes is not None else "")
    assert "\x1b" not in out and "\x07" not in out, out
    return out


@pytest.fixture
def evil_net(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "n.prototxt").write_text(NET)
    return tmp_path


def test_check_and_time_tables_escape_names(evil_net):
    r = CliRunner().invoke(cli, ["check", "--model", "n.prototxt"], obj={})
    assert r.exit_code == 0, r.output
    assert f"ip{SHOWN}" in _clean(r) and f"n{SHOWN}" in r.output
    r = CliRunner().invoke(cli, ["time", "--model", "n.prototxt", "--iterations", "1"], obj={})
    assert r.exit_code == 0, r.output
    assert f"ip{SHOWN}" in _clean(r)


def test_errors_from_config_names_are_escaped(evil_net):
    (evil_net / "bad.prototxt").write_text(NET.replace("num_output: 2", "num_output: -2"))
    r = CliRunner().invoke(cli, ["check", "--model", "bad.prototxt"], obj={})
    assert r.exit_code == 1
    assert f"layer 'ip{SHOWN}'" in _clean(r)


def test_predict_labels_are_escaped(evil_net):
    pytest.importorskip("PIL")
    netcli.Net("n.prototxt").save("w.weights.npz")
    np.savez("x.npz", data=np.zeros((1, 1, 2, 2), np.float32))
    (evil_net / "labels.txt").write_text(f"cat{EVIL}\ndog{EVIL}\n")
    r = CliRunner().invoke(cli, ["predict", "--model", "n.prototxt", "--weights", "w.weights.npz", "x.npz",
                                 "--labels", "labels.txt"], obj={})
    assert r.exit_code == 0, r.output
    assert f"cat{SHOWN}" in _clean(r)


def test_log_lines_are_escaped(capsys):
    log.info(f"Train net output #0: loss{EVIL} = 1")
    log.warn(f"layer ip{EVIL} is odd")
    out = capsys.readouterr()
    assert SHOWN in out.out and SHOWN in out.err
    assert "\x1b" not in out.out + out.err and "\x07" not in out.out + out.err
