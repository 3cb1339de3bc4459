"""Figure 8: degeneracy (arXiv 2405.10927), per layer for every model and over training.

Top row, one panel per experiment with LIB runs: per node layer the activation-Gram rank
(``rank/gram``, source 1), the Jacobian-Gram rank (``rank/jacobian``, source 2) and the LIB basis
rank (``rank/basis``), mean over seeds; the panel title gives the distinct ReLU firing patterns
per neuron (``degeneracy/relu_sync``, source 3) of each ReLU layer. Bottom row, modular addition
over training (``degeneracy_over_training.csv`` of the over-training run): accuracy, the Gram rank
and the LIB lambda_99, the Jacobian rank and the ReLU sync per snapshot (ranks at the relative cut
``rank/*_rel`` where stored), with a line where test accuracy first reaches 99%.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from interbasis.figures import data, style

STEM = "fig08_degeneracy"
OVER_TRAINING = "degeneracy_over_training.csv"
TRAINING_EXPERIMENT = "modadd_degeneracy"
TRAINING_COMMAND = f"python -m interbasis.run experiment={TRAINING_EXPERIMENT}"
MEASURES = (("gram", "activation Gram", "#1f5fa8"), ("jacobian", "Jacobian Gram M'", "#d9741c"),
            ("basis", "LIB basis", "#5a9a3c"))
SYNC = "degeneracy/relu_sync/"
MAX_PANELS = 4


def lib_ranks(results: Path) -> list[tuple[str, list[str], pd.DataFrame]]:
    """(experiment, node layers, its complete LIB runs) for experiments whose runs hold ranks."""
    runs = data.runs(results)
    if runs.empty or "method" not in runs or "rank/gram/output" not in runs:
        return []
    runs = runs[(runs["method"] == "lib") & runs["rank/gram/output"].notna()]
    found = []
    for experiment, group in runs.groupby("experiment", sort=True):
        found.append((experiment, data.node_layers(group["path"].iloc[0]), group))
    return found[:MAX_PANELS]


def over_training(results: Path) -> tuple[str, pd.DataFrame] | None:
    """(run path, table) of the first run with a degeneracy-over-training table."""
    paths = sorted((path for path in (results / "runs").glob(f"*/*/{OVER_TRAINING}")
                    if data.allowed(path.parent.parent.name)),
                   key=lambda path: path.parent.parent.name != TRAINING_EXPERIMENT)
    for path in paths:
        if (path.parent / "summary.json").is_file():
            return str(path.parent), pd.read_csv(path)
    return None


def make(results: Path, out: Path) -> list[Path]:
    per_model = lib_ranks(results)
    training = over_training(results)
    if not per_model and training is None:
        raise data.MissingResults(
            f"no LIB runs with rank/* summaries and no {OVER_TRAINING} in {results}/runs; "
            f"`{data.SWEEP_COMMAND}` and `{TRAINING_COMMAND}` write them")
    n_cols = max(4, len(per_model))
    fig, axes = style.figure(2, n_cols, figsize=(3.7 * n_cols, 7.4), squeeze=False)
    for c in range(n_cols):
        if c < len(per_model):
            _ranks_panel(axes[0, c], *per_model[c])
        else:
            axes[0, c].axis("off")
    if training is None:
        for ax in axes[1]:
            ax.axis("off")
        axes[1, 0].text(0, 0.5, f"no run with {OVER_TRAINING} yet: `{TRAINING_COMMAND}`",
                        transform=axes[1, 0].transAxes, fontsize=9)
    else:
        _training_panels(axes[1], *training)
    fig.suptitle("Degeneracy per node layer: activation-Gram rank, Jacobian-Gram rank, LIB "
                 "rank and ReLU firing patterns per neuron", fontsize=10.5)
    fig.tight_layout()
    return style.save(fig, out, STEM)


def _ranks_panel(ax, experiment: str, layers: list[str], runs: pd.DataFrame) -> None:
    x = np.arange(len(layers))
    width = 0.26
    for i, (kind, label, color) in enumerate(MEASURES):
        values = [runs[f"rank/{kind}/{layer}"].mean() if f"rank/{kind}/{layer}" in runs
                  else np.nan for layer in layers]
        ax.bar(x + (i - 1) * width, values, width=width, color=color, label=label)
    ax.set_xticks(x, [style.layer_label(layer, short=True) for layer in layers], fontsize=8)
    ax.set_ylabel("rank (mean over LIB seeds)")
    ax.set_ylim(0, ax.get_ylim()[1] * 1.35)  # headroom for the legend
    syncs = [(key.removeprefix(SYNC), runs[key].mean()) for key in runs
             if key.startswith(SYNC) and runs[key].notna().any()]
    sync_text = ("; ".join(f"{name.split('.')[-1] if '.' in name else name}: {value:.3f}"
                           for name, value in syncs) if syncs else "not stored (older runs)")
    ax.set_title(f"{experiment} ({len(runs)} seed{'s' if len(runs) > 1 else ''})\n"
                 f"ReLU patterns / neuron: {sync_text}", fontsize=8.5)
    ax.legend(loc="upper center", ncol=3, fontsize=7, handlelength=1.2, columnspacing=0.8)


def _training_panels(axes, run_path: str, table: pd.DataFrame) -> None:
    layers = [layer for layer in data.node_layers(run_path)
              if f"rank/gram/{layer}" in table]
    steps = table["step"]
    generalised = table.loc[table.get("test_acc", pd.Series(dtype=float)) >= 0.99, "step"]
    colors = ["#1f5fa8", "#d9741c", "#5a9a3c", "#7b3294"]
    ax = axes[0]
    for column, style_ in (("train_acc", "--"), ("test_acc", "-")):
        if column in table:
            ax.plot(steps, table[column], ls=style_, color="0.2", label=column.replace("_", " "))
    ax.set_ylabel("accuracy")
    ax.set_title(f"{Path(run_path).parent.name}: accuracy\n(grey line: test accuracy first "
                 "\u2265 0.99)", fontsize=9)
    ax.legend(loc="lower right", fontsize=8)
    # the spec's ranks (tau 1e-15) count float noise as directions; the relative cut, where
    # stored, shows the directions that stop carrying variance
    gram = "rank/gram_rel" if any(k.startswith("rank/gram_rel/") for k in table) else "rank/gram"
    jacobian = ("rank/jacobian_rel" if any(k.startswith("rank/jacobian_rel/") for k in table)
                else "rank/jacobian")
    cut = " (> 1e-6 x largest)"
    panels = ((axes[1], (gram, "sparsity/lambda_99"),
               f"Gram rank{cut if gram.endswith('rel') else ''} (solid),\n"
               "LIB features holding 99% of \u039b (dotted)"),
              (axes[2], (jacobian,),
               f"Jacobian-Gram rank{cut if jacobian.endswith('rel') else ''}"))
    for ax, kinds, title in panels:
        for color, layer in zip(colors, layers, strict=False):
            for kind, ls in zip(kinds, ("-", ":"), strict=False):
                key = f"{kind}/{layer}"
                if key in table:
                    ax.plot(steps, table[key], color=color, ls=ls, lw=1.4,
                            label=style.layer_label(layer, short=True) if ls == "-" else None)
        ax.set_ylabel("rank")
        ax.set_title(title, fontsize=9)
        ax.legend(loc="best", fontsize=7.5)
    ax = axes[3]
    for color, key in zip(colors, [k for k in table if k.startswith(SYNC)], strict=False):
        ax.plot(steps, table[key], color=color, lw=1.4, label=key.removeprefix(SYNC))
    ax.set_ylabel("distinct firing patterns / neuron")
    ax.set_title("ReLU sync (MLP hidden layer)", fontsize=9)
    ax.legend(loc="best", fontsize=7.5)
    for ax in axes[:4]:
        ax.set_xlabel("training step")
        if len(generalised):
            ax.axvline(generalised.iloc[0], color="0.5", lw=0.9, ls="--")
    for ax in axes[4:]:
        ax.axis("off")
