"""The library's shape stays readable: a package per part of the book, imports one way in chapter order, no cycle,
no module past 400 lines, every method of a class defined where the class is, and lazy public names."""

import ast
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LIB = ROOT / "gpt2_edu"
MAX_LINES = 400
PARTS = {"tokenizer", "model", "train", "zeroshot", "studies", "cli"}  # one sub-package per part of the book


def _modules() -> dict[str, Path]:
    "Every library module, by dotted name (`gpt2_edu.model.gpt`); nbdev's index and the empty package files left out."
    found = {}
    for path in sorted(LIB.rglob("*.py")):
        if path.name == "_modidx.py" or (path.name == "__init__.py" and not path.read_text().strip()):
            continue
        parts = path.relative_to(ROOT).with_suffix("").parts
        found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


def _notebook_of(path: Path) -> str:
    "The notebook a module is exported from, read from nbdev's header line."
    match = re.search(r"File to edit: (?:\.\./)+nbs/(\S+\.ipynb)", path.read_text())
    assert match, f"{path} has no nbdev header: every module must be exported from a notebook"
    return match.group(1)


def _package_of(name: str, path: Path) -> str:
    return name if path.name == "__init__.py" else name.rsplit(".", 1)[0]


def _imports(name: str, path: Path) -> set[str]:
    "The library modules `path` imports, at any depth of the file (lazy imports included), relative ones resolved."
    modules = _modules()
    package = _package_of(name, path)
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            candidates = [target] + [f"{target}.{alias.name}" for alias in node.names]
        elif isinstance(node, ast.Import):
            candidates = [alias.name for alias in node.names]
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value.startswith("gpt2_edu."):
            candidates = [node.value]  # importlib.import_module("gpt2_edu.x")
        else:
            continue
        found.update(candidate for candidate in candidates if candidate in modules)
    return found - {name}


def _graph() -> dict[str, set[str]]:
    return {name: _imports(name, path) for name, path in _modules().items()}


def _chapter(notebook: str) -> str:
    "A notebook's place in the book: its file name sorts in chapter order (00_corpus ... 95_package)."
    return Path(notebook).name


def test_every_module_comes_from_a_notebook_that_exists():
    for name, path in _modules().items():
        assert (ROOT / "nbs" / _notebook_of(path)).exists(), f"{name} is exported from a notebook that is gone"


def test_the_parts_of_the_book_are_packages():
    packages = {path.parent.name for path in LIB.glob("*/__init__.py")}
    assert packages == PARTS, f"sub-packages {sorted(packages)}; the book's parts are {sorted(PARTS)}"


def test_imports_follow_chapter_order():
    "A module imports only from modules of its own or earlier notebooks."
    modules = _modules()
    backwards = []
    for name, deps in _graph().items():
        for dep in deps:
            if _chapter(_notebook_of(modules[dep])) > _chapter(_notebook_of(modules[name])):
                backwards.append(f"{name} ({_notebook_of(modules[name])}) imports {dep} ({_notebook_of(modules[dep])})")
    assert not backwards, "imports from a later chapter:\n" + "\n".join(backwards)


def test_no_import_cycle():
    graph, state, cycles = _graph(), {}, []

    def visit(node, stack):
        state[node] = "open"
        for dep in sorted(graph[node]):
            if state.get(dep) == "open":
                cycles.append(" -> ".join(stack[stack.index(dep) :] + [dep]))
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
    assert lines <= MAX_LINES, f"{name} has {lines} lines (> {MAX_LINES}): split it by idea into its own notebook"


@pytest.mark.parametrize("name", sorted(_modules()))
def test_lines_fit_in_120_columns(name):
    "The project's line length, held for the library too (ruff cannot: nbdev wraps its `__all__` line past it)."
    lines = _modules()[name].read_text().splitlines()
    long = [
        f"line {number}: {len(line)} columns"
        for number, line in enumerate(lines, start=1)
        if len(line) > 120 and not line.startswith("__all__ = [")
    ]
    assert not long, f"{name}: " + "; ".join(long) + " (rewrap the cell in the notebook, then nbdev-export)"


def test_the_checker_sees_real_edges():
    "The graph is not empty by accident: the model is built from attention, relative imports resolved."
    graph = _graph()
    assert "gpt2_edu.model.attention" in graph["gpt2_edu.model.gpt"]
    assert "gpt2_edu.train.runs" in graph["gpt2_edu.explorer"]
    assert "gpt2_edu.model.gpt" in graph["gpt2_edu"]  # the lazy names, by their module's name


def _fresh(code: str) -> str:
    "What `code` prints in a new interpreter."
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_gpt_methods_need_no_other_import():
    out = _fresh("from gpt2_edu import GPT; print(GPT.from_pretrained.__name__, GPT.generate.__name__)")
    assert out.split() == ["from_pretrained", "generate"]


