"""Hostile, broken and changed data files: never executed, never served stale, always one line.

Each case writes the data set's real on-disk format (`fake_files`) and then breaks it the way a
red-team pass, a cut-off download or a user editing their folder would.
"""

from __future__ import annotations

import errno
import os
import pickle
import socket
import urllib.error
import urllib.request
import warnings
from pathlib import Path

import numpy as np
import pytest

from lepton_cli.data.alignment import ClassAlignment
from lepton_cli.data.domains import FileDomain, ImageFolderDomain
from lepton_cli.data.readers import (
    READERS,
    digits,
    image_decoding,
    image_folder,
    natural_images,
    official_files,
    read_image_folder,
)
from lepton_cli.errors import error_boundary
from tests.data import fake_files


@pytest.fixture(autouse=True)
def _no_debug(monkeypatch):
    monkeypatch.delenv("LEPTON_DEBUG", raising=False)  # the boundary would show a traceback


def one_line_exit_2(capsys, action) -> str:
    """Run `action` inside the entry points' error boundary: it must end the program with exit
    code 2 and exactly one `lepton: error:` line on stderr, no traceback. Returns that line."""
    with pytest.raises(SystemExit) as exit_info, error_boundary():
        action()
    assert exit_info.value.code == 2
    stderr = capsys.readouterr().err
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("lepton: error: "), stderr
    return lines[0]


def no_decoding(*args, **kwargs):
    raise AssertionError("decoded although the cache was up to date")


# ---- 1. pickles are data: a crafted file never runs code -------------------------------------------


@pytest.mark.parametrize("via", ["os.system", "Path.touch"])
@pytest.mark.parametrize("name", ["data_batch_3", "batches.meta"])
def test_crafted_cifar10_pickle_is_refused_and_never_runs(tmp_path, capsys, via, name):
    fake_files.write_cifar10(tmp_path)
    marker = tmp_path / "marker"
    (tmp_path / "cifar-10-batches-py" / name).write_bytes(fake_files.malicious_pickle(marker, via))
    line = one_line_exit_2(capsys, lambda: READERS["cifar10"](tmp_path, train=True))
    assert "refused to read CIFAR-10 " in line and f"cifar-10-batches-py/{name}" in line and "download it again" in line
    assert not marker.exists()


def test_crafted_data_cache_is_never_unpickled_and_is_rebuilt(tmp_path):
    fake_files.write_mnist(tmp_path)
    domain, cache = FileDomain("mnist", "mnist"), tmp_path / "cache"
    first = domain.load("test", tmp_path, cache_dir=cache)
    (cache_file,) = cache.glob("*.npz")
    marker = tmp_path / "marker"
    with np.load(cache_file) as data:
        files = data["files"]  # the record of the files stays right: only `classes` is hostile
    payload = np.array([fake_files._RunsCode(os.system, (f"touch {marker}",))], dtype=object)
    with open(cache_file, "wb") as handle:  # an object array: np.save pickles it
        np.savez(handle, images=first.images, labels=first.labels, classes=payload, files=files)
    with pytest.warns(UserWarning, match="unreadable.*decoding the data again"):
        again = domain.load("test", tmp_path, cache_dir=cache)
    assert not marker.exists()
    np.testing.assert_array_equal(again.images, first.images)


# ---- 2. a cache is keyed on the files it was decoded from -------------------------------------------


def _edit(folder: Path) -> None:
    from PIL import Image

    Image.new("RGB", (50, 30), (255, 255, 255)).save(folder / "bike" / "frame_0001.png")  # was green, 20x20


def _add(folder: Path) -> None:
    from PIL import Image

    Image.new("RGB", (12, 12), (1, 2, 3)).save(folder / "bike" / "extra.png")


def _remove(folder: Path) -> None:
    (folder / "back_pack" / "frame_0002.JPG").unlink()


@pytest.mark.parametrize("change,count,white", [(_edit, 4, True), (_add, 5, False), (_remove, 3, False)],
                         ids=["edited", "added", "removed"])
