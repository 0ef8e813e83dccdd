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
    ["method=finetune"], ["method=distill"],
    # a ResNet-18 teacher (512 wide) for the small CNN (500), hints between maps of other widths and sizes
    ["method=distill", "teacher=resnet18", "method.feature_loss=hints", "method.teacher_layer=layer3",
     "method.student_layer=features.3", "method.adapt=mcc"],
    ["method=pseudo_label"],
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
    from lepton_cli.builders.data import build_datamodule
    from lepton_cli.builders.teacher import build_teacher

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
    from lepton_cli.builders.data import build_datamodule

    k = 3
    common = ["method=finetune", "method.init=scratch", f"method.labels_per_class={k}", *FEW_STEPS]
    datamodule = build_datamodule(compose_config([*TINY, *common], tmp_path / "compose"))
    datamodule.setup()
    _, labels = datamodule.splits["target_train"]
    assert torch.bincount(labels).tolist() == [k] * 10
    true_labels = torch.from_numpy(datamodule.target.load("train", datamodule.root, cache_dir=datamodule.cache_dir).labels)
    # The labelled images are drawn from what is left after the held-out target_val slice.
    _, trainable = datamodule._hold_out(len(true_labels), datamodule.target_val_fraction, "target", "digits")
    chosen = datamodule_module.labelled_subset(true_labels[trainable], k, seed=0)
    assert torch.equal(labels, true_labels[trainable][chosen])

    plain = train_weights(common, shuffle_target_train_labels=False)
    # The same k images per class are labelled; every other target label is scrambled.
    monkeypatch.setattr(datamodule_module, "labelled_subset", lambda *args: chosen)
    shuffle_target_train_labels(monkeypatch, keep=trainable[chosen].numpy())
    assert_bitwise_equal(plain, train_weights(common, shuffle_target_train_labels=False))


def test_finetune_from_source_starts_from_the_source_trained_student(tmp_path):
    from lepton_cli.builders.data import build_datamodule
    from lepton_cli.builders.method import build_method
    from lepton_cli.builders.teacher import build_teacher

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


class Recorder(torch.nn.Module):
    """Remembers the last batch it saw; as an augmentation it marks its output (x + offset)."""

    def __init__(self, offset: float = 0.0, logits: int | None = None):
        super().__init__()
        self.offset, self.logits, self.seen = offset, logits, None

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        self.seen = images.detach().clone()
        return images.float() + self.offset if self.logits is None else torch.zeros(len(images), self.logits)


@pytest.mark.filterwarnings("ignore:You are trying to `self.log")
@pytest.mark.parametrize("student_view", ["weak", "strong"])
def test_distill_teacher_sees_the_weak_view_and_the_student_the_chosen_one(student_view):
    from lepton_cli.methods import Distill
    from lepton_cli.models.backbones import SmallCNN

    teacher = Recorder(logits=10)
    method = Distill(SmallCNN(), 10, teacher=teacher, weak_augment=Recorder(0.0), strong_augment=Recorder(1000.0),
                     student_view=student_view)
    student_input = {}
    method.model.register_forward_pre_hook(lambda module, args: student_input.setdefault("images", args[0]))
    source, target = (torch.randint(0, 256, (4, 1, 28, 28), dtype=torch.uint8) for _ in range(2))
    method.training_step({"source": (source, torch.arange(4)), "target": (target, torch.full((4,), -1))}, 0)

    assert torch.equal(teacher.seen, target.float())  # weak view: +0
    offset = 1000.0 if student_view == "strong" else 0.0
    assert torch.equal(student_input["images"], torch.cat([source.float(), target.float() + offset]))


