"""The frozen teacher of distillation and teacher-labelled pseudo-labelling, and the
source-trained starting point of fine-tuning.

A teacher is a `Classifier` (backbone from `cfg.teacher`) whose weights never change. It comes
from, in order:

1. `teacher.run=RUN_DIR`: the model of an earlier `lepton train` run (adapt, then distil), its
   architecture rebuilt from the run's saved config through the allowlist of
   `builders.saved_model` (the stored config is data, never instantiated), from the run's
   selection pick `checkpoints/best-*.ckpt` when there is one and the run chose without target
   labels, else `checkpoints/last.ckpt`; the log says which. `teacher=` is then ignored;
2. `teacher.checkpoint=PATH`: the `model.*` weights of a checkpoint written by `lepton train`;
3. otherwise Lepton trains it on the labelled source (source-only, same data and augmentation,
   `method.teacher_epochs` epochs), starting from timm's ImageNet weights when
   `teacher.pretrained=true`. The weights are cached under `${data.cache_dir}/teachers/<hash>.pt`,
   keyed by everything that determines them, so the next run with the same settings reuses them.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import random
import tempfile
from pathlib import Path

import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf, open_dict
from torch import nn

from lepton_cli.builders.data import resolve_data_shape
from lepton_cli.errors import LeptonError
from lepton_cli.io import safe_torch_load, write_buffer_atomically
from lepton_cli.models.heads import Classifier

log = logging.getLogger("lepton")

CACHE_FORMAT = "lepton-teacher-v2"  # bump when the training recipe changes, so old caches are not reused
OPTIMISATION_KEYS = ("lr", "bottleneck_dim", "optimizer", "scheduler")  # from cfg.method; they shape the teacher


class FrozenTeacher(nn.Module):
    """A classifier that stays in eval mode and gets no gradients; `forward` returns logits."""

    def __init__(self, classifier: Classifier, input_shape: tuple[int, int, int] | None = None,
                 input_normalization: tuple[torch.Tensor, torch.Tensor] | None = None):
        super().__init__()
        self.classifier = classifier.requires_grad_(False).eval()
        self.input_shape = input_shape  # (channels, height, width) of the images it is given
        # (mean, std) its inputs were normalised with when it was trained, where known (teacher.run):
        # the student re-normalises its views to these (AdaptationMethod.use_teacher_normalization).
        self.input_normalization = input_normalization

    def train(self, mode: bool = True) -> FrozenTeacher:
        return super().train(False)  # dropout and batch-norm statistics stay frozen inside a training model

    @torch.no_grad()
    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.classifier(images)[0]


def build_teacher(cfg: DictConfig, datamodule) -> FrozenTeacher:
    """The frozen teacher of `cfg` (see the module docstring) for the classes of `datamodule`.

    Fine-tuning from the source (`method.init=source`) asks for the *student's* architecture
    trained on the source: then `cfg.student` is the backbone and the same cache is used.
    """
    resolve_data_shape(cfg, datamodule)  # the backbone needs the data's size and channels
    role = "student" if cfg.method.get("init") == "source" else "teacher"
    backbone_cfg = cfg[role]
    num_classes = len(datamodule.classes)
    input_shape = ((int(cfg.data.channels), int(cfg.data.image_size), int(cfg.data.image_size))
                   if getattr(datamodule, "modality", "image") == "image" else None)  # text/audio: no (C, H, W)
    if role == "teacher" and backbone_cfg.get("run"):
        classifier, normalization = load_run_classifier(backbone_cfg.run, list(datamodule.classes), input_shape)
        return FrozenTeacher(classifier, input_shape, normalization)
    elif backbone_cfg.get("checkpoint"):
        classifier = load_checkpoint_classifier(backbone_cfg, backbone_cfg.checkpoint, num_classes, role)
        log.info("%s: %s from %s", role, describe(backbone_cfg), backbone_cfg.checkpoint)
    else:
        classifier = source_trained_classifier(cfg, datamodule, backbone_cfg, role)
    return FrozenTeacher(classifier, input_shape)


def run_checkpoint(run_dir: Path) -> tuple[Path, str]:
    """(The checkpoint of an earlier run to teach from, why that one): the selection callback's pick
    `checkpoints/best-*.ckpt` when the run chose without target labels, else `checkpoints/last.ckpt`."""
    import yaml

    checkpoints = run_dir / "checkpoints"
    best = sorted(checkpoints.glob("best-*.ckpt"))
    if len(best) == 1:
        # The run's config.yaml is data (yaml.safe_load): read only for which validator chose "best".
        try:
            stored = yaml.safe_load((run_dir / "config.yaml").read_text())
        except (OSError, yaml.YAMLError):
            stored = None
        selection = stored.get("selection") if isinstance(stored, dict) else None
        if not chosen_with_target_labels(selection):
            return best[0], f"the run's selection pick by {selection.get('name', 'its validator')}"
        reason = "the run's last weights: its best-*.ckpt was chosen with target labels (or its config.yaml is unreadable)"
    else:
        reason = "the run's last weights: it has no single selection pick (best-*.ckpt)"
    last = checkpoints / "last.ckpt"
    if not last.is_file():
        raise LeptonError(f"teacher.run={run_dir} has no checkpoints/last.ckpt; give the directory of a finished "
                          "lepton train run (it holds checkpoints/ and metrics.json)")
    return last, reason


def chosen_with_target_labels(selection) -> bool:
    """Whether a stored `selection:` node names a validator that reads target labels (the oracle);
    unknown or foreign validators count as reading them. Only Lepton's own classes are looked up."""
    from hydra.utils import get_object

    from lepton_cli.builders.saved_model import allowed_targets

    target = selection.get("_target_") if isinstance(selection, dict) else None
    if target not in allowed_targets("selection"):
        return True
    return bool(getattr(get_object(target), "uses_target_labels", True))


