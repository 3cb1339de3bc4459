"""Figure 2: modular addition, edges required to stay within 0.001 accuracy, LIB vs PCA.

One panel per transition and one for the total. Each panel has up to three groups of bars, so that
both what differs between the trained models and what differs between the pipelines can be read:
- our models, our pipeline (``modadd_paper``);
- the LIB authors' five models, our pipeline (``modadd_authors``);
- the authors' models, their pipeline: their published numbers (hatched; from
  ``results/reference/authors_modadd``, see ``python -m interbasis.results authors-import``).
Bars are the mean over seeds, dots the seeds, the number above a bar its mean; a grey line joins
one seed's LIB and PCA. NGF (naive gradient flow) runs, where there are any, are purple diamonds
in the LIB/PCA group of their models. Groups without results are left out (and named in the title).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.artist import Artist

from interbasis.figures import data, style
from interbasis.results.authors import NEXT

STEM = "fig02_edges_required"
PREFIX = "ablation/edges_required@0.001/"
GROUPS = {"ours": "our models,\nour pipeline", "authors_ours": "authors'\nmodels, our\npipeline",
          "authors": "authors'\nmodels, their\npipeline\n(published)"}


def edges_required(runs: pd.DataFrame) -> tuple[list[str], pd.DataFrame]:
    """(panel names in model order, long frame: method, seed, panel, edges)."""
    layers = data.node_layers(runs["path"].iloc[0])
    transitions = [f"{a}->{b}" for a, b in zip(layers, layers[1:])]
    panels = [name for name in [*transitions, "total"] if PREFIX + name in runs]
    if not panels:
        raise data.MissingResults(
            f"no {PREFIX}* in the summaries of {runs['experiment'].iloc[0]}: the runs had "
            "ablation.edges=false; rerun them with edge ablations")
    long = runs.melt(id_vars=["method", "seed"], value_vars=[PREFIX + p for p in panels],
                     var_name="panel", value_name="edges")
    long["panel"] = long["panel"].str.removeprefix(PREFIX)
    return panels, long.dropna(subset=["edges"])


def authors_long(results: Path) -> pd.DataFrame:
    """The authors' published edges required in the long form (empty if not in the store)."""
    try:
        reference, _ = data.authors_reference(results)
    except data.MissingResults:
        return pd.DataFrame(columns=["method", "seed", "panel", "edges"])
    rows = reference.assign(panel=[f"{layer}->{NEXT[layer]}" for layer in reference["layer"]])
    total = rows.groupby(["method", "seed"], as_index=False)["edges_required"].sum()
    rows = pd.concat([rows, total.assign(panel="total")], ignore_index=True)
    return rows.rename(columns={"edges_required": "edges"})[["method", "seed", "panel", "edges"]]


def groups(results: Path, experiment: str) -> tuple[list[str], dict[str, pd.DataFrame]]:
    """(panels, {group: long frame}) of every group that has results."""
    runs = data.method_runs(results, experiment)
    panels, ours = edges_required(runs)
    found = {"ours": ours}
    if experiment == data.PAPER_EXPERIMENT:
        theirs = data.optional_runs(results, data.AUTHORS_EXPERIMENT, ("lib", "pca", "ngf"))
        if not theirs.empty and theirs["method"].isin(style.METHODS).any():
            found["authors_ours"] = edges_required(theirs)[1]
        reference = authors_long(results)
        if not reference.empty:
            found["authors"] = reference
    ngf = data.optional_runs(results, experiment, ("ngf",))
    if not ngf.empty:
        found["ours"] = pd.concat([ours, edges_required(ngf)[1]], ignore_index=True)
    return panels, found


