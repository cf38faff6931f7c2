"""Issue 15's CLI defects, one test each (each failed before its fix)."""
import textwrap

from click.testing import CliRunner

from netcli.cli import cli
from tinynet import make_tiny


def run(*args):
    return CliRunner().invoke(cli, list(args), obj={})


def test_check_solver_prints_the_solver_iterations(tmp_path):
    solver = make_tiny(tmp_path, max_iter=40)
    r = run("check", "--solver", solver)
    assert r.exit_code == 0, r.output
    assert ", 40 iterations," in r.output and ", 0 iterations," not in r.output
    assert "(TRAIN)" in r.output and "(TEST)" in r.output


def test_check_model_checks_every_phase(tmp_path):
    """A mistake that only the TEST phase has (a bottom no TEST layer produces) fails check."""
    make_tiny(tmp_path)
    net = (tmp_path / "net.yaml").read_text()
    net += "  - {name: probe, type: Softmax, bottom: ip2, top: prob, include: {phase: TEST}}\n"
    (tmp_path / "net.yaml").write_text(net)
    r = run("check", "--model", str(tmp_path / "net.yaml"))
    assert r.exit_code == 1 and "ip2" in r.output and "OK" not in r.output
    r = run("check", "--model", str(tmp_path / "net.yaml"), "--phase", "train")
    assert r.exit_code == 0 and r.output.rstrip().endswith("OK")


def test_check_table_columns_fit_long_names(tmp_path):
    long = "a_really_long_layer_name_for_the_table"
    (tmp_path / "n.yaml").write_text(textwrap.dedent(f"""\
        layers:
          - {{name: in, type: Input, top: data, input_param: {{shape: {{dim: [2, 3]}}}}}}
          - {{name: {long}, type: InnerProduct, bottom: data, top: y, inner_product_param: {{num_output: 4}}}}
        """))
    r = run("check", "--model", str(tmp_path / "n.yaml"), "--phase", "TEST")
    assert r.exit_code == 0, r.output
    lines = r.output.splitlines()
    row = next(line for line in lines if line.startswith(long))
    assert row[len(long)] == " " and "InnerProduct" in row.split()
    head = next(line for line in lines if line.startswith("layer"))
    assert head.index("type") == row.index("InnerProduct")


def test_every_option_has_help():
    """`time --iterations` and `test --phase` had none."""
    import click
    missing = []
    for name, cmd in cli.commands.items():
        for sub in (cmd.commands.values() if isinstance(cmd, click.Group) else [cmd]):
            for p in sub.params:
                if isinstance(p, click.Option) and not p.help and p.name not in ("help",):
                    missing.append(f"{name} {p.opts[0]}")
    assert not missing, missing


def test_environment_variables_are_checked(monkeypatch):
    monkeypatch.setenv("NETCLI_THREADS", "abc")
    r = run("layers", "ReLU")
    assert r.exit_code == 1 and "NETCLI_THREADS must be a whole number of threads >= 1, got 'abc'" in r.output
    monkeypatch.setenv("NETCLI_THREADS", "2")
    monkeypatch.setenv("NETCLI_OFFLINE", "maybe")
    r = run("layers", "ReLU")
    assert r.exit_code == 1 and "NETCLI_OFFLINE must be 1 or 0" in r.output
    monkeypatch.setenv("NETCLI_OFFLINE", "1")
    assert run("layers", "ReLU").exit_code == 0
    assert "NETCLI_THREADS" in run("--help").output and "NETCLI_OFFLINE" in run("--help").output


def test_weights_given_a_config_file(tmp_path):
    make_tiny(tmp_path)
    r = run("test", "--model", str(tmp_path / "net.yaml"), "--weights", str(tmp_path / "solver.yaml"))
    assert r.exit_code == 1 and "solver.yaml is a net or solver file; weights are a .weights.npz" in r.output
    assert "pickle" not in r.output


def test_a_typo_in_the_solver_net_gets_a_suggestion(tmp_path):
    solver = make_tiny(tmp_path)
    text = (tmp_path / "solver.yaml").read_text().replace("net: net.yaml", "net: nett.yaml")
    (tmp_path / "solver.yaml").write_text(text)
    r = run("check", "--solver", solver)
    assert r.exit_code == 1
    assert "solver.yaml:1: field 'net': nett.yaml: no such net file" in r.output
    assert "did you mean 'net.yaml'?" in r.output


