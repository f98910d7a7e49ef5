"""The shape of the package (docs/architecture.md, *Layering*): no import circle between its
modules, no import up the layers of ``scripts/import_graph.py``'s ``LAYERS``, and the
third-party imports each layer is allowed (napari and Qt only in the napari adapters, torch
nowhere below the network and not at import time where a module promises it)."""

from __future__ import annotations

import ast
from pathlib import Path

from repo_scripts import load_script

#: Packages of the GUI: only the napari adapters may import them.
GUI = {"napari", "qtpy", "magicgui", "superqt", "vispy", "PyQt5", "PyQt6", "PySide2", "PySide6"}

#: Modules that must import without torch (they import it inside the functions that use it):
#: the CLI and the widget validate with them, and the tile geometry is testable without torch.
TORCH_DEFERRED = (
    "napari_cisr",
    "napari_cisr.registry",
    "napari_cisr.options",
    "napari_cisr.runtime",
    "napari_cisr.engine.plan",
)


def third_party_imports(path: Path) -> dict[str, bool]:
    """The top-level packages a source file imports → whether one of those imports runs when
    the module is imported (outside every function); ``if TYPE_CHECKING:`` blocks skipped."""
    found: dict[str, bool] = {}

    def visit(node: ast.AST, in_function: bool) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and "TYPE_CHECKING" in ast.unparse(child.test):
                continue
            inner = in_function or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef))
            names: list[str] = []
            if isinstance(child, ast.Import):
                names = [alias.name for alias in child.names]
            elif isinstance(child, ast.ImportFrom) and not child.level and child.module:
                names = [child.module]
            for name in names:
                top = name.split(".")[0]
                if top != "napari_cisr":
                    found[top] = found.get(top, False) or not inner
            visit(child, inner)

    visit(ast.parse(path.read_text()), False)
    return found


def _package_imports() -> dict[str, dict[str, bool]]:
    graph = load_script("import_graph")
    files = sorted(graph.PACKAGE.rglob("*.py"))
    return {graph.module_name(path): third_party_imports(path) for path in files}


def test_the_import_graph_has_no_circle():
    graph = load_script("import_graph")
    edges = graph.graph()
    assert "napari_cisr.engine.core" in edges and "napari_cisr.inference" in edges
    assert graph.find_circle(edges) is None


def test_no_module_imports_up_the_layers():
    graph = load_script("import_graph")
    assert graph.upward_imports(graph.graph()) == []


def test_an_upward_or_sideways_import_and_a_module_without_a_layer_are_named():
    graph = load_script("import_graph")
    edges = {
        "napari_cisr.model.cisr": {"napari_cisr.engine.core", "napari_cisr.blocking"},
        "napari_cisr.io.images": {"napari_cisr.model", "napari_cisr.registry"},
        "napari_cisr.engine.core": {"napari_cisr._cli.run", "napari_cisr.weights"},
        "napari_cisr.train.loop": {"napari_cisr.batch"},
        "napari_cisr._cli.run": {"napari_cisr._widget", "napari_cisr.inference"},
        "napari_cisr.newcomer": set(),
    }
    assert graph.upward_imports(edges) == [
        "napari_cisr.newcomer (no layer: add it to LAYERS)",
        "napari_cisr._cli.run (cli) -> napari_cisr._widget (napari)",
        "napari_cisr.engine.core (engine) -> napari_cisr._cli.run (cli)",
        "napari_cisr.io.images (io) -> napari_cisr.model (model)",
        "napari_cisr.model.cisr (model) -> napari_cisr.engine.core (engine)",
        "napari_cisr.train.loop (train) -> napari_cisr.batch (jobs)",
    ]


def test_a_circle_is_found_and_named():
    graph = load_script("import_graph")
    edges = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": set()}
    assert graph.find_circle(edges) == ["a", "b", "c", "a"]
    assert graph.find_circle({"a": {"b"}, "b": set()}) is None


def test_only_the_napari_adapters_import_napari_or_qt():
    graph = load_script("import_graph")
    for name, imports in _package_imports().items():
        if graph.layer_of(name)[1] != "napari":
            assert not imports.keys() & GUI, f"{name} imports {sorted(imports.keys() & GUI)}"


def test_torch_stays_below_the_network_and_out_of_the_light_modules():
    graph = load_script("import_graph")
    imports = _package_imports()
    for name, found in imports.items():
        if graph.layer_of(name)[1] in ("base", "io"):
            assert "torch" not in found, f"{name} imports torch"
        if graph.layer_of(name)[1] == "model":
            assert not found.keys() & {"dask", "distributed", "PIL", "zarr"}, name
    for name in TORCH_DEFERRED:
        assert not imports[name].get("torch"), f"{name} imports torch when it is imported"


def test_third_party_imports_tell_import_time_from_deferred(tmp_path):
    source = tmp_path / "module.py"
    source.write_text(
        "from typing import TYPE_CHECKING\n"
        "import numpy as np\n"
        "if TYPE_CHECKING:\n"
        "    import napari\n"
        "from napari_cisr import registry\n"
        "def run():\n"
        "    import torch\n"
        "class Widget:\n"
        "    from qtpy import QtWidgets\n"
    )
    assert third_party_imports(source) == {
        "typing": True,
        "numpy": True,
        "torch": False,
        "qtpy": True,
    }
