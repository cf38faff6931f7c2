"""Write the benchmark nets of issue 26 into configs/ (the YAML files are committed; run this only
after changing it, then `netcli check --model` each file):

    python bench/make_configs.py [--out configs]

CIFAR-10 nets (TRAIN/TEST, Data layers over data/cifar10_{train,test}.npz, as cifar10_quick):
resnet20_cifar, resnet56_cifar (He et al. 2015, section 4.2, with 1x1 stride-2 projections),
mobilenet_cifar (MobileNet-v1's 13 depthwise-separable blocks on 32x32: depthwise 3x3 as a
Convolution with group = channels, pointwise 1x1), inception_cifar (GoogLeNet-style modules joined
by Concat, LRN after the stem). Inference only, 224x224 deploy nets with an Input layer of batch 1:
squeezenet11 (SqueezeNet 1.1) and resnet50 (He et al.'s Caffe ResNet-50, stride on the 1x1).
"""
from __future__ import annotations

import argparse
import os

import yaml

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CIFAR_MEAN = [125.3, 123.0, 113.9]


class Builder:
    """Collects layers in order; each method adds a layer and returns its top's name."""

    def __init__(self):
        self.layers = []

    def add(self, **layer):
        self.layers.append(layer)
        return layer["top"] if isinstance(layer["top"], str) else layer["top"][0]

    def conv(self, name, bottom, n, k, stride=1, pad=0, group=1, bias=False):
        p = {"num_output": n, "kernel_size": k}
        if pad:
            p["pad"] = pad
        if stride != 1:
            p["stride"] = stride
        if group != 1:
            p["group"] = group
        if not bias:
            p["bias_term"] = False
        p["weight_filler"] = {"type": "msra"}
        if bias:
            p["bias_filler"] = {"type": "constant"}
        return self.add(name=name, type="Convolution", bottom=bottom, top=name, convolution_param=p)

    def bn_scale(self, name, top, relu=True):
        """Caffe's BatchNorm + Scale (the learned affine) in place, then a ReLU if asked."""
        self.add(name=f"bn_{name}", type="BatchNorm", bottom=top, top=top)
        self.add(name=f"scale_{name}", type="Scale", bottom=top, top=top, scale_param={"bias_term": True})
        if relu:
            self.relu(f"relu_{name}", top)
        return top

    def conv_bn(self, name, bottom, n, k, stride=1, pad=0, group=1, relu=True):
        return self.bn_scale(name, self.conv(name, bottom, n, k, stride, pad, group), relu)

    def relu(self, name, top):
        return self.add(name=name, type="ReLU", bottom=top, top=top)

    def pool(self, name, bottom, pool="MAX", k=None, stride=1, pad=0):
        p = {"pool": pool}
        if k is None:
            p["global_pooling"] = True
        else:
            p["kernel_size"] = k
            if stride != 1:
                p["stride"] = stride
            if pad:
                p["pad"] = pad
        return self.add(name=name, type="Pooling", bottom=bottom, top=name, pooling_param=p)

    def fc(self, name, bottom, n):
        return self.add(name=name, type="InnerProduct", bottom=bottom, top=name, param=[{"lr_mult": 1}, {"lr_mult": 2}],
                        inner_product_param={"num_output": n, "weight_filler": {"type": "msra"},
                                             "bias_filler": {"type": "constant"}})

    def cifar_data(self, train_batch=64, test_batch=100):
        for phase, split, batch in (("TRAIN", "train", train_batch), ("TEST", "test", test_batch)):
            data = {"source": f"data/cifar10_{split}.npz", "batch_size": batch}
            if phase == "TRAIN":
                data["shuffle"] = True
            self.add(name="cifar", type="Data", top=["data", "label"], include={"phase": phase},
                     transform_param={"mean_value": CIFAR_MEAN}, data_param=data)
        return "data"

    def cifar_head(self, bottom):
        self.add(name="accuracy", type="Accuracy", bottom=[bottom, "label"], top="accuracy", include={"phase": "TEST"})
        self.add(name="loss", type="SoftmaxWithLoss", bottom=[bottom, "label"], top="loss")


