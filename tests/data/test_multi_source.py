"""Several source domains (`source=multi`): classes matched across all of them, the domain index
carried with each batch, balanced sampling, training-domain validation held out from every domain,
the target left out of the sources, data-set files read as data, and PACS/Office-Home as domains."""

from __future__ import annotations

import pytest
import torch

from lepton_cli.data.datamodule import DomainAdaptationData
from lepton_cli.data.multi_source import MultiSourceDomain
from lepton_cli.errors import LeptonError
from tests.data.fake_files import write_image_folder, write_office_home
from tests.data.test_datamodule import ArrayDomain
from tests.helpers.cli import run_cli


def make_data(source, target, **kwargs) -> DomainAdaptationData:
    settings = {"batch_size": 4, "steps_per_epoch": 5, **kwargs}
    data = DomainAdaptationData(source, target, root="/nonexistent", image_size=16, channels=1, **settings)
    data.setup()
    return data


def marked(name: str, count: int, mark: int) -> ArrayDomain:
    """Images of domain `mark` have values in [64·mark, 64·mark + 63], also after resizing (a convex filter)."""
    domain = ArrayDomain(name, "01", count=count)
    domain.arrays.images = domain.arrays.images // 4 + 64 * mark
    return domain


def pooled(*domains, **kwargs) -> MultiSourceDomain:
    return MultiSourceDomain(domains=list(domains), **kwargs)


def test_classes_are_those_every_source_shares_and_each_image_keeps_its_domain():
    source = pooled(ArrayDomain("a", ["cat", "dog", "frog"], count=30), ArrayDomain("b", ["Dog", "bird", "cat"], count=12))
    data = make_data(source, ArrayDomain("t", ["cat", "dog", "fish"]))
    assert data.classes == ["cat", "dog"]
    arrays = source.load("train", "/nonexistent")
    assert arrays.domain_names == ["a", "b"] and arrays.classes == ["cat", "dog"]
    labels = data.splits["source_test"][1]
    domains = data.source_domains["source_test"]
    # a: 30 images over 3 classes (frog dropped: 20 left); b: 12 over 3 (bird dropped: 8 left)
    assert domains.bincount().tolist() == [20, 8] and len(labels) == 28
    # b's "Dog" is class 1 as a's "dog": labels renumbered by name, per domain
    b_labels = ArrayDomain("b", ["Dog", "bird", "cat"], count=12).arrays.labels
    expected = torch.tensor([{0: 1, 2: 0}[int(label)] for label in b_labels if label != 1])
    assert torch.equal(labels[domains == 1], expected)


def test_sources_without_two_shared_classes_is_a_clear_error():
    with pytest.raises(LeptonError, match="share 1 class"):
        make_data(pooled(ArrayDomain("a", ["cat", "dog"]), ArrayDomain("b", ["cat", "car"])), ArrayDomain("t", ["cat", "dog"]))
    with pytest.raises(LeptonError, match="at least 2 source domains"):
        pooled(ArrayDomain("a", "01"))


