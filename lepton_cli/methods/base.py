"""What every adaptation method shares: the classifier, optimiser and schedule from config,
augmented views, and evaluation on the target and source test splits.

A method subclasses `AdaptationMethod`, adds its hyper-parameters and extra modules in `__init__`
and writes `training_step`. Batches arrive as `{"source": (images, labels), "target": (images,
labels)}` with uint8 images; `self.view(images, "weak")` gives the augmented, normalised tensor.
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

from lepton_cli.data.augment import BatchAugment
from lepton_cli.errors import LeptonError
from lepton_cli.models.heads import Classifier

EVAL_DOMAINS = ("target", "source", "source_val")  # the order of the evaluation dataloaders (test: the first two)


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

    def __init__(self, backbone: nn.Module, num_classes: int, class_names: list[str] | None = None,
                 optimizer: Callable[..., torch.optim.Optimizer] | None = None,
                 scheduler: Callable[..., Any] | None = None, lr: float = 0.01, backbone_lr_mult: float = 1.0,
                 bottleneck_dim: int | None = 256, weak_augment: nn.Module | None = None,
                 strong_augment: nn.Module | None = None, lr_scaling: str = "none", name: str | None = None):
        super().__init__()
        if lr <= 0:
            raise LeptonError(f"method.lr must be positive, got {lr}")
        self.save_hyperparameters(ignore=["backbone", "optimizer", "scheduler", "weak_augment", "strong_augment", "teacher"])
        plain_hyperparameters(self.hparams)
        self.model = Classifier(backbone, num_classes, bottleneck_dim)
        self.augment = nn.ModuleDict({"weak": weak_augment or BatchAugment(), "strong": strong_augment or BatchAugment()})
        self.optimizer_factory = optimizer or torch.optim.SGD
        self.scheduler_factory = scheduler
        self.class_names = list(class_names or range(num_classes))
        self.eval_metrics = nn.ModuleDict({domain: classification_metrics(num_classes) for domain in EVAL_DOMAINS})
        self.test_results: dict[str, float | list[float]] = {}
        self.run_config: dict | None = None  # the resolved experiment config, saved in checkpoints

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        if self.run_config is not None:
            checkpoint["lepton_config"] = self.run_config

    # ---- the pieces a method's training step uses -------------------------------------------
    def view(self, images: torch.Tensor, kind: str = "weak") -> torch.Tensor:
        """An augmented (in training mode), normalised float view of a uint8 batch."""
        return self.augment[kind](images)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Logits for a batch of images (uint8, or float already normalised)."""
        return self.model(self.as_input(images))[0]

    def as_input(self, images: torch.Tensor) -> torch.Tensor:
        """uint8 images → the normalised float input (no augmentation); floats pass through."""
        return self.augment["weak"].normalize(images) if images.dtype == torch.uint8 else images

    @property
    def progress(self) -> float:
        """Fraction of training done, in [0, 1]; drives the λ schedules of adversarial methods."""
        total = self.trainer.estimated_stepping_batches if self._trainer is not None else 0
        return min(1.0, self.global_step / total) if total and total != float("inf") else 0.0

    def source_loss(self, source_logits: torch.Tensor, source_labels: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(source_logits, source_labels)

    def log_losses(self, **losses: torch.Tensor) -> None:
        """Log training terms as `train/<name>`; tensors stay on the device (no per-step sync)."""
        # batch_size only matters for epoch averages, which these per-step values do not use.
        self.log_dict({f"train/{name}": value.detach() for name, value in losses.items()}, on_step=True,
                      on_epoch=False, batch_size=1)
        self.last_losses = {name: value.detach() for name, value in losses.items()}  # read by the NaN guard

    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        raise NotImplementedError

    # ---- evaluation ---------------------------------------------------------------------------
    def _eval_step(self, batch: tuple[torch.Tensor, torch.Tensor], dataloader_idx: int) -> dict[str, torch.Tensor]:
        images, labels = batch
        logits, features = self.model(self.as_input(images))
        self.eval_metrics[EVAL_DOMAINS[dataloader_idx]].update(logits, labels)
        return {"logits": logits.detach(), "features": features.detach(), "labels": labels}

    def validation_step(self, batch, batch_idx: int, dataloader_idx: int = 0) -> dict[str, torch.Tensor]:
        # The outputs feed the model-selection callback (lepton_cli/callbacks.py).
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

    def _log_eval(self) -> dict[str, float | list[float]]:
        results = self._compute_eval()
        self.log_dict({k: v for k, v in results.items() if isinstance(v, float)}, sync_dist=True)
        return results

    def on_validation_epoch_start(self) -> None:
        from lepton_cli.distributed import broadcast_buffers_from_rank_zero

        broadcast_buffers_from_rank_zero(self)  # DDP: all ranks evaluate the weights rank 0 checkpoints

    on_test_epoch_start = on_validation_epoch_start

    def on_validation_epoch_end(self) -> None:
        self._log_eval()

    def on_test_epoch_end(self) -> None:
        self.test_results = self._log_eval()

    # ---- optimisation -------------------------------------------------------------------------
    def configure_optimizers(self):
        lr = self.hparams.lr
        if self.hparams.lr_scaling == "linear" and self._trainer is not None:
            lr *= self.trainer.world_size  # Goyal et al. 2017: scale with the global batch
        backbone = [p for p in self.model.backbone.parameters() if p.requires_grad]
        backbone_ids = {id(p) for p in self.model.backbone.parameters()}
        rest = [p for p in self.parameters() if p.requires_grad and id(p) not in backbone_ids]
        groups = [g for g in ({"params": backbone, "lr": lr * self.hparams.backbone_lr_mult}, {"params": rest, "lr": lr}) if g["params"]]
        optimizer = self.optimizer_factory(groups, lr=lr)
        if self.scheduler_factory is None:
            return optimizer
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": self.scheduler_factory(optimizer), "interval": "step"}}
