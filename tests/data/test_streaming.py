"""Streaming image files from disk while training (data/streaming.py): the same batches as the
in-memory path, the size-based choice and its log line, bad settings, and the list-file data sets
(DomainNet, VisDA-2017) on fakes written in their releases' layouts."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import numpy as np
import pytest
import torch

from lepton_cli.data.augment import BatchAugment
from lepton_cli.data.datamodule import DomainAdaptationData
from lepton_cli.data.domains import ImageFolderDomain, ImageListDomain, SynthDigits
from lepton_cli.data.readers.image_lists import DOMAINNET_CLASSES, VISDA2017_CLASSES
from lepton_cli.data.streaming import ImageFiles, StreamedImages, choose_streaming
from lepton_cli.errors import LeptonError

FOLDER_CLASSES = ("bike", "cat", "mug")


def write_random_images(paths: list[Path], seed: int = 0) -> list[np.ndarray]:
    """Random smooth images (random 5x6 colour grids, enlarged: JPEG keeps them close) of different
    sizes (so resizing is exercised), as PNG or JPEG by suffix; returns the pixels written."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    pixels = []
    for index, path in enumerate(paths):
        path.parent.mkdir(parents=True, exist_ok=True)
        grid = Image.fromarray(rng.integers(0, 256, (5, 6, 3), dtype=np.uint8))
        image = grid.resize((24 + index % 2 * 5, 20 + index % 3 * 7), Image.Resampling.BILINEAR)
        image.save(path, quality=95)
        pixels.append(np.asarray(image))
    return pixels


def write_folder(directory: Path, per_class: int = 6, seed: int = 0, classes=FOLDER_CLASSES) -> Path:
    write_random_images([directory / name / f"{i:03d}.jpg" for name in classes for i in range(per_class)], seed)
    return directory


def folder_data(tmp_path: Path, streaming: str, **kwargs) -> DomainAdaptationData:
    source = ImageFolderDomain("folder_a", path=str(write_folder(tmp_path / "a", seed=1)), image_size=24, cache=False)
    target = ImageFolderDomain("folder_b", path=str(write_folder(tmp_path / "b", per_class=5, seed=2)), image_size=24,
                               cache=False)
    settings = {"image_size": 16, "channels": 3, "batch_size": 4, "eval_batch_size": 7, "steps_per_epoch": 4,
                "fast_path": "off", "source_val_fraction": 0.2, **kwargs}
    data = DomainAdaptationData(source, target, root=str(tmp_path), streaming=streaming, **settings)
    data.setup()
    return data


def epoch(data: DomainAdaptationData, seed: int) -> list[tuple[torch.Tensor, ...]]:
    """One epoch of training batches (source, target, each through a random augmentation) and every
    evaluation batch, drawn after seeding."""
    torch.manual_seed(seed)
    augment = BatchAugment(rotate=20, translate=0.2, hflip=True, brightness=0.3, cutout=0.5)
    batches = []
    for step in zip(*data.train_dataloader().values(), strict=True):
        for images, labels in step:
            batches.append((images, labels, augment(images)))
    for loader in data.val_dataloader():
        batches.extend(tuple(batch) for batch in loader)
    return batches


# Workers change when the sampler draws its seed (the first batches are fetched ahead), so each path
# is compared with the other at the same data.num_workers.
@pytest.mark.parametrize("workers", [0, 2])
def test_streamed_batches_equal_in_memory_batches_for_the_same_seed(tmp_path, workers):
    in_memory = folder_data(tmp_path, streaming="off", num_workers=workers)
    streamed = folder_data(tmp_path, streaming="on", num_workers=workers)
    assert streamed.streamed_roles == {"source", "target"} and not in_memory.streamed_roles
    assert isinstance(streamed.splits["source_train"][0], StreamedImages)
    expected, got = epoch(in_memory, seed=3), epoch(streamed, seed=3)
    assert len(got) == len(expected) == 2 * 4 + len(in_memory.val_splits) + 2  # source test 18 images: 3 batches of 7
    for want, have in zip(expected, got, strict=True):
        assert all(torch.equal(a, b) for a, b in zip(want, have, strict=True))
    # Not vacuous: another seed draws other images.
    assert not torch.equal(epoch(in_memory, seed=4)[0][0], expected[0][0])
    # Every evaluation image is read: the held-out source images and all of target test.
    assert streamed.test_sizes == in_memory.test_sizes == {"target": 15, "source": 18}


