"""One self-contained HTML page: plotly.js inlined, no network, every user string escaped.

Safety, in depth:
  1. every user string is HTML-escaped (`esc`) in text, attributes and figure labels;
  2. figure specs travel as JSON in `<script type="application/json">` data blocks (never
     executed) with `<`, `>`, `&` and U+2028/9 written as \\u escapes, so a `</script>`
     inside a run name cannot close the block;
  3. a Content-Security-Policy allows only the page's own two scripts (by SHA-256 hash),
     no network (`default-src 'none'`), so even a missed escape could neither run an
     injected `<script>`/`onerror=` nor phone home.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import re
from datetime import UTC, datetime

from reports.headline import Headline
from reports.sections import ReportContent, Section
from reports.text import esc

STATUS_CLASS = {
    "held up": "ok",
    "partly held up": "warn",
    "did not hold up": "bad",
    "cannot tell yet": "unknown",
}

LOADER_JS = """(function () {
  var plots = document.querySelectorAll("div.tw-plot");
  Array.prototype.forEach.call(plots, function (div) {
    function fail(err) {
      console.error("tunewise report: figure " + div.id + " failed: " + err);
      div.setAttribute("data-rendered", "error");
      div.textContent = "This figure could not be drawn: " + err;
    }
    try {
      var spec = JSON.parse(document.getElementById(div.getAttribute("data-spec")).textContent);
      Plotly.newPlot(div, spec.data, spec.layout, {displaylogo: false, responsive: true})
        .then(function () { div.setAttribute("data-rendered", "ok"); }, fail);
    } catch (err) { fail(err); }
  });
})();"""

CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:0;color:#222;background:#fafafa;line-height:1.45}
main{max-width:1150px;margin:0 auto;padding:1rem 1.5rem 4rem}
header{background:#1f3a5f;color:#fff;padding:1.2rem 1.5rem}header h1{margin:0 auto;max-width:1150px;font-size:1.6rem}
header p{margin:.3rem auto 0;max-width:1150px;opacity:.8;font-size:.9rem}
section{background:#fff;border:1px solid #e3e3e3;border-radius:8px;padding:1rem 1.3rem;margin:1.2rem 0}
h2{margin-top:0;font-size:1.25rem}h3{font-size:1.05rem;margin-bottom:.4rem}
.headline{border-left:8px solid #888}.headline p{font-size:1.05rem;margin:.45rem 0}
.headline.ok{border-left-color:#2ca02c}.headline.warn{border-left-color:#ff9f1c}
.headline.bad{border-left-color:#d62728}.headline.unknown{border-left-color:#888}
.status{font-weight:700;text-transform:uppercase;letter-spacing:.03em}
.missing-box{background:#fff8e1;border-color:#f0d080}.missing-note{color:#8a6d00;font-style:italic}
.intro{color:#555}nav ul{columns:2;margin:0}
table{border-collapse:collapse;width:100%;font-size:.86rem;margin:.5rem 0}
th,td{border:1px solid #e0e0e0;padding:.3rem .45rem;text-align:left;vertical-align:top}
th{background:#f3f5f8}table.examples td{white-space:pre-wrap;word-break:break-word;max-width:22rem}
td{word-break:break-word}.problems li{color:#a33}.tw-plot{min-height:360px}
"""


def _sha256_source(script: str) -> str:
    """A CSP hash source: 'sha256-<base64 of the SHA-256 of the script text>' (CSP3)."""
    return "'sha256-" + base64.b64encode(hashlib.sha256(script.encode("utf-8")).digest()).decode() + "'"


@functools.lru_cache(maxsize=1)
def plotly_bundle() -> tuple[str, str]:
    """plotly.js (about 4.8 MB) and its CSP hash source, computed once per process."""
    from plotly.offline import get_plotlyjs

    plotly_js = get_plotlyjs()
    if re.search(r"</script", plotly_js, re.IGNORECASE):  # would end the inline script early
        raise RuntimeError("plotly.js bundle contains '</script'; cannot inline it safely")
    return plotly_js, _sha256_source(plotly_js)


def _csp(plotly_hash: str) -> str:
    """CSP allowing exactly the two inline scripts of the page, and no network at all."""
    return (
        f"default-src 'none'; script-src {plotly_hash} {_sha256_source(LOADER_JS)}; style-src 'unsafe-inline'; "
        "img-src data: blob:; font-src data:; base-uri 'none'; form-action 'none'"
    )


def script_json(text: str) -> str:
    """JSON text made safe inside a <script> element (the escapes keep it valid JSON)."""
    return (
        text.replace("<", "\\u003c")
        .replace(">", "\\u003e")
        .replace("&", "\\u0026")
        .replace("\u2028", "\\u2028")
        .replace("\u2029", "\\u2029")
    )


def _headline_html(headline: Headline) -> str:
    cls = STATUS_CLASS.get(headline.status or "", "unknown")
    status = f'<p class="status">Recommendation: {esc(headline.status)}</p>' if headline.status else ""
    lines = "".join(f"<p>{esc(line)}</p>" for line in headline.lines)
    return f'<section class="headline {cls}" id="headline"><h2>Headline</h2>{status}{lines}</section>'


def _missing_html(missing: list[str]) -> str:
    if not missing:
        return ""
    items = "".join(f"<li>{esc(m)}</li>" for m in missing)
    return f'<section class="missing-box" id="missing"><h2>What is missing</h2><ul>{items}</ul></section>'


def _section_html(section: Section) -> str:
    key = esc(section.key)
    parts = [f'<section id="sec-{key}"><h2>{esc(section.title)}</h2>']
    if section.intro and (section.figure is not None or section.body_html):  # no caption for nothing
        parts.append(f'<p class="intro">{esc(section.intro)}</p>')
    if section.figure is not None:
        spec = script_json(section.figure.to_json())
        parts.append(f'<div class="tw-plot" id="plot-{key}" data-spec="spec-{key}"></div>')
        parts.append(f'<script type="application/json" id="spec-{key}">{spec}</script>')
    parts.append(section.body_html)
    if section.missing:
        parts.append(f'<p class="missing-note">{esc(section.missing)}</p>')
    parts.append("</section>")
    return "".join(parts)


def render_page(content: ReportContent, *, title: str, generated_at: datetime | None = None) -> str:
    """The whole page as a string (plotly.js inlined, about 5 MB)."""
    plotly_js, plotly_hash = plotly_bundle()
    when = (generated_at or datetime.now(UTC)).strftime("%Y-%m-%d %H:%M UTC")
    toc = "".join(f'<li><a href="#sec-{esc(s.key)}">{esc(s.title)}</a></li>' for s in content.sections)
    return (
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        f'<meta http-equiv="Content-Security-Policy" content="{esc(_csp(plotly_hash))}">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{esc(title)}</title><style>{CSS}</style>"
        f"<script>{plotly_js}</script></head><body>"
        f"<header><h1>{esc(title)}</h1><p>tunewise report · generated {esc(when)}</p></header><main>"
        + _headline_html(content.headline)
        + _missing_html(content.missing)
        + f'<nav><section><h2>Contents</h2><ul>{toc}</ul></section></nav>'
        + "".join(_section_html(s) for s in content.sections)
        + f"</main><script>{LOADER_JS}</script></body></html>\n"
    )