def test_a_net_without_a_test_data_layer_says_where_the_blob_is(tmp_path):
    (tmp_path / "n.yaml").write_text(textwrap.dedent("""\
        layers:
          - {name: data, type: Input, top: [data, label], include: {phase: TRAIN},
             input_param: {shape: [{dim: [4, 3]}, {dim: [4]}]}}
          - {name: ip, type: InnerProduct, bottom: data, top: ip, inner_product_param: {num_output: 2}}
          - {name: loss, type: SoftmaxWithLoss, bottom: [ip, label], top: loss}
        """))
    r = run("check", "--model", str(tmp_path / "n.yaml"))
    assert r.exit_code == 1
    assert ("n.yaml:4: layer 'ip' (InnerProduct): field 'bottom': bottom 'data' is not produced by any earlier "
            "layer: layer 'data' produces it, but its include/exclude rules leave it out of the TEST net") in r.output


def test_mean_value_count_message(tmp_path):
    make_tiny(tmp_path)
    net = (tmp_path / "net.yaml").read_text().replace("transform_param: {scale: 0.00390625},",
                                                     "transform_param: {scale: 0.00390625, mean_value: [1, 2, 3]},")
    assert "mean_value" in net
    (tmp_path / "net.yaml").write_text(net)
    r = run("check", "--model", str(tmp_path / "net.yaml"), "--phase", "TEST")
    assert r.exit_code == 1
    assert "mean_value needs 1 value for 1-channel images, got 3" in r.output and "1 or 1" not in r.output


def test_iterations_on_resume_train_that_many_more(tmp_path):
    solver = make_tiny(tmp_path, max_iter=20, test_interval=0, snapshot=10)
    assert run("train", "--solver", solver, "--quiet").exit_code == 0
    r = run("train", "--solver", solver, "--quiet", "--snapshot",
            str(tmp_path / "snaps" / "tiny_iter_20.solverstate.npz"), "--iterations", "10")
    assert r.exit_code == 0, r.output
    assert (tmp_path / "snaps" / "tiny_iter_30.weights.npz").exists()     # before: nothing trained


def test_test_on_a_deploy_net_is_refused(tmp_path):
    r = run("test", "--model", "configs/lenet_deploy.yaml", "--weights", "x.npz", "--iterations", "1")
    assert r.exit_code == 1 and "Input layers (data)" in r.output and "netcli predict" in r.output
    assert "Batch 0" not in r.output


def test_phase_takes_either_case_and_caffe_flags_work(tmp_path):
    import subprocess
    import sys
    solver = make_tiny(tmp_path, max_iter=4, test_interval=0, snapshot=2)
    for phase in ("test", "TEST", "Test"):
        assert run("check", "--model", str(tmp_path / "net.yaml"), "--phase", phase).exit_code == 0
    # Caffe's single-dash flags, through the real entry point (main() rewrites them)
    cmd = [sys.executable, "-m", "netcli.cli", "train", "-solver", solver, "-iterations", "2"]
    assert subprocess.run(cmd, capture_output=True, text=True).returncode == 0
    snap = str(tmp_path / "snaps" / "tiny_iter_2.solverstate.npz")
    r = subprocess.run([sys.executable, "-m", "netcli.cli", "train", "-solver", solver, "-snapshot", snap,
                        "-iterations", "2", "--quiet"], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "snaps" / "tiny_iter_4.weights.npz").exists()
    r = subprocess.run([sys.executable, "-m", "netcli.cli", "test", "-model", str(tmp_path / "net.yaml"), "-weights",
                        str(tmp_path / "snaps" / "tiny_iter_4.weights.npz"), "-iterations", "1"],
                       capture_output=True, text=True)
    assert r.returncode == 0 and "Batch 0, accuracy" in r.stdout, r.stderr


def test_solver_mode_gpu_says_it_runs_on_the_cpu(tmp_path, monkeypatch):
    """Caffe's GPU-mode solvers on a machine without a GPU: the CPU, with one line saying why."""
    from netcli.errors import NetcliError
    from netcli.gpu import device
    import netcli.exec.cuda as cuda       # imported before the patch: its `select` is then the real one,
                                          # which monkeypatch puts back (later GPU tests need it)

    def no_gpu(device_id=0):
        raise NetcliError("no CUDA GPU is usable here (no NVIDIA driver or device found)")
    monkeypatch.setattr(device, "select", no_gpu)
    monkeypatch.setattr(cuda, "select", no_gpu)
    solver = make_tiny(tmp_path, max_iter=1, test_interval=0, extra="solver_mode: GPU\n")
    r = run("train", "--solver", solver, "--quiet")
    assert r.exit_code == 0 and "solver_mode: GPU, but " in r.output and "training on the CPU" in r.output
