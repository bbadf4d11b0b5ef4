"""JupyterLab in a real browser: the attention explorer chapter runs and its controls redraw it, and every chapter
notebook survives Run All with no error output.

The browser is Debian's Chromium (`apt-get install -y chromium`; `.ci/run` installs it), driven by the pinned
`playwright` Python package; never `playwright install`, which downloads a browser. Without the browser these tests
fail, they do not skip. JupyterLab runs with a scratch configuration, no token, autosave off, and `IN_TEST=1` in its
kernels (slow cells at their test size); nothing it runs is saved into the notebooks.

The screenshot of the explorer goes to the test's temporary folder, or to assets/explorer.png (the README's) when
GPT2_EDU_UPDATE_SCREENSHOT=1.
"""

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
]
EXPLORER_NB = "nbs/09_explorer.ipynb"
NOTEBOOKS = sorted(str(p.relative_to(ROOT)) for p in (ROOT / "nbs").glob("*.ipynb"))
RUN_ALL_TIMEOUT_S = 600  # per notebook; the slowest took 262 s on a busy 2-core machine
WAIT_MS = 60_000  # for anything the page shows after a control moves
LAB_SETTINGS = {
    "@jupyterlab/apputils-extension/notification.jupyterlab-settings": {
        "fetchNews": "false",
        "checkForUpdates": False,
        "doNotDisturbMode": True,
    },
    "@jupyterlab/docmanager-extension/plugin.jupyterlab-settings": {"autosave": False},
    "@jupyterlab/notebook-extension/tracker.jupyterlab-settings": {"windowingMode": "none"},  # every cell in the DOM
}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    "A JupyterLab server on a free port, serving the repository, with a scratch configuration; stopped afterwards."
    scratch = tmp_path_factory.mktemp("jupyterlab")
    for name, value in LAB_SETTINGS.items():
        (scratch / "settings" / name).parent.mkdir(parents=True, exist_ok=True)
        (scratch / "settings" / name).write_text(json.dumps(value))
    env = {
        **os.environ,
        "IN_TEST": "1",
        "JUPYTER_CONFIG_DIR": str(scratch / "config"),
        "JUPYTER_RUNTIME_DIR": str(scratch / "runtime"),
        "IPYTHONDIR": str(scratch / "ipython"),
        "MPLCONFIGDIR": str(scratch / "mpl"),
        "JUPYTERLAB_SETTINGS_DIR": str(scratch / "settings"),
        "JUPYTERLAB_WORKSPACES_DIR": str(scratch / "workspaces"),
    }
    port = _free_port()
    command = [
        sys.executable,
        "-m",
        "jupyterlab",
        "--no-browser",
        "--ip=127.0.0.1",
        f"--port={port}",
        "--allow-root",
        "--IdentityProvider.token=",
        "--ServerApp.password=",
        f"--ServerApp.root_dir={ROOT}",
        "--LabApp.expose_app_in_browser=True",
        f"--FileCheckpoints.checkpoint_dir={scratch / 'checkpoints'}",
    ]  # not .ipynb_checkpoints/ in nbs/
    log = open(scratch / "lab.log", "w")
    server = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                urllib.request.urlopen(f"{url}/api/status", timeout=2)
                break
            except OSError:
                if server.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"JupyterLab did not start:\n{(scratch / 'lab.log').read_text()[-3000:]}")
                time.sleep(0.5)
        yield url
    finally:
        os.killpg(server.pid, signal.SIGTERM)  # the server and the kernels it started
        try:
            server.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
        log.close()


@pytest.fixture(scope="module")
def page(lab):
    "A page of Debian's Chromium with JupyterLab loaded."
    if not CHROMIUM.exists():
        pytest.fail(
            f"no browser at {CHROMIUM}: install Debian's Chromium (apt-get install -y chromium); "
            "never `playwright install`"
        )
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.fail('the playwright package is missing: pip install -e ".[dev]"')
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1500, "height": 1100})
        page.set_default_timeout(WAIT_MS)
        page.goto(f"{lab}/lab")
        page.wait_for_function("() => window.jupyterapp && window.jupyterapp.commands.hasCommand('docmanager:open')")
        page.evaluate("async () => { await window.jupyterapp.restored; }")
        yield page
        browser.close()


# --- driving JupyterLab from the page ---

