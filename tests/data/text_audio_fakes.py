"""Writers of tiny fake text and speech data sets in their real on-disk formats: the DANN paper's
SVMlight files (`amazon_dann/`), `processed_acl` review lines (`amazon_reviews/`) and 8 kHz 16-bit
mono PCM WAVs named as FSDD names them (`fsdd/recordings/`). The content carries a weak class
signal (a few words more frequent in one class; a digit-dependent tone) so that the files look like
data, but the tests only rely on the exact values written.
"""

from __future__ import annotations

import wave
from pathlib import Path

import numpy as np

FAKE_FEATURES = 40  # the fakes' SVMlight width; runs over them set source.n_features / target.n_features
FAKE_SPEAKERS = ("alice", "bob", "carol")
FAKE_RATE = 8000
FAKE_SECONDS = 0.25
TEXT_OVERRIDES_FOR = {  # key → overrides that make a run read the fakes under data.root
    "features": ["source=amazon/books", "target=amazon/dvd", f"source.n_features={FAKE_FEATURES}",
                 f"target.n_features={FAKE_FEATURES}", "augment=text", "student=text_mlp", "teacher=text_mlp"],
    "tokens": ["source=amazon_text/books", "target=amazon_text/dvd", "source.test_size=10", "target.test_size=10",
               "source.max_tokens=24", "target.max_tokens=24", "augment=tokens", "student=text_bag", "teacher=text_bag"],
}


def svmlight_line(label: int, features: dict[int, float]) -> str:
    return " ".join([str(label), *(f"{index}:{value:g}" for index, value in sorted(features.items()))])


def write_amazon_dann(root: Path, domains=("books", "dvd"), train: int = 48, test: int = 32, seed: int = 0) -> dict:
    """`<root>/amazon_dann/<domain>_{train,test}.svmlight`; returns {(domain, split): (dense counts, labels 0/1)}."""
    folder = root / "amazon_dann"
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    written = {}
    for domain in domains:
        for split, count in (("train", train), ("test", test)):
            labels = np.arange(count) % 2
            dense = np.zeros((count, FAKE_FEATURES), dtype=np.float32)
            lines = []
            for row, label in enumerate(labels):
                indices = rng.choice(FAKE_FEATURES, size=6, replace=False)
                indices[0] = label  # feature 0 marks negatives, feature 1 positives
                counts = {int(i): float(rng.integers(1, 4)) for i in indices}
                dense[row, list(counts)] = list(counts.values())
                lines.append(svmlight_line(1 if label else -1, counts))
            (folder / f"{domain}_{split}.svmlight").write_text("\n".join(lines) + "\n")
            written[(domain, split)] = (dense, labels)
    return written


def acl_line(features: dict[str, int], positive: bool) -> str:
    return " ".join([*(f"{word}:{count}" for word, count in features.items()),
                     f"#label#:{'positive' if positive else 'negative'}"])


def write_amazon_reviews(root: Path, domains=("books", "dvd"), per_class: int = 25, seed: int = 0) -> dict:
    """`<root>/amazon_reviews/<domain>/{positive,negative}.review`; returns {domain: [(features, positive)]}."""
    rng = np.random.default_rng(seed)
    words = [f"w{i}" for i in range(30)] + ["great", "awful", "not_good", "<num>_stars"]
    written = {}
    for domain in domains:
        folder = root / "amazon_reviews" / domain
        folder.mkdir(parents=True, exist_ok=True)
        written[domain] = []
        for positive in (False, True):
            lines = []
            for _ in range(per_class):
                chosen = rng.choice(len(words) - 4, size=5, replace=False)
                features = {words[i]: int(rng.integers(1, 3)) for i in chosen}
                features["great" if positive else "awful"] = 1
                features[f"{domain}_only"] = 1  # a word no other domain has
                lines.append(acl_line(features, positive))
                written[domain].append((features, positive))
            (folder / f"{'positive' if positive else 'negative'}.review").write_text("\n".join(lines) + "\n")
    return written


def wav_bytes_file(path: Path, samples: np.ndarray, rate: int = FAKE_RATE, channels: int = 1, width: int = 2) -> None:
    with wave.open(str(path), "wb") as wav:
        wav.setnchannels(channels)
        wav.setsampwidth(width)
        wav.setframerate(rate)
        wav.writeframes(samples.astype("<i2").tobytes() if width == 2 else samples.astype(np.uint8).tobytes())


def spoken_digit(digit: int, speaker: int, take: int, seconds: float = FAKE_SECONDS) -> np.ndarray:
    """int16 samples: a tone whose pitch says the digit, slightly different per speaker and take."""
    time = np.arange(int(seconds * FAKE_RATE)) / FAKE_RATE
    frequency = 300 + 150 * digit + 20 * speaker + 3 * take
    envelope = np.sin(np.pi * time / time[-1])
    return np.round(12000 * envelope * np.sin(2 * np.pi * frequency * time)).astype(np.int16)


def write_fsdd(root: Path, speakers=FAKE_SPEAKERS, takes: int = 6, digits=range(10)) -> Path:
    """`<root>/fsdd/recordings/{digit}_{speaker}_{take}.wav`, 16-bit mono PCM at 8 kHz; returns the folder."""
    folder = root / "fsdd" / "recordings"
    folder.mkdir(parents=True, exist_ok=True)
    for s, speaker in enumerate(speakers):
        for digit in digits:
            for take in range(takes):
                wav_bytes_file(folder / f"{digit}_{speaker}_{take}.wav", spoken_digit(digit, s, take))
    return folder


def fsdd_overrides(source: str = "fsdd/clean", target: str = "fsdd/noisy") -> list[str]:
    """A clean → noisy run over `write_fsdd`'s fakes: takes 0-1 test, 2-3 source train, 4-5 target train."""
    speakers = f"[{','.join(FAKE_SPEAKERS)}]"
    overrides = [f"source={source}", f"target={target}", "augment=audio", "student=audio_cnn", "teacher=audio_cnn",
                 # a smaller CNN and spectrogram than the defaults: the tests check plumbing, not accuracy
                 "student.channels=[4,8]", "teacher.channels=[4,8]", "augment.weak.n_mels=16", "augment.strong.n_mels=16",
                 "augment.strong.freq_mask=3"]
    for role, takes in (("source", "[2,3]"), ("target", "[4,5]")):
        overrides += [f"{role}.speakers={speakers}", f"{role}.train_takes={takes}", f"{role}.test_takes=[0,1]",
                      f"{role}.seconds={FAKE_SECONDS}"]
    return overrides


def modality_overrides(modality: str, root: Path) -> list[str]:
    """Overrides for a tiny run of `modality` (features, tokens or audio) over fakes written under `root`."""
    if modality == "features":
        write_amazon_dann(root)
    elif modality == "tokens":
        write_amazon_reviews(root)
    else:
        write_fsdd(root)
    overrides = fsdd_overrides() if modality == "audio" else TEXT_OVERRIDES_FOR[modality]
    return [*overrides, f"data.root={root}"]
