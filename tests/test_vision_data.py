"""CIFAR-10 and Fashion-MNIST loaders: official formats, download with checksum, clear errors."""

import hashlib
import tarfile
from pathlib import Path

import numpy as np
import pytest
import torch

from interbasis.data.vision import (
    CIFAR10_FOLDER,
    FASHION_DEFAULT_ROOT,
    DatasetFormatError,
    DatasetNotFound,
    load_cifar10,
    load_fashion_mnist,
    load_image_split,
    read_idx,
    write_idx,
)
from vision_files import class_images, write_cifar_files, write_fashion_files


def test_idx_round_trip_and_bad_magic(tmp_path):
    array = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    write_idx(tmp_path / "a.gz", array)
    np.testing.assert_array_equal(read_idx(tmp_path / "a.gz"), array)
    (tmp_path / "bad").write_bytes(bytes([0, 0, 0x0D, 1, 0, 0, 0, 1]) + b"\0\0\0\0")
    with pytest.raises(DatasetFormatError, match="bad magic"):
        read_idx(tmp_path / "bad")
    (tmp_path / "short").write_bytes(bytes([0, 0, 0x08, 1, 0, 0, 0, 5, 1, 2]))
    with pytest.raises(DatasetFormatError, match="header says"):
        read_idx(tmp_path / "short")


def test_fashion_files_load_as_flat_unit_interval_images(tmp_path):
    root = write_fashion_files(tmp_path / "fashion", n_train=60, n_test=20)
    data = load_fashion_mnist(root)
    images, labels = class_images(60, (28, 28), seed=0)
    assert data.train_images.shape == (60, 784) and data.test_images.shape == (20, 784)
    assert data.train_images.dtype == torch.float32 and data.train_labels.dtype == torch.long
    torch.testing.assert_close(data.train_images, torch.tensor(images.reshape(60, -1) / 255.0,
                                                               dtype=torch.float32))
    assert data.train_labels.tolist() == labels.tolist()
    assert data.classes[8] == "Bag" and data.groups["footwear"] == (5, 7, 9)


def test_cifar_batches_load_in_official_order(tmp_path):
    root = write_cifar_files(tmp_path, per_batch=30, n_test=40)
    data = load_image_split("cifar10", root)
    assert data.train_images.shape == (150, 3072) and data.test_images.shape == (40, 3072)
    second_batch, second_labels = class_images(30, (3, 32, 32), seed=1)
    torch.testing.assert_close(data.train_images[30:60] * 255,
                               torch.tensor(second_batch.reshape(30, -1), dtype=torch.float32))
    assert data.train_labels[30:60].tolist() == second_labels.tolist()
    assert set(data.groups["vehicle"]) == {data.classes.index(name) for name in
                                           ("airplane", "automobile", "ship", "truck")}


def test_fingerprint_tells_datasets_apart(tmp_path):
    a = load_fashion_mnist(write_fashion_files(tmp_path / "a", n_train=60, n_test=20))
    b_root = write_fashion_files(tmp_path / "b", n_train=60, n_test=20)
    assert load_fashion_mnist(b_root).fingerprint == a.fingerprint
    images, labels = class_images(60, (28, 28), seed=5)
    write_idx(b_root / "train-images-idx3-ubyte.gz", images)
    assert load_fashion_mnist(b_root).fingerprint != a.fingerprint


@pytest.mark.parametrize(("name", "hint"), [("fashion_mnist", "apt-get install -y"),
                                            ("cifar10", "cifar-10-batches-py")])
def test_missing_files_give_one_line_saying_what_to_do(tmp_path, name, hint):
    with pytest.raises(DatasetNotFound) as caught:
        load_image_split(name, tmp_path / "empty")
    message = str(caught.value)
    assert len(message.splitlines()) == 1 and hint in message and str(tmp_path) in message


def _archive(tmp_path: Path) -> tuple[Path, str]:
    source = write_cifar_files(tmp_path / "source", per_batch=10, n_test=10)
    archive = tmp_path / "cifar-10-python.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(source / CIFAR10_FOLDER, arcname=CIFAR10_FOLDER)
    return archive, hashlib.md5(archive.read_bytes()).hexdigest()


def test_download_checks_the_checksum_then_extracts(tmp_path):
    archive, md5 = _archive(tmp_path)
    root = tmp_path / "data"
    data = load_cifar10(root, download=True, url=archive.as_uri(), md5=md5)
    assert data.train_images.shape == (50, 3072)
    assert sorted(p.name for p in root.iterdir()) == [CIFAR10_FOLDER]  # no archive left behind


def test_download_with_a_wrong_checksum_extracts_nothing(tmp_path):
    archive, md5 = _archive(tmp_path)
    root = tmp_path / "data"
    with pytest.raises(ValueError, match="MD5"):
        load_cifar10(root, download=True, url=archive.as_uri(), md5="0" * 32)
    assert list(root.iterdir()) == []


def test_unreachable_download_is_one_line(tmp_path):
    with pytest.raises(DatasetNotFound) as caught:
        load_cifar10(tmp_path / "data", download=True,
                     url=(tmp_path / "no-such-archive.tar.gz").as_uri())
    assert len(str(caught.value).splitlines()) == 1 and "by hand" in str(caught.value)


@pytest.mark.skipif(not Path(FASHION_DEFAULT_ROOT).is_dir(),
                    reason="real Fashion-MNIST absent (apt-get install dataset-fashion-mnist)")
def test_real_fashion_mnist_is_balanced():
    data = load_fashion_mnist()
    assert data.train_images.shape == (60000, 784) and data.test_images.shape == (10000, 784)
    assert torch.bincount(data.train_labels).tolist() == [6000] * 10
    assert torch.bincount(data.test_labels).tolist() == [1000] * 10
    assert 0.2 < data.train_images.mean().item() < 0.4  # mostly dark background
