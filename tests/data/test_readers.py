"""Each reader decodes its data set's real on-disk format: pixels, labels and class names round-trip."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest

from lepton_cli.data.readers import (
    READERS,
    office31_path,
    office_home_path,
    official_files,
    read_cifar10,
    read_image_folder,
    read_mnist,
    read_mnist_m,
    read_stl10,
    read_svhn,
    read_usps,
)
from lepton_cli.errors import LeptonError
from tests.data import fake_files

SHARED_DATA = Path(__file__).resolve().parents[3] / "shared" / "data"
if not SHARED_DATA.is_dir():
    SHARED_DATA = Path("/work/shared/data")

WRITERS = {
    "cifar10": fake_files.write_cifar10,
    "stl10": fake_files.write_stl10,
    "mnist": fake_files.write_mnist,
    "usps": fake_files.write_usps,
    "svhn": fake_files.write_svhn,
    "mnist_m": fake_files.write_mnist_m,
}


def assert_same(decoded, expected) -> None:
    assert decoded.images.dtype == np.uint8
    assert decoded.images.shape == expected.images.shape
    np.testing.assert_array_equal(decoded.images, expected.images)
    np.testing.assert_array_equal(decoded.labels, expected.labels)
    assert decoded.classes == expected.classes


@pytest.mark.parametrize("name", sorted(WRITERS))
@pytest.mark.parametrize("train", [True, False], ids=["train", "test"])
def test_reader_round_trips_pixels_labels_and_class_names(tmp_path, name, train):
    written = WRITERS[name](tmp_path)
    decoded = READERS[name](tmp_path, train=train)
    assert_same(decoded, written["train" if train else "test"])


@pytest.mark.parametrize("name", ["cifar10", "stl10", "svhn", "mnist_m"])
def test_marker_pixel_lands_at_its_row_column_and_channel(tmp_path, name):
    # Catches swapped axes: STL-10 is stored column-major, SVHN as (H, W, C, N), CIFAR as CHW.
    WRITERS[name](tmp_path)
    row, col, channel, value = fake_files.MARKER
    images = READERS[name](tmp_path, train=False).images
    assert images[1, row, col, channel] == value
    assert images[1, col, row, channel] != value


def test_cifar10_reads_all_five_training_batches_with_real_class_names(tmp_path):
    fake_files.write_cifar10(tmp_path)
    train = read_cifar10(tmp_path, train=True)
    assert len(train) == 10
    assert train.classes[:3] == ["airplane", "automobile", "bird"] and train.classes[-1] == "truck"


def test_stl10_shifts_labels_to_zero_based_and_keeps_96_px(tmp_path):
    fake_files.write_stl10(tmp_path)
    train = read_stl10(tmp_path, train=True)
    assert train.images.shape == (3, 96, 96, 3)
    assert train.labels.tolist() == [0, 9, 4]  # stored as 1, 10, 5
    assert train.classes[train.labels[2]] == "deer"


def test_svhn_label_10_means_digit_zero(tmp_path):
    fake_files.write_svhn(tmp_path)
    test = read_svhn(tmp_path, train=False)
    assert test.labels.tolist() == [5, 0]
    assert test.classes[test.labels[1]] == "0"


@pytest.mark.parametrize("compressed", ["gz", "both"])
def test_mnist_reads_official_gz_files_without_unpacking(tmp_path, compressed):
    written = fake_files.write_mnist(tmp_path, compressed=compressed)
    assert_same(read_mnist(tmp_path, train=True), written["train"])
    assert_same(read_mnist(tmp_path, train=False), written["test"])


def test_mnist_wrong_magic_number_is_a_user_error(tmp_path):
    fake_files.write_mnist(tmp_path)
    raw = tmp_path / "MNIST" / "raw"
    (raw / "t10k-images-idx3-ubyte").write_bytes((raw / "t10k-labels-idx1-ubyte").read_bytes())
    with pytest.raises(LeptonError, match=r"t10k-images-idx3-ubyte.*0x801.*0x803"):
        read_mnist(tmp_path, train=False)


def test_usps_sparse_lines_and_grey_values_decode_like_torchvision(tmp_path):
    fake_files.write_usps(tmp_path)
    train = read_usps(tmp_path, train=True)
    assert train.images.shape == (3, 16, 16, 1)
    assert train.labels.tolist() == [0, 9, 3]  # stored as digit + 1
    assert 127 in train.images[0]  # image 0's line leaves out its 0.0 pixels; they still decode
    row, col, _, _ = fake_files.MARKER
    assert train.images[1, row, col, 0] == 255  # 1.0 -> 255, -1.0 -> 0
    assert set(np.unique(train.images)) == set(fake_files.USPS_VALUES.values())


def test_missing_files_error_names_files_directory_and_download_option(tmp_path):
    with pytest.raises(LeptonError) as error:
        read_cifar10(tmp_path, train=True)
    message = str(error.value)
    assert "cifar10" in message
    assert "data_batch_1" in message and "data_batch_5" in message and "batches.meta" in message
    assert str(tmp_path / "cifar-10-batches-py") in message
    assert "data.download=true" in message


def test_missing_mnist_error_accepts_either_raw_or_gz(tmp_path):
    with pytest.raises(LeptonError) as error:
        read_mnist(tmp_path, train=False)
    message = str(error.value)
    assert "t10k-images-idx3-ubyte or t10k-images-idx3-ubyte.gz" in message
    assert str(tmp_path / "MNIST" / "raw") in message


def test_missing_mnist_m_error_says_there_is_no_download(tmp_path):
    with pytest.raises(LeptonError) as error:
        read_mnist_m(tmp_path, train=True, download=True)
    message = str(error.value)
    assert "mnist_m_train_labels.txt" in message and "mnist_m_train/" in message
    assert str(tmp_path / "mnist_m") in message
    assert "no automatic download" in message


def test_download_fetches_missing_files_then_reads_them_with_our_decoder(tmp_path, monkeypatch):
    calls = []

    def fake_download(dataset, root, train):
        calls.append((dataset, root, train))
        fake_files.write_svhn(root)

    monkeypatch.setattr(official_files, "_torchvision_download", fake_download)
    decoded = read_svhn(tmp_path, train=True, download=True)
    assert calls == [("svhn", tmp_path, True)]
    assert len(decoded) == 3
    read_svhn(tmp_path, train=True, download=True)  # present now: nothing fetched again
    assert len(calls) == 1


def test_image_folder_decodes_resizes_and_skips_corrupt_files_with_one_warning(tmp_path):
    written = fake_files.write_image_folder(tmp_path)
    with pytest.warns(UserWarning, match=r"skipped 1 .*frame_0003\.jpg"):
        decoded = read_image_folder(tmp_path, image_size=24)
    assert decoded.classes == ["back_pack", "bike"]
    assert decoded.images.shape == (4, 24, 24, 3)  # the .JPG counts, notes.txt does not
    assert decoded.labels.tolist() == written["labels"]
    centre = decoded.images[:, 12, 12, :].astype(int)
    np.testing.assert_allclose(centre, np.array(written["colours"]), atol=3)  # JPEG is lossy


def test_image_folder_error_mode_names_the_corrupt_file(tmp_path):
    fake_files.write_image_folder(tmp_path)
    with pytest.raises(LeptonError, match=r"frame_0003\.jpg"):
        read_image_folder(tmp_path, image_size=8, on_corrupt="error")


def test_image_folder_without_corrupt_files_does_not_warn(tmp_path):
    fake_files.write_image_folder(tmp_path, corrupt=False)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert len(read_image_folder(tmp_path, image_size=8)) == 4


@pytest.mark.parametrize("make", [lambda p: None, lambda p: (p / "cat").mkdir()], ids=["empty", "no-images"])
def test_empty_image_folder_explains_the_expected_layout(tmp_path, make):
    make(tmp_path)
    with pytest.raises(LeptonError, match="one sub-folder per class"):
        read_image_folder(tmp_path, image_size=8)


@pytest.mark.parametrize("images_level", [True, False])
def test_office31_path_finds_the_domain_with_or_without_images_level(tmp_path, images_level):
    fake_files.write_office31(tmp_path, "dslr", images_level=images_level)
    decoded = read_image_folder(office31_path(tmp_path, "dslr"), image_size=8)
    assert decoded.classes == ["back_pack", "bike"]


def test_office_paths_say_where_to_put_missing_domains(tmp_path):
    with pytest.raises(LeptonError, match=r"office31/webcam/images/<class>"):
        office31_path(tmp_path, "webcam")
    with pytest.raises(LeptonError, match=r"office_home/Clipart/<class>"):
        office_home_path(tmp_path, "Clipart")
    fake_files.write_office_home(tmp_path, "Art")
    assert office_home_path(tmp_path, "Art") == tmp_path / "office_home" / "Art"


@pytest.mark.skipif(not (SHARED_DATA / "usps").is_dir(), reason="shared USPS files not present")
def test_real_usps_files_decode_with_published_label_counts():
    train = read_usps(SHARED_DATA / "usps", train=True)
    test = read_usps(SHARED_DATA / "usps", train=False)
    assert train.images.shape == (7291, 16, 16, 1) and test.images.shape == (2007, 16, 16, 1)
    assert np.bincount(train.labels).tolist() == [1194, 1005, 731, 658, 652, 556, 664, 645, 542, 644]
    assert np.bincount(test.labels).tolist() == [359, 264, 198, 166, 200, 160, 170, 147, 166, 177]


@pytest.mark.skipif(not (SHARED_DATA / "mnist").is_dir(), reason="shared MNIST files not present")
def test_real_mnist_gz_files_decode_with_published_label_counts(tmp_path):
    raw = tmp_path / "MNIST" / "raw"
    raw.mkdir(parents=True)
    for file in (SHARED_DATA / "mnist").glob("*.gz"):
        (raw / file.name).symlink_to(file)
    train = read_mnist(tmp_path, train=True)
    test = read_mnist(tmp_path, train=False)
    assert train.images.shape == (60000, 28, 28, 1) and test.images.shape == (10000, 28, 28, 1)
    assert np.bincount(train.labels).tolist() == [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
    assert np.bincount(test.labels).tolist() == [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]
