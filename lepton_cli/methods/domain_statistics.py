"""Batch-norm statistics per domain (AdaBN, Li et al. 2017): the weights are shared, but every
batch-norm layer normalises source inputs with source statistics and target inputs with target
statistics, re-estimated from the unlabelled target training images before each evaluation.

Where the statistics live decides what a checkpoint is. The classifier's own batch-norm buffers
(`model.*`) hold the **target** statistics, so the saved model is the target model as it stands:
`lepton eval` and `api.load_model` need nothing special. The source statistics are the method's
extra buffers (`source_statistics.*`), swapped in for source batches only.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager, nullcontext

import torch
from torch import nn

from lepton_cli.distributed import mean_over_ranks
from lepton_cli.errors import LeptonError

STATISTICS = ("running_mean", "running_var", "num_batches_tracked")


def batch_norms(model: nn.Module) -> list[nn.modules.batchnorm._BatchNorm]:
    """The batch-norm layers that keep running statistics, in module order. Looked up at each use:
    `trainer.sync_batchnorm` replaces the layers with SyncBatchNorm ones after the method is built."""
    return [module for module in model.modules()
            if isinstance(module, nn.modules.batchnorm._BatchNorm) and module.track_running_stats]


class BatchNormStatistics(nn.Module):
    """A second set of running statistics for the batch-norm layers of `model`, exchanged with the
    layers' own by re-binding the tensors, never by writing into them: autograd keeps the running
    statistics of a training-mode forward for its backward, and refuses tensors changed in place.
    The exchange keeps the same tensor objects registered, so DDP's buffer broadcast, which holds
    them by reference, still covers both sets."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self._model = [model]  # in a list: the layers belong to the classifier, not to this module
        for index, norm in enumerate(batch_norms(model)):
            for name in STATISTICS:
                self.register_buffer(f"{name}_{index}", getattr(norm, name).detach().clone())

    def swap(self) -> None:
        for index, norm in enumerate(batch_norms(self._model[0])):
            for name in STATISTICS:
                mine, theirs = getattr(self, f"{name}_{index}"), getattr(norm, name)
                setattr(self, f"{name}_{index}", theirs)
                setattr(norm, name, mine)

    @contextmanager
    def in_use(self) -> Iterator[None]:
        self.swap()
        try:
            yield
        finally:
            self.swap()


class DomainStatistics:
    """Mixin for an `AdaptationMethod`: per-domain batch-norm statistics when `self.domain_statistics`
    (set before `init_domain_statistics`). A training step runs its source forward inside
    `source_statistics_in_use()` and its target forward outside; evaluation and the estimate are here.

    The estimate (`estimate_target_statistics`), before each validation and at the end of training:
    every target training image once, in order, without augmentation (the inputs evaluation
    normalises), the batch-norm layers averaging their batch statistics and everything else in eval
    mode. A running average kept during training lags the weights, and evaluation is sensitive to
    that lag: on FSDD clean → noisy it scored 54% where the fresh estimate scored 65%
    (docs/benchmarks.md, §10). The images come from the DataModule's `unlabelled_target_loader()`,
    whose labels are masked."""

    domain_statistics: bool = False

    def init_domain_statistics(self) -> None:
        if not self.domain_statistics:
            return
        if not batch_norms(self.model):
            raise LeptonError(f"method={self.hparams.get('name') or type(self).__name__.lower()} keeps batch-norm "
                              "statistics per domain, but this classifier has no batch-norm layer; use a backbone with "
                              "batch norm, or keep method.bottleneck_dim (its bottleneck has one)")
        self.source_statistics = BatchNormStatistics(self.model)

    def source_statistics_in_use(self):
        return self.source_statistics.in_use() if self.domain_statistics else nullcontext()

    @torch.no_grad()
    def estimate_target_statistics(self) -> None:
        """The classifier's batch-norm statistics, from the target training images and current weights."""
        datamodule = getattr(self.trainer, "datamodule", None)
        if not hasattr(datamodule, "unlabelled_target_loader"):
            raise LeptonError("per-domain batch-norm statistics are estimated from the DataModule's "
                              "unlabelled_target_loader(); train with lepton's DomainAdaptationData (lepton train does)")
        norms, was_training = batch_norms(self.model), self.model.training
        momenta = [norm.momentum for norm in norms]
        self.model.eval()
        for norm in norms:
            norm.reset_running_stats()
            norm.momentum = None  # a plain average over the batches
            norm.train()
        # Iterating a DataLoader draws a seed from the global generator: without fork_rng this pass
        # would change every later augmentation and batch (adabn's weights would no longer be
        # source_only's of the same seed; tests/methods/test_domain_statistics.py holds them equal bit for bit).
        with torch.random.fork_rng(devices=[self.device] if self.device.type == "cuda" else []):
            for images, _labels in datamodule.unlabelled_target_loader():  # the labels are masked (-1), unused
                self.model(self.as_input(images.to(self.device)))
        for norm, momentum in zip(norms, momenta, strict=True):
            norm.momentum = momentum
        self.model.train(was_training)
        for norm in norms:  # under DDP each rank estimated from its own share of the images
            norm.running_mean.copy_(mean_over_ranks(norm.running_mean))
            norm.running_var.copy_(mean_over_ranks(norm.running_var))

    def on_validation_epoch_start(self) -> None:
        if self.domain_statistics:
            self.estimate_target_statistics()
        super().on_validation_epoch_start()

    def on_train_end(self) -> None:
        if self.domain_statistics:
            self.estimate_target_statistics()  # also when no validation ran after the last step
        super().on_train_end()

    def _eval_step(self, batch, dataloader_idx: int):
        if self.domain_statistics and self.eval_split(dataloader_idx).startswith("source"):
            with self.source_statistics.in_use():
                return super()._eval_step(batch, dataloader_idx)
        return super()._eval_step(batch, dataloader_idx)

