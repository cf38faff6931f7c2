"""Data throughput, netcli against PyTorch (issue 28, item 5): JPEG images of 256x256 -> a random
227x227 crop, a random mirror and the mean subtracted, in batches, images per second; netcli's
ImageData layer with `threads` decoding workers against torch.utils.data.DataLoader over PIL with
the same number of workers, in one run on one machine (its CPU model is printed). Needs Pillow and
torch. Run it on a quiet machine:

    python bench/data_vs_torch.py --workers 4 --images 2000 --batches 30
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.join(ROOT, "bench"))
from nets_vs_torch import cpu_model  # noqa: E402 - the CPU line every bench prints

MEAN = (104.0, 117.0, 123.0)            # BGR, Caffe's ImageNet means

NET = """\
name: data_only
layers:
  - {{name: data, type: ImageData, top: [data, label],
     transform_param: {{crop_size: {crop}, mirror: true, mean_value: [{mean}]}},
     image_data_param: {{source: {list}, root_folder: {root}/, batch_size: {batch}, shuffle: true, threads: {workers}}}}}
"""


def make_images(folder, n, size):
    """n JPEGs of size x size (smooth pictures with noise, about a photo's size on disk) and their list."""
    from PIL import Image
    rng = np.random.default_rng(0)
    y, x = np.mgrid[0:size, 0:size]
    lines = []
    for i in range(n):
        base = (np.sin(x / (9 + i % 7)) + np.cos(y / (5 + i % 11))) * 60 + 128
        a = np.clip(base[..., None] + rng.normal(0, 20, (size, size, 3)), 0, 255).astype(np.uint8)
        Image.fromarray(a).save(os.path.join(folder, f"{i}.jpg"), quality=90)
        lines.append(f"{i}.jpg {i % 10}")
    with open(os.path.join(folder, "list.txt"), "w") as f:
        f.write("\n".join(lines) + "\n")


def time_netcli(folder, args):
    from netcli import Net
    with open(os.path.join(folder, "net.yaml"), "w") as f:
        f.write(NET.format(crop=args.crop, mean=", ".join(map(str, MEAN)), list=os.path.join(folder, "list.txt"),
                           root=folder, batch=args.batch, workers=args.workers))
    net = Net(os.path.join(folder, "net.yaml"), phase="TRAIN")
    for _ in range(args.warmup):
        net.forward()
    t0 = time.perf_counter()
    for _ in range(args.batches):
        net.forward()
    rate = args.batches * args.batch / (time.perf_counter() - t0)
    del net
    return rate


class TorchImages:
    """The same pipeline in PyTorch's usual form: PIL decoding, a random crop and flip, BGR, the mean."""

    def __init__(self, folder, crop):
        with open(os.path.join(folder, "list.txt")) as f:
            self.items = [(os.path.join(folder, p), int(c)) for p, c in (line.split() for line in f if line.strip())]
        self.crop = crop
        self.mean = np.asarray(MEAN, np.float32).reshape(3, 1, 1)

    def __len__(self):
        return len(self.items)

    def __getitem__(self, i):
        import torch
        from PIL import Image
        path, label = self.items[i]
        with Image.open(path) as im:
            a = np.asarray(im.convert("RGB"))[:, :, ::-1].transpose(2, 0, 1)
        rng = np.random.default_rng()
        h, w = a.shape[1:]
        y, x = rng.integers(0, h - self.crop + 1), rng.integers(0, w - self.crop + 1)
        a = a[:, y:y + self.crop, x:x + self.crop].astype(np.float32) - self.mean
        if rng.random() < 0.5:
            a = a[:, :, ::-1]
        return torch.from_numpy(np.ascontiguousarray(a)), label


def time_torch(folder, args):
    import torch
    torch.set_num_threads(1)
    loader = torch.utils.data.DataLoader(TorchImages(folder, args.crop), batch_size=args.batch, shuffle=True,
                                         num_workers=args.workers, persistent_workers=args.workers > 0,
                                         drop_last=True)
    it = iter(loader)

    def batch():
        nonlocal it
        try:
            return next(it)
        except StopIteration:
            it = iter(loader)
            return next(it)

    for _ in range(args.warmup):
        batch()
    t0 = time.perf_counter()
    for _ in range(args.batches):
        batch()
    return args.batches * args.batch / (time.perf_counter() - t0)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", type=int, default=2000)
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--crop", type=int, default=227)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--workers", type=int, default=len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity")
                    else os.cpu_count())
    ap.add_argument("--batches", type=int, default=30, help="batches timed (after --warmup)")
    ap.add_argument("--warmup", type=int, default=3)
    args = ap.parse_args(argv)
    print(f"CPU: {cpu_model()}, {os.cpu_count()} logical cores; {args.workers} decoding workers")
    print(f"JPEG {args.size}x{args.size} -> random {args.crop} crop + mirror + mean, batch {args.batch}, "
          f"{args.batches} batches timed")
    with tempfile.TemporaryDirectory(prefix="netcli-data-bench-") as folder:
        make_images(folder, args.images, args.size)
        ours = time_netcli(folder, args)
        theirs = time_torch(folder, args)
    print(f"netcli ImageData:            {ours:10.1f} images/s")
    print(f"torch DataLoader (PIL):      {theirs:10.1f} images/s")
    print(f"netcli / torch:              {ours / theirs:10.2f}x")


if __name__ == "__main__":
    main()
