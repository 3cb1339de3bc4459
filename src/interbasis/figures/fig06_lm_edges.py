"""Figure 6: language models, increase of the held-out cross-entropy vs edges kept, LIB vs PCA.

One panel per transition with an edge ablation, in model order: the attention and MLP sections of
every block and the unembedding (``ln_final -> output``). Each point is one evaluation of the edge
bisection of one run, drawn as a point: the bisection only visits a few edge counts (halving from
all edges, then closing in on the tolerance), so there is no curve between them, and the 0-edge
evaluation (ablate all) is quoted in the panel title rather than drawn on the log axis. The y axis
is linear, so a small negative increase (an ablation that helps by noise) reads as such. The
dotted line is the tolerance ``edge_delta`` the bisection searches for. Reads ``curves.csv``
(edge rows), ``config.yaml`` and ``summary.json`` of
every complete run of the experiment (default: ``tiny_gpt``).
"""

from __future__ import annotations

import contextlib
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter, StrMethodFormatter

from interbasis.figures import data, style

STEM = "fig06_lm_edges"
EXPERIMENT = "tiny_gpt"
# further LMs drawn beside it when their runs exist, each as fig06_lm_edges_<experiment>.png
ALSO = ("smollm2_sections", "smollm2_blocks")
CAP = 5  # the y axis ends at CAP x the tolerance; larger increases are drawn on its top edge


def _compact(value: float, _=None) -> str:
    """An edge count as a tick label: 1, 10, 100, 1k, 10k, 100k, 1M."""
    for scale, suffix in ((1e6, "M"), (1e3, "k")):
        if value >= scale:
            return f"{value / scale:g}{suffix}"
    return f"{value:g}"


def section_kind(transition: str) -> str | None:
    """"attention", "MLP" or None (the unembedding and other sections) for ``a->b``."""
    earlier, _, later = transition.partition("->")
    if earlier.endswith("hook_resid_pre") and later.endswith("hook_resid_mid"):
        return "attention"
    if earlier.endswith("hook_resid_mid") and (later.endswith(("hook_resid_pre",
                                                               "hook_resid_post"))
                                               or later == "ln_final"):
        return "MLP"
    return None


def edge_points(runs: pd.DataFrame) -> pd.DataFrame:
    """Edge-bisection evaluations of every run: transition, edges kept, CE increase."""
    frames = []
    for run in runs.itertuples():
        frame = data.curves(run.path)
        frame = frame[frame["kind"] == "edge"].assign(method=run.method, seed=run.seed)
        frames.append(frame.assign(increase=frame["score"] - frame["base_score"]))
    return pd.concat(frames, ignore_index=True)


def make(results: Path, out: Path, experiment: str = EXPERIMENT) -> list[Path]:
    written = _make(results, out, experiment, STEM)
    for other in ALSO if experiment == EXPERIMENT else ():
        with contextlib.suppress(data.MissingResults):  # that LM's runs are not in this store
            written += _make(results, out, other, f"{STEM}_{other}", with_graph=False)
            written += make_positions_of(results, other, out)
    return written


def make_positions_of(results: Path, experiment: str, out: Path) -> list[Path]:
    """Figure 6c for another LM (``fig06c_lm_positions_<experiment>``), when its runs have
    ``positions.csv``."""
    from interbasis.figures import fig06c_lm_positions as positions

    return positions.make_positions(data.method_runs(results, experiment), experiment, out,
                                    f"{positions.STEM}_{experiment}")