def test_streamed_grey_images_match_and_pictures_can_walk_a_split(tmp_path):
    in_memory = folder_data(tmp_path, streaming="off", channels=1, image_size=20)
    streamed = folder_data(tmp_path, streaming="on", channels=1, image_size=20)
    images, labels = in_memory.splits["target_test"]
    lazy, lazy_labels = streamed.splits["target_test"]
    assert lazy.shape == tuple(images.shape) == (15, 1, 20, 20)
    assert torch.equal(torch.cat(list(lazy.split(4))), images) and torch.equal(lazy_labels, labels)


def test_fine_tuning_drops_labelled_images_from_streamed_evaluation(tmp_path):
    in_memory = folder_data(tmp_path, streaming="off", target_labels_per_class=2)
    streamed = folder_data(tmp_path, streaming="on", target_labels_per_class=2)
    assert torch.equal(torch.stack(list(streamed.splits["target_train"][0])), in_memory.splits["target_train"][0])
    assert torch.equal(streamed.splits["target_test"][1], in_memory.splits["target_test"][1])
    assert len(streamed.splits["target_test"][1]) == 15 - 2 * 3


def test_auto_streams_only_above_max_memory_and_says_why(tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="lepton_cli.data.datamodule")
    # 18 + 18 + 15 + 15 files, each decoded at 24 px RGB plus its 16 px copy: 66 * (1728 + 768) bytes.
    needed = 66 * (3 * 24 * 24 + 3 * 16 * 16)
    small = folder_data(tmp_path, streaming="auto", max_memory_gb=(needed - 1) / 1e9)
    small.train_dataloader()
    assert small.streamed_roles == {"source", "target"}
    assert "data: streaming source folder_a and target folder_b from disk" in caplog.text
    assert "decoded images would need 0.0 GB > data.max_memory_gb=" in caplog.text
    caplog.clear()
    large = folder_data(tmp_path, streaming="auto", max_memory_gb=needed / 1e9, fast_path="auto")
    large.train_dataloader()
    large.train_dataloader()
    assert not large.streamed_roles and large.uses_fast_path()
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("data:")]
    expected = ("data: in memory, batches gathered on the device (fast path): decoded images need 0.00 GB "
                f"<= data.max_memory_gb={needed / 1e9}")
    assert lines == [expected]  # once, however often the loaders are built


def test_auto_max_memory_is_a_share_of_this_machine(tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="lepton_cli.data.datamodule")
    data = folder_data(tmp_path, streaming="auto", num_workers=1)
    data.train_dataloader()
    assert not data.streamed_roles
    assert "DataLoader with 1 workers (no fast path: data.fast_path=off; data.num_workers=1)" in caplog.text
    quarter = 0.25 * os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 1e9
    assert f"data.max_memory_gb=auto ({quarter:.1f} GB)" in caplog.text


@pytest.mark.parametrize("settings, message", [
    ({"streaming": "yes"}, "data.streaming must be auto, on or off, got 'yes'"),
    ({"streaming": "auto", "max_memory_gb": -2}, "data.max_memory_gb must be a number of GB > 0 or auto, got -2"),
    ({"streaming": "on", "fast_path": "on"}, "data.fast_path=on needs the data in memory"),
])
def test_bad_settings_are_one_line(tmp_path, settings, message):
    with pytest.raises(LeptonError, match=message) as error:
        data = folder_data(tmp_path, **settings)
        data.train_dataloader()
    assert "\n" not in str(error.value)


