"""A small ResNet-style net on the built-in MNIST source (28x28, 1 channel): 3x3 convolutions with
BatchNorm + Scale + ReLU, an Eltwise SUM shortcut, a 1x1 branch joined by Concat, LRN, PReLU,
Softmax. Every layer after the data layer is per-sample, so the pass is one stretch."""
import os

NET = """\
name: ResNetLike
layers:
  - {{name: mnist, type: Data, top: [data, label], include: {{phase: TRAIN}},
     transform_param: {{scale: 0.00390625}}, data_param: {{source: "mnist:train", batch_size: {batch}, shuffle: true}}}}
  - {{name: mnist, type: Data, top: [data, label], include: {{phase: TEST}},
     transform_param: {{scale: 0.00390625}}, data_param: {{source: "mnist:test", batch_size: 50}}}}
  - {{name: conv1, type: Convolution, bottom: data, top: conv1,
     convolution_param: {{num_output: 8, kernel_size: 3, pad: 1, stride: 2, bias_term: false, weight_filler: {{type: msra}}}}}}
  - {{name: bn1, type: BatchNorm, bottom: conv1, top: conv1}}
  - {{name: scale1, type: Scale, bottom: conv1, top: conv1, scale_param: {{bias_term: true}}}}
  - {{name: relu1, type: ReLU, bottom: conv1, top: conv1}}
  - {{name: conv2a, type: Convolution, bottom: conv1, top: conv2a,
     convolution_param: {{num_output: 8, kernel_size: 3, pad: 1, bias_term: false, weight_filler: {{type: msra}}}}}}
  - {{name: bn2a, type: BatchNorm, bottom: conv2a, top: conv2a}}
  - {{name: scale2a, type: Scale, bottom: conv2a, top: conv2a, scale_param: {{bias_term: true}}}}
  - {{name: prelu2a, type: PReLU, bottom: conv2a, top: conv2a}}
  - {{name: conv2b, type: Convolution, bottom: conv2a, top: conv2b,
     convolution_param: {{num_output: 8, kernel_size: 3, pad: 1, bias_term: false, weight_filler: {{type: msra}}}}}}
  - {{name: bn2b, type: BatchNorm, bottom: conv2b, top: conv2b}}
  - {{name: scale2b, type: Scale, bottom: conv2b, top: conv2b, scale_param: {{bias_term: true}}}}
  - {{name: res2, type: Eltwise, bottom: [conv1, conv2b], top: res2}}
  - {{name: relu2, type: ReLU, bottom: res2, top: res2}}
  - {{name: proj, type: Convolution, bottom: res2, top: proj,
     convolution_param: {{num_output: 4, kernel_size: 1, weight_filler: {{type: msra}}}}}}
  - {{name: join, type: Concat, bottom: [res2, proj], top: join}}
  - {{name: norm, type: LRN, bottom: join, top: norm, lrn_param: {{local_size: 3, alpha: 0.0001}}}}
  - {{name: pool, type: Pooling, bottom: norm, top: pool, pooling_param: {{pool: AVE, kernel_size: 2, stride: 2}}}}
  - {{name: ip, type: InnerProduct, bottom: pool, top: ip,
     inner_product_param: {{num_output: 10, weight_filler: {{type: xavier}}, bias_filler: {{type: constant}}}}}}
  - {{name: prob, type: Softmax, bottom: ip, top: prob, include: {{phase: TEST}}}}
  - {{name: accuracy, type: Accuracy, bottom: [prob, label], top: accuracy, include: {{phase: TEST}}}}
  - {{name: loss, type: SoftmaxWithLoss, bottom: [ip, label], top: loss}}
"""