def make(results: Path, out: Path, experiment: str = data.PAPER_EXPERIMENT) -> list[Path]:
    panels, found = groups(results, experiment)
    fig, axes = style.figure(1, len(panels), figsize=(3.3 * len(panels) + 1.0, 4.4),
                             squeeze=False)
    width = 0.38
    for ax, panel in zip(axes[0], panels):
        for g, (group, long) in enumerate(found.items()):
            rows = long[long["panel"] == panel]
            for i, method in enumerate(style.METHODS):
                values = rows[rows["method"] == method]["edges"]
                if values.empty:
                    continue
                x = g + (i - 0.5) * width
                color = style.method_color(method)
                mean = values.mean()
                ax.bar(x, mean, width=width * 0.9, color=color, alpha=0.3, edgecolor=color,
                       lw=1.2, hatch=style.AUTHORS_HATCH if group == "authors" else None)
                ax.scatter(np.full(len(values), x), values, color=color, s=16, zorder=3,
                           marker=style.method_marker(method), edgecolor="white", lw=0.5)
                ax.annotate(f"{mean:.0f}", (x, max(values.max(), mean)), xytext=(0, 3),
                            textcoords="offset points", ha="center", va="bottom", fontsize=7.5)
            pairs = rows.pivot_table(index="seed", columns="method", values="edges")
            if set(style.METHODS) <= set(pairs):
                for _, pair in pairs[list(style.METHODS)].dropna().iterrows():
                    ax.plot([g - width / 2, g + width / 2], pair.values, color="0.6", lw=0.6,
                            zorder=2)
            ngf = rows[rows["method"] == "ngf"]["edges"]
            if not ngf.empty:
                ax.scatter(np.full(len(ngf), g), ngf, color=style.method_color("ngf"), s=30,
                           marker=style.method_marker("ngf"), zorder=4, edgecolor="white",
                           lw=0.5)
        ax.set_xticks(range(len(found)), [GROUPS[g] for g in found], fontsize=7.5)
        ax.set_title(style.transition_label(panel), fontsize=9.5)
        ax.set_ylim(0, ax.get_ylim()[1] * 1.08)
        ax.grid(axis="x", visible=False)
    axes[0, 0].set_ylabel("non-constant edges required")
    handles: list[Artist] = [style.plt.Rectangle((0, 0), 1, 1, fc=style.method_color(m), alpha=0.4,
                                   ec=style.method_color(m), label=style.method_label(m))
               for m in style.METHODS]
    handles.append(style.plt.Rectangle((0, 0), 1, 1, fc="white", ec="0.3",
                                       hatch=style.AUTHORS_HATCH,
                                       label="authors' published numbers"))
    if any((long["method"] == "ngf").any() for long in found.values()):
        handles.append(style.plt.Line2D([], [], marker=style.method_marker("ngf"), ls="",
                                        color=style.method_color("ngf"),
                                        label="NGF (naive gradient flow)"))
    fig.legend(handles=handles, loc="lower center", ncol=len(handles), fontsize=8.5,
               bbox_to_anchor=(0.5, -0.04))
    missing = [GROUPS[g].replace("\n", " ") for g in GROUPS if g not in found]
    seeds = "; ".join(f"{' '.join(GROUPS[g].split(chr(10))[:3]).removesuffix(' (published)')}: "
                      + ", ".join(f"{style.method_label(m)} {n}" for m, n in
                                  long.groupby("method")["seed"].nunique().items())
                      for g, long in found.items())
    fig.suptitle("Modular addition: edges needed to stay within 0.001 test accuracy "
                 f"(each panel its own y-scale)\nseeds: {seeds}"
                 + (f"\nnot in the results store: {'; '.join(missing)}" if missing else ""),
                 fontsize=9.5)
    fig.tight_layout()
    return style.save(fig, out, STEM)


def table(results: Path, experiment: str = data.PAPER_EXPERIMENT) -> pd.DataFrame:
    """Mean edges required per transition and method, and the LIB/PCA ratio."""
    runs = data.method_runs(results, experiment)
    panels, long = edges_required(runs)
    means = long.pivot_table(index="panel", columns="method", values="edges").reindex(panels)
    means["lib/pca"] = means["lib"] / means["pca"]
    return means