OPEN_JS = """async (path) => {
    const app = window.jupyterapp;
    const panel = await app.commands.execute('docmanager:open', {path, factory: 'Notebook'});
    await panel.context.ready;
    await panel.sessionContext.ready;
    app.shell.activateById(panel.id);
    return panel.id;
}"""
KERNEL_IDLE_JS = """(id) => {
    const panel = [...window.jupyterapp.shell.widgets('main')].find(w => w.id === id);
    const kernel = panel && panel.sessionContext.session && panel.sessionContext.session.kernel;
    return kernel && kernel.status === 'idle';
}"""
RUN_ALL_JS = """(id) => {
    const app = window.jupyterapp;
    app.shell.activateById(id);
    window.runAllDone = window.runAllDone || {};
    delete window.runAllDone[id];
    app.commands.execute('notebook:clear-all-cell-outputs')         // no output from before this run can remain
        .then(() => app.commands.execute('notebook:run-all-cells'))
        .then(ok => { window.runAllDone[id] = ok === false ? 'failed' : 'ok'; },
              error => { window.runAllDone[id] = 'error: ' + error; });
}"""
REPORT_JS = """(id) => {
    const panel = [...window.jupyterapp.shell.widgets('main')].find(w => w.id === id);
    const report = {cells: 0, errors: [], unexecuted: [], widget_errors: []};
    panel.content.widgets.forEach((cell, index) => {
        const model = cell.model;
        if (model.type !== 'code' || !model.sharedModel.getSource().trim()) return;
        report.cells += 1;
        if (model.executionCount === null) report.unexecuted.push(index);
        for (let k = 0; k < model.outputs.length; k++) {
            const output = model.outputs.get(k).toJSON();
            if (output.output_type === 'error')
                report.errors.push(`cell ${index}: ${output.ename}: ${output.evalue}`);
        }
        if (cell.node.innerText.includes('Error displaying widget'))
            report.widget_errors.push(`cell ${index}: ${cell.node.innerText.slice(0, 200)}`);
    });
    return report;
}"""
CLOSE_JS = """async (id) => {
    const panel = [...window.jupyterapp.shell.widgets('main')].find(w => w.id === id);
    await panel.sessionContext.shutdown();
    panel.context.model.dirty = false;
    panel.dispose();
}"""


def wait(page, expression: str, arg, what: str, timeout_s: float = WAIT_MS / 1000):
    "Wait until `expression(arg)` is true in the page; a timeout fails the test naming what did not happen."
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    try:
        page.wait_for_function(expression, arg=arg, timeout=timeout_s * 1000, polling=200)
    except PlaywrightTimeout:
        pytest.fail(f"waited {timeout_s:.0f} s for {what}")


def run_all(page, path: str) -> tuple[str, dict, float]:
    "Open `path` in JupyterLab, Run All, wait for the last cell; return (panel id, report of the cells, seconds)."
    panel = page.evaluate(OPEN_JS, path)
    wait(page, KERNEL_IDLE_JS, panel, f"the kernel of {path} to start")
    started = time.perf_counter()
    page.evaluate(RUN_ALL_JS, panel)
    wait(page, "(id) => window.runAllDone[id] !== undefined", panel, f"Run All of {path} to finish", RUN_ALL_TIMEOUT_S)
    seconds = time.perf_counter() - started
    wait(page, KERNEL_IDLE_JS, panel, f"the kernel of {path} to be idle after Run All")
    report = page.evaluate(REPORT_JS, panel)
    report["run_all"] = page.evaluate("(id) => window.runAllDone[id]", panel)
    return panel, report, seconds


def assert_clean(path: str, report: dict):
    "No cell shows an error, every code cell ran, every widget displayed."
    problems = report["errors"] + report["widget_errors"]
    if report["run_all"] != "ok":  # 'failed' (a cell failed) or 'error: ...'
        problems.append(f"JupyterLab's Run All command failed: {report['run_all']}")
    assert not problems, f"{path}: " + "\n".join(problems)
    assert not report["unexecuted"], f"{path}: Run All stopped; cells never run: {report['unexecuted']}"
    assert report["cells"] > 0


# --- the explorer, driven like a learner drives it ---

FIRST = "document.querySelector('.attention-explorer')"  # the chapter's main explorer comes first
HEATMAP = "img.explorer-heatmap"
TOKENS = ".explorer-tokens button"


def heatmap_src(page) -> str:
    return page.evaluate(f"() => {FIRST}.querySelector('{HEATMAP}').src")


def wait_for_new_heatmap(page, before: str, after_what: str) -> float:
    "Wait until the first explorer's heatmap is a new image; return the seconds it took."
    started = time.perf_counter()
    wait(page, f"(old) => {FIRST}.querySelector('{HEATMAP}').src !== old", before, f"a new heatmap after {after_what}")
    return time.perf_counter() - started


def token_backgrounds(page) -> list[str]:
    return page.evaluate(
        f"() => [...{FIRST}.querySelectorAll('{TOKENS}')].map(b => getComputedStyle(b).backgroundColor)"
    )


def slider(explorer, name: str):
    "The handle of the explorer's slider labelled `name`."
    label = explorer.page.locator(".widget-label", has_text=re.compile(f"^{name}$"))
    return explorer.locator(".widget-slider", has=label).locator(".noUi-handle")


def readout(explorer, name: str) -> str:
    label = explorer.page.locator(".widget-label", has_text=re.compile(f"^{name}$"))
    return explorer.locator(".widget-slider", has=label).locator(".widget-readout").inner_text()