def test_distribution_alignment_damps_classes_the_model_over_predicts():
    from lepton_cli.methods import PseudoLabel
    from lepton_cli.models.backbones import SmallCNN

    method = PseudoLabel(SmallCNN(), 3, distribution_alignment=True, alignment_momentum=0.5)
    probabilities = torch.tensor([[0.8, 0.1, 0.1], [0.7, 0.2, 0.1], [0.6, 0.1, 0.3], [0.4, 0.5, 0.1]])
    aligned = method.align(probabilities, source_labels=torch.tensor([0, 1, 2, 0, 1, 2]))

    # Running marginals: half the prior (uniform), half this batch.
    assert torch.allclose(method.target_marginal, 0.5 / 3 + 0.5 * probabilities.mean(0))
    assert torch.allclose(method.source_marginal, torch.full((3,), 1 / 3))
    expected = probabilities / method.target_marginal
    assert torch.allclose(aligned, expected / expected.sum(1, keepdim=True))
    assert torch.allclose(aligned.sum(1), torch.ones(4))
    # Class 0 dominates the raw predictions; alignment moves the batch mean towards the source prior.
    assert aligned.mean(0)[0] < probabilities.mean(0)[0]
    assert (aligned.mean(0) - 1 / 3).abs().max() < (probabilities.mean(0) - 1 / 3).abs().max()


def test_distribution_alignment_statistics_are_averaged_over_all_ranks(monkeypatch):
    import lepton_cli.distributed
    from lepton_cli.methods import PseudoLabel
    from lepton_cli.models.backbones import SmallCNN

    # Another rank saw only class 2 in source and predicted only class 2 on target.
    other_rank = torch.tensor([[0.0, 0.0, 1.0], [0.0, 0.0, 1.0]])
    monkeypatch.setattr(lepton_cli.distributed, "mean_over_ranks", lambda stats: (stats + other_rank) / 2)
    method = PseudoLabel(SmallCNN(), 3, distribution_alignment=True, alignment_momentum=0.0)
    method.align(torch.tensor([[1.0, 0.0, 0.0], [1.0, 0.0, 0.0]]), source_labels=torch.tensor([0, 0]))
    assert torch.allclose(method.source_marginal, torch.tensor([0.5, 0.0, 0.5]))  # both ranks' batches
    assert torch.allclose(method.target_marginal, torch.tensor([0.5, 0.0, 0.5]))


class LogitsTeacher(torch.nn.Module):
    """A frozen-teacher stand-in over a Classifier; remembers its input."""

    def __init__(self, classifier):
        super().__init__()
        self.classifier, self.seen = classifier, None

    def forward(self, images):
        self.seen = images.detach().clone()
        return self.classifier(images)[0]


@pytest.mark.filterwarnings("ignore:You are trying to `self.log")
def test_a_teacher_of_another_architecture_gets_inputs_in_its_own_normalisation():
    from lepton_cli.data.augment import BatchAugment
    from lepton_cli.methods import Distill
    from lepton_cli.models.backbones import FeatureExtractor, SmallCNN
    from lepton_cli.models.heads import Classifier

    # The teacher's weights expect (x - 0.2) / 0.1; the digit CNN student is normalised with 0.5 / 0.5.
    trunk = FeatureExtractor(torch.nn.Conv2d(1, 4, 3), normalization=((0.2,), (0.1,)))
    teacher = LogitsTeacher(Classifier(trunk, 10))
    method = Distill(SmallCNN(), 10, teacher=teacher, weak_augment=BatchAugment(mean="auto", std="auto"),
                     strong_augment=BatchAugment(mean="auto", std="auto"))
    assert method.augment["weak"].normalization == ([0.5], [0.5])
    images = torch.randint(0, 256, (4, 1, 28, 28), dtype=torch.uint8)
    method.training_step({"source": (images, torch.arange(4)), "target": (images, torch.full((4,), -1))}, 0)
    torch.testing.assert_close(teacher.seen, (images.float() / 255 - 0.2) / 0.1)


# --- teacher ≠ student, feature-level distillation, adapt then distil ---------------------------


def feature_distill(feature_loss: str, teacher_layer: str | None = None, student_layer: str | None = None, **kwargs):
    """Distill with a 2-conv teacher (8 → 16 channels, 32 wide) for the small CNN student (500 wide)."""
    from lepton_cli.builders.teacher import FrozenTeacher
    from lepton_cli.methods import Distill
    from lepton_cli.models.backbones import FeatureExtractor, SmallCNN
    from lepton_cli.models.heads import Classifier

    trunk = torch.nn.Sequential(torch.nn.Conv2d(1, 8, 3, stride=2), torch.nn.ReLU(), torch.nn.Conv2d(8, 32, 3, stride=2))
    teacher = FrozenTeacher(Classifier(FeatureExtractor(trunk, normalization=None), 10, None), input_shape=(1, 28, 28))
    return Distill(SmallCNN(), 10, teacher=teacher, feature_loss=feature_loss, teacher_layer=teacher_layer,
                   student_layer=student_layer, **kwargs)