def test_image_folder_cache_sees_edited_added_and_removed_files_and_says_so(tmp_path, monkeypatch, change, count, white):
    folder, cache = tmp_path / "mine", tmp_path / "cache"
    fake_files.write_image_folder(folder, corrupt=False)
    domain = ImageFolderDomain(path=str(folder), image_size=8)
    assert len(domain.load("train", tmp_path, cache_dir=cache)) == 4
    change(folder)
    with pytest.warns(UserWarning, match=r"data cache for imagefolder \(train\) is out of date \(1 files changed\); "
                                         r"decoding again"):
        changed = domain.load("train", tmp_path, cache_dir=cache)
    assert len(changed) == count
    assert ((changed.images == 255).all(axis=(1, 2, 3))).any() == white
    # The rebuilt cache is up to date now: served as it is, without a warning or a decode.
    monkeypatch.setattr(image_folder, "_decode_images", no_decoding)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        cached = domain.load("train", tmp_path, cache_dir=cache)
    np.testing.assert_array_equal(cached.images, changed.images)
    assert len(list(cache.glob("*.npz"))) == 1  # rewritten in place, not piling up


def test_file_domain_cache_is_hit_while_files_are_unchanged_and_rebuilt_when_one_changes(tmp_path, monkeypatch):
    written = fake_files.write_mnist(tmp_path)
    domain, cache = FileDomain("mnist", "mnist"), tmp_path / "cache"
    domain.load("test", tmp_path, cache_dir=cache)
    monkeypatch.setitem(READERS, "mnist", no_decoding)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert domain.load("test", tmp_path, cache_dir=cache).labels.tolist() == written["test"].labels.tolist()
    monkeypatch.undo()
    labels = tmp_path / "MNIST" / "raw" / "t10k-labels-idx1-ubyte"
    labels.write_bytes(fake_files.idx_bytes(0x801, np.array([3, 3, 3])))
    os.utime(labels, ns=(labels.stat().st_atime_ns, labels.stat().st_mtime_ns + 10**9))  # same size: mtime tells
    with pytest.warns(UserWarning, match=r"data cache for mnist \(test\) is out of date \(1 files changed\)"):
        assert domain.load("test", tmp_path, cache_dir=cache).labels.tolist() == [3, 3, 3]


# ---- 3. labels out of range are refused, never wrapped around ---------------------------------------


def _cifar_label(value):
    def write(root):
        fake_files.write_cifar10(root)
        fake_files.rewrite_cifar10_batch(root, "test_batch", labels=[3, value])
        return "cifar-10-batches-py/test_batch", rf"label {value} at entry 1 is out of range; valid labels are 0\.\.9"
    return write


def _stl10_label(root):
    fake_files.write_stl10(root)
    (root / "stl10_binary" / "test_y.bin").write_bytes(bytes([0, 3]))
    return "stl10_binary/test_y.bin", r"label 0 at entry 0 is out of range; valid labels are 1\.\.10"


def _mnist_label(root):
    fake_files.write_mnist(root)
    (root / "MNIST" / "raw" / "t10k-labels-idx1-ubyte").write_bytes(fake_files.idx_bytes(0x801, np.array([7, 10, 1])))
    return "t10k-labels-idx1-ubyte", r"label 10 at entry 1 is out of range; valid labels are 0\.\.9"


def _usps_label(value):
    def write(root):
        fake_files.write_usps_lines(root, "usps.t.bz2", ["1 1:0.5", f"{value} 1:0.5"])
        return "usps.t.bz2", rf"line 2: label {value} is out of range; valid labels are 1\.\.10"
    return write


def _svhn_label(root):
    from scipy.io import savemat

    savemat(root / "test_32x32.mat", {"X": np.zeros((32, 32, 3, 2), np.uint8), "y": np.array([[5], [11]], np.uint8)})
    return "test_32x32.mat", r"label 11 at entry 1 is out of range; valid labels are 1\.\.10"


