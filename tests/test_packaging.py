"The project's metadata stays consistent: environment.yml vs pyproject.toml, the console script, the notices."

import json
import os
import re
import shutil
import site
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CONDA_ONLY = {"python", "pip", "jupyterlab"}  # tools conda provides that are not Python dependencies of the library


def _name(req: str) -> str:
    return re.split(r"[<>=!~\[; ]", req.strip(), maxsplit=1)[0].lower().replace("_", "-")


def _pyproject():
    proj = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    return proj["dependencies"], proj["optional-dependencies"]["dev"]


def _extra(name: str) -> list[str]:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"][name]


def _environment():
    "(conda packages, pip requirements) listed in environment.yml."
    import yaml  # PyYAML comes with nbdev

    deps = yaml.safe_load((ROOT / "environment.yml").read_text())["dependencies"]
    conda = [d for d in deps if isinstance(d, str)]
    pip = [r for d in deps if isinstance(d, dict) for r in d.get("pip", [])]
    return conda, pip


def test_environment_matches_pyproject():
    runtime, dev = _pyproject()
    wanted = {r for r in runtime + dev + _extra("lab") if _name(r) not in CONDA_ONLY}
    conda, pip = _environment()
    pip = [r for r in pip if not r.startswith("-e")]
    assert sorted(pip) == sorted(wanted), (
        "environment.yml's pip list must name exactly pyproject.toml's dependencies, dev and lab extras, same "
        f"specifiers;\nonly in environment.yml: {sorted(set(pip) - wanted)}\n"
        f"only in pyproject.toml: {sorted(wanted - set(pip))}"
    )
    assert {_name(re.split(r"[<>=]", c)[0]) for c in conda} <= CONDA_ONLY, f"unexpected conda packages {conda}"
    assert any(r.startswith("-e") and "[dev,lab]" in r for r in _environment()[1]), (
        "environment.yml must install the project"
    )


def test_lab_extra_covers_what_the_chapters_import():
    "The walkthrough install (`.[lab]`) brings every third-party package a chapter imports."
    runtime, _ = _pyproject()
    provided = {_name(r) for r in runtime + _extra("lab")} | {"ipython"}  # IPython comes with jupyterlab
    aliases = {"markdown_it": "markdown-it-py", "IPython": "ipython", "yaml": "pyyaml", "gpt2_edu": None}
    missing = set()
    for nb in (ROOT / "nbs").glob("*.ipynb"):
        for cell in json.loads(nb.read_text())["cells"]:
            if cell["cell_type"] != "code":
                continue
            for match in re.finditer(r"^\s*(?:from|import)\s+([A-Za-z_]\w*)", "".join(cell["source"]), re.M):
                top = match.group(1)
                if top in sys.stdlib_module_names or aliases.get(top, top) is None:
                    continue
                if _name(aliases.get(top, top)) not in provided:
                    missing.add(f"{top} ({nb.name})")
    assert not missing, f"chapters import packages the lab extra does not install: {sorted(missing)}"


def test_nbdev_is_pinned_and_configured():
    _, dev = _pyproject()
    assert [r for r in dev if _name(r) == "nbdev"] == ["nbdev==3.3.26"]
    nbdev = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["nbdev"]
    assert set(nbdev["tst_flags"].split()) == {"notest", "slow", "cuda"}
    assert not (ROOT / "settings.ini").exists(), "nbdev 3 reads pyproject.toml only"


def test_console_script_runs():
    out = subprocess.run(
        [
            sys.executable,
            "-c",
            "from gpt2_edu.cli.main import main; import sys; sys.exit(main())",
            "tokenize",
            "--vocab-size",
            "300",
            "--max-chars",
            "20000",
        ],
        capture_output=True,
        text=True,
    )
    assert out.returncode == 0, out.stderr
    assert "GPT-2 (50,257 tokens)" in out.stdout and "bytes/token" in out.stdout


def test_entry_point_declared():
    assert (
        tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]["gpt2-edu"]
        == "gpt2_edu.cli.main:main"
    )
    from importlib.metadata import entry_points

    eps = {e.name: e.value for e in entry_points(group="console_scripts")}
    assert eps.get("gpt2-edu") == "gpt2_edu.cli.main:main", "reinstall the project: pip install -e ."


def test_third_party_notice_carries_openai_licence():
    text = (ROOT / "THIRD_PARTY_NOTICES.md").read_text()
    assert "Modified MIT License" in text and "Copyright (c) 2019 OpenAI" in text


def test_readme_is_generated_from_the_landing_page():
    "README.md and nbs/index.ipynb say the same thing (tools/make_readme.py writes one from the other)."
    out = subprocess.run(
        [sys.executable, str(ROOT / "tools" / "make_readme.py"), "--check"], capture_output=True, text=True
    )
    assert out.returncode == 0, out.stderr


def test_readme_opens_with_the_two_commands():
    "The front page opens with exactly two commands: the main job, and the whole test suite."
    readme = (ROOT / "README.md").read_text()
    blocks = re.findall(r"```\n(.*?)\n```", readme, re.S)
    assert blocks[0] == "pip install -e . && gpt2-edu demo"
    assert blocks[1] == 'pip install -e ".[dev]" && pytest'
    ci = (ROOT / ".ci" / "run").read_text()
    assert blocks[1] in ci.splitlines(), ".ci/run must run README command (2) verbatim"


def test_the_wheel_holds_every_module_and_a_fresh_venv_imports_them(tmp_path):
    "The wheel built from the sources holds every module of every sub-package; installed alone, each imports."
    source = tmp_path / "source"  # a clean copy: the build writes nothing into the repository
    source.mkdir()
    for name in ("pyproject.toml", "README.md", "LICENSE", "THIRD_PARTY_NOTICES.md"):
        shutil.copy(ROOT / name, source / name)
    shutil.copytree(ROOT / "gpt2_edu", source / "gpt2_edu", ignore=shutil.ignore_patterns("__pycache__"))
    built = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "-w", str(tmp_path / "dist"), str(source)],
        capture_output=True,
        text=True,
    )
    assert built.returncode == 0, built.stderr[-3000:]
    wheel = next((tmp_path / "dist").glob("gpt2_edu-*.whl"))
    modules = sorted(str(path.relative_to(ROOT)) for path in (ROOT / "gpt2_edu").rglob("*.py"))
    data = sorted(str(path.relative_to(ROOT)) for path in (ROOT / "gpt2_edu" / "data").iterdir())
    missing = sorted(set(modules + data) - set(zipfile.ZipFile(wheel).namelist()))
    assert not missing, f"the wheel leaves out {missing}: check [tool.setuptools.packages.find] and package-data"
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    target = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--no-deps", "--quiet", "--target", target, str(wheel)], check=True
    )
    dotted = [path.removesuffix(".py").replace("/", ".").removesuffix(".__init__") for path in modules]
    dotted = [name for name in dotted if not name.endswith("_modidx")]
    code = (
        "import importlib, sys\n"
        f"for name in {dotted!r}: importlib.import_module(name)\n"
        "import gpt2_edu; print(gpt2_edu.__file__)"
    )
    # the dependencies come from this environment, the library only from the fresh one (no editable finder there)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(site.getsitepackages())}
    imported = subprocess.run([str(python), "-c", code], capture_output=True, text=True, cwd=tmp_path, env=env)
    assert imported.returncode == 0, imported.stderr[-3000:]
    assert imported.stdout.strip().startswith(str(venv)), imported.stdout