# -- CIFAR-10 nets -----------------------------------------------------------------------------
def resnet_cifar(n):
    """ResNet-(6n+2): a 3x3 stem, three stages of n basic blocks (16, 32, 64 channels)."""
    b = Builder()
    x = b.conv_bn("conv1", b.cifar_data(), 16, 3, pad=1)
    channels = 16
    for stage, width in enumerate((16, 32, 64), 1):
        for block in range(1, n + 1):
            name = f"res{stage}_{block}"
            stride = 2 if width != channels else 1
            y = b.conv_bn(f"{name}_a", x, width, 3, stride, 1)
            y = b.conv_bn(f"{name}_b", y, width, 3, 1, 1, relu=False)
            short = x if width == channels else b.conv_bn(f"{name}_proj", x, width, 1, stride, relu=False)
            x = b.add(name=name, type="Eltwise", bottom=[short, y], top=name, eltwise_param={"operation": "SUM"})
            b.relu(f"relu_{name}", x)
            channels = width
    b.cifar_head(b.fc("fc10", b.pool("pool", x, "AVE"), 10))
    return b.layers


def mobilenet_cifar():
    """MobileNet-v1 on 32x32: the stem keeps stride 1, so the five stride-2 blocks end at 2x2."""
    b = Builder()
    x = b.conv_bn("conv1", b.cifar_data(), 32, 3, pad=1)
    channels = 32
    blocks = [(64, 1), (128, 2), (128, 1), (256, 2), (256, 1), (512, 2)] + [(512, 1)] * 5 + [(1024, 2), (1024, 1)]
    for k, (width, stride) in enumerate(blocks, 1):
        x = b.conv_bn(f"conv{k}_dw", x, channels, 3, stride, 1, group=channels)
        x = b.conv_bn(f"conv{k}_pw", x, width, 1)
        channels = width
    b.cifar_head(b.fc("fc10", b.pool("pool", x, "AVE"), 10))
    return b.layers


def inception_module(b, name, x, c1, c3r, c3, c5r, c5, pp):
    """GoogLeNet's module: 1x1, 1x1-3x3, 1x1-5x5 and 3x3 max pool-1x1 branches, joined by Concat."""
    def conv_relu(suffix, bottom, n, k, pad=0):
        top = b.conv(f"{name}_{suffix}", bottom, n, k, pad=pad, bias=True)
        return b.relu(f"{name}_relu_{suffix}", top)
    branches = [conv_relu("1x1", x, c1, 1),
                conv_relu("3x3", conv_relu("3x3_reduce", x, c3r, 1), c3, 3, 1),
                conv_relu("5x5", conv_relu("5x5_reduce", x, c5r, 1), c5, 5, 2),
                conv_relu("pool_proj", b.pool(f"{name}_pool", x, "MAX", 3, 1, 1), pp, 1)]
    return b.add(name=f"{name}_output", type="Concat", bottom=branches, top=f"{name}_output")


def inception_cifar():
    b = Builder()
    x = b.relu("relu_conv1", b.conv("conv1", b.cifar_data(), 64, 3, pad=1, bias=True))
    x = b.pool("pool1", x, "MAX", 3, 2)                                       # 32 -> 16
    x = b.add(name="norm1", type="LRN", bottom=x, top="norm1",
              lrn_param={"local_size": 5, "alpha": 0.0001, "beta": 0.75})
    x = inception_module(b, "inception_3a", x, 32, 48, 64, 8, 16, 16)        # 128 channels
    x = inception_module(b, "inception_3b", x, 64, 64, 96, 16, 48, 32)       # 240
    x = b.pool("pool3", x, "MAX", 3, 2)                                       # 16 -> 8
    x = inception_module(b, "inception_4a", x, 96, 48, 104, 8, 24, 32)       # 256
    x = inception_module(b, "inception_4b", x, 80, 56, 112, 12, 32, 32)      # 256
    x = b.pool("pool4", x, "AVE")
    x = b.add(name="drop", type="Dropout", bottom=x, top=x, dropout_param={"dropout_ratio": 0.4})
    b.cifar_head(b.fc("fc10", x, 10))
    return b.layers


# -- 224x224 deploy nets -----------------------------------------------------------------------
def deploy_input(b):
    return b.add(name="data", type="Input", top="data", input_param={"shape": [{"dim": [1, 3, 224, 224]}]})


