"""Image files to RGB pixels: decoded in threads, resized on request, with decompression bombs,
corrupt and unopenable files refused or skipped, one message naming the file."""

from __future__ import annotations

import os
import warnings
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from lepton_cli.data.readers.official_files import _one_line
from lepton_cli.errors import LeptonError

# PIL's own default: an image header claiming more pixels than this is refused before decoding.
MAX_IMAGE_PIXELS = 89_478_485


class _CannotOpen(Exception):
    """An image file that could not be opened at all (permissions, I/O): unlike a corrupt one it may
    read fine next time without its size or mtime changing, so a result without it is not cached."""


def _decode_image(path: Path, size: int | None) -> np.ndarray | Exception:
    from PIL import Image

    try:
        handle = open(path, "rb")  # noqa: SIM115 - closed by the with below
    except OSError as error:
        return _CannotOpen(error.strerror or str(error))
    with handle:
        try:
            with Image.open(handle) as image:
                # Refused on the header, before decoding allocates width x height pixels.
                if image.width * image.height > MAX_IMAGE_PIXELS:
                    return ValueError(f"its header claims {image.width}x{image.height} pixels, over the "
                                      f"{MAX_IMAGE_PIXELS} pixel limit for decompression bombs")
                image = image.convert("RGB")
                if size is not None:
                    image = image.resize((size, size), Image.Resampling.BILINEAR)
                return np.asarray(image, dtype=np.uint8)
        except Image.UnidentifiedImageError:  # its own message shows the file handle, not the file
            return ValueError("not an image file that PIL can read")
        except Exception as error:  # noqa: BLE001 - a crafted file can make a PIL plugin raise anything
            return error


def _decode_images(paths: Sequence[Path], size: int | None, on_corrupt: str) -> tuple[list[np.ndarray], list[int], int]:
    """Decoded RGB images, the indices into `paths` they came from (corrupt ones left out) and how
    many files could not be opened at all."""
    from PIL import Image

    if on_corrupt not in ("skip", "error"):
        raise LeptonError(f"on_corrupt must be 'skip' or 'error', got {on_corrupt!r}")
    # PIL releases the GIL while decoding, so threads give a real speed-up on big folders. Its
    # decompression-bomb warning (a header over the limit) becomes an error, so such a file is
    # refused like a corrupt one; the filter is set here, in the thread that waits for the pool.
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        with ThreadPoolExecutor(max_workers=min(32, (os.cpu_count() or 1) + 4)) as pool:
            results = list(pool.map(lambda p: _decode_image(p, size), paths))
    images, kept, corrupt, unopened = [], [], [], 0
    for index, result in enumerate(results):
        if isinstance(result, Exception):
            corrupt.append(index)
            unopened += isinstance(result, _CannotOpen)
            if on_corrupt == "error":
                verb = "read" if isinstance(result, _CannotOpen) else "decode"
                raise LeptonError(
                    f"cannot {verb} image {paths[index]} ({_one_line(result)}); remove or replace the file, "
                    "or set on_corrupt='skip' to leave corrupt images out"
                )
        else:
            images.append(result)
            kept.append(index)
    if corrupt:
        warnings.warn(
            f"skipped {len(corrupt)} corrupt or unreadable image(s), the first: {paths[corrupt[0]]} "
            f"({_one_line(results[corrupt[0]], 100)})",
            stacklevel=3,
        )
    return images, kept, unopened
