"""Speech features and the synthetic "outdoor" recording recipe.

- `mel_filter_bank` and `log_mel`: log-mel spectrograms with `torch.stft` (there is no torchaudio
  wheel for our torch). The filters are the HTK mel scale's triangles (`torchaudio`'s and
  `librosa(htk=True)`'s defaults without area normalisation): peak 1 at each centre frequency.
- `outdoor_recording`: a clean recording as if made outdoors with a cheap microphone in a
  reverberant place: convolved with a synthetic room impulse response (exponentially decaying
  noise, the statistical model of late reverberation; Polack 1988), plus additive pink noise at a
  chosen signal-to-noise ratio. Deterministic: the same seed and clips give the same bytes.
"""

from __future__ import annotations

import numpy as np
import torch

LOG_FLOOR = 1e-6  # added before the log: silence (the zero padding) stays finite
DECAY_60_DB = np.log(1000.0)  # amplitude falls by 60 dB (a factor 1000) over one RT60


def hz_to_mel(frequency: np.ndarray | float) -> np.ndarray:
    return 2595.0 * np.log10(1.0 + np.asarray(frequency, dtype=np.float64) / 700.0)


def mel_to_hz(mel: np.ndarray | float) -> np.ndarray:
    return 700.0 * (10.0 ** (np.asarray(mel, dtype=np.float64) / 2595.0) - 1.0)


def mel_filter_bank(n_mels: int, n_fft: int, sample_rate: int, f_min: float = 0.0, f_max: float | None = None) -> torch.Tensor:
    """(n_fft // 2 + 1, n_mels): column m is a triangle over the STFT bins, rising from mel point
    m to 1 at point m + 1 and falling to 0 at point m + 2, the n_mels + 2 points equally spaced on
    the mel scale between `f_min` and `f_max` (default: Nyquist)."""
    f_max = sample_rate / 2 if f_max is None else f_max
    if not 0 <= f_min < f_max <= sample_rate / 2 or n_mels < 1:
        raise ValueError(f"need 0 <= f_min < f_max <= {sample_rate / 2} and n_mels >= 1, got {f_min}, {f_max}, {n_mels}")
    bins = np.linspace(0, sample_rate / 2, n_fft // 2 + 1)
    points = mel_to_hz(np.linspace(hz_to_mel(f_min), hz_to_mel(f_max), n_mels + 2))
    lower, centre, upper = points[:-2], points[1:-1], points[2:]
    rising = (bins[:, None] - lower) / (centre - lower)
    falling = (upper - bins[:, None]) / (upper - centre)
    return torch.from_numpy(np.clip(np.minimum(rising, falling), 0, None)).float()


def log_mel(waveforms: torch.Tensor, filter_bank: torch.Tensor, window: torch.Tensor, hop_length: int) -> torch.Tensor:
    """(B, T) waveforms → (B, n_mels, frames) log mel power, frames = T // hop_length + 1."""
    spectrum = torch.stft(waveforms, n_fft=len(window), hop_length=hop_length, window=window, center=True,
                          return_complex=True)
    power = spectrum.real.square() + spectrum.imag.square()  # (B, freqs, frames)
    return torch.log(torch.einsum("bft,fm->bmt", power, filter_bank) + LOG_FLOOR)


def fixed_length(samples: np.ndarray, length: int) -> np.ndarray:
    """The middle `length` samples of a longer recording; a shorter one padded with zeros at the end."""
    if len(samples) >= length:
        start = (len(samples) - length) // 2
        return samples[start:start + length]
    return np.pad(samples, (0, length - len(samples)))


def pink_noise(rng: np.random.Generator, length: int) -> np.ndarray:
    """Unit-variance noise with power falling as 1/f (white noise shaped in the frequency domain):
    wind and traffic are closer to this than to white noise."""
    spectrum = np.fft.rfft(rng.standard_normal(length))
    frequencies = np.arange(len(spectrum), dtype=np.float64)
    spectrum /= np.sqrt(np.maximum(frequencies, 1.0))
    noise = np.fft.irfft(spectrum, n=length)
    return noise / max(noise.std(), 1e-12)


def room_impulse_response(rng: np.random.Generator, rt60_s: float, sample_rate: int, direct_to_reverb_db: float) -> np.ndarray:
    """A direct path (1 at t = 0) followed by Gaussian noise decaying by 60 dB over `rt60_s`, its
    energy `direct_to_reverb_db` below the direct path's."""
    length = max(1, int(rt60_s * sample_rate))
    time = np.arange(length) / sample_rate
    tail = rng.standard_normal(length) * np.exp(-DECAY_60_DB * time / rt60_s)
    tail[0] = 0.0
    tail *= np.sqrt(10 ** (-direct_to_reverb_db / 10) / max(np.sum(tail**2), 1e-12))
    tail[0] = 1.0
    return tail


def outdoor_recording(waveforms: np.ndarray, snr_db: float, rt60_s: float = 0.3, direct_to_reverb_db: float = 0.0,
                      seed: int = 0, sample_rate: int = 8000) -> np.ndarray:
    """Each clean waveform of (N, T) float in [-1, 1] reverberated and buried in pink noise at
    `snr_db` (signal power measured on the reverberant speech, over its non-silent samples), clipped
    to [-1, 1], float32. Clip i draws from its own generator seeded by (`seed`, i), so a clip's noise
    does not depend on the others."""
    noisy = np.empty_like(waveforms, dtype=np.float32)
    length = waveforms.shape[1]
    for index, clean in enumerate(np.asarray(waveforms, dtype=np.float64)):
        rng = np.random.default_rng([seed, index])
        response = room_impulse_response(rng, rt60_s, sample_rate, direct_to_reverb_db)
        size = length + len(response) - 1
        reverberant = np.fft.irfft(np.fft.rfft(clean, size) * np.fft.rfft(response, size), size)[:length]
        active = np.abs(clean) > 1e-4
        signal_power = np.mean(reverberant[active] ** 2) if active.any() else 0.0
        noise = pink_noise(rng, length) * np.sqrt(signal_power / 10 ** (snr_db / 10))
        noisy[index] = np.clip(reverberant + noise, -1.0, 1.0)
    return noisy
