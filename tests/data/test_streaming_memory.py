"""Issue 28, item 1 ("done when"): training from an LMDB of 20,000 JPEG Datums (made by
convert-imageset; 128x128x3: about 1 GB of decoded pixels) keeps the peak RSS within 300 MB of
the same net trained from a 1,000-image LMDB, since the Data layer reads only the records of the batches it prepares."""
import os
import subprocess
import sys

import numpy as np
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

NET = """\
name: big
layers:
  - {{name: data, type: Data, top: [data, label], transform_param: {{crop_size: 112, mirror: true, scale: 0.004}},
     data_param: {{source: {db}, batch_size: 50, shuffle: true, threads: 0}}}}
  - {{name: ip, type: InnerProduct, bottom: data, top: ip, inner_product_param: {{num_output: 2}}}}
  - {{name: loss, type: SoftmaxWithLoss, bottom: [ip, label], top: loss}}
"""

SOLVER = """\
net: {net}
base_lr: 0.001
lr_policy: fixed
display: 0
max_iter: 10
snapshot: 0
random_seed: 1
"""

# Runs a command and prints its peak RSS (the child's own, in kB).
PEAK = ("import resource, subprocess, sys; r = subprocess.run(sys.argv[1:]); "
        "print('PEAK', resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, r.returncode)")


def build_lmdb(path, n):
    """n encoded JPEG Datums of 128x128x3, written by `netcli data convert-imageset --encoded` from a
    list of n lines over 100 distinct JPEG files (so building takes seconds; decoded, each record
    is 49 kB whatever it shows)."""
    pytest.importorskip("lmdb")
    from PIL import Image
    from netcli.data.convert_imageset import convert_imageset
    rng = np.random.default_rng(0)
    pics = path.parent / "pics"
    pics.mkdir(exist_ok=True)
    for k in range(100):
        Image.fromarray(rng.integers(0, 256, (128, 128, 3), dtype=np.uint8)).save(pics / f"{k}.jpg", "JPEG", quality=20)
    listfile = path.parent / "list.txt"
    listfile.write_text("".join(f"{i % 100}.jpg {i % 2}\n" for i in range(n)))
    assert convert_imageset(str(pics), str(listfile), str(path), encoded=True) == n


def peak_rss_kb(folder, n):
    build_lmdb(folder / "db", n)
    (folder / "net.yaml").write_text(NET.format(db=folder / "db"))
    (folder / "solver.yaml").write_text(SOLVER.format(net=folder / "net.yaml"))
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""), NETCLI_THREADS="1")
    r = subprocess.run([sys.executable, "-c", PEAK, sys.executable, "-m", "netcli.cli", "train", "--quiet",
                        "--solver", str(folder / "solver.yaml")], capture_output=True, text=True, env=env,
                       timeout=300, cwd=folder)
    line = [x for x in r.stdout.splitlines() if x.startswith("PEAK ")]
    assert line and line[0].split()[2] == "0", r.stdout[-2000:] + r.stderr[-2000:]
    return int(line[0].split()[1])


@pytest.mark.slow        # builds two LMDBs (one of 20,000 records) and trains twice: about 5-20 s
def test_peak_rss_does_not_grow_with_the_lmdb(tmp_path):
    pytest.importorskip("PIL")
    pytest.importorskip("lmdb")
    (tmp_path / "small").mkdir()
    (tmp_path / "big").mkdir()
    small = peak_rss_kb(tmp_path / "small", 1000)
    big = peak_rss_kb(tmp_path / "big", 20000)
    print(f"peak RSS: {small / 1024:.0f} MB from 1,000 records, {big / 1024:.0f} MB from 20,000")
    assert big - small < 300 * 1024, (small, big)
