"""CJK fonts for figures (`gpt2_edu.fonts`): found by preference, added as a fallback, and a hint when there is none."""

import importlib.util
import warnings
from pathlib import Path

import matplotlib as mpl
import pytest
from matplotlib import font_manager

from gpt2_edu import fonts
from gpt2_edu.fonts import CJK_FAMILIES, INSTALL_HINT, cjk_font, use_cjk_font


def _entry(name: str) -> font_manager.FontEntry:
    return font_manager.FontEntry(fname=f"/fonts/{name}.ttf", name=name)


def test_the_most_preferred_installed_family_is_chosen():
    listed = [_entry("DejaVu Sans"), _entry("Noto Sans CJK JP"), _entry("NanumGothic")]
    assert cjk_font(listed) == "NanumGothic"
    assert cjk_font(listed[:2]) == "Noto Sans CJK JP"
    assert cjk_font([_entry("DejaVu Sans"), _entry("Liberation Sans")]) is None
    assert cjk_font([]) is None
    assert len(set(CJK_FAMILIES)) == len(CJK_FAMILIES)


def test_without_a_cjk_font_nothing_changes_and_the_hint_names_the_packages(capsys):
    with mpl.rc_context():
        before = list(mpl.rcParams["font.family"])
        assert use_cjk_font([_entry("DejaVu Sans")]) is None
        assert mpl.rcParams["font.family"] == before
    printed = capsys.readouterr().out
    assert printed == INSTALL_HINT + "\n"
    for package in ("fonts-nanum", "fonts-noto-cjk", "koreanize-matplotlib"):
        assert package in printed


def test_the_font_is_appended_once_after_the_default_families():
    with mpl.rc_context({"font.family": ["sans-serif"]}):
        assert use_cjk_font([_entry("NanumGothic")]) == "NanumGothic"
        assert use_cjk_font([_entry("NanumGothic")]) == "NanumGothic"
        assert mpl.rcParams["font.family"] == ["sans-serif", "NanumGothic"]


def _missing_glyph_warnings() -> list[str]:
    import matplotlib.pyplot as plt

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        fig, ax = plt.subplots()
        ax.set_title("한국어 바이트 수준 BPE")
        fig.canvas.draw()
        plt.close(fig)
    return [str(w.message) for w in caught if "missing from font" in str(w.message)]


def test_hangul_renders_without_missing_glyphs_once_a_font_is_used():
    with mpl.rc_context({"font.family": ["sans-serif"]}):
        family = use_cjk_font()
        if family is None:
            pytest.skip("no CJK font on this machine (apt-get install fonts-nanum)")
        assert _missing_glyph_warnings() == []
    with mpl.rc_context({"font.family": ["DejaVu Sans"]}):
        assert _missing_glyph_warnings(), "DejaVu Sans alone has no Hangul: the check above could not fail"


def _a_nanum_file() -> Path:
    files = fonts._koreanize_font_files() or [
        Path(f.fname) for f in font_manager.fontManager.ttflist if f.name == "NanumGothic"
    ]
    if not files:
        pytest.skip("no NanumGothic file on this machine")
    return files[0]


def test_a_font_file_matplotlib_does_not_know_yet_is_registered(monkeypatch):
    nanum = _a_nanum_file()
    without_cjk = [f for f in font_manager.fontManager.ttflist if f.name not in CJK_FAMILIES]
    monkeypatch.setattr(font_manager.fontManager, "ttflist", without_cjk)
    monkeypatch.setattr(font_manager, "findSystemFonts", lambda *args, **kwargs: [])
    monkeypatch.setattr(fonts, "_koreanize_font_files", lambda: [nanum])
    with mpl.rc_context():
        assert use_cjk_font() == "NanumGothic"
        assert Path(font_manager.fontManager.ttflist[-1].fname) == nanum


def test_koreanize_matplotlib_files_are_found_without_importing_it():
    if importlib.util.find_spec("koreanize_matplotlib") is None:
        assert fonts._koreanize_font_files() == []
        return
    import sys

    already = "koreanize_matplotlib" in sys.modules
    found = fonts._koreanize_font_files()
    assert "NanumGothic.ttf" in [path.name for path in found]
    assert ("koreanize_matplotlib" in sys.modules) == already