@pytest.mark.parametrize("override, message", [
    ("data.streaming=sometimes", "data.streaming must be auto, on or off"),
    ("data.max_memory_gb=0", "data.max_memory_gb must be > 0"),
    ("data.max_memory_gb=lots", "data.max_memory_gb expects a number or auto"),
])
def test_bad_settings_are_refused_before_the_run(override, message):
    from lepton_cli.overrides import check_overrides

    with pytest.raises(LeptonError, match=message) as error:
        check_overrides([override])
    assert "\n" not in str(error.value)
    assert check_overrides(["data.streaming=on", "data.max_memory_gb=1.5"]).data.max_memory_gb == 1.5


def test_forcing_streaming_on_in_memory_data_keeps_it_in_memory_and_says_so(tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="lepton_cli.data.datamodule")
    digits = SynthDigits(train_size=40, test_size=20, cache=False)
    data = DomainAdaptationData(digits, SynthDigits(train_size=40, test_size=20, seed=1, cache=False), root=str(tmp_path),
                                batch_size=4, steps_per_epoch=2, streaming="on", source_val_fraction=0.1)
    data.setup()
    data.train_dataloader()
    assert not data.streamed_roles and isinstance(data.splits["source_train"][0], torch.Tensor)
    assert "data.streaming=on, but synth_digits only exist in memory" in caplog.text
    # A file-list target still streams beside an in-memory source.
    folder = ImageFolderDomain("folder_b", path=str(write_folder(tmp_path / "b", classes="123")), image_size=24, cache=False)
    mixed = DomainAdaptationData(digits, folder, root=str(tmp_path), channels=3, image_size=16, streaming="on",
                                 source_val_fraction=0.1)
    mixed.setup()
    assert mixed.streamed_roles == {"target"}
    assert "synth_digits only exist in memory and stay there" in mixed.streaming_reason


def test_choose_streaming_estimates_before_decoding():
    files = ImageFiles(np.array(["a.jpg"] * 1000, dtype=object), np.zeros(1000), ["x"], decode_size=224)
    listed = {"source_train": files, "source_test": files, "target_train": None, "target_test": None}
    roles, why = choose_streaming("auto", listed, {"source": "big", "target": "mnist"}, 224, 3, 0.2)
    assert roles == {"source"}  # 2 × 1000 × 224² × 3 bytes = 0.30 GB
    assert why == "decoded images would need 0.3 GB > data.max_memory_gb=0.2; mnist only exist in memory and stay there"
    assert choose_streaming("auto", listed, {"source": "big", "target": "mnist"}, 224, 3, 0.31)[0] == set()


def test_a_corrupt_file_met_while_streaming_names_it(tmp_path):
    data = folder_data(tmp_path, streaming="on")
    images = data.splits["target_test"][0]
    bad = Path(images.files[0])
    bad.write_bytes(b"\xff\xd8\xff\xe0 not a jpeg")
    with pytest.raises(LeptonError, match=f"cannot decode image {bad} .*while streaming"):
        images[0]
    # From a worker too: one line naming the file, not the worker's traceback.
    workers = folder_data(tmp_path / "again", streaming="on", num_workers=1, eval_batch_size=100)
    Path(workers.splits["target_test"][0].files[0]).write_bytes(b"not an image")
    with pytest.raises(LeptonError, match=r"^cannot decode image .*000\.jpg \(not an image file that PIL can read\)") as error:
        list(workers.test_dataloader()[0])
    assert "\n" not in str(error.value)


# ---- DomainNet and VisDA-2017 in their releases' layouts --------------------------------------


def write_domainnet(root: Path, domain: str = "clipart", tllib: bool = False) -> dict[str, list]:
    """Two splits of a DomainNet domain: root/domainnet/<domain>/<class>/<domain>_<n>.jpg and
    the lists `<domain>_train.txt` / `<domain>_test.txt` (TLlib: under image_list/)."""
    base = root / "domainnet"
    written = {}
    for split, labels in (("train", [0, 344, 5, 0, 342]), ("test", [344, 5, 0])):
        relative = [f"{domain}/{DOMAINNET_CLASSES[label]}/{domain}_{label:03d}_{split}{i}.jpg" for i, label in enumerate(labels)]
        pixels = write_random_images([base / r for r in relative], seed=len(labels))
        lists = base / "image_list" if tllib else base
        lists.mkdir(parents=True, exist_ok=True)
        (lists / f"{domain}_{split}.txt").write_text("".join(f"{r} {label}\n" for r, label in zip(relative, labels, strict=True)))
        written[split] = [pixels, labels]
    return written


