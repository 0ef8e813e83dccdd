"""Data sets whose release lists its images in text files of `relative/path label` lines:
DomainNet (Peng et al. 2019) and VisDA-2017 (Peng et al. 2017), in the layouts their releases unpack
to and the layout TLlib reads (`tllib/vision/datasets/domainnet.py`, `visda2017.py`, whose lists are
`image_list/<name>.txt` with paths relative to the data set's folder).

The class names are the releases' own, in their label order (as TLlib's `CLASSES`), so classes are
matched by name across data sets like everywhere else (`data/alignment.py`).
"""

from __future__ import annotations

from pathlib import Path, PurePosixPath

import numpy as np

from lepton_cli.data.arrays import ImageArrays
from lepton_cli.data.readers.image_decoding import _decode_images
from lepton_cli.data.readers.official_files import _check_labels, _one_line
from lepton_cli.errors import LeptonError

DOMAINNET_DOMAINS = ("clipart", "infograph", "painting", "quickdraw", "real", "sketch")
DOMAINNET_CLASSES = [
    "aircraft_carrier", "airplane", "alarm_clock", "ambulance", "angel", "animal_migration", "ant", "anvil",
    "apple", "arm", "asparagus", "axe", "backpack", "banana", "bandage", "barn", "baseball", "baseball_bat",
    "basket", "basketball", "bat", "bathtub", "beach", "bear", "beard", "bed", "bee", "belt", "bench", "bicycle",
    "binoculars", "bird", "birthday_cake", "blackberry", "blueberry", "book", "boomerang", "bottlecap", "bowtie",
    "bracelet", "brain", "bread", "bridge", "broccoli", "broom", "bucket", "bulldozer", "bus", "bush",
    "butterfly", "cactus", "cake", "calculator", "calendar", "camel", "camera", "camouflage", "campfire",
    "candle", "cannon", "canoe", "car", "carrot", "castle", "cat", "ceiling_fan", "cello", "cell_phone", "chair",
    "chandelier", "church", "circle", "clarinet", "clock", "cloud", "coffee_cup", "compass", "computer", "cookie",
    "cooler", "couch", "cow", "crab", "crayon", "crocodile", "crown", "cruise_ship", "cup", "diamond",
    "dishwasher", "diving_board", "dog", "dolphin", "donut", "door", "dragon", "dresser", "drill", "drums",
    "duck", "dumbbell", "ear", "elbow", "elephant", "envelope", "eraser", "eye", "eyeglasses", "face", "fan",
    "feather", "fence", "finger", "fire_hydrant", "fireplace", "firetruck", "fish", "flamingo", "flashlight",
    "flip_flops", "floor_lamp", "flower", "flying_saucer", "foot", "fork", "frog", "frying_pan", "garden",
    "garden_hose", "giraffe", "goatee", "golf_club", "grapes", "grass", "guitar", "hamburger", "hammer", "hand",
    "harp", "hat", "headphones", "hedgehog", "helicopter", "helmet", "hexagon", "hockey_puck", "hockey_stick",
    "horse", "hospital", "hot_air_balloon", "hot_dog", "hot_tub", "hourglass", "house", "house_plant",
    "hurricane", "ice_cream", "jacket", "jail", "kangaroo", "key", "keyboard", "knee", "knife", "ladder",
    "lantern", "laptop", "leaf", "leg", "light_bulb", "lighter", "lighthouse", "lightning", "line", "lion",
    "lipstick", "lobster", "lollipop", "mailbox", "map", "marker", "matches", "megaphone", "mermaid",
    "microphone", "microwave", "monkey", "moon", "mosquito", "motorbike", "mountain", "mouse", "moustache",
    "mouth", "mug", "mushroom", "nail", "necklace", "nose", "ocean", "octagon", "octopus", "onion", "oven", "owl",
    "paintbrush", "paint_can", "palm_tree", "panda", "pants", "paper_clip", "parachute", "parrot", "passport",
    "peanut", "pear", "peas", "pencil", "penguin", "piano", "pickup_truck", "picture_frame", "pig", "pillow",
    "pineapple", "pizza", "pliers", "police_car", "pond", "pool", "popsicle", "postcard", "potato",
    "power_outlet", "purse", "rabbit", "raccoon", "radio", "rain", "rainbow", "rake", "remote_control",
    "rhinoceros", "rifle", "river", "roller_coaster", "rollerskates", "sailboat", "sandwich", "saw", "saxophone",
    "school_bus", "scissors", "scorpion", "screwdriver", "sea_turtle", "see_saw", "shark", "sheep", "shoe",
    "shorts", "shovel", "sink", "skateboard", "skull", "skyscraper", "sleeping_bag", "smiley_face", "snail",
    "snake", "snorkel", "snowflake", "snowman", "soccer_ball", "sock", "speedboat", "spider", "spoon",
    "spreadsheet", "square", "squiggle", "squirrel", "stairs", "star", "steak", "stereo", "stethoscope",
    "stitches", "stop_sign", "stove", "strawberry", "streetlight", "string_bean", "submarine", "suitcase", "sun",
    "swan", "sweater", "swing_set", "sword", "syringe", "table", "teapot", "teddy-bear", "telephone",
    "television", "tennis_racquet", "tent", "The_Eiffel_Tower", "The_Great_Wall_of_China", "The_Mona_Lisa",
    "tiger", "toaster", "toe", "toilet", "tooth", "toothbrush", "toothpaste", "tornado", "tractor",
    "traffic_light", "train", "tree", "triangle", "trombone", "truck", "trumpet", "t-shirt", "umbrella",
    "underwear", "van", "vase", "violin", "washing_machine", "watermelon", "waterslide", "whale", "wheel",
    "windmill", "wine_bottle", "wine_glass", "wristwatch", "yoga", "zebra", "zigzag",
]
VISDA2017_SPLITS = ("train", "validation")
VISDA2017_CLASSES = ["aeroplane", "bicycle", "bus", "car", "horse", "knife", "motorcycle", "person", "plant",
                     "skateboard", "train", "truck"]