def load_run_classifier(run: str, classes: list[str],
                        input_shape: tuple[int, int, int]) -> tuple[Classifier, tuple[torch.Tensor, torch.Tensor]]:
    """The classifier of an earlier Lepton run (adapt, then distil), through the allowlist of
    `builders.saved_model`; refuses a run of other classes or another image shape."""
    from lepton_cli.builders.saved_model import build_classifier, checkpoint_classes, checkpoint_modality, load_checkpoint

    run_dir = Path(run).expanduser()
    if not run_dir.is_dir():
        raise LeptonError(f"teacher.run={run} is not a directory; give the directory of an earlier lepton train run "
                          "(e.g. teacher.run=runs/2026-11-30_12-00-00_synth_digits_to_digits_mcc)")
    path, which = run_checkpoint(run_dir)
    checkpoint = load_checkpoint(path)
    trained_classes = checkpoint_classes(checkpoint)
    if trained_classes != classes:
        raise LeptonError(f"teacher.run={run} predicts the classes [{', '.join(trained_classes[:12])}] but this run has "
                          f"[{', '.join(classes[:12])}]; distil from a run on the same classes (the same source data set)")
    modality = checkpoint_modality(checkpoint["lepton_config"])
    if modality != "image":
        raise LeptonError(f"teacher.run={run} is a run on {modality} inputs; teacher.run= reads image runs only for now: "
                          "leave teacher.run unset and method=distill trains its teacher (teacher=audio_cnn, text_mlp, ...)")
    data = checkpoint["lepton_config"]["data"]
    trained_shape = (data["channels"], data["image_size"], data["image_size"])
    if trained_shape != input_shape:
        raise LeptonError(f"teacher.run={run} was trained on {trained_shape[0]}-channel {trained_shape[1]} px images but this "
                          f"run has {input_shape[0]}-channel {input_shape[1]} px; set data.channels={trained_shape[0]} "
                          f"data.image_size={trained_shape[1]}")
    classifier, normalize = build_classifier(checkpoint)
    config = checkpoint["lepton_config"]
    log.info("teacher: %s (%s) from %s, %s", describe_saved(config["student"]), config["method"].get("name"), path, which)
    # The normalisation that run trained with (its augment, `auto` resolved for its backbone): this
    # run's augment may differ, so the student's views are brought to it before the teacher sees them.
    augment = getattr(normalize, "__self__", None)
    if augment is not None:
        return classifier, (augment.mean.detach().cpu(), augment.std.detach().cpu())
    half = torch.full((1, input_shape[0], 1, 1), 0.5)
    return classifier, (half, half)  # build_classifier's fallback: (x - 0.5) / 0.5


def describe_saved(backbone: dict) -> str:
    return str(backbone.get("name") or str(backbone.get("_target_", "?")).rsplit(".", 1)[-1])


def describe(backbone_cfg: DictConfig) -> str:
    """`resnet18`, or `SmallCNN` for backbones without a `name`."""
    return str(backbone_cfg.get("name") or backbone_cfg._target_.rsplit(".", 1)[-1])


