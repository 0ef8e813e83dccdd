"""Real domain pairs through the real code path: `source=`/`target=` config → Domain → readers →
class alignment by name → DataModule batches, on fake files in each data set's exact format."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from lepton_cli.builders.data import build_datamodule
from lepton_cli.data.datamodule import UNLABELLED
from lepton_cli.errors import LeptonError
from tests.conftest import compose_config
from tests.data import fake_files

FAST_RUN = ["trainer.fast_dev_run=true", "logger=none", "data.batch_size=4", "data.eval_batch_size=8"]


def datamodule(tmp_path: Path, *overrides: str):
    """The DataModule `lepton train data.root=TMP OVERRIDES` would build, set up."""
    cfg = compose_config([f"data.root={tmp_path}", *overrides], tmp_path / "run")
    module = build_datamodule(cfg)
    module.setup()
    return module


def first_batches(module) -> dict[str, torch.Tensor]:
    """The images of the first batch of each training loader and each evaluation loader."""
    batches = {f"train_{role}": next(iter(loader))[0] for role, loader in module.train_dataloader().items()}
    for role, loader in zip(module.test_splits, module.test_dataloader(), strict=True):
        batches[f"test_{role}"] = next(iter(loader))[0]
    return batches


# ---- CIFAR-10 ↔ STL-10: the 9-class pair ----------------------------------------------------------


def test_cifar_to_stl_keeps_the_nine_shared_classes_with_one_index_for_car(tmp_path):
    cifar = fake_files.write_cifar10(tmp_path)
    fake_files.write_stl10(tmp_path)
    module = datamodule(tmp_path, "source=cifar10", "target=stl10", "data.image_size=32", "data.channels=3")

    assert module.classes == ["airplane", "car", "bird", "cat", "deer", "dog", "horse", "ship", "truck"]
    assert module.alignment.dropped_source == ["frog"]
    assert module.alignment.dropped_target == ["monkey"]
    car = module.classes.index("car")
    # CIFAR train: 10 images, one per class; the frog is gone and the automobile is labelled car.
    images, labels = module.splits["source_train"]
    assert len(labels) == 9
    automobile = int(np.flatnonzero(cifar["train"].labels == 1)[0])  # written before the frog: same position
    assert labels[automobile] == car
    np.testing.assert_array_equal(images[automobile].permute(1, 2, 0).numpy(), cifar["train"].images[automobile])
    # STL test holds a monkey (dropped) and a car: the car has the same index as CIFAR's automobile.
    assert module.splits["target_test"][1].tolist() == [car]
    # STL's 96 px images come out at data.image_size.
    assert module.splits["target_train"][0].shape[1:] == (3, 32, 32)


def test_stl_to_cifar_uses_the_same_nine_classes_in_stl_order(tmp_path):
    fake_files.write_cifar10(tmp_path)
    fake_files.write_stl10(tmp_path)
    module = datamodule(tmp_path, "source=stl10", "target=cifar10", "data.image_size=32", "data.channels=3")
    assert module.classes == ["airplane", "bird", "car", "cat", "deer", "dog", "horse", "ship", "truck"]
    assert (module.alignment.dropped_source, module.alignment.dropped_target) == (["monkey"], ["frog"])
    assert module.splits["source_test"][1].tolist() == [module.classes.index("car")]


def test_cifar_stl_run_records_kept_and_dropped_classes_in_metrics_json(tmp_path, run_experiment):
    fake_files.write_cifar10(tmp_path)
    fake_files.write_stl10(tmp_path)
    metrics, run_dir = run_experiment("source=cifar10", "target=stl10", f"data.root={tmp_path}", "data.image_size=32",
                                      "data.channels=3", *FAST_RUN, tiny=False)
    written = json.loads((run_dir / "metrics.json").read_text())
    assert written["alignment"] == {
        "classes": ["airplane", "car", "bird", "cat", "deer", "dog", "horse", "ship", "truck"],
        "dropped_source": ["frog"],
        "dropped_target": ["monkey"],
    }
    assert written["classes"] == written["alignment"]["classes"] == metrics["classes"]


# ---- digits: grey ↔ colour and sizes harmonised -------------------------------------------------------


def test_mnist_from_the_official_gz_files_to_usps(tmp_path):
    mnist = fake_files.write_mnist(tmp_path, compressed="gz")
    usps = fake_files.write_usps(tmp_path)
    assert not list((tmp_path / "MNIST" / "raw").glob("*-ubyte"))  # only the .gz files are there
    module = datamodule(tmp_path, "source=mnist", "target=usps")

    assert module.classes == fake_files.DIGITS and module.alignment.dropped_source == []
    np.testing.assert_array_equal(module.splits["source_train"][0][:, 0].numpy(), mnist["train"].images[..., 0])
    assert module.splits["source_test"][1].tolist() == mnist["test"].labels.tolist()
    assert module.splits["target_test"][1].tolist() == usps["test"].labels.tolist()
    # The target's training labels never reach the method in unsupervised adaptation.
    assert (module.splits["target_train"][1] == UNLABELLED).all()
    for name, images in first_batches(module).items():  # USPS's 16 px resized to MNIST's 28
        assert images.dtype == torch.uint8 and images.shape[1:] == (1, 28, 28), name


@pytest.mark.parametrize("source,target", [("mnist", "svhn"), ("svhn", "mnist")])
def test_grey_and_colour_digits_meet_at_data_channels_and_image_size(tmp_path, source, target):
    fake_files.write_mnist(tmp_path)
    fake_files.write_svhn(tmp_path)
    module = datamodule(tmp_path, f"source={source}", f"target={target}", "data.channels=3", "data.image_size=32",
                        "data.batch_size=4")
    module.use_target_train = True  # as for an adaptation method (source_only leaves the target out)
    batches = first_batches(module)
    assert set(batches) == {"train_source", "train_target", "test_source", "test_target"}
    for name, images in batches.items():
        assert images.shape[1:] == (3, 32, 32), name
    assert batches["train_source"].shape[0] == batches["train_target"].shape[0] == 4
    # MNIST's one grey channel is copied to all three.
    grey = batches[f"test_{'source' if source == 'mnist' else 'target'}"]
    assert torch.equal(grey[:, 0], grey[:, 1]) and torch.equal(grey[:, 0], grey[:, 2])


def test_mnist_m_from_pngs_and_label_files(tmp_path):
    mnist_m = fake_files.write_mnist_m(tmp_path)
    fake_files.write_mnist(tmp_path)
    module = datamodule(tmp_path, "source=mnist_m", "target=mnist", "data.channels=3")
    np.testing.assert_array_equal(module.splits["source_train"][0].permute(0, 2, 3, 1).numpy(), mnist_m["train"].images)
    assert module.splits["source_test"][1].tolist() == mnist_m["test"].labels.tolist()
    assert module.splits["target_train"][0].shape[1:] == (3, 28, 28)


# ---- Office-31, Office-Home and users' own folders ----------------------------------------------------


def test_office31_amazon_to_webcam_uses_all_images_as_train_and_test(tmp_path):
    amazon = fake_files.write_office31(tmp_path, "amazon")  # the official archive's images/ level
    fake_files.write_office31(tmp_path, "webcam", images_level=False)  # and without it
    # No held-out target validation images, so target train is all the images too.
    module = datamodule(tmp_path, "source=office31/amazon", "target=office31/webcam", "data.channels=3",
                        "data.image_size=32", "data.target_val_fraction=0")
    assert module.classes == amazon["classes"] == ["back_pack", "bike"]
    assert module.source.image_size == module.target.image_size == 224  # decoded at 224, then resized
    for role in ("source", "target"):
        train_images = module.splits[f"{role}_train"][0]
        test_images = module.splits[f"{role}_test"][0]
        assert torch.equal(train_images, test_images)  # the same images: no official test split
        assert train_images.shape == (4, 3, 32, 32)
    assert module.splits["source_train"][1].tolist() == module.splits["source_test"][1].tolist() == amazon["labels"]
    # As the target, the same images are unlabelled for training and labelled for testing.
    assert (module.splits["target_train"][1] == UNLABELLED).all()
    assert module.splits["target_test"][1].tolist() == amazon["labels"]
    # Solid colours survive decoding and resizing.
    colour = module.splits["source_test"][0][0, :, 16, 16].tolist()
    assert colour == list(amazon["colours"][0])


def test_office_home_real_world_is_found_under_its_archive_name_with_a_space(tmp_path):
    fake_files.write_image_folder(tmp_path / "office_home" / "Real World", corrupt=False)
    fake_files.write_office_home(tmp_path, "Clipart")
    module = datamodule(tmp_path, "source=office_home/Real_World", "target=office_home/Clipart", "data.channels=3")
    assert module.classes == ["back_pack", "bike"]
    assert len(module.splits["source_test"][1]) == 4


def test_office_domain_without_files_says_where_to_put_them(tmp_path):
    with pytest.raises(LeptonError, match=r"office31/dslr/images/<class>/\*\.jpg"):
        datamodule(tmp_path, "source=office31/dslr", "target=office31/amazon")


def test_imagefolder_with_a_separate_test_folder(tmp_path):
    train = fake_files.write_image_folder(tmp_path / "mine" / "train", corrupt=False)
    fake_files.write_image_folder(tmp_path / "mine" / "test", corrupt=False)
    (tmp_path / "mine" / "test" / "bike" / "frame_0001.png").unlink()
    fake_files.write_office31(tmp_path, "amazon")
    # A relative path is under data.root; an absolute one is used as it is.
    module = datamodule(tmp_path, "source=imagefolder", "source.path=mine/train",
                        f"source.test_path={tmp_path / 'mine' / 'test'}", "target=office31/amazon", "data.channels=3")
    assert module.classes == train["classes"]
    assert module.splits["source_train"][1].tolist() == train["labels"] == [0, 0, 1, 1]
    assert module.splits["source_test"][1].tolist() == [0, 0, 1]


def test_imagefolder_without_a_path_says_how_to_give_one(tmp_path):
    fake_files.write_office31(tmp_path, "amazon")
    with pytest.raises(LeptonError, match=r"source\.path=/path/to/class_folders"):
        datamodule(tmp_path, "source=imagefolder", "target=office31/amazon")


def test_decoded_cache_is_not_shared_between_data_roots(tmp_path):
    # Two roots, the same relative folder, different classes: each run must see its own files.
    fake_files.write_image_folder(tmp_path / "a" / "mine", corrupt=False)
    (tmp_path / "b" / "mine" / "cat").mkdir(parents=True)
    fake_files.write_image_folder(tmp_path / "b" / "mine", corrupt=False)
    (tmp_path / "b" / "mine" / "bike" / "frame_0001.png").rename(tmp_path / "b" / "mine" / "cat" / "0.png")
    both = ["source=imagefolder", "source.path=mine", "target=imagefolder", "target.path=mine", "data.channels=3"]
    assert datamodule(tmp_path / "a", *both).classes == ["back_pack", "bike"]
    assert datamodule(tmp_path / "b", *both).classes == ["back_pack", "bike", "cat"]


# ---- mistakes a user can make --------------------------------------------------------------------


def test_a_pair_with_no_class_in_common_is_a_clear_error(tmp_path):
    fake_files.write_mnist(tmp_path)
    fake_files.write_office31(tmp_path, "amazon")
    with pytest.raises(LeptonError, match=r"source mnist and target office31_amazon have no class in common"):
        datamodule(tmp_path, "source=mnist", "target=office31/amazon", "data.channels=3")


def test_missing_files_give_one_line_naming_them_and_exit_2(tmp_path):
    missing_root = tmp_path / "nonexistent"
    env = {**os.environ, "LEPTON_CACHE": str(tmp_path / "cache")}
    env.pop("LEPTON_DEBUG", None)
    result = subprocess.run(
        [sys.executable, "-m", "lepton_cli.train", "source=mnist", "target=usps", f"data.root={missing_root}",
         f"hydra.run.dir={tmp_path / 'run'}"],
        capture_output=True, text=True, env=env, timeout=120, check=False,
    )
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("lepton: error: mnist: missing train-images-idx3-ubyte")
    assert f"{missing_root}/MNIST/raw/" in lines[0] and "data.download=true" in lines[0]


# ---- end to end ----------------------------------------------------------------------------------


def test_mnist_to_usps_trains_end_to_end_on_fake_files(tmp_path, run_experiment):
    fake_files.write_mnist(tmp_path, compressed="gz")
    fake_files.write_usps(tmp_path)
    metrics, run_dir = run_experiment("source=mnist", "target=usps", f"data.root={tmp_path}", *FAST_RUN, tiny=False)
    assert (metrics["source"], metrics["target"]) == ("mnist", "usps")
    assert 0.0 <= metrics["target/acc"] <= 1.0 and 0.0 <= metrics["source/acc"] <= 1.0
    assert json.loads((run_dir / "metrics.json").read_text())["alignment"]["classes"] == fake_files.DIGITS


def test_lepton_list_source_describes_every_data_set_and_where_its_files_go(capsys):
    from lepton_cli.cli import list_command
    from lepton_cli.config import group_options

    assert list_command(["source"]) == 0
    printed = capsys.readouterr().out
    options = group_options("source")
    expected = {"cifar10", "stl10", "mnist", "usps", "svhn", "mnist_m", "imagefolder", "office31/amazon",
                "office31/dslr", "office31/webcam", "office_home/Art", "office_home/Clipart", "office_home/Product",
                "office_home/Real_World"}
    assert expected <= set(options)
    for name in expected:
        line = next(line for line in printed.splitlines() if line.split()[:1] == [name])
        assert options[name] in line and ("<data.root>" in line or "path=" in line), line