def _first_list(name: str, candidates: list[tuple[Path, Path]], expected: str) -> tuple[Path, Path]:
    """The first (list file, folder its paths are relative to) whose list file exists."""
    found = next(((listed, base) for listed, base in candidates if listed.is_file()), None)
    if found is None:
        raise LeptonError(f"{name}: no image list found; expected {expected}")
    return found


def domainnet_list(root: str | Path, domain: str, split: str) -> tuple[Path, Path]:
    """(list file, base folder) of a DomainNet domain's split: the release's
    `root/domainnet/<domain>_<split>.txt` or TLlib's `root/domainnet/image_list/<domain>_<split>.txt`,
    each line `<domain>/<class>/<file>.jpg <label>` relative to `root/domainnet`."""
    if domain not in DOMAINNET_DOMAINS:
        raise LeptonError(f"unknown DomainNet domain {domain!r}; choose one of {', '.join(DOMAINNET_DOMAINS)}")
    base = Path(root) / "domainnet"
    name = f"{domain}_{split}.txt"
    return _first_list(f"DomainNet {domain}", [(base / name, base), (base / "image_list" / name, base)],
                       f"{base / name} (the release's list) with the images in {base / domain}/<class>/")


def visda2017_list(root: str | Path, split: str) -> tuple[Path, Path]:
    """(list file, base folder) of a VisDA-2017 split (`train`: synthetic renderings, `validation`:
    real photos): the release's `root/visda2017/<split>/image_list.txt` (paths relative to that
    folder) or TLlib's `root/visda2017/image_list/<split>.txt` (paths relative to `root/visda2017`)."""
    if split not in VISDA2017_SPLITS:
        raise LeptonError(f"unknown VisDA-2017 split {split!r}; choose one of {', '.join(VISDA2017_SPLITS)}")
    base = Path(root) / "visda2017"
    return _first_list(f"VisDA-2017 {split}",
                       [(base / split / "image_list.txt", base / split), (base / "image_list" / f"{split}.txt", base)],
                       f"{base / split}/image_list.txt (the release's list) with the images in {base / split}/<class>/")


def list_image_list(list_file: Path, base: Path, classes: list[str]) -> tuple[list[Path], np.ndarray, list[str]]:
    """The files and labels a list names (without decoding), checked: every line `path label`,
    each path relative and inside `base` (a list is data: it may not point elsewhere on disk), each
    label one of `classes`."""
    try:
        lines = list_file.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as error:
        raise LeptonError(f"cannot read image list {list_file} ({_one_line(error)}); check that it is the release's text file") from None
    files, labels, line_numbers = [], [], []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        relative, _, label = line.strip().rpartition(" ")
        path = PurePosixPath(relative.strip())
        if not relative.strip() or not label.lstrip("-").isdigit() or path.is_absolute() or ".." in path.parts:
            raise LeptonError(f"{list_file}: line {number} is not 'relative/path/to/image.jpg LABEL' inside "
                              f"{base} ({_one_line(line, 80)}); fix the line or use the release's list file")
        files.append(base / path)
        labels.append(int(label))
        line_numbers.append(number)
    if not files:
        raise LeptonError(f"image list {list_file} names no images; use the release's list file")
    labels = np.asarray(labels, dtype=np.int64)
    _check_labels(labels, len(classes), list_file, line_numbers)
    return files, labels, list(classes)


def read_image_list(list_file: Path, base: Path, classes: list[str], image_size: int,
                    on_corrupt: str = "skip") -> ImageArrays:
    """The images a list names, decoded to RGB at `image_size` as `read_image_folder` decodes
    (corrupt files skipped with one warning, or an error naming the file)."""
    files, labels, classes = list_image_list(list_file, base, classes)
    images, kept, unopened = _decode_images(files, image_size, on_corrupt)
    if not images:
        raise LeptonError(f"none of the {len(files)} images listed in {list_file} could be decoded; check that "
                          f"the images are in {base}")
    return ImageArrays(np.stack(images), labels[kept], classes, cacheable=unopened == 0)
