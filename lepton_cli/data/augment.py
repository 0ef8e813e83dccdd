"""Batched image augmentation on whatever device the batch is on.

Batches arrive as (B, C, H, W) images, uint8 in [0, 255] or float in [0, 1] (torchvision's
`ToTensor` convention): the one input rule, checked by `as_unit_range`. They are augmented as one
tensor: one random affine warp per sample through `affine_grid`/`grid_sample`, per-sample colour
changes and cutout. No per-image Python, so the same code is fast on a CPU and on a GPU. `weak` and
`strong` views are two configurations of the same module (`conf/augment/*.yaml`).

Normalisation is `(x - mean) / std` per channel. `mean: auto, std: auto` (the default in
`conf/augment/`) takes the backbone's own statistics (timm's pretrained config, ImageNet's for
torchvision models; `lepton_cli.models.backbones.backbone_normalization`), and 0.5 / 0.5 for a
backbone without any (the small digit CNN): `AdaptationMethod` resolves it when it is built.

The other modalities' views have the same interface (`forward`: the view in training mode, the
plain normalised input in evaluation; `normalize`: the plain input): `FeatureDropout` (bag-of-words
vectors), `TokenDropout` (token ids) and `LogMelAugment` (waveforms → log-mel spectrograms with
SpecAugment masks). Each says its `modality` (see `data/modality.py`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from lepton_cli.errors import LeptonError

AUTO = "auto"
DEFAULT_MEAN, DEFAULT_STD = 0.5, 0.5  # `auto` for a backbone that declares no normalisation
Statistic = float | Sequence[float] | str


def as_unit_range(images: torch.Tensor) -> torch.Tensor:
    """The one rule for image batches: uint8 in [0, 255] or floating point in [0, 1]; returns
    float in [0, 1]. Anything else (integers of another type, floats outside [0, 1], e.g. images
    normalised already) is a LeptonError: silently treating [0, 1] floats as [0, 255] (or the
    reverse) would train on black images."""
    if images.dtype == torch.uint8:
        return images.float() / 255
    if not images.is_floating_point():
        raise LeptonError(f"images must be uint8 in [0, 255] or float in [0, 1], got dtype {images.dtype}; "
                          "convert with images.to(torch.uint8) or images.float() / 255")
    low, high = torch.aminmax(images.detach())
    if low < 0 or high > 1:  # one host sync per float batch; the CLI's batches are uint8 and skip it
        raise LeptonError(f"float images must lie in [0, 1] (torchvision's ToTensor), got values in "
                          f"[{float(low):.3g}, {float(high):.3g}]; pass the images un-normalised: the method "
                          "normalises them itself (mean/std in augment=)")
    return images.float()


def _per_channel(value: float | Sequence[float], name: str) -> torch.Tensor:
    values = [float(value)] if isinstance(value, int | float) else [float(v) for v in value]
    if not values or (name == "std" and min(values) <= 0):
        raise LeptonError(f"augment {name} must be a positive number or a list of them, one per channel, got {value!r}")
    return torch.tensor(values).view(1, -1, 1, 1)


class BatchAugment(nn.Module):
    """Random affine (rotation, scale, shear, translation), flip, brightness/contrast, invert and
    cutout, each sample drawn independently. All magnitudes at 0 → the identity.

    Output is float in the normalised space `(x - mean) / std`, x in [0, 1] (see `as_unit_range`);
    `mean` and `std` are one number, one per channel, or `auto` (see the module docstring).
    """

    modality = "image"

    def __init__(self, rotate: float = 0.0, scale: float = 0.0, shear: float = 0.0, translate: float = 0.0,
                 hflip: bool = False, brightness: float = 0.0, contrast: float = 0.0, invert: float = 0.0,
                 cutout: float = 0.0, mean: Statistic = DEFAULT_MEAN, std: Statistic = DEFAULT_STD):
        super().__init__()
        self.rotate, self.scale, self.shear, self.translate = rotate, scale, shear, translate
        self.hflip, self.brightness, self.contrast = hflip, brightness, contrast
        self.invert, self.cutout = invert, cutout
        if (mean == AUTO) != (std == AUTO):
            raise LeptonError(f"augment mean and std must both be auto or both numbers, got {mean!r} and {std!r}")
        self.auto_normalization = mean == AUTO
        # Not persistent: checkpoints keep their keys, and the values come from the config.
        self.register_buffer("mean", _per_channel(DEFAULT_MEAN if self.auto_normalization else mean, "mean"), persistent=False)
        self.register_buffer("std", _per_channel(DEFAULT_STD if self.auto_normalization else std, "std"), persistent=False)

    def use_backbone_normalization(self, normalization: tuple[Sequence[float], Sequence[float]] | None) -> None:
        """Resolve `mean: auto, std: auto` to the backbone's statistics (None: 0.5 / 0.5); explicit
        numbers in the config are left alone."""
        if self.auto_normalization:
            mean, std = normalization or (DEFAULT_MEAN, DEFAULT_STD)
            self.mean, self.std = _per_channel(mean, "mean").to(self.mean.device), _per_channel(std, "std").to(self.std.device)

    @property
    def normalization(self) -> tuple[list[float], list[float]]:
        """(mean, std) per channel (one value when shared by all channels)."""
        return self.mean.flatten().tolist(), self.std.flatten().tolist()

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        if not self.training:
            return self.normalize(images)
        x = self._colour(self._geometry(as_unit_range(images)))
        if self.cutout > 0:
            x = self._cutout(x)
        return self._standardize(x)

    def normalize(self, images: torch.Tensor) -> torch.Tensor:
        """Images (uint8, or float in [0, 1]) → the normalised float space, no augmentation (evaluation)."""
        return self._standardize(as_unit_range(images))

    def _standardize(self, x: torch.Tensor) -> torch.Tensor:
        if self.mean.shape[1] not in (1, x.shape[1]):
            raise LeptonError(f"augment mean/std have {self.mean.shape[1]} values but the images have {x.shape[1]} "
                              "channels; give one value, or one per channel")
        return (x - self.mean) / self.std

    def _uniform(self, x: torch.Tensor, low: float, high: float) -> torch.Tensor:
        return torch.empty(x.shape[0], device=x.device).uniform_(low, high)

    def _geometry(self, x: torch.Tensor) -> torch.Tensor:
        if not (self.rotate or self.scale or self.shear or self.translate or self.hflip):
            return x
        angle = self._uniform(x, -self.rotate, self.rotate) * (math.pi / 180)
        scale = 1 + self._uniform(x, -self.scale, self.scale)
        shear = self._uniform(x, -self.shear, self.shear)
        flip = torch.ones_like(angle)
        if self.hflip:
            flip = torch.where(torch.rand_like(angle) < 0.5, -1.0, 1.0)
        cos, sin = torch.cos(angle) / scale, torch.sin(angle) / scale
        theta = torch.stack([
            torch.stack([cos * flip, -sin + shear, self._uniform(x, -2 * self.translate, 2 * self.translate)], dim=1),
            torch.stack([sin * flip, cos, self._uniform(x, -2 * self.translate, 2 * self.translate)], dim=1),
        ], dim=1)  # translate is a fraction of the image; affine_grid's coordinates span 2 units
        grid = F.affine_grid(theta, list(x.shape), align_corners=False)
        return F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)

    def _colour(self, x: torch.Tensor) -> torch.Tensor:
        shape = (x.shape[0], 1, 1, 1)
        if self.contrast:
            mean = x.mean(dim=(1, 2, 3), keepdim=True)
            x = (x - mean) * (1 + self._uniform(x, -self.contrast, self.contrast).view(shape)) + mean
        if self.brightness:
            x = x + self._uniform(x, -self.brightness, self.brightness).view(shape)
        if self.invert:
            flip = (torch.rand(shape, device=x.device) < self.invert).float()
            x = flip * (1 - x) + (1 - flip) * x
        return x.clamp(0, 1)

    def _cutout(self, x: torch.Tensor) -> torch.Tensor:
        """Zero one square of side `cutout * size` at a random place in each image."""
        batch, _, height, width = x.shape
        side = max(1, round(self.cutout * min(height, width)))
        top = torch.randint(0, height - side + 1, (batch, 1, 1), device=x.device)
        left = torch.randint(0, width - side + 1, (batch, 1, 1), device=x.device)
        rows = torch.arange(height, device=x.device).view(1, height, 1)
        cols = torch.arange(width, device=x.device).view(1, 1, width)
        inside = (rows >= top) & (rows < top + side) & (cols >= left) & (cols < left + side)
        return x * (~inside).unsqueeze(1).float()


def _dropout_probability(value: float, name: str) -> float:
    if not 0 <= value < 1:
        raise LeptonError(f"augment {name} must lie in [0, 1), got {value}")
    return float(value)


class FeatureDropout(nn.Module):
    """Bag-of-words vectors (B, D), float counts: `transform` (`log1p`, `binary` or `none`), and in
    training each feature zeroed with probability `dropout`, independently per review.

    No 1/(1 - p) rescaling, unlike nn.Dropout: the view stands for the same review with some words
    left out, which is what the pseudo-label and consistency methods need (a plausible input the
    label should not change), not a regulariser of activations. `log1p` (the default) keeps a word
    said 20 times from saturating the shallow network's sigmoid units; VAT's radius (`method.vat_eps`)
    is measured in this transformed space.
    """

    modality = "features"
    TRANSFORMS = ("log1p", "binary", "none")

    def __init__(self, dropout: float = 0.0, transform: str = "log1p"):
        super().__init__()
        if transform not in self.TRANSFORMS:
            raise LeptonError(f"augment transform must be one of {', '.join(self.TRANSFORMS)}, got {transform!r}")
        self.dropout, self.transform = _dropout_probability(dropout, "dropout"), transform

    def normalize(self, features: torch.Tensor) -> torch.Tensor:
        if not features.is_floating_point() or features.ndim != 2:
            raise LeptonError(f"bag-of-words inputs must be float (batch, features), got {features.dtype} "
                              f"{tuple(features.shape)}; use augment=tokens for token ids")
        features = features.float()
        if self.transform == "log1p":
            return torch.log1p(features.clamp_min(0))
        if self.transform == "binary":
            return (features > 0).float()
        return features

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        features = self.normalize(features)
        if self.training and self.dropout > 0:
            features = features * (torch.rand_like(features) >= self.dropout)
        return features


class TokenDropout(nn.Module):
    """Token ids (B, L), 0 = padding: in training each token replaced by padding with probability
    `dropout` (word dropout, as in Iyyer et al. 2015's deep averaging networks). Ids stay integers:
    VAT, which perturbs its input continuously, has nothing to perturb here (use the bag-of-words
    data sets, `amazon/*`, for VADA)."""

    modality = "tokens"

    def __init__(self, dropout: float = 0.0):
        super().__init__()
        self.dropout = _dropout_probability(dropout, "dropout")

    def normalize(self, tokens: torch.Tensor) -> torch.Tensor:
        if tokens.is_floating_point() or tokens.ndim != 2:
            raise LeptonError(f"token inputs must be integer ids (batch, length), got {tokens.dtype} "
                              f"{tuple(tokens.shape)}; VAT and other continuous perturbations need augment=text "
                              "on bag-of-words data (amazon/*)")
        return tokens.long()

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        tokens = self.normalize(tokens)
        if self.training and self.dropout > 0:
            tokens = tokens.masked_fill(torch.rand(tokens.shape, device=tokens.device) < self.dropout, 0)
        return tokens


class LogMelAugment(nn.Module):
    """Waveforms (B, T) → log-mel spectrograms (B, 1, n_mels, frames), standardised per utterance
    (zero mean, unit variance over all bins: a recording's loudness and a stationary channel gain
    are not what the label depends on).

    In training: a random time shift of up to `shift` of the length (zeros shifted in), then
    SpecAugment's masks (Park et al., "SpecAugment", Interspeech 2019): `time_masks` spans of up to
    `time_mask` frames and `freq_masks` bands of up to `freq_mask` mel channels, set to 0 (the
    mean). The weak view is a shift; the strong view adds the masks (`conf/augment/audio.yaml`).
    The spectrogram is computed here, on the batch's device (`data.audio.log_mel`).
    """

    modality = "audio"

    def __init__(self, sample_rate: int = 8000, n_fft: int = 256, hop_length: int = 80, n_mels: int = 40,
                 f_min: float = 0.0, f_max: float | None = None, shift: float = 0.0, time_masks: int = 0,
                 time_mask: int = 0, freq_masks: int = 0, freq_mask: int = 0):
        super().__init__()
        from lepton_cli.data.audio import mel_filter_bank

        if not 0 <= shift < 1 or min(time_masks, time_mask, freq_masks, freq_mask) < 0:
            raise LeptonError(f"augment shift must lie in [0, 1) and the mask counts and widths be non-negative, got "
                              f"shift={shift}, time_masks={time_masks}, time_mask={time_mask}, "
                              f"freq_masks={freq_masks}, freq_mask={freq_mask}")
        self.n_fft, self.hop_length, self.shift = n_fft, hop_length, shift
        self.time_masks, self.time_mask, self.freq_masks, self.freq_mask = time_masks, time_mask, freq_masks, freq_mask
        self.register_buffer("filter_bank", mel_filter_bank(n_mels, n_fft, sample_rate, f_min, f_max), persistent=False)
        self.register_buffer("window", torch.hann_window(n_fft), persistent=False)

    def normalize(self, waveforms: torch.Tensor) -> torch.Tensor:
        from lepton_cli.data.audio import log_mel

        if not waveforms.is_floating_point() or waveforms.ndim != 2:
            raise LeptonError(f"audio inputs must be float waveforms (batch, samples), got {waveforms.dtype} "
                              f"{tuple(waveforms.shape)}")
        spectrogram = log_mel(waveforms.float(), self.filter_bank, self.window, self.hop_length)
        mean = spectrogram.mean(dim=(1, 2), keepdim=True)
        std = spectrogram.std(dim=(1, 2), keepdim=True).clamp_min(1e-5)
        return ((spectrogram - mean) / std).unsqueeze(1)

    def forward(self, waveforms: torch.Tensor) -> torch.Tensor:
        if not self.training:
            return self.normalize(waveforms)
        if self.shift > 0:
            waveforms = self._shift(waveforms)
        spectrogram = self.normalize(waveforms)
        spectrogram = _mask_spans(spectrogram, self.time_masks, self.time_mask, dim=3)
        return _mask_spans(spectrogram, self.freq_masks, self.freq_mask, dim=2)

    def _shift(self, waveforms: torch.Tensor) -> torch.Tensor:
        """Each waveform moved by a random whole number of samples in ±shift·T, zeros shifted in."""
        batch, length = waveforms.shape
        limit = int(self.shift * length)
        offsets = torch.randint(-limit, limit + 1, (batch, 1), device=waveforms.device)
        source = torch.arange(length, device=waveforms.device).view(1, -1) - offsets
        inside = (source >= 0) & (source < length)
        return torch.gather(waveforms, 1, source.clamp(0, length - 1)) * inside


def _mask_spans(spectrogram: torch.Tensor, count: int, width: int, dim: int) -> torch.Tensor:
    """`count` spans of 0..`width` bins along `dim`, at random places per sample, set to 0."""
    if count <= 0 or width <= 0:
        return spectrogram
    batch, size = spectrogram.shape[0], spectrogram.shape[dim]
    positions = torch.arange(size, device=spectrogram.device).view(1, 1, size)
    widths = torch.randint(0, min(width, size) + 1, (batch, count, 1), device=spectrogram.device)
    starts = (torch.rand(batch, count, 1, device=spectrogram.device) * (size - widths + 1)).long()
    masked = ((positions >= starts) & (positions < starts + widths)).any(dim=1)  # (batch, size)
    shape = [batch, 1, 1, 1]
    shape[dim] = size
    return spectrogram * (~masked).view(shape)
