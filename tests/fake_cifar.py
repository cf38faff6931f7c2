"""Small stand-ins for the binary CIFAR archives (cifar-10-binary.tar.gz, cifar-100-binary.tar.gz):
the same member names and record layout, a few learnable records (each class a colour tint)."""
import io
import os
import tarfile

import numpy as np


def cifar_records(n, label_bytes=1, seed=0):
    """(record bytes, images (n, 3, 32, 32) uint8, labels (n, label_bytes))."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 10, (n, label_bytes)).astype(np.uint8)
    tints = np.random.default_rng(99).integers(40, 215, (10, 3))
    images = np.clip(tints[labels[:, -1]][:, :, None, None] + rng.normal(0, 40, (n, 3, 32, 32)), 0, 255).astype(np.uint8)
    return np.concatenate([labels, images.reshape(n, -1)], axis=1).tobytes(), images, labels


def tar_gz(members):
    """{name: bytes} as the bytes of a .tar.gz archive."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def cifar10_archive(n_train=30, n_test=20, seed=0):
    """(archive bytes, {split: (images, labels)}): 5 train batches of n_train // 5 and one test batch."""
    members, splits, per = {}, {}, n_train // 5
    train_images, train_labels = [], []
    for i in range(1, 6):
        raw, images, labels = cifar_records(per, seed=seed + i)
        members[f"cifar-10-batches-bin/data_batch_{i}.bin"] = raw
        train_images.append(images)
        train_labels.append(labels[:, 0])
    raw, images, labels = cifar_records(n_test, seed=seed + 9)
    members["cifar-10-batches-bin/test_batch.bin"] = raw
    members["cifar-10-batches-bin/batches.meta.txt"] = b"airplane\n"
    splits["train"] = (np.concatenate(train_images), np.concatenate(train_labels))
    splits["test"] = (images, labels[:, 0])
    return tar_gz(members), splits


def put_cifar10(data_dir, n_train=30, n_test=20):
    """A fake cifar-10-binary.tar.gz in `data_dir`/cifar10 (where `cifar10:train` looks); returns the splits."""
    os.makedirs(os.path.join(data_dir, "cifar10"), exist_ok=True)
    archive, splits = cifar10_archive(n_train, n_test)
    with open(os.path.join(data_dir, "cifar10", "cifar-10-binary.tar.gz"), "wb") as f:
        f.write(archive)
    return splits
