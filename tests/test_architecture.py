"The library's shape stays readable: imports run one way in chapter order, no cycles, no module past ~400 lines."
import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LIB = ROOT / "gpt2_edu"
MAX_LINES = 410   # "~400": a little slack for a docstring, never a second module's worth
GENERATED = {"_modidx", "__init__"}


def _modules() -> dict[str, Path]:
    "Every library module except nbdev's generated index, by name."
    return {p.stem: p for p in sorted(LIB.glob("*.py")) if p.stem not in GENERATED}


def _notebook_of(path: Path) -> str:
    "The notebook a module is exported from, read from nbdev's header line."
    match = re.search(r"File to edit: \.\./nbs/(\S+\.ipynb)", path.read_text())
    assert match, f"{path.name} has no nbdev header: every module must be exported from a notebook"
    return match.group(1)


def _imports(path: Path) -> set[str]:
    "The gpt2_edu modules `path` imports, at any depth of the file (lazy imports included)."
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level == 1 and node.module:
                found.add(node.module.split(".")[0])
            elif node.level == 1:
                found.update(alias.name for alias in node.names)
            elif node.module and node.module.startswith("gpt2_edu."):
                found.add(node.module.split(".")[1])
            elif node.module == "gpt2_edu":
                found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.Import):
            found.update(alias.name.split(".")[1] for alias in node.names if alias.name.startswith("gpt2_edu."))
    return found & set(_modules())


def _graph() -> dict[str, set[str]]:
    return {name: _imports(path) - {name} for name, path in _modules().items()}


def test_every_module_comes_from_a_notebook_that_exists():
    for name, path in _modules().items():
        assert (ROOT / "nbs" / _notebook_of(path)).exists(), f"{name}.py is exported from a notebook that is gone"


def test_imports_follow_chapter_order():
    "A module imports only from modules of its own or earlier notebooks (notebook names sort in chapter order)."
    modules = _modules()
    backwards = []
    for name, deps in _graph().items():
        for dep in deps:
            if _notebook_of(modules[dep]) > _notebook_of(modules[name]):
                backwards.append(f"{name} ({_notebook_of(modules[name])}) imports {dep} ({_notebook_of(modules[dep])})")
    assert not backwards, "imports from a later chapter:\n" + "\n".join(backwards)


def test_no_import_cycle():
    graph, state, cycles = _graph(), {}, []

    def visit(node, stack):
        state[node] = "open"
        for dep in sorted(graph[node]):
            if state.get(dep) == "open":
                cycles.append(" -> ".join(stack[stack.index(dep):] + [dep]))
            elif dep not in state:
                visit(dep, stack + [dep])
        state[node] = "done"

    for start in sorted(graph):
        if start not in state:
            visit(start, [start])
    assert not cycles, "import cycles:\n" + "\n".join(cycles)


@pytest.mark.parametrize("name", sorted(_modules()))
def test_module_fits_in_a_readers_head(name):
    lines = len(_modules()[name].read_text().splitlines())
    assert lines <= MAX_LINES, f"{name}.py has {lines} lines (> ~400): split it by idea into its own notebook section"


def test_the_checker_sees_real_edges():
    "The graph is not empty by accident: the model is built from attention."
    assert "attention" in _graph()["model"]
