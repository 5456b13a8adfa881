"""Report figures, headline, inputs and escaping: figure *data* is compared, not pixels.

    .venv/bin/python -m pytest -q tests/unit/test_report_figures.py

Fixtures: tests/fixtures/report/complete (4 runs incl. a failed one, eval.json, advice)
and tests/fixtures/report/hostile (the same with script/event-handler payloads in run
names, model names and dataset text).
"""

from __future__ import annotations

import dataclasses
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from reports import figures_quality, figures_resources, figures_training
from reports.gpu_compare import extra_gpu_estimates
from reports.headline import build_headline
from reports.html import script_json
from reports.inputs import collect_inputs
from reports.outcomes import changes, run_outcomes, to_change
from reports.render import build_report
from reports.sections import build_content
from tunewise.errors import InputError
from tunewise.records import Comparison

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "report"
COMPLETE = FIXTURES / "complete"


@pytest.fixture(scope="module")
def inputs():
    return collect_inputs([COMPLETE])


@pytest.fixture(scope="module")
def advice_raw():
    return json.loads((COMPLETE / "advice.json").read_text())


def _trace(fig, name):
    return next(t for t in fig.data if t.name == name)


def test_inputs_found_in_project_folder(inputs):
    assert sorted(r.name for r in inputs.runs) == ["dpo", "full", "lora", "qlora"]
    assert inputs.eval is not None and inputs.advice is not None
    full = next(r for r in inputs.runs if r.name == "full")
    assert [row["loss"] for row in full.metrics] == [2.2, 2.05, 1.97]  # truncated 4th line skipped
    assert any("full" in n and "line(s) 4" in n for n in inputs.notes)


def test_memory_bars_stack_the_estimate_breakdown_under_capacity_line(inputs, advice_raw):
    bars = [(c.method, c) for c in inputs.advice.candidates]
    fig = figures_resources.memory_breakdown_figure(bars, 80.0, "a100-80gb")
    assert fig.layout.barmode == "stack"
    for part in ("weights", "gradients", "optimizer", "activations", "adapter", "overhead"):
        expected = [c["memory_gib"][part] for c in advice_raw["candidates"]]
        assert list(_trace(fig, part).y) == expected
        assert list(_trace(fig, part).x) == [c["method"] for c in advice_raw["candidates"]]
    line = fig.layout.shapes[0]
    assert (line.y0, line.y1, line.xref) == (80.0, 80.0, "x domain" if line.xref == "x domain" else "paper")
    labels = dict(zip(_trace(fig, "total").x, _trace(fig, "total").text, strict=True))
    assert labels["full"] == "97.0 GiB · does not fit" and labels["lora"] == "19.6 GiB"
    assert labels["rlhf"].endswith("not supported")


def test_estimate_vs_measured_pairs_and_ratios(inputs):
    rows = {r.run: r for r in figures_resources.measured_rows(inputs.runs)}
    lora = rows["lora"]
    assert (lora.estimate_gib, lora.measured_gib) == (19.62, 21.3)
    assert lora.memory_ratio == pytest.approx(21.3 / 19.62)
    assert (lora.estimate_s, lora.measured_s) == (pytest.approx(1.9 * 3600), 7560.0)
    full = rows["full"]  # failed after 24,576 of 12M planned tokens: estimate scaled down
    assert full.estimate_s == pytest.approx(2.8 * 3600 * 24_576 / 12_000_000)
    assert "scaled" in full.note and "failed" in full.note
    fig = figures_resources.estimate_vs_measured_figure(list(rows.values()))
    memory_measured = next(t for t in fig.data if t.name == "measured" and t.xaxis == "x")
    assert list(memory_measured.y) == [rows[n].measured_gib for n in memory_measured.x]
    assert memory_measured.text[list(memory_measured.x).index("lora")] == "1.09× est."


