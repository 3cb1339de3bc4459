"""Figure 7: eigen-spectra per node layer, for every model: Gram D (PCA) and LIB Lambda.

Two files: ``fig07_spectra`` (the small models) and ``fig07_spectra_lm`` (the language models),
one row per experiment with LIB runs, one panel per rotated node layer, named in the model's own
terms (``style.layer_names``). Each spectrum is sorted and
divided by its largest value (Lambda is importance to later layers, D the activations' variance:
different quantities, so only the shape is compared: how fast each falls off), on a log scale down
to the truncation threshold tau, the constant direction left out. One line per seed. Both
come from the LIB graph files: Lambda is the basis's, and D, PCA's spectrum, is the eigenvalues of
the same Gram (``gram_eigenvalues``), so runs whose PCA graph was not kept still show it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from interbasis.figures import data, style

STEM = "fig07_spectra"
FLOOR = 1e-15  # the spec's truncation threshold tau (when a graph stores none): below it, noise


def experiments_with_graphs(results: Path) -> list[str]:
    """Experiments holding complete LIB runs with a stored graph (toy-count runs have none)."""
    runs = data.runs(results)
    if runs.empty or "method" not in runs:
        return []
    lib = runs[runs["method"] == "lib"]
    has_graph = [(Path(path) / "graph_lib.pt").is_file() for path in lib["path"]]
    return sorted(lib[has_graph]["experiment"].unique())


def spectrum(layer, method: str, centred: bool = True) -> np.ndarray:
    """LIB's Lambda ("lib") or the Gram's D ("pca"), sorted, relative, constant left out."""
    if method == "lib":
        values = np.abs(layer.eigenvalues.numpy())
        if layer.has_constant:
            values = values[1:]
    else:
        values = np.abs(layer.gram_eigenvalues.numpy())
        if layer.has_constant and centred:
            # the centred Gram's constant direction has eigenvalue exactly 1 (bases.gram_spectrum)
            ones = np.flatnonzero(values == 1.0)
            values = np.delete(values, ones[:1])
    values = np.sort(values)[::-1]
    if not len(values) or values[0] <= 0:
        return values
    return np.clip(values / values[0], FLOOR / 10, None)


GROUPS = (  # one file each: the small models, then the language models
    ("", "small models"),
    ("_lm", "language models"),
)
LANGUAGE_MODELS = ("tiny_gpt", "smollm2_135m")


def make(results: Path, out: Path, experiments: list[str] | None = None) -> list[Path]:
    experiments = experiments or experiments_with_graphs(results)
    if not experiments:
        raise data.MissingResults(f"no experiment in {results}/runs has complete LIB and PCA "
                                  f"runs; `{data.SWEEP_COMMAND}` writes the paper's")
    lms = [e for e in experiments if e in LANGUAGE_MODELS]
    first = {"modadd_paper": 0, "fashion_mlp": 1, "cifar_paper": 1}  # the paper's models first
    others = sorted((e for e in experiments if e not in LANGUAGE_MODELS),
                    key=lambda e: (first.get(e, 9), e))
    written = []
    for (suffix, what), group in zip(GROUPS, (others, lms)):
        if group:
            written += _figure(results, out, group, suffix, what)
    return written


def _figure(results: Path, out: Path, experiments: list[str], suffix: str, what: str
            ) -> list[Path]:
    rows = []  # (experiment, [(seed, LIB graph)], layer names)
    for experiment in experiments:
        runs = data.method_runs(results, experiment, methods=("lib",))
        runs = runs[[(Path(path) / "graph_lib.pt").is_file() for path in runs["path"]]]
        names = style.layer_names(data.node_layers(runs["path"].iloc[0]))
        rows.append((experiment, [(r.seed, data.graph(r.path, "lib")) for r in runs.itertuples()],
                     names))
    n_cols = max(sum(layer.has_constant for layer in graphs[0][1].layers) for _, graphs, _ in rows)
    fig, axes = style.figure(len(rows), n_cols, figsize=(3.3 * n_cols, 2.7 * len(rows) + 1.0),
                             squeeze=False)
    tau = FLOOR
    for r, (experiment, graphs, names) in enumerate(rows):
        layers = [layer.name for layer in graphs[0][1].layers if layer.has_constant]
        tau = float(graphs[0][1].settings.get("truncation_threshold") or tau)
        for c in range(n_cols):
            ax = axes[r, c]
            if c >= len(layers):
                ax.axis("off")
                continue
            for method in ("pca", "lib"):  # LIB drawn last: on top where the two coincide
                for n, (_, graph) in enumerate(graphs):
                    values = spectrum(graph.layer(layers[c]), method,
                                      graph.settings.get("center", True))
                    symbol = "\u039b (importance)" if method == "lib" else "D (variance)"
                    # a layer with one non-constant direction (the CNN's conv0) is one point:
                    # a marker, or the panel would look empty
                    ax.plot(np.arange(1, len(values) + 1), values, color=style.method_color(method),
                            lw=1.4 if method == "lib" else 1.2,
                            ls="-" if method == "lib" else "--",
                            marker=style.method_marker(method) if len(values) < 3 else None,
                            mfc="none", ms=7 if method == "pca" else 5,
                            alpha=0.9 if len(graphs) == 1 else 0.55,
                            label=f"{style.method_label(method)} {symbol}" if n == 0 else None)
            if max(len(spectrum(graph.layer(layers[c]), "lib", graph.settings.get("center", True)))
                   for _, graph in graphs) < 3:
                ax.annotate("one non-constant direction:\nboth spectra are a single 1",
                            (0.5, 0.5), xycoords="axes fraction", ha="center", fontsize=8,
                            color="0.35", style="italic")
                ax.set_xticks([1])
                ax.set_xlim(0.5, 1.5)
            ax.axhline(tau, color="0.45", lw=0.8, ls=":")
            ax.set_yscale("log")
            ax.set_ylim(bottom=tau / 10, top=3)
            if ax.get_xlim()[0] != 0.5:  # not the one-direction panel above
                ax.set_xlim(left=0)
            ax.set_title(f"{experiment}: {names.get(layers[c], layers[c])}"
                         + (f" (\u03c4 {tau:.0e})" if c == 0 else ""), fontsize=9.5)
            if r == len(rows) - 1 or c >= len(layers) - 1:
                ax.set_xlabel("feature (sorted)")
            if c == 0:
                ax.set_ylabel("value / largest")
    handles, labels = axes[0, 0].get_legend_handles_labels()
    handles.append(axes[0, 0].plot([], [], color="0.45", lw=0.8, ls=":")[0])
    labels.append("truncation threshold \u03c4 of the run (in the first panel's title)")
    height = fig.get_figheight()
    fig.legend(handles, labels, loc="upper left", ncol=3, fontsize=9,
               bbox_to_anchor=(0.01, 1.0 - 0.6 / height))
    fig.suptitle(f"Eigen-spectra per layer, {what}: LIB \u039b and the Gram's D, each divided by "
                 "its largest\n\u039b measures importance to the later layers, D the variance "
                 "of the activations: different quantities, compared by how fast they fall;\n"
                 "one line per seed; constant direction left out; values below \u03c4 are float "
                 "noise and drawn at the axis floor", fontsize=10, x=0.01, y=1.0, ha="left",
                 va="top")
    fig.tight_layout(rect=(0, 0, 1, 1 - 0.3 / height))  # (tight_layout makes room for the title)
    return style.save(fig, out, STEM + suffix)
