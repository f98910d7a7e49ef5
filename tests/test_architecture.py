"""The shape of the package: no import circle between its modules (docs/architecture.md)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "import_graph.py"


def _import_graph():
    spec = importlib.util.spec_from_file_location("import_graph", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_import_graph_has_no_circle():
    graph = _import_graph()
    edges = graph.graph()
    assert "napari_cisr.engine.core" in edges and "napari_cisr.inference" in edges
    assert graph.find_circle(edges) is None
    # nothing in the engine reaches back up to the modules built on it
    for name, deps in edges.items():
        if name.startswith("napari_cisr.engine"):
            assert not deps & {"napari_cisr.inference", "napari_cisr.tiling"}, name


def test_a_circle_is_found_and_named():
    graph = _import_graph()
    edges = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": set()}
    assert graph.find_circle(edges) == ["a", "b", "c", "a"]
    assert graph.find_circle({"a": {"b"}, "b": set()}) is None
