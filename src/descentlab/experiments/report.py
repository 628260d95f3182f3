"""The report of a set of experiments: ``report.md`` and ``report.html`` in the output folder.

Built from the ``NAME/result.json`` files found there, so ``experiment run``
of one experiment and ``experiment all`` leave the same layout. Each section
has the claim, the verdict (outcome, criterion, statistic and interval), the
table, every figure and the specs to rerun it.
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from pathlib import Path

from .base import ExperimentResult, fmt


def load_results(out: str | Path, order: Sequence[str] | None = None) -> list[ExperimentResult]:
    """The results under ``out`` (``NAME/result.json``), in ``order`` (registry order) then by name."""
    out = Path(out)
    found = {p.parent.name: p for p in sorted(out.glob("*/result.json"))}
    names = [n for n in (order or []) if n in found] + sorted(n for n in found if n not in (order or []))
    return [ExperimentResult.from_json(found[n].read_text()) for n in names]


def _rerun(r: ExperimentResult) -> list[str]:
    return [f"descentlab sweep {r.name}/specs/{k}.toml -o runs/{r.name}-{k}" for k in r.specs]


def markdown(results: Sequence[ExperimentResult]) -> str:
    lines = ["# descentlab experiments", ""]
    if results:
        lines += [f"Size: {', '.join(sorted({r.size for r in results}))}; "
                  f"{sum(r.runs for r in results)} runs in {sum(r.seconds for r in results):.0f} s.", ""]  # fmt: skip
    lines += ["| experiment | verdict | statistic [95% interval] | time (s) |", "|---|---|---|---|"]
    for r in results:
        v = r.verdict
        lines.append(f"| [{r.name}](#{r.name}) | {v.outcome} | {v.statistic} = {fmt(v.value)} "
                     f"[{fmt(v.interval[0])}, {fmt(v.interval[1])}] | {r.seconds:.0f} |")  # fmt: skip
    for r in results:
        v = r.verdict
        lines += ["", f"## {r.name}", "", f"**Claim.** {r.claim}", "", f"**Verdict.** {v.line()}", ""]
        if v.details:
            lines += [v.details, ""]
        lines += [r.table_markdown(), ""]
        for fig in r.figures:
            lines += [f"![{r.name}: {Path(fig).stem}]({r.name}/{fig})", ""]
        for n in r.notes:
            lines += [f"- {n}"]
        if r.notes:
            lines.append("")
        lines += [f"Size `{r.size}`, {r.runs} runs, {r.seconds:.1f} s. Specs (in `{r.name}/specs/`), rerun with:",
                  "", "```bash", *_rerun(r), "```"]  # fmt: skip
    return "\n".join(lines) + "\n"


def _html_table(rows: Sequence[dict[str, object]]) -> str:
    if not rows:
        return "<p>(no rows)</p>"
    keys = list(rows[0])
    head = "".join(f"<th>{html.escape(k)}</th>" for k in keys)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(fmt(r.get(k)))}</td>" for k in keys) + "</tr>" for r in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def html_report(results: Sequence[ExperimentResult], out: Path) -> str:
    e = html.escape
    parts = ["<!doctype html><html><head><meta charset='utf-8'><title>descentlab experiments</title>",
             "<style>body{font-family:sans-serif;max-width:1100px;margin:auto}table{border-collapse:collapse}"
             "td,th{border:1px solid #bbb;padding:2px 6px;font-size:90%}img{max-width:100%}"
             "pre{background:#f4f4f4;padding:6px;overflow-x:auto}</style></head><body>",
             "<h1>descentlab experiments</h1>"]  # fmt: skip
    summary = [{"experiment": r.name, "verdict": r.verdict.outcome, "statistic": r.verdict.statistic,
                "value": r.verdict.value, "low": r.verdict.interval[0], "high": r.verdict.interval[1],
                "time (s)": round(r.seconds)} for r in results]  # fmt: skip
    parts.append(_html_table(summary))
    for r in results:
        v = r.verdict
        parts += [f"<h2 id='{e(r.name)}'>{e(r.name)}</h2>", f"<p><b>Claim.</b> {e(r.claim)}</p>",
                  f"<p><b>Verdict: {e(v.outcome)}</b> - {e(v.statistic)} = {e(fmt(v.value))} "
                  f"[95%: {e(fmt(v.interval[0]))}, {e(fmt(v.interval[1]))}]; "
                  f"criterion: {e(v.criterion)}</p>"]  # fmt: skip
        if v.details:
            parts.append(f"<p>{e(v.details)}</p>")
        parts.append(_html_table(r.table))
        for fig in r.figures:
            parts.append(f"<p><img src='{e(r.name)}/{e(fig)}' alt='{e(fig)}'></p>")
        if r.notes:
            parts.append("<ul>" + "".join(f"<li>{e(n)}</li>" for n in r.notes) + "</ul>")
        parts.append(f"<p>Size {e(r.size)}, {r.runs} runs, {r.seconds:.1f} s. Rerun:</p>")
        parts.append("<pre>" + e("\n".join(_rerun(r))) + "</pre>")
        for k in r.specs:
            spec_path = out / r.name / "specs" / f"{k}.toml"
            if spec_path.exists():
                parts.append(f"<details><summary>{e(k)}.toml</summary><pre>{e(spec_path.read_text())}</pre></details>")
    parts.append("</body></html>")
    return "\n".join(parts)


def write_report(out: str | Path, order: Sequence[str] | None = None) -> tuple[Path, Path]:
    """Write ``out/report.md`` and ``out/report.html`` from the results found in ``out``."""
    out = Path(out)
    results = load_results(out, order)
    md = out / "report.md"
    md.write_text(markdown(results))
    ht = out / "report.html"
    ht.write_text(html_report(results, out))
    return md, ht
