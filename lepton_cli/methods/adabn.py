"""AdaBN (Li, Wang, Shi, Liu & Hou, "Revisiting Batch Normalization For Practical Domain
Adaptation", ICLR workshop 2017): the weights are learned on labelled source alone, and every
batch-norm layer normalises each domain with that domain's own statistics
(`methods/domain_statistics.py`). Dassl ships it as ``dassl/engine/da/adabn.py``; TLlib has no
counterpart. The checkpoint is the target model: its batch-norm buffers hold the target statistics.
"""

from __future__ import annotations

import torch
from torch import nn

from lepton_cli.methods.domain_statistics import DomainStatistics
from lepton_cli.methods.source_only import SourceOnly


class AdaBN(DomainStatistics, SourceOnly):
    """Cross-entropy on labelled source, with the source batch-norm statistics; the target
    statistics are estimated afresh for the current weights before each validation, as the paper
    does after training. Evaluation normalises source splits with the source statistics, target
    splits with the target ones.

    The training loop sees no target batch, so the weights are `source_only`'s of the same seed,
    bit for bit: per seed, adabn differs from source-only by the target statistics alone."""

    uses_target_train = True  # its images, for the statistics
    domain_statistics = True

    @classmethod
    def reads_target_train(cls, method_cfg) -> bool:
        return False  # no target batches in the training loop: `estimate_target_statistics` reads them

    def __init__(self, backbone: nn.Module, num_classes: int, **kwargs):
        super().__init__(backbone, num_classes, **kwargs)
        self.init_domain_statistics()

    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        with self.source_statistics_in_use():
            return super().training_step(batch, batch_idx)
