"""The packaged assets are byte-identical copies of their editable sources in the
repository (slices/, fixtures/), and the default config finds them inside the package."""

from __future__ import annotations

import pytest

from conftest import ROOT
from validator.assets import asset
from validator.config import default_config

SOURCES = {  # packaged copy -> its editable source in the repository
    **{f"slices/{p.name}": f"slices/{p.name}" for p in (ROOT / "slices").glob("*.yaml")},
    "sample.csv": "fixtures/sample.csv",
    "default_scorer/head.safetensors": "fixtures/default_scorer/head.safetensors",
    "default_scorer/scorer.json": "fixtures/default_scorer/scorer.json",
}


@pytest.mark.parametrize("packaged", sorted(SOURCES))
def test_packaged_copy_is_byte_identical_to_its_source(packaged):
    source = ROOT / SOURCES[packaged]
    assert asset(packaged).read_bytes() == source.read_bytes(), (
        f"validator/assets/{packaged} differs from {SOURCES[packaged]}: "
        f"cp {SOURCES[packaged]} validator/assets/{packaged}")


def test_every_packaged_slice_file_has_a_source():
    packaged = {p.name for p in asset("slices").glob("*.yaml")}
    assert packaged == {p.name for p in (ROOT / "slices").glob("*.yaml")}


def test_the_default_config_reads_package_data_only():
    config = default_config()
    package = asset()
    assert config.sample.path == asset("sample.csv")
    assert config.slices == [asset("slices")]
    assert not config.report.out.is_absolute()  # ./reports of the working directory
    assert all(package in p.parents or p == package for p in [config.sample.path, *config.slices])
