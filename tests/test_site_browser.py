"""The results browser in a real headless browser (Debian's ``chromium``; `.ci/run` installs it).

One chromium process opens a harness page that loads every page of a synthetic site from disk in
an iframe, one after the other, and records how many plot divs plotly drew on each, what a graph
shows when its first node is hovered, and how a sortable table reorders. The pages log
nothing when they work, so any console line (an iframe's included) is an error. A screenshot of a
graph page must have the window's size, not be blank, and show its nodes' colour. Links are checked
in ``test_site.py`` (that needs no browser).
"""

import json
import shutil
import subprocess
from collections import Counter
from pathlib import Path

import pytest
from PIL import Image

from interbasis.basis.types import load_graph
from interbasis.site import build_site
from interbasis.site.collect import load_store
from interbasis.site.labels import feature_labels
from interbasis.site.plots import UNCLUSTERED, graph_view
from site_store import write_site_store

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = [pytest.mark.integration,
              pytest.mark.skipif(CHROMIUM is None,
                                 reason="no chromium installed (apt-get install chromium)")]
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--hide-scrollbars", "--enable-logging=stderr", "--v=0",
         # virtual time runs the harness's timers at once; pending file loads pause it
         "--virtual-time-budget=120000"]
WINDOW = (1300, 1000)
HARNESS = """<!doctype html><html><body><pre id="out">running</pre><script>
var pages = PAGES, results = [], i = 0;
function next() {
  if (i >= pages.length) {
    document.getElementById('out').textContent = 'RESULTS ' + JSON.stringify(results);
    return;
  }
  var frame = document.createElement('iframe');
  frame.style.width = '1300px'; frame.style.height = '900px';
  frame.onload = function () {
    setTimeout(function () {
      var doc = frame.contentDocument;
      var plots = Array.prototype.slice.call(doc.querySelectorAll('div.plot'));
      var drawn = plots.filter(function (div) {  // plotly marks the divs it drew into
        return div.classList.contains('js-plotly-plot') && div.querySelector('svg.main-svg');
      });
      var entry = {page: pages[i], plots: plots.length, drawn: drawn.length};
      var tables = Array.prototype.slice.call(doc.querySelectorAll('table.sortable'));
      if (tables.length) {  // sort the longest table by its first column, up then down
        var table = tables.sort(function (a, b) { return b.rows.length - a.rows.length; })[0];
        var first = function () { return table.tBodies[0].rows[0].cells[0].textContent; };
        table.querySelector('th').click();
        entry.ascending = first();
        table.querySelector('th').click();
        entry.descending = first();
      }
      var graph = doc.getElementById('graph');
      if (graph && graph.data) {  // hover the first node: its label must show
        frame.contentWindow.Plotly.Fx.hover(
          graph, [{curveNumber: graph.data.length - 1, pointNumber: 0}]);
        var hover = graph.querySelector('.hovertext');
        entry.hover = hover ? hover.textContent : null;
      }
      results.push(entry);
      frame.remove(); i += 1; next();
    }, 50);
  };
  frame.src = pages[i];
  document.body.appendChild(frame);
}
next();
</script></body></html>"""


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    return build_site(write_site_store(tmp_path_factory.mktemp("store"))).out


def chromium(url: str, profile: Path, *extra: str) -> subprocess.CompletedProcess:
    return subprocess.run([CHROMIUM, *FLAGS, f"--user-data-dir={profile}", *extra, url],
                          capture_output=True, text=True, timeout=120, check=False)


def open_all(folder: Path, pages: list[str], profile: Path) -> tuple[list[dict], list[str]]:
    """(per page: plot divs and those plotly drew, console lines) from one chromium run."""
    harness = folder / "harness.html"
    harness.write_text(HARNESS.replace("PAGES", json.dumps(pages)), encoding="utf-8")
    # the harness reads its iframes' documents: file pages are one origin only with this flag
    result = chromium(harness.as_uri(), profile, "--allow-file-access-from-files", "--dump-dom")
    harness.unlink()
    assert result.returncode == 0, result.stderr[-2000:]
    assert "RESULTS " in result.stdout, "the harness did not finish: " + result.stdout[-500:]
    found = json.loads(result.stdout.split("RESULTS ", 1)[1].split("</pre>", 1)[0])
    return found, [line for line in result.stderr.splitlines() if ":CONSOLE" in line]


def test_the_harness_sees_console_errors_of_a_page(tmp_path):
    (tmp_path / "bad.html").write_text(
        "<script>console.error('broken'); missing_function();</script>")
    found, console = open_all(tmp_path, ["bad.html"], tmp_path / "profile")
    assert found == [{"page": "bad.html", "plots": 0, "drawn": 0}]
    assert any("broken" in line for line in console)
    assert any("missing_function is not defined" in line for line in console)


def test_every_page_loads_without_console_errors_and_draws_its_plots(site, tmp_path):
    pages = sorted(str(page.relative_to(site)) for page in site.rglob("*.html"))
    assert len(pages) == 16
    found, console = open_all(site, pages, tmp_path / "profile")
    assert console == []
    assert [entry["page"] for entry in found] == pages
    for entry in found:
        assert entry["drawn"] == entry["plots"], entry
    assert sum(entry["plots"] for entry in found) >= 40
    hovers = {entry["page"]: entry.get("hover") for entry in found}
    modadd = hovers["graphs/modadd_toy/method=lib,seed=0.html"]
    assert modadd.startswith("blocks.0.hook_resid_pre #") and "(purity " in modadd, modadd
    assert "importance" in modadd and "cluster" in modadd
    assert "(no label)" in hovers["graphs/lm_toy/method=lib,seed=0.html"]
    index = next(entry for entry in found if entry["page"] == "index.html")
    assert (index["ascending"], index["descending"]) == ("method=lib,seed=0", "method=pca,seed=1")


def test_graph_view_renders_its_nodes(site, tmp_path):
    run = next(r for r in load_store(site.parent)
               if r.experiment == "modadd_toy" and r.name == "method=lib,seed=0")
    graph = load_graph(run.graph_file)
    figure = graph_view(graph, feature_labels(run, graph))
    colours = Counter(figure["data"][-1]["marker"]["color"])
    node_colour = next(c for c, _ in colours.most_common() if c != UNCLUSTERED)

    page = site / "graphs" / "modadd_toy" / "method=lib,seed=0.html"
    shot = tmp_path / "graph.png"
    result = chromium(page.as_uri(), tmp_path / "profile", f"--screenshot={shot}",
                      f"--window-size={WINDOW[0]},{WINDOW[1]}")
    assert result.returncode == 0 and shot.is_file(), result.stderr[-2000:]
    image = Image.open(shot).convert("RGB")
    assert image.size == WINDOW
    counts = {colour: n for n, colour in image.getcolors(maxcolors=image.width * image.height)}
    white = sum(n for colour, n in counts.items() if min(colour) > 245)
    assert white < 0.97 * image.width * image.height, "the screenshot is (nearly) blank"
    target = tuple(int(node_colour[i:i + 2], 16) for i in (1, 3, 5))
    near = sum(n for colour, n in counts.items()
               if max(abs(a - b) for a, b in zip(colour, target)) <= 12)
    assert near >= 200, f"only {near} pixels of the node colour {node_colour}"
