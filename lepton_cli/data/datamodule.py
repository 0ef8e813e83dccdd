"""The DataModule that yields a source batch and a target batch together at each step."""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path

import numpy as np
import pytorch_lightning as pl
import torch
from torch.utils.data import BatchSampler, DataLoader, Dataset, RandomSampler

from lepton_cli.data.alignment import ClassAlignment
from lepton_cli.data.arrays import ImageArrays, InputArrays
from lepton_cli.data.domains import Domain
from lepton_cli.data.modality import input_tensors, one_modality
from lepton_cli.data.streaming import ImageFiles, StreamedImages, check_streaming_setting, choose_streaming, to_tensor
from lepton_cli.errors import LeptonError

__all__ = ["UNLABELLED", "DomainAdaptationData", "TensorImages", "image_key", "labelled_subset", "to_tensor"]
log = logging.getLogger(__name__)

MIN_AUTO_SIZE = 28  # the smallest size `image_size: auto` picks (scikit-learn's digits are 8 px)
UNLABELLED = -1  # what the target training loader yields in place of labels an adaptation method may not see


class TensorImages(Dataset):
    """uint8 images (N, C, H, W) and labels held in memory; `length` > N repeats them so that an
    epoch can be a fixed number of steps whatever the data set's size. With `domains` (pooled
    sources) each item is (image, label, domain index)."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor, length: int | None = None,
                 domains: torch.Tensor | None = None):
        self.images, self.labels, self.domains = images, labels, domains
        self.length = length or len(labels)

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int | list[int]) -> tuple[torch.Tensor, ...]:
        """One image, or a whole batch by a list of indices (one gather: the fast path)."""
        if isinstance(index, list):
            index = torch.tensor(index, device=self.labels.device)
        index = index % len(self.labels)
        if self.domains is not None:
            return self.images[index], self.labels[index], self.domains[index]
        return self.images[index], self.labels[index]


class DomainAdaptationData(pl.LightningDataModule):
    """Source and target data, aligned by class name and brought to one size and channel count.

    Training yields `{"source": (images, labels), "target": (images, labels)}` each step, both as
    uint8 tensors (text and audio: their inputs as `data/modality.py` says); the target labels are `UNLABELLED` unless the method asks for
    `target_labels_per_class` labelled images per class (fine-tuning).

    Evaluation, by split name (`val_splits`, `test_splits`, the order of the loaders):

    - test: `target` (target test) and `source` (source test): the final numbers, read once;
    - validation, for model selection without target labels: `target_val`, a held-out
      `target_val_fraction` of target train (never trained on; its labels are `UNLABELLED`: the
      unsupervised validators read only predictions and features), `source` test (learning
      curves), `source_val`, a held-out `source_val_fraction` of source train (never trained on),
      and, with `validate_target_test=True`, the target test split itself: read per epoch only for
      the oracle's column of the tables (labelled so); the validators never read it.

    The labelled target images of fine-tuning are in no evaluation split: when the target has no
    separate test split (image folders, Office-31/Home), the images equal to a labelled one are
    removed from target test. `test_sizes` says how many images each test number rests on.
    `splits` holds each split as loaded; the training loaders skip the held-out images.

    Several sources (`data.multi_source.MultiSourceDomain`): `source_domains` holds the domain index
    of each image of the source splits; `source_val` is held out from each domain alike (DomainBed's
    training-domain validation); training batches draw the domains evenly (`balanced`) and carry
    the index as `batch["source_domain"]` beside the unchanged `batch["source"]`.

    Image files too large for memory (`data.streaming`, `data.max_memory_gb`: data/streaming.py) are
    listed instead of decoded: their splits hold a `StreamedImages` where the others hold a uint8
    tensor, every hold-out above works on it alike, and the DataLoader workers decode each image
    into the same uint8 tensor the in-memory path would hold. `train_dataloader` logs which path
    the run takes (device-resident fast path, in-memory DataLoader, streaming) and why.
    """

    test_splits = ("target", "source")

    def __init__(self, source: Domain, target: Domain, root: str = "data", cache_dir: str | None = None,
                 download: bool = False, image_size: int | str = "auto", channels: int | str = "auto", batch_size: int = 64,
                 eval_batch_size: int = 512, steps_per_epoch: int = 200, num_workers: int = 0,
                 target_labels_per_class: int | None = None, label_seed: int = 0, use_target_train: bool = True,
                 source_val_fraction: float = 0.0, source_val_seed: int = 0, fast_path: str = "auto",
                 target_val_fraction: float = 0.1, validate_target_test: bool = False, input_dim: int | str = "auto",
                 streaming: str = "auto", max_memory_gb: float | str = "auto"):
        super().__init__()
        if batch_size <= 0 or steps_per_epoch <= 0:
            raise LeptonError(f"data.batch_size and data.steps_per_epoch must be positive, got {batch_size} and {steps_per_epoch}")
        self.source, self.target = source, target
        self.root, self.cache_dir, self.download = Path(root).expanduser(), cache_dir, download
        self.image_size, self.channels = image_size, channels
        # Text and audio: the input width the backbone needs (data/modality.py), set by setup().
        self.input_dim, self.modality = input_dim, None
        self.batch_size, self.eval_batch_size = batch_size, eval_batch_size
        self.steps_per_epoch, self.num_workers = steps_per_epoch, num_workers
        self.target_labels_per_class, self.label_seed = target_labels_per_class, label_seed
        self.use_target_train = use_target_train
        if fast_path not in ("auto", "on", "off"):
            raise LeptonError(f"data.fast_path must be auto, on or off, got {fast_path!r}")
        self.fast_path = fast_path
        check_streaming_setting(streaming)
        self.streaming, self.max_memory_gb = streaming, max_memory_gb
        self.streamed_roles: set[str] = set()  # "source"/"target": read from disk while training (setup decides)
        self.streaming_reason, self._logged_data_path = "", False
        if not 0.0 <= source_val_fraction < 1.0:
            raise LeptonError(f"data.source_val_fraction must be in [0, 1), got {source_val_fraction}")
        self.source_val_fraction, self.source_val_seed = source_val_fraction, source_val_seed
        if not 0.0 <= target_val_fraction < 1.0:
            raise LeptonError(f"data.target_val_fraction must be in [0, 1), got {target_val_fraction}")
        self.target_val_fraction, self.validate_target_test = target_val_fraction, validate_target_test
        self.train_indices: dict[str, torch.Tensor] = {}  # images of a split the training loader may use
        self.alignment: ClassAlignment | None = None
        self.splits: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}
        self.source_domains: dict[str, torch.Tensor] = {}  # split → domain index per image, pooled sources only

    @property
    def classes(self) -> list[str]:
        self.setup()
        return self.alignment.classes

    def _resolve_auto_shape(self, raw: dict[str, ImageArrays | InputArrays | ImageFiles]) -> None:
        """`image_size: auto` is the source's native size (at least MIN_AUTO_SIZE); `channels: auto`
        is 3 when either domain is in colour, else 1. So CIFAR→STL trains at 32 px RGB and
        MNIST→USPS at 28 px grey without the user saying so. Listed files count as decoded: RGB at
        their reader's size."""
        def native_size(arrays) -> int:
            return arrays.decode_size if isinstance(arrays, ImageFiles) else arrays.images.shape[1]

        if self.image_size == "auto":
            self.image_size = max(MIN_AUTO_SIZE, int(native_size(raw["source_train"])))
        if self.channels == "auto":
            self.channels = 3 if any(isinstance(arrays, ImageFiles) or arrays.images.shape[-1] == 3
                                     for arrays in raw.values()) else 1

    def _choose_streaming(self) -> dict[str, ImageFiles | None]:
        """List the file-list data sets (nothing decoded yet), decide which roles stream from disk
        (`streaming.choose_streaming`) and return the listings of those roles."""
        domains = {"source": self.source, "target": self.target}
        keys = [f"{role}_{split}" for role in domains for split in ("train", "test")]
        if self.streaming == "off":
            listed = dict.fromkeys(keys)
        else:
            listed = {key: domains[key.split("_")[0]].image_files(key.split("_")[1], self.root) for key in keys}
        # Before decoding, `auto` size and channels are estimated as decoded (the files' own size, RGB).
        size = self.image_size if isinstance(self.image_size, int) else None
        channels = self.channels if isinstance(self.channels, int) else 3
        self.streamed_roles, self.streaming_reason = choose_streaming(
            self.streaming, listed, {role: domain.name for role, domain in domains.items()}, size, channels,
            self.max_memory_gb)
        return {key: files for key, files in listed.items() if key.split("_")[0] in self.streamed_roles}

    def setup(self, stage: str | None = None) -> None:
        if self.splits:
            return
        streamed = self._choose_streaming()
        raw = {key: streamed[key] if key in streamed else domain.load(split, self.root, self.download, self.cache_dir)
               for role, domain in (("source", self.source), ("target", self.target)) for split in ("train", "test")
               for key in [f"{role}_{split}"]}
        self.modality = one_modality(raw, self.source.name, self.target.name)
        self.alignment = ClassAlignment.between(raw["source_train"].classes, raw["target_train"].classes,
                                                self.source.name, self.target.name)
        if self.modality == "image":
            self._resolve_auto_shape(raw)
        aligned = {key: self.alignment.apply(arrays) for key, arrays in raw.items()}
        for key, arrays in aligned.items():
            if len(arrays) == 0:
                raise LeptonError(f"{key.replace('_', ' ')} split of {getattr(self, key.split('_')[0]).name} has no images of the shared classes")
            if isinstance(arrays, ImageFiles):
                self.splits[key] = (StreamedImages(arrays.files, arrays.decode_size, self.image_size, self.channels),
                                    torch.from_numpy(arrays.labels))
            elif self.modality == "image":
                self.splits[key] = to_tensor(arrays, self.image_size, self.channels)
            if hasattr(arrays, "domain_index"):  # pooled sources
                self.source_domains[key] = torch.from_numpy(arrays.domain_index)
        if self.modality != "image":
            self._set_inputs(aligned)
        images, labels = self.splits["target_train"]
        if self.target_val_fraction > 0:
            val, keep = self._hold_out(len(labels), self.target_val_fraction, "target", self.target.name)
            # Unlabelled: the validators that score it may not read target labels.
            self.splits["target_val"] = (images[val], torch.full_like(labels[val], UNLABELLED))
            images, labels = images[keep], labels[keep]
        if self.target_labels_per_class:
            keep = labelled_subset(labels, self.target_labels_per_class, self.label_seed)
            self.splits["target_train"] = (images[keep], labels[keep])
            self._drop_labelled_from_evaluation(images[keep])
        else:
            # Unsupervised adaptation: the labels never leave this module.
            self.splits["target_train"] = (images, torch.full_like(labels, UNLABELLED))
        if self.source_val_fraction > 0:
            images, labels = self.splits["source_train"]
            domains = self.source_domains.get("source_train", torch.zeros_like(labels))
            val, keep = [], []
            for domain in torch.unique(domains):  # from each source domain alike: every one is validated
                members = torch.nonzero(domains == domain).flatten()
                held_out, kept = self._hold_out(len(members), self.source_val_fraction, "source", self.source.name)
                val.append(members[held_out])
                keep.append(members[kept])
            val, keep = torch.cat(val).sort().values, torch.cat(keep).sort().values
            self.splits["source_val"] = (images[val], labels[val])
            self.train_indices["source_train"] = keep
            if "source_train" in self.source_domains:
                self.source_domains["source_val"] = domains[val]

    def _set_inputs(self, aligned: dict[str, InputArrays]) -> None:
        tensors, input_dim = input_tensors(aligned)
        if self.input_dim not in ("auto", input_dim):
            raise LeptonError(f"data.input_dim={self.input_dim} but the {self.modality} data has width {input_dim}; "
                              "leave data.input_dim=auto (it is set from the data)")
        self.splits.update(tensors)
        self.input_dim = input_dim

    def _hold_out(self, count: int, fraction: float, role: str, name: str) -> tuple[torch.Tensor, torch.Tensor]:
        """(held-out, kept) sorted indices of a split of `count` images, drawn with a fixed seed."""
        order = torch.from_numpy(np.random.default_rng(self.source_val_seed).permutation(count))
        held_out = max(1, round(fraction * count))
        if held_out >= count:
            raise LeptonError(f"{role} train of {name} has {count} images: too few to hold out "
                              f"data.{role}_val_fraction={fraction}; lower it or set it to 0")
        return order[:held_out].sort().values, order[held_out:].sort().values

    def _drop_labelled_from_evaluation(self, labelled: torch.Tensor) -> None:
        """Remove every image equal to a labelled training image from the target evaluation splits.
        Without a separate test split (image folders, Office-31/Home) target test holds the very
        images fine-tuning learns from, and testing on them would report training accuracy."""
        seen = {image_key(image) for image in labelled}
        for key in ("target_test", "target_val"):
            if key not in self.splits:
                continue
            images, labels = self.splits[key]
            keep = torch.tensor([image_key(image) not in seen for image in images], dtype=torch.bool)
            if not keep.any():
                raise LeptonError(f"every target {key.removeprefix('target_')} image of {self.target.name} is one of the "
                                  "labelled training images; lower method.labels_per_class or give the target a "
                                  "separate test split (target.test_path=DIR)")
            self.splits[key] = (images[keep], labels[keep])

    @property
    def val_splits(self) -> tuple[str, ...]:
        """The names of the validation loaders, in order (see the class docstring)."""
        self.setup()
        names = ["target_val"] if "target_val" in self.splits else []
        names.append("source")
        names += ["source_val"] if "source_val" in self.splits else []
        names += ["target"] if self.validate_target_test else []
        return tuple(names)

    @property
    def test_sizes(self) -> dict[str, int]:
        """Images in each test split, by name: what each final number rests on."""
        self.setup()
        return {split: len(self.splits[f"{split}_test"][1]) for split in self.test_splits}

    def _train_loader(self, key: str, with_domains: bool = False) -> DataLoader:
        """`with_domains`: pooled sources yield (images, labels, domain index), which
        `on_before_batch_transfer` turns into `batch["source_domain"]` (other callers get pairs)."""
        images, labels = self.splits[key]
        domains = self.source_domains.get(key)
        if key in self.train_indices:
            images, labels = images[self.train_indices[key]], labels[self.train_indices[key]]
            domains = domains[self.train_indices[key]] if domains is not None else None
        length = self.steps_per_epoch * self.batch_size
        balanced = None
        if domains is not None and getattr(self.source, "balanced", False):
            from lepton_cli.data.multi_source import BalancedDomainSampler

            balanced = BalancedDomainSampler(domains, length, self.batch_size)
        if self.uses_fast_path():
            # Data on the training device once; each batch is one gather by a batch of random indices.
            device = self.trainer.strategy.root_device if self.trainer is not None else torch.device("cpu")
            dataset = TensorImages(images.to(device), labels.to(device), length=length,
                                   domains=domains.to(device) if domains is not None and with_domains else None)
            sampler = BatchSampler(balanced or RandomSampler(range(length)), self.batch_size, drop_last=True)
            return DataLoader(dataset, batch_size=None, sampler=sampler)
        dataset = TensorImages(images, labels, length=length, domains=domains if with_domains else None)
        # The same loader in memory and streamed (the dataset indexes a tensor or decodes a file), so
        # the same seed draws the same images; under DDP Lightning gives it per-rank samplers.
        return DataLoader(dataset, batch_size=self.batch_size, shuffle=balanced is None, sampler=balanced, drop_last=True,
                          num_workers=self.num_workers, persistent_workers=self.num_workers > 0,
                          pin_memory=self._on_gpu())

    def on_before_batch_transfer(self, batch, dataloader_idx: int):
        """Pooled sources: `batch["source"]` stays (images, labels), as every method reads it; the
        domain index goes beside it as `batch["source_domain"]` for the methods that use it."""
        if isinstance(batch, dict) and len(batch.get("source", ())) == 3:
            images, labels, domains = batch["source"]
            batch = {**batch, "source": (images, labels), "source_domain": domains}
        return batch

    def _on_gpu(self) -> bool:
        return self.trainer is not None and self.trainer.strategy.root_device.type == "cuda"

    def uses_fast_path(self) -> bool:
        """`fast_path: auto` holds the training data on the device and samples whole batches by index
        (no DataLoader workers, no per-image Python) whenever one process trains on data held in
        memory; DDP needs Lightning's per-rank samplers and streamed data is not in memory, so
        both take the ordinary DataLoader path."""
        return self._fast_path_decision()[0]

    def _fast_path_decision(self) -> tuple[bool, str]:
        """(whether the training batches are gathered on the device, why not when they are not)."""
        distributed = self.trainer is not None and self.trainer.world_size > 1
        if self.fast_path == "on" and distributed:
            raise LeptonError("data.fast_path=on works with one process only; use data.fast_path=auto with DDP")
        if self.fast_path == "on" and self.streamed_roles:
            raise LeptonError("data.fast_path=on needs the data in memory, but it streams from disk "
                              f"({self.streaming_reason}); use data.fast_path=auto or data.streaming=off")
        if self.fast_path == "on":
            return True, "data.fast_path=on"
        reasons = [why for why, applies in (("data.fast_path=off", self.fast_path == "off"),
                                            ("DDP needs per-rank samplers", distributed),
                                            (f"data.num_workers={self.num_workers}", self.num_workers > 0),
                                            ("streamed data is not in memory", bool(self.streamed_roles))) if applies]
        return not reasons, "; ".join(reasons)

    def _log_data_path(self) -> None:
        """One INFO line, once: which of the three data paths training takes, and why."""
        if self._logged_data_path:
            return
        self._logged_data_path = True
        fast, why_not = self._fast_path_decision()
        if self.streamed_roles:
            names = " and ".join(f"{role} {getattr(self, role).name}" for role in ("source", "target")
                                 if role in self.streamed_roles)
            workers = (f"{self.num_workers} DataLoader workers" if self.num_workers else
                       "the main process (set data.num_workers=N to decode in parallel)")
            log.info("data: streaming %s from disk, decoded in %s: %s", names, workers, self.streaming_reason)
        elif fast:
            log.info("data: in memory, batches gathered on the device (fast path): %s", self.streaming_reason)
        else:
            log.info("data: in memory, DataLoader with %d workers (no fast path: %s): %s", self.num_workers, why_not,
                     self.streaming_reason)

    def train_dataloader(self) -> dict[str, DataLoader]:
        self._log_data_path()
        loaders = {"source": self._train_loader("source_train", with_domains=True)}
        if self.use_target_train:
            loaders["target"] = self._train_loader("target_train")
        return loaders

    def _eval_loader(self, split: str) -> DataLoader:
        from lepton_cli.distributed import eval_sampler

        dataset = TensorImages(*self.splits[split])
        streamed = isinstance(dataset.images, StreamedImages) and self.num_workers > 0
        # Under DDP: each image on exactly one rank, so synchronised metrics equal one process's.
        # Streamed: the workers stay up between validations (forking them again each epoch costs more).
        return DataLoader(dataset, batch_size=self.eval_batch_size, num_workers=self.num_workers,
                          sampler=eval_sampler(dataset, self.trainer), persistent_workers=streamed,
                          pin_memory=streamed and self._on_gpu())

    def unlabelled_target_loader(self) -> DataLoader:
        """The target training images in order, their labels masked (-1), sharded like evaluation
        under DDP: for methods that estimate target statistics (AdaBN)."""
        return self._eval_loader("target_train")

    def test_dataloader(self) -> list[DataLoader]:
        return [self._eval_loader(f"{split}_test") for split in self.test_splits]

    def val_dataloader(self) -> list[DataLoader]:
        return [self._eval_loader(split if split.endswith("_val") else f"{split}_test") for split in self.val_splits]


def image_key(image: torch.Tensor) -> bytes:
    """A digest of one image's pixels: equal images, equal keys."""
    return hashlib.sha1(image.contiguous().numpy().tobytes()).digest()


def labelled_subset(labels: torch.Tensor, per_class: int, seed: int) -> torch.Tensor:
    """Indices of exactly `per_class` labelled images of each class (all of a class if it has fewer)."""
    generator = np.random.default_rng(seed)
    labels_np = labels.numpy()
    chosen = [generator.permutation(np.flatnonzero(labels_np == c))[:per_class] for c in np.unique(labels_np)]
    return torch.from_numpy(np.sort(np.concatenate(chosen)))
