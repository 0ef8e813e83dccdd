"""finetune, distill and pseudo_label: they run, the teacher is built from a checkpoint or trained
once and cached, target labels are used only where allowed, and FixMatch's mask does what it says."""

from __future__ import annotations

import csv
import logging
import os
from pathlib import Path

import numpy as np
import pytest
import torch

from lepton_cli.data import datamodule as datamodule_module
from lepton_cli.data.domains import Domain
from lepton_cli.errors import LeptonError
from tests.conftest import TINY, compose_config
from tests.methods.leakage import assert_bitwise_equal, train_weights

FEW_STEPS = ["data.steps_per_epoch=3", "method.teacher_epochs=1"]


@pytest.fixture
def run_experiment(run_experiment):
    """The shared fixture without the end-of-run report (its plots are slow and not checked here)."""
    return lambda *overrides, **kwargs: run_experiment(*overrides, "report=false", **kwargs)


def model_weights(run_dir: Path) -> dict[str, torch.Tensor]:
    """The student's weights after training, from the run's last checkpoint."""
    state = torch.load(run_dir / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)["state_dict"]
    return {k: v for k, v in state.items() if k.startswith("model.")}


def shuffle_target_train_labels(monkeypatch, keep: np.ndarray | None = None) -> None:
    """Permute the target (`digits`) training labels as they come off disk, except at `keep`."""
    load = Domain.load

    def shuffled_load(self, split, *args, **kwargs):
        arrays = load(self, split, *args, **kwargs)
        if self.name == "digits" and split == "train":
            movable = np.setdiff1d(np.arange(len(arrays.labels)), keep if keep is not None else [])
            labels = arrays.labels.copy()
            labels[movable] = np.random.default_rng(123).permutation(labels[movable])
            assert (labels != arrays.labels).any()
            arrays.labels = labels
        return arrays

    monkeypatch.setattr(Domain, "load", shuffled_load)


def train_log(run_dir: Path, column: str) -> list[float]:
    with open(run_dir / "logs" / "metrics.csv") as handle:
        return [float(row[column]) for row in csv.DictReader(handle) if row.get(column)]


@pytest.mark.parametrize("overrides", [
    ["method=finetune"], ["method=distill"], ["method=distill", "teacher=resnet18"], ["method=pseudo_label"],
    ["method=pseudo_label", "method.teacher_labels=true"],
], ids=["finetune", "distill", "distill_resnet18_teacher", "pseudo_label", "pseudo_label_teacher_labels"])
def test_method_runs_fast_dev_run(run_experiment, overrides):
    teachers = Path(os.environ["LEPTON_CACHE"]) / "teachers"
    cached_before = set(teachers.glob("*.pt"))
    metrics, _ = run_experiment(*overrides, "trainer.fast_dev_run=true")
    assert metrics["steps"] == 1 and 0.0 <= metrics["target/acc"] <= 1.0
    assert set(teachers.glob("*.pt")) == cached_before  # a one-step debug teacher is never cached


@pytest.mark.slow
def test_teacher_is_trained_once_cached_and_keyed_by_its_settings(run_experiment, tmp_path, caplog):
    cache = tmp_path / "cache"
    common = ["method=distill", *FEW_STEPS, f"data.cache_dir={cache}"]
    caplog.set_level(logging.INFO, logger="lepton")
    first, first_dir = run_experiment(*common, run_dir=tmp_path / "a")
    assert "teacher: training SmallCNN on synth_digits for 1 epochs" in caplog.text
    [cached] = (cache / "teachers").glob("*.pt")
    written = cached.stat().st_mtime_ns

    caplog.clear()
    second, second_dir = run_experiment(*common, run_dir=tmp_path / "b")
    assert "teacher: reusing SmallCNN" in caplog.text and "teacher: training" not in caplog.text
    assert cached.stat().st_mtime_ns == written
    # The teacher's training leaves the random state alone: reusing it gives the very same student.
    assert_bitwise_equal(model_weights(first_dir), model_weights(second_dir))
    assert first["target/acc"] == second["target/acc"]

    caplog.clear()
    run_experiment(*common, "method.teacher_epochs=2", run_dir=tmp_path / "c")
    assert "teacher: training SmallCNN on synth_digits for 2 epochs" in caplog.text
    assert len(list((cache / "teachers").glob("*.pt"))) == 2
    assert not list((cache / "teachers").glob("*.tmp"))


@pytest.mark.slow
def test_half_written_teacher_cache_is_retrained(run_experiment, tmp_path, caplog):
    cache = tmp_path / "cache"
    common = ["method=pseudo_label", "method.teacher_labels=true", *FEW_STEPS, f"data.cache_dir={cache}"]
    _, first_dir = run_experiment(*common, run_dir=tmp_path / "a")
    [cached] = (cache / "teachers").glob("*.pt")
    good = torch.load(cached, weights_only=True)["state_dict"]
    cached.write_bytes(cached.read_bytes()[:1000])  # as if a run died while writing it without os.replace

    caplog.set_level(logging.INFO, logger="lepton")
    _, second_dir = run_experiment(*common, run_dir=tmp_path / "b")
    assert "is unusable" in caplog.text and "teacher: training" in caplog.text
    assert_bitwise_equal(torch.load(cached, weights_only=True)["state_dict"], good)  # retrained, written whole
    assert_bitwise_equal(model_weights(first_dir), model_weights(second_dir))


