"""Text and speech data: the readers return exactly what the fake files in the real formats hold,
broken files are one line, the outdoor recipe is deterministic, the mel filter bank is right, the
vocabulary comes from training data only, and one run never mixes modalities."""

from __future__ import annotations

import struct

import numpy as np
import pytest
import torch

from lepton_cli.data.arrays import InputArrays
from lepton_cli.data.audio import hz_to_mel, log_mel, mel_filter_bank, mel_to_hz, outdoor_recording
from lepton_cli.data.datamodule import UNLABELLED, DomainAdaptationData
from lepton_cli.data.modality import Vocabulary, check_components, one_modality
from lepton_cli.data.readers.audio import read_wav
from lepton_cli.data.readers.text import read_processed_acl, read_svmlight, token_key
from lepton_cli.data.text_and_speech import AmazonBagOfWords, AmazonTokens, SpokenDigits
from lepton_cli.errors import LeptonError
from tests.data.test_datamodule import ArrayDomain
from tests.data.text_audio_fakes import (
    FAKE_FEATURES,
    FAKE_SPEAKERS,
    spoken_digit,
    wav_bytes_file,
    write_amazon_dann,
    write_amazon_reviews,
    write_fsdd,
)


# ---- text ---------------------------------------------------------------------------------------
def test_svmlight_counts_and_labels_come_back_exactly(tmp_path):
    written = write_amazon_dann(tmp_path)
    domain = AmazonBagOfWords("amazon_books", "books", n_features=FAKE_FEATURES)
    for split in ("train", "test"):
        arrays = domain.load(split, tmp_path)
        dense, labels = written[("books", split)]
        assert arrays.modality == "features" and arrays.classes == ["negative", "positive"]
        np.testing.assert_array_equal(arrays.inputs, dense)
        np.testing.assert_array_equal(arrays.labels, labels)


@pytest.mark.parametrize(("line", "problem"), [
    ("2 0:1 3:2", "not a label 1 or -1"),
    ("1 0:1 three:2", "not index:value"),
    (f"-1 0:1 {FAKE_FEATURES}:2", f"feature index {FAKE_FEATURES} outside"),
])
def test_a_broken_svmlight_line_is_one_error_naming_file_and_line(tmp_path, line, problem):
    path = tmp_path / "books_train.svmlight"
    path.write_text("1 0:1\n" + line + "\n")
    with pytest.raises(LeptonError, match=problem) as error:
        read_svmlight(path, FAKE_FEATURES)
    assert "line 2" in str(error.value) and str(path) in str(error.value) and "\n" not in str(error.value)


def test_missing_amazon_files_say_where_to_put_them(tmp_path):
    with pytest.raises(LeptonError, match="missing books_train.svmlight"):
        AmazonBagOfWords("amazon_books", "books").load("train", tmp_path)
    with pytest.raises(LeptonError, match="must be one of books, dvd"):
        AmazonBagOfWords("amazon_toys", "toys")


def test_processed_acl_tokens_repeat_each_feature_by_its_count_and_split_like_blitzer(tmp_path):
    written = write_amazon_reviews(tmp_path)
    arrays = read_processed_acl(tmp_path / "amazon_reviews" / "books", max_tokens=24)
    assert arrays.modality == "tokens" and len(arrays) == 50
    negatives = [features for features, positive in written["books"] if not positive]
    first = negatives[0]
    expected = sorted(token_key(word) for word, count in first.items() for _ in range(count))
    row = arrays.inputs[0]
    assert sorted(row[row != 0].tolist()) == expected and arrays.labels[0] == 0
    domain = AmazonTokens("amazon_text_books", "books", max_tokens=24, test_size=10)
    train, test = domain.load("train", tmp_path), domain.load("test", tmp_path)
    assert (len(train), len(test)) == (40, 10) and np.bincount(test.labels).tolist() == [5, 5]
    # No review in both splits: every review is unique by its domain-only word plus random words.
    assert not {r.tobytes() for r in train.inputs} & {r.tobytes() for r in test.inputs}


