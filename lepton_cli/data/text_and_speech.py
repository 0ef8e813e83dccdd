"""Text and speech data sets for `source=` / `target=` (`conf/dataset/amazon/`, `amazon_text/`,
`fsdd/`), beside the image ones of `domains.py`. Their files sit under `data.root` in the layout
of `shared/data/` (`amazon_dann/`, `amazon_reviews/`, `fsdd/recordings/`).

They are decoded on every run, not cached: `Domain`'s cache stores images, and decoding is quick
(the largest, an FSDD split with its outdoor recipe, takes about a second).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from lepton_cli.data.arrays import InputArrays
from lepton_cli.data.domains import DIGIT_CLASSES, Domain
from lepton_cli.errors import LeptonError

AMAZON_DOMAINS = ("books", "dvd", "electronics", "kitchen")
OUTDOOR_KEYS = {"snr_db", "rt60_s", "direct_to_reverb_db", "seed"}  # data.audio.outdoor_recording's recipe


class _UncachedFileDomain(Domain):
    reads_files = True

    def __init__(self, name: str, subdir: str, **kwargs):
        kwargs.pop("cache", None)  # see the module docstring
        super().__init__(name, cache=False, **kwargs)
        self.subdir = subdir


def _amazon_domain(domain: str) -> str:
    if domain not in AMAZON_DOMAINS:
        raise LeptonError(f"Amazon domain must be one of {', '.join(AMAZON_DOMAINS)}, got {domain!r}")
    return domain


class AmazonBagOfWords(_UncachedFileDomain):
    """One product domain of the DANN paper's Amazon data (Ganin et al. 2016, §5.1): 5,000
    bag-of-words count features, `<subdir>/<domain>_{train,test}.svmlight`. The paper's protocol
    for S → T: S train labelled, T train unlabelled, T test for the numbers."""

    def __init__(self, name: str, domain: str, subdir: str = "amazon_dann", n_features: int = 5000, **kwargs):
        super().__init__(name, subdir, **kwargs)
        self.domain, self.n_features = _amazon_domain(domain), n_features

    def _decode(self, split: str, root: Path, download: bool) -> InputArrays:
        from lepton_cli.data.readers.text import read_svmlight

        return read_svmlight(root / self.subdir / f"{self.domain}_{split}.svmlight", self.n_features)


class AmazonTokens(_UncachedFileDomain):
    """One product domain of the `processed_acl` release (Blitzer et al. 2007) as token keys:
    `<subdir>/<domain>/{positive,negative}.review`, 2,000 labelled reviews, split 1,600 train /
    400 test as Blitzer et al. did (stratified, `split_seed`)."""

    def __init__(self, name: str, domain: str, subdir: str = "amazon_reviews", max_tokens: int = 512,
                 test_size: int = 400, split_seed: int = 0, **kwargs):
        super().__init__(name, subdir, **kwargs)
        if max_tokens < 1 or test_size < 2:
            raise LeptonError(f"{name}: max_tokens must be positive and test_size at least 2, got {max_tokens} and {test_size}")
        self.domain, self.max_tokens = _amazon_domain(domain), max_tokens
        self.test_size, self.split_seed = test_size, split_seed

    def _decode(self, split: str, root: Path, download: bool) -> InputArrays:
        from lepton_cli.data.readers.text import read_processed_acl

        reviews = read_processed_acl(root / self.subdir / self.domain, self.max_tokens)
        if self.test_size >= len(reviews):
            raise LeptonError(f"{self.name}: test_size={self.test_size} leaves no training reviews of {len(reviews)}")
        test = stratified_choice(reviews.labels, self.test_size, self.split_seed)
        keep = test if split == "test" else ~test
        return reviews.subset(keep, reviews.labels[keep], reviews.classes)


def stratified_choice(labels: np.ndarray, count: int, seed: int) -> np.ndarray:
    """A boolean mask of `count` items, each class in proportion to its share, drawn with `seed`."""
    rng = np.random.default_rng(seed)
    chosen = np.zeros(len(labels), dtype=bool)
    classes = np.unique(labels)
    for position, label in enumerate(classes):
        members = np.flatnonzero(labels == label)
        share = count - int(chosen.sum()) if position == len(classes) - 1 else round(count * len(members) / len(labels))
        chosen[rng.permutation(members)[:share]] = True
    return chosen


class SpokenDigits(_UncachedFileDomain):
    """Free Spoken Digit Dataset recordings (`<subdir>/recordings/{digit}_{speaker}_{take}.wav`) of
    some `speakers`, cut or padded to `seconds`: `audio` waveforms, classes 0..9.

    Splits by take, as the release does: `test_takes` (default 0–4, the official test set) and
    `train_takes` (default 5–49). `outdoor` (a mapping of `data.audio.outdoor_recording`'s
    arguments: snr_db, rt60_s, direct_to_reverb_db, seed) turns the clean recordings into noisy,
    reverberant ones, deterministically; the test split uses seed + 1, so its noise is not the
    training noise."""

    def __init__(self, name: str, speakers: list[str], subdir: str = "fsdd", train_takes: tuple[int, int] = (5, 49),
                 test_takes: tuple[int, int] = (0, 4), seconds: float = 1.0, sample_rate: int = 8000,
                 outdoor: dict | None = None, **kwargs):
        super().__init__(name, subdir, **kwargs)
        if not speakers:
            raise LeptonError(f"{name}: speakers must name at least one FSDD speaker")
        self.speakers, self.seconds, self.sample_rate = list(speakers), seconds, sample_rate
        self.takes = {"train": tuple(train_takes), "test": tuple(test_takes)}
        self.outdoor = dict(outdoor) if outdoor else None
        unknown = set(self.outdoor or {}) - OUTDOOR_KEYS
        if unknown:
            raise LeptonError(f"{name}: unknown outdoor setting(s) {', '.join(sorted(unknown))}; "
                              f"choose from {', '.join(sorted(OUTDOOR_KEYS))}")

    def _decode(self, split: str, root: Path, download: bool) -> InputArrays:
        from lepton_cli.data.audio import outdoor_recording
        from lepton_cli.data.readers.audio import read_fsdd

        waveforms, labels = read_fsdd(root / self.subdir / "recordings", self.speakers, self.takes[split],
                                      self.seconds, self.sample_rate)
        if self.outdoor:
            recipe = {**self.outdoor, "seed": int(self.outdoor.get("seed", 0)) + (split == "test")}
            waveforms = outdoor_recording(waveforms, sample_rate=self.sample_rate, **recipe)
        return InputArrays(waveforms, labels, list(DIGIT_CLASSES), "audio")
