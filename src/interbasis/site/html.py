"""HTML building blocks of the site: the page shell, tables, plot embedding, links, CSS and JS.

Every page references ``site.css``, ``site.js`` and ``plotly.min.js`` at the site root by a
relative path, so the folder opens from disk (``file://``) and can be copied anywhere whole.
"""

from __future__ import annotations

import html
import json
import math
from collections.abc import Sequence
from typing import Any
from urllib.parse import quote

import numpy as np


def esc(value: Any) -> str:
    return html.escape("" if value is None else str(value), quote=True)


def href(*parts: str) -> str:
    """A relative URL from path parts; run names keep their readable ``=``, ``,`` and ``+``."""
    return "/".join(quote(part, safe="=,+@-._#") for part in parts)


def link(url: str, text: Any) -> str:
    return f'<a href="{esc(url)}">{esc(text)}</a>'


def fmt(value: Any) -> str:
    """Numbers at 4 significant digits, integers whole, NaN and None as a dash."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() and abs(value) < 1e15 else f"{value:.4g}"
    return str(value)


def sort_value(value: Any) -> str:
    """What the table sorter compares: the full number, or the text."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return repr(float(value))
    return str(value)


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]], *, sortable: bool = False,
          raw_columns: Sequence[int] = (), row_ids: Sequence[str | None] | None = None,
          css: str = "") -> str:
    """A table; cells in ``raw_columns`` are HTML already (links), or (HTML, sort key) pairs."""
    classes = " ".join(filter(None, ["sortable" if sortable else "", css]))
    # metric names break after their slashes, so narrow columns keep whole words
    head = "".join(f'<th title="{esc(h)}{" (click to sort)" if sortable else ""}">'
                   f'{esc(h).replace("/", "/<wbr>")}</th>' for h in headers)
    body = []
    for n, row in enumerate(rows):
        cells = []
        for column, value in enumerate(row):
            if column in raw_columns and isinstance(value, tuple):  # (html, sort key)
                cells.append(f'<td data-value="{esc(value[1])}">{value[0]}</td>')
            elif column in raw_columns:
                cells.append(f"<td>{value}</td>")
            else:
                cells.append(f'<td data-value="{esc(sort_value(value))}">{esc(fmt(value))}</td>')
        row_id = row_ids[n] if row_ids is not None else None
        attribute = f' id="{esc(row_id)}"' if row_id else ""
        body.append(f"<tr{attribute}>{''.join(cells)}</tr>")
    return (f'<div class="table-wrap"><table class="{classes}"><thead><tr>{head}</tr></thead>'
            f"<tbody>{''.join(body)}</tbody></table></div>")


def plot_div(fig, div_id: str, *, clickable: bool = False) -> str:
    """A div and the script that draws ``fig`` into it (via ``IB.plot`` in site.js)."""
    if fig is None:
        return ""
    # "</" inside a label must not close the script element
    spec = json.dumps(_plain(fig), allow_nan=False).replace("</", "<\\/")
    return (f'<div class="plot" id="{esc(div_id)}"></div>\n'
            f"<script>IB.plot({json.dumps(div_id)}, {spec}, {json.dumps(clickable)});</script>")


