"""Decoders for spoken-digit recordings: PCM WAV files read with the standard library's `wave`.

The Free Spoken Digit Dataset (FSDD, Jackson et al., v1.0.10) names each file
`{digit}_{speaker}_{take}.wav`: 16-bit mono PCM at 8 kHz. A file that is not a WAV, is compressed
or floating point (non-PCM), has another sample width, channel count or rate, or is cut short is
one LeptonError naming it.
"""

from __future__ import annotations

import re
import wave
from pathlib import Path

import numpy as np

from lepton_cli.data.audio import fixed_length
from lepton_cli.data.readers.official_files import _corrupt, _missing_error, _one_line, _unreadable
from lepton_cli.errors import LeptonError

FSDD_NAME = re.compile(r"^(\d)_([A-Za-z]+)_(\d+)\.wav$")
PCM16_SCALE = 32768.0


def read_wav(path: Path, sample_rate: int) -> np.ndarray:
    """The samples of a mono 16-bit PCM WAV at `sample_rate`, as float32 in [-1, 1)."""
    try:
        with wave.open(str(path), "rb") as wav:
            channels, width, rate, frames = wav.getnchannels(), wav.getsampwidth(), wav.getframerate(), wav.getnframes()
            # The header's frame count is data: a damaged or hostile one must not size a multi-GB read,
            # so read no more frames than the file can hold (a short read is refused below).
            data = wav.readframes(min(frames, path.stat().st_size // max(1, width * channels)))
    except wave.Error as error:  # not RIFF/WAVE, or a format code other than PCM (1): "unknown format: 3"
        raise _corrupt(path, f"is not a PCM WAV file ({_one_line(error)})") from None
    except EOFError:
        raise _corrupt(path, "is cut short inside its WAV header") from None
    except OSError as error:
        raise _unreadable(path, error) from None
    if channels != 1 or width != 2 or rate != sample_rate:
        raise LeptonError(f"{path} is {channels}-channel {8 * width}-bit at {rate} Hz; this data set needs mono "
                          f"16-bit PCM at {sample_rate} Hz (convert it, e.g. sox IN -c 1 -b 16 -r {sample_rate} OUT)")
    if len(data) != frames * width:
        raise _corrupt(path, f"holds {len(data) // width} samples but its header says {frames}")
    return (np.frombuffer(data, dtype="<i2").astype(np.float32) / PCM16_SCALE)


def read_fsdd(folder: Path, speakers: list[str], takes: tuple[int, int], seconds: float,
              sample_rate: int) -> tuple[np.ndarray, np.ndarray]:
    """The recordings of `speakers` with take numbers in `takes` (inclusive) under `folder`, as
    (N, seconds·rate) float32 waveforms (the middle of longer ones, zeros after shorter ones) and
    their digits, in file-name order."""
    if not folder.is_dir():
        raise _missing_error("fsdd", folder.parent, [folder.name + "/"], downloadable=False)
    wanted = set(speakers)
    chosen = []
    for path in sorted(folder.iterdir()):
        match = FSDD_NAME.match(path.name)
        if match and match.group(2) in wanted and takes[0] <= int(match.group(3)) <= takes[1]:
            chosen.append((path, int(match.group(1))))
    found = {FSDD_NAME.match(path.name).group(2) for path, _ in chosen}
    if wanted - found:
        raise LeptonError(f"{folder} has no recordings of speaker(s) {', '.join(sorted(wanted - found))} with takes "
                          f"{takes[0]}..{takes[1]}; FSDD names them {{digit}}_{{speaker}}_{{take}}.wav")
    length = round(seconds * sample_rate)
    waveforms = np.stack([fixed_length(read_wav(path, sample_rate), length) for path, _ in chosen])
    return waveforms, np.array([digit for _, digit in chosen], dtype=np.int64)
