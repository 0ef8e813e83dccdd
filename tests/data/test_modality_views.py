"""The text and audio views: evaluation is the plain normalised input, training augments it as
configured, and wrong inputs are one clear error."""

from __future__ import annotations

import pytest
import torch

from lepton_cli.data.augment import FeatureDropout, LogMelAugment, TokenDropout
from lepton_cli.errors import LeptonError


def test_feature_view_log1p_in_evaluation_and_word_dropout_in_training():
    counts = torch.tensor([[0.0, 1.0, 3.0, 7.0]]).repeat(2000, 1)
    view = FeatureDropout(dropout=0.25).eval()
    torch.testing.assert_close(view(counts), torch.log1p(counts))
    view.train()
    dropped = view(counts)
    kept = dropped[:, 1:] != 0
    assert kept.float().mean().item() == pytest.approx(0.75, abs=0.02)
    # A kept word keeps its value (no 1/(1-p) rescaling): the view is the same review with words left out.
    torch.testing.assert_close(dropped[:, 1:][kept], torch.log1p(counts[:, 1:])[kept])
    assert torch.equal(FeatureDropout(transform="binary").normalize(counts[:1]), torch.tensor([[0.0, 1.0, 1.0, 1.0]]))
    with pytest.raises(LeptonError, match="use augment=tokens"):
        view.normalize(torch.ones(2, 4, dtype=torch.int64))


def test_token_view_drops_tokens_to_padding_only_in_training():
    tokens = torch.arange(1, 101).repeat(50, 1)
    view = TokenDropout(dropout=0.3)
    assert torch.equal(view.eval()(tokens), tokens)
    dropped = view.train()(tokens)
    assert dropped.dtype == torch.int64 and ((dropped == 0) | (dropped == tokens)).all()
    assert (dropped == 0).float().mean().item() == pytest.approx(0.3, abs=0.03)
    with pytest.raises(LeptonError, match="integer ids"):
        view.normalize(tokens.float())


def test_audio_view_is_a_standardised_log_mel_and_the_strong_view_masks_it():
    torch.manual_seed(0)
    waveforms = torch.randn(8, 2000) * 0.1
    plain = LogMelAugment(n_mels=20).eval()(waveforms)
    assert plain.shape == (8, 1, 20, 26)
    assert plain.mean(dim=(1, 2, 3)).abs().max() < 1e-4 and (plain.std(dim=(1, 2, 3)) - 1).abs().max() < 1e-3
    strong = LogMelAugment(n_mels=20, time_masks=2, time_mask=5, freq_masks=1, freq_mask=4).train()
    masked = strong(waveforms)
    # Masked bins are exactly 0; whole frames (all bands) or whole bands (all frames) of them.
    zero_frames = (masked == 0).all(dim=2).squeeze(1)  # (batch, frames)
    zero_bands = (masked == 0).all(dim=3).squeeze(1)  # (batch, bands)
    assert zero_frames.sum(dim=1).max() <= 10 and zero_bands.sum(dim=1).max() <= 4
    assert zero_frames.any() and zero_bands.any()
    unmasked = ~(zero_frames.unsqueeze(1) | zero_bands.unsqueeze(2))
    torch.testing.assert_close(masked.squeeze(1)[unmasked], plain.squeeze(1)[unmasked])


def test_audio_weak_view_shifts_the_waveform_in_time():
    view = LogMelAugment(shift=0.2).train()
    waveforms = torch.zeros(64, 1000)
    waveforms[:, 500] = 1.0
    shifted = view._shift(waveforms)
    positions = shifted.argmax(dim=1)
    assert (shifted.sum(dim=1) == 1).all() and ((positions - 500).abs() <= 200).all() and (positions != 500).any()
    with pytest.raises(LeptonError, match="shift must lie in"):
        LogMelAugment(shift=1.5)
