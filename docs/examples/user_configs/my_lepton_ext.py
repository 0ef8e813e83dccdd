"""A user's own data set and method, in the user's own module (on PYTHONPATH), used by Lepton
through `lepton train --config-dir myconf ...` without touching the installed package."""

import numpy as np
import torch

from lepton_cli.data.arrays import ImageArrays
from lepton_cli.data.domains import SklearnDigits
from lepton_cli.losses import entropy
from lepton_cli.methods.base import AdaptationMethod


class NoisyDigits(SklearnDigits):
    """scikit-learn's digits with uniform pixel noise: a new domain from an existing one."""

    def __init__(self, name: str = "noisy_digits", noise: int = 40, **kwargs):
        super().__init__(name, **kwargs)
        self.noise = noise

    def cache_key(self) -> dict:
        return {**super().cache_key(), "noise": self.noise}

    def _decode(self, split, root, download) -> ImageArrays:
        clean = super()._decode(split, root, download)
        noise = np.random.default_rng(0).integers(-self.noise, self.noise + 1, clean.images.shape)
        return ImageArrays(np.clip(clean.images + noise, 0, 255).astype(np.uint8), clean.labels, clean.classes)


class EntropyMinimisation(AdaptationMethod):
    """Source cross-entropy plus the entropy of the target predictions (Grandvalet & Bengio 2004)."""

    def __init__(self, backbone, num_classes: int, weight: float = 0.1, **kwargs):
        super().__init__(backbone, num_classes, **kwargs)
        self.weight = weight

    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        source_images, source_labels = batch["source"]
        target_images, _ = batch["target"]  # unlabelled: never read
        logits, _ = self.model(torch.cat([self.view(source_images), self.view(target_images)]))
        source_logits, target_logits = logits.split([len(source_images), len(target_images)])
        classification = self.source_loss(source_logits, source_labels)
        target_entropy = entropy(target_logits)
        loss = classification + self.weight * target_entropy
        self.log_losses(loss=loss, classification=classification, entropy=target_entropy)
        return loss
