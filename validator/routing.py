"""Routing rules: which scorer answers each request, the same at gate and serving time.

A routed candidate lists rules; the first whose slice matches a row wins, and the
last rule is the default::

    route:
      - {slice: high_stakes, to: fp32}
      - {default: int8-dynamic}

In a gate config a rule names a slice of the run; in a routing file (what
``validator recommend`` writes, what ``Router.from_file`` reads at serving time) each
rule also carries that slice's condition, so the file stands alone. A condition may
read only what is known at request time: never a rating, prediction or id column, and
with ``sample.serving_columns`` only those columns, the text and the columns derived
from it (``word_count``, ``char_count``).

This module imports only the slice DSL (pandas/numpy, no torch), so a serving process
can import it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml

from validator.bounded_yaml import load_yaml_file
from validator.errors import ConfigError
from validator.data.slices.dsl import (DERIVED_COLUMNS, Condition, comparisons, evaluate,
                                  parse_condition, with_derived_columns)

ROUTING_VERSION = 1
RULE_FORMS = "{slice: NAME, to: SCORER} or, last, {default: SCORER}"


@dataclass(frozen=True)
class Rule:
    to: str
    slice: str | None = None          # None: the default rule (every remaining row)
    condition: Condition | None = None
    where: Any = None                 # the condition as written, for routing files
    key: str = ""                     # "candidates[2].route[0]", for error messages


@dataclass(frozen=True)
class Router:
    """One routed deployment: ordered rules, first match wins, the last is the default."""
    name: str
    rules: tuple[Rule, ...]
    text_column: str = "text"

    @property
    def default(self) -> str:
        return self.rules[-1].to

    @property
    def targets(self) -> list[str]:
        return list(dict.fromkeys(rule.to for rule in self.rules))

    def route_rows(self, frame: pd.DataFrame) -> np.ndarray:
        """The scorer answering each row of ``frame`` (vectorised, first rule wins)."""
        frame = with_derived_columns(frame, self.text_column)
        matched = [np.ones(len(frame), dtype=bool) if rule.condition is None
                   else evaluate(rule.condition, frame) for rule in self.rules[:-1]]
        choices = np.array([rule.to for rule in self.rules[:-1]], dtype=object)
        out = np.full(len(frame), self.default, dtype=object)
        if matched:
            first = np.argmax(np.vstack(matched), axis=0)
            hit = np.logical_or.reduce(matched)
            out[hit] = choices[first[hit]]
        return out

    def choose(self, record: dict) -> str:
        """The scorer for one request: a dict with the text and its metadata."""
        if not isinstance(record.get(self.text_column), str):
            raise ConfigError(f"routing {self.name!r}: the request has no text in "
                              f"{self.text_column!r}")
        for i, rule in enumerate(self.rules):
            for cmp in comparisons(rule.condition) if rule.condition is not None else ():
                if cmp.column not in record and cmp.column not in DERIVED_COLUMNS:
                    raise ConfigError(f"routing {self.name!r}: the request lacks "
                                      f"{cmp.column!r}, read by rules[{i}] (slice "
                                      f"{rule.slice!r})")
        return str(self.route_rows(pd.DataFrame([record]))[0])

    def to_dict(self) -> dict:
        rules = [{"default": rule.to} if rule.slice is None and rule is self.rules[-1]
                 else {"slice": rule.slice, "where": rule.where, "to": rule.to}
                 for rule in self.rules]
        return {"routing_version": ROUTING_VERSION, "name": self.name,
                "text_column": self.text_column, "rules": rules}

    def dump(self) -> str:
        """The routing file's text (YAML)."""
        return yaml.safe_dump(self.to_dict(), sort_keys=False, allow_unicode=True, width=100)

    @classmethod
    def from_dict(cls, document: Any, source: str) -> "Router":
        if not isinstance(document, dict) or document.get("routing_version") != ROUTING_VERSION:
            raise ConfigError(f"{source}: not a routing file (needs routing_version: "
                              f"{ROUTING_VERSION}, name, text_column, rules)")
        unknown = sorted(set(document) - {"routing_version", "name", "text_column", "rules"})
        if unknown:
            raise ConfigError(f"{source}: {unknown[0]}: unknown key")
        slices = {}
        for i, rule in enumerate(document.get("rules") or []):
            if isinstance(rule, dict) and "slice" in rule:
                if "where" not in rule:
                    raise ConfigError(f"{source}: rules[{i}].where: required key is missing")
                slices[rule["slice"]] = (parse_condition(rule["where"], f"{source}: rules[{i}]"
                                                         f".where"), rule["where"])
        rules = parse_rules(document.get("rules"), slices, f"{source}: rules",
                            extra_keys=("where",))
        return cls(str(document.get("name", "routed")), rules,
                   str(document.get("text_column", "text")))

    @classmethod
    def from_file(cls, path: str | Path) -> "Router":
        path = Path(path)
        return cls.from_dict(load_yaml_file(path, ConfigError, "routing file"), str(path))