@pytest.mark.slow
def test_teacher_from_checkpoint_of_a_previous_run(run_experiment, tmp_path, caplog):
    from lepton_cli.teacher import build_teacher
    from lepton_cli.train import build_datamodule

    _, source_dir = run_experiment("data.steps_per_epoch=2", run_dir=tmp_path / "source_only")
    checkpoint = source_dir / "checkpoints" / "last.ckpt"
    saved = model_weights(source_dir)

    cfg = compose_config([*TINY, "method=distill", f"teacher.checkpoint={checkpoint}"], tmp_path / "compose")
    datamodule = build_datamodule(cfg)
    teacher = build_teacher(cfg, datamodule)
    assert_bitwise_equal({f"model.{k}": v for k, v in teacher.classifier.state_dict().items()}, saved)
    assert not any(p.requires_grad for p in teacher.parameters())

    caplog.set_level(logging.INFO, logger="lepton")
    metrics, _ = run_experiment("method=distill", f"teacher.checkpoint={checkpoint}", "trainer.fast_dev_run=true",
                                run_dir=tmp_path / "distill")
    assert "teacher: SmallCNN from" in caplog.text and "teacher: training" not in caplog.text
    assert metrics["steps"] == 1

    with pytest.raises(LeptonError, match="does not fit teacher=resnet18"):
        run_experiment("method=distill", "teacher=resnet18", f"teacher.checkpoint={checkpoint}",
                       "trainer.fast_dev_run=true", run_dir=tmp_path / "wrong")


@pytest.mark.parametrize("method", [["method=distill"], ["method=pseudo_label", "method.threshold=0.5", "method.rampup=0"],
                                    ["method=pseudo_label", "method.teacher_labels=true"]],
                         ids=["distill", "pseudo_label", "pseudo_label_teacher_labels"])
def test_unsupervised_methods_never_read_target_labels(method):
    overrides = [*method, "method.teacher_epochs=1"]
    assert_bitwise_equal(train_weights(overrides, shuffle_target_train_labels=False),
                         train_weights(overrides, shuffle_target_train_labels=True))


def test_finetune_reads_exactly_k_labels_per_class(tmp_path, monkeypatch):
    from lepton_cli.train import build_datamodule

    k = 3
    common = ["method=finetune", "method.init=scratch", f"method.labels_per_class={k}", *FEW_STEPS]
    datamodule = build_datamodule(compose_config([*TINY, *common], tmp_path / "compose"))
    datamodule.setup()
    _, labels = datamodule.splits["target_train"]
    assert torch.bincount(labels).tolist() == [k] * 10
    true_labels = torch.from_numpy(datamodule.target.load("train", datamodule.root, cache_dir=datamodule.cache_dir).labels)
    chosen = datamodule_module.labelled_subset(true_labels, k, seed=0)
    assert torch.equal(labels, true_labels[chosen])

    plain = train_weights(common, shuffle_target_train_labels=False)
    # The same k images per class are labelled; every other target label is scrambled.
    monkeypatch.setattr(datamodule_module, "labelled_subset", lambda *args: chosen)
    shuffle_target_train_labels(monkeypatch, keep=chosen.numpy())
    assert_bitwise_equal(plain, train_weights(common, shuffle_target_train_labels=False))


def test_finetune_from_source_starts_from_the_source_trained_student(tmp_path):
    from lepton_cli.teacher import build_teacher
    from lepton_cli.train import build_datamodule, build_method

    cfg = compose_config([*TINY, "method=finetune", "method.freeze_backbone=true", *FEW_STEPS], tmp_path / "compose")
    datamodule = build_datamodule(cfg)
    datamodule.setup()
    method = build_method(cfg, datamodule)
    source_trained = build_teacher(cfg, datamodule).classifier.state_dict()  # from the cache now
    assert_bitwise_equal(method.model.state_dict(), source_trained)
    assert not any(p.requires_grad for p in method.model.backbone.parameters())
    assert method.train().model.backbone.training is False


@pytest.mark.parametrize(("threshold", "mask_rate"), [(1.0, 0.0), (0.0, 1.0)])
def test_pseudo_label_threshold_masks_target_samples(run_experiment, threshold, mask_rate):
    _, run_dir = run_experiment("method=pseudo_label", f"method.threshold={threshold}", "method.rampup=0",
                                "data.steps_per_epoch=3", "logger=csv", "trainer.log_every_n_steps=1")
    assert train_log(run_dir, "train/mask_rate") == [mask_rate] * 3
    unsupervised = train_log(run_dir, "train/unsupervised")
    assert all(u == 0.0 for u in unsupervised) if threshold == 1.0 else all(u > 0.0 for u in unsupervised)


def test_pseudo_label_weight_ramps_up_linearly(monkeypatch):
    from lepton_cli.methods import PseudoLabel
    from lepton_cli.models.backbones import SmallCNN

    method = PseudoLabel(SmallCNN(), 10, weight=2.0, rampup=0.1)
    for progress, weight in [(0.0, 0.0), (0.05, 1.0), (0.1, 2.0), (0.7, 2.0)]:
        monkeypatch.setattr(PseudoLabel, "progress", property(lambda self, p=progress: p))
        assert method.unsupervised_weight() == pytest.approx(weight)