def test_cost_and_time_bars_match_candidates_and_leave_unusable_empty(inputs, advice_raw):
    fig = figures_resources.cost_time_figure(inputs.advice.candidates)
    cost = next(t for t in fig.data if t.xaxis == "x")
    hours = next(t for t in fig.data if t.xaxis == "x2")
    by_method = {c["method"]: c for c in advice_raw["candidates"]}
    assert dict(zip(cost.x, cost.y, strict=True))["lora"] == by_method["lora"]["cost_usd"]
    assert dict(zip(hours.x, hours.y, strict=True))["qlora"] == by_method["qlora"]["time_hours"]
    assert dict(zip(cost.x, cost.y, strict=True))["full"] is None  # does not fit: not drawn as $0
    assert dict(zip(cost.x, cost.y, strict=True))["rlhf"] is None  # not supported
    assert figures_resources.unusable(inputs.advice.candidates) == ["a100-80gb: full does not fit", "a100-80gb: rlhf not supported"]


def test_extra_gpus_come_from_the_estimator_or_a_note(inputs, monkeypatch):
    def fake(candidate, gpu):
        raw = dict(candidate.raw, hardware={"name": gpu, "count": 1, "memory_gib": 24.0})
        return dict(raw, cost_usd=(candidate.cost_usd or 0) * 2, fits=candidate.method != "full")

    extra, note = extra_gpu_estimates(inputs.advice, estimator=fake, gpu_names=["rtx-4090", "a100-80gb"])
    assert note is None
    assert {e.hardware for e in extra} == {"rtx-4090"}  # the advice's own GPU is not repeated
    assert {e.method for e in extra} == {"prompt", "lora", "qlora", "full", "dpo"}  # rlhf unsupported
    fig = figures_resources.cost_time_figure([*inputs.advice.candidates, *extra])
    assert {t.name for t in fig.data} == {"a100-80gb", "rtx-4090"}
    monkeypatch.setitem(sys.modules, "advisor.estimate", None)  # advisor absent
    extra, note = extra_gpu_estimates(inputs.advice)
    assert extra == [] and note.startswith("Other GPUs could not be estimated")


def test_loss_curves_and_dpo_margins(inputs):
    fig = figures_training.loss_figure(inputs.runs)
    lora = _trace(fig, "lora")
    metrics = next(r for r in inputs.runs if r.name == "lora").metrics
    assert list(lora.y) == [m["loss"] for m in metrics] and list(lora.x) == [m["step"] for m in metrics]
    failed = _trace(fig, "full (failed)")
    assert failed.line.dash == "dash" and failed.marker.symbol[-1] == "x"
    margin = _trace(fig, "dpo margin")
    dpo = next(r for r in inputs.runs if r.name == "dpo").metrics
    assert list(margin.y) == [m["reward_margin"] for m in dpo] and margin.yaxis == "y2"


def test_scatter_points_at_domain_gain_and_worst_retention_with_intervals(inputs):
    fig = figures_quality.gain_forgetting_figure(run_outcomes(inputs.eval))
    base = _trace(fig, "base")
    assert (base.x, base.y) == ((0.0,), (0.0,))
    lora = _trace(fig, "lora")
    assert lora.x[0] == pytest.approx(14.5) and lora.y[0] == pytest.approx(-1.2)  # tw_arith is worst
    assert lora.error_x.array[0] == pytest.approx(18.0 - 14.5)
    assert lora.error_x.arrayminus[0] == pytest.approx(14.5 - 11.0)
    assert lora.error_y.array[0] == pytest.approx(1.0 + 1.2) and lora.error_y.arrayminus[0] == pytest.approx(3.4 - 1.2)
    dpo = _trace(fig, "dpo")  # the domain task, not its preference task, is the x value
    assert dpo.x[0] == pytest.approx(2.0) and dpo.y[0] == pytest.approx(-0.4)


def test_forest_plot_has_every_comparison_coloured_by_verdict(inputs):
    items = changes(inputs.eval)
    fig = figures_quality.forest_figure(items)
    points = {(y, x) for t in fig.data for x, y in zip(t.x, t.y, strict=True)}
    assert len(points) == len(inputs.eval.comparisons) == 10
    regression = _trace(fig, "regression")
    assert list(regression.y) == ["qlora · tw_arith"] and regression.x[0] == pytest.approx(-4.6)
    assert regression.error_x.array[0] == pytest.approx(-2.1 + 4.6) and regression.marker.color == "#d62728"
    assert len(_trace(fig, "gain").x) == 3 and len(_trace(fig, "inconclusive").x) == 6
    assert fig.layout.shapes[0].x0 == 0


