"The project's metadata stays consistent: environment.yml vs pyproject.toml, the console script, the notices."
import re, subprocess, sys, tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CONDA_ONLY = {"python", "pip", "jupyterlab"}   # tools conda provides that are not Python dependencies of the library

def _name(req: str) -> str: return re.split(r"[<>=!~\[; ]", req.strip(), maxsplit=1)[0].lower().replace("_", "-")

def _pyproject():
    proj = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    return proj["dependencies"], proj["optional-dependencies"]["dev"]

def _environment():
    "(conda packages, pip requirements) listed in environment.yml."
    import yaml   # PyYAML comes with nbdev
    deps = yaml.safe_load((ROOT / "environment.yml").read_text())["dependencies"]
    conda = [d for d in deps if isinstance(d, str)]
    pip = [r for d in deps if isinstance(d, dict) for r in d.get("pip", [])]
    return conda, pip

def test_environment_matches_pyproject():
    runtime, dev = _pyproject()
    conda, pip = _environment()
    pip = [r for r in pip if not r.startswith("-e")]
    assert sorted(pip) == sorted(runtime + dev), (
        "environment.yml's pip list must name exactly pyproject.toml's dependencies and dev extra, same specifiers;\n"
        f"only in environment.yml: {sorted(set(pip) - set(runtime + dev))}\n"
        f"only in pyproject.toml: {sorted(set(runtime + dev) - set(pip))}")
    assert {_name(c.split("=")[0]) for c in conda} <= CONDA_ONLY, f"unexpected conda packages {conda}"
    assert any(r.startswith("-e") and "[dev]" in r for r in _environment()[1]), "environment.yml must install the project"

def test_nbdev_is_pinned_and_configured():
    _, dev = _pyproject()
    assert [r for r in dev if _name(r) == "nbdev"] == ["nbdev==3.3.26"]
    nbdev = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["nbdev"]
    assert set(nbdev["tst_flags"].split()) == {"notest", "slow", "cuda"}
    assert not (ROOT / "settings.ini").exists(), "nbdev 3 reads pyproject.toml only"

def test_console_script_runs():
    out = subprocess.run([sys.executable, "-c", "from gpt2_edu.cli import main; import sys; sys.exit(main())",
                          "tokenize", "--vocab-size", "300", "--max-chars", "20000"], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert "GPT-2 (50,257 tokens)" in out.stdout and "bytes/token" in out.stdout

def test_entry_point_declared():
    assert tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]["gpt2-edu"] == "gpt2_edu.cli:main"
    from importlib.metadata import entry_points
    eps = {e.name: e.value for e in entry_points(group="console_scripts")}
    assert eps.get("gpt2-edu") == "gpt2_edu.cli:main", "reinstall the project: pip install -e ."

def test_third_party_notice_carries_openai_licence():
    text = (ROOT / "THIRD_PARTY_NOTICES.md").read_text()
    assert "Modified MIT License" in text and "Copyright (c) 2019 OpenAI" in text
