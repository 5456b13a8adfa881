"""The report in a real browser: every figure renders, the console stays clean, and hostile
strings (dataset text, model names, run names, the title) execute nothing.

    .venv/bin/python -m pytest -q tests/integration/test_report_browser.py

Needs headless Chromium (Debian package `chromium`).  When it is missing the setup
installs it with apt-get (as root); if that is impossible the tests skip with the
reason -- except in CI (env CI set), where they fail instead.

The browser is driven over the Chrome DevTools Protocol through
`--remote-debugging-pipe` (NUL-separated JSON on file descriptors 3 and 4), so no
network port and no extra Python package are needed.
"""

from __future__ import annotations

import base64
import itertools
import json
import os
import select
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from reports.render import build_report

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "report"
pytestmark = pytest.mark.slow

FLAGS = (
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--remote-debugging-pipe",
)
HOSTILE_TITLE = "Report <script>window.__pwned='title'</script><img src=x onerror=\"window.__pwned='t2'\">"


def _find_chromium() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        if path := shutil.which(name):
            return path
    return None


def _install_chromium() -> None:
    """apt-get install chromium (root only); refresh package lists once if that fails."""
    if not (hasattr(os, "geteuid") and os.geteuid() == 0 and shutil.which("apt-get")):
        return
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    install = ["apt-get", "install", "-y", "-qq", "--no-install-recommends", "chromium"]
    if subprocess.run(install, env=env, capture_output=True, timeout=900).returncode != 0:
        subprocess.run(["apt-get", "update", "-qq"], env=env, capture_output=True, timeout=600)
        subprocess.run(install, env=env, capture_output=True, timeout=900)


def require_chromium() -> str:
    """The Chromium binary, installing it if possible; else skip (locally) or fail (CI)."""
    path = _find_chromium()
    if path is None:
        _install_chromium()
        path = _find_chromium()
    if path is None:
        reason = "headless Chromium not found and could not be installed (apt-get install chromium)"
        if os.environ.get("CI"):
            pytest.fail(reason + " -- required in CI")
        pytest.skip(reason)
    return path


@pytest.fixture(scope="module")
def chromium_binary() -> str:
    return require_chromium()


@pytest.mark.parametrize(("ci", "outcome"), [("1", pytest.fail.Exception), (None, pytest.skip.Exception)])
def test_missing_chromium_skips_locally_but_fails_in_ci(monkeypatch, ci, outcome):
    monkeypatch.setattr(shutil, "which", lambda name: None)
    monkeypatch.setattr(sys.modules[__name__], "_install_chromium", lambda: None)
    if ci is None:
        monkeypatch.delenv("CI", raising=False)
    else:
        monkeypatch.setenv("CI", ci)
    with pytest.raises(outcome):
        require_chromium()


