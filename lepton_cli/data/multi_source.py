"""Several source domains in one run: `source=multi source.domains=[mnist,usps,synth_digits]`.

`MultiSourceDomain` is a `Domain` whose splits pool the splits of the data sets it names, each
built from Lepton's own `conf/dataset/<option>.yaml` (read as data: only the Domain classes of
`lepton_cli.data.domains`, only plain values), with the classes every source shares matched by name
(`alignment.shared_by_sources`). Each pooled image keeps the index of its domain (`PooledArrays`),
so the DataModule can sample the domains evenly (`BalancedDomainSampler`) and hand the index to the
methods that ask for it (`batch["source_domain"]`). Text and audio sources pool the same way
(`PooledInputs`): all of one modality, token rows padded to the longest, feature vectors and
waveforms of one width.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Sampler

from lepton_cli.data.arrays import ImageArrays, InputArrays
from lepton_cli.data.domains import Domain
from lepton_cli.errors import LeptonError

_OPTION = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]*(/[A-Za-z0-9_][A-Za-z0-9_.-]*)*")


def checked_domain_index(domain_index, count: int) -> np.ndarray:
    domain_index = np.asarray(domain_index, dtype=np.int64)
    if len(domain_index) != count:
        raise ValueError(f"{count} inputs but {len(domain_index)} domain indices")
    return domain_index


@dataclass
class PooledArrays(ImageArrays):
    """Images of several domains at one size: `domain_index[i]` indexes `domain_names`."""

    domain_index: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    domain_names: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        super().__post_init__()
        self.domain_index = checked_domain_index(self.domain_index, len(self.labels))

    def subset(self, keep: np.ndarray, labels: np.ndarray, classes: list[str]) -> PooledArrays:
        return PooledArrays(self.images[keep], labels, classes, self.cacheable, self.domain_index[keep], self.domain_names)


@dataclass
class PooledInputs(InputArrays):
    """Text or audio inputs of several domains: `domain_index[i]` indexes `domain_names`."""

    domain_index: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    domain_names: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        super().__post_init__()
        self.domain_index = checked_domain_index(self.domain_index, len(self.labels))

    def subset(self, keep: np.ndarray, labels: np.ndarray, classes: list[str]) -> PooledInputs:
        return PooledInputs(self.inputs[keep], labels, classes, self.modality, self.cacheable, self.domain_index[keep],
                            self.domain_names)


def dataset_option(option: str, settings: dict | None = None) -> Domain:
    """The Domain of `conf/dataset/<option>.yaml` with `settings` merged over its keys. The file is
    data: its `_target_` must be one of the Domain classes in `lepton_cli.data.domains` or
    `lepton_cli.data.text_and_speech` and every
    value plain (no nested objects), so nothing else is imported or called."""
    from omegaconf import OmegaConf

    from lepton_cli.config import conf_dir, group_options
    from lepton_cli.data import domains, text_and_speech

    options = group_options("dataset")
    if not _OPTION.fullmatch(option) or option not in options or option == "multi":
        choices = ", ".join(name for name in options if name != "multi")
        raise LeptonError(f"source.domains: unknown data set {option!r}; choose from: {choices}")
    node = OmegaConf.to_container(OmegaConf.load(conf_dir() / "dataset" / f"{option}.yaml"), resolve=True)
    settings = OmegaConf.to_container(settings) if OmegaConf.is_config(settings) else settings or {}
    if not isinstance(settings, dict):
        raise LeptonError(f"source.settings.{option} must be a mapping of keys to change, e.g. "
                          "source.settings='{synth_digits: {train_size: 500}}'")
    node.update(settings)
    module, _, class_name = str(node.pop("_target_", "")).rpartition(".")
    data_modules = {m.__name__: m for m in (domains, text_and_speech)}  # where Lepton's data-set classes live
    domain_class = getattr(data_modules[module], class_name, None) if module in data_modules else None
    if not (isinstance(domain_class, type) and issubclass(domain_class, Domain)) or domain_class is Domain:
        raise LeptonError(f"source.domains: {option} is not one of Lepton's data sets (its _target_ is not a "
                          f"class of {' or '.join(data_modules)})")
    if any(isinstance(value, dict) and "_target_" in value for value in node.values()):
        raise LeptonError(f"source.domains: {option} may only hold plain values, not objects")
    try:
        return domain_class(**node)
    except TypeError as error:  # an unknown or missing key in source.settings
        raise LeptonError(f"source.domains: {option}: {error}; check source.settings.{option}") from None


class MultiSourceDomain(Domain):
    """Several labelled source domains pooled into one (`conf/dataset/multi.yaml`).

    `domains`: data-set options (`mnist`, `office_home/Art`, ...) or Domain objects (from Python).
    `settings`: keys to change per domain, by option or domain name (`{synth_digits: {train_size: 500}}`).
    `balanced`: each training batch holds the same number of images of every domain (DomainBed's
    per-domain batches); False samples the pool uniformly, so large domains dominate.

    Classes are those every source has (matched by name); images are brought to the largest native
    size among the sources and to colour when any source is in colour, then `data.image_size` applies.
    Each domain's decoding is cached by the domain itself.
    """

    def __init__(self, name: str = "multi", domains: list | None = None, settings: dict | None = None,
                 balanced: bool = True, **kwargs):
        super().__init__(name, cache=False, **kwargs)
        if settings is not None and not isinstance(settings, Mapping):
            raise LeptonError("source.settings must map data sets to the keys to change, e.g. "
                              "source.settings='{synth_digits: {train_size: 500}}'")
        settings = dict(settings or {})
        self.domains: list[Domain] = []
        for entry in domains or []:
            if isinstance(entry, Domain):
                self.domains.append(entry)
                continue
            option = str(entry)
            yaml_name = option.replace("/", "_").lower()
            self.domains.append(dataset_option(option, settings.get(option) or settings.get(yaml_name)))
        names = [domain.name for domain in self.domains]
        if len(self.domains) < 2:
            raise LeptonError(f"source=multi needs at least 2 source domains, got {names or 'none'}; e.g. "
                              "source.domains=[mnist,usps,synth_digits]")
        if len(set(names)) != len(names):
            raise LeptonError(f"source.domains names a data set twice: {', '.join(names)}")
        self.balanced = bool(balanced)

    @property
    def domain_names(self) -> list[str]:
        return [domain.name for domain in self.domains]

    def leave_out(self, target_name: str) -> MultiSourceDomain:
        """This pool without the domain named like the target: in domain generalisation the target is
        unseen, so leave-one-domain-out lists all domains once and varies only `target=`."""
        kept = [domain for domain in self.domains if domain.name != target_name]
        if len(kept) == len(self.domains):
            return self
        return MultiSourceDomain(self.name, kept, balanced=self.balanced)

    def load(self, split: str, root: str | Path, download: bool = False, cache_dir: str | Path | None = None) -> PooledArrays:
        from lepton_cli.data.alignment import shared_by_sources
        from lepton_cli.data.datamodule import to_tensor

        parts = [domain.load(split, root, download, cache_dir) for domain in self.domains]
        modalities = {part.modality for part in parts}
        if len(modalities) > 1:
            raise LeptonError("source.domains mixes modalities (" + ", ".join(
                f"{domain.name}: {part.modality}" for domain, part in zip(self.domains, parts)) + "); pool data sets of one kind")
        alignment = shared_by_sources([(domain.name, part.classes) for domain, part in zip(self.domains, parts)])
        parts = [alignment.apply(part) for part in parts]
        labels = np.concatenate([part.labels for part in parts])
        pooled = {"cacheable": all(part.cacheable for part in parts), "domain_names": self.domain_names,
                  "domain_index": np.repeat(np.arange(len(parts)), [len(part) for part in parts])}
        if isinstance(parts[0], InputArrays):
            return PooledInputs(self._pooled_inputs(parts), labels, alignment.classes, parts[0].modality, **pooled)
        size = max(part.images.shape[1] for part in parts)
        channels = 3 if any(part.images.shape[-1] == 3 for part in parts) else 1
        images = [to_tensor(part, size, channels)[0].permute(0, 2, 3, 1).numpy() for part in parts]
        return PooledArrays(np.concatenate(images), labels, alignment.classes, **pooled)

    def _pooled_inputs(self, parts: list[InputArrays]) -> np.ndarray:
        """One (N, width) array: token rows padded with 0 (padding) to the longest; feature vectors
        and waveforms must already share their width (one vocabulary, one recording length)."""
        widths = [part.inputs.shape[1] for part in parts]
        if parts[0].modality == "tokens":
            return np.concatenate([np.pad(part.inputs, ((0, 0), (0, max(widths) - width))) for part, width in zip(parts, widths)])
        if len(set(widths)) > 1:
            raise LeptonError(f"source.domains have {parts[0].modality} inputs of different widths (" + ", ".join(
                f"{domain.name}: {width}" for domain, width in zip(self.domains, widths)) + "); pool data sets of one "
                "feature space or recording length")
        return np.concatenate([part.inputs for part in parts])


class BalancedDomainSampler(Sampler[int]):
    """`length` indices in blocks of `batch_size`, each block holding batch_size // D images of each
    of the D domains (the remainder goes to randomly chosen domains), so cut into batches of
    `batch_size` every batch is balanced. Each domain is read in a fresh random order, pass after
    pass. The random state follows torch's global generator (`seed_everything`)."""

    def __init__(self, domain_index: torch.Tensor, length: int, batch_size: int):
        self.members = [torch.nonzero(domain_index == d).flatten() for d in torch.unique(domain_index).tolist()]
        self.length, self.batch_size = length, batch_size

    def __len__(self) -> int:
        return self.length

    def __iter__(self) -> Iterator[int]:
        generator = torch.Generator().manual_seed(int(torch.randint(2**62, ())))
        streams = [_endless_shuffle(members, generator) for members in self.members]
        domains = len(streams)
        for start in range(0, self.length, self.batch_size):
            counts = [self.batch_size // domains] * domains
            for d in torch.randperm(domains, generator=generator)[: self.batch_size % domains].tolist():
                counts[d] += 1
            block = [next(stream) for stream, count in zip(streams, counts) for _ in range(count)]
            yield from block[: self.length - start]


def _endless_shuffle(members: torch.Tensor, generator: torch.Generator) -> Iterator[int]:
    while True:
        yield from members[torch.randperm(len(members), generator=generator)].tolist()