def test_processed_acl_bad_label_is_one_line(tmp_path):
    folder = tmp_path / "books"
    folder.mkdir()
    (folder / "positive.review").write_text("good:1 #label#:positive\n")
    (folder / "negative.review").write_text("bad:1 #label#:neutral\n")
    with pytest.raises(LeptonError, match=r"negative.review.*line 1 ends with '#label#:neutral'"):
        read_processed_acl(folder, max_tokens=8)


def test_vocabulary_comes_from_training_keys_only_and_maps_the_rest_to_padding():
    vocabulary = Vocabulary.fit([np.array([[5, 5, 9, 0]]), np.array([[9, 7, 0, 0]])], min_count=2)
    assert len(vocabulary) == 3  # padding + {5, 9}; 7 occurs once
    np.testing.assert_array_equal(vocabulary.encode(np.array([[9, 5, 7, 11, 0]])), [[2, 1, 0, 0, 0]])


def test_token_data_module_builds_its_vocabulary_without_the_test_splits(tmp_path):
    write_amazon_reviews(tmp_path, domains=("books", "dvd"))
    source = AmazonTokens("amazon_text_books", "books", max_tokens=24, test_size=10)
    target = AmazonTokens("amazon_text_dvd", "dvd", max_tokens=24, test_size=10)
    data = DomainAdaptationData(source, target, root=str(tmp_path), batch_size=4, steps_per_epoch=2)
    data.setup()
    assert data.modality == "tokens"
    train_ids = set(torch.cat([data.splits["source_train"][0], data.splits["target_train"][0]]).unique().tolist())
    assert data.input_dim == max(train_ids) + 1  # ids 0..V-1, all of them used by the training data
    inputs, labels = next(iter(data.train_dataloader()["target"]))
    assert inputs.dtype == torch.int64 and (labels == UNLABELLED).all()


# ---- speech -------------------------------------------------------------------------------------
def test_fsdd_reads_the_chosen_speakers_and_takes_as_fixed_length_waveforms(tmp_path):
    write_fsdd(tmp_path)
    domain = SpokenDigits("fsdd_a", speakers=["bob"], train_takes=(2, 5), test_takes=(0, 1), seconds=0.3)
    train, test = domain.load("train", tmp_path), domain.load("test", tmp_path)
    assert train.modality == "audio" and train.inputs.shape == (40, 2400) and test.inputs.shape == (20, 2400)
    assert np.bincount(train.labels).tolist() == [4] * 10
    # 0.25 s recordings in a 0.3 s window: the samples, then zeros.
    digit = int(train.labels[0])
    expected = spoken_digit(digit, FAKE_SPEAKERS.index("bob"), 2).astype(np.float32) / 32768
    np.testing.assert_array_equal(train.inputs[0, :2000], expected)
    assert not train.inputs[0, 2000:].any()
    with pytest.raises(LeptonError, match="no recordings of speaker"):
        SpokenDigits("fsdd_x", speakers=["zed"]).load("train", tmp_path)


def pcm_float_wav(path):
    """A valid RIFF/WAVE header with format code 3 (IEEE float): not PCM."""
    data = np.zeros(8, dtype="<f4").tobytes()
    fmt = struct.pack("<HHIIHH", 3, 1, 8000, 32000, 4, 32)
    path.write_bytes(b"RIFF" + struct.pack("<I", 4 + 8 + len(fmt) + 8 + len(data)) + b"WAVE" + b"fmt "
                     + struct.pack("<I", len(fmt)) + fmt + b"data" + struct.pack("<I", len(data)) + data)


