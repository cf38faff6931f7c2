"""Issue 28, item 3: under mpiexec each rank reads only its own rows of each global batch, from
a streaming reader, so no image is read by two ranks; `netcli time` reports each rank's wait on
data. Run under the real mpiexec of the netcli[mpi] extra (skipped without it)."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from test_distributed import HAVE_MPI, ROOT, env, launcher  # noqa: E402

pytestmark = pytest.mark.skipif(not HAVE_MPI, reason="needs the MPI extra: pip install 'netcli[mpi]'")
pytest.importorskip("PIL")

NET = """\
name: pics
layers:
  - {{name: data, type: ImageData, top: [data, label], transform_param: {{crop_size: 8, mirror: true}},
     image_data_param: {{source: list.txt, root_folder: {root}/, batch_size: 16, threads: {threads}}}}}
  - {{name: ip, type: InnerProduct, bottom: data, top: ip, inner_product_param: {{num_output: 2}}}}
  - {{name: loss, type: SoftmaxWithLoss, bottom: [ip, label], top: loss}}
"""

# Logs the samples each reader reads in its batches, to a file per rank and process (decoding
# workers included: they unpickle this class); the reader's shape probe of the first image at
# setup is apart.
COUNTING = """\
import os
from netcli.data import readers
class Counting(readers.ImageListReader):
    def read(self, indices):
        name = f"reads-{os.environ['READS_RANK']}-{os.getpid()}.txt"
        with open(os.path.join(os.environ["READS_DIR"], name), "a") as f:
            f.write("".join(f"{int(i)}\\n" for i in indices))
        return super().read(indices)
readers.ImageListReader = Counting
"""

# `netcli time`'s benchmark under the launcher's group, its net's batch cut in 2 shares (one per rank).
DRIVER = """\
import json, os, sys
import counting
from netcli import Net
from netcli.distributed import group
from netcli.commands import timing
def net_of_2_shares(*args, **kwargs):      # as `netcli train --shares 2` would cut a batch this small
    net = Net(*args, **kwargs)
    net.executor.reshare(2)
    return net
timing.Net = net_of_2_shares
g = group()
os.environ["READS_RANK"] = str(g.rank)
lines = []
result = timing.benchmark(sys.argv[1], iterations=3, group=g, echo=lines.append)
if g.rank == 0:
    print("RESULT " + json.dumps({"wait": result["data_wait_ms_by_rank"], "lines": lines}))
"""


@pytest.mark.parametrize("threads", [0, 2])
def test_two_ranks_read_disjoint_halves_and_time_reports_each_ranks_data_wait(tmp_path, threads):
    from PIL import Image
    rng = np.random.default_rng(0)
    n = 400                                      # more than the batches read: no image comes round again
    for i in range(n):
        Image.fromarray(rng.integers(0, 256, (10, 10, 3), dtype=np.uint8)).save(tmp_path / f"{i}.png")
    (tmp_path / "list.txt").write_text("".join(f"{i}.png {i % 2}\n" for i in range(n)))
    (tmp_path / "net.yaml").write_text(NET.format(root=tmp_path, threads=threads))
    (tmp_path / "driver.py").write_text(DRIVER)
    (tmp_path / "counting.py").write_text(COUNTING)
    (tmp_path / "reads").mkdir()
    e = dict(env(), PYTHONPATH=os.pathsep.join([ROOT, str(tmp_path), os.environ.get("PYTHONPATH", "")]),
             READS_DIR=str(tmp_path / "reads"))
    r = subprocess.run(launcher(2) + [sys.executable, str(tmp_path / "driver.py"), str(tmp_path / "net.yaml")],
                       capture_output=True, text=True, timeout=240, env=e, cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-3000:]
    got = json.loads([x for x in r.stdout.splitlines() if x.startswith("RESULT ")][0][7:])
    seen = [[], []]
    for name in os.listdir(tmp_path / "reads"):
        seen[int(name.split("-")[1])] += [int(x) for x in (tmp_path / "reads" / name).read_text().split()]
    assert len({name.split("-")[2] for name in os.listdir(tmp_path / "reads")}) == 2 * (threads or 1)   # the workers read, if any
    a, b = (set(x) for x in seen)
    assert len(a) == len(seen[0]) and len(b) == len(seen[1])                   # no rank reads an image twice
    assert not a & b, sorted(a & b)[:10]                                       # nor two ranks one image
    for rank, got_rows in enumerate((a, b)):       # rank r: rows 8r..8r+7 of every batch it read, no other
        batches = len(got_rows) // 8                 # (how many ahead of the last one it used: timing)
        assert batches >= 1 + 3 + 3 and got_rows == {16 * j + 8 * rank + i for j in range(batches) for i in range(8)}
    assert len(got["wait"]) == 2
    line = [x for x in got["lines"] if x.startswith("Data wait: ")]
    assert line and "rank 0 " in line[0] and "rank 1 " in line[0], got["lines"]