def test_explorer_chapter_in_jupyterlab(page, capsys, tmp_path):
    "Run All of the explorer chapter, then move every control of its first explorer and watch it redraw."
    started = time.perf_counter()
    panel, report, run_seconds = run_all(page, EXPLORER_NB)
    assert_clean(EXPLORER_NB, report)
    explorer = page.locator(".attention-explorer").first
    explorer.scroll_into_view_if_needed()
    latency = {}

    before = heatmap_src(page)  # the head slider, moved with the keyboard
    head_before = readout(explorer, "head")
    slider(explorer, "head").focus()
    slider(explorer, "head").press("ArrowLeft" if head_before != "0" else "ArrowRight")
    latency["head slider"] = wait_for_new_heatmap(page, before, "moving the head slider")
    assert readout(explorer, "head") != head_before

    before = heatmap_src(page)  # the layer slider
    layer_before = readout(explorer, "layer")
    slider(explorer, "layer").focus()
    slider(explorer, "layer").press("ArrowRight" if layer_before == "0" else "ArrowLeft")
    latency["layer slider"] = wait_for_new_heatmap(page, before, "moving the layer slider")
    assert readout(explorer, "layer") != layer_before

    before = heatmap_src(page)  # a click on the small map of layer 0, head 3
    explorer.locator(".explorer-cell button[title='layer 0, head 3']").click()
    latency["overview click"] = wait_for_new_heatmap(page, before, "a click on a small map")
    assert (readout(explorer, "layer"), readout(explorer, "head")) == ("0", "3")

    text = "JULIET:\nO Romeo, Romeo! wherefore art thou Romeo?"  # new text: new tokens
    shown = text.replace(" ", "\u00a0").replace("\n", "↵")
    before = heatmap_src(page)
    box = explorer.locator("textarea")
    box.fill(text)
    box.evaluate("textarea => textarea.blur()")  # the change is sent when the box loses focus
    moment = time.perf_counter()
    wait(
        page,
        f"(shown) => [...{FIRST}.querySelectorAll('{TOKENS}')].map(b => b.innerText).join('') === shown",
        shown,
        "the token view to show the new text",
    )
    wait_for_new_heatmap(page, before, "a new text")
    latency["new text"] = time.perf_counter() - moment
    assert explorer.locator(TOKENS).count() == len(text)  # one byte, one token

    colours = token_backgrounds(page)  # a click on a token: new highlights
    before = heatmap_src(page)
    explorer.locator(TOKENS).nth(10).click()
    latency["token click"] = wait_for_new_heatmap(page, before, "a click on a token")
    after = token_backgrounds(page)
    assert after != colours
    assert all(colour == "rgb(255, 255, 255)" for colour in after[11:]), "tokens after the selected one must be blank"
    border = explorer.locator(TOKENS).nth(10).evaluate("b => getComputedStyle(b).borderTopColor")
    assert border == "rgb(229, 62, 62)", border  # the selected token is outlined in red

    stats = explorer.locator(".explorer-stats").inner_text()  # for the picture: the top previous-token head
    layer, head = map(int, re.search(r"previous-token score\s+\S+\s+L(\d+) H(\d+)", stats).groups())
    before = heatmap_src(page)
    explorer.locator(f".explorer-cell button[title='layer {layer}, head {head}']").click()
    wait_for_new_heatmap(page, before, "a click on the top previous-token head")
    before = heatmap_src(page)
    explorer.locator(TOKENS).nth(text.index("Romeo") + 1).click()  # the 'o' of the first 'Romeo'
    wait_for_new_heatmap(page, before, "a click on a token")
    screenshot = (
        ROOT / "assets" / "explorer.png"
        if os.environ.get("GPT2_EDU_UPDATE_SCREENSHOT") == "1"
        else tmp_path / "explorer.png"
    )
    explorer.screenshot(path=str(screenshot))
    assert screenshot.stat().st_size > 20_000
    page.evaluate(CLOSE_JS, panel)
    with capsys.disabled():
        print(
            f"\nexplorer chapter in JupyterLab: Run All {run_seconds:.0f} s; "
            f"whole test {time.perf_counter() - started:.0f} s; "
            "redraw seen in the browser: "
            + ", ".join(f"{what} {1000 * s:.0f} ms" for what, s in latency.items())
            + f"; screenshot {screenshot}"
        )


@pytest.mark.parametrize("path", [p for p in NOTEBOOKS if p != EXPLORER_NB], ids=lambda p: Path(p).stem)
def test_run_all_in_jupyterlab(page, path, capsys):
    "Run All of one chapter in the same JupyterLab: every code cell runs and none shows an error."
    panel, report, seconds = run_all(page, path)
    page.evaluate(CLOSE_JS, panel)
    assert_clean(path, report)
    with capsys.disabled():
        print(f"\n{path}: Run All in JupyterLab {seconds:.0f} s, {report['cells']} code cells")
