"""One exception tree for every way a run can fail to decide.

    ValidatorError            exit 2: the run could not decide
     ├── ConfigError          the config file: unknown key, wrong type, bad reference
     ├── SampleError          the sample file: unreadable, missing column, bad ratings
     ├── SliceError           a slice file: bad YAML, unknown column, bad operator/regex
     ├── ModelError           a scorer's model: missing, not safetensors, wrong outputs
     └── ScoringError         predictions: NaN/inf, wrong shape

Every message names the file and the key, column or row at fault. Third-party
errors are mapped to these at the edge with ``raise ... from exc``; the CLI prints
the message alone (the traceback only with ``--debug``).
"""

from __future__ import annotations


class ValidatorError(Exception):
    """The run could not decide; the CLI exits 2 with this message."""


class ConfigError(ValidatorError):
    pass


class SampleError(ValidatorError):
    pass


class SliceError(ValidatorError):
    pass


class ModelError(ValidatorError):
    pass


class ScoringError(ValidatorError):
    pass


def choices_error(kind: str, given: object, valid) -> str:
    """The message for an unknown registry name: what was given and what is allowed."""
    return f"unknown {kind} {given!r} (valid: {', '.join(sorted(valid))})"


def first_line(exc: BaseException) -> str:
    """The first line of a third-party error's message (its type name when it has none),
    for one-line messages."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _key(loc: tuple) -> str:
    """A pydantic location as the config spells it: ``gate.overrides[1].max_drop``."""
    key = ""
    for part in loc:
        key += f"[{part}]" if isinstance(part, int) else f".{part}" if key else str(part)
    return key


def validation_message(error: dict) -> str:
    """One pydantic error as the config spells it: ``gate.max_dorp: unknown key``."""
    key = _key(error["loc"]) or "(top level)"
    if error["type"] == "extra_forbidden":
        return f"{key}: unknown key"
    if error["type"] == "missing":
        return f"{key}: required key is missing"
    given = error.get("input")
    shown = f" (got {given!r})" if isinstance(given, (str, int, float, bool)) else ""
    message = error["msg"].removeprefix("Value error, ")
    return f"{key}: {message}{shown}"
