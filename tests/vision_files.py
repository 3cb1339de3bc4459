"""Small image datasets in the official CIFAR-10 and Fashion-MNIST file formats, for the tests.

Each class c lights a different block of pixels (plus noise), so an MLP learns them in one epoch.
"""

from pathlib import Path

import numpy as np

from interbasis.data.vision import (
    CIFAR10_FOLDER,
    CIFAR10_TEST_BATCH,
    CIFAR10_TRAIN_BATCHES,
    FASHION_FILES,
    write_cifar_batch,
    write_idx,
)


def class_images(n: int, shape: tuple[int, ...], seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(n, *shape) uint8 images and (n,) labels 0..9: a class-specific bright block plus noise."""
    rng = np.random.default_rng(seed)
    labels = rng.permutation(np.arange(n) % 10)
    images = rng.integers(0, 60, size=(n, *shape), dtype=np.uint8)
    rows = shape[-2] // 10
    for label in range(10):
        images[labels == label, ..., label * rows:(label + 1) * rows, :] = 250
    return images, labels.astype(np.uint8)


def write_fashion_files(root: Path, n_train: int = 600, n_test: int = 200) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    for part, n, seed in (("train", n_train, 0), ("test", n_test, 1)):
        images, labels = class_images(n, (28, 28), seed)
        write_idx(root / FASHION_FILES[f"{part}_images"], images)
        write_idx(root / FASHION_FILES[f"{part}_labels"], labels)
    return root


def write_cifar_files(root: Path, per_batch: int = 50, n_test: int = 100) -> Path:
    """Five training batches and a test batch under root/cifar-10-batches-py; returns root."""
    folder = root / CIFAR10_FOLDER
    folder.mkdir(parents=True, exist_ok=True)
    for seed, name in enumerate((*CIFAR10_TRAIN_BATCHES, CIFAR10_TEST_BATCH)):
        n = n_test if name == CIFAR10_TEST_BATCH else per_batch
        images, labels = class_images(n, (3, 32, 32), seed)
        write_cifar_batch(folder / name, images.reshape(n, -1), labels)
    return root
