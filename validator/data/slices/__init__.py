"""Slices: named subsets of the gate rows, defined in YAML by data teams.

``load_slices`` parses slice files (safe YAML, never executed) into a SliceSet, with
any data expectations declared beside the slices; ``assign_slices`` checks the columns
and evaluates it over the gate rows into one boolean column per slice.
The slice ``all`` (every gate row) always exists and comes first.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import yaml

from validator.bounded_yaml import load_yaml_file
from validator.errors import SliceError
from validator.data.expectations import Expectation, parse_expectations
from validator.data.slices.dsl import Condition, check_columns, evaluate, parse_condition

ALL = "all"
SLICE_KEYS = ("name", "description", "where")
NAME_PATTERN = re.compile(r"^[a-z0-9][a-z0-9_\-]*$")


@dataclass(frozen=True)
class SliceDef:
    name: str
    description: str
    condition: Condition | None  # None for `all`
    file: str
    where: str  # YAML path of the condition, for error messages
    where_yaml: str = ""  # the condition as written, for the report


@dataclass(frozen=True)
class SliceSet:
    slices: tuple[SliceDef, ...]
    expectations: tuple[Expectation, ...] = ()

    @property
    def names(self) -> list[str]:
        return [s.name for s in self.slices]


def slice_files(paths: list[Path]) -> list[Path]:
    """The YAML files named by ``paths``, folders expanded in name order."""
    files = []
    for path in paths:
        if path.is_dir():
            files += sorted(p for p in path.iterdir() if p.suffix in (".yaml", ".yml"))
        elif path.is_file():
            files.append(path)
        else:
            raise SliceError(f"{path}: slice file or folder not found")
    return files


def _parse_slice(entry, file: str, index: int) -> SliceDef:
    where = f"{file}: slices[{index}]"
    if not isinstance(entry, dict):
        raise SliceError(f"{where}: each slice must be a mapping with {', '.join(SLICE_KEYS)}")
    unknown = sorted(set(map(str, entry)) - set(SLICE_KEYS))
    if unknown:
        raise SliceError(f"{where}.{unknown[0]}: unknown key (valid: {', '.join(SLICE_KEYS)})")
    name = entry.get("name")
    if not isinstance(name, str) or not NAME_PATTERN.match(name):
        raise SliceError(f"{where}.name: a slice needs a name of lowercase letters, digits, "
                         f"'_' or '-', got {name!r}")
    if name == ALL:
        raise SliceError(f"{where}.name: 'all' is reserved (it is always every gate row)")
    if "where" not in entry:
        raise SliceError(f"{where}.where: required key is missing")
    description = entry.get("description") or ""
    if not isinstance(description, str):
        raise SliceError(f"{where}.description: must be text")
    return SliceDef(name, description, parse_condition(entry["where"], f"{where}.where"),
                     file, f"{where}.where",
                     yaml.safe_dump(entry["where"], default_flow_style=True,
                                    allow_unicode=True, width=1000).strip())


FILE_KEYS = ("slices", "expectations")


def parse_slice_file(path: Path) -> tuple[list[SliceDef], list[Expectation]]:
    document = load_yaml_file(path, SliceError, "slice file")
    if not isinstance(document, dict) or not document or set(document) - set(FILE_KEYS):
        raise SliceError(f"{path}: a slice file is a mapping with the keys 'slices' (a list) "
                         f"and/or 'expectations' (a list)")
    entries = document.get("slices", [])
    if not isinstance(entries, list):
        raise SliceError(f"{path}: 'slices' must be a list")
    definitions = [_parse_slice(entry, str(path), i) for i, entry in enumerate(entries)]
    return definitions, parse_expectations(document.get("expectations", []), str(path))


def load_slices(paths: list[Path]) -> SliceSet:
    """Parse every slice file (slices and the expectations declared beside them)."""
    defined: dict[str, SliceDef] = {}
    expectations: list[Expectation] = []
    for path in slice_files(paths):
        definitions, declared = parse_slice_file(path)
        expectations += declared
        for definition in definitions:
            if definition.name in defined:
                raise SliceError(f"{definition.where.rsplit('.', 1)[0]}.name: slice "
                                 f"{definition.name!r} is already defined in "
                                 f"{defined[definition.name].file}")
            defined[definition.name] = definition
    everything = SliceDef(ALL, "Every gate row", None, "(built in)", "")
    return SliceSet((everything, *defined.values()), tuple(expectations))


def assign_slices(slice_set: SliceSet, frame: pd.DataFrame) -> pd.DataFrame:
    """One boolean column per slice, indexed like ``frame`` (derived columns present),
    after checking every condition's columns exist."""
    for definition in slice_set.slices[1:]:
        check_columns(definition.condition, frame.columns)
    masks = {s.name: (evaluate(s.condition, frame) if s.condition is not None
                      else [True] * len(frame)) for s in slice_set.slices}
    return pd.DataFrame(masks, index=frame.index, dtype=bool)
