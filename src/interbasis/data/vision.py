"""Image datasets for the vision MLPs (docs/experiments.md E2): CIFAR-10 and Fashion-MNIST,
flattened.

Both are read from the official file formats in a configured folder:

- CIFAR-10: the python-pickle batches ``<root>/cifar-10-batches-py/data_batch_1..5`` and
  ``test_batch``. With ``download=True`` and a reachable network the official archive is fetched
  into ``root`` and its MD5 checked before anything in it is unpickled.
- Fashion-MNIST: ``<root>/{train,t10k}-{images-idx3,labels-idx1}-ubyte.gz``, as Debian's
  ``dataset-fashion-mnist`` package installs them under ``/usr/share/datasets/fashion-mnist``.

Missing files raise :class:`DatasetNotFound` whose message is one line saying where to put them.
Pixels become float32 in [0, 1], flattened channel-major (CIFAR-10: 3 x 32 x 32 = 3072 values).

    >>> data = load_image_split("fashion_mnist", "/usr/share/datasets/fashion-mnist")
    >>> data.train_images.shape, data.test_images.shape
    (torch.Size([60000, 784]), torch.Size([10000, 784]))
"""

from __future__ import annotations

import gzip
import hashlib
import pickle
import shutil
import struct
import tarfile
import tempfile
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

CIFAR10_URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
CIFAR10_MD5 = "c58f30108f718f92721af3b95e74349a"
CIFAR10_FOLDER = "cifar-10-batches-py"
CIFAR10_TRAIN_BATCHES = tuple(f"data_batch_{i}" for i in range(1, 6))
CIFAR10_TEST_BATCH = "test_batch"
CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse",
                   "ship", "truck")
CIFAR10_GROUPS = {"vehicle": (0, 1, 8, 9), "animal": (2, 3, 4, 5, 6, 7)}

FASHION_FILES = {"train_images": "train-images-idx3-ubyte.gz",
                 "train_labels": "train-labels-idx1-ubyte.gz",
                 "test_images": "t10k-images-idx3-ubyte.gz",
                 "test_labels": "t10k-labels-idx1-ubyte.gz"}
FASHION_CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt",
                   "Sneaker", "Bag", "Ankle boot")
FASHION_GROUPS = {"clothing": (0, 1, 2, 3, 4, 6), "footwear": (5, 7, 9), "bag": (8,)}
FASHION_DEFAULT_ROOT = "/usr/share/datasets/fashion-mnist"

IDX_UBYTE = 0x08  # the idx type code of unsigned bytes, the only one these files use


class DatasetNotFound(FileNotFoundError):
    """The dataset's files are not where the config says; the message says what to do."""


class DatasetFormatError(ValueError):
    """A file is there but is not in the official format."""


@dataclass
class ImageSplit:
    """Flattened images (N, D) float32 in [0, 1] and labels (N,) long, with class metadata."""

    name: str
    train_images: Tensor
    train_labels: Tensor
    test_images: Tensor
    test_labels: Tensor
    classes: tuple[str, ...]
    groups: dict[str, tuple[int, ...]]  # class groups the class-separation view compares
    fingerprint: str  # hash of the raw training data: part of the checkpoint cache key

    @property
    def n_features(self) -> int:
        return self.train_images.shape[1]

    def split(self, name: str) -> tuple[Tensor, Tensor]:
        """(images, labels) of the split called ``name`` ("train" or "test")."""
        if name == "train":
            return self.train_images, self.train_labels
        if name == "test":
            return self.test_images, self.test_labels
        raise ValueError(f"unknown split {name!r}; use 'train' or 'test'")


def load_image_split(name: str, root: str | Path, download: bool = False) -> ImageSplit:
    """The dataset ``name`` ("cifar10" or "fashion_mnist") from ``root``."""
    if name == "cifar10":
        return load_cifar10(root, download=download)
    if name == "fashion_mnist":
        return load_fashion_mnist(root)
    raise ValueError(f"unknown image dataset {name!r}; use 'cifar10' or 'fashion_mnist'")


# ---------------------------------------------------------------- CIFAR-10


