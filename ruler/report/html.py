"""One self-contained HTML page: the verdict on top, the plots inline, the table, and a per-sample drill-down
(filtered and paged in the browser, so thousands of samples stay usable). No network access."""

from __future__ import annotations

import base64
import html
import json
from pathlib import Path

from ruler.report import telemetry
from ruler.report.results import RunResults
from ruler.report.tables import rows

PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>ruler report: {title}</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1100px; color: #222; }}
.verdict {{ font-size: 1.25em; padding: .8em 1em; background: #f3f6fa; border-left: 5px solid #36c; }}
table {{ border-collapse: collapse; font-size: .9em; }} td, th {{ border: 1px solid #ccc; padding: .25em .5em; }}
td.num {{ text-align: right; }} img {{ max-width: 100%; }} #samples td {{ vertical-align: top; }}
.muted {{ color: #777; }} input, select {{ margin-right: .5em; }}
</style></head><body>
<h1>{title}</h1>
<p class="verdict" id="verdict">{verdict}</p>
<ul>{effective}</ul>
<p class="muted">{details}</p>
{images}
<h2>Scores by task and length</h2>
{table}
<h2>Serving by length</h2>
{serving}
<h2>Samples</h2>
<p><input id="filter" placeholder="filter: task, length, validity, text"> <span id="count"></span>
<button id="prev">previous</button><button id="next">next</button></p>
<table id="samples"><thead><tr><th>task</th><th>length</th><th>depth</th><th>validity</th><th>score</th>
<th>precision</th><th>references</th><th>prediction</th><th>prompt sha256</th></tr></thead><tbody></tbody></table>
<script type="application/json" id="data">{data}</script>
<script>
const rows = JSON.parse(document.getElementById("data").textContent);
const body = document.querySelector("#samples tbody"), size = 100;
let page = 0, shown = rows;
function esc(s) {{ return String(s).replace(/[&<>"]/g, c => ({{"&":"&amp;","<":"&lt;",">":"&gt;",'"':"&quot;"}})[c]); }}
function draw() {{
  const slice = shown.slice(page * size, (page + 1) * size);
  body.innerHTML = slice.map(r => "<tr><td>" + [r.task, r.length, r.depth, r.validity, r.score,
    r.precision, r.references, r.prediction, r.sha].map(esc).join("</td><td>") + "</td></tr>").join("");
  document.getElementById("count").textContent = shown.length + " samples, page " + (page + 1) + " of " +
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


def _table(table: list[list[str]]) -> str:
    """Header row, then rows whose first cell names them and whose other cells are numbers."""
    head = "".join(f"<th>{html.escape(cell)}</th>" for cell in table[0])
    body = "".join("<tr><td>" + html.escape(row[0]) + "</td>" +
                   "".join(f'<td class="num">{html.escape(cell)}</td>' for cell in row[1:]) + "</tr>"
                   for row in table[1:])
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def render(results: RunResults, images: list[Path]) -> str:
    samples = [{"task": s.task, "length": s.length, "depth": ", ".join(f"{d:.2f}" for d in s.depths),
                "validity": s.validity, "score": "" if s.score is None else round(100 * s.score, 1),
                "precision": "" if s.precision is None else round(100 * s.precision, 1),
                "references": " | ".join(s.references), "prediction": s.prediction, "sha": s.prompt_sha256[:16]}
               for s in results.scored]
    run = results.manifest.get("run", {})
    inc, dec = results.wavg or (0.0, 0.0)
    details = (f"backend {run.get('backend')}, tokenizer {results.manifest.get('tokenizer')}, "
               f"{len(results.scored)} predictions, wAvg inc {inc:.1f} / dec {dec:.1f}")
    return PAGE.format(
        title=html.escape(str(run.get("model", "run"))), verdict=html.escape(results.verdict.line()),
        effective="".join(f"<li>effective length ({html.escape(e.rule)}): {html.escape(e.describe(results.lengths))}"
                          "</li>" for e in results.effective),
        details=html.escape(details), images="".join(_image(path) for path in images), table=_table(rows(results)),
        serving=_table(telemetry.table(results.telemetry)),
        data=json.dumps(samples, ensure_ascii=False).replace("</", "<\\/"),
    )
