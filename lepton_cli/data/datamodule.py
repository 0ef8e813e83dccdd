"""The DataModule that yields a source batch and a target batch together at each step."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from torch.utils.data import BatchSampler, DataLoader, Dataset, RandomSampler

from lepton_cli.data.alignment import ClassAlignment
from lepton_cli.data.arrays import ImageArrays
from lepton_cli.data.domains import Domain
from lepton_cli.errors import LeptonError

MIN_AUTO_SIZE = 28  # the smallest size `image_size: auto` picks (scikit-learn's digits are 8 px)
UNLABELLED = -1  # what the target training loader yields in place of labels an adaptation method may not see


class TensorImages(Dataset):
    """uint8 images (N, C, H, W) and labels held in memory; `length` > N repeats them so that an
    epoch can be a fixed number of steps whatever the data set's size."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor, length: int | None = None):
        self.images, self.labels = images, labels
        self.length = length or len(labels)

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int | list[int]) -> tuple[torch.Tensor, torch.Tensor]:
        """One image, or a whole batch by a list of indices (one gather: the fast path)."""
        if isinstance(index, list):
            index = torch.tensor(index, device=self.labels.device)
        index = index % len(self.labels)
        return self.images[index], self.labels[index]


def to_tensor(arrays: ImageArrays, image_size: int, channels: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Bring one split to uint8 (N, channels, image_size, image_size)."""
    images = torch.from_numpy(arrays.images).permute(0, 3, 1, 2).contiguous()
    if images.shape[1] != channels:
        if channels == 3:
            images = images.expand(-1, 3, -1, -1)
        else:  # ITU-R 601 luma, as PIL's convert("L")
            weights = torch.tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1)
            images = (images.float() * weights).sum(1, keepdim=True).round().to(torch.uint8)
    if images.shape[-2:] != (image_size, image_size):
        resized = []
        for chunk in images.split(4096):  # bounded memory for large sets
            resized.append(F.interpolate(chunk.float(), size=(image_size, image_size), mode="bilinear",
                                         antialias=True, align_corners=False).round().clamp(0, 255).to(torch.uint8))
        images = torch.cat(resized)
    return images.contiguous(), torch.from_numpy(arrays.labels)


class DomainAdaptationData(pl.LightningDataModule):
    """Source and target data, aligned by class name and brought to one size and channel count.

    Training yields `{"source": (images, labels), "target": (images, labels)}` each step, both as
    uint8 tensors; the target labels are `UNLABELLED` unless the method asks for
    `target_labels_per_class` labelled images per class (fine-tuning). Validation and test yield
    the target test split (dataloader 0) and the source test split (dataloader 1); validation adds
    a held-out source validation split (dataloader 2, `source_val_fraction` of source train, carved
    with a fixed seed and never trained on) for model selection without target labels.
    `splits` holds each split as loaded; the training loader skips the `source_val` images.
    """

    eval_domains = ("target", "source")

    def __init__(self, source: Domain, target: Domain, root: str = "data", cache_dir: str | None = None,
                 download: bool = False, image_size: int | str = "auto", channels: int | str = "auto", batch_size: int = 64,
                 eval_batch_size: int = 512, steps_per_epoch: int = 200, num_workers: int = 0,
                 target_labels_per_class: int | None = None, label_seed: int = 0, use_target_train: bool = True,
                 source_val_fraction: float = 0.0, source_val_seed: int = 0, fast_path: str = "auto"):
        super().__init__()
        if batch_size <= 0 or steps_per_epoch <= 0:
            raise LeptonError(f"data.batch_size and data.steps_per_epoch must be positive, got {batch_size} and {steps_per_epoch}")
        self.source, self.target = source, target
        self.root, self.cache_dir, self.download = Path(root).expanduser(), cache_dir, download
        self.image_size, self.channels = image_size, channels
        self.batch_size, self.eval_batch_size = batch_size, eval_batch_size
        self.steps_per_epoch, self.num_workers = steps_per_epoch, num_workers
        self.target_labels_per_class, self.label_seed = target_labels_per_class, label_seed
        self.use_target_train = use_target_train
        if fast_path not in ("auto", "on", "off"):
            raise LeptonError(f"data.fast_path must be auto, on or off, got {fast_path!r}")
        self.fast_path = fast_path
        if not 0.0 <= source_val_fraction < 1.0:
            raise LeptonError(f"data.source_val_fraction must be in [0, 1), got {source_val_fraction}")
        self.source_val_fraction, self.source_val_seed = source_val_fraction, source_val_seed
        self.train_indices: dict[str, torch.Tensor] = {}  # images of a split the training loader may use
        self.alignment: ClassAlignment | None = None
        self.splits: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}

    @property
    def classes(self) -> list[str]:
        self.setup()
        return self.alignment.classes

    def _resolve_auto_shape(self, raw: dict[str, ImageArrays]) -> None:
        """`image_size: auto` is the source's native size (at least MIN_AUTO_SIZE); `channels: auto`
        is 3 when either domain is in colour, else 1. So CIFAR→STL trains at 32 px RGB and
        MNIST→USPS at 28 px grey without the user saying so."""
        if self.image_size == "auto":
            self.image_size = max(MIN_AUTO_SIZE, int(raw["source_train"].images.shape[1]))
        if self.channels == "auto":
            self.channels = 3 if any(arrays.images.shape[-1] == 3 for arrays in raw.values()) else 1

    def setup(self, stage: str | None = None) -> None:
        if self.splits:
            return
        raw = {f"{role}_{split}": domain.load(split, self.root, self.download, self.cache_dir)
               for role, domain in (("source", self.source), ("target", self.target)) for split in ("train", "test")}
        self.alignment = ClassAlignment.between(raw["source_train"].classes, raw["target_train"].classes,
                                                self.source.name, self.target.name)
        self._resolve_auto_shape(raw)
        for key, arrays in raw.items():
            arrays = self.alignment.apply(arrays)
            if len(arrays) == 0:
                raise LeptonError(f"{key.replace('_', ' ')} split of {getattr(self, key.split('_')[0]).name} has no images of the shared classes")
            self.splits[key] = to_tensor(arrays, self.image_size, self.channels)
        images, labels = self.splits["target_train"]
        if self.target_labels_per_class:
            keep = labelled_subset(labels, self.target_labels_per_class, self.label_seed)
            self.splits["target_train"] = (images[keep], labels[keep])
        else:
            # Unsupervised adaptation: the labels never leave this module.
            self.splits["target_train"] = (images, torch.full_like(labels, UNLABELLED))
        if self.source_val_fraction > 0:
            images, labels = self.splits["source_train"]
            order = torch.from_numpy(np.random.default_rng(self.source_val_seed).permutation(len(labels)))
            held_out = max(1, round(self.source_val_fraction * len(labels)))
            if held_out >= len(labels):
                raise LeptonError(f"source train of {self.source.name} has {len(labels)} images: too few to hold out "
                                  f"data.source_val_fraction={self.source_val_fraction}; lower it or set it to 0")
            val, keep = order[:held_out].sort().values, order[held_out:].sort().values
            self.splits["source_val"] = (images[val], labels[val])
            self.train_indices["source_train"] = keep

    def _train_loader(self, key: str) -> DataLoader:
        images, labels = self.splits[key]
        if key in self.train_indices:
            images, labels = images[self.train_indices[key]], labels[self.train_indices[key]]
        length = self.steps_per_epoch * self.batch_size
        if self.uses_fast_path():
            # Data on the training device once; each batch is one gather by a batch of random indices.
            device = self.trainer.strategy.root_device if self.trainer is not None else torch.device("cpu")
            dataset = TensorImages(images.to(device), labels.to(device), length=length)
            return DataLoader(dataset, batch_size=None,
                              sampler=BatchSampler(RandomSampler(range(length)), self.batch_size, drop_last=True))
        dataset = TensorImages(images, labels, length=length)
        return DataLoader(dataset, batch_size=self.batch_size, shuffle=True, drop_last=True,
                          num_workers=self.num_workers, persistent_workers=self.num_workers > 0,
                          pin_memory=self._on_gpu())

    def _on_gpu(self) -> bool:
        return self.trainer is not None and self.trainer.strategy.root_device.type == "cuda"

    def uses_fast_path(self) -> bool:
        """`fast_path: auto` holds the training data on the device and samples whole batches by index
        (no DataLoader workers, no per-image Python) whenever one process trains; DDP needs
        Lightning's per-rank samplers, so it takes the ordinary path."""
        distributed = self.trainer is not None and self.trainer.world_size > 1
        if self.fast_path == "on" and distributed:
            raise LeptonError("data.fast_path=on works with one process only; use data.fast_path=auto with DDP")
        return self.fast_path == "on" or (self.fast_path == "auto" and not distributed and self.num_workers == 0)

    def train_dataloader(self) -> dict[str, DataLoader]:
        loaders = {"source": self._train_loader("source_train")}
        if self.use_target_train:
            loaders["target"] = self._train_loader("target_train")
        return loaders

    def _eval_loader(self, split: str) -> DataLoader:
        from lepton_cli.distributed import eval_sampler

        dataset = TensorImages(*self.splits[split])
        # Under DDP: each image on exactly one rank, so synchronised metrics equal one process's.
        return DataLoader(dataset, batch_size=self.eval_batch_size, num_workers=self.num_workers,
                          sampler=eval_sampler(dataset, self.trainer))

    def test_dataloader(self) -> list[DataLoader]:
        return [self._eval_loader(f"{domain}_test") for domain in self.eval_domains]

    def val_dataloader(self) -> list[DataLoader]:
        loaders = self.test_dataloader()
        if "source_val" in self.splits:
            loaders.append(self._eval_loader("source_val"))
        return loaders


def labelled_subset(labels: torch.Tensor, per_class: int, seed: int) -> torch.Tensor:
    """Indices of exactly `per_class` labelled images of each class (all of a class if it has fewer)."""
    generator = np.random.default_rng(seed)
    labels_np = labels.numpy()
    chosen = [generator.permutation(np.flatnonzero(labels_np == c))[:per_class] for c in np.unique(labels_np)]
    return torch.from_numpy(np.sort(np.concatenate(chosen)))