def _own_names(module_path: Path) -> dict[str, set[str]]:
    "For each public class a module defines: the attributes its module gives it (class body, and `@patch` there)."
    tree = ast.parse(module_path.read_text())
    names = {}
    for node in tree.body:
        if isinstance(node, ast.ClassDef) and not node.name.startswith("_"):
            body = set()
            for item in node.body:
                if isinstance(item, (ast.FunctionDef, ast.AsyncFunctionDef)):
                    body.add(item.name)
                elif isinstance(item, ast.Assign):
                    body |= {target.id for target in item.targets if isinstance(target, ast.Name)}
                elif isinstance(item, ast.AnnAssign) and isinstance(item.target, ast.Name):
                    body.add(item.target.id)
            names[node.name] = body
    for node in tree.body:  # fastcore's @patch, in the class's own module
        if isinstance(node, ast.FunctionDef) and node.args.args and node.args.args[0].annotation is not None:
            owner = ast.unparse(node.args.args[0].annotation)
            if owner in names and any("patch" in ast.unparse(d) for d in node.decorator_list):
                names[owner].add(node.name)
    return names


def test_every_method_is_defined_where_its_class_is():
    "With the whole library loaded, every class has exactly the public attributes its own module gives it."
    expected = {
        f"{module}.{cls}": sorted(names)
        for module, path in _modules().items()
        for cls, names in _own_names(path).items()
    }
    probe = (
        "import importlib, json, sys\n"
        "expected = json.loads(sys.argv[1])\n"
        "for module in sorted({name.rsplit('.', 1)[0] for name in expected}): importlib.import_module(module)\n"
        "found = {}\n"
        "for name in expected:\n"
        "    module, cls = name.rsplit('.', 1)\n"
        "    own = vars(getattr(sys.modules[module], cls))\n"
        "    found[name] = sorted(a for a in own if not a.startswith('_'))\n"
        "print(json.dumps(found))"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe, json.dumps(expected)], capture_output=True, text=True, cwd=ROOT, timeout=300
    )
    assert done.returncode == 0, done.stderr
    found = json.loads(done.stdout)
    added = {
        name: sorted(set(found[name]) - {a for a in expected[name] if not a.startswith("_")})
        for name in expected
        if set(found[name]) - set(expected[name])
    }
    assert not added, (
        f"public attributes added to a class from another module (define them where the class is): {added}"
    )
    assert "generate" in found["gpt2_edu.model.gpt.GPT"] and "from_pretrained" in found["gpt2_edu.model.gpt.GPT"]


def test_the_public_names_resolve_lazily():
    out = _fresh(
        "import sys, gpt2_edu\n"
        "print(sorted(m for m in sys.modules if m.startswith('gpt2_edu.')))\n"
        "print(all(getattr(gpt2_edu, name) is not None for name in gpt2_edu.__all__))"
    )
    loaded, resolved = out.splitlines()
    assert loaded == "[]", f"`import gpt2_edu` imported {loaded}: the public names must load on first use"
    assert resolved == "True"
    import gpt2_edu

    assert set(gpt2_edu.__all__) >= {
        "GPT",
        "GPTConfig",
        "Tokenizer",
        "gpt2_tokenizer",
        "load_model",
        "Trainer",
        "TrainConfig",
        "load_tokens",
        "loglikelihood",
        "explore",
        "TASKS",
    }


def test_the_explorer_loads_no_task():
    "The explorer needs the model, the tokenizer, the loader and the engine's eval mode: never a zero-shot task."
    out = _fresh(
        "import sys, gpt2_edu.explorer\nprint('\\n'.join(sorted(m for m in sys.modules if m.startswith('gpt2_edu'))))"
    )
    assert set(out.split()) == {
        "gpt2_edu",
        "gpt2_edu.atomic",
        "gpt2_edu.corpus",
        "gpt2_edu.explorer",
        "gpt2_edu.hub",
        "gpt2_edu.model",
        "gpt2_edu.model.attention",
        "gpt2_edu.model.config",
        "gpt2_edu.model.gpt",
        "gpt2_edu.model.next_token",
        "gpt2_edu.tokenizer",
        "gpt2_edu.tokenizer.bpe",
        "gpt2_edu.tokenizer.display",
        "gpt2_edu.tokenizer.tokenizer",
        "gpt2_edu.tokenizer.vocab",
        "gpt2_edu.train",
        "gpt2_edu.train.checkpoints",
        "gpt2_edu.train.data",
        "gpt2_edu.train.outputs",
        "gpt2_edu.train.runs",
        "gpt2_edu.zeroshot",
        "gpt2_edu.zeroshot.engine",
    }, out
