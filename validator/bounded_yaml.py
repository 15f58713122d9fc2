"""Every YAML file the tool reads, read one bounded way (config, slice, routing files).

``yaml.safe_load`` executes nothing, but it trusts the size of what it builds: an
873-byte "billion laughs" (anchors whose aliases nest nine deep) expands to 10^9
nodes and ran to an out-of-memory kill; ``&a [*a]`` builds a loop that makes every
later walk a RecursionError; and a key written twice (``gate:`` twice) silently keeps
the last one. This loader refuses, each with the file and line:

- a file that is not a regular file, or over ``MAX_BYTES`` (``--config /dev/zero``);
- text that is not UTF-8 (the byte offset and line of the first bad byte);
- nesting deeper than ``MAX_DEPTH`` levels, counted after aliases expand;
- anchors and aliases that would expand to more than ``MAX_NODES`` nodes, or that
  refer to themselves (aliases within the bound stay allowed: ``<<: *defaults``
  is a common way to share settings between candidates);
- a mapping that names the same key twice (``<<`` merges are not duplicates: keys
  written out override merged ones, as YAML specifies).

The checks walk the composed node graph once, with each aliased node's size
remembered, so the time is linear in the file, whatever the aliases would expand to.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Any

import yaml

from validator.errors import ValidatorError, first_line

MAX_BYTES = 4 * 1024 * 1024  # config and slice files are a few KB; discovered slices less
MAX_DEPTH = 50               # the deepest shipped condition nests under 10 levels
MAX_NODES = 100_000          # scalars, sequences and mappings after alias expansion
MERGE_TAG = "tag:yaml.org,2002:merge"


def _line(node_or_mark) -> int:
    mark = getattr(node_or_mark, "start_mark", node_or_mark)
    return mark.line + 1 if mark is not None else 0


def read_bounded_bytes(path: Path, error: type[ValidatorError], what: str,
                       limit: int = MAX_BYTES) -> bytes:
    """The bytes of a regular file of at most ``limit`` bytes, else ``error`` naming it."""
    try:
        info = os.stat(path)
        if not stat.S_ISREG(info.st_mode):
            raise error(f"{path}: cannot read the {what}: not a regular file")
        with open(path, "rb") as handle:
            data = handle.read(limit + 1)
    except OSError as exc:
        raise error(f"{path}: cannot read the {what} ({exc.__class__.__name__}: "
                    f"{exc.strerror or exc})") from exc
    if len(data) > limit:
        raise error(f"{path}: cannot read the {what}: larger than {limit // 1024 // 1024} MiB")
    return data


def decode_utf8(data: bytes, source: str, error: type[ValidatorError], what: str) -> str:
    """``data`` as text; invalid UTF-8 is named by its byte offset and line."""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise error(f"{source}: cannot read the {what}: not UTF-8 text ({exc.reason} at byte "
                    f"{exc.start}, line {line})") from exc


def read_bounded_text(path: Path, error: type[ValidatorError], what: str,
                      limit: int = MAX_BYTES) -> str:
    return decode_utf8(read_bounded_bytes(path, error, what, limit), str(path), error, what)


class _DepthLimitedLoader(yaml.SafeLoader):
    """SafeLoader whose composer stops at MAX_DEPTH (it recurses once per level)."""

    depth = 0

    def compose_node(self, parent, index):
        self.depth += 1
        try:
            if self.depth > MAX_DEPTH:
                raise _Refused(f"nesting deeper than {MAX_DEPTH} levels",
                               self.peek_event().start_mark)
            return super().compose_node(parent, index)
        finally:
            self.depth -= 1


class _Refused(Exception):
    def __init__(self, reason: str, mark):
        super().__init__(reason)
        self.reason, self.mark = reason, mark


class _Walk:
    """One pass over the node graph: expanded size, expanded depth, loops, duplicates."""

    def __init__(self, constructor: yaml.SafeLoader):
        self.constructor = constructor
        self.sizes: dict[int, tuple[int, int]] = {}  # id(node) -> (expanded nodes, height)
        self.open: set[int] = set()                  # nodes on the current path

    def measure(self, node, depth: int = 1) -> tuple[int, int]:
        if depth > MAX_DEPTH:
            raise _Refused(f"nesting deeper than {MAX_DEPTH} levels (aliases expanded)", node)
        key = id(node)
        if key in self.open:
            raise _Refused("an alias refers to the node that contains it", node)
        if key in self.sizes:
            size, height = self.sizes[key]
            if depth + height - 1 > MAX_DEPTH:
                raise _Refused(f"nesting deeper than {MAX_DEPTH} levels (aliases expanded)",
                               node)
            return size, height
        self.open.add(key)
        size, height = 1, 1
        for child in self._children(node):
            child_size, child_height = self.measure(child, depth + 1)
            size, height = size + child_size, max(height, child_height + 1)
            if size > MAX_NODES:
                raise _Refused(f"aliases expand to more than {MAX_NODES:,} nodes", node)
        self.open.discard(key)
        self.sizes[key] = (size, height)
        return size, height

    def _children(self, node) -> list:
        if isinstance(node, yaml.SequenceNode):
            return list(node.value)
        if isinstance(node, yaml.MappingNode):
            self._check_duplicates(node)
            return [part for pair in node.value for part in pair]
        return []

    def _check_duplicates(self, node: yaml.MappingNode) -> None:
        seen: dict[Any, int] = {}
        for key_node, _ in node.value:
            if key_node.tag == MERGE_TAG or not isinstance(key_node, yaml.ScalarNode):
                continue
            key = (key_node.tag, self.constructor.construct_object(key_node))
            if key in seen:
                raise _Refused(f"key {key[1]!r} is written twice (first on line {seen[key]}); "
                               f"YAML would silently keep only the last", key_node)
            seen[key] = _line(key_node)


def load_yaml_text(text: str, source: str, error: type[ValidatorError]) -> Any:
    """Parse YAML text under the bounds above; ``source`` names it in errors."""
    loader = _DepthLimitedLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        _Walk(loader).measure(node)
        return loader.construct_document(node)
    except _Refused as exc:
        raise error(f"{source}: line {_line(exc.mark)}: {exc.reason}") from exc
    except yaml.YAMLError as exc:
        raise error(f"{source}: {yaml_problem(exc)}") from exc
    finally:
        loader.dispose()


def yaml_problem(exc: yaml.YAMLError) -> str:
    """Where and why PyYAML refused a text: ``line L, column C: not valid YAML: problem
    (context)``; its first line when it gives no position."""
    mark = getattr(exc, "problem_mark", None)
    problem = getattr(exc, "problem", None)
    if mark is None or problem is None:
        return f"not valid YAML ({first_line(exc)})"
    context = getattr(exc, "context", None)
    return (f"line {mark.line + 1}, column {mark.column + 1}: not valid YAML: {problem}"
            + (f" ({context})" if context else ""))


def load_yaml_file(path: Path, error: type[ValidatorError], what: str) -> Any:
    """A YAML file read under every bound: size, encoding, depth, aliases, duplicates."""
    return load_yaml_text(read_bounded_text(path, error, what), str(path), error)
