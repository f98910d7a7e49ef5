"""The import graph of ``src/napari_cisr``: print it as a Mermaid diagram, fail on a circle
or on an import that goes up the layers.

Every ``import``/``from ... import`` of a ``napari_cisr`` module counts, at module level or
inside a function (a deferred import is still a dependency), except those under
``if TYPE_CHECKING:``. Sub-packages (``model``, ``engine``, ``io``, ``train``, ``_batch``,
``_cli``) are drawn as one node each; a circle is looked for between modules, not packages.
Every module belongs to one of :data:`LAYERS` and imports only its own layer and lower ones.

    python scripts/import_graph.py            # Mermaid text, for docs/architecture.md
    python scripts/import_graph.py --check    # exit 1 and name the circle or upward imports
    python scripts/import_graph.py --layers   # each layer and its modules
"""

from __future__ import annotations

import argparse
import ast
import sys
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "napari_cisr"
GROUPS = ("model", "engine", "io", "train", "_batch", "_cli")

#: The layers of the package, lowest first: (rank, name, the top-level modules or sub-packages
#: in it; "" is the package's own ``__init__``). A module may import its own layer and layers of
#: a lower rank; two layers of one rank are independent of each other (io knows no network,
#: the network no files; training and the job runners; the CLI and the napari adapters).
LAYERS: tuple[tuple[int, str, tuple[str, ...]], ...] = (
    (0, "base", ("", "registry", "options", "values", "progress", "metrics", "degrade")),
    (1, "io", ("io", "metadata", "quantisation")),
    (1, "model", ("model", "blocking", "blocking_grid")),
    (2, "runtime", ("runtime", "weights")),
    (3, "engine", ("engine",)),
    (4, "api", ("inference", "tiling", "compression")),
    (5, "jobs", ("photo_jobs", "batch", "_batch", "_job")),
    (5, "train", ("train",)),
    (6, "cli", ("cli", "_cli")),
    (6, "napari", ("_widget", "_controls", "_layers", "_reader", "_writer", "_sample_data")),
)


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


def layer_of(name: str) -> tuple[int, str] | None:
    """(rank, layer) of a module ``napari_cisr[.top[...]]``, or None if no layer lists it."""
    top = name.split(".")[1] if "." in name else ""
    for rank, layer, members in LAYERS:
        if top in members:
            return rank, layer
    return None


def upward_imports(edges: dict[str, set[str]]) -> list[str]:
    """Each import that breaks the layering, as "module (layer) -> module (layer)", and each
    module no layer lists; empty when the layering holds."""
    found = [f"{name} (no layer: add it to LAYERS)" for name in edges if layer_of(name) is None]
    for name, deps in sorted(edges.items()):
        own = layer_of(name)
        for dep in sorted(deps):
            theirs = layer_of(dep)
            if own and theirs and theirs[1] != own[1] and theirs[0] >= own[0]:
                found.append(f"{name} ({own[1]}) -> {dep} ({theirs[1]})")
    return found


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
    parser.add_argument(
        "--check", action="store_true", help="only look for a circle and upward imports"
    )
    parser.add_argument("--layers", action="store_true", help="print each layer's modules")
    args = parser.parse_args(argv)
    edges = graph()
    circle = find_circle(edges)
    upward = upward_imports(edges)
    if circle:
        print("import circle: " + " -> ".join(circle), file=sys.stderr)
    for line in upward:
        print(f"upward import: {line}", file=sys.stderr)
    if circle or upward:
        return 1
    if args.layers:
        for rank, layer, _ in LAYERS:
            members = sorted(name for name in edges if layer_of(name) == (rank, layer))
            print(f"{rank} {layer}: {', '.join(members)}")
    elif not args.check:
        print(mermaid(edges))
    return 0


if __name__ == "__main__":
    sys.exit(main())
