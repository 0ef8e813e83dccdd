"""Decoders from each data set's official on-disk format to `ImageArrays`.

The layouts are torchvision's, so `root` can be an existing torchvision data root. torchvision is
only used to fetch missing files (`download=True`); decoding is ours, so every data set comes out
the same way: uint8 (N, H, W, C) images, int64 labels and the real class names.

Files are data, never code: pickles go through `restricted_unpickle`, `.mat` files are read for
their numeric arrays only, and every size, count and label is checked against the format before
it is used, so a truncated, corrupt or crafted file is one `LeptonError` naming the file, never a
traceback, a silently wrapped label or a run that executes what the file says.

Modules: `official_files` finds, fetches and checks the files (shared by every reader),
`natural_images` and `digits` decode the fixed data sets, `image_decoding` turns image files
into pixels, `image_folder` reads class-per-folder trees (Office-31, Office-Home, users' own) and
`image_lists` the data sets listed in text files (DomainNet, VisDA-2017).
"""

from __future__ import annotations

from collections.abc import Callable

from lepton_cli.data.arrays import ImageArrays
from lepton_cli.data.readers.digits import read_mnist, read_mnist_m, read_svhn, read_usps
from lepton_cli.data.readers.image_folder import (
    image_folder_files,
    list_image_folder,
    office31_path,
    office_home_path,
    read_image_folder,
)
from lepton_cli.data.readers.image_lists import domainnet_list, list_image_list, read_image_list, visda2017_list
from lepton_cli.data.readers.natural_images import read_cifar10, read_stl10
from lepton_cli.data.readers.official_files import files_read

__all__ = [
    "READERS", "domainnet_list", "files_read", "image_folder_files", "list_image_folder", "list_image_list",
    "office31_path", "office_home_path", "read_cifar10", "read_image_folder", "read_image_list", "read_mnist",
    "read_mnist_m", "read_stl10", "read_svhn", "read_usps", "visda2017_list",
]

READERS: dict[str, Callable[..., ImageArrays]] = {
    "cifar10": read_cifar10,
    "stl10": read_stl10,
    "mnist": read_mnist,
    "usps": read_usps,
    "svhn": read_svhn,
    "mnist_m": read_mnist_m,
}