class Browser:
    """A minimal CDP client over Chromium's debugging pipe (flattened sessions)."""

    def __init__(self, binary: str, profile: str) -> None:
        to_chrome_r, self._to_chrome = os.pipe()
        self._from_chrome, from_chrome_w = os.pipe()

        def wire_fds() -> None:  # in the child: its fd 3 reads our commands, fd 4 answers
            a, b = os.dup(to_chrome_r), os.dup(from_chrome_w)
            os.dup2(a, 3)
            os.dup2(b, 4)

        self.proc = subprocess.Popen(
            [binary, *FLAGS, f"--user-data-dir={profile}", "about:blank"],
            preexec_fn=wire_fds, pass_fds=(3, 4),
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        os.close(to_chrome_r)
        os.close(from_chrome_w)
        self._ids = itertools.count(1)
        self._buffer = b""
        self.events: list[dict] = []

    def _read_message(self, timeout: float) -> dict:
        while b"\0" not in self._buffer:
            ready, _, _ = select.select([self._from_chrome], [], [], timeout)
            if not ready:
                raise TimeoutError("no answer from Chromium")
            chunk = os.read(self._from_chrome, 1 << 20)
            if not chunk:
                raise RuntimeError("Chromium closed the debugging pipe")
            self._buffer += chunk
        message, _, self._buffer = self._buffer.partition(b"\0")
        return json.loads(message)

    def call(self, method: str, params: dict | None = None, session: str | None = None, timeout: float = 30):
        ident = next(self._ids)
        message = {"id": ident, "method": method, "params": params or {}}
        if session:
            message["sessionId"] = session
        os.write(self._to_chrome, json.dumps(message).encode() + b"\0")
        while True:
            reply = self._read_message(timeout)
            if reply.get("id") == ident:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply.get("result", {})
            self.events.append(reply)

    def wait_event(self, method: str, session: str, timeout: float = 30) -> dict:
        for i, event in enumerate(self.events):
            if event.get("method") == method and event.get("sessionId") == session:
                return self.events.pop(i)
        while True:
            event = self._read_message(timeout)
            if event.get("method") == method and event.get("sessionId") == session:
                return event
            self.events.append(event)

    def close(self) -> None:
        try:
            self.call("Browser.close", timeout=10)
        except (RuntimeError, TimeoutError, OSError):
            pass
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        os.close(self._to_chrome)
        os.close(self._from_chrome)


@pytest.fixture(scope="module")
def browser(chromium_binary):
    profile = tempfile.mkdtemp(prefix="tunewise-chromium-")
    instance = Browser(chromium_binary, profile)
    try:
        yield instance
    finally:
        instance.close()
        shutil.rmtree(profile, ignore_errors=True)


LOADED = "document.readyState === 'complete' ? location.href : ''"
WAIT_RENDERED = """new Promise((resolve) => {
  const check = () => {
    const plots = [...document.querySelectorAll('div.tw-plot')];
    if (typeof Plotly !== 'undefined' && plots.every((p) => p.hasAttribute('data-rendered'))) resolve(true);
    else setTimeout(check, 50);
  };
  check();
})"""

INSPECT = """(() => {
  const plots = [...document.querySelectorAll('div.tw-plot')];
  const scripts = [...document.querySelectorAll('script')];
  return {
    plots: plots.map((p) => p.id),
    drawn: plots.filter((p) => p.querySelector('svg.main-svg') && p.getAttribute('data-rendered') === 'ok').map((p) => p.id),
    pwned: window.__pwned === undefined ? null : String(window.__pwned),
    title: document.title,
    executable_scripts: scripts.filter((s) => s.type !== 'application/json').length,
    handlers: document.querySelectorAll('[onerror],[onload],[onclick],[onmouseover]').length,
    injected: document.querySelectorAll('img[src="x"], iframe, object, embed, a[href^="javascript"]').length,
    text: document.body.innerText,
    svg_text: [...document.querySelectorAll('svg text')].map((t) => t.textContent).join('\\n'),
  };
})()"""


def open_page(browser: Browser, path: Path, screenshot: Path | None = None) -> tuple[dict, list[str]]:
    """Load `path`, wait for every figure, return the page facts and its console errors."""
    target = browser.call("Target.createTarget", {"url": "about:blank"})["targetId"]
    session = browser.call("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
    for domain in ("Page.enable", "Runtime.enable", "Log.enable"):
        browser.call(domain, session=session)
    browser.call("Emulation.setDeviceMetricsOverride",
                 {"width": 1280, "height": 900, "deviceScaleFactor": 1, "mobile": False}, session=session)
    uri = path.resolve().as_uri()
    browser.call("Page.navigate", {"url": uri}, session=session)
    while True:  # a late load event of the initial about:blank must not count as ours
        browser.wait_event("Page.loadEventFired", session)
        try:
            href = browser.call("Runtime.evaluate", {"expression": LOADED, "returnByValue": True}, session=session)
        except RuntimeError:  # the context was replaced mid-call by our navigation
            continue
        if href["result"].get("value") == uri:
            break
    browser.call("Runtime.evaluate", {"expression": WAIT_RENDERED, "awaitPromise": True}, session=session, timeout=45)
    facts = browser.call("Runtime.evaluate", {"expression": INSPECT, "returnByValue": True}, session=session)
    if screenshot is not None:
        shot = browser.call("Page.captureScreenshot", {"format": "png", "captureBeyondViewport": True}, session=session)
        screenshot.write_bytes(base64.b64decode(shot["data"]))
    browser.call("Target.closeTarget", {"targetId": target})
    return facts["result"]["value"], _errors(browser, session)


def _errors(browser: Browser, session: str) -> list[str]:
    """Console errors, uncaught exceptions and browser log errors (e.g. CSP violations)."""
    errors = []
    for event in [e for e in browser.events if e.get("sessionId") == session]:
        method, params = event.get("method"), event.get("params", {})
        if method == "Runtime.consoleAPICalled" and params.get("type") in ("error", "assert"):
            errors.append(" ".join(str(a.get("value", a.get("description", ""))) for a in params.get("args", [])))
        elif method == "Runtime.exceptionThrown":
            errors.append(params.get("exceptionDetails", {}).get("text", "exception"))
        elif method == "Log.entryAdded" and params.get("entry", {}).get("level") == "error":
            errors.append(params["entry"].get("text", "log error"))
    browser.events = [e for e in browser.events if e.get("sessionId") != session]
    return errors


@pytest.fixture(scope="module")
def pages(tmp_path_factory):
    out = tmp_path_factory.mktemp("report-browser")
    complete = build_report([FIXTURES / "complete"], out / "complete.html", title="Fixture report")
    hostile = build_report([FIXTURES / "hostile"], out / "hostile.html", title=HOSTILE_TITLE)
    partial = build_report([FIXTURES / "complete" / "runs" / "lora"], out / "partial.html")
    return {"complete": complete, "hostile": hostile, "partial": partial, "dir": out}


def test_every_figure_renders_without_console_errors(browser, pages):
    screenshot = pages["dir"] / "complete.png"
    facts, errors = open_page(browser, pages["complete"], screenshot)
    assert errors == []
    expected = {"plot-gain-forgetting", "plot-forest", "plot-memory", "plot-measured", "plot-cost", "plot-training"}
    assert expected <= set(facts["plots"])
    assert sorted(facts["drawn"]) == sorted(facts["plots"])
    assert "The advisor recommended lora" in facts["text"]
    assert screenshot.stat().st_size > 50_000  # a real full-page render, not a blank image
    print(f"screenshot: {screenshot}")


def test_partial_report_renders_and_says_what_is_missing(browser, pages):
    facts, errors = open_page(browser, pages["partial"], pages["dir"] / "partial.png")
    assert errors == []
    assert facts["plots"] and sorted(facts["drawn"]) == sorted(facts["plots"])
    assert "What is missing" in facts["text"]
    assert "No evaluation yet" in facts["text"]


def test_hostile_strings_execute_nothing_and_show_as_text(browser, pages):
    facts, errors = open_page(browser, pages["hostile"], pages["dir"] / "hostile.png")
    assert facts["pwned"] is None
    assert errors == []  # a blocked injection would show up here as a CSP violation
    assert facts["title"] == HOSTILE_TITLE  # the title payload is plain text
    assert facts["executable_scripts"] == 2  # plotly.js and the loader, nothing injected
    assert facts["handlers"] == 0 and facts["injected"] == 0
    assert sorted(facts["drawn"]) == sorted(facts["plots"])
    # Payloads are visible, literally, in tables and inside the plotly SVG (legend, ticks).
    assert "lora<script>window.__pwned='script'</script>" in facts["text"]
    assert "Invoice </script><script>window.__pwned='close'</script>" in facts["text"]
    assert "qlora<img src=x onerror=" in facts["svg_text"]
    assert "dpo</script><script>" in facts["svg_text"]


def test_detector_catches_a_live_payload(browser, pages, tmp_path):
    """Controls: the same checks fail when escaping or the CSP is deliberately removed."""
    page = pages["complete"].read_text(encoding="utf-8")
    payload = "<img src=x onerror=\"window.__pwned='control'\">"
    raw = tmp_path / "raw.html"
    raw.write_text(page.replace("<main>", "<main>" + payload, 1), encoding="utf-8")
    facts, errors = open_page(browser, raw)
    assert facts["pwned"] is None and errors, "CSP should block the raw payload and log a violation"
    start = page.index('<meta http-equiv="Content-Security-Policy"')
    no_csp = page[:start] + page[page.index(">", start) + 1:]
    unprotected = tmp_path / "unprotected.html"
    unprotected.write_text(no_csp.replace("<main>", "<main>" + payload, 1), encoding="utf-8")
    facts, _ = open_page(browser, unprotected)
    assert facts["pwned"] == "control"