@pytest.mark.parametrize(("make", "problem"), [
    (lambda p: p.write_bytes(b"not a wav at all, just text"), "is not a PCM WAV file"),
    (pcm_float_wav, "is not a PCM WAV file"),
    (lambda p: p.write_bytes(b"RIFF\x24\x00"), "cut short|not a PCM WAV"),
    (lambda p: wav_bytes_file(p, np.zeros(16), channels=2), "2-channel 16-bit"),
    (lambda p: wav_bytes_file(p, np.zeros(16), rate=16000), "at 16000 Hz"),
])
def test_a_corrupt_or_non_pcm_wav_is_one_line(tmp_path, make, problem):
    path = tmp_path / "3_bob_0.wav"
    make(path)
    with pytest.raises(LeptonError, match=problem) as error:
        read_wav(path, 8000)
    assert "\n" not in str(error.value)


def test_truncated_wav_data_is_refused(tmp_path):
    path = tmp_path / "3_bob_0.wav"
    wav_bytes_file(path, np.arange(100))
    path.write_bytes(path.read_bytes()[:-50])
    with pytest.raises(LeptonError, match="holds 75 samples but its header says 100"):
        read_wav(path, 8000)


def test_outdoor_recipe_is_deterministic_and_hits_its_snr():
    clean = np.stack([spoken_digit(d, 0, 0, seconds=0.5) for d in range(4)]).astype(np.float32) / 32768
    first = outdoor_recording(clean, snr_db=5.0, rt60_s=0.2, seed=3)
    assert first.dtype == np.float32 and first.tobytes() == outdoor_recording(clean, snr_db=5.0, rt60_s=0.2, seed=3).tobytes()
    assert first.tobytes() != outdoor_recording(clean, snr_db=5.0, rt60_s=0.2, seed=4).tobytes()
    # Clip i's noise does not depend on the other clips.
    assert first[1:2].tobytes() != outdoor_recording(clean[1:2], snr_db=5.0, rt60_s=0.2, seed=3).tobytes()
    assert first[0:1].tobytes() == outdoor_recording(clean[0:1], snr_db=5.0, rt60_s=0.2, seed=3).tobytes()
    # Without reverberation (rt60 → one sample) the residual is the noise, at the asked SNR.
    dry = outdoor_recording(clean, snr_db=10.0, rt60_s=1 / 8000, seed=0)
    snr = 10 * np.log10(np.mean(clean[clean != 0] ** 2) / np.mean((dry - clean) ** 2))
    assert snr == pytest.approx(10.0, abs=0.5)


def test_noisy_domain_is_the_same_bytes_on_every_load_and_differs_from_clean(tmp_path):
    write_fsdd(tmp_path, speakers=("bob",), takes=2, digits=range(3))
    noisy = SpokenDigits("noisy", ["bob"], train_takes=(0, 1), seconds=0.25, outdoor={"snr_db": 0.0, "seed": 7})
    again = SpokenDigits("noisy", ["bob"], train_takes=(0, 1), seconds=0.25, outdoor={"snr_db": 0.0, "seed": 7})
    clean = SpokenDigits("clean", ["bob"], train_takes=(0, 1), seconds=0.25)
    assert noisy.load("train", tmp_path).inputs.tobytes() == again.load("train", tmp_path).inputs.tobytes()
    assert noisy.load("train", tmp_path).inputs.tobytes() != clean.load("train", tmp_path).inputs.tobytes()
    with pytest.raises(LeptonError, match="unknown outdoor setting"):
        SpokenDigits("noisy", ["bob"], outdoor={"snr": 5})


def test_mel_filter_bank_matches_a_hand_computation_and_its_known_properties():
    bank = mel_filter_bank(n_mels=3, n_fft=16, sample_rate=8000)  # bins every 500 Hz, 0..4000
    assert bank.shape == (9, 3)
    points = mel_to_hz(np.linspace(0, hz_to_mel(4000), 5))  # 5 mel-spaced edges
    # Bin 2 (1000 Hz) on the first triangle (points[0]..points[2]), by hand:
    low, centre, high = points[0], points[1], points[2]
    by_hand = max(0.0, min((1000 - low) / (centre - low), (high - 1000) / (high - centre)))
    assert bank[2, 0].item() == pytest.approx(by_hand, rel=1e-5)
    assert hz_to_mel(1000) == pytest.approx(1000, abs=0.5)  # the mel scale's anchor: 1000 Hz is 1000 mel
    wide = mel_filter_bank(n_mels=40, n_fft=256, sample_rate=8000)
    assert (wide >= 0).all() and (wide <= 1).all() and (wide.max(dim=0).values > 0.5).all()
    peaks = wide.argmax(dim=0)
    assert (peaks[1:] >= peaks[:-1]).all()  # centres rise with the band index


