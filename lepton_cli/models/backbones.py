"""Feature extractors: any timm model by name, and a small CNN for 28-32 px digits.

Every backbone maps images to a flat feature vector and says its width in `num_features`.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from lepton_cli.errors import LeptonError


class SmallCNN(nn.Module):
    """LeNet as used for digits in the DA literature (conv20-pool-conv50-pool-fc500; TLlib's
    `lenet`), for 28-32 px inputs."""

    def __init__(self, in_chans: int = 1, image_size: int = 28, num_features: int = 500, dropout: float = 0.5,
                 checkpoint: str | None = None):
        super().__init__()
        if image_size < 16:
            raise LeptonError(f"small_cnn needs images of at least 16 px, got data.image_size={image_size}")
        side = ((image_size - 4) // 2 - 4) // 2
        self.features = nn.Sequential(
            nn.Conv2d(in_chans, 20, kernel_size=5), nn.MaxPool2d(2), nn.ReLU(),
            nn.Conv2d(20, 50, kernel_size=5), nn.Dropout2d(dropout), nn.MaxPool2d(2), nn.ReLU(),
            nn.Flatten(), nn.Linear(50 * side * side, num_features), nn.ReLU(), nn.Dropout(dropout),
        )
        self.num_features = num_features
        if checkpoint:
            load_backbone_weights(self, checkpoint)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.features(images)


def timm_backbone(name: str, pretrained: bool = False, in_chans: int = 3, checkpoint: str | None = None,
                  **kwargs) -> nn.Module:
    """`timm.create_model(name, num_classes=0)`: the model without its classifier, pooled features out."""
    import timm

    if name not in timm.list_models() and name.split(".")[0] not in timm.list_models():
        close = timm.list_models(f"*{name.split('.')[0][:6]}*")[:8]
        raise LeptonError(f"timm has no model named {name!r}" + (f"; close names: {', '.join(close)}" if close else "")
                          + "; `python -c 'import timm; print(timm.list_models())'` lists them all")
    try:
        model = timm.create_model(name, pretrained=pretrained, num_classes=0, in_chans=in_chans, **kwargs)
    except (OSError, RuntimeError) as error:
        if pretrained:
            raise LeptonError(f"could not fetch pretrained weights for {name} ({type(error).__name__}); "
                              "connect to the internet once so timm can cache them, or set pretrained=false") from error
        raise
    if checkpoint:
        load_backbone_weights(model, checkpoint)
    return model


def load_backbone_weights(model: nn.Module, checkpoint: str | Path) -> None:
    """Load weights saved by Lepton or timm; never unpickle arbitrary objects."""
    from lepton_cli.checkpoints import check_checkpoint_file

    path = Path(checkpoint).expanduser()
    state = check_checkpoint_file(path, "checkpoint")
    # Lepton checkpoints hold the feature extractor's weights as "model.backbone.*"
    prefixed = {k.removeprefix("model.").removeprefix("backbone."): v for k, v in state.items()
                if k.startswith(("model.backbone.", "backbone."))}
    missing, _ = model.load_state_dict(prefixed or state, strict=False)
    if missing:
        raise LeptonError(f"checkpoint {path} does not fit this backbone ({len(missing)} missing weights, e.g. {missing[0]}); "
                          "check that teacher/student name the architecture the checkpoint was trained with")
