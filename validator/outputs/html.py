"""report.html: a self-contained page (jinja2, autoescaped) rendered from the summary."""

from __future__ import annotations

from collections import defaultdict

from jinja2 import Environment, PackageLoader, select_autoescape


def degradation_grid(summary: dict) -> dict[str, dict[str, dict[str, dict]]]:
    """candidate -> slice -> dimension -> check, in the summary's order."""
    grid: dict = defaultdict(lambda: defaultdict(dict))
    for check in summary["checks"]:
        grid[check["candidate"]][check["slice"]][check["dimension"]] = check
    return grid


def num(value, digits: int = 2, suffix: str = "") -> str:
    return "n/a" if value is None else f"{value:.{digits}f}{suffix}"


def megabytes(value) -> str:
    return num(None if value is None else value / 1e6, 1)


def render_html(summary: dict) -> str:
    environment = Environment(loader=PackageLoader("validator.outputs", "templates"),
                              autoescape=select_autoescape(default=True, default_for_string=True),
                              trim_blocks=True, lstrip_blocks=True)
    environment.filters.update(num=num, mb=megabytes)
    template = environment.get_template("report.html.j2")
    dimensions = [*summary["rubric"]["dimensions"], "_all"]
    problems = sorted((c for c in summary["checks"] if c["verdict"] != "pass"),
                      key=lambda c: (c["verdict"] != "fail", -(c["degradation"] or 0)))
    return template.render(summary=summary, grid=degradation_grid(summary),
                           dimensions=dimensions, problems=problems)
