"""Routed candidates in a gate config, checked when the config is parsed: every route's
targets are scorers of the config and no route leads back to itself. The rules' slices
are resolved by validator.routing once the slices are loaded."""

from __future__ import annotations

from validator.errors import ConfigError


def check_routes(config) -> None:
    """Targets exist and no route leads back to itself (``config``: a parsed Config)."""
    names = [s.name for s in config.scorers]
    routes = {c.name: (c.key, c.route) for c in config.candidates if c.route is not None}
    if config.reference.route is not None:
        raise ConfigError(f"{config.source}: reference.route: the reference cannot be routed")
    for name, (key, raw) in routes.items():
        for i, entry in enumerate(raw):
            if not isinstance(entry, dict) or not {"to", "default"} & set(entry):
                continue  # not a rule: routing.parse_rules names the problem
            target = entry.get("to", entry.get("default"))
            if target not in names:  # null included: str(None) would name no scorer
                raise ConfigError(f"{config.source}: {key}.route[{i}]: unknown scorer "
                                  f"{target!r} (valid: {', '.join(n for n in names if n != name)})")
    for name in routes:
        _find_cycle(name, routes, [name], config.source)


def _targets(raw) -> list:
    return [e.get("to", e.get("default")) for e in raw if isinstance(e, dict)]


def _find_cycle(name: str, routes: dict, path: list[str], source: str) -> None:
    key, raw = routes[name]
    for i, target in enumerate(_targets(raw)):
        if target == path[0]:
            raise ConfigError(f"{source}: {key}.route[{i}]: routing cycle "
                              f"{' -> '.join([*path, target])}")
        if target in routes and target not in path:
            _find_cycle(target, routes, [*path, target], source)