def parse_rules(raw: Any, slices: dict[str, tuple[Condition | None, Any]], where: str,
                extra_keys: tuple[str, ...] = ()) -> tuple[Rule, ...]:
    """Rules from their YAML form; ``slices`` maps a slice name to (condition, as written)."""
    if not isinstance(raw, list) or not raw:
        raise ConfigError(f"{where}: a route is a non-empty list of rules, {RULE_FORMS}")
    rules = []
    for i, entry in enumerate(raw):
        key = f"{where}[{i}]"
        if not isinstance(entry, dict) or set(entry) - {"slice", "to", "default", *extra_keys}:
            raise ConfigError(f"{key}: a rule is {RULE_FORMS}, got {entry!r}")
        if "default" in entry:
            if set(entry) != {"default"} or i != len(raw) - 1:
                raise ConfigError(f"{key}: the default rule stands alone and comes last")
            rules.append(Rule(str(entry["default"]), key=key))
            continue
        if "slice" not in entry or "to" not in entry:
            raise ConfigError(f"{key}: a rule is {RULE_FORMS}, got {entry!r}")
        name = entry["slice"]
        if name not in slices:
            raise ConfigError(f"{key}.slice: unknown slice {name!r} "
                              f"(defined: {', '.join(map(str, slices))})")
        condition, written = slices[name]
        rules.append(Rule(str(entry["to"]), str(name), condition, written, key))
    if rules[-1].slice is not None:
        raise ConfigError(f"{where}: the route has no default; end it with {{default: SCORER}}")
    return tuple(rules)


# -- routed candidates in a gate config (targets: route_checks) ------------------

def forbidden_columns(config) -> set[str]:
    """Columns not known at request time: ratings, bring-your-own predictions and the
    sample's row ids (an id never recurs in production traffic)."""
    columns = {c for d in config.rubric.dimensions for c in config.rubric.rater_columns(d)}
    columns.add(config.sample.id_column)
    for scorer in config.scorers:
        if isinstance(scorer.columns, str):
            columns |= {scorer.columns.replace("{dimension}", d)
                        for d in config.rubric.dimensions}
        elif isinstance(scorer.columns, dict):
            columns |= set(scorer.columns.values())
    return columns


def build_routers(config, slice_defs) -> dict[str, Router]:
    """A Router per routed candidate, its slices resolved and checked for serving."""
    slices = {s.name: (s.condition, None if s.condition is None else yaml.safe_load(s.where_yaml))
              for s in slice_defs}
    forbidden = forbidden_columns(config)
    serving = getattr(config.sample, "serving_columns", None)
    text = config.sample.text_column
    routers = {}
    for candidate in config.candidates:
        if candidate.route is None:
            continue
        rules = parse_rules(candidate.route, slices, f"{config.source}: {candidate.key}.route")
        for rule in rules:
            for cmp in comparisons(rule.condition) if rule.condition is not None else ():
                _check_servable(cmp.column, rule, forbidden, serving, text)
        routers[candidate.name] = Router(candidate.name, rules, text)
    return routers


def _check_servable(column, rule: Rule, forbidden, serving, text) -> None:
    where = f"{rule.key}.slice"
    if column in forbidden:
        raise ConfigError(f"{where}: slice {rule.slice!r} reads {column!r}, a rating, "
                          f"prediction or id column, which is not known at request time")
    if serving is not None and column not in (*serving, text, *DERIVED_COLUMNS):
        raise ConfigError(f"{where}: slice {rule.slice!r} reads {column!r}, which is not in "
                          f"sample.serving_columns ({', '.join(serving)}); routing may use only "
                          f"what is known at request time")


def resolve_rows(routers: dict[str, Router], name: str, frame: pd.DataFrame) -> np.ndarray:
    """The model scorer answering each row for ``name``, following routes to routes."""
    choice = routers[name].route_rows(frame)
    for target in set(choice) & set(routers):
        rows = choice == target
        choice[rows] = resolve_rows(routers, target, frame[rows])
    return choice