def _mnist_m_label(root):
    fake_files.write_mnist_m(root)
    (root / "mnist_m" / "mnist_m_test_labels.txt").write_text("00000000.png 1\n00000001.png -1\n")
    return "mnist_m_test_labels.txt", r"label -1 at line 2 is out of range; valid labels are 0\.\.9"


LABELS_OUT_OF_RANGE = {
    "cifar10_too_big": ("cifar10", _cifar_label(10)),
    "cifar10_negative": ("cifar10", _cifar_label(-1)),
    "stl10_zero": ("stl10", _stl10_label),
    "mnist_ten": ("mnist", _mnist_label),
    "usps_eleven": ("usps", _usps_label(11)),
    "usps_zero": ("usps", _usps_label(0)),
    "svhn_eleven": ("svhn", _svhn_label),
    "mnist_m_negative": ("mnist_m", _mnist_m_label),
}


@pytest.mark.parametrize("case", sorted(LABELS_OUT_OF_RANGE))
def test_label_out_of_range_names_the_file_the_entry_and_the_valid_range(tmp_path, capsys, case):
    reader, write = LABELS_OUT_OF_RANGE[case]
    file, expected = write(tmp_path)
    line = one_line_exit_2(capsys, lambda: READERS[reader](tmp_path, train=False))
    assert file in line
    assert __import__("re").search(expected, line), line


# ---- 4. corrupt and truncated files: one line naming the file ---------------------------------------


def _cut(path: Path, keep: float = 0.5) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])


def _mnist_gz_truncated(root):
    fake_files.write_mnist(root, compressed="gz")
    _cut(root / "MNIST" / "raw" / "t10k-images-idx3-ubyte.gz")
    return "mnist", "t10k-images-idx3-ubyte.gz", "cannot be unpacked"


def _mnist_gz_not_gzip(root):
    fake_files.write_mnist(root, compressed="gz")
    (root / "MNIST" / "raw" / "t10k-labels-idx1-ubyte.gz").write_bytes(b"<html>404 Not Found</html>")
    return "mnist", "t10k-labels-idx1-ubyte.gz", "cannot be unpacked"


def _mnist_idx_truncated(root):
    fake_files.write_mnist(root)
    _cut(root / "MNIST" / "raw" / "t10k-images-idx3-ubyte", 0.9)
    return "mnist", "t10k-images-idx3-ubyte", "bytes of data but its header says 3x28x28"


def _mnist_count_mismatch(root):
    fake_files.write_mnist(root)
    (root / "MNIST" / "raw" / "t10k-labels-idx1-ubyte").write_bytes(fake_files.idx_bytes(0x801, np.array([7, 2])))
    return "mnist", "t10k-labels-idx1-ubyte", "holds 2 labels but t10k-images-idx3-ubyte holds 3 images"


def _usps_bad_value(root):
    fake_files.write_usps_lines(root, "usps.t.bz2", ["1 1:0.5", "3 1:0.5 2:abc"])
    return "usps", "usps.t.bz2", "line 2: pixel b'2:abc' has no numeric value"


def _usps_bad_index(root):
    # Index 0 once wrote pixel -1 (the last one) without a word.
    fake_files.write_usps_lines(root, "usps.t.bz2", ["1 1:0.5", "2 1:0.5", "3 0:0.5"])
    return "usps", "usps.t.bz2", "line 3: pixel b'0:0.5' has an index outside 1..256"


def _usps_truncated(root):
    fake_files.write_usps(root)
    _cut(root / "usps.t.bz2")
    return "usps", "usps.t.bz2", "cannot be unpacked"


def _cifar_truncated(root):
    fake_files.write_cifar10(root)
    _cut(root / "cifar-10-batches-py" / "test_batch")
    return "cifar10", "cifar-10-batches-py/test_batch", "truncated"