def _plain(value: Any) -> Any:
    """JSON-ready: numpy values as python ones, NaN and infinities as null (a gap in plotly)."""
    if isinstance(value, dict):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, list | tuple | np.ndarray):
        return [_plain(item) for item in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def page(title: str, body: str, *, root: str, crumbs: Sequence[tuple[str, str]] = ()) -> str:
    """A complete page; ``root`` is the relative path to the site root ("" or "../../")."""
    nav = " / ".join([link(f"{root}index.html", "results"),
                      *(link(url, text) if url else esc(text) for url, text in crumbs)])
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{esc(title)}</title>
<link rel="icon" href="data:,">
<link rel="stylesheet" href="{root}site.css">
<script src="{root}plotly.min.js"></script>
<script src="{root}site.js"></script>
</head><body>
<nav>{nav}</nav>
<main>
<h1>{esc(title)}</h1>
{body}
</main>
</body></html>
"""


CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 0; color: #222;
       background: #fff; }
nav { padding: 8px 24px; background: #f3f4f6; border-bottom: 1px solid #ddd; font-size: 14px; }
main { padding: 8px 24px 40px; max-width: 1500px; }
h1 { font-size: 22px; margin: 14px 0 6px; word-break: break-all; }
h2 { font-size: 18px; margin: 28px 0 8px; border-bottom: 1px solid #e5e5e5; padding-bottom: 4px; }
h3 { font-size: 15px; margin: 18px 0 6px; }
p, li { font-size: 14px; line-height: 1.45; max-width: 110ch; }
.note { color: #7a4b00; background: #fff7e6; border-left: 3px solid #e69f00; padding: 4px 10px; }
.muted { color: #666; }
.table-wrap { overflow-x: auto; max-width: 100%; }
table { border-collapse: collapse; font-size: 13px; margin: 6px 0 12px; }
th, td { border: 1px solid #ddd; padding: 3px 7px; text-align: right; white-space: nowrap; }
th { background: #f7f7f9; position: sticky; top: 0; }
td:first-child, th:first-child { text-align: left; }
table.sortable th { cursor: pointer; }
table.sortable th[data-order="asc"]::after { content: " \\25B2"; }
table.sortable th[data-order="desc"]::after { content: " \\25BC"; }
table.features td:nth-child(4), table.features td:nth-child(5),
table.features td:nth-child(6) { text-align: left; white-space: normal; min-width: 14em; }
table.sortable th { white-space: normal; max-width: 16em; vertical-align: bottom; }
tr:target { background: #fff3b0; }
.plot { width: 100%; min-height: 360px; }
.grid { display: grid; grid-template-columns: repeat(auto-fit, minmax(420px, 1fr)); gap: 12px; }
details { margin: 8px 0; font-size: 13px; }
pre { background: #f7f7f9; padding: 8px; overflow-x: auto; font-size: 12px; }
code { font-size: 13px; }
"""

# IB.plot draws a figure; clickable graphs open the feature a node's customdata points to.
# The table sorter compares numbers as numbers and puts empty cells last.
JS = """
var IB = {
  queue: [],
  // Plots are drawn once the page is parsed: a plot drawn earlier would take the width its grid
  // cell had before its neighbours existed.
  plot: function (id, fig, clickable) {
    if (document.readyState === 'loading') {
      IB.queue.push([id, fig, clickable]);
    } else {
      IB.draw(id, fig, clickable);
    }
  },
  draw: function (id, fig, clickable) {
    var config = {displaylogo: false, responsive: true};
    return Plotly.newPlot(id, fig.data, fig.layout, config).then(function (gd) {
      if (!clickable) { return; }
      gd.on('plotly_click', function (event) {
        var point = event.points && event.points[0];
        if (point && typeof point.customdata === 'string') {
          window.location.href = point.customdata;
        }
      });
    });
  },
  key: function (cell) {
    var text = cell.getAttribute('data-value');
    if (text === null) { text = cell.textContent.trim(); }
    if (text === '') { return [2, '']; }
    var number = Number(text);
    return isNaN(number) ? [1, text.toLowerCase()] : [0, number];
  },
  sort: function (table, column, header) {
    var ascending = header.getAttribute('data-order') !== 'asc';
    table.querySelectorAll('th').forEach(function (h) { h.removeAttribute('data-order'); });
    header.setAttribute('data-order', ascending ? 'asc' : 'desc');
    var body = table.tBodies[0];
    var rows = Array.prototype.slice.call(body.rows);
    rows.sort(function (a, b) {
      var x = IB.key(a.cells[column]), y = IB.key(b.cells[column]);
      if (x[0] !== y[0]) { return x[0] - y[0]; }
      var order = x[1] < y[1] ? -1 : (x[1] > y[1] ? 1 : 0);
      return ascending ? order : -order;
    });
    rows.forEach(function (row) { body.appendChild(row); });
  }
};
document.addEventListener('DOMContentLoaded', function () {
  var drawn = IB.queue.map(function (args) { return IB.draw(args[0], args[1], args[2]); });
  IB.queue = [];
  // drawing moved everything below the plots: bring an addressed feature row back into view
  Promise.all(drawn).then(function () {
    var target = window.location.hash && document.getElementById(
      decodeURIComponent(window.location.hash.slice(1)));
    if (target) { target.scrollIntoView(); }
  });
  document.querySelectorAll('table.sortable').forEach(function (table) {
    table.querySelectorAll('th').forEach(function (header, column) {
      header.addEventListener('click', function () { IB.sort(table, column, header); });
    });
  });
});
"""