def load_cifar10(root: str | Path, download: bool = False, url: str = CIFAR10_URL,
                 md5: str = CIFAR10_MD5) -> ImageSplit:
    """CIFAR-10 from ``root/cifar-10-batches-py``, downloading it first if asked and missing."""
    folder = Path(root) / CIFAR10_FOLDER
    names = (*CIFAR10_TRAIN_BATCHES, CIFAR10_TEST_BATCH)
    missing = [name for name in names if not (folder / name).is_file()]
    if missing and download:
        download_cifar10(root, url=url, md5=md5)
        missing = [name for name in names if not (folder / name).is_file()]
    if missing:
        raise DatasetNotFound(
            f"CIFAR-10 not found: {folder} lacks {', '.join(missing)}; extract {CIFAR10_URL} "
            f"(cifar-10-batches-py/) into {Path(root)}, or set data.download=true when online")
    train = [_read_cifar_batch(folder / name) for name in CIFAR10_TRAIN_BATCHES]
    test = _read_cifar_batch(folder / CIFAR10_TEST_BATCH)
    train_pixels = np.concatenate([pixels for pixels, _ in train])
    train_labels = np.concatenate([labels for _, labels in train])
    return _split("cifar10", train_pixels, train_labels, *test, CIFAR10_CLASSES, CIFAR10_GROUPS)


def _read_cifar_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    # The official batches are python pickles; they are only read from the configured folder or
    # from an archive whose MD5 matched the official one.
    try:
        with open(path, "rb") as file:
            batch = pickle.load(file, encoding="bytes")
        pixels = np.asarray(batch[b"data"], dtype=np.uint8)
        labels = np.asarray(batch[b"labels"], dtype=np.int64)
    except (pickle.UnpicklingError, EOFError, KeyError, TypeError, ValueError) as error:
        raise DatasetFormatError(f"{path} is not a CIFAR-10 python batch: {error!r}") from None
    if pixels.ndim != 2 or pixels.shape[1] != 3072 or len(labels) != len(pixels):
        raise DatasetFormatError(f"{path}: expected data (N, 3072) and N labels, got "
                                 f"{pixels.shape} and {len(labels)}")
    return pixels, labels


def download_cifar10(root: str | Path, url: str = CIFAR10_URL, md5: str = CIFAR10_MD5,
                     timeout: float = 30.0) -> Path:
    """Fetch the archive at ``url`` into ``root``, check its MD5, extract it; return the folder.

    Raises :class:`DatasetNotFound` (one line) when the download fails and ValueError when the
    checksum does not match (the bad archive is deleted, nothing is extracted).
    """
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=root) as tmp:
        archive = Path(tmp) / "cifar-10-python.tar.gz"
        try:
            with urllib.request.urlopen(url, timeout=timeout) as response, \
                    open(archive, "wb") as file:
                shutil.copyfileobj(response, file)
        except OSError as error:
            reason = getattr(error, "reason", error)
            raise DatasetNotFound(
                f"CIFAR-10 download from {url} failed ({reason}); extract the archive "
                f"(cifar-10-batches-py/) into {root} by hand") from None
        digest = _md5(archive)
        if digest != md5:
            raise ValueError(f"CIFAR-10 archive from {url} has MD5 {digest}, expected {md5}; "
                             "not extracted")
        with tarfile.open(archive, "r:gz") as tar:
            members = [m for m in tar.getmembers() if m.name.startswith(f"{CIFAR10_FOLDER}/")]
            tar.extractall(root, members=members, filter="data")
    return root / CIFAR10_FOLDER