# The "direct" convolution (netcli/ops/cpu/direct.py): 16 channels with stride 1 after a first
# layer on one channel (im2col), then 32 outputs with stride 2; a BatchNorm between.
DIRECT_NET = NET.split("  - {{name: conv1,")[0].replace("ResNetLike", "Direct") + """\
  - {{name: conv1, type: Convolution, bottom: data, top: conv1,
     convolution_param: {{num_output: 16, kernel_size: 3, pad: 1, weight_filler: {{type: msra}}}}}}
  - {{name: relu1, type: ReLU, bottom: conv1, top: conv1}}
  - {{name: conv2, type: Convolution, bottom: conv1, top: conv2,
     convolution_param: {{num_output: 16, kernel_size: 3, pad: 1, bias_term: false, weight_filler: {{type: msra}}}}}}
  - {{name: bn2, type: BatchNorm, bottom: conv2, top: conv2}}
  - {{name: relu2, type: ReLU, bottom: conv2, top: conv2}}
  - {{name: conv3, type: Convolution, bottom: conv2, top: conv3,
     convolution_param: {{num_output: 32, kernel_size: 3, pad: 1, stride: 2, weight_filler: {{type: msra}}}}}}
  - {{name: relu3, type: ReLU, bottom: conv3, top: conv3}}
  - {{name: ip, type: InnerProduct, bottom: conv3, top: ip,
     inner_product_param: {{num_output: 10, weight_filler: {{type: xavier}}}}}}
  - {{name: loss, type: SoftmaxWithLoss, bottom: [ip, label], top: loss}}
"""

# An autoencoder's losses (Caffe's mnist_autoencoder: SigmoidCrossEntropyLoss and EuclideanLoss on
# the flattened image) beside a classifier's SoftmaxWithLoss that ignores one label (VALID: the
# normalizer counts labels over the whole batch).
LOSSES_NET = """\
name: Losses
layers:
  - {{name: mnist, type: Data, top: [data, label], include: {{phase: TRAIN}},
     transform_param: {{scale: 0.00390625}}, data_param: {{source: "mnist:train", batch_size: {batch}, shuffle: true}}}}
  - {{name: mnist, type: Data, top: [data, label], include: {{phase: TEST}},
     transform_param: {{scale: 0.00390625}}, data_param: {{source: "mnist:test", batch_size: 50}}}}
  - {{name: flat, type: Flatten, bottom: data, top: flat}}
  - {{name: code, type: InnerProduct, bottom: flat, top: code,
     inner_product_param: {{num_output: 16, weight_filler: {{type: xavier}}}}}}
  - {{name: act, type: ELU, bottom: code, top: code}}
  - {{name: decode, type: InnerProduct, bottom: code, top: decode,
     inner_product_param: {{num_output: 784, weight_filler: {{type: xavier}}}}}}
  - {{name: xent, type: SigmoidCrossEntropyLoss, bottom: [decode, flat], top: xent}}
  - {{name: sig, type: Sigmoid, bottom: decode, top: sig}}
  - {{name: l2, type: EuclideanLoss, bottom: [sig, flat], top: l2, loss_weight: 0.5}}
  - {{name: cls, type: InnerProduct, bottom: code, top: cls,
     inner_product_param: {{num_output: 10, weight_filler: {{type: xavier}}}}}}
  - {{name: loss, type: SoftmaxWithLoss, bottom: [cls, label], top: loss, loss_param: {{ignore_label: 3}}}}
"""

SOLVER = """net: {net}
base_lr: 0.01
momentum: 0.9
weight_decay: 0.0005
lr_policy: fixed
display: 0
max_iter: {iters}
test_interval: {test}
test_iter: 1
snapshot: 0
snapshot_prefix: {prefix}
random_seed: 3
"""


def resnet_solver(folder, name, iters=6, test=3, batch=32, text=NET):
    """Write the net (NET, or `text`) and its solver under folder; the solver's path."""
    os.makedirs(folder, exist_ok=True)
    net = os.path.join(folder, f"{name}_net.yaml")
    with open(net, "w") as f:
        f.write(text.format(batch=batch))
    path = os.path.join(folder, f"{name}.yaml")
    with open(path, "w") as f:
        f.write(SOLVER.format(net=net, iters=iters, test=test, prefix=os.path.join(folder, name)))
    return path
