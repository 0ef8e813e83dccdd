"""Feature extractors: any timm model by name, a small CNN for 28-32 px digits, and an adapter
for any other `nn.Module` (a torchvision model, your own network).

Every backbone maps normalised images to a flat feature vector and says its width in
`num_features`. Two optional attributes tell the method how to treat it: `is_pretrained` (it
starts from trained weights, so it learns at `backbone_lr_mult` 0.1 by default) and
`normalization` ((mean, std) per channel that its weights expect; `backbone_normalization`).
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import threading
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlparse

import torch
from torch import nn

from lepton_cli.errors import LeptonError

log = logging.getLogger("lepton")

# torchvision's ImageNet weights were trained on inputs normalised with these (torchvision docs).
IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
HUB_PROBE_TIMEOUT_S = 1.0  # how long the check for a network may take: without one, the error comes in < 2 s
HF_HUB_PREFIXES = ("hf-hub:", "hf_hub:")  # timm's names for a model on the Hugging Face hub: hf-hub:org/name


def backbone_normalization(backbone: nn.Module, channels: int | None = None) -> tuple[list[float], list[float]] | None:
    """(mean, std) per channel that the backbone's weights expect, or None when it declares none
    (the small CNN: the augment config's fallback 0.5 / 0.5 then applies).

    Looked up as `backbone.normalization`, else timm's `pretrained_cfg` mean/std. For grey images
    (`channels=1`) on a 3-channel statistic the channel means are averaged: timm adapts a pretrained
    first convolution to one channel by summing its weights over the colour channels."""
    normalization = getattr(backbone, "normalization", None)
    if normalization is None:
        config = getattr(backbone, "pretrained_cfg", None) or {}
        if config.get("mean") is not None and config.get("std") is not None:
            normalization = (config["mean"], config["std"])
    if normalization is None:
        return None
    mean, std = ([float(v) for v in values] for values in normalization)
    if channels is None:
        first_conv = next((m for m in backbone.modules() if isinstance(m, nn.Conv2d)), None)
        channels = first_conv.in_channels if first_conv is not None else len(mean)
    if channels == 1 and len(mean) > 1:
        mean, std = [sum(mean) / len(mean)], [sum(std) / len(std)]
    return mean, std


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
        self.is_pretrained = bool(checkpoint)
        if checkpoint:
            load_backbone_weights(self, checkpoint)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.features(images)


def timm_backbone(name: str, pretrained: bool = False, in_chans: int = 3, checkpoint: str | None = None,
                  **kwargs) -> nn.Module:
    """`timm.create_model(name, num_classes=0)`: the model without its classifier, pooled features out.
    `name` is one of timm's (`resnet50`, `resnet50.a1_in1k`) or a model on the Hugging Face hub
    (`hf-hub:timm/resnet50.a1_in1k`)."""
    import timm

    from lepton_cli.config import close_names

    on_hub = name.startswith(HF_HUB_PREFIXES)
    if not on_hub and name not in timm.list_models() and name.split(".")[0] not in timm.list_models():
        close = close_names(name.split(".")[0], timm.list_models(), count=8)
        raise LeptonError(f"timm has no model named {name!r}" + (f"; close names: {', '.join(close)}" if close else "")
                          + "; `python -c 'import timm; print(timm.list_models())'` lists them all")
    try:
        with fail_fast_downloads() if pretrained or on_hub else contextlib.nullcontext() as offline:
            model = timm.create_model(name, pretrained=pretrained, num_classes=0, in_chans=in_chans, **kwargs)
    except (OSError, RuntimeError, ValueError) as error:
        if pretrained or on_hub:
            why = "no network, and they are not in the local cache" if offline else \
                f"{type(error).__name__}: {str(error).splitlines()[0][:120] if str(error) else 'no network'}"
            raise LeptonError(f"could not fetch pretrained weights for {name} ({why}); point student.checkpoint=PATH "
                              "(or teacher.checkpoint=PATH) at a local weights file with pretrained=false, or run once "
                              "with network so that timm caches them") from None
        raise LeptonError(f"timm could not build {name!r} ({type(error).__name__}: {str(error).splitlines()[0][:120] if str(error) else ''}); "
                          "check the model name and its arguments (timm.list_models() names them)") from None
    model.is_pretrained = bool(pretrained or checkpoint)
    if checkpoint:
        load_backbone_weights(model, checkpoint)
    return model


def _hub_reachable(timeout: float = HUB_PROBE_TIMEOUT_S) -> bool:
    """Whether the Hugging Face hub answers a TCP connection within `timeout` seconds. Behind a
    proxy the direct probe says nothing, so it is not made (True). The probe runs in a thread: a
    name lookup (DNS) does not obey socket timeouts and can hang for many seconds without network."""
    if any(os.environ.get(k) for k in ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy")):
        return True
    host = urlparse(os.environ.get("HF_ENDPOINT") or "https://huggingface.co").hostname or "huggingface.co"
    answered = threading.Event()

    def probe() -> None:
        try:
            with socket.create_connection((host, 443), timeout=timeout):
                answered.set()
        except OSError:
            pass

    threading.Thread(target=probe, daemon=True).start()
    return answered.wait(timeout)


@contextlib.contextmanager
def fail_fast_downloads() -> Iterator[bool]:
    """Around a pretrained-weights download: without network, fail at once instead of after
    huggingface_hub's retries (about a minute: 5 retries with back-off, per file, two files).

    `HF_HUB_OFFLINE=1`, or a hub that does not answer within a few seconds, puts huggingface_hub in
    offline mode for the call, so weights cached by an earlier download still load and missing
    ones raise immediately. torch.hub downloads (timm's URL-only weights) get a socket timeout."""
    import huggingface_hub.constants as hub

    offline_before, timeout_before = hub.HF_HUB_OFFLINE, socket.getdefaulttimeout()
    if not offline_before and not _hub_reachable():
        log.info("the Hugging Face hub is unreachable; using only locally cached weights")
        hub.HF_HUB_OFFLINE = True
    socket.setdefaulttimeout(timeout_before or 30.0)
    try:
        yield hub.HF_HUB_OFFLINE  # True: offline, only cached weights load
    finally:
        hub.HF_HUB_OFFLINE = offline_before
        socket.setdefaulttimeout(timeout_before)


class FeatureExtractor(nn.Module):
    """Any `nn.Module` as a Lepton backbone: a torchvision model, a timm model, your own network.

    `num_features` is the module's own attribute if it has one, else the given one, else measured
    with one dummy forward. A torchvision-style classifier layer (`fc`, e.g. ResNet) is replaced by
    the identity so that the pooled features come out; a 4-D output (a convolutional trunk) is
    average-pooled and flattened. `normalization` defaults to ImageNet's (torchvision's weights
    expect it); `pretrained` says whether the weights are trained (then the backbone learns at
    0.1 × lr unless `backbone_lr_mult` says otherwise).

        >>> import torchvision
        >>> backbone = FeatureExtractor(torchvision.models.resnet18(weights=None))
        >>> backbone.num_features
        512
    """

    def __init__(self, module: nn.Module, num_features: int | None = None, pretrained: bool = False,
                 normalization: tuple[tuple[float, ...], tuple[float, ...]] | None = (IMAGENET_MEAN, IMAGENET_STD),
                 in_chans: int | None = None, probe_size: int = 224):
        super().__init__()
        if isinstance(getattr(module, "fc", None), nn.Linear):
            module.fc = nn.Identity()  # torchvision's ResNet family: the pooled features, not 1000 logits
        self.module = module
        self.is_pretrained = pretrained
        self.normalization = normalization
        width = num_features or getattr(module, "num_features", None)
        self.num_features = int(width) if isinstance(width, int) else self._measure(in_chans, probe_size)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        features = self.module(images)
        if features.ndim == 4:
            features = features.mean(dim=(2, 3))
        return features.flatten(1)

    @torch.no_grad()
    def _measure(self, in_chans: int | None, size: int) -> int:
        """The feature width, from one forward of a blank image in eval mode (no batch-norm update)."""
        if in_chans is None:
            first_conv = next((m for m in self.module.modules() if isinstance(m, nn.Conv2d)), None)
            in_chans = first_conv.in_channels if first_conv is not None else 3
        parameter = next(self.module.parameters(), None)
        probe = torch.zeros(1, in_chans, size, size, device=parameter.device if parameter is not None else "cpu")
        was_training = self.training
        try:
            return int(self.eval()(probe).shape[1])
        except Exception as error:  # noqa: BLE001 - whatever broke, the fix is the same
            raise LeptonError(f"could not measure the feature width of {type(self.module).__name__} with a "
                              f"{in_chans}x{size}x{size} input ({type(error).__name__}); pass num_features= (and "
                              "in_chans=, probe_size=) to FeatureExtractor") from None
        finally:
            self.train(was_training)


def as_backbone(module: nn.Module) -> nn.Module:
    """`module` itself when it already is a backbone (an int `num_features`), else wrapped in
    `FeatureExtractor`."""
    return module if isinstance(getattr(module, "num_features", None), int) else FeatureExtractor(module)


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
