"""Decoders for the two releases of the Amazon reviews sentiment data (Blitzer, Dredze & Pereira,
ACL 2007), both text files of one review a line:

- SVMlight, as the DANN paper's authors publish their 5,000 bag-of-words features
  (`<domain>_train.svmlight`): `label index:count ...`, label 1 positive / -1 negative, indices
  zero-based → float32 count vectors (`features`);
- `processed_acl` (`<domain>/positive.review`, `negative.review`): `feature:count ...
  #label#:positive` with the unigrams and bigrams themselves → token keys (`tokens`): each feature
  repeated `count` times, as a stable 63-bit hash of its text (0 = padding), so that the
  vocabulary can be built per run from source and target train (`data.modality.Vocabulary`).

A line that breaks the format is one LeptonError naming the file and line.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np

from lepton_cli.data.arrays import InputArrays
from lepton_cli.data.readers.official_files import _corrupt, _missing_error, _read_bytes
from lepton_cli.errors import LeptonError

SENTIMENT_CLASSES = ["negative", "positive"]
SVMLIGHT_LABELS = {"-1": 0, "1": 1, "+1": 1, "0": 0}  # LIBSVM writers differ on the negative class
ACL_LABELS = {"#label#:negative": 0, "#label#:positive": 1}
KEY_MASK = (1 << 63) - 1


def _lines(path: Path) -> list[str]:
    try:
        return _read_bytes(path).decode("utf-8").splitlines()
    except UnicodeDecodeError as error:
        raise _corrupt(path, f"is not UTF-8 text (byte {error.start})") from None


def read_svmlight(path: Path, n_features: int) -> InputArrays:
    """One SVMlight file → `features` (N, n_features) float32 counts and labels 0 negative / 1 positive."""
    if not path.is_file():
        raise _missing_error("amazon", path.parent, [path.name], downloadable=False)
    rows, labels = [], []
    for number, line in enumerate(_lines(path), start=1):
        fields = line.split("#", 1)[0].split()  # SVMlight allows a trailing comment
        if not fields:
            continue
        if fields[0] not in SVMLIGHT_LABELS:
            raise _corrupt(path, f"line {number} starts with {fields[0][:20]!r}, not a label 1 or -1")
        try:
            pairs = [field.split(":") for field in fields[1:]]
            indices = np.array([int(index) for index, _ in pairs], dtype=np.int64)
            values = np.array([float(value) for _, value in pairs], dtype=np.float32)
        except ValueError:
            raise _corrupt(path, f"line {number} has an entry that is not index:value") from None
        outside = indices[(indices < 0) | (indices >= n_features)]
        if len(outside):
            raise _corrupt(path, f"line {number} has feature index {int(outside[0])} outside 0..{n_features - 1}")
        rows.append((indices, values))
        labels.append(SVMLIGHT_LABELS[fields[0]])
    features = np.zeros((len(rows), n_features), dtype=np.float32)
    for row, (indices, values) in enumerate(rows):
        features[row, indices] = values
    return InputArrays(features, np.array(labels, dtype=np.int64), list(SENTIMENT_CLASSES), "features")


def token_key(feature: str) -> int:
    """A stable nonzero 63-bit key of a feature's text (the same on every machine and run)."""
    key = int.from_bytes(hashlib.blake2b(feature.encode("utf-8"), digest_size=8).digest(), "little") & KEY_MASK
    return key or 1


def read_processed_acl(folder: Path, max_tokens: int) -> InputArrays:
    """`positive.review` and `negative.review` of one domain → `tokens` (N, max_tokens) int64 keys
    (each feature `count` times, cut at `max_tokens`, padded with 0), negatives first."""
    paths = [folder / "negative.review", folder / "positive.review"]
    missing = [path.name for path in paths if not path.is_file()]
    if missing:
        raise _missing_error("amazon_text", folder, missing, downloadable=False)
    keys: dict[str, int] = {}
    reviews, labels = [], []
    for path in paths:
        for number, line in enumerate(_lines(path), start=1):
            if not line.strip():
                continue
            *features, label = line.split()
            if label not in ACL_LABELS:
                raise _corrupt(path, f"line {number} ends with {label[:30]!r}, not #label#:positive or #label#:negative")
            tokens: list[int] = []
            for field in features:
                feature, _, count = field.rpartition(":")  # feature names hold no ':' (the release's README)
                if not feature or not count.isdigit():
                    raise _corrupt(path, f"line {number} has {field[:30]!r}, not feature:count")
                key = keys.get(feature) or keys.setdefault(feature, token_key(feature))
                # The count is data: never expand past max_tokens (a count of 10^11 would exhaust memory).
                tokens.extend([key] * min(int(count), max_tokens - len(tokens)))
            reviews.append(tokens[:max_tokens])
            labels.append(ACL_LABELS[label])
    token_keys = np.zeros((len(reviews), max_tokens), dtype=np.int64)
    for row, tokens in enumerate(reviews):
        token_keys[row, :len(tokens)] = tokens
    if not reviews:
        raise LeptonError(f"{folder} holds no reviews; put the processed_acl files positive.review and negative.review there")
    return InputArrays(token_keys, np.array(labels, dtype=np.int64), list(SENTIMENT_CLASSES), "tokens")
