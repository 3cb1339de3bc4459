"""Write the whole site: index, run pages, comparison pages, graph JSON, assets.

The site is built in a temporary folder beside the target and swapped in at the end, so an
interrupted build never leaves a half-written site that looks complete.
"""

from __future__ import annotations

import json
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path
from typing import Any

from interbasis.basis.types import load_graph
from interbasis.site import compare_page, run_page
from interbasis.site.collect import (
    Run,
    by_experiment,
    compare_groups,
    compared_method,
    load_store,
    run_metric_keys,
    sweep_axes,
)
from interbasis.site.graph_json import graph_record
from interbasis.site.html import CSS, JS, esc, fmt, href, link, page, table
from interbasis.site.labels import FeatureLabels, feature_labels


@dataclass
class BuildReport:
    out: Path
    pages: int = 0
    graphs: int = 0
    seconds: float = 0.0
    notes: list[str] = field(default_factory=list)


def write_plotly(out: Path) -> None:
    """plotly.js as shipped inside the plotly package, copied once to the site root.

    One shared file rather than inlined into every page: it is 4.8 MB, and the committed results
    alone make 80 pages (inlined, about 380 MB); the pages load it by a relative path, which works
    from disk (``file://``) as well as from any static web server.
    """
    bundled = resources.files("plotly") / "package_data" / "plotly.min.js"
    if bundled.is_file():
        (out / "plotly.min.js").write_bytes(bundled.read_bytes())
    else:  # a plotly without the file where 6.x and 7.x keep it
        from plotly.offline import get_plotlyjs

        (out / "plotly.min.js").write_text(get_plotlyjs(), encoding="utf-8")


def read_graph(run: Run, report: BuildReport):
    path = run.graph_file
    if path is None:
        return None
    try:
        return load_graph(path)
    except (OSError, ValueError, RuntimeError) as error:
        report.notes.append(f"{path}: not readable as a graph ({error})")
        return None


def eps_of(run: Run) -> dict[str, float]:
    path = run.path / "modularity.json"
    if not path.is_file():
        return {}
    return dict(json.loads(path.read_text(encoding="utf-8")).get("eps") or {})


def index_body(runs: list[Run], groups: dict[str, dict[str, list[Run]]], built: str,
               with_graph: set[tuple[str, str]]) -> str:
    experiments = by_experiment(runs)
    complete = sum(run.status == "complete" for run in runs)
    out = [f"<p>{len(experiments)} experiments, {complete} complete runs"
           f"{f', {len(runs) - complete} failed or incomplete' if len(runs) > complete else ''}"
           f", read from <code>results/runs/</code> ({esc(built)}). A run links to its page "
           "(metrics, ablation curves, spectra, interaction graph, features); a comparison "
           "puts the bases of one model and seed side by side.</p><ul>"]
    for name, members in experiments.items():
        out.append(f'<li><a href="#{esc(name)}">{esc(name)}</a> ({len(members)} runs)</li>')
    out.append("</ul>")
    for name, members in experiments.items():
        axes = sweep_axes(members)
        metrics = run_metric_keys(members)
        families = sorted({run.family for run in members if run.family})
        out.append(f'<h2 id="{esc(name)}">{esc(name)}</h2>')
        described = "; ".join(f"<code>{esc(key)}</code>: {esc(', '.join(fmt(v) for v in values))}"
                              for key, values in axes.items())
        out.append(f"<p>Model family {esc(', '.join(families) or '?')}, {len(members)} runs. "
                   f"Sweep axes (config keys that differ): {described or 'none (a single run)'}."
                   "</p>")
        compare = groups.get(name, {})
        if compare:
            out.append("<p>Compare bases: " + ", ".join(
                link(compare_page.compare_url(name, key), key) for key in compare) + "</p>")
        rows = []
        errors = any(run.error for run in members)
        for run in members:
            name_cell = (link(run_page.run_url(name, run.name), run.name)
                         if run.status == "complete" else esc(run.name))
            has_graph = (run.experiment, run.name) in with_graph
            graph_cell = (link(href("graphs", name, f"{run.name}.html"), "graph")
                          if has_graph else "")
            rows.append([name_cell, graph_cell, run.status,
                         *(run.config.get(key) for key in axes),
                         *(run.summary.get(key) for key in metrics)]
                        + ([run.error or ""] if errors else []))
        headers = ["run", "graph", "status", *axes, *metrics] + (["error"] if errors else [])
        out.append(table(headers, rows, sortable=True, raw_columns=(0, 1)))
    return "\n".join(out)