def write_visda(root: Path, split: str = "validation") -> list[int]:
    """root/visda2017/<split>/<class>/*.png with <split>/image_list.txt (paths relative to <split>/)."""
    base = root / "visda2017" / split
    labels = [0, 11, 3, 3]
    relative = [f"{VISDA2017_CLASSES[label]}/{split}_{i}.png" for i, label in enumerate(labels)]
    write_random_images([base / r for r in relative], seed=7)
    (base / "image_list.txt").write_text("".join(f"{r} {label}\n" for r, label in zip(relative, labels, strict=True)))
    return labels


@pytest.mark.parametrize("tllib", [False, True])
def test_domainnet_reader_decodes_the_release_layout(tmp_path, tllib):
    written = write_domainnet(tmp_path, "sketch", tllib=tllib)
    domain = ImageListDomain("domainnet_sketch", dataset="domainnet", domain="sketch", image_size=24, cache=False)
    for split in ("train", "test"):
        arrays = domain.load(split, tmp_path)
        labels = written[split][1]
        assert arrays.labels.tolist() == labels and len(arrays.classes) == 345
        assert arrays.classes[344] == "zigzag" and arrays.images.shape == (len(labels), 24, 24, 3)
        listed = domain.image_files(split, tmp_path)
        streamed = StreamedImages(listed.files, listed.decode_size, 24, 3)
        assert torch.equal(torch.stack(list(streamed)).permute(0, 2, 3, 1), torch.from_numpy(arrays.images))
    # The pixels are the written ones (JPEG at quality 95, resized as the readers resize), in order.
    from PIL import Image

    written_first = np.asarray(Image.fromarray(written["test"][0][0]).resize((24, 24), Image.Resampling.BILINEAR))
    assert np.abs(arrays.images[0].astype(int) - written_first.astype(int)).mean() < 8


def test_visda_reader_and_class_matching_by_name(tmp_path):
    labels = write_visda(tmp_path, "validation")
    write_visda(tmp_path, "train")
    target = ImageListDomain("visda2017_validation", dataset="visda2017", domain="validation", image_size=24, cache=False)
    arrays = target.load("test", tmp_path)
    assert arrays.labels.tolist() == labels and arrays.classes == VISDA2017_CLASSES
    source = ImageListDomain("visda2017_train", dataset="visda2017", domain="train", image_size=24, cache=False)
    data = DomainAdaptationData(source, target, root=str(tmp_path), image_size=16, channels=3, streaming="on",
                                source_val_fraction=0.0, target_val_fraction=0.0)
    assert data.classes == VISDA2017_CLASSES and data.streamed_roles == {"source", "target"}
    assert data.test_sizes == {"target": 4, "source": 4}


@pytest.mark.parametrize("line, message", [
    ("clipart/cat/a.jpg 345", "label 345 at line 2 is out of range"),
    ("../../etc/passwd.jpg 1", "line 2 is not 'relative/path/to/image.jpg LABEL'"),
    ("/etc/cat.jpg 1", "line 2 is not 'relative/path/to/image.jpg LABEL'"),
    ("clipart/cat/a.jpg", "line 2 is not 'relative/path/to/image.jpg LABEL'"),
])
def test_bad_list_lines_are_one_line_errors(tmp_path, line, message):
    write_domainnet(tmp_path)
    list_file = tmp_path / "domainnet" / "clipart_train.txt"
    lines = list_file.read_text().splitlines()
    list_file.write_text("\n".join([lines[0], line, *lines[1:]]) + "\n")
    domain = ImageListDomain("domainnet_clipart", dataset="domainnet", domain="clipart", cache=False)
    for read in (lambda: domain.load("train", tmp_path), lambda: domain.image_files("train", tmp_path)):
        with pytest.raises(LeptonError, match=message) as error:
            read()
        assert "\n" not in str(error.value)


