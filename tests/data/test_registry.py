"""Dataset specs: names, aliases, checksums copied correctly."""

from __future__ import annotations

import dataclasses
import gzip
import hashlib
import re

import pytest

from mlplab.data import DATASET_SPECS, get_spec
from mlplab.data.registry import ROLES
from mlplab.errors import MlplabError


@pytest.mark.parametrize("name,expected", [("mnist", "mnist"), ("MNIST", "mnist"), ("fashion-mnist", "fashion-mnist"),
                                           ("fashion_mnist", "fashion-mnist"), ("FashionMNIST", "fashion-mnist"),
                                           ("kmnist", "kmnist")])
def test_names_and_aliases(name, expected):
    assert get_spec(name).name == expected


def test_unknown_name_lists_choices():
    with pytest.raises(MlplabError, match="unknown dataset 'emnist'; choose one of: mnist, fashion-mnist, kmnist"):
        get_spec("emnist")


@pytest.mark.parametrize("name", list(DATASET_SPECS))
def test_specs_are_complete(name):
    spec = DATASET_SPECS[name]
    assert [role for role, _ in spec.files.items()] == list(ROLES)
    assert all(re.fullmatch(r"[0-9a-f]{32}", record.md5) for _, record in spec.files.items())
    assert len(spec.classes) == 10 and len(set(spec.classes)) == 10
    assert 0 < spec.mean < 0.5 and 0.2 < spec.std < 0.5
    assert spec.mirrors and all(url.endswith("/") for url in spec.mirrors)
    hash(spec)  # specs key the in-process array cache


def test_mnist_sha256_matches_the_bundled_copy_and_its_readme(mnist_dir):
    spec = get_spec("mnist")
    recorded = {record.name: record.sha256 for _, record in spec.files.items()}
    computed = {name: hashlib.sha256(gzip.decompress((mnist_dir / name).read_bytes())).hexdigest()
                for name in recorded}
    assert computed == recorded
    # The README beside the files lists the same checksums (and names the authors and licence).
    readme = (mnist_dir / "README.md").read_text()
    listed = dict(re.findall(r"^\| `(\S+\.gz)` \|.*\| `([0-9a-f]{64})` \|$", readme, flags=re.MULTILINE))
    assert listed == recorded
    for credit in ("Yann LeCun", "Corinna Cortes", "Christopher J. C. Burges", "CC BY-SA 3.0"):
        assert credit in readme
    assert spec.mirrors[0] == "https://ossci-datasets.s3.amazonaws.com/mnist/"


def test_replace_accepts_list_of_mirrors_and_stays_hashable():
    spec = dataclasses.replace(get_spec("kmnist"), mirrors=["http://a/", "http://b/"])
    assert spec.mirrors == ("http://a/", "http://b/")
    hash(spec)