def test_lower_is_better_metric_flips_sign_and_interval():
    comp = Comparison(run="r", task="ppl", metric="perplexity", base=12.0, score=10.0, diff=-2.0,
                      ci_low=-3.0, ci_high=-1.0, n=100, test="paired-bootstrap", p_value=0.01, verdict="gain")
    change = to_change(comp, higher_is_better=False)
    assert (change.diff, change.low, change.high, change.unit) == (2.0, 1.0, 3.0, "perplexity")


@pytest.mark.parametrize(
    ("method", "status", "words"),
    [
        ("lora", "held up", "without a detectable general-skill regression"),
        ("qlora", "partly held up", "regressed on tw_arith"),
        ("dpo", "did not hold up", "no measurable domain gain"),
        ("full", "did not hold up", "CUDA out of memory"),
        ("prompt", "cannot tell yet", "No run used the recommended method"),
    ],
)
def test_headline_says_whether_the_recommendation_held_up(inputs, method, status, words):
    changed = dataclasses.replace(inputs, advice=dataclasses.replace(inputs.advice, method=method))
    headline = build_headline(changed, run_outcomes(inputs.eval))
    assert headline.status == status and words in headline.reason
    assert headline.lines[-1].startswith(f"The advisor's recommendation {status}")


def test_headline_numbers_for_the_recommended_run(inputs):
    headline = build_headline(inputs, run_outcomes(inputs.eval))
    assert headline.focus_run == "lora" and headline.domain.diff == pytest.approx(14.5)
    assert headline.worst.task == "tw_arith" and headline.time_s == 7560.0
    assert headline.cost_usd == pytest.approx(7560 / 3600 * 2.74)  # measured hours x $/h
    assert "recommended lora for meta-llama/Llama-3.1-8B on a100-80gb" in headline.lines[0]


def test_partial_input_renders_with_what_is_missing(tmp_path):
    out = build_report([COMPLETE / "runs" / "lora"], tmp_path / "r.html")
    page = out.read_text()
    assert "What is missing" in page and "No evaluation yet" in page and "No advice" in page
    assert 'id="plot-training"' in page and 'id="plot-gain-forgetting"' not in page
    content = build_content(collect_inputs([COMPLETE / "runs" / "lora"]))
    memory = next(s for s in content.sections if s.key == "memory")
    assert memory.figure is not None  # from the run's own planned estimate
    assert content.headline.status is None


def test_advice_only_and_eval_only_reports(tmp_path):
    page = build_report([], tmp_path / "a.html", advice=COMPLETE / "advice.json").read_text()
    assert 'id="plot-memory"' in page and "No run folders" in page
    page = build_report([COMPLETE / "eval" / "eval.json"], tmp_path / "e.html").read_text()
    assert 'id="plot-forest"' in page and "Run " not in page.split("What is missing")[1].split("</ul>")[0]


def test_hostile_strings_are_escaped_in_html_and_figures(tmp_path):
    title = "T<script>window.__pwned=1</script>"
    page = build_report([FIXTURES / "hostile"], tmp_path / "h.html", title=title).read_text()
    for raw in ("<script>window.__pwned", "<img src=x", "<svg onload", "</script><script>", '<a href="javascript'):
        assert raw not in page
    assert page.count("<script>") == 2  # plotly.js and the loader
    assert "&lt;script&gt;window.__pwned=1&lt;/script&gt;" in page  # the title, escaped
    specs = dict(re.findall(r'<script type="application/json" id="spec-([\w-]+)">(.*?)</script>', page, re.S))
    assert len(specs) == 6
    legend = {t["name"] for t in json.loads(specs["gain-forgetting"])["data"] if "name" in t}
    assert "lora&lt;script&gt;window.__pwned='script'&lt;/script&gt;" in legend


def test_script_json_cannot_close_its_script_element():
    text = json.dumps({"name": "</script><script>x()</script> & \u2028"})
    safe = script_json(text)
    assert "</" not in safe and "<" not in safe and "\u2028" not in safe
    assert json.loads(safe) == json.loads(text)


