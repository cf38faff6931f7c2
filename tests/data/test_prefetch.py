"""The prefetch ring: sized and checked against the memory budget when the data layer is set up
(one line naming the layer and batch_size), fewer batches ahead when batches are large, buffers
allocated as they are reached, and an allocation failure is one error line."""
import numpy as np
import pytest

import netcli
from netcli.data import prefetch
from netcli.errors import NetcliError

SAMPLE_BYTES = 4 * (1 * 2 * 2 + 1)          # a 1x2x2 float32 sample and its float32 label


def _net(tmp_path, batch, prefetch_depth=4):
    np.savez(tmp_path / "d.npz", data=np.zeros((8, 1, 2, 2), np.uint8), label=np.arange(8))
    (tmp_path / "net.yaml").write_text(
        "layers:\n  - {name: d, type: Data, top: [data, label], "
        f"data_param: {{source: d.npz, batch_size: {batch}, prefetch: {prefetch_depth}}}}}\n")
    return netcli.Net(str(tmp_path / "net.yaml"), phase="TRAIN")


def test_prefetch_ring_is_refused_before_allocation(tmp_path, monkeypatch):
    batch = 100_000
    per_batch = batch * SAMPLE_BYTES
    monkeypatch.setattr("netcli.blob.physical_memory", lambda: 2 * 7 * per_batch)    # a budget of 7 batches
    with pytest.raises(netcli.ConfigError) as e:
        _net(tmp_path, batch)                         # 6 ring buffers and the tops (data and diff): 8
    (line,) = e.value.problems
    assert line.startswith(f"{tmp_path / 'net.yaml'}:2: layer 'd' (Data): field 'data_param.batch_size': "
                           "a batch of 100,000 samples of 1x2x2 needs")
    assert "6 prefetch buffers" in line and "netcli allows" in line


def test_large_batches_prepare_fewer_ahead_and_allocate_as_reached(tmp_path, monkeypatch):
    batch = 1000
    monkeypatch.setattr(prefetch, "RING_BYTES", 3 * batch * SAMPLE_BYTES)   # room for one batch ahead
    net = _net(tmp_path, batch)
    layer = net.data_layers()[0]
    assert layer.ahead == 1 and layer.buffer_bytes == 3 * batch * SAMPLE_BYTES
    for _ in range(5):
        net.forward()
    assert len(layer.prefetcher.slots) == 3
    np.testing.assert_array_equal(net.blobs["label"].data[:8], np.arange(8))
    assert prefetch.ring_plan(10, 4) == (4, 60)          # small batches: `prefetch` ahead


def test_a_buffer_that_cannot_be_allocated_is_one_error(tmp_path, monkeypatch):
    net = _net(tmp_path, 4)

    class NoMemory:       # numpy as the prefetch thread sees it, out of memory
        float32 = np.float32

        @staticmethod
        def empty(*args, **kw):
            raise MemoryError("cannot allocate")
    monkeypatch.setattr(prefetch, "np", NoMemory)
    with pytest.raises(NetcliError, match="data layer 'd': MemoryError: cannot allocate"):
        net.forward()
