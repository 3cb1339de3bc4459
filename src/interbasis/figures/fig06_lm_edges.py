"""Figure 6: language models, increase of the held-out cross-entropy vs edges kept, LIB vs PCA.

One panel per transition whose section is an attention sublayer (``resid_pre -> resid_mid``) or an
MLP sublayer (``resid_mid -> next resid_pre``), in model order. Each point is one evaluation of the
edge bisection of one run (the bisection only visits a few edge counts, so there is no curve over
every count); a line joins one run's points. The dotted line is the tolerance ``edge_delta`` the
bisection searches for. Reads ``curves.csv`` (edge rows), ``config.yaml`` and ``summary.json`` of
every complete run of the experiment (default: ``tiny_gpt``).
"""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd

from interbasis.figures import data, style

STEM = "fig06_lm_edges"
EXPERIMENT = "tiny_gpt"


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
    runs = data.method_runs(results, experiment)
    points = edge_points(runs)
    transitions = [t for t in dict.fromkeys(points["layer"]) if section_kind(t) is not None]
    if not transitions:
        raise data.MissingResults(f"runs of {experiment} have no attention or MLP transitions "
                                  "with edge ablations")
    fig, axes = style.figure(1, len(transitions), figsize=(3.6 * len(transitions), 3.6),
                             sharey=True, squeeze=False)
    delta = points["delta"].dropna().iloc[0]
    for ax, transition in zip(axes[0], transitions):
        for method in style.METHODS:
            rows = points[(points["layer"] == transition) & (points["method"] == method)]
            seeds = sorted(rows["seed"].unique())
            for index, seed in enumerate(seeds):
                run = rows[rows["seed"] == seed].sort_values("x")
                ax.plot(run["x"].clip(lower=1), run["increase"], color=style.method_color(method),
                        marker=style.method_marker(method), ms=3.5, lw=1.0, alpha=0.8,
                        label=(f"{style.method_label(method)} ({len(seeds)} seeds, one line "
                               "each)") if index == 0 else None)
        ax.axhline(delta, color="0.3", ls=":", lw=1.0)
        ax.set_xscale("log")
        ax.set_yscale("symlog", linthresh=0.01)
        block = re.search(r"blocks\.(\d+)\.", transition)
        ax.set_title(f"{section_kind(transition)}"
                     + (f", block {block.group(1)}" if block else ""), fontsize=9.5)
        ax.set_xlabel("edges kept")
    axes[0, 0].set_ylabel("held-out CE increase (nats)")
    axes[0, 0].legend(loc="upper right", fontsize=8)
    samples = int(runs["ablation/n_samples"].iloc[0]) if "ablation/n_samples" in runs else None
    fig.suptitle(f"Language model ({experiment}): CE-loss increase vs edges kept per section; "
                 f"dotted: tolerance {delta:g} nats"
                 + (f"; {samples} held-out windows" if samples else ""), fontsize=10.5)
    fig.tight_layout()
    return style.save(fig, out, STEM)
