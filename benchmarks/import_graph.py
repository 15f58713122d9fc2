"""The import graph of ``validator/`` in figures: modules, import arrows, arrows written
inside functions, module cycles and package-level loops (docs/architecture.md).

Run from a checkout (any commit), with grimp installed (import-linter brings it)::

    PYTHONPATH=. python benchmarks/import_graph.py [--package validator]

Upward imports are what ``lint-imports`` reports against the contracts in pyproject.toml.
"""

from __future__ import annotations

import argparse
import ast
import json
from pathlib import Path

import grimp


def strongly_connected(nodes: set[str], edges: dict[str, set[str]]) -> list[list[str]]:
    """Tarjan's components with more than one node (the cycles), iteratively."""
    index, low, on_stack, stack, found, counter = {}, {}, set(), [], [], [0]

    def visit(root: str) -> None:
        work = [(root, iter(sorted(edges.get(root, ()))))]
        index[root] = low[root] = counter[0]
        counter[0] += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is None:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
                if low[node] == index[node]:
                    component = []
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        component.append(member)
                        if member == node:
                            break
                    if len(component) > 1:
                        found.append(sorted(component))
            elif child not in index:
                index[child] = low[child] = counter[0]
                counter[0] += 1
                stack.append(child)
                on_stack.add(child)
                work.append((child, iter(sorted(edges.get(child, ())))))
            elif child in on_stack:
                low[node] = min(low[node], index[child])

    for node in sorted(nodes):
        if node not in index:
            visit(node)
    return found


def function_level_imports(package: str) -> int:
    """Imports of the package written inside a function (not at module level)."""
    count = 0
    for path in Path(package).rglob("*.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for function in (n for n in ast.walk(tree)
                         if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))):
            for node in ast.walk(function):
                if isinstance(node, ast.ImportFrom) and (node.module or "").startswith(package):
                    count += 1
                elif isinstance(node, ast.Import):
                    count += sum(a.name.startswith(package) for a in node.names)
    return count


def folder(module: str, package: str) -> str:
    """The first level below the package: ``validator.judge`` or ``validator.config``."""
    parts = module.split(".")
    return ".".join(parts[:2]) if len(parts) > 1 else package


def module_lines(module: str) -> int:
    """Lines of a module's file (a package's ``__init__.py``), from the checkout."""
    path = Path(*module.split("."))
    path = path.with_suffix(".py") if path.with_suffix(".py").exists() else path / "__init__.py"
    return len(path.read_text(encoding="utf-8").splitlines())


def measure(package: str) -> dict:
    graph = grimp.build_graph(package)
    modules = graph.modules
    edges = {m: graph.find_modules_directly_imported_by(m) for m in modules}
    arrows = sum(len(targets) for targets in edges.values())
    folders = {folder(m, package) for m in modules}
    folder_edges: dict[str, set[str]] = {}
    for source, targets in edges.items():
        for target in targets:
            a, b = folder(source, package), folder(target, package)
            if a != b:
                folder_edges.setdefault(a, set()).add(b)
    longest = max(module_lines(m) for m in modules)
    return {"modules": len(modules), "arrows": arrows,
            "function_level_imports": function_level_imports(package),
            "module_cycles": strongly_connected(set(modules), edges),
            "folders": len(folders),
            "folder_loops": strongly_connected(folders, folder_edges),
            "longest_module_lines": longest}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--package", default="validator")
    print(json.dumps(measure(parser.parse_args().package), indent=2))


if __name__ == "__main__":
    main()
