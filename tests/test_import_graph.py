"""The import graph of ``streid_lib`` (docs/architecture.md): no cycle, and no import the architecture forbids.

Every ``import`` statement counts, also those inside functions (a lazy import hides a cycle at import time but not
from the design).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

LIB = Path(__file__).resolve().parents[1] / "streid_lib"

#: The evaluation side (numpy/scipy/scikit-learn): no torch, no visual stream.
EVALUATION_SIDE = ("metadata", "features", "st_model", "joint", "metrics", "evaluation", "rerank", "improved", "campus")
#: Lazy torch imports the architecture allows on the evaluation side: none.
TORCH_ALLOWED: set[str] = set()
#: The library below the study: never imports the study, the notebook runner or the command line.
ABOVE_LIBRARY = ("streid_lib.study", "streid_lib.cli", "streid_lib.reproduce", "streid_lib.__main__")


def module_name(path: Path) -> str:
    parts = list(path.relative_to(LIB.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules() -> dict[str, Path]:
    return {module_name(p): p for p in LIB.rglob("*.py")}


def imports_of(name: str, path: Path, known: set[str]) -> set[str]:
    """Every module that ``name`` imports (absolute names; streid_lib submodules resolved where they exist)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            out.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            for alias in node.names:  # `from . import x` names a submodule when one exists
                sub = f"{target}.{alias.name}"
                out.add(sub if sub in known else target)
    return {m for m in out if m != name}


@pytest.fixture(scope="module")
def graph() -> dict[str, set[str]]:
    mods = modules()
    known = set(mods)
    return {name: imports_of(name, path, known) for name, path in mods.items()}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle among the library's modules (a list of names, first = last), or None."""
    internal = {m: {d for d in deps if d in graph} for m, deps in graph.items()}
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(m: str) -> list[str] | None:
        state[m] = 1
        stack.append(m)
        for d in sorted(internal[m]):
            # a package's __init__ aggregates its own submodules: an edge from a submodule to its package is the
            # parent-package import Python always does, not a design dependency
            if m.startswith(d + "."):
                continue
            if state.get(d) == 1:
                return stack[stack.index(d) :] + [d]
            if d not in state and (found := visit(d)):
                return found
        stack.pop()
        state[m] = 2
        return None

    for m in sorted(internal):
        if m not in state and (found := visit(m)):
            return found
    return None


def test_no_import_cycle(graph) -> None:
    cycle = find_cycle(graph)
    assert cycle is None, "import cycle: " + " → ".join(cycle)


def test_the_cycle_check_sees_a_cycle() -> None:
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def _in(name: str, prefixes: tuple[str, ...]) -> bool:
    return any(name == p or name.startswith(p + ".") for p in prefixes)


def test_evaluation_side_imports_no_torch_and_no_visual_stream(graph) -> None:
    side = tuple(f"streid_lib.{m}" for m in EVALUATION_SIDE)
    bad = sorted(
        f"{m} → {d}"
        for m, deps in graph.items()
        if _in(m, side)
        for d in deps
        if (_in(d, ("torch", "torchvision")) and m not in TORCH_ALLOWED) or _in(d, ("streid_lib.visual",))
    )
    assert not bad, bad


def test_library_imports_neither_study_nor_command_line(graph) -> None:
    bad = sorted(
        f"{m} → {d}"
        for m, deps in graph.items()
        if not _in(m, ABOVE_LIBRARY) and m != "streid_lib.plots"
        for d in deps
        if _in(d, ABOVE_LIBRARY)
    )
    assert not bad, bad


def test_visual_stream_imports_neither_joint_metric_nor_metrics(graph) -> None:
    bad = sorted(
        f"{m} → {d}"
        for m, deps in graph.items()
        if _in(m, ("streid_lib.visual",))
        for d in deps
        if _in(d, ("streid_lib.joint", "streid_lib.metrics"))
    )
    assert not bad, bad


def test_no_private_name_is_imported_across_modules() -> None:
    bad = []
    for name, path in modules().items():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.level:
                private = [a.name for a in node.names if a.name.startswith("_") and not a.name.startswith("__")]
                bad += [f"{name}: {p}" for p in private]
    assert not bad, bad