def new_backbone(backbone_cfg: DictConfig) -> nn.Module:
    from hydra.utils import instantiate

    # The checkpoint (if any) holds the whole classifier and is loaded here, not by the backbone;
    # `run` (the teacher's) is the builder's, not the backbone's.
    backbone_cfg = backbone_cfg.copy()
    with open_dict(backbone_cfg):
        backbone_cfg.pop("run", None)
    return instantiate(backbone_cfg, checkpoint=None)


def load_checkpoint_classifier(backbone_cfg: DictConfig, checkpoint: str, num_classes: int,
                               role: str = "teacher") -> Classifier:
    """The classifier (`model.*` weights) of a checkpoint written by `lepton train`."""
    path = Path(checkpoint).expanduser()
    saved = safe_torch_load(path, f"{role}.checkpoint")
    state = saved.get("state_dict", saved) if isinstance(saved, dict) else {}
    weights = {k.removeprefix("model."): v for k, v in state.items() if k.startswith("model.")}
    if not weights:
        raise LeptonError(f"{role}.checkpoint {path} holds no Lepton model weights (no model.* keys); "
                          "give a .ckpt written by lepton train")
    head = weights.get("head.weight")
    if head is not None and head.shape[0] != num_classes:
        raise LeptonError(f"{role}.checkpoint {path} predicts {head.shape[0]} classes but this experiment has "
                          f"{num_classes}; use a checkpoint trained on the same classes")
    bottleneck = weights.get("bottleneck.0.weight")
    classifier = Classifier(new_backbone(backbone_cfg), num_classes,
                            bottleneck.shape[0] if bottleneck is not None else None)
    try:
        classifier.load_state_dict(weights)
    except RuntimeError:
        trained = (saved.get("lepton_config") or {}).get("student") or {}
        trained_name = trained.get("name") or str(trained.get("_target_", "another architecture")).rsplit(".", 1)[-1]
        raise LeptonError(f"{role}.checkpoint {path} holds a {trained_name} (or other channels/image size), which does "
                          f"not fit {role}={describe(backbone_cfg)}; set {role}= to the architecture it was trained with"
                          ) from None
    return classifier


def cache_key(cfg: DictConfig, datamodule, backbone_cfg: DictConfig) -> dict:
    """Everything that determines a source-trained teacher's weights."""
    def plain(node):
        return OmegaConf.to_container(node, resolve=True) if isinstance(node, DictConfig) else node

    data = cfg.data
    key = {
        "format": CACHE_FORMAT,
        "backbone": {k: v for k, v in plain(backbone_cfg).items() if k not in ("checkpoint", "run")},
        "source": plain(cfg.source),
        "classes": list(datamodule.classes),
        "data": {k: data.get(k) for k in ("image_size", "channels", "batch_size", "steps_per_epoch",
                                            "source_val_fraction", "source_val_seed")},
        "augment": plain(cfg.augment),
        "optimisation": {k: plain(cfg.method.get(k)) for k in OPTIMISATION_KEYS},
        "epochs": teacher_epochs(cfg),
        "seed": cfg.seed,
        "precision": str(cfg.trainer.get("precision")),
    }
    if getattr(datamodule, "modality", "image") != "image":
        # A token vocabulary is built from source *and target* train: another target, other token ids.
        key["target"], key["input_dim"] = plain(cfg.target), datamodule.input_dim
    if getattr(datamodule.source, "reads_files", False):  # other files under another root
        key["root"] = str(Path(data.root).expanduser().resolve())
    return key


def teacher_epochs(cfg: DictConfig) -> int:
    epochs = cfg.method.get("teacher_epochs")
    if epochs is None:
        raise LeptonError(f"method {cfg.method.name} needs method.teacher_epochs (epochs to train the teacher on the source)")
    if epochs < 1:
        raise LeptonError(f"method.teacher_epochs must be at least 1, got {epochs}")
    return int(epochs)


def cache_path(cfg: DictConfig, key: dict) -> Path:
    digest = hashlib.sha1(json.dumps(key, sort_keys=True, default=str).encode()).hexdigest()[:16]
    return Path(cfg.data.cache_dir).expanduser() / "teachers" / f"{digest}.pt"


