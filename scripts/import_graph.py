"""The import graph of ``src/napari_cisr``: print it as a Mermaid diagram, fail on a circle.

Every ``import``/``from ... import`` of a ``napari_cisr`` module counts, at module level or
inside a function (a deferred import is still a dependency), except those under
``if TYPE_CHECKING:``. Sub-packages (``model``, ``engine``, ``io``, ``train``, ``_batch``,
``_cli``) are drawn as one node each; a circle is looked for between modules, not packages.

    python scripts/import_graph.py            # Mermaid text, for docs/architecture.md
    python scripts/import_graph.py --check    # exit 1 and name the circle if there is one
"""

from __future__ import annotations

import argparse
import ast
import sys
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "napari_cisr"
GROUPS = ("model", "engine", "io", "train", "_batch", "_cli")


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _type_checking_lines(tree: ast.Module) -> set[int]:
    lines: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            for child in node.body:
                lines.update(range(child.lineno, (child.end_lineno or child.lineno) + 1))
    return lines


def imports_of(path: Path, modules: set[str]) -> set[str]:
    """The napari_cisr modules that the module in ``path`` imports."""
    tree = ast.parse(path.read_text(), filename=str(path))
    skip = _type_checking_lines(tree)
    own = module_name(path)
    package = own if path.name == "__init__.py" else own.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(tree):
        if getattr(node, "lineno", None) in skip:
            continue
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1])
                base = f"{base}.{node.module}" if node.module else base
            names = [base] + [f"{base}.{alias.name}" for alias in node.names]
        else:
            continue
        for name in names:
            while name and name not in modules:
                name = name.rpartition(".")[0]
            if name and name != own:
                found.add(name)
    return found


def graph() -> dict[str, set[str]]:
    files = sorted(PACKAGE.rglob("*.py"))
    modules = {module_name(f) for f in files}
    return {module_name(f): imports_of(f, modules) for f in files}


def find_circle(edges: dict[str, set[str]]) -> list[str] | None:
    """A circle of imports between modules (a package's ``__init__`` re-exporting its own
    modules is not one), or None."""

    def deps(name: str) -> set[str]:
        # A module importing its own package's __init__ for a name defined in a sibling.
        return {d for d in edges[name] if not name.startswith(d + ".")}

    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(name: str) -> list[str] | None:
        state[name] = 1
        stack.append(name)
        for dep in sorted(deps(name)):
            if state.get(dep) == 1:
                return [*stack[stack.index(dep) :], dep]
            if dep not in state and (found := visit(dep)):
                return found
        stack.pop()
        state[name] = 2
        return None

    for name in sorted(edges):
        if name not in state and (found := visit(name)):
            return found
    return None


def node(name: str) -> str:
    parts = name.split(".")
    if len(parts) > 1 and parts[1] in GROUPS:
        return f"{parts[1]}/"
    return parts[-1]


def mermaid(edges: dict[str, set[str]]) -> str:
    pairs = sorted(
        {(node(a), node(b)) for a, deps in edges.items() for b in deps if node(a) != node(b)}
        - {("napari_cisr", n) for n in map(node, edges)}
    )
    ids = {name: name.replace("/", "_pkg").lstrip("_") for pair in pairs for name in pair}
    lines = ["graph LR"]
    lines += [f'    {ids[a]}["{a}"] --> {ids[b]}["{b}"]' for a, b in pairs]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only look for a circle")
    args = parser.parse_args(argv)
    edges = graph()
    circle = find_circle(edges)
    if circle:
        print("import circle: " + " -> ".join(circle), file=sys.stderr)
        return 1
    if not args.check:
        print(mermaid(edges))
    return 0


if __name__ == "__main__":
    sys.exit(main())
