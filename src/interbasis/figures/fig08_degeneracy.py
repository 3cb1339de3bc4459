"""Figure 8: degeneracy (arXiv 2405.10927), per layer for every model, over training, and as the
learning coefficient measures it.

Top row, one panel per experiment with LIB runs: per node layer the activation-Gram rank (source
1), the Jacobian-Gram rank (source 2) and the LIB features that carry importance, all three counted
at ONE threshold: eigenvalues above ``REL`` x the largest of their own spectrum (Gram D, M', LIB
Lambda), read from the stored graphs, so no rank mixes an absolute and a relative cut. Bars are the
mean over seeds, whiskers the min-max; the title gives the distinct ReLU firing patterns per neuron
(source 3). Middle row, modular addition over training (``degeneracy_over_training.csv``):
accuracy, Gram rank and LIB lambda_99, Jacobian rank, ReLU sync. Bottom row, the local learning
coefficient (``degeneracy/llc``, interbasis.analysis.llc): over training with test accuracy, against
the summed effective ranks at the same steps, and against the parameter count of each family's
final models. All over-training panels share the step axis; a dashed line marks the step where
test accuracy first reaches 0.99. Colours are not the LIB/PCA method colours.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.patches import Patch
from matplotlib.ticker import NullFormatter

from interbasis.analysis.degeneracy import EFFECTIVE_REL as REL
from interbasis.analysis.free_params import free_parameters, sizes_of_run
from interbasis.basis.sections import OUTPUT
from interbasis.figures import data, style

STEM = "fig08_degeneracy"
OVER_TRAINING = "degeneracy_over_training.csv"
TRAINING_EXPERIMENT = "modadd_degeneracy"
TRAINING_COMMAND = (f"python -m interbasis.run experiment={TRAINING_EXPERIMENT} "
                    "analysis.llc=true")
LLC = "degeneracy/llc"
# the paper model over (the first steps of) training: docs/llc.md
PAPER_EXPERIMENT = "modadd_degeneracy_paper"
LLC_COMMAND = "python -m interbasis.run experiment=modadd_paper analysis.llc=true"
PAPER_COMMAND = (f"python -m interbasis.run experiment=modadd_paper experiment_name="
                 f"{PAPER_EXPERIMENT} analysis.graph=false analysis.llc=true "
                 "train.snapshot_every=1000 train.steps=20000")
# the three measures (not the LIB / PCA / neuron method colours of style.METHOD_COLORS)
MEASURES = (("gram", "activation Gram D", "#7b3294"), ("jacobian", "Jacobian Gram M'", "#1b9e77"),
            ("basis", "LIB features (\u039b)", "#555555"))
LAYER_COLORS = ("#7b3294", "#1b9e77", "#c51b7d", "#8c6d31")
# one colour per experiment in the two final-model panels (the same experiment, the same colour)
MODEL_COLORS = (*LAYER_COLORS, "#2166ac", "#e08214", "#4d4d4d", "#35978f")
LLC_COLOR = "#b2182b"
SYNC = "degeneracy/relu_sync/"
MAX_PANELS = 4


def _count(values, rel: float = REL) -> int:
    eigenvalues = np.abs(np.asarray(values, dtype=np.float64))
    if eigenvalues.size == 0 or eigenvalues.max() == 0:
        return 0
    return int(np.count_nonzero(eigenvalues > rel * eigenvalues.max()))


def graph_ranks(run_path: str) -> dict[str, float]:
    """``rank/<measure>/<layer>`` of one LIB run at the one relative threshold REL."""
    graph = data.graph(run_path, "lib")
    ranks: dict[str, float] = {}
    for layer in graph.layers:
        ranks[f"rank/gram/{layer.name}"] = _count(layer.gram_eigenvalues.numpy())
        if layer.jacobian_eigenvalues is not None:
            ranks[f"rank/jacobian/{layer.name}"] = _count(layer.jacobian_eigenvalues.numpy())
        if layer.name != OUTPUT:  # the logits are left unrotated: no LIB features to count
            ranks[f"rank/basis/{layer.name}"] = _count(layer.eigenvalues.numpy())
    return ranks


def lib_ranks(results: Path) -> list[tuple[str, list[str], pd.DataFrame]]:
    """(experiment, node layers, its complete LIB runs with ranks at REL) per experiment."""
    runs = data.runs(results)
    if runs.empty or "method" not in runs or "rank/gram/output" not in runs:
        return []
    runs = runs[(runs["method"] == "lib") & runs["rank/gram/output"].notna()]
    found = []
    for experiment, group in runs.groupby("experiment", sort=True):
        rows = []
        for _, run in group.iterrows():
            if (Path(run["path"]) / "graph_lib.pt").is_file():
                syncs = {k: run[k] for k in group if k.startswith(SYNC) and pd.notna(run[k])}
                rows.append({**graph_ranks(run["path"]), **syncs})
        if rows:
            found.append((experiment, data.node_layers(group["path"].iloc[0]), pd.DataFrame(rows)))
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


def paper_over_training(results: Path) -> tuple[str, pd.DataFrame] | None:
    """(run path, table) of the paper model over training (``PAPER_EXPERIMENT``): the complete
    run with the most snapshots; None when not run."""
    found = []
    for path in (results / "runs" / PAPER_EXPERIMENT).glob(f"*/{OVER_TRAINING}"):
        if (path.parent / "summary.json").is_file() and data.allowed(PAPER_EXPERIMENT):
            found.append((str(path.parent), pd.read_csv(path)))
    return max(found, key=lambda item: len(item[1])) if found else None


def final_llcs(results: Path) -> pd.DataFrame:
    """Complete runs that stored an LLC and a parameter count (one row each)."""
    runs = data.runs(results)
    if runs.empty or LLC not in runs or "model/n_params" not in runs:
        return pd.DataFrame()
    runs = runs[runs[LLC].notna() & runs["model/n_params"].notna()]
    # a calibration sweep is a grid of settings on one model: of it only the cell at the
    # settings its family's preset chose (conf/analysis/llc_<family>.yaml) is a final model
    runs = runs[runs["experiment"] != PAPER_EXPERIMENT]  # a snapshot subset, not a final model
    grid = runs["experiment"].str.startswith("llc_calibration")
    chosen = [_is_chosen(path, family) for path, family in zip(runs["path"], runs["model"],
                                                               strict=True)]
    return runs[~grid | (grid & pd.Series(chosen, index=runs.index))]


PRESETS = Path(__file__).resolve().parents[3] / "conf" / "analysis"


def _is_chosen(run_path: str, family: str) -> bool:
    """Whether a calibration run is at the settings of its model's LLC preset:
    ``llc_<family>_<arch>.yaml`` where the family has architectures with their own preset (the
    vision CNN), else ``llc_<family>.yaml``."""
    import yaml

    used = yaml.safe_load((Path(run_path) / "config.yaml").read_text(encoding="utf-8"))
    arch = used.get("model", {}).get("arch")
    preset = PRESETS / f"llc_{family}_{arch}.yaml"
    if arch is None or not preset.is_file():
        preset = PRESETS / f"llc_{family}.yaml"
    if not preset.is_file():  # modular addition: its chosen cell is conf/analysis/default.yaml,
        return False          # and its final models are the modadd_llc runs
    from interbasis.config import AnalysisConfig  # the preset holds only what it changes

    chosen = {**AnalysisConfig().model_dump(),
              **{key: value for key, value in
                 yaml.safe_load(preset.read_text(encoding="utf-8")).items() if key != "defaults"}}
    return all(float(used["analysis"][key]) == float(chosen[key])
               for key in ("llc_lr", "llc_localization"))


def final_free(results: Path, finals: pd.DataFrame) -> pd.DataFrame:
    """Each final LLC run with the free-parameter count (interbasis.analysis.free_params) of the
    LIB run of the same checkpoint: its ranks at REL (the top row's) and its ReLU sync."""
    runs = data.runs(results)
    if finals.empty or runs.empty or not {"method", "train/checkpoint"} <= set(runs):
        return pd.DataFrame()
    lib = runs[(runs["method"] == "lib") & runs["train/checkpoint"].notna()]
    rows = []
    for _, final in finals.iterrows():
        same = lib[(lib["train/checkpoint"] == final.get("train/checkpoint"))
                   & (lib["model"] == final["model"])]
        same = same[[(Path(path) / "graph_lib.pt").is_file() for path in same["path"]]]
        sizes = sizes_of_run(final["path"], final.dropna().to_dict())
        if same.empty or not sizes:
            continue
        basis = same.iloc[0]
        ranks = {**graph_ranks(basis["path"]),
                 **{k: basis[k] for k in basis.index if k.startswith(SYNC) and pd.notna(basis[k])}}
        free = free_parameters(sizes, ranks, n_params=int(final["model/n_params"]))
        rows.append({"experiment": final["experiment"], "model": final["model"],
                     "seed": final.get("seed"), "n_params": int(final["model/n_params"]),
                     LLC: final[LLC], f"{LLC}_std": final.get(f"{LLC}_std"), **free})
    return pd.DataFrame(rows)


def training_free(run_path: str, table: pd.DataFrame) -> pd.DataFrame:
    """The free-parameter count at every snapshot with an LLC, from the over-training table's
    ranks at REL (``rank/*_rel``) and ReLU sync; empty when the sizes are unknown."""
    summary = pd.read_json(Path(run_path) / "summary.json", typ="series").to_dict()
    sizes = sizes_of_run(run_path, summary)
    if not sizes or LLC not in table:
        return pd.DataFrame()
    rows = []
    for _, row in table[table[LLC].notna()].iterrows():
        ranks = {k.replace("_rel/", "/"): v for k, v in row.items()
                 if k.startswith(("rank/gram_rel/", "rank/jacobian_rel/")) and pd.notna(v)}
        ranks.update({k: v for k, v in row.items() if k.startswith(SYNC) and pd.notna(v)})
        rows.append({"step": row["step"], LLC: row[LLC],
                     **free_parameters(sizes, ranks, n_params=summary.get("model/n_params"))})
    return pd.DataFrame(rows)


def make(results: Path, out: Path) -> list[Path]:
    per_model = lib_ranks(results)
    training = over_training(results)
    if not per_model and training is None:
        raise data.MissingResults(
            f"no LIB runs with rank/* summaries and no {OVER_TRAINING} in {results}/runs; "
            f"`{data.SWEEP_COMMAND}` and `{TRAINING_COMMAND}` write them")
    paper = paper_over_training(results)
    n_cols = max(4, len(per_model))
    fig, axes = style.figure(4, n_cols, figsize=(3.9 * n_cols, 14.6), squeeze=False)
    for c in range(n_cols):
        if c < len(per_model):
            _ranks_panel(axes[0, c], *per_model[c])
        else:
            axes[0, c].axis("off")
    handles = [Patch(color=color, label=label) for _, label, color in MEASURES] if per_model else []
    # over training, one row per model: accuracy and the LLC, then the three sources, on one
    # step axis per row
    for row, found, command in ((1, training, TRAINING_COMMAND), (2, paper, PAPER_COMMAND)):
        if found is None:
            for ax in axes[row]:
                ax.axis("off")
            axes[row, 0].text(0, 0.5, f"no run with {OVER_TRAINING} yet: `{command}`",
                              transform=axes[row, 0].transAxes, fontsize=9)
        else:
            _training_panels(axes[row], *found)
            _llc_over_training(axes[row, 0], found[1])
    _llc_vs_sources(axes[3, 0], training[1] if training is not None else pd.DataFrame())
    finals = final_llcs(results)
    _llc_vs_params(axes[3, 1], finals)
    _llc_vs_effective(axes[3, 2], final_free(results, finals),
                      {f"{Path(path).parent.name} over training": training_free(path, table)
                       for path, table in (found for found in (training, paper) if found)})
    for ax in axes[3, 3:]:
        ax.axis("off")
    fig.suptitle("Degeneracy: the three internal sources per layer (top), over training with the "
                 "local learning coefficient (rows 2 and 3: two models), and the LLC across "
                 "models (bottom)", fontsize=11)
    fig.tight_layout(rect=(0, 0, 1, 0.955))
    if handles:  # one legend for the top row, above it and off the bars
        fig.legend(handles, [h.get_label() for h in handles], loc="upper center", ncol=3,
                   bbox_to_anchor=(0.5, 0.968), fontsize=9,
                   title=f"eigenvalues > {REL:g} \u00d7 the largest of each spectrum "
                   "(bars: mean over LIB seeds; whiskers: min-max)", title_fontsize=8.5)
    return style.save(fig, out, STEM)


def _ranks_panel(ax, experiment: str, layers: list[str], runs: pd.DataFrame) -> None:
    x = np.arange(len(layers))
    width = 0.26
    for i, (kind, _, color) in enumerate(MEASURES):
        columns = [runs[f"rank/{kind}/{layer}"] if f"rank/{kind}/{layer}" in runs
                   else pd.Series([np.nan]) for layer in layers]
        mean = np.array([c.mean() for c in columns])
        low, high = (np.array([c.min() for c in columns]), np.array([c.max() for c in columns]))
        ax.bar(x + (i - 1) * width, mean, width=width, color=color)
        if len(runs) > 1:
            ax.errorbar(x + (i - 1) * width, mean, yerr=[mean - low, high - mean], fmt="none",
                        ecolor="black", elinewidth=0.9, capsize=2)
    ax.set_xticks(x, [style.layer_label(layer, short=True) for layer in layers], fontsize=8,
                  rotation=25, ha="right")
    ax.set_ylabel("rank")
    syncs = [(key.removeprefix(SYNC), runs[key].mean()) for key in runs
             if key.startswith(SYNC) and runs[key].notna().any()]
    sync_text = ("; ".join(f"{name.split('.')[-1] if '.' in name else name}: {value:.3f}"
                           for name, value in syncs) if syncs else "not in these runs' summaries")
    ax.set_title(f"{experiment} ({len(runs)} seed{'s' if len(runs) > 1 else ''})\n"
                 f"ReLU patterns / neuron: {sync_text}", fontsize=8.5)


def _first_generalised(table: pd.DataFrame):
    generalised = table.loc[table.get("test_acc", pd.Series(dtype=float)) >= 0.99, "step"]
    return generalised.iloc[0] if len(generalised) else None


def _training_panels(axes, run_path: str, table: pd.DataFrame) -> None:
    layers = [layer for layer in data.node_layers(run_path) if f"rank/gram/{layer}" in table]
    steps = table["step"]
    ax = axes[0]
    for column, style_ in (("train_acc", "--"), ("test_acc", "-")):
        if column in table:
            ax.plot(steps, table[column], ls=style_, color="0.2", label=column.replace("_", " "))
    ax.set_ylabel("accuracy")
    ax.set_title(f"{Path(run_path).parent.name}: accuracy (black) and LLC (red)\n(band: "
                 "\u00b1 std over chains; dashed line: test accuracy first \u2265 0.99)",
                 fontsize=8.5)
    ax.legend(loc="center right", fontsize=8)
    # the relative cut (the top row's), where stored; the spec's tau 1e-15 counts float noise
    gram = "rank/gram_rel" if any(k.startswith("rank/gram_rel/") for k in table) else "rank/gram"
    jacobian = ("rank/jacobian_rel" if any(k.startswith("rank/jacobian_rel/") for k in table)
                else "rank/jacobian")
    cut = f" (> {REL:g} x largest)"
    panels = ((axes[1], (gram, "sparsity/lambda_99"),
               f"Gram rank{cut if gram.endswith('rel') else ''} (solid),\n"
               "LIB features holding 99% of \u039b (dotted)"),
              (axes[2], (jacobian,),
               f"Jacobian-Gram rank{cut if jacobian.endswith('rel') else ''}"))
    for ax, kinds, title in panels:
        for color, layer in zip(LAYER_COLORS, layers, strict=False):
            for kind, ls in zip(kinds, ("-", ":"), strict=False):
                key = f"{kind}/{layer}"
                if key in table:
                    ax.plot(steps, table[key], color=color, ls=ls, lw=1.4,
                            label=style.layer_label(layer, short=True) if ls == "-" else None)
        ax.set_ylabel("rank")
        ax.set_title(title, fontsize=9)
        ax.legend(loc="best", fontsize=7.5)
    ax = axes[3]
    for color, key in zip(LAYER_COLORS, [k for k in table if k.startswith(SYNC)], strict=False):
        ax.plot(steps, table[key], color=color, lw=1.4, label=key.removeprefix(SYNC))
    ax.set_ylabel("distinct firing patterns / neuron")
    ax.set_title("ReLU sync (MLP hidden layer)", fontsize=9)
    ax.legend(loc="best", fontsize=7.5)
    first = _first_generalised(table)
    for ax in axes[1:4]:
        ax.sharex(axes[0])
    for ax in axes[:4]:
        ax.set_xlabel("training step")
        if first is not None:
            ax.axvline(first, color="0.5", lw=0.9, ls="--")


def _llc_over_training(ax, table: pd.DataFrame) -> None:
    """The LLC at each snapshot (band: +- std over chains) on the accuracy panel's step axis."""
    rows = table[table[LLC].notna()] if LLC in table else table.iloc[:0]
    if rows.empty:
        ax.text(0.02, 0.5, "no LLC over training in this run:\nanalysis.llc=true",
                transform=ax.transAxes, fontsize=8, color=LLC_COLOR)
        return
    twin = ax.twinx()
    twin.grid(False)
    spread = rows.get(f"{LLC}_std", pd.Series(0.0, index=rows.index))
    twin.fill_between(rows["step"], rows[LLC] - spread, rows[LLC] + spread, color=LLC_COLOR,
                      alpha=0.2, lw=0)
    twin.plot(rows["step"], rows[LLC], color=LLC_COLOR, marker="o", ms=2.5, lw=1.4,
              label="LLC")
    twin.set_ylim(bottom=0)
    twin.set_ylabel("local learning coefficient", color=LLC_COLOR)
    twin.tick_params(axis="y", colors=LLC_COLOR)
    peak = rows.loc[rows[LLC].idxmax()]
    twin.annotate(f"{peak[LLC]:,.0f}", (peak["step"], peak[LLC]), fontsize=7, color=LLC_COLOR,
                  xytext=(4, -2), textcoords="offset points")
    last = rows.iloc[-1]
    twin.annotate(f"{last[LLC]:,.0f}", (last["step"], last[LLC]), fontsize=7, color=LLC_COLOR,
                  xytext=(-4, 5), textcoords="offset points", ha="right")


def _llc_vs_sources(ax, table: pd.DataFrame) -> None:
    """Does the summed effective rank (sources 1 and 2 over every layer) track the LLC?"""
    rows = table[table[LLC].notna()] if LLC in table else table.iloc[:0]
    if rows.empty:
        ax.axis("off")
        ax.text(0, 0.5, "no LLC over training yet:\n" + TRAINING_COMMAND.replace(
            " experiment", "\n  experiment"), transform=ax.transAxes, fontsize=8.5)
        return
    gram = [k for k in table if k.startswith("rank/gram_rel/")] or \
        [k for k in table if k.startswith("rank/gram/")]
    jac = [k for k in table if k.startswith("rank/jacobian_rel/")] or \
        [k for k in table if k.startswith("rank/jacobian/")]
    for columns, color, label in ((gram, MEASURES[0][2], "summed Gram ranks"),
                                  (jac, MEASURES[1][2], "summed Jacobian ranks")):
        if columns:
            ax.scatter(rows[columns].sum(axis=1), rows[LLC], s=14, color=color, label=label)
    ax.set_xlabel("sum over node layers of the effective rank")
    ax.set_ylabel("LLC")
    ax.legend(loc="best", fontsize=7.5)
    ax.set_title(f"{TRAINING_EXPERIMENT}: LLC against the internal sources\n"
                 "(one point per snapshot)", fontsize=9)


def _llc_vs_params(ax, runs: pd.DataFrame) -> None:
    dropped = int((runs[LLC] <= 0).sum()) if not runs.empty else 0
    runs = runs[runs[LLC] > 0] if not runs.empty else runs  # a log axis: say what is left out
    if runs.empty:
        ax.axis("off")
        ax.text(0, 0.5, "no final model with an LLC yet:\n" + LLC_COMMAND.replace(
            " experiment", "\n  experiment"), transform=ax.transAxes, fontsize=8.5)
        return
    for color, (experiment, group) in zip(MODEL_COLORS, runs.groupby("experiment", sort=True),
                                          strict=False):
        family = group["model"].iloc[0] if "model" in group else "?"
        ax.scatter(group["model/n_params"], group[LLC], color=color, s=22,
                   label=f"{family}: {experiment} ({len(group)} seed{'s' * (len(group) > 1)})")
        if f"{LLC}_std" in group:
            ax.errorbar(group["model/n_params"], group[LLC], yerr=group[f"{LLC}_std"],
                        fmt="none", ecolor=color, elinewidth=0.8)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.xaxis.set_minor_formatter(NullFormatter())  # 3e4, 4e4, ... labels overlap at this width
    ax.set_xlabel("trainable parameters d (every weight and bias)")
    ax.set_ylabel("LLC")
    low, high = runs["model/n_params"].min() / 2, runs["model/n_params"].max() * 2
    ax.plot([low, high], [low / 2, high / 2], color="0.6", ls=":", lw=1, label="d / 2 (regular)")
    ax.set_xlim(low, high)
    ax.legend(loc="best", fontsize=7.5)
    ax.set_title("final models: LLC against parameter count"
                 + (f"\n({dropped} with LLC <= 0 not drawn)" if dropped else ""), fontsize=9)


def _llc_vs_effective(ax, finals: pd.DataFrame, curves: dict[str, pd.DataFrame]) -> None:
    """The LLC against d - free: what the three sources leave effective (lambda <= that / 2);
    ``curves``: label -> the count at every snapshot of a run over training."""
    finals = finals[finals[LLC] > 0] if not finals.empty else finals
    curves = {label: frame[frame[LLC] > 0] for label, frame in curves.items() if not frame.empty}
    if finals.empty and not curves:
        ax.axis("off")
        ax.text(0, 0.5, "no LLC run with a LIB run of the same checkpoint yet",
                transform=ax.transAxes, fontsize=8.5)
        return
    for (label, snapshots), shade in zip(curves.items(), ("0.55", "0.3"), strict=False):
        ax.plot(snapshots["free/effective"], snapshots[LLC], color=shade, lw=0.9, marker=".",
                ms=4, label=label)
        first = snapshots.iloc[[0, -1]]
        for (_, row), text in zip(first.iterrows(), ("init", "end"), strict=True):
            ax.annotate(text, (row["free/effective"], row[LLC]), fontsize=7, color=shade,
                        xytext=(3, 3), textcoords="offset points")
    snapshots = pd.concat(list(curves.values())) if curves else pd.DataFrame()
    for color, (experiment, group) in zip(MODEL_COLORS, finals.groupby("experiment", sort=True),
                                          strict=False):
        ax.scatter(group["free/effective"], group[LLC], color=color, s=22, zorder=3,
                   label=f"{group['model'].iloc[0]}: {experiment}")
    points = pd.concat([frame[["free/effective", LLC]] for frame in (finals, snapshots)
                        if not frame.empty])
    low, high = points["free/effective"].min() / 2, points["free/effective"].max() * 2
    ax.plot([low, high], [low / 2, high / 2], color="0.6", ls=":", lw=1,
            label="(d - free) / 2: the bound")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.set_xlim(low, high)
    ax.set_xlabel("d - free: parameters the three sources leave effective")
    ax.set_ylabel("LLC")
    ax.legend(loc="best", fontsize=7)
    ax.set_title("LLC against the effective count\n(free: docs/llc.md counting rule, "
                 f"ranks > {REL:g} x largest)", fontsize=9)
