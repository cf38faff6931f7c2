"""Issue 24's first-hour messages (item 6), one test each (each failed before its fix)."""
import os

from click.testing import CliRunner

from netcli.cli import cli
from tinynet import make_tiny


def run(*args):
    return CliRunner().invoke(cli, list(args), obj={})


def test_solver_mode_gpu_without_a_gpu_names_solver_mode_not_gpu_flag(tmp_path, monkeypatch):
    """No --gpu was given: the line says what to change (solver_mode), not 'run without --gpu'."""
    from netcli.gpu import device

    class NoCuda:
        @staticmethod
        def is_available():
            return False
    monkeypatch.setattr(device, "cuda_module", lambda: NoCuda)
    solver = make_tiny(tmp_path, max_iter=1, test_interval=0, extra="solver_mode: GPU\n")
    r = run("train", "--solver", solver, "--quiet")
    assert r.exit_code == 0, r.output
    line = next(x for x in r.output.splitlines() if x.startswith("solver_mode: GPU, but "))
    assert "--gpu" not in line and f"set solver_mode: CPU in {solver}" in line and "training on the CPU" in line
    r = run("train", "--solver", solver, "--quiet", "--gpu", "0")      # asked for: an error that names --gpu
    assert r.exit_code == 1 and "run without --gpu for the CPU" in r.output


def test_resume_says_resuming_once_and_a_finished_run_says_how_to_train_more(tmp_path):
    solver = make_tiny(tmp_path, max_iter=4, test_interval=0, snapshot=2)
    assert run("train", "--solver", solver, "--quiet").exit_code == 0
    r = run("train", "--solver", solver, "--quiet", "--resume")
    assert r.exit_code == 0, r.output
    assert r.output.count("Resuming from ") == 1
    assert "The snapshot is at iteration 4, max_iter is 4: nothing to train (--iterations N trains N more" in r.output
    r = run("train", "--solver", solver, "--quiet", "--resume", "--iterations", "2")
    assert r.exit_code == 0 and "nothing to train" not in r.output and "tiny_iter_6.solverstate.npz" in r.output


def test_finetune_with_weights_of_another_net_is_an_error_and_a_partial_match_warns(tmp_path):
    solver = make_tiny(tmp_path, max_iter=2, test_interval=0)
    assert run("train", "--solver", solver, "--quiet").exit_code == 0
    w = str(tmp_path / "snaps" / "tiny_iter_2.weights.npz")
    net = (tmp_path / "net.yaml").read_text()
    (tmp_path / "net.yaml").write_text(net.replace("name: ip,", "name: ip_new,"))
    r = run("train", "--solver", solver, "--quiet", "--weights", w, "--iterations", "1")
    assert r.exit_code == 0, r.output
    assert f"WARNING: {w}: 2 of 4 params copied; not in the file, left at their fillers: ip_new/0, ip_new/1" in r.output
    (tmp_path / "net.yaml").write_text(net.replace("name: ip,", "name: ip_new,").replace("name: conv,", "name: c,"))
    r = run("train", "--solver", solver, "--quiet", "--weights", w, "--iterations", "1")
    assert r.exit_code == 1
    assert (f"error: {w}: no layer of net 'tiny' matched the weights file (its layers: conv, ip; the net's: c, "
            "ip_new); weights are copied by layer name") in r.output


def test_layers_suggests_the_type_a_prefix_names(tmp_path):
    r = run("layers", "Conv")
    assert r.exit_code == 1 and "did you mean 'Convolution'?" in r.output
    r = run("layers", "relu")
    assert "did you mean 'ReLU'?" in r.output


def test_missing_file_message_says_found_neither(tmp_path, monkeypatch):
    from netcli.errors import NetcliError
    from netcli.config.paths import resolve
    monkeypatch.chdir(tmp_path)
    (tmp_path / "cfg").mkdir()
    try:
        resolve("x.npz", str(tmp_path / "cfg"))
    except NetcliError as e:
        msg = str(e)
    assert " nor " not in msg
    assert (f"(looked for {tmp_path / 'cfg' / 'x.npz'} and {os.path.join(os.getcwd(), 'x.npz')}; found neither)"
            in msg)


def test_iteration_0_has_no_rate(tmp_path):
    solver = make_tiny(tmp_path, max_iter=3, test_interval=0, display=1)
    r = run("train", "--solver", solver, "--quiet")
    assert r.exit_code == 0, r.output
    assert "Iteration 0, loss = " in r.output and "Iteration 0 (" not in r.output
    assert "Iteration 1 (" in r.output and "iter/s" in r.output


def test_running_out_of_memory_is_one_line(tmp_path, monkeypatch):
    import netcli.net
    solver = make_tiny(tmp_path, max_iter=1, test_interval=0)

    def no_memory(*args, **kwargs):
        raise MemoryError("Unable to allocate 34.3 MiB")
    monkeypatch.setattr(netcli.net.Net, "forward_backward", no_memory)
    r = run("train", "--solver", solver, "--quiet")
    assert r.exit_code == 1
    assert r.output.strip().splitlines()[-1] == "netcli: error: out of memory (a smaller batch_size or net may fit)"
    assert "Traceback" not in r.output