def distill_step(method) -> dict[str, torch.Tensor]:
    images = torch.randint(0, 256, (6, 1, 28, 28), dtype=torch.uint8)
    loss = method.training_step({"source": (images[:3], torch.arange(3)), "target": (images[3:], torch.full((3,), -1))}, 0)
    loss.backward()
    return {**method.last_losses, "loss": loss.detach()}


@pytest.mark.filterwarnings("ignore:You are trying to `self.log")
@pytest.mark.parametrize(("feature_loss", "teacher_layer", "student_layer"), [
    ("hints", None, None), ("hints", "module.2", "features.3"), ("attention", "module.0", "features.3"),
    ("rkd", None, None), ("rkd", "module.2", "features.5"),
])
def test_feature_losses_train_the_student_from_layers_picked_by_name(feature_loss, teacher_layer, student_layer):
    method = feature_distill(feature_loss, teacher_layer, student_layer, feature_weight=2.0)
    losses = distill_step(method)
    assert losses["feature"] > 0
    torch.testing.assert_close(losses["loss"], losses["classification"] + 0.9 * losses["distillation"] + 2.0 * losses["feature"])
    assert method.model.backbone.features[0].weight.grad.abs().sum() > 0
    assert not any(p.grad is not None for p in method.teacher.parameters())
    if feature_loss == "hints":  # the learned regressor maps student width to teacher width, and learns
        regressor = method.feature_loss.regressor
        assert isinstance(regressor, torch.nn.Conv2d if student_layer else torch.nn.Linear)
        assert (regressor.in_channels if student_layer else regressor.in_features) == (50 if student_layer else 500)
        assert (regressor.out_channels if student_layer else regressor.out_features) == 32
        assert regressor.weight.grad.abs().sum() > 0
        optimised = [p for group in method.configure_optimizers().param_groups for p in group["params"]]
        assert any(p is regressor.weight for p in optimised)


@pytest.mark.filterwarnings("ignore:You are trying to `self.log")
def test_adapt_mcc_adds_the_class_confusion_of_the_students_target_predictions():
    from lepton_cli.losses import mcc_loss

    method = feature_distill("none", adapt="mcc", adapt_weight=0.5)
    logits = {}
    method.model.register_forward_hook(lambda module, args, output: logits.update(all=output[0].detach()))
    losses = distill_step(method)
    torch.testing.assert_close(losses["class_confusion"], mcc_loss(logits["all"][3:], 2.5))
    torch.testing.assert_close(losses["loss"], losses["classification"] + 0.9 * losses["distillation"]
                               + 0.5 * losses["class_confusion"])


def test_unknown_layer_names_and_vector_attention_are_one_line_errors():
    with pytest.raises(LeptonError, match=r"method.teacher_layer='layer3' is not a layer .*choose one of: module, module.0"):
        feature_distill("hints", teacher_layer="layer3")
    with pytest.raises(LeptonError, match=r"method.student_layer='features.99' .*features.0, features.1"):
        feature_distill("hints", student_layer="features.99")
    with pytest.raises(LeptonError, match="attention needs convolutional feature maps"):
        feature_distill("attention")  # both layers default to the pooled vectors


def finished_run(run_experiment, tmp_path, name: str, *overrides: str) -> Path:
    _, run_dir = run_experiment("data.steps_per_epoch=2", *overrides, run_dir=tmp_path / name)
    return run_dir