def _cifar_not_a_batch(root):
    fake_files.write_cifar10(root)
    (root / "cifar-10-batches-py" / "test_batch").write_bytes(pickle.dumps([1, 2, 3]))
    return "cifar10", "cifar-10-batches-py/test_batch", "is not a CIFAR-10 batch"


def _stl10_truncated(root):
    fake_files.write_stl10(root)
    _cut(root / "stl10_binary" / "test_X.bin", 0.7)
    return "stl10", "stl10_binary/test_X.bin", "not a whole number of 96x96 colour images"


def _svhn_not_a_mat(root):
    (root / "test_32x32.mat").write_bytes(b"<html>404 Not Found</html>" * 10)
    return "svhn", "test_32x32.mat", "is not a readable MATLAB .mat file"


def _svhn_cell_array(root):
    from scipy.io import savemat

    cell = np.empty((1, 2), dtype=object)
    cell[0, 0], cell[0, 1] = "a", np.zeros(3)
    savemat(root / "test_32x32.mat", {"X": cell, "y": np.array([[1]])})
    return "svhn", "test_32x32.mat", "has no uint8 array X"


def _mnist_m_bad_line(root):
    fake_files.write_mnist_m(root)
    (root / "mnist_m" / "mnist_m_test_labels.txt").write_text("00000000.png 1\n00000001.png\n")
    return "mnist_m", "mnist_m_test_labels.txt", "line 2: expected '<image name> <label>'"


def _mnist_m_corrupt_png(root):
    fake_files.write_mnist_m(root)
    (root / "mnist_m" / "mnist_m_test" / "00000001.png").write_bytes(b"\x89PNG not really")
    return "mnist_m", "mnist_m_test/00000001.png", "cannot decode image"


def _mnist_m_bomb_png(root):
    fake_files.write_mnist_m(root)
    (root / "mnist_m" / "mnist_m_test" / "00000001.png").write_bytes(fake_files.png_bytes(100_000, 100_000, pixels=False))
    return "mnist_m", "mnist_m_test/00000001.png", "decompression bomb"


CORRUPT = {case.__name__.lstrip("_"): case for case in (
    _mnist_gz_truncated, _mnist_gz_not_gzip, _mnist_idx_truncated, _mnist_count_mismatch, _usps_bad_value,
    _usps_bad_index, _usps_truncated, _cifar_truncated, _cifar_not_a_batch, _stl10_truncated, _svhn_not_a_mat,
    _svhn_cell_array, _mnist_m_bad_line, _mnist_m_corrupt_png, _mnist_m_bomb_png,
)}


@pytest.mark.parametrize("case", sorted(CORRUPT))
def test_corrupt_file_is_one_line_naming_the_file(tmp_path, capsys, case):
    reader, file, expected = CORRUPT[case](tmp_path)
    line = one_line_exit_2(capsys, lambda: READERS[reader](tmp_path, train=False))
    assert file in line and expected in line, line


@pytest.mark.parametrize("width,pixels", [(100_000, False), (10_000, True)], ids=["header-claims-10G", "real-100M"])
def test_decompression_bomb_png_is_refused_and_skipped_with_the_other_corrupt_files(tmp_path, capsys, width, pixels):
    # 100000² is over twice PIL's limit (it raises); 10000² is a real, valid image just over it,
    # which PIL itself would only warn about and then decode into 100 million pixels.
    written = fake_files.write_image_folder(tmp_path / "mine")
    bomb = tmp_path / "mine" / "back_pack" / "bomb.png"
    bomb.write_bytes(fake_files.png_bytes(width, width, pixels=pixels))
    with pytest.warns(UserWarning, match=r"skipped 2 corrupt"):
        decoded = read_image_folder(tmp_path / "mine", image_size=8)
    assert decoded.labels.tolist() == written["labels"]  # the 4 good images, nothing else
    written["corrupt"].unlink()
    line = one_line_exit_2(capsys, lambda: read_image_folder(tmp_path / "mine", image_size=8, on_corrupt="error"))
    assert "bomb.png" in line and "decompression bomb" in line


