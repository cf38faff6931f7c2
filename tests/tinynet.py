"""A tiny dataset and net/solver files for solver and CLI tests."""

import numpy as np


def make_data(path, n=256, seed=0):
    """Two classes of 1x8x8 images: class 1 has a bright square; noisy and learnable."""
    rng = np.random.default_rng(seed)
    x = rng.integers(0, 120, (n, 1, 8, 8)).astype(np.uint8)
    y = rng.integers(0, 2, n)
    x[y == 1, :, 2:6, 2:6] += 100
    np.savez(path, data=x, label=y)
    return path


NET = """\
name: tiny
layers:
  - {{name: data, type: Data, top: [data, label], include: {{phase: TRAIN}},
     transform_param: {{scale: 0.00390625, mirror: {mirror}}},
     data_param: {{source: train.npz, batch_size: {batch}, shuffle: true}}}}
  - {{name: data, type: Data, top: [data, label], include: {{phase: TEST}},
     transform_param: {{scale: 0.00390625}}, data_param: {{source: test.npz, batch_size: 32}}}}
  - {{name: conv, type: Convolution, bottom: data, top: conv,
     convolution_param: {{num_output: 4, kernel_size: 3, weight_filler: {{type: xavier}}}}}}
  - {{name: pool, type: Pooling, bottom: conv, top: pool, pooling_param: {{kernel_size: 2, stride: 2}}}}
  - {{name: relu, type: ReLU, bottom: pool, top: pool}}
  - {{name: drop, type: Dropout, bottom: pool, top: pool, dropout_param: {{dropout_ratio: {drop}}}}}
  - {{name: ip, type: InnerProduct, bottom: pool, top: ip,
     inner_product_param: {{num_output: 2, weight_filler: {{type: xavier}}}}}}
  - {{name: acc, type: Accuracy, bottom: [ip, label], top: accuracy, include: {{phase: TEST}}}}
  - {{name: loss, type: SoftmaxWithLoss, bottom: [ip, label], top: loss}}
"""

SOLVER = """\
net: net.yaml
test_interval: {test_interval}
base_lr: {lr}
momentum: {momentum}
weight_decay: 0.0005
lr_policy: inv
gamma: 0.0001
power: 0.75
display: {display}
max_iter: {max_iter}
snapshot: {snapshot}
snapshot_prefix: {prefix}
random_seed: 7
iter_size: {iter_size}
type: {type}
"""


def make_tiny(tmp_path, batch=16, drop=0.2, mirror="true", iter_size=1, max_iter=40, snapshot=0,
              type="SGD", lr=0.05, momentum=0.9, test_interval=20, display=10, extra=""):
    make_data(tmp_path / "train.npz", 256, 0)
    make_data(tmp_path / "test.npz", 64, 1)
    (tmp_path / "net.yaml").write_text(NET.format(batch=batch, drop=drop, mirror=mirror))
    (tmp_path / "solver.yaml").write_text(SOLVER.format(
        test_interval=test_interval, lr=lr, momentum=momentum, display=display, max_iter=max_iter,
        snapshot=snapshot, prefix=str(tmp_path / "snaps" / "tiny"), iter_size=iter_size, type=type) + extra)
    return str(tmp_path / "solver.yaml")
