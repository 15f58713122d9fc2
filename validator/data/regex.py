"""Regexes from YAML (slice ``matches``, regex expectations) on RE2, the linear-time
engine: a pattern RE2 cannot run (backreferences, lookaround) is refused with the
reason, so no input can make a regex backtrack for minutes."""

from __future__ import annotations

import re
from typing import Any

import re2

from validator.errors import SliceError

MAX_REGEX_LENGTH = 500


def compile_regex(pattern: Any, where: str):
    if not isinstance(pattern, str) or not pattern:
        raise SliceError(f"{where}: 'matches' takes a non-empty regex string, got {pattern!r}")
    if len(pattern) > MAX_REGEX_LENGTH:
        raise SliceError(f"{where}: regex longer than {MAX_REGEX_LENGTH} characters")
    options = re2.Options()
    options.log_errors = False  # RE2 would log to stderr; the reason goes in our message
    try:
        return re2.compile(pattern, options)
    except re2.error as exc:
        reason = exc.args[0].decode() if isinstance(exc.args[0], bytes) else str(exc.args[0])
        try:
            re.compile(pattern)
        except re.error as invalid:
            raise SliceError(f"{where}: invalid regex {pattern!r} ({invalid})") from exc
        raise SliceError(f"{where}: regex {pattern!r} is not supported by RE2, the "
                         f"linear-time engine slices use ({reason}); backreferences and "
                         f"lookaround are not available") from exc