def _make(results: Path, out: Path, experiment: str, stem: str, with_graph: bool = True
          ) -> list[Path]:
    runs = data.method_runs(results, experiment)
    points = edge_points(runs)
    transitions = list(dict.fromkeys(points["layer"]))
    if not transitions:
        raise data.MissingResults(f"runs of {experiment} have no edge ablations")
    names = style.transition_names(data.node_layers(runs["path"].iloc[0]))
    n_cols = min(len(transitions), 3)
    n_rows = -(-len(transitions) // n_cols)
    fig, axes = style.figure(n_rows, n_cols, figsize=(4.3 * n_cols, 3.5 * n_rows + 0.6),
                             sharey=True, squeeze=False)
    delta = points["delta"].dropna().iloc[0]
    probed = points[points["x"] > 0]  # 0 edges kept is the ablate-all score, quoted in titles
    for ax, transition in zip(axes.flat, transitions):
        section = points[points["layer"] == transition]
        for method in style.METHODS:
            rows = probed[(probed["layer"] == transition) & (probed["method"] == method)]
            color = style.method_color(method)
            # LIB filled on top, PCA open below: both stay visible where they coincide
            # the y axis stops at CAP x the tolerance, so the probes near it stay readable;
            # the few points above (small edge counts of the halvings) sit on the top edge
            above = rows["increase"] > CAP * delta
            ax.scatter(rows["x"][above], np.full(int(above.sum()), CAP * delta), marker="^",
                       s=26, facecolors="none", edgecolors=color, lw=1.0, clip_on=False,
                       zorder=5)
            rows = rows[~above]
            seeds = section[section["method"] == method]["seed"].nunique()
            ax.scatter(rows["x"], rows["increase"], s=22 if method == "lib" else 30,
                       marker=style.method_marker(method), zorder=4 if method == "lib" else 3,
                       facecolors=color if method == "lib" else "none", edgecolors=color,
                       lw=1.0, alpha=0.85,
                       label=f"{style.method_label(method)} ({seeds} seed{'s' * (seeds > 1)})")
        required = runs.groupby("method")[f"ablation/edges_required@{delta:g}/{transition}"]
        required = required.mean()
        zero = section[section["x"] == 0]["increase"].mean()
        ax.axhline(delta, color="0.3", ls=":", lw=1.0)
        ax.axhline(0, color="0.6", lw=0.6)
        ax.set_xscale("log")
        ax.set_title(f"{names.get(transition, transition)}\nrequired (mean): LIB "
                     f"{required.get('lib', float('nan')):.0f}, PCA "
                     f"{required.get('pca', float('nan')):.0f}  (0 edges: +{zero:.2f})",
                     fontsize=9.5)
        # 1, 3, 10, 30, ... while they fit; a real LM's ~300k edges: decades, as 1k, 10k,
        # ...; a range under two decades: 1, 2, 5 per decade
        kept = section["x"][section["x"] > 0]
        wide = kept.max() > 3e4
        narrow = len(kept) and kept.max() < 100 * kept.min()
        subs = (1.0, 2.0, 5.0) if narrow else (1.0,) if wide else (1.0, 3.0)
        ax.xaxis.set_major_locator(LogLocator(subs=subs))
        ax.xaxis.set_major_formatter(FuncFormatter(_compact) if wide or narrow
                                     else StrMethodFormatter("{x:.0f}"))
        ax.xaxis.set_minor_formatter(NullFormatter())
        ax.set_xlabel("edges kept (scored by the run)")
        ax.set_ylim(top=CAP * delta)
    for ax in axes[:, 0]:
        ax.set_ylabel("held-out CE increase (nats)")
    for ax in list(axes.flat)[len(transitions):]:
        ax.axis("off")
    handles, labels = axes[0, 0].get_legend_handles_labels()
    handles.append(axes[0, 0].plot([], [], color="0.3", ls=":", lw=1.0)[0])
    labels.append(f"tolerance {delta:g} nats")
    spare = list(axes.flat)[len(transitions):]
    if spare:
        spare[0].legend(handles, labels, loc="center", fontsize=10)
    else:
        fig.legend(handles, labels, loc="lower center", ncol=3, fontsize=10,
                   bbox_to_anchor=(0.5, -0.04))
    samples = int(runs["ablation/n_samples"].iloc[0]) if "ablation/n_samples" in runs else None
    fig.suptitle(f"Language model ({experiment}): held-out CE increase at the edge counts the "
                 "run scored, per section\n(points only: the bisection's probes, and every "
                 "halving of the edges where the run has them; \u25b3 on the top edge: an increase "
                 f"above {CAP}x the tolerance; no line bridges unscored counts"
                 + (f"; {samples} held-out window{'s' * (samples != 1)})" if samples else ")"),
                 fontsize=10.5)
    fig.tight_layout()
    written = style.save(fig, out, stem)
    if not with_graph:
        return written
    from interbasis.figures.fig06b_lm_graph import make_graph  # the LM graph beside it
    from interbasis.figures.fig06c_lm_positions import make_positions  # and its positions

    return (written + make_graph(runs, experiment, out)
            + make_positions(runs, experiment, out))
