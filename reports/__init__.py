"""reports: records -> Plotly figures -> one self-contained HTML page.

    from reports.render import build_report
    build_report(["runs/"], "report.html", advice="advice.json", eval_path="eval/eval.json")

inputs.py     find and load run folders, eval.json, advice JSON (strict schema ids)
views.py      read-only views of estimate/v1 and advice/v1
outcomes.py   run-vs-base comparisons in display units (pp, positive = better)
figures_*.py  pure functions: resources (memory, estimate vs measured, cost/time),
              quality (gain vs forgetting, forest plot), training (loss, DPO margins)
gpu_compare.py  optional: candidates re-estimated on other GPUs by the advisor
headline.py   the plain-words summary and whether the recommendation held up
tables.py     escaped HTML tables; sections.py the page's sections; html.py the page
"""