def source_trained_classifier(cfg: DictConfig, datamodule, backbone_cfg: DictConfig, role: str = "teacher") -> Classifier:
    """A classifier trained on the labelled source, from the cache when the same one was trained before."""
    key = cache_key(cfg, datamodule, backbone_cfg)
    path = cache_path(cfg, key)
    num_classes = len(datamodule.classes)
    bottleneck_dim = cfg.method.get("bottleneck_dim")
    classifier = Classifier(new_backbone(backbone_cfg), num_classes, bottleneck_dim)
    if path.is_file() and read_cache(path, key, classifier):
        log.info("%s: reusing %s trained on %s from %s", role, describe(backbone_cfg), cfg.source.name, path)
        return classifier
    epochs = teacher_epochs(cfg)
    fast_dev_run = bool(cfg.trainer.get("fast_dev_run"))
    log.info("%s: training %s on %s for %d epochs%s", role, describe(backbone_cfg), cfg.source.name, epochs,
             " (fast_dev_run: one step, not cached)" if fast_dev_run else f", cached in {path}")
    train_on_source(cfg, datamodule, classifier, epochs, fast_dev_run)
    if not fast_dev_run:
        write_cache(path, key, classifier)
    return classifier


def read_cache(path: Path, key: dict, classifier: Classifier) -> bool:
    """Load a cached teacher; a file that is unreadable or belongs to other settings is not trusted."""
    try:
        saved = safe_torch_load(path, "teacher cache")
        if saved["key"] != json.dumps(key, sort_keys=True, default=str):
            raise ValueError("it was written for other settings")
        classifier.load_state_dict(saved["state_dict"])
    except Exception as error:  # noqa: BLE001 - a broken cache is retrained, whatever broke it
        log.warning("teacher cache %s is unusable (%s: %s); training again", path, type(error).__name__, error)
        return False
    return True


def write_cache(path: Path, key: dict, classifier: Classifier) -> None:
    saved = {"key": json.dumps(key, sort_keys=True, default=str),
             "state_dict": {k: v.detach().cpu() for k, v in classifier.state_dict().items()}}
    write_buffer_atomically(path, lambda buffer: torch.save(saved, buffer))


def train_on_source(cfg: DictConfig, datamodule, classifier: Classifier, epochs: int, fast_dev_run: bool = False) -> None:
    """Source-only training of `classifier` in place, on one device, seeded by `cfg.seed`."""
    import pytorch_lightning as pl
    from hydra.utils import instantiate

    from lepton_cli.methods.source_only import SourceOnly

    augment = instantiate(cfg.augment)
    optimisation = {k: cfg.method[k] for k in ("lr", "optimizer", "scheduler") if cfg.method.get(k) is not None}
    with isolated_rng(cfg.seed):
        method = SourceOnly(classifier.backbone, len(datamodule.classes), class_names=datamodule.classes,
                            bottleneck_dim=cfg.method.get("bottleneck_dim"), weak_augment=augment.weak,
                            strong_augment=augment.strong, lr=optimisation.get("lr", 0.01),
                            optimizer=instantiate(optimisation["optimizer"]) if "optimizer" in optimisation else None,
                            scheduler=instantiate(optimisation["scheduler"]) if "scheduler" in optimisation else None)
        method.model = classifier
        # One device: under DDP every rank trains the same seeded teacher (the cache write is atomic).
        trainer = pl.Trainer(max_epochs=epochs, accelerator=cfg.trainer.get("accelerator", "auto"), devices=1,
                             precision=cfg.trainer.get("precision", "32-true"),
                             deterministic=cfg.trainer.get("deterministic", False), fast_dev_run=fast_dev_run,
                             logger=False, enable_checkpointing=False, enable_model_summary=False,
                             limit_val_batches=0, num_sanity_val_steps=0, default_root_dir=tempfile.gettempdir())
        trainer.fit(method, train_dataloaders={"source": datamodule._train_loader("source_train")})
    classifier.cpu().eval()


@contextlib.contextmanager
def isolated_rng(seed: int):
    """Seed for the teacher's training, then give back the random state as it was: a run that
    reuses a cached teacher trains its student exactly as the run that trained the teacher."""
    import pytorch_lightning as pl

    python_state, numpy_state = random.getstate(), np.random.get_state()
    with torch.random.fork_rng(devices=range(torch.cuda.device_count()) if torch.cuda.is_available() else []):
        pl.seed_everything(seed, workers=True, verbose=False)
        try:
            yield
        finally:
            random.setstate(python_state)
            np.random.set_state(numpy_state)