def squeezenet11():
    b = Builder()

    def conv_relu(name, bottom, n, k, stride=1, pad=0):
        return b.relu(f"relu_{name}", b.conv(name, bottom, n, k, stride, pad, bias=True))

    def fire(name, x, s, e):
        sq = conv_relu(f"{name}_squeeze1x1", x, s, 1)
        branches = [conv_relu(f"{name}_expand1x1", sq, e, 1), conv_relu(f"{name}_expand3x3", sq, e, 3, pad=1)]
        return b.add(name=f"{name}_concat", type="Concat", bottom=branches, top=f"{name}_concat")

    x = conv_relu("conv1", deploy_input(b), 64, 3, 2)                        # 224 -> 111
    x = b.pool("pool1", x, "MAX", 3, 2)                                       # 55
    x = fire("fire3", fire("fire2", x, 16, 64), 16, 64)
    x = b.pool("pool3", x, "MAX", 3, 2)                                       # 27
    x = fire("fire5", fire("fire4", x, 32, 128), 32, 128)
    x = b.pool("pool5", x, "MAX", 3, 2)                                       # 13
    for k, (s, e) in enumerate(((48, 192), (48, 192), (64, 256), (64, 256)), 6):
        x = fire(f"fire{k}", x, s, e)
    x = b.add(name="drop9", type="Dropout", bottom=x, top=x, dropout_param={"dropout_ratio": 0.5})
    x = conv_relu("conv10", x, 1000, 1)
    x = b.pool("pool10", x, "AVE")
    b.add(name="prob", type="Softmax", bottom=x, top="prob")
    return b.layers


def resnet50():
    b = Builder()
    x = b.conv_bn("conv1", deploy_input(b), 64, 7, 2, 3)                      # 224 -> 112
    x = b.pool("pool1", x, "MAX", 3, 2)                                       # 56
    for stage, (width, blocks) in enumerate(((64, 3), (128, 4), (256, 6), (512, 3)), 2):
        for k in range(blocks):
            name = f"res{stage}{'abcdef'[k]}"
            stride = 2 if k == 0 and stage > 2 else 1
            short = x
            if k == 0:
                short = b.conv_bn(f"{name}_branch1", x, 4 * width, 1, stride, relu=False)
            y = b.conv_bn(f"{name}_branch2a", x, width, 1, stride)
            y = b.conv_bn(f"{name}_branch2b", y, width, 3, 1, 1)
            y = b.conv_bn(f"{name}_branch2c", y, 4 * width, 1, relu=False)
            x = b.add(name=name, type="Eltwise", bottom=[short, y], top=name, eltwise_param={"operation": "SUM"})
            b.relu(f"{name}_relu", x)
    x = b.fc("fc1000", b.pool("pool5", x, "AVE"), 1000)
    b.add(name="prob", type="Softmax", bottom=x, top="prob")
    return b.layers


NETS = {
    "resnet20_cifar": (lambda: resnet_cifar(3), "ResNet-20 for CIFAR-10"),
    "resnet56_cifar": (lambda: resnet_cifar(9), "ResNet-56 for CIFAR-10"),
    "mobilenet_cifar": (mobilenet_cifar, "MobileNet-v1 for 32x32 CIFAR-10 images"),
    "inception_cifar": (inception_cifar, "An Inception (GoogLeNet-style) net for CIFAR-10"),
    "squeezenet11": (squeezenet11, "SqueezeNet 1.1, deploy form (224x224, 1000 classes)"),
    "resnet50": (resnet50, "ResNet-50, deploy form (224x224, 1000 classes)"),
}


def flow(value):
    text = yaml.safe_dump(value, default_flow_style=True, sort_keys=False, width=1 << 20)
    return text.removesuffix("...\n").strip()          # a plain scalar ends its document with '...'


def to_yaml(name, title, layers):
    """The layers in the configs' style: short layers on one line, others one key a line."""
    out = [f"# {title}. Written by bench/make_configs.py (edit that, then run it).",
           f"name: {name}", "layers:"]
    for layer in layers:
        line = f"  - {flow(layer)}"
        if len(line) <= 110:
            out.append(line)
            continue
        for k, (key, value) in enumerate(layer.items()):
            out.append(f"{'  - ' if k == 0 else '    '}{key}: {flow(value)}")
    text = "\n".join(out) + "\n"
    assert yaml.safe_load(text) == {"name": name, "layers": layers}
    return text


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=os.path.join(ROOT, "configs"))
    args = ap.parse_args()
    for name, (make, title) in NETS.items():
        path = os.path.join(args.out, f"{name}.yaml")
        with open(path + ".tmp", "w") as f:
            f.write(to_yaml(name, title, make()))
        os.replace(path + ".tmp", path)
        print(path)


if __name__ == "__main__":
    main()
