"""Small image files and list files for the dataset-tool tests (convert-imageset, compute-mean)."""
import os

import numpy as np


def make_images(root, n=6, ext="png", size=(7, 9), seed=0):
    """n RGB images (random pixels) under root/cls<i%2>/, the list file's lines, and the arrays (H, W, 3)."""
    rng = np.random.default_rng(seed)
    lines, arrays = [], []
    for i in range(n):
        a = rng.integers(0, 256, size + (3,), dtype=np.uint8)
        name = f"cls{i % 2}/img {i}.{ext}"             # a space in the name: split at the last one, as Caffe
        os.makedirs(os.path.join(root, f"cls{i % 2}"), exist_ok=True)
        from PIL import Image
        Image.fromarray(a).save(os.path.join(root, name), **({"quality": 90} if ext == "jpg" else {}))
        lines.append(f"{name} {i % 3}")
        arrays.append(a)
    return lines, arrays


def write_list(path, lines):
    path.write_text("\n".join(lines) + "\n")
    return str(path)


def bgr(a):
    return a[:, :, ::-1].transpose(2, 0, 1) if a.ndim == 3 else a[None]
