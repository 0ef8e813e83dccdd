"""Match classes by name across the source and target domains (and across several sources)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from lepton_cli.data.arrays import ImageArrays, InputArrays
from lepton_cli.errors import LeptonError


def _key(name: str) -> str:
    return name.strip().lower().replace(" ", "_").replace("-", "_")


@dataclass
class ClassAlignment:
    """The classes both domains share, in the source's order, and what each domain dropped."""

    classes: list[str]
    dropped_source: list[str]
    dropped_target: list[str]

    @classmethod
    def between(cls, source_classes: list[str], target_classes: list[str], source_name: str = "source",
                target_name: str = "target") -> ClassAlignment:
        target_keys = {_key(c) for c in target_classes}
        shared = [c for c in source_classes if _key(c) in target_keys]
        if not shared:
            raise LeptonError(
                f"source {source_name} and target {target_name} have no class in common "
                f"(source: {', '.join(source_classes[:10])}; target: {', '.join(target_classes[:10])}); "
                "choose a pair of data sets with the same classes, or rename classes with <dataset>.rename_classes"
            )
        if len(shared) < 2:
            # One shared class: every prediction is right by construction and nothing is learned.
            raise LeptonError(
                f"source {source_name} and target {target_name} share only one class ({shared[0]}); adaptation "
                "needs at least 2 shared classes: choose a pair of data sets with the same classes, or rename "
                "classes with <dataset>.rename_classes"
            )
        shared_keys = {_key(c) for c in shared}
        return cls(
            classes=shared,
            dropped_source=[c for c in source_classes if _key(c) not in shared_keys],
            dropped_target=[c for c in target_classes if _key(c) not in shared_keys],
        )

    def apply(self, arrays: ImageArrays | InputArrays) -> ImageArrays | InputArrays:
        """Keep the shared classes of one split and renumber its labels to the shared index."""
        shared_index = {_key(c): i for i, c in enumerate(self.classes)}
        lookup = np.array([shared_index.get(_key(c), -1) for c in arrays.classes], dtype=np.int64)
        labels = lookup[arrays.labels]
        keep = labels >= 0
        return arrays.subset(keep, labels[keep], list(self.classes))

    def describe(self) -> str:
        dropped = []
        if self.dropped_source:
            dropped.append(f"dropped from source: {', '.join(self.dropped_source)}")
        if self.dropped_target:
            dropped.append(f"dropped from target: {', '.join(self.dropped_target)}")
        return f"{len(self.classes)} shared classes" + (f" ({'; '.join(dropped)})" if dropped else "")

    def as_dict(self) -> dict:
        return {"classes": self.classes, "dropped_source": self.dropped_source, "dropped_target": self.dropped_target}


def shared_by_sources(named_classes: list[tuple[str, list[str]]]) -> ClassAlignment:
    """The classes every source domain has, in the first domain's order (`dropped_source` lists what
    each domain loses as `domain: class`); at least 2, else a LeptonError that names the domains."""
    shared = [c for c in named_classes[0][1] if all(_key(c) in {_key(o) for o in classes} for _, classes in named_classes)]
    names = ", ".join(name for name, _ in named_classes)
    if len(shared) < 2:
        raise LeptonError(f"the source domains {names} share {len(shared)} class(es) ({', '.join(shared) or 'none'}); "
                          "they need at least 2 in common: choose domains with the same classes, or rename "
                          "classes with source.settings.<domain>.rename_classes")
    keys = {_key(c) for c in shared}
    dropped = [f"{name}: {c}" for name, classes in named_classes for c in classes if _key(c) not in keys]
    return ClassAlignment(classes=shared, dropped_source=dropped, dropped_target=[])