@pytest.mark.parametrize("fast_path", ["on", "off"])
def test_batches_are_balanced_and_carry_the_domain_index_beside_the_usual_source_pair(fast_path):
    source = pooled(marked("a", 40, 0), marked("b", 6, 1), marked("c", 20, 2))
    data = make_data(source, ArrayDomain("t", "01"), batch_size=7, fast_path=fast_path)
    loaders = data.train_dataloader()
    assert set(loaders) == {"source", "target"} and len(loaders["source"]) == 5
    for raw in loaders["source"]:
        batch = data.on_before_batch_transfer({"source": raw, "target": ("t", "t")}, 0)
        images, labels = batch["source"]  # what every existing method reads, unchanged
        counts = batch["source_domain"].bincount(minlength=3)
        assert images.shape[0] == labels.shape[0] == 7 and sorted(counts.tolist()) == [2, 2, 3]
        # the index is the domain the image came from
        assert torch.equal(images.flatten(1).max(1).values // 64, batch["source_domain"])
    # balanced=false: the pool is sampled uniformly (the small domain is rarer than a third)
    unbalanced = make_data(pooled(*source.domains, balanced=False), ArrayDomain("t", "01"), batch_size=7,
                           steps_per_epoch=40, fast_path=fast_path)
    counts = torch.cat([raw[2] for raw in unbalanced.train_dataloader()["source"]]).bincount(minlength=3)
    assert counts[1] < counts[0] and counts.sum() == 280


def test_training_domain_validation_is_held_out_from_each_source_domain():
    source = pooled(marked("a", 40, 0), marked("b", 10, 1))
    data = make_data(source, ArrayDomain("t", "01"), source_val_fraction=0.2)
    assert data.source_domains["source_val"].bincount().tolist() == [8, 2]  # 20 % of each, not of the pool
    kept = data.train_indices["source_train"]
    assert data.source_domains["source_train"][kept].bincount().tolist() == [32, 8]
    val_images = {image.numpy().tobytes() for image in data.splits["source_val"][0]}
    train_images = {image.numpy().tobytes() for image in data.splits["source_train"][0][kept]}
    assert not val_images & train_images


def test_the_target_is_left_out_of_the_sources():
    source = pooled(ArrayDomain("a", "01"), ArrayDomain("b", "01"), ArrayDomain("t", "01"))
    assert source.leave_out("t").domain_names == ["a", "b"]
    assert source.leave_out("elsewhere") is source


def test_domains_are_lepton_data_set_files_read_as_data():
    source = MultiSourceDomain(domains=["synth_digits", "digits"], settings={"synth_digits": {"train_size": 30}})
    assert [type(d).__name__ for d in source.domains] == ["SynthDigits", "SklearnDigits"]
    assert source.domains[0].sizes["train"] == 30
    with pytest.raises(LeptonError, match="not one of Lepton's data sets"):
        MultiSourceDomain(domains=["mnist", "usps"], settings={"mnist": {"_target_": "os.system"}})
    with pytest.raises(LeptonError, match="synth_digits.*check source.settings.synth_digits"):
        MultiSourceDomain(domains=["synth_digits", "digits"], settings={"synth_digits": {"trainsize": 30}})
    with pytest.raises(LeptonError, match="source.settings.synth_digits must be a mapping"):
        MultiSourceDomain(domains=["synth_digits", "digits"], settings={"synth_digits": 30})
    with pytest.raises(LeptonError, match="source.settings must map"):
        MultiSourceDomain(domains=["synth_digits", "digits"], settings=[1, 2])
    for option in ("../config", "multi", "nonexistent"):
        with pytest.raises(LeptonError, match="unknown data set"):
            MultiSourceDomain(domains=[option, "usps"])


def test_pacs_and_office_home_domains_pool_from_their_release_folders(tmp_path):
    for domain in ("photo", "sketch"):  # DomainBed's PACS layout: <root>/pacs/<domain>/<class>/*.jpg
        written = write_image_folder(tmp_path / "pacs" / domain, corrupt=False)
    write_office_home(tmp_path, "Art")
    source = MultiSourceDomain(domains=["pacs/photo", "pacs/sketch", "office_home/Art"],
                               settings={name: {"image_size": 16} for name in ("pacs/photo", "pacs/sketch", "office_home/Art")})
    arrays = source.load("train", tmp_path)
    assert source.domain_names == ["pacs_photo", "pacs_sketch", "office_home_art"]
    assert arrays.classes == written["classes"] and arrays.images.shape[1:] == (16, 16, 3)
    assert arrays.domain_index.tolist() == sorted(arrays.domain_index.tolist())
    assert torch.tensor(arrays.domain_index).bincount().tolist() == [len(written["labels"])] * 3


def test_cfg_job_and_list_show_the_sources():
    shown = run_cli("train", "source=multi", "source.domains=[mnist,usps]", "target=digits", "--cfg", "job")
    assert shown.returncode == 0, shown.stderr
    assert "MultiSourceDomain" in shown.stdout and "- mnist\n  - usps" in shown.stdout
    listed = run_cli("list", "source")
    assert listed.returncode == 0 and "multi" in listed.stdout and "pacs/photo" in listed.stdout


def test_text_sources_pool_with_their_domain_index_and_tokens_padded_to_the_longest(tmp_path):
    from lepton_cli.data.text_and_speech import AmazonBagOfWords, AmazonTokens
    from tests.data.text_audio_fakes import FAKE_FEATURES, write_amazon_dann, write_amazon_reviews

    write_amazon_dann(tmp_path, domains=("books", "dvd", "kitchen"))
    words = pooled(*(AmazonBagOfWords(f"amazon_{d}", d, n_features=FAKE_FEATURES) for d in ("books", "dvd")))
    data = DomainAdaptationData(words, AmazonBagOfWords("amazon_kitchen", "kitchen", n_features=FAKE_FEATURES),
                                root=tmp_path, batch_size=8, steps_per_epoch=2, source_val_fraction=0.25)
    data.setup()
    assert data.modality == "features" and data.input_dim == FAKE_FEATURES
    assert data.source_domains["source_test"].bincount().tolist() == [32, 32]
    val_domains = data.source_domains["source_val"]
    assert val_domains.bincount().tolist() == [12, 12]  # a quarter of each domain's 48 held out
    raw = next(iter(data.train_dataloader()["source"]))
    batch = data.on_before_batch_transfer({"source": raw, "target": ("t", "t")}, 0)
    assert batch["source"][0].shape == (8, FAKE_FEATURES)
    assert batch["source_domain"].bincount(minlength=2).tolist() == [4, 4]  # balanced, as for images

    write_amazon_reviews(tmp_path, domains=("books", "dvd"))
    tokens = pooled(AmazonTokens("amazon_text_books", "books", max_tokens=24, test_size=10),
                    AmazonTokens("amazon_text_dvd", "dvd", max_tokens=6, test_size=10)).load("train", tmp_path)
    assert tokens.modality == "tokens" and tokens.inputs.shape[1] == 24
    assert (tokens.inputs[tokens.domain_index == 1][:, 6:] == 0).all()  # padding, never a word


def test_pooling_sources_of_different_kinds_or_widths_is_one_line(tmp_path):
    from lepton_cli.data.text_and_speech import AmazonBagOfWords
    from tests.data.text_audio_fakes import FAKE_FEATURES, write_amazon_dann

    write_amazon_dann(tmp_path, domains=("books", "dvd"))
    books = AmazonBagOfWords("amazon_books", "books", n_features=FAKE_FEATURES)
    with pytest.raises(LeptonError, match="mixes modalities.*amazon_books: features.*a: image"):
        pooled(books, ArrayDomain("a", "01")).load("train", tmp_path)
    with pytest.raises(LeptonError, match=r"different widths \(amazon_books: 40, amazon_dvd: 50\)"):
        pooled(books, AmazonBagOfWords("amazon_dvd", "dvd", n_features=50)).load("train", tmp_path)


def test_mldg_runs_on_pooled_text_sources_from_the_command_line(tmp_path):
    from tests.data.text_audio_fakes import FAKE_FEATURES, write_amazon_dann

    write_amazon_dann(tmp_path, domains=("books", "dvd", "kitchen"))
    width = f"{{n_features: {FAKE_FEATURES}}}"
    result = run_cli("train", "source=multi", "source.domains=[amazon/books,amazon/dvd,amazon/kitchen]",
                     f"source.settings={{amazon_books: {width}, amazon_dvd: {width}}}", "target=amazon/kitchen",
                     f"target.n_features={FAKE_FEATURES}", "method=mldg", "augment=text", "student=text_mlp",
                     f"data.root={tmp_path}", "trainer.fast_dev_run=true", f"hydra.run.dir={tmp_path / 'run'}")
    assert result.returncode == 0, result.stderr[-2000:]
    assert "test_target" in result.stdout or (tmp_path / "run" / "metrics.json").is_file()
