"""What every adaptation method shares: the classifier, optimiser and schedule from config,
augmented views, and evaluation on the target and source test splits.

A method subclasses `AdaptationMethod`, adds its hyper-parameters and extra modules in `__init__`
and writes `training_step`; `self.view(images, "weak")` gives the augmented, normalised tensor.

The batch format, the same from `lepton train` and from your own Python code:

- training: `{"source": (images, labels), "target": (images, labels)}`; the target labels are
  ignored by the unsupervised methods (the DataModule sends -1) and read by `FineTune`; with
  several source domains (`source=multi`) also `"source_domain"`: the domain index of each source image;
- evaluation: `(images, labels)` per dataloader; `DomainAdaptationData` names its loaders
  (`val_splits`, `test_splits`), plain lists of loaders are named `EVAL_DOMAINS` in order;
- images: (B, C, H, W), either uint8 in [0, 255] or float in [0, 1] (torchvision's `ToTensor`),
  never normalised already: the method normalises them (`augment` mean/std, by default the
  backbone's own statistics). Anything else raises a LeptonError (`data.augment.as_unit_range`).
- labels: int64 class indices.

The backbone is any `nn.Module` mapping normalised images to features; one without an integer
`num_features` (e.g. a torchvision ResNet) is wrapped in `models.backbones.FeatureExtractor`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from torch import nn
from torchmetrics import MetricCollection
from torchmetrics.classification import MulticlassAccuracy, MulticlassF1Score, MulticlassRecall

from lepton_cli.data.augment import DEFAULT_MEAN, DEFAULT_STD, BatchAugment
from lepton_cli.errors import LeptonError
from lepton_cli.models.backbones import backbone_normalization
from lepton_cli.models.heads import Classifier

# The names of unnamed evaluation dataloaders, in order (test: the first two). `DomainAdaptationData`
# names its own (`val_splits`, `test_splits`), which is what `lepton train` uses.
EVAL_DOMAINS = ("target", "source", "source_val")
LABELLED_SPLITS = ("target", "source", "source_val")  # metrics are computed on these; target_val has no labels
# TLlib and the CDAN authors train a pretrained backbone at a tenth of the head's learning rate.
PRETRAINED_BACKBONE_LR_MULT = 0.1


def classification_metrics(num_classes: int) -> MetricCollection:
    return MetricCollection({
        "acc": MulticlassAccuracy(num_classes, average="micro"),
        "recall_macro": MulticlassRecall(num_classes, average="macro"),
        "f1_macro": MulticlassF1Score(num_classes, average="macro"),
        "per_class_acc": MulticlassAccuracy(num_classes, average=None),
    })


def plain_hyperparameters(hparams: dict) -> None:
    """Hydra hands lists and dicts over as ListConfig/DictConfig; store them as plain containers so
    that checkpoints load with `torch.load(weights_only=True)` (`lepton eval`)."""
    from omegaconf import Container, OmegaConf

    for key, value in list(hparams.items()):
        if isinstance(value, Container):
            hparams[key] = OmegaConf.to_container(value, resolve=True)


class AdaptationMethod(pl.LightningModule):
    """Shared base of all methods (see the module docstring)."""

    #: whether the method reads target training images (source-only does not)
    uses_target_train: bool = True
    #: labelled target images per class the method may see (None: none, unsupervised)
    target_labels_per_class: int | None = None

    @classmethod
    def needs_teacher(cls, method_cfg) -> bool:
        """Whether `train.py` must build a frozen teacher (passed to `__init__` as `teacher=`)."""
        return False

    @classmethod
    def reads_target_train(cls, method_cfg) -> bool:
        """Whether the DataModule yields target training images: `uses_target_train`, unless a
        method's own config decides (CORAL aligns to the target only when asked)."""
        return cls.uses_target_train

    def __init__(self, backbone: nn.Module, num_classes: int, class_names: list[str] | None = None,
                 optimizer: Callable[..., torch.optim.Optimizer] | None = None,
                 scheduler: Callable[..., Any] | None = None, lr: float = 0.01, backbone_lr_mult: float | None = None,
                 bottleneck_dim: int | None = 256, weak_augment: nn.Module | None = None,
                 strong_augment: nn.Module | None = None, lr_scaling: str = "none", name: str | None = None):
        """`backbone_lr_mult`: the backbone's learning rate as a multiple of `lr`; None (auto) is 0.1
        for a backbone that starts from trained weights (`is_pretrained`: pretrained or a checkpoint)
        and 1.0 for one trained from scratch."""
        super().__init__()
        if lr <= 0:
            raise LeptonError(f"method.lr must be positive, got {lr}")
        if backbone_lr_mult is not None and backbone_lr_mult < 0:
            raise LeptonError(f"method.backbone_lr_mult must be non-negative (or null: auto), got {backbone_lr_mult}")
        self.save_hyperparameters(ignore=["backbone", "optimizer", "scheduler", "weak_augment", "strong_augment", "teacher"])
        plain_hyperparameters(self.hparams)
        self.model = Classifier(backbone, num_classes, bottleneck_dim)
        self.augment = nn.ModuleDict({"weak": weak_augment or BatchAugment(mean="auto", std="auto"),
                                      "strong": strong_augment or BatchAugment(mean="auto", std="auto")})
        normalization = backbone_normalization(self.model.backbone)
        for augment in self.augment.values():
            if hasattr(augment, "use_backbone_normalization"):  # `mean: auto` → the backbone's statistics
                augment.use_backbone_normalization(normalization)
        self.optimizer_factory = optimizer or torch.optim.SGD
        self.scheduler_factory = scheduler
        self.class_names = list(class_names or range(num_classes))
        self.eval_metrics = nn.ModuleDict({split: classification_metrics(num_classes) for split in LABELLED_SPLITS})
        self.test_results: dict[str, float | list[float]] = {}
        self.run_config: dict | None = None  # the resolved experiment config, saved in checkpoints

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        if self.run_config is not None:
            checkpoint["lepton_config"] = self.run_config

    # ---- the pieces a method's training step uses -------------------------------------------
    def view(self, images: torch.Tensor, kind: str = "weak") -> torch.Tensor:
        """An augmented (in training mode), normalised float view of an image batch (see the module
        docstring for the input rule)."""
        return self.augment[kind](images)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Logits for a batch of images (uint8 in [0, 255] or float in [0, 1]; not normalised)."""
        return self.model(self.as_input(images))[0]

    def as_input(self, images: torch.Tensor) -> torch.Tensor:
        """Images → the normalised float input, no augmentation: the same rule as `view` (uint8 in
        [0, 255] or float in [0, 1], else a LeptonError), so training and evaluation see one scale."""
        return self.augment["weak"].normalize(images)

    def use_teacher_normalization(self, teacher: nn.Module) -> None:
        """Prepare `for_teacher`: with `mean: auto` the student's views are normalised for the
        student's backbone, but a teacher of another architecture (a pretrained ResNet teaching the
        digit CNN) was trained on inputs normalised for its own; explicit numbers in the augment
        config are shared by both and need nothing."""
        weak = self.augment["weak"]
        backbone = getattr(getattr(teacher, "classifier", teacher), "backbone", None)
        declared = getattr(teacher, "input_normalization", None)  # a teacher from another run knows its own
        if declared is not None:
            mean, std = (torch.as_tensor(x, dtype=torch.float32).view(1, -1, 1, 1) for x in declared)
        elif not getattr(weak, "auto_normalization", False) or backbone is None:
            return
        else:
            mean, std = backbone_normalization(backbone) or ((DEFAULT_MEAN,), (DEFAULT_STD,))
            mean, std = torch.tensor(mean).view(1, -1, 1, 1), torch.tensor(std).view(1, -1, 1, 1)
        if mean.shape == weak.mean.shape and torch.equal(mean, weak.mean.cpu()) and torch.equal(std, weak.std.cpu()):
            return
        self.register_buffer("teacher_mean", mean, persistent=False)
        self.register_buffer("teacher_std", std, persistent=False)

    def for_teacher(self, view: torch.Tensor) -> torch.Tensor:
        """A normalised view of the student, re-normalised for the teacher (see `use_teacher_normalization`)."""
        if not hasattr(self, "teacher_mean"):
            return view
        weak = self.augment["weak"]
        return (view * weak.std + weak.mean - self.teacher_mean) / self.teacher_std

    @property
    def backbone_starts_trained(self) -> bool:
        """Whether the backbone starts from trained weights (pretrained, or a checkpoint)."""
        return bool(getattr(self.model.backbone, "is_pretrained", False))

    @property
    def backbone_lr_mult(self) -> float:
        """The backbone's learning-rate multiple: the explicit `backbone_lr_mult`, else 0.1 for a
        backbone that starts trained and 1.0 from scratch."""
        explicit = self.hparams.get("backbone_lr_mult")
        if explicit is not None:
            return float(explicit)
        return PRETRAINED_BACKBONE_LR_MULT if self.backbone_starts_trained else 1.0

    @property
    def progress(self) -> float:
        """Fraction of training done, in [0, 1]; drives the λ schedules of adversarial methods."""
        total = self.trainer.estimated_stepping_batches if self._trainer is not None else 0
        return min(1.0, self.global_step / total) if total and total != float("inf") else 0.0

    def source_loss(self, source_logits: torch.Tensor, source_labels: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(source_logits, source_labels)

    def log_losses(self, **losses: torch.Tensor) -> None:
        """Log training terms as `train/<name>` at the steps the loggers write (every
        `trainer.log_every_n_steps`); tensors stay on the device (no per-step sync). Every step's
        terms are in `last_losses`, read by the NaN guard and the per-epoch means of the selection
        callback."""
        self.last_losses = {name: value.detach() for name, value in losses.items()}
        if not self.logging_due:
            return
        # batch_size only matters for epoch averages, which these per-step values do not use.
        self.log_dict({f"train/{name}": value.detach() for name, value in losses.items() if name != "loss"},
                      on_step=True, on_epoch=False, batch_size=1)
        if "loss" in losses:  # the total also in the progress bar
            self.log("train/loss", losses["loss"].detach(), prog_bar=True, on_step=True, on_epoch=False, batch_size=1)

    @property
    def logging_due(self) -> bool:
        """Whether Lightning writes this step's logged values. It keeps only those of every
        `log_every_n_steps`-th step, yet each `self.log` call at the others costs milliseconds of
        Python (Lightning moves the metric's whole record to the device each call): logging every
        step kept source_only at 0.86× a hand-written loop (docs/benchmarks.md, §9)."""
        connector = getattr(self._trainer, "_logger_connector", None) if self._trainer is not None else None
        return connector is None or bool(connector.should_update_logs or self.trainer.fast_dev_run)

    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        raise NotImplementedError

    def on_train_epoch_start(self) -> None:
        from lepton_cli.distributed import seed_this_rank

        seed_this_rank(self.trainer, self.current_epoch)  # DDP: each rank its own augmentations and dropout

    # ---- evaluation ---------------------------------------------------------------------------
    def eval_split(self, dataloader_idx: int) -> str:
        """The name of evaluation dataloader `dataloader_idx` in the current stage: the DataModule's
        `test_splits` / `val_splits`, or `EVAL_DOMAINS` for plain lists of loaders."""
        datamodule = getattr(self._trainer, "datamodule", None) if self._trainer is not None else None
        names = getattr(datamodule, "test_splits" if self.trainer.testing else "val_splits", None) or EVAL_DOMAINS
        return names[dataloader_idx]

    def _eval_step(self, batch: tuple[torch.Tensor, torch.Tensor], dataloader_idx: int) -> dict[str, Any]:
        images, labels = batch
        logits, features = self.model(self.as_input(images))
        split = self.eval_split(dataloader_idx)
        if split in self.eval_metrics:
            self.eval_metrics[split].update(logits, labels)
        # Copies, not views: the selection callback keeps every batch's outputs until the epoch ends,
        # and under trainer.compile=reduce-overhead (CUDA graphs) the next replay overwrites the
        # graph's output memory (it failed so on the H200, docs/benchmarks.md §9).
        return {"logits": logits.detach().clone(), "features": features.detach().clone(), "labels": labels,
                "split": split}

    def validation_step(self, batch, batch_idx: int, dataloader_idx: int = 0) -> dict[str, Any]:
        # The outputs feed the model-selection callback (lepton_cli/callbacks/selection.py), by `split`.
        return self._eval_step(batch, dataloader_idx)

    def test_step(self, batch, batch_idx: int, dataloader_idx: int = 0) -> None:
        self._eval_step(batch, dataloader_idx)

    def _compute_eval(self) -> dict[str, float | list[float]]:
        results: dict[str, float | list[float]] = {}
        for domain, metrics in self.eval_metrics.items():
            if not metrics["acc"].update_called:
                continue
            for name, value in metrics.compute().items():
                results[f"{domain}/{name}"] = value.tolist() if value.ndim else float(value)
            metrics.reset()
        return results

    def _log_eval(self, prefix: dict[str, str] | None = None) -> dict[str, float | list[float]]:
        results = self._compute_eval()
        prefix = prefix or {}
        self.log_dict({prefix.get(k.split("/")[0], "") + k: v for k, v in results.items() if isinstance(v, float)},
                      sync_dist=True)
        return results

    def on_validation_epoch_start(self) -> None:
        from lepton_cli.distributed import broadcast_buffers_from_rank_zero

        broadcast_buffers_from_rank_zero(self)  # DDP: all ranks evaluate the weights rank 0 checkpoints

    on_test_epoch_start = on_validation_epoch_start

    def on_validation_epoch_end(self) -> None:
        # Target test read during training is the oracle's column only: logged under oracle/ so that
        # nothing mistakes it for the final number or watches it to choose (schema.validate refuses that).
        self._log_eval(prefix={"target": "oracle/"})

    def on_test_epoch_end(self) -> None:
        self.test_results = self._log_eval()
        # How many images each number rests on (metrics.json): the DataModule's exact split sizes.
        sizes = getattr(getattr(self._trainer, "datamodule", None), "test_sizes", None) or {}
        self.test_results.update({f"{split}/test_size": int(size) for split, size in sizes.items()})

    # ---- optimisation -------------------------------------------------------------------------
    def configure_optimizers(self):
        lr = self.hparams.lr
        if self.hparams.lr_scaling == "linear" and self._trainer is not None:
            lr *= self.trainer.world_size  # Goyal et al. 2017: scale with the global batch
        backbone = [p for p in self.model.backbone.parameters() if p.requires_grad]
        backbone_ids = {id(p) for p in self.model.backbone.parameters()}
        rest = [p for p in self.parameters() if p.requires_grad and id(p) not in backbone_ids]
        groups = [g for g in ({"params": backbone, "lr": lr * self.backbone_lr_mult}, {"params": rest, "lr": lr}) if g["params"]]
        optimizer = self.optimizer_factory(groups, lr=lr)
        if self.scheduler_factory is None:
            return optimizer
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": self.scheduler_factory(optimizer), "interval": "step"}}