def test_data_cache_dir_that_is_a_file_is_one_line(tmp_path, capsys):
    fake_files.write_mnist(tmp_path)
    (tmp_path / "cache").write_text("not a folder")
    line = one_line_exit_2(capsys, lambda: FileDomain("mnist", "mnist").load("test", tmp_path, cache_dir=tmp_path / "cache"))
    assert f"data cache directory {tmp_path / 'cache'} is a file" in line and "data.cache_dir=" in line


def test_full_cache_disk_warns_and_the_run_goes_on_without_a_cache(tmp_path, monkeypatch):
    written = fake_files.write_mnist(tmp_path)

    def disk_full(fd):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "fsync", disk_full)  # where lepton_cli.io's atomic write meets a full disk
    with pytest.warns(UserWarning, match=r"could not write data cache .*No space left on device.*continuing without caching"):
        decoded = FileDomain("mnist", "mnist").load("test", tmp_path, cache_dir=tmp_path / "cache")
    assert decoded.labels.tolist() == written["test"].labels.tolist()
    assert list((tmp_path / "cache").iterdir()) == []  # no cache, no temp file left behind


def test_one_class_image_folder_and_a_single_shared_class_are_one_line(tmp_path, capsys):
    from PIL import Image

    (tmp_path / "one" / "cat").mkdir(parents=True)
    Image.new("RGB", (8, 8)).save(tmp_path / "one" / "cat" / "0.png")
    line = one_line_exit_2(capsys, lambda: read_image_folder(tmp_path / "one", image_size=8))
    assert "has images of 1 class (cat)" in line and "at least 2" in line
    line = one_line_exit_2(capsys, lambda: ClassAlignment.between(["cat", "dog"], ["Cat", "car"], "pets", "street"))
    assert "source pets and target street share only one class (cat)" in line


# ---- 5. image folders: unreadable folders and files, classes left empty ------------------------------


@pytest.fixture
def make_unreadable(monkeypatch):
    """Take read permission away from a path; as root (who reads anything) also make the system
    calls fail as they would for a user. Permissions are given back after the test."""
    changed = []
    real_scandir, real_open = os.scandir, open

    def make(path: Path) -> None:
        changed.append((path, path.stat().st_mode))
        path.chmod(0)
        if os.geteuid() != 0:
            return
        denied = OSError(errno.EACCES, os.strerror(errno.EACCES), str(path))
        if path.is_dir():
            def scandir(target=".", *args):
                if Path(target) == path:
                    raise PermissionError(*denied.args, str(path))
                return real_scandir(target, *args)
            monkeypatch.setattr(os, "scandir", scandir)
        else:
            def opener(file, *args, **kwargs):
                if Path(file) == path:
                    raise PermissionError(*denied.args, str(path))
                return real_open(file, *args, **kwargs)
            # Each reader module looks `open` up in its own globals, so each one gets the failing opener.
            for module in (digits, image_decoding, natural_images, official_files):
                monkeypatch.setattr(module, "open", opener, raising=False)

    yield make
    for path, mode in changed:
        path.chmod(mode)


def test_unreadable_class_folder_is_one_line_naming_it(tmp_path, capsys, make_unreadable):
    fake_files.write_image_folder(tmp_path / "mine", corrupt=False)
    make_unreadable(tmp_path / "mine" / "bike")
    domain = ImageFolderDomain(path=str(tmp_path / "mine"), image_size=8)
    line = one_line_exit_2(capsys, lambda: domain.load("train", tmp_path, cache_dir=tmp_path / "cache"))
    assert f"cannot read folder {tmp_path / 'mine' / 'bike'} (Permission denied)" in line and "chmod" in line
    assert not list((tmp_path / "cache").glob("*.npz"))