def test_missing_domainnet_list_says_where_it_goes(tmp_path):
    domain = ImageListDomain("domainnet_real", dataset="domainnet", domain="real", cache=False)
    with pytest.raises(LeptonError, match=r"DomainNet real: no image list found; expected .*domainnet/real_train\.txt"):
        domain.image_files("train", tmp_path)


def test_train_fast_dev_run_streams_source_and_target(tmp_path, run_experiment, caplog):
    caplog.set_level(logging.INFO, logger="lepton_cli.data.datamodule")
    write_folder(tmp_path / "a", seed=1)
    write_folder(tmp_path / "b", seed=2)
    metrics, _ = run_experiment("source=imagefolder", "target=imagefolder", f"source.path={tmp_path / 'a'}",
                                f"target.path={tmp_path / 'b'}", "source.name=folder_a", "target.name=folder_b",
                                "source.image_size=24", "target.image_size=24", "data.image_size=16",
                                f"data.root={tmp_path}", "data.streaming=on", "data.num_workers=1",
                                "trainer.fast_dev_run=true", "augment=natural", "method=dann", tiny=False)
    assert "data: streaming source folder_a and target folder_b from disk, decoded in 1 DataLoader workers" in caplog.text
    # Every target test image was streamed through the model: 3 classes x 6 images.
    assert metrics["target/test_size"] == 18 and 0.0 <= metrics["target/acc"] <= 1.0


@pytest.mark.slow
def test_ddp_streams_with_per_rank_samplers_and_counts_each_test_image_once(tmp_path):
    from tests.helpers.cli import run_cli
    from tests.test_ddp import DDP, evaluate_in_one_process

    write_folder(tmp_path / "a", seed=1)
    write_folder(tmp_path / "b", per_class=5, seed=2)
    run_dir = tmp_path / "run"
    result = run_cli("train", *DDP, "source=imagefolder", "target=imagefolder", f"source.path={tmp_path / 'a'}",
                     f"target.path={tmp_path / 'b'}", "source.name=folder_a", "target.name=folder_b",
                     "source.image_size=24", "target.image_size=24", "data.image_size=16", "data.streaming=on",
                     "data.num_workers=1", "data.batch_size=4", "data.steps_per_epoch=2", "trainer.max_epochs=1",
                     "logger=none", "report=false", "augment=natural", "method=dann", f"hydra.run.dir={run_dir}",
                     cwd=tmp_path, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    output = result.stdout + result.stderr
    assert "data: streaming source folder_a and target folder_b from disk, decoded in 1 DataLoader workers" in output
    assert "DDP needs per-rank samplers" not in output  # the streaming line, not the in-memory one, says why
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["target/test_size"] == 15 and metrics["source/test_size"] == 18
    single = evaluate_in_one_process(run_dir)
    assert metrics["target/acc"] == single["target/acc"]  # each test image counted exactly once across ranks


def test_lepton_list_source_shows_domainnet_and_visda():
    from lepton_cli.config import group_options

    options = group_options("source")
    assert {f"domainnet/{d}" for d in ("clipart", "infograph", "painting", "quickdraw", "real", "sketch")} <= set(options)
    assert {"visda2017/train", "visda2017/validation"} <= set(options)
    assert options["domainnet/real"].startswith("DomainNet real (345 classes")


def test_the_config_files_build_the_readers_of_the_fakes(tmp_path):
    from hydra.utils import instantiate
    from omegaconf import OmegaConf

    conf = Path(__file__).parents[2] / "conf" / "dataset"
    write_domainnet(tmp_path, "quickdraw")
    write_visda(tmp_path, "train")
    quickdraw = instantiate(OmegaConf.load(conf / "domainnet" / "quickdraw.yaml"))
    visda = instantiate(OmegaConf.load(conf / "visda2017" / "train.yaml"))
    assert len(quickdraw.image_files("test", tmp_path)) == 3 and quickdraw.image_files("train", tmp_path).decode_size == 224
    assert visda.image_files("train", tmp_path).classes == VISDA2017_CLASSES