def test_log_mel_of_a_tone_peaks_in_the_band_of_its_frequency():
    bank = mel_filter_bank(40, 256, 8000)
    time = torch.arange(8000) / 8000
    spectrogram = log_mel(torch.sin(2 * torch.pi * 1000 * time).unsqueeze(0), bank, torch.hann_window(256), 80)
    assert spectrogram.shape == (1, 40, 101)
    band = spectrogram[0].mean(dim=1).argmax().item()
    assert bank[32, band] > 0.5  # STFT bin 32 is 1000 Hz (8000 / 256 per bin)


# ---- one modality per run -----------------------------------------------------------------------
class FeatureDomain(ArrayDomain):
    def __init__(self, name):
        super().__init__(name, "01", count=10)
        self.arrays = InputArrays(np.ones((10, 5), dtype=np.float32), np.arange(10) % 2, ["0", "1"], "features")


def test_mixing_modalities_in_one_run_is_refused_with_one_line():
    data = DomainAdaptationData(ArrayDomain("digits_like", "01", count=10), FeatureDomain("reviews"), root="/nonexistent")
    with pytest.raises(LeptonError, match="source digits_like is image data but target reviews is features") as error:
        data.setup()
    assert "\n" not in str(error.value)
    with pytest.raises(LeptonError, match="augment.weak is made for image inputs but the data is audio; add augment=audio"):
        check_components("audio", {"augment.weak": "lepton_cli.data.augment.BatchAugment"})
    with pytest.raises(LeptonError, match="student is made for tokens"):
        check_components("features", {"student": "lepton_cli.models.text.BagOfTokens"})
    check_components("image", {"student": "lepton_cli.models.backbones.SmallCNN"})  # undeclared: an image backbone
    assert one_modality({"source_train": FeatureDomain("a").arrays}, "a", "b") == "features"


def test_lepton_list_source_shows_the_new_data_sets_with_their_modality():
    from lepton_cli.config import group_options

    options = group_options("source")
    for name, modality in [("amazon/books", "text (bag-of-words)"), ("amazon_text/kitchen", "text (tokens)"),
                           ("fsdd/speakers_a", "audio"), ("fsdd/noisy", "audio")]:
        assert options[name].startswith(modality + ":"), options[name]
    assert "fsdd/_recordings" not in options


def test_wav_header_claiming_gigabytes_is_refused_without_reading_them(tmp_path):
    path = tmp_path / "3_bob_0.wav"
    wav_bytes_file(path, np.arange(100))
    raw = bytearray(path.read_bytes())
    data_at = raw.index(b"data") + 4
    raw[data_at:data_at + 4] = struct.pack("<I", 0xFFFFFFF0)  # ~4 GiB of samples claimed, 200 bytes there
    path.write_bytes(bytes(raw))
    with pytest.raises(LeptonError, match="holds 100 samples but its header says"):
        read_wav(path, 8000)


def test_processed_acl_huge_count_is_cut_at_max_tokens_and_blank_lines_are_skipped(tmp_path):
    folder = tmp_path / "books"
    folder.mkdir()
    (folder / "positive.review").write_text("good:99999999999 #label#:positive\n\n")
    (folder / "negative.review").write_text("bad:2 #label#:negative\n")
    arrays = read_processed_acl(folder, max_tokens=8)
    assert arrays.labels.tolist() == [0, 1]
    assert (arrays.inputs[1] == token_key("good")).all() and (arrays.inputs[0] != 0).sum() == 2
