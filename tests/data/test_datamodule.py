"""The DataModule: aligned, harmonised tensors; source and target batches drawn together."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from lepton_cli.data.arrays import ImageArrays
from lepton_cli.data.datamodule import UNLABELLED, DomainAdaptationData, labelled_subset, to_tensor
from lepton_cli.data.domains import Domain, SklearnDigits, SynthDigits
from lepton_cli.errors import LeptonError


class ArrayDomain(Domain):
    """A domain over arrays given in memory."""

    def __init__(self, name, classes, size=8, channels=1, count=40):
        super().__init__(name, cache=False)
        rng = np.random.default_rng(0)
        self.arrays = ImageArrays(rng.integers(0, 255, (count, size, size, channels), dtype=np.uint8),
                                  np.arange(count) % len(classes), list(classes))

    def _decode(self, split, root, download):
        return self.arrays


def make_data(source, target, **kwargs):
    data = DomainAdaptationData(source, target, root="/nonexistent", image_size=16, channels=1, batch_size=4,
                                steps_per_epoch=5, **kwargs)
    data.setup()
    return data


def test_batches_come_together_and_epoch_is_steps_long():
    data = make_data(ArrayDomain("a", "0123", count=40), ArrayDomain("b", "0123", count=7))
    loaders = data.train_dataloader()
    assert set(loaders) == {"source", "target"}
    assert len(loaders["source"]) == len(loaders["target"]) == 5  # the smaller set is repeated
    images, labels = next(iter(loaders["target"]))
    assert images.dtype == torch.uint8 and images.shape == (4, 1, 16, 16)
    assert (labels == UNLABELLED).all()  # unsupervised: target training labels never leave the DataModule


def test_classes_aligned_by_name_and_renumbered():
    data = make_data(ArrayDomain("a", ["cat", "dog", "frog"]), ArrayDomain("b", ["Dog", "monkey", "cat"]))
    assert data.classes == ["cat", "dog"]
    assert data.alignment.dropped_source == ["frog"] and data.alignment.dropped_target == ["monkey"]
    for key in ("source_test", "target_test"):
        assert set(data.splits[key][1].tolist()) == {0, 1}


def test_no_shared_class_is_a_clear_error():
    with pytest.raises(LeptonError, match="no class in common"):
        make_data(ArrayDomain("a", ["cat"]), ArrayDomain("b", ["car"]))


def test_labelled_subset_has_exactly_k_per_class():
    labels = torch.tensor([0] * 30 + [1] * 5 + [2] * 20)
    chosen = labels[labelled_subset(labels, 10, seed=0)]
    assert torch.bincount(chosen).tolist() == [10, 5, 10]


def test_to_tensor_harmonises_channels_and_size():
    rgb = ImageArrays(np.full((2, 8, 8, 3), [255, 0, 0], dtype=np.uint8), np.array([0, 1]), ["x", "y"])
    grey, _ = to_tensor(rgb, image_size=16, channels=1)
    assert grey.shape == (2, 1, 16, 16) and int(grey[0, 0, 8, 8]) == 76  # ITU-R 601 luma of pure red
    colour, _ = to_tensor(ImageArrays(grey.permute(0, 2, 3, 1).numpy(), np.array([0, 1]), ["x", "y"]), 16, 3)
    assert colour.shape == (2, 3, 16, 16) and torch.equal(colour[:, 0], colour[:, 2])


def test_synth_digits_are_deterministic_and_cached(tmp_path):
    domain = SynthDigits(train_size=50, test_size=20, seed=5)
    first = domain.load("train", tmp_path, cache_dir=tmp_path)
    cached = list(tmp_path.glob("synth_digits-train-*.npz"))
    assert len(cached) == 1
    again = SynthDigits(train_size=50, test_size=20, seed=5).load("train", tmp_path, cache_dir=tmp_path)
    assert np.array_equal(first.images, again.images) and np.array_equal(first.labels, again.labels)
    fresh = SynthDigits(train_size=50, test_size=20, seed=5).load("train", tmp_path, cache_dir=None)
    assert np.array_equal(first.images, fresh.images)  # the cache holds exactly what rendering gives
    test = domain.load("test", tmp_path, cache_dir=tmp_path)
    assert len(test) == 20 and not np.array_equal(first.images[:20], test.images)
    assert sorted(np.bincount(first.labels).tolist()) == [5] * 10  # balanced classes


def test_sklearn_digits_split_is_fixed_and_disjoint(tmp_path):
    train = SklearnDigits().load("train", tmp_path)
    test = SklearnDigits().load("test", tmp_path)
    assert len(train) + len(test) == 1797
    assert len(test) == round(1797 * 0.3)
    assert train.images.max() == 255 and train.images.shape[1:] == (8, 8, 1)
    rows = {row.tobytes() for row in train.images}
    assert sum(row.tobytes() in rows for row in test.images) < 5  # (a few digits are pixel-identical)


def test_fast_path_gathers_whole_batches_and_covers_the_data():
    data = make_data(ArrayDomain("a", "0123", count=20), ArrayDomain("b", "0123", count=20), fast_path="on")
    assert data.uses_fast_path()
    loader = data.train_dataloader()["source"]
    batches = list(loader)
    assert len(batches) == 5 and all(images.shape == (4, 1, 16, 16) for images, _ in batches)
    images, labels = data.splits["source_train"]
    seen = torch.cat([b[0] for b in batches])
    # every gathered image is one of the source images, with its own label
    for image, label in zip(seen, torch.cat([b[1] for b in batches])):
        match = (images == image).flatten(1).all(1).nonzero().flatten()
        assert len(match) >= 1 and int(labels[match[0]]) == int(label)
    assert len({tuple(i.flatten().tolist()) for i in seen}) == 20  # 20 draws without replacement: all distinct


def test_fast_path_modes():
    source, target = ArrayDomain("a", "01"), ArrayDomain("b", "01")
    assert not make_data(source, target, fast_path="off").uses_fast_path()
    assert make_data(source, target, fast_path="auto").uses_fast_path()  # one process, no workers
    with pytest.raises(LeptonError, match="auto, on or off"):
        make_data(source, target, fast_path="sometimes")


def image_set(images: torch.Tensor) -> set[bytes]:
    return {image.numpy().tobytes() for image in images}


def test_target_val_is_held_out_of_target_train_unlabelled_and_validated_instead_of_target_test():
    data = make_data(ArrayDomain("a", "0123", count=40), ArrayDomain("b", "0123", count=40), target_val_fraction=0.25)
    val_images, val_labels = data.splits["target_val"]
    train_images, _ = data.splits["target_train"]
    assert len(val_labels) == 10 and len(train_images) == 30
    assert (val_labels == UNLABELLED).all()  # the validators never get target labels
    assert not image_set(val_images) & image_set(train_images)  # never trained on
    assert data.val_splits == ("target_val", "source")
    loaders = data.val_dataloader()
    assert [len(loader.dataset) for loader in loaders] == [10, len(data.splits["source_test"][1])]
    assert data.test_splits == ("target", "source") and len(data.test_dataloader()[0].dataset) == 40
    # Only the oracle validates on target test; source_val comes before it.
    oracle = make_data(ArrayDomain("a", "0123", count=40), ArrayDomain("b", "0123", count=40),
                       source_val_fraction=0.1, validate_target_test=True)
    assert oracle.val_splits == ("target_val", "source", "source_val", "target")
    assert len(oracle.val_dataloader()[3].dataset) == 40
    off = make_data(ArrayDomain("a", "0123"), ArrayDomain("b", "0123"), target_val_fraction=0.0)
    assert "target_val" not in off.splits and off.val_splits == ("source",)
    with pytest.raises(LeptonError, match="target_val_fraction"):
        make_data(ArrayDomain("a", "0123"), ArrayDomain("b", "0123"), target_val_fraction=1.0)


def test_labelled_target_images_are_in_no_evaluation_split_when_the_target_has_no_test_split():
    # Like Office-31/Home or an image folder without test_path: the test split is the training images.
    target = ArrayDomain("office_like", "0123", count=40)
    data = make_data(ArrayDomain("a", "0123"), target, target_labels_per_class=2)
    labelled, labels = data.splits["target_train"]
    assert len(labels) == 8 and (labels >= 0).all()
    for split in ("target_test", "target_val"):
        assert not image_set(labelled) & image_set(data.splits[split][0]), f"a labelled image is in {split}"
    assert data.test_sizes == {"target": 40 - 8, "source": 40}  # what metrics.json records
    # Unsupervised: the whole target is the (transductive) test set, as in the literature.
    assert make_data(ArrayDomain("a", "0123"), target).test_sizes["target"] == 40
    with pytest.raises(LeptonError, match="labels_per_class"):
        make_data(ArrayDomain("a", "0123"), ArrayDomain("tiny", "0123", count=8), target_labels_per_class=5,
                  target_val_fraction=0.0)