def build_site(results: str | Path = "results", out: str | Path | None = None) -> BuildReport:
    """Write the site for the store at ``results`` into ``out`` (default ``<results>/site``)."""
    start = time.perf_counter()
    results = Path(results)
    out = Path(out) if out is not None else results / "site"
    if not (results / "runs").is_dir():
        raise FileNotFoundError(f"no results store at {results}: {results / 'runs'} is missing "
                                "(run `python -m interbasis.run` first)")
    report = BuildReport(out=out)
    runs = load_store(results)
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}.", suffix=".tmp"))
    try:
        _write(staging, runs, report)
        if out.exists():
            shutil.rmtree(out)
        staging.rename(out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    report.seconds = time.perf_counter() - start
    return report


def _write(site: Path, runs: list[Run], report: BuildReport) -> None:
    write_plotly(site)
    (site / "site.css").write_text(CSS, encoding="utf-8")
    (site / "site.js").write_text(JS, encoding="utf-8")
    groups = {name: compare_groups(members) for name, members in by_experiment(runs).items()}
    graphs: dict[tuple[str, str], Any] = {}
    labels: dict[tuple[str, str], FeatureLabels] = {}
    for run in runs:
        if run.status != "complete":
            continue
        graph = read_graph(run, report)
        run_labels = None
        graph_url = graph_page_url = None
        if graph is not None:
            run_labels = feature_labels(run, graph)
            graphs[(run.experiment, run.name)] = graph
            labels[(run.experiment, run.name)] = run_labels
            record = graph_record(graph, run_labels, experiment=run.experiment, run=run.name,
                                  family=run.family, eps=eps_of(run))
            target = site / "graphs" / run.experiment / f"{run.name}.json"
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(json.dumps(record, allow_nan=False), encoding="utf-8")
            graph_url = "../../" + href("graphs", run.experiment, f"{run.name}.json")
            graph_page_url = "../../" + href("graphs", run.experiment, f"{run.name}.html")
            body = run_page.graph_page(run, graph, run_labels, json_url=href(f"{run.name}.json"),
                                       run_url="../../" + run_page.run_url(run.experiment,
                                                                           run.name))
            _write_page(target.with_suffix(".html"),
                        page(f"{run.experiment} / {run.name}: interaction graph", body,
                             root="../../",
                             crumbs=[(f"../../index.html#{run.experiment}", run.experiment),
                                     ("../../" + run_page.run_url(run.experiment, run.name),
                                      run.name), ("", "graph")]))
            report.pages += 1
            report.graphs += 1
            report.notes.extend(f"{run.experiment}/{run.name}: {n}" for n in run_labels.notes)
        in_compare = run.compare_key in groups.get(run.experiment, {})
        body = run_page.build(
            run, graph, run_labels, graph_url=graph_url, graph_page_url=graph_page_url,
            compare_url=("../../" + compare_page.compare_url(run.experiment, run.compare_key)
                         if in_compare else None),
            index_url=f"../../index.html#{run.experiment}")
        _write_page(site / "runs" / run.experiment / f"{run.name}.html",
                    page(f"{run.experiment} / {run.name}", body, root="../../",
                         crumbs=[(f"../../index.html#{run.experiment}", run.experiment),
                                 ("", run.name)]))
        report.pages += 1
    for experiment, members in groups.items():
        for key, group in members.items():
            method_graphs = {compared_method(run): graphs[(experiment, run.name)]
                             for run in group if (experiment, run.name) in graphs}
            method_labels = {compared_method(run): labels[(experiment, run.name)]
                             for run in group if (experiment, run.name) in labels}
            body = compare_page.build(experiment, key, group, method_graphs, method_labels)
            _write_page(site / "compare" / experiment / f"{key}.html",
                        page(f"{experiment} / {key}: bases compared", body, root="../../",
                             crumbs=[(f"../../index.html#{experiment}", experiment),
                                     ("", f"compare {key}")]))
            report.pages += 1
    built = datetime.now(UTC).strftime("built %Y-%m-%d %H:%M UTC")
    body = index_body(runs, groups, built, set(graphs))
    _write_page(site / "index.html", page("interbasis results", body, root=""))
    report.pages += 1


def _write_page(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
