"""The import graph of src/forgesyte: no cycle, and the layers import only downwards.

The graph is read from the source with `ast`, not by importing it: every `import` and
`from ... import` of a forgesyte module counts wherever it stands (at the top, inside a
function, under `if TYPE_CHECKING:`), since each of them ties the two modules together.
"""

from __future__ import annotations

import ast
import graphlib
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[2] / "src"

# (importing package, imported package): the arrow may never run this way
FORBIDDEN = [
    ("forgesyte.db", "forgesyte.jobs"),  # jobs -> db, never back
    *(
        ("forgesyte.jobs", layer)
        for layer in ("forgesyte.api", "forgesyte.workers", "forgesyte.runtime", "forgesyte.cli")
    ),
    *(
        ("forgesyte.workers", layer)
        for layer in ("forgesyte.api", "forgesyte.runtime", "forgesyte.cli")
    ),
]

Graph = dict[str, set[str]]

# The API process never decodes video: its packages may not import the decoder, not even
# through another module (previews and thumbnails are made by child processes).
DECODER = "forgesyte.video.decoder"
NEVER_DECODE = ("forgesyte.api", "forgesyte.results")


def module_name(root: Path, path: Path) -> str:
    """The dotted name of a source file under root (a package is its __init__)."""
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imported_modules(tree: ast.Module, name: str, is_package: bool, known: set[str]) -> set[str]:
    """The known modules a module's source imports, anywhere in it."""
    package = name if is_package else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: from the package, `level - 1` packages up
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            for alias in node.names:  # `from package import submodule` imports the submodule
                submodule = f"{base}.{alias.name}"
                found.add(submodule if submodule in known else base)
    return {module for module in found if module in known and module != name}


def import_graph(root: Path, top: str = "forgesyte") -> Graph:
    """Every module of package `top` under root, with the modules of it that it imports."""
    paths = {module_name(root, path): path for path in (root / top).rglob("*.py")}
    known = set(paths)
    return {
        name: imported_modules(
            ast.parse(path.read_text(), str(path)), name, path.name == "__init__.py", known
        )
        for name, path in paths.items()
    }


def cycle_in(graph: Graph) -> list[str] | None:
    """One import cycle of the graph (its first module repeated at the end), or None."""
    try:
        tuple(graphlib.TopologicalSorter(graph).static_order())
    except graphlib.CycleError as error:
        return list(error.args[1])
    return None


def within(module: str, package: str) -> bool:
    """Whether module is package or one of its submodules."""
    return module == package or module.startswith(package + ".")


def test_src_has_no_import_cycle() -> None:
    graph = import_graph(SRC)
    assert "forgesyte.workers.segment_work" in graph["forgesyte.workers.worker"]  # it reads
    assert cycle_in(graph) is None, " -> ".join(cycle_in(graph) or [])


@pytest.mark.parametrize(("importer", "imported"), FORBIDDEN)
def test_a_layer_never_imports_one_above_it(importer: str, imported: str) -> None:
    wrong = sorted(
        f"{module} imports {target}"
        for module, targets in import_graph(SRC).items()
        if within(module, importer)
        for target in targets
        if within(target, imported)
    )
    assert wrong == []


def test_a_cycle_through_a_type_checking_import_is_found(tmp_path: Path) -> None:
    package = tmp_path / "forgesyte"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "first.py").write_text("from forgesyte.second import Thing\n")
    (package / "second.py").write_text(
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n"
        "    from forgesyte import first\n"
        "class Thing:\n"
        "    def use(self) -> None:\n"
        "        from . import third\n"
    )
    (package / "third.py").write_text("import forgesyte.first\n")
    graph = import_graph(tmp_path)
    assert graph["forgesyte.second"] == {"forgesyte.first", "forgesyte.third"}
    assert graph["forgesyte.third"] == {"forgesyte.first"}
    found = cycle_in(graph)
    assert found is not None and set(found) >= {"forgesyte.first", "forgesyte.second"}
    (package / "second.py").write_text("class Thing:\n    pass\n")
    assert cycle_in(import_graph(tmp_path)) is None


def path_to(graph: Graph, start: str, target: str) -> list[str] | None:
    """A chain of imports from start to target (both included), or None."""
    came_from: dict[str, str] = {}
    frontier, seen = [start], {start}
    while frontier:
        module = frontier.pop()
        if module == target:
            chain = [module]
            while chain[-1] != start:
                chain.append(came_from[chain[-1]])
            return chain[::-1]
        for imported in sorted(graph.get(module, ())):
            if imported not in seen:
                seen.add(imported)
                came_from[imported] = module
                frontier.append(imported)
    return None


@pytest.mark.parametrize("package", NEVER_DECODE)
def test_the_api_and_results_never_import_the_decoder(package: str) -> None:
    graph = import_graph(SRC)
    chains = [
        " -> ".join(chain)
        for module in sorted(graph)
        if within(module, package) and (chain := path_to(graph, module, DECODER))
    ]
    assert chains == []


def test_the_decoder_rule_finds_an_import_through_another_module(tmp_path: Path) -> None:
    package = tmp_path / "forgesyte"
    (package / "api").mkdir(parents=True)
    (package / "video").mkdir()
    for folder in (package, package / "api", package / "video"):
        (folder / "__init__.py").write_text("")
    (package / "video" / "decoder.py").write_text("")
    (package / "helper.py").write_text("def draw() -> None:\n    import forgesyte.video.decoder\n")
    (package / "api" / "route.py").write_text("from forgesyte import helper\n")
    graph = import_graph(tmp_path)
    assert path_to(graph, "forgesyte.api.route", DECODER) == [
        "forgesyte.api.route",
        "forgesyte.helper",
        DECODER,
    ]