def test_wrong_schema_ids_are_refused_with_file_and_field(tmp_path, advice_raw):
    bad = tmp_path / "advice.json"
    bad.write_text(json.dumps(dict(advice_raw, schema="tunewise/advice/v2")))
    with pytest.raises(InputError, match="unsupported schema") as err:
        collect_inputs([], advice=bad)
    assert err.value.field == "schema" and err.value.path == str(bad)
    candidates = [dict(advice_raw["candidates"][0], schema="tunewise/estimate/v9")]
    bad.write_text(json.dumps(dict(advice_raw, candidates=candidates)))
    with pytest.raises(InputError) as err:
        collect_inputs([], advice=bad)
    assert err.value.field == "candidates[0].schema"
    memory = dict(advice_raw["candidates"][0]["memory_gib"], weights="15 GiB")
    bad.write_text(json.dumps(dict(advice_raw, candidates=[dict(advice_raw["candidates"][0], memory_gib=memory)])))
    with pytest.raises(InputError) as err:
        collect_inputs([], advice=bad)
    assert err.value.field == "candidates[0].memory_gib.weights"
    other = tmp_path / "plan.json"
    other.write_text(json.dumps({"schema": "tunewise/plan/v1"}))
    with pytest.raises(InputError, match="unsupported schema"):
        collect_inputs([other])


def test_minimal_advice_is_tolerated(tmp_path):
    minimal = tmp_path / "advice.json"
    minimal.write_text(json.dumps({"schema": "tunewise/advice/v1", "recommendation": {"method": "lora"},
                                   "candidates": [{"schema": "tunewise/estimate/v1", "method": "lora"}]}))
    content = build_content(collect_inputs([], advice=minimal))
    memory = next(s for s in content.sections if s.key == "memory")
    assert memory.figure is None and "memory breakdown" in memory.missing
    assert content.headline.status == "cannot tell yet"


def test_several_eval_files_need_a_choice(tmp_path):
    root = tmp_path / "project"
    shutil.copytree(COMPLETE, root)
    shutil.copytree(root / "eval", root / "eval2")
    with pytest.raises(InputError, match="--eval"):
        collect_inputs([root])
    chosen = collect_inputs([root], eval_path=root / "eval2")
    assert chosen.eval_path == root / "eval2" / "eval.json"


def test_cli_writes_report_and_turns_bad_input_into_one_line(tmp_path, capsys):
    from tunewise.cli import main

    out = tmp_path / "report.html"
    assert main(["report", str(COMPLETE), "-o", str(out), "--title", "Q2 fine-tune"]) == 0
    assert "<title>Q2 fine-tune</title>" in out.read_text()
    capsys.readouterr()
    missing = tmp_path / "nope"
    assert main(["report", str(missing), "-o", str(tmp_path / "x.html")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"Error: {missing}: no such file or folder"]
    assert not (tmp_path / "x.html").exists()


def test_report_modules_do_not_import_torch(tmp_path):
    code = (
        "import sys; from reports.render import build_report; "
        "build_report([sys.argv[1]], sys.argv[2]); "
        "print(sorted(m for m in ('torch', 'transformers', 'peft', 'trl') if m in sys.modules))"
    )
    out = tmp_path / "r.html"
    result = subprocess.run([sys.executable, "-c", code, str(COMPLETE), str(out)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]" and out.stat().st_size > 1_000_000


def test_examples_table_reads_eval_outputs_and_marks_empty_generations():
    from reports.tables import examples_table

    html = examples_table([
        {"task": "qa", "prompt": "<q>?", "reference": None, "outputs": {"lora": "yes", "base": ""}},
        {"task": "qa", "prompt": "p2", "base": "b", "tuned": {"lora": "t"}},
    ])
    assert "<th>task</th><th>prompt</th><th>reference</th><th>base</th><th>lora</th>" in html
    assert "<td>(empty output)</td><td>yes</td>" in html and "<td>b</td><td>t</td>" in html
    assert "&lt;q&gt;?" in html and "<q>" not in html


def test_advice_section_shows_reasons_settings_and_data_verdicts(inputs):
    content = build_content(inputs, estimator=lambda c, g: c.raw, gpu_names=[])
    body = next(s for s in content.sections if s.key == "advice").body_html
    assert "<li>12 exact duplicate examples (0.5%)</li>" in body  # data warnings first
    assert "<td>dpo</td><td>wrong-format</td><td>dpo trains on preference data; found messages</td>" in body
    assert "<td>epochs</td><td>2</td><td>2,400 examples: 2 passes</td>" in body
    assert "<td>tokens.p95</td><td>812</td>" in body and "<td>problems.rows</td><td>none</td>" in body
    assert "Pass --preserve-general" in body