def test_unreadable_image_is_skipped_but_never_cached(tmp_path, monkeypatch, make_unreadable):
    fake_files.write_image_folder(tmp_path / "mine", corrupt=False)
    domain, cache = ImageFolderDomain(path=str(tmp_path / "mine"), image_size=8), tmp_path / "cache"
    make_unreadable(tmp_path / "mine" / "bike" / "frame_0002.bmp")
    with pytest.warns(UserWarning, match=r"skipped 1 .*frame_0002\.bmp"):
        assert len(domain.load("train", tmp_path, cache_dir=cache)) == 3
    assert not list(cache.glob("*.npz"))  # a permission fix changes neither size nor mtime
    monkeypatch.undo()
    (tmp_path / "mine" / "bike" / "frame_0002.bmp").chmod(0o644)
    assert len(domain.load("train", tmp_path, cache_dir=cache)) == 4
    assert len(list(cache.glob("*.npz"))) == 1


def test_class_with_only_corrupt_images_is_dropped_with_a_warning_naming_it(tmp_path, capsys):
    fake_files.write_image_folder(tmp_path / "mine", corrupt=False)
    (tmp_path / "mine" / "cat").mkdir()
    (tmp_path / "mine" / "cat" / "0.jpg").write_bytes(b"\xff\xd8 not a jpeg")
    with pytest.warns(UserWarning) as warned:
        decoded = read_image_folder(tmp_path / "mine", image_size=8)
    messages = [str(warning.message) for warning in warned]
    assert any(message.startswith("skipped 1 corrupt") for message in messages)
    assert any("class(es) cat have no readable images and are left out" in message for message in messages)
    assert decoded.classes == ["back_pack", "bike"] and decoded.labels.tolist() == [0, 0, 1, 1]
    # Left with one class, the folder is refused.
    for file in (tmp_path / "mine" / "bike").iterdir():
        file.write_bytes(b"broken")
    with pytest.warns(UserWarning) as warned:
        line = one_line_exit_2(capsys, lambda: read_image_folder(tmp_path / "mine", image_size=8))
    assert any("class(es) bike, cat have no readable images" in str(warning.message) for warning in warned)
    assert "has images of 1 class (back_pack)" in line


# ---- 6. downloads: bounded in time, a failure is one line -------------------------------------------


FAILURES = {"timeout": TimeoutError("timed out"), "no-network": urllib.error.URLError("[Errno -3] name resolution")}


def _assert_bounded_one_line_failure(capsys, monkeypatch, tmp_path, failure) -> None:
    timeouts = []

    def urlopen(*args, **kwargs):  # where a downloader meets the network
        timeouts.append(socket.getdefaulttimeout())
        raise failure

    monkeypatch.setattr(urllib.request, "urlopen", urlopen)
    line = one_line_exit_2(capsys, lambda: READERS["svhn"](tmp_path, train=True, download=True))
    assert timeouts and all(seconds == official_files.DOWNLOAD_TIMEOUT_S for seconds in timeouts)
    assert socket.getdefaulttimeout() is None  # the bound was scoped to the download
    reason = "(timeout)" if isinstance(failure, TimeoutError) else "name resolution"
    assert "could not download svhn " in line and reason in line
    assert f"download it by hand into {tmp_path}" in line and "lepton list source" in line


@pytest.mark.parametrize("failure", sorted(FAILURES))
def test_stalled_download_is_bounded_and_one_line(tmp_path, capsys, monkeypatch, failure):
    # A downloader that fetches as torchvision's does, without importing torchvision (slow to import).
    monkeypatch.setattr(official_files, "_torchvision_fetcher",
                        lambda dataset, root, train: lambda: urllib.request.urlopen("https://example.invalid/x.mat"))
    _assert_bounded_one_line_failure(capsys, monkeypatch, tmp_path, FAILURES[failure])


@pytest.mark.slow
def test_torchvisions_own_downloader_is_bounded_and_one_line(tmp_path, capsys, monkeypatch):
    _assert_bounded_one_line_failure(capsys, monkeypatch, tmp_path, FAILURES["timeout"])
