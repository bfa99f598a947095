"""The datasets mlplab knows: file names, checksums, mirrors, class names, pixel statistics.

MD5s are those torchvision records for the published ``.gz`` files. Mirrors sometimes
re-compress the files, which changes the MD5 but not the content, so a spec may also
record the SHA-256 of each decompressed file; where it does, that is the check (see
`mlplab.data.verify`).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, fields

from mlplab.choices import DATASETS
from mlplab.errors import check_choice

# The four files of every MNIST-family dataset, in the order they are listed and fetched.
ROLES = ("train_images", "train_labels", "test_images", "test_labels")


@dataclass(frozen=True)
class FileRecord:
    """One published file: its name, the MD5 of the ``.gz`` and optionally the SHA-256 of its content."""

    name: str  # as published, e.g. "train-images-idx3-ubyte.gz"
    md5: str  # hex MD5 of the published .gz file
    sha256: str | None = None  # hex SHA-256 of the decompressed file, when known

    @property
    def raw_name(self) -> str:
        """The decompressed file's name (``train-images-idx3-ubyte``)."""
        return self.name.removesuffix(".gz")

    @property
    def ndim(self) -> int:
        """Dimensions of the stored array: 3 for images (N, 28, 28), 1 for labels (N,)."""
        return 3 if "images" in self.name else 1


@dataclass(frozen=True)
class FileSet:
    """The four files of a dataset, by role."""

    train_images: FileRecord
    train_labels: FileRecord
    test_images: FileRecord
    test_labels: FileRecord

    def items(self) -> Iterator[tuple[str, FileRecord]]:
        """``(role, record)`` pairs in `ROLES` order."""
        return ((f.name, getattr(self, f.name)) for f in fields(self))

    def __getitem__(self, role: str) -> FileRecord:
        record: FileRecord = getattr(self, role)
        return record


@dataclass(frozen=True)
class DatasetSpec:
    """Everything needed to find, fetch, verify and normalise one dataset.

    Attributes:
        name: registry key and cache folder name, e.g. ``"fashion-mnist"``.
        title: display name, e.g. ``"Fashion-MNIST"``.
        files: the four files with their checksums.
        mirrors: base URLs (ending ``/``) tried in order.
        classes: class names, indexed by label.
        mean, std: of [0, 1] pixel intensities over the 60k training images.
        torchvision_folder: torchvision's folder name (``root/<folder>/raw/`` holds the files).
    """

    name: str
    title: str
    files: FileSet
    mirrors: tuple[str, ...]
    classes: tuple[str, ...]
    mean: float
    std: float
    torchvision_folder: str

    def __post_init__(self) -> None:
        # Lists are accepted (e.g. from dataclasses.replace) but stored as tuples: specs stay hashable.
        object.__setattr__(self, "mirrors", tuple(self.mirrors))
        object.__setattr__(self, "classes", tuple(self.classes))


def _files(md5s: tuple[str, str, str, str], sha256s: tuple[str | None, ...] = (None,) * 4) -> FileSet:
    names = (
        "train-images-idx3-ubyte.gz",
        "train-labels-idx1-ubyte.gz",
        "t10k-images-idx3-ubyte.gz",
        "t10k-labels-idx1-ubyte.gz",
    )
    return FileSet(*(FileRecord(n, m, s) for n, m, s in zip(names, md5s, sha256s, strict=True)))


MNIST_SPEC = DatasetSpec(
    name="mnist",
    title="MNIST",
    files=_files(
        (
            "f68b3c2dcbeaaa9fbdd348bbdeb94873",
            "d53e105ee54ea40749a09fcbcd1e9432",
            "9fb629c4189551a2d022fa330f9573f3",
            "ec29112dd5afa0611ce80d1b7f02629c",
        ),
        (
            "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
            "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
            "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
            "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
        ),
    ),
    mirrors=("https://ossci-datasets.s3.amazonaws.com/mnist/", "http://yann.lecun.com/exdb/mnist/"),
    classes=(
        "0 - zero",
        "1 - one",
        "2 - two",
        "3 - three",
        "4 - four",
        "5 - five",
        "6 - six",
        "7 - seven",
        "8 - eight",
        "9 - nine",
    ),
    mean=0.1307,
    std=0.3081,
    torchvision_folder="MNIST",
)

FASHION_MNIST_SPEC = DatasetSpec(
    name="fashion-mnist",
    title="Fashion-MNIST",
    files=_files(
        (
            "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
            "25c81989df183df01b3e8a0aad5dffbe",
            "bef4ecab320f06d8554ea6380940ec79",
            "bb300cfdad3c16e7a12a480ee83cd310",
        )
    ),
    mirrors=("http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",),
    classes=("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"),
    mean=0.2860,
    std=0.3530,
    torchvision_folder="FashionMNIST",
)

KMNIST_SPEC = DatasetSpec(
    name="kmnist",
    title="Kuzushiji-MNIST",
    files=_files(
        (
            "bdb82020997e1d708af4cf47b453dcf7",
            "e144d726b3acfaa3e44228e80efcd344",
            "5c965bf0a639b31b8f53240b1b52f4d7",
            "7320c461ea6c1c855c0b718fb2a4b134",
        )
    ),
    mirrors=("http://codh.rois.ac.jp/kmnist/dataset/kmnist/",),
    classes=("o", "ki", "su", "tsu", "na", "ha", "ma", "ya", "re", "wo"),
    mean=0.1918,
    std=0.3483,
    torchvision_folder="KMNIST",
)

# The spec of each of `mlplab.choices.DATASETS`, by name.
DATASET_SPECS: dict[str, DatasetSpec] = {spec.name: spec for spec in (MNIST_SPEC, FASHION_MNIST_SPEC, KMNIST_SPEC)}
ALIASES = {"fashion_mnist": "fashion-mnist", "fashionmnist": "fashion-mnist"}


def get_spec(name: str) -> DatasetSpec:
    """The spec of a dataset by name (case-insensitive, aliases accepted); unknown names list the choices."""
    key = str(name).strip().lower()
    key = ALIASES.get(key, key)
    check_choice("dataset", key, DATASETS)
    return DATASET_SPECS[key]
