"""One self-contained HTML page: the verdict on top, the plots inline, the table, and a per-sample drill-down
(filtered and paged in the browser, so thousands of samples stay usable). No network access."""

from __future__ import annotations

import base64
import html
import json
from pathlib import Path

from ruler.adaptive import cost, decision
from ruler.lengths import format_length
from ruler.report import telemetry
from ruler.report.results import RunResults
from ruler.report.tables import length_rows, rows
from ruler.scoring.aggregate import SAID
from ruler.scoring.validity import MEANINGS

PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>ruler report: {title}</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1100px; color: #222; }}
.verdict {{ font-size: 1.25em; padding: .8em 1em; background: #f3f6fa; border-left: 5px solid #36c; }}
table {{ border-collapse: collapse; font-size: .9em; }} td, th {{ border: 1px solid #ccc; padding: .25em .5em; }}
td.num {{ text-align: right; }} img {{ max-width: 100%; }} #samples td {{ vertical-align: top; }}
.muted {{ color: #555; }} input, select {{ margin-right: .5em; }}
.warning {{ padding: .5em 1em; background: #fff4e5; border-left: 5px solid #e69f00; }}
</style></head><body>
<h1>{title}</h1>
<p class="verdict" id="verdict">{verdict}</p>
{warnings}
{adaptive}
<ul>{effective}</ul>
<p class="muted">{details}</p>
<h2>Lengths</h2>
<p class="muted">complete: every planned sample answered and every task scored; incomplete: samples in error or
not sent, so the length is unknown (never a pass); unserved: the server refused or cut prompts, or the length was
skipped as beyond the window, so the window does not hold there.</p>
<div id="lengths">{lengths}</div>
<details><summary>What each validity means</summary><ul>{legend}</ul></details>
{images}
<h2>Scores by task and length</h2>
{table}
<p class="muted">Scores in percent, n answers scored. mean: over tasks, with its 95% interval. {wavg}</p>
<h2>Serving by length</h2>
{serving}
<p class="muted">{serving_notes}</p>
<h2>Samples</h2>
<p><input id="filter" placeholder="filter: task, length, validity, text"> <span id="count"></span>
<button id="prev">previous</button><button id="next">next</button></p>
<table id="samples"><thead><tr><th>task</th><th>length</th><th>depth</th><th>validity</th><th>finish</th>
<th>score</th><th>precision</th><th>references</th><th>prediction</th><th>prompt sha256</th></tr></thead><tbody>
</tbody></table>
<script type="application/json" id="data">{data}</script>
<script>
const rows = JSON.parse(document.getElementById("data").textContent);
const body = document.querySelector("#samples tbody"), size = 100;
let page = 0, shown = rows;
function esc(s) {{ return String(s).replace(/[&<>"]/g, c => ({{"&":"&amp;","<":"&lt;",">":"&gt;",'"':"&quot;"}})[c]); }}
function draw() {{
  const slice = shown.slice(page * size, (page + 1) * size);
  body.innerHTML = slice.map(r => "<tr><td>" + [r.task, r.length, r.depth, r.validity, r.finish, r.score,
    r.precision, r.references, r.prediction, r.sha].map(esc).join("</td><td>") + "</td></tr>").join("");
  document.getElementById("count").textContent = shown.length + (shown.length === 1 ? " sample" : " samples") +
    ", page " + (page + 1) + " of " +
    Math.max(1, Math.ceil(shown.length / size));
}}
document.getElementById("filter").addEventListener("input", e => {{
  const q = e.target.value.toLowerCase();
  shown = rows.filter(r => JSON.stringify(r).toLowerCase().includes(q)); page = 0; draw(); }});
document.getElementById("prev").onclick = () => {{ if (page > 0) {{ page--; draw(); }} }};
document.getElementById("next").onclick = () => {{ if ((page + 1) * size < shown.length) {{ page++; draw(); }} }};
draw();
</script></body></html>
"""


def _image(path: Path) -> str:
    encoded = base64.b64encode(path.read_bytes()).decode()
    return f'<p><img alt="{html.escape(path.stem)}" src="data:image/png;base64,{encoded}"></p>'


def _table(table: list[list[str]], text_columns: int = 1) -> str:
    """Header row, then rows whose first `text_columns` cells are words and whose other cells are numbers."""
    head = "".join(f"<th>{html.escape(cell)}</th>" for cell in table[0])
    body = "".join("<tr>" + "".join(f"<td>{html.escape(cell)}</td>" for cell in row[:text_columns]) +
                   "".join(f'<td class="num">{html.escape(cell)}</td>' for cell in row[text_columns:]) + "</tr>"
                   for row in table[1:])
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _adaptive(record: dict | None) -> str:
    """The decision path of an adaptive `ruler validate`: each length as it was judged, and what it cost."""
    if not record:
        return ""
    steps = "".join(f"<li>{html.escape(step)}</li>" for step in record.get("path", []))
    return (f'<div id="adaptive"><h2>Adaptive validation: {SAID[decision(record)]}</h2>'
            f'<ol>{steps}</ol><p class="muted">{html.escape(cost(record))}</p></div>')


def render(results: RunResults, images: list[Path]) -> str:
    samples = [{"task": s.task, "length": format_length(s.length), "depth": ", ".join(f"{d:.2f}" for d in s.depths),
                "validity": s.validity, "finish": s.finish_reason or "", "score": "" if s.score is None else
                round(100 * s.score, 1), "precision": "" if s.precision is None else round(100 * s.precision, 1),
                "references": " | ".join(s.references), "prediction": s.prediction, "sha": s.prompt_sha256[:16]}
               for s in results.scored]
    run = results.manifest.get("run", {})
    details = (f"backend {run.get('backend')}, tokenizer {results.manifest.get('tokenizer')}, "
               f"{len(results.scored)} predictions")
    inc, dec = results.wavg or (0.0, 0.0)
    wavg = (f"wAvg inc {inc:.1f} / dec {dec:.1f}: RULER's averages over lengths, weighted up (inc) or down (dec) "
            "with length.")
    warnings = ([f"warning: {results.truncation.describe()}"] if results.truncation else []) + \
        telemetry.drift_warnings(results.telemetry)
    return PAGE.format(
        title=html.escape(str(run.get("model", "run"))), verdict=html.escape(results.verdict.line()),
        adaptive=_adaptive(run.get("adaptive")),
        warnings="".join(f'<p class="warning">{html.escape(line)}</p>' for line in warnings),
        effective="".join(f"<li>effective length ({html.escape(e.rule)}): {html.escape(e.describe(results.lengths))}"
                          "</li>" for e in results.effective),
        details=html.escape(details), lengths=_table(length_rows(results), text_columns=2),
        legend="".join(f"<li><b>{name}</b>: {html.escape(meaning)}</li>" for name, meaning in MEANINGS.items()),
        images="".join(_image(path) for path in images), table=_table(rows(results)), wavg=html.escape(wavg),
        serving=_table(telemetry.table(results.telemetry)), serving_notes=html.escape(telemetry.NOTES),
        data=json.dumps(samples, ensure_ascii=False).replace("</", "<\\/"),
    )