def test_teacher_run_loads_the_runs_selection_pick_and_refuses_other_classes(run_experiment, tmp_path, caplog):
    from lepton_cli.builders.data import build_datamodule
    from lepton_cli.builders.method import build_method
    from lepton_cli.builders.teacher import build_teacher, load_run_classifier

    adapted = finished_run(run_experiment, tmp_path, "mcc", "method=mcc")
    [best] = (adapted / "checkpoints").glob("best-*.ckpt")
    saved = torch.load(best, map_location="cpu", weights_only=True)["state_dict"]
    # teacher= names another architecture: teacher.run rebuilds the run's own (small_cnn) from its saved config.
    cfg = compose_config([*TINY, "method=distill", "teacher=resnet18", f"teacher.run={adapted}"], tmp_path / "compose")
    datamodule = build_datamodule(cfg)
    caplog.set_level(logging.INFO, logger="lepton")
    teacher = build_teacher(cfg, datamodule)
    assert f"teacher: SmallCNN (mcc) from {best}, the run's selection pick by source_val" in caplog.text
    assert_bitwise_equal({f"model.{k}": v for k, v in teacher.classifier.state_dict().items()},
                         {k: v for k, v in saved.items() if k.startswith("model.")})
    assert not any(p.requires_grad for p in teacher.parameters())
    # The run trained with the digits augment's `auto`, 0.5/0.5 for small_cnn: a student normalising otherwise
    # re-normalises its views to that before the teacher sees them.
    assert [t.flatten().tolist() for t in teacher.input_normalization] == [[0.5], [0.5]]
    student_cfg = compose_config([*TINY, "method=distill", f"teacher.run={adapted}", "augment.weak.mean=0.1",
                                  "augment.weak.std=0.3", "augment.strong.mean=0.1", "augment.strong.std=0.3"],
                                 tmp_path / "compose2")
    method = build_method(student_cfg, datamodule)
    view = torch.rand(2, 1, 28, 28)
    torch.testing.assert_close(method.for_teacher((view - 0.1) / 0.3), (view - 0.5) / 0.5)

    with pytest.raises(LeptonError, match=r"predicts the classes \[0, 1, .*\] but this run has \[zero, one\]; distil from a run"):
        load_run_classifier(str(adapted), ["zero", "one"], (1, 28, 28))
    with pytest.raises(LeptonError, match="3-channel 28 px; set data.channels=1"):
        load_run_classifier(str(adapted), list(datamodule.classes), (3, 28, 28))
    with pytest.raises(LeptonError, match="is not a directory"):
        load_run_classifier(str(tmp_path / "nowhere"), list(datamodule.classes), (1, 28, 28))

    metrics, _ = run_experiment("method=distill", "student=small_cnn", f"teacher.run={adapted}",
                                "method.feature_loss=rkd", "trainer.fast_dev_run=true", run_dir=tmp_path / "distill")
    assert metrics["steps"] == 1


def test_teacher_run_takes_last_when_the_best_was_chosen_with_target_labels(tmp_path):
    import yaml

    from lepton_cli.builders.teacher import run_checkpoint

    (tmp_path / "checkpoints").mkdir()
    for name in ("best-epoch=3.ckpt", "last.ckpt"):
        (tmp_path / "checkpoints" / name).write_bytes(b"")
    for target, expected in [("lepton_cli.selection.SourceValAccuracy", "best-epoch=3.ckpt"),
                             ("lepton_cli.selection.OracleTargetAccuracy", "last.ckpt"),
                             ("os.system", "last.ckpt")]:  # not one of Lepton's validators: not trusted
        (tmp_path / "config.yaml").write_text(yaml.safe_dump({"selection": {"_target_": target, "name": "x"}}))
        assert run_checkpoint(tmp_path)[0].name == expected
    (tmp_path / "config.yaml").write_text("[not, a, mapping")
    path, why = run_checkpoint(tmp_path)
    assert path.name == "last.ckpt" and "target labels" in why


def test_teacher_cache_key_of_token_data_names_the_target_whose_train_shaped_the_vocabulary(tmp_path):
    from types import SimpleNamespace

    from lepton_cli.builders.teacher import cache_key

    cfg = compose_config([*TINY, "method=distill"], tmp_path / "compose")
    other = compose_config([*TINY, "method=distill", "target=mnist"], tmp_path / "compose2")
    source = SimpleNamespace(reads_files=False)
    images = SimpleNamespace(classes=["0", "1"], source=source, modality="image")
    tokens = SimpleNamespace(classes=["0", "1"], source=source, modality="tokens", input_dim=900)
    # Images: the teacher is trained on the source alone, whatever the target (one cache for all).
    assert cache_key(cfg, images, cfg.teacher) == cache_key(other, images, other.teacher)
    assert cache_key(cfg, tokens, cfg.teacher) != cache_key(other, tokens, other.teacher)
