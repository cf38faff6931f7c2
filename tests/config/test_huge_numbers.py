"""Numbers too large for their field are one error line with file:line and field, never an
internal error (Python refuses to convert ints of more than 4,300 digits to or from text)."""
import pytest
from click.testing import CliRunner

from netcli import Net
from netcli.cli import cli
from netcli.config.prototxt import load_prototxt
from netcli.errors import ConfigError

INPUT = 'layer { name: "data" type: "Input" top: "data" input_param { shape { dim: 1 dim: 3 } } }\n'


def _prototxt(tmp_path, text):
    path = tmp_path / "net.prototxt"
    path.write_text(text)
    return str(path)


@pytest.mark.parametrize("value, shown", [
    ("1" * 5000, r"the integer 111111111111\.\.\. \(5000 digits\) is out of range"),
    ("-" + "9" * 4400, r"the integer -99999999999\.\.\. \(4400 digits\) is out of range"),
    ("0x" + "F" * 5000, r"the integer 0xFFFFFFFFFF\.\.\. \(5000 hex digits\) is out of range"),
    ("18446744073709551616", "the integer 18446744073709551616 is out of range"),
], ids=["5000-digits", "negative-4400-digits", "5000-hex-digits", "2**64"])
def test_prototxt_integer_past_64_bits_is_one_line(tmp_path, value, shown):
    path = _prototxt(tmp_path, INPUT + f'layer {{ name: "r" type: "ReLU" bottom: "data" top: "r"\n'
                                       f"  relu_param {{ negative_slope: {value} }} }}\n")
    with pytest.raises(ConfigError, match=f"^{path}:3: field 'negative_slope': {shown}") as e:
        Net(path)
    assert len(e.value.problems) == 1


def test_huge_hex_in_a_bool_field_through_the_cli(tmp_path):
    path = _prototxt(tmp_path, "force_backward: 0x" + "f" * 6000 + "\n" + INPUT)
    r = CliRunner().invoke(cli, ["check", "--model", path])
    assert r.exit_code == 1 and "bug in netcli" not in r.output
    assert f"{path}:1: field 'force_backward': the integer 0xffffffffff... (6000 hex digits)" in r.output


def test_64_bit_integers_still_read():
    t = load_prototxt("x.prototxt", "a: 18446744073709551615 b: -9223372036854775808 c: 0xFFFFFFFFFFFFFFFF "
                                    "d: 0x0000000000000000000000ff e: 1" + "0" * 400 + ".5")
    assert t["a"] == 2 ** 64 - 1 and t["b"] == -2 ** 63 and t["c"] == 2 ** 64 - 1 and t["d"] == 255
    assert t["e"] == float("inf")


def test_yaml_int_past_str_limit_in_bool_str_and_enum_fields(tmp_path):
    huge = "0x" + "F" * 5000          # YAML reads hex of any length; its decimal form has 6,021 digits
    path = tmp_path / "net.yaml"
    path.write_text(f"name: {huge}\nforce_backward: {huge}\nlayers:\n"
                    "  - {name: data, type: Input, top: data, input_param: {shape: {dim: [1, 3]}}}\n"
                    f"  - {{name: p, type: Pooling, bottom: data, top: p, pooling_param: {{pool: {huge}}}}}\n")
    with pytest.raises(ConfigError) as e:
        Net(str(path))
    assert e.value.problems == [
        f"{path}:1: field 'name': expected a string, got an integer of about 6021 digits",
        f"{path}:2: field 'force_backward': expected true or false, got an integer of about 6021 digits",
        f"{path}:5: layer 'p' (Pooling): field 'pooling_param.pool': expected one of MAX, AVE, "
        "got an integer of about 6021 digits"]