def _md5(path: Path) -> str:
    digest = hashlib.md5(usedforsecurity=False)
    with open(path, "rb") as file:
        for block in iter(lambda: file.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def write_cifar_batch(path: str | Path, pixels: np.ndarray, labels: np.ndarray) -> None:
    """Write a batch in the official format (tests and users building a small CIFAR-like set)."""
    batch = {b"batch_label": Path(path).name.encode(),
             b"labels": [int(label) for label in labels], b"data": np.asarray(pixels, np.uint8),
             b"filenames": [f"{i}.png".encode() for i in range(len(labels))]}
    with open(path, "wb") as file:
        pickle.dump(batch, file, protocol=2)


# ---------------------------------------------------------------- Fashion-MNIST


def load_fashion_mnist(root: str | Path = FASHION_DEFAULT_ROOT) -> ImageSplit:
    """Fashion-MNIST from the four idx-ubyte gz files in ``root``."""
    root = Path(root)
    missing = [file for file in FASHION_FILES.values() if not (root / file).is_file()]
    if missing:
        raise DatasetNotFound(
            f"Fashion-MNIST not found: {root} lacks {', '.join(missing)}; install it with "
            "`apt-get update && apt-get install -y dataset-fashion-mnist` (files in "
            "/usr/share/datasets/fashion-mnist) "
            "or set data.root to a folder holding the four idx-ubyte gz files")
    arrays = {key: read_idx(root / file) for key, file in FASHION_FILES.items()}
    for part in ("train", "test"):
        images, labels = arrays[f"{part}_images"], arrays[f"{part}_labels"]
        if images.ndim != 3 or labels.ndim != 1 or len(images) != len(labels):
            raise DatasetFormatError(f"Fashion-MNIST {part}: images {images.shape} and labels "
                                     f"{labels.shape} do not match")
    train_images, test_images = (arrays[key].reshape(len(arrays[key]), -1)
                                 for key in ("train_images", "test_images"))
    return _split("fashion_mnist", train_images, arrays["train_labels"].astype(np.int64),
                  test_images, arrays["test_labels"].astype(np.int64), FASHION_CLASSES,
                  FASHION_GROUPS)


def read_idx(path: str | Path) -> np.ndarray:
    """An idx-ubyte array (gzip-compressed or not): 4-byte magic, big-endian sizes, bytes."""
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as file:
            data = file.read()
    except (OSError, EOFError) as error:
        raise DatasetFormatError(f"cannot read {path}: {error}") from None
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] != IDX_UBYTE:
        raise DatasetFormatError(f"{path} is not an idx-ubyte file (bad magic number)")
    ndim = data[3]
    header = 4 + 4 * ndim
    shape = struct.unpack(f">{ndim}I", data[4:header])
    if len(data) - header != int(np.prod(shape)):
        raise DatasetFormatError(f"{path}: header says {shape}, file holds {len(data) - header} "
                                 "values")
    return np.frombuffer(data, dtype=np.uint8, offset=header).reshape(shape)


def write_idx(path: str | Path, array: np.ndarray) -> None:
    """Write a uint8 array as a gzip-compressed idx-ubyte file (the inverse of :func:`read_idx`)."""
    array = np.asarray(array, dtype=np.uint8)
    header = bytes([0, 0, IDX_UBYTE, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    with gzip.open(path, "wb") as file:
        file.write(header + array.tobytes())


# ---------------------------------------------------------------- shared


def _split(name: str, train_pixels: np.ndarray, train_labels: np.ndarray,
           test_pixels: np.ndarray, test_labels: np.ndarray, classes: tuple[str, ...],
           groups: dict[str, tuple[int, ...]]) -> ImageSplit:
    for labels in (train_labels, test_labels):
        if len(labels) and (labels.min() < 0 or labels.max() >= len(classes)):
            raise DatasetFormatError(f"{name}: labels outside 0..{len(classes) - 1}")
    digest = hashlib.sha256()
    digest.update(np.ascontiguousarray(train_pixels).tobytes())
    digest.update(np.ascontiguousarray(train_labels).tobytes())

    def images(pixels: np.ndarray) -> Tensor:
        return torch.from_numpy(np.ascontiguousarray(pixels, dtype=np.float32) / 255.0)

    return ImageSplit(name=name, train_images=images(train_pixels),
                      train_labels=torch.from_numpy(np.asarray(train_labels, np.int64)),
                      test_images=images(test_pixels),
                      test_labels=torch.from_numpy(np.asarray(test_labels, np.int64)),
                      classes=classes, groups=groups, fingerprint=digest.hexdigest()[:12])
