"""Synthetic digits rendered from the font files that ship with matplotlib.

A labelled source domain that needs no download: each image is one digit drawn with a random
font (family, weight, slant), size, stroke width, rotation, shear and offset, white ink on black
like MNIST and scikit-learn's digits. Rendering is deterministic in the seed.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from lepton_cli.errors import LeptonError

CANVAS = 64  # render large, then downsample with antialiasing: smoother strokes than drawing small


def font_files() -> list[Path]:
    """The TrueType fonts bundled with matplotlib, sorted so the list is the same everywhere."""
    import matplotlib

    font_dir = Path(matplotlib.get_data_path()) / "fonts" / "ttf"
    fonts = sorted(p for p in font_dir.glob("*.ttf") if _draws_digits(p))
    if not fonts:
        raise LeptonError(f"no usable .ttf fonts found in {font_dir} to render synth_digits; reinstall matplotlib "
                          "(pip install --force-reinstall matplotlib) or choose another source=")
    return fonts


def _draws_digits(path: Path) -> bool:
    # Symbol fonts (cmsy10, cmex10, STIX size variants, ...) map digits to other glyphs or blanks.
    name = path.stem.lower()
    return not any(tag in name for tag in ("cmsy", "cmex", "cmmi", "stixsiz", "stixnonuni", "lastresort", "display"))


def render_digits(count: int, seed: int, image_size: int = 28) -> tuple[np.ndarray, np.ndarray]:
    """Render `count` digits with balanced labels. Returns uint8 images (N, S, S, 1) and int64 labels."""
    from PIL import Image, ImageDraw, ImageFont

    rng = np.random.default_rng(seed)
    fonts = font_files()
    labels = np.arange(count, dtype=np.int64) % 10
    rng.shuffle(labels)
    images = np.empty((count, image_size, image_size, 1), dtype=np.uint8)
    font_cache: dict[tuple[int, int], ImageFont.FreeTypeFont] = {}
    for i, digit in enumerate(labels):
        font_index = int(rng.integers(len(fonts)))
        size = int(rng.integers(30, 48))
        key = (font_index, size)
        if key not in font_cache:
            font_cache[key] = ImageFont.truetype(str(fonts[font_index]), size)
        canvas = Image.new("L", (CANVAS, CANVAS), 0)
        ImageDraw.Draw(canvas).text(
            (CANVAS / 2, CANVAS / 2), str(digit), fill=255, font=font_cache[key], anchor="mm",
            stroke_width=int(rng.integers(0, 4)), stroke_fill=255,
        )
        canvas = canvas.transform(canvas.size, Image.Transform.AFFINE, _random_affine(rng), Image.Resampling.BILINEAR)
        canvas = canvas.crop(_ink_box(canvas, rng))
        images[i, :, :, 0] = np.asarray(canvas.resize((image_size, image_size), Image.Resampling.LANCZOS))
    return images, labels


def _random_affine(rng: np.random.Generator) -> tuple[float, ...]:
    """Inverse affine map (output → input pixel) for a rotation, shear (slant) and scale about the centre."""
    angle = np.deg2rad(rng.uniform(-15, 15))
    shear = rng.uniform(-0.3, 0.3)
    scale = rng.uniform(0.8, 1.15)
    cos, sin = np.cos(angle), np.sin(angle)
    a, b = cos / scale, (sin + shear) / scale
    d, e = -sin / scale, cos / scale
    centre = CANVAS / 2
    return (a, b, centre - a * centre - b * centre, d, e, centre - d * centre - e * centre)


def _ink_box(canvas, rng: np.random.Generator) -> tuple[int, int, int, int]:
    """A square box around the ink with a random margin and offset, as handwritten digit sets are
    roughly centred on their bounding box but not exactly."""
    left, top, right, bottom = canvas.getbbox() or (0, 0, CANVAS, CANVAS)
    side = max(right - left, bottom - top) * rng.uniform(1.15, 1.5)
    cx = (left + right) / 2 + rng.uniform(-0.08, 0.08) * side
    cy = (top + bottom) / 2 + rng.uniform(-0.08, 0.08) * side
    half = side / 2
    return (int(cx - half), int(cy - half), int(cx + half), int(cy + half))
